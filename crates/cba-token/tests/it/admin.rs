//! Admin sign-in: the device code flow against wiremock, existing tokens, app-only Graph tokens.

use std::time::Duration;

use base64::Engine as _;
use cba_token::admin::{self, AdminCredential, DeviceCodeOptions, DeviceCodePrompt};
use cba_token::{Error, ErrorKind, aadsts_meaning, oauth_error_meaning};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

const DC_PATH: &str = "/organizations/oauth2/v2.0/devicecode";
const POLL_PATH: &str = "/organizations/oauth2/v2.0/token";

fn device_code_answer(interval: u64, expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "device_code": "DAQABAAEAAAD-secret-device-code",
        "user_code": "ABCD1234",
        "verification_uri": "https://microsoft.com/devicelogin",
        "expires_in": expires_in,
        "interval": interval,
        "message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ABCD1234 to authenticate.",
    }))
}

fn pending() -> ResponseTemplate {
    poll_error("authorization_pending", 70016, "The provided request has not yet been authorized by the user.")
}

fn poll_error(error: &str, code: u32, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {message}\r\nTrace ID: t\r\nCorrelation ID: c\r\nTimestamp: x"),
        "error_codes": [code],
    }))
}

fn graph_token_answer() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "token_type": "Bearer",
        "scope": "https://graph.microsoft.com/Application.ReadWrite.All https://graph.microsoft.com/AppRoleAssignment.ReadWrite.All https://graph.microsoft.com/RoleManagement.ReadWrite.Directory",
        "expires_in": 4493,
        "ext_expires_in": 4493,
        "access_token": "graph-admin-token",
        "refresh_token": "should-be-dropped",
        "id_token": "also-dropped",
    }))
}

struct Flow {
    server: MockServer,
    start: Script,
    poll: Script,
}

async fn flow(start: ResponseTemplate, polls: Vec<ResponseTemplate>) -> Flow {
    let server = MockServer::start().await;
    let start = Script::new(vec![start]);
    let poll = Script::new(polls);
    Mock::given(method("POST")).and(path(DC_PATH)).respond_with(start.clone()).mount(&server).await;
    Mock::given(method("POST")).and(path(POLL_PATH)).respond_with(poll.clone()).mount(&server).await;
    Flow { server, start, poll }
}

fn options() -> DeviceCodeOptions {
    DeviceCodeOptions::for_setup("https://graph.microsoft.com")
}

#[tokio::test]
async fn happy_path_shows_the_message_and_polls_until_approved() {
    let f = flow(device_code_answer(5, 900), vec![pending(), pending(), graph_token_answer()]).await;
    let clock = clock();
    let mut prompts: Vec<DeviceCodePrompt> = Vec::new();
    let token = admin::device_code(&client(&f.server.uri(), &clock, None), &options(), |p| prompts.push(p.clone()))
        .await
        .unwrap();
    assert_eq!(token.secret(), "graph-admin-token");
    assert!(token.scope.contains("RoleManagement.ReadWrite.Directory"));
    assert_eq!(token.expires_on, clock.now() + time::Duration::seconds(4493));

    assert_eq!(prompts.len(), 1);
    assert_eq!(prompts[0].user_code, "ABCD1234");
    assert!(prompts[0].message.contains("https://microsoft.com/devicelogin"));
    assert_eq!(prompts[0].expires_in, Duration::from_secs(900));

    let start = &f.start.forms()[0];
    assert_eq!(start["client_id"], "14d82eec-204b-4c2f-b7e8-296a70dab67e");
    assert_eq!(
        start["scope"],
        "https://graph.microsoft.com/Application.ReadWrite.All https://graph.microsoft.com/AppRoleAssignment.ReadWrite.All https://graph.microsoft.com/RoleManagement.ReadWrite.Directory"
    );
    let polls = f.poll.forms();
    assert_eq!(polls.len(), 3);
    for p in &polls {
        assert_eq!(p["grant_type"], "urn:ietf:params:oauth:grant-type:device_code");
        assert_eq!(p["device_code"], "DAQABAAEAAAD-secret-device-code");
        assert_eq!(p["client_id"], "14d82eec-204b-4c2f-b7e8-296a70dab67e");
    }
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(5); 3], "polls follow the server's interval");
}

#[tokio::test]
async fn slow_down_adds_to_the_interval() {
    let f = flow(
        device_code_answer(1, 900),
        vec![pending(), poll_error("slow_down", 70016, "Slow down."), pending(), graph_token_answer()],
    )
    .await;
    let clock = clock();
    let mut options = options();
    options.slow_down_increment = Duration::from_secs(5);
    admin::device_code(&client(&f.server.uri(), &clock, None), &options, |_| {}).await.unwrap();
    let secs: Vec<u64> = clock.sleeps().iter().map(Duration::as_secs).collect();
    assert_eq!(secs, vec![1, 1, 6, 6]);
}

