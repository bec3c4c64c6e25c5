//! `cba status`: every link of a setup, checked. Exit 0 only when all pass, 7 otherwise.
//!
//! The Exchange token is the end-to-end check: a token with Exchange.ManageAsApp in `roles` and the role in
//! `wids` proves the app, the certificate, the service principal, the grant and the role. Without `--admin`
//! the Graph-side links are read off the token (or its AADSTS refusal); with `--admin` they are also looked
//! up in Graph, so a broken link is named even when the token cannot be had.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cba_graph::provision::{self, AppRef, StatusRequest};
use cba_graph::wellknown::{self, EXCHANGE_MANAGE_AS_APP};
use cba_token::{ClientCertificate, Resource, WaitOptions};
use serde::Serialize;
use time::OffsetDateTime;

use crate::Global;
use crate::cmd::cert;
use crate::connect::{self, Admin, AdminArgs, EndpointArgs, Ui, Urls};
use crate::exit::{Exit, fail};
use crate::output::{self, OutputFormat};
use crate::profile::Profile;
use crate::secrets::PasswordArgs;

const EXAMPLES: &str = "\
Examples:
  cba status --profile contoso-exo.profile.json           # from the token alone: no admin needed
  cba status --profile contoso-exo.profile.json --admin device-code   # also every object in Graph
  CBA_PROFILE=contoso-exo.profile.json cba status --output json

Exit codes: 0 every check passed, 7 a check failed (the table says which and what to do), 3 unusable profile.";

/// `cba status` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The profile `cba setup` wrote [env: CBA_PROFILE].
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    #[command(flatten)]
    pub password: PasswordArgs,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Keep trying the token through replication (AADSTS700016/700027) for up to DURATION [default: one try].
    #[arg(long, value_name = "DURATION", value_parser = connect::parse_duration)]
    pub wait: Option<Duration>,
}

/// Validated settings.
#[derive(Debug)]
pub struct Settings {
    pub profile_path: PathBuf,
    pub profile: Profile,
    pub password: PasswordArgs,
    pub urls: Urls,
    /// Also check Graph with the administrator's token.
    pub admin: Option<Admin>,
    pub wait: Option<Duration>,
    pub ui: Ui,
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable id: certificate_file, days_left, app, certificate_registered, service_principal, grant, role, token.
    pub check: &'static str,
    /// true passed, false failed, null not checked (an earlier link failed).
    pub ok: Option<bool>,
    /// Passed, but needs attention soon (certificate under 30 days).
    pub warning: bool,
    pub detail: String,
    /// Where the answer comes from: file, graph or token.
    pub source: &'static str,
}

/// The JSON document of `cba status` (docs/cli-json.md).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub profile: String,
    pub app_name: String,
    pub app_id: String,
    pub tenant_id: String,
    pub checks: Vec<Check>,
    pub requests: u32,
    pub elapsed_ms: u64,
}

impl Report {
    pub fn failed(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| c.ok == Some(false)).collect()
    }
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let (profile_path, profile) = connect::require_profile(args.profile)?;
    profile.require_complete(&profile_path)?;
    let urls = Urls::resolve(&args.endpoints, Some(&profile), |k| std::env::var(k).ok())?;
    let admin = if args.admin.given() { Some(args.admin.resolve(|k| std::env::var(k).ok())?) } else { None };
    let settings = Settings {
        profile_path,
        profile,
        password: args.password,
        urls,
        admin,
        wait: args.wait,
        ui: Ui { style: global.style, all_waits: false },
    };
    let report = crate::runtime()?.block_on(execute(&settings))?;
    print(&report, global)?;
    verdict(&report)
}

/// Exit 7 naming the failed checks.
pub fn verdict(report: &Report) -> anyhow::Result<()> {
    let failed = report.failed();
    if failed.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = failed.iter().map(|c| format!("{} ({})", c.check, c.detail)).collect();
    Err(fail(Exit::Verify, format!("{} check(s) failed: {}", failed.len(), names.join("; "))))
}

fn check(check: &'static str, ok: Option<bool>, source: &'static str, detail: impl Into<String>) -> Check {
    Check { check, ok, warning: false, detail: detail.into(), source }
}

