//! Shared helpers.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use cba_graph::{BoxError, GraphClient, KeyCredential, RetryPolicy, TokenSource};

/// A token source that hands out `token` and counts calls and invalidations; after `budget` tokens it
/// fails, which stops a run exactly before its next request (a crash after N requests).
#[derive(Debug)]
pub struct CountingToken {
    pub token: String,
    pub budget: u32,
    pub issued: AtomicU32,
    pub invalidated: AtomicU32,
}

impl CountingToken {
    pub fn new(token: impl Into<String>) -> Arc<CountingToken> {
        CountingToken::with_budget(token, u32::MAX)
    }

    pub fn with_budget(token: impl Into<String>, budget: u32) -> Arc<CountingToken> {
        Arc::new(CountingToken {
            token: token.into(),
            budget,
            issued: AtomicU32::new(0),
            invalidated: AtomicU32::new(0),
        })
    }
}

impl TokenSource for CountingToken {
    fn token(&self) -> Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send + '_>> {
        Box::pin(async move {
            let n = self.issued.fetch_add(1, Ordering::SeqCst);
            if n >= self.budget { Err("simulated crash: request budget spent".into()) } else { Ok(self.token.clone()) }
        })
    }

    fn invalidate(&self) {
        self.invalidated.fetch_add(1, Ordering::SeqCst);
    }
}

pub fn client(base: &str, token: Arc<dyn TokenSource>) -> GraphClient {
    client_with(base, token, RetryPolicy::fast())
}

pub fn client_with(base: &str, token: Arc<dyn TokenSource>, policy: RetryPolicy) -> GraphClient {
    GraphClient::builder().base_url(base).token_source(token).retry_policy(policy).build().expect("client")
}

pub const THUMBPRINT: &str = "52ED9B5038A47B9E2E2190715CC238359D4F8F73";
/// base64 of the 20 bytes of THUMBPRINT: what Graph returns in customKeyIdentifier.
pub const THUMBPRINT_B64: &str = "Uu2bUDike54uIZBxXMI4NZ1Pj3M=";

/// A key credential as cba-cert makes it (the `key` is opaque to cba-graph).
pub fn key_credential() -> KeyCredential {
    serde_json::from_value(serde_json::json!({
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
        "key": "TUlJQ2VydA==",
        "displayName": "CN=contoso-exo",
        "startDateTime": "2026-01-01T00:00:00Z",
        "endDateTime": "2027-01-01T00:00:00Z",
        "keyId": "77777777-7777-7777-7777-777777777777"
    }))
    .unwrap()
}
