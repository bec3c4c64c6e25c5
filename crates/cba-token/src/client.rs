use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use cba_http::{Clock, HttpConfig, RetryPolicy, SystemClock, Verdict};

use crate::assertion::{AssertionOptions, ClientAssertion, ClientCertificate};
use crate::cache::{CacheKey, TokenCache};
use crate::cloud::{Authority, Cloud, Endpoints, Resource};
use crate::error::{Error, Result};
use crate::http::{default_user_agent, http_error};
use crate::response::{excerpt, parse_error, parse_token};
use crate::retry::default_policy;
use crate::token::AccessToken;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Form fields whose values are secrets: never logged.
const SECRET_FIELDS: &[&str] = &["client_assertion", "device_code", "refresh_token", "client_secret", "code"];

/// Gets app-only tokens from a login service, with retries and an optional cache. Cheap to clone.
///
/// Build with [`TokenClient::builder`].
#[derive(Clone)]
pub struct TokenClient {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Endpoints,
    http: reqwest::Client,
    retry: RetryPolicy,
    cache: Option<TokenCache>,
    clock: Arc<dyn Clock>,
    assertion: AssertionOptions,
}

/// Settings for a [`TokenClient`].
#[derive(Debug, Default)]
#[must_use]
pub struct TokenClientBuilder {
    cloud: Cloud,
    authority: Option<Authority>,
    graph_root: Option<String>,
    exchange_root: Option<String>,
    http: Option<reqwest::Client>,
    http_config: Option<HttpConfig>,
    retry: Option<RetryPolicy>,
    cache: Option<TokenCache>,
    clock: Option<Arc<dyn Clock>>,
    assertion: AssertionOptions,
}

impl TokenClientBuilder {
    /// The cloud (default global): login root and resource URLs.
    pub fn cloud(mut self, cloud: Cloud) -> Self {
        self.cloud = cloud;
        self
    }

    /// Use another login root (`--authority-host`, `AZURE_AUTHORITY_HOST`, or `cba sim`'s URL).
    pub fn authority(mut self, authority: Authority) -> Self {
        self.authority = Some(authority);
        self
    }

    /// Override the Microsoft Graph resource root.
    pub fn graph_root(mut self, root: impl Into<String>) -> Self {
        self.graph_root = Some(root.into().trim_end_matches('/').to_owned());
        self
    }

    /// Override the Exchange Online resource root (for example for DoD, see [`Cloud::exchange_root`]).
    pub fn exchange_root(mut self, root: impl Into<String>) -> Self {
        self.exchange_root = Some(root.into().trim_end_matches('/').to_owned());
        self
    }

    /// The HTTP client, as it is (it wins over [`http_config`](Self::http_config)).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// How to connect: roots, `User-Agent`, timeouts; the configuration the Graph and Exchange clients take
    /// too. Default: [`HttpConfig::new`] with `User-Agent: cba-token/<version>`. The platform trust store is
    /// not loaded for a plain-http (loopback) authority, and a [`HttpConfig::request_timeout`] caps the retry
    /// policy's per-request timeout.
    pub fn http_config(mut self, config: &HttpConfig) -> Self {
        self.http_config = Some(config.clone());
        self
    }

