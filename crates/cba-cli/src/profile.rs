//! The profile file `cba setup` writes so later commands need no flags (docs/profile.md).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exit::{Exit, fail};
use crate::fsutil::{self, Mode};

/// Current format version. Readers refuse newer versions with a clear message.
pub const VERSION: u32 = 1;

/// Everything needed to get a token and check the setup; no secrets (the PFX password stays in the
/// environment, a file or a prompt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub version: u32,
    /// `global`, `usgov-high`, `usgov-dod` or `china`.
    pub cloud: String,
    /// Roots actually used (the cloud's defaults, or the overrides given to setup).
    pub endpoints: Endpoints,
    /// Setup stopped before its end: the ids below are those known so far (empty when not yet known).
    /// `cba setup` with this profile finishes the job; the other commands refuse it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
    /// The tenant id (GUID), or the tenant as given to setup until the id is known.
    #[serde(default)]
    pub tenant_id: String,
    /// The primary `*.onmicrosoft.com` domain (Connect-ExchangeOnline -Organization).
    pub tenant_domain: Option<String>,
    pub app_name: String,
    /// The application (client) id.
    #[serde(default)]
    pub app_id: String,
    /// The application object id.
    #[serde(default)]
    pub app_object_id: String,
    #[serde(default)]
    pub service_principal_id: String,
    /// The Exchange.ManageAsApp app role assignment id.
    #[serde(default)]
    pub grant_id: Option<String>,
    #[serde(default)]
    pub role_assignments: Vec<RoleAssignment>,
    /// The certificate the app signs in with.
    pub certificate: CertificateRef,
    /// During a rotation: the certificate being replaced (still registered until the rotation finishes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_certificate: Option<CertificateRef>,
    /// During a rotation: the new certificate, made and perhaps registered, not yet proven to work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_certificate: Option<CertificateRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    pub login: String,
    pub graph: String,
    pub exchange: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAssignment {
    pub role: String,
    pub template_id: String,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRef {
    /// The PFX (or PEM with key) used for signing.
    pub path: PathBuf,
    /// The DER certificate, when one was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cer_path: Option<PathBuf>,
    pub thumbprint_sha1: String,
    pub thumbprint_sha256: String,
    pub not_after: String,
    /// Graph's `keyId` of this certificate on the app (what `removeKey` needs), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
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
            key_id: None,
        }
    }

    fn certs_mut(profile: &mut Profile) -> impl Iterator<Item = &mut CertificateRef> {
        std::iter::once(&mut profile.certificate)
            .chain(profile.previous_certificate.as_mut())
            .chain(profile.pending_certificate.as_mut())
    }
}

impl Profile {
    /// Read and validate a profile; relative certificate paths are resolved against the profile's folder.
    pub fn load(path: &Path) -> anyhow::Result<Profile> {
        let bytes = fsutil::read(path)?;
        let mut profile: Profile = serde_json::from_slice(&bytes).map_err(|e| {
            fail(Exit::BadInput, format!("{} is not a cba profile ({e}); run `cba setup` to write one", path.display()))
        })?;
        if profile.version > VERSION {
            return Err(fail(
                Exit::BadInput,
                format!(
                    "{} is a version {} profile; this cba reads version {VERSION}: upgrade cba",
                    path.display(),
                    profile.version
                ),
            ));
        }
        let base = folder(path);
        for cert in CertificateRef::certs_mut(&mut profile) {
            if cert.path.is_relative() {
                cert.path = base.join(&cert.path);
            }
            if let Some(cer) = &mut cert.cer_path
                && cer.is_relative()
            {
                *cer = base.join(&*cer);
            }
        }
        Ok(profile)
    }

    /// Refuse a profile whose setup did not finish (every command but setup and teardown).
    pub fn require_complete(&self, path: &Path) -> anyhow::Result<()> {
        if self.incomplete {
            return Err(fail(
                Exit::BadInput,
                format!(
                    "{}: the setup of app {:?} did not finish; run `cba setup --profile {}` again to finish it",
                    path.display(),
                    self.app_name,
                    path.display()
                ),
            ));
        }
        Ok(())
    }

    /// Write atomically, 0600 (it names the certificate that can sign in as the app). Certificate paths
    /// inside the profile's folder are stored relative to it, so the folder can move.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut stored = self.clone();
        if let Ok(base) = std::path::absolute(folder(path)) {
            let relative = |p: &mut PathBuf| {
                if let Ok(abs) = std::path::absolute(&*p)
                    && let Ok(rel) = abs.strip_prefix(&base)
                {
                    *p = rel.to_path_buf();
                }
            };
            for cert in CertificateRef::certs_mut(&mut stored) {
                relative(&mut cert.path);
                if let Some(cer) = &mut cert.cer_path {
                    relative(cer);
                }
            }
        }
        let mut json = serde_json::to_vec_pretty(&stored)?;
        json.push(b'\n');
        fsutil::write_atomic(path, &json, Mode::Private, true)
    }
}

/// The folder a profile's relative paths start from.
fn folder(profile: &Path) -> &Path {
    match profile.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
