//! Graph `/applications`: create, read, filter, PATCH, delete, addKey/removeKey, authorization and errors.

use base64::Engine;
use cba_sim::SimTenant;
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn create_with_certificate_hides_the_key_unless_selected() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    let body = json!({
        "displayName": "contoso-exo",
        "signInAudience": "AzureADMyOrg",
        "requiredResourceAccess": [{
            "resourceAppId": "00000002-0000-0ff1-ce00-000000000000",
            "resourceAccess": [{"id": "dc50a0fb-09a3-484d-be87-e023b12c6440", "type": "Role"}]
        }],
        "keyCredentials": [key_credential(cert(0))],
    });
    let (status, created) = graph.post("/applications", &body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["@odata.context"], format!("{}/v1.0/$metadata#applications/$entity", sim.graph_url()));
    assert_eq!(created["displayName"], "contoso-exo");
    assert_eq!(created["signInAudience"], "AzureADMyOrg");
    assert_eq!(created["publisherDomain"], sim.tenant_domain());
    assert_eq!(created["requiredResourceAccess"], body["requiredResourceAccess"]);
    let key = &created["keyCredentials"][0];
    assert_eq!(key["key"], Value::Null);
    assert_eq!(key["type"], "AsymmetricX509Cert");
    assert_eq!(key["usage"], "Verify");
    assert_eq!(key["displayName"], "CN=cba-sim-test-0");
    let thumbprint =
        base64::engine::general_purpose::STANDARD.decode(key["customKeyIdentifier"].as_str().unwrap()).unwrap();
    assert_eq!(thumbprint, cert(0).certificate.thumbprint_sha1());
    let id = created["id"].as_str().unwrap();
    assert_ne!(id, created["appId"].as_str().unwrap());

    let (status, fetched) = graph.get(&format!("/applications/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(fetched["keyCredentials"][0]["key"], Value::Null);
    let (status, selected) = graph.get(&format!("/applications/{id}?$select=keyCredentials")).await;
    assert_eq!(status, 200, "{selected}");
    assert_eq!(selected["keyCredentials"][0]["key"], b64(cert(0).certificate.der()));
    assert!(selected.get("displayName").is_none());
    assert_eq!(
        selected["@odata.context"],
        format!("{}/v1.0/$metadata#applications(keyCredentials)/$entity", sim.graph_url())
    );
    let (status, body) = graph.get(&format!("/applications/{id}?$select=nosuch")).await;
    assert_graph_error(status, &body, 400, "BadRequest");
}

#[tokio::test]
async fn create_rejects_what_graph_rejects() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    let cases = [
        (json!({"signInAudience": "AzureADMyOrg"}), 400, "Request_BadRequest", "displayName"),
        (json!({"displayName": ""}), 400, "Request_BadRequest", "displayName"),
        (json!({"displayName": "x", "signInAudience": "Everyone"}), 400, "Request_BadRequest", "signInAudience"),
        (json!({"displayName": "x", "colour": "blue"}), 400, "BadRequest", "Property 'colour' does not exist"),
        (
            json!({"displayName": "x", "appId": "00000000-0000-0000-0000-000000000001"}),
            400,
            "Request_BadRequest",
            "read-only",
        ),
        (
            json!({"displayName": "x", "requiredResourceAccess": [{"resourceAppId": "exo"}]}),
            400,
            "Request_BadRequest",
            "requiredResourceAccess",
        ),
        (
            json!({"displayName": "x", "passwordCredentials": [{"displayName": "s"}]}),
            400,
            "Request_BadRequest",
            "addPassword",
        ),
    ];
    for (body, status_want, code, message) in cases {
        let (status, error) = graph.post("/applications", &body).await;
        assert_graph_error(status, &error, status_want, code);
        assert!(error["error"]["message"].as_str().unwrap().contains(message), "{body} -> {error}");
    }
    let url = graph.url("/applications");
    let response = client()
        .post(&url)
        .bearer_auth(&graph.token)
        .header("content-type", "application/json")
        .body("{\"displayName\": ")
        .send()
        .await
        .unwrap();
    let (status, error) = json_of(response).await;
    assert_graph_error(status, &error, 400, "BadRequest");
    assert!(error["error"]["message"].as_str().unwrap().starts_with("Unable to read JSON request payload"));
    let response = client().post(&url).bearer_auth(&graph.token).body("{\"displayName\":\"x\"}").send().await.unwrap();
    let (status, error) = json_of(response).await;
    assert_graph_error(status, &error, 400, "BadRequest");
    let response =
        client().post(&url).bearer_auth(&graph.token).header("content-type", "application/json").send().await.unwrap();
    let (status, error) = json_of(response).await;
    assert_graph_error(status, &error, 400, "BadRequest");
    assert!(sim.state().await.primary().applications.is_empty());
}

