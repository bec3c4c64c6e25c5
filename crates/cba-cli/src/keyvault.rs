//! `--key https://VAULT.vault.azure.net/certificates/NAME`: an RSA key that stays in Azure Key Vault
//! (docs/keys.md). Where the vault token comes from, the vault calls as blocking steps, and cba-keyvault's
//! errors as exit codes with what to do next. [`open_key`] is the one place a `--key` value is dispatched
//! by kind (a vault URL or a `pkcs11:` URI).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cba_cert::{Certificate, KeySigner};
use cba_http::{RetryPolicy, StaticToken, TokenSource};
use cba_keyvault::{CertificatePolicy, CertificateUrl, ManagedIdentity, VaultCertificate, VaultClient, VaultSigner};
use cba_lifecycle::rotate::Promoted;
use cba_lifecycle::{CertificateRef, Credential};

use crate::certfile::NewCertOptions;
use crate::exit::{Exit, fail};
use crate::{certfile, fsutil, hints, output};

/// An opaque vault token (pipelines, tests): used as given.
pub const TOKEN_ENV: &str = "CBA_KEYVAULT_TOKEN";
/// App Service / Functions / Automation managed identity: the endpoint and its secret header value.
pub const IDENTITY_ENDPOINT_ENV: &str = "IDENTITY_ENDPOINT";
/// See [`IDENTITY_ENDPOINT_ENV`].
pub const IDENTITY_HEADER_ENV: &str = "IDENTITY_HEADER";
/// `1`: ask the Azure VM instance metadata endpoint (169.254.169.254) when nothing else gives a token. Opt-in,
/// so that `cba` never probes that address on a machine that is not an Azure VM.
pub const IMDS_ENV: &str = "CBA_KEYVAULT_IMDS";
/// A user-assigned managed identity's client id (default: the system-assigned identity).
pub const IDENTITY_CLIENT_ID_ENV: &str = "CBA_KEYVAULT_IDENTITY_CLIENT_ID";

/// A token source set by `cba demo --key keyvault` (the in-process simulator's managed identity), used
/// before the environment: the demo cannot hand its child steps environment variables.
static TOKEN_OVERRIDE: std::sync::OnceLock<Arc<dyn TokenSource>> = std::sync::OnceLock::new();

/// Use `source` for every vault call of this process (`cba demo --key keyvault`).
pub fn use_token_source(source: Arc<dyn TokenSource>) {
    let _ = TOKEN_OVERRIDE.set(source);
}

/// Whether a `--key` value (or a profile's `certificate.key`) names a vault certificate.
pub fn is_vault(key: &str) -> bool {
    cba_keyvault::is_vault_url(key)
}

/// `cert new|show --key https://…`'s `vault_key` (docs/cli-json.md).
#[derive(Debug, serde::Serialize)]
pub struct VaultKeyJson {
    /// The versioned certificate URL (what a profile records).
    pub url: String,
    pub vault: String,
    pub name: String,
    pub version: String,
    pub kid: String,
    pub enabled: bool,
    /// The policy's `key_props.exportable` (`false`: the key cannot leave the vault).
    pub exportable: Option<bool>,
    pub reused: bool,
}

impl VaultKeyJson {
    pub fn new(c: &VaultCertificate, reused: bool) -> VaultKeyJson {
        VaultKeyJson {
            url: c.url.to_string(),
            vault: c.url.vault().to_string(),
            name: c.url.name().to_string(),
            version: c.version.clone(),
            kid: c.kid.clone(),
            enabled: c.enabled,
            exportable: c.exportable,
            reused,
        }
    }
}

/// A key opened for signing: its certificate and the signer.
pub struct OpenedKey {
    pub certificate: Certificate,
    pub signer: Arc<dyn KeySigner>,
}

/// Open the key a `--key` value or a profile names, with its certificate: a vault certificate (latest
/// version, or the one the URL names) or a PKCS#11 key (`module`: `--pkcs11-module`).
pub fn open_key(key: &str, module: Option<&Path>) -> anyhow::Result<OpenedKey> {
    if is_vault(key) {
        let url = parse_url(key)?;
        let (certificate, signer) = open(&url)?;
        return Ok(OpenedKey { certificate: certificate.certificate, signer });
    }
    let (key, _token) = crate::pkcs11::key_with_certificate(key, module)?;
    let certificate = key.certificate().expect("key_with_certificate checked").clone();
    Ok(OpenedKey { certificate, signer: Arc::new(key) })
}

