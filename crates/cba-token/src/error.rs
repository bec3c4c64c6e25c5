use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use time::OffsetDateTime;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while getting a token.
///
/// Messages never contain access tokens, client assertions, device codes or key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token endpoint answered with an OAuth error (usually with AADSTS codes).
    #[error("{}", render_token_error(*.status, .error, .aadsts, .description, .trace_id, .correlation_id, *.hint))]
    Token {
        /// HTTP status (401 for `invalid_client`, 400 for most others).
        status: u16,
        /// The OAuth `error` value, such as `invalid_client`.
        error: String,
        /// The AADSTS codes (`error_codes`, else those found in the description).
        aadsts: Vec<u32>,
        /// `error_description`, without its trailing Trace ID / Correlation ID / Timestamp lines.
        description: Box<str>,
        /// Entra's trace id, for support requests.
        trace_id: Option<Box<str>>,
        /// Entra's correlation id, for support requests.
        correlation_id: Option<Box<str>>,
        /// What probably happened and what to do (see [`hint_for`]).
        hint: Option<&'static str>,
    },
    /// The request did not get an HTTP answer (DNS, connect, TLS, timeout, reset).
    #[error("could not reach {url}")]
    Http {
        /// The URL requested.
        url: String,
        /// What reqwest reported.
        #[source]
        source: reqwest::Error,
    },
    /// The server's TLS certificate was refused (not retried: it fails the same way every time). Typically a
    /// TLS-inspecting proxy whose root CA is not trusted here; see [`cba_http::HttpConfig::add_root_certificates`].
    #[error("the TLS certificate of {url} was refused: {failure}")]
    Tls {
        /// The URL requested.
        url: String,
        /// What was refused.
        failure: cba_http::TlsFailure,
    },
    /// An HTTP answer that is neither a token nor an OAuth error (an HTML error page, a proxy's reply, bad JSON).
    #[error("unexpected answer from {url} (HTTP {status}): {detail}")]
    UnexpectedResponse {
        /// The URL requested.
        url: String,
        /// HTTP status.
        status: u16,
        /// What was wrong; never contains a token.
        detail: String,
    },
    /// Retries ran out (attempt limit or deadline); `last` is the final failure.
    #[error("gave up after {attempts} attempt{} over {:.1} s", if *.attempts == 1 { "" } else { "s" }, .elapsed.as_secs_f64())]
    GaveUp {
        /// Requests made.
        attempts: u32,
        /// Time spent, sleeps included.
        elapsed: Duration,
        /// The last failure.
        #[source]
        last: Box<Error>,
    },
    /// A value given by the caller cannot be used (authority, tenant, client id, resource, option).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was invalid ("authority", "tenant", ...).
        what: &'static str,
        /// Why, and what is accepted.
        reason: String,
    },
    /// The certificate or key cannot sign client assertions.
    #[error("the certificate cannot be used as a client credential")]
    Certificate(#[source] cba_cert::Error),
    /// Signing the client assertion failed.
    #[error("could not sign the client assertion")]
    Sign(#[source] jsonwebtoken::errors::Error),
    /// Not a JWT (for [`jwt::decode`](crate::jwt::decode) and existing admin tokens).
    #[error("not a usable JWT: {reason}")]
    InvalidToken {
        /// What is wrong with it.
        reason: String,
    },
    /// A token given to us has expired.
    #[error("the token expired at {}; get a new one", crate::jwt::rfc3339(*.expired_at))]
    TokenExpired {
        /// Its `exp`.
        expired_at: OffsetDateTime,
    },
    /// The device code expired before anyone signed in.
    #[error("nobody completed the sign-in within {} minutes; run the command again and sign in while the code is valid", .after.as_secs() / 60)]
    DeviceCodeExpired {
        /// The device code's lifetime.
        after: Duration,
    },
    /// Reading or writing the token cache failed.
    #[error("token cache {}", .path.display())]
    Cache {
        /// The cache file or its lock file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Broad classes of [`Error`], for exit codes and retry decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The identity platform refused us (AADSTS errors, declined sign-in).
    Auth,
    /// The service failed or could not be reached in time (network, 5xx, 429 storms).
    Remote,
    /// Something the caller gave is unusable (certificate, authority, token text, cache path).
    Input,
}

impl Error {
    /// The broad class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Token { status, .. } if *status >= 500 || *status == 429 => ErrorKind::Remote,
            Error::Token { .. } | Error::DeviceCodeExpired { .. } => ErrorKind::Auth,
            Error::Http { .. } | Error::Tls { .. } | Error::UnexpectedResponse { .. } => ErrorKind::Remote,
            Error::GaveUp { last, .. } => match last.kind() {
                ErrorKind::Auth => ErrorKind::Auth,
                _ => ErrorKind::Remote,
            },
            Error::Invalid { .. }
            | Error::Certificate(_)
            | Error::Sign(_)
            | Error::InvalidToken { .. }
            | Error::TokenExpired { .. }
            | Error::Cache { .. } => ErrorKind::Input,
        }
    }

    /// The AADSTS codes of this error, or of the last failure for [`Error::GaveUp`].
    pub fn aadsts(&self) -> &[u32] {
        match self {
            Error::Token { aadsts, .. } => aadsts,
            Error::GaveUp { last, .. } => last.aadsts(),
            _ => &[],
        }
    }

    /// The OAuth `error` value, if this is (or ends with) a token endpoint error.
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            Error::Token { error, .. } => Some(error),
            Error::GaveUp { last, .. } => last.oauth_error(),
            _ => None,
        }
    }

    /// AADSTS700016 / 700027: what Entra says while a new app or certificate replicates.
    pub fn is_replication_pending(&self) -> bool {
        self.aadsts().iter().any(|c| matches!(c, 700016 | 700027))
    }

    /// The refused server certificate, if that is why this failed.
    pub fn tls_failure(&self) -> Option<&cba_http::TlsFailure> {
        match self {
            Error::Tls { failure, .. } => Some(failure),
            Error::GaveUp { last, .. } => last.tls_failure(),
            _ => None,
        }
    }

    pub(crate) fn token(
        status: u16,
        error: String,
        aadsts: Vec<u32>,
        description: String,
        trace_id: Option<String>,
        correlation_id: Option<String>,
    ) -> Error {
        let hint = aadsts.iter().find_map(|&c| hint_for(c)).or_else(|| hint_for_error(&error));
        let (trace_id, correlation_id) = (trace_id.map(Into::into), correlation_id.map(Into::into));
        let description = description.into();
        Error::Token { status, error, aadsts, description, trace_id, correlation_id, hint }
    }
}

