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
