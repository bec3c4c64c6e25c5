//! Rotation: new certificate → registered beside the current one (the app's own addKey, the proof signed
//! by the current certificate: no admin) → a token with the new one → profile switched → the old one
//! removed (removeKey, proof signed by the new one) → profile final.
//!
//! The profile records each stage, so a rerun finishes a rotation that stopped: `pending_certificate` (made,
//! maybe registered, not yet proven), then `previous_certificate` (new one proven and in use, old one maybe
//! still registered). The profile always names a certificate that works. When the current certificate has
//! expired, the administrator's PATCH replaces it instead.

use std::time::Duration;

use cba_cert::{Identity, NewCertificate};
use cba_graph::provision::{self, KeyChange};
use cba_graph::{Deleted, GraphClient, Replication};
use cba_http::BoxError;
use cba_token::ClientCertificate;
use serde::Serialize;

use crate::admin::{self, AdminCredential};
use crate::profile::{CertificateRef, Profile, ProfileStore};
use crate::progress::ProgressExt as _;
use crate::setup::millis;
use crate::{CertProof, Error, Services, key_credential};

/// Where certificates and their keys are kept: files, a PKCS#11 token, a vault. The library never opens a
/// path itself; the caller's store does.
pub trait KeyStore: Send + Sync {
    /// The certificate with its private key.
    fn open(&self, certificate: &CertificateRef) -> Result<Identity, BoxError>;
    /// Whether the certificate is still there (a pending one an interrupted rotation made).
    fn exists(&self, certificate: &CertificateRef) -> bool;
    /// Make and keep the successor of `current` (same protection), as `next` describes it.
    fn create_next(
        &self,
        current: &CertificateRef,
        current_identity: &Identity,
        next: &NewCertificate,
    ) -> Result<(Identity, CertificateRef), BoxError>;
}

/// How to rotate.
#[derive(Debug, Clone)]
pub struct RotateRequest {
    /// Do nothing unless the certificate expires within this many days.
    pub if_expiring_within: Option<u32>,
    /// Validity of the new certificate in days.
    pub days: u32,
    /// How long to wait for Entra to accept the new certificate.
    pub wait: Duration,
}

/// What a rotation did (the `cba cert rotate --output json` document, docs/cli-json.md).
#[derive(Debug, Clone, Serialize)]
pub struct RotateReport {
    /// False when nothing was due.
    pub rotated: bool,
    /// A rotation left unfinished by an earlier run was finished.
    pub resumed: bool,
    /// `self` (addKey/removeKey with proofs, no admin) or `admin` (PATCH, the current certificate had expired).
    pub method: Option<&'static str>,
    /// Why it rotated, or why not.
    pub reason: String,
    /// The certificate replaced.
    pub old_thumbprint_sha1: String,
    /// The new one.
    pub new_thumbprint_sha1: Option<String>,
    /// Where the new one is kept.
    pub new_certificate: Option<String>,
    /// The new one's notAfter.
    pub new_not_after: Option<String>,
    /// The old one is no longer registered.
    pub old_removed: bool,
    /// Where the profile is kept.
    pub profile: String,
    /// Requests sent.
    pub requests: u32,
    /// Time spent.
    pub elapsed_ms: u64,
}

fn open(keys: &dyn KeyStore, reference: &CertificateRef) -> Result<Identity, Error> {
    let identity = keys
        .open(reference)
        .map_err(|source| Error::Keys { doing: format!("opening {}", reference.path.display()), source })?;
    if !identity.certificate.thumbprint_sha1_hex().eq_ignore_ascii_case(&reference.thumbprint_sha1) {
        return Err(Error::CertificateMismatch {
            location: reference.path.display().to_string(),
            found: identity.certificate.thumbprint_sha1_hex(),
            expected: reference.thumbprint_sha1.clone(),
        });
    }
    Ok(identity)
}

fn save(services: &Services, store: &dyn ProfileStore, profile: &mut Profile) -> Result<(), Error> {
    profile.updated_at = Some(cba_token::jwt::rfc3339(services.now()));
    store.save(profile).map_err(Error::store(store))
}

/// The app's own Graph client, signing in with `identity` (no admin).
fn self_graph(services: &Services, p: &Profile, identity: &Identity, wait: Duration) -> Result<GraphClient, Error> {
    let cert = ClientCertificate::new(identity.clone(), &p.tenant_id, &p.app_id)
        .map_err(Error::token_in("the certificate"))?;
    services.app_graph(cert, wait)
}

