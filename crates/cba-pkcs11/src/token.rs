//! Modules, tokens and the RSA keys inside them.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use cba_cert::{Certificate, KeySigner, RsaPublicKey, SignAlg};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use crate::error::{Error, from_cryptoki};
use crate::{KeyUri, Pin};

const RS256: &str = "CKM_SHA256_RSA_PKCS";
const PS256: &str = "CKM_SHA256_RSA_PKCS_PSS";
const KEY_BITS: u64 = 2048;

/// A loaded, initialised PKCS#11 module (`libsofthsm2.so`, `libtpm2_pkcs11.so`, `libykcs11.so`).
///
/// A module is initialised once per process (`C_Initialize` is process-wide, and SoftHSM2 reads
/// `SOFTHSM2_CONF` then): opening the same path again shares it, and it is never finalised.
#[derive(Clone)]
pub struct Module {
    context: Pkcs11,
    path: PathBuf,
}

impl Module {
    /// Load and initialise the module at `path` ([`Error::ModuleLoad`] when it will not load).
    pub fn open(path: impl AsRef<Path>) -> Result<Module, Error> {
        static OPEN: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
        let path = path.as_ref().to_path_buf();
        let key = path.canonicalize().unwrap_or_else(|_| path.clone());
        let mut open = OPEN.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
        if let Some(context) = open.get(&key) {
            return Ok(Module { context: context.clone(), path });
        }
        let load = |detail: String| Error::ModuleLoad { path: path.clone(), detail };
        let context = Pkcs11::new(&path).map_err(|e| load(e.to_string()))?;
        match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(load(format!("C_Initialize: {e}"))),
        }
        open.insert(key, context.clone());
        Ok(Module { context, path })
    }

    /// The module's path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The labels of the tokens in the module's slots.
    pub fn token_labels(&self) -> Result<Vec<String>, Error> {
        Ok(self.slots()?.into_iter().map(|(_, label, _)| label).collect())
    }

    fn slots(&self) -> Result<Vec<(Slot, String, String)>, Error> {
        let slots = self.context.get_slots_with_token().map_err(|e| from_cryptoki(e, "", None))?;
        let mut out = Vec::with_capacity(slots.len());
        for slot in slots {
            match self.context.get_token_info(slot) {
                // SoftHSM2 always adds an empty, uninitialised slot for the next token: not one to use.
                Ok(info) if !info.token_initialized() => {}
                Ok(info) => out.push((slot, info.label().trim().to_owned(), info.serial_number().trim().to_owned())),
                // A token pulled out between the two calls is not one to list.
                Err(cryptoki::error::Error::Pkcs11(RvError::TokenNotPresent, _)) => {}
                Err(e) => return Err(from_cryptoki(e, "", None)),
            }
        }
        Ok(out)
    }

    /// Open a session on the token `uri` names (by `token` label, `serial` and `slot-id`, whichever are given)
    /// and log in as the user with `pin`.
    pub fn login(&self, uri: &KeyUri, pin: &Pin) -> Result<Token, Error> {
        let slots = self.slots()?;
        let chosen = slots.iter().find(|(slot, label, serial)| {
            uri.token.as_deref().is_none_or(|t| t == label)
                && uri.serial.as_deref().is_none_or(|s| s == serial)
                && uri.slot_id.is_none_or(|id| id == slot.id())
        });
        let Some((slot, label, _)) = chosen else {
            return Err(Error::TokenNotFound {
                token: uri.token.clone().unwrap_or_default(),
                module: self.path.clone(),
                available: slots.into_iter().map(|(_, label, _)| label).collect(),
            });
        };
        let fail = |e| from_cryptoki(e, label, None);
        let session = self.context.open_rw_session(*slot).map_err(fail)?;
        match session.login(UserType::User, Some(&AuthPin::new(pin.expose().into()))) {
            // Login state belongs to the application: another Token on this slot already logged in.
            Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(fail(e)),
        }
        let mechanisms = self.context.get_mechanism_list(*slot).map_err(fail)?;
        let mut algorithms = Vec::new();
        if mechanisms.contains(&MechanismType::SHA256_RSA_PKCS_PSS) {
            algorithms.push(SignAlg::Ps256);
        }
        if mechanisms.contains(&MechanismType::SHA256_RSA_PKCS) {
            algorithms.push(SignAlg::Rs256);
        }
        let can_generate = mechanisms.contains(&MechanismType::RSA_PKCS_KEY_PAIR_GEN);
        Ok(Token {
            inner: Arc::new(TokenInner {
                label: label.clone(),
                session: Mutex::new(session),
                algorithms,
                can_generate,
            }),
        })
    }
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module").field("path", &self.path).finish_non_exhaustive()
    }
}

