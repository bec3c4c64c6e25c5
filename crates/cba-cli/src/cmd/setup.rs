//! `cba setup`: certificate → admin sign-in → app, certificate, service principal, grant, role (cba-graph's
//! `provision::apply`) → an Exchange token as proof → the profile → what to run next.
//!
//! Crash safety beyond cba-graph's "list before create": the profile is written (marked incomplete) as soon
//! as the certificate exists and again the moment the app is created, with the app's object id. A rerun
//! with that profile first waits until the app is visible by id and then until the name look-up lists it,
//! so an app created just before a crash is adopted rather than created twice while Entra replicates.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cba_graph::wellknown::{self, Role};
use cba_lifecycle::exchange_roles::{ExchangeRoles, ExchangeSetup};
use cba_lifecycle::{AdminCredential, Credential, SetupReport, SetupRequest};
use serde::Serialize;

use crate::Global;
use crate::certfile::{self as cert, NewCertOptions};
use crate::connect::{self, Ui};
use crate::exit::{Exit, fail};
use crate::output;
use crate::pkcs11::{self, KeyArgs};
use crate::powershell::{self, ConnectExchangeOnline, PfxPassword};
use crate::profile::{CertificateRef, FileStore, Profile};
use crate::secrets::PasswordArgs;
use crate::settings::{self, AdminArgs, EndpointArgs, ExchangeAdminArgs, Urls};

const EXAMPLES: &str = "\
Examples:
  cba setup --tenant contoso.onmicrosoft.com --name contoso-exo            # device-code sign-in
  cba setup --tenant contoso.onmicrosoft.com --name contoso-exo --dry-run  # what would be made
  cba setup --tenant contoso.onmicrosoft.com --name contoso-exo --cert ./exo.pfx \\
      --role 'Exchange Recipient Administrator'
  CBA_PKCS11_PIN=... cba setup --tenant contoso.onmicrosoft.com --name contoso-exo \\
      --key 'pkcs11:token=cba;object=contoso-exo'        # key made in a PKCS#11 token
  cba setup --tenant contoso.onmicrosoft.com --name contoso-exo \\
      --key https://contoso-kv.vault.azure.net/certificates/contoso-exo   # in Azure Key Vault
  # least privilege: an Exchange role group instead of an Entra role (docs/least-privilege.md)
  cba setup --tenant contoso.onmicrosoft.com --name contoso-exo \\
      --exchange-role-group 'View-Only Organization Management'
  cba setup --tenant contoso.onmicrosoft.com --name contoso-exo \\
      --exchange-roles 'Mail Recipients,View-Only Recipients' \\
      --write-scope \"Department -eq 'Sales'\"
  # against `cba sim serve`, with what its JSON line prints (all three URLs: a profile naming
  # the real Exchange next to the simulator's login would send the simulator's tokens there)
  CBA_GRAPH_TOKEN=<admin_token> cba setup --admin token --tenant <tenant_id> --name demo \\
      --authority-host <login_url> --graph-url <graph_url> --exchange-url <exchange_url>

Safe to rerun: it creates only what is missing, and finishes a run that stopped midway. Writes
./NAME.pfx, ./NAME.cer (new certificate) and ./NAME.profile.json (0600, no secrets). With --key the key is
generated in the token (or the one with that label reused), NAME.cer written, and no PFX.";

