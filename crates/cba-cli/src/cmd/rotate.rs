//! `cba cert rotate`: cba-lifecycle's rotation (docs/rotation.md) with the certificates kept as files, or
//! their keys in a PKCS#11 token ([`TokenKeys`]).
//!
//! The path `cba setup` printed stays the path: the successor is written beside it as `<stem>.next.<ext>`,
//! registered and proven, then renamed over it, after the current files were copied to a dated name
//! (`<stem>-YYYYMMDD.<ext>`, the old certificate's issue date; `-2` when taken). The dated copy stays
//! registered for `--overlap`; a later run (the daily cron) removes its key and deletes it. A PFX successor
//! has the current one's password and PFX format; a PEM stays PEM.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cba_cert::{Certificate, Identity, NewCertificate, Password, PfxFormat};
use cba_lifecycle::rotate::Promoted;
use cba_lifecycle::{AdminCredential, Credential, KeyStore, RotateReport, RotateRequest};
use cba_pkcs11::{KeyUri, Token, TokenKey};
use serde::Serialize;

use crate::Global;
use crate::certfile as cert;
use crate::cmd::setup::{self, NextSteps};
use crate::connect::{self, Ui};
use crate::exit::{Exit, fail};
use crate::fsutil::{self, Mode};
use crate::output;
use crate::pkcs11;
use crate::profile::{CertificateRef, FileStore};
use crate::secrets::PasswordArgs;
use crate::settings::{self, AdminArgs, EndpointArgs, Urls};

const EXAMPLES: &str = "\
Examples:
  cba cert rotate --profile contoso-exo.profile.json                           # old key kept 7 days
  cba cert rotate --profile contoso-exo.profile.json --if-expiring-within 30  # daily cron job
  cba cert rotate --profile contoso-exo.profile.json --overlap 0              # old key removed now
  cba cert rotate --profile contoso-exo.profile.json --admin device-code      # it has expired

The certificate keeps its path (contoso-exo.pfx): scripts, scheduled tasks, AZURE_CLIENT_CERTIFICATE_PATH
and Connect-ExchangeOnline -CertificateFilePath need no change. The old one is kept beside it with its
date (contoso-exo-20260115.pfx) and stays registered for --overlap, so machines holding a copy keep
working; a later run (the daily cron) removes it then. Same password and format (a PEM stays PEM).
A key in a PKCS#11 token (cba setup --key): the next one is generated in the token (LABEL-YYYYMMDD),
and the old one is deleted from the token once its removal from the app succeeded (docs/keys.md).
Rerun after an interruption: it finishes the rotation.";

/// `cba cert rotate` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The profile `cba setup` wrote [env: CBA_PROFILE].
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Rotate only if the certificate expires within DAYS days (retired certificates past their overlap
    /// are removed either way).
    #[arg(long, value_name = "DAYS")]
    pub if_expiring_within: Option<u32>,
    /// Validity of the new certificate in days.
    #[arg(long, value_name = "N", default_value_t = 365)]
    pub days: u32,
    /// How long the old certificate stays registered after the switch (0 removes it at once; 12h, 7d).
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = settings::parse_duration)]
    pub overlap: Duration,
    #[command(flatten)]
    pub password: PasswordArgs,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
    /// Only when the current certificate has expired: the administrator's sign-in for the fallback PATCH.
    #[command(flatten)]
    pub admin: AdminArgs,
    /// How long to wait for Entra to accept the new certificate (90s, 5m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = settings::parse_duration)]
    pub wait: Duration,
    /// A multi-tenant app's fleet file: prove the new certificate in a sample of its customer tenants (up to
    /// 3) before it replaces the old one.
    #[arg(long, value_name = "FILE")]
    pub fleet: Option<PathBuf>,
    /// With --fleet: prove it in every customer tenant, not a sample.
    #[arg(long, requires = "fleet")]
    pub prove_all: bool,
}

/// The customer tenants a rotation proves the new certificate in: every one with `all`, else up to three
/// spread over the fleet (first, middle, last). Tenants still awaiting consent cannot get a token: skipped.
fn fleet_sample(file: &std::path::Path, all: bool) -> anyhow::Result<Vec<String>> {
    use cba_lifecycle::fleet::OnboardingState as S;
    let fleet = crate::fleetfile::FleetFile::new(file).require()?;
    let ids: Vec<String> = fleet
        .tenants
        .iter()
        .filter(|t| matches!(t.state, S::Onboarded | S::Consented))
        .map(|t| t.tenant_id.clone())
        .collect();
    if all || ids.len() <= 3 {
        return Ok(ids);
    }
    let mut picked = vec![ids[0].clone(), ids[ids.len() / 2].clone(), ids[ids.len() - 1].clone()];
    picked.dedup();
    Ok(picked)
}

