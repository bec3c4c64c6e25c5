//! `cba fleet add|status|remove` and `cba exo invoke --fleet`: one multi-tenant app and one certificate for
//! many customer tenants (docs/fleet.md). Glue over `cba_lifecycle::fleet`; the fleet file is `fleetfile.rs`.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cba_graph::wellknown::{self, Role};
use cba_lifecycle::exchange_roles::{ExchangeAdminCredential, ExchangeRoles, ExchangeSetup};
use cba_lifecycle::fleet::{
    self, AddReport, CustomerTenant, FanOutEvent, Fleet, FleetStatus, RemoveReport, TenantHealth,
};
use cba_lifecycle::{Credential, Profile};
use futures::StreamExt as _;

use crate::Global;
use crate::certfile as cert;
use crate::connect::{self, Ui};
use crate::exit::{Exit, fail};
use crate::fleetfile::{self, FleetFile};
use crate::output::{self, OutputFormat};
use crate::profile::FileStore;
use crate::secrets::PasswordArgs;
use crate::settings::{self, AdminArgs, EndpointArgs, ExchangeAdminArgs, Urls};

const EXAMPLES: &str = "\
Examples:
  cba setup --multi-tenant --tenant provider.onmicrosoft.com --name msp-exo
  CBA_GRAPH_TOKEN=<customer_admin_token> cba fleet add \\
      --profile msp-exo.profile.json --tenant customer.onmicrosoft.com
  cba fleet add --profile msp-exo.profile.json \\
      --tenant customer.onmicrosoft.com --wait        # the admin-consent URL
  # least privilege: an Exchange role group in the customer tenant, no Entra role
  CBA_GRAPH_TOKEN=<customer_admin_token> CBA_EXO_ADMIN_TOKEN=<customer_exchange_admin_token> \\
    cba fleet add --profile msp-exo.profile.json --tenant customer.onmicrosoft.com \\
      --exchange-role-group 'View-Only Organization Management'
  cba fleet status --profile msp-exo.profile.json --output csv
  cba exo invoke Get-OrganizationConfig --fleet msp-exo.fleet.json --all

The fleet file is NAME.fleet.json beside the home profile (or --fleet FILE):
0600, locked while written, so several `cba fleet add` for different tenants
may run at once. docs/fleet.md has the walkthrough.";

/// `cba fleet` subcommands.
#[derive(Debug, clap::Subcommand)]
#[command(after_help = EXAMPLES)]
pub enum Command {
    /// Onboard a customer tenant: service principal, Exchange.ManageAsApp, role, proof (or the consent URL).
    Add(AddArgs),
    /// Check every customer tenant: consent, grant, role, token, Exchange; exit 7 when any is broken.
    Status(StatusArgs),
    /// Take the app out of a customer tenant (with its admin's sign-in), or say how the customer does.
    Remove(RemoveArgs),
}

/// The home profile and the fleet file.
#[derive(Debug, Clone, clap::Args)]
pub struct HomeArgs {
    /// The home profile (`cba setup --multi-tenant` wrote it) [env: CBA_PROFILE].
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// The fleet file [default: NAME.fleet.json beside the profile].
    #[arg(long, value_name = "FILE")]
    pub fleet: Option<PathBuf>,
    #[command(flatten)]
    pub password: PasswordArgs,
}

