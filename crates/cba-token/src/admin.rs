//! An administrator's Microsoft Graph token, for setting up an app: device code sign-in, a token the admin
//! already has, or app-only with a provisioning app's certificate.

use std::fmt;
use std::time::Duration;

use serde_json::Value;
use zeroize::Zeroizing;

use crate::assertion::ClientCertificate;
use crate::client::TokenClient;
use crate::cloud::{Resource, check_identifier};
use crate::error::{Error, Result};
use crate::jwt;
use crate::response::parse_token;
use crate::token::AccessToken;

/// The Microsoft Graph Command Line Tools public client id: may request explicit Graph scopes by device code.
pub const GRAPH_COMMAND_LINE_TOOLS_CLIENT_ID: &str = "14d82eec-204b-4c2f-b7e8-296a70dab67e";

/// Microsoft Graph's app id (an accepted `aud` of Graph tokens).
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// The delegated Graph permissions setup needs: create the app, grant its app role, assign its Entra role.
pub const SETUP_PERMISSIONS: [&str; 3] =
    ["Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All", "RoleManagement.ReadWrite.Directory"];

/// The scopes for [`SETUP_PERMISSIONS`] on the Graph at `graph_root` (such as `https://graph.microsoft.com`).
///
/// No `offline_access`: setup finishes within the access token's lifetime, so no refresh token is requested.
pub fn setup_scopes(graph_root: &str) -> Vec<String> {
    let root = graph_root.trim_end_matches('/');
    SETUP_PERMISSIONS.iter().map(|p| format!("{root}/{p}")).collect()
}

/// Settings for [`device_code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCodeOptions {
    /// The public client that signs in (default [`GRAPH_COMMAND_LINE_TOOLS_CLIENT_ID`]).
    pub client_id: String,
    /// Tenant id or domain, or `organizations` (the default: any work account; the token's `tid` says which).
    pub tenant: String,
    /// Scopes (default [`setup_scopes`]).
    pub scopes: Vec<String>,
    /// Poll this often instead of the server's `interval` (tests; the server's value is the polite one).
    pub poll_interval: Option<Duration>,
    /// Added to the interval on `slow_down` (5 s, as MSAL does).
    pub slow_down_increment: Duration,
}

impl DeviceCodeOptions {
    /// The setup sign-in for the Graph at `graph_root`.
    pub fn for_setup(graph_root: &str) -> DeviceCodeOptions {
        DeviceCodeOptions {
            client_id: GRAPH_COMMAND_LINE_TOOLS_CLIENT_ID.to_owned(),
            tenant: "organizations".to_owned(),
            scopes: setup_scopes(graph_root),
            poll_interval: None,
            slow_down_increment: Duration::from_secs(5),
        }
    }
}

/// What the person signing in must do. Show [`message`](Self::message) (Entra's own words) on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceCodePrompt {
    /// The code to type.
    pub user_code: String,
    /// Where to type it.
    pub verification_uri: String,
    /// Instructions, such as "To sign in, use a web browser to open the page … and enter the code …".
    pub message: String,
    /// How long the code is valid.
    pub expires_in: Duration,
}

