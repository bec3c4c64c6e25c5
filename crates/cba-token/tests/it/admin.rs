//! Admin sign-in: the device code flow against wiremock, existing tokens, app-only Graph tokens.

use std::time::Duration;

use cba_token::admin::{self, AdminCredential, DeviceCodeOptions, DeviceCodePrompt};
use cba_token::{Error, ErrorKind, hint_for, hint_for_error};
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
async fn terminal_errors_stop_polling_with_a_hint() {
    let cases = [
        ("authorization_declined", 70000, hint_for_error("authorization_declined")),
        ("expired_token", 70019, hint_for(70019)),
        ("bad_verification_code", 70018, hint_for(70018)),
    ];
    for (error, code, expected_hint) in cases {
        let f = flow(device_code_answer(1, 900), vec![pending(), poll_error(error, code, "terminal")]).await;
        let err = admin::device_code(&client(&f.server.uri(), &clock(), None), &options(), |_| {}).await.unwrap_err();
        let Error::Token { error: e, hint, .. } = &err else { panic!("{error}: {err:?}") };
        assert_eq!(e, error);
        assert!(expected_hint.is_some());
        assert_eq!(*hint, expected_hint, "{error}");
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
    assert!(matches!(err, Error::Token { hint: Some(_), .. }));
}

fn graph_jwt(aud: &str, exp: i64) -> String {
    fake_jwt(json!({"aud": aud, "exp": exp, "scp": "Application.ReadWrite.All", "tid": "t"}))
}

#[test]
fn existing_tokens_must_be_unexpired_graph_jwts() {
    let at = now();
    let later = at.unix_timestamp() + 3600;
    let graph = "https://graph.microsoft.com";

    let ok = admin::existing_token(&format!("Bearer {}\n", graph_jwt(graph, later)), graph, at).unwrap();
    assert_eq!(ok.secret(), graph_jwt(graph, later), "Bearer prefix and whitespace are dropped");
    assert_eq!(ok.expires_on.unix_timestamp(), later);
    assert_eq!(ok.scope, "Application.ReadWrite.All");
    admin::existing_token(&graph_jwt("00000003-0000-0000-c000-000000000000", later), graph, at).unwrap();
    admin::existing_token(&graph_jwt("https://graph.microsoft.com/", later), graph, at).unwrap();

    let expired = admin::existing_token(&graph_jwt(graph, at.unix_timestamp() - 1), graph, at);
    assert!(matches!(expired, Err(Error::TokenExpired { .. })), "{expired:?}");
    let wrong = admin::existing_token(&graph_jwt("https://management.azure.com", later), graph, at);
    assert!(matches!(wrong, Err(Error::InvalidToken { .. })), "{wrong:?}");
    for junk in ["", "abc", "a.b.c", "a.b.c.d.e"] {
        assert!(matches!(admin::existing_token(junk, graph, at), Err(Error::InvalidToken { .. })), "{junk:?}");
    }
    let no_exp = fake_jwt(json!({"aud": graph}));
    assert!(matches!(admin::existing_token(&no_exp, graph, at), Err(Error::InvalidToken { .. })));
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