/// `cba setup` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The tenant: its id (GUID) or primary domain (contoso.onmicrosoft.com).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The app's display name (at most one app may have it); also the certificate's file name.
    #[arg(long, value_name = "APP")]
    pub name: String,
    /// Use this certificate (PFX, or PEM with its key) instead of making one.
    #[arg(long, value_name = "FILE", conflicts_with = "key")]
    pub cert: Option<PathBuf>,
    #[command(flatten)]
    pub new_cert: NewCertOptions,
    #[command(flatten)]
    pub key: KeyArgs,
    /// The Entra role(s) to assign (repeatable; case-insensitive) [default: Exchange Administrator, none
    /// with --exchange-role-group or --exchange-roles].
    #[arg(long = "role", value_name = "NAME")]
    pub roles: Vec<String>,
    /// Least privilege: add the app to this existing Exchange role group ("View-Only Organization
    /// Management", "Recipient Management", "Help Desk", a custom one) instead of assigning an Entra role.
    #[arg(long, value_name = "NAME", conflicts_with = "exchange_roles")]
    pub exchange_role_group: Option<String>,
    /// Least privilege: a custom Exchange role group cba-APP with exactly these roles (comma-separated, e.g.
    /// "Mail Recipients,View-Only Recipients") instead of an Entra role.
    #[arg(long, value_name = "ROLES")]
    pub exchange_roles: Option<String>,
    /// With --exchange-roles: limit the group's writes to the recipients this OPATH filter matches (a
    /// management scope, e.g. "Department -eq 'Sales'").
    #[arg(long, value_name = "OPATH")]
    pub write_scope: Option<String>,
    /// With an Exchange role group: assign the --role Entra role(s) as well (their permissions add up).
    #[arg(long)]
    pub keep_entra_role: bool,
    /// Run Enable-OrganizationCustomization when the tenant needs it for a custom role group (it changes
    /// the whole organization; without --yes setup stops and says so).
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub exchange_admin: ExchangeAdminArgs,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Where to write the profile [default: ./NAME.profile.json] [env: CBA_PROFILE].
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Print what exists and what would be created; write nothing, here or in the tenant.
    #[arg(long)]
    pub dry_run: bool,
    /// A multi-tenant app (signInAudience AzureADMultipleOrgs) for a service provider's customer tenants
    /// (`cba fleet add`); switches an existing single-tenant app. Never switched back.
    #[arg(long)]
    pub multi_tenant: bool,
    /// How long to wait out Entra's replication and Graph's throttling (90s, 5m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = settings::parse_duration)]
    pub wait: Duration,
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// An existing file.
    File { path: PathBuf, password: PasswordArgs },
    /// Make one into the options' folder (or reuse the one a previous run recorded in the profile).
    New(NewCertOptions),
    /// A key in a PKCS#11 token (`--key`): generated there or reused by label, its certificate stored beside
    /// it, NAME.cer written into the options' folder.
    Token { uri: String, module: Option<PathBuf>, options: NewCertOptions },
}

/// Validated settings: what [`execute`] needs (the demo builds these directly).
#[derive(Debug)]
pub struct Settings {
    pub tenant: String,
    pub name: String,
    pub cert: CertSource,
    pub roles: Vec<Role>,
    pub urls: Urls,
    pub admin: AdminCredential,
    pub profile_path: PathBuf,
    pub dry_run: bool,
    pub multi_tenant: bool,
    pub wait: Duration,
    pub ui: Ui,
    /// The Exchange role group, instead of (or with --keep-entra-role, besides) the Entra roles.
    pub exchange: Option<ExchangeSetup>,
}

