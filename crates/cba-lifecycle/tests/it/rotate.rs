use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cba_lifecycle::{Error, Profile, ProfileStore as _, RotateRequest};

use crate::support::{MemKeys, Recorder, Tenant, set_up};

const LAG: Duration = Duration::from_millis(300);
const DAY: Duration = Duration::from_secs(86_400);
const STABLE: &str = "contoso-exo.pfx";

fn request() -> RotateRequest {
    RotateRequest {
        if_expiring_within: None,
        days: 365,
        wait: Duration::from_secs(120),
        overlap: 7 * DAY,
        prove_in: Vec::new(),
    }
}

fn registered(state: &cba_sim::StateSnapshot) -> Vec<String> {
    let mut keys: Vec<String> =
        state.primary().applications[0].key_credentials.iter().map(|k| k.thumbprint_sha1.clone()).collect();
    keys.sort();
    keys
}

fn sorted(mut thumbprints: Vec<String>) -> Vec<String> {
    thumbprints.sort();
    thumbprints
}

/// The certificate kept at `path` gets an Exchange token.
async fn signs_in(tenant: &Tenant, keys: &MemKeys, p: &Profile, path: &Path) -> Result<(), Error> {
    let identity = keys.keys.lock().unwrap().get(path).cloned().unwrap_or_else(|| panic!("nothing at {path:?}"));
    let cert = cba_token::ClientCertificate::new(identity, &p.tenant_id, &p.app_id).unwrap();
    let services = tenant.services(Arc::new(Recorder::default()));
    cba_lifecycle::prove(&services, &cert, Duration::from_secs(60), &[]).await.map(|_| ())
}

#[tokio::test]
async fn a_rotation_puts_the_new_certificate_at_the_stable_path_and_keeps_the_old_key_for_the_overlap() {
    let tenant = Tenant::start(LAG).await;
    let (store, keys, _) = set_up(&tenant).await;
    let old = store.get().unwrap().certificate.thumbprint_sha1;
    let services = tenant.services(Arc::new(Recorder::default()));
    let report = cba_lifecycle::rotate(&services, &store, &keys, None, &request()).await.expect("rotate");
    assert!(report.rotated && !report.old_removed && !report.resumed, "{report:?}");
    assert_eq!(report.method, Some("self"));
    assert_eq!(report.certificate, STABLE);
    assert!(report.removed.is_empty(), "{report:?}");
    let new = report.new_thumbprint_sha1.clone().unwrap();
    assert_ne!(new, old);

    let p = store.get().unwrap();
    assert_eq!(p.certificate.path, Path::new(STABLE), "the path setup recorded");
    assert_eq!(p.certificate.thumbprint_sha1, new);
    assert_eq!(keys.at(Path::new(STABLE)), Some(new.clone()), "the stable path holds the new certificate");
    assert!(p.previous_certificate.is_none() && p.pending_certificate.is_none());
    assert!(p.certificate.key_id.is_some() && p.certificate.created);
    assert_eq!(p.retired.len(), 1, "{p:#?}");
    let retired = &p.retired[0];
    assert_eq!(retired.certificate.thumbprint_sha1, old);
    assert!(retired.certificate.created && retired.certificate.key_id.is_some());
    assert_ne!(retired.certificate.path, Path::new(STABLE));
    assert_eq!(keys.at(&retired.certificate.path), Some(old.clone()), "the old one is kept beside it");
    let remove_after =
        time::OffsetDateTime::parse(&retired.remove_after, &time::format_description::well_known::Rfc3339).unwrap();
    let overlap = remove_after - tenant.sim.now();
    assert!(overlap > time::Duration::days(7) - time::Duration::hours(1) && overlap <= time::Duration::days(7));
    assert_eq!(report.retired.len(), 1);
    assert_eq!(report.retired[0].thumbprint_sha1, old);
    assert_eq!(report.retired[0].remove_after, retired.remove_after);

    // Both stay registered: a machine still holding the old PFX keeps signing in.
    assert_eq!(registered(&tenant.state().await), sorted(vec![new, old]));
    signs_in(&tenant, &keys, &p, Path::new(STABLE)).await.expect("the new certificate");
    signs_in(&tenant, &keys, &p, &retired.certificate.path).await.expect("the old certificate, during the overlap");
}

