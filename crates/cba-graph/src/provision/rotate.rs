//! `cba cert rotate`: register the new certificate beside the current one, later remove the old one.
//!
//! The app's own `addKey`/`removeKey` with a proof signed by the CURRENT certificate need no admin, so an
//! unattended job can rotate; [`replace_keys_patch`] is the admin's fallback when the current certificate
//! has expired. Every helper checks first and changes only what is needed, so a rotation that crashed
//! midway can simply be run again.

use crate::model::{Deleted, KeyCredential};
use crate::{Error, GraphClient, ProofSigner, Replication};

/// What [`add_key_with_proof`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// Registered now (Graph's answer: `keyId` set, `key` null).
    Added(KeyCredential),
    /// The thumbprint was already registered (a rerun).
    AlreadyRegistered(KeyCredential),
}

impl KeyChange {
    /// The credential either way.
    pub fn key_credential(&self) -> &KeyCredential {
        match self {
            KeyChange::Added(k) | KeyChange::AlreadyRegistered(k) => k,
        }
    }
}

/// Register `key` (thumbprint `thumbprint_sha1`) on the app with `addKey`, unless already there.
/// `signer` must sign with a certificate already registered and valid (the current one). 2 requests.
///
/// The check reads the application, which needs a Graph read permission; an app rotating its own
/// certificate with an app-only token usually has none (addKey itself needs none). On 403 the check is
/// skipped and the key added; give `key` a `keyId` (and record it) so that a rerun is recognisable.
pub async fn add_key_with_proof(
    client: &GraphClient,
    app_object_id: &str,
    key: &KeyCredential,
    thumbprint_sha1: &str,
    signer: &dyn ProofSigner,
    replication: Replication,
) -> Result<KeyChange, Error> {
    match client.get_application(app_object_id, replication).await {
        Ok(app) => {
            if let Some(existing) = app.key_credentials.iter().find(|k| k.matches_thumbprint(thumbprint_sha1)) {
                return Ok(KeyChange::AlreadyRegistered(existing.clone()));
            }
            // The app was just read: a 404 on the write is replication.
            client.add_key(&app.id, key, signer, Replication::Expected).await.map(KeyChange::Added)
        }
        Err(e) if e.is_permission_denied() => {
            client.add_key(app_object_id, key, signer, replication).await.map(KeyChange::Added)
        }
        Err(e) => Err(e),
    }
}

/// Remove every credential with this thumbprint with `removeKey`. [`Deleted::AlreadyGone`] when none is
/// registered; refuses ([`Error::LastKey`]) to leave the app with no certificate. `signer` should sign with
/// a certificate that stays (the new one once it has replicated, or the old one itself while valid).
///
/// Finding the credential reads the application; when that is refused (403: an app-only token rotating its
/// own certificate) and `key_id` is given, that credential is removed directly (without the last-key check).
pub async fn remove_key_with_proof(
    client: &GraphClient,
    app_object_id: &str,
    thumbprint_sha1: &str,
    key_id: Option<&str>,
    signer: &dyn ProofSigner,
    replication: Replication,
) -> Result<Deleted, Error> {
    let app = match client.get_application(app_object_id, replication).await {
        Ok(app) => app,
        Err(e) if e.is_permission_denied() => match key_id {
            Some(key_id) => return client.remove_key(app_object_id, key_id, signer, replication).await,
            None => return Err(e),
        },
        Err(e) => return Err(e),
    };
    let doomed: Vec<&KeyCredential> =
        app.key_credentials.iter().filter(|k| k.matches_thumbprint(thumbprint_sha1)).collect();
    if doomed.is_empty() {
        return Ok(Deleted::AlreadyGone);
    }
    if doomed.len() == app.key_credentials.len() {
        return Err(Error::LastKey { app_object_id: app.id });
    }
    let mut outcome = Deleted::AlreadyGone;
    for key in doomed {
        let Some(key_id) = key.key_id.as_deref() else { continue };
        if client.remove_key(&app.id, key_id, signer, Replication::Expected).await? == Deleted::Deleted {
            outcome = Deleted::Deleted;
        }
    }
    Ok(outcome)
}

/// The admin's fallback: `GET ?$select=keyCredentials` (with the `key`s), drop the credentials whose
/// thumbprint is in `remove_thumbprints`, append those of `add` not already present, and PATCH the whole
/// list back. No PATCH when nothing changes; refuses to leave the app with no certificate. Returns the list
/// as sent (or as found).
pub async fn replace_keys_patch(
    client: &GraphClient,
    app_object_id: &str,
    add: &[KeyCredential],
    remove_thumbprints: &[String],
    replication: Replication,
) -> Result<Vec<KeyCredential>, Error> {
    let current = client.get_key_credentials(app_object_id, replication).await?;
    let mut keys: Vec<KeyCredential> =
        current.iter().filter(|k| !remove_thumbprints.iter().any(|t| k.matches_thumbprint(t))).cloned().collect();
    for new in add {
        if !keys.iter().any(|k| k.same_key(new)) {
            keys.push(new.clone());
        }
    }
    if keys.is_empty() {
        return Err(Error::LastKey { app_object_id: app_object_id.to_string() });
    }
    if keys == current {
        return Ok(current);
    }
    client.set_key_credentials(app_object_id, &keys, Replication::Expected).await?;
    Ok(keys)
}
