#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![allow(
    clippy::result_large_err,
    reason = "an Error ends a network round trip, so its size costs nothing; callers match on its variants"
)]

pub mod admin;
mod credential;
mod error;
pub mod exchange_roles;
pub mod fleet;
pub mod profile;
pub mod progress;
mod prove;
pub mod rotate;
mod services;
pub mod setup;
pub mod status;
pub mod teardown;

use std::time::Duration;

use cba_graph::ProofSigner;
use cba_token::{AssertionAlg, AssertionOptions};

pub use admin::{AdminCredential, AdminSession};
pub use credential::Credential;
pub use error::{Error, Missing};
pub use profile::{CertificateRef, MemoryStore, Profile, ProfileStore};
pub use progress::{Event, Progress, Silent};
pub use prove::{Proof, TokenClaims, prove};
pub use rotate::{KeyStore, RotateReport, RotateRequest, rotate};
pub use services::Services;
pub use setup::{SetupReport, SetupRequest, setup};
pub use status::{StatusReport, StatusRequest, status};
pub use teardown::{TeardownReport, TeardownRequest, teardown};

/// Signs addKey/removeKey proofs with a certificate of the app: `aud` 00000002-0000-0000-c000-000000000000,
/// `iss` the app's object id, `nbf` now (by `clock`), `exp` ten minutes later; RS256 with `x5t`, the form of
/// Microsoft's own example (docs/wire-formats.md §3).
pub struct CertProof {
    credential: Credential,
    clock: std::sync::Arc<dyn cba_http::Clock>,
}

impl CertProof {
    /// Proofs by `credential` (a file's key or one that signs in a token), timed by `clock` (the
    /// operation's, so a test clock moves them too).
    pub fn new(credential: impl Into<Credential>, clock: std::sync::Arc<dyn cba_http::Clock>) -> CertProof {
        CertProof { credential: credential.into(), clock }
    }
}

impl std::fmt::Debug for CertProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CertProof").field(self.credential.certificate()).finish()
    }
}

impl ProofSigner for CertProof {
    fn proof(&self, app_object_id: &str) -> Result<String, cba_graph::BoxError> {
        let signer = self.credential.client_certificate("proof", app_object_id)?;
        let options = AssertionOptions {
            alg: AssertionAlg::Rs256,
            lifetime: Duration::from_secs(600),
            ..AssertionOptions::default()
        };
        let jwt = signer.sign_assertion(cba_graph::wellknown::PROOF_AUDIENCE, &options, self.clock.now())?;
        Ok(jwt.expose().to_string())
    }
}

/// The certificate's key credential in cba-graph's type (the same Graph JSON; neither crate depends on the
/// other, so the conversion lives here, where both meet).
pub fn key_credential(certificate: &cba_cert::Certificate) -> cba_graph::KeyCredential {
    let json = serde_json::to_value(certificate.key_credential()).expect("a key credential serializes");
    serde_json::from_value(json).expect("cba-cert and cba-graph share Graph's keyCredential shape")
}

/// Whether `s` looks like a GUID (a tenant id rather than a domain).
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12]) && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Check a tenant as given by a person: a tenant id (GUID) or a DNS domain (`contoso.onmicrosoft.com`), before
/// it goes into a file, a URL path or a request.
pub fn check_tenant(tenant: &str) -> Result<(), Error> {
    let invalid = |reason: &str| Error::Invalid { what: "tenant", value: tenant.to_string(), reason: reason.into() };
    if is_guid(tenant) {
        return Ok(());
    }
    if tenant.is_empty() || tenant.len() > 253 {
        return Err(invalid("give the tenant id (a GUID) or its domain, such as contoso.onmicrosoft.com"));
    }
    let labels: Vec<&str> = tenant.split('.').collect();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if labels.len() < 2 || !labels.iter().all(|l| label_ok(l)) {
        return Err(invalid(
            "not a domain name: give the tenant id (a GUID) or a domain such as contoso.onmicrosoft.com",
        ));
    }
    if !labels.last().is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic())) {
        return Err(invalid("the domain must end in a top-level domain such as .com"));
    }
    Ok(())
}

/// Check an app's display name: 1 to 120 characters, no leading or trailing spaces, no control characters.
pub fn check_app_name(name: &str) -> Result<(), Error> {
    let invalid = |reason: &str| Error::Invalid { what: "app name", value: name.to_string(), reason: reason.into() };
    if name.trim().is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.trim() != name {
        return Err(invalid("no leading or trailing spaces"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("no control characters (newlines, tabs)"));
    }
    if name.chars().count() > 120 {
        return Err(invalid("at most 120 characters"));
    }
    Ok(())
}
