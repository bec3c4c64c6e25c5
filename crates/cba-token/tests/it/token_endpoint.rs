//! The token endpoint against wiremock: request shape, v1/v2 answers, AADSTS errors and their meaning, retries.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cba_token::{Error, ErrorKind, Resource, RetryPolicy, WaitOptions, aadsts_meaning};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::*;

async fn serve(server: &MockServer, script: &Script) {
    Mock::given(method("POST")).and(path(TOKEN_PATH)).respond_with(script.clone()).mount(server).await;
}

#[tokio::test]
async fn success_sends_a_client_credentials_request_with_a_fresh_assertion() {
    let server = MockServer::start().await;
    let script = Script::new(vec![token_ok(1, 3599)]);
    serve(&server, &script).await;
    let clock = clock();
    let token = client(&server.uri(), &clock, None).get_token(&cert(), &Resource::Exchange).await.unwrap();

    assert_eq!(token.secret(), access_token(1));
    assert_eq!(token.token_type, "Bearer");
    assert_eq!(token.scope, EXO_SCOPE);
    assert!(!token.from_cache);
    assert_eq!(token.expires_on, clock.now() + time::Duration::seconds(3599));

    let forms = script.forms();
    assert_eq!(forms.len(), 1);
    let f = &forms[0];
    assert_eq!(f["grant_type"], "client_credentials");
    assert_eq!(f["client_id"], CLIENT_ID);
    assert_eq!(f["scope"], EXO_SCOPE);
    assert_eq!(f["client_assertion_type"], "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    let (header, claims) = jwt_parts(&f["client_assertion"]);
    assert_eq!(header["alg"], "PS256");
    assert_eq!(claims["aud"], format!("{}{TOKEN_PATH}", server.uri()), "aud must be the exact token URL");
    assert_eq!(claims["iat"], clock.now().unix_timestamp());
}

#[tokio::test]
async fn v1_answers_with_numbers_as_strings_are_understood() {
    let server = MockServer::start().await;
    let clock = clock();
    let expires_on = clock.now().unix_timestamp() + 3000;
    let script = Script::new(vec![ResponseTemplate::new(200).set_body_json(json!({
        "token_type": "Bearer",
        "expires_in": "3599",
        "ext_expires_in": "3599",
        "expires_on": expires_on.to_string(),
        "not_before": (expires_on - 3599).to_string(),
        "resource": "https://outlook.office365.com",
        "access_token": access_token(7),
    }))]);
    serve(&server, &script).await;
    let token = client(&server.uri(), &clock, None).get_token(&cert(), &Resource::Exchange).await.unwrap();
    assert_eq!(token.secret(), access_token(7));
    // expires_in wins over expires_on: it does not depend on our clock agreeing with Entra's.
    assert_eq!(token.expires_on, clock.now() + time::Duration::seconds(3599));

    // expires_on alone (as a string) is used when expires_in is missing.
    server.reset().await;
    let script = Script::new(vec![ResponseTemplate::new(200).set_body_json(json!({
        "token_type": "Bearer", "expires_on": expires_on.to_string(), "access_token": access_token(8),
    }))]);
    serve(&server, &script).await;
    let token = client(&server.uri(), &clock, None).get_token(&cert(), &Resource::Exchange).await.unwrap();
    assert_eq!(token.expires_on.unix_timestamp(), expires_on);
}

#[tokio::test]
async fn out_of_range_lifetimes_are_clamped_or_refused_never_a_panic() {
    let server = MockServer::start().await;
    let clock = clock();
    let max = time::Duration::hours(28);
    let huge: [serde_json::Value; 4] = [
        json!(i64::MAX),
        json!(u64::MAX),
        json!(i64::MAX.to_string()),
        json!("340282366920938463463374607431768211455"),
    ];
    for expires_in in huge {
        server.reset().await;
        let body = json!({"token_type": "Bearer", "expires_in": expires_in, "access_token": access_token(1)});
        serve(&server, &Script::new(vec![ResponseTemplate::new(200).set_body_json(body)])).await;
        let result = client(&server.uri(), &clock, None).get_token(&cert(), &Resource::Exchange).await;
        match result {
            Ok(token) => assert_eq!(token.expires_on, clock.now() + max, "{expires_in}: clamped to 28 hours"),
            // Past i128 a string is simply not a number.
            Err(e) => assert!(matches!(e, Error::UnexpectedResponse { status: 200, .. }), "{expires_in}: {e:?}"),
        }
    }
    for expires_in in [json!(-1), json!(i64::MIN), json!("-5")] {
        server.reset().await;
        let body = json!({"token_type": "Bearer", "expires_in": expires_in, "access_token": access_token(1)});
        serve(&server, &Script::new(vec![ResponseTemplate::new(200).set_body_json(body)])).await;
        let err = client(&server.uri(), &clock, None).get_token(&cert(), &Resource::Exchange).await.unwrap_err();
        assert!(
            matches!(&err, Error::UnexpectedResponse { status: 200, detail, .. } if detail.contains("negative")),
            "{expires_in}: {err:?}"
        );
    }
}

#[tokio::test]
async fn malformed_success_bodies_are_errors_that_quote_nothing() {
    let server = MockServer::start().await;
    let script = Script::new(vec![ResponseTemplate::new(200).set_body_json(json!({
        "token_type": "Bearer", "access_token": "secret-looking-value",
    }))]);
    serve(&server, &script).await;
    let err = client(&server.uri(), &clock(), None).get_token(&cert(), &Resource::Exchange).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, Error::UnexpectedResponse { status: 200, .. }), "{err:?}");
    assert!(!text.contains("secret-looking-value"), "{text}");
}

