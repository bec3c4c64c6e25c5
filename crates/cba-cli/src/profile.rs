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
    pub tenant_id: String,
    /// The primary `*.onmicrosoft.com` domain (Connect-ExchangeOnline -Organization).
    pub tenant_domain: Option<String>,
    pub app_name: String,
    /// The application (client) id.
    pub app_id: String,
    /// The application object id.
    pub app_object_id: String,
    pub service_principal_id: String,
    /// The Exchange.ManageAsApp app role assignment id.
    pub grant_id: Option<String>,
    #[serde(default)]
    pub role_assignments: Vec<RoleAssignment>,
    /// The certificate the app signs in with.
    pub certificate: CertificateRef,
    /// During a rotation: the certificate being replaced (still registered until the rotation finishes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_certificate: Option<CertificateRef>,
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
        let base = path.parent().unwrap_or(Path::new("."));
        for cert in std::iter::once(&mut profile.certificate).chain(profile.previous_certificate.as_mut()) {
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

    /// Write atomically, 0600 (it names the certificate that can sign in as the app).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut json = serde_json::to_vec_pretty(self)?;
        json.push(b'\n');
        fsutil::write_atomic(path, &json, Mode::Private, true)
    }
}
