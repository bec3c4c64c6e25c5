//! End to end against cba-sim: assert on what the simulated tenant holds afterwards.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cba_graph::provision::{self, AppRef, Change, Event, KeyChange, SetupOutcome, SetupRequest, StatusRequest, Step};
use cba_graph::wellknown::{EXCHANGE_ADMINISTRATOR, EXCHANGE_MANAGE_AS_APP, PROOF_AUDIENCE, role_by_name};
use cba_graph::{
    BoxError, Deleted, Error, GraphClient, KeyCredential, ProofSigner, Replication, RetryNotice, RetryPolicy,
    StaticToken,
};
use cba_sim::{DuplicateRoleAssignment, SimTenant, StateSnapshot};

use crate::support::{CountingToken, client};

const NAME: &str = "contoso-exo";

/// A certificate with its key: gives the KeyCredential (via cba-cert's JSON) and signs proofs (via cba-token).
struct Cert(cba_cert::Identity);

impl Cert {
    fn new(name: &str) -> Cert {
        Cert(cba_cert::generate(&cba_cert::NewCertificate::new(name)).expect("certificate"))
    }

    fn key(&self) -> KeyCredential {
        serde_json::from_value(serde_json::to_value(self.0.certificate.key_credential()).unwrap()).unwrap()
    }

    fn thumbprint(&self) -> String {
        self.0.certificate.thumbprint_sha1_hex()
    }

    fn request(&self) -> SetupRequest {
        SetupRequest::new(NAME, self.key(), self.thumbprint())
    }
}

impl ProofSigner for Cert {
    fn proof(&self, app_object_id: &str) -> Result<String, BoxError> {
        let signer = cba_token::ClientCertificate::new(self.0.clone(), "proof", app_object_id)?;
        let jwt = signer.sign_assertion(
            PROOF_AUDIENCE,
            &cba_token::AssertionOptions::default(),
            time::OffsetDateTime::now_utc(),
        )?;
        Ok(jwt.expose().to_string())
    }
}

fn admin(sim: &SimTenant) -> GraphClient {
    client(sim.graph_url(), Arc::new(StaticToken::new(sim.admin_token())))
}

fn quiet(_: &Event) {}

/// Exactly one app (with exactly this certificate), one custom service principal, one grant of
/// Exchange.ManageAsApp and one Exchange Administrator assignment, all tied together.
fn assert_one_of_each(state: &StateSnapshot, thumbprint: &str, outcome: &SetupOutcome) {
    let t = state.primary();
    assert_eq!(t.applications.len(), 1, "{:#?}", t.applications);
    let app = &t.applications[0];
    assert_eq!(app.display_name, NAME);
    assert_eq!(app.sign_in_audience, "AzureADMyOrg");
    assert_eq!(app.id, outcome.app_object_id);
    assert_eq!(app.app_id, outcome.app_id);
    let thumbprints: Vec<&str> = app.key_credentials.iter().map(|k| k.thumbprint_sha1.as_str()).collect();
    assert_eq!(thumbprints, [thumbprint]);
    assert_eq!(app.key_credentials[0].key_id, outcome.certificate_key_id);
    let sps: Vec<_> = t.custom_service_principals().collect();
    assert_eq!(sps.len(), 1, "{sps:#?}");
    assert_eq!(sps[0].app_id, app.app_id);
    assert_eq!(sps[0].id, outcome.sp_id);
    assert_eq!(t.app_role_assignments.len(), 1, "{:#?}", t.app_role_assignments);
    let grant = &t.app_role_assignments[0];
    assert_eq!(grant.principal_id, outcome.sp_id);
    assert_eq!(grant.app_role_value.as_deref(), Some(EXCHANGE_MANAGE_AS_APP));
    assert_eq!(grant.id, outcome.grant_id);
    assert_eq!(t.role_assignments.len(), 1, "{:#?}", t.role_assignments);
    let role = &t.role_assignments[0];
    assert_eq!(role.principal_id, outcome.sp_id);
    assert_eq!(role.role_definition_id, EXCHANGE_ADMINISTRATOR.template_id);
    assert_eq!(role.directory_scope_id, "/");
    assert_eq!(outcome.role_assignments[0].assignment_id, role.id);
}

