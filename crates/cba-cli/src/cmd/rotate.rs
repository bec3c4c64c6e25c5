//! `cba cert rotate`: new certificate → registered beside the current one (the app's own addKey, the proof
//! signed by the current certificate: no admin) → a token with the new one → profile switched → the old one
//! removed (removeKey, proof signed by the new one) → profile final.
//!
//! The profile records each stage, so a rerun finishes a rotation that stopped: `pending_certificate` (made,
//! maybe registered, not yet proven), then `previous_certificate` (new one proven and in use, old one maybe
//! still registered). The profile always names a certificate that works. When the current certificate has
//! expired, the administrator's PATCH replaces it instead (`--admin ...`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use cba_cert::{Identity, NewCertificate, Password, PfxFormat};
use cba_lifecycle::{AdminCredential, KeyStore, RotateReport, RotateRequest};
use time::OffsetDateTime;

use crate::Global;
use crate::cmd::cert;
use crate::connect::{self, Ui};
use crate::exit::{Exit, fail};
use crate::output;
use crate::profile::{CertificateRef, FileStore};
use crate::secrets::PasswordArgs;
use crate::settings::{self, AdminArgs, EndpointArgs, Urls};

const EXAMPLES: &str = "\
Examples:
  cba cert rotate --profile contoso-exo.profile.json
  cba cert rotate --profile contoso-exo.profile.json --if-expiring-within 30     # daily cron job
  cba cert rotate --profile contoso-exo.profile.json --admin device-code        # the certificate has expired

The new files are written beside the current ones with the date (contoso-exo-20270101.pfx), protected by the
same password. Rerun after an interruption: it finishes the rotation.";

/// `cba cert rotate` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The profile `cba setup` wrote [env: CBA_PROFILE].
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Do nothing (exit 0) unless the certificate expires within DAYS days.
    #[arg(long, value_name = "DAYS")]
    pub if_expiring_within: Option<u32>,
    /// Validity of the new certificate in days.
    #[arg(long, value_name = "N", default_value_t = 365)]
    pub days: u32,
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
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let (store, profile) = settings::require_profile(args.profile)?;
    store.require_complete(&profile)?;
    let urls = Urls::resolve(&args.endpoints, Some(&profile), |k| std::env::var(k).ok())?;
    let admin = if args.admin.given() { Some(args.admin.resolve(|k| std::env::var(k).ok())?) } else { None };
    let request = RotateRequest { if_expiring_within: args.if_expiring_within, days: args.days, wait: args.wait };
    let ui = Ui { style: global.style, all_waits: false };
    let report = crate::runtime()?.block_on(execute(&store, &urls, admin.as_ref(), &args.password, &request, ui))?;
    output::print_document(global.output, &report, text)
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
    let keys = FileKeys { password: password.clone(), opened: Mutex::new(None) };
    cba_lifecycle::rotate(&services, store, &keys, admin, request).await.map_err(connect::lifecycle_failure)
}

/// Certificates as PFX/PEM files. The successor is protected like the current one: same password, same
/// PFX format, files `<stem>-<YYYYMMDD>.pfx/.cer` beside it, never replacing one.
struct FileKeys {
    password: PasswordArgs,
    /// The password that opened the current certificate, for its successor.
    opened: Mutex<Option<Option<Password>>>,
}

impl KeyStore for FileKeys {
    fn open(&self, reference: &CertificateRef) -> Result<Identity, cba_http::BoxError> {
        let bytes = crate::fsutil::read(&reference.path)?;
        let (identity, password) = cert::open_with_password(&reference.path, &bytes, &self.password)?;
        let mut opened = self.opened.lock().unwrap_or_else(|e| e.into_inner());
        opened.get_or_insert(password);
        Ok(identity)
    }

    fn exists(&self, reference: &CertificateRef) -> bool {
        reference.path.exists()
    }

    fn create_next(
        &self,
        current: &CertificateRef,
        current_identity: &Identity,
        next: &NewCertificate,
    ) -> Result<(Identity, CertificateRef), cba_http::BoxError> {
        let old = &current.path;
        let dir = old.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let stem = base_stem(old.file_stem().and_then(|s| s.to_str()).unwrap_or("certificate"));
        let date = OffsetDateTime::now_utc().date();
        let day = format!("{:04}{:02}{:02}", date.year(), u8::from(date.month()), date.day());
        let (pfx, cer) = (1..)
            .map(|n| {
                let name = if n == 1 { format!("{stem}-{day}") } else { format!("{stem}-{day}-{n}") };
                (dir.join(format!("{name}.pfx")), dir.join(format!("{name}.cer")))
            })
            .find(|(pfx, cer)| !pfx.exists() && !cer.exists())
            .expect("some suffix is free");
        let identity = cba_cert::generate(next).map_err(|e| fail(Exit::BadInput, e))?;
        let format = match current_identity.pfx_format {
            Some(PfxFormat::Legacy) => PfxFormat::Legacy,
            _ => PfxFormat::Modern,
        };
        let password = self.opened.lock().unwrap_or_else(|e| e.into_inner()).clone().flatten();
        let mut identity = cert::write_identity(identity, password.as_ref(), format, &pfx, &cer, None, false)?;
        identity.pfx_format = Some(format);
        let reference = CertificateRef::new(&identity.certificate, pfx, Some(cer)).created_by_cba();
        Ok((identity, reference))
    }
}

/// `contoso-exo-20270101-2` → `contoso-exo`: successive rotations do not pile up dates.
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
pub fn text(r: &RotateReport) -> String {
    if !r.rotated {
        return format!("{}\n", r.reason);
    }
    let mut out = String::new();
    let fields = [
        ("rotated", format!("yes ({}{})", r.reason, if r.resumed { ", resumed" } else { "" })),
        ("method", r.method.unwrap_or("-").to_string()),
        ("old certificate", format!("{}{}", r.old_thumbprint_sha1, if r.old_removed { " (removed)" } else { "" })),
        (
            "new certificate",
            format!(
                "{} {}",
                r.new_certificate.clone().unwrap_or_default(),
                r.new_thumbprint_sha1.clone().unwrap_or_default()
            ),
        ),
        ("valid until", r.new_not_after.clone().unwrap_or_default()),
        ("profile", r.profile.clone()),
        ("requests", format!("{} ({} ms)", r.requests, r.elapsed_ms)),
    ];
    for (k, v) in fields {
        out.push_str(&format!("{k:<16} {v}\n"));
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
}