/// Rotate the certificate of the app `store` records. `admin` is used only when the current certificate
/// has expired (then an administrator replaces it).
pub async fn rotate(
    services: &Services,
    store: &dyn ProfileStore,
    keys: &dyn KeyStore,
    admin_credential: Option<&AdminCredential>,
    request: &RotateRequest,
) -> Result<RotateReport, Error> {
    let started = services.now();
    let progress = services.progress.as_ref();
    let now = services.now();
    let mut profile = store.load().map_err(Error::store(store))?.ok_or_else(|| Error::Invalid {
        what: "profile",
        value: store.describe(),
        reason: "there is none".into(),
    })?;
    profile.require_complete()?;
    let mut requests = 0;
    let old_thumbprint = profile.previous_certificate.as_ref().unwrap_or(&profile.certificate).thumbprint_sha1.clone();
    let mut report = RotateReport {
        rotated: false,
        resumed: false,
        method: None,
        reason: String::new(),
        old_thumbprint_sha1: old_thumbprint,
        new_thumbprint_sha1: None,
        new_certificate: None,
        new_not_after: None,
        old_removed: false,
        profile: store.describe(),
        requests: 0,
        elapsed_ms: 0,
    };
    let finish = |mut report: RotateReport, p: &Profile, requests: u32| {
        report.new_thumbprint_sha1 = Some(p.certificate.thumbprint_sha1.clone());
        report.new_certificate = Some(p.certificate.path.display().to_string());
        report.new_not_after = Some(p.certificate.not_after.clone());
        report.requests = requests;
        report.elapsed_ms = millis(services.since(started));
        report
    };

    // An earlier run proved the new certificate and stopped before removing the old one: finish.
    if let Some(previous) = profile.previous_certificate.clone() {
        progress.stage("finishing the rotation an earlier run started: removing the previous certificate");
        let current = open(keys, &profile.certificate)?;
        let graph = self_graph(services, &profile, &current, request.wait)?;
        remove_old(services, &graph, &profile, &current, &previous).await?;
        requests += graph.requests_sent();
        profile.previous_certificate = None;
        save(services, store, &mut profile)?;
        report.rotated = true;
        report.resumed = true;
        report.method = Some("self");
        report.reason = "finished an interrupted rotation".into();
        report.old_removed = true;
        return Ok(finish(report, &profile, requests));
    }

    let current = open(keys, &profile.certificate)?;
    let days_left = cba_cert::days_left(current.certificate.not_after(), now);
    if let Some(within) = request.if_expiring_within
        && profile.pending_certificate.is_none()
        && days_left > i64::from(within)
    {
        report.reason = format!("not due: the certificate has {days_left} days left (rotating within {within} days)");
        progress.stage(report.reason.clone());
        report.elapsed_ms = millis(services.since(started));
        return Ok(report);
    }
    let current_valid = current.certificate.is_valid_at(now);
    // Refused before anything is made: an expired certificate cannot sign the app's own addKey proof.
    let fallback_admin = match (current_valid, admin_credential) {
        (true, _) => None,
        (false, Some(admin)) => Some(admin),
        (false, None) => {
            return Err(Error::CertificateExpired {
                thumbprint: profile.certificate.thumbprint_sha1.clone(),
                not_after: profile.certificate.not_after.clone(),
            });
        }
    };

    // 1. The new certificate (or the one an interrupted run made).
    let (new_identity, mut new_ref) = match profile.pending_certificate.clone() {
        Some(pending) if keys.exists(&pending) => {
            progress.stage(format!("1/4 new certificate: reusing {} from the interrupted run", pending.path.display()));
            report.resumed = true;
            (open(keys, &pending)?, pending)
        }
        _ => {
            progress.stage("1/4 new certificate");
            let next = successor_request(&profile, &current, request.days, now);
            let (identity, reference) = keys
                .create_next(&profile.certificate, &current, &next)
                .map_err(|source| Error::Keys { doing: "making the new certificate".into(), source })?;
            progress.detail(format!("wrote {}", reference.path.display()));
            (identity, reference)
        }
    };
    let key_id = new_ref.key_id.get_or_insert_with(|| uuid::Uuid::new_v4().to_string()).clone();
    profile.pending_certificate = Some(new_ref.clone());
    save(services, store, &mut profile)?;
    let mut key = key_credential(&new_identity.certificate);
    key.key_id = Some(key_id);

    // 2. Register it beside the current one.
    let p = profile.clone();
    if let Some(credential) = fallback_admin {
        progress.stage("2/4 the current certificate has expired: the administrator replaces it (PATCH keyCredentials)");
        let session = admin::sign_in(services, credential, &p.tenant_id).await?;
        let graph = services.graph(session.tokens, request.wait)?;
        provision::replace_keys_patch(
            &graph,
            &p.app_object_id,
            std::slice::from_ref(&key),
            std::slice::from_ref(&p.certificate.thumbprint_sha1),
            Replication::NotExpected,
        )
        .await
        .map_err(Error::graph_in(format!("replacing the certificates of app {}", p.app_name)))?;
        requests += graph.requests_sent();
        report.method = Some("admin");
        report.old_removed = true;
    } else {
        progress.stage("2/4 registering it beside the current one (addKey, proof signed by the current certificate)");
        let graph = self_graph(services, &p, &current, request.wait)?;
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
                return Err(Error::Graph {
                    doing: format!("addKey on app {} (appId {})", p.app_name, p.app_id),
                    source: e,
                });
            }
        }
        report.method = Some("self");
    }

    // 3. Prove the new one works.
    progress.stage("3/4 a token with the new certificate");
    let new_cert = ClientCertificate::new(new_identity.clone(), &p.tenant_id, &p.app_id)
        .map_err(Error::token_in("the new certificate"))?;
    let role_ids: Vec<&str> = p.role_assignments.iter().map(|r| r.template_id.as_str()).collect();
    let proof = crate::prove(services, &new_cert, request.wait, &role_ids).await?;
    requests += proof.requests;
    let old_ref = profile.certificate.clone();
    profile.certificate = new_ref.clone();
    profile.previous_certificate = if current_valid { Some(old_ref.clone()) } else { None };
    profile.pending_certificate = None;
    save(services, store, &mut profile)?;

    // 4. Remove the old one.
    if current_valid {
        progress.stage("4/4 removing the old certificate (removeKey, proof signed by the new certificate)");
        let graph = self_graph(services, &profile, &new_identity, request.wait)?;
        remove_old(services, &graph, &profile, &new_identity, &old_ref).await?;
        requests += graph.requests_sent();
        profile.previous_certificate = None;
        save(services, store, &mut profile)?;
        report.old_removed = true;
    }
    report.rotated = true;
    report.reason =
        if current_valid { format!("{days_left} days were left") } else { "the certificate had expired".into() };
    Ok(finish(report, &profile, requests))
}