/// `cba fleet add` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
With --admin (or CBA_GRAPH_TOKEN set): the customer admin's sign-in, confirmed to act in --tenant
before anything is written. Without either: no sign-in; the admin-consent URL for that tenant is
printed (and with --wait, cba waits until the consent shows up). Safe to rerun.")]
pub struct AddArgs {
    #[command(flatten)]
    pub home: HomeArgs,
    /// The customer tenant: its id (GUID) or domain (customer.onmicrosoft.com).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The Entra role(s) to assign there (repeatable) [default: Exchange Administrator, none with
    /// --exchange-role-group or --exchange-roles].
    #[arg(long = "role", value_name = "NAME")]
    pub roles: Vec<String>,
    /// Least privilege: add the app to this existing Exchange role group of the customer tenant ("View-Only
    /// Organization Management", "Recipient Management", "Help Desk") instead of an Entra role.
    #[arg(long, value_name = "NAME", conflicts_with = "exchange_roles")]
    pub exchange_role_group: Option<String>,
    /// Least privilege: a custom Exchange role group cba-APP in the customer tenant with exactly these roles
    /// (comma-separated, e.g. "Mail Recipients,View-Only Recipients") instead of an Entra role.
    #[arg(long, value_name = "ROLES")]
    pub exchange_roles: Option<String>,
    /// With --exchange-roles: limit the group's writes to the recipients this OPATH filter matches.
    #[arg(long, value_name = "OPATH", requires = "exchange_roles")]
    pub write_scope: Option<String>,
    /// With an Exchange role group: assign the --role Entra role(s) as well (their permissions add up).
    #[arg(long)]
    pub keep_entra_role: bool,
    /// Run Enable-OrganizationCustomization in the customer tenant when a custom role group needs it.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub exchange_admin: ExchangeAdminArgs,
    /// The customer admin's Graph sign-in (as `cba setup`); without it and without CBA_GRAPH_TOKEN, the
    /// admin-consent URL is printed instead.
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Without an admin sign-in: wait this long for the customer's consent (default 15m when given bare);
    /// with one: how long to wait out replication [default: 5m].
    #[arg(long, value_name = "DURATION", num_args = 0..=1, default_missing_value = "15m",
          value_parser = settings::parse_duration)]
    pub wait: Option<Duration>,
}

/// `cba fleet status` flags.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub home: HomeArgs,
    /// Only these tenants (ids or domains, comma-separated).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub tenants: Vec<String>,
    /// Tenants checked at once.
    #[arg(long, value_name = "N", default_value_t = fleet::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// A tenant that has not answered within this long is reported unconfirmed (retries included).
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = settings::parse_duration)]
    pub tenant_timeout: Duration,
    /// Reads the Exchange role group links of the tenants that record one (a CBA_EXO_ADMIN_TOKEN is used
    /// only in the tenant that issued it); without it those links are unconfirmed.
    #[command(flatten)]
    pub exchange_admin: ExchangeAdminArgs,
}

/// `cba fleet remove` flags.
#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    pub home: HomeArgs,
    /// The customer tenant (id or domain, as in the fleet file).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The customer admin's Graph sign-in; without it the customer is told how to remove the app.
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The customer admin's Exchange sign-in, for an entry that records an Exchange role group.
    #[command(flatten)]
    pub exchange_admin: ExchangeAdminArgs,
}

pub fn run(cmd: Command, global: &Global) -> anyhow::Result<()> {
    match cmd {
        Command::Add(a) => add(a, global),
        Command::Status(a) => status(a, global),
        Command::Remove(a) => remove(a, global),
    }
}

/// The home profile, its fleet file and what to reach them with.
pub struct Home {
    pub profile: Profile,
    pub profile_path: PathBuf,
    pub file: FleetFile,
    pub urls: Urls,
}

