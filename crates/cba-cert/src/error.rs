use std::fmt;

/// Everything that can go wrong while making, reading or writing a certificate.
///
/// Variants carry what a caller needs to tell the user what happened and what to do; the CLI adds the
/// file name. Messages never contain key material or passwords.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The PKCS#12 integrity check (MAC) failed and the contents did not decrypt either: the password is wrong
    /// (or, without one, needed), or the file is damaged. PKCS#12 cannot tell these apart; when the password does
    /// decrypt the contents despite the failed MAC, [`Error::Corrupt`] is returned instead.
    #[error("{}", if *.given {
        "wrong password, or the PKCS#12 file is damaged (its integrity check failed)"
    } else {
        "the PKCS#12 file is password-protected (or damaged): its integrity check failed without a password; give its password"
    })]
    WrongPassword {
        /// Whether a password was supplied at all.
        given: bool,
    },
    /// The bytes are none of the formats we read.
    #[error("not a certificate file: expected PKCS#12 (.pfx/.p12), DER (.cer/.der) or PEM (.pem/.crt) ({detail})")]
    UnknownFormat {
        /// What the detector saw.
        detail: String,
    },
    /// The file has the right outer shape but is damaged (truncated, bit-flipped).
    #[error("the {format} data is corrupt or truncated ({detail})")]
    Corrupt {
        /// The format the data claimed to be.
        format: Format,
        /// The parser's complaint.
        detail: String,
    },
    /// A PKCS#12 file or PEM bundle without a certificate.
    #[error("the file holds no certificate")]
    NoCertificate,
    /// A PKCS#12 file without a private key, where one is needed.
    #[error("the file holds no private key")]
    NoPrivateKey,
    /// The private key is not the one the certificate was issued for.
    #[error("the private key does not belong to the certificate (their public keys differ)")]
    KeyMismatch,
    /// A non-RSA key or certificate.
    #[error("the {what} uses {algorithm}, but Entra certificate credentials need RSA")]
    NotRsa {
        /// "certificate" or "private key".
        what: &'static str,
        /// The algorithm found.
        algorithm: String,
    },
    /// An RSA key smaller than Entra accepts (aws-lc-rs also refuses to sign with one).
    #[error("the RSA key is too small ({bits}-bit): Entra needs {} bits or more", crate::MIN_RSA_BITS)]
    KeyTooSmall {
        /// The key's size.
        bits: u32,
    },
    /// A validity longer than [`MAX_VALIDITY_DAYS`](crate::MAX_VALIDITY_DAYS).
    #[error(
        "a validity of {} is too long: certificates are made valid for at most 10 years ({} days); rotate them instead",
        validity_words(*.requested),
        crate::MAX_VALIDITY_DAYS
    )]
    ValidityTooLong {
        /// What was asked for.
        requested: crate::Validity,
    },
    /// A request that makes no sense (bad subject, too long a validity, ...).
    #[error("{0}")]
    InvalidRequest(String),
    /// The key cannot sign with this scheme (a token without RSA-PSS, for PS256).
    #[error("the key cannot sign {alg}")]
    UnsupportedAlgorithm {
        /// The scheme asked for.
        alg: crate::SignAlg,
    },
    /// A signature does not verify with the public key it should belong to.
    #[error("the {alg} signature does not verify with the key's public key")]
    BadSignature {
        /// The scheme it was checked as.
        alg: crate::SignAlg,
    },
    /// The key store behind a [`KeySigner`](crate::KeySigner) failed (a PKCS#11 token, a vault). The source is
    /// the store's own error: downcast it to branch on its kind (a wrong PIN, a missing token).
    #[error("the key store could not sign")]
    Signer(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// Key generation, signing or encoding failed inside the crypto library.
    #[error("crypto failure: {0}")]
    Crypto(String),
}

/// Container formats this crate reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// PKCS#12 (.pfx/.p12).
    Pkcs12,
    /// A DER certificate (.cer/.der).
    Der,
    /// PEM text (.pem/.crt).
    Pem,
    /// A PKCS#8 or PKCS#1 private key.
    PrivateKey,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Pkcs12 => "PKCS#12",
            Format::Der => "DER certificate",
            Format::Pem => "PEM",
            Format::PrivateKey => "private key",
        })
    }
}

fn validity_words(v: crate::Validity) -> String {
    match v {
        crate::Validity::Days(d) => format!("{d} days"),
        crate::Validity::Years(y) => format!("{y} years"),
    }
}

pub(crate) fn corrupt(format: Format, detail: impl fmt::Display) -> Error {
    Error::Corrupt { format, detail: detail.to_string() }
}