/// Parse `--key` as a vault certificate URL (exit 2 when it is not one).
pub fn parse_url(text: &str) -> anyhow::Result<CertificateUrl> {
    text.parse().map_err(|e: cba_keyvault::Error| fail(Exit::Usage, format!("--key: {e}")))
}

/// The vault certificate (as the URL names it) and a signer for its key.
pub fn open(url: &CertificateUrl) -> anyhow::Result<(VaultCertificate, Arc<dyn KeySigner>)> {
    let client = client(url)?;
    let name = url.name().to_string();
    let version = url.version().map(str::to_string);
    let certificate = block(&client, move |c| async move { c.get_certificate(&name, version.as_deref()).await })?;
    if !certificate.enabled {
        return Err(fail(
            Exit::BadInput,
            format!(
                "{}: this version is disabled in the vault, and a disabled key cannot sign; name the current version \
                 (or no version) in --key, or enable it again in the vault",
                certificate.url
            ),
        ));
    }
    let signer = VaultSigner::new(&client, certificate.clone()).map_err(error)?;
    Ok((certificate, Arc::new(signer)))
}

/// A vault certificate made (or found) for `cert new --key` / `setup --key`, with NAME.cer written.
pub struct MadeCertificate {
    pub certificate: VaultCertificate,
    pub signer: Arc<dyn KeySigner>,
    /// The certificate was already in the vault.
    pub reused: bool,
    pub cer_path: PathBuf,
    /// What a profile records: the versioned URL.
    pub profile_url: String,
}

/// `cert new --key https://…` and `setup --key https://…`: the latest version of the certificate when there
/// is one (unless `force`: then a new version), else a new certificate; its `.cer` written for upload.
pub fn make_certificate(name: &str, o: &NewCertOptions, url_text: &str) -> anyhow::Result<MadeCertificate> {
    certfile::check_file_name(name)?;
    certfile::check_out_dir(&o.out_dir)?;
    let url = parse_url(url_text)?;
    if url.version().is_some() {
        return Err(fail(
            Exit::Usage,
            format!("--key {url}: name the certificate without a version; the vault makes the versions"),
        ));
    }
    let cer_path = o.out_dir.join(format!("{name}.cer"));
    let client = client(&url)?;
    let cert_name = url.name().to_string();
    let existing = {
        let cert_name = cert_name.clone();
        block(&client, move |c| async move { c.find_certificate(&cert_name).await })?
    };
    let reuse = existing.filter(|c| c.enabled && !o.force);
    let reused = reuse.is_some();
    let certificate = match reuse {
        Some(c) => {
            output::info(format!(
                "{}: already in the vault, reused (pass --force to make a new version)",
                c.url.with_version(None)
            ));
            c
        }
        None => {
            // The .cer is checked before the vault makes anything, so a refusal leaves the vault as it was.
            fsutil::check_free(&[cer_path.as_path()], o.force)?;
            let policy = policy(name, o);
            block(&client, move |c| async move { c.create_certificate(&cert_name, &policy).await })?
        }
    };
    let same_file = std::fs::read(&cer_path).is_ok_and(|bytes| bytes == certificate.certificate.der());
    if !same_file {
        let mut staged = vec![fsutil::stage(&cer_path, certificate.certificate.der(), fsutil::Mode::Public)?];
        fsutil::commit_all(&mut staged, o.force)?;
    }
    let signer: Arc<dyn KeySigner> = Arc::new(VaultSigner::new(&client, certificate.clone()).map_err(error)?);
    let profile_url = certificate.url.to_string();
    Ok(MadeCertificate { certificate, signer, reused, cer_path, profile_url })
}

/// The next version of a vault certificate (rotation), with the same subject as `current`.
pub fn new_version(url: &CertificateUrl, current: &Certificate, days: Option<u32>) -> anyhow::Result<MadeCertificate> {
    let client = client(url)?;
    let name = url.name().to_string();
    let mut policy = CertificatePolicy::new(current.subject().to_string());
    if let Some(days) = days {
        policy.validity_months = CertificatePolicy::months_for_days(days);
    }
    let certificate = block(&client, move |c| async move { c.create_certificate(&name, &policy).await })?;
    let signer: Arc<dyn KeySigner> = Arc::new(VaultSigner::new(&client, certificate.clone()).map_err(error)?);
    let profile_url = certificate.url.to_string();
    Ok(MadeCertificate { certificate, signer, reused: false, cer_path: PathBuf::new(), profile_url })
}

