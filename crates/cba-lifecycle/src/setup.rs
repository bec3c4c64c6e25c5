//! Setup: admin sign-in → app, certificate, service principal, grant, role (cba-graph's
//! `provision::apply`) → an Exchange token as proof → the profile.
//!
//! Crash safety beyond cba-graph's "list before create": the profile is saved (marked incomplete) before
//! the admin signs in, and again the moment the app is created, with the app's object id. A rerun with
//! that profile first waits until the app is visible by id and then until the name look-up lists it, so an
//! app created just before a crash is adopted rather than created twice while Entra replicates.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cba_graph::provision::{self, Change, Event as GraphEvent, Step};
use cba_graph::wellknown::Role;
use cba_graph::{GraphClient, Replication};
use serde::Serialize;

use crate::admin::{self, AdminCredential};
use crate::exchange_roles::{self, ExchangeReport, ExchangeSetup};
use crate::profile::{self, CertificateRef, Profile, ProfileStore, RoleAssignment};
use crate::progress::ProgressExt as _;
use crate::{Credential, Error, Services, key_credential};

/// What to set up.
#[derive(Debug, Clone)]
pub struct SetupRequest {
    /// The tenant: id (GUID) or domain.
    pub tenant: String,
    /// The app's display name.
    pub name: String,
    /// Directory roles to assign.
    pub roles: Vec<Role>,
    /// The certificate and what signs with its key (the proof signs with it).
    pub credential: Credential,
    /// Where the certificate is kept.
    pub certificate: CertificateRef,
    /// The certificate was made by this run.
    pub new_certificate: bool,
    /// Look only (GETs), write nothing here or in the tenant.
    pub dry_run: bool,
    /// Make the app multi-tenant (`signInAudience` AzureADMultipleOrgs), switching an existing single-tenant
    /// app with a PATCH. A profile that says so keeps it so without being asked again.
    pub multi_tenant: bool,
    /// How long to wait out replication and throttling, the proof included.
    pub wait: Duration,
    /// Exchange roles through a role group instead of (or, with `keep_entra_role`, besides) the Entra `roles`.
    pub exchange: Option<ExchangeSetup>,
}

/// What setup found, changed and proved (the `cba setup --output json` document, docs/cli-json.md).
#[derive(Debug, Clone, Serialize)]
pub struct SetupReport {
    /// A dry run: nothing was written.
    pub dry_run: bool,
    /// False when a rerun found everything in place.
    pub changed: bool,
    /// The tenant id (or the tenant as given, until known).
    pub tenant_id: String,
    /// The tenant's domain, when known.
    pub tenant_domain: Option<String>,
    /// The app's display name.
    pub app_name: String,
    /// The app is (or, for a dry run, would be) multi-tenant.
    pub multi_tenant: bool,
    /// This run switched an existing single-tenant app to multi-tenant (`to_switch` for a dry run).
    pub switched_to_multi_tenant: bool,
    /// Client id.
    pub app_id: Option<String>,
    /// Object id.
    pub app_object_id: Option<String>,
    /// The app's service principal.
    pub service_principal_id: Option<String>,
    /// The Exchange.ManageAsApp grant.
    pub grant_id: Option<String>,
    /// The role assignments.
    pub role_assignments: Vec<RoleReport>,
    /// The certificate.
    pub certificate: CertificateReport,
    /// Steps that created something (`to_create` for a dry run).
    pub created: Vec<String>,
    /// Steps already in place.
    pub unchanged: Vec<String>,
    /// The proof: the Exchange token's `roles` (null for a dry run).
    pub token_roles: Option<Vec<String>>,
    /// The proof token's `wids`.
    pub token_wids: Option<Vec<String>>,
    /// Where the profile is kept (null for a dry run).
    pub profile: Option<String>,
    /// Graph requests plus proof-token requests, retries included (the admin's sign-in not counted).
    pub requests: u32,
    /// Sequential round trips on the critical path (one per call, retries not counted).
    pub round_trip_depth: u32,
    /// Time spent.
    pub elapsed_ms: u64,
    /// The Exchange role group, when the request asked for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange: Option<ExchangeReport>,
}