    /// Retries for 429, 5xx and network failures (default [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Cache tokens (default: no cache).
    pub fn cache(mut self, cache: TokenCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The clock (default [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// How client assertions are made (default PS256, no `x5c`, 10 minutes).
    pub fn assertion_options(mut self, options: AssertionOptions) -> Self {
        self.assertion = options;
        self
    }

    /// Build the client (and, when none was given, the default HTTP client).
    pub fn build(self) -> Result<TokenClient> {
        let mut endpoints = self.cloud.endpoints();
        if let Some(a) = self.authority {
            endpoints.authority = a;
        }
        if let Some(g) = self.graph_root {
            endpoints.graph_root = g;
        }
        if let Some(e) = self.exchange_root {
            endpoints.exchange_root = e;
        }
        let mut retry = self.retry.unwrap_or_else(default_policy);
        let http = match self.http {
            Some(h) => h,
            None => {
                let config = self.http_config.unwrap_or_else(|| HttpConfig::new().user_agent(default_user_agent()));
                if let Some(limit) = config.request_timeout_limit() {
                    retry.request_timeout = retry.request_timeout.min(limit);
                }
                let authority = url::Url::parse(endpoints.authority.as_str())
                    .map_err(|e| Error::Invalid { what: "authority", reason: e.to_string() })?;
                config.build_for(&authority).map_err(http_error)?
            }
        };
        Ok(TokenClient {
            inner: Arc::new(Inner {
                endpoints,
                http,
                retry,
                cache: self.cache,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                assertion: self.assertion,
            }),
        })
    }
}

/// Settings for [`TokenClient::wait_until_ready`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOptions {
    /// Give up after this long.
    pub timeout: Duration,
    /// First wait between tries (doubles each time).
    pub initial_backoff: Duration,
    /// Longest wait between tries.
    pub max_backoff: Duration,
}

impl WaitOptions {
    /// Wait up to `timeout`, trying after 2 s, 4 s, 8 s, ... at most every 30 s.
    pub fn new(timeout: Duration) -> WaitOptions {
        WaitOptions { timeout, initial_backoff: Duration::from_secs(2), max_backoff: Duration::from_secs(30) }
    }
}

/// Reported by [`TokenClient::wait_until_ready`] before each wait.
#[derive(Debug)]
#[non_exhaustive]
pub struct ReadyProgress<'a> {
    /// Tries so far.
    pub attempt: u32,
    /// Time since the first try.
    pub elapsed: Duration,
    /// The wait before the next try.
    pub next_try_in: Duration,
    /// Why the last try failed (AADSTS700016 or 700027).
    pub error: &'a Error,
}

/// A successful (2xx) answer.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl TokenClient {
    /// Start configuring a client.
    pub fn builder() -> TokenClientBuilder {
        TokenClientBuilder::default()
    }

    /// The login root.
    pub fn authority(&self) -> &Authority {
        &self.inner.endpoints.authority
    }

    /// Login root and resource URLs in use.
    pub fn endpoints(&self) -> &Endpoints {
        &self.inner.endpoints
    }

    /// The cache, if any.
    pub fn cache(&self) -> Option<&TokenCache> {
        self.inner.cache.as_ref()
    }

    /// The client's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    /// The scope for `resource` in this client's cloud.
    pub fn scope_for(&self, resource: &Resource) -> String {
        resource.scope(&self.inner.endpoints)
    }

    /// The cache key for `cert`'s token for `scope`.
    pub fn cache_key(&self, cert: &ClientCertificate, scope: &str) -> CacheKey {
        CacheKey::new(
            self.authority(),
            cert.tenant(),
            cert.client_id(),
            scope,
            &cert.certificate().thumbprint_sha1_hex(),
        )
    }

    /// A client assertion for `cert`'s token endpoint, signed now, not sent anywhere.
    pub fn client_assertion(&self, cert: &ClientCertificate) -> Result<ClientAssertion> {
        let url = self.authority().token_url(cert.tenant());
        cert.sign_assertion(&url, &self.inner.assertion, self.now())
    }

    /// An app-only token for `resource`: from the cache when one with 5 minutes left is there, else from the
    /// token endpoint (then cached).
    pub async fn get_token(&self, cert: &ClientCertificate, resource: &Resource) -> Result<AccessToken> {
        let scope = self.scope_for(resource);
        self.get_token_for_scope(cert, &scope).await
    }

    /// [`get_token`](Self::get_token) for an explicit scope (`<resource>/.default`).
    pub async fn get_token_for_scope(&self, cert: &ClientCertificate, scope: &str) -> Result<AccessToken> {
        if let Some(cache) = &self.inner.cache
            && let Some(token) = cache.get(&self.cache_key(cert, scope), self.now())
        {
            tracing::debug!(scope, "token cache hit");
            return Ok(token);
        }
        self.fetch_token(cert, scope).await
    }

    /// Ask the token endpoint for a new token (skipping the cache lookup), and cache it.
    pub async fn fetch_token(&self, cert: &ClientCertificate, scope: &str) -> Result<AccessToken> {
        let url = self.authority().token_url(cert.tenant());
        let options = &self.inner.assertion;
        let answer = self
            .post_form(&url, || {
                let assertion = cert.sign_assertion(&url, options, self.now())?;
                Ok(vec![
                    ("grant_type", "client_credentials".to_owned()),
                    ("client_id", cert.client_id().to_owned()),
                    ("scope", scope.to_owned()),
                    ("client_assertion_type", JWT_BEARER.to_owned()),
                    ("client_assertion", assertion.expose().to_owned()),
                ])
            })
            .await?;
        let now = self.now();
        let token = parse_token(&answer.body, now, scope).map_err(|detail| Error::UnexpectedResponse {
            url: url.clone(),
            status: answer.status,
            detail,
        })?;
        if let Some(cache) = &self.inner.cache
            && let Err(e) = cache.put(&self.cache_key(cert, scope), &token, now)
        {
            tracing::warn!(error = %e, "could not store the token in the cache");
        }
        Ok(token)
    }

