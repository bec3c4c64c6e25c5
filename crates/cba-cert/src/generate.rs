use std::cell::RefCell;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_RSA_SHA256, PublicKeyData, RsaKeySize, SanType, SerialNumber, SignatureAlgorithm, SigningKey,
};
use time::{Duration, OffsetDateTime};

use crate::error::Error;
use crate::key::PrivateKey;
use crate::signer::{KeySigner, SignAlg};
use crate::{Certificate, Identity};

/// The longest validity we make. Longer certificates are refused: rotate instead.
pub const MAX_VALIDITY_DAYS: i64 = 3653;

/// How far `notBefore` is set in the past, so a server with a slow clock accepts the certificate at once.
pub const CLOCK_SKEW: Duration = Duration::minutes(5);

/// RSA key sizes we generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeySize {
    /// 2048 bits (default: what Entra and Windows expect, fastest).
    #[default]
    Rsa2048,
    /// 3072 bits.
    Rsa3072,
    /// 4096 bits.
    Rsa4096,
}

impl KeySize {
    /// The size for a bit count, if it is one we make.
    pub fn from_bits(bits: u32) -> Option<KeySize> {
        match bits {
            2048 => Some(KeySize::Rsa2048),
            3072 => Some(KeySize::Rsa3072),
            4096 => Some(KeySize::Rsa4096),
            _ => None,
        }
    }

    /// The bit count.
    pub fn bits(self) -> u32 {
        match self {
            KeySize::Rsa2048 => 2048,
            KeySize::Rsa3072 => 3072,
            KeySize::Rsa4096 => 4096,
        }
    }
}

/// How long a new certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// This many days.
    Days(u32),
    /// This many calendar years (same date and time N years on).
    Years(u32),
}

impl Default for Validity {
    fn default() -> Self {
        Validity::Days(365)
    }
}

/// What to put in a new self-signed certificate. Build with [`NewCertificate::new`].
#[derive(Debug, Clone)]
pub struct NewCertificate {
    name: String,
    subject: Option<String>,
    dns_names: Vec<String>,
    validity: Validity,
    key_size: KeySize,
    now: Option<OffsetDateTime>,
}

impl NewCertificate {
    /// A certificate whose subject is `CN=<name>`, valid 365 days, RSA-2048.
    pub fn new(name: impl Into<String>) -> NewCertificate {
        NewCertificate {
            name: name.into(),
            subject: None,
            dns_names: Vec::new(),
            validity: Validity::default(),
            key_size: KeySize::default(),
            now: None,
        }
    }

    /// Subject DN such as `CN=contoso-exo, O=Contoso`. Attributes: CN, O, OU, L, ST, C; separated by commas
    /// (a comma inside a value is not supported).
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Add a DNS subject alternative name.
    pub fn dns_name(mut self, name: impl Into<String>) -> Self {
        self.dns_names.push(name.into());
        self
    }

    /// Validity period (default 365 days; at most [`MAX_VALIDITY_DAYS`]).
    pub fn validity(mut self, validity: Validity) -> Self {
        self.validity = validity;
        self
    }

    /// RSA key size (default 2048).
    pub fn key_size(mut self, key_size: KeySize) -> Self {
        self.key_size = key_size;
        self
    }

    /// Pretend it is `now` (for tests and reproducible examples); default: the system clock.
    pub fn now(mut self, now: OffsetDateTime) -> Self {
        self.now = Some(now);
        self
    }

    fn distinguished_name(&self) -> Result<DistinguishedName, Error> {
        let mut dn = DistinguishedName::new();
        let Some(subject) = &self.subject else {
            dn.push(DnType::CommonName, self.name.clone());
            return Ok(dn);
        };
        for part in subject.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| {
                Error::InvalidRequest(format!(
                    "subject part {part:?} is not KEY=VALUE (e.g. \"CN=contoso-exo, O=Contoso\")"
                ))
            })?;
            let ty = match key.trim().to_ascii_uppercase().as_str() {
                "CN" => DnType::CommonName,
                "O" => DnType::OrganizationName,
                "OU" => DnType::OrganizationalUnitName,
                "L" => DnType::LocalityName,
                "ST" => DnType::StateOrProvinceName,
                "C" => DnType::CountryName,
                other => {
                    return Err(Error::InvalidRequest(format!(
                        "subject attribute {other:?} is not supported; use CN, O, OU, L, ST or C"
                    )));
                }
            };
            let value = value.trim();
            if value.is_empty() {
                return Err(Error::InvalidRequest(format!("subject attribute {key} has an empty value")));
            }
            dn.push(ty, value.to_string());
        }
        if !subject.to_ascii_uppercase().contains("CN=") {
            return Err(Error::InvalidRequest(format!("subject {subject:?} has no CN= part")));
        }
        Ok(dn)
    }

    fn not_after(&self, not_before_unskewed: OffsetDateTime) -> Result<OffsetDateTime, Error> {
        let too_long = || Error::ValidityTooLong { requested: self.validity };
        let end = match self.validity {
            Validity::Days(0) | Validity::Years(0) => {
                return Err(Error::InvalidRequest("the validity must be at least 1 day".into()));
            }
            Validity::Days(d) if i64::from(d) > MAX_VALIDITY_DAYS => return Err(too_long()),
            Validity::Days(d) => not_before_unskewed + Duration::days(d.into()),
            Validity::Years(y) if y > 10 => return Err(too_long()),
            Validity::Years(y) => {
                let year = not_before_unskewed.year() + y as i32;
                // 29 February + N years may not exist: fall back to 28 February.
                not_before_unskewed
                    .replace_year(year)
                    .or_else(|_| (not_before_unskewed - Duration::days(1)).replace_year(year))
                    .map_err(|e| Error::InvalidRequest(e.to_string()))?
            }
        };
        Ok(end)
    }
}

