//! `cba setup --multi-tenant`, `cba fleet add|status|remove`, `cba exo invoke --fleet` and `cba cert rotate
//! --fleet` as processes against a simulated provider tenant with customer tenants.

use cba_sim::{Service, SimTenant, TenantFault};

use super::{APP, Tenant, assert_code, json, stderr, stdout};

fn fleet_file(t: &Tenant) -> std::path::PathBuf {
    t.dir.path().join(format!("{APP}.fleet.json"))
}

fn fleet_json(t: &Tenant) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fleet_file(t)).unwrap()).unwrap()
}

/// `cba fleet add` for customer tenant `i` with its admin's Graph token (or none: the consent URL).
fn add(t: &Tenant, i: usize, admin: bool, extra: &[&str]) -> std::process::Command {
    let domain = t.sim.tenants()[i].domain.clone();
    let profile = t.profile();
    let mut cmd = t.cmd(&["fleet", "add", "--profile", profile.to_str().unwrap(), "--tenant", &domain]);
    cmd.args(extra);
    if admin {
        cmd.env("CBA_GRAPH_TOKEN", t.sim.admin_token_for(&domain).unwrap());
    } else {
        cmd.env_remove("CBA_GRAPH_TOKEN");
    }
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_fleet_onboard_status_fan_out_rotate_remove() {
    let t = Tenant::start(SimTenant::builder().tenant_name("provider").customer_tenants(4)).await;
    let o = t.setup(&["--multi-tenant", "--output", "json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["multi_tenant"], true);
    assert_eq!(t.sim.state().await.primary().applications[0].sign_in_audience, "AzureADMultipleOrgs");
    assert_eq!(t.profile_json()["multi_tenant"], true);

    // Customers 1 and 2 at once (two processes on one fleet file), then 3.
    let (mut a, mut b) = (add(&t, 1, true, &["--output", "json"]), add(&t, 2, true, &["--output", "json"]));
    let (ca, cb) = (
        a.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap(),
        b.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap(),
    );
    let (oa, ob) = (ca.wait_with_output().unwrap(), cb.wait_with_output().unwrap());
    assert_code(&oa, 0);
    assert_code(&ob, 0);
    assert_eq!(json(&oa)["state"], "onboarded");
    let o = super::run(&mut add(&t, 3, true, &[]), None);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("onboarded"), "{}", stdout(&o));
    let fleet = fleet_json(&t);
    assert_eq!(fleet["tenants"].as_array().unwrap().len(), 3, "both concurrent adds recorded: {fleet:#}");
    assert_eq!(super::mode(&fleet_file(&t)), 0o600);
    assert_eq!(fleet["home"]["profile"], format!("{APP}.profile.json"));

    // A wrong-tenant token: refused, nothing written, exit 4.
    let second_token = t.sim.admin_token_for(&t.sim.tenants()[2].domain).unwrap();
    let mut wrong = add(&t, 4, true, &[]);
    wrong.env("CBA_GRAPH_TOKEN", &second_token);
    let o = super::run(&mut wrong, None);
    assert_code(&o, 4);
    assert!(stderr(&o).contains("nothing was changed"), "{}", stderr(&o));
    assert_eq!(fleet_json(&t)["tenants"].as_array().unwrap().len(), 3);

    // Customer 4 by consent: the URL, then the admin accepts, then --wait sees it.
    let o = super::run(&mut add(&t, 4, false, &["--output", "json"]), None);
    assert_code(&o, 0);
    let url = json(&o)["consent_url"].as_str().unwrap().to_string();
    assert!(url.contains("/adminconsent?client_id="), "{url}");
    let page = cba_token::reqwest::get(&url).await.unwrap();
    assert!(page.status().as_u16() < 400, "{}", page.status());
    let fourth = t.sim.tenants()[4].id.clone();
    let app_id = t.profile_json()["app_id"].as_str().unwrap().to_string();
    assert!(t.sim.approve_consent(&fourth, &app_id).is_some());
    let o = super::run(&mut add(&t, 4, false, &["--wait", "60s", "--output", "json"]), None);
    assert_code(&o, 0);
    assert_eq!(json(&o)["state"], "consented", "no role without the customer admin's sign-in");

    // Status: customer 4 has no role: 3 of 4 healthy, exit 7, every row in the CSV.
    let fleet_arg = fleet_file(&t);
    let fleet_arg = fleet_arg.to_str().unwrap();
    let o = t.run(&["fleet", "status", "--fleet", fleet_arg, "--output", "csv"]);
    assert_code(&o, 7);
    assert!(stderr(&o).contains("3 of 4 tenants healthy"), "{}", stderr(&o));
    let csv = stdout(&o);
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.lines().next().unwrap().starts_with("tenant_id,"), "{csv}");
    let broken: Vec<&str> = csv.lines().filter(|l| l.contains(&fourth)).collect();
    assert_eq!(broken.len(), 1, "{csv}");
    assert!(broken[0].contains(",consented,true,true,false,"), "consent, grant ok; role false: {csv}");
    let o = t.run(&["fleet", "status", "--fleet", fleet_arg, "--output", "json"]);
    assert_code(&o, 7);
    let doc = json(&o);
    assert_eq!((doc["healthy"].as_u64(), doc["total"].as_u64()), (Some(3), Some(4)));
    let row = doc["tenants"].as_array().unwrap().iter().find(|r| r["tenant_id"] == fourth.as_str()).unwrap().clone();
    assert_eq!(row["role"], false, "{row:#}");

    // Fan-out: customer 1 throttled, customer 2's Exchange refuses: the others complete, rows tagged.
    let (first, second) = (t.sim.tenants()[1].id.clone(), t.sim.tenants()[2].id.clone());
    t.sim.set_tenant_fault(&first, TenantFault::throttle([Service::Exchange], 2, 1));
    t.sim.set_tenant_fault(&second, TenantFault::exchange_unauthorized());
    let o = t.run(&["exo", "invoke", "Get-OrganizationConfig", "--fleet", fleet_arg, "--all", "--output", "jsonl"]);
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let tagged: Vec<&str> = rows.iter().map(|r| r["tenant"].as_str().unwrap()).collect();
    assert!(tagged.contains(&first.as_str()), "the throttled tenant completes: {tagged:?}");
    assert!(tagged.contains(&t.sim.tenants()[3].id.as_str()), "{tagged:?}");
    assert!(!tagged.contains(&second.as_str()), "{tagged:?}");
    assert!(stderr(&o).contains(&format!("tenant {second}")), "{}", stderr(&o));
    t.sim.set_tenant_fault(&first, TenantFault::default());
    t.sim.set_tenant_fault(&second, TenantFault::default());
    let o = t.run(&["exo", "invoke", "Get-Mailbox", "--fleet", fleet_arg, "--tenants", &first, "--output", "csv"]);
    assert_code(&o, 0);
    assert!(stdout(&o).lines().next().unwrap().starts_with("tenant,"), "{}", stdout(&o));

    // One rotation for every tenant, proven in all of them before the old key goes.
    let profile = t.profile();
    let o = t.run(&[
        "cert",
        "rotate",
        "--profile",
        profile.to_str().unwrap(),
        "--fleet",
        fleet_arg,
        "--prove-all",
        "--overlap",
        "0s",
        "--output",
        "json",
    ]);
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["rotated"], true);
    assert_eq!(doc["proven_in"].as_array().unwrap().len(), 4, "{doc:#}");

    // Remove customer 3 with its admin's token.
    let third = t.sim.tenants()[3].domain.clone();
    let mut remove = t.cmd(&["fleet", "remove", "--fleet", fleet_arg, "--tenant", &third, "--output", "json"]);
    remove.env("CBA_GRAPH_TOKEN", t.sim.admin_token_for(&third).unwrap());
    let o = super::run(&mut remove, None);
    assert_code(&o, 0);
    assert_eq!(json(&o)["removed"], true);
    assert_eq!(t.sim.state().await.tenant(&third).unwrap().custom_service_principals().count(), 0);
    assert_eq!(fleet_json(&t)["tenants"].as_array().unwrap().len(), 3);

    // The fleet of one app with another app's profile: refused before any request.
    let other = ["setup", "--multi-tenant", "--tenant", t.sim.tenant_domain(), "--name", "other", "--no-password"];
    assert_code(&t.run(&other), 0);
    let o = t.run(&[
        "exo",
        "invoke",
        "Get-OrganizationConfig",
        "--fleet",
        fleet_arg,
        "--all",
        "--profile",
        "other.profile.json",
    ]);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("is the fleet of app"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_fleet_status_does_not_wait_on_a_tenant_that_never_answers() {
    let t = Tenant::start(SimTenant::builder().tenant_name("provider").customer_tenants(2)).await;
    assert_code(&t.setup(&["--multi-tenant"]), 0);
    for i in [1, 2] {
        assert_code(&super::run(&mut add(&t, i, true, &[]), None), 0);
    }
    let down = t.sim.tenants()[2].id.clone();
    t.sim.set_tenant_fault(&down, TenantFault::fail([Service::Login], u64::MAX));
    let started = std::time::Instant::now();
    let o = t.run(&[
        "fleet",
        "status",
        "--profile",
        t.profile().to_str().unwrap(),
        "--tenant-timeout",
        "2s",
        "--output",
        "jsonl",
    ]);
    assert_code(&o, 7);
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "{:?}", started.elapsed());
    assert!(stderr(&o).contains("1 of 2 tenants healthy"), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let row = rows.iter().find(|r| r["tenant_id"] == down.as_str()).expect("a row for the tenant that is down");
    assert_eq!(row["token"], serde_json::Value::Null, "unconfirmed, not ok: {row}");
    assert!(row["detail"].as_str().unwrap().contains("no answer within 2 s"), "{row}");
    // The last check is recorded in the fleet file.
    let fleet = fleet_json(&t);
    let entry = fleet["tenants"].as_array().unwrap().iter().find(|e| e["tenant_id"] == down.as_str()).unwrap().clone();
    assert_eq!(entry["last_check"]["healthy"], false, "{entry:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_fleet_add_with_an_exchange_role_group_status_and_remove() {
    const VIEW_ONLY: &str = "View-Only Organization Management";
    let t = Tenant::start(SimTenant::builder().tenant_name("provider").customer_tenants(2)).await;
    assert_code(&t.setup(&["--multi-tenant"]), 0);
    let (domain, id) = (t.sim.tenants()[1].domain.clone(), t.sim.tenants()[1].id.clone());
    let exo_token = t.sim.exchange_admin_token_for(&domain).unwrap();
    let group = ["--exchange-role-group", VIEW_ONLY, "--output", "json"];

    // Without the customer admin's sign-in: refused as usage, nothing recorded.
    let mut no_admin = add(&t, 1, false, &group);
    no_admin.env("CBA_EXO_ADMIN_TOKEN", &exo_token);
    let o = super::run(&mut no_admin, None);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("customer admin's sign-in"), "{}", stderr(&o));
    assert!(!fleet_file(&t).exists());
    // Another tenant's Exchange token: refused before any write in the tenant.
    let mut wrong = add(&t, 1, true, &group);
    wrong.env("CBA_EXO_ADMIN_TOKEN", t.sim.exchange_admin_token_for(&t.sim.tenants()[2].domain).unwrap());
    let o = super::run(&mut wrong, None);
    assert_code(&o, 4);
    assert!(stderr(&o).contains("nothing was changed"), "{}", stderr(&o));
    assert_eq!(t.sim.state().await.tenant(&domain).unwrap().custom_service_principals().count(), 0);
    assert!(!fleet_file(&t).exists(), "nothing recorded");

    let mut ok = add(&t, 1, true, &group);
    ok.env("CBA_EXO_ADMIN_TOKEN", &exo_token);
    let o = super::run(&mut ok, None);
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["state"], "onboarded", "{doc:#}");
    assert_eq!(doc["roles"], serde_json::json!([]), "no Entra role: {doc:#}");
    assert_eq!(doc["exchange"]["role_group"], VIEW_ONLY);
    assert_eq!(doc["exchange"]["created"], serde_json::json!(["service_principal", "membership"]));
    assert_eq!(doc["exchange"]["proof_cmdlet"], "Get-Mailbox");
    let sp = doc["service_principal_id"].as_str().unwrap().to_string();
    let state = t.sim.state().await;
    let tenant = state.tenant(&domain).unwrap();
    assert!(tenant.role_assignments.is_empty(), "{:#?}", tenant.role_assignments);
    assert!(tenant.exchange_service_principals.iter().any(|s| s.object_id.eq_ignore_ascii_case(&sp)));
    let entry = fleet_json(&t)["tenants"][0].clone();
    assert_eq!(entry["exchange"]["role_group"], VIEW_ONLY, "{entry:#}");
    assert!(entry["exchange"]["service_principal"].as_str().unwrap().eq_ignore_ascii_case(&sp));

    // A rerun makes nothing.
    let mut again = add(&t, 1, true, &group);
    again.env("CBA_EXO_ADMIN_TOKEN", &exo_token);
    let o = super::run(&mut again, None);
    assert_code(&o, 0);
    assert_eq!(json(&o)["exchange"]["created"], serde_json::json!([]));

    // Status with the customer's Exchange token: the membership read and confirmed; without it, unconfirmed.
    let profile = t.profile();
    let status = ["fleet", "status", "--profile", profile.to_str().unwrap(), "--output", "json"];
    let mut with_reader = t.cmd(&status);
    with_reader.env("CBA_EXO_ADMIN_TOKEN", &exo_token);
    let o = super::run(&mut with_reader, None);
    assert_code(&o, 0);
    let row = json(&o)["tenants"][0].clone();
    let link = |row: &serde_json::Value, name: &str| {
        row["exchange_links"].as_array().unwrap().iter().find(|c| c["check"] == name).unwrap()["ok"].clone()
    };
    assert_eq!(link(&row, "exchange_membership"), true, "{row:#}");
    assert_eq!(link(&row, "exchange_access"), true, "{row:#}");
    let mut without = t.cmd(&status);
    without.env_remove("CBA_EXO_ADMIN_TOKEN");
    let o = super::run(&mut without, None);
    assert_code(&o, 0);
    let row = json(&o)["tenants"][0].clone();
    assert_eq!(link(&row, "exchange_membership"), serde_json::Value::Null, "{row:#}");

    // Remove: the Exchange sign-in is needed for what cba made there; with it, nothing of the app is left.
    let fleet_arg = fleet_file(&t);
    let remove = ["fleet", "remove", "--fleet", fleet_arg.to_str().unwrap(), "--tenant", &domain, "--output", "json"];
    let mut refused = t.cmd(&remove);
    refused.env("CBA_GRAPH_TOKEN", t.sim.admin_token_for(&domain).unwrap()).env_remove("CBA_EXO_ADMIN_TOKEN");
    let o = super::run(&mut refused, None);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("--exchange-admin"), "{}", stderr(&o));
    let mut removed = t.cmd(&remove);
    removed.env("CBA_GRAPH_TOKEN", t.sim.admin_token_for(&domain).unwrap()).env("CBA_EXO_ADMIN_TOKEN", &exo_token);
    let o = super::run(&mut removed, None);
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["removed"], true, "{doc:#}");
    assert!(doc["exchange"]["removed"].as_array().unwrap().iter().any(|r| r == "exchange_service_principal"));
    let state = t.sim.state().await;
    let tenant = state.tenant(&id).unwrap();
    assert!(tenant.exchange_service_principals.is_empty(), "{:#?}", tenant.exchange_service_principals);
    assert!(tenant.role_groups.iter().all(|g| !g.members.iter().any(|m| m.eq_ignore_ascii_case(&sp))));
    assert_eq!(tenant.custom_service_principals().count(), 0);
    assert!(fleet_json(&t)["tenants"].as_array().unwrap().is_empty());
}
