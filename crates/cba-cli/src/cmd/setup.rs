//! `cba setup`: certificate → admin sign-in → app, certificate, service principal, grant, role (cba-graph's
//! `provision::apply`) → an Exchange token as proof → the profile → what to run next.
//!
//! Crash safety beyond cba-graph's "list before create": the profile is written (marked incomplete) as soon
//! as the certificate exists and again the moment the app is created, with the app's object id. A rerun
//! with that profile first waits until the app is visible by id and then until the name look-up lists it,
//! so an app created just before a crash is adopted rather than created twice while Entra replicates.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cba_graph::provision::{self, Change, Event, Step};
use cba_graph::wellknown::{self, Role};
use cba_graph::{GraphClient, Replication};
use cba_token::ClientCertificate;
use serde::Serialize;
use time::OffsetDateTime;

use crate::Global;
use crate::cmd::cert::{self, NewCertOptions};
use crate::connect::{self, Admin, AdminArgs, EndpointArgs, Ui, Urls};
use crate::exit::{Exit, fail};
use crate::output;
use crate::profile::{CertificateRef, Profile, RoleAssignment};
use crate::secrets::PasswordArgs;

const EXAMPLES: &str = "\
Examples:
  cba setup --tenant contoso.onmicrosoft.com --name contoso-exo            # device-code sign-in, new certificate
  cba setup --tenant contoso.onmicrosoft.com --name contoso-exo --dry-run  # what exists, what would be made
  cba setup --tenant contoso.onmicrosoft.com --name contoso-exo --cert ./exo.pfx --role 'Exchange Recipient Administrator'
  CBA_GRAPH_TOKEN=... cba setup --admin token --tenant <tenant_id> --name demo \\
      --authority-host <login_url> --graph-url <graph_url>                   # against `cba sim serve`

Safe to rerun: it creates only what is missing, and finishes a run that stopped midway. Writes
./NAME.pfx, ./NAME.cer (new certificate) and ./NAME.profile.json (0600, no secrets).";

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
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    #[command(flatten)]
    pub new_cert: NewCertOptions,
    /// The Entra role(s) to assign (repeatable; case-insensitive) [default: Exchange Administrator].
    #[arg(long = "role", value_name = "NAME")]
    pub roles: Vec<String>,
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
    /// How long to wait out Entra's replication and Graph's throttling (90s, 5m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = connect::parse_duration)]
    pub wait: Duration,
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// An existing file.
    File { path: PathBuf, password: PasswordArgs },
    /// Make one into the options' folder (or reuse the one a previous run recorded in the profile).
    New(NewCertOptions),
}

/// Validated settings: what [`execute`] needs (the demo builds these directly).
#[derive(Debug)]
pub struct Settings {
    pub tenant: String,
    pub name: String,
    pub cert: CertSource,
    pub roles: Vec<Role>,
    pub urls: Urls,
    pub admin: Admin,
    pub profile_path: PathBuf,
    pub dry_run: bool,
    pub wait: Duration,
    pub ui: Ui,
}

impl Settings {
    fn from_args(args: Args, global: &Global) -> anyhow::Result<Settings> {
        cert::check_file_name(&args.name)?;
        let tenant = args.tenant.trim().to_string();
        if !connect::is_guid(&tenant) && !tenant.contains('.') {
            return Err(fail(
                Exit::Usage,
                format!("--tenant {tenant:?}: give the tenant id (GUID) or its domain (contoso.onmicrosoft.com)"),
            ));
        }
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
            None => CertSource::New(args.new_cert),
        };
        let roles = if args.roles.is_empty() {
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
        let profile_path =
            connect::profile_path(args.profile).unwrap_or_else(|| PathBuf::from(format!("{}.profile.json", args.name)));
        let existing = if profile_path.exists() { Some(Profile::load(&profile_path)?) } else { None };
        let urls = Urls::resolve(&args.endpoints, existing.as_ref(), |k| std::env::var(k).ok())?;
        let admin = args.admin.resolve(|k| std::env::var(k).ok())?;
        Ok(Settings {
            tenant,
            name: args.name,
            cert,
            roles,
            urls,
            admin,
            profile_path,
            dry_run: args.dry_run,
            wait: args.wait,
            ui: Ui { style: global.style, all_waits: false },
        })
    }
}

