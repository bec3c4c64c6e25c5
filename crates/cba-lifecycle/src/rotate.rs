//! Rotation that unattended jobs can live with: the path `setup` recorded for the certificate (the one
//! scripts, scheduled tasks, `AZURE_CLIENT_CERTIFICATE_PATH` and `Connect-ExchangeOnline
//! -CertificateFilePath` name) keeps working across rotations.
//!
//! 1. A new certificate at a pending location beside the current one.
//! 2. Registered beside it (the app's own addKey, the proof signed by the current certificate: no admin).
//! 3. A token with the new one.
//! 4. Promoted: the stable path holds the new certificate; the old one is kept beside it under a dated name
//!    and stays registered for the overlap (`retired`).
//! 5. A removal pass, in this run and in every later one (the daily cron): the keys of retired certificates
//!    past their overlap or expiry are removed (removeKey, proof signed by the current certificate) and
//!    their files deleted.
//!
//! Crash safety: at every point the stable path holds a whole certificate that is registered and valid
//! (the old one until the promotion, the new one after), and the profile records enough for a rerun to
//! converge: `pending_certificate` (made, maybe registered, not yet promoted), then `retired`. The profile
//! may lag one step behind the files: when the stable path already holds the pending certificate, the
//! promotion happened and only the profile's switch is left. When the current certificate has expired,
//! the administrator's PATCH replaces it instead, and the old one (expired) is removed in the same run.
//! Profiles of earlier versions may still hold `previous_certificate`; a rotation finishes those as before.

use std::time::Duration;

use cba_cert::NewCertificate;
use cba_graph::provision::{self, KeyChange};
use cba_graph::{Deleted, GraphClient, Replication};
use cba_http::BoxError;
use serde::Serialize;
use time::OffsetDateTime;

use crate::admin::{self, AdminCredential};
use crate::profile::{CertificateRef, Profile, ProfileStore, RetiredCertificate};
use crate::progress::ProgressExt as _;
use crate::setup::millis;
use crate::{CertProof, Credential, Error, Services, key_credential};

/// Where certificates and their keys are kept: files, a PKCS#11 token, a vault. The library never opens a
/// path itself; the caller's store does.
pub trait KeyStore: Send + Sync {
    /// The certificate with what signs as it (a file's key in memory, a key in a token).
    fn open(&self, certificate: &CertificateRef) -> Result<Credential, BoxError>;
    /// Whether the certificate is still there (a pending one an interrupted rotation made).
    fn exists(&self, certificate: &CertificateRef) -> bool;
    /// Make the successor of `current` as `next` describes it and keep it at a pending location beside
    /// `current`, in the same format and protection, replacing whatever an interrupted run left there.
    /// `current`'s own files are not touched.
    fn create_next(
        &self,
        current: &CertificateRef,
        current_credential: &Credential,
        next: &NewCertificate,
    ) -> Result<(Credential, CertificateRef), BoxError>;
    /// Put `pending` (made by [`create_next`](KeyStore::create_next)) at `current`'s location: first keep
    /// `current` under another (dated) name beside it, durably, then replace atomically, so that a crash at
    /// any point leaves `current`'s location holding one of the two, whole. Idempotent: when that location
    /// already holds `pending` (an interrupted run promoted it), only find where `current` was kept.
    /// Returns where each is now; the library sets their `key_id` and `created`.
    fn promote(&self, pending: &CertificateRef, current: &CertificateRef) -> Result<Promoted, BoxError>;
    /// Delete the files of a retired certificate, and its key where the store keeps it (a token's key
    /// object), once its key is no longer registered. What is already gone is not an error.
    fn discard(&self, certificate: &CertificateRef) -> Result<(), BoxError>;
}

/// Where [`KeyStore::promote`] left the two certificates.
#[derive(Debug, Clone)]
pub struct Promoted {
    /// The new certificate, at the location the current one had.
    pub current: CertificateRef,
    /// The certificate it replaced, where it is kept now.
    pub retired: CertificateRef,
}