impl Home {
    /// From `--profile`/CBA_PROFILE (the fleet file beside it unless `--fleet`), or from `--fleet` alone (the
    /// profile it names).
    pub fn resolve(args: &HomeArgs) -> anyhow::Result<Home> {
        let (profile_path, file) = match (settings::profile_path(args.profile.clone()), &args.fleet) {
            (Some(p), Some(f)) => (p, FleetFile::new(f)),
            (Some(p), None) => {
                let f = fleetfile::default_path(&p);
                (p, FleetFile::new(f))
            }
            (None, Some(f)) => {
                let file = FleetFile::new(f);
                let fleet = file.require()?;
                (resolve_beside(&file.path, Path::new(&fleet.home.profile)), file)
            }
            (None, None) => {
                return Err(fail(
                    Exit::Usage,
                    "no home profile: pass --profile FILE (written by `cba setup --multi-tenant`) or --fleet FILE",
                ));
            }
        };
        let store = FileStore::new(&profile_path);
        let profile = store.read()?;
        store.require_complete(&profile)?;
        if !profile.multi_tenant {
            return Err(connect::lifecycle_failure(cba_lifecycle::Error::NotMultiTenant {
                app_name: profile.app_name.clone(),
                app_id: profile.app_id.clone(),
            }));
        }
        if let Some(fleet) = file.read()?
            && !fleet.home.app_id.eq_ignore_ascii_case(&profile.app_id)
        {
            return Err(fail(
                Exit::BadInput,
                format!(
                    "{} is the fleet of app {:?} ({}), but the profile {} names app {:?} ({}): pass the matching \
                     --profile, or another --fleet",
                    file.path.display(),
                    fleet.home.app_name,
                    fleet.home.app_id,
                    profile_path.display(),
                    profile.app_name,
                    profile.app_id
                ),
            ));
        }
        let urls = Urls::resolve(&EndpointArgs::default(), Some(&profile), |k| std::env::var(k).ok())?;
        Ok(Home { profile, profile_path, file, urls })
    }

    /// How the fleet file names the profile: relative to the fleet file's folder when it is in it.
    fn location(&self) -> String {
        let folder = std::path::absolute(self.file.path.parent().unwrap_or(Path::new("."))).ok();
        let profile = std::path::absolute(&self.profile_path).unwrap_or_else(|_| self.profile_path.clone());
        match folder.and_then(|f| profile.strip_prefix(f).ok().map(Path::to_path_buf)) {
            Some(rel) => rel.display().to_string(),
            None => profile.display().to_string(),
        }
    }

    /// The home app's certificate (the PFX, or the key in a token or a vault).
    pub fn credential(&self, password: &PasswordArgs) -> anyhow::Result<Credential> {
        let c = &self.profile.certificate;
        if let Some(uri) = &c.key {
            // A PKCS#11 token or a Key Vault: the key signs where it lives.
            let key = crate::keyvault::open_key(uri, None)?;
            return Ok(Credential::with_signer(key.certificate, key.signer));
        }
        let bytes = crate::fsutil::read(&c.path)?;
        Ok(cert::open(&c.path, &bytes, password)?.into())
    }
}

fn resolve_beside(file: &Path, p: &Path) -> PathBuf {
    if p.is_relative() { file.parent().unwrap_or(Path::new(".")).join(p) } else { p.to_path_buf() }
}

