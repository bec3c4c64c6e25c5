//! Fleet operations against a simulated provider tenant and its customer tenants, in process.

use std::sync::Arc;
use std::time::Duration;

use cba_graph::wellknown::EXCHANGE_ADMINISTRATOR;
use cba_lifecycle::exchange_roles::{ExchangeAdminCredential, ExchangeRoles, ExchangeSetup};
use cba_lifecycle::fleet::{self, AddRequest, FanOut, FanOutEvent, MemoryFleetStore, OnboardingState};
use cba_lifecycle::{AdminCredential, Error, Event, MemoryStore, Profile, ProfileStore as _, Progress};
use cba_sim::{Service, SimTenant, TenantFault};

use crate::support::{Recorder, Tenant, request, shared_identity};

const LAG: Duration = Duration::from_millis(300);

/// A provider tenant and `n` customer tenants in one simulator.
async fn provider(n: usize) -> Tenant {
    let sim = SimTenant::builder().tenant_name("provider").customer_tenants(n).replication_delay(LAG).start().await;
    Tenant { sim: Arc::new(sim) }
}

fn admin_of(tenant: &Tenant, name: &str) -> AdminCredential {
    AdminCredential::Token(zeroize::Zeroizing::new(tenant.sim.admin_token_for(name).expect("a tenant")))
}

fn customer(tenant: &Tenant, i: usize) -> String {
    tenant.sim.tenants()[i].domain.clone()
}

/// A multi-tenant setup in the provider's tenant.
async fn home(tenant: &Tenant) -> Profile {
    let store = MemoryStore::new();
    let services = tenant.services(Arc::new(Recorder::default()));
    let mut req = request(tenant, &shared_identity());
    req.multi_tenant = true;
    let report = cba_lifecycle::setup(&services, &store, &tenant.admin(), &req).await.expect("setup");
    assert!(report.multi_tenant && !report.switched_to_multi_tenant, "{report:?}");
    store.get().expect("a profile")
}

fn add_request(tenant: &str) -> AddRequest {
    AddRequest {
        tenant: tenant.to_string(),
        roles: vec![EXCHANGE_ADMINISTRATOR],
        credential: shared_identity().into(),
        consent_wait: None,
        wait: Duration::from_secs(120),
        exchange: None,
    }
}

async fn onboard(tenant: &Tenant, home: &Profile, store: &MemoryFleetStore, customers: &[usize]) {
    let services = tenant.services(Arc::new(Recorder::default()));
    for &i in customers {
        let name = customer(tenant, i);
        let report = fleet::add(
            &services,
            store,
            home,
            "home.profile.json",
            Some(&admin_of(tenant, &name)),
            &add_request(&name),
        )
        .await
        .unwrap_or_else(|e| panic!("add {name}: {e:?}"));
        assert_eq!(report.state, OnboardingState::Onboarded, "{report:?}");
    }
}

#[tokio::test]
async fn a_single_tenant_app_is_switched_to_multi_tenant_once() {
    let tenant = provider(0).await;
    let store = MemoryStore::new();
    let services = tenant.services(Arc::new(Recorder::default()));
    let identity = shared_identity();
    cba_lifecycle::setup(&services, &store, &tenant.admin(), &request(&tenant, &identity)).await.expect("setup");
    let audience = |s: &cba_sim::StateSnapshot| s.primary().applications[0].sign_in_audience.clone();
    assert_eq!(audience(&tenant.state().await), "AzureADMyOrg");
    assert!(!store.get().unwrap().multi_tenant);

    let mut rerun = request(&tenant, &identity);
    rerun.new_certificate = false;
    rerun.multi_tenant = true;
    let report = cba_lifecycle::setup(&services, &store, &tenant.admin(), &rerun).await.expect("switch");
    assert!(report.switched_to_multi_tenant && report.changed, "{report:?}");
    assert_eq!(audience(&tenant.state().await), "AzureADMultipleOrgs");
    assert!(store.get().unwrap().multi_tenant);

    // Again, without the flag: the profile keeps it multi-tenant, nothing changes.
    rerun.multi_tenant = false;
    let again = cba_lifecycle::setup(&services, &store, &tenant.admin(), &rerun).await.expect("rerun");
    assert!(!again.switched_to_multi_tenant && again.created.is_empty() && again.multi_tenant, "{again:?}");
    assert_eq!(audience(&tenant.state().await), "AzureADMultipleOrgs");
}