/// The JSON document of `cba setup` (docs/cli-json.md).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dry_run: bool,
    /// False when a rerun found everything in place.
    pub changed: bool,
    pub tenant_id: String,
    pub tenant_domain: Option<String>,
    pub app_name: String,
    pub app_id: Option<String>,
    pub app_object_id: Option<String>,
    pub service_principal_id: Option<String>,
    pub grant_id: Option<String>,
    pub role_assignments: Vec<RoleJson>,
    pub certificate: CertJson,
    /// Steps that created something (`to_create` for a dry run).
    pub created: Vec<String>,
    /// Steps already in place.
    pub unchanged: Vec<String>,
    /// The proof: the Exchange token's `roles` and `wids` (null for a dry run).
    pub token_roles: Option<Vec<String>>,
    pub token_wids: Option<Vec<String>>,
    pub profile: Option<String>,
    /// Graph requests plus proof-token requests, retries included (the admin's sign-in not counted).
    pub requests: u32,
    /// Sequential round trips on the critical path (one per call, retries not counted).
    pub round_trip_depth: u32,
    pub elapsed_ms: u64,
    pub next_steps: Option<NextSteps>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoleJson {
    pub role: String,
    pub template_id: String,
    pub assignment_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CertJson {
    pub path: Option<String>,
    pub cer_path: Option<String>,
    pub thumbprint_sha1: String,
    pub not_after: String,
    /// Made by this run.
    pub new: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct NextSteps {
    pub powershell: String,
    pub powershell_windows: Vec<String>,
    pub environment: Vec<String>,
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let settings = Settings::from_args(args, global)?;
    let report = crate::runtime()?.block_on(execute(&settings))?;
    print(&report, global)
}

/// The certificate to register, loaded or made.
struct Loaded {
    identity: cba_cert::Identity,
    reference: Option<CertificateRef>,
    new: bool,
}

fn load_certificate(s: &Settings, profile: Option<&Profile>) -> anyhow::Result<Loaded> {
    let open = |path: &Path, password: &PasswordArgs, cer: Option<PathBuf>| -> anyhow::Result<Loaded> {
        let bytes = crate::fsutil::read(path)?;
        let identity = cert::open(path, &bytes, password)?;
        let reference = CertificateRef::new(&identity.certificate, path.to_path_buf(), cer);
        Ok(Loaded { identity, reference: Some(reference), new: false })
    };
    match &s.cert {
        CertSource::File { path, password } => open(path, password, None),
        CertSource::New(options) => {
            if let Some(p) = profile {
                // A previous run made (or was given) the certificate: keep using it.
                return open(&p.certificate.path, &options.password, p.certificate.cer_path.clone());
            }
            if s.dry_run {
                // Only to compute the plan: generated in memory, never written.
                let identity =
                    cba_cert::generate(&cba_cert::NewCertificate::new(&s.name)).map_err(|e| fail(Exit::Internal, e))?;
                let pfx = options.out_dir.join(format!("{}.pfx", s.name));
                let cer = options.out_dir.join(format!("{}.cer", s.name));
                let reference = CertificateRef::new(&identity.certificate, pfx, Some(cer));
                return Ok(Loaded { identity, reference: Some(reference), new: true });
            }
            let pfx = options.out_dir.join(format!("{}.pfx", s.name));
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
            let reference = CertificateRef::new(&made.identity.certificate, made.pfx_path, Some(made.cer_path));
            Ok(Loaded { identity: made.identity, reference: Some(reference), new: true })
        }
    }
}

/// Steps 1–10. Writes nothing (local or remote) when `dry_run`.
pub async fn execute(s: &Settings) -> anyhow::Result<Report> {
    let started = Instant::now();
    let ui = s.ui;
    let existing = if s.profile_path.exists() { Some(Profile::load(&s.profile_path)?) } else { None };
    if let Some(p) = &existing
        && !p.app_name.eq_ignore_ascii_case(&s.name)
    {
        return Err(fail(
            Exit::BadInput,
            format!(
                "{} is the profile of app {:?}, not {:?}: pass --profile with another file",
                s.profile_path.display(),
                p.app_name,
                s.name
            ),
        ));
    }

    // 1. The certificate.
    ui.step(if s.dry_run { "1/5 certificate (dry run: nothing is written)" } else { "1/5 certificate" });
    let loaded = load_certificate(s, existing.as_ref())?;
    let problems = loaded.identity.problems(OffsetDateTime::now_utc(), true);
    if let Some(problem) = problems.first() {
        let file = loaded.reference.as_ref().map(|r| r.path.display().to_string()).unwrap_or_default();
        return Err(fail(Exit::BadInput, format!("{file}: {problem}; use another --cert, or omit it to make one")));
    }
    let certificate = &loaded.identity.certificate;
    let thumbprint = certificate.thumbprint_sha1_hex();
    ui.detail(&format!(
        "{} ({}), valid until {}",
        certificate.subject(),
        thumbprint,
        cba_token::jwt::rfc3339(certificate.not_after())
    ));

    let mut profile = existing.clone().unwrap_or_else(|| Profile {
        version: crate::profile::VERSION,
        cloud: s.urls.cloud.name().to_string(),
        endpoints: s.urls.for_profile(),
        incomplete: true,
        tenant_id: s.tenant.clone(),
        tenant_domain: None,
        app_name: s.name.clone(),
        app_id: String::new(),
        app_object_id: String::new(),
        service_principal_id: String::new(),
        grant_id: None,
        role_assignments: Vec::new(),
        certificate: loaded.reference.clone().expect("a written certificate"),
        previous_certificate: None,
        pending_certificate: None,
    });
    if let Some(reference) = &loaded.reference
        && !reference.thumbprint_sha1.eq_ignore_ascii_case(&profile.certificate.thumbprint_sha1)
    {
        // --cert with another certificate: it becomes the one the app signs in with.
        profile.certificate = reference.clone();
        profile.incomplete = true;
    }
    profile.cloud = s.urls.cloud.name().to_string();
    profile.endpoints = s.urls.for_profile();
    if s.tenant.contains('.') {
        profile.tenant_domain = Some(s.tenant.to_ascii_lowercase());
    }
    if !s.dry_run && (existing.is_none() || profile.incomplete) {
        profile.incomplete = true;
        profile.save(&s.profile_path)?;
    }

    // 2. The admin's sign-in.
    ui.step("2/5 administrator sign-in (Microsoft Graph)");
    let (tokens, tid) = connect::admin_tokens(&s.admin, &s.urls, &s.tenant, ui).await?;
    if let Some(tid) = &tid {
        if connect::is_guid(&s.tenant) && !tid.eq_ignore_ascii_case(&s.tenant) {
            return Err(fail(
                Exit::Auth,
                format!("the administrator signed in to tenant {tid}, not {}: sign in to the right tenant", s.tenant),
            ));
        }
        profile.tenant_id = tid.clone();
    }
    let graph = connect::graph_client(&s.urls, tokens, s.wait, ui)?;
    let mut request = provision::SetupRequest::new(&s.name, connect::key_credential(certificate), &thumbprint);
    request.roles = s.roles.clone();

    if s.dry_run {
        ui.step("3/5 looking up what exists (GET only)");
        let plan = provision::plan(&graph, &request).await.map_err(|e| connect::graph_failure(e, "setup (dry run)"))?;
        return Ok(Report {
            dry_run: true,
            changed: !plan.to_create.is_empty(),
            tenant_id: profile.tenant_id.clone(),
            tenant_domain: profile.tenant_domain.clone(),
            app_name: s.name.clone(),
            app_id: plan.application.as_ref().map(|a| a.app_id.clone()),
            app_object_id: plan.application.as_ref().map(|a| a.object_id.clone()),
            service_principal_id: plan.sp_id.clone(),
            grant_id: plan.grant_id.clone(),
            role_assignments: plan
                .role_assignments
                .iter()
                .map(|r| RoleJson {
                    role: r.role.name.to_string(),
                    template_id: r.role.template_id.to_string(),
                    assignment_id: r.assignment_id.clone(),
                })
                .collect(),
            certificate: cert_json(&loaded, &thumbprint),
            created: plan.to_create.iter().map(ToString::to_string).collect(),
            unchanged: plan.existing.iter().map(ToString::to_string).collect(),
            token_roles: None,
            token_wids: None,
            profile: None,
            requests: plan.requests,
            round_trip_depth: plan.round_trip_depth,
            elapsed_ms: started.elapsed().as_millis() as u64,
            next_steps: None,
        });
    }

    // 3–7. Graph.
    ui.step("3/5 app registration, certificate, service principal, Exchange.ManageAsApp grant, role");
    let mut requests = 0;
    let mut depth = 0;
    if profile.incomplete && !profile.app_object_id.is_empty() {
        let (r, d) = adopt_recorded_app(&graph, &profile, &s.profile_path, &s.name, ui).await?;
        requests += r;
        depth += d;
    }
    let shared = Arc::new(Mutex::new(profile.clone()));
    let profile_path = s.profile_path.clone();
    let progress = {
        let shared = shared.clone();
        move |event: &Event| {
            if let Event::Finished { step, change, id } = event {
                let verb = match change {
                    Change::Created => "created",
                    Change::Unchanged => "already there",
                    _ => "done",
                };
                if *step != Step::Lookup {
                    ui.detail(&format!("{step}: {verb} ({id})"));
                }
                if *step == Step::Application && *change == Change::Created {
                    // Record the new app at once: a rerun after a crash adopts it by id (see the module docs).
                    let mut p = shared.lock().unwrap_or_else(|e| e.into_inner());
                    p.app_object_id = id.clone();
                    if let Err(e) = p.save(&profile_path) {
                        tracing::warn!(error = %e, "could not record the new app in the profile");
                    }
                }
            }
        }
    };
    let outcome = provision::apply(&graph, &request, progress)
        .await
        .map_err(|e| connect::graph_failure(e, &format!("setup of app {:?} in tenant {}", s.name, s.tenant)))?;
    requests += outcome.requests;
    depth += outcome.round_trip_depth;
    if outcome.changed_nothing() {
        ui.detail("nothing to change: every object was already in place");
    }

    profile.app_id = outcome.app_id.clone();
    profile.app_object_id = outcome.app_object_id.clone();
    profile.service_principal_id = outcome.sp_id.clone();
    profile.grant_id = Some(outcome.grant_id.clone());
    profile.role_assignments = outcome
        .role_assignments
        .iter()
        .map(|a| RoleAssignment {
            role: a.role.name.to_string(),
            template_id: a.role.template_id.to_string(),
            id: a.assignment_id.clone(),
        })
        .collect();
    if !outcome.certificate_key_id.is_empty() {
        profile.certificate.key_id = Some(outcome.certificate_key_id.clone());
    }
    profile.incomplete = false;
    // Written before the proof: if the proof times out, `cba status` and `cba token --wait` work from it.
    profile.save(&s.profile_path)?;

    // 8. Prove it.
    ui.step("4/5 proof: an app-only Exchange token with the certificate");
    let client_cert = ClientCertificate::new(loaded.identity.clone(), &s.tenant, &outcome.app_id)
        .map_err(|e| fail(Exit::BadInput, e))?;
    let role_ids: Vec<&str> = s.roles.iter().map(|r| r.template_id).collect();
    let left = s.wait.saturating_sub(started.elapsed());
    let proof = connect::prove(&s.urls, &client_cert, left, &role_ids, ui).await?;
    requests += proof.requests;
    depth += proof.requests;
    ui.detail(&format!("roles: [{}] after {:.1} s", proof.roles.join(", "), proof.elapsed.as_secs_f64()));

    // 9. The profile.
    ui.step(format!("5/5 profile {}", s.profile_path.display()));
    if let Some(tid) = &proof.tenant_id
        && profile.tenant_id != *tid
    {
        profile.tenant_id = tid.clone();
        profile.save(&s.profile_path)?;
    }

    let next = next_steps(&profile, &s.urls);
    Ok(Report {
        dry_run: false,
        changed: !outcome.changed_nothing() || loaded.new,
        tenant_id: profile.tenant_id.clone(),
        tenant_domain: profile.tenant_domain.clone(),
        app_name: s.name.clone(),
        app_id: Some(outcome.app_id.clone()),
        app_object_id: Some(outcome.app_object_id.clone()),
        service_principal_id: Some(outcome.sp_id.clone()),
        grant_id: Some(outcome.grant_id.clone()),
        role_assignments: profile
            .role_assignments
            .iter()
            .map(|r| RoleJson {
                role: r.role.clone(),
                template_id: r.template_id.clone(),
                assignment_id: Some(r.id.clone()),
            })
            .collect(),
        certificate: cert_json(&loaded, &thumbprint),
        created: outcome.created.iter().map(ToString::to_string).collect(),
        unchanged: outcome.unchanged.iter().map(ToString::to_string).collect(),
        token_roles: Some(proof.roles),
        token_wids: proof.wids,
        profile: Some(s.profile_path.display().to_string()),
        requests,
        round_trip_depth: depth,
        elapsed_ms: started.elapsed().as_millis() as u64,
        next_steps: Some(next),
    })
}

/// A previous run created the app (the profile has its object id) and stopped. Wait until Entra shows it
/// by id and then lists it by name, so `provision::apply` adopts it instead of creating a second one.
/// Returns (requests, round trips).
async fn adopt_recorded_app(
    graph: &GraphClient,
    profile: &Profile,
    path: &Path,
    name: &str,
    ui: Ui,
) -> anyhow::Result<(u32, u32)> {
    let before = graph.requests_sent();
    let id = &profile.app_object_id;
    // Only a recent profile can be waiting on replication; an old one naming a missing app means it is gone.
    let recent = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < Duration::from_secs(15 * 60));
    let replication = if recent { Replication::Expected } else { Replication::NotExpected };
    match graph.get_application(id, replication).await {
        Ok(app) if app.display_name.eq_ignore_ascii_case(name) => {
            ui.detail(&format!(
                "found app {} from the previous run; waiting until the name look-up lists it",
                app.app_id
            ));
            cba_http::with_retry(
                graph.retry_policy(),
                |_| graph.find_applications_by_name(name),
                |outcome| match outcome {
                    Ok(apps) if !apps.iter().any(|a| a.id.eq_ignore_ascii_case(id)) => cba_http::Verdict::Retry {
                        after: None,
                        reason: format!("waiting for replication: app {id} not listed by name yet"),
                    },
                    _ => cba_http::Verdict::Done,
                },
                |_| {},
            )
            .await
            .map_err(|e| connect::graph_failure(e, &format!("looking up app {name:?}")))?;
        }
        Ok(app) => {
            return Err(fail(
                Exit::BadInput,
                format!(
                    "the profile {} names app {id}, which is now called {:?}, not {name:?}: rename it back, or pass another --profile",
                    path.display(),
                    app.display_name
                ),
            ));
        }
        Err(e) if e.is_not_found() => {
            ui.detail(&format!("the app {id} recorded by the previous run no longer exists; starting afresh"));
        }
        Err(e) => return Err(connect::graph_failure(e, &format!("looking up app {id} from the profile"))),
    }
    let requests = graph.requests_sent() - before;
    Ok((requests, requests.min(2)))
}

fn cert_json(loaded: &Loaded, thumbprint: &str) -> CertJson {
    CertJson {
        path: loaded.reference.as_ref().map(|r| r.path.display().to_string()),
        cer_path: loaded.reference.as_ref().and_then(|r| r.cer_path.as_ref()).map(|p| p.display().to_string()),
        thumbprint_sha1: thumbprint.to_string(),
        not_after: cba_token::jwt::rfc3339(loaded.identity.certificate.not_after()),
        new: loaded.new,
    }
}

/// `-ExchangeEnvironmentName` for clouds other than the global one (docs/wire-formats.md §2).
fn exchange_environment(cloud: cba_token::Cloud) -> Option<&'static str> {
    match cloud {
        cba_token::Cloud::Global => None,
        cba_token::Cloud::UsGovHigh => Some("O365USGovGCCHigh"),
        cba_token::Cloud::UsGovDod => Some("O365USGovDoD"),
        cba_token::Cloud::China => Some("O365China"),
    }
}