    /// Get a token, waiting through AADSTS700016 (app not replicated yet) and AADSTS700027 (certificate not
    /// replicated yet) with backoff until `options.timeout`. `progress` is called before each wait.
    pub async fn wait_until_ready(
        &self,
        cert: &ClientCertificate,
        resource: &Resource,
        options: &WaitOptions,
        mut progress: impl FnMut(&ReadyProgress<'_>),
    ) -> Result<AccessToken> {
        let scope = self.scope_for(resource);
        // The one retry loop, with these waits: 2 s doubling to 30 s by default, no attempt limit, no jitter.
        let policy = RetryPolicy {
            max_attempts: u32::MAX,
            initial_backoff: options.initial_backoff,
            max_backoff: options.max_backoff,
            deadline: options.timeout,
            jitter: false,
            request_timeout: self.inner.retry.request_timeout,
        };
        let (outcome, stats) = cba_http::with_retry_attempts(
            self.inner.clock.as_ref(),
            &policy,
            |_| self.get_token_for_scope(cert, &scope),
            |outcome| match outcome {
                Err(e) if e.is_replication_pending() => Verdict::Retry { after: None, reason: e.to_string() },
                _ => Verdict::Done,
            },
            |event, outcome| {
                if let Err(error) = outcome {
                    let (attempt, elapsed, next_try_in) = (event.attempt, event.elapsed, event.wait);
                    progress(&ReadyProgress { attempt, elapsed, next_try_in, error });
                }
            },
        )
        .await;
        match outcome {
            Err(e) if stats.gave_up => {
                Err(Error::GaveUp { attempts: stats.attempts, elapsed: stats.elapsed, last: Box::new(e) })
            }
            other => other,
        }
    }

    /// POST a form with the retry policy. Returns 2xx answers; OAuth error bodies become [`Error::Token`].
    /// `form` is called for each attempt (so each gets a fresh client assertion).
    pub(crate) async fn post_form(
        &self,
        url: &str,
        mut form: impl FnMut() -> Result<Vec<(&'static str, String)>>,
    ) -> Result<Answer> {
        let (outcome, stats) = cba_http::with_retry_attempts(
            self.inner.clock.as_ref(),
            &self.inner.retry,
            |attempt| {
                let fields = form();
                async move {
                    // A form that cannot be built (signing failed) is final.
                    let fields = fields.map_err(|error| Failure { error, retry_after: None, retryable: false })?;
                    self.post_once(url, fields, attempt.timeout, attempt.number).await
                }
            },
            |outcome| match outcome {
                Err(f) if f.retryable => Verdict::Retry { after: f.retry_after, reason: f.error.to_string() },
                _ => Verdict::Done,
            },
            |_, _| {},
        )
        .await;
        match outcome {
            Ok(answer) => Ok(answer),
            Err(f) if stats.gave_up => {
                Err(Error::GaveUp { attempts: stats.attempts, elapsed: stats.elapsed, last: Box::new(f.error) })
            }
            Err(f) => Err(f.error),
        }
    }

    /// One POST. Failures say whether retrying may help (429, 5xx, `temporarily_unavailable`, network).
    async fn post_once(
        &self,
        url: &str,
        fields: Vec<(&'static str, String)>,
        timeout: Duration,
        attempt: u32,
    ) -> std::result::Result<Answer, Failure> {
        tracing::trace!(url, form = %Redacted(&fields), "POST");
        let sent = Instant::now();
        let result = self.inner.http.post(url).form(&fields).timeout(timeout).send().await;
        drop(fields);
        let response = match result {
            Err(e) => {
                tracing::debug!(method = "POST", url, attempt, elapsed_ms = ms(sent), error = %e, "request failed");
                if let Some(failure) = cba_http::tls_failure(&e) {
                    // The same certificate will be refused again: fail now, saying what was refused.
                    let error = Error::Tls { url: url.to_owned(), failure };
                    return Err(Failure { error, retry_after: None, retryable: false });
                }
                // Nothing listening there will not start to within a retry budget: fail at once.
                let retryable = !cba_http::is_connection_refused(&e);
                let error = Error::Http { url: url.to_owned(), source: without_url(e) };
                return Err(Failure { error, retry_after: None, retryable });
            }
            Ok(response) => response,
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| cba_http::parse_retry_after(v, self.now()));
        let body = match response.bytes().await {
            Err(e) => {
                tracing::debug!(method = "POST", url, status, attempt, elapsed_ms = ms(sent), error = %e, "reading the answer failed");
                let error = Error::Http { url: url.to_owned(), source: without_url(e) };
                return Err(Failure { error, retry_after, retryable: true });
            }
            Ok(body) => body,
        };
        tracing::debug!(method = "POST", url, status, attempt, elapsed_ms = ms(sent), "token endpoint");
        if (200..300).contains(&status) {
            return Ok(Answer { status, body: body.to_vec() });
        }
        let error = parse_error(status, &body).unwrap_or_else(|| Error::UnexpectedResponse {
            url: url.to_owned(),
            status,
            detail: excerpt(&body),
        });
        let retryable = status == 429 || status >= 500 || error.oauth_error() == Some("temporarily_unavailable");
        Err(Failure { error, retry_after, retryable })
    }
}

/// A failed attempt and whether another may succeed.
struct Failure {
    error: Error,
    retry_after: Option<Duration>,
    retryable: bool,
}

impl fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenClient")
            .field("endpoints", &self.inner.endpoints)
            .field("retry", &self.inner.retry)
            .field("cache", &self.inner.cache)
            .field("clock", &self.inner.clock)
            .field("assertion", &self.inner.assertion)
            .finish_non_exhaustive()
    }
}

fn ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// Our error already names the URL; reqwest's would repeat it.
fn without_url(e: reqwest::Error) -> reqwest::Error {
    e.without_url()
}

/// Form fields for logs: names, and values except secrets.
struct Redacted<'a>(&'a [(&'static str, String)]);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("&")?;
            }
            if SECRET_FIELDS.contains(name) {
                write!(f, "{name}=[redacted]")?;
            } else {
                write!(f, "{name}={value}")?;
            }
        }
        Ok(())
    }
}