/// Rotation of a vault key (`cba cert rotate` of a `setup --key https://…` profile, docs/keys.md): the
/// successor is the next version of the same vault certificate (same subject, `--days` rounded up to whole
/// months), its `.cer` written as `<stem>.next.cer`; the promotion keeps the old `.cer` under a dated name and
/// renames the new one over the stable path, and the profile then names the new version's URL. The retired
/// version is disabled in the vault (its key signs no more) by `discard`, which runs only after removeKey took
/// its key off the app; it is never deleted (the vault's own retention applies).
pub struct VaultKeys {
    client: VaultClient,
    url: CertificateUrl,
    days: u32,
}

impl VaultKeys {
    /// The store for the profile's `certificate.key`; new versions valid `days` (rounded up to months).
    pub fn new(key: &str, days: u32) -> anyhow::Result<VaultKeys> {
        let url = parse_url(key)?;
        Ok(VaultKeys { client: client(&url)?, url, days })
    }

    fn url_of(&self, reference: &CertificateRef) -> Result<CertificateUrl, cba_http::BoxError> {
        let text = reference.key.as_deref().ok_or_else(|| {
            format!("{}: the profile records no vault certificate for this certificate", reference.path.display())
        })?;
        let url: CertificateUrl = text.parse()?;
        if url.vault() != self.url.vault() || url.name() != self.url.name() {
            return Err(format!("{url} is not a version of {}", self.url.with_version(None)).into());
        }
        Ok(url)
    }

    fn get(&self, url: &CertificateUrl) -> Result<VaultCertificate, cba_http::BoxError> {
        let (name, version) = (url.name().to_string(), url.version().map(str::to_string));
        Ok(block(&self.client, move |c| async move { c.get_certificate(&name, version.as_deref()).await })?)
    }
}

impl cba_lifecycle::KeyStore for VaultKeys {
    fn open(&self, reference: &CertificateRef) -> Result<Credential, cba_http::BoxError> {
        let url = self.url_of(reference)?;
        let certificate = self.get(&url)?;
        let signer = VaultSigner::new(&self.client, certificate.clone()).map_err(error)?;
        Ok(Credential::with_signer(certificate.certificate, Arc::new(signer)))
    }

    fn exists(&self, reference: &CertificateRef) -> bool {
        self.url_of(reference).and_then(|u| self.get(&u)).is_ok()
    }

    fn create_next(
        &self,
        current: &CertificateRef,
        current_credential: &Credential,
        _next: &cba_cert::NewCertificate,
    ) -> Result<(Credential, CertificateRef), cba_http::BoxError> {
        let current_url = self.url_of(current)?;
        let old = current_credential.certificate();
        // A version an interrupted run made (newer than the current one, not promoted) is the successor.
        let latest = self.get(&current_url.with_version(None))?;
        let made = if latest.url.version() != current_url.version()
            && latest.enabled
            && latest.certificate.not_before() >= old.not_before()
            && latest.certificate.thumbprint_sha1() != old.thumbprint_sha1()
        {
            let signer: Arc<dyn KeySigner> = Arc::new(VaultSigner::new(&self.client, latest.clone()).map_err(error)?);
            (latest, signer)
        } else {
            let made = new_version(&self.url, old, Some(self.days))?;
            (made.certificate, made.signer)
        };
        let (certificate, signer) = made;
        let path = pending_name(&current.path);
        fsutil::write_atomic(&path, certificate.certificate.der(), fsutil::Mode::Public, true)?;
        let mut reference = CertificateRef::new(&certificate.certificate, path, None).created_by_cba();
        reference.key = Some(certificate.url.to_string());
        Ok((Credential::with_signer(certificate.certificate, signer), reference))
    }

