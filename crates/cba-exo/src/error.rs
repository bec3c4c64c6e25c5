//! The one error type of this crate.

use std::time::Duration;

/// What a "not allowed" answer means: which permission and role the app needs, and that roles reach Exchange late.
pub const NOT_ALLOWED_HINT: &str = "the app has no Exchange permission for this cmdlet: it needs the Exchange.ManageAsApp \
application permission (admin-consented) AND an Entra role that covers the cmdlet (Exchange Administrator, or e.g. \
Exchange Recipient Administrator / Global Reader for read-only cmdlets); a role assigned minutes ago can take up to an \
hour to reach Exchange";

/// What an "unsupported role" answer means: which Entra roles Exchange accepts for app-only access.
pub const UNSUPPORTED_ROLE_HINT: &str = "Exchange accepts only some Entra roles for app-only access (Exchange \
Administrator, Global Reader, Exchange Recipient Administrator, Compliance/Security Administrator or Reader, \
Helpdesk Administrator, Global Administrator)";

/// One entry of the service's `error.details[]`: its `message` is `code|exception type|text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdletErrorDetail {
    /// The Exchange error code (`Ex6F9304`), empty if the message had no `|`.
    pub code: String,
    /// The .NET exception type (`Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException`).
    pub exception_type: String,
    /// The human text PowerShell would print.
    pub text: String,
}

impl CmdletErrorDetail {
    /// Split `code|exception type|text` (the text may itself contain `|`). A message without two `|` is all text.
    pub fn parse(message: &str) -> CmdletErrorDetail {
        let mut parts = message.splitn(3, '|');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(code), Some(exception_type), Some(text)) => CmdletErrorDetail {
                code: code.trim().to_string(),
                exception_type: exception_type.trim().to_string(),
                text: text.trim().to_string(),
            },
            _ => CmdletErrorDetail { code: String::new(), exception_type: String::new(), text: message.to_string() },
        }
    }

    /// The exception type's last segment (`ManagementObjectNotFoundException`).
    pub fn exception_name(&self) -> &str {
        self.exception_type.rsplit('.').next().unwrap_or(&self.exception_type)
    }
}

