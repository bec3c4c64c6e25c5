//! Writing files without losing anything: temp file in the same folder, fsync, then link/rename;
//! never replacing an existing file without `--force`; private keys 0600.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::exit::{Exit, fail};

/// Who may read a file we write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Owner read/write only (private keys, profiles, caches).
    Private,
    /// World-readable (certificates without keys).
    Public,
}

/// A file written to a temporary name, waiting to be put in place.
#[derive(Debug)]
pub struct Staged {
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

/// Refuse to go on if any target exists and `force` is off.
pub fn check_free(targets: &[&Path], force: bool) -> anyhow::Result<()> {
    if force {
        return Ok(());
    }
    for t in targets {
        if t.exists() {
            return Err(fail(
                Exit::BadInput,
                format!(
                    "{} already exists; pass --force to replace it, or choose another --name/--out-dir",
                    t.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Write `bytes` to a temporary file beside `target` (0600 from creation for private files) and fsync it.
pub fn stage(target: &Path, bytes: &[u8], mode: Mode) -> anyhow::Result<Staged> {
    let dir = parent_dir(target);
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    // Unique enough: create_new refuses a collision instead of clobbering.
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let temp = dir.join(format!(".{name}.{}-{nanos}.tmp", std::process::id()));
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(match mode {
            Mode::Private => 0o600,
            Mode::Public => 0o644,
        });
    }
    let mut file = opts.open(&temp).map_err(|e| write_error(target, &e))?;
    let result = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(write_error(target, &e));
    }
    Ok(Staged { temp, target: target.to_path_buf(), committed: false })
}

impl Staged {
    /// Put the file in place. Without `force` this fails if the target appeared meanwhile (hard link, not rename).
    pub fn commit(&mut self, force: bool) -> anyhow::Result<()> {
        let result = if force {
            fs::rename(&self.temp, &self.target)
        } else {
            fs::hard_link(&self.temp, &self.target).and_then(|()| fs::remove_file(&self.temp))
        };
        match result {
            Ok(()) => {
                self.committed = true;
                sync_dir(parent_dir(&self.target));
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(fail(
                Exit::BadInput,
                format!("{} already exists; pass --force to replace it", self.target.display()),
            )),
            Err(e) => Err(write_error(&self.target, &e)),
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Commit every staged file, or none: on failure, files this call created are removed again and, with
/// `force`, the files it replaced are put back (each is kept under a backup name until all are in place).
pub fn commit_all(staged: &mut [Staged], force: bool) -> anyhow::Result<()> {
    // A target that is a folder (or anything but a file) would fail halfway: refuse before touching any.
    for s in staged.iter() {
        if let Ok(meta) = fs::symlink_metadata(&s.target)
            && !meta.is_file()
        {
            return Err(fail(
                Exit::BadInput,
                format!(
                    "{} exists and is not a file: remove it or choose another --name/--out-dir",
                    s.target.display()
                ),
            ));
        }
    }
    let mut backups: Vec<Option<PathBuf>> = Vec::with_capacity(staged.len());
    if force {
        for s in staged.iter() {
            if s.target.exists() {
                let backup = s.temp.with_extension("bak");
                if let Err(e) = fs::hard_link(&s.target, &backup) {
                    for b in backups.iter().flatten() {
                        let _ = fs::remove_file(b);
                    }
                    return Err(write_error(&s.target, &e));
                }
                backups.push(Some(backup));
            } else {
                backups.push(None);
            }
        }
    }
    for i in 0..staged.len() {
        if let Err(e) = staged[i].commit(force) {
            for (done, backup) in staged[..i].iter().zip(backups.iter().chain(std::iter::repeat(&None))) {
                match backup {
                    Some(b) => {
                        let _ = fs::rename(b, &done.target);
                    }
                    None => {
                        let _ = fs::remove_file(&done.target);
                    }
                }
            }
            for b in backups.iter().skip(i).flatten() {
                let _ = fs::remove_file(b);
            }
            return Err(e);
        }
    }
    for b in backups.iter().flatten() {
        let _ = fs::remove_file(b);
    }
    Ok(())
}

/// Write one file atomically (stage + commit).
pub fn write_atomic(target: &Path, bytes: &[u8], mode: Mode, force: bool) -> anyhow::Result<()> {
    stage(target, bytes, mode)?.commit(force)
}

/// Read a whole file, with an error naming it.
pub fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    fs::read(path).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound => "check the path",
            std::io::ErrorKind::PermissionDenied => "check the file's permissions",
            _ => "",
        };
        fail(
            Exit::BadInput,
            format!("cannot read {}: {e}{}{hint}", path.display(), if hint.is_empty() { "" } else { "; " }),
        )
    })
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn write_error(target: &Path, e: &std::io::Error) -> anyhow::Error {
    let dir = parent_dir(target);
    let hint = match e.kind() {
        std::io::ErrorKind::NotFound => format!("; the folder {} does not exist: create it first", dir.display()),
        std::io::ErrorKind::PermissionDenied => {
            format!("; the folder {} is not writable: choose another --out-dir", dir.display())
        }
        _ => String::new(),
    };
    fail(Exit::BadInput, format!("cannot write {}: {e}{hint}", target.display()))
}
