//! `cba demo`: the whole flow against a simulated tenant started in this process, with replication delay
//! and throttling switched on so the waiting and retrying show. Each step calls the same code as its
//! command (setup, status, token, rotate, status, teardown), tells what it would be in the Entra admin
//! center, and is checked against the simulator's state. Exit 0 only when every step did what it should.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cba_graph::Replication;
use cba_graph::wellknown::{self, EXCHANGE_MANAGE_AS_APP};
use cba_sim::SimTenant;
use cba_token::ClientCertificate;
use serde::Serialize;

use crate::Global;
use crate::certfile::NewCertOptions;
use crate::cmd::{rotate, setup, status, teardown};
use cba_lifecycle::{AdminCredential, RotateRequest, TeardownRequest};

use crate::connect::{self, Ui};
use crate::exit::{Exit, fail};
use crate::output;
use crate::profile::FileStore;
use crate::secrets::PasswordArgs;
use crate::settings::Urls;

const APP: &str = "contoso-exo";

const EXAMPLES: &str = "\
Examples:
  cba demo                                   # the whole flow, about 15 s, no account needed
  cba demo --output json                     # the steps, their timings and results, for scripts
  cba demo --replication-delay-ms 0 --throttle-every 0   # without Entra's delays and throttling
  cba demo --keep                            # keep its folder (certificates, profile)

Exit 0 only when every step did what it should, checked against the simulated tenant's state.";

/// `cba demo` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Entra's replication delay in the simulated tenant, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 1500)]
    pub replication_delay_ms: u64,
    /// Throttle every K-th request with 429 + Retry-After (0: never).
    #[arg(long, value_name = "K", default_value_t = 7)]
    pub throttle_every: u64,
    /// Keep the demo's folder (certificates, profile) and print where it is.
    #[arg(long)]
    pub keep: bool,
    /// Where the app's key lives: `keyvault` runs the whole demo with a key in the simulator's Key Vault
    /// (not exportable; every signature made there), its token from the simulated managed identity.
    #[arg(long, value_name = "KIND", value_parser = ["keyvault"])]
    pub key: Option<String>,
}

/// One step of the demo.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: &'static str,
    pub command: String,
    pub ok: bool,
    pub elapsed_ms: u64,
    pub detail: String,
}

/// The JSON document of `cba demo` (docs/cli-json.md).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub steps: Vec<StepReport>,
    pub replication_delay_ms: u64,
    pub throttle_every: u64,
    /// Requests the simulated tenant answered (throttled ones included).
    pub sim_requests: usize,
    /// Of which throttled (429).
    pub sim_throttled: usize,
    pub elapsed_ms: u64,
    pub folder: Option<String>,
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let report = crate::runtime()?.block_on(execute(&args, global))?;
    output::print_document(global.output, &report, text)?;
    if report.ok {
        Ok(())
    } else {
        let failed: Vec<&str> = report.steps.iter().filter(|s| !s.ok).map(|s| s.step).collect();
        Err(fail(Exit::Verify, format!("the demo step(s) {} did not do what they should", failed.join(", "))))
    }
}

struct Demo {
    ui: Ui,
    steps: Vec<StepReport>,
    total: usize,
}

impl Demo {
    fn announce(&self, n: usize, command: &str, portal: &[&str]) {
        let ui = self.ui;
        output::info("");
        ui.step(ui.style.ok(&format!("▶ {n}/{} {command}", self.total)));
        for line in portal {
            ui.detail(&format!("in the portal: {line}"));
        }
    }

    fn record(&mut self, step: &'static str, command: &str, started: Instant, outcome: anyhow::Result<String>) -> bool {
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let (ok, detail) = match outcome {
            Ok(detail) => (true, detail),
            Err(e) => (false, format!("{e:#}")),
        };
        let mark = if ok { self.ui.style.ok("✓") } else { self.ui.style.error("✗") };
        self.ui.step(format!("{mark} {step} ({:.1} s): {detail}", elapsed_ms as f64 / 1000.0));
        self.steps.push(StepReport { step, command: command.to_string(), ok, elapsed_ms, detail });
        ok
    }
}

fn check(condition: bool, what: impl Into<String>) -> anyhow::Result<()> {
    if condition { Ok(()) } else { Err(fail(Exit::Verify, what.into())) }
}

