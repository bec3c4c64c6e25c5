//! `cba demo`: the whole flow in-process, checked against the simulator.

use super::{assert_code, cba, json, run, stderr};

#[test]
fn e2e_demo_runs_every_step() {
    let o = run(cba().args(["demo", "--replication-delay-ms", "400", "--output", "json"]), None);
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["ok"], true);
    let steps: Vec<&str> = doc["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["setup", "status", "token", "rotate", "status", "teardown"]);
    assert!(doc["steps"].as_array().unwrap().iter().all(|s| s["ok"] == true));
    assert!(doc["sim_throttled"].as_u64().unwrap() > 0, "throttling shows: {doc:#}");
    assert!(stderr(&o).contains("in the portal: Entra admin center"), "{}", stderr(&o));
}
