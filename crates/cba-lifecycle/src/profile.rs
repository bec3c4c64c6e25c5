//! The profile: what `setup` recorded, so later operations need no flags. Data only: where it is kept is the
//! caller's business, behind [`ProfileStore`].

use std::path::PathBuf;
use std::sync::Mutex;

use cba_http::BoxError;
use serde::{Deserialize, Serialize};

/// Current format version. Readers refuse newer versions.
pub const VERSION: u32 = 1;

/// Everything needed to get a token and check the setup; no secrets (the key's password or PIN stays with
/// the caller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The format version ([`VERSION`]).
    pub version: u32,
    /// `global`, `usgov-high`, `usgov-dod` or `china`.
    pub cloud: String,
    /// Roots actually used (the cloud's defaults, or the overrides given to setup).
    pub endpoints: Endpoints,
    /// Setup stopped before its end: the ids below are those known so far (empty when not yet known).
    /// [`setup`](crate::setup()) with this profile finishes the job; the other operations refuse it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
    /// When the profile was last written (RFC 3339), by the operation's clock. Setup uses it to tell a
    /// fresh record of an app that may still be replicating from an old one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// The tenant id (GUID), or the tenant as given to setup until the id is known.
    #[serde(default)]
    pub tenant_id: String,
    /// The primary `*.onmicrosoft.com` domain (Connect-ExchangeOnline -Organization).
    pub tenant_domain: Option<String>,
    /// The app's display name.
    pub app_name: String,
    /// The app's `uniqueName`, the key setup creates it by (recorded before the create, so a rerun after a
    /// crash upserts the same app instead of making a second one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_unique_name: Option<String>,
    /// The application (client) id.
    #[serde(default)]
    pub app_id: String,
    /// The app is multi-tenant (`signInAudience` AzureADMultipleOrgs): customer tenants consent to it and
    /// sign in with its certificate (docs/fleet.md). Setup never switches it back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub multi_tenant: bool,
    /// The application object id.
    #[serde(default)]
    pub app_object_id: String,
    /// The app's service principal.
    #[serde(default)]
    pub service_principal_id: String,
    /// The Exchange.ManageAsApp app role assignment id.
    #[serde(default)]
    pub grant_id: Option<String>,
    /// The directory role assignments setup made.
    #[serde(default)]
    pub role_assignments: Vec<RoleAssignment>,
    /// The certificate the app signs in with.
    pub certificate: CertificateRef,
    /// Written by rotations of earlier versions, between "new certificate proven" and "old one removed";
    /// a rotation finishes it (removes its key). Current rotations keep the old one in `retired` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_certificate: Option<CertificateRef>,
    /// During a rotation: the new certificate, made and perhaps registered, not yet proven to work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_certificate: Option<CertificateRef>,
    /// Certificates a rotation replaced, still registered so that other machines holding them keep
    /// working until `remove_after` (the overlap); a later rotation removes them then, or once expired.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<RetiredCertificate>,
    /// The app's Exchange role group (least privilege instead of an Entra role), when setup gave it one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<ExchangeProfile>,
}

/// What setup made in Exchange for the app (docs/profile.md). Each `*_created` is recorded before the create
/// (the intent), so a crash mid-request converges on the rerun, and teardown removes only what `cba` made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeProfile {
    /// The Exchange service principal's identity: the Entra service principal's object id.
    #[serde(default)]
    pub service_principal: String,
    /// `cba` created the Exchange service principal.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub service_principal_created: bool,
    /// The role group the app is a member of.
    #[serde(default)]
    pub role_group: String,
    /// `cba` created the role group (a custom `cba-<app name>` group).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub role_group_created: bool,
    /// The group's roles, as Exchange reported them.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The management scope used as the group's `CustomRecipientWriteScope`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Its recipient filter (OPATH), as Exchange reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_scope: Option<String>,
    /// `cba` created the scope.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scope_created: bool,
}

/// A certificate replaced by a rotation, kept registered (and its files kept at their dated names) for the
/// overlap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredCertificate {
    /// Where its files are kept now (beside the current one, with a date in the name) and which it is.
    pub certificate: CertificateRef,
    /// From when a rotation removes its key and deletes its files (RFC 3339).
    pub remove_after: String,
}

/// The service roots a profile was made against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// Login root (`https://login.microsoftonline.com`).
    pub login: String,
    /// Graph root, without the version.
    pub graph: String,
    /// Exchange Online root.
    pub exchange: String,
}

/// A directory role assignment setup made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAssignment {
    /// The role's name.
    pub role: String,
    /// The role's template id.
    pub template_id: String,
    /// The `unifiedRoleAssignment` id.
    pub id: String,
}