/// A logged-in token. Cheap to clone; the session closes when the token and its keys are dropped.
#[derive(Clone)]
pub struct Token {
    inner: Arc<TokenInner>,
}

struct TokenInner {
    label: String,
    /// cryptoki's `Session` is `Send` but not `Sync`: one session, one caller at a time.
    session: Mutex<Session>,
    algorithms: Vec<SignAlg>,
    can_generate: bool,
}

impl TokenInner {
    fn session(&self) -> MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fail(&self, mechanism: Option<&'static str>) -> impl Fn(cryptoki::error::Error) -> Error + '_ {
        move |e| from_cryptoki(e, &self.label, mechanism)
    }
}

/// How a private key object is protected, as the token reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyProtection {
    /// `CKA_TOKEN`: stored in the token, not only in this session.
    pub token: bool,
    /// `CKA_PRIVATE`: needs a login to be seen.
    pub private: bool,
    /// `CKA_SENSITIVE`: its value cannot be read.
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE`: it can be wrapped out of the token.
    pub extractable: bool,
    /// `CKA_NEVER_EXTRACTABLE`: it never was extractable.
    pub never_extractable: bool,
}

impl Token {
    /// The token's label.
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// The schemes the token signs with (`CKM_SHA256_RSA_PKCS_PSS` → PS256, `CKM_SHA256_RSA_PKCS` → RS256).
    pub fn algorithms(&self) -> &[SignAlg] {
        &self.inner.algorithms
    }

    /// The private key with this label and/or `CKA_ID`, with its certificate when one with the same id is
    /// stored. `None` when there is none; [`Error::Ambiguous`] when several match.
    pub fn find_key(&self, label: Option<&str>, id: Option<&[u8]>) -> Result<Option<TokenKey>, Error> {
        let inner = &self.inner;
        let mut template = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
        template.extend(label.map(|l| Attribute::Label(l.as_bytes().to_vec())));
        template.extend(id.map(|i| Attribute::Id(i.to_vec())));
        let session = inner.session();
        let found = session.find_objects(&template).map_err(inner.fail(None))?;
        let handle = match found.as_slice() {
            [] => return Ok(None),
            [one] => *one,
            many => {
                let what = match (label, id) {
                    (Some(l), _) => format!("label {l:?}"),
                    (None, Some(i)) => format!("id {}", hex(i)),
                    (None, None) => "any label".into(),
                };
                return Err(Error::Ambiguous { token: inner.label.clone(), what, count: many.len() });
            }
        };
        let attributes = session
            .get_attributes(
                handle,
                &[
                    AttributeType::Label,
                    AttributeType::Id,
                    AttributeType::KeyType,
                    AttributeType::Modulus,
                    AttributeType::PublicExponent,
                ],
            )
            .map_err(inner.fail(None))?;
        let mut key = KeyParts::default();
        for attribute in attributes {
            match attribute {
                Attribute::Label(l) => key.label = String::from_utf8_lossy(&l).into_owned(),
                Attribute::Id(i) => key.id = i,
                Attribute::KeyType(t) => key.rsa = t == KeyType::RSA,
                Attribute::Modulus(n) => key.modulus = n,
                Attribute::PublicExponent(e) => key.exponent = e,
                _ => {}
            }
        }
        let not_rsa = |reason: &str| Error::NotRsa {
            token: inner.label.clone(),
            label: key.label.clone(),
            reason: reason.to_owned(),
        };
        if !key.rsa {
            return Err(not_rsa("its CKA_KEY_TYPE is not CKK_RSA"));
        }
        let public = RsaPublicKey { modulus: strip(&key.modulus), exponent: strip(&key.exponent) };
        if public.bits() < cba_cert::MIN_RSA_BITS {
            return Err(not_rsa(&format!("{}-bit modulus (CKA_MODULUS); Entra needs 2048 bits", public.bits())));
        }
        let certificate = certificate_for(&session, inner, &key.label, &key.id, &public)?;
        drop(session);
        Ok(Some(TokenKey { token: Arc::clone(&self.inner), label: key.label, id: key.id, handle, public, certificate }))
    }

    /// Generate an RSA-2048 key pair inside the token: `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE` true,
    /// `CKA_EXTRACTABLE` false, `label`, and a random 16-byte `CKA_ID` shared by both halves.
    ///
    /// A key labelled `label` already there is [`Error::LabelExists`], unless `force`: then it, its public key
    /// and its certificate are deleted first. Reruns that want the existing key call [`find_key`](Self::find_key).
    pub fn generate_key(&self, label: &str, force: bool) -> Result<TokenKey, Error> {
        let inner = &self.inner;
        if !inner.can_generate {
            return Err(Error::MechanismInvalid { token: inner.label.clone(), mechanism: "CKM_RSA_PKCS_KEY_PAIR_GEN" });
        }
        let existing = {
            let session = inner.session();
            let template = [Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Label(label.as_bytes().to_vec())];
            session.find_objects(&template).map_err(inner.fail(None))?
        };
        if !existing.is_empty() {
            if !force {
                return Err(Error::LabelExists { token: inner.label.clone(), label: label.to_owned() });
            }
            self.delete_labelled(label)?;
        }
        {
            let session = inner.session();
            let id = session.generate_random_vec(16).map_err(inner.fail(None))?;
            let label = label.as_bytes().to_vec();
            let public = [
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::ModulusBits(KEY_BITS.into()),
                Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
                Attribute::Verify(true),
                Attribute::Encrypt(false),
                Attribute::Wrap(false),
                Attribute::Label(label.clone()),
                Attribute::Id(id.clone()),
            ];
            let private = [
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Decrypt(false),
                Attribute::Unwrap(false),
                Attribute::Label(label),
                Attribute::Id(id),
            ];
            session
                .generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)
                .map_err(inner.fail(Some("CKM_RSA_PKCS_KEY_PAIR_GEN")))?;
        }
        let not_found = || Error::Pkcs11 {
            token: inner.label.clone(),
            function: "C_FindObjects".into(),
            code: format!("the key {label:?} just generated is not found"),
        };
        self.find_key(Some(label), None)?.ok_or_else(not_found)
    }

    /// Store `certificate` as the key's `CKO_CERTIFICATE` (`CKC_X_509`, the key's label and id, `CKA_SUBJECT`).
    /// The certificate must hold the key's public key. The same certificate already stored is left as it is;
    /// another one for the same id is replaced (it certified this key; the key is what is kept).
    pub fn store_certificate(&self, key: &mut TokenKey, certificate: &Certificate) -> Result<(), Error> {
        if certificate.rsa_public_key() != Some(&key.public) {
            return Err(Error::CertificateMismatch { label: key.label.clone() });
        }
        let inner = &self.inner;
        let session = inner.session();
        let template = [Attribute::Class(ObjectClass::CERTIFICATE), Attribute::Id(key.id.clone())];
        for handle in session.find_objects(&template).map_err(inner.fail(None))? {
            let value = session.get_attributes(handle, &[AttributeType::Value]).map_err(inner.fail(None))?;
            if matches!(value.as_slice(), [Attribute::Value(der)] if der == certificate.der()) {
                key.certificate = Some(certificate.clone());
                return Ok(());
            }
            session.destroy_object(handle).map_err(inner.fail(None))?;
        }
        let subject = subject_der(certificate.der()).unwrap_or_default();
        session
            .create_object(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::CertificateType(CertificateType::X_509),
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Label(key.label.as_bytes().to_vec()),
                Attribute::Id(key.id.clone()),
                Attribute::Subject(subject),
                Attribute::Value(certificate.der().to_vec()),
            ])
            .map_err(inner.fail(None))?;
        key.certificate = Some(certificate.clone());
        Ok(())
    }

    /// Every object the logged-in session sees (class, label, id), sorted: what to compare before and after
    /// something that must leave the token as it was.
    pub fn objects(&self) -> Result<Vec<ObjectInfo>, Error> {
        let inner = &self.inner;
        let session = inner.session();
        let mut out = Vec::new();
        for handle in session.find_objects(&[]).map_err(inner.fail(None))? {
            let wanted = [AttributeType::Class, AttributeType::Label, AttributeType::Id];
            let mut info = ObjectInfo { class: String::new(), label: String::new(), id: Vec::new() };
            for attribute in session.get_attributes(handle, &wanted).map_err(inner.fail(None))? {
                match attribute {
                    Attribute::Class(c) => info.class = c.to_string(),
                    Attribute::Label(l) => info.label = String::from_utf8_lossy(&l).into_owned(),
                    Attribute::Id(i) => info.id = i,
                    _ => {}
                }
            }
            out.push(info);
        }
        out.sort();
        Ok(out)
    }

    /// Delete the key: its private and public objects and its certificates (everything with its `CKA_ID`).
    /// For rotation, once the app no longer lists the key's certificate.
    pub fn delete_key(&self, key: TokenKey) -> Result<(), Error> {
        let inner = &self.inner;
        let session = inner.session();
        for handle in session.find_objects(&[Attribute::Id(key.id.clone())]).map_err(inner.fail(None))? {
            session.destroy_object(handle).map_err(inner.fail(None))?;
        }
        Ok(())
    }

    fn delete_labelled(&self, label: &str) -> Result<(), Error> {
        let inner = &self.inner;
        let session = inner.session();
        let mut ids = Vec::new();
        for handle in session.find_objects(&[Attribute::Label(label.as_bytes().to_vec())]).map_err(inner.fail(None))? {
            if let Ok(attributes) = session.get_attributes(handle, &[AttributeType::Id]) {
                ids.extend(
                    attributes.into_iter().filter_map(|a| if let Attribute::Id(id) = a { Some(id) } else { None }),
                );
            }
            session.destroy_object(handle).map_err(inner.fail(None))?;
        }
        // The rest of those keys' objects (a certificate stored under another label).
        for id in ids.into_iter().filter(|id| !id.is_empty()) {
            for handle in session.find_objects(&[Attribute::Id(id)]).map_err(inner.fail(None))? {
                session.destroy_object(handle).map_err(inner.fail(None))?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token").field("label", &self.inner.label).field("algorithms", &self.inner.algorithms).finish()
    }
}

#[derive(Default)]
struct KeyParts {
    label: String,
    id: Vec<u8>,
    rsa: bool,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
}

/// The first certificate with the key's id that holds the key's public key.
fn certificate_for(
    session: &Session,
    inner: &TokenInner,
    label: &str,
    id: &[u8],
    public: &RsaPublicKey,
) -> Result<Option<Certificate>, Error> {
    let template = [Attribute::Class(ObjectClass::CERTIFICATE), Attribute::Id(id.to_vec())];
    for handle in session.find_objects(&template).map_err(inner.fail(None))? {
        let attributes = session.get_attributes(handle, &[AttributeType::Value]).map_err(inner.fail(None))?;
        let Some(Attribute::Value(der)) = attributes.into_iter().next() else { continue };
        let certificate =
            Certificate::from_der(&der).map_err(|source| Error::Certificate { label: label.to_owned(), source })?;
        if certificate.rsa_public_key() == Some(public) {
            return Ok(Some(certificate));
        }
    }
    Ok(None)
}

/// An object in a token, as [`Token::objects`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// `CKA_CLASS`: `CKO_PRIVATE_KEY`, `CKO_PUBLIC_KEY`, `CKO_CERTIFICATE`, ….
    pub class: String,
    /// `CKA_LABEL` (empty when the object has none).
    pub label: String,
    /// `CKA_ID` (empty when the object has none).
    pub id: Vec<u8>,
}

/// An RSA private key inside a token: it signs there and never leaves. Implements [`KeySigner`].
#[derive(Clone)]
pub struct TokenKey {
    token: Arc<TokenInner>,
    label: String,
    id: Vec<u8>,
    handle: ObjectHandle,
    public: RsaPublicKey,
    certificate: Option<Certificate>,
}

impl TokenKey {
    /// `CKA_LABEL`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// `CKA_ID`, shared by the key pair and its certificate.
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// The certificate stored with the key, if any.
    pub fn certificate(&self) -> Option<&Certificate> {
        self.certificate.as_ref()
    }

    /// A URI that finds this key again in `token` (by token label, object label and id).
    pub fn uri(&self) -> KeyUri {
        KeyUri {
            token: Some(self.token.label.clone()),
            object: Some(self.label.clone()),
            id: Some(self.id.clone()),
            ..KeyUri::default()
        }
    }

    /// How the token protects the private key (read back from the token, not from what was asked).
    pub fn protection(&self) -> Result<KeyProtection, Error> {
        let inner = &self.token;
        let attributes = inner
            .session()
            .get_attributes(
                self.handle,
                &[
                    AttributeType::Token,
                    AttributeType::Private,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::NeverExtractable,
                ],
            )
            .map_err(inner.fail(None))?;
        let mut p = KeyProtection {
            token: false,
            private: false,
            sensitive: false,
            extractable: true,
            never_extractable: false,
        };
        for attribute in attributes {
            match attribute {
                Attribute::Token(v) => p.token = v,
                Attribute::Private(v) => p.private = v,
                Attribute::Sensitive(v) => p.sensitive = v,
                Attribute::Extractable(v) => p.extractable = v,
                Attribute::NeverExtractable(v) => p.never_extractable = v,
                _ => {}
            }
        }
        Ok(p)
    }
}

impl KeySigner for TokenKey {
    fn public_key(&self) -> &RsaPublicKey {
        &self.public
    }

    fn algorithms(&self) -> &[SignAlg] {
        &self.token.algorithms
    }

    fn sign(&self, alg: SignAlg, message: &[u8]) -> Result<Vec<u8>, cba_cert::Error> {
        if !self.token.algorithms.contains(&alg) {
            return Err(cba_cert::Error::UnsupportedAlgorithm { alg });
        }
        let (mechanism, name) = match alg {
            SignAlg::Rs256 => (Mechanism::Sha256RsaPkcs, RS256),
            SignAlg::Ps256 => (
                Mechanism::Sha256RsaPkcsPss(PkcsPssParams {
                    hash_alg: MechanismType::SHA256,
                    mgf: PkcsMgfType::MGF1_SHA256,
                    s_len: 32u64.into(),
                }),
                PS256,
            ),
        };
        let inner = &self.token;
        inner
            .session()
            .sign(&mechanism, self.handle, message)
            .map_err(|e| cba_cert::Error::Signer(Box::new(from_cryptoki(e, &inner.label, Some(name)))))
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("token", &self.token.label)
            .field("label", &self.label)
            .field("id", &hex(&self.id))
            .field("certificate", &self.certificate.as_ref().map(Certificate::thumbprint_sha1_hex))
            .finish()
    }
}

fn strip(bytes: &[u8]) -> Vec<u8> {
    bytes[bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len())..].to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The subject Name's DER inside a certificate: Certificate → TBSCertificate → [version], serial, signature,
/// issuer, validity, subject.
fn subject_der(certificate: &[u8]) -> Option<Vec<u8>> {
    let (cert, _) = tlv(certificate)?;
    let (tbs, _) = tlv(cert.content)?;
    let mut rest = tbs.content;
    let mut fields = Vec::new();
    while !rest.is_empty() && fields.len() < 6 {
        let (field, next) = tlv(rest)?;
        fields.push(field);
        rest = next;
    }
    let skip = usize::from(fields.first()?.tag == 0xA0);
    fields.get(skip + 4).map(|f| f.whole.to_vec())
}

struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    whole: &'a [u8],
}

fn tlv(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let mut header = 2;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        header += n;
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        rest = &rest[n..];
        len
    };
    let content = rest.get(..len)?;
    Some((Tlv { tag, content, whole: &input[..header + len] }, &rest[len..]))
}