#[tokio::test]
async fn key_credentials_are_validated() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    let good = key_credential(cert(0));
    let with = |field: &str, value: Value| {
        let mut k = good.clone();
        k[field] = value;
        json!({"displayName": "x", "keyCredentials": [k]})
    };
    let not_after = cert(0).certificate.not_after();
    let not_before = cert(0).certificate.not_before();
    let fmt = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap();
    let cases = [
        (with("key", json!("%%% not base64")), "Request_BadRequest", "Key value is invalid certificate"),
        (with("key", json!(b64(b"not a certificate"))), "Request_BadRequest", "Key value is invalid certificate"),
        (with("key", Value::Null), "Request_BadRequest", "Key value is invalid certificate"),
        (with("type", json!("Symmetric")), "Request_BadRequest", "'type'"),
        (with("usage", json!("Sign")), "Request_BadRequest", "'usage'"),
        (
            with("endDateTime", json!(fmt(not_after + time::Duration::days(1)))),
            "Request_BadRequest",
            "Key credential end date is invalid.",
        ),
        (
            with("startDateTime", json!(fmt(not_before - time::Duration::days(1)))),
            "Request_BadRequest",
            "Key credential start date is invalid.",
        ),
        (with("endDateTime", json!("next tuesday")), "BadRequest", "Edm.DateTimeOffset"),
        (with("keyId", json!("not-a-guid")), "BadRequest", "Edm.Guid"),
        (with("customKeyIdentifier", json!(b64(&[7u8; 40]))), "Request_BadRequest", "customKeyIdentifier"),
        (with("surprise", json!(1)), "BadRequest", "does not exist on type 'microsoft.graph.keyCredential'"),
    ];
    for (body, code, message) in cases {
        let (status, error) = graph.post("/applications", &body).await;
        assert_graph_error(status, &error, 400, code);
        assert!(error["error"]["message"].as_str().unwrap().contains(message), "{body} -> {error}");
    }
    // Dates exactly at the certificate's bounds are fine.
    let (status, body) = graph.post("/applications", &with("endDateTime", json!(fmt(not_after)))).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn get_by_app_id_filter_and_paging() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    let (id, app_id) = create_app(&graph, json!({"displayName": "O'Brien app"})).await;
    for i in 0..4 {
        create_app(&graph, json!({"displayName": format!("other {i}")})).await;
    }
    let (status, by_app_id) = graph.get(&format!("/applications(appId='{app_id}')")).await;
    assert_eq!(status, 200, "{by_app_id}");
    assert_eq!(by_app_id["id"], id);
    let (status, encoded) = graph.get(&format!("/applications(appId=%27{app_id}%27)")).await;
    assert_eq!(status, 200, "{encoded}");

    let (status, list) = graph.get("/applications?$filter=displayName eq 'O''Brien app'").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["@odata.context"], format!("{}/v1.0/$metadata#applications", sim.graph_url()));
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    assert_eq!(list["value"][0]["appId"], app_id);
    let (_, none) = graph.get("/applications?$filter=displayName eq 'nobody'").await;
    assert_eq!(none["value"], json!([]));
    let (status, error) = graph.get("/applications?$filter=notes eq 'x'").await;
    assert_graph_error(status, &error, 400, "Request_UnsupportedQuery");
    let (status, error) = graph.get("/applications?$filter=displayName eq").await;
    assert_graph_error(status, &error, 400, "BadRequest");
    let (status, error) = graph.get("/applications?$expand=owners").await;
    assert_graph_error(status, &error, 400, "BadRequest");
    let (status, error) = graph.get("/applications?$top=0").await;
    assert_graph_error(status, &error, 400, "BadRequest");

    let (status, page) = graph.get("/applications?$top=2").await;
    assert_eq!(status, 200);
    let mut seen = page["value"].as_array().unwrap().len();
    let mut next = page["@odata.nextLink"].as_str().map(str::to_string);
    while let Some(link) = next {
        assert!(link.starts_with(&format!("{}/v1.0/applications?", sim.graph_url())), "{link}");
        let (status, page) = json_of(client().get(&link).bearer_auth(&graph.token).send().await.unwrap()).await;
        assert_eq!(status, 200, "{page}");
        seen += page["value"].as_array().unwrap().len();
        next = page["@odata.nextLink"].as_str().map(str::to_string);
    }
    assert_eq!(seen, 5);

    let (status, error) = graph.get(&format!("/applications/{}", uuid::Uuid::new_v4())).await;
    assert_graph_error(status, &error, 404, "Request_ResourceNotFound");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not exist or one of its queried reference-property objects are not present")
    );
    let (status, error) = graph.get("/applications/not-a-guid").await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");
}

