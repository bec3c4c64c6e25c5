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