/// The JSON document of `cba cert rotate` (docs/cli-json.md): the library's report and, after a rotation,
/// how to use the (same) path.
#[derive(Debug, Clone, Serialize)]
pub struct Document {
    #[serde(flatten)]
    pub report: RotateReport,
    pub next_steps: Option<NextSteps>,
    /// After a rotation of a key PowerShell cannot read (a token or vault key): the `-AccessToken` line instead
    /// of `next_steps`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub powershell_access_token: Option<String>,
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let (store, profile) = settings::require_profile(args.profile)?;
    store.require_complete(&profile)?;
    let urls = Urls::resolve(&args.endpoints, Some(&profile), |k| std::env::var(k).ok())?;
    let admin = if args.admin.given() { Some(args.admin.resolve(|k| std::env::var(k).ok())?) } else { None };
    let request = RotateRequest {
        if_expiring_within: args.if_expiring_within,
        days: args.days,
        wait: args.wait,
        overlap: args.overlap,
        prove_in: match &args.fleet {
            Some(file) => fleet_sample(file, args.prove_all)?,
            None => Vec::new(),
        },
    };
    let ui = Ui { style: global.style, all_waits: false };
    let report = crate::runtime()?.block_on(execute(&store, &urls, admin.as_ref(), &args.password, &request, ui))?;
    let (mut next_steps, mut powershell_access_token) = (None, None);
    if report.rotated {
        let profile = store.read()?;
        if profile.certificate.key.is_some() {
            powershell_access_token = Some(setup::access_token_line(&profile, &store.path, &urls));
        } else {
            next_steps = Some(setup::next_steps(&profile, &urls));
        }
    }
    output::print_document(global.output, &Document { report, next_steps, powershell_access_token }, text)
}

/// Rotate with cba-lifecycle, the certificates kept as files beside the current one.
pub async fn execute(
    store: &FileStore,
    urls: &Urls,
    admin: Option<&AdminCredential>,
    password: &PasswordArgs,
    request: &RotateRequest,
    ui: Ui,
) -> anyhow::Result<RotateReport> {
    let services = connect::services(urls, ui)?;
    let token_key = store.read()?.certificate.key;
    let report = match token_key {
        // The key is in a vault: its successor is the certificate's next version.
        Some(uri) if crate::keyvault::is_vault(&uri) => {
            let keys = crate::keyvault::VaultKeys::new(&uri, request.days)?;
            cba_lifecycle::rotate(&services, store, &keys, admin, request).await
        }
        // The key is in a PKCS#11 token: its successor is generated there.
        Some(uri) => {
            let keys = TokenKeys::login(&uri)?;
            cba_lifecycle::rotate(&services, store, &keys, admin, request).await
        }
        None => {
            let keys = FileKeys { password: password.clone(), opened: Mutex::new(None) };
            cba_lifecycle::rotate(&services, store, &keys, admin, request).await
        }
    }
    .map_err(connect::lifecycle_failure)?;
    if report.rotated || !report.removed.is_empty() {
        // Tokens cached for a certificate that is gone (or going) must not outlive it in the cache.
        if let Ok(p) = store.read() {
            let tenants = [p.tenant_id.as_str(), p.tenant_domain.as_deref().unwrap_or("")];
            if let Err(e) = crate::cmd::teardown::forget_cached_tokens(&urls.login, &tenants, &p.app_id) {
                ui.detail(&format!("could not clear the app's cached tokens: {e:#}"));
            }
        }
    }
    Ok(report)
}

/// Certificates as PFX/PEM files (with a CER beside them when setup wrote one). The successor is protected
/// like the current one: same password, same PFX format, or PEM.
struct FileKeys {
    password: PasswordArgs,
    /// The password that opened the current certificate, for its successor and its kept copy.
    opened: Mutex<Option<Option<Password>>>,
}