#[tokio::test]
async fn poll_interval_can_be_overridden() {
    let f = flow(device_code_answer(5, 900), vec![pending(), graph_token_answer()]).await;
    let clock = clock();
    let options = DeviceCodeOptions { poll_interval: Some(Duration::from_millis(10)), ..options() };
    admin::device_code(&client(&f.server.uri(), &clock, None), &options, |_| {}).await.unwrap();
    assert_eq!(clock.sleeps(), vec![Duration::from_millis(10); 2]);
}

#[tokio::test]
async fn terminal_errors_stop_polling_with_their_meaning() {
    let cases = [
        ("authorization_declined", 70000, oauth_error_meaning("authorization_declined")),
        ("expired_token", 70019, aadsts_meaning(70019)),
        ("bad_verification_code", 70018, aadsts_meaning(70018)),
    ];
    for (error, code, expected) in cases {
        let f = flow(device_code_answer(1, 900), vec![pending(), poll_error(error, code, "terminal")]).await;
        let err = admin::device_code(&client(&f.server.uri(), &clock(), None), &options(), |_| {}).await.unwrap_err();
        let Error::Token { error: e, meaning, .. } = &err else { panic!("{error}: {err:?}") };
        assert_eq!(e, error);
        assert!(expected.is_some());
        assert_eq!(*meaning, expected, "{error}");
        assert_eq!(err.kind(), ErrorKind::Auth);
        assert_eq!(f.poll.count(), 2, "{error}: no polling after a terminal error");
    }
}

#[tokio::test]
async fn the_code_lifetime_bounds_polling() {
    let f = flow(device_code_answer(5, 12), vec![pending()]).await;
    let clock = clock();
    let err = admin::device_code(&client(&f.server.uri(), &clock, None), &options(), |_| {}).await.unwrap_err();
    assert!(matches!(err, Error::DeviceCodeExpired { .. }), "{err:?}");
    assert_eq!(f.poll.count(), 2, "polls at 5 s and 10 s; at 15 s the code is dead");
}

#[tokio::test]
async fn device_code_request_errors_are_token_errors() {
    let f = flow(
        poll_error(
            "invalid_request",
            65002,
            "Consent between first party application and first party resource must be configured.",
        ),
        vec![pending()],
    )
    .await;
    let err = admin::device_code(&client(&f.server.uri(), &clock(), None), &options(), |_| panic!("no prompt"))
        .await
        .unwrap_err();
    assert_eq!(err.aadsts(), &[65002]);
    assert!(matches!(err, Error::Token { meaning: Some(_), .. }));
}

fn graph_jwt(aud: &str, exp: i64) -> String {
    fake_jwt(json!({"aud": aud, "exp": exp, "scp": "Application.ReadWrite.All", "tid": "t"}))
}

#[test]
fn existing_jwts_must_be_unexpired_graph_tokens() {
    let at = now();
    let later = at.unix_timestamp() + 3600;
    let graph = "https://graph.microsoft.com";

    let ok = admin::existing_token(&format!("Bearer {}\n", graph_jwt(graph, later)), graph, at).unwrap();
    assert_eq!(ok.secret(), graph_jwt(graph, later), "Bearer prefix and whitespace are dropped");
    assert_eq!(ok.expires_on.unix_timestamp(), later);
    assert_eq!(ok.expires_at().map(|t| t.unix_timestamp()), Some(later));
    assert_eq!(ok.scope, "Application.ReadWrite.All");
    admin::existing_token(&graph_jwt("00000003-0000-0000-c000-000000000000", later), graph, at).unwrap();
    admin::existing_token(&graph_jwt("https://graph.microsoft.com/", later), graph, at).unwrap();

    let expired = admin::existing_token(&graph_jwt(graph, at.unix_timestamp() - 1), graph, at);
    assert!(matches!(expired, Err(Error::TokenExpired { .. })), "{expired:?}");
    // The audience is read before Graph is ever called: a token for another API fails early.
    let wrong = admin::existing_token(&graph_jwt("https://management.azure.com", later), graph, at);
    assert!(
        matches!(&wrong, Err(Error::InvalidToken { reason }) if reason.contains("management.azure.com")),
        "{wrong:?}"
    );
    let no_exp = fake_jwt(json!({"aud": graph}));
    assert!(matches!(admin::existing_token(&no_exp, graph, at), Err(Error::InvalidToken { .. })));
}

