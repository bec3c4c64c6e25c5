use std::sync::Arc;
use std::time::Duration;

use cba_graph::Replication;
use cba_lifecycle::Profile;
use cba_lifecycle::status::{CertificateInput, Remedy, StatusReport, StatusRequest};

use crate::support::{Recorder, Tenant, set_up, shared_identity};

fn request(p: &Profile, loaded: Result<cba_cert::Identity, String>) -> StatusRequest {
    StatusRequest {
        tenant: p.tenant_id.clone(),
        app_id: p.app_id.clone(),
        app_name: Some(p.app_name.clone()),
        app_object_id: Some(p.app_object_id.clone()),
        certificate: CertificateInput {
            location: p.certificate.path.display().to_string(),
            loaded: loaded.map(Into::into),
        },
        expected_thumbprint: Some(p.certificate.thumbprint_sha1.clone()),
        roles: p.roles(),
        wait: None,
        replication: Replication::NotExpected,
        from_profile: true,
    }
}

async fn check(tenant: &Tenant, p: &Profile, with_admin: bool) -> StatusReport {
    let services = tenant.services(Arc::new(Recorder::default()));
    let admin = tenant.admin();
    cba_lifecycle::status(&services, with_admin.then_some(&admin), &request(p, Ok(shared_identity())), None)
        .await
        .expect("status")
}

fn verdict<'a>(r: &'a StatusReport, name: &str) -> &'a cba_lifecycle::status::Check {
    r.checks.iter().find(|c| c.check == name).unwrap_or_else(|| panic!("no {name} check in {r:#?}"))
}

#[tokio::test]
async fn a_healthy_setup_passes_with_and_without_an_admin() {
    let tenant = Tenant::start(Duration::ZERO).await;
    let (store, _, _) = set_up(&tenant).await;
    let p = store.get().unwrap();
    for admin in [false, true] {
        let r = check(&tenant, &p, admin).await;
        assert!(r.ok, "admin {admin}: {r:#?}");
        assert_eq!(r.checks.len(), 8, "{r:#?}");
        assert!(r.checks.iter().all(|c| c.remedy.is_none()));
        assert_eq!(r.tenant_id, tenant.sim.tenant_id());
    }
}

#[tokio::test]
async fn a_deleted_role_assignment_fails_status_with_or_without_an_admin() {
    let tenant = Tenant::start(Duration::ZERO).await;
    let (store, _, _) = set_up(&tenant).await;
    let p = store.get().unwrap();
    tenant.graph().delete_directory_role_assignment(&p.role_assignments[0].id).await.expect("delete");

    // Without an admin the token has no `wids` left: the role cannot be confirmed, which is not "ok".
    let r = check(&tenant, &p, false).await;
    assert!(!r.ok, "{r:#?}");
    let role = verdict(&r, "role");
    assert_eq!(role.ok, None, "{role:?}");
    assert_eq!(role.remedy, Some(Remedy::CheckWithAdmin));
    assert!(r.failed().iter().any(|c| c.check == "role"));

    // With one, Graph says it is missing.
    let r = check(&tenant, &p, true).await;
    assert!(!r.ok);
    let role = verdict(&r, "role");
    assert_eq!((role.ok, role.source, role.remedy), (Some(false), "graph", Some(Remedy::Setup)), "{role:?}");
}

#[tokio::test]
async fn a_revoked_grant_fails_the_grant_and_token_checks() {
    let tenant = Tenant::start(Duration::ZERO).await;
    let (store, _, report) = set_up(&tenant).await;
    let p = store.get().unwrap();
    let state = tenant.state().await;
    let grant = &state.primary().app_role_assignments[0];
    assert_eq!(Some(&grant.id), report.grant_id.as_ref());
    tenant.graph().delete_app_role_assignment(&grant.resource_id, &grant.id).await.expect("revoke");
    for admin in [false, true] {
        let r = check(&tenant, &p, admin).await;
        assert!(!r.ok);
        assert_eq!(verdict(&r, "grant").ok, Some(false), "admin {admin}: {r:#?}");
    }
}

#[tokio::test]
async fn a_deleted_app_and_an_unregistered_certificate_are_named_from_the_token_refusal() {
    let tenant = Tenant::start(Duration::ZERO).await;
    let (store, _, _) = set_up(&tenant).await;
    let p = store.get().unwrap();
    let graph = tenant.graph();

    // The certificate replaced by another: AADSTS700027.
    let other = crate::support::identity();
    let key = cba_lifecycle::key_credential(&other.certificate);
    graph.set_key_credentials(&p.app_object_id, &[key], Replication::NotExpected).await.expect("replace");
    let r = check(&tenant, &p, false).await;
    let c = verdict(&r, "certificate_registered");
    assert_eq!(c.ok, Some(false), "{r:#?}");
    assert!(c.detail.contains("AADSTS700027"), "{c:?}");
    assert_eq!(verdict(&r, "app").ok, Some(true));
    assert_eq!(verdict(&r, "grant").ok, None, "not checked after an earlier failure");

    // The app deleted: AADSTS700016.
    graph.delete_application(&p.app_object_id).await.expect("delete");
    let r = check(&tenant, &p, false).await;
    let c = verdict(&r, "app");
    assert!(c.ok == Some(false) && c.detail.contains("AADSTS700016"), "{c:?}");
    let r = check(&tenant, &p, true).await;
    assert_eq!((verdict(&r, "app").ok, verdict(&r, "app").source), (Some(false), "graph"), "{r:#?}");
}

#[tokio::test]
async fn an_unreadable_certificate_is_a_failed_file_check_not_an_error() {
    let tenant = Tenant::start(Duration::ZERO).await;
    let (store, _, _) = set_up(&tenant).await;
    let p = store.get().unwrap();
    let services = tenant.services(Arc::new(Recorder::default()));
    let r =
        cba_lifecycle::status(&services, None, &request(&p, Err("wrong password".into())), None).await.expect("status");
    assert!(!r.ok);
    assert_eq!(verdict(&r, "certificate_file").ok, Some(false));
    assert_eq!(verdict(&r, "token").ok, None);
}
