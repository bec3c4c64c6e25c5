//! `cba teardown`: the role assignments, the grant, the service principal and the app; rerunnable. Local
//! files (certificates, profile) only with `--delete-files`.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;

use cba_graph::provision::AppRef;
use cba_lifecycle::{AdminCredential, TeardownReport, TeardownRequest};

use crate::Global;
use crate::connect::{self, Ui};
use crate::exit::{Exit, fail};
use crate::output;
use crate::profile::{FileStore, Profile};
use crate::settings::{self, AdminArgs, EndpointArgs, Urls};

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
             assignments{}?",
            request.label,
            request.tenant,
            if args.delete_files { ", and the local certificate and profile files cba made" } else { "" }
        ))?;
    }
    let admin = args.admin.resolve(|k| std::env::var(k).ok())?;
    let (store, profile) = loaded.unzip();
    let settings = Settings {
        store,
        profile,
        request,
        urls,
        admin,
        delete_files: args.delete_files,
        ui: Ui { style: global.style, all_waits: false },
    };
    let report = crate::runtime()?.block_on(execute(&settings))?;
    output::print_document(global.output, &report, text)
}

/// Ask on the terminal; refuse without one.
fn confirm(question: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(fail(Exit::Usage, format!("{question} There is no terminal to ask on: pass --yes to confirm")));
    }
    eprint!("{question} [y/N] ");
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
    let mut report =
        cba_lifecycle::teardown(&services, &s.admin, &s.request).await.map_err(connect::lifecycle_failure)?;
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
