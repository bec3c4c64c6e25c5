//! `cba status`: every link of a setup, checked. Exit 0 only when all pass, 7 otherwise.
//!
//! The Exchange token is the end-to-end check: a token with Exchange.ManageAsApp in `roles` and the role in
//! `wids` proves the app, the certificate, the service principal, the grant and the role. Without `--admin`
//! the Graph-side links are read off the token (or its AADSTS refusal); with `--admin` they are also looked
//! up in Graph, so a broken link is named even when the token cannot be had.
//!
//! The app is named by a profile or by flags/AZURE_* (flags, then the profile, then the environment, as
//! `cba token`). Without a profile there are no recorded ids: Graph is asked by appId, and the app's name and
//! tenant id are read off the token.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cba_graph::Replication;
use cba_graph::provision::{self, AppRef, StatusRequest};
use cba_graph::wellknown::{self, EXCHANGE_MANAGE_AS_APP, Role};
use cba_token::{ClientCertificate, Resource, WaitOptions};
use serde::Serialize;
use time::OffsetDateTime;

use crate::Global;
use crate::cmd::cert;
use crate::cmd::token::Credentials;
use crate::connect::{self, Admin, AdminArgs, AppArgs, EndpointArgs, Ui, Urls};
use crate::exit::{Exit, fail};
use crate::output;
use crate::profile::Profile;
use crate::secrets::PasswordArgs;

const EXAMPLES: &str = "\
Examples:
  cba status --profile contoso-exo.profile.json           # from the token alone: no admin needed
  cba status --profile contoso-exo.profile.json --admin device-code   # also every object in Graph
  CBA_PROFILE=contoso-exo.profile.json cba status --output json
  cba status --tenant contoso.onmicrosoft.com --client-id 631a96bc-... --cert contoso-exo.pfx   # no profile
  AZURE_TENANT_ID=... AZURE_CLIENT_ID=... AZURE_CLIENT_CERTIFICATE_PATH=contoso-exo.pfx \\
      cba status --admin device-code --role 'Exchange Recipient Administrator'

Without a profile the app is named by --tenant, --client-id and --cert, else AZURE_TENANT_ID, AZURE_CLIENT_ID
and AZURE_CLIENT_CERTIFICATE_PATH; the role checked is Exchange Administrator unless --role says otherwise.

Exit codes: 0 every check passed, 7 a check failed (the table says which and what to do), 2 no app named,
3 unusable profile.";

/// `cba status` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    pub app: AppArgs,
    /// The Entra role(s) the app should hold (repeatable; case-insensitive) [default: the profile's, else
    /// Exchange Administrator].
    #[arg(long = "role", value_name = "NAME")]
    pub roles: Vec<String>,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Keep trying the token through replication (AADSTS700016/700027) for up to DURATION [default: one try].
    #[arg(long, value_name = "DURATION", value_parser = connect::parse_duration)]
    pub wait: Option<Duration>,
}

/// What is checked: the app, its certificate and the roles it should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The tenant id (GUID) or domain.
    pub tenant: String,
    pub app_id: String,
    /// Known from a profile; else read from Graph (`--admin`) or the token.
    pub app_name: Option<String>,
    /// Known from a profile; else Graph is asked by appId.
    pub app_object_id: Option<String>,
    pub cert_path: PathBuf,
    /// The thumbprint the profile expects the file to hold (without a profile: whatever the file holds).
    pub expected_thumbprint: Option<String>,
    pub roles: Vec<Role>,
}

impl Target {
    /// Everything from a `cba setup` profile.
    pub fn from_profile(p: &Profile) -> Target {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let roles: Vec<Role> =
            p.role_assignments.iter().filter_map(|r| wellknown::role_by_template_id(&r.template_id)).collect();
        Target {
            tenant: p.tenant_id.clone(),
            app_id: p.app_id.clone(),
            app_name: non_empty(&p.app_name),
            app_object_id: non_empty(&p.app_object_id),
            cert_path: p.certificate.path.clone(),
            expected_thumbprint: Some(p.certificate.thumbprint_sha1.clone()),
            roles: if roles.is_empty() { vec![wellknown::EXCHANGE_ADMINISTRATOR] } else { roles },
        }
    }

