//! The inspection view, the request log, isolation between instances, several tenants.

use cba_sim::{Service, SimTenant, StateSnapshot};
use serde_json::{Value, json};

use crate::common::*;

async fn http_state(sim: &SimTenant) -> StateSnapshot {
    let (status, body) = json_of(client().get(format!("{}/_sim/state", sim.graph_url())).send().await.unwrap()).await;
    assert_eq!(status, 200);
    serde_json::from_value(body).expect("state JSON")
}

#[tokio::test]
async fn state_after_a_create_and_delete_sequence() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    let (id, app_id) =
        create_app(&graph, json!({"displayName": "setup", "keyCredentials": [key_credential(cert(0))]})).await;
    let (_, scratch_app_id) = create_app(&graph, json!({"displayName": "scratch"})).await;
    let (_, sp) = graph.post("/servicePrincipals", &json!({"appId": app_id})).await;
    let (_, exo) = graph.get("/servicePrincipals(appId='00000002-0000-0ff1-ce00-000000000000')").await;
    let grant =
        json!({"principalId": sp["id"], "resourceId": exo["id"], "appRoleId": "dc50a0fb-09a3-484d-be87-e023b12c6440"});
    let (status, _) =
        graph.post(&format!("/servicePrincipals/{}/appRoleAssignedTo", exo["id"].as_str().unwrap()), &grant).await;
    assert_eq!(status, 201);
    let role = json!({"roleDefinitionId": EXCHANGE_ADMIN, "principalId": sp["id"], "directoryScopeId": "/"});
    let (status, _) = graph.post("/roleManagement/directory/roleAssignments", &role).await;
    assert_eq!(status, 201);
    let (_, scratch) = graph.get(&format!("/applications(appId='{scratch_app_id}')")).await;
    let (status, _) = graph.delete(&format!("/applications/{}", scratch["id"].as_str().unwrap())).await;
    assert_eq!(status, 204);

    let state = sim.state().await;
    assert_eq!(state, http_state(&sim).await, "library and HTTP views agree");
    let tenant = state.primary();
    assert_eq!(tenant.id, sim.tenant_id());
    assert_eq!(tenant.applications.len(), 1);
    let app = &tenant.applications[0];
    assert_eq!(
        (app.id.as_str(), app.app_id.as_str(), app.display_name.as_str()),
        (id.as_str(), app_id.as_str(), "setup")
    );
    assert_eq!(app.key_credentials.len(), 1);
    assert_eq!(app.key_credentials[0].thumbprint_sha1, cert(0).certificate.thumbprint_sha1_hex());
    assert!(app.replicated);
    assert_eq!(tenant.custom_service_principals().count(), 1);
    assert_eq!(tenant.app_role_assignments.len(), 1);
    assert_eq!(tenant.app_role_assignments[0].app_role_value.as_deref(), Some("Exchange.ManageAsApp"));
    assert_eq!(tenant.role_assignments.len(), 1);
    assert_eq!(tenant.role_assignments[0].role_name.as_deref(), Some("Exchange Administrator"));

    let (status, _) = graph.delete(&format!("/applications/{id}")).await;
    assert_eq!(status, 204);
    let state = http_state(&sim).await;
    let tenant = state.primary();
    assert!(tenant.applications.is_empty());
    assert_eq!(tenant.custom_service_principals().count(), 0);
    assert!(tenant.app_role_assignments.is_empty());
    assert!(tenant.role_assignments.is_empty());
}

#[tokio::test]
async fn request_log_lists_api_calls_only() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    graph.get("/applications?$filter=displayName eq 'x'").await;
    graph.get(&format!("/applications/{}", uuid::Uuid::new_v4())).await;
    let _ = http_state(&sim).await;
    let url = format!("{}/{}/v2.0/.well-known/openid-configuration", sim.login_url(), sim.tenant_id());
    client().get(url).send().await.unwrap();
    let (status, log) = json_of(client().get(format!("{}/_sim/requests", sim.graph_url())).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[0]["method"], "GET");
    assert!(log[0]["path"].as_str().unwrap().starts_with("/v1.0/applications?"));
    assert_eq!(log[0]["status"], 200);
    assert_eq!(log[0]["service"], "graph");
    assert_eq!(log[1]["status"], 404);
    assert_eq!(log[2]["service"], "login");
    let records = sim.requests().await;
    assert_eq!(records.len(), 3);
    assert_eq!(records[2].service, Some(Service::Login));
    let (status, body) = json_of(client().get(format!("{}/_sim/nothing", sim.graph_url())).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(body["error"]["message"].is_string());
}

#[tokio::test]
async fn parallel_instances_do_not_share_state() {
    let (a, b) = tokio::join!(SimTenant::builder().start(), SimTenant::builder().start());
    assert_ne!(a.graph_url(), b.graph_url());
    assert_ne!(a.tenant_id(), b.tenant_id());
    create_app(&admin(&a), json!({"displayName": "only in a"})).await;
    assert_eq!(a.state().await.primary().applications.len(), 1);
    assert!(b.state().await.primary().applications.is_empty());
    // A token of one sim's tenant means nothing to the other.
    let (status, _) = json_of(
        client().get(format!("{}/v1.0/applications", b.graph_url())).bearer_auth(a.admin_token()).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert!(b.requests().await.iter().all(|r| r.status == 401));
}

#[tokio::test]
async fn several_tenants_each_with_their_own_objects() {
    let fixed = "11111111-2222-4333-8444-555555555555";
    let sim = SimTenant::builder().tenant_name("alpha").tenant_id(fixed).tenant("beta").tenant("gamma").start().await;
    assert_eq!(sim.tenant_id(), fixed);
    assert_eq!(sim.tenants().len(), 3);
    assert_eq!(sim.tenant("beta").unwrap().domain, "beta.onmicrosoft.com");
    let state = sim.state().await;
    let exo_ids: Vec<String> = state
        .tenants
        .iter()
        .map(|t| {
            t.service_principals.iter().find(|s| s.app_id == "00000002-0000-0ff1-ce00-000000000000").unwrap().id.clone()
        })
        .collect();
    assert_eq!(exo_ids.len(), 3);
    assert!(exo_ids[0] != exo_ids[1] && exo_ids[1] != exo_ids[2]);
    let beta = Graph { sim: &sim, token: sim.admin_token_for("beta").unwrap() };
    assert_eq!(claims(&beta.token)["tid"], sim.tenant("beta").unwrap().id);
    create_app(&beta, json!({"displayName": "beta app"})).await;
    let state = sim.state().await;
    assert_eq!(state.tenant("beta").unwrap().applications.len(), 1);
    assert!(state.tenant("alpha").unwrap().applications.is_empty());
    let (_, alpha_list) = admin(&sim).get("/applications").await;
    assert_eq!(alpha_list["value"], Value::Array(vec![]));

    let bad = SimTenant::builder().tenant_name("has space").try_start().await;
    assert!(matches!(bad, Err(cba_sim::SimError::InvalidTenant(_))), "{bad:?}");
    let dup = SimTenant::builder().tenant("contoso").try_start().await;
    assert!(matches!(dup, Err(cba_sim::SimError::DuplicateTenant(_))), "{dup:?}");
}

#[tokio::test]
async fn clock_can_be_advanced_over_http() {
    let sim = SimTenant::builder().start().await;
    let before = sim.now();
    let response = client()
        .post(format!("{}/_sim/clock", sim.graph_url()))
        .json(&json!({"advance_secs": 120}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(sim.now() - before >= time::Duration::seconds(120));
}
