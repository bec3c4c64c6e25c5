#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod certificate;
mod error;
mod generate;
mod key;
mod load;
mod pfx;
mod signer;

use std::fmt;

use time::OffsetDateTime;
use zeroize::Zeroizing;

pub use certificate::{Certificate, CertificateFacts, KeyCredential, RsaPublicKey, days_left};
pub use error::{Error, Format};
pub use generate::{CLOCK_SKEW, KeySize, MAX_VALIDITY_DAYS, NewCertificate, Validity, generate, generate_with};
pub use key::{Password, PrivateKey};
pub use load::load;
pub use pfx::PfxFormat;
pub use signer::{KeySigner, SignAlg};

/// The smallest RSA key Entra accepts for a certificate credential (AADSTS50032 below it).
pub const MIN_RSA_BITS: u32 = 2048;

/// A certificate, optionally with its private key and the other certificates stored beside it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The leaf certificate: the one registered on the Entra app.
    pub certificate: Certificate,
    /// The private key, when the source held one.
    pub private_key: Option<PrivateKey>,
    /// Any other certificates in the file (issuers), leaf excluded.
    pub chain: Vec<Certificate>,
    /// How the PKCS#12 file was protected, when read from one.
    pub pfx_format: Option<PfxFormat>,
}

impl Identity {
    /// Export as PKCS#12. `None` makes a file protected by the empty password (an "unprotected" PFX).
    pub fn to_pfx(&self, password: Option<&Password>, format: PfxFormat) -> Result<Vec<u8>, Error> {
        pfx::write(self, password, format)
    }

    /// PEM with the certificate, then the PKCS#8 private key (what `AZURE_CLIENT_CERTIFICATE_PATH` takes).
    pub fn to_pem(&self) -> Result<Zeroizing<String>, Error> {
        let key = self.private_key.as_ref().ok_or(Error::NoPrivateKey)?;
        let mut out = Zeroizing::new(self.certificate.to_pem());
        out.push_str(&key.pkcs8_pem());
        Ok(out)
    }

    /// Whether the private key belongs to the certificate (`None` without a key).
    pub fn key_matches(&self) -> Option<bool> {
        self.private_key.as_ref().map(|k| k.matches(&self.certificate))
    }

    /// The private key, when present and matching the certificate: what signing needs.
    pub fn signing_key(&self) -> Result<&PrivateKey, Error> {
        self.certificate.require_rsa()?;
        let key = self.private_key.as_ref().ok_or(Error::NoPrivateKey)?;
        if !key.matches(&self.certificate) {
            return Err(Error::KeyMismatch);
        }
        Ok(key)
    }

    /// What stops this identity from working as an Entra certificate credential at `now`, most serious first.
    /// `need_key`: whether a private key is expected (a PFX, or a certificate used for signing).
    pub fn problems(&self, now: OffsetDateTime, need_key: bool) -> Vec<Problem> {
        let c = &self.certificate;
        let mut problems = Vec::new();
        match c.require_rsa() {
            Err(Error::NotRsa { algorithm, .. }) => problems.push(Problem::NotRsa { algorithm }),
            Ok(key) if key.bits() < MIN_RSA_BITS => problems.push(Problem::KeyTooSmall { bits: key.bits() }),
            _ => {}
        }
        match (&self.private_key, need_key) {
            (Some(k), _) if !k.matches(c) => problems.push(Problem::KeyMismatch),
            (None, true) => problems.push(Problem::NoPrivateKey),
            _ => {}
        }
        if now > c.not_after() {
            problems.push(Problem::Expired { not_after: c.not_after() });
        } else if now < c.not_before() {
            problems.push(Problem::NotYetValid { not_before: c.not_before() });
        }
        problems
    }
}

/// A reason a certificate cannot be used. `Display` says what is wrong in neutral terms; callers with their own
/// commands (the `cba` CLI) add what to run next, keyed on the variant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The certificate holds a non-RSA key.
    NotRsa {
        /// The algorithm found.
        algorithm: String,
    },
    /// An RSA key smaller than Entra accepts ([`MIN_RSA_BITS`]).
    KeyTooSmall {
        /// The key's size.
        bits: u32,
    },
    /// No private key where one is needed.
    NoPrivateKey,
    /// The private key belongs to another certificate.
    KeyMismatch,
    /// Past notAfter.
    Expired {
        /// When it expired.
        not_after: OffsetDateTime,
    },
    /// Before notBefore (or the local clock is behind).
    NotYetValid {
        /// When it becomes valid.
        not_before: OffsetDateTime,
    },
}

impl Problem {
    /// A stable snake_case name for JSON output.
    pub fn code(&self) -> &'static str {
        match self {
            Problem::NotRsa { .. } => "not_rsa",
            Problem::KeyTooSmall { .. } => "key_too_small",
            Problem::NoPrivateKey => "no_private_key",
            Problem::KeyMismatch => "key_mismatch",
            Problem::Expired { .. } => "expired",
            Problem::NotYetValid { .. } => "not_yet_valid",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotRsa { algorithm } => {
                write!(f, "the certificate uses {algorithm}, but Entra certificate credentials need RSA")
            }
            Problem::KeyTooSmall { bits } => write!(
                f,
                "the certificate's RSA key is too small ({bits}-bit): Entra needs {MIN_RSA_BITS} bits or more"
            ),
            Problem::NoPrivateKey => {
                f.write_str("the file holds no private key; export the PFX again with its private key")
            }
            Problem::KeyMismatch => f.write_str(
                "the private key does not belong to the certificate; pair them again or make a new certificate",
            ),
            Problem::Expired { not_after } => write!(
                f,
                "the certificate expired on {}; it must be replaced by a new one",
                certificate::rfc3339(*not_after)
            ),
            Problem::NotYetValid { not_before } => write!(
                f,
                "the certificate is not valid until {}; check this machine's clock",
                certificate::rfc3339(*not_before)
            ),
        }
    }
}
