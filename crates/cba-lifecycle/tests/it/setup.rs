use std::sync::Arc;
use std::time::Duration;

use cba_lifecycle::{Error, MemoryStore, ProfileStore as _};

use crate::support::{Recorder, Tenant, assert_one_of_each, request, set_up, shared_identity};

const LAG: Duration = Duration::from_millis(300);

#[tokio::test]
async fn from_scratch_then_a_rerun_changes_nothing() {
    let tenant = Tenant::start(LAG).await;
    let (store, _, report) = set_up(&tenant).await;
    assert!(report.changed && !report.dry_run);
    assert_eq!(report.token_roles.as_deref(), Some(&["Exchange.ManageAsApp".to_string()][..]));
    assert!(report.requests >= 6 && report.round_trip_depth >= 4, "{report:?}");
    let profile = store.get().expect("a profile");
    assert!(!profile.incomplete);
    assert_eq!(profile.tenant_id, tenant.sim.tenant_id());
    assert_eq!(Some(profile.app_id.clone()), report.app_id);
    assert_one_of_each(&tenant.state().await, &[&profile.certificate.thumbprint_sha1]);

    // Rerun with the same certificate: nothing created.
    let identity = shared_identity();
    let services = tenant.services(Arc::new(Recorder::default()));
    let mut rerun = request(&tenant, &identity);
    rerun.new_certificate = false;
    let again = cba_lifecycle::setup(&services, &store, &tenant.admin(), &rerun).await.expect("rerun");
    assert!(!again.changed, "{again:?}");
    assert!(again.created.is_empty(), "{:?}", again.created);
    assert_one_of_each(&tenant.state().await, &[&profile.certificate.thumbprint_sha1]);
}

#[tokio::test]
async fn killed_at_every_step_a_rerun_converges_with_no_duplicates() {
    let identity = shared_identity();
    // How many kill points a whole run has.
    let steps = {
        let tenant = Tenant::start(LAG).await;
        let recorder = Arc::new(Recorder::default());
        let services = tenant.services(recorder.clone());
        cba_lifecycle::setup(&services, &MemoryStore::new(), &tenant.admin(), &request(&tenant, &identity))
            .await
            .expect("setup");
        recorder.steps()
    };
    assert!(steps >= 8, "{steps} progress steps");
    for kill_at in 1..=steps {
        let tenant = Tenant::start(LAG).await;
        let store = Arc::new(MemoryStore::new());
        let services = tenant.services(Arc::new(Recorder::killer(kill_at)));
        let (t, s, r) = (Arc::new(tenant), store.clone(), request_for(&identity));
        let run = {
            let (t, s) = (t.clone(), s.clone());
            tokio::spawn(async move {
                let req = r(&t);
                cba_lifecycle::setup(&services, s.as_ref(), &t.admin(), &req).await.map(|_| ())
            })
        };
        let died = run.await.is_err();
        assert!(died || kill_at == steps, "run {kill_at} was not killed");

        let services = t.services(Arc::new(Recorder::default()));
        let report = cba_lifecycle::setup(&services, store.as_ref(), &t.admin(), &request(&t, &identity))
            .await
            .unwrap_or_else(|e| panic!("rerun after a kill at step {kill_at}: {e:?}"));
        assert_eq!(report.token_roles.as_deref().map(<[String]>::len), Some(1), "kill at {kill_at}");
        let profile = store.load().unwrap().expect("a profile");
        assert!(!profile.incomplete, "kill at {kill_at}");
        assert_one_of_each(&t.state().await, &[&identity.certificate.thumbprint_sha1_hex()]);
    }
}

fn request_for(identity: &cba_cert::Identity) -> impl Fn(&Tenant) -> cba_lifecycle::SetupRequest + Send + 'static {
    let identity = identity.clone();
    move |t| request(t, &identity)
}

#[tokio::test]
async fn a_dry_run_sends_only_gets_and_saves_nothing() {
    let tenant = Tenant::start(Duration::ZERO).await;
    let identity = shared_identity();
    let store = MemoryStore::new();
    let services = tenant.services(Arc::new(Recorder::default()));
    let mut req = request(&tenant, &identity);
    req.dry_run = true;
    let report = cba_lifecycle::setup(&services, &store, &tenant.admin(), &req).await.expect("dry run");
    assert!(report.dry_run && report.changed);
    assert!(report.created.iter().any(|s| s == "application"), "{:?}", report.created);
    assert_eq!(store.saves(), 0);
    assert!(tenant.state().await.primary().applications.is_empty());
    assert!(tenant.sim.requests().await.iter().all(|r| r.method == "GET" || r.path.contains("/oauth2/")));
}

#[tokio::test]
async fn a_profile_of_another_app_is_refused_before_anything_is_sent() {
    let tenant = Tenant::start(Duration::ZERO).await;
    let identity = shared_identity();
    let (store, _, _) = set_up(&tenant).await;
    let before = tenant.sim.requests().await.len();
    let mut req = request(&tenant, &identity);
    req.name = "other-app".into();
    let services = tenant.services(Arc::new(Recorder::default()));
    let err = cba_lifecycle::setup(&services, &store, &tenant.admin(), &req).await.unwrap_err();
    assert!(matches!(err, Error::ProfileOfOtherApp { .. }), "{err:?}");
    assert_eq!(tenant.sim.requests().await.len(), before);
}