fn assert_empty(state: &StateSnapshot) {
    let t = state.primary();
    assert!(t.applications.is_empty(), "{:#?}", t.applications);
    assert_eq!(t.custom_service_principals().count(), 0);
    assert!(t.app_role_assignments.is_empty());
    assert!(t.role_assignments.is_empty());
}

#[tokio::test]
async fn setup_creates_one_of_each_and_a_rerun_changes_nothing() {
    let sim = SimTenant::builder().start().await;
    let cert = Cert::new(NAME);
    let client = admin(&sim);

    let plan = provision::plan(&client, &cert.request()).await.unwrap();
    assert!(plan.application.is_none());
    assert_eq!(plan.to_create.len(), 5, "{plan:?}");
    assert!(plan.existing.is_empty());
    assert_eq!(plan.requests, 2);
    let methods: Vec<String> = sim.requests().await.into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["GET", "GET"], "a dry run only reads");
    assert_empty(&sim.state().await);

    let outcome = provision::apply(&client, &cert.request(), quiet).await.expect("setup");
    assert_eq!(outcome.created.len(), 5);
    assert_eq!(outcome.requests, 6, "two look-ups, app, principal, grant, role");
    assert_eq!(outcome.round_trip_depth, 4);
    let state = sim.state().await;
    assert_one_of_each(&state, &cert.thumbprint(), &outcome);

    let rerun = provision::apply(&client, &cert.request(), quiet).await.expect("rerun");
    assert!(rerun.changed_nothing(), "{rerun:?}");
    assert_eq!(rerun.requests, 5, "five GETs");
    assert_eq!(rerun.round_trip_depth, 3);
    assert_eq!((&rerun.app_id, &rerun.sp_id, &rerun.grant_id), (&outcome.app_id, &outcome.sp_id, &outcome.grant_id));
    assert_eq!(rerun.certificate_key_id, outcome.certificate_key_id);
    assert_eq!(sim.state().await, state, "nothing changed in the tenant");

    let plan = provision::plan(&client, &cert.request()).await.unwrap();
    assert!(plan.to_create.is_empty(), "{plan:?}");
    assert!(plan.certificate_registered);
    assert_eq!(plan.grant_id.as_deref(), Some(outcome.grant_id.as_str()));
    let writes = sim.requests().await.into_iter().filter(|r| r.method != "GET").count();
    assert_eq!(writes, 4, "only the first apply wrote");
}

#[tokio::test]
async fn replication_delay_on_every_object_is_waited_out() {
    let sim = SimTenant::builder().replication_delay(Duration::from_millis(400)).start().await;
    let cert = Cert::new(NAME);
    let notices: Arc<Mutex<Vec<RetryNotice>>> = Arc::default();
    let seen = notices.clone();
    let client = GraphClient::builder()
        .base_url(sim.graph_url())
        .token_source(Arc::new(StaticToken::new(sim.admin_token())))
        .retry_policy(RetryPolicy::fast())
        .on_retry(Arc::new(move |n: &RetryNotice| seen.lock().unwrap().push(n.clone())))
        .build()
        .unwrap();

    let outcome = provision::apply(&client, &cert.request(), quiet).await.expect("setup despite replication");
    assert_one_of_each(&sim.state().await, &cert.thumbprint(), &outcome);
    let reasons: Vec<String> = notices.lock().unwrap().iter().map(|n| n.reason.clone()).collect();
    assert!(reasons.iter().any(|r| r.contains("NoBackingApplicationObject")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("Not a valid reference update")), "{reasons:?}");
    assert!(reasons.iter().all(|r| r.starts_with("waiting for replication")), "{reasons:?}");

    // status right after, from a profile: the objects exist, so 404s are waited out.
    let mut check = StatusRequest::new(AppRef::AppId(outcome.app_id.clone()));
    check.thumbprint_sha1 = Some(cert.thumbprint());
    check.replication = Replication::Expected;
    let report = provision::status(&client, &check).await.unwrap();
    assert!(report.is_complete(), "{report:?}");

    // An immediate rerun may not see the newest grant and role yet: still no duplicates.
    let rerun = provision::apply(&client, &cert.request(), quiet).await.expect("rerun");
    assert!(rerun.changed_nothing(), "{rerun:?}");
    assert_one_of_each(&sim.state().await, &cert.thumbprint(), &rerun);
}

