//! Graph `/servicePrincipals`, app role grants, directory role assignments, multi-tenant consent.

use cba_sim::{DuplicateRoleAssignment, SimTenant};
use serde_json::{Value, json};

use crate::common::*;

const EXO_APP: &str = "00000002-0000-0ff1-ce00-000000000000";
const MANAGE_AS_APP: &str = "dc50a0fb-09a3-484d-be87-e023b12c6440";

async fn exo_sp_id(graph: &Graph<'_>) -> String {
    let (status, sp) = graph.get(&format!("/servicePrincipals(appId='{EXO_APP}')")).await;
    assert_eq!(status, 200, "{sp}");
    sp["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn exchange_service_principal_is_preseeded_with_manage_as_app() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    let (status, sp) = graph.get(&format!("/servicePrincipals(appId='{EXO_APP}')")).await;
    assert_eq!(status, 200);
    assert_eq!(sp["displayName"], "Office 365 Exchange Online");
    let role = sp["appRoles"].as_array().unwrap().iter().find(|r| r["value"] == "Exchange.ManageAsApp").unwrap();
    assert_eq!(role["id"], MANAGE_AS_APP);
    let (status, list) = graph.get(&format!("/servicePrincipals?$filter=appId eq '{EXO_APP}'")).await;
    assert_eq!(status, 200);
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    assert_eq!(list["value"][0]["id"], sp["id"]);
    let (_, graph_sp) = graph.get("/servicePrincipals(appId='00000003-0000-0000-c000-000000000000')").await;
    let values: Vec<&str> =
        graph_sp["appRoles"].as_array().unwrap().iter().map(|r| r["value"].as_str().unwrap()).collect();
    for v in ["Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All", "RoleManagement.ReadWrite.Directory"] {
        assert!(values.contains(&v), "{values:?}");
    }
}

#[tokio::test]
async fn create_service_principal_and_its_failures() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    let (_, app_id) = create_app(&graph, json!({"displayName": "needs-sp"})).await;
    let (status, sp) = graph.post("/servicePrincipals", &json!({"appId": app_id})).await;
    assert_eq!(status, 201, "{sp}");
    assert_eq!(sp["appId"], app_id);
    assert_eq!(sp["displayName"], "needs-sp");
    assert_eq!(sp["appOwnerOrganizationId"], sim.tenant_id());
    assert_eq!(sp["servicePrincipalType"], "Application");
    assert_eq!(sp["@odata.context"], format!("{}/v1.0/$metadata#servicePrincipals/$entity", sim.graph_url()));

    let (status, error) = graph.post("/servicePrincipals", &json!({"appId": app_id})).await;
    assert_graph_error(status, &error, 409, "Request_MultipleObjectsWithSameKeyValue");

    let ghost = uuid::Uuid::new_v4().to_string();
    let (status, error) = graph.post("/servicePrincipals", &json!({"appId": ghost})).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");
    assert_eq!(error["error"]["details"][0]["code"], "NoBackingApplicationObject");
    assert_eq!(
        error["error"]["message"],
        format!("The appId '{ghost}' of the service principal does not reference a valid application object.")
    );
    let (status, error) = graph.post("/servicePrincipals", &json!({"displayName": "no app id"})).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");

    let (status, _) = graph.delete(&format!("/servicePrincipals/{}", sp["id"].as_str().unwrap())).await;
    assert_eq!(status, 204);
    let (status, error) = graph.delete(&format!("/servicePrincipals/{}", sp["id"].as_str().unwrap())).await;
    assert_graph_error(status, &error, 404, "Request_ResourceNotFound");
}