/// The demo's folder (certificates with their keys, the profile): private to the user, and removed when the
/// demo ends however it ends (an error, a panic on a closed pipe) unless `--keep`.
struct DemoFolder {
    path: PathBuf,
    keep: bool,
}

impl DemoFolder {
    fn create(keep: bool) -> anyhow::Result<DemoFolder> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let path = std::env::temp_dir().join(format!("cba-demo-{}-{nanos}", std::process::id()));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&path).map_err(|e| fail(Exit::BadInput, format!("cannot create {}: {e}", path.display())))?;
        Ok(DemoFolder { path, keep })
    }
}

impl Drop for DemoFolder {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub async fn execute(args: &Args, global: &Global) -> anyhow::Result<Report> {
    let started = Instant::now();
    let ui = Ui { style: global.style, all_waits: true };
    let sim = SimTenant::builder()
        .tenant_name("contoso")
        .replication_delay(Duration::from_millis(args.replication_delay_ms))
        .throttle_every(args.throttle_every)
        .start()
        .await;
    let guard = DemoFolder::create(args.keep)?;
    let folder = guard.path.clone();
    ui.step(format!(
        "cba demo: a simulated tenant {} at {} (replication delay {} ms, every {} request throttled), files in {}",
        sim.tenant_domain(),
        sim.graph_url(),
        args.replication_delay_ms,
        args.throttle_every,
        folder.display()
    ));
    let urls = Urls {
        cloud: cba_token::Cloud::Global,
        login: sim.login_url().to_string(),
        graph: sim.graph_url().to_string(),
        exchange: sim.exchange_url().to_string(),
    };
    let admin = || AdminCredential::Token(zeroize::Zeroizing::new(sim.admin_token()));
    let store = FileStore::new(folder.join(format!("{APP}.profile.json")));
    let profile_path = folder.join(format!("{APP}.profile.json"));
    let unprotected = PasswordArgs { unprotected: true, ..PasswordArgs::default() };
    let mut demo = Demo { ui, steps: Vec::new(), total: 6 };

    // 1. setup
    let command = format!("cba setup --tenant {} --name {APP} --admin token", sim.tenant_domain());
    demo.announce(1, &command, &[
        "Entra admin center → App registrations → New registration (single tenant)",
        "→ Certificates & secrets → Certificates → Upload certificate (the .cer)",
        "→ API permissions → Add a permission → APIs my organization uses → Office 365 Exchange Online → Application permissions → Exchange.ManageAsApp; remove User.Read",
        "→ Grant admin consent for the tenant",
        "Roles & admins → Exchange Administrator → Add assignments → the app",
    ]);
    let t = Instant::now();
    let outcome = async {
        let settings = setup::Settings {
            tenant: sim.tenant_domain().to_string(),
            name: APP.to_string(),
            cert: match args.key.as_deref() {
                Some(_) => {
                    let http = crate::http::http_config(true)?;
                    let identity = cba_keyvault::ManagedIdentity::app_service(
                        &sim.identity_endpoint(),
                        &sim.identity_header(),
                        "https://vault.azure.net",
                        http,
                    )
                    .map_err(crate::keyvault::error)?;
                    crate::keyvault::use_token_source(std::sync::Arc::new(identity));
                    setup::CertSource::Token {
                        uri: format!("{}/certificates/{APP}", sim.keyvault_url()),
                        module: None,
                        options: NewCertOptions { out_dir: folder.clone(), ..NewCertOptions::default() },
                    }
                }
                None => setup::CertSource::New(NewCertOptions {
                    out_dir: folder.clone(),
                    no_password: true,
                    ..NewCertOptions::default()
                }),
            },
            roles: vec![wellknown::EXCHANGE_ADMINISTRATOR],
            urls: urls.clone(),
            admin: admin(),
            profile_path: profile_path.clone(),
            dry_run: false,
            multi_tenant: false,
            wait: Duration::from_secs(120),
            ui,
            exchange: None,
        };
        let report = setup::execute(&settings).await?.report;
        let state = sim.state().await;
        let t = state.primary();
        check(t.applications.len() == 1, format!("{} apps in the tenant, expected 1", t.applications.len()))?;
        check(t.custom_service_principals().count() == 1, "expected exactly one service principal")?;
        check(t.app_role_assignments.len() == 1, "expected exactly one Exchange.ManageAsApp grant")?;
        check(t.role_assignments.len() == 1, "expected exactly one role assignment")?;
        check(profile_path.exists(), "no profile written")?;
        Ok(format!(
            "app {} with its certificate, service principal, grant and role; proof token roles [{}]; {} requests, round-trip depth {}",
            report.app_id.unwrap_or_default(),
            report.token_roles.unwrap_or_default().join(", "),
            report.requests,
            report.round_trip_depth
        ))
    }
    .await;
    let mut ok = demo.record("setup", &command, t, outcome);

