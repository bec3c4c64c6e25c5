//! The one error type of this crate: what went wrong, with the library error underneath for callers that
//! branch on it. Messages name objects, not commands: the caller adds what to run next.

use std::time::Duration;

use cba_http::BoxError;

/// A lifecycle operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Graph call failed; `doing` says which step for which object.
    #[error("{doing}")]
    Graph {
        /// What was being done ("setup of app \"contoso-exo\" in tenant …").
        doing: String,
        /// Graph's error.
        #[source]
        source: cba_graph::Error,
    },
    /// The token endpoint refused or could not be reached.
    #[error("{doing}")]
    Token {
        /// What was being done.
        doing: String,
        /// The token error (AADSTS codes in [`cba_token::Error::aadsts`]).
        #[source]
        source: cba_token::Error,
    },
    /// A token was issued but lacks what the setup should give it, after waiting `waited`.
    #[error(
        "the Exchange token of app {app_id} has no {} after {} s (roles: [{}]): the grant or role assignment \
         has not reached the token service",
        missing.describe(), waited.as_secs(), roles.join(", ")
    )]
    NotProven {
        /// The app.
        app_id: String,
        /// What is missing.
        missing: Missing,
        /// The token's `roles`.
        roles: Vec<String>,
        /// How long the proof waited.
        waited: Duration,
    },
    /// The profile store failed.
    #[error("cannot save the profile {store}")]
    Store {
        /// The store's name for itself.
        store: String,
        /// Its error.
        #[source]
        source: BoxError,
    },
    /// The key store failed (open a certificate, make the next one).
    #[error("{doing}")]
    Keys {
        /// What was being done.
        doing: String,
        /// The store's error.
        #[source]
        source: BoxError,
    },
    /// The profile names another app than the one asked for.
    #[error("{store} is the profile of app {profile_app:?}, not {requested:?}")]
    ProfileOfOtherApp {
        /// The store.
        store: String,
        /// The app it records.
        profile_app: String,
        /// The app asked for.
        requested: String,
    },
    /// The app the profile recorded has been renamed since.
    #[error("the profile {store} names app {app_object_id}, which is now called {now_named:?}, not {expected:?}")]
    RecordedAppRenamed {
        /// The store.
        store: String,
        /// The app.
        app_object_id: String,
        /// Its name now.
        now_named: String,
        /// The name expected.
        expected: String,
    },
    /// The profile's setup did not finish.
    #[error("the setup of app {app_name:?} did not finish")]
    Incomplete {
        /// The app.
        app_name: String,
    },
    /// The certificate has expired: the app cannot sign its own addKey proof.
    #[error("the current certificate {thumbprint} expired on {not_after}: the app cannot sign its own addKey proof")]
    CertificateExpired {
        /// Its thumbprint.
        thumbprint: String,
        /// When it expired.
        not_after: String,
    },
    /// A certificate is not the one the profile records.
    #[error("{location} holds certificate {found}, but the profile expects {expected}")]
    CertificateMismatch {
        /// Where it was read from.
        location: String,
        /// What it holds.
        found: String,
        /// What the profile says.
        expected: String,
    },
    /// The certificate cannot be registered (expired, no key, not RSA, too weak).
    #[error("{location}: {problem}")]
    UnusableCertificate {
        /// Where it came from.
        location: String,
        /// What is wrong.
        problem: cba_cert::Problem,
    },
    /// The credential acts in another tenant than the one named.
    #[error("the administrator's credential acts in tenant {actual}, not in {expected}")]
    WrongTenant {
        /// The tenant named.
        expected: String,
        /// The tenant the credential acts in.
        actual: String,
    },
    /// An interrupted setup may have created the app moments ago; it is not visible yet, so teardown cannot
    /// tell whether it exists.
    #[error(
        "the setup of app {app_name:?} was interrupted moments ago: the app may exist without being listed yet \
         (Entra replicates new apps within minutes), so nothing was removed"
    )]
    MayStillExist {
        /// The app.
        app_name: String,
    },
    /// Nothing could confirm which tenant the administrator's token acts in.
    #[error(
        "cannot confirm that the administrator's token acts in tenant {tenant}: it names no tenant id, and Graph \
         refused GET /organization"
    )]
    TenantUnconfirmed {
        /// The tenant named.
        tenant: String,
        /// Graph's refusal.
        #[source]
        source: cba_graph::Error,
    },
    /// An Exchange cmdlet failed; `doing` says which, as whom.
    #[error("{doing}")]
    Exchange {
        /// What was being done ("New-RoleGroup as administrator admin@contoso.onmicrosoft.com").
        doing: String,
        /// Exchange's error.
        #[source]
        source: cba_exo::Error,
    },
    /// An Exchange object is not what the request asks for (a role group with other roles, a scope with
    /// another filter, a group that does not exist).
    #[error("{object}: {problem}")]
    ExchangeObject {
        /// The object.
        object: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The tenant is dehydrated: custom role groups need `Enable-OrganizationCustomization` first.
    #[error(
        "{cmdlet} needs the organization to be customizable: this tenant is dehydrated, and \
         Enable-OrganizationCustomization has not been run (it changes the whole organization and may take a while)"
    )]
    ExchangeCustomizationNeeded {
        /// The cmdlet refused.
        cmdlet: String,
        /// The refusal.
        #[source]
        source: cba_exo::Error,
    },
    /// The role group membership did not reach the app's own Exchange calls before the deadline.
    #[error(
        "{app_id} is a member of its Exchange role group, but Exchange still refused {cmdlet} to it after {} s: \
         role group changes take time to apply",
        waited.as_secs()
    )]
    ExchangeNotEffective {
        /// The app.
        app_id: String,
        /// The proof cmdlet.
        cmdlet: String,
        /// How long the proof waited.
        waited: Duration,
    },
    /// A fleet operation on a profile whose app is single-tenant.
    #[error("app {app_name:?} (appId {app_id}) is single-tenant: customer tenants cannot consent to it")]
    NotMultiTenant {
        /// The app.
        app_name: String,
        /// Its client id.
        app_id: String,
    },
    /// A tenant the fleet does not list.
    #[error("tenant {tenant} is not in the fleet of app {app_name:?}")]
    NotInFleet {
        /// The tenant named.
        tenant: String,
        /// The home app.
        app_name: String,
    },
    /// A rotation's new certificate got no token in some customer tenants; nothing was switched.
    #[error(
        "the new certificate got no Exchange token in {} customer tenant(s): {}; the old certificate stays the \
         current one",
        failed.len(),
        failed.iter().map(|(t, why)| format!("{t}: {why}")).collect::<Vec<_>>().join("; ")
    )]
    NotProvenInTenants {
        /// (tenant id, why) per tenant.
        failed: Vec<(String, String)>,
    },
    /// The customer's admin had not consented when the wait ended.
    #[error(
        "no consent in tenant {tenant} after {} s: the token endpoint still answers that the app has no service \
         principal there (AADSTS700016/7000229); the customer's admin consents at {consent_url}",
        waited.as_secs()
    )]
    ConsentPending {
        /// The tenant.
        tenant: String,
        /// Where the customer's admin consents.
        consent_url: String,
        /// How long it was waited for.
        waited: Duration,
    },
    /// A value that cannot be used.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// What was given.
        what: &'static str,
        /// The value.
        value: String,
        /// Why it is refused.
        reason: String,
    },
}

