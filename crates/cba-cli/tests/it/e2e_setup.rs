//! `cba setup` against the simulated tenant: what it leaves in the tenant and on disk.

use std::time::Duration;

use cba_sim::SimTenant;

use super::{APP, Tenant, assert_code, json, stderr, stdout};

fn writes(requests: &[cba_sim::RequestRecord]) -> usize {
    requests.iter().filter(|r| r.method != "GET" && !r.path.contains("/oauth2/")).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_setup_happy_path_then_a_rerun_changes_nothing() {
    let t = Tenant::start(SimTenant::builder()).await;
    let o = t.setup(&["--output", "json"]);
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["changed"], true);
    assert_eq!(doc["token_roles"][0], "Exchange.ManageAsApp");
    assert_eq!(doc["requests"], 8, "the tenant confirmed, 6 Graph requests and the proof token: {doc:#}");
    assert_eq!(doc["round_trip_depth"], 6);
    let state = t.assert_one_of_each().await;
    let app = &state.primary().applications[0];
    assert_eq!(doc["app_id"], app.app_id.as_str());
    assert_eq!(app.sign_in_audience, "AzureADMyOrg");
    assert!(doc["next_steps"]["powershell"].as_str().unwrap().contains(&format!("-AppId {}", app.app_id)));

    // On disk: the certificate (key 0600) and the profile (0600) naming every id.
    let pfx = t.dir.path().join(format!("{APP}.pfx"));
    assert_eq!(super::mode(&pfx), 0o600);
    assert!(t.dir.path().join(format!("{APP}.cer")).exists());
    assert_eq!(super::mode(&t.profile()), 0o600);
    let profile = t.profile_json();
    assert_eq!(profile["app_id"], app.app_id.as_str());
    assert_eq!(profile["app_object_id"], app.id.as_str());
    assert_eq!(profile["tenant_id"], t.sim.tenant_id());
    assert_eq!(
        profile["service_principal_id"],
        state.primary().custom_service_principals().next().unwrap().id.as_str()
    );
    assert_eq!(profile["grant_id"], state.primary().app_role_assignments[0].id.as_str());
    assert_eq!(profile["role_assignments"][0]["id"], state.primary().role_assignments[0].id.as_str());
    assert_eq!(profile["certificate"]["thumbprint_sha1"], app.key_credentials[0].thumbprint_sha1.as_str());
    assert_eq!(profile["certificate"]["key_id"], app.key_credentials[0].key_id.as_str());
    assert_eq!(profile["certificate"]["path"], format!("{APP}.pfx"), "relative to the profile");
    assert_eq!(profile["endpoints"]["graph"], t.sim.graph_url());
    assert!(profile.get("incomplete").is_none());

    // The profile is enough for `cba token`.
    let o = t.run(&["token", "--profile", t.profile().to_str().unwrap(), "--format", "json", "--no-cache"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["claims"]["roles"][0], "Exchange.ManageAsApp");

    let writes_before = writes(&t.sim.requests().await);
    let o = t.setup(&[]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("Nothing changed"), "{}", stdout(&o));
    assert!(stdout(&o).contains("Connect-ExchangeOnline -AppId"), "{}", stdout(&o));
    assert_eq!(t.sim.state().await, state, "a rerun changes nothing in the tenant");
    assert_eq!(writes(&t.sim.requests().await), writes_before, "a rerun only reads");
    let o = t.setup(&["--output", "json"]);
    assert_eq!(json(&o)["changed"], false);
    assert_eq!(json(&o)["created"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_setup_dry_run_writes_nothing() {
    let t = Tenant::start(SimTenant::builder()).await;
    let before = t.sim.state().await;
    let o = t.setup(&["--dry-run", "--output", "json"]);
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["created"].as_array().unwrap().len(), 5, "{doc:#}");
    assert_eq!(std::fs::read_dir(t.dir.path()).unwrap().count(), 0, "no file written");
    assert_eq!(t.sim.state().await, before);
    let methods: Vec<String> = t.sim.requests().await.into_iter().map(|r| r.method).collect();
    assert!(!methods.is_empty() && methods.iter().all(|m| m == "GET"), "{methods:?}");

    // After a real setup, the plan finds everything and still writes nothing.
    assert_code(&t.setup(&[]), 0);
    let state = t.sim.state().await;
    let profile = std::fs::read(t.profile()).unwrap();
    let o = t.setup(&["--dry-run", "--output", "json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["created"].as_array().unwrap().len(), 0, "{}", stdout(&o));
    assert_eq!(t.sim.state().await, state);
    assert_eq!(std::fs::read(t.profile()).unwrap(), profile);
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_setup_waits_out_replication_on_every_object() {
    let t = Tenant::start(SimTenant::builder().replication_delay(Duration::from_millis(700))).await;
    let o = t.setup(&["--output", "json"]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("replication") || stderr(&o).contains("AADSTS"), "{}", stderr(&o));
    let doc = json(&o);
    assert!(doc["requests"].as_u64().unwrap() > 7, "retries are counted: {doc:#}");
    t.assert_one_of_each().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_setup_rides_out_throttling_and_5xx_bursts() {
    let t = Tenant::start(SimTenant::builder().throttle_burst(3).throttle_every(4)).await;
    let o = t.setup(&["--output", "json"]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("429"), "{}", stderr(&o));
    t.assert_one_of_each().await;

    // 503s, one of them on the app's (non-idempotent) POST: no second app.
    let t = Tenant::start(SimTenant::builder().fail_5xx_burst(2).fail_5xx_every(3)).await;
    let o = t.setup(&["--output", "json"]);
    assert_code(&o, 0);
    t.assert_one_of_each().await;

    // A Graph that never recovers: exit 6 at the deadline, naming the step.
    let t = Tenant::start(SimTenant::builder().fail_5xx_every(1)).await;
    let mut args = t.setup_args(&[]);
    args.retain(|a| *a != "60s" && *a != "--wait");
    args.extend(["--wait", "3s"]);
    let o = t.run(&args);
    assert_code(&o, 6);
    // The first Graph step (confirming the tenant, before any write) names itself and the answer.
    let err = stderr(&o);
    assert!(err.contains("confirming that the administrator acts in") && err.contains("503"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_setup_a_403_names_the_entra_role_the_admin_needs() {
    let t = Tenant::start(SimTenant::builder()).await;
    let runner_cert = cba_cert::generate(&cba_cert::NewCertificate::new("runner")).unwrap();
    let runner = t.sim.seed_app("runner", &[runner_cert.certificate.der()]).await;
    let graph = "00000003-0000-0000-c000-000000000000";
    t.sim.seed_grant(&runner, graph, "Application.ReadWrite.All").await;
    t.sim.seed_grant(&runner, graph, "AppRoleAssignment.ReadWrite.All").await;
    let token = t.sim.app_token(&runner, "https://graph.microsoft.com");
    let o = super::run(t.cmd(&t.setup_args(&[])).env("CBA_GRAPH_TOKEN", token), None);
    assert_code(&o, 5);
    assert!(stderr(&o).contains("Privileged Role Administrator"), "{}", stderr(&o));
    assert!(stderr(&o).contains("role assignment"), "names the step: {}", stderr(&o));
    assert!(t.sim.state().await.primary().role_assignments.is_empty());

    // Unknown role: refused before anything happens, with the list.
    let o = t.setup(&["--role", "Exchange Wizard"]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("Exchange Recipient Administrator"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_setup_killed_after_each_request_then_rerun_converges() {
    // Latency makes the kill land after the sim applied request n and before the client saw the answer.
    for n in 1..=7 {
        let t = Tenant::start(SimTenant::builder().latency(Duration::from_millis(120))).await;
        let args = t.setup_args(&[]);
        let sim = &t.sim;
        let killed = t.run_until(&args, async || sim.requests().await.len() >= n).await;
        assert!(killed, "the run ended before request {n}");
        let o = t.setup(&["--output", "json"]);
        assert_code(&o, 0);
        t.assert_one_of_each().await;
        assert!(t.profile_json().get("incomplete").is_none());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_setup_killed_right_after_the_app_is_created_adopts_it_while_it_replicates() {
    // The name look-up cannot see the new app for 2.5 s: only the profile's object id prevents a second app.
    let t = Tenant::start(SimTenant::builder().replication_delay(Duration::from_millis(2500))).await;
    let args = t.setup_args(&[]);
    let profile = t.profile();
    let killed = t
        .run_until(&args, async || {
            std::fs::read(&profile)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|p| p["app_object_id"].as_str().is_some_and(|s| !s.is_empty()))
        })
        .await;
    assert!(killed);
    assert_eq!(t.profile_json()["incomplete"], true);
    let o = t.setup(&["--output", "json"]);
    assert_code(&o, 0);
    t.assert_one_of_each().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_setup_as_a_provisioning_app_with_its_own_certificate() {
    let t = Tenant::start(SimTenant::builder()).await;
    // The provisioning app: a certificate and the three Graph application permissions setup needs.
    let runner_cert = cba_cert::generate(&cba_cert::NewCertificate::new("provisioner")).unwrap();
    let pfx = runner_cert.to_pfx(None, cba_cert::PfxFormat::Modern).unwrap();
    std::fs::write(t.dir.path().join("provisioner.pfx"), pfx).unwrap();
    let runner = t.sim.seed_app("provisioner", &[runner_cert.certificate.der()]).await;
    let graph = "00000003-0000-0000-c000-000000000000";
    for permission in
        ["Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All", "RoleManagement.ReadWrite.Directory"]
    {
        t.sim.seed_grant(&runner, graph, permission).await;
    }
    let before = t.sim.state().await.primary().app_role_assignments.len();

    let admin = ["--admin", "cert", "--admin-cert", "provisioner.pfx", "--admin-client-id", &runner.app_id];
    let o = super::run(
        t.cmd(&t.setup_args(&[&admin[..], &["--output", "json"]].concat())).env_remove("CBA_GRAPH_TOKEN"),
        None,
    );
    assert_code(&o, 0);
    assert_eq!(json(&o)["token_roles"][0], "Exchange.ManageAsApp");

    // One new app, service principal, grant and role, besides the provisioning app's own.
    let state = t.sim.state().await;
    let s = state.primary();
    let apps: Vec<_> = s.applications.iter().filter(|a| a.app_id != runner.app_id).collect();
    assert_eq!(apps.len(), 1, "{apps:#?}");
    assert_eq!(apps[0].display_name, APP);
    assert_eq!(apps[0].key_credentials.len(), 1);
    let sps: Vec<_> = s.custom_service_principals().filter(|sp| sp.app_id == apps[0].app_id).collect();
    assert_eq!(sps.len(), 1, "{sps:#?}");
    let grants: Vec<_> = s.app_role_assignments.iter().filter(|g| g.principal_id == sps[0].id).collect();
    assert_eq!(grants.len(), 1, "{grants:#?}");
    assert_eq!(grants[0].app_role_value.as_deref(), Some("Exchange.ManageAsApp"));
    assert_eq!(s.app_role_assignments.len(), before + 1);
    assert_eq!(s.role_assignments.len(), 1, "{:#?}", s.role_assignments);
    assert_eq!(s.role_assignments[0].principal_id, sps[0].id);
    assert_eq!(s.role_assignments[0].role_definition_id, "29232cdf-9323-42fd-ade2-1d097af3e4de");
    assert_eq!(t.profile_json()["app_id"], apps[0].app_id.as_str());

    // A rerun with the same sign-in finds everything in place.
    let o = super::run(
        t.cmd(&t.setup_args(&[&admin[..], &["--output", "json"]].concat())).env_remove("CBA_GRAPH_TOKEN"),
        None,
    );
    assert_code(&o, 0);
    assert_eq!(json(&o)["changed"], false);
    assert_eq!(t.sim.state().await, state, "a rerun changes nothing in the tenant");
}