/// Make a self-signed RSA certificate for app-only authentication.
///
/// SHA-256 with RSA, random positive 128-bit serial, key usage digitalSignature + keyEncipherment,
/// extended key usage clientAuth, basicConstraints CA:false, `notBefore` 5 minutes in the past.
pub fn generate(request: &NewCertificate) -> Result<Identity, Error> {
    let params = request.params()?;
    let size = match request.key_size {
        KeySize::Rsa2048 => RsaKeySize::_2048,
        KeySize::Rsa3072 => RsaKeySize::_3072,
        KeySize::Rsa4096 => RsaKeySize::_4096,
    };
    let key_pair = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, size).map_err(|e| Error::Crypto(e.to_string()))?;
    let cert = params.self_signed(&key_pair).map_err(|e| Error::Crypto(e.to_string()))?;
    let private_key = PrivateKey::from_pkcs8_der(&zeroize::Zeroizing::new(key_pair.serialize_der()))?;
    Ok(Identity {
        certificate: Certificate::from_der(cert.der())?,
        private_key: Some(private_key),
        chain: Vec::new(),
        pfx_format: None,
    })
}

/// Make the same self-signed certificate as [`generate`] for a key that already exists and may live elsewhere
/// (a PKCS#11 token, a vault): the certificate is signed through `signer` with RS256
/// (`sha256WithRSAEncryption`, what certificates use), and `request`'s key size is ignored.
///
/// The signature is checked against the signer's public key before the certificate is returned, so a signer
/// that answers with another scheme or another key's signature gives [`Error::BadSignature`], never a
/// certificate that does not verify.
pub fn generate_with(request: &NewCertificate, signer: &dyn KeySigner) -> Result<Certificate, Error> {
    let bits = signer.public_key().bits();
    if bits < crate::MIN_RSA_BITS {
        return Err(Error::KeyTooSmall { bits });
    }
    if !signer.algorithms().contains(&SignAlg::Rs256) {
        return Err(Error::UnsupportedAlgorithm { alg: SignAlg::Rs256 });
    }
    let params = request.params()?;
    let key = RcgenKey { signer, public_der: signer.public_key().to_pkcs1_der(), failure: RefCell::new(None) };
    let cert =
        params.self_signed(&key).map_err(|e| key.failure.take().unwrap_or_else(|| Error::Crypto(e.to_string())))?;
    let certificate = Certificate::from_der(cert.der())?;
    if certificate.rsa_public_key() != Some(signer.public_key()) {
        return Err(Error::KeyMismatch);
    }
    Ok(certificate)
}

impl NewCertificate {
    fn params(&self) -> Result<CertificateParams, Error> {
        let now = self.now.unwrap_or_else(OffsetDateTime::now_utc).replace_nanosecond(0).expect("0 is valid");
        let not_after = self.not_after(now)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = self.distinguished_name()?;
        params.subject_alt_names = self
            .dns_names
            .iter()
            .map(|d| {
                d.as_str()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(|_| Error::InvalidRequest(format!("{d:?} is not a valid DNS name (ASCII only)")))
            })
            .collect::<Result<_, _>>()?;
        params.not_before = now - CLOCK_SKEW;
        params.not_after = not_after;
        params.serial_number = Some(random_serial()?);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        Ok(params)
    }
}

/// rcgen's view of a [`KeySigner`]: PKCS#1 v1.5 SHA-256, exactly what `PKCS_RSA_SHA256` announces. rcgen's
/// error cannot carry ours, so the signer's failure waits in `failure` for [`generate_with`] to return.
struct RcgenKey<'a> {
    signer: &'a dyn KeySigner,
    public_der: Vec<u8>,
    failure: RefCell<Option<Error>>,
}

impl PublicKeyData for RcgenKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.public_der
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_RSA_SHA256
    }
}

impl SigningKey for RcgenKey<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let signed = self.signer.sign(SignAlg::Rs256, msg).and_then(|signature| {
            self.signer.public_key().verify(SignAlg::Rs256, msg, &signature)?;
            Ok(signature)
        });
        signed.map_err(|e| {
            *self.failure.borrow_mut() = Some(e);
            rcgen::Error::RemoteKeyError
        })
    }
}

/// 16 random bytes, top bit clear (positive) and first byte non-zero (no shorter encoding).
fn random_serial() -> Result<SerialNumber, Error> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| Error::Crypto("no randomness for the serial number".into()))?;
    bytes[0] = (bytes[0] & 0x7F) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}