#[tokio::test]
async fn three_tenants_by_admin_token_one_by_consent_url_and_wait() {
    let tenant = provider(4).await;
    let home = home(&tenant).await;
    let store = MemoryFleetStore::new();
    onboard(&tenant, &home, &store, &[1, 2, 3]).await;
    let state = tenant.state().await;
    for i in 1..=3 {
        let t = state.tenant(&customer(&tenant, i)).unwrap();
        let sps: Vec<_> = t.custom_service_principals().collect();
        assert_eq!(sps.len(), 1, "one service principal in customer {i}");
        assert_eq!(sps[0].app_id, home.app_id);
        assert_eq!(t.role_assignments.len(), 1);
        assert_eq!(t.app_role_assignments.len(), 1);
        assert!(t.applications.is_empty(), "the app stays in the provider's tenant");
    }

    // A rerun changes nothing.
    let services = tenant.services(Arc::new(Recorder::default()));
    let name = customer(&tenant, 2);
    let again = fleet::add(&services, &store, &home, "home", Some(&admin_of(&tenant, &name)), &add_request(&name))
        .await
        .expect("rerun");
    assert!(again.created.is_empty(), "{again:?}");
    // Without the admin's sign-in, an onboarded tenant is checked with one token request, not sent back to consent.
    let check = fleet::add(&services, &store, &home, "home", None, &add_request(&name)).await.expect("check");
    assert_eq!(check.state, OnboardingState::Onboarded, "{check:?}");
    assert!(check.pending.is_empty() && check.requests == 1, "{check:?}");
    assert_eq!(store.get().unwrap().tenant(&name).unwrap().state, OnboardingState::Onboarded);
    assert_eq!(tenant.state().await.tenant(&name).unwrap().custom_service_principals().count(), 1);

    // The fourth: no admin sign-in. Without a wait, the URL and the entry awaiting consent.
    let fourth = customer(&tenant, 4);
    let report = fleet::add(&services, &store, &home, "home", None, &add_request(&fourth)).await.expect("consent URL");
    assert_eq!(report.state, OnboardingState::AwaitingConsent);
    let url = report.consent_url.clone().expect("a consent URL");
    let fourth_id = tenant.sim.tenant(&fourth).unwrap().id.clone();
    assert_eq!(url, format!("{}/{fourth_id}/adminconsent?client_id={}", tenant.sim.login_url(), home.app_id));
    assert_eq!(store.get().unwrap().tenant(&fourth).unwrap().state, OnboardingState::AwaitingConsent);

    // The customer's admin opens the page; with a wait, the admin accepts while cba polls.
    let page = cba_token::reqwest::get(&url).await.expect("the consent page");
    assert!(page.status().is_success() || page.status().is_redirection(), "{}", page.status());
    struct Clicks(Arc<SimTenant>, String, String, Recorder);
    impl Progress for Clicks {
        fn event(&self, event: &Event) {
            if matches!(event, Event::Wait { .. }) {
                self.0.approve_consent(&self.1, &self.2);
            }
            self.3.event(event);
        }
    }
    let clicks = Arc::new(Clicks(tenant.sim.clone(), fourth_id.clone(), home.app_id.clone(), Recorder::default()));
    let services = tenant.services(clicks.clone());
    let mut waiting = add_request(&fourth);
    waiting.consent_wait = Some(Duration::from_secs(600));
    let report = fleet::add(&services, &store, &home, "home", None, &waiting).await.expect("consent arrives");
    assert_eq!(report.state, OnboardingState::Consented, "no role without the admin's sign-in: {report:?}");
    assert!(report.token_roles.as_ref().unwrap().contains(&"Exchange.ManageAsApp".to_string()));
    assert!(report.pending.iter().any(|p| p.contains("Exchange Administrator")), "{:?}", report.pending);
    let waits = clicks.3.events.lock().unwrap().iter().filter(|e| matches!(e, Event::Wait { .. })).count();
    assert!(waits >= 1, "it waited for the consent");
    let fleet = store.get().unwrap();
    assert_eq!(fleet.tenants.len(), 4);
    let entry = fleet.tenant(&fourth_id).unwrap();
    assert_eq!(entry.state, OnboardingState::Consented);
    assert!(entry.service_principal_id.is_some(), "read off the token's oid");

    // Then the customer's admin signs in after all: the role step finishes it.
    let done = fleet::add(&services, &store, &home, "home", Some(&admin_of(&tenant, &fourth)), &add_request(&fourth))
        .await
        .expect("finish");
    assert_eq!(done.state, OnboardingState::Onboarded);
    assert_eq!(tenant.state().await.tenant(&fourth).unwrap().custom_service_principals().count(), 1);
}

#[tokio::test]
async fn a_consent_that_never_comes_ends_the_wait_with_the_url() {
    let tenant = provider(1).await;
    let home = home(&tenant).await;
    let store = MemoryFleetStore::new();
    let services = tenant.services(Arc::new(Recorder::default()));
    let mut req = add_request(&customer(&tenant, 1));
    req.consent_wait = Some(Duration::from_secs(60));
    let err = fleet::add(&services, &store, &home, "home", None, &req).await.unwrap_err();
    assert!(matches!(err, Error::ConsentPending { .. }), "{err:?}");
    assert!(err.to_string().contains("adminconsent?client_id="), "{err}");
}