/// Where a certificate and its key are kept, and which certificate it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRef {
    /// The PFX (or PEM with key) used for signing; for a key in a token ([`key`](Self::key)), the `.cer`
    /// file written for upload.
    pub path: PathBuf,
    /// The DER certificate, when one was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cer_path: Option<PathBuf>,
    /// SHA-1 thumbprint, uppercase hex.
    pub thumbprint_sha1: String,
    /// SHA-256 thumbprint, uppercase hex.
    pub thumbprint_sha256: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// The key is in a PKCS#11 token: its RFC 7512 URI (token, object label, id; the module's path when one
    /// was named), never a PIN. The certificate is read from the token. Only a rotation deletes the key, once
    /// it is retired and removeKey removed it from the app; teardown never touches the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Graph's `keyId` of this certificate on the app (what `removeKey` needs), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// `cba` made these files (a new certificate at setup, or a rotation): only such files are deleted by
    /// teardown. A certificate the user brought is never deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub created: bool,
}

impl CertificateRef {
    /// The reference for `certificate` stored at `path` (and `cer_path`).
    pub fn new(certificate: &cba_cert::Certificate, path: PathBuf, cer_path: Option<PathBuf>) -> CertificateRef {
        CertificateRef {
            path,
            cer_path,
            thumbprint_sha1: certificate.thumbprint_sha1_hex(),
            thumbprint_sha256: certificate.thumbprint_sha256_hex(),
            not_after: cba_token::jwt::rfc3339(certificate.not_after()),
            key: None,
            key_id: None,
            created: false,
        }
    }

    /// Mark the files as made by `cba`.
    pub fn created_by_cba(mut self) -> CertificateRef {
        self.created = true;
        self
    }
}

impl Profile {
    /// Every certificate the profile names: current, previous (older rotations), pending and retired
    /// (rotation).
    pub fn certificates(&self) -> impl Iterator<Item = &CertificateRef> {
        std::iter::once(&self.certificate)
            .chain(&self.previous_certificate)
            .chain(&self.pending_certificate)
            .chain(self.retired.iter().map(|r| &r.certificate))
    }

    /// The same, mutable (a store rewrites paths when it moves the profile).
    pub fn certificates_mut(&mut self) -> impl Iterator<Item = &mut CertificateRef> {
        std::iter::once(&mut self.certificate)
            .chain(self.previous_certificate.as_mut())
            .chain(self.pending_certificate.as_mut())
            .chain(self.retired.iter_mut().map(|r| &mut r.certificate))
    }

    /// The roles recorded by setup, as known roles (unknown template ids are skipped).
    pub fn roles(&self) -> Vec<cba_graph::wellknown::Role> {
        self.role_assignments.iter().filter_map(|r| cba_graph::wellknown::role_by_template_id(&r.template_id)).collect()
    }

    /// Refuse a profile whose setup did not finish (every operation but setup and teardown).
    pub fn require_complete(&self) -> Result<(), crate::Error> {
        if self.incomplete {
            return Err(crate::Error::Incomplete { app_name: self.app_name.clone() });
        }
        Ok(())
    }
}

/// Where a profile is kept. The library reads and writes the profile only through this, so it opens no
/// file of its own choosing; `cba-cli` keeps it in a JSON file (atomic, 0600), a portal in a database row.
pub trait ProfileStore: Send + Sync {
    /// The stored profile, if any.
    fn load(&self) -> Result<Option<Profile>, BoxError>;
    /// Replace the stored profile (atomically: a crash leaves the old one or the new one).
    fn save(&self, profile: &Profile) -> Result<(), BoxError>;
    /// A name for messages (a file path, a row key).
    fn describe(&self) -> String;
}

/// A profile kept in memory: for tests, and for callers that persist it themselves afterwards.
#[derive(Debug, Default)]
pub struct MemoryStore {
    profile: Mutex<Option<Profile>>,
    saves: Mutex<u32>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// A store holding `profile`.
    pub fn with(profile: Profile) -> MemoryStore {
        MemoryStore { profile: Mutex::new(Some(profile)), saves: Mutex::new(0) }
    }

    /// The profile as last saved.
    pub fn get(&self) -> Option<Profile> {
        self.profile.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many times it was saved.
    pub fn saves(&self) -> u32 {
        *self.saves.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ProfileStore for MemoryStore {
    fn load(&self) -> Result<Option<Profile>, BoxError> {
        Ok(self.get())
    }

    fn save(&self, profile: &Profile) -> Result<(), BoxError> {
        *self.profile.lock().unwrap_or_else(|e| e.into_inner()) = Some(profile.clone());
        *self.saves.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Ok(())
    }

    fn describe(&self) -> String {
        "the in-memory profile".into()
    }
}
