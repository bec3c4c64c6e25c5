//! Reading certificate files of any supported format, detected from the bytes, not the file name.

use crate::error::{Error, Format, corrupt};
use crate::key::{Password, PrivateKey};
use crate::{Certificate, Identity, pfx};

/// Read a PKCS#12 file, a DER certificate, or PEM text (certificates, optionally with a PKCS#8 or PKCS#1
/// private key). The format is detected from the content, so a PEM file named `.cer` still loads.
///
/// The password is used for PKCS#12 only. Whether the key matches the certificate is reported by
/// [`Identity::problems`], not here, so that a mismatched pair can still be inspected.
pub fn load(bytes: &[u8], password: Option<&Password>) -> Result<Identity, Error> {
    let trimmed = trim_start(bytes);
    if trimmed.starts_with(b"-----BEGIN") {
        return load_pem(trimmed);
    }
    match bytes.first() {
        Some(0x30) => match second_element_tag(bytes) {
            // PFX ::= SEQUENCE { version INTEGER (3), authSafe ContentInfo, macData MacData OPTIONAL }
            Some(0x02) if looks_like_pkcs8(bytes) => Err(Error::UnknownFormat {
                detail: "this is a bare private key; cba needs the certificate too (a PFX, or PEM with both)".into(),
            }),
            Some(0x02) => pfx::read(bytes, password),
            // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, ... }
            Some(0x30) => Ok(Identity {
                certificate: Certificate::from_der(bytes)?,
                private_key: None,
                chain: Vec::new(),
                pfx_format: None,
            }),
            _ => Err(corrupt(Format::Der, "truncated or not an ASN.1 structure we know")),
        },
        None => Err(Error::UnknownFormat { detail: "the file is empty".into() }),
        Some(_) if bytes.iter().take(64).all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace()) => {
            Err(Error::UnknownFormat { detail: "text without a -----BEGIN ...----- line".into() })
        }
        Some(_) => Err(Error::UnknownFormat { detail: "binary data that is neither DER nor PKCS#12".into() }),
    }
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    &bytes[start..]
}

/// The tag of the first element inside the outer SEQUENCE.
fn second_element_tag(bytes: &[u8]) -> Option<u8> {
    let len_byte = *bytes.get(1)?;
    let header = if len_byte < 0x80 { 2 } else { 2 + (len_byte & 0x7F) as usize };
    bytes.get(header).copied()
}

/// PKCS#8 PrivateKeyInfo: SEQUENCE { INTEGER 0|1, SEQUENCE { OID ... }, OCTET STRING }.
fn looks_like_pkcs8(bytes: &[u8]) -> bool {
    let len_byte = bytes.get(1).copied().unwrap_or(0);
    let header = if len_byte < 0x80 { 2 } else { 2 + (len_byte & 0x7F) as usize };
    matches!(bytes.get(header..header + 3), Some([0x02, 0x01, 0x00 | 0x01])) && bytes.get(header + 3) == Some(&0x30)
}

fn load_pem(text: &[u8]) -> Result<Identity, Error> {
    let mut certs = Vec::new();
    let mut key = None;
    for block in x509_parser::pem::Pem::iter_from_buffer(text) {
        let block = block.map_err(|e| corrupt(Format::Pem, e))?;
        match block.label.as_str() {
            "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
                certs.push(Certificate::from_der(&block.contents)?)
            }
            "PRIVATE KEY" => key = Some(PrivateKey::from_pkcs8_der(&zeroize::Zeroizing::new(block.contents))?),
            "RSA PRIVATE KEY" => key = Some(PrivateKey::from_pkcs1_der(&zeroize::Zeroizing::new(block.contents))?),
            "ENCRYPTED PRIVATE KEY" => {
                return Err(Error::InvalidRequest(
                    "encrypted PEM private keys are not supported: use a password-protected PFX instead \
                     (`openssl pkcs12 -export -in cert.pem -inkey key.pem -out cert.pfx`) or decrypt the key \
                     (`openssl pkcs8 -in key.pem -out key-plain.pem`)"
                        .into(),
                ));
            }
            "EC PRIVATE KEY" => {
                return Err(Error::NotRsa { what: "private key", algorithm: "an elliptic-curve key".into() });
            }
            _ => {}
        }
    }
    if certs.is_empty() {
        return Err(if key.is_some() {
            Error::UnknownFormat {
                detail: "a PEM private key without its certificate; add the CERTIFICATE block".into(),
            }
        } else {
            Error::NoCertificate
        });
    }
    // The leaf is the certificate the key belongs to, else the first one.
    let leaf = key.as_ref().and_then(|k| certs.iter().position(|c| k.matches(c))).unwrap_or(0);
    let certificate = certs.remove(leaf);
    Ok(Identity { certificate, private_key: key, chain: certs, pfx_format: None })
}