impl Settings {
    fn from_args(args: Args, global: &Global) -> anyhow::Result<Settings> {
        // Every input is checked before the first file or request.
        cert::check_file_name(&args.name)?;
        cba_lifecycle::check_app_name(&args.name).map_err(|e| fail(Exit::Usage, format!("--name: {e}")))?;
        let tenant = args.tenant.trim().to_string();
        cba_lifecycle::check_tenant(&tenant).map_err(|e| fail(Exit::Usage, format!("--tenant: {e}")))?;
        let cert = match args.cert {
            Some(path) => {
                if args.new_cert.any_given() {
                    return Err(fail(
                        Exit::Usage,
                        "--cert uses an existing certificate: the options for a new one (--out-dir, --days, ...) do not apply",
                    ));
                }
                CertSource::File { path, password: args.new_cert.password.clone() }
            }
            None => match args.key.key {
                Some(uri) => {
                    pkcs11::refuse_pfx_options(&args.new_cert)?;
                    if crate::keyvault::is_vault(&uri) {
                        crate::keyvault::parse_url(&uri)?;
                    } else {
                        pkcs11::parse_uri(&uri)?;
                    }
                    CertSource::Token { uri, module: args.key.pkcs11_module, options: args.new_cert }
                }
                None => CertSource::New(args.new_cert),
            },
        };
        if args.write_scope.is_some() && args.exchange_roles.is_none() {
            return Err(fail(
                Exit::Usage,
                "--write-scope limits the custom role group of --exchange-roles; an existing group \
                 (--exchange-role-group) keeps the scope it has",
            ));
        }
        let exchange_roles = match (&args.exchange_role_group, &args.exchange_roles) {
            (Some(group), _) => Some(ExchangeRoles::Group(group.trim().to_string())),
            (None, Some(list)) => Some(ExchangeRoles::Custom {
                roles: list.split(',').map(|r| r.trim().to_string()).filter(|r| !r.is_empty()).collect(),
                write_scope: args.write_scope.clone(),
            }),
            (None, None) => None,
        };
        if let Some(roles) = &exchange_roles {
            cba_lifecycle::exchange_roles::check(roles).map_err(|e| fail(Exit::Usage, e))?;
            if !args.roles.is_empty() && !args.keep_entra_role {
                return Err(fail(
                    Exit::Usage,
                    "--role with an Exchange role group: their permissions add up, so the Entra role would undo the \
                     least privilege; drop --role, or pass --keep-entra-role to assign both",
                ));
            }
        } else if args.keep_entra_role || args.exchange_admin.exchange_admin.is_some() {
            return Err(fail(
                Exit::Usage,
                "--keep-entra-role and --exchange-admin go with --exchange-role-group or --exchange-roles",
            ));
        }
        let roles = if exchange_roles.is_some() && args.roles.is_empty() && !args.keep_entra_role {
            Vec::new()
        } else if args.roles.is_empty() {
            vec![wellknown::EXCHANGE_ADMINISTRATOR]
        } else {
            let mut roles = Vec::new();
            for name in &args.roles {
                let role = wellknown::role_by_name(name).map_err(|e| fail(Exit::Usage, format!("--role: {e}")))?;
                if !roles.contains(&role) {
                    roles.push(role);
                }
            }
            roles
        };
        let profile_path = settings::profile_path(args.profile)
            .unwrap_or_else(|| PathBuf::from(format!("{}.profile.json", args.name)));
        let existing = FileStore::new(&profile_path).read_if_present()?;
        let urls = Urls::resolve(&args.endpoints, existing.as_ref(), |k| std::env::var(k).ok())?;
        // A profile naming the simulator's login beside the real Exchange host works for nothing.
        output::warn_mixed_hosts(
            global.style,
            &[("--authority-host", &urls.login), ("--graph-url", &urls.graph), ("--exchange-url", &urls.exchange)],
        );
        let admin = args.admin.resolve(|k| std::env::var(k).ok())?;
        let exchange = match exchange_roles {
            Some(roles) => Some(ExchangeSetup {
                roles,
                keep_entra_role: args.keep_entra_role,
                enable_customization: args.yes,
                admin: args.exchange_admin.resolve(Some(&admin), |k| std::env::var(k).ok())?,
            }),
            None => None,
        };
        Ok(Settings {
            tenant,
            name: args.name,
            cert,
            roles,
            urls,
            admin,
            profile_path,
            dry_run: args.dry_run,
            multi_tenant: args.multi_tenant,
            wait: args.wait,
            ui: Ui { style: global.style, all_waits: false },
            exchange,
        })
    }
}

/// The JSON document of `cba setup` (docs/cli-json.md): the library's report and how to use the app.
#[derive(Debug, Clone, Serialize)]
pub struct Document {
    #[serde(flatten)]
    pub report: SetupReport,
    pub next_steps: Option<NextSteps>,
    /// A key in a token, which Exchange's PowerShell module cannot use: the `-AccessToken` line instead of
    /// `next_steps` (docs/keys.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub powershell_access_token: Option<String>,
}