#[tokio::test]
async fn create_if_missing_upsert() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    let (_, app_id) = create_app(&graph, json!({"displayName": "upsert"})).await;
    let url = graph.url(&format!("/servicePrincipals(appId='{app_id}')"));
    let patch = |prefer: bool| {
        let mut request = client().patch(&url).bearer_auth(&graph.token).json(&json!({"tags": ["cba"]}));
        if prefer {
            request = request.header("Prefer", "create-if-missing");
        }
        request
    };
    let (status, error) = json_of(patch(false).send().await.unwrap()).await;
    assert_graph_error(status, &error, 404, "Request_ResourceNotFound");
    let (status, created) = json_of(patch(true).send().await.unwrap()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["appId"], app_id);
    assert_eq!(created["tags"], json!(["cba"]));
    let (status, body) = json_of(patch(true).send().await.unwrap()).await;
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(sim.state().await.primary().custom_service_principals().count(), 1);
    let ghost = graph.url(&format!("/servicePrincipals(appId='{}')", uuid::Uuid::new_v4()));
    let response =
        client().patch(ghost).bearer_auth(&graph.token).header("Prefer", "create-if-missing").json(&json!({})).send();
    let (status, error) = json_of(response.await.unwrap()).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");
    assert_eq!(error["error"]["details"][0]["code"], "NoBackingApplicationObject");
}

#[tokio::test]
async fn app_role_grants_docs_example_duplicate_unknown_and_revoke() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    let app = sim.seed_app("client", &[der(cert(0))]).await;
    let exo = exo_sp_id(&graph).await;
    // The request body of Microsoft's docs example (serviceprincipal-post-approleassignedto.md), ids replaced.
    let docs_body = r#"{
  "principalId": "33ad69f9-da99-4bed-acd0-3f24235cb296",
  "resourceId": "9028d19c-26a9-4809-8e3f-20ff73e2d75e",
  "appRoleId": "ef7437e6-4f94-4a0a-a110-a439eb2aa8f7"
}"#
    .replace("33ad69f9-da99-4bed-acd0-3f24235cb296", &app.service_principal_id)
    .replace("9028d19c-26a9-4809-8e3f-20ff73e2d75e", &exo)
    .replace("ef7437e6-4f94-4a0a-a110-a439eb2aa8f7", MANAGE_AS_APP);
    let body: Value = serde_json::from_str(&docs_body).unwrap();
    let path = format!("/servicePrincipals/{exo}/appRoleAssignedTo");
    let (status, grant) = graph.post(&path, &body).await;
    assert_eq!(status, 201, "{grant}");
    let id = grant["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_err(), "assignment ids are opaque, not GUIDs: {id}");
    assert_eq!(grant["principalId"], app.service_principal_id);
    assert_eq!(grant["resourceId"], exo);
    assert_eq!(grant["appRoleId"], MANAGE_AS_APP);
    assert_eq!(grant["principalType"], "ServicePrincipal");
    assert_eq!(grant["resourceDisplayName"], "Office 365 Exchange Online");
    assert_eq!(grant["principalDisplayName"], "client");

    let (status, error) = graph.post(&path, &body).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");
    assert_eq!(error["error"]["message"], "Permission being assigned already exists on the object.");

    let mut unknown_role = body.clone();
    unknown_role["appRoleId"] = json!(uuid::Uuid::new_v4().to_string());
    let (status, error) = graph.post(&path, &unknown_role).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");
    assert!(error["error"]["message"].as_str().unwrap().contains("not found on application"));

    let mut unknown_principal = body.clone();
    unknown_principal["principalId"] = json!(uuid::Uuid::new_v4().to_string());
    let (status, error) = graph.post(&path, &unknown_principal).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");
    assert_eq!(error["error"]["message"], "Not a valid reference update.");

    let (status, list) = graph.get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    let (status, list) =
        graph.get(&format!("/servicePrincipals/{}/appRoleAssignments", app.service_principal_id)).await;
    assert_eq!(status, 200);
    assert_eq!(list["value"][0]["id"], id);

    // The grant shows in the next token.
    assert_eq!(claims(&token_for(&sim, &app, cert(0), EXO_SCOPE).await)["roles"], json!(["Exchange.ManageAsApp"]));

    let (status, _) = graph.delete(&format!("{path}/{id}")).await;
    assert_eq!(status, 204);
    let (status, error) = graph.delete(&format!("{path}/{id}")).await;
    assert_graph_error(status, &error, 404, "Request_ResourceNotFound");
    assert!(sim.state().await.primary().app_role_assignments.is_empty());

    // Through the principal side too; a delegated token without AppRoleAssignment.ReadWrite.All is refused.
    let (status, grant) =
        graph.post(&format!("/servicePrincipals/{}/appRoleAssignments", app.service_principal_id), &body).await;
    assert_eq!(status, 201, "{grant}");
    sim.seed_grant(&app, "00000003-0000-0000-c000-000000000000", "Application.ReadWrite.All").await;
    let weak = Graph { sim: &sim, token: token_for(&sim, &app, cert(0), GRAPH_SCOPE).await };
    let (status, error) = weak.post(&path, &body).await;
    assert_graph_error(status, &error, 403, "Authorization_RequestDenied");
}

