//! [`VaultClient`]: the four Key Vault calls `cba` makes (create a certificate, poll its operation, read it,
//! sign with its key), each through cba_http's retry loop.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cba_cert::{Certificate, SignAlg};
use cba_http::{Attempt, BoxError, HttpConfig, RetryPolicy, RetryStats, TokenSource, Verdict};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::error::{Error, parse_challenge};
use crate::identity::error_chain;
use crate::url::{CertificateUrl, check_name};

/// The REST API version of every call.
pub const API_VERSION: &str = "7.4";

/// The longest wait between two polls of a certificate operation.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// How many times a create whose outcome was unknown (and that the vault shows did not happen) is sent again.
const MAX_CREATE_SENDS: u32 = 3;

/// The policy of a new certificate: a self-signed issuer, an RSA key that cannot be exported, clientAuth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePolicy {
    /// Subject DN (`CN=contoso-exo`).
    pub subject: String,
    /// 1 to 1200 months.
    pub validity_months: u32,
    /// RSA key size: 2048, 3072 or 4096.
    pub key_size: u32,
}

impl CertificatePolicy {
    /// `subject`, 12 months, RSA-2048.
    pub fn new(subject: impl Into<String>) -> CertificatePolicy {
        CertificatePolicy { subject: subject.into(), validity_months: 12, key_size: 2048 }
    }

    /// The months covering `days` (a vault's validity is whole months: 365 days → 12, 1 day → 1).
    pub fn months_for_days(days: u32) -> u32 {
        days.div_ceil(31).max(1)
    }

    /// The `policy` object of the create request (docs/wire-formats.md, Key Vault).
    pub fn to_json(&self) -> Value {
        json!({
            "key_props": {"exportable": false, "kty": "RSA", "key_size": self.key_size, "reuse_key": false},
            "secret_props": {"contentType": "application/x-pkcs12"},
            "x509_props": {
                "subject": self.subject,
                "ekus": ["1.3.6.1.5.5.7.3.2"],
                "key_usage": ["digitalSignature"],
                "validity_months": self.validity_months,
            },
            "issuer": {"name": "Self"},
            "attributes": {"enabled": true},
        })
    }

    fn check(&self) -> Result<(), String> {
        if ![2048, 3072, 4096].contains(&self.key_size) {
            return Err(format!("key size {}: the vault makes RSA keys of 2048, 3072 or 4096 bits", self.key_size));
        }
        if !(1..=1200).contains(&self.validity_months) {
            return Err(format!(
                "validity of {} months: a vault certificate is valid 1 to 1200 months",
                self.validity_months
            ));
        }
        if !self.subject.trim_start().to_ascii_uppercase().starts_with("CN=") {
            return Err(format!("subject {:?}: start it with CN=", self.subject));
        }
        Ok(())
    }
}

/// One version of a vault certificate: the public certificate and the key that signs for it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VaultCertificate {
    /// The versioned URL (`https://contoso.vault.azure.net/certificates/contoso-exo/0123…`).
    pub url: CertificateUrl,
    /// The version.
    pub version: String,
    /// The key's id (`{vault}/keys/{name}/{version}`): signing goes to `{kid}/sign`.
    pub kid: String,
    /// The X.509 certificate (`cer`).
    pub certificate: Certificate,
    /// `attributes.enabled`.
    pub enabled: bool,
    /// The policy's `key_props.exportable`, when the answer holds the policy.
    pub exportable: Option<bool>,
}

/// A certificate operation (`/certificates/{name}/pending`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Operation {
    /// `inProgress`, `completed`, `failed` or `cancelled`.
    pub status: String,
    /// The operation's `error.code`, when it failed.
    pub error_code: Option<String>,
    /// The operation's `error.message`.
    pub error_message: Option<String>,
    /// `request_id`.
    pub request_id: Option<String>,
}

impl Operation {
    fn from_json(value: &Value) -> Operation {
        let text = |v: &Value| v.as_str().map(str::to_string);
        Operation {
            status: value.get("status").and_then(text).unwrap_or_default(),
            error_code: value.pointer("/error/code").and_then(text),
            error_message: value.pointer("/error/message").and_then(text),
            request_id: value.get("request_id").and_then(text),
        }
    }

    fn in_progress(&self) -> bool {
        self.status.eq_ignore_ascii_case("inProgress")
    }
}