    // 2. status
    if ok {
        ok = status_step(&mut demo, 2, &profile_path, &unprotected, &urls, admin()).await;
    }

    // 3. token
    if ok {
        let command = format!("cba token --profile {}", profile_path.display());
        demo.announce(
            3,
            &command,
            &["(no portal equivalent: Connect-ExchangeOnline -AppId … -CertificateFilePath … gets this token)"],
        );
        let t = Instant::now();
        let outcome = async {
            let profile = store.read()?;
            let cert = match &profile.certificate.key {
                Some(key) => {
                    let key = crate::keyvault::open_key(key, None)?;
                    ClientCertificate::with_signer(key.certificate, key.signer, &profile.tenant_id, &profile.app_id)
                        .map_err(|e| fail(Exit::BadInput, e))?
                }
                None => {
                    let bytes = crate::fsutil::read(&profile.certificate.path)?;
                    let identity = crate::certfile::open(&profile.certificate.path, &bytes, &unprotected)?;
                    ClientCertificate::new(identity, &profile.tenant_id, &profile.app_id)
                        .map_err(|e| fail(Exit::BadInput, e))?
                }
            };
            let role_ids = [wellknown::EXCHANGE_ADMINISTRATOR.template_id];
            let services = connect::services(&urls, ui)?;
            let proof = cba_lifecycle::prove(&services, &cert, Duration::from_secs(60), &role_ids)
                .await
                .map_err(connect::lifecycle_failure)?;
            check(proof.roles.iter().any(|r| r == EXCHANGE_MANAGE_AS_APP), "the token lacks Exchange.ManageAsApp")?;
            Ok(format!(
                "an Exchange token with roles [{}] and wids [{}]",
                proof.roles.join(", "),
                proof.wids.unwrap_or_default().join(", ")
            ))
        }
        .await;
        ok = demo.record("token", &command, t, outcome);
    }

    // 4. rotate
    if ok {
        let command = format!("cba cert rotate --profile {} --overlap 0", profile_path.display());
        demo.announce(
            4,
            &command,
            &[
                "App registrations → the app → Certificates & secrets → Upload certificate (the new .cer)",
                "update every script to the new PFX, check it signs in",
                "→ delete the old certificate",
            ],
        );
        let t = Instant::now();
        let outcome = async {
            let before = store.read()?.certificate;
            let old = before.thumbprint_sha1;
            // No overlap: the demo shows a whole rotation, the old key removed in the same run.
            let request = RotateRequest {
                if_expiring_within: None,
                days: 365,
                wait: Duration::from_secs(120),
                overlap: Duration::ZERO,
                prove_in: Vec::new(),
            };
            let report = rotate::execute(&store, &urls, None, &unprotected, &request, ui).await?;
            let new = report.new_thumbprint_sha1.clone().unwrap_or_default();
            let state = sim.state().await;
            let keys: Vec<&str> = state
                .primary()
                .applications
                .iter()
                .flat_map(|a| &a.key_credentials)
                .map(|k| k.thumbprint_sha1.as_str())
                .collect();
            check(keys == [new.as_str()], format!("the app's certificates are {keys:?}, expected only the new {new}"))?;
            let profile = store.read()?;
            check(
                profile.certificate.thumbprint_sha1 == new
                    && profile.previous_certificate.is_none()
                    && profile.retired.is_empty(),
                "the profile does not name the new certificate alone",
            )?;
            check(profile.certificate.path == before.path, "the certificate's path changed")?;
            Ok(format!(
                "{old} → {new} at the same path {} (addKey and removeKey by the app itself, no admin); {} requests",
                before.path.display(),
                report.requests
            ))
        }
        .await;
        ok = demo.record("rotate", &command, t, outcome);
    }

    // 5. status again
    if ok {
        ok = status_step(&mut demo, 5, &profile_path, &unprotected, &urls, admin()).await;
    }

