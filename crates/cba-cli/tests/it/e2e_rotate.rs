//! `cba cert rotate`: the app's own addKey/removeKey, crash safety, --if-expiring-within.

use std::time::Duration;

use cba_sim::SimTenant;

use super::{APP, Tenant, assert_code, json, stderr, stdout};

fn thumbprints(state: &cba_sim::StateSnapshot) -> Vec<String> {
    state.primary().applications[0].key_credentials.iter().map(|k| k.thumbprint_sha1.clone()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_rotate_replaces_the_certificate_without_an_admin() {
    let t = Tenant::start(SimTenant::builder().replication_delay(Duration::from_millis(300))).await;
    assert_code(&t.setup(&[]), 0);
    let profile = t.profile();
    let profile = profile.to_str().unwrap();
    let old = t.profile_json()["certificate"]["thumbprint_sha1"].as_str().unwrap().to_string();

    let o = t.run(&["cert", "rotate", "--profile", profile, "--if-expiring-within", "30"]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("not due"), "{}", stdout(&o));
    assert_eq!(thumbprints(&t.sim.state().await), [old.as_str()]);

    // No admin token at all: the app rotates itself.
    let o = super::run(
        t.cmd(&["cert", "rotate", "--profile", profile, "--output", "json"]).env_remove("CBA_GRAPH_TOKEN"),
        None,
    );
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["rotated"], true);
    assert_eq!(doc["method"], "self");
    let new = doc["new_thumbprint_sha1"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(thumbprints(&t.sim.state().await), [new.as_str()], "only the new certificate is registered");
    let p = t.profile_json();
    assert_eq!(p["certificate"]["thumbprint_sha1"], new.as_str());
    assert!(p.get("previous_certificate").is_none() && p.get("pending_certificate").is_none(), "{p:#}");
    let new_path = p["certificate"]["path"].as_str().unwrap().to_string();
    assert!(new_path.starts_with(&format!("{APP}-")) && new_path.ends_with(".pfx"), "{new_path}");
    assert!(t.dir.path().join(&new_path).exists());
    assert!(t.dir.path().join(format!("{APP}.pfx")).exists(), "the old file is kept");

    // The profile works with the new certificate.
    assert_code(&t.run(&["status", "--profile", profile]), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_rotate_killed_between_add_and_remove_then_rerun_finishes() {
    let t = Tenant::start(SimTenant::builder().latency(Duration::from_millis(100))).await;
    assert_code(&t.setup(&[]), 0);
    let profile_path = t.profile();
    let profile = profile_path.to_str().unwrap();
    let old = t.profile_json()["certificate"]["thumbprint_sha1"].as_str().unwrap().to_string();
    let sim = &t.sim;

    // Killed right after addKey reached the tenant: the profile still names the old certificate.
    let args = ["cert", "rotate", "--profile", profile];
    let killed = t.run_until(&args, async || sim.requests().await.iter().any(|r| r.path.ends_with("/addKey"))).await;
    assert!(killed);
    assert_eq!(thumbprints(&sim.state().await).len(), 2, "both registered");
    let p = t.profile_json();
    assert_eq!(p["certificate"]["thumbprint_sha1"], old.as_str(), "the profile names the working certificate");
    assert!(p["pending_certificate"].is_object());
    assert_code(&t.run(&["status", "--profile", profile]), 0);

    // Rerun: it reuses the pending certificate, then is killed once the profile has switched to it.
    let killed = t
        .run_until(&args, async || {
            std::fs::read_to_string(&profile_path).is_ok_and(|s| s.contains("previous_certificate"))
        })
        .await;
    assert!(killed);
    let p = t.profile_json();
    let new = p["certificate"]["thumbprint_sha1"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(p["previous_certificate"]["thumbprint_sha1"], old.as_str());
    assert_code(&t.run(&["status", "--profile", profile]), 0);

    let o = t.run(&["cert", "rotate", "--profile", profile, "--output", "json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["resumed"], true);
    assert_eq!(thumbprints(&sim.state().await), [new.as_str()]);
    let p = t.profile_json();
    assert!(p.get("previous_certificate").is_none());
    assert_eq!(
        std::fs::read_dir(t.dir.path())
            .unwrap()
            .filter(|e| { e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".pfx") })
            .count(),
        2,
        "one new certificate, not one per run"
    );
}

/// An app whose only registered certificate expired yesterday, and the profile `cba setup` would have written
/// for it. Seeded: `cba setup` refuses an expired certificate.
async fn app_with_an_expired_certificate(t: &Tenant) -> String {
    let made = time::OffsetDateTime::now_utc() - time::Duration::days(2);
    let request = cba_cert::NewCertificate::new(APP).validity(cba_cert::Validity::Days(1)).now(made);
    let expired = cba_cert::generate(&request).unwrap();
    let pfx = expired.to_pfx(None, cba_cert::PfxFormat::Modern).unwrap();
    std::fs::write(t.dir.path().join(format!("{APP}.pfx")), pfx).unwrap();
    let app = t.sim.seed_app(APP, &[expired.certificate.der()]).await;
    t.sim.seed_grant_manage_as_app(&app).await;
    t.sim.seed_role_assignment(&app, EXCHANGE_ADMINISTRATOR).await;
    let state = t.sim.state().await;
    let tenant = state.primary();
    let profile = serde_json::json!({
        "version": 1,
        "cloud": "global",
        "endpoints": { "login": t.sim.login_url(), "graph": t.sim.graph_url(), "exchange": t.sim.exchange_url() },
        "tenant_id": t.sim.tenant_id(),
        "tenant_domain": t.sim.tenant_domain(),
        "app_name": APP,
        "app_id": app.app_id,
        "app_object_id": app.object_id,
        "service_principal_id": app.service_principal_id,
        "grant_id": tenant.app_role_assignments[0].id,
        "role_assignments": [
            { "role": "Exchange Administrator", "template_id": EXCHANGE_ADMINISTRATOR, "id": tenant.role_assignments[0].id }
        ],
        "certificate": {
            "path": format!("{APP}.pfx"),
            "thumbprint_sha1": expired.certificate.thumbprint_sha1_hex(),
            "thumbprint_sha256": expired.certificate.thumbprint_sha256_hex(),
            "not_after": cba_token::jwt::rfc3339(expired.certificate.not_after()),
            "key_id": tenant.applications[0].key_credentials[0].key_id,
        }
    });
    std::fs::write(t.profile(), serde_json::to_vec_pretty(&profile).unwrap()).unwrap();
    expired.certificate.thumbprint_sha1_hex()
}

const EXCHANGE_ADMINISTRATOR: &str = "29232cdf-9323-42fd-ade2-1d097af3e4de";

fn pfx_files(t: &Tenant) -> usize {
    std::fs::read_dir(t.dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "pfx"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_rotate_an_expired_certificate_falls_back_to_the_admin() {
    let t = Tenant::start(SimTenant::builder()).await;
    let old = app_with_an_expired_certificate(&t).await;
    let profile_path = t.profile();
    let profile = profile_path.to_str().unwrap();
    let before = (t.sim.state().await, std::fs::read(&profile_path).unwrap());
    assert_code(&t.run(&["status", "--profile", profile]), 7);

    // Without --admin: refused before anything is made, naming the way out.
    let o = t.run(&["cert", "rotate", "--profile", profile]);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("expired") && stderr(&o).contains("--admin"), "{}", stderr(&o));
    assert_eq!((t.sim.state().await, std::fs::read(&profile_path).unwrap()), before, "nothing changed");
    assert_eq!(pfx_files(&t), 1, "no new certificate written");

    // With the admin: the PATCH replaces the expired certificate with the new one.
    let o = t.run(&["cert", "rotate", "--profile", profile, "--admin", "token", "--output", "json"]);
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["method"], "admin");
    assert_eq!(doc["old_removed"], true);
    assert_eq!(doc["old_thumbprint_sha1"], old.as_str());
    let new = doc["new_thumbprint_sha1"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(thumbprints(&t.sim.state().await), [new.as_str()], "exactly one key, the new one");
    assert!(t.sim.requests().await.iter().any(|r| r.method == "PATCH" && r.path.contains("/applications/")));
    let p = t.profile_json();
    assert_eq!(p["certificate"]["thumbprint_sha1"], new.as_str());
    assert!(p.get("previous_certificate").is_none() && p.get("pending_certificate").is_none(), "{p:#}");
    assert!(t.dir.path().join(p["certificate"]["path"].as_str().unwrap()).exists());
    assert_eq!(super::mode(&profile_path), 0o600);
    assert_code(&t.run(&["status", "--profile", profile]), 0);
}
