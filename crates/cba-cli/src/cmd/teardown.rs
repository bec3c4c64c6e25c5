//! `cba teardown`: the role assignments, the grant, the service principal and the app; rerunnable. Local
//! files (certificates, profile) only with `--delete-files`.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;

use cba_graph::provision::AppRef;
use cba_lifecycle::exchange_roles::ExchangeAdminCredential;
use cba_lifecycle::{AdminCredential, TeardownReport, TeardownRequest};

use crate::Global;
use crate::connect::{self, Ui};
use crate::exit::{Exit, fail};
use crate::output;
use crate::profile::{FileStore, Profile};
use crate::settings::{self, AdminArgs, EndpointArgs, ExchangeAdminArgs, Urls};

const EXAMPLES: &str = "\
Examples:
  cba teardown --profile contoso-exo.profile.json                  # asks first
  cba teardown --profile contoso-exo.profile.json --yes --delete-files
  cba teardown --tenant contoso.onmicrosoft.com --name contoso-exo --yes   # without a profile

Safe to rerun: what is already gone is reported as such.";

/// `cba teardown` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The profile `cba setup` wrote [env: CBA_PROFILE].
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Without a profile: the tenant (id or domain).
    #[arg(long, value_name = "TENANT", requires = "name")]
    pub tenant: Option<String>,
    /// Without a profile: the app's display name.
    #[arg(long, value_name = "APP", requires = "tenant")]
    pub name: Option<String>,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub exchange_admin: ExchangeAdminArgs,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Also delete the local files cba made: the certificates setup or rotation wrote (never one given with
    /// --cert) and the profile itself.
    #[arg(long)]
    pub delete_files: bool,
}

/// Validated settings.
#[derive(Debug)]
pub struct Settings {
    pub store: Option<FileStore>,
    pub profile: Option<Profile>,
    pub request: TeardownRequest,
    pub urls: Urls,
    pub admin: AdminCredential,
    pub delete_files: bool,
    pub ui: Ui,
    /// The administrator's Exchange sign-in, when the profile records an Exchange role group.
    pub exchange_admin: Option<ExchangeAdminCredential>,
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let loaded = match (settings::profile_path(args.profile), &args.name) {
        (Some(path), _) => {
            let store = FileStore::new(path);
            let profile = store.read()?;
            Some((store, profile))
        }
        (None, Some(_)) => None,
        (None, None) => {
            return Err(fail(Exit::Usage, "which app? pass --profile FILE (or CBA_PROFILE), or --tenant and --name"));
        }
    };
    let profile = loaded.as_ref().map(|(_, p)| p);
    let urls = Urls::resolve(&args.endpoints, profile, |k| std::env::var(k).ok())?;
    if let Some(tenant) = &args.tenant {
        cba_lifecycle::check_tenant(tenant).map_err(|e| fail(Exit::Usage, format!("--tenant: {e}")))?;
    }
    let request = match (profile, args.name, args.tenant) {
        (Some(p), _, _) => TeardownRequest::for_profile(p),
        (None, Some(name), Some(tenant)) => TeardownRequest {
            tenant,
            app: AppRef::Name(name.clone()),
            label: format!("{name:?}"),
            interrupted_setup: None,
        },
        _ => unreachable!("clap requires --tenant with --name"),
    };
    if !args.yes {
        confirm(&format!(
            "Delete app {} in tenant {}, with its service principal, Exchange.ManageAsApp grant and role \
             assignments{}{}?",
            request.label,
            request.tenant,
            if profile.is_some_and(|p| p.exchange.is_some()) {
                ", its Exchange role group membership (and the group and scope cba made)"
            } else {
                ""
            },
            if args.delete_files { ", and the local certificate and profile files cba made" } else { "" }
        ))?;
    }
    let admin = args.admin.resolve(|k| std::env::var(k).ok())?;
    // The profile's role group needs the Exchange sign-in; without one, --exchange-admin (or CBA_EXO_ADMIN_TOKEN)
    // still removes the app's Exchange service principal.
    let env = |k: &str| std::env::var(k).ok();
    let exchange_admin = if profile.is_some_and(|p| p.exchange.is_some()) || args.exchange_admin.given(env) {
        Some(args.exchange_admin.resolve(Some(&admin), env)?)
    } else {
        None
    };
    let (store, profile) = loaded.unzip();
    let settings = Settings {
        store,
        profile,
        request,
        urls,
        admin,
        delete_files: args.delete_files,
        ui: Ui { style: global.style, all_waits: false },
        exchange_admin,
    };
    let report = crate::runtime()?.block_on(execute(&settings))?;
    output::print_document(global.output, &report, text)
}

/// Ask on the terminal; refuse without one.
fn confirm(question: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(fail(Exit::Usage, format!("{question} There is no terminal to ask on: pass --yes to confirm")));
    }
    let _ = write!(std::io::stderr(), "{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(|e| fail(Exit::BadInput, e))?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(fail(Exit::Usage, "not confirmed: nothing was deleted"))
    }
}