/// A role and its assignment.
#[derive(Debug, Clone, Serialize)]
pub struct RoleReport {
    /// Its name.
    pub role: String,
    /// Its template id.
    pub template_id: String,
    /// The assignment, if it exists.
    pub assignment_id: Option<String>,
}

/// The certificate registered.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateReport {
    /// Where it is kept.
    pub path: Option<String>,
    /// The DER certificate.
    pub cer_path: Option<String>,
    /// SHA-1 thumbprint.
    pub thumbprint_sha1: String,
    /// notAfter.
    pub not_after: String,
    /// Made by this run.
    pub new: bool,
}

impl SetupReport {
    /// The profile this report describes, for a caller that wants to show next steps.
    fn certificate(request: &SetupRequest) -> CertificateReport {
        CertificateReport {
            path: Some(request.certificate.path.display().to_string()),
            cer_path: request.certificate.cer_path.as_ref().map(|p| p.display().to_string()),
            thumbprint_sha1: request.certificate.thumbprint_sha1.clone(),
            not_after: cba_token::jwt::rfc3339(request.credential.certificate().not_after()),
            new: request.new_certificate,
        }
    }
}

/// A fresh profile for `request` (incomplete: nothing in the tenant is known yet).
fn new_profile(services: &Services, request: &SetupRequest) -> Profile {
    Profile {
        version: profile::VERSION,
        cloud: services.cloud.name().to_string(),
        endpoints: services.endpoints.clone(),
        incomplete: true,
        updated_at: None,
        tenant_id: request.tenant.clone(),
        tenant_domain: None,
        app_name: request.name.clone(),
        app_unique_name: Some(unique_name_for(&request.name)),
        app_id: String::new(),
        multi_tenant: false,
        app_object_id: String::new(),
        service_principal_id: String::new(),
        grant_id: None,
        role_assignments: Vec::new(),
        certificate: request.certificate.clone(),
        previous_certificate: None,
        pending_certificate: None,
        retired: Vec::new(),
        exchange: None,
    }
}

pub(crate) fn save(services: &Services, store: &dyn ProfileStore, profile: &mut Profile) -> Result<(), Error> {
    profile.updated_at = Some(cba_token::jwt::rfc3339(services.now()));
    store.save(profile).map_err(Error::store(store))
}

