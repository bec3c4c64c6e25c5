//! `delete_replication_delay`: deletes and removeKey replicate like creates (reads, the token endpoint and
//! tokens' claims see the old state until the delay ends; writes see the deletion at once). Off by default.

use std::time::Duration;

use cba_sim::SimTenant;
use serde_json::json;

use crate::common::*;

const LAG: Duration = Duration::from_secs(60);

async fn exo_token_status(sim: &SimTenant, app: &cba_sim::SeededApp, signer: &cba_cert::Identity) -> (u16, u64) {
    let assertion = Assertion::new(sim, signer, &app.app_id, sim.tenant_id()).sign(signer);
    let (status, body) = request_token(sim, sim.tenant_id(), &app.app_id, &assertion, EXO_SCOPE).await;
    (status, body["error_codes"][0].as_u64().unwrap_or(0))
}

#[tokio::test]
async fn a_deleted_app_stays_readable_and_usable_until_the_delete_replicates() {
    let sim = SimTenant::builder().delete_replication_delay(LAG).start().await;
    let app = exchange_ready_app(&sim).await;
    let graph = admin(&sim);
    let path = format!("/applications/{}", app.object_id);
    let (status, _) = graph.delete(&path).await;
    assert_eq!(status, 204);
    // Reads and tokens still see it ...
    let (status, _) = graph.get(&path).await;
    assert_eq!(status, 200);
    let (status, _) = graph.get(&format!("/servicePrincipals(appId='{}')", app.app_id)).await;
    assert_eq!(status, 200);
    assert_eq!(exo_token_status(&sim, &app, cert(0)).await, (200, 0));
    // ... writes do not, and neither does the authoritative snapshot.
    let (status, error) = graph.delete(&path).await;
    assert_graph_error(status, &error, 404, "Request_ResourceNotFound");
    let (status, error) = graph.patch(&path, &json!({"notes": "x"})).await;
    assert_graph_error(status, &error, 404, "Request_ResourceNotFound");
    assert!(sim.state().await.primary().applications.is_empty());
    assert_eq!(sim.state().await.primary().custom_service_principals().count(), 0);

    sim.advance_clock(LAG + Duration::from_secs(1));
    let (status, error) = graph.get(&path).await;
    assert_graph_error(status, &error, 404, "Request_ResourceNotFound");
    assert_eq!(exo_token_status(&sim, &app, cert(0)).await, (400, 700016));
}

#[tokio::test]
async fn a_removed_key_keeps_signing_in_until_the_removal_replicates() {
    let sim = SimTenant::builder().delete_replication_delay(LAG).start().await;
    let app = sim.seed_app("rolling", &[der(cert(0)), der(cert(1))]).await;
    sim.seed_grant_manage_as_app(&app).await;
    let graph = admin(&sim);
    let (_, keys) = graph.get(&format!("/applications/{}", app.object_id)).await;
    let old = keys["keyCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["displayName"] == "CN=cba-sim-test-1")
        .map(|k| k["keyId"].as_str().unwrap().to_string())
        .unwrap();
    let remove = json!({"keyId": old, "proof": proof(&sim, &app.object_id, cert(0), PROOF_AUD)});
    let path = format!("/applications/{}/removeKey", app.object_id);
    let (status, _) = graph.post(&path, &remove).await;
    assert_eq!(status, 204);
    let (status, error) = graph.post(&path, &remove).await;
    assert_graph_error(status, &error, 404, "Request_ResourceNotFound");
    assert_eq!(exo_token_status(&sim, &app, cert(1)).await, (200, 0), "the removed certificate still works");
    let (_, read) = graph.get(&format!("/applications/{}", app.object_id)).await;
    assert_eq!(read["keyCredentials"].as_array().unwrap().len(), 2, "reads still list it");
    assert_eq!(sim.state().await.primary().applications[0].key_credentials.len(), 1);

    sim.advance_clock(LAG + Duration::from_secs(1));
    assert_eq!(exo_token_status(&sim, &app, cert(1)).await, (401, 700027));
    assert_eq!(exo_token_status(&sim, &app, cert(0)).await, (200, 0));
}

#[tokio::test]
async fn revoked_grants_and_roles_stay_in_new_tokens_until_replicated() {
    let sim = SimTenant::builder().delete_replication_delay(LAG).start().await;
    let app = exchange_ready_app(&sim).await;
    let graph = admin(&sim);
    let exo = sim
        .state()
        .await
        .primary()
        .service_principals
        .iter()
        .find(|s| s.built_in && s.display_name.contains("Exchange"))
        .unwrap()
        .id
        .clone();
    let (_, grants) = graph.get(&format!("/servicePrincipals/{}/appRoleAssignments", app.service_principal_id)).await;
    let grant = grants["value"][0]["id"].as_str().unwrap().to_string();
    let (status, _) = graph.delete(&format!("/servicePrincipals/{exo}/appRoleAssignedTo/{grant}")).await;
    assert_eq!(status, 204);
    let filter =
        format!("/roleManagement/directory/roleAssignments?$filter=principalId eq '{}'", app.service_principal_id);
    let (_, roles) = graph.get(&filter).await;
    let role = roles["value"][0]["id"].as_str().unwrap().to_string();
    let (status, _) = graph.delete(&format!("/roleManagement/directory/roleAssignments/{role}")).await;
    assert_eq!(status, 204);

    let token = token_for(&sim, &app, cert(0), EXO_SCOPE).await;
    assert_eq!(claims(&token)["roles"], json!(["Exchange.ManageAsApp"]));
    assert_eq!(claims(&token)["wids"], json!([EXCHANGE_ADMIN]));
    // Granting again is a new grant, not a duplicate of the deleted one.
    let again = json!({"principalId": app.service_principal_id, "resourceId": exo, "appRoleId": "dc50a0fb-09a3-484d-be87-e023b12c6440"});
    let (status, body) = graph.post(&format!("/servicePrincipals/{exo}/appRoleAssignedTo"), &again).await;
    assert_eq!(status, 201, "{body}");

    sim.advance_clock(LAG + Duration::from_secs(1));
    let token = token_for(&sim, &app, cert(0), EXO_SCOPE).await;
    assert_eq!(claims(&token)["roles"], json!(["Exchange.ManageAsApp"]), "the new grant");
    assert!(claims(&token).get("wids").is_none(), "{}", claims(&token));
}

#[tokio::test]
async fn by_default_deletes_take_effect_at_once() {
    let sim = SimTenant::builder().replication_delay(LAG).start().await;
    let app = exchange_ready_app(&sim).await;
    let graph = admin(&sim);
    let (status, _) = graph.delete(&format!("/applications/{}", app.object_id)).await;
    assert_eq!(status, 204);
    let (status, _) = graph.get(&format!("/applications/{}", app.object_id)).await;
    assert_eq!(status, 404);
    assert_eq!(exo_token_status(&sim, &app, cert(0)).await, (400, 700016));
}