fn roles(names: &[String]) -> anyhow::Result<Vec<Role>> {
    if names.is_empty() {
        return Ok(vec![wellknown::EXCHANGE_ADMINISTRATOR]);
    }
    let mut roles = Vec::new();
    for name in names {
        let role = wellknown::role_by_name(name).map_err(|e| fail(Exit::Usage, format!("--role: {e}")))?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    Ok(roles)
}

/// The customer admin's credential when one was asked for (flags, or CBA_GRAPH_TOKEN).
fn admin_credential(args: &AdminArgs) -> anyhow::Result<Option<cba_lifecycle::AdminCredential>> {
    let env = |k: &str| std::env::var(k).ok();
    let token_set = env("CBA_GRAPH_TOKEN").is_some_and(|t| !t.trim().is_empty());
    if args.given() || token_set { Ok(Some(args.resolve(env)?)) } else { Ok(None) }
}

/// The customer admin's Exchange sign-in when one was asked for (`--exchange-admin`, or CBA_EXO_ADMIN_TOKEN).
fn exchange_admin(args: &ExchangeAdminArgs) -> anyhow::Result<Option<ExchangeAdminCredential>> {
    let env = |k: &str| std::env::var(k).ok();
    if args.given(env) { Ok(Some(args.resolve(None, env)?)) } else { Ok(None) }
}

// ---- add --------------------------------------------------------------------------------------------

/// The Exchange role group of `--exchange-role-group`/`--exchange-roles` (as `cba setup` reads them).
fn exchange_roles(args: &AddArgs) -> anyhow::Result<Option<ExchangeRoles>> {
    let roles = match (&args.exchange_role_group, &args.exchange_roles) {
        (Some(group), _) => Some(ExchangeRoles::Group(group.trim().to_string())),
        (None, Some(list)) => Some(ExchangeRoles::Custom {
            roles: list.split(',').map(|r| r.trim().to_string()).filter(|r| !r.is_empty()).collect(),
            write_scope: args.write_scope.clone(),
        }),
        (None, None) => None,
    };
    match &roles {
        Some(r) => {
            cba_lifecycle::exchange_roles::check(r).map_err(|e| fail(Exit::Usage, e))?;
            if !args.roles.is_empty() && !args.keep_entra_role {
                return Err(fail(
                    Exit::Usage,
                    "--role with an Exchange role group: their permissions add up, so the Entra role would undo the \
                     least privilege; drop --role, or pass --keep-entra-role to assign both",
                ));
            }
        }
        None if args.keep_entra_role || args.exchange_admin.exchange_admin.is_some() || args.yes => {
            return Err(fail(
                Exit::Usage,
                "--keep-entra-role, --yes and --exchange-admin go with --exchange-role-group or --exchange-roles",
            ));
        }
        None => {}
    }
    Ok(roles)
}

fn add(args: AddArgs, global: &Global) -> anyhow::Result<()> {
    let tenant = args.tenant.trim().to_string();
    cba_lifecycle::check_tenant(&tenant).map_err(|e| fail(Exit::Usage, format!("--tenant: {e}")))?;
    let exchange_roles = exchange_roles(&args)?;
    let roles = if exchange_roles.is_some() && args.roles.is_empty() { Vec::new() } else { roles(&args.roles)? };
    let home = Home::resolve(&args.home)?;
    let admin = admin_credential(&args.admin)?;
    if exchange_roles.is_some() && admin.is_none() {
        return Err(fail(
            Exit::Usage,
            "--exchange-role-group/--exchange-roles need the customer admin's sign-in (--admin, or CBA_GRAPH_TOKEN) \
             and the Exchange one (--exchange-admin, or CBA_EXO_ADMIN_TOKEN): the consent URL cannot make a role group",
        ));
    }
    let env = |k: &str| std::env::var(k).ok();
    let exchange = match exchange_roles {
        Some(roles) => Some(ExchangeSetup {
            roles,
            keep_entra_role: args.keep_entra_role,
            enable_customization: args.yes,
            admin: args.exchange_admin.resolve(admin.as_ref(), env)?,
        }),
        None => None,
    };
    let credential = home.credential(&args.home.password)?;
    let ui = Ui { style: global.style, all_waits: false };
    let request = fleet::AddRequest {
        tenant,
        roles,
        credential,
        consent_wait: if admin.is_none() { args.wait } else { None },
        wait: args.wait.unwrap_or(Duration::from_secs(300)),
        exchange,
    };
    let report = crate::runtime()?.block_on(async {
        let services = connect::services(&home.urls, ui)?;
        fleet::add(&services, &home.file, &home.profile, &home.location(), admin.as_ref(), &request)
            .await
            .map_err(connect::lifecycle_failure)
    })?;
    output::print_document(global.output, &report, add_text)
}

fn add_text(r: &AddReport) -> String {
    let none = || "-".to_string();
    let mut fields: Vec<(&str, String)> = vec![
        (
            "tenant",
            match &r.tenant_domain {
                Some(d) => format!("{} ({d})", r.tenant_id),
                None => r.tenant_id.clone(),
            },
        ),
        ("state", r.state.as_str().to_string()),
        ("service principal", r.service_principal_id.clone().unwrap_or_else(none)),
        ("Exchange.ManageAsApp", r.grant_id.clone().map(|g| format!("granted ({g})")).unwrap_or_else(none)),
    ];
    for role in &r.roles {
        fields.push((
            "role",
            match &role.assignment_id {
                Some(id) => format!("{} ({id})", role.role),
                None => format!("{} (not assigned)", role.role),
            },
        ));
    }
    if let Some(url) = &r.consent_url {
        fields.push(("consent URL", url.clone()));
    }
    if !r.created.is_empty() || !r.unchanged.is_empty() {
        fields.push(("created", if r.created.is_empty() { "nothing".into() } else { r.created.join(", ") }));
    }
    if let Some(x) = &r.exchange {
        fields.push(("exchange group", format!("{} [{}]", x.role_group, x.roles.join(", "))));
        if let Some(scope) = &x.write_scope {
            fields.push(("write scope", scope.clone()));
        }
        fields.push(("exchange created", if x.created.is_empty() { "nothing".into() } else { x.created.join(", ") }));
    }
    if let Some(roles) = &r.token_roles {
        fields.push(("proof", format!("Exchange token from the tenant with roles [{}]", roles.join(", "))));
    }
    if let Some(cmdlet) = r.exchange.as_ref().and_then(|x| x.proof_cmdlet.as_ref()) {
        fields.push(("exchange proof", format!("the app ran {cmdlet} with its own token")));
    }
    fields.push(("fleet", r.fleet.clone()));
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out: String = fields.iter().map(|(k, v)| format!("{k:<width$}  {v}\n")).collect();
    for p in &r.pending {
        out.push_str(&format!("pending: {p}\n"));
    }
    out
}

// ---- status -----------------------------------------------------------------------------------------

fn status(args: StatusArgs, global: &Global) -> anyhow::Result<()> {
    let home = Home::resolve(&args.home)?;
    let fleet = home.file.require()?;
    let credential = home.credential(&args.home.password)?;
    let ui = Ui { style: global.style, all_waits: false };
    let request = fleet::StatusRequest {
        credential,
        concurrency: args.concurrency.max(1),
        tenants: (!args.tenants.is_empty()).then(|| args.tenants.clone()),
        tenant_timeout: args.tenant_timeout,
        exchange_admin: exchange_admin(&args.exchange_admin)?,
    };
    let format = global.output;
    let stdout = io::stdout();
    let report = crate::runtime()?.block_on(async {
        let services = connect::services(&home.urls, ui)?;
        let mut out = io::BufWriter::new(stdout.lock());
        let mut write_error = None;
        if format == OutputFormat::Csv {
            write_error = writeln!(out, "{}", CSV_HEADER).err();
        }
        let report = fleet::status(&services, &fleet, &request, |row| {
            let line = match format {
                OutputFormat::Jsonl => serde_json::to_string(row).ok(),
                OutputFormat::Csv => Some(csv_row(row)),
                _ => None,
            };
            if let Some(line) = line
                && write_error.is_none()
            {
                write_error = writeln!(out, "{line}").and_then(|()| out.flush()).err();
            }
        })
        .await
        .map_err(connect::lifecycle_failure)?;
        if let Some(e) = write_error {
            return Err(anyhow::Error::new(e));
        }
        drop(out);
        if let Err(e) = fleet::record_checks(&services, &home.file, &report) {
            output::warn(global.style, format!("could not record the checks in {}: {e}", home.file.path.display()));
        }
        Ok::<_, anyhow::Error>(report)
    })?;
    match format {
        OutputFormat::Json => output::print_json(&report)?,
        OutputFormat::Text | OutputFormat::Table => {
            let mut out = io::stdout().lock();
            out.write_all(status_text(&report).as_bytes())?;
        }
        _ => {}
    }
    let summary = format!("{} of {} tenants healthy", report.healthy, report.total);
    if report.healthy == report.total {
        output::info(summary);
        Ok(())
    } else {
        Err(fail(
            Exit::Verify,
            format!("{summary}; `cba fleet add --tenant X` with the customer admin's sign-in repairs a tenant"),
        ))
    }
}

const CSV_HEADER: &str = "tenant_id,tenant_domain,state,consent,grant,role,token,exchange,healthy,detail";

fn verdict(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "ok",
        Some(false) => "FAIL",
        None => "?",
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

fn csv_row(r: &TenantHealth) -> String {
    let b = |v: Option<bool>| v.map(|v| v.to_string()).unwrap_or_default();
    [
        csv_field(&r.tenant_id),
        csv_field(r.tenant_domain.as_deref().unwrap_or("")),
        r.state.as_str().to_string(),
        b(r.consent),
        b(r.grant),
        b(r.role),
        b(r.token),
        b(r.exchange),
        r.healthy.to_string(),
        csv_field(&r.detail),
    ]
    .join(",")
}

fn status_text(report: &FleetStatus) -> String {
    let name = |t: &TenantHealth| t.tenant_domain.clone().unwrap_or_else(|| t.tenant_id.clone());
    let width = report.tenants.iter().map(|t| name(t).len()).max().unwrap_or(6).max(6);
    let mut out = format!("{:<width$}  consent  grant  role  token  exchange  detail\n", "tenant");
    for t in &report.tenants {
        out.push_str(&format!(
            "{:<width$}  {:<7}  {:<5}  {:<4}  {:<5}  {:<8}  {}\n",
            name(t),
            verdict(t.consent),
            verdict(t.grant),
            verdict(t.role),
            verdict(t.token),
            verdict(t.exchange),
            t.detail
        ));
    }
    out
}

// ---- remove -----------------------------------------------------------------------------------------

fn remove(args: RemoveArgs, global: &Global) -> anyhow::Result<()> {
    let home = Home::resolve(&args.home)?;
    let admin = admin_credential(&args.admin)?;
    let exchange_admin = exchange_admin(&args.exchange_admin)?;
    let credential = home.credential(&args.home.password)?;
    let ui = Ui { style: global.style, all_waits: false };
    let report = crate::runtime()?.block_on(async {
        let services = connect::services(&home.urls, ui)?;
        let tenant = args.tenant.trim();
        fleet::remove(
            &services,
            &home.file,
            &home.profile,
            admin.as_ref(),
            exchange_admin.as_ref(),
            &credential,
            tenant,
        )
        .await
        .map_err(connect::lifecycle_failure)
    })?;
    output::print_document(global.output, &report, remove_text)
}

fn remove_text(r: &RemoveReport) -> String {
    let mut out = String::new();
    if r.removed {
        out.push_str(&format!("removed the app from tenant {} and from {}\n", r.tenant_id, r.fleet));
        if !r.deleted.is_empty() {
            out.push_str(&format!("deleted: {}\n", r.deleted.join(", ")));
        }
        if let Some(x) = r.exchange.as_ref().filter(|x| !x.removed.is_empty()) {
            out.push_str(&format!("removed in Exchange: {}\n", x.removed.join(", ")));
        }
    } else {
        out.push_str(&format!(
            "tenant {} is marked removal_requested in {}; the customer's administrator removes the app:\n",
            r.tenant_id, r.fleet
        ));
        for step in &r.customer_steps {
            out.push_str(&format!("  {step}\n"));
        }
    }
    out
}

// ---- exo invoke --fleet -----------------------------------------------------------------------------

/// What `cba exo invoke --fleet` runs (exo.rs builds it from its flags).
pub struct FleetInvoke {
    pub fleet: PathBuf,
    pub tenants: Vec<String>,
    pub all: bool,
    pub concurrency: usize,
    pub cmdlet: String,
    pub params: cba_exo::Parameters,
    pub select: Vec<String>,
    pub page_size: u32,
    pub password: PasswordArgs,
    /// The home profile, when given (else the one the fleet file names).
    pub profile: Option<PathBuf>,
}

/// Run the cmdlet in the selected tenants; every row tagged with a `tenant` field (column), streamed as it
/// arrives; a failed tenant is reported on stderr and makes the exit non-zero, the others go on.
pub fn invoke(run: FleetInvoke, global: &Global) -> anyhow::Result<()> {
    if run.tenants.is_empty() && !run.all {
        return Err(fail(Exit::Usage, "--fleet needs --tenants A,B or --all"));
    }
    let home = Home::resolve(&HomeArgs {
        profile: run.profile.clone(),
        fleet: Some(run.fleet.clone()),
        password: run.password.clone(),
    })?;
    let fleet: Fleet = home.file.require()?;
    let tenants: Vec<CustomerTenant> =
        fleet.select((!run.all).then_some(run.tenants.as_slice())).map_err(connect::lifecycle_failure)?;
    let credential = home.credential(&run.password)?;
    let style = global.style;
    let observer: fleet::ExchangeObserver = Arc::new(move |tenant: &str, event: &cba_exo::Event<'_>| match event {
        cba_exo::Event::Warning { cmdlet, message } => {
            output::warn(style, format!("tenant {tenant}: {cmdlet}: {}", output::exo::terminal_text(message)))
        }
        cba_exo::Event::CmdletError { cmdlet, message } => output::info(format!(
            "{} tenant {tenant}: {cmdlet}: {}",
            style.error("error:"),
            output::exo::terminal_text(message)
        )),
        cba_exo::Event::Retry { wait, reason, .. } => {
            output::info(style.dim(&format!("tenant {tenant}: {reason}; retrying in {:.1} s", wait.as_secs_f64())))
        }
        _ => {}
    });
    let spec = fleet::FanOut {
        cmdlet: run.cmdlet.clone(),
        params: run.params.clone(),
        page_size: run.page_size,
        concurrency: run.concurrency.max(1),
        observer: Some(observer),
    };
    let format = global.output;
    let ui = Ui { style, all_waits: false };
    let stdout = io::stdout();
    let (ok, failed, objects) = crate::runtime()?.block_on(async {
        let services = connect::services(&home.urls, ui)?;
        let mut events = fleet::fan_out(&services, &fleet.home.app_id, &credential, &tenants, &spec)
            .map_err(connect::lifecycle_failure)?;
        let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
        let mut rows = RowWriter::new(format, &run.select);
        rows.start(&mut out)?;
        let (mut ok, mut failed, mut objects) = (0usize, Vec::new(), 0usize);
        while let Some(event) = events.next().await {
            match event {
                FanOutEvent::Page { tenant, page } => {
                    for item in page.iter() {
                        rows.row(&mut out, &tenant, item)?;
                        objects += 1;
                    }
                    out.flush()?;
                }
                FanOutEvent::Done { .. } => ok += 1,
                FanOutEvent::Failed { tenant, error } => {
                    let e = connect::lifecycle_failure(*error);
                    output::info(format!("{} tenant {tenant}: {e:#}", style.error("error:")));
                    failed.push(tenant.to_string());
                }
                _ => {}
            }
        }
        rows.end(&mut out)?;
        out.flush()?;
        Ok::<_, anyhow::Error>((ok, failed, objects))
    })?;
    let summary = format!("{} ran in {ok} of {} tenants ({objects} objects)", run.cmdlet, tenants.len());
    if failed.is_empty() {
        output::info(summary);
        Ok(())
    } else {
        Err(fail(Exit::Remote, format!("{summary}; failed in {}: {}", failed.len(), failed.join(", "))))
    }
}

/// Rows tagged with their tenant: JSON objects get `"tenant"` as their first key (the service's text kept
/// byte for byte after it), CSV a `tenant` column first.
struct RowWriter<'a> {
    format: OutputFormat,
    select: &'a [String],
    columns: Option<Vec<String>>,
    first: bool,
}

