//! The one error type: what the vault or the identity endpoint answered, with what a caller branches on.

use std::time::Duration;

/// What went wrong talking to a vault or getting its token. No message holds a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A certificate URL that cannot be used.
    #[error("{url} is not a Key Vault certificate URL: {reason}")]
    Url {
        /// The text as given.
        url: String,
        /// Why.
        reason: String,
    },
    /// A certificate policy the vault would refuse (checked before anything is sent).
    #[error("the policy for certificate {name} cannot be used: {reason}")]
    InvalidPolicy {
        /// The certificate.
        name: String,
        /// Why.
        reason: String,
    },
    /// 401: the vault did not accept the token (expired, for another audience or tenant). The challenge says
    /// which authority and resource it wants.
    #[error(
        "the vault {vault} refused the token (401{}): {message}",
        challenge_text(authorization.as_deref(), resource.as_deref())
    )]
    Unauthorized {
        /// The vault's root.
        vault: String,
        /// `authorization="…"` of the `WWW-Authenticate: Bearer` challenge (the tenant's authority).
        authorization: Option<String>,
        /// `resource="…"` of the challenge (the audience the token needs).
        resource: Option<String>,
        /// The vault's message.
        message: String,
    },
    /// 403: the identity may not do this (`ForbiddenByRbac`: no role on the vault; or an access policy).
    #[error("the vault {vault} refused to {action} ({code}): {message}")]
    Forbidden {
        /// The vault's root.
        vault: String,
        /// What was asked ("create certificate contoso-exo", "sign with key contoso-exo").
        action: String,
        /// The inner error code when there is one (`ForbiddenByRbac`), else the error code (`Forbidden`).
        code: String,
        /// The vault's message.
        message: String,
    },
    /// 404: no such certificate, version or key (`CertificateNotFound`, `KeyNotFound`).
    #[error("{object} is not in the vault ({code}): {message}")]
    NotFound {
        /// The object asked for (`certificate contoso-exo in https://contoso.vault.azure.net`).
        object: String,
        /// The vault's code.
        code: String,
        /// The vault's message.
        message: String,
    },
    /// Still throttled (429) or failing (5xx) when the attempts or the deadline ran out.
    #[error("the vault {vault} was still answering {status} after {attempts} attempts in {elapsed:?} ({action})")]
    RetriesExhausted {
        /// The vault's root.
        vault: String,
        /// What was asked.
        action: String,
        /// The last status.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
    },
    /// Any other error answer.
    #[error("the vault {vault} answered {status} {code} to {action}: {message}")]
    Service {
        /// The vault's root.
        vault: String,
        /// What was asked.
        action: String,
        /// HTTP status.
        status: u16,
        /// The vault's error code.
        code: String,
        /// The vault's message.
        message: String,
    },
    /// The vault could not be reached (connection refused, DNS, TLS, timeouts past the deadline).
    #[error("cannot reach {url}: {reason}")]
    Transport {
        /// Where (no query).
        url: String,
        /// reqwest's error and its causes.
        reason: String,
        /// The error itself (for a refused TLS certificate: `cba_http::find_tls_failure`).
        #[source]
        source: Option<reqwest::Error>,
    },
    /// The certificate operation ended in `failed` (or `cancelled`).
    #[error("creating certificate {name} in {vault} failed ({status}, {code}): {message}")]
    PendingFailed {
        /// The vault's root.
        vault: String,
        /// The certificate.
        name: String,
        /// `failed` or `cancelled`.
        status: String,
        /// The operation's error code.
        code: String,
        /// The operation's error message.
        message: String,
    },
    /// The certificate operation was still in progress at the deadline.
    #[error(
        "creating certificate {name} in {vault} was still in progress after {waited:?}; rerun later (the vault finishes it on its own)"
    )]
    PendingTimeout {
        /// The vault's root.
        vault: String,
        /// The certificate.
        name: String,
        /// How long we polled.
        waited: Duration,
    },
    /// The answer is not what the vault's API returns.
    #[error("unexpected answer from {url}: {reason}")]
    Response {
        /// Where (no query).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The managed-identity (or instance metadata) endpoint gave no token.
    #[error("no vault token from the {source_name} endpoint {endpoint}: {reason}")]
    Identity {
        /// `managed identity (IDENTITY_ENDPOINT)` or `instance metadata (IMDS)`.
        source_name: &'static str,
        /// The endpoint (no query).
        endpoint: String,
        /// What happened (status and the endpoint's error; never the header secret).
        reason: String,
    },
    /// The token source (another implementation of `cba_http::TokenSource`) failed.
    #[error("no vault token: {0}")]
    Token(String),
}

fn challenge_text(authorization: Option<&str>, resource: Option<&str>) -> String {
    match (authorization, resource) {
        (None, None) => String::new(),
        (a, r) => {
            let mut parts = Vec::new();
            if let Some(a) = a {
                parts.push(format!("authorization {a}"));
            }
            if let Some(r) = r {
                parts.push(format!("resource {r}"));
            }
            format!("; challenge: {}", parts.join(", "))
        }
    }
}

impl Error {
    /// The vault answered 403 with `ForbiddenByRbac` (or another 403): the identity lacks a role.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Error::Forbidden { .. })
    }
}

/// `Bearer authorization="https://login.microsoftonline.com/{tenant}", resource="https://vault.azure.net"` →
/// (authorization, resource).
pub(crate) fn parse_challenge(header: &str) -> (Option<String>, Option<String>) {
    let Some(rest) = header.trim().strip_prefix("Bearer").or_else(|| header.trim().strip_prefix("bearer")) else {
        return (None, None);
    };
    let mut authorization = None;
    let mut resource = None;
    for part in rest.split(',') {
        let Some((key, value)) = part.split_once('=') else { continue };
        let value = value.trim().trim_matches('"').to_string();
        match key.trim().to_ascii_lowercase().as_str() {
            "authorization" | "authorization_uri" => authorization = Some(value),
            "resource" | "scope" => resource = resource.or(Some(value)),
            _ => {}
        }
    }
    (authorization, resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_is_read_and_printed() {
        let (a, r) = parse_challenge(
            r#"Bearer authorization="https://login.microsoftonline.com/72f9", resource="https://vault.azure.net""#,
        );
        assert_eq!(a.as_deref(), Some("https://login.microsoftonline.com/72f9"));
        assert_eq!(r.as_deref(), Some("https://vault.azure.net"));
        assert_eq!(parse_challenge("Basic realm=x"), (None, None));
        let e = Error::Unauthorized { vault: "https://v".into(), authorization: a, resource: r, message: "m".into() };
        assert_eq!(
            e.to_string(),
            "the vault https://v refused the token (401; challenge: authorization \
             https://login.microsoftonline.com/72f9, resource https://vault.azure.net): m"
        );
    }
}