#[test]
fn an_existing_jwt_must_last_the_minimum_lifetime() {
    let at = now();
    let graph = "https://graph.microsoft.com";
    let one_second_left = graph_jwt(graph, at.unix_timestamp() + 1);
    let five_minutes = Duration::from_secs(300);
    let err = admin::existing_token_lasting(&one_second_left, graph, at, five_minutes).unwrap_err();
    let Error::TokenExpiresSoon { left, needed, .. } = &err else { panic!("{err:?}") };
    assert_eq!((*left, *needed), (Duration::from_secs(1), five_minutes));
    assert_eq!(err.kind(), ErrorKind::Input);
    assert!(err.to_string().contains("at least 300 s"), "{err}");
    // existing_token asks for five minutes.
    assert_eq!(admin::MIN_EXISTING_TOKEN_LIFETIME, five_minutes);
    assert!(matches!(admin::existing_token(&one_second_left, graph, at), Err(Error::TokenExpiresSoon { .. })));
    // Exactly enough, or a caller that asks for less, is fine.
    let five_left = graph_jwt(graph, at.unix_timestamp() + 300);
    admin::existing_token_lasting(&five_left, graph, at, five_minutes).unwrap();
    admin::existing_token_lasting(&one_second_left, graph, at, Duration::ZERO).unwrap();
}

#[test]
fn a_token_that_is_not_a_jwt_is_accepted_as_it_is() {
    let at = now();
    let graph = "https://graph.microsoft.com";
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwe = format!("{}.key.iv.ciphertext.tag", b64.encode(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#));
    for opaque in ["EwBwA8l6BAAUbDba3x2OMJElkF7gJ4z/VbCPEz0AAV9b+aR1G2Y5ZAE=", "abc", "a.b.c", jwe.as_str()] {
        let token = admin::existing_token(&format!("Bearer {opaque}"), graph, at).unwrap();
        assert_eq!(token.secret(), opaque);
        assert_eq!(token.expires_at(), None, "{opaque}: the expiry of an opaque token is unknown");
        assert!(token.is_fresh(at, Duration::from_secs(3600)), "{opaque}: used until Graph refuses it");
        assert_eq!(token.scope, "");
        assert!(token.decode().is_err(), "{opaque}: no claims to read");
        assert!(format!("{token:?}").contains("expires_on: None"), "{token:?}");
    }
}

#[test]
fn malformed_tokens_are_refused() {
    let at = now();
    let graph = "https://graph.microsoft.com";
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let bad_jwe = format!("{}.b.c.d.e", b64.encode(r#"{"alg":"RS256"}"#));
    let cases = [
        ("", "empty"),
        ("  \n", "empty"),
        ("Bearer ", "empty"),
        ("EwB abc", "whitespace"),
        ("EwB\"abc\"", "cannot hold"),
        ("ab=cd", "before its end"),
        ("eyJhbGciOiJSUzI1NiJ9.truncated", "three dot-separated parts"),
        ("eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.sig", "not JSON"),
        ("eyJhbGciOiJSUzI1NiJ9.~~~.sig", "base64url"),
        (bad_jwe.as_str(), "JWE"),
    ];
    for (junk, why) in cases {
        let result = admin::existing_token(junk, graph, at);
        assert!(matches!(&result, Err(Error::InvalidToken { reason }) if reason.contains(why)), "{junk:?}: {result:?}");
    }
}

#[tokio::test]
async fn huge_device_code_lifetimes_and_intervals_do_not_panic() {
    let start = ResponseTemplate::new(200).set_body_json(json!({
        "device_code": "DAQABAAEAAAD-secret-device-code",
        "user_code": "ABCD1234",
        "verification_uri": "https://microsoft.com/devicelogin",
        "expires_in": u64::MAX,
        "interval": u64::MAX,
    }));
    let f = flow(start, vec![poll_error("slow_down", 70016, "slow down"), graph_token_answer()]).await;
    let clock = clock();
    let mut prompted = None;
    let token = admin::device_code(&client(&f.server.uri(), &clock, None), &options(), |p| {
        prompted = Some(p.expires_in);
    })
    .await
    .unwrap();
    assert_eq!(token.secret(), "graph-admin-token");
    assert_eq!(prompted, Some(admin::MAX_DEVICE_CODE_LIFETIME), "clamped");
    let sleeps = clock.sleeps();
    assert_eq!(sleeps, vec![admin::MAX_POLL_INTERVAL; 2], "the interval and slow_down are clamped");
}

#[tokio::test]
async fn sign_in_dispatches_each_credential() {
    let server = MockServer::start().await;
    let script = Script::new(vec![token_ok(5, 3599)]);
    Mock::given(method("POST")).and(path(TOKEN_PATH)).respond_with(script.clone()).mount(&server).await;
    let clock = clock();
    let client = client(&server.uri(), &clock, None);

    let app = admin::sign_in(&client, &AdminCredential::Certificate(Box::new(cert())), |_| {}).await.unwrap();
    assert_eq!(app.secret(), access_token(5));
    assert_eq!(script.forms()[0]["scope"], "https://graph.microsoft.com/.default");

    let jwt = graph_jwt("https://graph.microsoft.com", clock.now().unix_timestamp() + 600);
    let given = admin::sign_in(&client, &AdminCredential::Token(jwt.clone().into()), |_| {}).await.unwrap();
    assert_eq!(given.secret(), jwt);
    assert_eq!(script.count(), 1, "an existing token needs no request");
    assert_eq!(format!("{:?}", AdminCredential::Token(jwt.clone().into())), "Token([redacted])");
}
