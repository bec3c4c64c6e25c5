//! `cba cert rotate`: the app's own addKey/removeKey, the setup's path kept working, the overlap, crash
//! safety, --if-expiring-within.

use std::path::Path;
use std::time::Duration;

use cba_sim::SimTenant;

use super::{APP, Tenant, assert_code, json, stderr, stdout};

fn thumbprints(state: &cba_sim::StateSnapshot) -> Vec<String> {
    let mut keys: Vec<String> =
        state.primary().applications[0].key_credentials.iter().map(|k| k.thumbprint_sha1.clone()).collect();
    keys.sort();
    keys
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The thumbprint of the certificate in an unprotected PFX or a PEM file.
fn thumbprint_at(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    cba_cert::load(&bytes, None).unwrap().certificate.thumbprint_sha1_hex()
}

/// `cba token` with the certificate at `cert`, no profile, no cache: what a script naming the file does.
fn token_with(t: &Tenant, app_id: &str, cert: &Path) -> std::process::Output {
    let tenant = t.sim.tenant_domain();
    let cert = cert.to_str().unwrap();
    t.run(&["token", "--tenant", tenant, "--client-id", app_id, "--cert", cert, "--no-cache"])
}

/// Files in the test folder ending in `ext`.
fn files(t: &Tenant, ext: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(t.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext))
        .collect();
    names.sort();
    names
}

