//! `cba cert rotate`: new certificate → registered beside the current one (the app's own addKey, the proof
//! signed by the current certificate: no admin) → a token with the new one → profile switched → the old one
//! removed (removeKey, proof signed by the new one) → profile final.
//!
//! The profile records each stage, so a rerun finishes a rotation that stopped: `pending_certificate` (made,
//! maybe registered, not yet proven), then `previous_certificate` (new one proven and in use, old one maybe
//! still registered). The profile always names a certificate that works. When the current certificate has
//! expired, the administrator's PATCH replaces it instead (`--admin ...`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cba_cert::{Identity, Password, PfxFormat};
use cba_graph::provision::{self, KeyChange};
use cba_graph::{Deleted, GraphClient, Replication};
use cba_token::{CertificateTokenSource, ClientCertificate, Resource};
use serde::Serialize;
use time::OffsetDateTime;

use crate::Global;
use crate::cmd::cert;
use crate::connect::{self, Admin, AdminArgs, CertProof, EndpointArgs, Ui, Urls};
use crate::exit::{Exit, fail};
use crate::output;
use crate::profile::{CertificateRef, Profile};
use crate::secrets::PasswordArgs;

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
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = connect::parse_duration)]
    pub wait: Duration,
}

/// Validated settings.
#[derive(Debug)]
pub struct Settings {
    pub profile_path: PathBuf,
    pub profile: Profile,
    pub if_expiring_within: Option<u32>,
    pub days: u32,
    pub password: PasswordArgs,
    pub urls: Urls,
    pub admin: Option<Admin>,
    pub wait: Duration,
    pub ui: Ui,
}

/// The JSON document of `cba cert rotate` (docs/cli-json.md).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// False when nothing was due (`--if-expiring-within`).
    pub rotated: bool,
    /// A rotation left unfinished by an earlier run was finished.
    pub resumed: bool,
    /// `self` (addKey/removeKey with proofs, no admin) or `admin` (PATCH, the current certificate had expired).
    pub method: Option<&'static str>,
    pub reason: String,
    pub old_thumbprint_sha1: String,
    pub new_thumbprint_sha1: Option<String>,
    pub new_certificate: Option<String>,
    pub new_not_after: Option<String>,
    pub old_removed: bool,
    pub profile: String,
    pub requests: u32,
    pub elapsed_ms: u64,
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let (profile_path, profile) = connect::require_profile(args.profile)?;
    profile.require_complete(&profile_path)?;
    let urls = Urls::resolve(&args.endpoints, Some(&profile), |k| std::env::var(k).ok())?;
    let admin = if args.admin.given() { Some(args.admin.resolve(|k| std::env::var(k).ok())?) } else { None };
    let settings = Settings {
        profile_path,
        profile,
        if_expiring_within: args.if_expiring_within,
        days: args.days,
        password: args.password,
        urls,
        admin,
        wait: args.wait,
        ui: Ui { style: global.style, all_waits: false },
    };
    let report = crate::runtime()?.block_on(execute(settings))?;
    output::print_document(global.output, &report, text)
}

fn open(reference: &CertificateRef, password: &PasswordArgs) -> anyhow::Result<(Identity, Option<Password>)> {
    let bytes = crate::fsutil::read(&reference.path)?;
    let (identity, password) = cert::open_with_password(&reference.path, &bytes, password)?;
    if !identity.certificate.thumbprint_sha1_hex().eq_ignore_ascii_case(&reference.thumbprint_sha1) {
        return Err(fail(
            Exit::BadInput,
            format!(
                "{} holds certificate {}, but the profile expects {}",
                reference.path.display(),
                identity.certificate.thumbprint_sha1_hex(),
                reference.thumbprint_sha1
            ),
        ));
    }
    Ok((identity, password))
}

/// The app's own Graph client, signing in with `identity` (no admin).
fn self_graph(s: &Settings, identity: &Identity) -> anyhow::Result<GraphClient> {
    let p = &s.profile;
    let cert =
        ClientCertificate::new(identity.clone(), &p.tenant_id, &p.app_id).map_err(|e| fail(Exit::BadInput, e))?;
    let source = CertificateTokenSource::new(connect::token_client(&s.urls)?, cert, &Resource::Graph);
    connect::graph_client(&s.urls, Arc::new(source), s.wait, s.ui)
}

