//! One way to sign, whatever holds the key: a file's [`PrivateKey`] in memory, a PKCS#11 token, a vault.

use std::fmt;

use crate::certificate::RsaPublicKey;
use crate::error::Error;
use crate::key::PrivateKey;

/// The RSA signature schemes Entra accepts for a client assertion (JWS names; both hash with SHA-256).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (JWS `RS256`; `sha256WithRSAEncryption` in a certificate).
    Rs256,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt (JWS `PS256`).
    Ps256,
}

impl SignAlg {
    /// `RS256` or `PS256`.
    pub fn name(self) -> &'static str {
        match self {
            SignAlg::Rs256 => "RS256",
            SignAlg::Ps256 => "PS256",
        }
    }
}

impl fmt::Display for SignAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An RSA private key that signs on request and never hands itself out.
///
/// `sign` receives the whole message (the JWS signing input, a certificate's TBS bytes) and hashes it itself,
/// as PKCS#11's `CKM_SHA256_RSA_PKCS` does; it returns the raw signature (as long as the modulus). Failures
/// of the key store are [`Error::Signer`], with the store's own error as the source.
pub trait KeySigner: Send + Sync {
    /// The public half: what the certificate must hold.
    fn public_key(&self) -> &RsaPublicKey;

    /// The schemes this key can sign with, preferred first.
    fn algorithms(&self) -> &[SignAlg];

    /// Sign `message` with `alg` ([`Error::UnsupportedAlgorithm`] when `alg` is not in
    /// [`algorithms`](KeySigner::algorithms)).
    fn sign(&self, alg: SignAlg, message: &[u8]) -> Result<Vec<u8>, Error>;
}

impl fmt::Debug for dyn KeySigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySigner").field("bits", &self.public_key().bits()).finish_non_exhaustive()
    }
}

const BOTH: &[SignAlg] = &[SignAlg::Ps256, SignAlg::Rs256];

/// A key in memory (from a PFX or PEM file) signs with aws-lc-rs, either scheme.
impl KeySigner for PrivateKey {
    fn public_key(&self) -> &RsaPublicKey {
        PrivateKey::public_key(self)
    }

    fn algorithms(&self) -> &[SignAlg] {
        BOTH
    }

    fn sign(&self, alg: SignAlg, message: &[u8]) -> Result<Vec<u8>, Error> {
        let pair = self.key_pair();
        let padding: &'static dyn aws_lc_rs::signature::RsaEncoding = match alg {
            SignAlg::Rs256 => &aws_lc_rs::signature::RSA_PKCS1_SHA256,
            SignAlg::Ps256 => &aws_lc_rs::signature::RSA_PSS_SHA256,
        };
        let mut signature = vec![0; pair.public_modulus_len()];
        pair.sign(padding, &aws_lc_rs::rand::SystemRandom::new(), message, &mut signature)
            .map_err(|_| Error::Crypto(format!("{alg} signing failed")))?;
        Ok(signature)
    }
}

impl RsaPublicKey {
    /// Check `signature` over `message` with this key ([`Error::BadSignature`] when it does not verify).
    pub fn verify(&self, alg: SignAlg, message: &[u8], signature: &[u8]) -> Result<(), Error> {
        let params: &'static aws_lc_rs::signature::RsaParameters = match alg {
            SignAlg::Rs256 => &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            SignAlg::Ps256 => &aws_lc_rs::signature::RSA_PSS_2048_8192_SHA256,
        };
        aws_lc_rs::signature::RsaPublicKeyComponents { n: &self.modulus, e: &self.exponent }
            .verify(params, message, signature)
            .map_err(|_| Error::BadSignature { alg })
    }

    /// The PKCS#1 `RSAPublicKey` DER (`SEQUENCE { n INTEGER, e INTEGER }`), what a SubjectPublicKeyInfo wraps.
    pub fn to_pkcs1_der(&self) -> Vec<u8> {
        let mut body = der_unsigned(&self.modulus);
        body.extend(der_unsigned(&self.exponent));
        der_tlv(0x30, &body)
    }
}

/// A positive DER INTEGER from big-endian magnitude bytes.
fn der_unsigned(magnitude: &[u8]) -> Vec<u8> {
    let start = magnitude.iter().position(|b| *b != 0).unwrap_or(magnitude.len());
    let mut content = Vec::with_capacity(magnitude.len() - start + 1);
    match magnitude.get(start) {
        None => content.push(0),
        Some(first) if first & 0x80 != 0 => content.push(0),
        Some(_) => {}
    }
    content.extend_from_slice(&magnitude[start..]);
    der_tlv(0x02, &content)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs1_der_round_trips_through_the_parser() {
        let key = RsaPublicKey { modulus: vec![0xC0; 256], exponent: vec![1, 0, 1] };
        let der = key.to_pkcs1_der();
        assert_eq!(&der[..4], &[0x30, 0x82, 0x01, 0x0A], "SEQUENCE of 266 bytes");
        let (n, e) = crate::key::rsa_public_components(&der).unwrap();
        assert_eq!((n, e), (key.modulus, key.exponent));
    }
}
