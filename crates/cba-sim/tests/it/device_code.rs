//! The device authorization grant for the admin's sign-in.

use std::time::Duration;

use cba_sim::SimTenant;
use serde_json::Value;

use crate::common::*;

const GRAPH_CLI: &str = "14d82eec-204b-4c2f-b7e8-296a70dab67e";
const SCOPES: &str = "https://graph.microsoft.com/Application.ReadWrite.All https://graph.microsoft.com/AppRoleAssignment.ReadWrite.All https://graph.microsoft.com/RoleManagement.ReadWrite.Directory offline_access";

async fn start_flow(sim: &SimTenant, client_id: &str, scope: &str) -> (u16, Value) {
    let url = format!("{}/{}/oauth2/v2.0/devicecode", sim.login_url(), sim.tenant_id());
    json_of(client().post(url).form(&[("client_id", client_id), ("scope", scope)]).send().await.unwrap()).await
}

async fn poll(sim: &SimTenant, client_id: &str, device_code: &str) -> (u16, Value) {
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("client_id", client_id),
        ("device_code", device_code),
    ];
    json_of(client().post(token_url(sim, sim.tenant_id())).form(&form).send().await.unwrap()).await
}

fn code(body: &Value) -> String {
    body["device_code"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn pending_until_the_delay_then_a_delegated_graph_token() {
    let sim = SimTenant::builder()
        .device_code_delay(Duration::from_secs(60))
        .device_code_interval(Duration::ZERO)
        .start()
        .await;
    let (status, started) = start_flow(&sim, GRAPH_CLI, SCOPES).await;
    assert_eq!(status, 200, "{started}");
    let user_code = started["user_code"].as_str().unwrap();
    assert_eq!(started["verification_uri"], "https://microsoft.com/devicelogin");
    assert_eq!(started["expires_in"], 900);
    assert_eq!(started["interval"], 0);
    assert!(started["message"].as_str().unwrap().contains(user_code));
    assert!(started.get("verification_uri_complete").is_none());
    assert_eq!(sim.pending_device_codes(), vec![user_code.to_string()]);

    let (status, body) = poll(&sim, GRAPH_CLI, &code(&started)).await;
    assert_aadsts(status, &body, 400, "authorization_pending", 70016);

    sim.advance_clock(Duration::from_secs(61));
    let (status, body) = poll(&sim, GRAPH_CLI, &code(&started)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["refresh_token"].is_string());
    assert!(body["scope"].as_str().unwrap().contains("https://graph.microsoft.com/RoleManagement.ReadWrite.Directory"));
    let token = body["access_token"].as_str().unwrap().to_string();
    let claims = claims(&token);
    assert_eq!(claims["idtyp"], "user");
    assert_eq!(claims["aud"], "https://graph.microsoft.com");
    assert_eq!(claims["upn"], format!("admin@{}", sim.tenant_domain()));
    let scp = claims["scp"].as_str().unwrap();
    for s in ["Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All", "RoleManagement.ReadWrite.Directory"] {
        assert!(scp.split(' ').any(|x| x == s), "{scp}");
    }
    // The token works on Graph.
    let graph = Graph { sim: &sim, token };
    let (status, body) = graph.post("/applications", &serde_json::json!({"displayName": "from device code"})).await;
    assert_eq!(status, 201, "{body}");

    // A code is redeemed once.
    let (status, body) = poll(&sim, GRAPH_CLI, &code(&started)).await;
    assert_aadsts(status, &body, 400, "invalid_grant", 54005);
}

#[tokio::test]
async fn refresh_token_grant_issues_a_new_token_once() {
    let sim = SimTenant::builder().device_code_interval(Duration::ZERO).start().await;
    let (_, started) = start_flow(&sim, GRAPH_CLI, SCOPES).await;
    let (status, body) = poll(&sim, GRAPH_CLI, &code(&started)).await;
    assert_eq!(status, 200, "{body}");
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    let form = [("grant_type", "refresh_token"), ("client_id", GRAPH_CLI), ("refresh_token", refresh.as_str())];
    let url = token_url(&sim, sim.tenant_id());
    let (status, renewed) = json_of(client().post(&url).form(&form).send().await.unwrap()).await;
    assert_eq!(status, 200, "{renewed}");
    assert!(renewed["access_token"].is_string());
    let (status, again) = json_of(client().post(&url).form(&form).send().await.unwrap()).await;
    assert_aadsts(status, &again, 400, "invalid_grant", 9002313);
}

#[tokio::test]
async fn polling_faster_than_the_interval_gets_slow_down() {
    let sim = SimTenant::builder().device_code_delay(Duration::from_secs(600)).start().await;
    let (_, started) = start_flow(&sim, GRAPH_CLI, SCOPES).await;
    assert_eq!(started["interval"], 5);
    let (status, body) = poll(&sim, GRAPH_CLI, &code(&started)).await;
    assert_aadsts(status, &body, 400, "authorization_pending", 70016);
    let (status, body) = poll(&sim, GRAPH_CLI, &code(&started)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "slow_down", "{body}");
    sim.advance_clock(Duration::from_secs(6));
    let (_, body) = poll(&sim, GRAPH_CLI, &code(&started)).await;
    assert_eq!(body["error"], "authorization_pending", "{body}");
}

#[tokio::test]
async fn declined_expired_and_unknown_codes() {
    let sim = SimTenant::builder().device_code_auto_approve(false).device_code_interval(Duration::ZERO).start().await;

    let (_, declined) = start_flow(&sim, GRAPH_CLI, SCOPES).await;
    assert!(sim.decline_device_code(declined["user_code"].as_str().unwrap()));
    let (status, body) = poll(&sim, GRAPH_CLI, &code(&declined)).await;
    assert_aadsts(status, &body, 400, "authorization_declined", 70000);

    let (_, expired) = start_flow(&sim, GRAPH_CLI, SCOPES).await;
    assert!(sim.expire_device_code(expired["user_code"].as_str().unwrap()));
    let (status, body) = poll(&sim, GRAPH_CLI, &code(&expired)).await;
    assert_aadsts(status, &body, 400, "expired_token", 70019);

    let (_, timed_out) = start_flow(&sim, GRAPH_CLI, SCOPES).await;
    sim.advance_clock(Duration::from_secs(901));
    let (status, body) = poll(&sim, GRAPH_CLI, &code(&timed_out)).await;
    assert_aadsts(status, &body, 400, "expired_token", 70019);

    let (status, body) = poll(&sim, GRAPH_CLI, "no-such-code").await;
    assert_aadsts(status, &body, 400, "bad_verification_code", 70018);
    assert!(!sim.approve_device_code("NOSUCHCOD"));
}

#[tokio::test]
async fn manual_approval_from_the_library_and_over_http() {
    let sim = SimTenant::builder().device_code_auto_approve(false).device_code_interval(Duration::ZERO).start().await;
    let (_, first) = start_flow(&sim, GRAPH_CLI, SCOPES).await;
    let (_, body) = poll(&sim, GRAPH_CLI, &code(&first)).await;
    assert_eq!(body["error"], "authorization_pending");
    assert!(sim.approve_device_code(first["user_code"].as_str().unwrap()));
    let (status, body) = poll(&sim, GRAPH_CLI, &code(&first)).await;
    assert_eq!(status, 200, "{body}");

    let (_, second) = start_flow(&sim, GRAPH_CLI, SCOPES).await;
    let url = format!("{}/_sim/device-codes/{}/approve", sim.graph_url(), second["user_code"].as_str().unwrap());
    assert_eq!(client().post(url).send().await.unwrap().status(), 204);
    let (status, body) = poll(&sim, GRAPH_CLI, &code(&second)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn unknown_clients_scopes_and_the_azure_cli_are_refused() {
    let sim = SimTenant::builder().start().await;
    let (status, body) = start_flow(&sim, &uuid::Uuid::new_v4().to_string(), SCOPES).await;
    assert_aadsts(status, &body, 400, "unauthorized_client", 700016);
    let (status, body) = start_flow(&sim, GRAPH_CLI, "https://graph.microsoft.com/Nope.Nothing").await;
    assert_aadsts(status, &body, 400, "invalid_scope", 70011);
    let (status, body) = start_flow(&sim, "04b07795-8ddb-461a-bbee-02f9e1bf7b46", SCOPES).await;
    assert_aadsts(status, &body, 400, "invalid_request", 65002);
    let url = format!("{}/{}/oauth2/v2.0/devicecode", sim.login_url(), sim.tenant_id());
    let (status, body) = json_of(client().post(url).form(&[("client_id", GRAPH_CLI)]).send().await.unwrap()).await;
    assert_aadsts(status, &body, 400, "invalid_request", 900144);
}

#[tokio::test]
async fn a_registered_app_must_allow_public_client_flows() {
    let sim = SimTenant::builder().device_code_interval(Duration::ZERO).start().await;
    let graph = admin(&sim);
    let (_, confidential) = create_app(&graph, serde_json::json!({"displayName": "confidential"})).await;
    let (_, public) =
        create_app(&graph, serde_json::json!({"displayName": "public", "isFallbackPublicClient": true})).await;
    let (_, started) = start_flow(&sim, &confidential, SCOPES).await;
    let (status, body) = poll(&sim, &confidential, &code(&started)).await;
    assert_aadsts(status, &body, 401, "invalid_client", 7000218);
    let (_, started) = start_flow(&sim, &public, SCOPES).await;
    let (status, body) = poll(&sim, &public, &code(&started)).await;
    assert_eq!(status, 200, "{body}");
}

const EXCHANGE_POWERSHELL: &str = "fb78d390-0c51-40cd-8e17-fdbfab77341b";
const EXCHANGE_DEFAULT: &str = "https://outlook.office365.com/.default";

/// The Exchange Online PowerShell sign-in: the admin's delegated Exchange token, which InvokeCommand takes
/// anchored to the admin's UPN (and Graph refuses).
#[tokio::test]
async fn the_exchange_powershell_client_signs_the_admin_in_to_exchange() {
    let sim = SimTenant::builder().device_code_interval(Duration::ZERO).start().await;
    let (status, started) = start_flow(&sim, EXCHANGE_POWERSHELL, EXCHANGE_DEFAULT).await;
    assert_eq!(status, 200, "{started}");
    let (status, body) = poll(&sim, EXCHANGE_POWERSHELL, &code(&started)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], EXCHANGE_DEFAULT);
    let token = body["access_token"].as_str().unwrap().to_string();
    let c = claims(&token);
    assert_eq!(c["aud"], "https://outlook.office365.com");
    assert_eq!(c["appid"], EXCHANGE_POWERSHELL);
    assert_eq!(c["upn"], format!("admin@{}", sim.tenant_domain()));
    assert!(c["scp"].as_str().is_some_and(|s| !s.is_empty()), "{c}");

    let url = format!("{}/adminapi/beta/{}/InvokeCommand", sim.exchange_url(), sim.tenant_id());
    let invoke = |token: String| {
        client()
            .post(url.clone())
            .bearer_auth(token)
            .header("X-AnchorMailbox", format!("UPN:admin@{}", sim.tenant_domain()))
            .json(&serde_json::json!({"CmdletInput": {"CmdletName": "Get-RoleGroup", "Parameters": {}}}))
            .send()
    };
    let (status, body) = json_of(invoke(token.clone()).await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["value"].as_array().is_some_and(|groups| groups.iter().any(|g| g["Name"] == "Organization Management"))
    );
    // A Graph token of the same admin is not an Exchange token.
    let (status, _) = json_of(invoke(sim.admin_token()).await.unwrap()).await;
    assert_eq!(status, 401);
    // And the Exchange token is not a Graph one.
    let graph = Graph { sim: &sim, token };
    let (status, _) = graph.get("/applications").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn exchange_scopes_are_one_resource_default_only_for_the_exchange_client() {
    let sim = SimTenant::builder().start().await;
    let (status, body) = start_flow(&sim, GRAPH_CLI, EXCHANGE_DEFAULT).await;
    assert_aadsts(status, &body, 400, "invalid_request", 65002);
    let mixed = format!("{EXCHANGE_DEFAULT} https://graph.microsoft.com/Application.ReadWrite.All");
    let (status, body) = start_flow(&sim, EXCHANGE_POWERSHELL, &mixed).await;
    assert_aadsts(status, &body, 400, "invalid_scope", 28000);
    let (status, body) = start_flow(&sim, EXCHANGE_POWERSHELL, "https://outlook.office365.com/Exchange.Manage").await;
    assert_aadsts(status, &body, 400, "invalid_scope", 70011);
}
