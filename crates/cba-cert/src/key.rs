use std::fmt;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::KeyPair as _;
use zeroize::{Zeroize, Zeroizing};

use crate::certificate::{Certificate, RsaPublicKey};
use crate::error::{Error, Format, corrupt};

/// An RSA private key. `Debug` prints `[redacted]`; the bytes are wiped on drop.
#[derive(Clone)]
pub struct PrivateKey {
    pkcs8: Zeroizing<Vec<u8>>,
    pkcs1: Zeroizing<Vec<u8>>,
    public: RsaPublicKey,
    /// The key parsed and checked once (aws-lc frees it cleansed): signing does not parse it again, which
    /// costs as much as the signature itself.
    pair: std::sync::Arc<aws_lc_rs::rsa::KeyPair>,
}

const RSA_ENCRYPTION_OID: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];

impl PrivateKey {
    /// Read a PKCS#8 `PrivateKeyInfo` (DER). Non-RSA keys are refused with [`Error::NotRsa`].
    pub fn from_pkcs8_der(der: &[u8]) -> Result<PrivateKey, Error> {
        let pkcs1 = pkcs8_inner(der)?;
        let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(der).map_err(|e| rejected(e, &pkcs1))?;
        Ok(PrivateKey {
            public: public_of(&pair),
            pkcs8: Zeroizing::new(der.to_vec()),
            pkcs1: Zeroizing::new(pkcs1),
            pair: std::sync::Arc::new(pair),
        })
    }

    /// Read a PKCS#1 `RSAPrivateKey` (DER), as in `-----BEGIN RSA PRIVATE KEY-----`.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<PrivateKey, Error> {
        let pair = aws_lc_rs::rsa::KeyPair::from_der(der).map_err(|e| rejected(e, der))?;
        let pkcs8 = pair.as_der().map_err(|_| Error::Crypto("cannot encode the key as PKCS#8".into()))?;
        Ok(PrivateKey {
            public: public_of(&pair),
            pkcs8: Zeroizing::new(pkcs8.as_ref().to_vec()),
            pkcs1: Zeroizing::new(der.to_vec()),
            pair: std::sync::Arc::new(pair),
        })
    }

    /// The PKCS#8 `PrivateKeyInfo` DER.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The parsed key, for signing.
    pub(crate) fn key_pair(&self) -> &aws_lc_rs::rsa::KeyPair {
        &self.pair
    }

    /// The PKCS#1 `RSAPrivateKey` DER (what `jsonwebtoken::EncodingKey::from_rsa_der` takes).
    pub fn rsa_pkcs1_der(&self) -> &[u8] {
        &self.pkcs1
    }

    /// PEM text (`-----BEGIN PRIVATE KEY-----`, PKCS#8).
    pub fn pkcs8_pem(&self) -> Zeroizing<String> {
        use base64::Engine as _;
        let mut b64 = base64::engine::general_purpose::STANDARD.encode(&*self.pkcs8);
        let mut out = String::with_capacity(b64.len() + 80);
        out.push_str("-----BEGIN PRIVATE KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            out.push('\n');
        }
        out.push_str("-----END PRIVATE KEY-----\n");
        b64.zeroize();
        Zeroizing::new(out)
    }

    /// The matching public key.
    pub fn public_key(&self) -> &RsaPublicKey {
        &self.public
    }

    /// Size of the modulus in bits.
    pub fn bits(&self) -> u32 {
        self.public.bits()
    }

    /// Whether this key is the one `certificate` was issued for.
    pub fn matches(&self, certificate: &Certificate) -> bool {
        certificate.rsa_public_key() == Some(&self.public)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey([redacted])")
    }
}

/// aws-lc-rs refuses RSA keys under 2048 bits as "TooSmall": say so with the size, not "corrupt".
fn rejected(e: aws_lc_rs::error::KeyRejected, pkcs1: &[u8]) -> Error {
    match pkcs1_modulus_bits(pkcs1) {
        Some(bits) if e.description_() == "TooSmall" || bits < crate::MIN_RSA_BITS => Error::KeyTooSmall { bits },
        _ => corrupt(Format::PrivateKey, e),
    }
}

/// The modulus size of a PKCS#1 `RSAPrivateKey` (SEQUENCE { version, n, e, ... }).
fn pkcs1_modulus_bits(der: &[u8]) -> Option<u32> {
    let (seq, _) = der_tlv(der, 0x30)?;
    let (_version, rest) = der_tlv(seq, 0x02)?;
    let (n, _) = der_tlv(rest, 0x02)?;
    let n = &n[n.iter().position(|b| *b != 0)?..];
    Some((n.len() as u32 - 1) * 8 + (8 - n[0].leading_zeros()))
}

fn public_of(pair: &aws_lc_rs::rsa::KeyPair) -> RsaPublicKey {
    let pk = pair.public_key();
    // `as_ref` is the PKCS#1 RSAPublicKey; parse n and e from it.
    let der = pk.as_ref();
    let (n, e) = rsa_public_components(der).unwrap_or_default();
    RsaPublicKey { modulus: n, exponent: e }
}

/// Split a PKCS#1 `RSAPublicKey` DER into (n, e) without leading zeros.
pub(crate) fn rsa_public_components(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (seq, _) = der_tlv(der, 0x30)?;
    let (n, rest) = der_tlv(seq, 0x02)?;
    let (e, _) = der_tlv(rest, 0x02)?;
    let strip = |b: &[u8]| b[b.iter().position(|x| *x != 0).unwrap_or(b.len())..].to_vec();
    Some((strip(n), strip(e)))
}

/// Unwrap the PKCS#1 key inside a PKCS#8 `PrivateKeyInfo`, refusing non-RSA algorithms.
fn pkcs8_inner(der: &[u8]) -> Result<Vec<u8>, Error> {
    let bad = |what: &str| corrupt(Format::PrivateKey, format!("not a PKCS#8 private key ({what})"));
    let (info, _) = der_tlv(der, 0x30).ok_or_else(|| bad("outer sequence"))?;
    let (_version, rest) = der_tlv(info, 0x02).ok_or_else(|| bad("version"))?;
    let (alg, rest) = der_tlv(rest, 0x30).ok_or_else(|| bad("algorithm"))?;
    let (oid, _) = der_tlv(alg, 0x06).ok_or_else(|| bad("algorithm id"))?;
    if oid != RSA_ENCRYPTION_OID {
        return Err(Error::NotRsa { what: "private key", algorithm: algorithm_name(oid).into() });
    }
    let (key, _) = der_tlv(rest, 0x04).ok_or_else(|| bad("key octets"))?;
    Ok(key.to_vec())
}

fn algorithm_name(oid: &[u8]) -> &'static str {
    match oid {
        [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01] => "an elliptic-curve key",
        [0x2B, 0x65, 0x70] => "an Ed25519 key",
        [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0A] => "an RSA-PSS-only key",
        _ => "a non-RSA key",
    }
}

/// Read one DER TLV with the expected tag; returns (contents, rest).
fn der_tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7F) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((&rest[..len], &rest[len..]))
}

/// A password for a PKCS#12 file. `Debug` prints `[redacted]`; wiped on drop.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wrap a password.
    pub fn new(password: impl Into<String>) -> Password {
        Password(Zeroizing::new(password.into()))
    }

    /// The password text. Keep its uses few and local.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Java keytool (17) refuses non-ASCII PFX passwords: callers warn about it.
    pub fn is_ascii(&self) -> bool {
        self.0.is_ascii()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}