/// Reads, writes and signs in one vault, with one token source. Cheap to clone.
#[derive(Clone, Debug)]
pub struct VaultClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    vault: CertificateUrl,
    config: HttpConfig,
    http: reqwest::Client,
    token: Arc<dyn TokenSource>,
    policy: RetryPolicy,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Safe to send again (GET, and sign: it changes nothing).
    Read,
    /// Sent again only when it cannot have reached the vault (429, a refused connection).
    Write,
}

struct Call {
    method: Method,
    url: String,
    body: Option<Value>,
    kind: Kind,
    /// What is asked, for errors ("create certificate contoso-exo").
    action: String,
    /// The object, for a 404 ("certificate contoso-exo in https://…").
    object: String,
}

/// A 2xx answer's body.
struct Answer {
    body: Vec<u8>,
}

struct Raw {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

enum AttemptError {
    Http(reqwest::Error),
    Token(BoxError),
}

impl VaultClient {
    /// A client for the vault `url` is in, with a bearer token for `url.resource()` from `token`.
    pub fn new(
        url: &CertificateUrl,
        config: HttpConfig,
        token: Arc<dyn TokenSource>,
        policy: RetryPolicy,
    ) -> Result<VaultClient, Error> {
        let root =
            url::Url::parse(url.vault()).map_err(|_| Error::Url { url: url.to_string(), reason: "bad root".into() })?;
        let http = config.build_for(&root).map_err(|e| Error::Transport {
            url: url.vault().to_string(),
            reason: e.to_string(),
            source: None,
        })?;
        let vault = url.with_version(None);
        Ok(VaultClient { inner: Arc::new(Inner { vault, config, http, token, policy }) })
    }

    /// The same vault, token source and policy, with a new HTTP client (for another runtime or thread).
    pub fn fresh(&self) -> Result<VaultClient, Error> {
        let i = &self.inner;
        VaultClient::new(&i.vault, i.config.clone(), i.token.clone(), i.policy.clone())
    }

    /// The vault's root.
    pub fn vault(&self) -> &str {
        self.inner.vault.vault()
    }

    /// The retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.inner.policy
    }

    fn certificate_url(&self, name: &str, version: Option<&str>) -> String {
        match version {
            Some(v) => format!("{}/certificates/{name}/{v}", self.vault()),
            None => format!("{}/certificates/{name}", self.vault()),
        }
    }

    fn describe(&self, name: &str, version: Option<&str>) -> String {
        match version {
            Some(v) => format!("certificate {name} version {v} in {}", self.vault()),
            None => format!("certificate {name} in {}", self.vault()),
        }
    }

    /// `GET {vault}/certificates/{name}[/{version}]`.
    pub async fn get_certificate(&self, name: &str, version: Option<&str>) -> Result<VaultCertificate, Error> {
        check_name(name).map_err(|reason| Error::Url { url: self.certificate_url(name, version), reason })?;
        let url = self.certificate_url(name, version);
        let call = Call {
            method: Method::GET,
            url: url.clone(),
            body: None,
            kind: Kind::Read,
            action: format!("read certificate {name}"),
            object: self.describe(name, version),
        };
        let answer = self.call(&call).await?;
        self.parse_certificate(&url, &answer.body)
    }

