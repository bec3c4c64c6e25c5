//! Shared fixtures: certificates (generated once per test binary), a scripted wiremock responder, clients.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
pub use cba_token::Clock as _;
use cba_token::{Authority, ClientCertificate, ManualClock, RetryPolicy, TokenCache, TokenClient};
use serde_json::{Value, json};
use time::OffsetDateTime;
use wiremock::{Request, Respond, ResponseTemplate};

pub const TENANT: &str = "contoso.onmicrosoft.com";
pub const CLIENT_ID: &str = "631a96bc-a705-4eda-9f99-fdaf9f54f6a2";
pub const TOKEN_PATH: &str = "/contoso.onmicrosoft.com/oauth2/v2.0/token";
pub const EXO_SCOPE: &str = "https://outlook.office365.com/.default";

/// RSA key generation takes ~100 ms: make each identity once per test binary.
pub fn identity() -> cba_cert::Identity {
    static ID: OnceLock<cba_cert::Identity> = OnceLock::new();
    ID.get_or_init(|| cba_cert::generate(&cba_cert::NewCertificate::new("cba-token-test")).unwrap()).clone()
}

pub fn other_identity() -> cba_cert::Identity {
    static ID: OnceLock<cba_cert::Identity> = OnceLock::new();
    ID.get_or_init(|| cba_cert::generate(&cba_cert::NewCertificate::new("cba-token-test-2")).unwrap()).clone()
}

pub fn cert() -> ClientCertificate {
    ClientCertificate::new(identity(), TENANT, CLIENT_ID).unwrap()
}

/// Now, whole seconds (JWT times are whole seconds).
pub fn now() -> OffsetDateTime {
    let n = OffsetDateTime::now_utc();
    n.replace_nanosecond(0).unwrap()
}

pub fn clock() -> ManualClock {
    ManualClock::new(now())
}

/// Deterministic retries: 1 s, 2 s, 4 s (no jitter), up to 4 attempts within 60 s.
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(8),
        deadline: Duration::from_secs(60),
        request_timeout: Duration::from_secs(5),
        jitter: false,
    }
}

pub fn client(uri: &str, clock: &ManualClock, cache: Option<TokenCache>) -> TokenClient {
    client_with(uri, clock, cache, retry_policy())
}

pub fn client_with(uri: &str, clock: &ManualClock, cache: Option<TokenCache>, retry: RetryPolicy) -> TokenClient {
    let mut b = TokenClient::builder()
        .authority(Authority::new(uri).unwrap())
        .clock(Arc::new(clock.clone()))
        .retry_policy(retry);
    if let Some(c) = cache {
        b = b.cache(c);
    }
    b.build().unwrap()
}

/// An unsigned-looking JWT with these claims (the client never verifies access tokens).
pub fn fake_jwt(claims: Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = json!({"typ": "JWT", "alg": "RS256", "x5t": "abc"});
    format!(
        "{}.{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string()),
        b64.encode(b"not a real signature")
    )
}

/// A distinct fake access token (so tests can tell tokens apart).
pub fn access_token(n: u32) -> String {
    fake_jwt(json!({
        "aud": "https://outlook.office365.com",
        "tid": "11111111-2222-3333-4444-555555555555",
        "appid": CLIENT_ID,
        "roles": ["Exchange.ManageAsApp"],
        "wids": ["29232cdf-9323-42fd-ade2-1d097af3e4de"],
        "n": n,
    }))
}

pub fn token_ok(n: u32, expires_in: i64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": access_token(n),
    }))
}

pub fn oauth_error(status: u16, error: &str, code: u32, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {message}\r\nTrace ID: 0e7b6c4c-trace\r\nCorrelation ID: 9f3d-corr\r\nTimestamp: 2026-11-26 10:00:00Z"
        ),
        "error_codes": [code],
        "timestamp": "2026-11-26 10:00:00Z",
        "trace_id": "0e7b6c4c-trace",
        "correlation_id": "9f3d-corr",
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    }))
}

/// Serves its responses in order (the last one forever after) and records each request's form.
#[derive(Clone)]
pub struct Script(Arc<Mutex<ScriptState>>);

struct ScriptState {
    queue: VecDeque<ResponseTemplate>,
    last: ResponseTemplate,
    forms: Vec<HashMap<String, String>>,
}

impl Script {
    pub fn new(responses: Vec<ResponseTemplate>) -> Script {
        let mut queue: VecDeque<_> = responses.into();
        let last = queue.pop_back().expect("at least one response");
        Script(Arc::new(Mutex::new(ScriptState { queue, last, forms: Vec::new() })))
    }

    pub fn forms(&self) -> Vec<HashMap<String, String>> {
        self.0.lock().unwrap().forms.clone()
    }

    pub fn count(&self) -> usize {
        self.0.lock().unwrap().forms.len()
    }
}

impl Respond for Script {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut s = self.0.lock().unwrap();
        s.forms.push(url::form_urlencoded::parse(&request.body).into_owned().collect());
        s.queue.pop_front().unwrap_or_else(|| s.last.clone())
    }
}

/// Decode a JWT's header and claims (test-side, independent of `cba_token::jwt`).
pub fn jwt_parts(jwt: &str) -> (Value, Value) {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = jwt.split('.');
    let header = serde_json::from_slice(&b64.decode(parts.next().unwrap()).unwrap()).unwrap();
    let claims = serde_json::from_slice(&b64.decode(parts.next().unwrap()).unwrap()).unwrap();
    (header, claims)
}