/// Run setup: create only what is missing, prove it with a token, record it in `store`. Rerunnable: after
/// success it changes nothing; after a crash at any point it finishes the job with no duplicates.
pub async fn setup(
    services: &Services,
    store: &dyn ProfileStore,
    admin_credential: &AdminCredential,
    request: &SetupRequest,
) -> Result<SetupReport, Error> {
    let started = services.now();
    let progress = services.progress.as_ref();
    let existing = store.load().map_err(Error::store(store))?;
    if let Some(p) = &existing
        && !p.app_name.eq_ignore_ascii_case(&request.name)
    {
        return Err(Error::ProfileOfOtherApp {
            store: store.describe(),
            profile_app: p.app_name.clone(),
            requested: request.name.clone(),
        });
    }
    if let Some(exchange) = &request.exchange {
        exchange_roles::check(&exchange.roles)?;
        if !request.roles.is_empty() && !exchange.keep_entra_role {
            return Err(Error::Invalid {
                what: "roles",
                value: request.roles.iter().map(|r| r.name).collect::<Vec<_>>().join(","),
                reason: "an Exchange role group and an Entra directory role add up: drop the Entra role, or keep it \
                         on purpose (keep_entra_role)"
                    .into(),
            });
        }
    }
    if let Some(problem) = request.credential.problems(services.now()).into_iter().next() {
        return Err(Error::UnusableCertificate { location: request.certificate.path.display().to_string(), problem });
    }
    let certificate = request.credential.certificate();
    let thumbprint = certificate.thumbprint_sha1_hex();
    progress.detail(format!(
        "{} ({}), valid until {}",
        certificate.subject(),
        thumbprint,
        cba_token::jwt::rfc3339(certificate.not_after())
    ));

    let mut profile = existing.clone().unwrap_or_else(|| new_profile(services, request));
    if !request.certificate.thumbprint_sha1.eq_ignore_ascii_case(&profile.certificate.thumbprint_sha1) {
        // Another certificate: it becomes the one the app signs in with.
        profile.certificate = request.certificate.clone();
        profile.incomplete = true;
    }
    profile.cloud = services.cloud.name().to_string();
    profile.endpoints = services.endpoints.clone();
    if request.tenant.contains('.') {
        profile.tenant_domain = Some(request.tenant.to_ascii_lowercase());
    }
    if !request.dry_run && (existing.is_none() || profile.incomplete) {
        profile.incomplete = true;
        save(services, store, &mut profile)?;
    }

    // 2. The admin's sign-in.
    progress.stage("2/5 administrator sign-in (Microsoft Graph)");
    let session = admin::sign_in(services, admin_credential, &request.tenant).await?;
    let graph = services.graph(session.tokens.clone(), request.wait)?;
    // Before any write: the credential must act in the tenant named.
    let confirm_started = graph.requests_sent();
    let confirmed = admin::confirm_tenant(services, &graph, &session, &request.tenant).await?;
    // One round trip (GET /organization) before anything else, counted with the rest.
    let confirm_requests = graph.requests_sent() - confirm_started;
    let confirm_depth = u32::from(confirm_requests > 0);
    profile.tenant_id = confirmed.id.clone();
    if let Some(domain) = confirmed.initial_domain {
        profile.tenant_domain = Some(domain.to_ascii_lowercase());
    }
    // The Exchange sign-in right after Graph's (one prompt each, one after the other), before any write.
    let exchange_admin = match &request.exchange {
        Some(exchange) => {
            progress.stage("2/5 administrator sign-in (Exchange Online, for the role group)");
            Some(exchange_roles::admin_client(services, &exchange.admin, &profile.tenant_id, request.wait).await?)
        }
        None => None,
    };
    let mut graph_request = provision::SetupRequest::new(&request.name, key_credential(certificate), &thumbprint);
    graph_request.roles = request.roles.clone();
    let multi_tenant = request.multi_tenant || profile.multi_tenant;
    if multi_tenant {
        graph_request.sign_in_audience = cba_graph::wellknown::MULTI_TENANT.into();
    }
    graph_request.unique_name =
        Some(profile.app_unique_name.get_or_insert_with(|| unique_name_for(&request.name)).clone());

    if request.dry_run {
        progress.stage("3/5 looking up what exists (GET only)");
        let plan = provision::plan(&graph, &graph_request).await.map_err(Error::graph_in("setup (dry run)"))?;
        let exchange_plan = match (&request.exchange, &exchange_admin) {
            (Some(exchange), Some(exo)) => {
                let app_id = plan.application.as_ref().map(|a| a.app_id.as_str());
                Some(exchange_roles::plan(exo, app_id, &request.name, &exchange.roles).await?)
            }
            _ => None,
        };
        let exchange_changes = exchange_plan.as_ref().is_some_and(|x| !x.created.is_empty());
        let exchange_requests = exchange_plan.as_ref().map_or(0, |x| x.requests);
        return Ok(SetupReport {
            dry_run: true,
            changed: !plan.to_create.is_empty() || exchange_changes,
            tenant_id: profile.tenant_id.clone(),
            tenant_domain: profile.tenant_domain.clone(),
            app_name: request.name.clone(),
            multi_tenant,
            switched_to_multi_tenant: plan.to_create.contains(&Step::SignInAudience),
            app_id: plan.application.as_ref().map(|a| a.app_id.clone()),
            app_object_id: plan.application.as_ref().map(|a| a.object_id.clone()),
            service_principal_id: plan.sp_id.clone(),
            grant_id: plan.grant_id.clone(),
            role_assignments: plan
                .role_assignments
                .iter()
                .map(|r| RoleReport {
                    role: r.role.name.to_string(),
                    template_id: r.role.template_id.to_string(),
                    assignment_id: r.assignment_id.clone(),
                })
                .collect(),
            certificate: SetupReport::certificate(request),
            created: plan.to_create.iter().map(ToString::to_string).collect(),
            unchanged: plan.existing.iter().map(ToString::to_string).collect(),
            token_roles: None,
            token_wids: None,
            profile: None,
            requests: plan.requests + confirm_requests + exchange_requests,
            round_trip_depth: plan.round_trip_depth + confirm_depth + exchange_requests,
            elapsed_ms: millis(services.since(started)),
            exchange: exchange_plan,
        });
    }

    // 3–7. Graph.
    progress.stage(if request.roles.is_empty() {
        "3/5 app registration, certificate, service principal, Exchange.ManageAsApp grant"
    } else {
        "3/5 app registration, certificate, service principal, Exchange.ManageAsApp grant, role"
    });
    let mut requests = confirm_requests;
    let mut depth = confirm_depth;
    if profile.incomplete && !profile.app_object_id.is_empty() {
        let (r, d) = adopt_recorded_app(services, &graph, &profile, store, &request.name).await?;
        requests += r;
        depth += d;
    }
    let shared = Arc::new(Mutex::new(profile.clone()));
    let on_event = {
        let shared = shared.clone();
        move |event: &GraphEvent| {
            if let GraphEvent::Finished { step, change, id } = event {
                let verb = match change {
                    Change::Created => "created",
                    Change::Unchanged => "already there",
                    _ => "done",
                };
                if *step == Step::Application && *change == Change::Created {
                    // Record the new app at once: a rerun after a crash adopts it by id (see the module docs).
                    let mut p = shared.lock().unwrap_or_else(|e| e.into_inner());
                    p.app_object_id = id.clone();
                    if let Err(e) = save(services, store, &mut p) {
                        tracing::warn!(error = %e, "could not record the new app in the profile");
                    }
                }
                if *step == Step::SignInAudience && *change == Change::Created {
                    progress.detail(format!(
                        "switched app {id} from single-tenant to multi-tenant (signInAudience {}): customer \
                         tenants can now consent to it",
                        cba_graph::wellknown::MULTI_TENANT
                    ));
                } else if *step != Step::Lookup {
                    progress.detail(format!("{step}: {verb} ({id})"));
                }
            }
        }
    };
    let outcome = provision::apply(&graph, &graph_request, on_event)
        .await
        .map_err(Error::graph_in(format!("setup of app {:?} in tenant {}", request.name, request.tenant)))?;
    requests += outcome.requests;
    depth += outcome.round_trip_depth;
    if outcome.changed_nothing() {
        progress.detail("nothing to change: every object was already in place");
    }

    profile.app_id = outcome.app_id.clone();
    profile.multi_tenant = multi_tenant;
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
    let mut exchange_report = None;
    if let (Some(exchange), Some(exo)) = (&request.exchange, &exchange_admin) {
        progress.stage("3/5 Exchange: service principal, role group, membership");
        let app = exchange_roles::App { app_id: &outcome.app_id, sp_object_id: &outcome.sp_id, name: &request.name };
        let left = request.wait.saturating_sub(services.since(started));
        let mut save_profile = |p: &mut Profile| save(services, store, p);
        let report =
            exchange_roles::apply(services, exo, &app, exchange, &mut profile, &mut save_profile, left).await?;
        requests += report.requests;
        depth += report.requests;
        exchange_report = Some(report);
    } else if request.exchange.is_none() && profile.exchange.is_some() {
        progress.detail("the profile records an Exchange role group; this run left it as it is");
    }
    profile.incomplete = false;
    // Saved before the proof: if the proof times out, status and token work from it.
    save(services, store, &mut profile)?;

    // 8. Prove it.
    progress.stage("4/5 proof: an app-only Exchange token with the certificate");
    let client_cert = request
        .credential
        .client_certificate(&request.tenant, &outcome.app_id)
        .map_err(Error::token_in("the certificate"))?;
    let role_ids: Vec<&str> = request.roles.iter().map(|r| r.template_id).collect();
    let left = request.wait.saturating_sub(services.since(started));
    let proof = crate::prove(services, &client_cert, left, &role_ids).await?;
    requests += proof.requests;
    depth += proof.requests;
    progress.detail(format!("roles: [{}] after {:.1} s", proof.roles.join(", "), proof.elapsed.as_secs_f64()));
    if let (Some(exchange), Some(report)) = (&request.exchange, exchange_report.as_mut()) {
        let (r, d) =
            prove_exchange(services, request, exchange, &proof, client_cert, exchange_admin.as_ref(), report, started)
                .await?;
        requests += r;
        depth += d;
    }

    // 9. The profile.
    progress.stage(format!("5/5 profile {}", store.describe()));
    if let Some(tid) = &proof.tenant_id
        && profile.tenant_id != *tid
    {
        profile.tenant_id = tid.clone();
        save(services, store, &mut profile)?;
    }

    Ok(SetupReport {
        dry_run: false,
        changed: !outcome.changed_nothing()
            || request.new_certificate
            || exchange_report
                .as_ref()
                .is_some_and(|x| !x.created.is_empty() || !x.removed.is_empty() || x.customization_enabled),
        tenant_id: profile.tenant_id.clone(),
        tenant_domain: profile.tenant_domain.clone(),
        app_name: request.name.clone(),
        multi_tenant,
        switched_to_multi_tenant: outcome.created.contains(&Step::SignInAudience),
        app_id: Some(outcome.app_id.clone()),
        app_object_id: Some(outcome.app_object_id.clone()),
        service_principal_id: Some(outcome.sp_id.clone()),
        grant_id: Some(outcome.grant_id.clone()),
        role_assignments: profile
            .role_assignments
            .iter()
            .map(|r| RoleReport {
                role: r.role.clone(),
                template_id: r.template_id.clone(),
                assignment_id: Some(r.id.clone()),
            })
            .collect(),
        certificate: SetupReport::certificate(request),
        created: outcome.created.iter().map(ToString::to_string).collect(),
        unchanged: outcome.unchanged.iter().map(ToString::to_string).collect(),
        token_roles: Some(proof.roles),
        token_wids: proof.wids,
        profile: Some(store.describe()),
        requests,
        round_trip_depth: depth,
        elapsed_ms: millis(services.since(started)),
        exchange: exchange_report,
    })
}

