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
use std::time::Duration;

use cba_graph::Replication;
use cba_graph::wellknown::{self, Role};
use cba_lifecycle::AdminCredential;
use cba_lifecycle::exchange_roles::ExchangeAdminCredential;
use cba_lifecycle::profile::ExchangeProfile;
use cba_lifecycle::status::{CertificateInput, Remedy, StatusReport, StatusRequest};

use crate::Global;
use crate::certfile as cert;
use crate::cmd::token::Credentials;
use crate::connect::{self, Ui};
use crate::exit::{Exit, fail};
use crate::output;
use crate::profile::{FileStore, Profile};
use crate::secrets::PasswordArgs;
use crate::settings::{self, AdminArgs, AppArgs, EndpointArgs, ExchangeAdminArgs, Urls};

const EXAMPLES: &str = "\
Examples:
  cba status --profile contoso-exo.profile.json           # from the token alone: no admin needed
  cba status --profile contoso-exo.profile.json --admin device-code   # also every object in Graph
  CBA_PROFILE=contoso-exo.profile.json cba status --output json
  cba status --profile contoso-exo.profile.json --exchange-admin device-code   # + role group
  cba status --tenant contoso.onmicrosoft.com --client-id 631a96bc-... --cert contoso-exo.pfx
  AZURE_TENANT_ID=... AZURE_CLIENT_ID=... AZURE_CLIENT_CERTIFICATE_PATH=contoso-exo.pfx \\
      cba status --admin device-code --role 'Exchange Recipient Administrator'

