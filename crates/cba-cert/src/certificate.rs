use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha1::Digest as _;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::error::{Error, Format, corrupt};

/// A parsed X.509 certificate with the facts Entra and Exchange care about precomputed.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    subject: String,
    issuer: String,
    serial_hex: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    sha1: [u8; 20],
    sha256: [u8; 32],
    public_key: CertificateKey,
}

#[derive(Clone, Debug)]
enum CertificateKey {
    Rsa(RsaPublicKey),
    Other(String),
}

/// An RSA public key as big-endian integers without leading zero bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsaPublicKey {
    /// The modulus `n`.
    pub modulus: Vec<u8>,
    /// The public exponent `e`.
    pub exponent: Vec<u8>,
}

impl RsaPublicKey {
    /// Key size in bits, computed from the modulus itself (x509-parser's `key_size` can return 0).
    pub fn bits(&self) -> u32 {
        match self.modulus.first() {
            None => 0,
            Some(first) => (self.modulus.len() as u32 - 1) * 8 + (8 - first.leading_zeros()),
        }
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[start..].to_vec()
}

impl Certificate {
    /// Parse a DER-encoded certificate.
    pub fn from_der(der: &[u8]) -> Result<Certificate, Error> {
        let (rest, cert) = X509Certificate::from_der(der).map_err(|e| corrupt(Format::Der, e))?;
        if !rest.is_empty() {
            return Err(corrupt(Format::Der, format!("{} trailing bytes after the certificate", rest.len())));
        }
        let der = der[..der.len() - rest.len()].to_vec();
        let public_key = match cert.public_key().parsed() {
            Ok(PublicKey::RSA(rsa)) => CertificateKey::Rsa(RsaPublicKey {
                modulus: strip_leading_zeros(rsa.modulus),
                exponent: strip_leading_zeros(rsa.exponent),
            }),
            Ok(PublicKey::EC(_)) => CertificateKey::Other("an elliptic-curve key".into()),
            Ok(other) => {
                CertificateKey::Other(format!("{other:?}").split('(').next().unwrap_or("an unknown key").to_string())
            }
            Err(e) => return Err(corrupt(Format::Der, format!("public key: {e}"))),
        };
        Ok(Certificate {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial_hex: hex_upper(&strip_leading_zeros(cert.raw_serial())),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            sha1: sha1::Sha1::digest(&der).into(),
            sha256: sha2::Sha256::digest(&der).into(),
            public_key,
            der,
        })
    }

    /// Parse the first `CERTIFICATE` block of PEM text.
    pub fn from_pem(text: &str) -> Result<Certificate, Error> {
        for pem in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()) {
            let pem = pem.map_err(|e| corrupt(Format::Pem, e))?;
            if pem.label == "CERTIFICATE" {
                return Certificate::from_der(&pem.contents);
            }
        }
        Err(Error::NoCertificate)
    }

    /// The DER encoding (what a `.cer` file and a Graph `keyCredential.key` hold).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// PEM text (`-----BEGIN CERTIFICATE-----`).
    pub fn to_pem(&self) -> String {
        pem_block("CERTIFICATE", &self.der)
    }

    /// The subject distinguished name, e.g. `CN=contoso-exo`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The issuer distinguished name (equals the subject for a self-signed certificate).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The serial number in uppercase hex.
    pub fn serial_hex(&self) -> &str {
        &self.serial_hex
    }

    /// Start of validity.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// End of validity.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Whether `at` lies within the validity period.
    pub fn is_valid_at(&self, at: OffsetDateTime) -> bool {
        self.not_before <= at && at <= self.not_after
    }

    /// SHA-1 digest of the DER encoding (the "thumbprint").
    pub fn thumbprint_sha1(&self) -> [u8; 20] {
        self.sha1
    }

    /// SHA-1 thumbprint as uppercase hex, as Windows and `Connect-ExchangeOnline -CertificateThumbprint` show it.
    pub fn thumbprint_sha1_hex(&self) -> String {
        hex_upper(&self.sha1)
    }

    /// SHA-256 digest of the DER encoding.
    pub fn thumbprint_sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// SHA-256 thumbprint as uppercase hex.
    pub fn thumbprint_sha256_hex(&self) -> String {
        hex_upper(&self.sha256)
    }