    fn promote(&self, pending: &CertificateRef, current: &CertificateRef) -> Result<Promoted, cba_http::BoxError> {
        let stable = &current.path;
        let holds = |p: &Path, thumbprint: &str| {
            std::fs::read(p)
                .ok()
                .and_then(|der| Certificate::from_der(&der).ok())
                .is_some_and(|c| c.thumbprint_sha1_hex().eq_ignore_ascii_case(thumbprint))
        };
        // 1. The current .cer is kept under a dated name (found again after an interruption).
        let old = self.get(&self.url_of(current)?)?.certificate;
        let date = old.not_before().date();
        let day = format!("{:04}{:02}{:02}", date.year(), u8::from(date.month()), date.day());
        let stem = stable.file_stem().and_then(|s| s.to_str()).unwrap_or("certificate").to_string();
        let ext = stable.extension().and_then(|e| e.to_str()).unwrap_or("cer").to_string();
        let candidates = (1..100)
            .map(|n| if n == 1 { day.clone() } else { format!("{day}-{n}") })
            .map(|suffix| stable.with_file_name(format!("{stem}-{suffix}.{ext}")));
        let mut kept = None;
        for candidate in candidates {
            if holds(&candidate, &current.thumbprint_sha1) {
                kept = Some(candidate);
                break;
            }
            if !candidate.exists() {
                fsutil::write_atomic(&candidate, old.der(), fsutil::Mode::Public, false)?;
                kept = Some(candidate);
                break;
            }
        }
        let kept = kept.ok_or("no free dated name for the old .cer")?;
        // 2. The stable path gets the new certificate in one rename.
        if pending.path.exists() {
            if !holds(&pending.path, &pending.thumbprint_sha1) {
                return Err(format!(
                    "{} does not hold the new certificate {}",
                    pending.path.display(),
                    pending.thumbprint_sha1
                )
                .into());
            }
            std::fs::rename(&pending.path, stable)
                .map_err(|e| format!("cannot rename {} to {}: {e}", pending.path.display(), stable.display()))?;
        }
        if !holds(stable, &pending.thumbprint_sha1) {
            return Err(
                format!("{} does not hold the new certificate {}", stable.display(), pending.thumbprint_sha1).into()
            );
        }
        Ok(Promoted {
            current: CertificateRef { path: stable.clone(), cer_path: current.cer_path.clone(), ..pending.clone() },
            retired: CertificateRef { path: kept, ..current.clone() },
        })
    }