A profile with an Exchange role group (setup --exchange-role-group or --exchange-roles) adds the
exchange_* checks: service principal, membership, roles and scope, read with the administrator's
Exchange sign-in (--exchange-admin, or CBA_EXO_ADMIN_TOKEN), else with the app's own token, which
usually may not read them (then unconfirmed: exit 7); exchange_access runs a read cmdlet as the app.

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
    /// The app's key in a PKCS#11 token or a Key Vault instead of --cert: pkcs11:token=…;object=… or
    /// https://VAULT.vault.azure.net/certificates/NAME (docs/keys.md; the PKCS#11 module from the URI's
    /// module-path, --pkcs11-module or CBA_PKCS11_MODULE).
    #[arg(long, value_name = "URI", conflicts_with = "cert")]
    pub key: Option<String>,
    /// The PKCS#11 module (shared library) for --key or the profile's key [env: CBA_PKCS11_MODULE; or the
    /// URI's module-path].
    #[arg(long, value_name = "PATH")]
    pub pkcs11_module: Option<PathBuf>,
    /// The Entra role(s) the app should hold (repeatable; case-insensitive) [default: the profile's, else
    /// Exchange Administrator].
    #[arg(long = "role", value_name = "NAME")]
    pub roles: Vec<String>,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub exchange_admin: ExchangeAdminArgs,
    /// Keep trying the token through replication (AADSTS700016/700027) for up to DURATION [default: one try].
    #[arg(long, value_name = "DURATION", value_parser = settings::parse_duration)]
    pub wait: Option<Duration>,
    /// Accepted like `cba token --no-cache` and `cba exo --no-cache`; `cba status` never reads or writes the
    /// token cache anyway: every check uses a fresh token.
    #[arg(long)]
    pub no_cache: bool,
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
    /// The key is in a PKCS#11 token (a profile's `certificate.key`): `cert_path` is then only its `.cer`.
    pub key: Option<String>,
    /// `--pkcs11-module`, for a `pkcs11:` key.
    pub pkcs11_module: Option<PathBuf>,
    /// The thumbprint the profile expects the file to hold (without a profile: whatever the file holds).
    pub expected_thumbprint: Option<String>,
    pub roles: Vec<Role>,
    /// The Exchange role group the profile records (checked in Exchange).
    pub exchange: Option<ExchangeProfile>,
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
            key: p.certificate.key.clone(),
            pkcs11_module: None,
            expected_thumbprint: Some(p.certificate.thumbprint_sha1.clone()),
            // An Exchange role group instead of an Entra role: no role to find.
            roles: if roles.is_empty() && p.exchange.is_none() {
                vec![wellknown::EXCHANGE_ADMINISTRATOR]
            } else {
                roles
            },
            exchange: p.exchange.clone(),
        }
    }

    /// Flags, then the profile, then AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_CERTIFICATE_PATH. The
    /// profile's ids and expected thumbprint apply only to its own app and certificate.
    pub fn resolve(
        args: &Args,
        profile: Option<&Profile>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Target> {
        let flags = Credentials {
            key: args.key.clone(),
            pkcs11_module: args.pkcs11_module.clone(),
            ..Credentials::from_app_args(&args.app)
        };
        let creds = flags.or(profile.map(Credentials::from_profile).unwrap_or_default()).or(Credentials::from_env(env));
        let missing: Vec<&str> = [
            (creds.tenant.is_none(), "--tenant (AZURE_TENANT_ID)"),
            (creds.client_id.is_none(), "--client-id (AZURE_CLIENT_ID)"),
            (creds.cert.is_none() && creds.key.is_none(), "--cert (AZURE_CLIENT_CERTIFICATE_PATH) or --key"),
        ]
        .into_iter()
        .filter_map(|(absent, what)| absent.then_some(what))
        .collect();
        // A key (--key or the profile's): the profile's `path` is its `.cer`; without a profile there is none.
        let key = creds.key.clone();
        let cert_path = creds
            .cert
            .or_else(|| key.as_ref().map(|_| profile.map(|p| p.certificate.path.clone()).unwrap_or_default()));
        let (Some(tenant), Some(app_id), Some(cert_path)) = (creds.tenant, creds.client_id, cert_path) else {
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
                key: None,
                pkcs11_module: None,
                expected_thumbprint: None,
                roles: vec![wellknown::EXCHANGE_ADMINISTRATOR],
                exchange: None,
            },
        };
        if !target.app_id.eq_ignore_ascii_case(&app_id) {
            // Another app than the profile's: none of its ids or roles apply.
            target.app_name = None;
            target.app_object_id = None;
            target.roles = vec![wellknown::EXCHANGE_ADMINISTRATOR];
            target.exchange = None;
        }
        if target.cert_path != cert_path {
            target.expected_thumbprint = None;
        }
        target.tenant = tenant.trim().to_string();
        target.app_id = app_id.trim().to_string();
        target.cert_path = cert_path;
        target.key = key;
        target.pkcs11_module = creds.pkcs11_module.clone();
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
    pub admin: Option<AdminCredential>,
    pub wait: Option<Duration>,
    /// [`Replication::Expected`] only right after a setup (the demo): a grant or role assignment Graph does
    /// not list yet is then waited out instead of reported missing.
    pub replication: Replication,
    pub ui: Ui,
    /// Read the Exchange role group with the administrator's Exchange sign-in (else with the app's own token).
    pub exchange_admin: Option<ExchangeAdminCredential>,
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let env = |k: &str| std::env::var(k).ok();
    let profile = match settings::profile_path(args.app.profile.clone()) {
        Some(path) => {
            let store = FileStore::new(path.clone());
            let profile = store.read()?;
            store.require_complete(&profile)?;
            Some((path, profile))
        }
        None => None,
    };
    let target = Target::resolve(&args, profile.as_ref().map(|(_, p)| p), env)?;
    let urls = Urls::resolve(&args.endpoints, profile.as_ref().map(|(_, p)| p), env)?;
    let admin = if args.admin.given() { Some(args.admin.resolve(env)?) } else { None };
    let exchange_admin =
        if args.exchange_admin.given(env) { Some(args.exchange_admin.resolve(admin.as_ref(), env)?) } else { None };
    let settings = Settings {
        profile_path: profile.map(|(path, _)| path),
        target,
        password: args.app.password,
        urls,
        admin,
        wait: args.wait,
        replication: Replication::NotExpected,
        ui: Ui { style: global.style, all_waits: false },
        exchange_admin,
    };
    let report = crate::runtime()?.block_on(execute(&settings))?;
    output::print_document(global.output, &report, text)?;
    verdict(&report)
}
/// Exit 7 naming the failed checks.
pub fn verdict(report: &StatusReport) -> anyhow::Result<()> {
    let failed = report.failed();
    if failed.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = failed.iter().map(|c| format!("{} ({})", c.check, c.detail)).collect();
    Err(fail(Exit::Verify, format!("{} check(s) failed: {}", failed.len(), names.join("; "))))
}