/// What a proof token lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Missing {
    /// Exchange.ManageAsApp in `roles`.
    Grant,
    /// An assigned Entra role in `wids`.
    Role,
}

impl Missing {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Missing::Grant => "Exchange.ManageAsApp in `roles`",
            Missing::Role => "an assigned Entra role in `wids`",
        }
    }
}

impl Error {
    /// The Graph error underneath, if any.
    pub fn graph(&self) -> Option<&cba_graph::Error> {
        match self {
            Error::Graph { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The token error underneath, if any.
    pub fn token(&self) -> Option<&cba_token::Error> {
        match self {
            Error::Token { source, .. } => Some(source),
            _ => None,
        }
    }

    pub(crate) fn graph_in(doing: impl Into<String>) -> impl FnOnce(cba_graph::Error) -> Error {
        let doing = doing.into();
        move |source| Error::Graph { doing, source }
    }

    pub(crate) fn token_in(doing: impl Into<String>) -> impl FnOnce(cba_token::Error) -> Error {
        let doing = doing.into();
        move |source| Error::Token { doing, source }
    }

    pub(crate) fn store(store: &dyn crate::ProfileStore) -> impl FnOnce(BoxError) -> Error + '_ {
        move |source| Error::Store { store: store.describe(), source }
    }
}
