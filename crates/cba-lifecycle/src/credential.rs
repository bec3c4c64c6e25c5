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

    /// The file's contents when the key is held in memory (`None` for a key that signs elsewhere).
    pub fn identity(&self) -> Option<&Identity> {
        match &self.source {
            Source::Identity(identity) => Some(identity),
            Source::Signer { .. } => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signer_gets_the_certificate_checks_and_must_hold_its_key() {
        let mine = cba_cert::generate(&cba_cert::NewCertificate::new("mine")).unwrap();
        let other = cba_cert::generate(&cba_cert::NewCertificate::new("other")).unwrap();
        let signer = |identity: &Identity| -> Arc<dyn KeySigner> { Arc::new(identity.private_key.clone().unwrap()) };
        let now = OffsetDateTime::now_utc();

        let good = Credential::with_signer(mine.certificate.clone(), signer(&mine));
        assert_eq!(good.key_matches(), Some(true));
        assert_eq!(good.problems(now), []);
        assert!(good.client_certificate("contoso.onmicrosoft.com", "631a96bc-a705-4eda-9f99-fdaf9f54f6a2").is_ok());

        let wrong = Credential::with_signer(mine.certificate.clone(), signer(&other));
        assert_eq!(wrong.key_matches(), Some(false));
        assert_eq!(wrong.problems(now), [Problem::KeyMismatch]);

        // Expiry is the certificate's, whoever holds the key.
        let later = mine.certificate.not_after() + time::Duration::days(1);
        assert!(matches!(good.problems(later)[..], [Problem::Expired { .. }]), "{:?}", good.problems(later));
        assert_eq!(Credential::from(mine.clone()).problems(later), good.problems(later));
    }
}