#[tokio::test]
async fn a_wrong_tenant_admin_token_is_refused_before_any_write() {
    let tenant = provider(2).await;
    let home = home(&tenant).await;
    let store = MemoryFleetStore::new();
    let services = tenant.services(Arc::new(Recorder::default()));
    let before = tenant.sim.requests().await.len();
    let (first, second) = (customer(&tenant, 1), customer(&tenant, 2));
    let err = fleet::add(&services, &store, &home, "home", Some(&admin_of(&tenant, &second)), &add_request(&first))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WrongTenant { .. }), "{err:?}");
    let writes: Vec<_> =
        tenant.sim.requests().await[before..].iter().filter(|r| r.method != "GET").map(|r| r.path.clone()).collect();
    assert!(writes.is_empty(), "no write: {writes:?}");
    assert!(store.get().is_none_or(|f| f.tenants.is_empty()), "nothing recorded");
    for t in [&first, &second] {
        assert_eq!(tenant.state().await.tenant(t).unwrap().custom_service_principals().count(), 0);
    }

    // The provider's own tenant is not a customer tenant, whatever the credential.
    let own = tenant.sim.tenant_domain().to_string();
    let err =
        fleet::add(&services, &store, &home, "home", Some(&tenant.admin()), &add_request(&own)).await.unwrap_err();
    assert!(matches!(err, Error::Invalid { what: "tenant", .. }), "{err:?}");
    let err = fleet::add(&services, &store, &home, "home", None, &add_request(&own)).await.unwrap_err();
    assert!(matches!(err, Error::Invalid { what: "tenant", .. }), "{err:?}");
    assert!(store.get().is_none_or(|f| f.tenants.is_empty()), "nothing recorded");
}

#[tokio::test]
async fn a_single_tenant_home_app_is_refused() {
    let tenant = provider(1).await;
    let store = MemoryStore::new();
    let services = tenant.services(Arc::new(Recorder::default()));
    cba_lifecycle::setup(&services, &store, &tenant.admin(), &request(&tenant, &shared_identity())).await.unwrap();
    let home = store.load().unwrap().unwrap();
    let name = customer(&tenant, 1);
    let err = fleet::add(
        &services,
        &MemoryFleetStore::new(),
        &home,
        "home",
        Some(&admin_of(&tenant, &name)),
        &add_request(&name),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NotMultiTenant { .. }), "{err:?}");
}

#[tokio::test]
async fn status_matrix_catches_a_removed_role_in_one_tenant() {
    let tenant = provider(3).await;
    let home = home(&tenant).await;
    let store = MemoryFleetStore::new();
    onboard(&tenant, &home, &store, &[1, 2, 3]).await;
    let fleet = store.get().unwrap();
    let services = tenant.services(Arc::new(Recorder::default()));
    let status_request = fleet::StatusRequest {
        credential: shared_identity().into(),
        concurrency: 2,
        tenants: None,
        tenant_timeout: Duration::from_secs(60),
        exchange_admin: None,
    };
    let healthy = fleet::status(&services, &fleet, &status_request, |_| {}).await.unwrap();
    assert_eq!((healthy.healthy, healthy.total), (3, 3), "{healthy:#?}");

    // The customer's admin removes the role in tenant 2.
    let broken = customer(&tenant, 2);
    let graph = cba_graph::GraphClient::builder()
        .base_url(tenant.sim.graph_url())
        .token_source(Arc::new(cba_graph::StaticToken::new(tenant.sim.admin_token_for(&broken).unwrap())))
        .build()
        .unwrap();
    let assignment = fleet.tenant(&broken).unwrap().roles[0].assignment_id.clone().unwrap();
    graph.delete_directory_role_assignment(&assignment).await.unwrap();
    tenant.sim.advance_clock(Duration::from_secs(5));

    let mut streamed = 0;
    let report = fleet::status(&services, &fleet, &status_request, |_| streamed += 1).await.unwrap();
    assert_eq!(streamed, 3);
    assert_eq!((report.healthy, report.total), (2, 3), "{report:#?}");
    let row = report.tenants.iter().find(|r| r.tenant_domain.as_deref() == Some(broken.as_str())).unwrap();
    assert_eq!((row.consent, row.grant, row.role), (Some(true), Some(true), Some(false)), "{row:?}");
    assert!(!row.healthy && row.detail.contains("role"), "{row:?}");
    fleet::record_checks(&services, &store, &report).unwrap();
    let recorded = store.get().unwrap();
    assert_eq!(recorded.tenant(&broken).unwrap().last_check.as_ref().unwrap().broken, ["role", "exchange"]);

    // A tenant whose consent is gone: consent false, not "unknown".
    let gone = customer(&tenant, 3);
    let services3 = tenant.services(Arc::new(Recorder::default()));
    fleet::remove(&services3, &store, &home, Some(&admin_of(&tenant, &gone)), None, &shared_identity().into(), &gone)
        .await
        .unwrap();
    let report = fleet::status(&services, &fleet, &status_request, |_| {}).await.unwrap();
    let row = report.tenants.iter().find(|r| r.tenant_domain.as_deref() == Some(gone.as_str())).unwrap();
    assert_eq!(row.consent, Some(false), "{row:?}");
    assert_eq!(report.healthy, 1);
}

