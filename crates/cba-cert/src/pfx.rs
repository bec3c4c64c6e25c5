//! PKCS#12 read and write, on p12-keystore.

use p12_keystore::{EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, Pkcs12Archive, PrivateKeyChain};
use serde::Serialize;

use crate::error::{Error, Format, corrupt};
use crate::key::{Password, PrivateKey};
use crate::{Certificate, Identity};

/// How a PKCS#12 file protects its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PfxFormat {
    /// PBES2 / PBKDF2-HMAC-SHA256 / AES-256-CBC bags and an HMAC-SHA256 MAC: OpenSSL 3's default.
    /// Windows 10 1709 / Server 2019 and later, .NET, Java, OpenSSL 3.
    Modern,
    /// pbeWithSHA1And3-KeyTripleDES-CBC bags and a SHA-1 MAC: for Windows Server 2016 and older.
    Legacy,
    /// RC2-40 certificate bag (OpenSSL `-legacy`'s default): readable, but OpenSSL 3 needs `-legacy` to open it.
    LegacyRc2,
    /// Anything else (mixed algorithms, no MAC, unencrypted bags).
    Other,
}

impl PfxFormat {
    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            PfxFormat::Modern => "modern",
            PfxFormat::Legacy => "legacy",
            PfxFormat::LegacyRc2 => "legacy_rc2",
            PfxFormat::Other => "other",
        }
    }
}

/// PBKDF2 iterations for the bags and the MAC. Windows refuses more than 600,000; OpenSSL uses 2,048.
const ITERATIONS: u32 = 10_000;

pub(crate) fn write(identity: &Identity, password: Option<&Password>, format: PfxFormat) -> Result<Vec<u8>, Error> {
    let key = identity.private_key.as_ref().ok_or(Error::NoPrivateKey)?;
    if !key.matches(&identity.certificate) {
        return Err(Error::KeyMismatch);
    }
    let cert = p12_keystore::Certificate::from_der(identity.certificate.der()).map_err(|e| corrupt(Format::Der, e))?;
    let mut certs = vec![cert];
    for c in &identity.chain {
        certs.push(p12_keystore::Certificate::from_der(c.der()).map_err(|e| corrupt(Format::Der, e))?);
    }
    let p12_key = p12_keystore::PrivateKey::from_der(key.pkcs8_der()).map_err(|e| corrupt(Format::PrivateKey, e))?;
    // localKeyId = SHA-1 of the certificate, as OpenSSL and Windows do.
    let chain = PrivateKeyChain::new(identity.certificate.thumbprint_sha1().to_vec(), p12_key, certs);
    let mut store = KeyStore::new();
    let alias = friendly_name(identity.certificate.subject());
    store.add_entry(&alias, KeyStoreEntry::PrivateKeyChain(chain));
    let writer = store.writer(password.map(Password::expose).unwrap_or(""));
    let writer = match format {
        PfxFormat::Modern => writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
            .mac_algorithm(MacAlgorithm::HmacSha256),
        PfxFormat::Legacy => writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
            .mac_algorithm(MacAlgorithm::HmacSha1),
        PfxFormat::LegacyRc2 | PfxFormat::Other => {
            return Err(Error::InvalidRequest(format!("cba does not write {} PKCS#12 files", format.as_str())));
        }
    };
    writer
        .encryption_iterations(ITERATIONS)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(|e| Error::Crypto(format!("writing PKCS#12: {e}")))
}

fn friendly_name(subject: &str) -> String {
    subject.split(',').find_map(|p| p.trim().strip_prefix("CN=")).unwrap_or(subject).to_string()
}

pub(crate) fn read(bytes: &[u8], password: Option<&Password>) -> Result<Identity, Error> {
    let pw = password.map(Password::expose).unwrap_or("");
    let archive = Pkcs12Archive::from_pkcs12(bytes, pw).map_err(|e| map_error(e, bytes, pw, password.is_some()))?;
    let pfx_format = Some(detect_format(bytes));

    let certs = archive
        .certs
        .iter()
        .map(|bag| Ok((bag.local_key_id.clone(), Certificate::from_der(bag.cert.as_der())?)))
        .collect::<Result<Vec<_>, Error>>()?;
    let key_bag = archive.keys.first();
    let private_key = key_bag.map(|bag| PrivateKey::from_pkcs8_der(bag.key.as_der())).transpose()?;

    // The leaf: the certificate with the key's localKeyId, else the one whose public key matches, else the first.
    let leaf_index = key_bag
        .and_then(|bag| bag.local_key_id.as_ref())
        .and_then(|id| certs.iter().position(|(cid, _)| cid.as_deref() == Some(id.0.as_slice())))
        .or_else(|| private_key.as_ref().and_then(|k| certs.iter().position(|(_, c)| k.matches(c))))
        .or(if certs.is_empty() { None } else { Some(0) })
        .ok_or(Error::NoCertificate)?;
    let mut certs: Vec<Certificate> = certs.into_iter().map(|(_, c)| c).collect();
    let certificate = certs.remove(leaf_index);
    Ok(Identity { certificate, private_key, chain: certs, pfx_format })
}