#[tokio::test]
async fn patch_replaces_the_key_collection() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    let (id, _) =
        create_app(&graph, json!({"displayName": "rotate", "keyCredentials": [key_credential(cert(0))]})).await;
    let path = format!("/applications/{id}");
    let (status, body) =
        graph.patch(&path, &json!({"keyCredentials": [key_credential(cert(0)), key_credential(cert(1))]})).await;
    assert_eq!((status, body), (204, Value::Null));
    let thumbprints = |sim_state: cba_sim::StateSnapshot| -> Vec<String> {
        sim_state.primary().applications[0].key_credentials.iter().map(|k| k.thumbprint_sha1.clone()).collect()
    };
    assert_eq!(
        thumbprints(sim.state().await),
        vec![cert(0).certificate.thumbprint_sha1_hex(), cert(1).certificate.thumbprint_sha1_hex()]
    );
    let (status, _) = graph.patch(&path, &json!({"keyCredentials": [key_credential(cert(1))]})).await;
    assert_eq!(status, 204);
    assert_eq!(thumbprints(sim.state().await), vec![cert(1).certificate.thumbprint_sha1_hex()]);
    let (status, _) = graph.patch(&path, &json!({"displayName": "renamed", "notes": "rotated"})).await;
    assert_eq!(status, 204);
    let (_, app) = graph.get(&path).await;
    assert_eq!(app["displayName"], "renamed");
    assert_eq!(app["notes"], "rotated");
    assert_eq!(app["keyCredentials"].as_array().unwrap().len(), 1);
    // A bad PATCH changes nothing.
    let mut bad = key_credential(cert(0));
    bad["usage"] = json!("Encrypt");
    let (status, error) = graph.patch(&path, &json!({"displayName": "again", "keyCredentials": [bad]})).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");
    let (_, app) = graph.get(&path).await;
    assert_eq!(app["displayName"], "renamed");
    let (status, error) = graph.patch(&format!("/applications/{}", uuid::Uuid::new_v4()), &json!({"notes": "x"})).await;
    assert_graph_error(status, &error, 404, "Request_ResourceNotFound");
}

