//! `cba teardown`: removes everything, twice is fine, asks unless --yes, files only with --delete-files.

use cba_sim::SimTenant;

use super::{APP, Tenant, assert_code, json, stderr};

#[tokio::test(flavor = "multi_thread")]
async fn e2e_teardown_twice_and_files_only_on_request() {
    let t = Tenant::start(SimTenant::builder()).await;
    assert_code(&t.setup(&[]), 0);
    let profile = t.profile();
    let profile = profile.to_str().unwrap();
    let state = t.sim.state().await;

    // No terminal and no --yes: refused, nothing deleted.
    let o = t.run(&["teardown", "--profile", profile]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("--yes"), "{}", stderr(&o));
    assert_eq!(t.sim.state().await, state);

    let o = t.run(&["teardown", "--profile", profile, "--yes", "--output", "json"]);
    assert_code(&o, 0);
    let doc = json(&o);
    let removed: Vec<&str> = doc["removed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(
        removed.contains(&"application") && removed.contains(&"service_principal") && removed.contains(&"grant"),
        "{doc:#}"
    );
    t.assert_empty().await;
    assert!(t.profile().exists() && t.dir.path().join(format!("{APP}.pfx")).exists(), "files stay");

    let o = t.run(&["teardown", "--profile", profile, "--yes", "--output", "json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["removed"].as_array().unwrap().len(), 0);
    assert_eq!(json(&o)["already_gone"][0], "application");
    t.assert_empty().await;

    let o = t.run(&["teardown", "--profile", profile, "--yes", "--delete-files"]);
    assert_code(&o, 0);
    assert!(!t.profile().exists());
    assert!(!t.dir.path().join(format!("{APP}.pfx")).exists());
    assert!(!t.dir.path().join(format!("{APP}.cer")).exists());

    // Without a profile: by tenant and name.
    assert_code(&t.setup(&[]), 0);
    let o = t.run(&["teardown", "--tenant", t.sim.tenant_domain(), "--name", APP, "--yes"]);
    assert_code(&o, 0);
    t.assert_empty().await;
}