    /// Flags, then the profile, then AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_CERTIFICATE_PATH. The
    /// profile's ids and expected thumbprint apply only to its own app and certificate.
    pub fn resolve(
        args: &Args,
        profile: Option<&Profile>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Target> {
        let flags = Credentials::from_app_args(&args.app);
        let creds = flags.or(profile.map(Credentials::from_profile).unwrap_or_default()).or(Credentials::from_env(env));
        let missing: Vec<&str> = [
            (creds.tenant.is_none(), "--tenant (AZURE_TENANT_ID)"),
            (creds.client_id.is_none(), "--client-id (AZURE_CLIENT_ID)"),
            (creds.cert.is_none(), "--cert (AZURE_CLIENT_CERTIFICATE_PATH)"),
        ]
        .into_iter()
        .filter_map(|(absent, what)| absent.then_some(what))
        .collect();
        let (Some(tenant), Some(app_id), Some(cert_path)) = (creds.tenant, creds.client_id, creds.cert) else {
            return Err(fail(
                Exit::Usage,
                format!(
                    "no app to check: pass --profile FILE or set CBA_PROFILE (`cba setup` writes \
                     ./<NAME>.profile.json), or name the app without a profile; missing: {}",
                    missing.join(", ")
                ),
            ));
        };
        let mut target = match profile {
            Some(p) => Target::from_profile(p),
            None => Target {
                tenant: String::new(),
                app_id: String::new(),
                app_name: None,
                app_object_id: None,
                cert_path: PathBuf::new(),
                expected_thumbprint: None,
                roles: vec![wellknown::EXCHANGE_ADMINISTRATOR],
            },
        };
        if !target.app_id.eq_ignore_ascii_case(&app_id) {
            // Another app than the profile's: none of its ids or roles apply.
            target.app_name = None;
            target.app_object_id = None;
            target.roles = vec![wellknown::EXCHANGE_ADMINISTRATOR];
        }
        if target.cert_path != cert_path {
            target.expected_thumbprint = None;
        }
        target.tenant = tenant.trim().to_string();
        target.app_id = app_id.trim().to_string();
        target.cert_path = cert_path;
        if !args.roles.is_empty() {
            target.roles.clear();
            for name in &args.roles {
                let role = wellknown::role_by_name(name).map_err(|e| fail(Exit::Usage, format!("--role: {e}")))?;
                if !target.roles.contains(&role) {
                    target.roles.push(role);
                }
            }
        }
        Ok(target)
    }
}

/// Validated settings.
#[derive(Debug)]
pub struct Settings {
    /// The profile the target came from, if any.
    pub profile_path: Option<PathBuf>,
    pub target: Target,
    pub password: PasswordArgs,
    pub urls: Urls,
    /// Also check Graph with the administrator's token.
    pub admin: Option<Admin>,
    pub wait: Option<Duration>,
    /// [`Replication::Expected`] only right after a setup (the demo): a grant or role assignment Graph does
    /// not list yet is then waited out instead of reported missing.
    pub replication: Replication,
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
    /// Null when the app was named by flags or the environment.
    pub profile: Option<String>,
    /// Null when neither a profile, Graph nor a token told it.
    pub app_name: Option<String>,
    pub app_id: String,
    /// The tenant id from the profile or the token (else the tenant as given).
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
    let env = |k: &str| std::env::var(k).ok();
    let profile = match connect::profile_path(args.app.profile.clone()) {
        Some(path) => {
            let profile = Profile::load(&path)?;
            profile.require_complete(&path)?;
            Some((path, profile))
        }
        None => None,
    };
    let target = Target::resolve(&args, profile.as_ref().map(|(_, p)| p), env)?;
    let urls = Urls::resolve(&args.endpoints, profile.as_ref().map(|(_, p)| p), env)?;
    let admin = if args.admin.given() { Some(args.admin.resolve(env)?) } else { None };
    let settings = Settings {
        profile_path: profile.map(|(path, _)| path),
        target,
        password: args.app.password,
        urls,
        admin,
        wait: args.wait,
        replication: Replication::NotExpected,
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
    let t = &s.target;
    let now = OffsetDateTime::now_utc();
    let mut checks = Vec::new();
    let mut requests = 0;
    let mut app_name = t.app_name.clone();
    let mut tenant_id = t.tenant.clone();
    let role_ids: Vec<&str> = t.roles.iter().map(|r| r.template_id).collect();
    let role_names: Vec<&str> = t.roles.iter().map(|r| r.name).collect();
    let fix =
        if s.profile_path.is_some() { "rerun `cba setup` with this profile" } else { "run `cba setup` for this app" };

    // The certificate file.
    let path = &t.cert_path;
    let mut thumbprint = t.expected_thumbprint.clone();
    let identity = match crate::fsutil::read(path).and_then(|bytes| cert::open(path, &bytes, &s.password)) {
        Ok(identity) => {
            let matches = identity.key_matches();
            let found = identity.certificate.thumbprint_sha1_hex();
            let expected = thumbprint.get_or_insert_with(|| found.clone()).clone();
            let same = found.eq_ignore_ascii_case(&expected);
            let ok = matches == Some(true) && same;
            let detail = match (matches, same) {
                (Some(true), true) => format!("{}: private key matches, thumbprint {found}", path.display()),
                (None, _) => format!("{}: no private key in the file: point the profile at the PFX", path.display()),
                (Some(false), _) => format!("{}: the private key does not belong to the certificate", path.display()),
                (Some(true), false) => format!(
                    "{}: holds certificate {found}, the profile expects {expected}: restore the file or rerun `cba setup --cert`",
                    path.display(),
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
    let thumbprint_text = thumbprint.clone().unwrap_or_else(|| "(unknown)".into());

    // Graph, with the admin's token.
    if let Some(admin) = &s.admin {
        let (tokens, tid) = connect::admin_tokens(admin, &s.urls, &t.tenant, s.ui).await?;
        if let Some(tid) = tid {
            tenant_id = tid;
        }
        let graph = connect::graph_client(&s.urls, tokens, Duration::from_secs(60), s.ui)?;
        let app_ref = match &t.app_object_id {
            Some(id) => AppRef::ObjectId(id.clone()),
            None => AppRef::AppId(t.app_id.clone()),
        };
        let mut request = StatusRequest::new(app_ref.clone());
        request.thumbprint_sha1 = thumbprint.clone();
        request.roles = t.roles.clone();
        request.replication = s.replication;
        let report = provision::status(&graph, &request).await.map_err(|e| connect::graph_failure(e, "cba status"))?;
        requests += report.requests;
        match &report.application {
            Some(app) => {
                app_name.get_or_insert_with(|| app.display_name.clone());
                checks.push(check("app", Some(true), "graph", format!("{} (appId {})", app.display_name, app.app_id)))
            }
            None => checks.push(check("app", Some(false), "graph", format!("{app_ref} not found: {fix}"))),
        }
        checks.push(match report.certificate_registered {
            Some(true) => {
                check("certificate_registered", Some(true), "graph", format!("thumbprint {thumbprint_text} registered"))
            }
            Some(false) => check(
                "certificate_registered",
                Some(false),
                "graph",
                format!("thumbprint {thumbprint_text} is not registered on the app: {fix}"),
            ),
            None if report.application.is_some() => {
                check("certificate_registered", None, "graph", "certificate not readable")
            }
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
            let cert = ClientCertificate::new(identity, &t.tenant, &t.app_id).map_err(|e| fail(Exit::BadInput, e))?;
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
            let label = |name: &Option<String>| match name {
                Some(name) => format!("{name} (appId {})", t.app_id),
                None => format!("appId {}", t.app_id),
            };
            match result {
                Ok(token) => {
                    if let Ok(decoded) = token.decode() {
                        if let Some(tid) = decoded.claim_str("tid") {
                            tenant_id = tid.to_string();
                        }
                        if let Some(name) = decoded.claim_str("app_displayname") {
                            app_name.get_or_insert_with(|| name.to_string());
                        }
                    }
                    let (roles, wids) = connect::token_claims(&token);
                    let granted = roles.iter().any(|r| r == EXCHANGE_MANAGE_AS_APP);
                    checks.push(check("token", Some(granted), "token", if granted {
                        format!("Exchange token with roles [{}]", roles.join(", "))
                    } else {
                        format!("the Exchange token has no {EXCHANGE_MANAGE_AS_APP} (roles [{}]): {fix} (or wait a minute for replication)", roles.join(", "))
                    }));
                    if !graph_checked {
                        checks.push(check("app", Some(true), "token", label(&app_name)));
                        checks.push(check(
                            "certificate_registered",
                            Some(true),
                            "token",
                            format!("thumbprint {thumbprint_text} accepted"),
                        ));
                        checks.push(check("service_principal", Some(true), "token", "the token was issued"));
                        checks.push(check(
                            "grant",
                            Some(granted),
                            "token",
                            if granted {
                                format!("{EXCHANGE_MANAGE_AS_APP} in roles")
                            } else {
                                format!("{EXCHANGE_MANAGE_AS_APP} missing from roles: {fix}")
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
                                Some(false) => format!("{} missing from wids: {fix}", role_names.join(", ")),
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
                        let fix = format!("{fix}, or wait for replication (`cba status --wait 2m`)");
                        if codes.contains(&700016) {
                            checks.push(no(
                                "app",
                                &format!("AADSTS700016: app {} not found in tenant {}: {fix}", t.app_id, t.tenant),
                            ));
                            checks
                                .extend(["certificate_registered", "service_principal", "grant", "role"].map(unknown));
                        } else if codes.contains(&700027) {
                            checks.push(check("app", Some(true), "token", label(&app_name)));
                            checks.push(no(
                                "certificate_registered",
                                &format!(
                                    "AADSTS700027: certificate {thumbprint_text} not registered (or expired) on the app: {fix}"
                                ),
                            ));
                            checks.extend(["service_principal", "grant", "role"].map(unknown));
                        } else if codes.contains(&7000229) {
                            checks.push(check("app", Some(true), "token", label(&app_name)));
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
        profile: s.profile_path.as_ref().map(|p| p.display().to_string()),
        app_name,
        app_id: t.app_id.clone(),
        tenant_id,
        checks,
        requests,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

fn print(report: &Report, global: &Global) -> anyhow::Result<()> {
    output::print_document(global.output, report, text)
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
    let app = match &r.app_name {
        Some(name) => format!("{name} ({})", r.app_id),
        None => r.app_id.clone(),
    };
    out.push_str(&format!(
        "\n{} ({} of {}, app {app} in tenant {})\n",
        if r.ok { "All checks passed" } else { "Some checks FAILED" },
        r.checks.iter().filter(|c| c.ok == Some(true)).count(),
        r.checks.len(),
        r.tenant_id
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{CertificateRef, Endpoints, RoleAssignment};

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args(argv: &[&str]) -> Args {
        <Cli as clap::Parser>::parse_from(std::iter::once("status").chain(argv.iter().copied())).args
    }

    fn profile() -> Profile {
        let role = wellknown::role_by_name("Exchange Recipient Administrator").unwrap();
        Profile {
            version: 1,
            cloud: "global".into(),
            endpoints: Endpoints { login: String::new(), graph: String::new(), exchange: String::new() },
            incomplete: false,
            tenant_id: "profile-tenant".into(),
            tenant_domain: None,
            app_name: "contoso-exo".into(),
            app_id: "profile-app".into(),
            app_object_id: "profile-object".into(),
            service_principal_id: "profile-sp".into(),
            grant_id: None,
            role_assignments: vec![RoleAssignment {
                role: role.name.into(),
                template_id: role.template_id.into(),
                id: "a".into(),
            }],
            certificate: CertificateRef {
                path: "/p/contoso-exo.pfx".into(),
                cer_path: None,
                thumbprint_sha1: "AB".into(),
                thumbprint_sha256: "CD".into(),
                not_after: String::new(),
                key_id: None,
            },
            previous_certificate: None,
            pending_certificate: None,
        }
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "AZURE_TENANT_ID" => Some("env-tenant".into()),
            "AZURE_CLIENT_ID" => Some("env-app".into()),
            "AZURE_CLIENT_CERTIFICATE_PATH" => Some("/env/cert.pfx".into()),
            _ => None,
        }
    }

    #[test]
    fn flags_then_profile_then_environment() {
        // A profile alone: everything it recorded.
        let t = Target::resolve(&args(&[]), Some(&profile()), env).unwrap();
        assert_eq!((t.tenant.as_str(), t.app_id.as_str()), ("profile-tenant", "profile-app"));
        assert_eq!(t.app_object_id.as_deref(), Some("profile-object"));
        assert_eq!(t.expected_thumbprint.as_deref(), Some("AB"));
        assert_eq!(t.roles[0].name, "Exchange Recipient Administrator");

        // Another app by flag: the profile's ids, certificate expectation and roles do not apply to it.
        let t = Target::resolve(&args(&["--client-id", "other", "--cert", "o.pfx"]), Some(&profile()), env).unwrap();
        assert_eq!((t.tenant.as_str(), t.app_id.as_str()), ("profile-tenant", "other"));
        assert_eq!((t.app_name, t.app_object_id, t.expected_thumbprint), (None, None, None));
        assert_eq!(t.roles, [wellknown::EXCHANGE_ADMINISTRATOR]);

        // No profile: the environment fills what the flags leave, Exchange Administrator unless --role.
        let t = Target::resolve(&args(&["--tenant", "flag-tenant"]), None, env).unwrap();
        assert_eq!(
            (t.tenant.as_str(), t.app_id.as_str(), t.cert_path.to_str().unwrap()),
            ("flag-tenant", "env-app", "/env/cert.pfx")
        );
        assert_eq!(t.roles, [wellknown::EXCHANGE_ADMINISTRATOR]);
        let two = args(&["--role", "security reader", "--role", "Security Reader", "--role", "Global Reader"]);
        let t = Target::resolve(&two, Some(&profile()), env).unwrap();
        assert_eq!(t.roles.iter().map(|r| r.name).collect::<Vec<_>>(), ["Security Reader", "Global Reader"]);

        let e = Target::resolve(&args(&["--tenant", "t"]), None, |_| None).unwrap_err();
        assert!(e.to_string().contains("--client-id (AZURE_CLIENT_ID), --cert"), "{e}");
    }
}
