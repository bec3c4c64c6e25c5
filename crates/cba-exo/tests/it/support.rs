//! The fake Exchange endpoint and a counting token source.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use cba_exo::{Event, ExoClient, ExoClientBuilder, RetryPolicy, TokenSource};
use serde_json::{Value, json};
use wiremock::{Request, Respond, ResponseTemplate};

pub const TENANT: &str = "6babcaad-604b-40ac-a9d7-9fd97c0b779f";

pub fn invoke_path() -> String {
    format!("/adminapi/beta/{TENANT}/InvokeCommand")
}

/// Hands out `token-1`, then `token-2` after an invalidate, and so on; counts both calls.
#[derive(Debug, Default)]
pub struct Tokens {
    generation: AtomicU32,
    asked: AtomicU32,
    invalidated: AtomicU32,
    fail: bool,
}

impl Tokens {
    pub fn new() -> Arc<Tokens> {
        Arc::new(Tokens::default())
    }

    pub fn failing() -> Arc<Tokens> {
        Arc::new(Tokens { fail: true, ..Tokens::default() })
    }

    pub fn asked(&self) -> u32 {
        self.asked.load(Ordering::SeqCst)
    }

    pub fn invalidated(&self) -> u32 {
        self.invalidated.load(Ordering::SeqCst)
    }
}

impl TokenSource for Tokens {
    fn token(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, cba_http::BoxError>> + Send + '_>> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let generation = self.generation.load(Ordering::SeqCst) + 1;
        let fail = self.fail;
        Box::pin(async move {
            if fail {
                return Err("AADSTS700027: certificate not registered".into());
            }
            Ok(format!("token-{generation}"))
        })
    }

    fn invalidate(&self) {
        self.invalidated.fetch_add(1, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// A client for `server` with fast retries; events are recorded as strings.
pub fn client(server: &wiremock::MockServer, tokens: Arc<Tokens>) -> (ExoClient, Arc<Mutex<Vec<String>>>) {
    client_with(server, tokens, |b| b)
}

pub fn client_with(
    server: &wiremock::MockServer,
    tokens: Arc<Tokens>,
    tweak: impl FnOnce(ExoClientBuilder) -> ExoClientBuilder,
) -> (ExoClient, Arc<Mutex<Vec<String>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let builder = ExoClient::builder()
        .base_url(server.uri())
        .tenant_id(TENANT)
        .token_source(tokens)
        .retry_policy(RetryPolicy::fast())
        .on_event(move |e| {
            let line = match e {
                Event::Warning { message, .. } => format!("warning: {message}"),
                Event::CmdletError { message, .. } => format!("error: {message}"),
                Event::Retry { attempt, reason, .. } => format!("retry {attempt}: {reason}"),
                Event::TokenRenewed { .. } => "token renewed".to_string(),
                Event::Page { number, items, .. } => format!("page {number}: {items}"),
                other => format!("{other:?}"),
            };
            sink.lock().unwrap().push(line);
        });
    (tweak(builder).build().expect("client"), events)
}

pub fn mailbox(i: usize) -> Value {
    json!({"Name": format!("user{i}"), "PrimarySmtpAddress": format!("user{i}@contoso.com"), "Index": i})
}

/// Stateful paging: `total` mailboxes, `page` per page, `$skiptoken` in the next link. Only the current token
/// (`token-N`) is accepted; after each count of pages in `expire_after` the token in use expires (the next request gets a 401).
pub struct Pages {
    pub total: usize,
    pub page: usize,
    pub base: String,
    pub item: fn(usize) -> Value,
    pub expire_after: Vec<usize>,
    pub warnings: Vec<&'static str>,
    state: Mutex<PagesState>,
}

#[derive(Default)]
struct PagesState {
    valid_generation: u32,
    served: usize,
}

impl Pages {
    pub fn new(base: String, total: usize, page: usize) -> Pages {
        Pages {
            total,
            page,
            base,
            item: mailbox,
            expire_after: Vec::new(),
            warnings: Vec::new(),
            state: Mutex::new(PagesState { valid_generation: 1, served: 0 }),
        }
    }
}

impl Respond for Pages {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut st = self.state.lock().unwrap();
        let auth = request.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if auth != format!("Bearer token-{}", st.valid_generation) {
            return ResponseTemplate::new(401)
                .insert_header(
                    "www-authenticate",
                    r#"Bearer client_id="00000002-0000-0ff1-ce00-000000000000", error="invalid_token", error_description="The token has expired""#,
                );
        }
        let skip: usize =
            request.url.query_pairs().find(|(k, _)| k == "$skiptoken").map(|(_, v)| v.parse().unwrap()).unwrap_or(0);
        let end = (skip + self.page).min(self.total);
        let mut body = String::from(
            r#"{"@odata.context":"https://x/adminapi/beta/$metadata#Collection(Exchange.GenericHashTable)","value":["#,
        );
        for i in skip..end {
            if i > skip {
                body.push(',');
            }
            body.push_str(&(self.item)(i).to_string());
        }
        body.push(']');
        if !self.warnings.is_empty() {
            body.push_str(&format!(r#","@adminapi.warnings":{}"#, json!(self.warnings)));
        }
        if end < self.total {
            body.push_str(&format!(r#","@odata.nextLink":"{}{}?$skiptoken={end}""#, self.base, invoke_path()));
        }
        body.push('}');
        st.served += 1;
        if self.expire_after.contains(&st.served) {
            st.valid_generation += 1;
        }
        ResponseTemplate::new(200).set_body_raw(body, "application/json")
    }
}
