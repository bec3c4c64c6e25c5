use std::path::PathBuf;

use cryptoki::error::RvError;

/// What can go wrong with a PKCS#11 module, token or key. Messages name the module, token and object; they
/// never contain a PIN. What to run next is the caller's to say (keyed on the variant).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not a PKCS#11 URI (RFC 7512).
    #[error("not a usable PKCS#11 URI: {reason}")]
    Uri {
        /// What is wrong with it (never its values).
        reason: String,
    },
    /// The URI holds `pin-value`: a PIN on a command line is readable by every user of the machine.
    #[error("the PKCS#11 URI holds the PIN (pin-value); give it through pin-source=file:PATH or separately instead")]
    PinInUri,
    /// The module (shared library) cannot be loaded or initialised.
    #[error("the PKCS#11 module {} cannot be loaded: {detail}", .path.display())]
    ModuleLoad {
        /// The module's path.
        path: PathBuf,
        /// The loader's or `C_Initialize`'s complaint.
        detail: String,
    },
    /// No token with that label (or serial) in the module's slots.
    #[error("no PKCS#11 token {token:?} in {} (tokens there: {})", .module.display(), list(.available))]
    TokenNotFound {
        /// The label asked for.
        token: String,
        /// The module's path.
        module: PathBuf,
        /// The labels of the tokens that are there.
        available: Vec<String>,
    },
    /// `CKR_TOKEN_NOT_PRESENT`: the token was removed from its slot.
    #[error("the PKCS#11 token {token:?} is not present (CKR_TOKEN_NOT_PRESENT)")]
    TokenNotPresent {
        /// The token's label.
        token: String,
    },
    /// `CKR_PIN_INCORRECT`.
    #[error("wrong PIN for PKCS#11 token {token:?} (CKR_PIN_INCORRECT)")]
    PinIncorrect {
        /// The token's label.
        token: String,
    },
    /// `CKR_PIN_LOCKED`: too many wrong PINs; the security officer must unlock it.
    #[error("the PIN of PKCS#11 token {token:?} is locked after too many wrong attempts (CKR_PIN_LOCKED)")]
    PinLocked {
        /// The token's label.
        token: String,
    },
    /// `CKR_MECHANISM_INVALID`, or a mechanism missing from the token's list.
    #[error("PKCS#11 token {token:?} does not offer {mechanism} (CKR_MECHANISM_INVALID)")]
    MechanismInvalid {
        /// The token's label.
        token: String,
        /// The mechanism, e.g. `CKM_SHA256_RSA_PKCS_PSS`.
        mechanism: &'static str,
    },
    /// A key with this label is already in the token; it is never replaced unless asked to (`force`).
    #[error("PKCS#11 token {token:?} already holds a key labelled {label:?}")]
    LabelExists {
        /// The token's label.
        token: String,
        /// The key's label.
        label: String,
    },
    /// Several private keys match the label/id: name the key by `id` too.
    #[error("{count} private keys in PKCS#11 token {token:?} match {what}; name one by its id")]
    Ambiguous {
        /// The token's label.
        token: String,
        /// The label and/or id searched for.
        what: String,
        /// How many matched.
        count: usize,
    },
    /// The key found is not an RSA key, or its public half cannot be read.
    #[error("the PKCS#11 object {label:?} in token {token:?} is not a usable RSA key: {reason}")]
    NotRsa {
        /// The token's label.
        token: String,
        /// The object's label.
        label: String,
        /// What was found.
        reason: String,
    },
    /// A certificate for a key must hold that key's public key.
    #[error("the certificate does not hold the public key of PKCS#11 key {label:?}")]
    CertificateMismatch {
        /// The key's label.
        label: String,
    },
    /// The certificate stored in the token does not parse.
    #[error("the certificate stored for PKCS#11 key {label:?} cannot be read")]
    Certificate {
        /// The key's label.
        label: String,
        /// The parser's error.
        #[source]
        source: cba_cert::Error,
    },
    /// Any other PKCS#11 failure, with the function and the `CKR_` code.
    #[error("{function} failed on PKCS#11 token {token:?}: {code}")]
    Pkcs11 {
        /// The token's label (empty before a token is chosen).
        token: String,
        /// The PKCS#11 function, e.g. `C_GenerateKeyPair`.
        function: String,
        /// The return value, e.g. `CKR_DEVICE_ERROR`.
        code: String,
    },
}

fn list(labels: &[String]) -> String {
    if labels.is_empty() {
        "none".into()
    } else {
        labels.iter().map(|l| format!("{l:?}")).collect::<Vec<_>>().join(", ")
    }
}

/// The `CKR_` name of a return value: `RvError::PinIncorrect` → `CKR_PIN_INCORRECT`.
fn ckr_name(rv: RvError) -> String {
    let mut out = String::from("CKR");
    for c in format!("{rv:?}").chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Turn cryptoki's error into ours, naming the token (and the mechanism, when one was asked for).
pub(crate) fn from_cryptoki(e: cryptoki::error::Error, token: &str, mechanism: Option<&'static str>) -> Error {
    let token = token.to_owned();
    match e {
        cryptoki::error::Error::Pkcs11(rv, function) => match rv {
            RvError::PinIncorrect => Error::PinIncorrect { token },
            RvError::PinLocked => Error::PinLocked { token },
            RvError::TokenNotPresent | RvError::DeviceRemoved => Error::TokenNotPresent { token },
            RvError::MechanismInvalid | RvError::MechanismParamInvalid => {
                Error::MechanismInvalid { token, mechanism: mechanism.unwrap_or("the mechanism asked for") }
            }
            other => Error::Pkcs11 { token, function: format!("C_{function:?}"), code: ckr_name(other) },
        },
        other => Error::Pkcs11 { token, function: "cryptoki".into(), code: other.to_string() },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ckr_names_are_the_specs() {
        use cryptoki::error::RvError;
        assert_eq!(super::ckr_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(super::ckr_name(RvError::DeviceError), "CKR_DEVICE_ERROR");
    }
}
