//! `--key pkcs11:…`: an RSA key that stays in a PKCS#11 token (docs/keys.md). Where the module and the PIN
//! come from, logging in, and cba-pkcs11's errors as exit codes with what to do next.

use std::path::{Path, PathBuf};

use cba_pkcs11::{KeyUri, Module, Pin, Token, TokenKey};

use crate::exit::{Exit, fail};
use crate::hints;

/// The module when neither `--pkcs11-module` nor the URI's `module-path` names one.
pub const MODULE_ENV: &str = "CBA_PKCS11_MODULE";
/// The token's user PIN when the URI has no `pin-source`.
pub const PIN_ENV: &str = "CBA_PKCS11_PIN";

/// `--key URI` and `--pkcs11-module PATH`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KeyArgs {
    /// A key in a PKCS#11 token instead of a file: pkcs11:token=LABEL;object=LABEL (RFC 7512, docs/keys.md).
    /// PIN: the URI's pin-source=file:PATH, else CBA_PKCS11_PIN, else a prompt.
    #[arg(long, value_name = "URI")]
    pub key: Option<String>,
    /// The PKCS#11 module (shared library) for --key [env: CBA_PKCS11_MODULE; or the URI's module-path].
    #[arg(long, value_name = "PATH", requires = "key")]
    pub pkcs11_module: Option<PathBuf>,
}

/// Parse `--key`. A `pin-value` is refused: argv is readable by every user of the machine.
pub fn parse_uri(text: &str) -> anyhow::Result<KeyUri> {
    text.parse().map_err(|e| match e {
        cba_pkcs11::Error::PinInUri => fail(
            Exit::Usage,
            "--key: the URI holds the PIN (pin-value=…), and a command line is readable by every user of this \
             machine (ps, /proc/PID/cmdline); put the PIN in a file only you can read and add \
             ?pin-source=file:PATH to the URI, or set CBA_PKCS11_PIN, or let cba prompt for it",
        ),
        e => fail(Exit::Usage, format!("--key: {e}")),
    })
}

/// Load the module (`--pkcs11-module`, the URI's `module-path`, CBA_PKCS11_MODULE), find the token and log in.
pub fn login(uri: &KeyUri, module_flag: Option<&Path>) -> anyhow::Result<Token> {
    let env_module = std::env::var_os(MODULE_ENV).filter(|v| !v.is_empty()).map(PathBuf::from);
    let path =
        module_flag.map(Path::to_path_buf).or_else(|| uri.module_path.clone()).or(env_module).ok_or_else(|| {
            fail(
                Exit::Usage,
                "--key needs the PKCS#11 module: pass --pkcs11-module PATH, add ?module-path=PATH to the URI, or set \
             CBA_PKCS11_MODULE (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)",
            )
        })?;
    let module = Module::open(&path).map_err(error)?;
    // Name a missing token before asking for its PIN.
    if let Some(label) = &uri.token {
        let available = module.token_labels().map_err(error)?;
        if !available.contains(label) {
            return Err(error(cba_pkcs11::Error::TokenNotFound { token: label.clone(), module: path, available }));
        }
    }
    let pin = pin(uri)?;
    module.login(uri, &pin).map_err(error)
}

/// The key the URI names (by `object` label and/or `id`), `None` when the token has none.
pub fn find_key(token: &Token, uri: &KeyUri) -> anyhow::Result<Option<TokenKey>> {
    if uri.object.is_none() && uri.id.is_none() {
        return Err(fail(Exit::Usage, "--key: name the key with object=LABEL (or id=%..) in the URI"));
    }
    token.find_key(uri.object.as_deref(), uri.id.as_deref()).map_err(error)
}

/// The key and its certificate, for signing: both must be in the token.
pub fn key_with_certificate(uri_text: &str, module_flag: Option<&Path>) -> anyhow::Result<(TokenKey, Token)> {
    let uri = parse_uri(uri_text)?;
    let token = login(&uri, module_flag)?;
    let what = describe(&uri, &token);
    match find_key(&token, &uri)? {
        None => Err(fail(
            Exit::BadInput,
            format!("{what}: no such key; make it with `cba cert new --name NAME --key '{}'`", redacted(&uri)),
        )),
        Some(key) if key.certificate().is_none() => Err(fail(
            Exit::BadInput,
            format!(
                "{what}: the key has no certificate stored beside it; `cba cert new --name NAME --key '{}'` makes one",
                redacted(&uri)
            ),
        )),
        Some(key) => Ok((key, token)),
    }
}

/// `key "contoso-exo" in PKCS#11 token "cba"`.
pub fn describe(uri: &KeyUri, token: &Token) -> String {
    let object = uri.object.as_deref().map(|o| format!("{o:?}")).unwrap_or_else(|| "(by id)".into());
    format!("key {object} in PKCS#11 token {:?}", token.label())
}

/// The URI as the user could type it again: no PIN (`pin-value` never parses), `pin-source` kept.
pub fn redacted(uri: &KeyUri) -> String {
    uri.to_string()
}

fn pin(uri: &KeyUri) -> anyhow::Result<Pin> {
    if let Some(path) = &uri.pin_source {
        let text = std::fs::read_to_string(path).map_err(|e| {
            fail(Exit::BadInput, format!("cannot read the PIN file {} (pin-source in --key): {e}", path.display()))
        })?;
        return Ok(Pin::from_file_contents(&text));
    }
    if let Ok(pin) = std::env::var(PIN_ENV)
        && !pin.is_empty()
    {
        return Ok(Pin::new(pin));
    }
    let token = uri.token.as_deref().unwrap_or("the token");
    crate::secrets::prompt_secret(
        &format!("PIN for PKCS#11 token {token:?}"),
        "set CBA_PKCS11_PIN, or add ?pin-source=file:PATH to the --key URI",
    )
    .map(|p| Pin::new(p.as_str()))
}

/// A cba-pkcs11 error as a failure: exit 3 (the token, its PIN or its key cannot be used), with a hint.
pub fn error(e: cba_pkcs11::Error) -> anyhow::Error {
    let hint = hints::pkcs11_hint(&e);
    fail(Exit::BadInput, hints::with_hint(&e, hint))
}
