use std::sync::Arc;
use std::time::Duration;

use cba_lifecycle::{Error, ProfileStore as _, RotateRequest};

use crate::support::{Recorder, Tenant, set_up};

const LAG: Duration = Duration::from_millis(300);

fn request() -> RotateRequest {
    RotateRequest { if_expiring_within: None, days: 365, wait: Duration::from_secs(120) }
}

fn registered(state: &cba_sim::StateSnapshot) -> Vec<String> {
    state.primary().applications[0].key_credentials.iter().map(|k| k.thumbprint_sha1.clone()).collect()
}

#[tokio::test]
async fn a_rotation_registers_proves_switches_and_removes_the_old_key() {
    let tenant = Tenant::start(LAG).await;
    let (store, keys, _) = set_up(&tenant).await;
    let old = store.get().unwrap().certificate.thumbprint_sha1;
    let services = tenant.services(Arc::new(Recorder::default()));
    let report = cba_lifecycle::rotate(&services, &store, &keys, None, &request()).await.expect("rotate");
    assert!(report.rotated && report.old_removed && !report.resumed, "{report:?}");
    assert_eq!(report.method, Some("self"));
    let new = report.new_thumbprint_sha1.clone().unwrap();
    assert_ne!(new, old);
    let p = store.get().unwrap();
    assert_eq!(p.certificate.thumbprint_sha1, new);
    assert!(p.previous_certificate.is_none() && p.pending_certificate.is_none());
    assert!(p.certificate.key_id.is_some() && p.certificate.created);
    assert_eq!(registered(&tenant.state().await), [new]);
}

#[tokio::test]
async fn not_due_means_nothing_is_made_or_sent() {
    let tenant = Tenant::start(Duration::ZERO).await;
    let (store, keys, _) = set_up(&tenant).await;
    let before = tenant.sim.requests().await.len();
    let services = tenant.services(Arc::new(Recorder::default()));
    let req = RotateRequest { if_expiring_within: Some(30), ..request() };
    let report = cba_lifecycle::rotate(&services, &store, &keys, None, &req).await.expect("rotate");
    assert!(!report.rotated && report.reason.starts_with("not due"), "{report:?}");
    assert_eq!(*keys.made.lock().unwrap(), 0);
    assert_eq!(tenant.sim.requests().await.len(), before);
}

#[tokio::test]
async fn an_expired_certificate_without_an_admin_is_refused_before_anything_is_made() {
    let tenant = Tenant::start(Duration::ZERO).await;
    let (store, keys, _) = set_up(&tenant).await;
    tenant.sim.advance_clock(Duration::from_secs(400 * 86_400));
    let services = tenant.services(Arc::new(Recorder::default()));
    let err = cba_lifecycle::rotate(&services, &store, &keys, None, &request()).await.unwrap_err();
    assert!(matches!(err, Error::CertificateExpired { .. }), "{err:?}");
    assert_eq!(*keys.made.lock().unwrap(), 0);
    assert!(store.get().unwrap().pending_certificate.is_none());

    // With one, the administrator's PATCH replaces it.
    let report =
        cba_lifecycle::rotate(&services, &store, &keys, Some(&tenant.admin()), &request()).await.expect("rotate");
    assert_eq!(report.method, Some("admin"));
    assert_eq!(registered(&tenant.state().await), [report.new_thumbprint_sha1.unwrap()]);
}

#[tokio::test]
async fn killed_at_every_step_a_rerun_finishes_and_a_working_certificate_is_always_recorded() {
    // How many kill points a whole rotation has.
    let steps = {
        let tenant = Tenant::start(LAG).await;
        let (store, keys, _) = set_up(&tenant).await;
        let recorder = Arc::new(Recorder::default());
        let services = tenant.services(recorder.clone());
        cba_lifecycle::rotate(&services, &store, &keys, None, &request()).await.expect("rotate");
        recorder.steps()
    };
    assert!(steps >= 6, "{steps} progress steps");
    for kill_at in 1..=steps {
        let tenant = Arc::new(Tenant::start(LAG).await);
        let (store, keys, _) = set_up(&tenant).await;
        let (store, keys) = (Arc::new(store), Arc::new(keys));
        let run = {
            let (t, s, k) = (tenant.clone(), store.clone(), keys.clone());
            tokio::spawn(async move {
                let services = t.services(Arc::new(Recorder::killer(kill_at)));
                cba_lifecycle::rotate(&services, s.as_ref(), k.as_ref(), None, &request()).await.map(|_| ())
            })
        };
        let died = run.await.is_err();
        assert!(died || kill_at == steps, "run {kill_at} was not killed");

        // Whatever the profile names now signs in.
        let p = store.load().unwrap().unwrap();
        let named = keys.keys.lock().unwrap().get(&p.certificate.path).cloned().expect("the named key exists");
        let cert = cba_token::ClientCertificate::new(named, &p.tenant_id, &p.app_id).unwrap();
        let services = tenant.services(Arc::new(Recorder::default()));
        cba_lifecycle::prove(&services, &cert, Duration::from_secs(60), &[])
            .await
            .unwrap_or_else(|e| panic!("after a kill at step {kill_at} the profile's certificate fails: {e:?}"));

        let report = cba_lifecycle::rotate(&services, store.as_ref(), keys.as_ref(), None, &request())
            .await
            .unwrap_or_else(|e| panic!("rerun after a kill at step {kill_at}: {e:?}"));
        let p = store.load().unwrap().unwrap();
        assert!(p.previous_certificate.is_none() && p.pending_certificate.is_none(), "kill at {kill_at}: {p:#?}");
        assert_eq!(registered(&tenant.state().await), std::slice::from_ref(&p.certificate.thumbprint_sha1), "kill at {kill_at}");
        assert!(report.rotated, "kill at {kill_at}");
    }
}
