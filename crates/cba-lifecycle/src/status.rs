//! Status: every link of a setup, checked, with a verdict per link.
//!
//! The Exchange token is the end-to-end check: a token with Exchange.ManageAsApp in `roles` and the role in
//! `wids` proves the app, the certificate, the service principal, the grant and the role. Without an
//! administrator the Graph-side links are read off the token (or its AADSTS refusal); with one they are
//! also looked up in Graph, so a broken link is named even when the token cannot be had.
//!
//! A link that should exist and cannot be confirmed is not "ok": its verdict is `None` (unknown), and the
//! report is `ok` only when every check passed.

use std::time::Duration;

use cba_graph::Replication;
use cba_graph::provision::{self, AppRef};
use cba_graph::wellknown::{EXCHANGE_MANAGE_AS_APP, Role};
use cba_token::{Resource, WaitOptions};
use serde::Serialize;

use crate::admin::{self, AdminCredential};
use crate::prove::TokenClaims;
use crate::setup::millis;
use crate::{Error, Services};

/// What to check.
#[derive(Debug, Clone)]
pub struct StatusRequest {
    /// The tenant id (GUID) or domain.
    pub tenant: String,
    /// The app's client id.
    pub app_id: String,
    /// Known from a profile; else read from Graph or the token.
    pub app_name: Option<String>,
    /// Known from a profile; else Graph is asked by appId.
    pub app_object_id: Option<String>,
    /// The certificate: where it was read from, and what reading it gave.
    pub certificate: CertificateInput,
    /// The thumbprint the profile expects (without a profile: whatever the certificate is).
    pub expected_thumbprint: Option<String>,
    /// Roles the app should hold.
    pub roles: Vec<Role>,
    /// Keep trying the token through replication for up to this long (None: one try).
    pub wait: Option<Duration>,
    /// [`Replication::Expected`] only right after a setup: a grant or role assignment Graph does not list
    /// yet is then waited out instead of reported missing.
    pub replication: Replication,
    /// The app is named by a profile (decides the [`Remedy`] for a missing link).
    pub from_profile: bool,
}

/// The certificate as the caller read it.
#[derive(Debug, Clone)]
pub struct CertificateInput {
    /// Where it is kept (a path, a token URI), for messages.
    pub location: String,
    /// The certificate and its key, or why they could not be read.
    pub loaded: Result<crate::Credential, String>,
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable id: certificate_file, days_left, app, certificate_registered, service_principal, grant, role,
    /// token.
    pub check: &'static str,
    /// true passed, false failed, null not confirmed (an earlier link failed, or nothing can tell).
    pub ok: Option<bool>,
    /// Passed, but needs attention soon (certificate under 30 days).
    pub warning: bool,
    /// What was found.
    pub detail: String,
    /// Where the answer comes from: file, graph or token.
    pub source: &'static str,
    /// What fixes it, when it failed or needs attention.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<Remedy>,
}

/// What fixes a failed check (the caller turns it into a command).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Remedy {
    /// Run setup again (with the profile, when there is one): it recreates what is missing.
    Setup,
    /// Set up this app (no profile names it).
    SetupApp,
    /// Setup again, or wait for replication.
    SetupOrWait,
    /// Rotate the certificate soon.
    Rotate,
    /// The certificate expired: rotate with an administrator.
    RotateWithAdmin,
    /// Restore the certificate file, or register this one with setup.
    RestoreCertificate,
    /// Check with an administrator's Graph sign-in (the token cannot tell).
    CheckWithAdmin,
}

/// Every check, and the verdict (the `cba status --output json` document, docs/cli-json.md).
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Every check passed.
    pub ok: bool,
    /// Where the profile is kept, when the app came from one.
    pub profile: Option<String>,
    /// Null when neither a profile, Graph nor a token told it.
    pub app_name: Option<String>,
    /// The client id.
    pub app_id: String,
    /// The tenant id from the profile or the token (else the tenant as given).
    pub tenant_id: String,
    /// The checks, in a fixed order.
    pub checks: Vec<Check>,
    /// Requests sent.
    pub requests: u32,
    /// Time spent.
    pub elapsed_ms: u64,
}