impl FileKeys {
    /// The certificate at `path`, opened with the password that opened the current one (asked for once).
    fn load(&self, path: &Path) -> anyhow::Result<Identity> {
        let bytes = fsutil::read(path)?;
        let cached = self.opened.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(password) = cached {
            return cba_cert::load(&bytes, password.as_ref())
                .map_err(|e| fail(Exit::BadInput, format!("{}: {e}", path.display())));
        }
        let (identity, password) = cert::open_with_password(path, &bytes, &self.password)?;
        self.opened.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(password);
        Ok(identity)
    }

    /// Whether `path` holds the certificate with this thumbprint.
    fn holds(&self, path: &Path, thumbprint: &str) -> bool {
        path.exists()
            && self.load(path).is_ok_and(|i| i.certificate.thumbprint_sha1_hex().eq_ignore_ascii_case(thumbprint))
    }

    /// Where the current certificate is kept before its path gets the new one: found again when an
    /// interrupted run already copied it, else copied now (fsynced, never replacing a file). Returns the
    /// copy's path and its CER's.
    fn keep(&self, current: &CertificateRef, pending: &CertificateRef) -> anyhow::Result<(PathBuf, Option<PathBuf>)> {
        let stable = &current.path;
        let names = DatedNames::of(stable);
        let taken = |p: &Path| p == stable.as_path() || p == pending.path.as_path();
        let found = names.existing()?.into_iter().find(|p| !taken(p) && self.holds(p, &current.thumbprint_sha1));
        let (kept, old) = match found {
            Some(kept) => {
                let old = self.load(&kept)?;
                (kept, old)
            }
            None => {
                let old = self.load(stable)?;
                if !old.certificate.thumbprint_sha1_hex().eq_ignore_ascii_case(&current.thumbprint_sha1) {
                    return Err(fail(
                        Exit::BadInput,
                        format!(
                            "{} holds certificate {}, neither the current {} nor the new {}",
                            stable.display(),
                            old.certificate.thumbprint_sha1_hex(),
                            current.thumbprint_sha1,
                            pending.thumbprint_sha1
                        ),
                    ));
                }
                let date = old.certificate.not_before().date();
                let day = format!("{:04}{:02}{:02}", date.year(), u8::from(date.month()), date.day());
                let cer_names = current.cer_path.as_deref().map(DatedNames::of);
                let kept = (1..)
                    .map(|n| if n == 1 { day.clone() } else { format!("{day}-{n}") })
                    .map(|suffix| (names.with(&suffix), cer_names.as_ref().map(|c| c.with(&suffix))))
                    .find(|(key, cer)| !taken(key) && !key.exists() && cer.as_ref().is_none_or(|c| !c.exists()))
                    .map(|(key, _)| key)
                    .expect("some suffix is free");
                fsutil::write_atomic(&kept, &fs::read(stable)?, Mode::Private, false)?;
                (kept, old)
            }
        };
        // The CER is public and rebuilt from the certificate, so a rerun simply writes it again.
        let cer = match &current.cer_path {
            Some(cer) => {
                let dated = DatedNames::of(cer).with(names.suffix_of(&kept).unwrap_or_default());
                fsutil::write_atomic(&dated, old.certificate.der(), Mode::Public, true)?;
                Some(dated)
            }
            None => None,
        };
        Ok((kept, cer))
    }
}

impl KeyStore for FileKeys {
    fn open(&self, reference: &CertificateRef) -> Result<Credential, cba_http::BoxError> {
        Ok(self.load(&reference.path)?.into())
    }

    fn exists(&self, reference: &CertificateRef) -> bool {
        reference.path.exists()
    }

    fn create_next(
        &self,
        current: &CertificateRef,
        current_credential: &Credential,
        next: &NewCertificate,
    ) -> Result<(Credential, CertificateRef), cba_http::BoxError> {
        let path = pending_name(&current.path);
        let cer_path = current.cer_path.as_deref().map(pending_name);
        let mut identity = cba_cert::generate(next).map_err(|e| fail(Exit::BadInput, e))?;
        let password = self.opened.lock().unwrap_or_else(|e| e.into_inner()).clone().flatten();
        // A PEM (no PKCS#12 format read) stays PEM; a PFX keeps its protection.
        let (bytes, format) = match current_credential.identity().and_then(|i| i.pfx_format) {
            None => (zeroize::Zeroizing::new(identity.to_pem()?.as_bytes().to_vec()), None),
            Some(PfxFormat::Legacy) => {
                (identity.to_pfx(password.as_ref(), PfxFormat::Legacy)?.into(), Some(PfxFormat::Legacy))
            }
            Some(_) => (identity.to_pfx(password.as_ref(), PfxFormat::Modern)?.into(), Some(PfxFormat::Modern)),
        };
        // What an interrupted run left at these names was never promoted: replaced.
        let mut staged = vec![fsutil::stage(&path, &bytes, Mode::Private)?];
        if let Some(cer) = &cer_path {
            staged.push(fsutil::stage(cer, identity.certificate.der(), Mode::Public)?);
        }
        fsutil::commit_all(&mut staged, true)?;
        identity.pfx_format = format;
        let reference = CertificateRef::new(&identity.certificate, path, cer_path).created_by_cba();
        Ok((identity.into(), reference))
    }