#[tokio::test]
async fn fan_out_with_one_tenant_throttled_and_one_failing() {
    let tenant = provider(4).await;
    let home = home(&tenant).await;
    let store = MemoryFleetStore::new();
    onboard(&tenant, &home, &store, &[1, 2, 3, 4]).await;
    let fleet = store.get().unwrap();
    let throttled = tenant.sim.tenant(&customer(&tenant, 1)).unwrap().id.clone();
    let failing = tenant.sim.tenant(&customer(&tenant, 2)).unwrap().id.clone();
    tenant.sim.set_tenant_fault(&throttled, TenantFault::throttle([Service::Exchange], 2, 1));
    tenant.sim.set_tenant_fault(&failing, TenantFault::exchange_unauthorized());

    let services = tenant.services(Arc::new(Recorder::default()));
    let run = FanOut {
        cmdlet: "Get-Mailbox".into(),
        params: cba_exo::Parameters::new(),
        page_size: 2,
        concurrency: 4,
        observer: None,
    };
    let mut events = fleet::fan_out(&services, &home.app_id, &shared_identity().into(), &fleet.tenants, &run).unwrap();
    let (mut objects, mut done, mut failed) =
        (std::collections::HashMap::<String, usize>::new(), Vec::new(), Vec::new());
    use futures::StreamExt as _;
    while let Some(event) = events.next().await {
        match event {
            FanOutEvent::Page { tenant, page } => *objects.entry(tenant.to_string()).or_default() += page.len(),
            FanOutEvent::Done { tenant, .. } => done.push(tenant.to_string()),
            FanOutEvent::Failed { tenant, error } => failed.push((tenant.to_string(), error.to_string())),
            _ => {}
        }
    }
    done.sort();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, failing);
    assert_eq!(done.len(), 3, "the others complete, the throttled one too: {done:?}");
    assert!(done.contains(&throttled));
    for t in &done {
        assert_eq!(objects[t], 5, "every mailbox of {t}, over pages");
    }
    assert!(!objects.contains_key(&failing));
}

#[tokio::test]
async fn a_new_certificate_is_proven_in_every_tenant_and_remove_takes_the_app_out() {
    let tenant = provider(2).await;
    let home = home(&tenant).await;
    let store = MemoryFleetStore::new();
    onboard(&tenant, &home, &store, &[1, 2]).await;
    let fleet = store.get().unwrap();
    let services = tenant.services(Arc::new(Recorder::default()));
    let proofs =
        fleet::prove_in(&services, &home.app_id, &shared_identity().into(), &fleet.tenants, 4, Duration::from_secs(30))
            .await;
    assert!(proofs.iter().all(|p| p.ok), "{proofs:?}");
    // A certificate not on the app proves nowhere.
    let stranger = crate::support::identity();
    let proofs =
        fleet::prove_in(&services, &home.app_id, &stranger.into(), &fleet.tenants, 4, Duration::from_secs(5)).await;
    assert!(proofs.iter().all(|p| !p.ok && p.detail.is_some()), "{proofs:?}");

    // Remove without an admin: the customer is told what to do; the entry is marked.
    let first = customer(&tenant, 1);
    let report = fleet::remove(&services, &store, &home, None, None, &shared_identity().into(), &first)
        .await
        .expect("remove request");
    assert!(!report.removed && !report.customer_steps.is_empty(), "{report:?}");
    assert_eq!(store.get().unwrap().tenant(&first).unwrap().state, OnboardingState::RemovalRequested);
    // With the admin: gone from the tenant and the fleet; twice is fine.
    let report = fleet::remove(
        &services,
        &store,
        &home,
        Some(&admin_of(&tenant, &first)),
        None,
        &shared_identity().into(),
        &first,
    )
    .await
    .expect("remove");
    assert!(report.removed && report.deleted.len() >= 3, "{report:?}");
    assert_eq!(tenant.state().await.tenant(&first).unwrap().custom_service_principals().count(), 0);
    assert!(store.get().unwrap().tenant(&first).is_none());
    let err = fleet::remove(
        &services,
        &store,
        &home,
        Some(&admin_of(&tenant, &first)),
        None,
        &shared_identity().into(),
        &first,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NotInFleet { .. }), "{err:?}");
    assert_eq!(tenant.state().await.tenant(&customer(&tenant, 2)).unwrap().custom_service_principals().count(), 1);
}

#[tokio::test]
async fn add_killed_at_every_step_converges_on_rerun_with_no_duplicates() {
    // How many kill points a whole run has.
    let steps = {
        let tenant = provider(1).await;
        let home = home(&tenant).await;
        let recorder = Arc::new(Recorder::default());
        let services = tenant.services(recorder.clone());
        let name = customer(&tenant, 1);
        fleet::add(
            &services,
            &MemoryFleetStore::new(),
            &home,
            "home",
            Some(&admin_of(&tenant, &name)),
            &add_request(&name),
        )
        .await
        .expect("add");
        recorder.steps()
    };
    assert!(steps >= 6, "{steps} progress steps");
    for kill_at in 1..=steps {
        let tenant = Arc::new(provider(1).await);
        let home = home(&tenant).await;
        let store = Arc::new(MemoryFleetStore::new());
        let name = customer(&tenant, 1);
        let run = {
            let (tenant, store, home, name) = (tenant.clone(), store.clone(), home.clone(), name.clone());
            tokio::spawn(async move {
                let services = tenant.services(Arc::new(Recorder::killer(kill_at)));
                let admin = admin_of(&tenant, &name);
                fleet::add(&services, store.as_ref(), &home, "home", Some(&admin), &add_request(&name)).await.map(drop)
            })
        };
        assert!(run.await.is_err(), "killed at step {kill_at}");
        let services = tenant.services(Arc::new(Recorder::default()));
        let report =
            fleet::add(&services, store.as_ref(), &home, "home", Some(&admin_of(&tenant, &name)), &add_request(&name))
                .await
                .unwrap_or_else(|e| panic!("rerun after a kill at step {kill_at}: {e:?}"));
        assert_eq!(report.state, OnboardingState::Onboarded);
        let state = tenant.state().await;
        let t = state.tenant(&name).unwrap();
        assert_eq!(t.custom_service_principals().count(), 1, "kill at {kill_at}");
        assert_eq!(t.app_role_assignments.len(), 1, "kill at {kill_at}");
        assert_eq!(t.role_assignments.len(), 1, "kill at {kill_at}");
        let fleet = store.get().unwrap();
        assert_eq!(fleet.tenants.len(), 1, "kill at {kill_at}: {fleet:#?}");
        assert_eq!(
            fleet.tenants[0].service_principal_id.as_deref(),
            Some(report.service_principal_id.as_deref().unwrap())
        );
    }
}