#[tokio::test]
async fn a_later_run_past_the_overlap_removes_the_old_key_and_deletes_its_files() {
    let tenant = Tenant::start(Duration::ZERO).await;
    let (store, keys, _) = set_up(&tenant).await;
    let old = store.get().unwrap().certificate.thumbprint_sha1;
    let services = tenant.services(Arc::new(Recorder::default()));
    let new = cba_lifecycle::rotate(&services, &store, &keys, None, &request()).await.unwrap().new_thumbprint_sha1;
    let new = new.unwrap();
    let dated = store.get().unwrap().retired[0].certificate.path.clone();
    let daily = RotateRequest { if_expiring_within: Some(30), ..request() };

    // The next day's cron: nothing due, the old key stays.
    tenant.sim.advance_clock(DAY);
    let report = cba_lifecycle::rotate(&services, &store, &keys, None, &daily).await.expect("rotate");
    assert!(!report.rotated && report.reason.starts_with("not due") && report.removed.is_empty(), "{report:?}");
    assert_eq!(report.retired.len(), 1);
    assert_eq!(registered(&tenant.state().await), sorted(vec![new.clone(), old.clone()]));
    assert!(keys.at(&dated).is_some());

    // A week later: removed, and its files deleted.
    tenant.sim.advance_clock(7 * DAY);
    let report = cba_lifecycle::rotate(&services, &store, &keys, None, &daily).await.expect("rotate");
    assert!(!report.rotated && report.reason.starts_with("not due"), "{report:?}");
    assert_eq!(report.removed, [old.as_str()]);
    assert!(report.retired.is_empty() && !report.old_removed, "{report:?}");
    assert_eq!(registered(&tenant.state().await), [new.as_str()]);
    assert_eq!(*keys.discarded.lock().unwrap(), [dated]);
    assert_eq!(keys.paths(), [PathBuf::from(STABLE)]);
    let p = store.get().unwrap();
    assert!(p.retired.is_empty(), "{p:#?}");
    signs_in(&tenant, &keys, &p, Path::new(STABLE)).await.expect("the new certificate");

    // Nothing left to do: the next run sends nothing.
    let before = tenant.sim.requests().await.len();
    let report = cba_lifecycle::rotate(&services, &store, &keys, None, &daily).await.expect("rotate");
    assert!(!report.rotated && report.removed.is_empty());
    assert_eq!(tenant.sim.requests().await.len(), before);
}

#[tokio::test]
async fn no_overlap_removes_the_old_key_in_the_same_run() {
    let tenant = Tenant::start(LAG).await;
    let (store, keys, _) = set_up(&tenant).await;
    let old = store.get().unwrap().certificate.thumbprint_sha1;
    let services = tenant.services(Arc::new(Recorder::default()));
    let req = RotateRequest { overlap: Duration::ZERO, ..request() };
    let report = cba_lifecycle::rotate(&services, &store, &keys, None, &req).await.expect("rotate");
    assert!(report.rotated && report.old_removed, "{report:?}");
    assert_eq!(report.removed, [old]);
    let new = report.new_thumbprint_sha1.unwrap();
    assert_eq!(registered(&tenant.state().await), [new.as_str()]);
    assert_eq!(keys.paths(), [PathBuf::from(STABLE)]);
    assert_eq!(keys.at(Path::new(STABLE)), Some(new));
    assert!(store.get().unwrap().retired.is_empty());
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
    assert_eq!(report.certificate, STABLE);
    assert_eq!(*keys.made.lock().unwrap(), 0);
    assert_eq!(tenant.sim.requests().await.len(), before);
}

#[tokio::test]
async fn an_expired_certificate_without_an_admin_is_refused_before_anything_is_made() {
    let tenant = Tenant::start(Duration::ZERO).await;
    let (store, keys, _) = set_up(&tenant).await;
    let old = store.get().unwrap().certificate.thumbprint_sha1;
    tenant.sim.advance_clock(Duration::from_secs(400 * 86_400));
    let services = tenant.services(Arc::new(Recorder::default()));
    let err = cba_lifecycle::rotate(&services, &store, &keys, None, &request()).await.unwrap_err();
    assert!(matches!(err, Error::CertificateExpired { .. }), "{err:?}");
    assert_eq!(*keys.made.lock().unwrap(), 0);
    assert!(store.get().unwrap().pending_certificate.is_none());

    // With one, the administrator's PATCH replaces it; the stable path holds the new one, the expired one
    // is gone at once, overlap or not.
    let report =
        cba_lifecycle::rotate(&services, &store, &keys, Some(&tenant.admin()), &request()).await.expect("rotate");
    assert_eq!(report.method, Some("admin"));
    assert!(report.old_removed && report.retired.is_empty(), "{report:?}");
    assert_eq!(report.removed, [old]);
    let new = report.new_thumbprint_sha1.unwrap();
    assert_eq!(registered(&tenant.state().await), [new.as_str()]);
    assert_eq!(keys.paths(), [PathBuf::from(STABLE)]);
    assert_eq!(keys.at(Path::new(STABLE)), Some(new));
}

