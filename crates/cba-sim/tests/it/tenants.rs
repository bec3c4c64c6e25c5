//! A second tenant (two sims, or two tenants in one), `GET /organization` answering the token's tenant, and
//! opaque admin tokens.

use cba_sim::SimTenant;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn another_sims_tenant_is_not_found_at_this_login() {
    let contoso = SimTenant::builder().tenant_name("contoso").start().await;
    let fabrikam = SimTenant::builder().tenant_name("fabrikam").start().await;
    assert_eq!(fabrikam.tenant_domain(), "fabrikam.onmicrosoft.com");
    let app = exchange_ready_app(&contoso).await;
    for tenant in [fabrikam.tenant_domain(), fabrikam.tenant_id()] {
        let assertion = Assertion::new(&contoso, cert(0), &app.app_id, tenant).sign(cert(0));
        let (status, body) = request_token(&contoso, tenant, &app.app_id, &assertion, EXO_SCOPE).await;
        assert_aadsts(status, &body, 400, "invalid_tenant", 90002);
        let url = format!("{}/{tenant}/v2.0/.well-known/openid-configuration", contoso.login_url());
        let (status, body) = json_of(client().get(url).send().await.unwrap()).await;
        assert_aadsts(status, &body, 400, "invalid_tenant", 90002);
    }
    // contoso's admin token means nothing to fabrikam's Graph (another signer, another tenant).
    let stranger = Graph { sim: &fabrikam, token: contoso.admin_token() };
    let (status, body) = stranger.get("/organization").await;
    assert_graph_error(status, &body, 401, "InvalidAuthenticationToken");
}

#[tokio::test]
async fn organization_answers_the_tokens_tenant() {
    let sim = SimTenant::builder().tenant_name("contoso").tenant("fabrikam").start().await;
    for (name, token) in [("contoso", sim.admin_token()), ("fabrikam", sim.admin_token_for("fabrikam").unwrap())] {
        let info = sim.tenant(name).unwrap().clone();
        let (status, org) = Graph { sim: &sim, token }.get("/organization").await;
        assert_eq!(status, 200, "{org}");
        assert_eq!(org["value"].as_array().unwrap().len(), 1);
        let org = &org["value"][0];
        assert_eq!(org["id"], info.id);
        assert_eq!(org["displayName"], name);
        assert_eq!(
            org["verifiedDomains"][0],
            json!({
                "capabilities": "Email, OfficeCommunicationsOnline",
                "isDefault": true,
                "isInitial": true,
                "name": format!("{name}.onmicrosoft.com"),
                "type": "Managed",
            })
        );
    }
}

#[tokio::test]
async fn organization_checks_authorization() {
    let sim = SimTenant::builder().tenant_domain("contoso.example").start().await;
    let (status, body) =
        json_of(client().get(format!("{}/v1.0/organization", sim.graph_url())).send().await.unwrap()).await;
    assert_graph_error(status, &body, 401, "InvalidAuthenticationToken");
    // An app-only token needs an organization or directory read permission; Exchange.ManageAsApp is not one.
    let app = exchange_ready_app(&sim).await;
    let plain = Graph { sim: &sim, token: token_for(&sim, &app, cert(0), GRAPH_SCOPE).await };
    let (status, body) = plain.get("/organization").await;
    assert_graph_error(status, &body, 403, "Authorization_RequestDenied");
    sim.seed_grant(&app, "00000003-0000-0000-c000-000000000000", "Directory.Read.All").await;
    let reader = Graph { sim: &sim, token: token_for(&sim, &app, cert(0), GRAPH_SCOPE).await };
    let (status, org) = reader.get("/organization").await;
    assert_eq!(status, 200, "{org}");
    assert_eq!(org["value"][0]["verifiedDomains"][0]["name"], "contoso.example");
}

#[tokio::test]
async fn an_opaque_admin_token_works_on_graph() {
    let sim = SimTenant::builder().tenant("fabrikam").start().await;
    let token = sim.admin_token_opaque();
    assert!(!token.contains('.'), "not a JWT: {token}");
    assert_ne!(token, sim.admin_token_opaque(), "each call makes a new token");
    let graph = Graph { sim: &sim, token: token.clone() };
    let (status, org) = graph.get("/organization").await;
    assert_eq!((status, org["value"][0]["id"].as_str()), (200, Some(sim.tenant_id())));
    let (status, me) = graph.get("/me").await;
    assert_eq!(
        (status, me["userPrincipalName"].as_str()),
        (200, Some(format!("admin@{}", sim.tenant_domain()).as_str()))
    );
    let (id, _) = create_app(&graph, json!({"displayName": "opaque"})).await;
    let (status, _) = graph.get(&format!("/applications/{id}")).await;
    assert_eq!(status, 200);

    let fabrikam = Graph { sim: &sim, token: sim.admin_token_opaque_for("fabrikam").unwrap() };
    let (_, org) = fabrikam.get("/organization").await;
    assert_eq!(org["value"][0]["id"], sim.tenant("fabrikam").unwrap().id);
    let (status, error) = fabrikam.get(&format!("/applications/{id}")).await;
    assert_graph_error(status, &error, 404, "Request_ResourceNotFound");

    // A made-up opaque token, and a real one past its lifetime, are refused.
    let forged = Graph { sim: &sim, token: format!("{token}x") };
    let (status, body) = forged.get("/organization").await;
    assert_graph_error(status, &body, 401, "InvalidAuthenticationToken");
    sim.advance_clock(std::time::Duration::from_secs(3600));
    let (status, body) = graph.get("/organization").await;
    assert_graph_error(status, &body, 401, "InvalidAuthenticationToken");
}
