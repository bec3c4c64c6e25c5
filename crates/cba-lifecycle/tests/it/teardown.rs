use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cba_lifecycle::{CertificateRef, TeardownRequest};

use crate::support::{Recorder, Tenant, set_up, shared_identity};

#[tokio::test]
async fn teardown_removes_every_object_and_a_second_run_removes_nothing() {
    let tenant = Tenant::start(Duration::ZERO).await;
    let (store, _, _) = set_up(&tenant).await;
    let p = store.get().unwrap();
    let services = tenant.services(Arc::new(Recorder::default()));
    let request = TeardownRequest::for_profile(&p);
    let report = cba_lifecycle::teardown(&services, &tenant.admin(), &request).await.expect("teardown");
    for step in ["application", "service_principal", "grant"] {
        assert!(report.removed.iter().any(|s| s == step), "{step} in {:?}", report.removed);
    }
    assert!(report.removed.iter().any(|s| s.starts_with("role_assignment:")), "{:?}", report.removed);
    let state = tenant.state().await;
    let t = state.primary();
    assert!(t.applications.is_empty() && t.custom_service_principals().count() == 0);
    assert!(t.app_role_assignments.is_empty() && t.role_assignments.is_empty());

    let again = cba_lifecycle::teardown(&services, &tenant.admin(), &request).await.expect("rerun");
    assert!(again.removed.is_empty(), "{again:?}");
    assert!(again.already_gone.iter().any(|s| s == "application"));
}

#[test]
fn only_files_cba_made_are_offered_for_deletion() {
    let identity = shared_identity();
    let mine = CertificateRef::new(&identity.certificate, PathBuf::from("made.pfx"), Some(PathBuf::from("made.cer")))
        .created_by_cba();
    let theirs = CertificateRef::new(&identity.certificate, PathBuf::from("given.pfx"), None);
    let mut profile: cba_lifecycle::Profile = serde_json::from_value(serde_json::json!({
        "version": 1, "cloud": "global",
        "endpoints": {"login": "", "graph": "", "exchange": ""},
        "tenant_domain": null, "app_name": "x",
        "certificate": serde_json::to_value(&theirs).unwrap(),
    }))
    .unwrap();
    assert!(cba_lifecycle::teardown::files_made_by_cba(&profile).is_empty());
    profile.previous_certificate = Some(mine);
    assert_eq!(
        cba_lifecycle::teardown::files_made_by_cba(&profile),
        [PathBuf::from("made.pfx"), PathBuf::from("made.cer")]
    );
}
