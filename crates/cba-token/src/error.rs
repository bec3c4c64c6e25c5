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
    #[error("{}", render_token_error(*.status, .error, .aadsts, .description, .trace_id, .correlation_id, *.meaning))]
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
        /// What the code probably means for certificate and device-code sign-in (see [`aadsts_meaning`]).
        /// What to do about it is the caller's to say: the `cba` CLI keys its hints on [`Error::aadsts`].
        meaning: Option<&'static str>,
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
    /// Signing the client assertion failed: the key cannot sign the scheme asked for, or its store (a PKCS#11
    /// token, a vault) failed; [`cba_cert::Error::Signer`] carries the store's own error.
    #[error("could not sign the client assertion")]
    Sign(#[source] cba_cert::Error),
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
    /// A token given to us has not expired, but will before the work it is for can finish.
    #[error(
        "the token expires at {} (in {} s), but it must last at least {} s; get a new one",
        crate::jwt::rfc3339(*.expires_at),
        .left.as_secs(),
        .needed.as_secs()
    )]
    TokenExpiresSoon {
        /// Its `exp`.
        expires_at: OffsetDateTime,
        /// Time it had left when checked.
        left: Duration,
        /// The minimum lifetime asked for.
        needed: Duration,
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
    /// The token cache folder or file could be changed by someone else, so its tokens cannot be trusted: it is
    /// neither read nor written (Unix only).
    #[error("the token cache {} {exposure}; {}", .path.display(), exposure.fix(.path))]
    CacheNotPrivate {
        /// The folder or file at fault.
        path: PathBuf,
        /// What is wrong with it.
        exposure: CacheExposure,
    },
    /// The token cache file was written in a newer format than this version reads: it is left as it is (reads
    /// miss, writes are refused) rather than overwritten.
    #[error(
        "the token cache {} has format version {found}, newer than this version of cba-token reads ({supported}); \
         it is left untouched and not used",
        .path.display()
    )]
    CacheNewerFormat {
        /// The cache file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this crate reads and writes.
        supported: u32,
    },
}

/// Why a token cache folder or file is not private ([`Error::CacheNotPrivate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheExposure {
    /// Group or others may write it (its permission bits).
    Writable {
        /// The permission bits (such as `0o777`).
        mode: u32,
        /// Whether it is the folder (else the file).
        folder: bool,
    },
    /// Another user owns it.
    OtherOwner {
        /// Its owner's uid.
        owner: u32,
        /// This process's effective uid.
        me: u32,
    },
}

impl CacheExposure {
    fn fix(&self, path: &std::path::Path) -> String {
        match self {
            CacheExposure::Writable { folder: true, .. } => format!("make it private: chmod 700 {}", path.display()),
            CacheExposure::Writable { folder: false, .. } => format!("make it private: chmod 600 {}", path.display()),
            CacheExposure::OtherOwner { .. } => {
                format!(
                    "use a cache folder of your own, or remove {} (and chmod 700 the folder you make)",
                    path.display()
                )
            }
        }
    }
}

impl std::fmt::Display for CacheExposure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheExposure::Writable { mode, .. } => {
                write!(f, "can be written by other users (mode {:03o})", mode & 0o7777)
            }
            CacheExposure::OtherOwner { owner, me } => write!(f, "belongs to another user (uid {owner}, not {me})"),
        }
    }
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
            | Error::TokenExpiresSoon { .. }
            | Error::Cache { .. }
            | Error::CacheNotPrivate { .. }
            | Error::CacheNewerFormat { .. } => ErrorKind::Input,
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
        let meaning = aadsts.iter().find_map(|&c| aadsts_meaning(c)).or_else(|| oauth_error_meaning(&error));
        let (trace_id, correlation_id) = (trace_id.map(Into::into), correlation_id.map(Into::into));
        let description = description.into();
        Error::Token { status, error, aadsts, description, trace_id, correlation_id, meaning }
    }
}