/// A later run, once the overlap has passed: `cba` reads the time from this machine's clock, so the test
/// moves the recorded `remove_after` into the past instead of moving the clock.
fn overlap_passes(t: &Tenant) {
    let mut p = t.profile_json();
    for r in p["retired"].as_array_mut().unwrap() {
        r["remove_after"] = "2000-01-01T00:00:00Z".into();
    }
    std::fs::write(t.profile(), serde_json::to_vec_pretty(&p).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_rotate_keeps_the_setup_path_working_and_the_old_key_for_the_overlap() {
    let t = Tenant::start(SimTenant::builder().replication_delay(Duration::from_millis(300))).await;
    assert_code(&t.setup(&[]), 0);
    let profile = t.profile();
    let profile = profile.to_str().unwrap();
    let setup = t.profile_json();
    let old = setup["certificate"]["thumbprint_sha1"].as_str().unwrap().to_string();
    let app_id = setup["app_id"].as_str().unwrap().to_string();
    let stable = t.dir.path().join(format!("{APP}.pfx"));
    assert_eq!(setup["certificate"]["path"], format!("{APP}.pfx"));

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
    assert_eq!(doc["old_removed"], false);
    assert_eq!(doc["removed"], serde_json::json!([]));
    let new = doc["new_thumbprint_sha1"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(Path::new(doc["certificate"].as_str().unwrap()), stable);
    assert_eq!(doc["retired"][0]["thumbprint_sha1"], old.as_str());
    let powershell = doc["next_steps"]["powershell"].as_str().unwrap();
    assert!(powershell.contains(&format!("-CertificateFilePath '{}'", stable.display())), "{powershell}");

    // Both registered for the overlap; the setup's path holds the new one, the old one is kept beside it.
    assert_eq!(thumbprints(&t.sim.state().await), sorted(vec![new.clone(), old.clone()]));
    let p = t.profile_json();
    assert_eq!(p["certificate"]["path"], format!("{APP}.pfx"), "the path setup printed");
    assert_eq!(p["certificate"]["thumbprint_sha1"], new.as_str());
    assert!(p.get("previous_certificate").is_none() && p.get("pending_certificate").is_none(), "{p:#}");
    assert_eq!(thumbprint_at(&stable), new);
    assert_eq!(p["retired"].as_array().unwrap().len(), 1, "{p:#}");
    let dated = p["retired"][0]["certificate"]["path"].as_str().unwrap().to_string();
    assert!(dated.starts_with(&format!("{APP}-")) && dated.ends_with(".pfx"), "{dated}");
    assert_eq!(thumbprint_at(&t.dir.path().join(&dated)), old, "the old one is kept beside it");
    assert_eq!(files(&t, ".pfx"), sorted(vec![format!("{APP}.pfx"), dated.clone()]), "no .next file left");
    assert_eq!(files(&t, ".cer").len(), 2);
    assert_eq!(super::mode(&t.dir.path().join(&dated)), 0o600);
    assert_eq!(super::mode(&stable), 0o600);

    // Everything that names the path keeps working; so does a machine still holding the old PFX.
    assert_code(&t.run(&["token", "--profile", profile, "--no-cache"]), 0);
    assert_code(&token_with(&t, &app_id, &stable), 0);
    assert_code(&token_with(&t, &app_id, &t.dir.path().join(&dated)), 0);
    assert_code(&t.run(&["status", "--profile", profile]), 0);

    // The daily cron within the overlap: nothing to do.
    let daily = ["cert", "rotate", "--profile", profile, "--if-expiring-within", "30", "--output", "json"];
    let o = t.run(&daily);
    assert_code(&o, 0);
    assert_eq!(json(&o)["rotated"], false);
    assert_eq!(json(&o)["removed"], serde_json::json!([]));
    assert_eq!(thumbprints(&t.sim.state().await).len(), 2);

    // Once the overlap has passed, the cron removes the old key and deletes its files.
    overlap_passes(&t);
    let o = t.run(&daily);
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["rotated"], false);
    assert_eq!(doc["removed"], serde_json::json!([old.as_str()]));
    assert_eq!(thumbprints(&t.sim.state().await), [new.as_str()]);
    assert_eq!(files(&t, ".pfx"), [format!("{APP}.pfx")]);
    assert_eq!(files(&t, ".cer"), [format!("{APP}.cer")]);
    assert!(t.profile_json().get("retired").is_none());
    assert_code(&token_with(&t, &app_id, &stable), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_rotate_killed_midway_then_rerun_finishes() {
    let t = Tenant::start(SimTenant::builder().latency(Duration::from_millis(100))).await;
    assert_code(&t.setup(&[]), 0);
    let profile_path = t.profile();
    let profile = profile_path.to_str().unwrap();
    let old = t.profile_json()["certificate"]["thumbprint_sha1"].as_str().unwrap().to_string();
    let app_id = t.profile_json()["app_id"].as_str().unwrap().to_string();
    let stable = t.dir.path().join(format!("{APP}.pfx"));
    let sim = &t.sim;

    // Killed right after addKey reached the tenant: the profile and the setup's path still hold the old one.
    let args = ["cert", "rotate", "--profile", profile, "--overlap", "0"];
    let killed = t.run_until(&args, async || sim.requests().await.iter().any(|r| r.path.ends_with("/addKey"))).await;
    assert!(killed);
    assert_eq!(thumbprints(&sim.state().await).len(), 2, "both registered");
    let p = t.profile_json();
    assert_eq!(p["certificate"]["thumbprint_sha1"], old.as_str(), "the profile names the working certificate");
    assert!(p["pending_certificate"].is_object());
    assert_eq!(thumbprint_at(&stable), old);
    assert_code(&t.run(&["status", "--profile", profile]), 0);
    assert_code(&token_with(&t, &app_id, &stable), 0);

    // Rerun: it reuses the pending certificate, then is killed once the profile has switched to it, before
    // the old key is removed.
    let killed = t
        .run_until(&args, async || std::fs::read_to_string(&profile_path).is_ok_and(|s| s.contains("\"retired\"")))
        .await;
    assert!(killed);
    let p = t.profile_json();
    let new = p["certificate"]["thumbprint_sha1"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(p["retired"][0]["certificate"]["thumbprint_sha1"], old.as_str());
    assert_eq!(thumbprint_at(&stable), new);
    assert_code(&t.run(&["status", "--profile", profile]), 0);
    assert_code(&token_with(&t, &app_id, &stable), 0);

    // The cron finishes it: the old key (its overlap was zero) is removed, one new certificate in all.
    let o = t.run(&["cert", "rotate", "--profile", profile, "--if-expiring-within", "30", "--output", "json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["removed"], serde_json::json!([old.as_str()]));
    assert_eq!(thumbprints(&sim.state().await), [new.as_str()]);
    assert!(t.profile_json().get("retired").is_none());
    assert_eq!(files(&t, ".pfx"), [format!("{APP}.pfx")], "one certificate file, not one per run");
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_rotate_a_pem_setup_stays_pem() {
    let t = Tenant::start(SimTenant::builder()).await;
    let identity = cba_cert::generate(&cba_cert::NewCertificate::new(APP)).unwrap();
    let pem = t.dir.path().join(format!("{APP}.pem"));
    std::fs::write(&pem, identity.to_pem().unwrap().as_bytes()).unwrap();
    let tenant = t.sim.tenant_domain();
    assert_code(
        &t.run(&["setup", "--tenant", tenant, "--name", APP, "--cert", pem.to_str().unwrap(), "--wait", "60s"]),
        0,
    );
    let profile = t.profile();
    let profile = profile.to_str().unwrap();
    let old = identity.certificate.thumbprint_sha1_hex();

    let o = t.run(&["cert", "rotate", "--profile", profile, "--output", "json"]);
    assert_code(&o, 0);
    let new = json(&o)["new_thumbprint_sha1"].as_str().unwrap().to_string();
    let p = t.profile_json();
    assert_eq!(p["certificate"]["path"], format!("{APP}.pem"));
    let text = std::fs::read_to_string(&pem).unwrap();
    assert!(text.contains("-----BEGIN CERTIFICATE-----") && text.contains("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(thumbprint_at(&pem), new);
    let dated = p["retired"][0]["certificate"]["path"].as_str().unwrap();
    assert!(dated.ends_with(".pem"), "{dated}");
    assert_eq!(thumbprint_at(&t.dir.path().join(dated)), old);
    assert!(files(&t, ".pfx").is_empty(), "no PFX appeared: {:?}", files(&t, ".pfx"));
    assert_code(&t.run(&["token", "--profile", profile, "--no-cache"]), 0);
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
    assert_eq!(files(&t, ".pfx").len(), 1, "no new certificate written");

    // With the admin: the PATCH replaces the expired certificate with the new one, at the same path; the
    // expired one is not kept, overlap or not.
    let o = t.run(&["cert", "rotate", "--profile", profile, "--admin", "token", "--output", "json"]);
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["method"], "admin");
    assert_eq!(doc["old_removed"], true);
    assert_eq!(doc["old_thumbprint_sha1"], old.as_str());
    assert_eq!(doc["retired"], serde_json::json!([]));
    let new = doc["new_thumbprint_sha1"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(thumbprints(&t.sim.state().await), [new.as_str()], "exactly one key, the new one");
    assert!(t.sim.requests().await.iter().any(|r| r.method == "PATCH" && r.path.contains("/applications/")));
    let p = t.profile_json();
    assert_eq!(p["certificate"]["thumbprint_sha1"], new.as_str());
    assert_eq!(p["certificate"]["path"], format!("{APP}.pfx"));
    assert!(p.get("previous_certificate").is_none() && p.get("pending_certificate").is_none(), "{p:#}");
    assert!(p.get("retired").is_none(), "{p:#}");
    assert_eq!(thumbprint_at(&t.dir.path().join(format!("{APP}.pfx"))), new);
    assert_eq!(files(&t, ".pfx"), [format!("{APP}.pfx")]);
    assert_eq!(super::mode(&profile_path), 0o600);
    assert_code(&t.run(&["status", "--profile", profile]), 0);
}