    fn discard(&self, reference: &CertificateRef) -> Result<(), cba_http::BoxError> {
        let url = self.url_of(reference)?;
        let Some(version) = url.version().map(str::to_string) else {
            return Err(format!("{url}: the retired certificate names no version; left enabled").into());
        };
        let name = url.name().to_string();
        match block(&self.client, move |c| async move { c.set_enabled(&name, &version, false).await }) {
            Ok(_) => {}
            // Already gone from the vault (deleted by hand): nothing left to disable.
            Err(e) if format!("{e:#}").contains("is not in the vault (CertificateNotFound)") => {}
            Err(e) => return Err(format!("{e:#}").into()),
        }
        for path in reference.cer_path.iter().chain(std::iter::once(&reference.path)) {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(format!("cannot delete {}: {e}", path.display()).into());
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// `contoso-exo.cer` → `contoso-exo.next.cer`: where the successor's `.cer` waits until it is promoted.
fn pending_name(path: &Path) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("certificate");
    match path.extension().and_then(|e| e.to_str()) {
        Some(ext) => path.with_file_name(format!("{stem}.next.{ext}")),
        None => path.with_file_name(format!("{stem}.next")),
    }
}

/// The vault policy for a new certificate from `cert new`/`setup`'s options: subject (default `CN=NAME`),
/// validity in whole months (`--years` × 12, `--days` rounded up to months; default 12), RSA-2048.
fn policy(name: &str, o: &NewCertOptions) -> CertificatePolicy {
    let mut policy = CertificatePolicy::new(o.subject.clone().unwrap_or_else(|| format!("CN={name}")));
    policy.validity_months = match (o.days, o.years) {
        (_, Some(years)) => years.saturating_mul(12),
        (Some(days), None) => CertificatePolicy::months_for_days(days),
        (None, None) => 12,
    };
    policy
}

/// The client for the vault `url` is in, with the first token source the environment offers.
pub fn client(url: &CertificateUrl) -> anyhow::Result<VaultClient> {
    let loopback = url.vault().starts_with("http://");
    let http = crate::http::http_config(loopback)?;
    let token = match TOKEN_OVERRIDE.get() {
        Some(token) => token.clone(),
        None => token_source(url, http.clone(), |k| std::env::var(k).ok())?,
    };
    let policy = if loopback {
        RetryPolicy::fast().with_deadline(std::time::Duration::from_secs(30))
    } else {
        RetryPolicy::default()
    };
    VaultClient::new(url, http, token, policy).map_err(error)
}

/// The vault token, in order: `CBA_KEYVAULT_TOKEN`; a managed identity (`IDENTITY_ENDPOINT` +
/// `IDENTITY_HEADER`); the VM metadata endpoint when `CBA_KEYVAULT_IMDS=1`; else exit 3 naming them.
pub fn token_source(
    url: &CertificateUrl,
    http: cba_http::HttpConfig,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Arc<dyn TokenSource>> {
    let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    if let Some(token) = env(TOKEN_ENV) {
        return Ok(Arc::new(StaticToken::new(token.trim())));
    }
    let client_id = env(IDENTITY_CLIENT_ID_ENV);
    let with_client_id = |mi: ManagedIdentity| match &client_id {
        Some(id) => mi.client_id(id.clone()),
        None => mi,
    };
    match (env(IDENTITY_ENDPOINT_ENV), env(IDENTITY_HEADER_ENV)) {
        (Some(endpoint), Some(header)) => {
            let mi = ManagedIdentity::app_service(&endpoint, &header, url.resource(), http).map_err(error)?;
            return Ok(Arc::new(with_client_id(mi)));
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(fail(
                Exit::BadInput,
                format!(
                    "{IDENTITY_ENDPOINT_ENV} and {IDENTITY_HEADER_ENV} go together (a managed identity sets both); set both, or neither"
                ),
            ));
        }
        (None, None) => {}
    }
    if env(IMDS_ENV).is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        let mi = ManagedIdentity::imds(cba_keyvault::IMDS_ENDPOINT, url.resource(), http).map_err(error)?;
        return Ok(Arc::new(with_client_id(mi)));
    }
    Err(fail(
        Exit::BadInput,
        format!(
            "--key {url}: no token for the vault: set {TOKEN_ENV} (an access token for {}), run where a managed \
             identity sets {IDENTITY_ENDPOINT_ENV} and {IDENTITY_HEADER_ENV} (App Service, Functions, Automation), \
             or on an Azure VM set {IMDS_ENV}=1 to use its instance metadata endpoint",
            url.resource()
        ),
    ))
}

/// Run a vault call to completion from plain code or from inside a runtime: on a thread of its own, with a
/// current-thread runtime and a fresh HTTP client (the caller may be a tokio worker, where `block_on` panics).
fn block<T, F, Fut>(client: &VaultClient, call: F) -> anyhow::Result<T>
where
    T: Send,
    F: FnOnce(VaultClient) -> Fut + Send,
    Fut: std::future::Future<Output = Result<T, cba_keyvault::Error>>,
{
    let client = client.fresh().map_err(error)?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(call(client)).map_err(error)
            })
            .join()
            .map_err(|_| fail(Exit::Internal, "the vault call's thread panicked"))?
    })
}

