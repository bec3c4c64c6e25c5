//! `cba teardown`: the role assignments, the grant, the service principal and the app; rerunnable. Local
//! files (certificates, profile) only with `--delete-files`.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cba_graph::provision::{self, AppRef, Change, Event};
use serde::Serialize;

use crate::Global;
use crate::connect::{self, Admin, AdminArgs, EndpointArgs, Ui, Urls};
use crate::exit::{Exit, fail};
use crate::output;
use crate::profile::Profile;

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
    /// Also delete the local files: the certificates the profile names and the profile itself.
    #[arg(long)]
    pub delete_files: bool,
}

/// Validated settings.
#[derive(Debug)]
pub struct Settings {
    pub profile_path: Option<PathBuf>,
    pub profile: Option<Profile>,
    pub tenant: String,
    pub app: AppRef,
    pub app_label: String,
    pub urls: Urls,
    pub admin: Admin,
    pub delete_files: bool,
    pub ui: Ui,
}

/// The JSON document of `cba teardown` (docs/cli-json.md).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub app: String,
    pub app_id: Option<String>,
    /// Objects deleted now (`application`, `service_principal`, `grant`, `role_assignment:<role>`).
    pub removed: Vec<String>,
    /// Objects that were already gone.
    pub already_gone: Vec<String>,
    pub files_deleted: Vec<String>,
    pub requests: u32,
    pub round_trip_depth: u32,
    pub elapsed_ms: u64,
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let loaded = match (connect::profile_path(args.profile), &args.name) {
        (Some(path), _) => Some((path.clone(), Profile::load(&path)?)),
        (None, Some(_)) => None,
        (None, None) => {
            return Err(fail(Exit::Usage, "which app? pass --profile FILE (or CBA_PROFILE), or --tenant and --name"));
        }
    };
    let profile = loaded.as_ref().map(|(_, p)| p);
    let urls = Urls::resolve(&args.endpoints, profile, |k| std::env::var(k).ok())?;
    let (tenant, app, label) = match (profile, args.name, args.tenant) {
        (Some(p), _, _) => {
            let app = if p.app_object_id.is_empty() {
                AppRef::Name(p.app_name.clone())
            } else {
                AppRef::ObjectId(p.app_object_id.clone())
            };
            (
                p.tenant_id.clone(),
                app,
                format!("{:?} (appId {})", p.app_name, if p.app_id.is_empty() { "?" } else { &p.app_id }),
            )
        }
        (None, Some(name), Some(tenant)) => (tenant, AppRef::Name(name.clone()), format!("{name:?}")),
        _ => unreachable!("clap requires --tenant with --name"),
    };
    if !args.yes {
        confirm(&format!(
            "Delete app {label} in tenant {tenant}, with its service principal, Exchange.ManageAsApp grant and role \
             assignments{}?",
            if args.delete_files { ", and the local certificate and profile files" } else { "" }
        ))?;
    }
    let admin = args.admin.resolve(|k| std::env::var(k).ok())?;
    let (profile_path, profile) = loaded.unzip();
    let settings = Settings {
        profile_path,
        profile,
        tenant,
        app,
        app_label: label,
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

pub async fn execute(s: &Settings) -> anyhow::Result<Report> {
    let started = Instant::now();
    let ui = s.ui;
    let (tokens, _) = connect::admin_tokens(&s.admin, &s.urls, &s.tenant, ui).await?;
    let graph = connect::graph_client(&s.urls, tokens, Duration::from_secs(300), ui)?;
    ui.step(format!("removing app {} and what belongs to it", s.app_label));
    let outcome = provision::teardown(&graph, &s.app, |event: &Event| {
        if let Event::Finished { step, change, id } = event {
            let verb = if *change == Change::Removed { "removed" } else { "already gone" };
            ui.detail(&format!("{step}: {verb}{}", if id.is_empty() { String::new() } else { format!(" ({id})") }));
        }
    })
    .await
    .map_err(|e| connect::graph_failure(e, &format!("teardown of app {}", s.app_label)))?;

    let mut files_deleted = Vec::new();
    if s.delete_files
        && let (Some(path), Some(p)) = (&s.profile_path, &s.profile)
    {
        let certs = std::iter::once(&p.certificate).chain(&p.previous_certificate).chain(&p.pending_certificate);
        let mut files: Vec<PathBuf> = Vec::new();
        for c in certs {
            files.push(c.path.clone());
            files.extend(c.cer_path.clone());
        }
        files.push(path.clone());
        for f in files {
            match std::fs::remove_file(&f) {
                Ok(()) => files_deleted.push(f.display().to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(fail(Exit::BadInput, format!("cannot delete {}: {e}", f.display()))),
            }
        }
        for f in &files_deleted {
            ui.detail(&format!("deleted {f}"));
        }
    }
    let name = |step: &provision::Step| match step {
        provision::Step::RoleAssignment { role } => format!("role_assignment:{role}"),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.get("step").and_then(|s| s.as_str()).map(str::to_owned))
            .unwrap_or_else(|| other.to_string()),
    };
    Ok(Report {
        app: s.app_label.clone(),
        app_id: outcome.application.as_ref().map(|a| a.app_id.clone()),
        removed: outcome.removed.iter().map(name).collect(),
        already_gone: outcome.already_gone.iter().map(name).collect(),
        files_deleted,
        requests: outcome.requests,
        round_trip_depth: outcome.round_trip_depth,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// The report for people.
pub fn text(r: &Report) -> String {
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