/// How to use the app next (docs/cli-json.md).
#[derive(Debug, Clone, Serialize)]
pub struct NextSteps {
    /// `Connect-ExchangeOnline` with the PFX file on any OS, the password asked for.
    pub powershell: String,
    /// The same for unattended scripts: the password from `$env:CBA_PFX_PASSWORD`.
    pub powershell_unattended: String,
    /// The same with the password in a SecretManagement vault (`Get-Secret -Name APP`).
    pub powershell_secret_management: String,
    /// Windows: import the PFX into the user's store, then connect by thumbprint.
    pub powershell_windows: Vec<String>,
    /// `export AZURE_…` lines for sh (azure-identity, `cba token`, `cba exo`).
    pub environment: Vec<String>,
    /// The same as `$env:AZURE_…='…'` lines for PowerShell.
    pub environment_powershell: Vec<String>,
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let settings = Settings::from_args(args, global)?;
    let document = crate::runtime()?.block_on(execute(&settings))?;
    output::print_document(global.output, &document, text)
}

/// The certificate to register, loaded or made.
struct Loaded {
    credential: Credential,
    reference: CertificateRef,
    new: bool,
}

fn load_certificate(s: &Settings, profile: Option<&Profile>) -> anyhow::Result<Loaded> {
    let open = |path: &Path, password: &PasswordArgs, cer: Option<PathBuf>| -> anyhow::Result<Loaded> {
        let bytes = crate::fsutil::read(path)?;
        let identity = cert::open(path, &bytes, password)?;
        let reference = CertificateRef::new(&identity.certificate, path.to_path_buf(), cer);
        Ok(Loaded { credential: identity.into(), reference, new: false })
    };
    match &s.cert {
        CertSource::File { path, password } => open(path, password, None),
        CertSource::Token { uri, module, options } => {
            let cer = options.out_dir.join(format!("{}.cer", s.name));
            if s.dry_run {
                // Nothing is made in the token: the profile's key if it names one, else a stand-in for the plan.
                if let Some(p) = profile.filter(|p| p.certificate.key.is_some()) {
                    return recorded_token_key(p);
                }
                return in_memory(&s.name, cer.clone(), cer);
            }
            if crate::keyvault::is_vault(uri) {
                let made = crate::keyvault::make_certificate(&s.name, options, uri)?;
                if !made.reused {
                    s.ui.detail(&format!(
                        "created {} in the vault (key not exportable); wrote {}",
                        made.certificate.url,
                        made.cer_path.display()
                    ));
                }
                let mut reference = CertificateRef::new(&made.certificate.certificate, made.cer_path, None);
                reference.key = Some(made.profile_url);
                reference.created = !made.reused || profile.is_some_and(|p| p.certificate.created);
                let credential = Credential::with_signer(made.certificate.certificate, made.signer);
                return Ok(Loaded { credential, reference, new: !made.reused });
            }
            let made = pkcs11::make_certificate(&s.name, options, uri, module.as_deref())?;
            if !made.reused {
                s.ui.detail(&format!("generated the key in the token; wrote {}", made.cer_path.display()));
            }
            let mut reference = CertificateRef::new(&made.certificate, made.cer_path, None);
            reference.key = Some(made.profile_uri);
            // The .cer is ours to delete when this run or the one the profile records wrote it.
            reference.created = !made.reused || profile.is_some_and(|p| p.certificate.created);
            let credential = Credential::with_signer(made.certificate, Arc::new(made.key));
            Ok(Loaded { credential, reference, new: !made.reused })
        }
        CertSource::New(options) => {
            if let Some(p) = profile.filter(|p| p.certificate.key.is_some()) {
                // A previous run used a token key: keep using it.
                return recorded_token_key(p);
            }
            if let Some(p) = profile {
                // A previous run made (or was given) the certificate: keep using it.
                let mut loaded = open(&p.certificate.path, &options.password, p.certificate.cer_path.clone())?;
                loaded.reference.created = p.certificate.created;
                return Ok(loaded);
            }
            let pfx = options.out_dir.join(format!("{}.pfx", s.name));
            let cer = options.out_dir.join(format!("{}.cer", s.name));
            if s.dry_run {
                // Only to compute the plan: generated in memory, never written.
                return in_memory(&s.name, pfx, cer);
            }
            if pfx.exists() && !options.force {
                return Err(fail(
                    Exit::BadInput,
                    format!(
                        "{} already exists and no profile names it: pass --cert {} to register it, or --force to replace it",
                        pfx.display(),
                        pfx.display()
                    ),
                ));
            }
            let made = cert::make_certificate(&s.name, options, s.ui.style)?;
            s.ui.detail(&format!("wrote {} and {}", made.pfx_path.display(), made.cer_path.display()));
            let reference =
                CertificateRef::new(&made.identity.certificate, made.pfx_path, Some(made.cer_path)).created_by_cba();
            Ok(Loaded { credential: made.identity.into(), reference, new: true })
        }
    }
}