/// A cba-keyvault error as a failure: the exit code docs/exit-codes.md gives it, and what to do next.
pub fn error(e: cba_keyvault::Error) -> anyhow::Error {
    use cba_keyvault::Error as E;
    let (exit, hint) = match &e {
        E::Url { .. } => (Exit::Usage, None),
        E::InvalidPolicy { .. } => (Exit::Usage, None),
        E::Unauthorized { .. } => (
            Exit::Auth,
            Some(
                "the vault token is expired or for another tenant or audience: get a new one for the challenge's \
                 resource (CBA_KEYVAULT_TOKEN), or check the managed identity",
            ),
        ),
        // Reading a certificate is not in every signing role (docs/keys.md): say which one reads.
        E::Forbidden { action, .. } if action.starts_with("read") => (
            Exit::Permission,
            Some(
                "the identity cannot read the vault's certificates: give it \"Key Vault Reader\" (or \"Key Vault \
                 Certificates Officer\") besides \"Key Vault Crypto User\", which signs",
            ),
        ),
        E::Forbidden { .. } => (Exit::Permission, Some(cba_keyvault::ROLES_HINT)),
        E::NotFound { .. } => (
            Exit::BadInput,
            Some(
                "check the vault and certificate name in --key (or the profile); `cba cert new --name NAME --key URL` makes one",
            ),
        ),
        E::Identity { .. } | E::Token(_) => {
            (Exit::Auth, Some("the managed identity gave no vault token: is it enabled for this app or VM?"))
        }
        E::PendingFailed { .. } => (Exit::Remote, Some("the vault's message says why; fix it and rerun")),
        E::PendingTimeout { .. } | E::RetriesExhausted { .. } | E::Transport { .. } | E::Service { .. } => {
            (Exit::Remote, None)
        }
        E::Response { .. } => (Exit::Remote, None),
        _ => (Exit::Remote, None),
    };
    let hint = hint.map(str::to_string).or_else(|| {
        let chain: &(dyn std::error::Error + 'static) = &e;
        cba_http::find_tls_failure(chain).map(|f| crate::http::tls_failure_hint(&f).to_string())
    });
    fail(exit, hints::with_hint(&e, hint.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(name, _)| *name == k).map(|(_, v)| v.to_string())
    }

    fn exit_of(e: &anyhow::Error) -> Option<Exit> {
        e.downcast_ref::<crate::exit::Failure>().map(|f| f.exit)
    }

    #[test]
    fn token_sources_in_order() {
        let url: CertificateUrl = "https://contoso.vault.azure.net/certificates/exo".parse().unwrap();
        let http = cba_http::HttpConfig::new().platform_roots(false);
        let token = token_source(
            &url,
            http.clone(),
            env(&[(TOKEN_ENV, "t"), (IDENTITY_ENDPOINT_ENV, "http://127.0.0.1:1/msi"), (IDENTITY_HEADER_ENV, "h")]),
        )
        .unwrap();
        assert!(format!("{token:?}").contains("StaticToken"), "{token:?}");
        let token = token_source(
            &url,
            http.clone(),
            env(&[(IDENTITY_ENDPOINT_ENV, "http://127.0.0.1:1/msi"), (IDENTITY_HEADER_ENV, "secret-h")]),
        )
        .unwrap();
        let debug = format!("{token:?}");
        assert!(debug.contains("ManagedIdentity") && !debug.contains("secret-h"), "{debug}");
        let token = token_source(&url, http.clone(), env(&[(IMDS_ENV, "1")])).unwrap();
        assert!(format!("{token:?}").contains("169.254.169.254"), "{token:?}");

        let err = token_source(&url, http.clone(), env(&[])).unwrap_err();
        let text = format!("{err:#}");
        for name in [TOKEN_ENV, IDENTITY_ENDPOINT_ENV, IDENTITY_HEADER_ENV, IMDS_ENV] {
            assert!(text.contains(name), "{text}");
        }
        assert_eq!(exit_of(&err), Some(Exit::BadInput));
        let err = token_source(&url, http, env(&[(IDENTITY_HEADER_ENV, "h")])).unwrap_err();
        assert!(format!("{err:#}").contains("go together"));
    }

    #[test]
    fn vault_errors_map_to_documented_exit_codes() {
        use cba_keyvault::Error as E;
        let forbidden = E::Forbidden {
            vault: "v".into(),
            action: "sign".into(),
            code: "ForbiddenByRbac".into(),
            message: "m".into(),
        };
        let e = error(forbidden);
        assert_eq!(exit_of(&e), Some(Exit::Permission));
        let text = format!("{e:#}");
        assert!(text.contains("Key Vault Crypto User") && text.contains("Key Vault Certificates Officer"), "{text}");
        let e = error(E::Unauthorized { vault: "v".into(), authorization: None, resource: None, message: "m".into() });
        assert_eq!(exit_of(&e), Some(Exit::Auth));
        let e = error(E::NotFound { object: "o".into(), code: "CertificateNotFound".into(), message: "m".into() });
        assert_eq!(exit_of(&e), Some(Exit::BadInput));
        let e = error(E::RetriesExhausted {
            vault: "v".into(),
            action: "a".into(),
            status: 429,
            attempts: 3,
            elapsed: std::time::Duration::ZERO,
        });
        assert_eq!(exit_of(&e), Some(Exit::Remote));
        assert_eq!(exit_of(&parse_url("http://example.com/certificates/x").unwrap_err()), Some(Exit::Usage));
    }

    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        options: NewCertOptions,
    }

    #[test]
    fn policy_from_the_new_certificate_options() {
        let mut o = <Flags as clap::Parser>::parse_from(["cba"]).options;
        assert_eq!(policy("exo", &o), CertificatePolicy::new("CN=exo"));
        o.years = Some(2);
        assert_eq!(policy("exo", &o).validity_months, 24);
        o.years = None;
        o.days = Some(90);
        assert_eq!(policy("exo", &o).validity_months, 3);
        o.subject = Some("CN=x, O=Contoso".into());
        assert_eq!(policy("exo", &o).subject, "CN=x, O=Contoso");
    }
}
