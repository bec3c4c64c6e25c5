//! `cba setup --exchange-role-group / --exchange-roles` (least privilege in Exchange) against the simulated
//! tenant: the app reads or writes only what its role group allows, reruns change nothing, `cba status` catches a
//! removed membership, `cba exo roles` reads the groups, teardown leaves nothing.

use std::time::Duration;

use cba_sim::SimTenant;
use serde_json::json;

use super::{Tenant, assert_code, json, run, stderr, stdout};

const VIEW_ONLY: &str = "View-Only Organization Management";
const ROLES: &str = "Mail Recipients,View-Only Recipients";
const SALES: &str = "Department -eq 'Sales'";

/// `cba …` in the tenant's folder with the admin's delegated Exchange token in CBA_EXO_ADMIN_TOKEN.
fn as_admin(t: &Tenant, args: &[&str]) -> std::process::Output {
    let mut cmd = t.cmd(args);
    cmd.env("CBA_EXO_ADMIN_TOKEN", t.sim.exchange_admin_token());
    run(&mut cmd, None)
}

fn setup(t: &Tenant, extra: &[&str]) -> std::process::Output {
    as_admin(t, &t.setup_args(extra))
}

fn profile(t: &Tenant) -> String {
    t.profile().display().to_string()
}

/// The admin's delegated Exchange client, to look and to change things behind cba's back.
fn admin_exo(t: &Tenant) -> cba_exo::ExoClient {
    let token = t.sim.exchange_admin_token();
    let upn = cba_token::jwt::decode(&token).unwrap().claim_str("upn").unwrap().to_string();
    cba_exo::ExoClient::builder()
        .base_url(t.sim.exchange_url())
        .tenant_id(t.sim.tenant_id())
        .token_source(std::sync::Arc::new(cba_exo::StaticToken::new(token)))
        .anchor_mailbox(format!("UPN:{upn}"))
        .build()
        .unwrap()
}

async fn mailbox_in(t: &Tenant, department: &str) -> String {
    let params = cba_exo::Parameters::from_json(json!({"ResultSize": 8})).unwrap();
    let users = admin_exo(t).collect_all("Get-User", &params).await.unwrap();
    let user = users.iter().find(|u| u["Department"] == department).expect("a seeded mailbox there");
    user["Identity"].as_str().unwrap().to_string()
}

