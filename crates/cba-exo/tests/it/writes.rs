//! Which failures are retried: every transient one for a read (Get-, Test-), only those that show the cmdlet
//! did not run for a write (any other verb); a write that may have run is `Error::OutcomeUnknown`.

use std::time::Duration;

use cba_exo::{Error, Parameters, RetryPolicy};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Tokens, client_with};

/// Answer `first` once, then 200; run `cmdlet`; the result and the requests made.
async fn run(first: ResponseTemplate, cmdlet: &str) -> (Result<Vec<serde_json::Value>, Error>, usize) {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(first).up_to_n_times(1).with_priority(1).mount(&server).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [{"Name": "a"}]})))
        .mount(&server)
        .await;
    let (exo, _) = client_with(&server, Tokens::new(), |b| b);
    let result = exo.collect_all(cmdlet, &Parameters::new().with("Identity", "a")).await;
    (result, server.received_requests().await.unwrap().len())
}

#[tokio::test]
async fn reads_retry_every_transient_status_writes_only_refusals() {
    let busy = || {
        ResponseTemplate::new(500).set_body_json(json!({"error": {"code": "InternalServerError", "message": "busy"}}))
    };
    let cases: Vec<(&str, ResponseTemplate, &str, usize)> = vec![
        // (cmdlet, first answer, expected outcome, requests)
        ("Get-Mailbox", busy(), "ok", 2),
        ("Test-OAuthConnectivity", ResponseTemplate::new(502), "ok", 2),
        ("Get-Mailbox", ResponseTemplate::new(503), "ok", 2),
        ("Set-Mailbox", busy(), "unknown", 1),
        ("New-Mailbox", ResponseTemplate::new(502), "unknown", 1),
        ("Add-MailboxPermission", ResponseTemplate::new(504), "unknown", 1),
        ("Remove-RoleGroup", ResponseTemplate::new(503), "unknown", 1),
        ("Search-Mailbox", ResponseTemplate::new(408), "unknown", 1),
        ("Set-Mailbox", ResponseTemplate::new(503).insert_header("Retry-After", "0"), "ok", 2),
        ("Enable-Mailbox", ResponseTemplate::new(429).insert_header("Retry-After", "0"), "ok", 2),
        ("Set-Mailbox", ResponseTemplate::new(429), "ok", 2),
        // Not transient: the service said no, for reads and writes alike.
        ("Set-Mailbox", ResponseTemplate::new(501), "status", 1),
        ("Set-Mailbox", ResponseTemplate::new(400), "status", 1),
    ];
    for (cmdlet, first, expected, requests) in cases {
        let (result, made) = run(first, cmdlet).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(Error::OutcomeUnknown { .. }) => "unknown",
            Err(Error::Status { .. }) => "status",
            Err(other) => panic!("{cmdlet}: {other:?}"),
        };
        assert_eq!((outcome, made), (expected, requests), "{cmdlet}: {result:?}");
    }
}

#[tokio::test]
async fn an_unknown_outcome_keeps_what_the_service_said() {
    let (result, _) = run(
        ResponseTemplate::new(500).set_body_json(json!({"error": {
            "code": "InternalServerError",
            "message": "Error executing cmdlet",
            "details": [{"message": "Ex1|Microsoft.Exchange.Data.StoreTransientException|The store is busy."}]
        }})),
        "Set-Mailbox",
    )
    .await;
    let err = result.unwrap_err();
    match &err {
        Error::OutcomeUnknown { cmdlet, reason, status: Some(500), check_with, .. } => {
            assert_eq!(cmdlet, "Set-Mailbox");
            assert_eq!(reason, r#"Exchange answered HTTP 500 InternalServerError ("The store is busy.")"#);
            assert_eq!(check_with.as_deref(), Some("Get-Mailbox"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.status(), Some(500));
}

/// A server that answers after `delay`, and a client giving up on a request after 200 ms.
async fn slow(cmdlet: &str) -> (Error, usize) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": []})).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let http = reqwest::Client::builder().timeout(Duration::from_millis(200)).build().unwrap();
    let (exo, _) = client_with(&server, Tokens::new(), |b| {
        b.http_client(http).retry_policy(RetryPolicy { max_attempts: 2, ..RetryPolicy::fast() })
    });
    let err = exo.collect_all(cmdlet, &Parameters::new()).await.unwrap_err();
    (err, server.received_requests().await.unwrap().len())
}

#[tokio::test]
async fn a_timeout_is_retried_for_a_read_and_unknown_for_a_write() {
    let (err, made) = slow("Get-Mailbox").await;
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(made, 2);
    let (err, made) = slow("Set-Mailbox").await;
    match &err {
        Error::OutcomeUnknown { status: None, source: Some(source), reason, .. } => {
            assert!(source.is_timeout(), "{source:?}");
            assert_eq!(reason, "no answer came before the timeout");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(made, 1, "not sent again");
}

#[tokio::test]
async fn a_write_that_cannot_connect_is_retried() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let events = std::sync::Arc::new(std::sync::Mutex::new(0));
    let sink = events.clone();
    let exo = cba_exo::ExoClient::builder()
        .base_url(format!("http://127.0.0.1:{port}"))
        .tenant_id(crate::support::TENANT)
        .token_source(Tokens::new())
        .retry_policy(RetryPolicy { max_attempts: 3, ..RetryPolicy::fast() })
        .on_event(move |e| {
            if matches!(e, cba_exo::Event::Retry { .. }) {
                *sink.lock().unwrap() += 1;
            }
        })
        .build()
        .unwrap();
    let err = exo.collect_all("New-Mailbox", &Parameters::new()).await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "nothing was sent, so nothing is unknown: {err:?}");
    assert_eq!(*events.lock().unwrap(), 2, "retried");
}
