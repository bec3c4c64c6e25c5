//! Exact requests and answers against wiremock: bodies, headers, query quoting, retry classification.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cba_graph::provision::{self, AppRef, SetupRequest, StatusRequest, Step};
use cba_graph::{Created, Deleted, Error, Replication, RetryNotice, RetryPolicy};
use serde_json::{Value, json};
use wiremock::matchers::{any, body_json, header, method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

use crate::support::{CountingToken, THUMBPRINT, THUMBPRINT_B64, client, client_with, key_credential};

const EXO_APP: &str = "00000002-0000-0ff1-ce00-000000000000";
const MANAGE_AS_APP: &str = "dc50a0fb-09a3-484d-be87-e023b12c6440";
const EXO_SP: &str = "11111111-1111-1111-1111-111111111111";
const APP_OBJ: &str = "22222222-2222-2222-2222-222222222222";
const APP_ID: &str = "33333333-3333-3333-3333-333333333333";
const SP: &str = "44444444-4444-4444-4444-444444444444";
const EXCHANGE_ADMIN: &str = "29232cdf-9323-42fd-ade2-1d097af3e4de";

/// Every route checks the bearer token; `client-request-id` is checked on every request afterwards.
fn graph(verb: &str, p: &str) -> MockBuilder {
    Mock::given(method(verb)).and(path(format!("/v1.0{p}"))).and(header("authorization", "Bearer t"))
}

/// Fail loudly on any request no route expects.
async fn strict(server: &MockServer) {
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(418).set_body_json(json!({"error":{"code":"Unexpected","message":"no route"}})),
        )
        .with_priority(200)
        .expect(0)
        .named("unexpected request")
        .mount(server)
        .await;
}

fn error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).insert_header("request-id", "rid-1").set_body_json(json!({
        "error": {"code": code, "message": message, "innerError": {"date": "2026-01-01T00:00:00", "request-id": "rid-1", "client-request-id": "x"}}
    }))
}

fn exo_sp() -> Value {
    json!({"id": EXO_SP, "appId": EXO_APP, "displayName": "Office 365 Exchange Online",
           "appRoles": [{"id": MANAGE_AS_APP, "value": "Exchange.ManageAsApp", "displayName": "Manage Exchange As Application"}]})
}

fn app(keys: Value) -> Value {
    json!({"id": APP_OBJ, "appId": APP_ID, "displayName": "O'Brien app", "signInAudience": "AzureADMyOrg", "keyCredentials": keys})
}

fn registered_key(thumbprint_b64: &str, key: Value) -> Value {
    json!({"customKeyIdentifier": thumbprint_b64, "displayName": "CN=old", "endDateTime": "2027-01-01T00:00:00Z",
           "key": key, "keyId": "55555555-5555-5555-5555-555555555555", "startDateTime": "2026-01-01T00:00:00Z",
           "type": "AsymmetricX509Cert", "usage": "Verify"})
}