#[tokio::test]
async fn directory_role_assignments() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    let app = sim.seed_app("client", &[der(cert(0))]).await;
    let body = json!({
        "@odata.type": "#microsoft.graph.unifiedRoleAssignment",
        "roleDefinitionId": EXCHANGE_ADMIN,
        "principalId": app.service_principal_id,
        "directoryScopeId": "/"
    });
    let (status, created) = graph.post("/roleManagement/directory/roleAssignments", &body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["roleDefinitionId"], EXCHANGE_ADMIN);
    assert_eq!(created["principalId"], app.service_principal_id);
    assert_eq!(created["directoryScopeId"], "/");
    let id = created["id"].as_str().unwrap().to_string();

    let (status, error) = graph.post("/roleManagement/directory/roleAssignments", &body).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");

    let filter =
        format!("/roleManagement/directory/roleAssignments?$filter=principalId eq '{}'", app.service_principal_id);
    let (status, list) = graph.get(&filter).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    assert_eq!(list["value"][0]["id"], id);
    let (_, none) = graph
        .get(&format!("/roleManagement/directory/roleAssignments?$filter=principalId eq '{}'", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(none["value"], json!([]));
    assert_eq!(claims(&token_for(&sim, &app, cert(0), EXO_SCOPE).await)["wids"], json!([EXCHANGE_ADMIN]));

    let mut unknown_role = body.clone();
    unknown_role["roleDefinitionId"] = json!(uuid::Uuid::new_v4().to_string());
    let (status, error) = graph.post("/roleManagement/directory/roleAssignments", &unknown_role).await;
    assert_graph_error(status, &error, 404, "Request_ResourceNotFound");
    let mut unknown_principal = body.clone();
    unknown_principal["principalId"] = json!(uuid::Uuid::new_v4().to_string());
    let (status, error) = graph.post("/roleManagement/directory/roleAssignments", &unknown_principal).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");
    let mut no_scope = body.clone();
    no_scope.as_object_mut().unwrap().remove("directoryScopeId");
    let (status, error) = graph.post("/roleManagement/directory/roleAssignments", &no_scope).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");

    let (status, _) = graph.delete(&format!("/roleManagement/directory/roleAssignments/{id}")).await;
    assert_eq!(status, 204);
    let (status, error) = graph.delete(&format!("/roleManagement/directory/roleAssignments/{id}")).await;
    assert_graph_error(status, &error, 404, "Request_ResourceNotFound");

    let (status, defs) = graph.get("/roleManagement/directory/roleDefinitions").await;
    assert_eq!(status, 200);
    assert_eq!(defs["value"].as_array().unwrap().len(), 11);
    let (status, def) = graph.get(&format!("/roleManagement/directory/roleDefinitions/{EXCHANGE_ADMIN}")).await;
    assert_eq!(status, 200);
    assert_eq!(def["displayName"], "Exchange Administrator");

    // App-only token without RoleManagement.ReadWrite.Directory.
    sim.seed_grant(&app, "00000003-0000-0000-c000-000000000000", "Application.ReadWrite.All").await;
    let weak = Graph { sim: &sim, token: token_for(&sim, &app, cert(0), GRAPH_SCOPE).await };
    let (status, error) = weak.post("/roleManagement/directory/roleAssignments", &body).await;
    assert_graph_error(status, &error, 403, "Authorization_RequestDenied");
}

#[tokio::test]
async fn duplicate_role_assignment_status_is_a_knob() {
    let sim = SimTenant::builder().duplicate_role_assignment(DuplicateRoleAssignment::Conflict).start().await;
    let graph = admin(&sim);
    let app = sim.seed_app("client", &[der(cert(0))]).await;
    let body =
        json!({"roleDefinitionId": EXCHANGE_ADMIN, "principalId": app.service_principal_id, "directoryScopeId": "/"});
    let (status, _) = graph.post("/roleManagement/directory/roleAssignments", &body).await;
    assert_eq!(status, 201);
    let (status, error) = graph.post("/roleManagement/directory/roleAssignments", &body).await;
    assert_graph_error(status, &error, 409, "Request_MultipleObjectsWithSameKeyValue");
}

#[tokio::test]
async fn multi_tenant_app_is_consented_in_another_tenant() {
    let sim = SimTenant::builder().tenant_name("provider").tenant("customer").start().await;
    let provider = admin(&sim);
    let customer_info = sim.tenant("customer").unwrap().clone();
    let customer = Graph { sim: &sim, token: sim.admin_token_for("customer").unwrap() };

    let (_, single) = create_app(&provider, json!({"displayName": "single", "signInAudience": "AzureADMyOrg"})).await;
    let (_, multi) = create_app(
        &provider,
        json!({"displayName": "multi", "signInAudience": "AzureADMultipleOrgs", "keyCredentials": [key_credential(cert(0))]}),
    )
    .await;
    let (status, error) = customer.post("/servicePrincipals", &json!({"appId": single})).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");
    assert_eq!(error["error"]["details"][0]["code"], "NoBackingApplicationObject");

    // Before consent, the customer tenant does not know the app.
    let assertion = Assertion::new(&sim, cert(0), &multi, &customer_info.id).sign(cert(0));
    let (status, body) = request_token(&sim, &customer_info.id, &multi, &assertion, EXO_SCOPE).await;
    assert_aadsts(status, &body, 400, "unauthorized_client", 700016);

    let (status, sp) = customer.post("/servicePrincipals", &json!({"appId": multi})).await;
    assert_eq!(status, 201, "{sp}");
    assert_eq!(sp["appOwnerOrganizationId"], sim.tenant_id());
    let exo = exo_sp_id(&customer).await;
    assert_ne!(exo, exo_sp_id(&provider).await, "each tenant has its own Exchange service principal");
    let grant = json!({"principalId": sp["id"], "resourceId": exo, "appRoleId": MANAGE_AS_APP});
    let (status, body) = customer.post(&format!("/servicePrincipals/{exo}/appRoleAssignedTo"), &grant).await;
    assert_eq!(status, 201, "{body}");

    let assertion = Assertion::new(&sim, cert(0), &multi, &customer_info.id).sign(cert(0));
    let (status, body) = request_token(&sim, &customer_info.id, &multi, &assertion, EXO_SCOPE).await;
    assert_eq!(status, 200, "{body}");
    let claims = claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["tid"], customer_info.id);
    assert_eq!(claims["roles"], json!(["Exchange.ManageAsApp"]));

    let state = sim.state().await;
    assert_eq!(state.tenant("provider").unwrap().applications.len(), 2);
    assert!(state.tenant("customer").unwrap().applications.is_empty());
    assert_eq!(state.tenant("customer").unwrap().custom_service_principals().count(), 1);
    assert_eq!(state.tenant("customer").unwrap().app_role_assignments.len(), 1);
    // The provider's admin sees only the provider's objects.
    let (_, list) = provider.get("/servicePrincipals").await;
    assert_eq!(list["value"].as_array().unwrap().len(), 2, "only the two Microsoft service principals");
}