#[tokio::test]
async fn a_throttling_storm_is_survived() {
    let sim = SimTenant::builder().throttle_every(2).retry_after(Duration::from_secs(1)).start().await;
    let cert = Cert::new(NAME);
    let client = admin(&sim);
    let outcome = provision::apply(&client, &cert.request(), quiet).await.expect("setup under throttling");
    assert_one_of_each(&sim.state().await, &cert.thumbprint(), &outcome);
    let throttled = sim.requests().await.iter().filter(|r| r.status == 429).count();
    assert!(throttled >= 5, "every second request throttled: {throttled}");
    assert_eq!(outcome.requests as usize, sim.requests().await.len(), "the counter includes retries");
}

#[tokio::test]
async fn a_5xx_burst_is_survived_without_a_second_app() {
    for burst in [1, 3, 5] {
        let sim = SimTenant::builder().fail_5xx_burst(burst).start().await;
        let cert = Cert::new(NAME);
        let outcome = provision::apply(&admin(&sim), &cert.request(), quiet).await.expect("setup after 5xx");
        assert_one_of_each(&sim.state().await, &cert.thumbprint(), &outcome);
    }
    let sim = SimTenant::builder().fail_5xx_every(3).start().await;
    let cert = Cert::new(NAME);
    let outcome = provision::apply(&admin(&sim), &cert.request(), quiet).await.expect("setup with every third 5xx");
    assert_one_of_each(&sim.state().await, &cert.thumbprint(), &outcome);
}

#[tokio::test]
async fn a_token_without_role_management_gets_a_permission_error_naming_the_role() {
    let sim = SimTenant::builder().start().await;
    // An automation identity with app and grant permissions but not RoleManagement.ReadWrite.Directory.
    let runner_cert = Cert::new("runner");
    let runner = sim.seed_app("runner", &[runner_cert.0.certificate.der()]).await;
    let graph = cba_graph::wellknown::GRAPH_APP_ID;
    sim.seed_grant(&runner, graph, "Application.ReadWrite.All").await;
    sim.seed_grant(&runner, graph, "AppRoleAssignment.ReadWrite.All").await;
    let token = sim.app_token(&runner, "https://graph.microsoft.com");
    let client = client(sim.graph_url(), Arc::new(StaticToken::new(token)));

    let cert = Cert::new(NAME);
    let err = provision::apply(&client, &cert.request(), quiet).await.unwrap_err();
    assert!(err.is_permission_denied(), "{err:?}");
    assert!(matches!(&err, Error::Step { step: Step::RoleAssignment { .. }, .. }), "{err}");
    assert_eq!(err.required_role_hint(), Some("Privileged Role Administrator (or Global Administrator)"));
    assert!(err.request_id().is_some());

    // No permissions at all: the very first look-up names the application roles.
    let bare = sim.seed_app("bare", &[runner_cert.0.certificate.der()]).await;
    let client = crate::support::client(
        sim.graph_url(),
        Arc::new(StaticToken::new(sim.app_token(&bare, "https://graph.microsoft.com"))),
    );
    let err = provision::apply(&client, &cert.request(), quiet).await.unwrap_err();
    assert!(err.required_role_hint().unwrap().contains("Application Administrator"), "{err}");
}

#[tokio::test]
async fn a_crash_after_any_request_then_a_rerun_converges_without_duplicates() {
    let cert = Cert::new(NAME);
    for budget in 0..=6 {
        let sim = SimTenant::builder().start().await;
        let crashing = client(sim.graph_url(), CountingToken::with_budget(sim.admin_token(), budget));
        let first = provision::apply(&crashing, &cert.request(), quiet).await;
        assert_eq!(first.is_ok(), budget >= 6, "budget {budget}: {first:?}");
        if let Err(e) = &first {
            assert!(matches!(e.root(), Error::Token { .. }), "budget {budget}: crashed on the token: {e:?}");
        }
        let outcome = provision::apply(&admin(&sim), &cert.request(), quiet).await.expect("rerun after the crash");
        assert_one_of_each(&sim.state().await, &cert.thumbprint(), &outcome);
        if budget >= 6 {
            assert!(outcome.changed_nothing());
        } else {
            assert!(!outcome.changed_nothing(), "budget {budget}: the rerun finished the job");
        }
    }
}