/// Run every check (cba-lifecycle's diagnosis), then say in each failed check what to run.
pub async fn execute(s: &Settings) -> anyhow::Result<StatusReport> {
    let t = &s.target;
    let path = &t.cert_path;
    let (location, loaded) = match &t.key {
        Some(uri) => (uri.clone(), token_credential(uri, t.pkcs11_module.as_deref()).map_err(|e| format!("{e:#}"))),
        None => (
            path.display().to_string(),
            crate::fsutil::read(path)
                .and_then(|bytes| cert::open(path, &bytes, &s.password))
                .map(Into::into)
                .map_err(|e| format!("{e:#}")),
        ),
    };
    let app_credential = loaded.as_ref().ok().cloned();
    let request = StatusRequest {
        tenant: t.tenant.clone(),
        app_id: t.app_id.clone(),
        app_name: t.app_name.clone(),
        app_object_id: t.app_object_id.clone(),
        certificate: CertificateInput { location, loaded },
        expected_thumbprint: t.expected_thumbprint.clone(),
        roles: t.roles.clone(),
        wait: s.wait,
        replication: s.replication,
        from_profile: s.profile_path.is_some(),
    };
    let services = connect::services(&s.urls, s.ui)?;
    let mut report = cba_lifecycle::status(
        &services,
        s.admin.as_ref(),
        &request,
        s.profile_path.as_ref().map(|p| p.display().to_string()),
    )
    .await
    .map_err(connect::lifecycle_failure)?;
    if let Some(recorded) = &t.exchange {
        let checks = cba_lifecycle::exchange_roles::status_checks(
            &services,
            s.exchange_admin.as_ref(),
            app_credential.as_ref(),
            &report.tenant_id,
            &t.app_id,
            recorded,
        )
        .await
        .map_err(connect::lifecycle_failure)?;
        report.add_checks(checks);
    }
    for check in &mut report.checks {
        if let Some(remedy) = check.remedy {
            check.detail = format!("{}: {}", check.detail, remedy_text(remedy));
        }
    }
    Ok(report)
}

/// The key in the token and the certificate stored beside it.
fn token_credential(uri: &str, module: Option<&std::path::Path>) -> anyhow::Result<cba_lifecycle::Credential> {
    let key = crate::keyvault::open_key(uri, module)?;
    Ok(cba_lifecycle::Credential::with_signer(key.certificate, key.signer))
}

/// A remedy as the command to run.
fn remedy_text(remedy: Remedy) -> &'static str {
    match remedy {
        Remedy::Setup => "rerun `cba setup` with this profile",
        Remedy::SetupApp => "run `cba setup` for this app",
        Remedy::SetupOrWait => "rerun `cba setup`, or wait for replication (`cba status --wait 2m`)",
        Remedy::Rotate => "`cba cert rotate`",
        Remedy::RotateWithAdmin => "run `cba cert rotate --admin ...`",
        Remedy::RestoreCertificate => "restore the file or rerun `cba setup --cert`",
        Remedy::CheckWithAdmin => "check with --admin (Exchange links: --exchange-admin)",
        _ => "see `cba status --help`",
    }
}

/// The table for people.
pub fn text(r: &StatusReport) -> String {
    let label = |c: &cba_lifecycle::status::Check| match (c.ok, c.warning) {
        (Some(true), false) => "ok",
        (Some(true), true) => "warning",
        (Some(false), _) => "FAILED",
        (None, _) => "unknown",
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
    use crate::profile::{CertificateRef, Endpoints};
    use cba_lifecycle::profile::RoleAssignment;

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
            updated_at: None,
            tenant_id: "profile-tenant".into(),
            tenant_domain: None,
            app_name: "contoso-exo".into(),
            app_unique_name: None,
            app_id: "profile-app".into(),
            multi_tenant: false,
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
                key: None,
                key_id: None,
                created: false,
            },
            previous_certificate: None,
            pending_certificate: None,
            retired: Vec::new(),
            exchange: None,
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