/// The token key a profile records, with the certificate stored beside it.
fn recorded_token_key(p: &Profile) -> anyhow::Result<Loaded> {
    let uri = p.certificate.key.as_deref().expect("the caller checked");
    let key = crate::keyvault::open_key(uri, None)?;
    let credential = Credential::with_signer(key.certificate, key.signer);
    Ok(Loaded { credential, reference: p.certificate.clone(), new: false })
}

/// A dry run's certificate: made in memory to compute the plan, never written.
fn in_memory(name: &str, path: PathBuf, cer: PathBuf) -> anyhow::Result<Loaded> {
    let identity = cba_cert::generate(&cba_cert::NewCertificate::new(name)).map_err(|e| fail(Exit::Internal, e))?;
    let reference = CertificateRef::new(&identity.certificate, path, Some(cer));
    Ok(Loaded { credential: identity.into(), reference, new: true })
}

/// Steps 1–10. Writes nothing (local or remote) when `dry_run`.
pub async fn execute(s: &Settings) -> anyhow::Result<Document> {
    let store = FileStore::new(&s.profile_path);
    let existing = store.read_if_present()?;
    if let Some(p) = &existing
        && !p.app_name.eq_ignore_ascii_case(&s.name)
    {
        return Err(connect::lifecycle_failure(cba_lifecycle::Error::ProfileOfOtherApp {
            store: store.path.display().to_string(),
            profile_app: p.app_name.clone(),
            requested: s.name.clone(),
        }));
    }

    // 1. The certificate.
    s.ui.step(if s.dry_run { "1/5 certificate (dry run: nothing is written)" } else { "1/5 certificate" });
    let loaded = load_certificate(s, existing.as_ref())?;
    let services = connect::services(&s.urls, s.ui)?;
    let request = SetupRequest {
        tenant: s.tenant.clone(),
        name: s.name.clone(),
        roles: s.roles.clone(),
        credential: loaded.credential,
        certificate: loaded.reference,
        new_certificate: loaded.new,
        dry_run: s.dry_run,
        multi_tenant: s.multi_tenant,
        wait: s.wait,
        exchange: s.exchange.clone(),
    };
    let report =
        cba_lifecycle::setup(&services, &store, &s.admin, &request).await.map_err(connect::lifecycle_failure)?;
    if report.dry_run {
        return Ok(Document { report, next_steps: None, powershell_access_token: None });
    }
    let profile = store.read()?;
    if profile.certificate.key.is_some() {
        let line = access_token_line(&profile, &s.profile_path, &s.urls);
        return Ok(Document { report, next_steps: None, powershell_access_token: Some(line) });
    }
    Ok(Document { report, next_steps: Some(next_steps(&profile, &s.urls)), powershell_access_token: None })
}

/// `Connect-ExchangeOnline -AccessToken (cba token --profile P) -Organization …`: what PowerShell can do with
/// a key it cannot read (module 3.1+).
pub fn access_token_line(profile: &Profile, profile_path: &Path, urls: &Urls) -> String {
    let organization = powershell::organization(profile.tenant_domain.as_deref())
        .unwrap_or_else(|| powershell::placeholder_organization(urls.cloud).to_string());
    let path = std::path::absolute(profile_path).unwrap_or_else(|_| profile_path.to_path_buf());
    let mut line = format!(
        "Connect-ExchangeOnline -AccessToken (cba token --profile {}) -Organization {}",
        powershell::quote(&path.display().to_string()),
        powershell::word(&organization)
    );
    if let Some(environment) = powershell::exchange_environment(urls.cloud) {
        line.push_str(&format!(" -ExchangeEnvironmentName {environment}"));
    }
    line
}