/// Everything that can go wrong running a cmdlet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The service ran (or refused to run) the cmdlet and answered with its error body.
    #[error("{cmdlet} failed (HTTP {status} {code}): {}", cmdlet_error_text(message, details))]
    Cmdlet {
        /// The cmdlet.
        cmdlet: String,
        /// The HTTP status.
        status: u16,
        /// `error.code` (`NotFound`, `BadRequest`, ...).
        code: String,
        /// `error.message` (often just "Error executing cmdlet").
        message: String,
        /// `error.details[]`, parsed.
        details: Vec<CmdletErrorDetail>,
        /// The `client-request-id` we sent, for a support ticket.
        client_request_id: String,
    },

    /// 401 "User is not allowed to call <cmdlet>": the app lacks an Exchange role or Exchange.ManageAsApp.
    #[error("Exchange refused {cmdlet}: \"{message}\"; {hint}")]
    NotAllowed {
        /// The cmdlet.
        cmdlet: String,
        /// The service's message.
        message: String,
        /// What to check ([`NOT_ALLOWED_HINT`]).
        hint: &'static str,
    },

    /// The app's Entra role is not one Exchange supports for app-only access.
    #[error("Exchange refused {cmdlet}: \"{message}\"; {hint}")]
    UnsupportedRole {
        /// The cmdlet.
        cmdlet: String,
        /// The service's message ("The role assigned to application … isn't supported in this scenario.").
        message: String,
        /// The application id quoted in the message, if any.
        app_id: Option<String>,
        /// What to check ([`UNSUPPORTED_ROLE_HINT`]).
        hint: &'static str,
    },

    /// 401 and not a permission refusal: the token is not accepted (expired, wrong audience or tenant, …). When
    /// the token source could give another token, it was asked for one and the request sent again once
    /// (`renewed`); a fixed token ([`StaticToken`](cba_http::StaticToken)) cannot be renewed, so it is sent once.
    #[error(
        "Exchange rejected the access token for {cmdlet} (HTTP 401{}){}; check that it was issued for the Exchange \
         resource (scope https://outlook.office365.com/.default) in this tenant{}",
        detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default(),
        if *renewed { " even after renewing it" } else { "" },
        if *renewed { "" } else { " and has not expired (the token source gave the same token again: it cannot be renewed)" }
    )]
    Unauthorized {
        /// The cmdlet.
        cmdlet: String,
        /// The service's message or `WWW-Authenticate` error, if any.
        detail: Option<String>,
        /// Whether a new token was obtained and refused too (false: the source gave the same token again).
        renewed: bool,
    },

    /// Still throttled (429) when the retry budget ran out.
    #[error(
        "Exchange throttled {cmdlet} (HTTP 429) and kept doing so for {attempts} attempts{}; wait and retry, or lower the rate",
        retry_after.map(|d| format!(" (last Retry-After {} s)", d.as_secs())).unwrap_or_default()
    )]
    Throttled {
        /// The cmdlet.
        cmdlet: String,
        /// Attempts made.
        attempts: u32,
        /// The last `Retry-After`.
        retry_after: Option<Duration>,
    },

    /// A failure status without the service's error body (a gateway page, an empty 5xx after the retries).
    #[error("Exchange answered HTTP {status} to {cmdlet}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Status {
        /// The cmdlet.
        cmdlet: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body, for diagnosis.
        body: String,
    },

    /// A cmdlet that changes something (any verb but Get or Test, see [`is_read_only`](crate::is_read_only))
    /// failed after the request was sent, in a way that does not tell whether it ran: a 5xx other than a 503
    /// with `Retry-After`, a timeout, a connection lost before the answer was read. It is not sent again, since
    /// running it twice can do the change twice (a second `New-*` fails or makes a duplicate, an
    /// `Add-*` adds twice). Look with the matching Get- cmdlet
    /// ([`matching_get_cmdlet`](crate::matching_get_cmdlet)) before running it again.
    #[error(
        "the outcome of {cmdlet} is unknown: after the request was sent, {reason}; it may or may not have run, and \
         was not sent again (a change could be made twice). Check with {} before running it again{}",
        check_with.as_deref().unwrap_or("the matching Get- cmdlet"),
        if client_request_id.is_empty() { String::new() } else { format!(" (client-request-id {client_request_id})") }
    )]
    OutcomeUnknown {
        /// The cmdlet.
        cmdlet: String,
        /// What happened after the request was sent (`Exchange answered HTTP 500 InternalServerError ("…")`, `no
        /// answer came before the timeout`).
        reason: String,
        /// The HTTP status, when an answer came.
        status: Option<u16>,
        /// The cmdlet that shows the current state (`Get-Mailbox` for `Set-Mailbox`), by the naming convention.
        check_with: Option<String>,
        /// The `client-request-id` of the last attempt, for a support ticket.
        client_request_id: String,
        /// The transport error, when no answer came.
        #[source]
        source: Option<reqwest::Error>,
    },

    /// The server's TLS certificate was refused. Not retried (it fails the same way every time), and never an
    /// unknown outcome: the handshake failed before any of the request was sent. Typically a TLS-inspecting proxy
    /// whose root CA is not trusted; see [`cba_http::HttpConfig::add_root_certificates`].
    #[error("could not reach Exchange at {url}: the server's TLS certificate was refused: {failure}")]
    Tls {
        /// The URL.
        url: String,
        /// What was refused.
        failure: cba_http::TlsFailure,
    },

    /// The request did not get a response (DNS, connection, timeout), after the retries.
    #[error("could not reach Exchange at {url}")]
    Transport {
        /// The URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },

    /// The token source failed.
    #[error("could not get an Exchange access token")]
    Token {
        /// Why.
        #[source]
        source: cba_http::BoxError,
    },

    /// A response we could not understand.
    #[error("unexpected answer from Exchange to {cmdlet}: {message}")]
    Protocol {
        /// The cmdlet.
        cmdlet: String,
        /// What was wrong.
        message: String,
    },

    /// Parameters that cannot be sent.
    #[error("invalid cmdlet parameters: {message}")]
    Parameters {
        /// What is wrong.
        message: String,
    },

    /// The client was built with missing or bad settings.
    #[error("invalid Exchange client settings: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },

    /// The base URL is not https (or http on loopback).
    #[error(transparent)]
    Endpoint(#[from] cba_http::InsecureEndpoint),
}

fn cmdlet_error_text(message: &str, details: &[CmdletErrorDetail]) -> String {
    let texts: Vec<String> =
        details
            .iter()
            .filter(|d| !d.text.is_empty())
            .map(|d| {
                if d.exception_type.is_empty() {
                    d.text.clone()
                } else {
                    format!("{} ({})", d.text, d.exception_name())
                }
            })
            .collect();
    if texts.is_empty() { message.to_string() } else { texts.join("; ") }
}

impl Error {
    /// The HTTP status, for errors that have one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Cmdlet { status, .. } | Error::Status { status, .. } => Some(*status),
            Error::OutcomeUnknown { status, .. } => *status,
            Error::NotAllowed { .. } | Error::UnsupportedRole { .. } | Error::Unauthorized { .. } => Some(401),
            Error::Throttled { .. } => Some(429),
            _ => None,
        }
    }

    /// The refused server certificate, for [`Error::Tls`].
    pub fn tls_failure(&self) -> Option<&cba_http::TlsFailure> {
        match self {
            Error::Tls { failure, .. } => Some(failure),
            _ => None,
        }
    }

    /// Whether a write cmdlet may have run although it failed ([`Error::OutcomeUnknown`]): look before retrying.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Error::OutcomeUnknown { .. })
    }

    /// Whether the app was authenticated but lacks permission ([`Error::NotAllowed`], [`Error::UnsupportedRole`]).
    pub fn is_permission(&self) -> bool {
        matches!(self, Error::NotAllowed { .. } | Error::UnsupportedRole { .. })
    }

    /// Whether the service could not be reached or kept failing (transport, throttling, 5xx, an unknown outcome).
    pub fn is_remote(&self) -> bool {
        match self {
            Error::Transport { .. }
            | Error::Tls { .. }
            | Error::Throttled { .. }
            | Error::Protocol { .. }
            | Error::OutcomeUnknown { .. } => true,
            Error::Status { status, .. } | Error::Cmdlet { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_messages_split_in_three() {
        let d = CmdletErrorDetail::parse(
            "Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The object 'a|b' couldn't be found.",
        );
        assert_eq!(d.code, "Ex6F9304");
        assert_eq!(d.exception_name(), "ManagementObjectNotFoundException");
        assert_eq!(d.text, "The object 'a|b' couldn't be found.");
        let plain = CmdletErrorDetail::parse("just text");
        assert_eq!((plain.code.as_str(), plain.text.as_str()), ("", "just text"));
    }
}