#[tokio::test]
async fn a_write_is_sent_once_per_tenant_even_where_it_fails_after_running() {
    let sim = SimTenant::builder()
        .tenant_name("provider")
        .customer_tenants(3)
        .replication_delay(LAG)
        .exchange_fail_after_execute(1)
        .start()
        .await;
    let tenant = Tenant { sim: Arc::new(sim) };
    let home = home(&tenant).await;
    let store = MemoryFleetStore::new();
    onboard(&tenant, &home, &store, &[1, 2, 3]).await;
    let fleet = store.get().unwrap();
    let before = tenant.sim.requests().await.len();
    let mut params = cba_exo::Parameters::new();
    params.insert("Identity", "admin");
    params.insert("CustomAttribute1", "fleet");
    let run = FanOut { cmdlet: "Set-Mailbox".into(), params, page_size: 100, concurrency: 3, observer: None };
    let services = tenant.services(Arc::new(Recorder::default()));
    let mut events = fleet::fan_out(&services, &home.app_id, &shared_identity().into(), &fleet.tenants, &run).unwrap();
    use futures::StreamExt as _;
    let (mut done, mut unknown) = (0, 0);
    while let Some(event) = events.next().await {
        match event {
            FanOutEvent::Done { .. } => done += 1,
            FanOutEvent::Failed { error, .. } => match *error {
                Error::Exchange { source, .. } if source.is_outcome_unknown() => unknown += 1,
                other => panic!("{other:?}"),
            },
            _ => {}
        }
    }
    assert_eq!((done, unknown), (2, 1), "one tenant's write ran and was answered 500: reported, not resent");
    let sent = tenant.sim.requests().await[before..]
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("/InvokeCommand"))
        .count();
    assert_eq!(sent, 3, "one Set-Mailbox per tenant");
}

// ---- least privilege: an Exchange role group per customer tenant ------------------------------------

const VIEW_ONLY: &str = "View-Only Organization Management";
const SALES: &str = "Department -eq 'Sales'";

fn exchange_admin_of(tenant: &Tenant, name: &str) -> ExchangeAdminCredential {
    ExchangeAdminCredential::Token(zeroize::Zeroizing::new(
        tenant.sim.exchange_admin_token_for(name).expect("a tenant"),
    ))
}

fn exchange_add(tenant: &Tenant, name: &str, roles: ExchangeRoles) -> AddRequest {
    AddRequest {
        roles: Vec::new(),
        exchange: Some(ExchangeSetup {
            roles,
            keep_entra_role: false,
            enable_customization: false,
            admin: exchange_admin_of(tenant, name),
        }),
        ..add_request(name)
    }
}

fn params(v: serde_json::Value) -> cba_exo::Parameters {
    cba_exo::Parameters::from_json(v).unwrap()
}

/// The customer admin's delegated Exchange client in tenant `name`, to look and to break links.
fn customer_admin_exo(tenant: &Tenant, name: &str) -> cba_exo::ExoClient {
    let token = tenant.sim.exchange_admin_token_for(name).unwrap();
    let upn = cba_token::jwt::decode(&token).unwrap().claim_str("upn").unwrap().to_string();
    cba_exo::ExoClient::builder()
        .base_url(tenant.sim.exchange_url())
        .tenant_id(tenant.sim.tenant(name).unwrap().id.clone())
        .token_source(Arc::new(cba_exo::StaticToken::new(token)))
        .anchor_mailbox(format!("UPN:{upn}"))
        .retry_policy(cba_http::RetryPolicy::fast())
        .build()
        .unwrap()
}

