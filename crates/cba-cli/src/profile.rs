//! The profile file `cba setup` writes so later commands need no flags (docs/profile.md): the library's
//! `Profile` kept as JSON beside the certificates, atomically, 0600.

use std::path::{Path, PathBuf};

use cba_lifecycle::profile::VERSION;
pub use cba_lifecycle::profile::{CertificateRef, Endpoints, Profile, ProfileStore};

use crate::exit::{Exit, fail};
use crate::fsutil::{self, Mode};

/// A profile in a JSON file. Certificate paths inside the profile's folder are stored relative to it, so
/// the folder can move.
#[derive(Debug, Clone)]
pub struct FileStore {
    pub path: PathBuf,
}

impl FileStore {
    pub fn new(path: impl Into<PathBuf>) -> FileStore {
        FileStore { path: path.into() }
    }

    /// Read and validate the profile; relative certificate paths are resolved against its folder.
    pub fn read(&self) -> anyhow::Result<Profile> {
        let path = &self.path;
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
        if let Err(e) = profile.cloud.parse::<cba_token::Cloud>() {
            return Err(fail(Exit::BadInput, format!("{}: {e}", path.display())));
        }
        let base = folder(path);
        for cert in profile.certificates_mut() {
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

    /// Read it if the file exists.
    pub fn read_if_present(&self) -> anyhow::Result<Option<Profile>> {
        if self.path.exists() { self.read().map(Some) } else { Ok(None) }
    }

    /// Write atomically, 0600 (it names the certificate that can sign in as the app).
    pub fn write(&self, profile: &Profile) -> anyhow::Result<()> {
        let mut stored = profile.clone();
        if let Ok(base) = std::path::absolute(folder(&self.path)) {
            let relative = |p: &mut PathBuf| {
                if let Ok(abs) = std::path::absolute(&*p)
                    && let Ok(rel) = abs.strip_prefix(&base)
                {
                    *p = rel.to_path_buf();
                }
            };
            for cert in stored.certificates_mut() {
                relative(&mut cert.path);
                if let Some(cer) = &mut cert.cer_path {
                    relative(cer);
                }
            }
        }
        let mut json = serde_json::to_vec_pretty(&stored)?;
        json.push(b'\n');
        fsutil::write_atomic(&self.path, &json, Mode::Private, true)
    }

    /// Refuse a profile whose setup did not finish (every command but setup and teardown).
    pub fn require_complete(&self, profile: &Profile) -> anyhow::Result<()> {
        if profile.incomplete {
            return Err(fail(
                Exit::BadInput,
                format!(
                    "{}: the setup of app {:?} did not finish; run `cba setup --profile {}` again to finish it",
                    self.path.display(),
                    profile.app_name,
                    self.path.display()
                ),
            ));
        }
        Ok(())
    }
}

impl ProfileStore for FileStore {
    fn load(&self) -> Result<Option<Profile>, cba_http::BoxError> {
        self.read_if_present().map_err(Into::into)
    }

    fn save(&self, profile: &Profile) -> Result<(), cba_http::BoxError> {
        self.write(profile).map_err(Into::into)
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// The folder a profile's relative paths start from.
fn folder(profile: &Path) -> &Path {
    match profile.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
