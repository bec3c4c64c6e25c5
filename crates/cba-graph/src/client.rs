//! The HTTP machinery: builder, bearer token, `client-request-id`, the one retry policy, logging, counting.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cba_http::{Attempt, BoxError, Clock, HttpConfig, RetryEvent, RetryPolicy, SystemClock, TokenSource, Verdict};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Error;

/// The default Graph root (global cloud).
pub const DEFAULT_GRAPH_ROOT: &str = "https://graph.microsoft.com";

/// Whether a failure of this call can be Entra's replication lag, and so worth waiting out.
///
/// Set per call, never globally: retrying every 404 would turn a typo'd id into a five-minute wait.
/// With [`Replication::Expected`] these answers are retried under the [`RetryPolicy`]:
/// - 404 `Request_ResourceNotFound`: an object created or resolved earlier in this run is not visible
///   yet to the replica that served this request;
/// - 400 with `error.details[].code` `NoBackingApplicationObject`: a service principal create for an app
///   that has not replicated;
/// - 400 whose message is "Not a valid reference update": a grant naming a principal that has not
///   replicated;
/// - 400 whose message is Graph's not-found wording ("... does not exist or one of its queried
///   reference-property objects are not present"): a role assignment naming a principal that has not
///   replicated.
///
/// The last two have no distinct code (plain `Request_BadRequest`), so they are the only places where
/// message text is matched, and only under [`Replication::Expected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Replication {
    /// The objects named by the request are long established (or may really be absent): a 404 is an answer.
    #[default]
    NotExpected,
    /// The request names an object created or looked up earlier in this run: replication errors are retried.
    Expected,
}

/// Signs the proof of possession that `addKey`/`removeKey` need: a JWT signed by a certificate already
/// registered on the app, with `aud` [`PROOF_AUDIENCE`](crate::wellknown::PROOF_AUDIENCE), `iss` the app's
/// OBJECT id, and `nbf`/`exp` at most 10 minutes apart. `cba-token` implements it with the certificate.
/// Called once per attempt, so each retry carries a fresh proof.
pub trait ProofSigner: Send + Sync {
    /// A proof JWT for the application with this object id.
    fn proof(&self, app_object_id: &str) -> Result<String, BoxError>;
}

/// Told before each wait, for a progress line ("waiting for replication: 404 ... (attempt 2, 2 s)").
#[derive(Debug, Clone)]
pub struct RetryNotice {
    /// HTTP method.
    pub method: String,
    /// Path below `/v1.0`.
    pub path: String,
    /// The attempt that failed (from 1).
    pub attempt: u32,
    /// The wait now starting.
    pub wait: Duration,
    /// Why ("429 throttled", "503", "replication: 404 Request_ResourceNotFound").
    pub reason: String,
}

/// Receives [`RetryNotice`]s.
pub type RetryObserver = Arc<dyn Fn(&RetryNotice) + Send + Sync>;

/// Builds a [`GraphClient`].
pub struct GraphClientBuilder {
    base_url: String,
    token_source: Option<Arc<dyn TokenSource>>,
    retry_policy: RetryPolicy,
    http_client: Option<reqwest::Client>,
    http_config: Option<HttpConfig>,
    clock: Arc<dyn Clock>,
    on_retry: Option<RetryObserver>,
}