fn render_token_error(
    status: u16,
    error: &str,
    aadsts: &[u32],
    description: &str,
    trace_id: &Option<Box<str>>,
    correlation_id: &Option<Box<str>>,
    hint: Option<&str>,
) -> String {
    let mut out = String::from("token request refused: ");
    if !aadsts.is_empty() && !description.starts_with("AADSTS") {
        let codes: Vec<String> = aadsts.iter().map(|c| format!("AADSTS{c}")).collect();
        let _ = write!(out, "{}: ", codes.join(", "));
    }
    if description.is_empty() {
        out.push_str(error);
    } else {
        out.push_str(description);
    }
    let _ = write!(out, " ({error}, HTTP {status})");
    if let Some(hint) = hint {
        let _ = write!(out, "\n  hint: {hint}");
    }
    match (trace_id, correlation_id) {
        (None, None) => {}
        (t, c) => {
            let _ = write!(
                out,
                "\n  trace id: {}, correlation id: {}",
                t.as_deref().unwrap_or("-"),
                c.as_deref().unwrap_or("-")
            );
        }
    }
    out
}

/// Every AADSTS code [`hint_for`] knows, in the order of docs/troubleshooting-aadsts.md.
pub const HINT_CODES: &[u32] = &[
    700027, 700024, 700016, 90002, 7000215, 7000222, 500011, 70011, 700022, 700023, 50012, 50013, 50027, 50048, 50032,
    7000112, 7000229, 700021, 1002012, 700025, 7000218, 65001, 65002, 53003, 70016, 70018, 70019,
];