impl<'a> RowWriter<'a> {
    fn new(format: OutputFormat, select: &'a [String]) -> RowWriter<'a> {
        RowWriter { format, select, columns: (!select.is_empty()).then(|| select.to_vec()), first: true }
    }

    fn start(&mut self, out: &mut impl io::Write) -> io::Result<()> {
        match self.format {
            OutputFormat::Json => out.write_all(b"["),
            OutputFormat::Csv if self.columns.is_some() => self.header(out),
            _ => Ok(()),
        }
    }

    fn header(&self, out: &mut impl io::Write) -> io::Result<()> {
        let columns = self.columns.as_deref().unwrap_or_default();
        let line: Vec<String> =
            std::iter::once("tenant".to_string()).chain(columns.iter().map(|c| csv_field(c))).collect();
        writeln!(out, "{}", line.join(","))
    }

    fn row(&mut self, out: &mut impl io::Write, tenant: &str, item: &str) -> io::Result<()> {
        let tenant_json = serde_json::to_string(tenant).unwrap_or_default();
        match self.format {
            OutputFormat::Csv => {
                let value: serde_json::Value = serde_json::from_str(item).unwrap_or(serde_json::Value::Null);
                if self.columns.is_none() {
                    let keys = value.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
                    self.columns = Some(keys);
                    self.header(out)?;
                }
                let columns = self.columns.as_deref().unwrap_or_default();
                let mut fields = vec![csv_field(tenant)];
                for c in columns {
                    fields.push(match value.get(c) {
                        None | Some(serde_json::Value::Null) => String::new(),
                        Some(serde_json::Value::String(s)) => csv_field(s),
                        Some(other) => csv_field(&other.to_string()),
                    });
                }
                writeln!(out, "{}", fields.join(","))
            }
            _ => {
                let tagged = if self.select.is_empty() {
                    tag(&tenant_json, item)
                } else {
                    let value: serde_json::Value = serde_json::from_str(item).unwrap_or(serde_json::Value::Null);
                    let mut map = serde_json::Map::new();
                    map.insert("tenant".into(), serde_json::Value::String(tenant.to_string()));
                    for c in self.select {
                        map.insert(c.clone(), value.get(c).cloned().unwrap_or(serde_json::Value::Null));
                    }
                    serde_json::Value::Object(map).to_string()
                };
                if self.format == OutputFormat::Json {
                    out.write_all(if self.first { b"\n" } else { b",\n" })?;
                    out.write_all(tagged.as_bytes())?;
                } else {
                    writeln!(out, "{tagged}")?;
                }
                self.first = false;
                Ok(())
            }
        }
    }

    fn end(&mut self, out: &mut impl io::Write) -> io::Result<()> {
        if self.format == OutputFormat::Json {
            out.write_all(b"\n]\n")?;
        }
        Ok(())
    }
}

/// `{"tenant":…,` + the object's own members; anything but an object becomes `{"tenant":…,"value":…}`.
fn tag(tenant_json: &str, item: &str) -> String {
    let trimmed = item.trim_start();
    match trimmed.strip_prefix('{') {
        Some(rest) if rest.trim_start().starts_with('}') => format!("{{\"tenant\":{tenant_json}}}"),
        Some(rest) => format!("{{\"tenant\":{tenant_json},{rest}"),
        None => format!("{{\"tenant\":{tenant_json},\"value\":{item}}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_tagged_with_their_tenant() {
        assert_eq!(tag("\"t1\"", r#"{"Name":"a"}"#), r#"{"tenant":"t1","Name":"a"}"#);
        assert_eq!(tag("\"t1\"", "{ }"), r#"{"tenant":"t1"}"#);
        assert_eq!(tag("\"t1\"", "7"), r#"{"tenant":"t1","value":7}"#);
        let mut out = Vec::new();
        let select = vec!["Name".to_string()];
        let mut csv = RowWriter::new(OutputFormat::Csv, &select);
        csv.start(&mut out).unwrap();
        csv.row(&mut out, "t1", r#"{"Name":"a,b","X":1}"#).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "tenant,Name\nt1,\"a,b\"\n");
    }
}