    fn promote(&self, pending: &CertificateRef, current: &CertificateRef) -> Result<Promoted, cba_http::BoxError> {
        let stable = &current.path;
        // 1. The current files are kept (unless an interrupted run got further: then they were kept already).
        let (kept, kept_cer) = self.keep(current, pending)?;
        // 2. The new files take the stable names, the key file last: until that rename, the stable path
        // holds the current certificate, after it the new one, whole either way.
        if let (Some(next_cer), Some(cer)) = (&pending.cer_path, &current.cer_path)
            && next_cer.exists()
        {
            replace(next_cer, cer)?;
        }
        if pending.path.exists() {
            if !self.holds(&pending.path, &pending.thumbprint_sha1) {
                return Err(format!(
                    "{} does not hold the new certificate {}",
                    pending.path.display(),
                    pending.thumbprint_sha1
                )
                .into());
            }
            replace(&pending.path, stable)?;
        }
        if !self.holds(stable, &pending.thumbprint_sha1) {
            return Err(
                format!("{} does not hold the new certificate {}", stable.display(), pending.thumbprint_sha1).into()
            );
        }
        Ok(Promoted {
            current: CertificateRef { path: stable.clone(), cer_path: current.cer_path.clone(), ..pending.clone() },
            retired: CertificateRef { path: kept, cer_path: kept_cer, ..current.clone() },
        })
    }

