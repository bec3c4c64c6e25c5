//! `cba cert rotate`: the app's own addKey/removeKey, crash safety, --if-expiring-within.

use std::time::Duration;

use cba_sim::SimTenant;

use super::{APP, Tenant, assert_code, json, stdout};

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