#[tokio::test]
async fn a_profile_of_an_earlier_version_between_switch_and_removal_is_finished() {
    let tenant = Tenant::start(Duration::ZERO).await;
    let (store, keys, _) = set_up(&tenant).await;
    let services = tenant.services(Arc::new(Recorder::default()));
    cba_lifecycle::rotate(&services, &store, &keys, None, &request()).await.expect("rotate");
    // What earlier versions left: the old one in `previous_certificate`, still registered.
    let mut p = store.get().unwrap();
    let old = p.retired.remove(0).certificate;
    p.previous_certificate = Some(old.clone());
    store.save(&p).unwrap();

    let report = cba_lifecycle::rotate(&services, &store, &keys, None, &request()).await.expect("rotate");
    assert!(report.resumed && report.old_removed, "{report:?}");
    assert_eq!(report.old_thumbprint_sha1, old.thumbprint_sha1);
    let p = store.get().unwrap();
    assert!(p.previous_certificate.is_none() && p.retired.is_empty(), "{p:#?}");
    assert_eq!(registered(&tenant.state().await), [p.certificate.thumbprint_sha1.as_str()]);
}

#[tokio::test]
async fn killed_at_every_step_the_stable_path_signs_in_and_a_rerun_converges() {
    let no_overlap = RotateRequest { overlap: Duration::ZERO, ..request() };
    // How many kill points a whole rotation (removal included) has.
    let steps = {
        let tenant = Tenant::start(LAG).await;
        let (store, keys, _) = set_up(&tenant).await;
        let recorder = Arc::new(Recorder::default());
        let services = tenant.services(recorder.clone());
        cba_lifecycle::rotate(&services, &store, &keys, None, &no_overlap).await.expect("rotate");
        recorder.steps()
    };
    assert!(steps >= 9, "{steps} progress steps");
    for kill_at in 1..=steps {
        let tenant = Arc::new(Tenant::start(LAG).await);
        let (store, keys, _) = set_up(&tenant).await;
        let (store, keys) = (Arc::new(store), Arc::new(keys));
        let run = {
            let (t, s, k, req) = (tenant.clone(), store.clone(), keys.clone(), no_overlap.clone());
            tokio::spawn(async move {
                let services = t.services(Arc::new(Recorder::killer(kill_at)));
                cba_lifecycle::rotate(&services, s.as_ref(), k.as_ref(), None, &req).await.map(|_| ())
            })
        };
        let died = run.await.is_err();
        assert!(died || kill_at == steps, "run {kill_at} was not killed");

        // Whatever the stable path holds signs in (the profile may lag one step behind the files).
        let p = store.load().unwrap().unwrap();
        assert_eq!(p.certificate.path, Path::new(STABLE), "kill at {kill_at}");
        signs_in(&tenant, &keys, &p, Path::new(STABLE))
            .await
            .unwrap_or_else(|e| panic!("after a kill at step {kill_at} the stable path's certificate fails: {e:?}"));

        // One pass converges: exactly the newest key registered, at the stable path, nothing else kept.
        let services = tenant.services(Arc::new(Recorder::default()));
        let report = cba_lifecycle::rotate(&services, store.as_ref(), keys.as_ref(), None, &no_overlap)
            .await
            .unwrap_or_else(|e| panic!("rerun after a kill at step {kill_at}: {e:?}"));
        assert!(report.rotated, "kill at {kill_at}");
        let p = store.load().unwrap().unwrap();
        assert!(
            p.previous_certificate.is_none() && p.pending_certificate.is_none() && p.retired.is_empty(),
            "kill at {kill_at}: {p:#?}"
        );
        assert_eq!(registered(&tenant.state().await), [p.certificate.thumbprint_sha1.as_str()], "kill at {kill_at}");
        assert_eq!(keys.at(Path::new(STABLE)).as_ref(), Some(&p.certificate.thumbprint_sha1), "kill at {kill_at}");
        assert_eq!(keys.paths(), [PathBuf::from(STABLE)], "kill at {kill_at}: files left behind");
    }
}