impl fmt::Debug for GraphClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphClientBuilder")
            .field("base_url", &self.base_url)
            .field("token_source", &self.token_source)
            .field("retry_policy", &self.retry_policy)
            .field("http_config", &self.http_config)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl GraphClientBuilder {
    /// The Graph root without the version (`https://graph.microsoft.com`, a national cloud's host, the
    /// simulator's URL). HTTPS, or plain HTTP on loopback only.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Where the bearer token comes from; asked before every attempt.
    pub fn token_source(mut self, source: Arc<dyn TokenSource>) -> Self {
        self.token_source = Some(source);
        self
    }

    /// The retry policy (default: [`RetryPolicy::default`], 1 s doubling to 60 s under a 300 s deadline).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry_policy = policy;
        self
    }

    /// The HTTP client, as it is (it wins over [`http_config`](Self::http_config)).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// How to connect: roots, `User-Agent`, timeouts; the configuration the token and Exchange clients take
    /// too. Default: [`HttpConfig::new`] with 60 s per request. The platform trust store is not loaded for a
    /// plain-http (loopback) base URL, and a [`HttpConfig::request_timeout`] caps the retry policy's
    /// per-request timeout.
    pub fn http_config(mut self, config: &HttpConfig) -> Self {
        self.http_config = Some(config.clone());
        self
    }

    /// Where retry waits and deadlines take their time from (default [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Called before each retry wait.
    pub fn on_retry(mut self, observer: RetryObserver) -> Self {
        self.on_retry = Some(observer);
        self
    }

    /// Check the settings and build.
    pub fn build(self) -> Result<GraphClient, Error> {
        let invalid = |reason: &str| Error::Invalid {
            what: "Graph base URL",
            value: self.base_url.clone(),
            reason: reason.into(),
        };
        let checked = cba_http::check_endpoint(&self.base_url).map_err(|e| invalid(e.reason))?;
        let base = checked.as_str().trim_end_matches('/').to_string();
        if base.ends_with("/v1.0") || base.ends_with("/beta") {
            return Err(invalid("give the root without the API version (e.g. https://graph.microsoft.com)"));
        }
        if checked.query().is_some() || checked.fragment().is_some() {
            return Err(invalid("a root URL has no query or fragment"));
        }
        let token = self.token_source.ok_or_else(|| Error::Invalid {
            what: "Graph client",
            value: String::new(),
            reason: "no token source: call GraphClientBuilder::token_source".into(),
        })?;
        let mut policy = self.retry_policy;
        let http = match self.http_client {
            Some(c) => c,
            None => {
                let config =
                    self.http_config.unwrap_or_else(|| HttpConfig::new().request_timeout(Duration::from_secs(60)));
                if let Some(limit) = config.request_timeout_limit() {
                    policy.request_timeout = policy.request_timeout.min(limit);
                }
                config.build_for(&checked).map_err(|e| Error::Invalid {
                    what: "HTTP client",
                    value: String::new(),
                    reason: e.to_string(),
                })?
            }
        };
        Ok(GraphClient {
            inner: Arc::new(Inner {
                base,
                http,
                token,
                clock: self.clock,
                policy,
                on_retry: self.on_retry,
                requests: AtomicU32::new(0),
            }),
        })
    }
}

struct Inner {
    base: String,
    http: reqwest::Client,
    token: Arc<dyn TokenSource>,
    clock: Arc<dyn Clock>,
    policy: RetryPolicy,
    on_retry: Option<RetryObserver>,
    requests: AtomicU32,
}

/// A Microsoft Graph v1.0 client. Cheap to clone; clones share the request counter.
///
/// Every attempt sends `Authorization: Bearer` (asked of the token source each time, so a long run
/// renews it), a fresh `client-request-id` GUID (one per attempt, so each retry can be found in
/// Microsoft's logs; errors carry the last one), and is logged at debug level with method, path,
/// status, elapsed time and Graph's `request-id`, never the token.
///
/// Retries (one policy for every call, [`RetryPolicy`]): 429 after `Retry-After`; 408, 5xx and transport
/// failures with jittered exponential backoff, except for the one non-idempotent call
/// ([`create_application`](GraphClient::create_application)), which is retried only when the request
/// surely did not reach the service (429, connection refused); replication errors only where the call
/// says [`Replication::Expected`]. A 401 makes the client invalidate the token source once and resend.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphClient")
            .field("base_url", &self.inner.base)
            .field("token_source", &self.inner.token)
            .field("retry_policy", &self.inner.policy)
            .field("requests", &self.requests_sent())
            .finish()
    }
}