#[tokio::test]
async fn each_aadsts_failure_carries_its_code_ids_and_meaning() {
    let cases: &[(u16, &str, u32, &str)] = &[
        (
            401,
            "invalid_client",
            700027,
            "Client assertion contains an invalid signature. [Reason - The key was not found.]",
        ),
        (401, "invalid_client", 700024, "Client assertion is not within its valid time range."),
        (
            400,
            "unauthorized_client",
            700016,
            "Application with identifier 'x' was not found in the directory 'contoso'.",
        ),
        (400, "invalid_tenant", 90002, "Tenant 'contoso' not found."),
        (401, "invalid_client", 7000215, "Invalid client secret provided."),
        (401, "invalid_client", 7000222, "The provided client secret keys for app 'x' are expired."),
        (400, "invalid_resource", 500011, "The resource principal named https://outlook.office365.com was not found."),
        (400, "invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid."),
        (400, "invalid_scope", 700022, "The provided value for the input parameter scope is not valid."),
        (400, "invalid_scope", 700023, "Invalid resourceless scope."),
        (401, "invalid_client", 50012, "Client assertion failed signature validation."),
        (400, "invalid_request", 50013, "Assertion failed signature validation."),
        (401, "invalid_client", 50027, "JWT token is invalid or malformed."),
        (401, "invalid_client", 50048, "Subject mismatches Issuer claim in the client assertion."),
        (401, "invalid_client", 50032, "WeakRsaKey - Indicates the erroneous user attempt to use a weak RSA key."),
        (400, "unauthorized_client", 7000112, "Application 'x' is disabled."),
    ];
    let server = MockServer::start().await;
    for &(status, error, code, message) in cases {
        server.reset().await;
        let script = Script::new(vec![oauth_error(status, error, code, message)]);
        serve(&server, &script).await;
        let err = client(&server.uri(), &clock(), None).get_token(&cert(), &Resource::Exchange).await.unwrap_err();
        let Error::Token { status: s, error: e, aadsts, description, trace_id, correlation_id, meaning } = &err else {
            panic!("AADSTS{code}: expected Error::Token, got {err:?}");
        };
        assert_eq!((*s, e.as_str(), aadsts.as_slice()), (status, error, &[code][..]), "AADSTS{code}");
        assert_eq!(&**description, format!("AADSTS{code}: {message}"), "ids and timestamp are split off");
        assert_eq!(trace_id.as_deref(), Some("0e7b6c4c-trace"));
        assert_eq!(correlation_id.as_deref(), Some("9f3d-corr"));
        assert!(meaning.is_some(), "AADSTS{code} needs a meaning");
        assert_eq!(*meaning, aadsts_meaning(code));
        assert_eq!(err.kind(), ErrorKind::Auth);
        let shown = err.to_string();
        assert!(shown.contains(meaning.unwrap()) && shown.contains("0e7b6c4c-trace"), "{shown}");
        assert_eq!(script.count(), 1, "AADSTS{code} is not worth retrying");
    }
}

#[test]
fn meanings_are_neutral_and_differ_where_the_cause_differs() {
    assert_ne!(aadsts_meaning(700027), aadsts_meaning(700024));
    assert!(aadsts_meaning(700024).unwrap().contains("clock"));
    assert!(aadsts_meaning(700027).unwrap().contains("replicate"));
    assert!(aadsts_meaning(700016).unwrap().contains("client id"));
    assert_eq!(aadsts_meaning(12345), None);
    // Libraries speak data: what to run next is the CLI's to say.
    for &code in cba_token::AADSTS_CODES {
        let meaning = aadsts_meaning(code).unwrap();
        assert!(!meaning.contains("cba ") && !meaning.contains("--"), "AADSTS{code}: {meaning}");
    }
}