    /// The latest version, or `None` when the vault has no certificate of that name.
    pub async fn find_certificate(&self, name: &str) -> Result<Option<VaultCertificate>, Error> {
        match self.get_certificate(name, None).await {
            Ok(c) => Ok(Some(c)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET {vault}/certificates/{name}/pending`: the certificate's last operation, `None` when there is none.
    pub async fn pending(&self, name: &str) -> Result<Option<Operation>, Error> {
        let call = Call {
            method: Method::GET,
            url: format!("{}/pending", self.certificate_url(name, None)),
            body: None,
            kind: Kind::Read,
            action: format!("read the pending operation of certificate {name}"),
            object: format!("the pending operation of certificate {name} in {}", self.vault()),
        };
        match self.call(&call).await {
            Ok(answer) => Ok(Some(Operation::from_json(&self.json(&call.url, &answer.body)?))),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Create a new version of certificate `name` (the first one, or the next: rotation) with `policy`, wait
    /// for the vault to finish it, and read it.
    ///
    /// The create is a write: it is sent again only when it cannot have reached the vault. When its outcome is
    /// unknown (a 5xx, a timeout), the pending operation and the latest version tell whether it ran; it is sent
    /// again only when they show it did not. An operation already in progress (a previous run that stopped
    /// while waiting) is waited for instead of starting another.
    pub async fn create_certificate(&self, name: &str, policy: &CertificatePolicy) -> Result<VaultCertificate, Error> {
        let url = self.certificate_url(name, None);
        check_name(name).map_err(|reason| Error::Url { url: url.clone(), reason })?;
        policy.check().map_err(|reason| Error::InvalidPolicy { name: name.to_string(), reason })?;
        let started = std::time::Instant::now();
        if self.pending(name).await?.is_some_and(|op| op.in_progress()) {
            tracing::info!(name, "a certificate operation is already in progress: waiting for it");
            return self.wait(name, None, started).await;
        }
        let before = self.find_certificate(name).await?.map(|c| c.version);
        let call = Call {
            method: Method::POST,
            url: format!("{url}/create"),
            body: Some(json!({"policy": policy.to_json(), "attributes": {"enabled": true}})),
            kind: Kind::Write,
            action: format!("create certificate {name}"),
            object: self.describe(name, None),
        };
        for send in 1..=MAX_CREATE_SENDS {
            let (raw, stats) = self.send(&call).await;
            match &raw {
                Ok(r) if (200..300).contains(&r.status) => return self.wait(name, before.as_deref(), started).await,
                // A create while one is pending: wait for that one.
                Ok(r) if r.status == 409 && self.pending(name).await?.is_some_and(|op| op.in_progress()) => {
                    return self.wait(name, before.as_deref(), started).await;
                }
                _ => {}
            }
            if !outcome_unknown(&raw) {
                return Err(self.failure(&call, raw, stats));
            }
            // It may have run: look before sending it again.
            tracing::warn!(name, send, "the create's outcome is unknown: checking the vault before sending it again");
            let pending = self.pending(name).await?;
            let latest = self.find_certificate(name).await?.map(|c| c.version);
            if pending.is_some_and(|op| op.in_progress()) || latest != before {
                return self.wait(name, before.as_deref(), started).await;
            }
            if send == MAX_CREATE_SENDS || started.elapsed() >= self.inner.policy.deadline {
                return Err(self.failure(&call, raw, stats));
            }
        }
        unreachable!("the last send returns")
    }

    /// Poll the pending operation until it completes or fails (bounded by the policy's deadline), then read
    /// the latest version.
    async fn wait(
        &self,
        name: &str,
        before: Option<&str>,
        started: std::time::Instant,
    ) -> Result<VaultCertificate, Error> {
        let mut poll = 0u32;
        loop {
            poll += 1;
            match self.pending(name).await? {
                Some(op) if op.in_progress() => {}
                Some(op) if op.status.eq_ignore_ascii_case("completed") => {
                    return self.get_certificate(name, None).await;
                }
                Some(op) => {
                    return Err(Error::PendingFailed {
                        vault: self.vault().to_string(),
                        name: name.to_string(),
                        status: op.status,
                        code: op.error_code.unwrap_or_default(),
                        message: op.error_message.unwrap_or_default(),
                    });
                }
                // UNVERIFIED whether a completed operation stays readable: a new latest version says it completed.
                None => {
                    if let Some(c) = self.find_certificate(name).await?
                        && Some(c.version.as_str()) != before
                    {
                        return Ok(c);
                    }
                    return Err(Error::Response {
                        url: format!("{}/pending", self.certificate_url(name, None)),
                        reason: "the certificate operation disappeared and no new version exists".into(),
                    });
                }
            }
            let wait = self.inner.policy.backoff(poll, None).min(MAX_POLL_INTERVAL);
            if started.elapsed() + wait > self.inner.policy.deadline {
                return Err(Error::PendingTimeout {
                    vault: self.vault().to_string(),
                    name: name.to_string(),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// `PATCH {vault}/certificates/{name}/{version}` `{"attributes":{"enabled":…}}`: a disabled version's key
    /// no longer signs (rotation disables the retired version once its key is off the app).
    pub async fn set_enabled(&self, name: &str, version: &str, enabled: bool) -> Result<VaultCertificate, Error> {
        let url = self.certificate_url(name, Some(version));
        let call = Call {
            method: Method::PATCH,
            url: url.clone(),
            body: Some(json!({"attributes": {"enabled": enabled}})),
            // Setting a flag to a value twice is the same as once.
            kind: Kind::Read,
            action: format!("{} certificate {name} version {version}", if enabled { "enable" } else { "disable" }),
            object: self.describe(name, Some(version)),
        };
        let answer = self.call(&call).await?;
        self.parse_certificate(&url, &answer.body)
    }

    /// `POST {kid}/sign`: the vault signs `digest` (SHA-256 of the message) with `alg`; the raw signature.
    pub async fn sign(&self, kid: &str, alg: SignAlg, digest: &[u8; 32]) -> Result<Vec<u8>, Error> {
        if !self.inner.vault.is_in_vault(kid) {
            return Err(Error::Response {
                url: kid.to_string(),
                reason: format!("the key id is not in {}; refusing to send the vault token elsewhere", self.vault()),
            });
        }
        let name = kid.split('/').rev().nth(1).unwrap_or(kid).to_string();
        let call = Call {
            method: Method::POST,
            url: format!("{kid}/sign"),
            body: Some(json!({"alg": alg.name(), "value": URL_SAFE_NO_PAD.encode(digest)})),
            kind: Kind::Read,
            action: format!("sign with key {name}"),
            object: format!("key {kid}"),
        };
        let answer = self.call(&call).await?;
        let value = self.json(&call.url, &answer.body)?;
        let signature = value.get("value").and_then(Value::as_str).ok_or_else(|| Error::Response {
            url: call.url.clone(),
            reason: "no \"value\" in the sign answer".into(),
        })?;
        URL_SAFE_NO_PAD.decode(signature.trim_end_matches('=')).map_err(|e| Error::Response {
            url: call.url.clone(),
            reason: format!("the signature is not base64url: {e}"),
        })
    }

    fn parse_certificate(&self, url: &str, body: &[u8]) -> Result<VaultCertificate, Error> {
        let value = self.json(url, body)?;
        let bad = |reason: String| Error::Response { url: url.to_string(), reason };
        let field = |name: &str| value.get(name).and_then(Value::as_str).ok_or_else(|| bad(format!("no {name:?}")));
        let id = field("id")?;
        let kid = field("kid")?.to_string();
        let cer = STANDARD.decode(field("cer")?).map_err(|e| bad(format!("\"cer\" is not base64: {e}")))?;
        let certificate = Certificate::from_der(&cer).map_err(|e| bad(format!("\"cer\" is not a certificate: {e}")))?;
        let parsed: CertificateUrl = id.parse().map_err(|e: Error| bad(format!("\"id\": {e}")))?;
        let Some(version) = parsed.version().map(str::to_string) else {
            return Err(bad(format!("\"id\" {id} names no version")));
        };
        if !self.inner.vault.is_in_vault(&kid) {
            return Err(bad(format!("\"kid\" {kid} is not in {}", self.vault())));
        }
        if let Some(x5t) = value.get("x5t").and_then(Value::as_str)
            && x5t.trim_end_matches('=') != certificate.x5t()
        {
            return Err(bad(format!("\"x5t\" {x5t} is not the thumbprint of \"cer\"")));
        }
        let enabled = value.pointer("/attributes/enabled").and_then(Value::as_bool).unwrap_or(true);
        let exportable = value.pointer("/policy/key_props/exportable").and_then(Value::as_bool);
        let url = self.inner.vault.with_version(Some(&version));
        Ok(VaultCertificate { url, version, kid, certificate, enabled, exportable })
    }

    fn json(&self, url: &str, body: &[u8]) -> Result<Value, Error> {
        serde_json::from_slice(body)
            .map_err(|e| Error::Response { url: url.to_string(), reason: format!("not JSON: {e}") })
    }

    async fn call(&self, call: &Call) -> Result<Answer, Error> {
        let (raw, stats) = self.send(call).await;
        self.finish(call, raw, stats)
    }

    async fn send(&self, call: &Call) -> (Result<Raw, AttemptError>, RetryStats) {
        let kind = call.kind;
        cba_http::with_retry_attempts(
            &cba_http::SystemClock,
            &self.inner.policy,
            |attempt| self.attempt(call, attempt),
            move |outcome| classify(kind, outcome),
            |event, _| tracing::debug!(attempt = event.attempt, wait = ?event.wait, reason = %event.reason, "vault: retrying"),
        )
        .await
    }

    /// One try: token, request, answer. A 401 drops the cached token and resends once.
    async fn attempt(&self, call: &Call, attempt: Attempt) -> Result<Raw, AttemptError> {
        let mut reauthenticated = false;
        loop {
            let token = self.inner.token.token().await.map_err(AttemptError::Token)?;
            let mut request = self
                .inner
                .http
                .request(call.method.clone(), &call.url)
                .query(&[("api-version", API_VERSION)])
                .bearer_auth(&token)
                .header(reqwest::header::ACCEPT, "application/json")
                .header("x-ms-client-request-id", cba_http::client_request_id())
                .timeout(attempt.timeout);
            if let Some(body) = &call.body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(AttemptError::Http)?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(AttemptError::Http)?.to_vec();
            if status == 401 && !reauthenticated {
                reauthenticated = true;
                self.inner.token.invalidate();
                continue;
            }
            return Ok(Raw { status, headers, body });
        }
    }

    /// The error of an answer known not to be a success.
    fn failure(&self, call: &Call, raw: Result<Raw, AttemptError>, stats: RetryStats) -> Error {
        match self.finish(call, raw, stats) {
            Err(e) => e,
            Ok(_) => Error::Response { url: call.url.clone(), reason: "an unexpected success answer".into() },
        }
    }

    fn finish(&self, call: &Call, raw: Result<Raw, AttemptError>, stats: RetryStats) -> Result<Answer, Error> {
        let vault = self.vault().to_string();
        let raw = match raw {
            Ok(raw) => raw,
            Err(AttemptError::Token(e)) => {
                return Err(match e.downcast::<Error>() {
                    Ok(e) => *e,
                    Err(e) => Error::Token(e.to_string()),
                });
            }
            Err(AttemptError::Http(e)) => {
                let mut url = call.url.clone();
                url.truncate(url.find('?').unwrap_or(url.len()));
                let reason = if stats.gave_up {
                    format!("{} (after {} attempts in {:?})", error_chain(&e), stats.attempts, stats.elapsed)
                } else {
                    error_chain(&e)
                };
                return Err(Error::Transport { url, reason, source: Some(e) });
            }
        };
        if (200..300).contains(&raw.status) {
            return Ok(Answer { body: raw.body });
        }
        let value: Value = serde_json::from_slice(&raw.body).unwrap_or(Value::Null);
        let text = |p: &str| value.pointer(p).and_then(Value::as_str).map(str::to_string);
        let code = text("/error/code").unwrap_or_default();
        let inner = text("/error/innererror/code");
        let message =
            text("/error/message").unwrap_or_else(|| String::from_utf8_lossy(&raw.body).chars().take(300).collect());
        if stats.gave_up && (raw.status == 429 || raw.status >= 500) {
            return Err(Error::RetriesExhausted {
                vault,
                action: call.action.clone(),
                status: raw.status,
                attempts: stats.attempts,
                elapsed: stats.elapsed,
            });
        }
        Err(match raw.status {
            401 => {
                let challenge = raw.headers.get(reqwest::header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok());
                let (authorization, resource) = challenge.map(parse_challenge).unwrap_or_default();
                Error::Unauthorized { vault, authorization, resource, message }
            }
            403 => Error::Forbidden { vault, action: call.action.clone(), code: inner.unwrap_or(code), message },
            404 => Error::NotFound { object: call.object.clone(), code, message },
            status => Error::Service { vault, action: call.action.clone(), status, code, message },
        })
    }
}

/// Whether a write may have run although it did not succeed: a 5xx answer, or a request that may have
/// reached the vault (anything but a refused or failed connection).
fn outcome_unknown(raw: &Result<Raw, AttemptError>) -> bool {
    match raw {
        Ok(r) => r.status >= 500,
        Err(AttemptError::Http(e)) => !e.is_connect(),
        Err(AttemptError::Token(_)) => false,
    }
}

fn classify(kind: Kind, outcome: &Result<Raw, AttemptError>) -> Verdict {
    match outcome {
        Ok(r) if r.status == 429 => {
            Verdict::Retry { after: cba_http::retry_after(&r.headers), reason: "429 throttled".into() }
        }
        Ok(r)
            if kind == Kind::Read
                && cba_http::is_transient_status(reqwest::StatusCode::from_u16(r.status).unwrap_or_default()) =>
        {
            Verdict::Retry { after: cba_http::retry_after(&r.headers), reason: r.status.to_string() }
        }
        Err(AttemptError::Http(e)) if cba_http::is_transient_error(e) && (kind == Kind::Read || e.is_connect()) => {
            Verdict::Retry { after: None, reason: e.to_string() }
        }
        _ => Verdict::Done,
    }
}
