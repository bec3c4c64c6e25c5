//! `cba status`: every link, as a table or JSON; exit 7 when one is broken.

use cba_sim::SimTenant;

use super::{APP, Tenant, assert_code, json, stderr, stdout};

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

fn check<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["checks"].as_array().unwrap().iter().find(|c| c["check"] == name).unwrap_or_else(|| panic!("{name}: {doc:#}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_status_without_a_profile_from_flags_or_the_environment() {
    let t = Tenant::start(SimTenant::builder()).await;
    assert_code(&t.setup(&[]), 0);
    let app_id = t.profile_json()["app_id"].as_str().unwrap().to_string();
    let pfx = format!("{APP}.pfx");
    let flags = ["status", "--tenant", t.sim.tenant_domain(), "--client-id", &app_id, "--cert", &pfx];

    // Flags only, with --admin: Graph is asked by appId, since there is no recorded object id.
    let o = t.run(&[&flags[..], &["--admin", "token", "--output", "json"]].concat());
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["profile"], serde_json::Value::Null);
    assert_eq!(doc["app_name"], APP, "from Graph");
    assert_eq!(doc["app_id"], app_id.as_str());
    assert_eq!(doc["tenant_id"], t.sim.tenant_id(), "the domain given, the id reported");
    assert!(doc["checks"].as_array().unwrap().iter().all(|c| c["ok"] == true), "{doc:#}");
    assert_eq!(check(&doc, "grant")["source"], "graph");
    assert!(check(&doc, "role")["detail"].as_str().unwrap().contains("Exchange Administrator"), "{doc:#}");
    let by_app_id = format!("/applications(appId='{app_id}')");
    assert!(t.sim.requests().await.iter().any(|r| r.method == "GET" && r.path.contains(&by_app_id)));

    // The environment only, no admin: everything read off the token.
    let o = super::run(
        t.cmd(&["status", "--output", "json"])
            .env("AZURE_TENANT_ID", t.sim.tenant_id())
            .env("AZURE_CLIENT_ID", &app_id)
            .env("AZURE_CLIENT_CERTIFICATE_PATH", &pfx),
        None,
    );
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["app_name"], APP, "from the token's app_displayname");
    assert_eq!(check(&doc, "role")["source"], "token");
    assert!(doc["checks"].as_array().unwrap().iter().all(|c| c["ok"] == true), "{doc:#}");

    // --role asks for a role the app was not given.
    let o = t.run(&[&flags[..], &["--role", "exchange recipient administrator", "--output", "json"]].concat());
    assert_code(&o, 7);
    let role = check(&json(&o), "role").clone();
    assert_eq!(role["ok"], false);
    assert!(role["detail"].as_str().unwrap().contains("Exchange Recipient Administrator"), "{role}");
    assert_code(&t.run(&[&flags[..], &["--role", "Janitor"]].concat()), 2);

    // Half the flags: a usage error naming what is missing.
    let o = t.run(&["status", "--tenant", t.sim.tenant_domain(), "--cert", &pfx]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("--client-id (AZURE_CLIENT_ID)"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_status_without_a_profile_names_a_revoked_grant() {
    let t = Tenant::start(SimTenant::builder()).await;
    assert_code(&t.setup(&[]), 0);
    let app_id = t.profile_json()["app_id"].as_str().unwrap().to_string();
    let grant = t.sim.state().await.primary().app_role_assignments[0].clone();
    t.admin_graph().delete_app_role_assignment(&grant.resource_id, &grant.id).await.unwrap();
    assert!(t.sim.state().await.primary().app_role_assignments.is_empty());
    let pfx = format!("{APP}.pfx");
    let flags = ["status", "--tenant", t.sim.tenant_id(), "--client-id", &app_id, "--cert", &pfx, "--output", "json"];

    // From the token: it no longer carries Exchange.ManageAsApp.
    let o = t.run(&flags);
    assert_code(&o, 7);
    let doc = json(&o);
    assert_eq!(doc["ok"], false);
    assert_eq!(failed_checks(&doc), ["grant", "token"], "{doc:#}");
    assert_eq!(check(&doc, "grant")["source"], "token");
    assert!(stderr(&o).contains("check(s) failed"), "{}", stderr(&o));

    // From Graph: the grant itself is missing.
    let o = t.run(&[&flags[..], &["--admin", "token"]].concat());
    assert_code(&o, 7);
    let doc = json(&o);
    assert_eq!(failed_checks(&doc), ["grant", "token"], "{doc:#}");
    let grant = check(&doc, "grant");
    assert_eq!(grant["source"], "graph");
    assert!(grant["detail"].as_str().unwrap().contains("not granted"), "{grant}");
}

fn failed_checks(doc: &serde_json::Value) -> Vec<&str> {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["check"].as_str().unwrap())
        .collect()
}
