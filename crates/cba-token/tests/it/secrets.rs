//! Tokens, assertions, device codes and keys stay out of Debug, Display, errors and logs.

use std::io::Write;
use std::sync::{Arc, Mutex};

use cba_token::{AssertionOptions, Resource, TokenCache};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use crate::support::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[test]
fn debug_output_is_redacted() {
    let cert = cert();
    let assertion = cert.sign_assertion("https://x/t", &AssertionOptions::default(), now()).unwrap();
    let token = cba_token::AccessToken::new(access_token(1), "Bearer", now(), EXO_SCOPE);
    let cache = TokenCache::in_memory();

    let shown = format!("{cert:?} {assertion:?} {assertion} {token:?} {cache:?}");
    assert!(!shown.contains(assertion.expose()));
    assert!(!shown.contains(&access_token(1)));
    assert!(shown.contains("[redacted]"));
    assert!(shown.contains(&identity().certificate.thumbprint_sha1_hex()), "the thumbprint helps: {shown}");
}

#[tokio::test(flavor = "current_thread")]
async fn logs_name_the_request_but_never_the_secrets() {
    let server = MockServer::start().await;
    let script = Script::new(vec![oauth_error(503, "temporarily_unavailable", 90033, "busy"), token_ok(1, 3599)]);
    Mock::given(method("POST")).and(path(TOKEN_PATH)).respond_with(script.clone()).mount(&server).await;

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let clock = clock();
    let token = client(&server.uri(), &clock, Some(TokenCache::in_memory()))
        .get_token(&cert(), &Resource::Exchange)
        .await
        .unwrap();
    let logs = captured.text();
    let forms = script.forms();
    assert_eq!(forms.len(), 2);
    for form in &forms {
        assert!(!logs.contains(&form["client_assertion"]), "assertion leaked into logs");
    }
    assert!(!logs.contains(token.secret()), "access token leaked into logs");
    assert!(logs.contains("client_assertion=[redacted]"), "{logs}");
    assert!(logs.contains(TOKEN_PATH) && logs.contains("status=503") && logs.contains("status=200"), "{logs}");
    assert!(logs.contains("elapsed_ms"), "{logs}");
}
