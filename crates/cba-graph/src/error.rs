//! The one error type of this crate.

use std::time::Duration;

use cba_http::BoxError;

use crate::provision::Step;
use crate::wellknown;

/// Anything a Graph call or a provisioning step can fail with.
///
/// Branch on the data, not on the text: [`Error::api`] gives Graph's answer, and the helpers
/// ([`is_not_found`](Error::is_not_found), [`is_permission_denied`](Error::is_permission_denied),
/// [`required_role_hint`](Error::required_role_hint)) look through the wrapping variants
/// ([`Error::Step`], [`Error::RetriesExhausted`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Graph answered with an error body (`{"error":{"code","message","innerError":{"request-id"}}}`).
    #[error(
        "Graph {method} {path}: {status} {code}: {message} (request-id {request_id}, client-request-id {client_request_id})",
        request_id = request_id.as_deref().unwrap_or("none")
    )]
    #[non_exhaustive]
    Api {
        /// HTTP method of the failed request.
        method: String,
        /// Path below `/v1.0`, query included.
        path: String,
        /// HTTP status.
        status: u16,
        /// `error.code` (`Request_ResourceNotFound`, `Authorization_RequestDenied`, ...).
        code: String,
        /// `error.message`.
        message: String,
        /// Graph's `request-id` (header, else `innerError`), for a support ticket.
        request_id: Option<String>,
        /// The `client-request-id` we sent with this attempt.
        client_request_id: String,
        /// `error.details[].code` (e.g. `NoBackingApplicationObject`).
        details_codes: Vec<String>,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// The request did not get an answer (connection refused, timeout, reset).
    #[error("Graph {method} {path}: no answer from the server")]
    Transport {
        /// HTTP method.
        method: String,
        /// Path below `/v1.0`.
        path: String,
        /// What reqwest saw.
        #[source]
        source: reqwest::Error,
    },
    /// The server's TLS certificate was refused (not retried: it fails the same way every time). Typically a
    /// TLS-inspecting proxy whose root CA is not trusted; see [`cba_http::HttpConfig::add_root_certificates`].
    #[error("Graph {method} {path}: the server's TLS certificate was refused: {failure}")]
    Tls {
        /// HTTP method.
        method: String,
        /// Path below `/v1.0`.
        path: String,
        /// What was refused.
        failure: cba_http::TlsFailure,
    },
    /// The token source could not give a bearer token for Graph.
    #[error("no Microsoft Graph access token")]
    Token {
        /// The token source's error.
        #[source]
        source: BoxError,
    },
    /// The proof signer could not sign the addKey/removeKey proof.
    #[error("could not sign the proof of possession for app object {app_object_id}")]
    Proof {
        /// The application whose key was to change.
        app_object_id: String,
        /// The signer's error.
        #[source]
        source: BoxError,
    },
    /// The retry policy ran out (attempts or deadline) while the last failure was still worth retrying:
    /// throttling, a 5xx, or an object that had not replicated yet.
    #[error("Graph {method} {path}: gave up after {attempts} attempts in {elapsed:.1?}")]
    RetriesExhausted {
        /// HTTP method.
        method: String,
        /// Path below `/v1.0`.
        path: String,
        /// Attempts made.
        attempts: u32,
        /// Time spent, waits included.
        elapsed: Duration,
        /// The last failure.
        #[source]
        last: Box<Error>,
    },
    /// A 2xx answer whose body is not what Graph documents.
    #[error("Graph {method} {path}: unexpected response body")]
    Decode {
        /// HTTP method.
        method: String,
        /// Path below `/v1.0`.
        path: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A caller-supplied value that cannot be sent (an id that is not a GUID, an unusable base URL).
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// What was given.
        what: &'static str,
        /// The value.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A role name that is not one of [`wellknown::ROLES`].
    #[error("unknown Entra role {name:?}; use one of: {}", known.join(", "))]
    UnknownRole {
        /// The name given.
        name: String,
        /// The names accepted.
        known: Vec<&'static str>,
    },
    /// More than one application has the display name: setup refuses to guess.
    #[error(
        "{} applications are named {display_name:?} (appIds {}); delete or rename all but one, or pick another name",
        app_ids.len(), app_ids.join(", ")
    )]
    AmbiguousApplication {
        /// The name searched for.
        display_name: String,
        /// The appIds of every match.
        app_ids: Vec<String>,
    },
    /// The tenant has no Office 365 Exchange Online service principal (or it lacks Exchange.ManageAsApp).
    #[error(
        "the tenant has no usable Office 365 Exchange Online service principal (appId {}): {reason}; \
         check that the tenant has an Exchange Online licence",
        wellknown::EXCHANGE_APP_ID
    )]
    ExchangeNotAvailable {
        /// What is missing.
        reason: String,
    },
    /// Removing these keys would leave the application without any certificate.
    #[error("refusing to remove the last certificate of app object {app_object_id}: register the new one first")]
    LastKey {
        /// The application.
        app_object_id: String,
    },
    /// A provisioning step failed; `source` says how.
    #[error("{step} failed for {object}")]
    Step {
        /// The step.
        step: Step,
        /// The object concerned (app name, appId, service principal id).
        object: String,
        /// The failure.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// The innermost error, through [`Error::Step`] and [`Error::RetriesExhausted`].
    pub fn root(&self) -> &Error {
        match self {
            Error::Step { source, .. } => source.root(),
            Error::RetriesExhausted { last, .. } => last.root(),
            other => other,
        }
    }

    /// Graph's answer, if the (innermost) failure is one: `(status, code, message)`.
    pub fn api(&self) -> Option<(u16, &str, &str)> {
        match self.root() {
            Error::Api { status, code, message, .. } => Some((*status, code, message)),
            _ => None,
        }
    }

    /// The refused server certificate, if that is why the (innermost) failure happened.
    pub fn tls_failure(&self) -> Option<&cba_http::TlsFailure> {
        match self.root() {
            Error::Tls { failure, .. } => Some(failure),
            _ => None,
        }
    }

    /// Graph's `request-id` of the failed attempt, for a support ticket.
    pub fn request_id(&self) -> Option<&str> {
        match self.root() {
            Error::Api { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// 404 `Request_ResourceNotFound` (or any 404).
    pub fn is_not_found(&self) -> bool {
        matches!(self.api(), Some((404, _, _)))
    }

    /// 403 `Authorization_RequestDenied`: the signed-in admin lacks a role or the token lacks a scope.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self.api(), Some((403, code, _)) if code == "Authorization_RequestDenied")
    }

    /// Throttled (429) at the end.
    pub fn is_throttled(&self) -> bool {
        matches!(self.api(), Some((429, _, _)))
    }

    /// For a permission failure, the Entra role the admin needs for that call (docs/wire-formats.md §1):
    /// Privileged Role Administrator for directory role assignments, Application Administrator or
    /// Cloud Application Administrator for applications, service principals and app role grants.
    pub fn required_role_hint(&self) -> Option<&'static str> {
        if !self.is_permission_denied() {
            return None;
        }
        let Error::Api { path, .. } = self.root() else { return None };
        Some(required_role_for(path))
    }

    /// Whether a write may have been applied although we got no success: a 5xx or a timeout.
    pub(crate) fn is_ambiguous_write(&self) -> bool {
        match self.root() {
            Error::Api { status, .. } => *status >= 500 || *status == 408,
            Error::Transport { source, .. } => !source.is_connect(),
            _ => false,
        }
    }

    pub(crate) fn in_step(self, step: Step, object: impl Into<String>) -> Error {
        match self {
            // Already names its own problem and fix.
            e @ (Error::AmbiguousApplication { .. }
            | Error::ExchangeNotAvailable { .. }
            | Error::UnknownRole { .. }
            | Error::LastKey { .. }
            | Error::Step { .. }) => e,
            e => Error::Step { step, object: object.into(), source: Box::new(e) },
        }
    }
}

/// The Entra role an admin needs to call `path` (below `/v1.0`).
pub fn required_role_for(path: &str) -> &'static str {
    if path.starts_with("/roleManagement") {
        "Privileged Role Administrator (or Global Administrator)"
    } else {
        "Application Administrator or Cloud Application Administrator (or Global Administrator)"
    }
}