#[tokio::test]
async fn a_duplicate_role_assignment_answered_409_is_already_assigned() {
    let sim = SimTenant::builder().duplicate_role_assignment(DuplicateRoleAssignment::Conflict).start().await;
    let cert = Cert::new(NAME);
    let client = admin(&sim);
    let outcome = provision::apply(&client, &cert.request(), quiet).await.unwrap();
    let assigned = client
        .assign_directory_role(&outcome.sp_id, EXCHANGE_ADMINISTRATOR.template_id, Replication::NotExpected)
        .await;
    assert_eq!(assigned.unwrap(), cba_graph::Created::AlreadyExisted);
    assert_eq!(sim.state().await.primary().role_assignments.len(), 1);
}

#[tokio::test]
async fn an_existing_app_is_adopted_and_gets_the_certificate_beside_the_others() {
    let sim = SimTenant::builder().start().await;
    let old = Cert::new("old");
    sim.seed_app(NAME, &[old.0.certificate.der()]).await;
    let cert = Cert::new(NAME);
    let mut request = cert.request();
    request.roles = vec![role_by_name("exchange administrator").unwrap(), role_by_name("Global Reader").unwrap()];
    let events = Mutex::new(Vec::new());
    let outcome =
        provision::apply(&admin(&sim), &request, |e: &Event| events.lock().unwrap().push(e.clone())).await.unwrap();
    assert_eq!(outcome.unchanged, [Step::Application, Step::ServicePrincipal]);
    assert_eq!(outcome.created.len(), 4, "certificate, grant, two roles: {outcome:?}");
    let state = sim.state().await;
    let t = state.primary();
    assert_eq!(t.applications.len(), 1);
    let mut thumbprints: Vec<String> =
        t.applications[0].key_credentials.iter().map(|k| k.thumbprint_sha1.clone()).collect();
    thumbprints.sort();
    let mut expected = vec![old.thumbprint(), cert.thumbprint()];
    expected.sort();
    assert_eq!(thumbprints, expected, "the old certificate kept");
    assert_eq!(t.role_assignments.len(), 2);
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Finished { step: Step::Certificate, change: Change::Created, .. }))
    );
}

#[tokio::test]
async fn teardown_removes_everything_and_can_run_twice() {
    let sim = SimTenant::builder().start().await;
    let cert = Cert::new(NAME);
    let client = admin(&sim);
    let outcome = provision::apply(&client, &cert.request(), quiet).await.unwrap();

    let first = provision::teardown(&client, &AppRef::Name(NAME.into()), quiet).await.unwrap();
    assert_eq!(first.application.as_ref().map(|a| a.app_id.as_str()), Some(outcome.app_id.as_str()));
    assert_eq!(first.removed.len(), 4, "grant, role, principal, app: {first:?}");
    assert!(first.removed.contains(&Step::RoleAssignment { role: "Exchange Administrator".into() }));
    assert_empty(&sim.state().await);

    let second = provision::teardown(&client, &AppRef::AppId(outcome.app_id.clone()), quiet).await.unwrap();
    assert!(second.removed.is_empty(), "{second:?}");
    assert_eq!(second.already_gone, [Step::Application]);
    assert_eq!(second.requests, 1);
}