/// The least-privilege proof: the token has no `wids` (no Entra role, unless kept), the app's own token runs a
/// read cmdlet its roles allow (waiting out RBAC propagation within `--wait`), and Exchange reports the write
/// scope's filter as asked. Returns (requests, round trips).
#[allow(clippy::too_many_arguments, reason = "setup's own state, passed down once")]
async fn prove_exchange(
    services: &Services,
    request: &SetupRequest,
    exchange: &ExchangeSetup,
    proof: &crate::Proof,
    client_cert: cba_token::ClientCertificate,
    admin: Option<&exchange_roles::Exo>,
    report: &mut ExchangeReport,
    started: time::OffsetDateTime,
) -> Result<(u32, u32), Error> {
    let progress = services.progress.as_ref();
    if !exchange.keep_entra_role && proof.wids.as_ref().is_some_and(|w| !w.is_empty()) {
        return Err(Error::ExchangeObject {
            object: format!("the Exchange token of app {}", client_cert.client_id()),
            problem: format!(
                "it carries Entra directory roles (wids [{}]) besides the role group: remove the role assignment \
                 (cba status shows it), or keep it on purpose with --keep-entra-role",
                proof.wids.as_deref().unwrap_or_default().join(", ")
            ),
        });
    }
    let left = request.wait.saturating_sub(services.since(started));
    let app = exchange_roles::app_client(services, client_cert, left)?;
    match exchange_roles::proof_cmdlet(&report.roles) {
        Some((cmdlet, params)) => {
            progress.stage(format!(
                "4/5 proof: the app runs {cmdlet} with its own token (role group {})",
                report.role_group
            ));
            let waited = exchange_roles::prove_access(services, &app, cmdlet, &params, left).await?;
            progress.detail(format!("{cmdlet} allowed after {:.1} s", waited.as_secs_f64()));
            report.proof_cmdlet = Some(cmdlet.to_string());
            report.rbac_wait_ms = millis(waited);
        }
        None => progress.detail(format!(
            "no read cmdlet known for the roles [{}]: the app's access is not proven by a cmdlet",
            report.roles.join(", ")
        )),
    }
    let mut requests = app.requests();
    if let (Some(name), Some(asked), Some(admin)) = (&report.scope, scope_asked(&exchange.roles), admin) {
        let before = admin.requests();
        let found = exchange_roles::scope_filter(admin, name).await?;
        requests += admin.requests() - before;
        match found {
            Some(f) if exchange_roles::same_filter(&f, asked) => {
                progress.detail(format!("write scope {name}: {f}"));
                report.write_scope = Some(f);
            }
            other => {
                return Err(Error::ExchangeObject {
                    object: format!("management scope {name:?}"),
                    problem: format!("Exchange reports the filter {other:?}, not {asked:?}"),
                });
            }
        }
    }
    report.requests += requests;
    Ok((requests, requests))
}