fn render_token_error(
    status: u16,
    error: &str,
    aadsts: &[u32],
    description: &str,
    trace_id: &Option<Box<str>>,
    correlation_id: &Option<Box<str>>,
    meaning: Option<&str>,
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
    if let Some(meaning) = meaning {
        let _ = write!(out, "\n  probable cause: {meaning}");
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

/// Every AADSTS code [`aadsts_meaning`] knows, in the order of docs/troubleshooting-aadsts.md.
pub const AADSTS_CODES: &[u32] = &[
    700027, 700024, 700016, 90002, 7000215, 7000222, 500011, 70011, 700022, 700023, 50012, 50013, 50027, 50048, 50032,
    7000112, 7000229, 700021, 1002012, 700025, 7000218, 65001, 65002, 53003, 70016, 70018, 70019,
];

/// What an AADSTS code probably means for certificate app-only sign-in and device-code sign-in, in neutral
/// terms (no command names: what to run next is the caller's to say). `None` for codes not in [`AADSTS_CODES`].
pub fn aadsts_meaning(code: u32) -> Option<&'static str> {
    Some(match code {
        700027 => {
            "Entra does not accept this certificate for this app: it is not registered on the app, the key does not \
             match, or a certificate added moments ago has not replicated yet (Entra may take minutes to replicate \
             a new certificate)."
        }
        700024 => "The client assertion is outside its validity window: this machine's clock is probably wrong.",
        700016 => {
            "No app with this client id exists in this tenant (in this cloud). An app created moments ago may not \
             have replicated yet: Entra may take minutes to replicate it."
        }
        90002 => "The tenant does not exist in this cloud (a tenant is a tenant id GUID or a verified domain).",
        7000215 => "An invalid client secret was sent, where a certificate credential was expected.",
        7000222 => "The client secret has expired.",
        500011 => {
            "The resource's service principal is not in this tenant: for Exchange, the tenant probably has no \
             Exchange Online subscription yet, or the resource URL belongs to another cloud."
        }
        70011 => {
            "The scope is invalid: app-only tokens need a resource's `/.default` scope (such as \
             https://outlook.office365.com/.default)."
        }
        700022 => "The scope names several resources: a token is for one resource.",
        700023 => "The scope names no resource: it needs a resource URL with `/.default`.",
        50012 => {
            "The client assertion failed validation (signature, audience or issuer): the private key may not belong \
             to the registered certificate, or the authority may not be the tenant's cloud."
        }
        50013 => "The assertion is invalid (malformed, expired, or wrong issuer).",
        50027 => "The JWT is malformed or its signature is invalid.",
        50048 => "The assertion's subject does not match its issuer: both must be the app's client id.",
        50032 => "The certificate's RSA key is too weak: Entra needs 2048 bits or more.",
        7000112 => "The application is disabled in this tenant.",
        7000229 => "The app has no service principal in this tenant (nobody consented to it here).",
        700021 => "The assertion names another app than the request: its iss/sub must be the client id sent with it.",
        1002012 => "App-only scopes must end in `/.default` (such as https://outlook.office365.com/.default).",
        700025 => "The app is marked as a public client, and a public client cannot use a certificate.",
        7000218 => "Device-code sign-in needs a public client, and this client is not one.",
        65001 => "Consent is missing: nobody has consented to the sign-in client's Graph permissions in this tenant.",
        65002 => "This client id may not request these Graph scopes (the Azure CLI client gets this).",
        53003 => "A Conditional Access policy blocked the sign-in.",
        70016 => "The sign-in is still pending: the user has not entered the code yet.",
        70018 => "The code typed on the sign-in page was wrong.",
        70019 => "The sign-in code expired (they last 15 minutes) before the sign-in was completed.",
        _ => return None,
    })
}

/// What an OAuth `error` value means when no AADSTS code says more (device-code terminal states).
pub fn oauth_error_meaning(error: &str) -> Option<&'static str> {
    Some(match error {
        "authorization_declined" => "The person signing in declined (or cancelled) the request.",
        "expired_token" => aadsts_meaning(70019)?,
        "bad_verification_code" => aadsts_meaning(70018)?,
        "invalid_tenant" => aadsts_meaning(90002)?,
        "temporarily_unavailable" => "Entra is temporarily unavailable.",
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