#[tokio::test]
async fn rotation_with_proofs_then_the_admin_fallback() {
    let sim = SimTenant::builder().start().await;
    let first = Cert::new(NAME);
    let client = admin(&sim);
    let outcome = provision::apply(&client, &first.request(), quiet).await.unwrap();
    let app = outcome.app_object_id.as_str();

    let second = Cert::new(NAME);
    let added = provision::add_key_with_proof(
        &client,
        app,
        &second.key(),
        &second.thumbprint(),
        &first,
        Replication::NotExpected,
    )
    .await
    .unwrap();
    assert!(matches!(added, KeyChange::Added(_)));
    let again = provision::add_key_with_proof(
        &client,
        app,
        &second.key(),
        &second.thumbprint(),
        &first,
        Replication::NotExpected,
    )
    .await
    .unwrap();
    assert!(matches!(again, KeyChange::AlreadyRegistered(_)), "a rerun adds nothing");
    let thumbprints = |s: &StateSnapshot| -> Vec<String> {
        s.primary().applications[0].key_credentials.iter().map(|k| k.thumbprint_sha1.clone()).collect()
    };
    assert_eq!(thumbprints(&sim.state().await).len(), 2);

    let removed =
        provision::remove_key_with_proof(&client, app, &first.thumbprint(), None, &second, Replication::NotExpected)
            .await
            .unwrap();
    assert_eq!(removed, Deleted::Deleted);
    assert_eq!(thumbprints(&sim.state().await), [second.thumbprint()]);
    let removed =
        provision::remove_key_with_proof(&client, app, &first.thumbprint(), None, &second, Replication::NotExpected)
            .await
            .unwrap();
    assert_eq!(removed, Deleted::AlreadyGone);
    let last =
        provision::remove_key_with_proof(&client, app, &second.thumbprint(), None, &second, Replication::NotExpected)
            .await;
    assert!(matches!(last, Err(Error::LastKey { .. })), "{last:?}");

    // The admin's fallback: third in, second out, in one PATCH that keeps the full list semantics.
    let third = Cert::new(NAME);
    let keys =
        provision::replace_keys_patch(&client, app, &[third.key()], &[second.thumbprint()], Replication::NotExpected)
            .await
            .unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(thumbprints(&sim.state().await), [third.thumbprint()]);
    let writes = sim
        .requests()
        .await
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.starts_with("/v1.0/applications/"))
        .count();
    let unchanged =
        provision::replace_keys_patch(&client, app, &[third.key()], &[], Replication::NotExpected).await.unwrap();
    assert_eq!(unchanged.len(), 1);
    let writes_after = sim
        .requests()
        .await
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.starts_with("/v1.0/applications/"))
        .count();
    assert_eq!(writes, writes_after, "no PATCH when nothing changes");
}

#[tokio::test]
async fn an_app_rotates_its_own_certificate_without_admin_rights() {
    let sim = SimTenant::builder().start().await;
    let current = Cert::new("self");
    let seeded = sim.seed_app("self", &[current.0.certificate.der()]).await;
    let own_token = sim.app_token(&seeded, "https://graph.microsoft.com");
    let client = client(sim.graph_url(), Arc::new(StaticToken::new(own_token)));
    let next = Cert::new("self");

    let added = provision::add_key_with_proof(
        &client,
        &seeded.object_id,
        &next.key(),
        &next.thumbprint(),
        &current,
        Replication::NotExpected,
    )
    .await
    .expect("addKey needs no permission");
    let KeyChange::Added(added) = added else { panic!("expected Added") };
    assert!(added.key_id.is_some());

    let state = sim.state().await;
    let old_key_id = state.primary().applications[0]
        .key_credentials
        .iter()
        .find(|k| k.thumbprint_sha1 == current.thumbprint())
        .unwrap()
        .key_id
        .clone();
    let removed = provision::remove_key_with_proof(
        &client,
        &seeded.object_id,
        &current.thumbprint(),
        Some(&old_key_id),
        &next,
        Replication::NotExpected,
    )
    .await
    .expect("removeKey by keyId with a proof from the new certificate");
    assert_eq!(removed, Deleted::Deleted);
    let state = sim.state().await;
    let left: Vec<&str> =
        state.primary().applications[0].key_credentials.iter().map(|k| k.thumbprint_sha1.as_str()).collect();
    assert_eq!(left, [next.thumbprint()]);
}

#[tokio::test]
async fn status_reports_each_link() {
    let sim = SimTenant::builder().start().await;
    let cert = Cert::new(NAME);
    let client = admin(&sim);
    let mut check = StatusRequest::new(AppRef::Name(NAME.into()));
    check.thumbprint_sha1 = Some(cert.thumbprint());
    let before = provision::status(&client, &check).await.unwrap();
    assert!(before.application.is_none() && !before.is_complete());
    assert_eq!(before.requests, 2);

    provision::apply(&client, &cert.request(), quiet).await.unwrap();
    let after = provision::status(&client, &check).await.unwrap();
    assert!(after.is_complete(), "{after:?}");
    assert_eq!(after.requests, 5);

    check.thumbprint_sha1 = Some(Cert::new("other").thumbprint());
    let wrong = provision::status(&client, &check).await.unwrap();
    assert_eq!(wrong.certificate_registered, Some(false));
    assert!(!wrong.is_complete());
}