    // 6. teardown (also after a failed step, to show it cleans up)
    let command = format!("cba teardown --profile {} --yes", profile_path.display());
    demo.announce(
        6,
        &command,
        &[
            "Roles & admins → Exchange Administrator → remove the assignment",
            "Enterprise applications → the app → Permissions → revoke; → Properties → Delete",
            "App registrations → the app → Delete",
        ],
    );
    let t = Instant::now();
    let outcome = async {
        let profile = store.read().ok();
        let request = match &profile {
            Some(p) => TeardownRequest::for_profile(p),
            None => TeardownRequest {
                tenant: sim.tenant_domain().to_string(),
                app: cba_graph::provision::AppRef::Name(APP.to_string()),
                label: format!("{APP:?}"),
                interrupted_setup: None,
            },
        };
        let settings = teardown::Settings {
            store: Some(store.clone()),
            profile,
            request,
            urls: urls.clone(),
            admin: admin(),
            delete_files: false,
            ui,
            exchange_admin: None,
        };
        let report = teardown::execute(&settings).await?;
        let state = sim.state().await;
        let t = state.primary();
        check(
            t.applications.is_empty()
                && t.custom_service_principals().count() == 0
                && t.app_role_assignments.is_empty()
                && t.role_assignments.is_empty(),
            "objects are left in the tenant",
        )?;
        Ok(format!("removed {}; the tenant is as before", report.removed.join(", ")))
    }
    .await;
    let torn_down = demo.record("teardown", &command, t, outcome);
    ok = ok && torn_down;

    let requests = sim.requests().await;
    let throttled = requests.iter().filter(|r| r.status == 429).count();
    let kept = args.keep.then(|| folder.display().to_string());
    drop(guard);
    Ok(Report {
        ok: ok && demo.steps.len() == demo.total,
        steps: demo.steps,
        replication_delay_ms: args.replication_delay_ms,
        throttle_every: args.throttle_every,
        sim_requests: requests.len(),
        sim_throttled: throttled,
        elapsed_ms: started.elapsed().as_millis() as u64,
        folder: kept,
    })
}

async fn status_step(
    demo: &mut Demo,
    n: usize,
    profile_path: &Path,
    password: &PasswordArgs,
    urls: &Urls,
    admin: AdminCredential,
) -> bool {
    let command = format!("cba status --profile {} --admin token", profile_path.display());
    demo.announce(
        n,
        &command,
        &[
            "App registrations → the app → Certificates & secrets (thumbprint, expiry); → API permissions (granted?)",
            "Roles & admins → Exchange Administrator → Assignments; then try Connect-ExchangeOnline",
        ],
    );
    let t = Instant::now();
    let ui = demo.ui;
    let outcome = async {
        let profile = FileStore::new(profile_path).read()?;
        let settings = status::Settings {
            profile_path: Some(profile_path.to_path_buf()),
            target: status::Target::from_profile(&profile),
            password: password.clone(),
            urls: urls.clone(),
            admin: Some(admin),
            wait: Some(Duration::from_secs(60)),
            // Right after setup: its proof accepts a token without `wids` (no role replicated yet), so Graph
            // may not list the role assignment for a moment.
            replication: Replication::Expected,
            ui,
            exchange_admin: None,
        };
        let report = status::execute(&settings).await?;
        status::verdict(&report)?;
        Ok(format!("all {} checks passed", report.checks.len()))
    }
    .await;
    demo.record("status", &command, t, outcome)
}

/// The summary for people.
pub fn text(r: &Report) -> String {
    let mut out = String::from("\ncba demo summary\n");
    for s in &r.steps {
        out.push_str(&format!(
            "  {} {:<9} {:>6.1} s  {}\n",
            if s.ok { "ok  " } else { "FAIL" },
            s.step,
            s.elapsed_ms as f64 / 1000.0,
            s.detail
        ));
    }
    out.push_str(&format!(
        "{} in {:.1} s; the simulated tenant answered {} requests, {} of them throttled (429), and kept every object hidden for {} ms after its creation.\n",
        if r.ok { "Every step did what it should" } else { "Some steps FAILED" },
        r.elapsed_ms as f64 / 1000.0,
        r.sim_requests,
        r.sim_throttled,
        r.replication_delay_ms
    ));
    if let Some(folder) = &r.folder {
        out.push_str(&format!("Files kept in {folder}\n"));
    }
    out.push_str("Against your tenant: cba setup --tenant <you>.onmicrosoft.com --name <app>   (cba setup --help)\n");
    out
}