/// Sign an administrator in with the device code flow and return a delegated Graph token.
///
/// `on_prompt` receives the instructions once. Polling follows the server's interval (or
/// [`DeviceCodeOptions::poll_interval`]), keeps going on `authorization_pending`, slows down on `slow_down`,
/// and stops with [`Error::Token`] on `authorization_declined`, `expired_token`, `bad_verification_code` and any
/// other error, or with [`Error::DeviceCodeExpired`] when the code's lifetime runs out. The server's
/// `expires_in` and `interval` are clamped to [`MAX_DEVICE_CODE_LIFETIME`] and [`MAX_POLL_INTERVAL`].
pub async fn device_code(
    client: &TokenClient,
    options: &DeviceCodeOptions,
    on_prompt: impl FnOnce(&DeviceCodePrompt),
) -> Result<AccessToken> {
    check_identifier("tenant", &options.tenant)?;
    check_identifier("client id", &options.client_id)?;
    let scope = options.scopes.join(" ");
    let url = client.authority().device_code_url(&options.tenant);
    let answer =
        client.post_form(&url, || Ok(vec![("client_id", options.client_id.clone()), ("scope", scope.clone())])).await?;
    let started = client.now();
    let grant = parse_device_code(&answer.body).map_err(|detail| Error::UnexpectedResponse {
        url: url.clone(),
        status: answer.status,
        detail,
    })?;
    on_prompt(&grant.prompt);

    let token_url = client.authority().token_url(&options.tenant);
    // parse_device_code clamps the lifetime, so this only fails for a clock at the end of time.
    let expires_at = time::Duration::try_from(grant.prompt.expires_in)
        .ok()
        .and_then(|lifetime| started.checked_add(lifetime))
        .ok_or_else(|| Error::UnexpectedResponse {
            url: url.clone(),
            status: answer.status,
            detail: "expires_in is out of range".into(),
        })?;
    let mut interval = options.poll_interval.unwrap_or(grant.interval);
    loop {
        client.clock().sleep(interval).await;
        if client.now() >= expires_at {
            return Err(Error::DeviceCodeExpired { after: grant.prompt.expires_in });
        }
        let polled = client
            .post_form(&token_url, || {
                Ok(vec![
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code".to_owned()),
                    ("client_id", options.client_id.clone()),
                    ("device_code", grant.device_code.to_string()),
                ])
            })
            .await;
        match polled {
            Ok(answer) => {
                return parse_token(&answer.body, client.now(), &scope).map_err(|detail| Error::UnexpectedResponse {
                    url: token_url.clone(),
                    status: answer.status,
                    detail,
                });
            }
            Err(Error::Token { error, .. }) if error == "authorization_pending" => {}
            Err(Error::Token { error, .. }) if error == "slow_down" => {
                interval = interval.saturating_add(options.slow_down_increment).min(MAX_POLL_INTERVAL);
                tracing::debug!(interval_s = interval.as_secs_f64(), "device code: slow_down");
            }
            Err(other) => return Err(other),
        }
    }
}

/// The longest device-code lifetime believed (Entra's codes last 15 minutes): a longer `expires_in` is clamped.
pub const MAX_DEVICE_CODE_LIFETIME: Duration = Duration::from_secs(3600);

/// The longest wait between polls (the server's `interval` and `slow_down` increments are clamped to it).
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(60);

struct DeviceGrant {
    device_code: Zeroizing<String>,
    interval: Duration,
    prompt: DeviceCodePrompt,
}

fn parse_device_code(body: &[u8]) -> Result<DeviceGrant, String> {
    let value: Value = serde_json::from_slice(body).map_err(|_| "the body is not JSON".to_owned())?;
    let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
    let number = |name: &str| match value.get(name) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let device_code = Zeroizing::new(text("device_code").ok_or("no device_code in the answer")?);
    let user_code = text("user_code").ok_or("no user_code in the answer")?;
    // v1 spells it verification_url.
    let verification_uri =
        text("verification_uri").or_else(|| text("verification_url")).ok_or("no verification_uri in the answer")?;
    let expires_in = Duration::from_secs(number("expires_in").unwrap_or(900)).min(MAX_DEVICE_CODE_LIFETIME);
    let interval = Duration::from_secs(number("interval").unwrap_or(5)).min(MAX_POLL_INTERVAL);
    let message = text("message").unwrap_or_else(|| {
        format!("To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate.")
    });
    Ok(DeviceGrant {
        device_code,
        interval,
        prompt: DeviceCodePrompt { user_code, verification_uri, message, expires_in },
    })
}

/// The least lifetime [`existing_token`] accepts: long enough for a setup run (five minutes).
pub const MIN_EXISTING_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// [`existing_token_lasting`] with [`MIN_EXISTING_TOKEN_LIFETIME`].
pub fn existing_token(token: &str, graph_root: &str, now: time::OffsetDateTime) -> Result<AccessToken> {
    existing_token_lasting(token, graph_root, now, MIN_EXISTING_TOKEN_LIFETIME)
}