/// How to rotate.
#[derive(Debug, Clone)]
pub struct RotateRequest {
    /// Do nothing but the removal pass unless the certificate expires within this many days.
    pub if_expiring_within: Option<u32>,
    /// Validity of the new certificate in days.
    pub days: u32,
    /// How long to wait for Entra to accept the new certificate.
    pub wait: Duration,
    /// How long the replaced certificate stays registered, so that machines still holding it keep
    /// working. Zero removes it in the same run.
    pub overlap: Duration,
    /// A multi-tenant app's customer tenants (ids) where the new certificate must also get a token before
    /// it replaces the old one (docs/fleet.md); empty for a single-tenant app.
    pub prove_in: Vec<String>,
}

/// What a rotation did (the `cba cert rotate --output json` document, docs/cli-json.md).
#[derive(Debug, Clone, Serialize)]
pub struct RotateReport {
    /// False when nothing was due (the removal pass may still have removed retired certificates).
    pub rotated: bool,
    /// A rotation left unfinished by an earlier run was finished.
    pub resumed: bool,
    /// `self` (addKey/removeKey with proofs, no admin) or `admin` (PATCH, the current certificate had expired).
    pub method: Option<&'static str>,
    /// Why it rotated, or why not.
    pub reason: String,
    /// The stable location: it holds the current certificate (the new one after a rotation).
    pub certificate: String,
    /// The certificate replaced (the current one when nothing was due).
    pub old_thumbprint_sha1: String,
    /// The new one.
    pub new_thumbprint_sha1: Option<String>,
    /// Where the new one is kept (the stable location).
    pub new_certificate: Option<String>,
    /// The new one's notAfter.
    pub new_not_after: Option<String>,
    /// The replaced certificate is no longer registered (zero overlap, or it had expired).
    pub old_removed: bool,
    /// Certificates still registered beside the current one after this run, and until when.
    pub retired: Vec<RetiredReport>,
    /// Thumbprints whose keys this run removed (their files deleted).
    pub removed: Vec<String>,
    /// Where the profile is kept.
    pub profile: String,
    /// Customer tenants (ids) where the new certificate was proven before the switch.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub proven_in: Vec<String>,
    /// Requests sent.
    pub requests: u32,
    /// Time spent.
    pub elapsed_ms: u64,
}

/// A retired certificate, as the report lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RetiredReport {
    /// Its thumbprint.
    pub thumbprint_sha1: String,
    /// Where its files are kept.
    pub path: String,
    /// From when a rotation removes it (RFC 3339).
    pub remove_after: String,
}

fn open(keys: &dyn KeyStore, reference: &CertificateRef) -> Result<Credential, Error> {
    let identity = keys
        .open(reference)
        .map_err(|source| Error::Keys { doing: format!("opening {}", reference.path.display()), source })?;
    if !identity.certificate().thumbprint_sha1_hex().eq_ignore_ascii_case(&reference.thumbprint_sha1) {
        return Err(Error::CertificateMismatch {
            location: reference.path.display().to_string(),
            found: identity.certificate().thumbprint_sha1_hex(),
            expected: reference.thumbprint_sha1.clone(),
        });
    }
    Ok(identity)
}