pub async fn execute(s: &Settings) -> anyhow::Result<TeardownReport> {
    let services = connect::services(&s.urls, s.ui)?;
    // Exchange first: the role group membership, the group and scope cba made, the Exchange service principal.
    let exchange = match (&s.profile, &s.exchange_admin) {
        (Some(p), Some(admin)) => cba_lifecycle::exchange_roles::teardown_profile(&services, admin, p)
            .await
            .map_err(connect::lifecycle_failure)?,
        _ => None,
    };
    let mut report =
        cba_lifecycle::teardown(&services, &s.admin, &s.request).await.map_err(connect::lifecycle_failure)?;
    let recorded = s.profile.as_ref().is_some_and(|p| p.exchange.is_some());
    let app_id =
        report.app_id.clone().or_else(|| s.profile.as_ref().map(|p| p.app_id.clone())).filter(|a| !a.is_empty());
    let exchange = match (exchange, &s.exchange_admin, app_id) {
        (None, Some(admin), Some(app_id)) if !recorded => Some(
            cba_lifecycle::exchange_roles::remove_service_principal(&services, admin, &s.request.tenant, &app_id)
                .await
                .map_err(connect::lifecycle_failure)?,
        ),
        (x, ..) => x,
    };
    if let Some(x) = exchange {
        report.removed.splice(0..0, x.removed);
        report.already_gone.splice(0..0, x.already_gone);
        report.requests += x.requests;
        report.round_trip_depth += x.requests;
    }
    // The app is gone: a cached token of it would only hide that (`cba exo check` succeeding from the cache).
    if let Some(app_id) = report.app_id.as_deref().or(s.profile.as_ref().map(|p| p.app_id.as_str())) {
        let mut tenants = vec![s.request.tenant.as_str()];
        if let Some(p) = &s.profile {
            tenants.push(&p.tenant_id);
            tenants.extend(p.tenant_domain.as_deref());
        }
        match forget_cached_tokens(&s.urls.login, &tenants, app_id) {
            Ok(0) => {}
            Ok(n) => s.ui.detail(&format!("forgot {n} cached token(s) of the app")),
            Err(e) => output::warn(s.ui.style, format!("could not remove the app's cached tokens: {e:#}")),
        }
    }
    if let Some(key) =
        s.profile.as_ref().and_then(|p| p.certificate.key.as_deref()).filter(|k| crate::keyvault::is_vault(k))
    {
        // The vault's certificate may serve others, and deleting it is the vault owner's call.
        s.ui.detail(&format!("left the certificate {key} in the vault (cba never deletes vault certificates)"));
    }
    if s.delete_files
        && let (Some(store), Some(p)) = (&s.store, &s.profile)
    {
        let mut files: Vec<PathBuf> = cba_lifecycle::teardown::files_made_by_cba(p);
        files.push(store.path.clone());
        for f in files {
            match std::fs::remove_file(&f) {
                Ok(()) => report.files_deleted.push(f.display().to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(fail(Exit::BadInput, format!("cannot delete {}: {e}", f.display()))),
            }
        }
        for f in &report.files_deleted {
            s.ui.detail(&format!("deleted {f}"));
        }
    }
    Ok(report)
}

/// Remove every cached token (any scope, any certificate) of app `client_id` in each of `tenants` (the names
/// the tenant may have been given by: id, domain) signed in at `login`, from the default token cache file.
/// For teardown and for rotation (the old certificate's tokens). Returns how many were removed.
pub(crate) fn forget_cached_tokens(login: &str, tenants: &[&str], client_id: &str) -> anyhow::Result<usize> {
    let Some(path) = crate::cmd::token::cache_file() else { return Ok(0) };
    if !path.exists() || client_id.is_empty() {
        return Ok(0);
    }
    let authority = cba_token::Authority::new(login)?;
    let cache = cba_token::TokenCache::with_file(&path);
    let mut removed = 0;
    let mut seen: Vec<String> = Vec::new();
    for tenant in tenants.iter().filter(|t| !t.is_empty()) {
        if seen.iter().any(|s| s.eq_ignore_ascii_case(tenant)) {
            continue;
        }
        seen.push(tenant.to_string());
        removed += cache.remove_app(&authority, tenant, client_id)?;
    }
    Ok(removed)
}

/// The report for people.
pub fn text(r: &TeardownReport) -> String {
    let mut out = String::new();
    if r.removed.is_empty() {
        out.push_str(&format!("Nothing to remove: app {} is already gone.\n", r.app));
    } else {
        out.push_str(&format!("removed       {}\n", r.removed.join(", ")));
    }
    if !r.already_gone.is_empty() && !r.removed.is_empty() {
        out.push_str(&format!("already gone  {}\n", r.already_gone.join(", ")));
    }
    for f in &r.files_deleted {
        out.push_str(&format!("deleted       {f}\n"));
    }
    out.push_str(&format!(
        "requests      {} (round-trip depth {}, {} ms)\n",
        r.requests, r.round_trip_depth, r.elapsed_ms
    ));
    out
}