/// The home app's own app-only Exchange client in tenant `name`.
fn app_exo_in(tenant: &Tenant, name: &str, app_id: &str) -> cba_exo::ExoClient {
    let services = tenant.services(Arc::new(Recorder::default()));
    let id = tenant.sim.tenant(name).unwrap().id.clone();
    let cert = cba_token::ClientCertificate::new(shared_identity(), &id, app_id).unwrap();
    let source = cba_token::CertificateTokenSource::new(services.tokens.clone(), cert, &cba_token::Resource::Exchange);
    cba_exo::ExoClient::builder()
        .base_url(tenant.sim.exchange_url())
        .tenant_id(id)
        .token_source(Arc::new(source))
        .retry_policy(cba_http::RetryPolicy::fast())
        .build()
        .unwrap()
}

async fn mailbox_in(tenant: &Tenant, name: &str, department: &str) -> String {
    let users =
        customer_admin_exo(tenant, name).collect_all("Get-User", &params(serde_json::json!({"ResultSize": 8}))).await;
    let users = users.unwrap();
    let user = users.iter().find(|u| u["Department"] == department).expect("a seeded mailbox in the department");
    user["Identity"].as_str().unwrap().to_string()
}

fn exception(e: &cba_exo::Error) -> String {
    match e {
        cba_exo::Error::Cmdlet { details, .. } => {
            details.iter().map(|d| d.exception_name().to_string()).collect::<Vec<_>>().join(",")
        }
        other => format!("{other:?}"),
    }
}