/// Accept a Graph token the administrator already has (`CBA_GRAPH_TOKEN`, a file). A leading `Bearer ` and
/// surrounding whitespace are dropped. The signature is not checked (Graph will do that).
///
/// - A JWT (it starts with `eyJ`, a JSON header) must decode, be for Microsoft Graph at `graph_root` (`aud`), and
///   have at least `min_lifetime` left at `now` ([`Error::TokenExpired`], [`Error::TokenExpiresSoon`]); its
///   `scp` (or `roles`) becomes the scope.
/// - An encrypted JWT (JWE) or any other token is opaque: accepted as it is, with an unknown expiry
///   ([`AccessToken::expires_at`] is `None`) and an empty scope; Graph says whether it works.
///
/// Empty tokens and tokens with characters a bearer token cannot hold (spaces inside, quotes, control
/// characters) are refused with [`Error::InvalidToken`].
pub fn existing_token_lasting(
    token: &str,
    graph_root: &str,
    now: time::OffsetDateTime,
    min_lifetime: Duration,
) -> Result<AccessToken> {
    let bare = jwt::strip_bearer(token);
    check_bearer_syntax(bare)?;
    if !bare.starts_with("eyJ") {
        return Ok(AccessToken::opaque(bare, "Bearer", ""));
    }
    if bare.split('.').count() == 5 {
        check_jwe_header(bare)?;
        return Ok(AccessToken::opaque(bare, "Bearer", ""));
    }
    let decoded = jwt::decode(bare)?;
    let expires_on =
        decoded.expires_at().ok_or_else(|| Error::InvalidToken { reason: "it has no exp claim".into() })?;
    if expires_on <= now {
        return Err(Error::TokenExpired { expired_at: expires_on });
    }
    let left: Duration = (expires_on - now).try_into().unwrap_or(Duration::ZERO);
    if left < min_lifetime {
        return Err(Error::TokenExpiresSoon { expires_at: expires_on, left, needed: min_lifetime });
    }
    let graph_root = graph_root.trim_end_matches('/');
    match decoded.claim_str("aud") {
        Some(aud)
            if aud.trim_end_matches('/').eq_ignore_ascii_case(graph_root) || aud.eq_ignore_ascii_case(GRAPH_APP_ID) => {
        }
        Some(aud) => {
            return Err(Error::InvalidToken {
                reason: format!("it is for {aud:?}, not Microsoft Graph ({graph_root}); get a token for Graph"),
            });
        }
        None => return Err(Error::InvalidToken { reason: "it has no aud claim".into() }),
    }
    let scope = match decoded.claim_str("scp") {
        Some(scp) => scp.to_owned(),
        None => decoded.claim_strings("roles").join(" "),
    };
    Ok(AccessToken::new(bare, "Bearer", expires_on, scope))
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn check_bearer_syntax(token: &str) -> Result<()> {
    let invalid = |reason: &str| Err(Error::InvalidToken { reason: reason.to_owned() });
    if token.is_empty() {
        return invalid("it is empty");
    }
    let body = token.trim_end_matches('=');
    if body.is_empty() {
        return invalid("it holds only '=' characters");
    }
    match body.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/'))) {
        None => Ok(()),
        Some(c) if c.is_whitespace() => invalid("it contains whitespace (was it pasted across lines?)"),
        Some('=') => invalid("it has '=' before its end"),
        Some(_) => invalid("it contains characters a bearer token cannot hold"),
    }
}

/// An encrypted JWT's first part is a JSON header with `enc`.
fn check_jwe_header(token: &str) -> Result<()> {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap_or_default();
    let value: Option<Value> = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    match value {
        Some(v) if v.get("enc").is_some_and(Value::is_string) => Ok(()),
        _ => Err(Error::InvalidToken {
            reason: "it has five dot-separated parts, but its header is not an encrypted token's (JWE)".into(),
        }),
    }
}

/// An app-only Graph token from a provisioning app's certificate (pipelines that set up many tenants).
pub async fn app_only(client: &TokenClient, cert: &ClientCertificate) -> Result<AccessToken> {
    client.get_token(cert, &Resource::Graph).await
}

/// The three ways an administrator's Graph token can come.
#[non_exhaustive]
pub enum AdminCredential {
    /// Sign in interactively with a device code.
    DeviceCode(DeviceCodeOptions),
    /// A token the administrator already has.
    Token(Zeroizing<String>),
    /// A provisioning app's certificate.
    Certificate(Box<ClientCertificate>),
}

impl fmt::Debug for AdminCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminCredential::DeviceCode(o) => f.debug_tuple("DeviceCode").field(o).finish(),
            AdminCredential::Token(_) => f.write_str("Token([redacted])"),
            AdminCredential::Certificate(c) => f.debug_tuple("Certificate").field(c).finish(),
        }
    }
}

/// Get an administrator's Graph token in the way `credential` says. `on_prompt` is used by the device code flow.
pub async fn sign_in(
    client: &TokenClient,
    credential: &AdminCredential,
    on_prompt: impl FnOnce(&DeviceCodePrompt),
) -> Result<AccessToken> {
    match credential {
        AdminCredential::DeviceCode(options) => device_code(client, options, on_prompt).await,
        AdminCredential::Token(token) => existing_token(token, &client.endpoints().graph_root, client.now()),
        AdminCredential::Certificate(cert) => app_only(client, cert).await,
    }
}
