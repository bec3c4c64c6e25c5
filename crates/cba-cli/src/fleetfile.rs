//! The fleet file (docs/fleet.md): the library's `Fleet` as JSON beside the home profile, 0600, written
//! atomically under an advisory lock on `FILE.lock`, so concurrent `cba fleet add` processes for different
//! tenants merge instead of clobbering each other.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use cba_lifecycle::fleet::{Fleet, FleetStore, VERSION};

use crate::exit::{Exit, fail};
use crate::fsutil::{self, Mode};

/// A fleet kept in a JSON file.
#[derive(Debug, Clone)]
pub struct FleetFile {
    pub path: PathBuf,
}

/// `NAME.fleet.json` beside `NAME.profile.json` (or beside any other profile file name).
pub fn default_path(profile: &Path) -> PathBuf {
    let name = profile.file_name().and_then(|n| n.to_str()).unwrap_or("cba");
    let stem = name.strip_suffix(".profile.json").or_else(|| name.strip_suffix(".json")).unwrap_or(name);
    profile.with_file_name(format!("{stem}.fleet.json"))
}

/// Held while a fleet file is read, changed and written (released on drop, or when the process dies).
struct Lock(File);

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl FleetFile {
    pub fn new(path: impl Into<PathBuf>) -> FleetFile {
        FleetFile { path: path.into() }
    }

    /// Read and validate the fleet, if the file exists.
    pub fn read(&self) -> anyhow::Result<Option<Fleet>> {
        let path = &self.path;
        if !path.exists() {
            return Ok(None);
        }
        let bytes = fsutil::read(path)?;
        let fleet: Fleet = serde_json::from_slice(&bytes).map_err(|e| {
            fail(
                Exit::BadInput,
                format!("{} is not a cba fleet file ({e}); `cba fleet add` writes one", path.display()),
            )
        })?;
        if fleet.version > VERSION {
            return Err(fail(
                Exit::BadInput,
                format!(
                    "{} is a version {} fleet file; this cba reads version {VERSION}: upgrade cba",
                    path.display(),
                    fleet.version
                ),
            ));
        }
        Ok(Some(fleet))
    }

    /// The fleet, or a usage error naming how to make one.
    pub fn require(&self) -> anyhow::Result<Fleet> {
        self.read()?.ok_or_else(|| {
            fail(
                Exit::Usage,
                format!(
                    "no fleet file {}: add a customer tenant with `cba fleet add --profile HOME --tenant CUSTOMER`, \
                     or pass --fleet FILE",
                    self.path.display()
                ),
            )
        })
    }

    fn lock_path(&self) -> PathBuf {
        let mut name = self.path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".lock");
        self.path.with_file_name(name)
    }

    /// An exclusive advisory lock (`flock` on Unix, `LockFileEx` on Windows) on `FILE.lock`: waits for another
    /// writer to finish. The lock file stays; its content is nothing.
    fn lock(&self) -> anyhow::Result<Lock> {
        let path = self.lock_path();
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(&path)
            .map_err(|e| fail(Exit::BadInput, format!("cannot open the fleet lock {}: {e}", path.display())))?;
        file.lock().map_err(|e| fail(Exit::BadInput, format!("cannot lock {}: {e}", path.display())))?;
        Ok(Lock(file))
    }

    fn write(&self, fleet: &Fleet) -> anyhow::Result<()> {
        let mut json = serde_json::to_vec_pretty(fleet)?;
        json.push(b'\n');
        fsutil::write_atomic(&self.path, &json, Mode::Private, true)
    }
}

impl FleetStore for FleetFile {
    fn load(&self) -> Result<Option<Fleet>, cba_http::BoxError> {
        self.read().map_err(Into::into)
    }

    fn update(&self, change: &mut (dyn FnMut(&mut Option<Fleet>) + Send)) -> Result<(), cba_http::BoxError> {
        let _lock = self.lock()?;
        let mut fleet = self.read()?;
        let before = fleet.clone();
        change(&mut fleet);
        match &fleet {
            Some(f) if fleet != before => self.write(f)?,
            _ => {}
        }
        Ok(())
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cba_lifecycle::fleet::{CustomerTenant, Home, OnboardingState};

    fn entry(id: &str) -> CustomerTenant {
        serde_json::from_value(serde_json::json!({ "tenant_id": id, "state": "onboarded" })).unwrap()
    }

    #[test]
    fn default_path_sits_beside_the_profile() {
        assert_eq!(default_path(Path::new("/x/contoso-exo.profile.json")), Path::new("/x/contoso-exo.fleet.json"));
        assert_eq!(default_path(Path::new("home.json")), Path::new("home.fleet.json"));
    }

    #[test]
    fn concurrent_updates_of_different_tenants_all_land() {
        let dir = std::env::temp_dir().join(format!("cba-fleetfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = FleetFile::new(dir.join("a.fleet.json"));
        let _ = std::fs::remove_file(&file.path);
        let home =
            Home { profile: "a.profile.json".into(), tenant_id: "t".into(), app_id: "a".into(), app_name: "n".into() };
        std::thread::scope(|s| {
            for i in 0..8 {
                let (file, home) = (&file, home.clone());
                s.spawn(move || {
                    let mut once = Some(entry(&format!("{i:08}-0000-0000-0000-000000000000")));
                    file.update(&mut |f| {
                        let f = f.get_or_insert_with(|| Fleet::new(home.clone()));
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        f.upsert(once.take().unwrap());
                    })
                    .unwrap();
                });
            }
        });
        let fleet = file.read().unwrap().unwrap();
        assert_eq!(fleet.tenants.len(), 8, "{fleet:#?}");
        assert!(fleet.tenants.iter().all(|t| t.state == OnboardingState::Onboarded));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&file.path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