#[tokio::test]
async fn two_tenants_by_exchange_role_groups_read_write_in_scope_status_and_remove() {
    let tenant = provider(2).await;
    let home = home(&tenant).await;
    let store = MemoryFleetStore::new();
    let services = tenant.services(Arc::new(Recorder::default()));
    let (first, second) = (customer(&tenant, 1), customer(&tenant, 2));
    let group_name = format!("cba-{}", home.app_name);
    let requests = [
        (first.clone(), exchange_add(&tenant, &first, ExchangeRoles::Group(VIEW_ONLY.into()))),
        (
            second.clone(),
            exchange_add(
                &tenant,
                &second,
                ExchangeRoles::Custom {
                    roles: vec!["Mail Recipients".into(), "View-Only Recipients".into()],
                    write_scope: Some(SALES.into()),
                },
            ),
        ),
    ];
    for (name, req) in &requests {
        let report = fleet::add(&services, &store, &home, "home", Some(&admin_of(&tenant, name)), req)
            .await
            .unwrap_or_else(|e| panic!("add {name}: {e:?}"));
        assert_eq!(report.state, OnboardingState::Onboarded, "{report:?}");
        assert!(report.roles.is_empty() && report.token_wids.as_ref().is_none_or(Vec::is_empty), "{report:?}");
        let x = report.exchange.as_ref().expect("an Exchange report");
        assert_eq!(x.proof_cmdlet.as_deref(), Some("Get-Mailbox"), "{x:?}");
        let sp = report.service_principal_id.clone().unwrap();
        let state = tenant.state().await;
        let t = state.tenant(name).unwrap();
        assert!(t.role_assignments.is_empty(), "no Entra role in {name}: {:#?}", t.role_assignments);
        assert_eq!(t.exchange_service_principals.len(), 1, "{:#?}", t.exchange_service_principals);
        assert!(t.exchange_service_principals[0].object_id.eq_ignore_ascii_case(&sp));
        assert_eq!(t.exchange_service_principals[0].app_id, home.app_id);
        let group = t.role_groups.iter().find(|g| g.name == x.role_group).expect("the role group");
        assert_eq!(group.members.iter().filter(|m| m.eq_ignore_ascii_case(&sp)).count(), 1, "{group:#?}");
        let recorded = store.get().unwrap().tenant(name).unwrap().exchange.clone().expect("the entry records it");
        assert!(recorded.service_principal_created && recorded.service_principal.eq_ignore_ascii_case(&sp));
        assert_eq!(recorded.role_group, x.role_group);
    }
    let state = tenant.state().await;
    assert!(state.tenant(&first).unwrap().management_scopes.is_empty());
    assert_eq!(state.tenant(&second).unwrap().management_scopes.len(), 1);
    let recorded = store.get().unwrap().tenant(&second).unwrap().exchange.clone().unwrap();
    assert_eq!(recorded.role_group, group_name);
    assert!(recorded.role_group_created && recorded.scope_created, "{recorded:?}");
    assert!(!store.get().unwrap().tenant(&first).unwrap().exchange.clone().unwrap().role_group_created);

    // The built-in group reads and cannot write; the custom one writes inside its scope only.
    let app1 = app_exo_in(&tenant, &first, &home.app_id);
    assert!(!app1.collect_all("Get-Mailbox", &params(serde_json::json!({"ResultSize": 1}))).await.unwrap().is_empty());
    let target = mailbox_in(&tenant, &first, "Sales").await;
    let write = params(serde_json::json!({"Identity": target, "CustomAttribute1": "x"}));
    let write = app1.collect_all("Set-Mailbox", &write).await;
    assert!(matches!(write, Err(cba_exo::Error::NotAllowed { .. })), "{write:?}");
    let app2 = app_exo_in(&tenant, &second, &home.app_id);
    let sales = mailbox_in(&tenant, &second, "Sales").await;
    let finance = mailbox_in(&tenant, &second, "Finance").await;
    app2.collect_all("Set-Mailbox", &params(serde_json::json!({"Identity": sales, "CustomAttribute1": "in"})))
        .await
        .expect("a write inside the scope");
    let refused = app2
        .collect_all("Set-Mailbox", &params(serde_json::json!({"Identity": finance, "CustomAttribute1": "out"})))
        .await
        .unwrap_err();
    assert_eq!(exception(&refused), "RecipientOutOfWriteScopeException", "{refused:?}");

    // A rerun changes nothing, in Graph or in Exchange.
    let before = tenant.state().await;
    for (name, req) in &requests {
        let again = fleet::add(&services, &store, &home, "home", Some(&admin_of(&tenant, name)), req).await.unwrap();
        let x = again.exchange.as_ref().unwrap();
        assert!(again.created.is_empty() && x.created.is_empty(), "{again:?}");
    }
    let after = tenant.state().await;
    for name in [&first, &second] {
        let (b, a) = (before.tenant(name).unwrap(), after.tenant(name).unwrap());
        assert_eq!(a.exchange_service_principals, b.exchange_service_principals);
        assert_eq!(a.role_groups, b.role_groups);
        assert_eq!(a.management_scopes, b.management_scopes);
    }

    // Status: healthy; the first tenant's links read with its admin's token, the second's unconfirmed (the
    // token is not for that tenant), never ok.
    let fleet = store.get().unwrap();
    let status_request = |name: &str| fleet::StatusRequest {
        credential: shared_identity().into(),
        concurrency: 2,
        tenants: None,
        tenant_timeout: Duration::from_secs(60),
        exchange_admin: Some(exchange_admin_of(&tenant, name)),
    };
    let report = fleet::status(&services, &fleet, &status_request(&first), |_| {}).await.unwrap();
    assert_eq!((report.healthy, report.total), (2, 2), "{report:#?}");
    let link =
        |row: &fleet::TenantHealth, name: &str| row.exchange_links.iter().find(|c| c.check == name).map(|c| c.ok);
    let row1 = report.tenants.iter().find(|r| r.tenant_domain.as_deref() == Some(first.as_str())).unwrap();
    assert_eq!(link(row1, "exchange_membership"), Some(Some(true)), "{row1:#?}");
    assert_eq!(link(row1, "exchange_access"), Some(Some(true)), "{row1:#?}");
    let row2 = report.tenants.iter().find(|r| r.tenant_domain.as_deref() == Some(second.as_str())).unwrap();
    assert_eq!(link(row2, "exchange_membership"), Some(None), "{row2:#?}");
    assert_eq!(row2.exchange, Some(true), "{row2:#?}");

    // The membership removed behind cba's back in the second tenant: status names it there, not in the first.
    let sp2 = fleet.tenant(&second).unwrap().service_principal_id.clone().unwrap();
    customer_admin_exo(&tenant, &second)
        .collect_all(
            "Remove-RoleGroupMember",
            &params(serde_json::json!({"Identity": group_name, "Member": sp2, "Confirm": false})),
        )
        .await
        .expect("the membership removed");
    let report = fleet::status(&services, &fleet, &status_request(&second), |_| {}).await.unwrap();
    assert_eq!(report.healthy, 1, "{report:#?}");
    let row2 = report.tenants.iter().find(|r| r.tenant_domain.as_deref() == Some(second.as_str())).unwrap();
    assert!(!row2.healthy && row2.broken().contains(&"exchange_membership".to_string()), "{row2:#?}");
    assert_eq!(link(row2, "exchange_membership"), Some(Some(false)), "{row2:#?}");

    // An Entra role assigned by hand in the first tenant, besides its role group: status says so.
    let sp1 = fleet.tenant(&first).unwrap().service_principal_id.clone().unwrap();
    let assigned = cba_token::reqwest::Client::new()
        .post(format!("{}/v1.0/roleManagement/directory/roleAssignments", tenant.sim.graph_url()))
        .bearer_auth(tenant.sim.admin_token_for(&first).unwrap())
        .json(&serde_json::json!({
            "principalId": sp1,
            "roleDefinitionId": EXCHANGE_ADMINISTRATOR.template_id,
            "directoryScopeId": "/"
        }))
        .send()
        .await
        .unwrap();
    assert!(assigned.status().is_success(), "{}", assigned.status());
    tokio::time::sleep(LAG * 2).await;
    let fresh = tenant.services(Arc::new(Recorder::default()));
    let report = fleet::status(&fresh, &fleet, &status_request(&first), |_| {}).await.unwrap();
    let row1 = report.tenants.iter().find(|r| r.tenant_domain.as_deref() == Some(first.as_str())).unwrap();
    assert!(!row1.healthy && row1.role == Some(false), "{row1:#?}");
    assert!(row1.detail.contains("besides the Exchange role group"), "{row1:#?}");

    // Remove: refused without the Exchange sign-in (nothing done), then everything cba made there goes.
    let e = fleet::remove(
        &services,
        &store,
        &home,
        Some(&admin_of(&tenant, &second)),
        None,
        &shared_identity().into(),
        &second,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }) && e.to_string().contains("--exchange-admin"), "{e}");
    assert_eq!(tenant.state().await.tenant(&second).unwrap().exchange_service_principals.len(), 1);
    let x_admin = exchange_admin_of(&tenant, &second);
    let removed = fleet::remove(
        &services,
        &store,
        &home,
        Some(&admin_of(&tenant, &second)),
        Some(&x_admin),
        &shared_identity().into(),
        &second,
    )
    .await
    .expect("remove");
    assert!(removed.removed, "{removed:?}");
    let x = removed.exchange.as_ref().expect("the Exchange teardown");
    for gone in ["exchange_role_group", "exchange_scope", "exchange_service_principal"] {
        assert!(x.removed.iter().any(|r| r == gone), "{gone}: {x:?}");
    }
    let state = tenant.state().await;
    let t = state.tenant(&second).unwrap();
    assert!(t.exchange_service_principals.is_empty(), "{:#?}", t.exchange_service_principals);
    assert!(t.role_groups.iter().all(|g| g.built_in), "{:#?}", t.role_groups);
    assert!(t.role_groups.iter().all(|g| !g.members.iter().any(|m| m.eq_ignore_ascii_case(&sp2))));
    assert!(t.management_scopes.is_empty() && t.role_assignments.is_empty() && t.app_role_assignments.is_empty());
    assert_eq!(t.custom_service_principals().count(), 0);
    assert!(store.get().unwrap().tenant(&second).is_none());
    // The first tenant is untouched.
    assert_eq!(state.tenant(&first).unwrap().exchange_service_principals.len(), 1);
}