fn scope_asked(roles: &exchange_roles::ExchangeRoles) -> Option<&str> {
    match roles {
        exchange_roles::ExchangeRoles::Custom { write_scope, .. } => write_scope.as_deref(),
        exchange_roles::ExchangeRoles::Group(_) => None,
    }
}

/// The `uniqueName` setup creates an app by: `cba-` + the name's safe characters + a hash of the whole name
/// (case-folded, as Graph compares display names), so the same name always gives the same key, even when
/// the profile was lost, and names that differ only in punctuation do not collide.
pub fn unique_name_for(display_name: &str) -> String {
    let folded = display_name.trim().to_lowercase();
    let slug: String = folded
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '-' })
        .take(64)
        .collect();
    // FNV-1a, 64 bits: stable across versions and platforms (unlike std's hasher).
    let hash = folded.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("cba-{slug}-{hash:016x}")
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A previous run created the app (the profile has its object id) and stopped. Wait until Entra shows it
/// by id and then lists it by name, so `provision::apply` adopts it instead of creating a second one.
/// Returns (requests, round trips).
async fn adopt_recorded_app(
    services: &Services,
    graph: &GraphClient,
    profile: &Profile,
    store: &dyn ProfileStore,
    name: &str,
) -> Result<(u32, u32), Error> {
    let before = graph.requests_sent();
    let id = &profile.app_object_id;
    // Only a recent record can be waiting on replication; an old one naming a missing app means it is gone.
    let recent = profile
        .updated_at
        .as_deref()
        .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .is_some_and(|t| services.now() - t < time::Duration::minutes(15));
    let replication = if recent { Replication::Expected } else { Replication::NotExpected };
    match graph.get_application(id, replication).await {
        Ok(app) if app.display_name.eq_ignore_ascii_case(name) => {
            services.progress.detail(format!(
                "found app {} from the previous run; waiting until the name look-up lists it",
                app.app_id
            ));
            cba_http::with_retry_on(
                services.clock.as_ref(),
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
            .0
            .map_err(Error::graph_in(format!("looking up app {name:?}")))?;
        }
        Ok(app) => {
            return Err(Error::RecordedAppRenamed {
                store: store.describe(),
                app_object_id: id.clone(),
                now_named: app.display_name,
                expected: name.to_string(),
            });
        }
        Err(e) if e.is_not_found() => {
            services
                .progress
                .detail(format!("the app {id} recorded by the previous run no longer exists; starting afresh"));
        }
        Err(e) => return Err(Error::Graph { doing: format!("looking up app {id} from the profile"), source: e }),
    }
    let requests = graph.requests_sent() - before;
    Ok((requests, requests.min(2)))
}