async fn mount_lookups(server: &MockServer, apps: Value) {
    graph("GET", &format!("/servicePrincipals(appId='{EXO_APP}')"))
        .and(query_param("$select", "id,appId,displayName,appRoles"))
        .respond_with(ResponseTemplate::new(200).set_body_json(exo_sp()))
        .expect(1)
        .named("exchange sp")
        .mount(server)
        .await;
    graph("GET", "/applications")
        .and(query_param("$filter", "displayName eq 'O''Brien app'"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": apps})))
        .expect(1)
        .named("app by name")
        .mount(server)
        .await;
}

fn request() -> SetupRequest {
    SetupRequest::new("O'Brien app", key_credential(), THUMBPRINT)
}

async fn client_request_ids(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            r.headers
                .get("client-request-id")
                .expect("client-request-id on every request")
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn setup_on_a_fresh_tenant_sends_six_exact_requests() {
    let server = MockServer::start().await;
    strict(&server).await;
    mount_lookups(&server, json!([])).await;
    let key = serde_json::to_value(key_credential()).unwrap();
    graph("POST", "/applications")
        .and(body_json(json!({
            "displayName": "O'Brien app",
            "signInAudience": "AzureADMyOrg",
            "requiredResourceAccess": [{"resourceAppId": EXO_APP, "resourceAccess": [{"id": MANAGE_AS_APP, "type": "Role"}]}],
            "keyCredentials": [key],
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(app(json!([registered_key(THUMBPRINT_B64, Value::Null)]))))
        .expect(1)
        .mount(&server)
        .await;
    graph("PATCH", &format!("/servicePrincipals(appId='{APP_ID}')"))
        .and(header("prefer", "create-if-missing"))
        .and(body_json(json!({})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": SP, "appId": APP_ID})))
        .expect(1)
        .mount(&server)
        .await;
    graph("POST", &format!("/servicePrincipals/{EXO_SP}/appRoleAssignedTo"))
        .and(body_json(json!({"principalId": SP, "resourceId": EXO_SP, "appRoleId": MANAGE_AS_APP})))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({"id": "opaque-grant-id", "principalId": SP, "resourceId": EXO_SP, "appRoleId": MANAGE_AS_APP}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    graph("POST", "/roleManagement/directory/roleAssignments")
        .and(body_json(json!({
            "@odata.type": "#microsoft.graph.unifiedRoleAssignment",
            "roleDefinitionId": EXCHANGE_ADMIN,
            "principalId": SP,
            "directoryScopeId": "/",
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({"id": "role-assignment-1", "roleDefinitionId": EXCHANGE_ADMIN, "principalId": SP, "directoryScopeId": "/"}),
        ))
        .expect(1)
        .mount(&server)
        .await;

    let client = client(&server.uri(), CountingToken::new("t"));
    let events = Mutex::new(Vec::new());
    let outcome = provision::apply(&client, &request(), |e: &provision::Event| events.lock().unwrap().push(e.clone()))
        .await
        .expect("setup");

    assert_eq!(outcome.app_object_id, APP_OBJ);
    assert_eq!(outcome.app_id, APP_ID);
    assert_eq!(outcome.sp_id, SP);
    assert_eq!(outcome.exchange_sp_id, EXO_SP);
    assert_eq!(outcome.grant_id, "opaque-grant-id");
    assert_eq!(outcome.certificate_key_id, "55555555-5555-5555-5555-555555555555", "the keyId Graph answered");
    assert_eq!(outcome.role_assignments.len(), 1);
    assert_eq!(outcome.role_assignments[0].assignment_id, "role-assignment-1");
    assert_eq!(outcome.role_assignments[0].role.name, "Exchange Administrator");
    assert_eq!(
        outcome.created,
        [
            Step::Application,
            Step::Certificate,
            Step::ServicePrincipal,
            Step::Grant,
            Step::RoleAssignment { role: "Exchange Administrator".into() }
        ]
    );
    assert!(outcome.unchanged.is_empty());
    assert_eq!(outcome.requests, 6);
    assert_eq!(outcome.round_trip_depth, 4);
    assert_eq!(client.requests_sent(), 6);

    let ids = client_request_ids(&server).await;
    assert_eq!(ids.len(), 6);
    for id in &ids {
        uuid::Uuid::parse_str(id).expect("client-request-id is a GUID");
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 6, "a fresh client-request-id per request");
    let finished: Vec<_> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            provision::Event::Finished { step, change, .. } => Some((step.clone(), *change)),
            _ => None,
        })
        .collect();
    assert!(finished.contains(&(Step::Grant, provision::Change::Created)), "{finished:?}");
}

#[tokio::test]
async fn rerun_on_a_complete_setup_only_reads() {
    let server = MockServer::start().await;
    strict(&server).await;
    mount_lookups(&server, json!([app(json!([registered_key(THUMBPRINT_B64, Value::Null)]))])).await;
    graph("GET", &format!("/servicePrincipals(appId='{APP_ID}')"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": SP, "appId": APP_ID})))
        .expect(1)
        .mount(&server)
        .await;
    graph("GET", &format!("/servicePrincipals/{SP}/appRoleAssignments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [
            {"id": "other", "principalId": SP, "resourceId": "99999999-9999-9999-9999-999999999999", "appRoleId": MANAGE_AS_APP},
            {"id": "g1", "principalId": SP, "resourceId": EXO_SP, "appRoleId": MANAGE_AS_APP}
        ]})))
        .expect(1)
        .mount(&server)
        .await;
    graph("GET", "/roleManagement/directory/roleAssignments")
        .and(query_param("$filter", format!("principalId eq '{SP}'")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [
            {"id": "r1", "roleDefinitionId": EXCHANGE_ADMIN.to_uppercase(), "principalId": SP, "directoryScopeId": "/"}
        ]})))
        .expect(1)
        .mount(&server)
        .await;

    let client = client(&server.uri(), CountingToken::new("t"));
    let outcome = provision::apply(&client, &request(), |_: &provision::Event| {}).await.expect("rerun");
    assert!(outcome.changed_nothing(), "{outcome:?}");
    assert_eq!(outcome.grant_id, "g1", "the grant on the Exchange principal, not another resource");
    assert_eq!(outcome.role_assignments[0].assignment_id, "r1");
    assert_eq!(outcome.requests, 5);
    assert_eq!(outcome.round_trip_depth, 3);
    assert_eq!(outcome.unchanged.len(), 5);
}

#[tokio::test]
async fn adopting_an_app_without_the_certificate_patches_the_full_list() {
    let server = MockServer::start().await;
    strict(&server).await;
    let other_b64 = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    mount_lookups(&server, json!([app(json!([registered_key(other_b64, Value::Null)]))])).await;
    let old = registered_key(other_b64, json!("T0xEQ0VSVA=="));
    graph("GET", &format!("/applications/{APP_OBJ}"))
        .and(query_param("$select", "keyCredentials"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keyCredentials": [old.clone()]})))
        .expect(1)
        .mount(&server)
        .await;
    graph("PATCH", &format!("/applications/{APP_OBJ}"))
        .and(body_json(json!({"keyCredentials": [old, serde_json::to_value(key_credential()).unwrap()]})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    // No principal yet: GET 404, then upsert creates it, so nothing needs listing.
    graph("GET", &format!("/servicePrincipals(appId='{APP_ID}')"))
        .respond_with(error(404, "Request_ResourceNotFound", "Resource does not exist"))
        .expect(1)
        .mount(&server)
        .await;
    graph("PATCH", &format!("/servicePrincipals(appId='{APP_ID}')"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": SP, "appId": APP_ID})))
        .expect(1)
        .mount(&server)
        .await;
    graph("POST", &format!("/servicePrincipals/{EXO_SP}/appRoleAssignedTo"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": "g", "principalId": SP, "resourceId": EXO_SP, "appRoleId": MANAGE_AS_APP})),
        )
        .expect(1)
        .mount(&server)
        .await;
    graph("POST", "/roleManagement/directory/roleAssignments")
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": "r", "roleDefinitionId": EXCHANGE_ADMIN, "principalId": SP})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let client = client(&server.uri(), CountingToken::new("t"));
    let outcome = provision::apply(&client, &request(), |_: &provision::Event| {}).await.expect("adopt");
    assert_eq!(outcome.unchanged, [Step::Application]);
    assert_eq!(outcome.created.len(), 4);
    assert_eq!(outcome.requests, 8);
    // look-ups, then max(GET keys → PATCH, GET sp → upsert → grant ∥ role) = 1 + 3.
    assert_eq!(outcome.round_trip_depth, 4);
}

#[tokio::test]
async fn two_apps_with_the_name_are_refused_with_their_app_ids() {
    let server = MockServer::start().await;
    strict(&server).await;
    let mut second = app(json!([]));
    second["appId"] = json!("66666666-6666-6666-6666-666666666666");
    mount_lookups(&server, json!([app(json!([])), second])).await;
    let client = client(&server.uri(), CountingToken::new("t"));
    let err = provision::apply(&client, &request(), |_: &provision::Event| {}).await.unwrap_err();
    match &err {
        Error::AmbiguousApplication { display_name, app_ids } => {
            assert_eq!(display_name, "O'Brien app");
            assert_eq!(app_ids, &[APP_ID.to_string(), "66666666-6666-6666-6666-666666666666".to_string()]);
        }
        other => panic!("expected AmbiguousApplication, got {other:?}"),
    }
    assert!(err.to_string().contains("66666666-6666-6666-6666-666666666666"));
}

#[tokio::test]
async fn throttling_honours_retry_after_and_reports_each_wait() {
    let server = MockServer::start().await;
    strict(&server).await;
    graph("GET", &format!("/applications(appId='{APP_ID}')"))
        .respond_with(error(429, "TooManyRequests", "Too many requests").insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    graph("GET", &format!("/applications(appId='{APP_ID}')"))
        .respond_with(ResponseTemplate::new(200).set_body_json(app(json!([]))))
        .expect(1)
        .mount(&server)
        .await;
    let notices: Arc<Mutex<Vec<RetryNotice>>> = Arc::default();
    let seen = notices.clone();
    let policy = RetryPolicy { max_backoff: Duration::from_secs(5), ..RetryPolicy::fast() };
    let client = cba_graph::GraphClient::builder()
        .base_url(server.uri())
        .token_source(CountingToken::new("t"))
        .retry_policy(policy)
        .on_retry(Arc::new(move |n: &RetryNotice| seen.lock().unwrap().push(n.clone())))
        .build()
        .unwrap();
    let found = client.get_application_by_app_id(APP_ID, Replication::NotExpected).await.expect("after the 429");
    assert_eq!(found.id, APP_OBJ);
    let notices = notices.lock().unwrap();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].wait, Duration::from_secs(1), "Retry-After, not the 10 ms backoff");
    assert_eq!(notices[0].reason, "429 throttled");
    assert_eq!(client.requests_sent(), 2);
}

#[tokio::test]
async fn a_404_is_retried_only_where_replication_is_expected() {
    let server = MockServer::start().await;
    strict(&server).await;
    graph("GET", &format!("/applications/{APP_OBJ}"))
        .respond_with(error(404, "Request_ResourceNotFound", "Resource does not exist"))
        .up_to_n_times(3)
        .mount(&server)
        .await;
    graph("GET", &format!("/applications/{APP_OBJ}"))
        .respond_with(ResponseTemplate::new(200).set_body_json(app(json!([]))))
        .mount(&server)
        .await;
    let client = client(&server.uri(), CountingToken::new("t"));
    let err = client.get_application(APP_OBJ, Replication::NotExpected).await.unwrap_err();
    assert!(err.is_not_found());
    assert!(matches!(err, Error::Api { status: 404, .. }), "no retries: {err:?}");
    assert_eq!(client.requests_sent(), 1);
    assert_eq!(err.request_id(), Some("rid-1"));

    let app = client.get_application(APP_OBJ, Replication::Expected).await.expect("waited out");
    assert_eq!(app.app_id, APP_ID);
    assert_eq!(client.requests_sent(), 1 + 3, "two more 404s, then the 200");
}

#[tokio::test]
async fn no_backing_application_object_on_the_upsert_is_waited_out() {
    let server = MockServer::start().await;
    strict(&server).await;
    let no_backing = ResponseTemplate::new(400).set_body_json(json!({"error": {
        "code": "Request_BadRequest",
        "message": format!("The appId '{APP_ID}' of the service principal does not reference a valid application object."),
        "details": [{"code": "NoBackingApplicationObject", "target": "appId"}]
    }}));
    graph("PATCH", &format!("/servicePrincipals(appId='{APP_ID}')"))
        .and(header("prefer", "create-if-missing"))
        .respond_with(no_backing)
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    graph("PATCH", &format!("/servicePrincipals(appId='{APP_ID}')"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server.uri(), CountingToken::new("t"));
    let upserted = client.upsert_service_principal(APP_ID, Replication::Expected).await.unwrap();
    assert_eq!(upserted, Created::AlreadyExisted, "204 = it existed");
}

#[tokio::test]
async fn grant_waits_out_reference_errors_and_treats_a_duplicate_as_granted() {
    let server = MockServer::start().await;
    strict(&server).await;
    graph("POST", &format!("/servicePrincipals/{EXO_SP}/appRoleAssignedTo"))
        .respond_with(error(400, "Request_BadRequest", "Not a valid reference update."))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    graph("POST", &format!("/servicePrincipals/{EXO_SP}/appRoleAssignedTo"))
        .respond_with(error(400, "Request_BadRequest", "Permission being assigned already exists on the object."))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server.uri(), CountingToken::new("t"));
    let grant = cba_graph::model::NewAppRoleAssignment {
        principal_id: SP.into(),
        resource_id: EXO_SP.into(),
        app_role_id: MANAGE_AS_APP.into(),
    };
    assert_eq!(client.grant_app_role(&grant, Replication::Expected).await.unwrap(), Created::AlreadyExisted);

    // Without the flag the reference error is an answer.
    let server = MockServer::start().await;
    graph("POST", &format!("/servicePrincipals/{EXO_SP}/appRoleAssignedTo"))
        .respond_with(error(400, "Request_BadRequest", "Not a valid reference update."))
        .expect(1)
        .mount(&server)
        .await;
    let client = crate::support::client(&server.uri(), CountingToken::new("t"));
    let err = client.grant_app_role(&grant, Replication::NotExpected).await.unwrap_err();
    assert_eq!(err.api().map(|a| a.0), Some(400));
}

#[tokio::test]
async fn a_duplicate_role_assignment_409_is_already_assigned() {
    let server = MockServer::start().await;
    strict(&server).await;
    graph("POST", "/roleManagement/directory/roleAssignments")
        .respond_with(error(
            409,
            "Conflict",
            "A conflicting object with one or more of the specified property values is present in the directory.",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server.uri(), CountingToken::new("t"));
    let assigned = client.assign_directory_role(SP, EXCHANGE_ADMIN, Replication::Expected).await.unwrap();
    assert_eq!(assigned, Created::AlreadyExisted);
}

#[tokio::test]
async fn create_application_after_a_5xx_looks_before_it_posts_again() {
    let server = MockServer::start().await;
    strict(&server).await;
    graph("GET", &format!("/servicePrincipals(appId='{EXO_APP}')"))
        .respond_with(ResponseTemplate::new(200).set_body_json(exo_sp()))
        .mount(&server)
        .await;
    // First look-up: nothing. After the ambiguous 503, the app the POST did create is there.
    graph("GET", "/applications")
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": []})))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    graph("GET", "/applications")
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"value": [app(json!([registered_key(THUMBPRINT_B64, Value::Null)]))]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    graph("POST", "/applications")
        .respond_with(error(503, "ServiceUnavailable", "try later"))
        .expect(1)
        .named("exactly one POST /applications")
        .mount(&server)
        .await;
    graph("GET", &format!("/servicePrincipals(appId='{APP_ID}')"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": SP, "appId": APP_ID})))
        .mount(&server)
        .await;
    graph("GET", &format!("/servicePrincipals/{SP}/appRoleAssignments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"value": [{"id": "g1", "principalId": SP, "resourceId": EXO_SP, "appRoleId": MANAGE_AS_APP}]}),
        ))
        .mount(&server)
        .await;
    graph("GET", "/roleManagement/directory/roleAssignments")
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"value": [{"id": "r1", "roleDefinitionId": EXCHANGE_ADMIN, "principalId": SP}]})),
        )
        .mount(&server)
        .await;
    let client = client(&server.uri(), CountingToken::new("t"));
    let outcome = provision::apply(&client, &request(), |_: &provision::Event| {}).await.expect("recovered");
    assert_eq!(outcome.app_object_id, APP_OBJ);
    assert_eq!(outcome.created, [Step::Application], "ours, made by the POST that answered 503");
}

#[tokio::test]
async fn permission_errors_name_the_missing_entra_role() {
    let server = MockServer::start().await;
    strict(&server).await;
    mount_lookups(&server, json!([])).await;
    graph("POST", "/applications")
        .respond_with(error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server.uri(), CountingToken::new("t"));
    let err = provision::apply(&client, &request(), |_: &provision::Event| {}).await.unwrap_err();
    assert!(err.is_permission_denied(), "{err:?}");
    assert!(matches!(&err, Error::Step { step: Step::Application, .. }), "names the step: {err}");
    assert!(err.required_role_hint().unwrap().contains("Application Administrator"));

    let server = MockServer::start().await;
    graph("POST", "/roleManagement/directory/roleAssignments")
        .respond_with(error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."))
        .mount(&server)
        .await;
    let client = crate::support::client(&server.uri(), CountingToken::new("t"));
    let err = client.assign_directory_role(SP, EXCHANGE_ADMIN, Replication::Expected).await.unwrap_err();
    assert_eq!(err.required_role_hint(), Some("Privileged Role Administrator (or Global Administrator)"));
    assert_eq!(client.requests_sent(), 1, "403 is never retried");
}

#[tokio::test]
async fn persistent_5xx_ends_with_the_attempts_and_the_last_answer() {
    let server = MockServer::start().await;
    graph("GET", &format!("/servicePrincipals(appId='{APP_ID}')"))
        .respond_with(error(503, "ServiceUnavailable", "busy"))
        .expect(4)
        .mount(&server)
        .await;
    let client =
        client_with(&server.uri(), CountingToken::new("t"), RetryPolicy { max_attempts: 4, ..RetryPolicy::fast() });
    let err = client.get_service_principal_by_app_id(APP_ID, Replication::NotExpected).await.unwrap_err();
    match &err {
        Error::RetriesExhausted { attempts, last, .. } => {
            assert_eq!(*attempts, 4);
            assert!(matches!(**last, Error::Api { status: 503, .. }));
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    assert_eq!(err.api().map(|a| a.0), Some(503));
    assert_eq!(err.request_id(), Some("rid-1"));
}

#[tokio::test]
async fn a_401_invalidates_the_token_and_resends_once() {
    let server = MockServer::start().await;
    graph("GET", &format!("/applications/{APP_OBJ}"))
        .respond_with(error(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    graph("GET", &format!("/applications/{APP_OBJ}"))
        .respond_with(ResponseTemplate::new(200).set_body_json(app(json!([]))))
        .mount(&server)
        .await;
    let token = CountingToken::new("t");
    let client = client(&server.uri(), token.clone());
    client.get_application(APP_OBJ, Replication::NotExpected).await.unwrap();
    assert_eq!(token.invalidated.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(token.issued.load(std::sync::atomic::Ordering::SeqCst), 2, "a fresh token for the resend");
}

#[tokio::test]
async fn paging_follows_next_links_on_the_same_root_only() {
    let server = MockServer::start().await;
    let next = format!("{}/v1.0/applications?$filter=x&$skiptoken=p2", server.uri());
    graph("GET", "/applications")
        .and(query_param("$skiptoken", "p2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [app(json!([]))]})))
        .expect(1)
        .mount(&server)
        .await;
    graph("GET", "/applications")
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"value": [app(json!([]))], "@odata.nextLink": next})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server.uri(), CountingToken::new("t"));
    assert_eq!(client.find_applications_by_name("x").await.unwrap().len(), 2);

    let server = MockServer::start().await;
    graph("GET", "/applications")
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"value": [], "@odata.nextLink": "https://evil.example/v1.0/applications"})),
        )
        .mount(&server)
        .await;
    let client = crate::support::client(&server.uri(), CountingToken::new("t"));
    let err = client.find_applications_by_name("x").await.unwrap_err();
    assert!(matches!(err, Error::Invalid { what: "@odata.nextLink", .. }), "{err:?}");
}

#[tokio::test]
async fn deletes_treat_404_as_already_gone() {
    let server = MockServer::start().await;
    graph("DELETE", &format!("/applications/{APP_OBJ}"))
        .respond_with(error(404, "Request_ResourceNotFound", "gone"))
        .expect(1)
        .mount(&server)
        .await;
    graph("DELETE", "/roleManagement/directory/roleAssignments/abc_DEF-1")
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server.uri(), CountingToken::new("t"));
    assert_eq!(client.delete_application(APP_OBJ).await.unwrap(), Deleted::AlreadyGone);
    assert_eq!(client.delete_directory_role_assignment("abc_DEF-1").await.unwrap(), Deleted::Deleted);
    assert!(client.delete_directory_role_assignment("../applications").await.is_err(), "ids are one path segment");
}

#[tokio::test]
async fn status_reports_missing_links_as_data() {
    let server = MockServer::start().await;
    strict(&server).await;
    graph("GET", &format!("/servicePrincipals(appId='{EXO_APP}')"))
        .respond_with(ResponseTemplate::new(200).set_body_json(exo_sp()))
        .mount(&server)
        .await;
    graph("GET", &format!("/applications(appId='{APP_ID}')"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(app(json!([registered_key(THUMBPRINT_B64, Value::Null)]))),
        )
        .mount(&server)
        .await;
    graph("GET", &format!("/servicePrincipals(appId='{APP_ID}')"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": SP, "appId": APP_ID})))
        .mount(&server)
        .await;
    graph("GET", &format!("/servicePrincipals/{SP}/appRoleAssignments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"value": [{"id": "g1", "principalId": SP, "resourceId": EXO_SP, "appRoleId": MANAGE_AS_APP}]}),
        ))
        .mount(&server)
        .await;
    graph("GET", "/roleManagement/directory/roleAssignments")
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [{"id": "r9", "roleDefinitionId": "f2ef992c-3afb-46b9-b7cf-a126ee74c451", "principalId": SP}]})))
        .mount(&server)
        .await;
    let client = client(&server.uri(), CountingToken::new("t"));
    let mut req = StatusRequest::new(AppRef::AppId(APP_ID.into()));
    req.thumbprint_sha1 = Some(THUMBPRINT.to_lowercase());
    let report = provision::status(&client, &req).await.unwrap();
    assert_eq!(report.certificate_registered, Some(true));
    assert_eq!(report.certificates[0].thumbprint_sha1.as_deref(), Some(THUMBPRINT));
    assert_eq!(report.grant_id.as_deref(), Some("g1"));
    assert_eq!(report.roles[0].assignment_id, None, "Exchange Administrator is not assigned");
    assert_eq!(report.other_role_assignments[0].id, "r9");
    assert!(!report.is_complete());
    assert_eq!(report.requests, 5);
    assert_eq!(report.round_trip_depth, 3);
}

#[test]
fn base_urls_are_roots() {
    let build =
        |url: &str| cba_graph::GraphClient::builder().base_url(url).token_source(CountingToken::new("t")).build();
    assert!(build("https://graph.microsoft.com").is_ok());
    assert!(build("https://graph.microsoft.com/").is_ok());
    assert!(build("http://127.0.0.1:9").is_ok());
    assert!(build("https://graph.microsoft.com/v1.0").is_err());
    assert!(build("http://graph.microsoft.com").is_err());
    assert!(cba_graph::GraphClient::builder().build().is_err(), "a token source is required");
}

#[test]
fn role_names_are_case_insensitive_and_unknown_names_list_the_choices() {
    assert_eq!(cba_graph::wellknown::role_by_name("  exchange ADMINISTRATOR ").unwrap().template_id, EXCHANGE_ADMIN);
    let err = cba_graph::wellknown::role_by_name("Exchange Admin").unwrap_err();
    let text = err.to_string();
    for role in cba_graph::wellknown::ROLES {
        assert!(text.contains(role.name), "{text}");
    }
}