/// One logical request; attempts are made from it.
pub(crate) struct Request<'a> {
    pub(crate) method: Method,
    /// Below `/v1.0`, starting with `/`, query already encoded.
    pub(crate) path: String,
    pub(crate) body: Option<Value>,
    pub(crate) prefer: Option<&'static str>,
    pub(crate) replication: Replication,
    /// Safe to resend after an ambiguous failure (5xx, timeout).
    pub(crate) idempotent: bool,
    /// Put a fresh proof (for this app object id) in `body.proof` on every attempt.
    pub(crate) proof: Option<(&'a dyn ProofSigner, &'a str)>,
}

impl<'a> Request<'a> {
    pub(crate) fn new(method: Method, path: impl Into<String>) -> Request<'a> {
        Request {
            method,
            path: path.into(),
            body: None,
            prefer: None,
            replication: Replication::NotExpected,
            idempotent: true,
            proof: None,
        }
    }

    pub(crate) fn get(path: impl Into<String>) -> Request<'a> {
        Request::new(Method::GET, path)
    }

    pub(crate) fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub(crate) fn replication(mut self, replication: Replication) -> Self {
        self.replication = replication;
        self
    }
}

/// A successful answer.
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
}

impl GraphClient {
    /// Start building.
    pub fn builder() -> GraphClientBuilder {
        GraphClientBuilder {
            base_url: DEFAULT_GRAPH_ROOT.to_string(),
            token_source: None,
            retry_policy: RetryPolicy::default(),
            http_client: None,
            http_config: None,
            clock: Arc::new(SystemClock),
            on_retry: None,
        }
    }