/// Step 10: how to use the app from PowerShell and from scripts. The organization is the profile's
/// `tenant_domain` when it is the tenant's `*.onmicrosoft.com` domain, else a placeholder (and a note).
pub fn next_steps(profile: &Profile, urls: &Urls) -> NextSteps {
    let organization = powershell::organization(profile.tenant_domain.as_deref());
    if organization.is_none() {
        output::info(format!(
            "note: the Connect-ExchangeOnline lines below say -Organization {}: put the tenant's initial domain \
             there (Entra admin center → Domain names, the one ending in .onmicrosoft.com)",
            powershell::placeholder_organization(urls.cloud)
        ));
    }
    let pfx = std::path::absolute(&profile.certificate.path).unwrap_or_else(|_| profile.certificate.path.clone());
    let connect = ConnectExchangeOnline {
        app_id: Some(profile.app_id.clone()),
        certificate: Some(pfx.clone()),
        organization,
        cloud: urls.cloud,
    };
    let pfx = pfx.display().to_string();
    let mut variables = vec![
        ("AZURE_TENANT_ID", profile.tenant_id.clone()),
        ("AZURE_CLIENT_ID", profile.app_id.clone()),
        ("AZURE_CLIENT_CERTIFICATE_PATH", pfx.clone()),
    ];
    if urls.login != urls.cloud.login_root() || urls.cloud != cba_token::Cloud::Global {
        variables.push(("AZURE_AUTHORITY_HOST", urls.login.clone()));
    }
    let password_note = "the PFX password (cba also reads CBA_PFX_PASSWORD)";
    let mut environment: Vec<String> =
        variables.iter().map(|(k, v)| format!("export {k}={}", crate::cmd::token::shell_quote(v))).collect();
    environment.insert(3, format!("export AZURE_CLIENT_CERTIFICATE_PASSWORD=...   # {password_note}"));
    let mut environment_powershell: Vec<String> =
        variables.iter().map(|(k, v)| powershell::env_assignment(k, v)).collect();
    environment_powershell.insert(3, format!("$env:AZURE_CLIENT_CERTIFICATE_PASSWORD='...'   # {password_note}"));
    NextSteps {
        powershell: connect.with_file(PfxPassword::Prompt),
        powershell_unattended: connect.with_file(PfxPassword::Env("CBA_PFX_PASSWORD")),
        powershell_secret_management: connect.with_file(PfxPassword::Secret(&profile.app_name)),
        powershell_windows: vec![
            connect.import_pfx(PfxPassword::Prompt),
            connect.with_thumbprint(&profile.certificate.thumbprint_sha1),
        ],
        environment,
        environment_powershell,
    }
}

