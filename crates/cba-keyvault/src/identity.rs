//! Vault tokens from a managed identity: the App Service form (`IDENTITY_ENDPOINT` + `X-IDENTITY-HEADER`, also
//! Functions and Automation) and the VM form (the instance metadata endpoint, `Metadata: true`). The caller
//! passes the endpoint values in: this crate reads no environment variable.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use cba_http::{BoxError, HttpConfig, RetryPolicy, TokenSource, Verdict};

use crate::error::Error;

/// The instance metadata token endpoint of Azure VMs.
pub const IMDS_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

/// A token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    AppService,
    Imds,
}

/// A managed identity's token for one vault audience, cached until five minutes before it expires.
/// `Debug` shows the endpoint, never the header secret nor the token.
pub struct ManagedIdentity {
    form: Form,
    endpoint: url::Url,
    secret: Option<String>,
    resource: String,
    client_id: Option<String>,
    http: HttpConfig,
    policy: RetryPolicy,
    cached: Mutex<Option<(String, time::OffsetDateTime)>>,
}

impl fmt::Debug for ManagedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentity")
            .field("form", &self.form)
            .field("endpoint", &self.endpoint.as_str())
            .field("resource", &self.resource)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ManagedIdentity {
    /// App Service / Functions / Automation: `GET {endpoint}?resource=…&api-version=2019-08-01` with
    /// `X-IDENTITY-HEADER: {header}` (the values of `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`).
    pub fn app_service(endpoint: &str, header: &str, resource: &str, http: HttpConfig) -> Result<Self, Error> {
        // The platform serves it on loopback over http (App Service) or https.
        let endpoint = cba_http::check_endpoint(endpoint).map_err(|e| Error::Identity {
            source_name: "managed identity (IDENTITY_ENDPOINT)",
            endpoint: e.url.clone(),
            reason: e.reason.to_string(),
        })?;
        Ok(ManagedIdentity::new(Form::AppService, endpoint, Some(header.to_string()), resource, http))
    }

    /// Azure VMs: `GET {endpoint}?api-version=2018-02-01&resource=…` with `Metadata: true` ([`IMDS_ENDPOINT`];
    /// another value only for tests: it is plain http on a link-local address).
    pub fn imds(endpoint: &str, resource: &str, http: HttpConfig) -> Result<Self, Error> {
        let endpoint = url::Url::parse(endpoint).map_err(|_| Error::Identity {
            source_name: "instance metadata (IMDS)",
            endpoint: endpoint.to_string(),
            reason: "not an absolute URL".into(),
        })?;
        Ok(ManagedIdentity::new(Form::Imds, endpoint, None, resource, http))
    }

    fn new(form: Form, endpoint: url::Url, secret: Option<String>, resource: &str, http: HttpConfig) -> Self {
        ManagedIdentity {
            form,
            endpoint,
            secret,
            resource: resource.to_string(),
            client_id: None,
            http,
            // The metadata endpoints answer in milliseconds or not at all; do not wait the default 5 minutes.
            policy: RetryPolicy::default().with_deadline(Duration::from_secs(60)),
            cached: Mutex::new(None),
        }
    }

    /// A user-assigned identity, by its client id (default: the system-assigned one).
    #[must_use]
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// How hard to retry the endpoint (default: the usual backoff, 60 s deadline).
    #[must_use]
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    fn source_name(&self) -> &'static str {
        match self.form {
            Form::AppService => "managed identity (IDENTITY_ENDPOINT)",
            Form::Imds => "instance metadata (IMDS)",
        }
    }

    fn fail(&self, reason: impl Into<String>) -> Error {
        let mut endpoint = self.endpoint.clone();
        endpoint.set_query(None);
        Error::Identity { source_name: self.source_name(), endpoint: endpoint.to_string(), reason: reason.into() }
    }

    /// Fetch a fresh token (no cache).
    pub async fn fetch(&self) -> Result<(String, time::OffsetDateTime), Error> {
        // Built per fetch: a token lives for hours, and the caller's runtime may change (the signer's thread).
        let http = self.http.build_for(&self.endpoint).map_err(|e| self.fail(e.to_string()))?;
        let mut url = self.endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            match self.form {
                Form::AppService => q.append_pair("api-version", "2019-08-01"),
                Form::Imds => q.append_pair("api-version", "2018-02-01"),
            };
            q.append_pair("resource", &self.resource);
            if let Some(id) = &self.client_id {
                q.append_pair("client_id", id);
            }
        }
        let (outcome, _) = cba_http::with_retry_attempts(
            &cba_http::SystemClock,
            &self.policy,
            |attempt| {
                let mut request = http.get(url.clone()).timeout(attempt.timeout);
                request = match (self.form, &self.secret) {
                    (Form::AppService, Some(secret)) => request.header("X-IDENTITY-HEADER", secret),
                    _ => request.header("Metadata", "true"),
                };
                async move {
                    let response = request.send().await?;
                    let status = response.status();
                    let retry_after = cba_http::retry_after(response.headers());
                    let body = response.bytes().await?;
                    Ok::<_, reqwest::Error>((status, retry_after, body))
                }
            },
            |outcome| match outcome {
                Ok((status, after, _)) if cba_http::is_transient_status(*status) => {
                    Verdict::Retry { after: *after, reason: status.to_string() }
                }
                Err(e) if cba_http::is_transient_error(e) => Verdict::Retry { after: None, reason: e.to_string() },
                _ => Verdict::Done,
            },
            |_, _| {},
        )
        .await;
        let (status, _, body) = outcome.map_err(|e| self.fail(error_chain(&e)))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(self.fail(format!("{status}: {}", text.chars().take(300).collect::<String>())));
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            access_token: String,
            expires_on: serde_json::Value,
        }
        let answer: Answer =
            serde_json::from_slice(&body).map_err(|e| self.fail(format!("not a token answer: {e}")))?;
        // App Service: epoch seconds as a string; IMDS: the same; some hosts give a number.
        let epoch = match &answer.expires_on {
            serde_json::Value::String(s) => s.trim().parse::<i64>().ok(),
            serde_json::Value::Number(n) => n.as_i64(),
            _ => None,
        }
        .ok_or_else(|| self.fail(format!("expires_on {} is not epoch seconds", answer.expires_on)))?;
        let expires = time::OffsetDateTime::from_unix_timestamp(epoch)
            .map_err(|_| self.fail(format!("expires_on {epoch} is out of range")))?;
        Ok((answer.access_token, expires))
    }
}

pub(crate) fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl TokenSource for ManagedIdentity {
    fn token(&self) -> Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send + '_>> {
        Box::pin(async move {
            let now = time::OffsetDateTime::now_utc();
            if let Some((token, expires)) = self.cached.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
                && *expires - RENEW_BEFORE > now
            {
                return Ok(token.clone());
            }
            let (token, expires) = self.fetch().await.map_err(|e| Box::new(e) as BoxError)?;
            *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some((token.clone(), expires));
            Ok(token)
        })
    }

    fn invalidate(&self) {
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}