#[tokio::test]
async fn an_admin_of_another_tenant_is_refused_when_the_tenant_is_an_id() {
    let tenant = Tenant::start(Duration::ZERO).await;
    let identity = shared_identity();
    let mut req = request(&tenant, &identity);
    req.tenant = "00000000-1111-2222-3333-444444444444".into();
    let services = tenant.services(Arc::new(Recorder::default()));
    let err = cba_lifecycle::setup(&services, &MemoryStore::new(), &tenant.admin(), &req).await.unwrap_err();
    assert!(matches!(&err, Error::WrongTenant { actual, .. } if actual == tenant.sim.tenant_id()), "{err:?}");
    assert!(tenant.state().await.primary().applications.is_empty());
}

#[tokio::test]
async fn an_admin_of_another_tenant_is_refused_when_the_tenant_is_a_domain() {
    let tenant = Tenant::start(Duration::ZERO).await;
    let mut req = request(&tenant, &shared_identity());
    req.tenant = "fabrikam.onmicrosoft.com".into();
    let services = tenant.services(Arc::new(Recorder::default()));
    let err = cba_lifecycle::setup(&services, &MemoryStore::new(), &tenant.admin(), &req).await.unwrap_err();
    match &err {
        Error::WrongTenant { expected, actual } => {
            assert_eq!(expected, "fabrikam.onmicrosoft.com");
            assert!(actual.contains(tenant.sim.tenant_id()) && actual.contains(tenant.sim.tenant_domain()), "{actual}");
        }
        other => panic!("{other:?}"),
    }
    let writes: Vec<_> =
        tenant.sim.requests().await.into_iter().filter(|r| r.method != "GET" && !r.path.contains("/oauth2/")).collect();
    assert!(writes.is_empty(), "{writes:?}");
    assert!(tenant.state().await.primary().applications.is_empty());
}

#[tokio::test]
async fn an_opaque_admin_token_is_used_as_it_is_and_the_tenant_confirmed_by_graph() {
    let tenant = Tenant::start(Duration::ZERO).await;
    let admin = cba_lifecycle::AdminCredential::Token(zeroize::Zeroizing::new(tenant.sim.admin_token_opaque()));
    let store = MemoryStore::new();
    let services = tenant.services(Arc::new(Recorder::default()));
    // By id: Graph's GET /organization confirms it and names the onmicrosoft.com domain for the profile.
    let mut req = request(&tenant, &shared_identity());
    req.tenant = tenant.sim.tenant_id().to_string();
    let report = cba_lifecycle::setup(&services, &store, &admin, &req).await.expect("setup with an opaque token");
    assert_eq!(report.tenant_id, tenant.sim.tenant_id());
    assert_eq!(report.tenant_domain.as_deref(), Some(tenant.sim.tenant_domain()));
    assert_one_of_each(&tenant.state().await, &[&shared_identity().certificate.thumbprint_sha1_hex()]);
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_not_made_twice_by_the_rerun() {
    // The app is created, the answer lost (a kill in flight), and the rerun's name look-up cannot see the
    // new app yet: the create by the recorded uniqueName finds it instead of making a second one.
    let tenant = Tenant::start(Duration::from_secs(2)).await;
    tenant.sim.fail_after_commit(1, "PATCH /applications");
    let store = MemoryStore::new();
    let mut services = tenant.services(Arc::new(Recorder::default()));
    services.retry = cba_http::RetryPolicy::none();
    let req = request(&tenant, &shared_identity());
    let err = cba_lifecycle::setup(&services, &store, &tenant.admin(), &req).await.unwrap_err();
    assert!(err.graph().is_some(), "{err:?}");
    assert_eq!(tenant.state().await.primary().applications.len(), 1, "the create was carried out");
    let key = store.get().unwrap().app_unique_name.expect("the key is recorded before the create");
    let lookups_before = tenant.sim.requests().await.len();

    let services = tenant.services(Arc::new(Recorder::default()));
    cba_lifecycle::setup(&services, &store, &tenant.admin(), &req).await.expect("rerun");
    let rerun = tenant.sim.requests().await.split_off(lookups_before);
    let by_name = rerun.iter().find(|r| r.path.contains("displayName")).expect("the rerun looks the name up");
    assert!(by_name.status == 200, "{by_name:?}");
    assert!(
        rerun.iter().any(|r| r.method == "PATCH" && r.path.contains("uniqueName") && r.status == 204),
        "{rerun:#?}"
    );
    let state = tenant.state().await;
    assert_one_of_each(&state, &[&shared_identity().certificate.thumbprint_sha1_hex()]);
    assert_eq!(state.primary().applications[0].unique_name.as_deref(), Some(key.as_str()));
}

#[test]
fn unique_names_are_stable_safe_and_distinct() {
    use cba_lifecycle::setup::unique_name_for;
    assert_eq!(unique_name_for("Contoso EXO"), unique_name_for("contoso exo"));
    assert_ne!(unique_name_for("contoso exo"), unique_name_for("contoso-exo"));
    let key = unique_name_for("ünïcode / with ? # % \\ and spaces");
    assert!(key.starts_with("cba-") && key.len() <= 256, "{key}");
    assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)), "{key}");
}