    /// The Graph root this client talks to (no version, no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// HTTP requests sent so far by this client and its clones, retries included (for `--output json` stats).
    pub fn requests_sent(&self) -> u32 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.policy
    }

    /// Send `request` under the retry policy.
    pub(crate) async fn send(&self, request: &Request<'_>) -> Result<Response, Error> {
        let (outcome, stats) = cba_http::with_retry_attempts(
            self.inner.clock.as_ref(),
            &self.inner.policy,
            |attempt| self.attempt(request, attempt),
            |outcome| classify(request, outcome),
            |event: &RetryEvent, _| self.notify(request, event),
        )
        .await;
        match outcome {
            Err(last) if matches!(classify::<()>(request, &Err(&last)), Verdict::Retry { .. }) => {
                Err(Error::RetriesExhausted {
                    method: request.method.to_string(),
                    path: request.path.clone(),
                    attempts: stats.attempts,
                    elapsed: stats.elapsed,
                    last: Box::new(last),
                })
            }
            other => other,
        }
    }

    /// Send and decode a JSON answer.
    pub(crate) async fn send_json<T: DeserializeOwned>(&self, request: &Request<'_>) -> Result<T, Error> {
        let response = self.send(request).await?;
        self.decode(request, &response.body)
    }

    pub(crate) fn decode<T: DeserializeOwned>(&self, request: &Request<'_>, body: &[u8]) -> Result<T, Error> {
        serde_json::from_slice(body).map_err(|source| Error::Decode {
            method: request.method.to_string(),
            path: request.path.clone(),
            source,
        })
    }

    /// GET a collection, following `@odata.nextLink` (only within this client's Graph root: the bearer
    /// token is never sent elsewhere).
    pub(crate) async fn list<T: DeserializeOwned>(&self, mut request: Request<'_>) -> Result<Vec<T>, Error> {
        #[derive(serde::Deserialize)]
        struct Page<T> {
            value: Vec<T>,
            #[serde(rename = "@odata.nextLink")]
            next_link: Option<String>,
        }
        let prefix = format!("{}/v1.0", self.inner.base);
        let mut items = Vec::new();
        loop {
            let page: Page<T> = self.send_json(&request).await?;
            items.extend(page.value);
            let Some(next) = page.next_link else { return Ok(items) };
            let Some(path) = next.strip_prefix(&prefix).filter(|p| p.starts_with('/')) else {
                return Err(Error::Invalid {
                    what: "@odata.nextLink",
                    value: next,
                    reason: format!("not below {prefix}; refusing to send the token elsewhere"),
                });
            };
            request.path = path.to_string();
        }
    }

    fn notify(&self, request: &Request<'_>, event: &RetryEvent) {
        if let Some(observer) = &self.inner.on_retry {
            observer(&RetryNotice {
                method: request.method.to_string(),
                path: request.path.clone(),
                attempt: event.attempt,
                wait: event.wait,
                reason: event.reason.clone(),
            });
        }
    }

    /// One attempt: token, send, read. A 401 invalidates the token source and resends once.
    async fn attempt(&self, request: &Request<'_>, attempt: Attempt) -> Result<Response, Error> {
        let mut reauthenticated = false;
        loop {
            let token = self.inner.token.token().await.map_err(|source| Error::Token { source })?;
            let client_request_id = cba_http::client_request_id();
            let url = format!("{}/v1.0{}", self.inner.base, request.path);
            let mut builder = self
                .inner
                .http
                .request(request.method.clone(), url)
                .bearer_auth(&token)
                .header("client-request-id", &client_request_id)
                .header("return-client-request-id", "true")
                .header(reqwest::header::ACCEPT, "application/json")
                .timeout(attempt.timeout);
            if let Some(prefer) = request.prefer {
                builder = builder.header("Prefer", prefer);
            }
            if let Some(body) = &request.body {
                let mut body = body.clone();
                if let Some((signer, app_object_id)) = request.proof {
                    let proof = signer
                        .proof(app_object_id)
                        .map_err(|source| Error::Proof { app_object_id: app_object_id.to_string(), source })?;
                    body["proof"] = Value::String(proof);
                }
                builder = builder.json(&body);
            }
            let started = Instant::now();
            self.inner.requests.fetch_add(1, Ordering::Relaxed);
            let sent = builder.send().await;
            let method = request.method.as_str();
            let path = request.path.as_str();
            let response = match sent {
                Ok(r) => r,
                Err(source) => {
                    tracing::debug!(method, path, elapsed_ms = started.elapsed().as_millis() as u64, %client_request_id, error = %source, "graph request failed");
                    if let Some(failure) = cba_http::tls_failure(&source) {
                        // Refused the same way on every try: not retried (classify says Done).
                        return Err(Error::Tls { method: method.into(), path: path.into(), failure });
                    }
                    return Err(Error::Transport { method: method.into(), path: path.into(), source });
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map_err(|source| Error::Transport { method: method.into(), path: path.into(), source })?
                .to_vec();
            let request_id = header(&headers, "request-id");
            tracing::debug!(
                method,
                path,
                status = status.as_u16(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                request_id = request_id.as_deref().unwrap_or(""),
                %client_request_id,
                "graph request"
            );
            if status.is_success() {
                return Ok(Response { status, body });
            }
            if status == StatusCode::UNAUTHORIZED && !reauthenticated {
                reauthenticated = true;
                self.inner.token.invalidate();
                continue;
            }
            return Err(api_error(request, status, &headers, &body, client_request_id));
        }
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn api_error(
    request: &Request<'_>,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    client_request_id: String,
) -> Error {
    #[derive(serde::Deserialize, Default)]
    struct Body {
        #[serde(default)]
        error: ErrorBody,
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct ErrorBody {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        details: Vec<Detail>,
        #[serde(default, alias = "innererror")]
        inner_error: Option<Inner>,
    }
    #[derive(serde::Deserialize, Default)]
    struct Detail {
        #[serde(default)]
        code: String,
    }
    #[derive(serde::Deserialize, Default)]
    struct Inner {
        #[serde(default, rename = "request-id")]
        request_id: Option<String>,
    }
    let parsed: Body = serde_json::from_slice(body).unwrap_or_default();
    let e = parsed.error;
    let message = if e.message.is_empty() && e.code.is_empty() {
        // Not a Graph error body (a proxy, a gateway): keep a short excerpt.
        let text = String::from_utf8_lossy(body);
        let excerpt: String = text.chars().take(200).collect();
        if excerpt.trim().is_empty() { status.canonical_reason().unwrap_or("").to_string() } else { excerpt }
    } else {
        e.message
    };
    Error::Api {
        method: request.method.to_string(),
        path: request.path.clone(),
        status: status.as_u16(),
        code: if e.code.is_empty() { status.canonical_reason().unwrap_or("Unknown").to_string() } else { e.code },
        message,
        request_id: header(headers, "request-id").or_else(|| e.inner_error.and_then(|i| i.request_id)),
        client_request_id,
        details_codes: e.details.into_iter().map(|d| d.code).filter(|c| !c.is_empty()).collect(),
        retry_after: cba_http::retry_after(headers),
    }
}

/// Whether an error looks like replication lag (see [`Replication`]).
pub(crate) fn replication_signature(error: &Error) -> Option<&'static str> {
    let Error::Api { status, code, message, details_codes, .. } = error else { return None };
    match status {
        404 if code == "Request_ResourceNotFound" => Some("404 Request_ResourceNotFound"),
        400 if details_codes.iter().any(|c| c == "NoBackingApplicationObject") => {
            Some("400 NoBackingApplicationObject")
        }
        // The two below have no distinct code (plain `Request_BadRequest`): the message is all there is.
        400 if message.to_ascii_lowercase().contains("not a valid reference update") => {
            Some("400 Not a valid reference update")
        }
        400 if message
            .to_ascii_lowercase()
            .contains("does not exist or one of its queried reference-property objects are not present") =>
        {
            Some("400 referenced object not present")
        }
        _ => None,
    }
}

/// The one retry policy's classifier.
fn classify<T>(request: &Request<'_>, outcome: &Result<T, impl std::borrow::Borrow<Error>>) -> Verdict {
    let Err(error) = outcome else { return Verdict::Done };
    let error = error.borrow();
    match error {
        Error::Api { status: 429, retry_after, .. } => {
            Verdict::Retry { after: *retry_after, reason: "429 throttled".into() }
        }
        Error::Api { status, code, retry_after, .. }
            if cba_http::is_transient_status(StatusCode::from_u16(*status).unwrap_or(StatusCode::OK)) =>
        {
            if request.idempotent {
                Verdict::Retry { after: *retry_after, reason: format!("{status} {code}") }
            } else {
                Verdict::Done
            }
        }
        Error::Transport { source, .. } => {
            // A failed connect never reached Graph (safe to resend); anything else might have. A refused
            // connection is not retried at all: nothing listens there, and it will not start to.
            let unsent = source.is_connect() && cba_http::tls_failure(source).is_none();
            if cba_http::is_connection_refused(source) {
                Verdict::Done
            } else if unsent || (request.idempotent && cba_http::is_transient_error(source)) {
                Verdict::Retry { after: None, reason: format!("no answer ({})", transport_kind(source)) }
            } else {
                Verdict::Done
            }
        }
        e if request.replication == Replication::Expected => match replication_signature(e) {
            Some(signature) => Verdict::Retry { after: None, reason: format!("waiting for replication: {signature}") },
            None => Verdict::Done,
        },
        _ => Verdict::Done,
    }
}

fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "transport error"
    }
}

/// Percent-encode a query value (everything but RFC 3986 unreserved characters).
pub(crate) fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An OData string literal: single quotes, with `'` doubled inside.
pub(crate) fn odata_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `?$filter=<prop> eq '<value>'`, encoded.
pub(crate) fn filter_eq(property: &str, value: &str) -> String {
    format!("$filter={}", encode_query_value(&format!("{property} eq {}", odata_string(value))))
}

/// Refuse anything but a GUID where an object id or appId goes into a path or filter.
pub(crate) fn guid(what: &'static str, value: &str) -> Result<String, Error> {
    uuid::Uuid::parse_str(value.trim()).map(|u| u.hyphenated().to_string()).map_err(|_| Error::Invalid {
        what,
        value: value.to_string(),
        reason: "not a GUID".into(),
    })
}

/// An opaque id (app role assignment, role assignment) as one path segment.
pub(crate) fn segment(what: &'static str, value: &str) -> Result<String, Error> {
    if value.is_empty() || value.contains(['/', '?', '#', '%']) || value.chars().any(char::is_whitespace) {
        return Err(Error::Invalid { what, value: value.to_string(), reason: "not a Graph object id".into() });
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_quoting() {
        assert_eq!(odata_string("O'Brien's app"), "'O''Brien''s app'");
        assert_eq!(filter_eq("displayName", "a b'c"), "$filter=displayName%20eq%20%27a%20b%27%27c%27");
        assert_eq!(encode_query_value("x&y=z#"), "x%26y%3Dz%23");
    }

    #[test]
    fn ids_are_checked() {
        assert!(guid("appId", "00000002-0000-0ff1-ce00-000000000000").is_ok());
        assert!(guid("appId", "x') or (1 eq 1").is_err());
        assert!(segment("id", "abc-DEF_1").is_ok());
        assert!(segment("id", "a/b").is_err());
    }

    fn api(status: u16, code: &str, message: &str, details: &[&str]) -> Error {
        Error::Api {
            method: "GET".into(),
            path: "/x".into(),
            status,
            code: code.into(),
            message: message.into(),
            request_id: None,
            client_request_id: String::new(),
            details_codes: details.iter().map(|s| s.to_string()).collect(),
            retry_after: None,
        }
    }

    #[test]
    fn classification() {
        let plain = Request::get("/x");
        let expected = Request::get("/x").replication(Replication::Expected);
        let mut create = Request::new(Method::POST, "/applications");
        create.idempotent = false;
        let retry = |r: &Request<'_>, e: Error| matches!(classify::<()>(r, &Err(e)), Verdict::Retry { .. });

        assert!(retry(&plain, api(429, "TooManyRequests", "", &[])));
        assert!(retry(&create, api(429, "TooManyRequests", "", &[])), "429 was not processed: safe even for a create");
        assert!(retry(&plain, api(503, "ServiceUnavailable", "", &[])));
        assert!(!retry(&create, api(503, "ServiceUnavailable", "", &[])), "a 5xx create may have been applied");
        assert!(!retry(&plain, api(501, "NotImplemented", "", &[])));

        let not_found = || api(404, "Request_ResourceNotFound", "Resource 'x' does not exist", &[]);
        assert!(!retry(&plain, not_found()), "a 404 is an answer unless replication is expected");
        assert!(retry(&expected, not_found()));
        assert!(retry(&expected, api(400, "Request_BadRequest", "The appId ...", &["NoBackingApplicationObject"])));
        assert!(retry(&expected, api(400, "Request_BadRequest", "Not a valid reference update.", &[])));
        assert!(retry(
            &expected,
            api(
                400,
                "Request_BadRequest",
                "Resource 'x' does not exist or one of its queried reference-property objects are not present.",
                &[]
            )
        ));
        assert!(!retry(
            &expected,
            api(400, "Request_BadRequest", "Permission being assigned already exists on the object.", &[])
        ));
        assert!(!retry(&expected, api(403, "Authorization_RequestDenied", "", &[])));
        assert!(!retry(&expected, api(404, "NotFound", "", &[])), "only Graph's directory not-found code");
    }
}