#[tokio::test]
async fn codes_are_read_from_the_description_when_error_codes_is_missing() {
    let server = MockServer::start().await;
    let script = Script::new(vec![ResponseTemplate::new(401).set_body_json(json!({
        "error": "invalid_client",
        "error_description": "AADSTS700027: Client assertion failed.\r\nTrace ID: t\r\nCorrelation ID: c\r\nTimestamp: now",
    }))]);
    serve(&server, &script).await;
    let err = client(&server.uri(), &clock(), None).get_token(&cert(), &Resource::Exchange).await.unwrap_err();
    assert_eq!(err.aadsts(), &[700027]);
    assert!(
        matches!(&err, Error::Token { trace_id: Some(t), correlation_id: Some(c), .. } if &**t == "t" && &**c == "c")
    );
    assert!(err.is_replication_pending());
}

#[tokio::test]
async fn throttled_429_waits_for_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    let script = Script::new(vec![
        ResponseTemplate::new(429).insert_header("Retry-After", "7").set_body_string("slow down"),
        token_ok(2, 3599),
    ]);
    serve(&server, &script).await;
    let clock = clock();
    let token = client(&server.uri(), &clock, None).get_token(&cert(), &Resource::Exchange).await.unwrap();
    assert_eq!(token.secret(), access_token(2));
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(7)], "Retry-After: 7 must be honoured");
    let forms = script.forms();
    assert_eq!(forms.len(), 2);
    assert_ne!(
        jwt_parts(&forms[0]["client_assertion"]).1["jti"],
        jwt_parts(&forms[1]["client_assertion"]).1["jti"],
        "each attempt signs a fresh assertion"
    );
}

#[tokio::test]
async fn server_errors_back_off_exponentially_then_succeed() {
    let server = MockServer::start().await;
    let script = Script::new(vec![
        ResponseTemplate::new(500).set_body_string("<html>oops</html>"),
        ResponseTemplate::new(503)
            .set_body_json(json!({"error": "temporarily_unavailable", "error_description": "AADSTS90033: busy"})),
        ResponseTemplate::new(502),
        token_ok(3, 3599),
    ]);
    serve(&server, &script).await;
    let clock = clock();
    let token = client(&server.uri(), &clock, None).get_token(&cert(), &Resource::Exchange).await.unwrap();
    assert_eq!(token.secret(), access_token(3));
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(4)]);
}

#[tokio::test]
async fn retries_stop_at_the_deadline() {
    let server = MockServer::start().await;
    let script = Script::new(vec![ResponseTemplate::new(503).set_body_string("<html>down</html>")]);
    serve(&server, &script).await;
    let clock = clock();
    let policy = RetryPolicy { max_attempts: 100, deadline: Duration::from_secs(10), ..retry_policy() };
    let err =
        client_with(&server.uri(), &clock, None, policy).get_token(&cert(), &Resource::Exchange).await.unwrap_err();
    // Waits 1 + 2 + 4 = 7 s; the next (8 s) would pass 10 s, so it stops after 4 attempts.
    let Error::GaveUp { attempts, last, .. } = &err else { panic!("{err:?}") };
    assert_eq!(*attempts, 4);
    assert_eq!(script.count(), 4);
    assert!(matches!(**last, Error::UnexpectedResponse { status: 503, .. }), "{last:?}");
    assert_eq!(err.kind(), ErrorKind::Remote);
    assert_eq!(clock.sleeps().iter().sum::<Duration>(), Duration::from_secs(7));
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_gives_up_at_once() {
    let server = MockServer::start().await;
    let script = Script::new(vec![ResponseTemplate::new(429).insert_header("Retry-After", "600")]);
    serve(&server, &script).await;
    let clock = clock();
    let err = client(&server.uri(), &clock, None).get_token(&cert(), &Resource::Exchange).await.unwrap_err();
    assert!(matches!(err, Error::GaveUp { attempts: 1, .. }), "{err:?}");
    assert!(clock.sleeps().is_empty());
}

#[tokio::test]
async fn attempt_limit_is_respected_and_client_errors_are_not_retried() {
    let server = MockServer::start().await;
    let script = Script::new(vec![ResponseTemplate::new(500)]);
    serve(&server, &script).await;
    let err = client(&server.uri(), &clock(), None).get_token(&cert(), &Resource::Exchange).await.unwrap_err();
    assert!(matches!(err, Error::GaveUp { attempts: 4, .. }), "{err:?}");

    server.reset().await;
    let script = Script::new(vec![ResponseTemplate::new(404).set_body_string("Not Found")]);
    serve(&server, &script).await;
    let err = client(&server.uri(), &clock(), None).get_token(&cert(), &Resource::Exchange).await.unwrap_err();
    assert!(matches!(err, Error::UnexpectedResponse { status: 404, .. }), "{err:?}");
    assert_eq!(script.count(), 1);
}

/// Answers slowly the first time, at once afterwards.
struct SlowFirst(Arc<AtomicUsize>);

impl Respond for SlowFirst {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            token_ok(0, 3599).set_delay(Duration::from_secs(3))
        } else {
            token_ok(9, 3599)
        }
    }
}