    /// The JWT `x5t` header value: base64url (no padding) of the SHA-1 thumbprint, 27 characters.
    pub fn x5t(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.sha1)
    }

    /// The JWT `x5t#S256` header value: base64url (no padding) of the SHA-256 thumbprint, 43 characters.
    pub fn x5t_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.sha256)
    }

    /// The RSA public key, or `None` when the certificate holds another kind of key.
    pub fn rsa_public_key(&self) -> Option<&RsaPublicKey> {
        match &self.public_key {
            CertificateKey::Rsa(k) => Some(k),
            CertificateKey::Other(_) => None,
        }
    }

    /// Fail with [`Error::NotRsa`] unless the certificate holds an RSA key.
    pub fn require_rsa(&self) -> Result<&RsaPublicKey, Error> {
        match &self.public_key {
            CertificateKey::Rsa(k) => Ok(k),
            CertificateKey::Other(alg) => Err(Error::NotRsa { what: "certificate", algorithm: alg.clone() }),
        }
    }

    /// The Microsoft Graph `keyCredential` that registers this certificate on an application.
    ///
    /// Start and end are the certificate's own validity (Graph rejects dates outside it), `keyId` and
    /// `customKeyIdentifier` are left to Graph (it then uses the thumbprint).
    pub fn key_credential(&self) -> KeyCredential {
        KeyCredential {
            type_: "AsymmetricX509Cert".into(),
            usage: "Verify".into(),
            key: Some(STANDARD.encode(&self.der)),
            display_name: Some(self.subject.clone()),
            start_date_time: Some(rfc3339(self.not_before)),
            end_date_time: Some(rfc3339(self.not_after)),
            key_id: None,
            custom_key_identifier: None,
        }
    }

    /// Everything `cba cert show` prints, evaluated at `now`.
    pub fn facts(&self, now: OffsetDateTime) -> CertificateFacts {
        let (key_type, key_bits) = match &self.public_key {
            CertificateKey::Rsa(k) => ("RSA".to_string(), Some(k.bits())),
            CertificateKey::Other(alg) => (alg.clone(), None),
        };
        CertificateFacts {
            subject: self.subject.clone(),
            issuer: self.issuer.clone(),
            serial: self.serial_hex.clone(),
            not_before: rfc3339(self.not_before),
            not_after: rfc3339(self.not_after),
            days_left: days_left(self.not_after, now),
            key_type,
            key_bits,
            thumbprint_sha1: self.thumbprint_sha1_hex(),
            thumbprint_sha256: self.thumbprint_sha256_hex(),
            x5t: self.x5t(),
            x5t_s256: self.x5t_s256(),
            key_credential: self.key_credential(),
        }
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject)
            .field("thumbprint_sha1", &self.thumbprint_sha1_hex())
            .field("not_after", &self.not_after)
            .finish()
    }
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for Certificate {}

/// Whole days from `now` until `not_after`, rounded down; negative once expired.
pub fn days_left(not_after: OffsetDateTime, now: OffsetDateTime) -> i64 {
    let secs = (not_after - now).whole_seconds();
    secs.div_euclid(86_400)
}

/// A Microsoft Graph `keyCredential` (resources/keycredential.md), serialized with Graph's names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyCredential {
    /// Always `AsymmetricX509Cert` for certificates.
    #[serde(rename = "type")]
    pub type_: String,
    /// `Verify` for a certificate used to sign client assertions.
    pub usage: String,
    /// Base64 (standard) of the certificate DER. Graph returns it only with `$select=keyCredentials`.
    #[serde(default)]
    pub key: Option<String>,
    /// Friendly name; we use the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The certificate's notBefore, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date_time: Option<String>,
    /// The certificate's notAfter, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date_time: Option<String>,
    /// Graph's id for this credential (a GUID); Graph makes one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Optional identifier; when omitted Graph uses the thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_key_identifier: Option<String>,
}

/// The facts `cba cert show --output json` prints (stable snake_case keys, see docs/cli-json.md).
#[derive(Clone, Debug, Serialize)]
pub struct CertificateFacts {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number, uppercase hex.
    pub serial: String,
    /// RFC 3339 UTC.
    pub not_before: String,
    /// RFC 3339 UTC.
    pub not_after: String,
    /// Whole days until expiry; negative when expired.
    pub days_left: i64,
    /// `RSA`, or the other algorithm found.
    pub key_type: String,
    /// Key size in bits, for RSA.
    pub key_bits: Option<u32>,
    /// Uppercase hex SHA-1 of the DER.
    pub thumbprint_sha1: String,
    /// Uppercase hex SHA-256 of the DER.
    pub thumbprint_sha256: String,
    /// base64url SHA-1 (JWT header).
    pub x5t: String,
    /// base64url SHA-256 (JWT header `x5t#S256`).
    pub x5t_s256: String,
    /// The Graph keyCredential JSON registering this certificate.
    pub key_credential: KeyCredential,
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(&time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"))
        .expect("a UTC date formats")
}

pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02X}");
        s
    })
}

pub(crate) fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
