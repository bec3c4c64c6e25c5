//! `cba exo` against the simulated Exchange endpoint, signed in with the certificate `cba setup` made.

use super::{Tenant, assert_code, json, stderr, stdout};

#[tokio::test(flavor = "multi_thread")]
async fn e2e_exo_after_setup_uses_the_profile_and_streams_pages() {
    let t = Tenant::start(cba_sim::SimTenant::builder().mailboxes(2500)).await;
    assert_code(&t.setup(&[]), 0);
    let profile = t.profile();
    let profile = profile.to_str().unwrap();

    // 2,500 mailboxes in pages of 1,000: one object per line.
    let o = t.run(&[
        "exo",
        "invoke",
        "Get-Mailbox",
        "-p",
        "ResultSize=Unlimited",
        "--profile",
        profile,
        "--output",
        "jsonl",
    ]);
    assert_code(&o, 0);
    let lines: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2500);
    assert!(lines.iter().all(|m| m["PrimarySmtpAddress"].as_str().unwrap().ends_with("onmicrosoft.com")));
    let pages = t
        .sim
        .requests()
        .await
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("/InvokeCommand") && r.status == 200)
        .count();
    assert_eq!(pages, 3, "1,000 per page");

    let o = t.run(&[
        "exo",
        "invoke",
        "Get-Mailbox",
        "--result-size",
        "2",
        "--select",
        "DisplayName,PrimarySmtpAddress",
        "--profile",
        profile,
        "--output",
        "csv",
    ]);
    assert_code(&o, 0);
    let csv = stdout(&o);
    assert_eq!(csv.lines().next(), Some("DisplayName,PrimarySmtpAddress"), "{csv}");
    assert_eq!(csv.lines().count(), 3, "{csv}");

    let o = t.run(&["exo", "check", "--profile", profile, "--output", "json"]);
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["ok"], true);
    let app_id = t.profile_json()["app_id"].as_str().unwrap().to_string();
    let line = doc["connect_exchange_online"].as_str().unwrap();
    assert!(
        line.contains(&format!("-AppId {app_id}")) && line.contains("-Organization contoso.onmicrosoft.com"),
        "{line}"
    );

    let o = t.run(&["exo", "invoke", "Get-Mailbox", "-p", "Identity=nobody@contoso.com", "--profile", profile]);
    assert_code(&o, 6);
    assert!(stderr(&o).contains("couldn't be found"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_exo_without_an_exchange_role_is_refused_with_a_hint() {
    let t = Tenant::start(cba_sim::SimTenant::builder()).await;
    let id = cba_cert::generate(&cba_cert::NewCertificate::new("no-role")).unwrap();
    std::fs::write(t.dir.path().join("no-role.pfx"), id.to_pfx(None, cba_cert::PfxFormat::Modern).unwrap()).unwrap();
    // Consent granted, but no Entra role: Exchange answers 401 "not allowed to call".
    let app = t.sim.seed_app("no-role", &[id.certificate.der()]).await;
    t.sim.seed_grant_manage_as_app(&app).await;
    let o = t.run(&[
        "exo",
        "invoke",
        "Get-Mailbox",
        "--tenant",
        t.sim.tenant_id(),
        "--client-id",
        &app.app_id,
        "--cert",
        "no-role.pfx",
    ]);
    assert_code(&o, 5);
    assert!(stderr(&o).contains("cba status"), "{}", stderr(&o));
}

/// The token cache file `cba` uses in this scenario's folder, if it exists.
fn cached_token_keys(t: &Tenant) -> Vec<String> {
    let file = t.dir.path().join("cache").join("cba").join("tokens.json");
    let Ok(bytes) = std::fs::read(file) else { return Vec::new() };
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    doc["tokens"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_exo_a_permission_restored_is_seen_without_no_cache() {
    let t = Tenant::start(cba_sim::SimTenant::builder()).await;
    assert_code(&t.setup(&[]), 0);
    let profile = t.profile();
    let check = ["exo", "check", "--profile", profile.to_str().unwrap()];
    let app_id = t.profile_json()["app_id"].as_str().unwrap().to_string();

    // The grant (Exchange.ManageAsApp, carried in the token) revoked: refused, and the token without it is cached.
    let grant = t.sim.state().await.primary().app_role_assignments[0].clone();
    t.admin_graph().delete_app_role_assignment(&grant.resource_id, &grant.id).await.unwrap();
    let o = t.run(&check);
    assert_code(&o, 5);
    assert!(stderr(&o).contains("run `cba status`"), "{}", stderr(&o));
    assert!(cached_token_keys(&t).iter().any(|k| k.contains(&app_id)), "the refused token's successor is cached");

    // Restored: the cached token predates it, is refused once, and a new one is fetched (no --no-cache needed).
    let restore = cba_graph::model::NewAppRoleAssignment {
        principal_id: grant.principal_id.clone(),
        resource_id: grant.resource_id.clone(),
        app_role_id: grant.app_role_id.clone(),
    };
    t.admin_graph().grant_app_role(&restore, cba_graph::Replication::Expected).await.unwrap();
    let before = t.sim.requests().await.len();
    let o = t.run(&check);
    assert_code(&o, 0);
    let statuses: Vec<u16> = t.sim.requests().await[before..]
        .iter()
        .filter(|r| r.service == Some(cba_sim::Service::Exchange))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [401, 200], "the stale cached token was tried, dropped and replaced once");

    // The Entra role removed and assigned again: Exchange honours it from the directory, not from the token.
    let role = t.sim.state().await.primary().role_assignments[0].clone();
    t.admin_graph().delete_directory_role_assignment(&role.id).await.unwrap();
    assert_code(&t.run(&check), 5);
    t.admin_graph()
        .assign_directory_role(&role.principal_id, &role.role_definition_id, cba_graph::Replication::Expected)
        .await
        .unwrap();
    assert_code(&t.run(&check), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_exo_check_fails_after_teardown_and_the_apps_cached_tokens_are_gone() {
    let t = Tenant::start(cba_sim::SimTenant::builder()).await;
    assert_code(&t.setup(&[]), 0);
    let profile = t.profile();
    let profile = profile.to_str().unwrap();
    let app_id = t.profile_json()["app_id"].as_str().unwrap().to_string();
    assert_code(&t.run(&["exo", "check", "--profile", profile]), 0);
    assert!(cached_token_keys(&t).iter().any(|k| k.contains(&app_id)), "{:?}", cached_token_keys(&t));
    // `cba status` takes --no-cache like the others (it never uses the cache).
    assert_code(&t.run(&["status", "--profile", profile, "--no-cache"]), 0);

    assert_code(&t.run(&["teardown", "--profile", profile, "--yes"]), 0);
    assert!(!cached_token_keys(&t).iter().any(|k| k.contains(&app_id)), "{:?}", cached_token_keys(&t));
    let o = t.run(&["exo", "check", "--profile", profile]);
    assert_code(&o, 4);
    assert!(stderr(&o).contains("700016"), "the app is gone: {}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_exo_a_token_from_the_environment_is_sent_as_it_is_and_not_said_to_be_renewed() {
    let t = Tenant::start(cba_sim::SimTenant::builder()).await;
    let mut cmd = t.cmd(&["exo", "check", "--tenant", t.sim.tenant_id(), "--access-token-env", "E2E_EXO_TOKEN"]);
    cmd.env("E2E_EXO_TOKEN", "opaque-token-not-a-jwt\n");
    let o = super::run(&mut cmd, None);
    assert_code(&o, 4);
    let err = stderr(&o);
    assert!(!err.contains("renewing"), "{err}");
    assert!(err.contains("E2E_EXO_TOKEN is used as it is and cannot be renewed"), "{err}");
    let exchange: Vec<u16> = t
        .sim
        .requests()
        .await
        .iter()
        .filter(|r| r.service == Some(cba_sim::Service::Exchange))
        .map(|r| r.status)
        .collect();
    assert_eq!(exchange, [401], "it reached Exchange (not refused locally for not being a JWT), once");
}
