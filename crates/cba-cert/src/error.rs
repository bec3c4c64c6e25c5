use std::fmt;

/// Everything that can go wrong while making, reading or writing a certificate.
///
/// Variants carry what a caller needs to tell the user what happened and what to do; the CLI adds the
/// file name. Messages never contain key material or passwords.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The PFX password is wrong (the integrity MAC did not verify), or a password is needed.
    #[error("wrong password for the PKCS#12 file (its integrity check failed){}", if *.given { "" } else { "; it may be password-protected: give a password" })]
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
    /// A request that makes no sense (bad subject, too long a validity, ...).
    #[error("{0}")]
    InvalidRequest(String),
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

pub(crate) fn corrupt(format: Format, detail: impl fmt::Display) -> Error {
    Error::Corrupt { format, detail: detail.to_string() }
}