impl TokenClient {
    /// The tenant id (GUID) Entra resolves `tenant` (an id or a verified domain) to, from the authority's
    /// public OpenID configuration (`{root}/{tenant}/v2.0/.well-known/openid-configuration`: its `issuer` is
    /// `{root}/{tid}/v2.0`). Needs no token; an unknown tenant is AADSTS90002. Retried like the token
    /// endpoint (429, 5xx, connection failures).
    pub async fn tenant_id_of(&self, tenant: &str) -> Result<String> {
        let url = format!("{}/{tenant}/v2.0/.well-known/openid-configuration", self.authority().as_str());
        let (outcome, _) = cba_http::with_retry_on(
            self.inner.clock.as_ref(),
            &self.inner.retry,
            |_| async {
                let response = self.inner.http.get(&url).send().await.map_err(|e| {
                    let retryable = cba_http::is_transient_error(&e);
                    (Error::Http { url: url.clone(), source: without_url(e) }, retryable)
                })?;
                let status = response.status().as_u16();
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| (Error::Http { url: url.clone(), source: without_url(e) }, true))?;
                if !(200..300).contains(&status) {
                    let retryable = status == 429 || status >= 500;
                    let error = crate::response::parse_error(status, &body).unwrap_or_else(|| {
                        Error::UnexpectedResponse { url: url.clone(), status, detail: crate::response::excerpt(&body) }
                    });
                    return Err((error, retryable));
                }
                Ok(body)
            },
            |outcome| match outcome {
                Err((e, true)) => Verdict::Retry { after: None, reason: e.to_string() },
                _ => Verdict::Done,
            },
            |_| {},
        )
        .await;
        let body = outcome.map_err(|(e, _)| e)?;
        #[derive(serde::Deserialize)]
        struct Configuration {
            issuer: String,
        }
        let bad = |detail: String| Error::UnexpectedResponse { url: url.clone(), status: 200, detail };
        let config: Configuration = serde_json::from_slice(&body).map_err(|e| bad(format!("no issuer: {e}")))?;
        config
            .issuer
            .trim_end_matches('/')
            .trim_end_matches("/v2.0")
            .rsplit('/')
            .next()
            .filter(|tid| !tid.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| bad(format!("issuer {:?} names no tenant", config.issuer)))
    }
}
