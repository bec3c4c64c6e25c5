//! `cba status`: every link, as a table or JSON; exit 7 when one is broken.

use cba_sim::SimTenant;

use super::{Tenant, assert_code, json, stderr, stdout};

#[tokio::test(flavor = "multi_thread")]
async fn e2e_status_passes_after_setup_and_names_the_broken_link() {
    let t = Tenant::start(SimTenant::builder()).await;
    assert_code(&t.setup(&[]), 0);
    let profile = t.profile();
    let profile = profile.to_str().unwrap();

    let o = t.run(&["status", "--profile", profile]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("All checks passed"), "{}", stdout(&o));
    let o = t.run(&["status", "--profile", profile, "--admin", "token", "--output", "json"]);
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["ok"], true);
    let checks: Vec<&str> = doc["checks"].as_array().unwrap().iter().map(|c| c["check"].as_str().unwrap()).collect();
    assert_eq!(
        checks,
        [
            "certificate_file",
            "days_left",
            "app",
            "certificate_registered",
            "service_principal",
            "grant",
            "role",
            "token"
        ]
    );
    assert!(doc["checks"].as_array().unwrap().iter().all(|c| c["ok"] == true && c["warning"] == false), "{doc:#}");
    assert_eq!(doc["checks"][2]["source"], "graph");

    // Break the chain: the app is gone.
    assert_code(&t.run(&["teardown", "--profile", profile, "--yes"]), 0);
    let o = t.run(&["status", "--profile", profile, "--output", "json"]);
    assert_code(&o, 7);
    let doc = json(&o);
    assert_eq!(doc["ok"], false);
    let app = doc["checks"].as_array().unwrap().iter().find(|c| c["check"] == "app").unwrap();
    assert_eq!(app["ok"], false);
    assert!(app["detail"].as_str().unwrap().contains("AADSTS700016"), "{app}");
    assert!(stderr(&o).contains("check(s) failed"), "{}", stderr(&o));
    let o = t.run(&["status", "--profile", profile, "--admin", "token"]);
    assert_code(&o, 7);
    assert!(stdout(&o).contains("FAILED"), "{}", stdout(&o));

    // An unreadable profile is bad input, not a failed check.
    std::fs::write(t.dir.path().join("bad.json"), "{").unwrap();
    assert_code(&t.run(&["status", "--profile", "bad.json"]), 3);
    assert_code(&t.run(&["status"]), 2);
}