#[tokio::test]
async fn delete_is_204_then_404_and_cascades() {
    let sim = SimTenant::builder().start().await;
    let app = exchange_ready_app(&sim).await;
    let graph = admin(&sim);
    let state = sim.state().await;
    assert_eq!(state.primary().app_role_assignments.len(), 1);
    assert_eq!(state.primary().role_assignments.len(), 1);
    let (status, _) = graph.delete(&format!("/applications/{}", app.object_id)).await;
    assert_eq!(status, 204);
    let (status, error) = graph.delete(&format!("/applications/{}", app.object_id)).await;
    assert_graph_error(status, &error, 404, "Request_ResourceNotFound");
    let state = sim.state().await;
    let tenant = state.primary();
    assert!(tenant.applications.is_empty());
    assert_eq!(tenant.custom_service_principals().count(), 0);
    assert!(tenant.app_role_assignments.is_empty());
    assert!(tenant.role_assignments.is_empty());
    assert_eq!(tenant.service_principals.len(), 2, "the Microsoft service principals stay");
}

#[tokio::test]
async fn add_key_and_remove_key_need_a_valid_proof() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    let (empty_id, _) = create_app(&graph, json!({"displayName": "no certs"})).await;
    let body = json!({"keyCredential": key_credential(cert(1)), "passwordCredential": null, "proof": proof(&sim, &empty_id, cert(0), PROOF_AUD)});
    let (status, error) = graph.post(&format!("/applications/{empty_id}/addKey"), &body).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");

    let app = sim.seed_app("rolling", &[der(cert(0))]).await;
    sim.seed_grant_manage_as_app(&app).await;
    // The app rolls its own key with an app-only Graph token that has no Graph permission at all.
    let own = Graph { sim: &sim, token: token_for(&sim, &app, cert(0), GRAPH_SCOPE).await };
    let add = format!("/applications/{}/addKey", app.object_id);
    let wrong_aud = json!({"keyCredential": key_credential(cert(1)), "passwordCredential": null, "proof": proof(&sim, &app.object_id, cert(0), "00000003-0000-0000-c000-000000000000")});
    let (status, error) = own.post(&add, &wrong_aud).await;
    assert_graph_error(status, &error, 401, "Authentication_MissingOrMalformed");
    let foreign_signer = json!({"keyCredential": key_credential(cert(1)), "passwordCredential": null, "proof": proof(&sim, &app.object_id, cert(2), PROOF_AUD)});
    let (status, error) = own.post(&add, &foreign_signer).await;
    assert_graph_error(status, &error, 401, "Authentication_MissingOrMalformed");
    let no_proof = json!({"keyCredential": key_credential(cert(1)), "passwordCredential": null});
    let (status, error) = own.post(&add, &no_proof).await;
    assert_graph_error(status, &error, 403, "Authorization_RequestDenied");

    let good = json!({"keyCredential": key_credential(cert(1)), "passwordCredential": null, "proof": proof(&sim, &app.object_id, cert(0), PROOF_AUD)});
    let (status, added) = own.post(&add, &good).await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(added["@odata.context"], format!("{}/v1.0/$metadata#microsoft.graph.keyCredential", sim.graph_url()));
    let new_key_id = added["keyId"].as_str().unwrap().to_string();
    // The new certificate now gets tokens.
    token_for(&sim, &app, cert(1), EXO_SCOPE).await;

    // Another app's token cannot roll this app's keys.
    let other = sim.seed_app("other", &[der(cert(2))]).await;
    let stranger = Graph { sim: &sim, token: token_for(&sim, &other, cert(2), GRAPH_SCOPE).await };
    let (status, error) = stranger.post(&add, &good).await;
    assert_graph_error(status, &error, 403, "Authorization_RequestDenied");

    let remove = json!({"keyId": new_key_id, "proof": proof(&sim, &app.object_id, cert(0), PROOF_AUD)});
    let (status, _) = own.post(&format!("/applications/{}/removeKey", app.object_id), &remove).await;
    assert_eq!(status, 204);
    let (status, error) = own.post(&format!("/applications/{}/removeKey", app.object_id), &remove).await;
    assert_graph_error(status, &error, 404, "Request_ResourceNotFound");
    let state = sim.state().await;
    let keys = &state.primary().applications.iter().find(|a| a.id == app.object_id).unwrap().key_credentials;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].thumbprint_sha1, cert(0).certificate.thumbprint_sha1_hex());
}