/// The next certificate: same subject and key size as the current one.
fn successor_request(p: &Profile, current: &Identity, days: u32, now: time::OffsetDateTime) -> NewCertificate {
    let subject = current.certificate.subject().to_string();
    let bits = current.certificate.rsa_public_key().map(|k| k.bits()).unwrap_or(2048);
    let mut request = NewCertificate::new(&p.app_name)
        .now(now)
        .validity(cba_cert::Validity::Days(days))
        .key_size(cba_cert::KeySize::from_bits(bits).unwrap_or(cba_cert::KeySize::Rsa2048));
    if !subject.is_empty() {
        request = request.subject(subject);
    }
    request
}

async fn remove_old(
    services: &Services,
    graph: &GraphClient,
    p: &Profile,
    signer: &Identity,
    old: &CertificateRef,
) -> Result<(), Error> {
    let removed = provision::remove_key_with_proof(
        graph,
        &p.app_object_id,
        &old.thumbprint_sha1,
        old.key_id.as_deref(),
        &CertProof(signer.clone()),
        // The app has existed since setup: a 404 here is the key being gone (a rerun after removeKey
        // succeeded), not replication to wait out.
        Replication::NotExpected,
    )
    .await;
    match removed {
        Ok(Deleted::Deleted) => services.progress.detail(format!("removed {}", old.thumbprint_sha1)),
        Ok(_) => services.progress.detail(format!("{} was already removed", old.thumbprint_sha1)),
        // removeKey by id after a crash that had already removed it.
        Err(e) if e.is_not_found() || matches!(e.api(), Some((400, _, m)) if m.contains("No key credential")) => {
            services.progress.detail(format!("{} was already removed", old.thumbprint_sha1))
        }
        Err(e) => {
            return Err(Error::Graph {
                doing: format!(
                    "removeKey of the old certificate {} on app {} (the new one works and is in the profile; \
                     a rerun finishes the rotation)",
                    old.thumbprint_sha1, p.app_name
                ),
                source: e,
            });
        }
    }
    Ok(())
}
