//! The app's certificate and what signs with its key: a file's key held in memory, or a key that stays in a
//! PKCS#11 token or a vault and signs there through [`cba_cert::KeySigner`].

use std::sync::Arc;

use cba_cert::{Certificate, Identity, KeySigner, Problem};
use cba_token::ClientCertificate;
use time::OffsetDateTime;

/// A certificate of the app with the means to sign as it. `Debug` shows the certificate, never the key.
#[derive(Debug, Clone)]
pub struct Credential {
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    /// A certificate file's contents, the key (if any) in memory.
    Identity(Identity),
    /// A key that signs elsewhere, with its certificate.
    Signer { certificate: Certificate, signer: Arc<dyn KeySigner> },
}

impl Credential {
    /// A certificate whose key signs elsewhere (a PKCS#11 token, a vault).
    pub fn with_signer(certificate: Certificate, signer: Arc<dyn KeySigner>) -> Credential {
        Credential { source: Source::Signer { certificate, signer } }
    }

    /// The certificate.
    pub fn certificate(&self) -> &Certificate {
        match &self.source {
            Source::Identity(identity) => &identity.certificate,
            Source::Signer { certificate, .. } => certificate,
        }
    }

    /// Whether the key belongs to the certificate; `None` when there is no key (a `.cer` alone).
    pub fn key_matches(&self) -> Option<bool> {
        match &self.source {
            Source::Identity(identity) => identity.key_matches(),
            Source::Signer { certificate, signer } => {
                Some(certificate.require_rsa().is_ok_and(|public| public == signer.public_key()))
            }
        }
    }

    /// What stops this credential from signing in to Entra at `now` (expired, not RSA, too small, no key,
    /// a key of another certificate), most serious first.
    pub fn problems(&self, now: OffsetDateTime) -> Vec<Problem> {
        match &self.source {
            Source::Identity(identity) => identity.problems(now, true),
            Source::Signer { certificate, .. } => {
                let alone = Identity {
                    certificate: certificate.clone(),
                    private_key: None,
                    chain: Vec::new(),
                    pfx_format: None,
                };
                let mut problems = alone.problems(now, false);
                if certificate.require_rsa().is_ok() && self.key_matches() == Some(false) {
                    problems.insert(0, Problem::KeyMismatch);
                }
                problems
            }
        }
    }

    /// The client credential signing assertions as app `client_id` in `tenant`.
    pub fn client_certificate(&self, tenant: &str, client_id: &str) -> Result<ClientCertificate, cba_token::Error> {
        match &self.source {
            Source::Identity(identity) => ClientCertificate::new(identity.clone(), tenant, client_id),
            Source::Signer { certificate, signer } => {
                ClientCertificate::with_signer(certificate.clone(), signer.clone(), tenant, client_id)
            }
        }
    }
}

impl From<Identity> for Credential {
    fn from(identity: Identity) -> Credential {
        Credential { source: Source::Identity(identity) }
    }
}