impl StatusReport {
    /// The checks that did not pass: failed (`Some(false)`) or unconfirmed (`None`).
    pub fn failed(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| c.ok != Some(true)).collect()
    }

    /// Add checks made elsewhere (the Exchange role group's, [`crate::exchange_roles::checks`]) after the
    /// others; the verdict is recomputed.
    pub fn add_checks(&mut self, checks: Vec<Check>) {
        self.checks.extend(checks);
        self.ok = self.checks.iter().all(|c| c.ok == Some(true));
    }
}

fn check(check: &'static str, ok: Option<bool>, source: &'static str, detail: impl Into<String>) -> Check {
    Check { check, ok, warning: false, detail: detail.into(), source, remedy: None }
}

impl Check {
    fn remedy(mut self, remedy: Remedy) -> Check {
        if self.ok != Some(true) || self.warning {
            self.remedy = Some(remedy);
        }
        self
    }
}

/// Run every check. Errors only for what makes checking impossible (the admin's sign-in failing, Graph
/// unreachable); broken links are in the report.
pub async fn status(
    services: &Services,
    admin_credential: Option<&AdminCredential>,
    request: &StatusRequest,
    profile: Option<String>,
) -> Result<StatusReport, Error> {
    let started = services.now();
    let now = services.now();
    let t = request;
    let mut checks = Vec::new();
    let mut requests = 0;
    let mut app_name = t.app_name.clone();
    let mut tenant_id = t.tenant.clone();
    let role_ids: Vec<&str> = t.roles.iter().map(|r| r.template_id).collect();
    let role_names: Vec<&str> = t.roles.iter().map(|r| r.name).collect();
    let fix = if t.from_profile { Remedy::Setup } else { Remedy::SetupApp };

    // The certificate.
    let location = &t.certificate.location;
    let mut thumbprint = t.expected_thumbprint.clone();
    let identity = match &t.certificate.loaded {
        Ok(identity) => {
            let matches = identity.key_matches();
            let found = identity.certificate().thumbprint_sha1_hex();
            let expected = thumbprint.get_or_insert_with(|| found.clone()).clone();
            let same = found.eq_ignore_ascii_case(&expected);
            let ok = matches == Some(true) && same;
            let (detail, remedy) = match (matches, same) {
                (Some(true), true) => (format!("{location}: private key matches, thumbprint {found}"), None),
                (None, _) => (format!("{location}: no private key in the file: point the profile at the PFX"), None),
                (Some(false), _) => (format!("{location}: the private key does not belong to the certificate"), None),
                (Some(true), false) => (
                    format!("{location}: holds certificate {found}, the profile expects {expected}"),
                    Some(Remedy::RestoreCertificate),
                ),
            };
            let mut c = check("certificate_file", Some(ok), "file", detail);
            c.remedy = remedy;
            checks.push(c);
            let days = cba_cert::days_left(identity.certificate().not_after(), now);
            let valid = days > 0 && identity.certificate().is_valid_at(now);
            let mut days_check = check(
                "days_left",
                Some(valid),
                "file",
                if days > 0 {
                    format!("{days} days (until {})", cba_token::jwt::rfc3339(identity.certificate().not_after()))
                } else {
                    "expired".to_string()
                },
            );
            if !valid {
                days_check.remedy = Some(Remedy::RotateWithAdmin);
            } else if (0..30).contains(&days) {
                days_check.warning = true;
                days_check.detail.push_str(": rotate soon");
                days_check.remedy = Some(Remedy::Rotate);
            }
            checks.push(days_check);
            ok.then(|| identity.clone())
        }
        Err(e) => {
            checks.push(check("certificate_file", Some(false), "file", e.clone()));
            checks.push(check("days_left", None, "file", "certificate not readable"));
            None
        }
    };
    let thumbprint_text = thumbprint.clone().unwrap_or_else(|| "(unknown)".into());

    // Graph, with the admin's token.
    if let Some(credential) = admin_credential {
        let session = admin::sign_in(services, credential, &t.tenant).await?;
        if let Some(tid) = session.tenant_id {
            tenant_id = tid;
        }
        let graph = services.graph(session.tokens, Duration::from_secs(60))?;
        let app_ref = match &t.app_object_id {
            Some(id) => AppRef::ObjectId(id.clone()),
            None => AppRef::AppId(t.app_id.clone()),
        };
        let mut graph_request = provision::StatusRequest::new(app_ref.clone());
        graph_request.thumbprint_sha1 = thumbprint.clone();
        graph_request.roles = t.roles.clone();
        graph_request.replication = t.replication;
        let report = provision::status(&graph, &graph_request).await.map_err(Error::graph_in("status"))?;
        requests += report.requests;
        match &report.application {
            Some(app) => {
                app_name.get_or_insert_with(|| app.display_name.clone());
                checks.push(check("app", Some(true), "graph", format!("{} (appId {})", app.display_name, app.app_id)))
            }
            None => checks.push(check("app", Some(false), "graph", format!("{app_ref} not found")).remedy(fix)),
        }
        checks.push(match report.certificate_registered {
            Some(true) => {
                check("certificate_registered", Some(true), "graph", format!("thumbprint {thumbprint_text} registered"))
            }
            Some(false) => check(
                "certificate_registered",
                Some(false),
                "graph",
                format!("thumbprint {thumbprint_text} is not registered on the app"),
            )
            .remedy(fix),
            None if report.application.is_some() => {
                check("certificate_registered", None, "graph", "certificate not readable")
            }
            None => check("certificate_registered", None, "graph", "no app"),
        });
        let app_found = report.application.is_some();
        checks.push(match &report.sp_id {
            Some(id) => check("service_principal", Some(true), "graph", id.clone()),
            None => check("service_principal", app_found.then_some(false), "graph", "missing").remedy(fix),
        });
        let sp_found = report.sp_id.is_some();
        checks.push(match &report.grant_id {
            Some(id) => check("grant", Some(true), "graph", format!("{EXCHANGE_MANAGE_AS_APP} granted ({id})")),
            None => check("grant", sp_found.then_some(false), "graph", format!("{EXCHANGE_MANAGE_AS_APP} not granted"))
                .remedy(fix),
        });
        for state in &report.roles {
            checks.push(match &state.assignment_id {
                Some(id) => check("role", Some(true), "graph", format!("{} assigned ({id})", state.role.name)),
                None => check("role", sp_found.then_some(false), "graph", format!("{} not assigned", state.role.name))
                    .remedy(fix),
            });
        }
    }

    // The token: the end-to-end proof.
    let graph_checked = admin_credential.is_some();
    match identity {
        None => checks.push(check("token", None, "token", "no usable certificate")),
        Some(identity) => {
            let cert = identity.client_certificate(&t.tenant, &t.app_id).map_err(Error::token_in("the certificate"))?;
            let mut attempts = 1;
            let result = match t.wait {
                Some(wait) => {
                    services
                        .tokens
                        .wait_until_ready(&cert, &Resource::Exchange, &WaitOptions::new(wait), |_| attempts += 1)
                        .await
                }
                None => services.tokens.get_token(&cert, &Resource::Exchange).await,
            };
            requests += attempts;
            let label = |name: &Option<String>| match name {
                Some(name) => format!("{name} (appId {})", t.app_id),
                None => format!("appId {}", t.app_id),
            };
            match result {
                Ok(token) => {
                    let claims = TokenClaims::of(&token);
                    if let Some(tid) = &claims.tenant_id {
                        tenant_id = tid.clone();
                    }
                    if let Some(name) = &claims.app_name {
                        app_name.get_or_insert_with(|| name.clone());
                    }
                    // An opaque token: issued (app, certificate, principal proven), claims unknown.
                    let granted = claims.readable.then(|| claims.has_grant());
                    checks.push(
                        check(
                            "token",
                            Some(granted != Some(false)),
                            "token",
                            match granted {
                                Some(true) => format!("Exchange token with roles [{}]", claims.roles.join(", ")),
                                Some(false) => format!(
                                    "the Exchange token has no {EXCHANGE_MANAGE_AS_APP} (roles [{}])",
                                    claims.roles.join(", ")
                                ),
                                None => "Exchange token issued (not a JWT: its claims cannot be read)".to_string(),
                            },
                        )
                        .remedy(Remedy::SetupOrWait),
                    );
                    if !graph_checked {
                        checks.push(check("app", Some(true), "token", label(&app_name)));
                        checks.push(check(
                            "certificate_registered",
                            Some(true),
                            "token",
                            format!("thumbprint {thumbprint_text} accepted"),
                        ));
                        checks.push(check("service_principal", Some(true), "token", "the token was issued"));
                        checks.push(
                            check(
                                "grant",
                                granted,
                                "token",
                                match granted {
                                    Some(true) => format!("{EXCHANGE_MANAGE_AS_APP} in roles"),
                                    Some(false) => format!("{EXCHANGE_MANAGE_AS_APP} missing from roles"),
                                    None => "the token cannot be read".to_string(),
                                },
                            )
                            .remedy(if granted.is_none() {
                                Remedy::CheckWithAdmin
                            } else {
                                fix
                            }),
                        );
                        let role_ok = claims.has_role(&role_ids);
                        checks.push(
                            check(
                                "role",
                                role_ok,
                                "token",
                                match role_ok {
                                    Some(true) => format!("{} in wids", role_names.join(", ")),
                                    Some(false) => format!("{} missing from wids", role_names.join(", ")),
                                    // No `wids`: no directory role reached the token, or the token cannot tell.
                                    None => {
                                        format!("{} not confirmed: the token has no wids claim", role_names.join(", "))
                                    }
                                },
                            )
                            .remedy(if role_ok.is_none() {
                                Remedy::CheckWithAdmin
                            } else {
                                fix
                            }),
                        );
                    }
                }
                Err(e) => {
                    let codes = e.aadsts().to_vec();
                    checks.push(check("token", Some(false), "token", chain(&e)));
                    if !graph_checked {
                        let no = |name, detail: String| {
                            check(name, Some(false), "token", detail).remedy(Remedy::SetupOrWait)
                        };
                        let unknown = |name| check(name, None, "token", "not checked (an earlier link failed)");
                        if codes.contains(&700016) {
                            checks.push(no(
                                "app",
                                format!("AADSTS700016: app {} not found in tenant {}", t.app_id, t.tenant),
                            ));
                            checks
                                .extend(["certificate_registered", "service_principal", "grant", "role"].map(unknown));
                        } else if codes.contains(&700027) {
                            checks.push(check("app", Some(true), "token", label(&app_name)));
                            checks.push(no(
                                "certificate_registered",
                                format!(
                                    "AADSTS700027: certificate {thumbprint_text} not registered (or expired) on the app"
                                ),
                            ));
                            checks.extend(["service_principal", "grant", "role"].map(unknown));
                        } else if codes.contains(&7000229) {
                            checks.push(check("app", Some(true), "token", label(&app_name)));
                            checks.push(check("certificate_registered", Some(true), "token", "accepted"));
                            checks.push(no(
                                "service_principal",
                                "AADSTS7000229: the app has no service principal".to_string(),
                            ));
                            checks.extend(["grant", "role"].map(unknown));
                        } else {
                            checks.extend(
                                ["app", "certificate_registered", "service_principal", "grant", "role"].map(unknown),
                            );
                        }
                    }
                }
            }
        }
    }
    const ORDER: [&str; 8] = [
        "certificate_file",
        "days_left",
        "app",
        "certificate_registered",
        "service_principal",
        "grant",
        "role",
        "token",
    ];
    if t.roles.is_empty() {
        // No Entra role was assigned (an Exchange role group instead): nothing to find in `wids`.
        checks.retain(|c| c.check != "role");
    }
    checks.sort_by_key(|c| ORDER.iter().position(|o| *o == c.check).unwrap_or(ORDER.len()));
    let ok = checks.iter().all(|c| c.ok == Some(true));
    Ok(StatusReport {
        ok,
        profile,
        app_name,
        app_id: t.app_id.clone(),
        tenant_id,
        checks,
        requests,
        elapsed_ms: millis(services.since(started)),
    })
}

/// An error and its sources, joined by ": " (each once).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
