//! The service's failures: cmdlet errors, permission refusals, throttling, server errors, transport.

use cba_exo::{CmdletErrorDetail, Error, Parameters, RetryPolicy};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Tokens, client, client_with};

/// Serve `response` to every request, run Get-Mailbox, return the error and how many requests were made.
async fn fail_with(response: ResponseTemplate) -> (Error, usize, std::sync::Arc<Tokens>) {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(response).mount(&server).await;
    let tokens = Tokens::new();
    let (exo, _) = client_with(&server, tokens.clone(), |b| {
        b.retry_policy(RetryPolicy { max_attempts: 3, ..RetryPolicy::fast() })
    });
    let err = exo.collect_all("Get-Mailbox", &Parameters::new().with("Identity", "x")).await.unwrap_err();
    (err, server.received_requests().await.unwrap().len(), tokens)
}

#[tokio::test]
async fn a_cmdlet_error_keeps_the_service_details() {
    let body = json!({"error": {
        "code": "NotFound",
        "message": "Error executing cmdlet",
        "details": [{"code": "Context", "target": "", "message": "Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed because object 'x' couldn't be found on 'AM0PR01A001DC01.EURPRD01.PROD.OUTLOOK.COM'."}],
        "innererror": {"message": "Error executing cmdlet", "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException"}
    }});
    let (err, requests, _) = fail_with(ResponseTemplate::new(404).set_body_json(body)).await;
    assert_eq!(requests, 1, "a 404 is not retried");
    match &err {
        Error::Cmdlet { cmdlet, status, code, message, details, client_request_id } => {
            assert_eq!((cmdlet.as_str(), *status, code.as_str()), ("Get-Mailbox", 404, "NotFound"));
            assert_eq!(message, "Error executing cmdlet");
            assert_eq!(
                details,
                &[CmdletErrorDetail {
                    code: "Ex6F9304".into(),
                    exception_type: "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException".into(),
                    text: "The operation couldn't be performed because object 'x' couldn't be found on 'AM0PR01A001DC01.EURPRD01.PROD.OUTLOOK.COM'.".into(),
                }]
            );
            assert_eq!(client_request_id.len(), 36);
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("object 'x' couldn't be found") && text.contains("ManagementObjectNotFoundException"),
        "{text}"
    );
    assert_eq!(err.status(), Some(404));
}

#[tokio::test]
async fn not_allowed_says_what_is_missing_after_one_try_with_a_new_token() {
    let body =
        json!({"error": {"code": "Unauthorized", "message": "User is not allowed to call Get-Mailbox", "details": []}});
    let (err, requests, tokens) = fail_with(ResponseTemplate::new(401).set_body_json(body)).await;
    assert_eq!(requests, 2, "a token issued before the permission changed is replaced once, not in a loop");
    assert_eq!(tokens.invalidated(), 1);
    match &err {
        Error::NotAllowed { cmdlet, message, hint } => {
            assert_eq!(cmdlet, "Get-Mailbox");
            assert_eq!(message, "User is not allowed to call Get-Mailbox");
            assert!(hint.contains("Exchange.ManageAsApp") && hint.contains("Entra role"), "{hint}");
            assert!(!hint.contains("cba "), "the library names no CLI command: {hint}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_permission());
    assert!(err.to_string().contains("role assigned minutes ago"), "{err}");
}

#[tokio::test]
async fn a_403_refusal_is_retried_once_with_a_new_token_too() {
    let body = json!({"error": {"code": "Forbidden", "message": "Access denied", "details": []}});
    let (err, requests, tokens) = fail_with(ResponseTemplate::new(403).set_body_json(body)).await;
    assert_eq!((requests, tokens.invalidated()), (2, 1));
    assert!(matches!(&err, Error::Cmdlet { status: 403, .. }), "{err:?}");
}

#[tokio::test]
async fn an_unsupported_role_is_explained() {
    let body = json!({"error": {"code": "Unauthorized", "message": "The role assigned to application 631a96bc-a705-4eda-9f99-fdaf9f54f6a2 isn't supported in this scenario. Please check online documentation for assigning correct Directory Roles to Azure AD Application for EXO App-Only Authentication."}});
    let (err, requests, _) = fail_with(ResponseTemplate::new(401).set_body_json(body)).await;
    assert_eq!(requests, 2, "once more with a new token");
    match &err {
        Error::UnsupportedRole { app_id, hint, .. } => {
            assert_eq!(app_id.as_deref(), Some("631a96bc-a705-4eda-9f99-fdaf9f54f6a2"));
            assert!(hint.contains("Exchange Administrator"));
        }
        other => panic!("{other:?}"),
    }
}

/// Serve `response`, expect `requests` requests and an error `is_expected` accepts.
async fn check(response: ResponseTemplate, requests: usize, is_expected: fn(&Error) -> bool) {
    let (err, made, _) = fail_with(response).await;
    assert_eq!(made, requests, "{err:?}");
    assert!(is_expected(&err), "{err:?}");
}

#[tokio::test]
async fn failures_without_an_error_body() {
    check(
        ResponseTemplate::new(400).set_body_string("<html>Bad Request</html>"),
        1,
        |e| matches!(e, Error::Status { status: 400, body, .. } if body.contains("Bad Request")),
    )
    .await;
    check(ResponseTemplate::new(503), 3, |e| matches!(e, Error::Status { status: 503, .. }) && e.is_remote()).await;
    check(ResponseTemplate::new(501), 1, |e| matches!(e, Error::Status { status: 501, .. })).await;
    check(
        ResponseTemplate::new(200).set_body_string("not json"),
        1,
        |e| matches!(e, Error::Protocol { message, .. } if message.contains("not json")),
    )
    .await;
}

#[tokio::test]
async fn throttling_then_success() {
    check_retried_then_ok(ResponseTemplate::new(429).insert_header("Retry-After", "0"), "retry 1: HTTP 429").await;
}

#[tokio::test]
async fn server_error_then_success() {
    check_retried_then_ok(ResponseTemplate::new(503), "retry 1: HTTP 503").await;
    check_retried_then_ok(
        ResponseTemplate::new(500).set_body_json(json!({"error": {"code": "InternalServerError", "message": "busy"}})),
        "retry 1: HTTP 500",
    )
    .await;
}

async fn check_retried_then_ok(first: ResponseTemplate, event: &str) {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(first).up_to_n_times(1).with_priority(1).mount(&server).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [{"Name": "a"}]})))
        .mount(&server)
        .await;
    let tokens = Tokens::new();
    let (exo, events) = client(&server, tokens.clone());
    assert_eq!(exo.collect_all("Get-Mailbox", &Parameters::new()).await.unwrap(), vec![json!({"Name": "a"})]);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(tokens.asked(), 2, "the token is asked for before every request");
    let ids: Vec<_> = requests.iter().map(|r| r.headers.get("client-request-id").unwrap().clone()).collect();
    assert_ne!(ids[0], ids[1], "each attempt has its own client-request-id");
    assert_eq!(*events.lock().unwrap(), [event, "page 1: 1"]);
}