/// Step 10: how to use the app from PowerShell and from scripts.
pub fn next_steps(profile: &Profile, urls: &Urls) -> NextSteps {
    let pfx = std::path::absolute(&profile.certificate.path).unwrap_or_else(|_| profile.certificate.path.clone());
    let org = profile.tenant_domain.clone().unwrap_or_else(|| "<tenant>.onmicrosoft.com".to_string());
    let env_name =
        exchange_environment(urls.cloud).map(|e| format!(" -ExchangeEnvironmentName {e}")).unwrap_or_default();
    let pfx = pfx.display().to_string();
    let quoted = pfx.replace('\'', "''");
    let powershell = format!(
        "Connect-ExchangeOnline -AppId {} -CertificateFilePath '{quoted}' -CertificatePassword (Read-Host -AsSecureString -Prompt 'PFX password') -Organization {org}{env_name}",
        profile.app_id
    );
    let windows = vec![
        format!(
            "Import-PfxCertificate -FilePath '{quoted}' -CertStoreLocation Cert:\\CurrentUser\\My -Password (Read-Host -AsSecureString -Prompt 'PFX password')"
        ),
        format!(
            "Connect-ExchangeOnline -AppId {} -CertificateThumbprint {} -Organization {org}{env_name}",
            profile.app_id, profile.certificate.thumbprint_sha1
        ),
    ];
    let mut environment = vec![
        format!("export AZURE_TENANT_ID={}", profile.tenant_id),
        format!("export AZURE_CLIENT_ID={}", profile.app_id),
        format!("export AZURE_CLIENT_CERTIFICATE_PATH={}", crate::cmd::token::shell_quote(&pfx)),
        "export AZURE_CLIENT_CERTIFICATE_PASSWORD=...   # the PFX password (cba also reads CBA_PFX_PASSWORD)"
            .to_string(),
    ];
    if urls.login != urls.cloud.login_root() || urls.cloud != cba_token::Cloud::Global {
        environment.push(format!("export AZURE_AUTHORITY_HOST={}", urls.login));
    }
    NextSteps { powershell, powershell_windows: windows, environment }
}

fn print(report: &Report, global: &Global) -> anyhow::Result<()> {
    output::print_document(global.output, report, text)
}

/// The report for people.
pub fn text(r: &Report) -> String {
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
    if let Some(n) = &r.next_steps {
        out.push_str("\nNext: Exchange Online PowerShell on any OS\n  ");
        out.push_str(&n.powershell);
        out.push_str("\nOn Windows, with the certificate in the user's store\n");
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