#[tokio::test]
async fn a_timed_out_request_is_retried() {
    let server = MockServer::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST")).and(path(TOKEN_PATH)).respond_with(SlowFirst(calls.clone())).mount(&server).await;
    let policy = RetryPolicy { request_timeout: Duration::from_millis(300), ..retry_policy() };
    let token =
        client_with(&server.uri(), &clock(), None, policy).get_token(&cert(), &Resource::Exchange).await.unwrap();
    assert_eq!(token.secret(), access_token(9));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn unreachable_hosts_are_remote_errors() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let policy = RetryPolicy { max_attempts: 2, ..retry_policy() };
    let err = client_with(&format!("http://127.0.0.1:{port}"), &clock(), None, policy)
        .get_token(&cert(), &Resource::Exchange)
        .await
        .unwrap_err();
    // A refused connection is not retried: nothing listens there (one rule for every client).
    assert!(matches!(err, Error::Http { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Remote);
    let clock = clock();
    let _ = client_with(&format!("http://127.0.0.1:{port}"), &clock, None, retry_policy())
        .get_token(&cert(), &Resource::Exchange)
        .await;
    assert!(clock.sleeps().is_empty(), "waited {:?} on a refused connection", clock.sleeps());
}

#[tokio::test]
async fn wait_until_ready_polls_through_replication_errors() {
    let server = MockServer::start().await;
    let script = Script::new(vec![
        oauth_error(400, "unauthorized_client", 700016, "Application not found."),
        oauth_error(400, "unauthorized_client", 700016, "Application not found."),
        oauth_error(401, "invalid_client", 700027, "Key not found."),
        token_ok(4, 3599),
    ]);
    serve(&server, &script).await;
    let clock = clock();
    let mut seen = Vec::new();
    let token = client(&server.uri(), &clock, None)
        .wait_until_ready(&cert(), &Resource::Exchange, &WaitOptions::new(Duration::from_secs(120)), |p| {
            seen.push((p.attempt, p.next_try_in.as_secs(), p.error.aadsts().to_vec()))
        })
        .await
        .unwrap();
    assert_eq!(token.secret(), access_token(4));
    assert_eq!(seen, vec![(1, 2, vec![700016]), (2, 4, vec![700016]), (3, 8, vec![700027])]);
}

#[tokio::test]
async fn wait_until_ready_gives_up_at_its_deadline_and_stops_on_other_errors() {
    let server = MockServer::start().await;
    let script = Script::new(vec![oauth_error(401, "invalid_client", 700027, "Key not found.")]);
    serve(&server, &script).await;
    let clock = clock();
    let err = client(&server.uri(), &clock, None)
        .wait_until_ready(&cert(), &Resource::Exchange, &WaitOptions::new(Duration::from_secs(60)), |_| {})
        .await
        .unwrap_err();
    // Waits 2 + 4 + 8 + 16 + 30 (the cap) = 60 s: tries at 0, 2, 6, 14, 30 and 60 s; another 30 s would pass 60 s.
    assert!(matches!(err, Error::GaveUp { attempts: 6, .. }), "{err:?}");
    assert_eq!(clock.sleeps().iter().map(Duration::as_secs).collect::<Vec<_>>(), [2, 4, 8, 16, 30]);
    assert_eq!(err.kind(), ErrorKind::Auth, "still an authentication failure");
    assert_eq!(err.aadsts(), &[700027]);

    server.reset().await;
    let script = Script::new(vec![oauth_error(400, "invalid_tenant", 90002, "Tenant not found.")]);
    serve(&server, &script).await;
    let err = client(&server.uri(), &clock, None)
        .wait_until_ready(&cert(), &Resource::Exchange, &WaitOptions::new(Duration::from_secs(60)), |_| {
            panic!("no waiting for a wrong tenant")
        })
        .await
        .unwrap_err();
    assert_eq!(err.aadsts(), &[90002]);
    assert_eq!(script.count(), 1);
}