    fn discard(&self, reference: &CertificateRef) -> Result<(), cba_http::BoxError> {
        for path in reference.cer_path.iter().chain(std::iter::once(&reference.path)) {
            match fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(format!("cannot delete {}: {e}", path.display()).into());
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Keys in a PKCS#11 token (`cba setup --key`, docs/keys.md). The profile's certificate is the `.cer`
/// written for upload and `key` the URI of the token key that signs. The successor is generated in the token
/// under `<label>-YYYYMMDD` (`-2` … when taken; the date of the rotation), its self-signed certificate
/// stored beside it and written to `<stem>.next.cer`; the promotion keeps the old `.cer` under a dated name
/// and renames the new one over the stable path, and the profile then names the new key. A retired key
/// object (and its certificate in the token) is deleted only by `discard`, after removeKey succeeded.
struct TokenKeys {
    token: Token,
    /// The profile's URI: its module path goes into the new key's URI.
    given: KeyUri,
}

impl TokenKeys {
    fn login(uri_text: &str) -> anyhow::Result<TokenKeys> {
        let given = pkcs11::parse_uri(uri_text)?;
        let token = pkcs11::login(&given, None)?;
        Ok(TokenKeys { token, given })
    }

    /// The key `reference` records, `None` when the token no longer has it.
    fn key(&self, reference: &CertificateRef) -> anyhow::Result<Option<TokenKey>> {
        let Some(text) = reference.key.as_deref() else {
            return Err(fail(
                Exit::BadInput,
                format!("{}: the profile records no token key for this certificate", reference.path.display()),
            ));
        };
        pkcs11::find_key(&self.token, &pkcs11::parse_uri(text)?)
    }

    fn credential(key: TokenKey) -> anyhow::Result<Credential> {
        let Some(certificate) = key.certificate().cloned() else {
            return Err(fail(
                Exit::BadInput,
                format!("key {:?} in the PKCS#11 token has no certificate stored beside it", key.label()),
            ));
        };
        Ok(Credential::with_signer(certificate, Arc::new(key)))
    }

    /// The successor's key: a label not taken yet, or the key an interrupted run made under one (not the
    /// current key, and no certificate older than the current one: that would be a retired key).
    fn next_key(&self, current: &TokenKey, current_certificate: &Certificate) -> anyhow::Result<TokenKey> {
        let base = base_stem(current.label()).to_string();
        let date = time::OffsetDateTime::now_utc().date();
        let day = format!("{:04}{:02}{:02}", date.year(), u8::from(date.month()), date.day());
        for n in 1.. {
            let label = if n == 1 { format!("{base}-{day}") } else { format!("{base}-{day}-{n}") };
            match self.token.find_key(Some(&label), None).map_err(pkcs11::error)? {
                None => return self.token.generate_key(&label, false).map_err(pkcs11::error),
                Some(key)
                    if key.id() != current.id()
                        && key.certificate().is_none_or(|c| {
                            c.thumbprint_sha1_hex() != current_certificate.thumbprint_sha1_hex()
                                && c.not_before() >= current_certificate.not_before()
                        }) =>
                {
                    return Ok(key);
                }
                Some(_) => {}
            }
        }
        unreachable!("some label is free")
    }
}

/// Whether the DER certificate at `path` has this thumbprint.
fn cer_holds(path: &Path, thumbprint: &str) -> bool {
    fs::read(path)
        .ok()
        .and_then(|der| Certificate::from_der(&der).ok())
        .is_some_and(|c| c.thumbprint_sha1_hex().eq_ignore_ascii_case(thumbprint))
}

impl KeyStore for TokenKeys {
    fn open(&self, reference: &CertificateRef) -> Result<Credential, cba_http::BoxError> {
        let Some(key) = self.key(reference)? else {
            return Err(format!(
                "the token {:?} has no key {}",
                self.token.label(),
                reference.key.as_deref().unwrap_or_default()
            )
            .into());
        };
        Ok(Self::credential(key)?)
    }

    fn exists(&self, reference: &CertificateRef) -> bool {
        self.key(reference).is_ok_and(|k| k.is_some())
    }

    fn create_next(
        &self,
        current: &CertificateRef,
        current_credential: &Credential,
        next: &NewCertificate,
    ) -> Result<(Credential, CertificateRef), cba_http::BoxError> {
        let Some(current_key) = self.key(current)? else {
            return Err(format!("the token has no key {}", current.key.as_deref().unwrap_or_default()).into());
        };
        let mut key = self.next_key(&current_key, current_credential.certificate())?;
        let certificate = match key.certificate() {
            Some(c) => c.clone(),
            None => {
                let c = cba_cert::generate_with(next, &key).map_err(|e| fail(Exit::BadInput, e))?;
                self.token.store_certificate(&mut key, &c).map_err(pkcs11::error)?;
                c
            }
        };
        // What an interrupted run left at this name was never promoted: replaced.
        let path = pending_name(&current.path);
        fsutil::write_atomic(&path, certificate.der(), Mode::Public, true)?;
        let mut reference = CertificateRef::new(&certificate, path, None).created_by_cba();
        reference.key = Some(pkcs11::profile_uri(&key, &self.given, None));
        Ok((Credential::with_signer(certificate, Arc::new(key)), reference))
    }

    fn promote(&self, pending: &CertificateRef, current: &CertificateRef) -> Result<Promoted, cba_http::BoxError> {
        let stable = &current.path;
        let names = DatedNames::of(stable);
        // 1. The current .cer is kept under its dated name (found again after an interruption).
        let taken = |p: &Path| p == stable.as_path() || p == pending.path.as_path();
        let found = names.existing()?.into_iter().find(|p| !taken(p) && cer_holds(p, &current.thumbprint_sha1));
        let kept = match found {
            Some(kept) => kept,
            None => {
                let old = match self.key(current)?.and_then(|k| k.certificate().cloned()) {
                    Some(c) if c.thumbprint_sha1_hex().eq_ignore_ascii_case(&current.thumbprint_sha1) => c,
                    _ => {
                        return Err(format!(
                            "the token no longer holds the current certificate {} ({})",
                            current.thumbprint_sha1,
                            current.key.as_deref().unwrap_or_default()
                        )
                        .into());
                    }
                };
                let date = old.not_before().date();
                let day = format!("{:04}{:02}{:02}", date.year(), u8::from(date.month()), date.day());
                let kept = (1..)
                    .map(|n| if n == 1 { day.clone() } else { format!("{day}-{n}") })
                    .map(|suffix| names.with(&suffix))
                    .find(|p| !taken(p) && !p.exists())
                    .expect("some suffix is free");
                fsutil::write_atomic(&kept, old.der(), Mode::Public, false)?;
                kept
            }
        };
        // 2. The stable path gets the new certificate in one rename.
        if pending.path.exists() {
            if !cer_holds(&pending.path, &pending.thumbprint_sha1) {
                return Err(format!(
                    "{} does not hold the new certificate {}",
                    pending.path.display(),
                    pending.thumbprint_sha1
                )
                .into());
            }
            replace(&pending.path, stable)?;
        }
        if !cer_holds(stable, &pending.thumbprint_sha1) {
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
        if reference.key.is_some()
            && let Some(key) = self.key(reference)?
        {
            // Only the retired certificate's key, never one that now certifies another.
            if let Some(c) = key.certificate()
                && !c.thumbprint_sha1_hex().eq_ignore_ascii_case(&reference.thumbprint_sha1)
            {
                return Err(format!(
                    "key {:?} in the token holds certificate {}, not the retired {}: left as it is",
                    key.label(),
                    c.thumbprint_sha1_hex(),
                    reference.thumbprint_sha1
                )
                .into());
            }
            self.token.delete_key(key).map_err(pkcs11::error)?;
        }
        for path in reference.cer_path.iter().chain(std::iter::once(&reference.path)) {
            match fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(format!("cannot delete {}: {e}", path.display()).into());
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Rename `from` over `to` and make the rename durable.
fn replace(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::rename(from, to)
        .map_err(|e| fail(Exit::BadInput, format!("cannot rename {} to {}: {e}", from.display(), to.display())))?;
    if let Ok(dir) = fs::File::open(folder(to)) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn folder(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// `contoso-exo.pfx` → `contoso-exo.next.pfx`: where the successor waits until it is promoted.
fn pending_name(path: &Path) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("certificate");
    match path.extension().and_then(|e| e.to_str()) {
        Some(ext) => path.with_file_name(format!("{stem}.next.{ext}")),
        None => path.with_file_name(format!("{stem}.next")),
    }
}

/// The dated names beside a stable file: `<base>-YYYYMMDD[-N].<ext>`.
struct DatedNames {
    dir: PathBuf,
    base: String,
    ext: Option<String>,
}

impl DatedNames {
    fn of(path: &Path) -> DatedNames {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("certificate");
        DatedNames {
            dir: folder(path).to_path_buf(),
            base: base_stem(stem).to_string(),
            ext: path.extension().and_then(|e| e.to_str()).map(str::to_string),
        }
    }

    fn with(&self, suffix: &str) -> PathBuf {
        let name = format!("{}-{suffix}", self.base);
        self.dir.join(match &self.ext {
            Some(ext) => format!("{name}.{ext}"),
            None => name,
        })
    }

    /// `20260115` or `20260115-2` when `path` is one of these names.
    fn suffix_of<'a>(&self, path: &'a Path) -> Option<&'a str> {
        let name = path.file_name()?.to_str()?;
        let name = match &self.ext {
            Some(ext) => name.strip_suffix(ext.as_str())?.strip_suffix('.')?,
            None => name,
        };
        let suffix = name.strip_prefix(self.base.as_str())?.strip_prefix('-')?;
        let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
        let ok = match suffix.split_once('-') {
            Some((day, n)) => day.len() == 8 && digits(day) && digits(n),
            None => suffix.len() == 8 && digits(suffix),
        };
        ok.then_some(suffix)
    }

    /// The files in the folder with one of these names.
    fn existing(&self) -> anyhow::Result<Vec<PathBuf>> {
        let entries = fs::read_dir(&self.dir)
            .map_err(|e| fail(Exit::BadInput, format!("cannot list {}: {e}", self.dir.display())))?;
        let mut found: Vec<PathBuf> =
            entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| self.suffix_of(p).is_some()).collect();
        found.sort();
        Ok(found)
    }
}

/// `contoso-exo-20270101-2` → `contoso-exo`: a profile of an earlier version names a dated file; its
/// kept copies do not pile up dates.
fn base_stem(stem: &str) -> &str {
    let mut s = stem;
    if let Some((head, n)) = s.rsplit_once('-')
        && !n.is_empty()
        && n.len() <= 3
        && n.chars().all(|c| c.is_ascii_digit())
        && head.rsplit_once('-').is_some_and(|(_, d)| d.len() == 8 && d.chars().all(|c| c.is_ascii_digit()))
    {
        s = head;
    }
    match s.rsplit_once('-') {
        Some((head, d)) if d.len() == 8 && d.chars().all(|c| c.is_ascii_digit()) && !head.is_empty() => head,
        _ => s,
    }
}

/// The report for people.
pub fn text(d: &Document) -> String {
    let r = &d.report;
    let mut fields: Vec<(&str, String)> = Vec::new();
    if r.rotated {
        fields.push(("rotated", format!("yes ({}{})", r.reason, if r.resumed { ", resumed" } else { "" })));
        fields.push(("method", r.method.unwrap_or("-").to_string()));
        fields.push(("certificate", format!("{} (same path, new certificate)", r.certificate)));
        fields.push(("new thumbprint", r.new_thumbprint_sha1.clone().unwrap_or_default()));
        fields.push(("valid until", r.new_not_after.clone().unwrap_or_default()));
        let old = match r.retired.iter().find(|k| k.thumbprint_sha1 == r.old_thumbprint_sha1) {
            Some(k) => format!("{} kept as {}, registered until {}", k.thumbprint_sha1, k.path, k.remove_after),
            None if r.old_removed => format!("{} (removed)", r.old_thumbprint_sha1),
            None => r.old_thumbprint_sha1.clone(),
        };
        fields.push(("old certificate", old));
    } else {
        fields.push(("rotated", format!("no ({})", r.reason)));
        fields.push(("certificate", format!("{} {}", r.certificate, r.old_thumbprint_sha1)));
    }
    for k in r.retired.iter().filter(|k| !r.rotated || k.thumbprint_sha1 != r.old_thumbprint_sha1) {
        fields.push(("retired", format!("{} at {}, registered until {}", k.thumbprint_sha1, k.path, k.remove_after)));
    }
    if !r.removed.is_empty() {
        fields.push(("removed", format!("{} (key removed, files deleted)", r.removed.join(", "))));
    }
    fields.push(("profile", r.profile.clone()));
    fields.push(("requests", format!("{} ({} ms)", r.requests, r.elapsed_ms)));
    let mut out = String::new();
    for (k, v) in fields {
        out.push_str(&format!("{k:<16} {v}\n"));
    }
    if let Some(line) = &d.powershell_access_token {
        out.push_str(
            "\nThe key stays where it is; Exchange Online PowerShell cannot use it, so connect with a token from \
             cba (module 3.1+)\n  ",
        );
        out.push_str(line);
        out.push('\n');
    }
    if let Some(n) = &d.next_steps {
        out.push_str("\nScripts naming the path need no change. Exchange Online PowerShell:\n  ");
        out.push_str(&n.powershell);
        out.push_str("\nOn Windows, import the new PFX and use its thumbprint:\n");
        for line in &n.powershell_windows {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successive_rotations_keep_one_date() {
        assert_eq!(base_stem("contoso-exo"), "contoso-exo");
        assert_eq!(base_stem("contoso-exo-20270101"), "contoso-exo");
        assert_eq!(base_stem("contoso-exo-20270101-2"), "contoso-exo");
        assert_eq!(base_stem("app-2"), "app-2");
        assert_eq!(base_stem("20270101"), "20270101");
    }

    #[test]
    fn dated_and_pending_names() {
        let names = DatedNames::of(Path::new("/p/contoso-exo.pfx"));
        assert_eq!(names.with("20260115"), Path::new("/p/contoso-exo-20260115.pfx"));
        assert_eq!(pending_name(Path::new("/p/contoso-exo.pem")), Path::new("/p/contoso-exo.next.pem"));
        let check = |name: &str, expected: Option<&str>| {
            assert_eq!(names.suffix_of(&Path::new("/p").join(name)), expected, "{name}");
        };
        check("contoso-exo-20260115.pfx", Some("20260115"));
        check("contoso-exo-20260115-2.pfx", Some("20260115-2"));
        check("contoso-exo.pfx", None);
        check("contoso-exo.next.pfx", None);
        check("contoso-exo-20260115.cer", None);
        check("contoso-exo-2026011.pfx", None);
        check("contoso-exo-20260115-x.pfx", None);
        check("other-20260115.pfx", None);
    }

    /// Files as `cba setup` leaves them: an unprotected PFX and its CER.
    fn setup_files(dir: &Path) -> (FileKeys, CertificateRef, Identity) {
        let identity = cba_cert::generate(&NewCertificate::new("contoso-exo")).unwrap();
        let (pfx, cer) = (dir.join("contoso-exo.pfx"), dir.join("contoso-exo.cer"));
        let mut identity = cert::write_identity(identity, None, PfxFormat::Modern, &pfx, &cer, None, false).unwrap();
        identity.pfx_format = Some(PfxFormat::Modern);
        let reference = CertificateRef::new(&identity.certificate, pfx, Some(cer)).created_by_cba();
        let keys = FileKeys {
            password: PasswordArgs { unprotected: true, ..PasswordArgs::default() },
            opened: Mutex::new(None),
        };
        (keys, reference, identity)
    }

    fn thumbprint_at(path: &Path) -> String {
        cba_cert::load(&fs::read(path).unwrap(), None).unwrap().certificate.thumbprint_sha1_hex()
    }

    #[test]
    fn promote_keeps_the_old_files_and_is_idempotent_after_any_interruption() {
        let dir = tempfile::tempdir().unwrap();
        let (keys, current, identity) = setup_files(dir.path());
        keys.open(&current).unwrap();
        let next = NewCertificate::new("contoso-exo").validity(cba_cert::Validity::Days(30));
        let (_, pending) = keys.create_next(&current, &identity.clone().into(), &next).unwrap();
        assert_eq!(pending.path, dir.path().join("contoso-exo.next.pfx"));
        assert_eq!(thumbprint_at(&current.path), current.thumbprint_sha1, "the current files are untouched");

        // Interrupted after the copy: the same copy is found again, not a second one made.
        let (kept, _) = keys.keep(&current, &pending).unwrap();
        let promoted = keys.promote(&pending, &current).unwrap();
        assert_eq!(promoted.retired.path, kept);
        let dated = promoted.retired.path.clone();
        assert!(DatedNames::of(&current.path).suffix_of(&dated).is_some(), "{dated:?}");
        assert_eq!(promoted.current.path, current.path);
        assert_eq!(thumbprint_at(&current.path), pending.thumbprint_sha1, "the stable path holds the new one");
        assert_eq!(thumbprint_at(&dated), current.thumbprint_sha1, "the old one is kept");
        assert_eq!(thumbprint_at(promoted.retired.cer_path.as_ref().unwrap()), current.thumbprint_sha1);
        assert_eq!(thumbprint_at(current.cer_path.as_ref().unwrap()), pending.thumbprint_sha1);
        assert!(!pending.path.exists());

        // Promoted before an interruption: again, the same answer and no new file.
        let again = keys.promote(&pending, &current).unwrap();
        assert_eq!((&again.current.path, &again.retired.path), (&promoted.current.path, &promoted.retired.path));
        let files = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 4, "contoso-exo.pfx/.cer and their dated copies");

        keys.discard(&promoted.retired).unwrap();
        assert!(!dated.exists() && !promoted.retired.cer_path.as_ref().unwrap().exists());
        keys.discard(&promoted.retired).unwrap();
    }

    #[test]
    fn a_pem_stays_pem() {
        let dir = tempfile::tempdir().unwrap();
        let identity = cba_cert::generate(&NewCertificate::new("contoso-exo")).unwrap();
        let pem = dir.path().join("contoso-exo.pem");
        fs::write(&pem, identity.to_pem().unwrap().as_bytes()).unwrap();
        let current = CertificateRef::new(&identity.certificate, pem.clone(), None);
        let keys = FileKeys { password: PasswordArgs::default(), opened: Mutex::new(None) };
        let opened = keys.open(&current).unwrap();
        let (_, pending) = keys.create_next(&current, &opened, &NewCertificate::new("contoso-exo")).unwrap();
        let promoted = keys.promote(&pending, &current).unwrap();
        for path in [&pem, &promoted.retired.path] {
            assert!(fs::read_to_string(path).unwrap().starts_with("-----BEGIN CERTIFICATE-----"), "{path:?}");
        }
        assert!(fs::read_to_string(&pem).unwrap().contains("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(thumbprint_at(&pem), pending.thumbprint_sha1);
        assert!(promoted.retired.path.extension().is_some_and(|e| e == "pem"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(fs::metadata(&pem).unwrap().permissions().mode() & 0o777, 0o600, "the key stays private");
        }
    }
}