#[tokio::test]
async fn an_exchange_add_killed_at_every_step_converges_and_remove_still_takes_what_cba_made() {
    let custom = || ExchangeRoles::Custom {
        roles: vec!["Mail Recipients".into(), "View-Only Recipients".into()],
        write_scope: Some(SALES.into()),
    };
    let steps = {
        let tenant = provider(1).await;
        let home = home(&tenant).await;
        let recorder = Arc::new(Recorder::default());
        let services = tenant.services(recorder.clone());
        let name = customer(&tenant, 1);
        let req = exchange_add(&tenant, &name, custom());
        fleet::add(&services, &MemoryFleetStore::new(), &home, "home", Some(&admin_of(&tenant, &name)), &req)
            .await
            .expect("add");
        recorder.steps()
    };
    assert!(steps >= 8, "{steps} progress steps");
    for kill_at in 1..=steps {
        let tenant = Arc::new(provider(1).await);
        let home = home(&tenant).await;
        let store = Arc::new(MemoryFleetStore::new());
        let name = customer(&tenant, 1);
        let req = exchange_add(&tenant, &name, custom());
        let run = {
            let (tenant, store, home, name, req) =
                (tenant.clone(), store.clone(), home.clone(), name.clone(), req.clone());
            tokio::spawn(async move {
                let services = tenant.services(Arc::new(Recorder::killer(kill_at)));
                let admin = admin_of(&tenant, &name);
                fleet::add(&services, store.as_ref(), &home, "home", Some(&admin), &req).await.map(drop)
            })
        };
        assert!(run.await.is_err(), "killed at step {kill_at}");
        let services = tenant.services(Arc::new(Recorder::default()));
        let report = fleet::add(&services, store.as_ref(), &home, "home", Some(&admin_of(&tenant, &name)), &req)
            .await
            .unwrap_or_else(|e| panic!("rerun after a kill at step {kill_at}: {e:?}"));
        assert_eq!(report.state, OnboardingState::Onboarded, "kill at {kill_at}");
        let sp = report.service_principal_id.clone().unwrap();
        let state = tenant.state().await;
        let t = state.tenant(&name).unwrap();
        assert_eq!(t.exchange_service_principals.len(), 1, "kill at {kill_at}");
        let custom_groups: Vec<_> = t.role_groups.iter().filter(|g| !g.built_in).collect();
        assert_eq!(custom_groups.len(), 1, "kill at {kill_at}: {custom_groups:#?}");
        assert_eq!(custom_groups[0].members.iter().filter(|m| m.eq_ignore_ascii_case(&sp)).count(), 1);
        assert_eq!(t.management_scopes.len(), 1, "kill at {kill_at}");
        assert!(t.role_assignments.is_empty(), "kill at {kill_at}");
        let recorded = store.get().unwrap().tenant(&name).unwrap().exchange.clone().unwrap();
        assert!(
            recorded.service_principal_created && recorded.role_group_created && recorded.scope_created,
            "kill at {kill_at}: what cba made is still known as made by cba: {recorded:?}"
        );
        let x_admin = exchange_admin_of(&tenant, &name);
        let id: cba_lifecycle::Credential = shared_identity().into();
        fleet::remove(&services, store.as_ref(), &home, Some(&admin_of(&tenant, &name)), Some(&x_admin), &id, &name)
            .await
            .unwrap_or_else(|e| panic!("remove after a kill at step {kill_at}: {e:?}"));
        let state = tenant.state().await;
        let t = state.tenant(&name).unwrap();
        assert!(t.exchange_service_principals.is_empty() && t.management_scopes.is_empty(), "kill at {kill_at}");
        assert!(t.role_groups.iter().all(|g| g.built_in), "kill at {kill_at}");
    }
}