#[tokio::test]
async fn throttling_that_outlasts_the_retries() {
    let (err, requests, _) = fail_with(ResponseTemplate::new(429).insert_header("Retry-After", "0")).await;
    assert_eq!(requests, 3);
    assert!(matches!(err, Error::Throttled { attempts: 3, .. }), "{err:?}");
    assert!(err.is_remote());
}

#[tokio::test]
async fn a_failing_token_source_is_a_token_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&server).await;
    let (exo, _) = client(&server, Tokens::failing());
    let err = exo.collect_all("Get-Mailbox", &Parameters::new()).await.unwrap_err();
    assert!(matches!(err, Error::Token { .. }), "{err:?}");
    let chain = std::error::Error::source(&err).map(|s| s.to_string()).unwrap_or_default();
    assert!(chain.contains("AADSTS700027"), "{chain}");
}

#[tokio::test]
async fn an_unreachable_host_is_a_transport_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let exo = cba_exo::ExoClient::builder()
        .base_url(format!("http://127.0.0.1:{port}"))
        .tenant_id(crate::support::TENANT)
        .token_source(Tokens::new())
        .retry_policy(RetryPolicy { max_attempts: 2, ..RetryPolicy::fast() })
        .build()
        .unwrap();
    let err = exo.collect_all("Get-Mailbox", &Parameters::new()).await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(err.is_remote());
}