pub async fn execute(mut s: Settings) -> anyhow::Result<Report> {
    let started = Instant::now();
    let ui = s.ui;
    let now = OffsetDateTime::now_utc();
    let path = s.profile_path.clone();
    let mut requests = 0;
    let old_thumbprint =
        s.profile.previous_certificate.as_ref().unwrap_or(&s.profile.certificate).thumbprint_sha1.clone();
    let mut report = Report {
        rotated: false,
        resumed: false,
        method: None,
        reason: String::new(),
        old_thumbprint_sha1: old_thumbprint,
        new_thumbprint_sha1: None,
        new_certificate: None,
        new_not_after: None,
        old_removed: false,
        profile: path.display().to_string(),
        requests: 0,
        elapsed_ms: 0,
    };

    // An earlier run proved the new certificate and stopped before removing the old one: finish.
    if let Some(previous) = s.profile.previous_certificate.clone() {
        ui.step("finishing the rotation an earlier run started: removing the previous certificate");
        let (current, _) = open(&s.profile.certificate, &s.password)?;
        let graph = self_graph(&s, &current)?;
        remove_old(&s, &graph, &current, &previous).await?;
        requests += graph.requests_sent();
        s.profile.previous_certificate = None;
        s.profile.save(&path)?;
        report.rotated = true;
        report.resumed = true;
        report.method = Some("self");
        report.reason = "finished an interrupted rotation".into();
        report.old_removed = true;
        report.new_thumbprint_sha1 = Some(s.profile.certificate.thumbprint_sha1.clone());
        report.new_certificate = Some(s.profile.certificate.path.display().to_string());
        report.new_not_after = Some(s.profile.certificate.not_after.clone());
        report.requests = requests;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }

    let (current, password) = open(&s.profile.certificate, &s.password)?;
    let days_left = cba_cert::days_left(current.certificate.not_after(), now);
    if let Some(within) = s.if_expiring_within
        && s.profile.pending_certificate.is_none()
        && days_left > i64::from(within)
    {
        report.reason = format!("not due: the certificate has {days_left} days left (rotating within {within} days)");
        ui.step(&report.reason);
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }
    let current_valid = current.certificate.is_valid_at(now);
    // Refused before anything is made: an expired certificate cannot sign the app's own addKey proof.
    let fallback_admin = match (current_valid, &s.admin) {
        (true, _) => None,
        (false, Some(admin)) => Some(admin),
        (false, None) => {
            return Err(fail(
                Exit::BadInput,
                format!(
                    "the current certificate {} expired on {}: the app cannot sign its own addKey proof; rerun with \
                     --admin device-code|token|cert so an administrator replaces it",
                    s.profile.certificate.thumbprint_sha1, s.profile.certificate.not_after
                ),
            ));
        }
    };

    // 1. The new certificate (or the one an interrupted run made).
    let (new_identity, mut new_ref) = match s.profile.pending_certificate.clone() {
        Some(pending) if pending.path.exists() => {
            ui.step(format!("1/4 new certificate: reusing {} from the interrupted run", pending.path.display()));
            report.resumed = true;
            let (identity, _) = open(&pending, &s.password)?;
            (identity, pending)
        }
        _ => {
            ui.step("1/4 new certificate");
            let (identity, reference) = make_successor(&s, &current, password.as_ref())?;
            ui.detail(&format!("wrote {}", reference.path.display()));
            (identity, reference)
        }
    };
    let key_id = new_ref.key_id.get_or_insert_with(uuid_v4).clone();
    s.profile.pending_certificate = Some(new_ref.clone());
    s.profile.save(&path)?;
    let mut key = connect::key_credential(&new_identity.certificate);
    key.key_id = Some(key_id.clone());

    // 2. Register it beside the current one.
    let p = s.profile.clone();
    if let Some(admin) = fallback_admin {
        ui.step("2/4 the current certificate has expired: the administrator replaces it (PATCH keyCredentials)");
        let (tokens, _) = connect::admin_tokens(admin, &s.urls, &p.tenant_id, ui).await?;
        let graph = connect::graph_client(&s.urls, tokens, s.wait, ui)?;
        provision::replace_keys_patch(
            &graph,
            &p.app_object_id,
            std::slice::from_ref(&key),
            std::slice::from_ref(&p.certificate.thumbprint_sha1),
            Replication::NotExpected,
        )
        .await
        .map_err(|e| connect::graph_failure(e, &format!("replacing the certificates of app {}", p.app_name)))?;
        requests += graph.requests_sent();
        report.method = Some("admin");
        report.old_removed = true;
    } else {
        ui.step("2/4 registering it beside the current one (addKey, proof signed by the current certificate)");
        let graph = self_graph(&s, &current)?;
        let added = provision::add_key_with_proof(
            &graph,
            &p.app_object_id,
            &key,
            &new_ref.thumbprint_sha1,
            &CertProof(current.clone()),
            Replication::NotExpected,
        )
        .await;
        requests += graph.requests_sent();
        match added {
            Ok(KeyChange::Added(k)) | Ok(KeyChange::AlreadyRegistered(k)) => {
                if let Some(id) = k.key_id {
                    new_ref.key_id = Some(id);
                }
            }
            // A rerun: addKey with the key id recorded in the profile was applied before the crash. Graph says
            // "keyId … already exists"; cba-graph then reads the app back, which the app itself may not (403 on
            // that GET; a refused addKey would be a 403 on the POST).
            Err(e) if matches!(e.api(), Some((400, _, m)) if m.contains("already exists")) => {}
            Err(e)
                if e.is_permission_denied()
                    && matches!(e.root(), cba_graph::Error::Api { method, .. } if method == "GET") => {}
            Err(e) => {
                return Err(connect::graph_failure(e, &format!("addKey on app {} (appId {})", p.app_name, p.app_id)));
            }
        }
        report.method = Some("self");
    }

    // 3. Prove the new one works.
    ui.step("3/4 a token with the new certificate");
    let new_cert =
        ClientCertificate::new(new_identity.clone(), &p.tenant_id, &p.app_id).map_err(|e| fail(Exit::BadInput, e))?;
    let role_ids: Vec<&str> = p.role_assignments.iter().map(|r| r.template_id.as_str()).collect();
    let proof = connect::prove(&s.urls, &new_cert, s.wait, &role_ids, ui).await?;
    requests += proof.requests;
    let old_ref = s.profile.certificate.clone();
    s.profile.certificate = new_ref.clone();
    s.profile.previous_certificate = if current_valid { Some(old_ref.clone()) } else { None };
    s.profile.pending_certificate = None;
    s.profile.save(&path)?;

    // 4. Remove the old one.
    if current_valid {
        ui.step("4/4 removing the old certificate (removeKey, proof signed by the new certificate)");
        let graph = self_graph(&s, &new_identity)?;
        remove_old(&s, &graph, &new_identity, &old_ref).await?;
        requests += graph.requests_sent();
        s.profile.previous_certificate = None;
        s.profile.save(&path)?;
        report.old_removed = true;
    }
    report.rotated = true;
    report.reason =
        if current_valid { format!("{days_left} days were left") } else { "the certificate had expired".into() };
    report.new_thumbprint_sha1 = Some(new_ref.thumbprint_sha1.clone());
    report.new_certificate = Some(new_ref.path.display().to_string());
    report.new_not_after = Some(new_ref.not_after.clone());
    report.requests = requests;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

async fn remove_old(s: &Settings, graph: &GraphClient, signer: &Identity, old: &CertificateRef) -> anyhow::Result<()> {
    let p = &s.profile;
    let removed = provision::remove_key_with_proof(
        graph,
        &p.app_object_id,
        &old.thumbprint_sha1,
        old.key_id.as_deref(),
        &CertProof(signer.clone()),
        Replication::Expected,
    )
    .await;
    match removed {
        Ok(Deleted::Deleted) => s.ui.detail(&format!("removed {}", old.thumbprint_sha1)),
        Ok(_) => s.ui.detail(&format!("{} was already removed", old.thumbprint_sha1)),
        // removeKey by id after a crash that had already removed it.
        Err(e) if e.is_not_found() || matches!(e.api(), Some((400, _, m)) if m.contains("No key credential")) => {
            s.ui.detail(&format!("{} was already removed", old.thumbprint_sha1))
        }
        Err(e) => {
            return Err(connect::graph_failure(
                e,
                &format!(
                    "removeKey of the old certificate {} on app {} (the new one works and is in the profile; rerun to finish)",
                    old.thumbprint_sha1, p.app_name
                ),
            ));
        }
    }
    Ok(())
}

/// Make the next certificate beside the current one: same subject, key size, PFX format and password;
/// files `<stem>-<YYYYMMDD>.pfx/.cer`, never replacing one.
fn make_successor(
    s: &Settings,
    current: &Identity,
    password: Option<&Password>,
) -> anyhow::Result<(Identity, CertificateRef)> {
    let old = &s.profile.certificate.path;
    let dir = old.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let stem = base_stem(old.file_stem().and_then(|s| s.to_str()).unwrap_or(&s.profile.app_name));
    let date = OffsetDateTime::now_utc().date();
    let day = format!("{:04}{:02}{:02}", date.year(), u8::from(date.month()), date.day());
    let (pfx, cer) = (1..)
        .map(|n| {
            let name = if n == 1 { format!("{stem}-{day}") } else { format!("{stem}-{day}-{n}") };
            (dir.join(format!("{name}.pfx")), dir.join(format!("{name}.cer")))
        })
        .find(|(pfx, cer)| !pfx.exists() && !cer.exists())
        .expect("some suffix is free");
    let subject = current.certificate.subject().to_string();
    let bits = current.certificate.rsa_public_key().map(|k| k.bits()).unwrap_or(2048);
    let mut request = cba_cert::NewCertificate::new(&s.profile.app_name)
        .validity(cba_cert::Validity::Days(s.days))
        .key_size(cba_cert::KeySize::from_bits(bits).unwrap_or(cba_cert::KeySize::Rsa2048));
    if !subject.is_empty() {
        request = request.subject(subject);
    }
    let identity = cba_cert::generate(&request).map_err(|e| fail(Exit::BadInput, e))?;
    let format = match current.pfx_format {
        Some(PfxFormat::Legacy) => PfxFormat::Legacy,
        _ => PfxFormat::Modern,
    };
    let mut identity = cert::write_identity(identity, password, format, &pfx, &cer, None, false)?;
    identity.pfx_format = Some(format);
    let reference = CertificateRef::new(&identity.certificate, pfx, Some(cer));
    Ok((identity, reference))
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

fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The report for people.
pub fn text(r: &Report) -> String {
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

    #[test]
    fn guids_look_like_guids() {
        let a = uuid_v4();
        assert!(connect::is_guid(&a), "{a}");
        assert_ne!(a, uuid_v4());
    }
}