#[tokio::test]
async fn every_route_checks_the_bearer_token() {
    let sim = SimTenant::builder().start().await;
    let url = format!("{}/v1.0/applications", sim.graph_url());
    let (status, error) = json_of(client().get(&url).send().await.unwrap()).await;
    assert_graph_error(status, &error, 401, "InvalidAuthenticationToken");
    assert_eq!(error["error"]["message"], "Access token is empty.");
    let (status, error) = json_of(client().get(&url).bearer_auth("garbage").send().await.unwrap()).await;
    assert_graph_error(status, &error, 401, "InvalidAuthenticationToken");

    // A token signed by someone else, with the right claims.
    let forged = {
        let original = sim.admin_token();
        let mut parts: Vec<&str> = original.split('.').collect();
        let other = "c2lnbmF0dXJl";
        parts[2] = other;
        parts.join(".")
    };
    let (status, _) = json_of(client().get(&url).bearer_auth(&forged).send().await.unwrap()).await;
    assert_eq!(status, 401);

    let app = exchange_ready_app(&sim).await;
    let exo = token_for(&sim, &app, cert(0), EXO_SCOPE).await;
    let (status, error) = json_of(client().get(&url).bearer_auth(&exo).send().await.unwrap()).await;
    assert_graph_error(status, &error, 401, "InvalidAuthenticationToken");
    assert!(error["error"]["message"].as_str().unwrap().contains("Invalid audience"));

    let no_permission = token_for(&sim, &app, cert(0), GRAPH_SCOPE).await;
    let (status, error) = json_of(client().get(&url).bearer_auth(&no_permission).send().await.unwrap()).await;
    assert_graph_error(status, &error, 403, "Authorization_RequestDenied");

    let token = sim.admin_token();
    sim.advance_clock(std::time::Duration::from_secs(3600));
    let (status, error) = json_of(client().get(&url).bearer_auth(&token).send().await.unwrap()).await;
    assert_graph_error(status, &error, 401, "InvalidAuthenticationToken");
    let (status, _) = json_of(client().get(&url).bearer_auth(sim.admin_token()).send().await.unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn errors_echo_client_request_id_and_unknown_routes_are_graph_shaped() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    let id = "my-correlation-123";
    let response = client()
        .get(graph.url(&format!("/applications/{}", uuid::Uuid::new_v4())))
        .bearer_auth(&graph.token)
        .header("client-request-id", id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["client-request-id"], id);
    assert!(response.headers().contains_key("request-id"));
    let (status, error) = json_of(response).await;
    assert_graph_error(status, &error, 404, "Request_ResourceNotFound");
    assert_eq!(error["error"]["innerError"]["client-request-id"], id);

    let (status, error) = graph.get("/users").await;
    assert_graph_error(status, &error, 400, "BadRequest");
    assert!(error["error"]["message"].as_str().unwrap().contains("Resource not found for the segment 'users'"));
    let (status, error) = graph.delete("/applications").await;
    assert_graph_error(status, &error, 405, "Request_BadRequest");
    let (status, error) =
        json_of(client().get(format!("{}/beta/applications", sim.graph_url())).send().await.unwrap()).await;
    assert_graph_error(status, &error, 400, "BadRequest");
    for path in ["/", "/foo/bar", "/favicon.ico"] {
        let (status, error) = json_of(client().get(format!("{}{path}", sim.graph_url())).send().await.unwrap()).await;
        assert_graph_error(status, &error, 400, "BadRequest");
    }
}

#[tokio::test]
async fn organization_and_me() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    let (status, org) = graph.get("/organization").await;
    assert_eq!(status, 200);
    assert_eq!(org["value"][0]["id"], sim.tenant_id());
    assert_eq!(org["value"][0]["verifiedDomains"][0]["name"], sim.tenant_domain());
    let (status, me) = graph.get("/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["userPrincipalName"], format!("admin@{}", sim.tenant_domain()));
    let claims = claims(&graph.token);
    assert_eq!(claims["oid"], me["id"]);
}
