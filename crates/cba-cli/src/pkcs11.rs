//! `--key pkcs11:…`: an RSA key that stays in a PKCS#11 token (docs/keys.md). Where the module and the PIN
//! come from, logging in, and cba-pkcs11's errors as exit codes with what to do next.

use std::path::{Path, PathBuf};

use cba_pkcs11::{KeyUri, Module, Pin, Token, TokenKey};

use crate::certfile::{self, KeyBits, NewCertOptions, PfxKind};
use crate::exit::{Exit, fail};
use crate::{fsutil, hints, output};

/// The module when neither `--pkcs11-module` nor the URI's `module-path` names one.
pub const MODULE_ENV: &str = "CBA_PKCS11_MODULE";
/// The token's user PIN when the URI has no `pin-source`.
pub const PIN_ENV: &str = "CBA_PKCS11_PIN";

/// `--key URI` and `--pkcs11-module PATH`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KeyArgs {
    /// A key that stays in a PKCS#11 token or Azure Key Vault instead of a file: pkcs11:token=LABEL;object=LABEL
    /// (RFC 7512; PIN: the URI's pin-source=file:PATH, else CBA_PKCS11_PIN, else a prompt) or
    /// https://VAULT.vault.azure.net/certificates/NAME (vault token: CBA_KEYVAULT_TOKEN, else IDENTITY_ENDPOINT +
    /// IDENTITY_HEADER, else CBA_KEYVAULT_IMDS=1). docs/keys.md.
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

/// The new-certificate options that make only PFX files, refused with `--key` (`cert new`, `setup`).
pub fn refuse_pfx_options(o: &NewCertOptions) -> anyhow::Result<()> {
    let pfx_only = [
        (o.pem, "--pem"),
        (o.pfx_format != PfxKind::Modern, "--pfx-format"),
        (o.no_password, "--no-password"),
        (
            o.password.password_env.is_some() || o.password.password_file.is_some() || o.password.password_stdin,
            "--password-*",
        ),
        (o.key_size != KeyBits::Rsa2048, "--key-size"),
    ];
    match pfx_only.iter().find(|(given, _)| *given) {
        Some((_, flag)) => Err(fail(
            Exit::Usage,
            format!(
                "{flag} is for PFX files; with --key the token (or vault) generates an RSA-2048 key and no PFX is written"
            ),
        )),
        None => Ok(()),
    }
}

/// A key in a token with its certificate, as [`make_certificate`] left them.
pub struct TokenCertificate {
    pub key: TokenKey,
    pub certificate: cba_cert::Certificate,
    /// The key and certificate were already there.
    pub reused: bool,
    /// NAME.cer, for upload.
    pub cer_path: PathBuf,
    /// The key for a profile: its URI (token, label, id), with the module's path when one was named by flag
    /// or URI; no PIN and no `pin-source`.
    pub profile_uri: String,
}

/// `cert new --key` and `setup --key`: the key generated in the token (or the one already there, by label,
/// unless `force`), its self-signed certificate stored beside it, NAME.cer written.
pub fn make_certificate(
    name: &str,
    o: &NewCertOptions,
    uri_text: &str,
    module_flag: Option<&Path>,
) -> anyhow::Result<TokenCertificate> {
    certfile::check_file_name(name)?;
    certfile::check_out_dir(&o.out_dir)?;
    let cer_path = o.out_dir.join(format!("{name}.cer"));
    let uri = parse_uri(uri_text)?;
    let Some(label) = uri.object.clone() else {
        return Err(fail(Exit::Usage, "--key: name the new key with object=LABEL in the URI"));
    };
    let token = login(&uri, module_flag)?;
    let existing = find_key(&token, &uri)?.filter(|_| !o.force);
    let reused = existing.is_some();
    if !reused {
        // The .cer is checked before a key is made, so a refusal leaves the token as it was.
        fsutil::check_free(&[cer_path.as_path()], o.force)?;
    }
    let mut key = match existing {
        Some(key) => key,
        None => token.generate_key(&label, o.force).map_err(error)?,
    };
    let certificate = match key.certificate() {
        Some(c) => {
            output::info(format!(
                "{} and its certificate are already there: reused (pass --force to replace them)",
                describe(&uri, &token)
            ));
            c.clone()
        }
        // A new key, or one a previous run left without its certificate.
        None => {
            let request = certfile::new_request(name, o);
            let c = cba_cert::generate_with(&request, &key)
                .map_err(|e| fail(Exit::BadInput, hints::with_hint(&e, hints::cert_error_hint(&e))))?;
            token.store_certificate(&mut key, &c).map_err(error)?;
            c
        }
    };
    // A rerun may find the same NAME.cer; another file there is replaced only with --force.
    let same_file = std::fs::read(&cer_path).is_ok_and(|bytes| bytes == certificate.der());
    if !same_file {
        let mut staged = vec![fsutil::stage(&cer_path, certificate.der(), fsutil::Mode::Public)?];
        fsutil::commit_all(&mut staged, o.force)?;
    }
    let profile_uri = profile_uri(&key, &uri, module_flag);
    Ok(TokenCertificate { key, certificate, reused, cer_path, profile_uri })
}

/// What a profile records for `key`: where it is (token, label, id) and the module when one was named by
/// flag or URI (CBA_PKCS11_MODULE stays the environment's); never a PIN, nor the PIN file.
pub fn profile_uri(key: &TokenKey, given: &KeyUri, module_flag: Option<&Path>) -> String {
    let mut uri = key.uri();
    uri.module_path = module_flag.map(Path::to_path_buf).or_else(|| given.module_path.clone());
    uri.pin_source = None;
    uri.to_string()
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
