//! PKCS#11 URIs (RFC 7512): `pkcs11:token=cba;object=contoso-exo;id=%01%02?module-path=/usr/lib/x.so`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::Error;

/// What a `pkcs11:` URI names: the token, the object, where the module and the PIN are.
///
/// Parsed by [`FromStr`]; `Display` writes it back, %-encoded. A `pin-value` attribute is refused
/// ([`Error::PinInUri`]): the URI is typed on command lines, which every user of the machine can read.
/// `pin-source` is kept as a path for the caller to read; this crate reads no files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyUri {
    /// `token`: the token's label (`CKA_LABEL` of the token, e.g. `cba`).
    pub token: Option<String>,
    /// `object`: the key's and certificate's label.
    pub object: Option<String>,
    /// `id`: the objects' `CKA_ID` bytes.
    pub id: Option<Vec<u8>>,
    /// `type`: `private`, `public`, `cert`, ... (kept as written; the key pair and certificate share label and id).
    pub object_type: Option<String>,
    /// `manufacturer`: the token's manufacturer id.
    pub manufacturer: Option<String>,
    /// `serial`: the token's serial number.
    pub serial: Option<String>,
    /// `model`: the token's model.
    pub model: Option<String>,
    /// `slot-id`: the slot's number.
    pub slot_id: Option<u64>,
    /// Query `module-path`: the module to load.
    pub module_path: Option<PathBuf>,
    /// Query `pin-source`: a file holding the PIN (`file:` prefix removed).
    pub pin_source: Option<PathBuf>,
}

impl FromStr for KeyUri {
    type Err = Error;

    fn from_str(text: &str) -> Result<KeyUri, Error> {
        let bad = |reason: String| Error::Uri { reason };
        let rest = text.strip_prefix("pkcs11:").ok_or_else(|| {
            bad("it does not start with \"pkcs11:\" (e.g. pkcs11:token=cba;object=contoso-exo)".into())
        })?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut uri = KeyUri::default();
        for (part, separator) in [(path, ';'), (query, '&')] {
            for attribute in part.split(separator).filter(|a| !a.is_empty()) {
                let (name, value) = attribute
                    .split_once('=')
                    .ok_or_else(|| bad(format!("{:?} is not NAME=VALUE", attr_name(attribute))))?;
                if name == "pin-value" {
                    return Err(Error::PinInUri);
                }
                let bytes = percent_decode(value).map_err(|reason| bad(format!("{name}: {reason}")))?;
                let text = || String::from_utf8(bytes.clone()).map_err(|_| bad(format!("{name} is not UTF-8")));
                let in_path = separator == ';';
                let slot = match (name, in_path) {
                    ("token", true) => &mut uri.token,
                    ("object", true) => &mut uri.object,
                    ("type", true) => &mut uri.object_type,
                    ("manufacturer", true) => &mut uri.manufacturer,
                    ("serial", true) => &mut uri.serial,
                    ("model", true) => &mut uri.model,
                    ("id", true) => {
                        set_once(&mut uri.id, bytes, name)?;
                        continue;
                    }
                    ("slot-id", true) => {
                        let id = text()?.parse().map_err(|_| bad(format!("slot-id {value:?} is not a number")))?;
                        set_once(&mut uri.slot_id, id, name)?;
                        continue;
                    }
                    ("module-path", false) => {
                        set_once(&mut uri.module_path, PathBuf::from(text()?), name)?;
                        continue;
                    }
                    ("pin-source", false) => {
                        let source = text()?;
                        let path = source.strip_prefix("file:").unwrap_or(&source);
                        if path.is_empty() || path.contains(':') && !path.starts_with('/') {
                            return Err(bad(format!("pin-source {source:?}: only file:PATH is supported")));
                        }
                        set_once(&mut uri.pin_source, PathBuf::from(path), name)?;
                        continue;
                    }
                    (other, _) if other.starts_with("x-") => continue,
                    (other, _) => {
                        let place = if in_path { "path" } else { "query" };
                        return Err(bad(format!("unknown {place} attribute {other:?}")));
                    }
                };
                set_once(slot, text()?, name)?;
            }
        }
        Ok(uri)
    }
}

/// The part before `=`, so an error never echoes a value (it might be a PIN typed in the wrong place).
fn attr_name(attribute: &str) -> &str {
    attribute.split('=').next().unwrap_or_default()
}

fn set_once<T>(slot: &mut Option<T>, value: T, name: &str) -> Result<(), Error> {
    if slot.replace(value).is_some() {
        return Err(Error::Uri { reason: format!("{name} is given twice") });
    }
    Ok(())
}

fn percent_decode(value: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(value.len());
    let mut bytes = value.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let hex = [bytes.next(), bytes.next()];
        let digit = |d: Option<u8>| d.and_then(|d| (d as char).to_digit(16));
        match hex.map(digit) {
            [Some(hi), Some(lo)] => out.push((hi * 16 + lo) as u8),
            _ => return Err("a % is not followed by two hex digits".into()),
        }
    }
    Ok(out)
}

/// RFC 7512's unreserved characters plus those a path or query value may hold unencoded.
fn percent_encode(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~:[]@!$'()*+,/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

impl fmt::Display for KeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut path = Vec::new();
        let push = |name: &str, bytes: &[u8], list: &mut Vec<String>| {
            let mut s = format!("{name}=");
            percent_encode(bytes, &mut s);
            list.push(s);
        };
        let text = [
            ("token", &self.token),
            ("manufacturer", &self.manufacturer),
            ("model", &self.model),
            ("serial", &self.serial),
            ("object", &self.object),
            ("type", &self.object_type),
        ];
        for (name, value) in text {
            if let Some(v) = value {
                push(name, v.as_bytes(), &mut path);
            }
        }
        if let Some(id) = &self.id {
            // An id is bytes: every byte encoded, as RFC 7512's examples do.
            path.push(format!("id={}", id.iter().map(|b| format!("%{b:02X}")).collect::<String>()));
        }
        if let Some(slot) = self.slot_id {
            path.push(format!("slot-id={slot}"));
        }
        let mut query = Vec::new();
        if let Some(p) = &self.module_path {
            push("module-path", p.to_string_lossy().as_bytes(), &mut query);
        }
        if let Some(p) = &self.pin_source {
            push("pin-source", format!("file:{}", p.to_string_lossy()).as_bytes(), &mut query);
        }
        write!(f, "pkcs11:{}", path.join(";"))?;
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}