/// What an AADSTS code probably means for certificate app-only sign-in and admin device-code sign-in, and what
/// to do about it. `None` for codes we have nothing useful to say about.
pub fn hint_for(code: u32) -> Option<&'static str> {
    Some(match code {
        700027 => {
            "Entra does not accept this certificate for this app: it is not registered on the app, the key does not match, \
             or a certificate added moments ago has not replicated yet. Compare the thumbprint in the message with the \
             app's certificates (`cba status`); right after setup or a rotation, retry with `cba token --wait 5m`."
        }
        700024 => {
            "The client assertion is outside its validity window: this machine's clock is probably wrong. Synchronise \
             the clock (NTP) and try again."
        }
        700016 => {
            "No app with this client id exists in this tenant: check --client-id and --tenant (and --cloud). If the app \
             was created moments ago it has not replicated yet: retry with `cba token --wait 5m`."
        }
        90002 => {
            "The tenant does not exist: check --tenant (a tenant id GUID or a verified domain such as \
             contoso.onmicrosoft.com) and --cloud."
        }
        7000215 => {
            "An invalid client secret was sent. cba signs in with certificates, not secrets: something else supplied a \
             secret; use the certificate."
        }
        7000222 => {
            "The client secret has expired. cba signs in with certificates, not secrets: use the certificate (and \
             remove the expired secret from the app)."
        }
        500011 => {
            "The resource's service principal is not in this tenant: for Exchange, the tenant probably has no Exchange \
             Online subscription yet, or --resource/--cloud points at another cloud's URL."
        }
        70011 => {
            "The scope is invalid: app-only tokens need a resource's `/.default` scope (such as \
             https://outlook.office365.com/.default). Check --resource and --cloud."
        }
        700022 => "The scope names several resources: request one resource per token (one --resource).",
        700023 => "The scope names no resource: use a resource URL with `/.default` (check --resource).",
        50012 => {
            "The client assertion failed validation (signature, audience or issuer). Check that the private key \
             belongs to the registered certificate and that the authority matches the tenant's cloud (--cloud, \
             --authority-host)."
        }
        50013 => {
            "The assertion is invalid (malformed, expired, or wrong issuer). Check this machine's clock and that the \
             authority matches the tenant's cloud."
        }
        50027 => "The JWT is malformed or its signature is invalid: check the certificate's private key.",
        50048 => {
            "The assertion's subject does not match its issuer: both must be the app's client id (check --client-id)."
        }
        50032 => {
            "The certificate's RSA key is too weak: make a new 2048-bit (or larger) certificate with `cba cert new` and \
             register it."
        }
        7000112 => {
            "The application is disabled in this tenant: an administrator must enable it (Enterprise applications)."
        }
        7000229 => {
            "The app has no service principal in this tenant (nobody consented to it here): run `cba setup`, or \
             create the service principal (Enterprise applications) and grant admin consent."
        }
        700021 => "The assertion names another app than the request: its iss/sub must be the --client-id sent with it.",
        1002012 => {
            "App-only scopes must end in `/.default` (such as https://outlook.office365.com/.default): check \
             --resource."
        }
        700025 => {
            "The app is marked as a public client and cannot use a certificate: turn off \"Allow public client flows\" \
             for app-only sign-in, or use another app."
        }
        7000218 => {
            "Device-code sign-in needs a public client: with your own --admin-client-id, turn on \"Allow public client \
             flows\" on that app, or use the default Microsoft Graph Command Line Tools client id."
        }
        65001 => {
            "Consent is missing: an administrator must consent to the sign-in client's Graph permissions in this \
             tenant (sign in as a Global or Privileged Role Administrator), or use your own --admin-client-id."
        }
        65002 => {
            "This client id may not request these Graph scopes (the Azure CLI client gets this): use the default \
             Microsoft Graph Command Line Tools client id or your own app."
        }
        53003 => {
            "A Conditional Access policy blocked the sign-in: ask the tenant's administrators to allow this sign-in, \
             or sign in from a compliant device or location."
        }
        70016 => "The sign-in is still pending: the user has not entered the code yet (cba keeps polling).",
        70018 => {
            "The code typed on the sign-in page was wrong: run the command again and type the code exactly as shown."
        }
        70019 => {
            "The sign-in code expired (they last 15 minutes) before the sign-in was completed: run the command again."
        }
        _ => return None,
    })
}

/// A hint for an OAuth `error` value when no AADSTS code has one (device-code terminal states).
pub fn hint_for_error(error: &str) -> Option<&'static str> {
    Some(match error {
        "authorization_declined" => {
            "The person signing in declined (or cancelled) the request: run the command again and approve it, as an \
             administrator who may grant the requested permissions."
        }
        "expired_token" => hint_for(70019)?,
        "bad_verification_code" => hint_for(70018)?,
        "invalid_tenant" => hint_for(90002)?,
        "temporarily_unavailable" => "Entra is temporarily unavailable: try again in a minute.",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_stays_small() {
        // Clippy's `result_large_err` limit (128): every caller's `Result<_, Error>` pays for this size.
        assert!(std::mem::size_of::<super::Error>() < 128, "{}", std::mem::size_of::<super::Error>());
    }
}