/// One Exchange service principal (the app's, no Entra role assigned), `group` holding it once.
async fn assert_least_privilege(t: &Tenant, group: &str) -> cba_sim::StateSnapshot {
    let state = t.sim.state().await;
    let s = state.primary();
    let sp = s.custom_service_principals().next().expect("the app's service principal").id.clone();
    assert!(s.role_assignments.is_empty(), "no Entra directory role: {:#?}", s.role_assignments);
    assert_eq!(s.exchange_service_principals.len(), 1, "{:#?}", s.exchange_service_principals);
    assert!(s.exchange_service_principals[0].object_id.eq_ignore_ascii_case(&sp));
    let g = s.role_groups.iter().find(|g| g.name == group).expect("the role group");
    assert_eq!(g.members.iter().filter(|m| m.eq_ignore_ascii_case(&sp)).count(), 1, "{g:#?}");
    state
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_rbac_built_in_group_reads_and_a_write_is_refused() {
    let t = Tenant::start(SimTenant::builder()).await;
    let o = setup(&t, &["--exchange-role-group", VIEW_ONLY, "--output", "json"]);
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["exchange"]["role_group"], VIEW_ONLY);
    assert_eq!(doc["exchange"]["role_group_created"], false);
    assert_eq!(doc["exchange"]["proof_cmdlet"], "Get-Mailbox");
    assert_eq!(doc["role_assignments"], json!([]));
    assert!(doc["token_wids"].is_null() || doc["token_wids"] == json!([]), "{doc:#}");
    assert!(stderr(&o).contains("Exchange Online"), "the Exchange sign-in is named: {}", stderr(&o));
    assert_least_privilege(&t, VIEW_ONLY).await;
    let p = t.profile_json();
    assert_eq!(p["exchange"]["role_group"], VIEW_ONLY);
    assert!(p["exchange"].get("role_group_created").is_none(), "not made by cba: {p:#}");
    assert!(p["role_assignments"].as_array().unwrap().is_empty());

    let profile = profile(&t);
    let o = t.run(&["exo", "invoke", "Get-Mailbox", "--profile", &profile, "--result-size", "1", "--output", "json"]);
    assert_code(&o, 0);
    let target = mailbox_in(&t, "Sales").await;
    let identity = format!("Identity={target}");
    let o =
        t.run(&["exo", "invoke", "Set-Mailbox", "--profile", &profile, "-p", &identity, "-p", "CustomAttribute1=x"]);
    assert_code(&o, 5);

    // Status: ok with the admin's Exchange sign-in; the RBAC links unconfirmed (never ok) without a reader.
    let o = as_admin(&t, &["status", "--profile", &profile, "--output", "json"]);
    assert_code(&o, 0);
    let checks: Vec<String> =
        json(&o)["checks"].as_array().unwrap().iter().map(|c| c["check"].as_str().unwrap().to_string()).collect();
    assert!(checks.contains(&"exchange_membership".to_string()) && !checks.contains(&"role".to_string()), "{checks:?}");
    let o = t.run(&["status", "--profile", &profile, "--output", "json"]);
    assert_code(&o, 7);
    let doc = json(&o);
    let membership = doc["checks"].as_array().unwrap().iter().find(|c| c["check"] == "exchange_membership").unwrap();
    assert!(membership["ok"].is_null(), "{membership:#}");
    let access = doc["checks"].as_array().unwrap().iter().find(|c| c["check"] == "exchange_access").unwrap();
    assert_eq!(access["ok"], true);

    // exo roles: read as the admin; the app's own token may not read RBAC (exit 5).
    let o = as_admin(&t, &["exo", "roles", "--profile", &profile, "--output", "json"]);
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["role_groups"][0]["role_group"], VIEW_ONLY);
    assert_eq!(doc["roles"], json!(["View-Only Configuration", "View-Only Recipients"]));
    let o = t.run(&["exo", "roles", "--profile", &profile]);
    assert_code(&o, 5);
    assert!(stderr(&o).contains("Role Management"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_rbac_custom_roles_with_a_write_scope_then_rerun_status_and_teardown() {
    let t = Tenant::start(SimTenant::builder()).await;
    let before = t.sim.state().await;
    let o = setup(&t, &["--exchange-roles", ROLES, "--write-scope", SALES, "--output", "json"]);
    assert_code(&o, 0);
    let doc = json(&o);
    let group = format!("cba-{}", super::APP);
    assert_eq!(doc["exchange"]["role_group"], group.as_str());
    assert_eq!(doc["exchange"]["write_scope"], SALES);
    assert_eq!(
        doc["exchange"]["created"],
        json!(["service_principal", "management_scope", "role_group", "membership"])
    );
    let state = assert_least_privilege(&t, &group).await;
    assert_eq!(state.primary().management_scopes.len(), 1);

    let profile = profile(&t);
    let sales = format!("Identity={}", mailbox_in(&t, "Sales").await);
    let finance = format!("Identity={}", mailbox_in(&t, "Finance").await);
    let o = t.run(&["exo", "invoke", "Set-Mailbox", "--profile", &profile, "-p", &sales, "-p", "CustomAttribute1=in"]);
    assert_code(&o, 0);
    let o =
        t.run(&["exo", "invoke", "Set-Mailbox", "--profile", &profile, "-p", &finance, "-p", "CustomAttribute1=out"]);
    assert_code(&o, 6);
    assert!(stderr(&o).contains("outside of your current write scope"), "{}", stderr(&o));

    // A rerun changes nothing.
    let o = setup(&t, &["--exchange-roles", ROLES, "--write-scope", SALES, "--output", "json"]);
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["changed"], false, "{doc:#}");
    assert_eq!(doc["exchange"]["created"], json!([]));
    let again = t.sim.state().await;
    assert_eq!(again.primary().role_groups, state.primary().role_groups);
    assert_eq!(again.primary().management_scopes, state.primary().management_scopes);
    assert_eq!(again.primary().exchange_service_principals, state.primary().exchange_service_principals);

    // Status catches a membership removed behind cba's back (exit 7, naming the check).
    let o = as_admin(&t, &["status", "--profile", &profile]);
    assert_code(&o, 0);
    let sp = state.primary().exchange_service_principals[0].object_id.clone();
    let params = cba_exo::Parameters::from_json(json!({"Identity": group, "Member": sp, "Confirm": false})).unwrap();
    admin_exo(&t).collect_all("Remove-RoleGroupMember", &params).await.unwrap();
    let o = as_admin(&t, &["status", "--profile", &profile]);
    assert_code(&o, 7);
    assert!(stdout(&o).contains("exchange_membership") && stderr(&o).contains("exchange_membership"), "{}", stderr(&o));

    // Teardown leaves nothing: no app, no Exchange service principal, no custom group or scope.
    let o = as_admin(&t, &["teardown", "--profile", &profile, "--yes", "--output", "json"]);
    assert_code(&o, 0);
    let removed = json(&o)["removed"].clone();
    for object in ["exchange_role_group", "exchange_scope", "exchange_service_principal", "application"] {
        assert!(removed.as_array().unwrap().iter().any(|r| r == object), "{object} in {removed}");
    }
    t.assert_empty().await;
    let after = t.sim.state().await;
    assert!(after.primary().exchange_service_principals.is_empty());
    assert!(after.primary().management_scopes.is_empty());
    assert_eq!(after.primary().role_groups, before.primary().role_groups, "only the built-in groups, as before");
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_rbac_refusals_and_knobs() {
    let t = Tenant::start(SimTenant::builder()).await;
    // An Entra role as well only on purpose; a write scope needs custom roles.
    let o = setup(&t, &["--exchange-role-group", VIEW_ONLY, "--role", "Exchange Administrator"]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("--keep-entra-role"), "{}", stderr(&o));
    let o = setup(&t, &["--exchange-role-group", VIEW_ONLY, "--write-scope", SALES]);
    assert_code(&o, 2);
    assert!(t.sim.state().await.primary().applications.is_empty(), "nothing made");
    // An unknown group: the app is made, the group named in the error.
    let o = setup(&t, &["--exchange-role-group", "No Such Group"]);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("No Such Group"), "{}", stderr(&o));

    // A dehydrated tenant: stopped and explained without --yes, customized with it.
    let t = Tenant::start(SimTenant::builder().dehydrated(true)).await;
    let o = setup(&t, &["--exchange-roles", "View-Only Recipients"]);
    assert_code(&o, 6);
    assert!(stderr(&o).contains("Enable-OrganizationCustomization") && stderr(&o).contains("--yes"), "{}", stderr(&o));
    let o = setup(&t, &["--exchange-roles", "View-Only Recipients", "--yes", "--output", "json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["exchange"]["customization_enabled"], true);

    // Writes answered 500 after they ran: looked up, not made twice.
    let t = Tenant::start(SimTenant::builder().exchange_fail_after_execute(4)).await;
    let o = setup(&t, &["--exchange-roles", ROLES, "--write-scope", SALES]);
    assert_code(&o, 0);
    assert_least_privilege(&t, &format!("cba-{}", super::APP)).await;
    assert_eq!(t.sim.state().await.primary().management_scopes.len(), 1);

    // Propagation: the proof waits until Exchange applies the membership, and says how long it took.
    let t = Tenant::start(SimTenant::builder().exchange_rbac_delay(Duration::from_secs(3))).await;
    let o = setup(&t, &["--exchange-role-group", VIEW_ONLY, "--output", "json"]);
    assert_code(&o, 0);
    assert!(json(&o)["exchange"]["rbac_wait_ms"].as_u64().unwrap() >= 3000, "{}", stdout(&o));
    assert!(stderr(&o).contains("RBAC propagation"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_rbac_dry_run_lists_the_exchange_steps() {
    let t = Tenant::start(SimTenant::builder()).await;
    let before = t.sim.state().await;
    let o = setup(&t, &["--exchange-roles", ROLES, "--write-scope", SALES, "--dry-run"]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("exchange: would create  service_principal, management_scope, role_group, membership"),
        "{}",
        stdout(&o)
    );
    assert_eq!(t.sim.state().await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_rbac_teardown_without_a_profile_removes_the_exchange_service_principal_when_asked() {
    let t = Tenant::start(SimTenant::builder()).await;
    let o = setup(&t, &["--exchange-role-group", VIEW_ONLY]);
    assert_code(&o, 0);
    let tenant = t.sim.tenant_domain().to_string();
    let o = as_admin(&t, &["teardown", "--tenant", &tenant, "--name", super::APP, "--yes", "--output", "json"]);
    assert_code(&o, 0);
    let removed = json(&o)["removed"].clone();
    assert!(removed.as_array().unwrap().iter().any(|r| r == "exchange_service_principal"), "{removed}");
    t.assert_empty().await;
    let state = t.sim.state().await;
    assert!(state.primary().exchange_service_principals.is_empty());
    let group = state.primary().role_groups.iter().find(|g| g.name == VIEW_ONLY).unwrap();
    assert!(group.members.is_empty(), "the membership went with the service principal: {group:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_rbac_device_code_sign_ins_for_graph_then_exchange() {
    let t = Tenant::start(
        SimTenant::builder().device_code_delay(Duration::from_millis(200)).device_code_interval(Duration::from_secs(1)),
    )
    .await;
    let mut args = t.setup_args(&["--admin", "device-code", "--exchange-role-group", VIEW_ONLY]);
    args.extend(["--exchange-admin", "device-code"]);
    let mut cmd = t.cmd(&args);
    cmd.env_remove("CBA_GRAPH_TOKEN");
    let o = run(&mut cmd, None);
    assert_code(&o, 0);
    let err = stderr(&o);
    let graph = err.find("Microsoft Graph sign-in:").expect("the Graph prompt, named");
    let exchange = err.find("Exchange Online sign-in").expect("the Exchange prompt, named");
    assert!(graph < exchange, "Graph first: {err}");
    let requests = t.sim.requests().await;
    let prompts = requests.iter().filter(|r| r.path.ends_with("/oauth2/v2.0/devicecode")).count();
    assert_eq!(prompts, 2, "one device code for each service");
    assert_least_privilege(&t, VIEW_ONLY).await;
}