/// The certificate at the profile's stable location, and whether it is the pending one (an interrupted run
/// promoted it and stopped before saving the profile).
fn open_current(keys: &dyn KeyStore, p: &Profile) -> Result<(Credential, bool), Error> {
    match open(keys, &p.certificate) {
        Ok(identity) => Ok((identity, false)),
        Err(Error::CertificateMismatch { found, .. })
            if p.pending_certificate.as_ref().is_some_and(|n| n.thumbprint_sha1.eq_ignore_ascii_case(&found)) =>
        {
            let pending = p.pending_certificate.clone().unwrap_or_else(|| p.certificate.clone());
            let at_stable = CertificateRef { path: p.certificate.path.clone(), ..pending };
            Ok((open(keys, &at_stable)?, true))
        }
        Err(e) => Err(e),
    }
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn save(services: &Services, store: &dyn ProfileStore, profile: &mut Profile) -> Result<(), Error> {
    profile.updated_at = Some(cba_token::jwt::rfc3339(services.now()));
    store.save(profile).map_err(Error::store(store))
}

/// The app's own Graph client, signing in with `identity` (no admin).
fn self_graph(services: &Services, p: &Profile, identity: &Credential, wait: Duration) -> Result<GraphClient, Error> {
    let cert = identity.client_certificate(&p.tenant_id, &p.app_id).map_err(Error::token_in("the certificate"))?;
    services.app_graph(cert, wait)
}

fn proof_by(services: &Services, identity: &Credential) -> CertProof {
    CertProof::new(identity.clone(), services.clock.clone())
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// Rotate the certificate of the app `store` records, then remove retired certificates that are due.
/// `admin` is used only when the current certificate has expired (then an administrator replaces it).
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
        certificate: String::new(),
        old_thumbprint_sha1: old_thumbprint,
        new_thumbprint_sha1: None,
        new_certificate: None,
        new_not_after: None,
        old_removed: false,
        retired: Vec::new(),
        removed: Vec::new(),
        profile: store.describe(),
        proven_in: Vec::new(),
        requests: 0,
        elapsed_ms: 0,
    };
    let finish = |mut report: RotateReport, p: &Profile, requests: u32| {
        report.certificate = p.certificate.path.display().to_string();
        if report.rotated {
            report.new_thumbprint_sha1 = Some(p.certificate.thumbprint_sha1.clone());
            report.new_certificate = Some(report.certificate.clone());
            report.new_not_after = Some(p.certificate.not_after.clone());
        }
        report.old_removed |= report.rotated && report.removed.iter().any(|t| same(t, &report.old_thumbprint_sha1));
        report.retired = p
            .retired
            .iter()
            .map(|r| RetiredReport {
                thumbprint_sha1: r.certificate.thumbprint_sha1.clone(),
                path: r.certificate.path.display().to_string(),
                remove_after: r.remove_after.clone(),
            })
            .collect();
        report.requests = requests;
        report.elapsed_ms = millis(services.since(started));
        report
    };

    // Written by an earlier version, proven and switched, stopped before removing the old one: finish.
    if let Some(previous) = profile.previous_certificate.clone() {
        progress.stage("finishing the rotation an earlier run started: removing the previous certificate");
        let current = open(keys, &profile.certificate)?;
        let graph = self_graph(services, &profile, &current, request.wait)?;
        let removed = remove_old(services, &graph, &profile, &current, &previous).await;
        requests += graph.requests_sent();
        removed?;
        profile.previous_certificate = None;
        save(services, store, &mut profile)?;
        report.rotated = true;
        report.resumed = true;
        report.method = Some("self");
        report.reason = "finished an interrupted rotation".into();
        report.old_removed = true;
        return Ok(finish(report, &profile, requests));
    }

    let (current, promoted) = open_current(keys, &profile)?;
    if promoted {
        // Everything but the profile's switch was done: the new certificate was proven before it was promoted.
        progress.stage(format!(
            "finishing the rotation an earlier run started: {} already holds the new certificate",
            profile.certificate.path.display()
        ));
        let old_valid = parse_time(&profile.certificate.not_after).is_none_or(|t| t > now);
        let pending = profile.pending_certificate.clone().unwrap_or_else(|| profile.certificate.clone());
        switch(services, store, keys, &mut profile, &pending, request.overlap)?;
        report.rotated = true;
        report.resumed = true;
        report.method = Some(if old_valid { "self" } else { "admin" });
        report.reason = "finished an interrupted rotation".into();
        remove_due(services, store, keys, &mut profile, &current, request.wait, &mut report, &mut requests).await?;
        return Ok(finish(report, &profile, requests));
    }

    let days_left = cba_cert::days_left(current.certificate().not_after(), now);
    if let Some(within) = request.if_expiring_within
        && profile.pending_certificate.is_none()
        && days_left > i64::from(within)
    {
        report.reason = format!("not due: the certificate has {days_left} days left (rotating within {within} days)");
        progress.stage(report.reason.clone());
        remove_due(services, store, keys, &mut profile, &current, request.wait, &mut report, &mut requests).await?;
        return Ok(finish(report, &profile, requests));
    }
    let current_valid = current.certificate().is_valid_at(now);
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
    let reused = match profile.pending_certificate.clone() {
        Some(pending) if keys.exists(&pending) => match open(keys, &pending) {
            Ok(identity) => Some((identity, pending)),
            Err(Error::CertificateMismatch { .. }) => None,
            Err(e) => return Err(e),
        },
        _ => None,
    };
    let (new_identity, mut new_ref) = match reused {
        Some((identity, pending)) => {
            progress.stage(format!("1/5 new certificate: reusing {} from the interrupted run", pending.path.display()));
            report.resumed = true;
            (identity, pending)
        }
        None => {
            if let Some(lost) = profile.pending_certificate.take()
                && lost.key_id.is_some()
            {
                // Its files are gone, but an interrupted run may have registered it: the removal pass
                // removes its key (its files are not ours to delete any more).
                profile.retired.push(RetiredCertificate {
                    certificate: CertificateRef { created: false, ..lost },
                    remove_after: cba_token::jwt::rfc3339(now),
                });
            }
            progress.stage("1/5 new certificate");
            let next = successor_request(&profile, &current, request.days, now);
            let (identity, reference) = keys
                .create_next(&profile.certificate, &current, &next)
                .map_err(|source| Error::Keys { doing: "making the new certificate".into(), source })?;
            progress.detail(format!("wrote {}", reference.path.display()));
            (identity, reference)
        }
    };
    let key_id = new_ref.key_id.get_or_insert_with(|| uuid::Uuid::new_v4().to_string()).clone();
    new_ref.created = true;
    profile.pending_certificate = Some(new_ref.clone());
    save(services, store, &mut profile)?;
    let mut key = key_credential(new_identity.certificate());
    key.key_id = Some(key_id);

    // 2. Register it beside the current one.
    let p = profile.clone();
    if let Some(credential) = fallback_admin {
        progress.stage("2/5 the current certificate has expired: the administrator replaces it (PATCH keyCredentials)");
        let session = admin::sign_in(services, credential, &p.tenant_id).await?;
        let guard = services.graph(session.tokens.clone(), request.wait)?;
        // Before the PATCH: the administrator must act in the app's tenant.
        admin::confirm_tenant(services, &guard, &session, &p.tenant_id).await?;
        let graph = services.graph(session.tokens, request.wait)?;
        let replaced = provision::replace_keys_patch(
            &graph,
            &p.app_object_id,
            std::slice::from_ref(&key),
            std::slice::from_ref(&p.certificate.thumbprint_sha1),
            Replication::NotExpected,
        )
        .await;
        requests += graph.requests_sent();
        replaced.map_err(Error::graph_in(format!("replacing the certificates of app {}", p.app_name)))?;
        report.method = Some("admin");
        report.old_removed = true;
    } else {
        progress.stage("2/5 registering it beside the current one (addKey, proof signed by the current certificate)");
        let graph = self_graph(services, &p, &current, request.wait)?;
        let added = provision::add_key_with_proof(
            &graph,
            &p.app_object_id,
            &key,
            &new_ref.thumbprint_sha1,
            &proof_by(services, &current),
            Replication::NotExpected,
        )
        .await;
        requests += graph.requests_sent();
        match added {
            Ok(KeyChange::Added(k)) | Ok(KeyChange::AlreadyRegistered(k)) => {
                if let Some(id) = k.key_id
                    && new_ref.key_id.as_deref() != Some(&id)
                {
                    new_ref.key_id = Some(id);
                    profile.pending_certificate = Some(new_ref.clone());
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
    progress.stage("3/5 a token with the new certificate");
    let new_cert =
        new_identity.client_certificate(&p.tenant_id, &p.app_id).map_err(Error::token_in("the new certificate"))?;
    let role_ids: Vec<&str> = p.role_assignments.iter().map(|r| r.template_id.as_str()).collect();
    let proof = crate::prove(services, &new_cert, request.wait, &role_ids).await?;
    requests += proof.requests;
    if !request.prove_in.is_empty() {
        // The key lives on the home app, so one rotation serves every customer tenant: prove it there too
        // before anything depends on it.
        progress.detail(format!("proving the new certificate in {} customer tenant(s)", request.prove_in.len()));
        let failed = prove_in_tenants(services, &new_identity, &p.app_id, &request.prove_in, request.wait).await;
        requests += u32::try_from(request.prove_in.len()).unwrap_or(u32::MAX);
        if !failed.is_empty() {
            return Err(Error::NotProvenInTenants { failed });
        }
        report.proven_in = request.prove_in.clone();
    }

    // 4. The stable location holds the new one; the old one stays registered for the overlap.
    switch(services, store, keys, &mut profile, &new_ref, request.overlap)?;
    report.rotated = true;
    report.reason =
        if current_valid { format!("{days_left} days were left") } else { "the certificate had expired".into() };

    // 5. Retired certificates past their overlap (this one too, with no overlap or when expired).
    remove_due(services, store, keys, &mut profile, &new_identity, request.wait, &mut report, &mut requests).await?;
    Ok(finish(report, &profile, requests))
}

/// The tenants (of `tenants`) where `credential` got no Exchange token within `wait`, with why; 16 at a time.
async fn prove_in_tenants(
    services: &Services,
    credential: &Credential,
    app_id: &str,
    tenants: &[String],
    wait: Duration,
) -> Vec<(String, String)> {
    let mut failed = Vec::new();
    for chunk in tenants.chunks(16) {
        let proofs =
            futures::future::join_all(chunk.iter().map(|t| prove_in_tenant(services, credential, app_id, t, wait)));
        failed.extend(proofs.await.into_iter().flatten());
    }
    failed
}

async fn prove_in_tenant(
    services: &Services,
    credential: &Credential,
    app_id: &str,
    tenant: &str,
    wait: Duration,
) -> Option<(String, String)> {
    let result = match credential.client_certificate(tenant, app_id) {
        Ok(cert) => crate::prove(services, &cert, wait, &[]).await.map(drop),
        Err(e) => Err(Error::Token { doing: "the new certificate".into(), source: e }),
    };
    result.err().map(|e| (tenant.to_string(), crate::status::chain(&e)))
}

/// Step 4: promote `pending` to the stable location and record the switch: the profile names the new
/// certificate, the old one is retired until `overlap` from now.
fn switch(
    services: &Services,
    store: &dyn ProfileStore,
    keys: &dyn KeyStore,
    profile: &mut Profile,
    pending: &CertificateRef,
    overlap: Duration,
) -> Result<(), Error> {
    let progress = services.progress.as_ref();
    let stable = profile.certificate.path.display().to_string();
    progress.stage(format!("4/5 {stable} gets the new certificate; the old one is kept beside it"));
    let promoted = keys.promote(pending, &profile.certificate).map_err(|source| Error::Keys {
        doing: format!("putting the new certificate {} at {stable}", pending.thumbprint_sha1),
        source,
    })?;
    let mut new = promoted.current;
    new.key_id = pending.key_id.clone();
    // The location is the one setup recorded: whoever chose it owns it (teardown deletes only cba's).
    new.created = profile.certificate.created;
    let mut old = promoted.retired;
    old.key_id = profile.certificate.key_id.clone();
    old.created = true;
    progress.detail(format!(
        "{} holds {}; the old {} is kept as {}",
        new.path.display(),
        new.thumbprint_sha1,
        old.thumbprint_sha1,
        old.path.display()
    ));
    let until = services.now() + overlap;
    profile.retired.retain(|r| !same(&r.certificate.thumbprint_sha1, &old.thumbprint_sha1));
    profile.retired.push(RetiredCertificate { certificate: old, remove_after: cba_token::jwt::rfc3339(until) });
    profile.certificate = new;
    profile.pending_certificate = None;
    save(services, store, profile)
}

/// Step 5, also run when nothing is due: remove the keys of retired certificates past their overlap or
/// expiry (proofs signed by `signer`, the current certificate), then delete their files.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site per outcome of the rotation; a struct would only rename them"
)]
async fn remove_due(
    services: &Services,
    store: &dyn ProfileStore,
    keys: &dyn KeyStore,
    profile: &mut Profile,
    signer: &Credential,
    wait: Duration,
    report: &mut RotateReport,
    requests: &mut u32,
) -> Result<(), Error> {
    let progress = services.progress.as_ref();
    let now = services.now();
    let mut due = Vec::new();
    for r in &profile.retired {
        let expired = parse_time(&r.certificate.not_after).is_some_and(|t| t <= now);
        match parse_time(&r.remove_after) {
            _ if expired => due.push(r.certificate.clone()),
            Some(t) if t <= now => due.push(r.certificate.clone()),
            Some(_) => progress.detail(format!(
                "{} stays registered until {} ({})",
                r.certificate.thumbprint_sha1,
                r.remove_after,
                r.certificate.path.display()
            )),
            None => progress.detail(format!(
                "{} stays registered: its remove_after {:?} is not an RFC 3339 time",
                r.certificate.thumbprint_sha1, r.remove_after
            )),
        }
    }
    if due.is_empty() {
        return Ok(());
    }
    progress.stage("5/5 removing retired certificates past their overlap or expiry (removeKey, proof signed by the current certificate)");
    let graph = self_graph(services, profile, signer, wait)?;
    let result = async {
        for old in &due {
            // Never the key in use, whatever the profile says.
            if !same(&old.thumbprint_sha1, &profile.certificate.thumbprint_sha1) {
                remove_old(services, &graph, profile, signer, old).await?;
                if old.created && old.path != profile.certificate.path {
                    keys.discard(old).map_err(|source| Error::Keys {
                        doing: format!("deleting {} (its key is removed)", old.path.display()),
                        source,
                    })?;
                    progress.detail(format!("deleted {}", old.path.display()));
                }
                report.removed.push(old.thumbprint_sha1.clone());
            }
            profile.retired.retain(|r| !same(&r.certificate.thumbprint_sha1, &old.thumbprint_sha1));
            save(services, store, profile)?;
        }
        Ok(())
    }
    .await;
    *requests += graph.requests_sent();
    result
}

/// The next certificate: same subject and key size as the current one.
fn successor_request(p: &Profile, current: &Credential, days: u32, now: OffsetDateTime) -> NewCertificate {
    let subject = current.certificate().subject().to_string();
    let bits = current.certificate().rsa_public_key().map(|k| k.bits()).unwrap_or(2048);
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
    signer: &Credential,
    old: &CertificateRef,
) -> Result<(), Error> {
    let removed = provision::remove_key_with_proof(
        graph,
        &p.app_object_id,
        &old.thumbprint_sha1,
        old.key_id.as_deref(),
        &proof_by(services, signer),
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
                    "removeKey of the old certificate {} on app {} (the current one works and is in the profile; \
                     a rerun removes the old one)",
                    old.thumbprint_sha1, p.app_name
                ),
                source: e,
            });
        }
    }
    Ok(())
}