/// The report for people.
pub fn text(d: &Document) -> String {
    let r = &d.report;
    let none = || "-".to_string();
    let mut fields: Vec<(&str, String)> = vec![
        ("app", r.app_name.clone()),
        ("app id", r.app_id.clone().unwrap_or_else(none)),
        ("object id", r.app_object_id.clone().unwrap_or_else(none)),
        (
            "tenant",
            match &r.tenant_domain {
                Some(d) => format!("{} ({d})", r.tenant_id),
                None => r.tenant_id.clone(),
            },
        ),
        ("service principal", r.service_principal_id.clone().unwrap_or_else(none)),
        (
            "sign-in",
            match (r.multi_tenant, r.switched_to_multi_tenant, r.dry_run) {
                (true, true, true) => "would switch from single-tenant to multi-tenant (AzureADMultipleOrgs)".into(),
                (true, true, false) => "switched from single-tenant to multi-tenant (AzureADMultipleOrgs)".into(),
                (true, false, _) => {
                    "multi-tenant (AzureADMultipleOrgs): add customer tenants with `cba fleet add`".into()
                }
                (false, ..) => "single tenant".into(),
            },
        ),
        (
            "Exchange.ManageAsApp",
            r.grant_id.clone().map(|g| format!("granted ({g})")).unwrap_or_else(|| "not granted".into()),
        ),
    ];
    for role in &r.role_assignments {
        fields.push((
            "role",
            match &role.assignment_id {
                Some(id) => format!("{} ({id})", role.role),
                None => format!("{} (not assigned)", role.role),
            },
        ));
    }
    fields.push((
        "certificate",
        format!(
            "{}{} {}, until {}",
            r.certificate.path.clone().unwrap_or_default(),
            if r.dry_run && r.certificate.new { " (would be made)" } else { "" },
            r.certificate.thumbprint_sha1,
            r.certificate.not_after
        ),
    ));
    if let Some(p) = &r.profile {
        fields.push(("profile", p.clone()));
    }
    if r.dry_run {
        fields.push(("would create", if r.created.is_empty() { "nothing".into() } else { r.created.join(", ") }));
        fields.push(("exists", if r.unchanged.is_empty() { "nothing".into() } else { r.unchanged.join(", ") }));
        if let Some(x) = &r.exchange {
            let list = |v: &[String]| if v.is_empty() { "nothing".to_string() } else { v.join(", ") };
            fields.push(("exchange group", format!("{} [{}]", x.role_group, x.roles.join(", "))));
            fields.push(("exchange: would create", list(&x.created)));
            fields.push(("exchange: exists", list(&x.unchanged)));
        }
    } else {
        fields.push((
            "created",
            if r.created.is_empty() {
                "nothing (everything was already in place)".into()
            } else {
                r.created.join(", ")
            },
        ));
        if let Some(roles) = &r.token_roles {
            fields.push(("proof", format!("Exchange token with roles [{}]", roles.join(", "))));
        }
        if let Some(x) = &r.exchange {
            fields.push((
                "exchange group",
                format!(
                    "{}{} [{}]",
                    x.role_group,
                    if x.role_group_created { " (made by cba)" } else { "" },
                    x.roles.join(", ")
                ),
            ));
            if let (Some(scope), Some(filter)) = (&x.scope, &x.write_scope) {
                fields.push(("write scope", format!("{scope}: {filter}")));
            }
            fields.push(("exchange sp", x.service_principal.clone()));
            if let Some(cmdlet) = &x.proof_cmdlet {
                fields.push((
                    "exchange proof",
                    format!(
                        "the app ran {cmdlet} ({:.1} s for Exchange to apply the group)",
                        x.rbac_wait_ms as f64 / 1000.0
                    ),
                ));
            }
        }
    }
    fields.push(("requests", format!("{} (round-trip depth {}, {} ms)", r.requests, r.round_trip_depth, r.elapsed_ms)));
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in &fields {
        out.push_str(&format!("{k:<width$}  {v}\n"));
    }
    if r.dry_run {
        out.push_str("\nDry run: nothing was written, here or in the tenant. Run again without --dry-run to apply.\n");
    } else if !r.changed {
        out.push_str("\nNothing changed: the setup was already complete.\n");
    }
    if let Some(line) = &d.powershell_access_token {
        out.push_str(
            "\nNext: the key stays in the token, which Exchange Online PowerShell cannot use; connect with a \
             token from cba (module 3.1+)\n  ",
        );
        out.push_str(line);
        out.push('\n');
    }
    if let Some(n) = &d.next_steps {
        out.push_str("\nNext: Exchange Online PowerShell on any OS\n  ");
        out.push_str(&n.powershell);
        out.push_str(&format!(
            "\nUnattended: the password in $env:CBA_PFX_PASSWORD, or in a SecretManagement vault \
             (once: Set-Secret -Name {} -Secret (Read-Host -AsSecureString -Prompt 'PFX password'))\n",
            powershell::word(&r.app_name)
        ));
        out.push_str(&format!("  {}\n  {}\n", n.powershell_unattended, n.powershell_secret_management));
        out.push_str("On Windows, with the certificate in the user's store\n");
        for line in &n.powershell_windows {
            out.push_str(&format!("  {line}\n"));
        }
        out.push_str("Scripts and SDKs (azure-identity, `cba token`, `cba exo`)\n");
        for line in &n.environment {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}
