//! Cross-checks that do not go through this workspace's JWT code, and bodies from Microsoft's docs.

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cba_sim::SimTenant;
use serde_json::json;

use crate::common::*;

/// An assertion built by hand and signed by `openssl dgst -sha256 -sign` is accepted.
#[tokio::test]
async fn openssl_signed_assertion_is_accepted() {
    let sim = SimTenant::builder().start().await;
    let app = exchange_ready_app(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("key.pem");
    std::fs::write(&key_path, cert(0).private_key.as_ref().unwrap().pkcs8_pem().as_bytes()).unwrap();

    let now = now_secs(&sim);
    let header = format!(r#"{{"alg":"RS256","typ":"JWT","x5t":"{}"}}"#, cert(0).certificate.x5t());
    let claims = format!(
        r#"{{"aud":"{}","iss":"{id}","sub":"{id}","jti":"{}","nbf":{now},"iat":{now},"exp":{}}}"#,
        token_url(&sim, sim.tenant_id()),
        uuid::Uuid::new_v4(),
        now + 300,
        id = app.app_id,
    );
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let input_path = dir.path().join("input");
    std::fs::write(&input_path, &signing_input).unwrap();
    let output = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(&key_path)
        .arg(&input_path)
        .output()
        .expect("openssl is installed");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.stdout.len(), 256, "an RSA-2048 signature");
    let assertion = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&output.stdout));

    let (status, body) = request_token(&sim, sim.tenant_id(), &app.app_id, &assertion, EXO_SCOPE).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims_of(&body)["roles"], json!(["Exchange.ManageAsApp"]));

    // The same bytes with one signature bit flipped are refused: the sim really checks the signature.
    let mut bad = output.stdout.clone();
    bad[10] ^= 1;
    let mut claims_fresh = signing_input.clone();
    claims_fresh.push('.');
    claims_fresh.push_str(&URL_SAFE_NO_PAD.encode(&bad));
    let (status, body) = request_token(&sim, sim.tenant_id(), &app.app_id, &claims_fresh, EXO_SCOPE).await;
    assert_aadsts(status, &body, 401, "invalid_client", 700027);
}

fn claims_of(body: &serde_json::Value) -> serde_json::Value {
    claims(body["access_token"].as_str().unwrap())
}

/// The create-application request body of Microsoft's docs (application-post-applications.md), verbatim.
#[tokio::test]
async fn docs_create_application_body_is_accepted() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    let docs_body = "{\n  \"displayName\": \"Display name\"\n}";
    let response = client()
        .post(graph.url("/applications"))
        .bearer_auth(&graph.token)
        .header("Content-type", "application/json")
        .body(docs_body)
        .send()
        .await
        .unwrap();
    let (status, created) = json_of(response).await;
    assert_eq!(status, 201, "{created}");
    // Fields of the documented response.
    for field in [
        "id",
        "appId",
        "createdDateTime",
        "publisherDomain",
        "api",
        "web",
        "publicClient",
        "info",
        "parentalControlSettings",
    ] {
        assert!(created.get(field).is_some(), "{field} missing: {created}");
    }
    assert_eq!(created["displayName"], "Display name");
    assert_eq!(created["signInAudience"], "AzureADandPersonalMicrosoftAccount");
    assert_eq!(created["keyCredentials"], json!([]));
    assert_eq!(created["deletedDateTime"], json!(null));
}

/// The role assignment body of Microsoft's docs (rbacapplication-post-roleassignments.md), ids replaced.
#[tokio::test]
async fn docs_role_assignment_body_is_accepted() {
    let sim = SimTenant::builder().start().await;
    let app = sim.seed_app("docs", &[der(cert(0))]).await;
    let body = r##"{
    "@odata.type": "#microsoft.graph.unifiedRoleAssignment",
    "roleDefinitionId": "c2cb59a3-2d01-4176-a458-95ed0a2e5f1d",
    "principalId": "f8ca5a85-489a-49a0-b555-0a6d81e56f0d",
    "directoryScopeId": "/"
}"##
    .replace("c2cb59a3-2d01-4176-a458-95ed0a2e5f1d", EXCHANGE_ADMIN)
    .replace("f8ca5a85-489a-49a0-b555-0a6d81e56f0d", &app.service_principal_id);
    let graph = admin(&sim);
    let response = client()
        .post(graph.url("/roleManagement/directory/roleAssignments"))
        .bearer_auth(&graph.token)
        .header("Content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, created) = json_of(response).await;
    assert_eq!(status, 201, "{created}");
}