fn map_error(e: p12_keystore::error::Error, bytes: &[u8], pw: &str, password_given: bool) -> Error {
    use p12_keystore::error::Error as P;
    match e {
        // A failed MAC means a wrong password or changed bytes, and PKCS#12 cannot say which. One case can be
        // told apart: the contents still decrypt with this password, so the password is right.
        P::MacError(_) if decrypts_without_mac(bytes, pw) => corrupt(
            Format::Pkcs12,
            "its integrity check (MAC) failed although the password decrypts it: the file was changed or damaged \
             after it was written",
        ),
        P::MacError(_) => Error::WrongPassword { given: password_given },
        // Without a MAC a wrong password shows up as bad padding after decryption.
        P::UnpadError | P::Pkcs5Error(_) => Error::WrongPassword { given: password_given },
        P::UnsupportedEncryptionScheme | P::UnsupportedMacAlgorithm => {
            corrupt(Format::Pkcs12, format!("{e}; re-export it with `openssl pkcs12 -export` (AES-256)"))
        }
        other => corrupt(Format::Pkcs12, other),
    }
}

/// Whether the PFX, with its `macData` dropped, decodes with `pw` down to a key and a certificate. Only a
/// diagnosis: what it decodes is never returned, since nothing vouches for it.
fn decrypts_without_mac(bytes: &[u8], pw: &str) -> bool {
    let Some(stripped) = without_mac(bytes) else { return false };
    match Pkcs12Archive::from_pkcs12(&stripped, pw) {
        Ok(archive) => {
            archive.keys.iter().any(|k| PrivateKey::from_pkcs8_der(k.key.as_der()).is_ok())
                || archive.certs.iter().any(|c| Certificate::from_der(c.cert.as_der()).is_ok())
        }
        Err(_) => false,
    }
}

/// `PFX ::= SEQUENCE { version, authSafe, macData }` re-encoded without `macData`.
fn without_mac(bytes: &[u8]) -> Option<Vec<u8>> {
    let (outer, _) = tlv(bytes)?;
    let body = &bytes[outer.header..outer.header + outer.len];
    let (version, after_version) = tlv(body)?;
    let (auth_safe, _) = tlv(after_version)?;
    let kept = &body[..version.total() + auth_safe.total()];
    let mut out = vec![0x30];
    match kept.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n <= 0xFF => out.extend([0x81, n as u8]),
        n if n <= 0xFFFF => out.extend([0x82, (n >> 8) as u8, n as u8]),
        n if n <= 0xFF_FFFF => out.extend([0x83, (n >> 16) as u8, (n >> 8) as u8, n as u8]),
        _ => return None,
    }
    out.extend_from_slice(kept);
    Some(out)
}

/// A DER element's header and content lengths.
struct Tlv {
    header: usize,
    len: usize,
}

impl Tlv {
    fn total(&self) -> usize {
        self.header + self.len
    }
}

/// The first DER element of `input` (any tag), and the bytes after it.
fn tlv(input: &[u8]) -> Option<(Tlv, &[u8])> {
    let first = *input.get(1)?;
    let (header, len) = if first < 0x80 {
        (2, first as usize)
    } else {
        let n = (first & 0x7F) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let len = input.get(2..2 + n)?.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (2 + n, len)
    };
    let end = header.checked_add(len)?;
    let rest = input.get(end..)?;
    Some((Tlv { header, len }, rest))
}

/// Classify by the algorithm identifiers, which PKCS#12 keeps in the clear.
fn detect_format(bytes: &[u8]) -> PfxFormat {
    const PBES2: &[u8] = &[0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x05, 0x0D];
    const TRIPLE_DES: &[u8] = &[0x06, 0x0A, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x0C, 0x01, 0x03];
    const RC2_40: &[u8] = &[0x06, 0x0A, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x0C, 0x01, 0x06];
    const AES256_CBC: &[u8] = &[0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2A];
    const SHA1: &[u8] = &[0x06, 0x05, 0x2B, 0x0E, 0x03, 0x02, 0x1A];
    const SHA256: &[u8] = &[0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    let (pbes2, des, rc2) = (has(PBES2) && has(AES256_CBC), has(TRIPLE_DES), has(RC2_40));
    match (pbes2, des, rc2) {
        (true, false, false) if has(SHA256) => PfxFormat::Modern,
        (false, true, false) if has(SHA1) => PfxFormat::Legacy,
        (false, _, true) => PfxFormat::LegacyRc2,
        _ => PfxFormat::Other,
    }
}