/// Run every check. Errors only for what makes checking impossible (an unusable profile, no network to
/// the admin's sign-in); failed links are in the report.
pub async fn execute(s: &Settings) -> anyhow::Result<Report> {
    let started = Instant::now();
    let p = &s.profile;
    let now = OffsetDateTime::now_utc();
    let mut checks = Vec::new();
    let mut requests = 0;
    let role_ids: Vec<&str> = p.role_assignments.iter().map(|r| r.template_id.as_str()).collect();
    let role_names: Vec<&str> = p.role_assignments.iter().map(|r| r.role.as_str()).collect();

    // The certificate file.
    let path = &p.certificate.path;
    let identity = match crate::fsutil::read(path).and_then(|bytes| cert::open(path, &bytes, &s.password)) {
        Ok(identity) => {
            let matches = identity.key_matches();
            let thumbprint = identity.certificate.thumbprint_sha1_hex();
            let same = thumbprint.eq_ignore_ascii_case(&p.certificate.thumbprint_sha1);
            let ok = matches == Some(true) && same;
            let detail = match (matches, same) {
                (Some(true), true) => format!("{}: private key matches, thumbprint {thumbprint}", path.display()),
                (None, _) => format!("{}: no private key in the file: point the profile at the PFX", path.display()),
                (Some(false), _) => format!("{}: the private key does not belong to the certificate", path.display()),
                (Some(true), false) => format!(
                    "{}: holds certificate {thumbprint}, the profile expects {}: restore the file or rerun `cba setup --cert`",
                    path.display(),
                    p.certificate.thumbprint_sha1
                ),
            };
            checks.push(check("certificate_file", Some(ok), "file", detail));
            let days = cba_cert::days_left(identity.certificate.not_after(), now);
            let mut days_check = check(
                "days_left",
                Some(days > 0 && identity.certificate.is_valid_at(now)),
                "file",
                if days > 0 {
                    format!("{days} days (until {})", cba_token::jwt::rfc3339(identity.certificate.not_after()))
                } else {
                    "expired: run `cba cert rotate --admin ...`".to_string()
                },
            );
            if (0..30).contains(&days) {
                days_check.warning = true;
                days_check.detail.push_str(": rotate soon (`cba cert rotate`)");
            }
            checks.push(days_check);
            ok.then_some(identity)
        }
        Err(e) => {
            checks.push(check("certificate_file", Some(false), "file", format!("{e:#}")));
            checks.push(check("days_left", None, "file", "certificate not readable"));
            None
        }
    };

    // Graph, with the admin's token.
    if let Some(admin) = &s.admin {
        let (tokens, _) = connect::admin_tokens(admin, &s.urls, &p.tenant_id, s.ui).await?;
        let graph = connect::graph_client(&s.urls, tokens, Duration::from_secs(60), s.ui)?;
        let mut request = StatusRequest::new(AppRef::ObjectId(p.app_object_id.clone()));
        request.thumbprint_sha1 = Some(p.certificate.thumbprint_sha1.clone());
        request.roles = role_ids.iter().filter_map(|id| wellknown::role_by_template_id(id)).collect();
        let report = provision::status(&graph, &request).await.map_err(|e| connect::graph_failure(e, "cba status"))?;
        requests += report.requests;
        let fix = "rerun `cba setup` with this profile";
        match &report.application {
            Some(app) => {
                checks.push(check("app", Some(true), "graph", format!("{} (appId {})", app.display_name, app.app_id)))
            }
            None => {
                checks.push(check("app", Some(false), "graph", format!("app {} not found: {fix}", p.app_object_id)))
            }
        }
        checks.push(match report.certificate_registered {
            Some(true) => check(
                "certificate_registered",
                Some(true),
                "graph",
                format!("thumbprint {} registered", p.certificate.thumbprint_sha1),
            ),
            Some(false) => check(
                "certificate_registered",
                Some(false),
                "graph",
                format!("thumbprint {} is not registered on the app: {fix}", p.certificate.thumbprint_sha1),
            ),
            None => check("certificate_registered", None, "graph", "no app"),
        });
        let app_found = report.application.is_some();
        checks.push(match &report.sp_id {
            Some(id) => check("service_principal", Some(true), "graph", id.clone()),
            None => check("service_principal", app_found.then_some(false), "graph", format!("missing: {fix}")),
        });
        let sp_found = report.sp_id.is_some();
        checks.push(match &report.grant_id {
            Some(id) => check("grant", Some(true), "graph", format!("{EXCHANGE_MANAGE_AS_APP} granted ({id})")),
            None => check(
                "grant",
                sp_found.then_some(false),
                "graph",
                format!("{EXCHANGE_MANAGE_AS_APP} not granted: {fix}"),
            ),
        });
        for state in &report.roles {
            checks.push(match &state.assignment_id {
                Some(id) => check("role", Some(true), "graph", format!("{} assigned ({id})", state.role.name)),
                None => check(
                    "role",
                    sp_found.then_some(false),
                    "graph",
                    format!("{} not assigned: {fix}", state.role.name),
                ),
            });
        }
    }

    // The token: the end-to-end proof.
    let graph_checked = s.admin.is_some();
    match identity {
        None => checks.push(check("token", None, "token", "no usable certificate")),
        Some(identity) => {
            let cert =
                ClientCertificate::new(identity, &p.tenant_id, &p.app_id).map_err(|e| fail(Exit::BadInput, e))?;
            let client = connect::token_client(&s.urls)?;
            let mut attempts = 1;
            let result = match s.wait {
                Some(wait) => {
                    client
                        .wait_until_ready(&cert, &Resource::Exchange, &WaitOptions::new(wait), |_| attempts += 1)
                        .await
                }
                None => client.get_token(&cert, &Resource::Exchange).await,
            };
            requests += attempts;
            match result {
                Ok(token) => {
                    let (roles, wids) = connect::token_claims(&token);
                    let granted = roles.iter().any(|r| r == EXCHANGE_MANAGE_AS_APP);
                    checks.push(check("token", Some(granted), "token", if granted {
                        format!("Exchange token with roles [{}]", roles.join(", "))
                    } else {
                        format!("the Exchange token has no {EXCHANGE_MANAGE_AS_APP} (roles [{}]): rerun `cba setup` (or wait a minute for replication)", roles.join(", "))
                    }));
                    if !graph_checked {
                        let id = format!("{} (appId {})", p.app_name, p.app_id);
                        checks.push(check("app", Some(true), "token", id));
                        checks.push(check(
                            "certificate_registered",
                            Some(true),
                            "token",
                            format!("thumbprint {} accepted", p.certificate.thumbprint_sha1),
                        ));
                        checks.push(check("service_principal", Some(true), "token", "the token was issued"));
                        checks.push(check(
                            "grant",
                            Some(granted),
                            "token",
                            if granted {
                                format!("{EXCHANGE_MANAGE_AS_APP} in roles")
                            } else {
                                format!("{EXCHANGE_MANAGE_AS_APP} missing from roles: rerun `cba setup`")
                            },
                        ));
                        let role_ok = wids
                            .as_ref()
                            .map(|w| w.iter().any(|id| role_ids.iter().any(|r| r.eq_ignore_ascii_case(id))));
                        checks.push(check(
                            "role",
                            role_ok,
                            "token",
                            match role_ok {
                                Some(true) => format!("{} in wids", role_names.join(", ")),
                                Some(false) => {
                                    format!("{} missing from wids: rerun `cba setup`", role_names.join(", "))
                                }
                                None => "the token has no wids claim: check with --admin".to_string(),
                            },
                        ));
                    }
                }
                Err(e) => {
                    let codes = e.aadsts().to_vec();
                    checks.push(check("token", Some(false), "token", connect::chain(&e)));
                    if !graph_checked {
                        let no = |name, detail: &str| check(name, Some(false), "token", detail.to_string());
                        let unknown = |name| check(name, None, "token", "not checked (an earlier link failed)");
                        let fix = "rerun `cba setup`, or wait for replication (`cba status --wait 2m`)";
                        if codes.contains(&700016) {
                            checks.push(no(
                                "app",
                                &format!("AADSTS700016: app {} not found in tenant {}: {fix}", p.app_id, p.tenant_id),
                            ));
                            checks
                                .extend(["certificate_registered", "service_principal", "grant", "role"].map(unknown));
                        } else if codes.contains(&700027) {
                            checks.push(check(
                                "app",
                                Some(true),
                                "token",
                                format!("{} (appId {})", p.app_name, p.app_id),
                            ));
                            checks.push(no(
                                "certificate_registered",
                                &format!(
                                    "AADSTS700027: certificate {} not registered (or expired) on the app: {fix}",
                                    p.certificate.thumbprint_sha1
                                ),
                            ));
                            checks.extend(["service_principal", "grant", "role"].map(unknown));
                        } else if codes.contains(&7000229) {
                            checks.push(check(
                                "app",
                                Some(true),
                                "token",
                                format!("{} (appId {})", p.app_name, p.app_id),
                            ));
                            checks.push(check("certificate_registered", Some(true), "token", "accepted"));
                            checks.push(no(
                                "service_principal",
                                &format!("AADSTS7000229: the app has no service principal: {fix}"),
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
    let order = [
        "certificate_file",
        "days_left",
        "app",
        "certificate_registered",
        "service_principal",
        "grant",
        "role",
        "token",
    ];
    checks.sort_by_key(|c| order.iter().position(|o| *o == c.check).unwrap_or(order.len()));
    let ok = checks.iter().all(|c| c.ok != Some(false));
    Ok(Report {
        ok,
        profile: s.profile_path.display().to_string(),
        app_name: p.app_name.clone(),
        app_id: p.app_id.clone(),
        tenant_id: p.tenant_id.clone(),
        checks,
        requests,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

fn print(report: &Report, global: &Global) -> anyhow::Result<()> {
    match global.output {
        OutputFormat::Json => output::print_json(report),
        OutputFormat::Text => output::write_stdout(&text(report)),
        other => Err(fail(Exit::Usage, format!("--output {other:?} is not supported here; use text or json"))),
    }
}

/// The table for people.
pub fn text(r: &Report) -> String {
    let label = |c: &Check| match (c.ok, c.warning) {
        (Some(true), false) => "ok",
        (Some(true), true) => "warning",
        (Some(false), _) => "FAILED",
        (None, _) => "-",
    };
    let width = r.checks.iter().map(|c| c.check.len()).max().unwrap_or(5).max(5);
    let mut out = format!("{:<width$}  {:<7}  DETAIL\n", "CHECK", "RESULT");
    for c in &r.checks {
        out.push_str(&format!("{:<width$}  {:<7}  {}\n", c.check, label(c), c.detail));
    }
    out.push_str(&format!(
        "\n{} ({} of {}, app {} in tenant {})\n",
        if r.ok { "All checks passed" } else { "Some checks FAILED" },
        r.checks.iter().filter(|c| c.ok == Some(true)).count(),
        r.checks.len(),
        r.app_name,
        r.tenant_id
    ));
    out
}
