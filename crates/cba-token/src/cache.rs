use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::cloud::Authority;
use crate::error::{Error, Result};
use crate::token::AccessToken;

/// A cached token with less than this left is treated as expired and renewed (MSAL's rule).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The cache file's name inside the cache folder.
pub const CACHE_FILE_NAME: &str = "tokens.json";

const FORMAT_VERSION: u32 = 1;

/// The cache folder: `$XDG_CACHE_HOME/cba` (when absolute), else `$HOME/.cache/cba`, else `%LOCALAPPDATA%\cba`.
///
/// `env` looks up a variable; this function reads nothing itself (the CLI passes `std::env::var`).
pub fn default_cache_dir(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let non_empty = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(xdg) = non_empty("XDG_CACHE_HOME").filter(|v| Path::new(v).is_absolute()) {
        return Some(PathBuf::from(xdg).join("cba"));
    }
    if let Some(home) = non_empty("HOME") {
        return Some(PathBuf::from(home).join(".cache").join("cba"));
    }
    non_empty("LOCALAPPDATA").map(|d| PathBuf::from(d).join("cba"))
}

/// What a cached token is for: authority + tenant + client id + scope + certificate thumbprint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(String);

impl CacheKey {
    /// The key for a token of app `client_id` in `tenant`, for `scope`, signed in with the certificate whose
    /// SHA-1 thumbprint is `thumbprint_sha1_hex`.
    pub fn new(
        authority: &Authority,
        tenant: &str,
        client_id: &str,
        scope: &str,
        thumbprint_sha1_hex: &str,
    ) -> CacheKey {
        CacheKey(format!(
            "{}|{}|{}|{}|{}",
            authority.as_str().to_ascii_lowercase(),
            tenant.to_ascii_lowercase(),
            client_id.to_ascii_lowercase(),
            scope,
            thumbprint_sha1_hex.to_ascii_uppercase()
        ))
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The start every key of app `client_id` in `tenant` at `authority` shares (any scope, any certificate).
    fn app_prefix(authority: &Authority, tenant: &str, client_id: &str) -> String {
        format!(
            "{}|{}|{}|",
            authority.as_str().to_ascii_lowercase(),
            tenant.to_ascii_lowercase(),
            client_id.to_ascii_lowercase()
        )
    }
}

/// A certificate file's identity on disk (path, size, modification time), so a cache hit can find the
/// certificate's thumbprint without opening (and, for a PFX, decrypting) the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFileStamp {
    path: String,
    len: u64,
    modified_ns: u64,
}

impl CertFileStamp {
    /// From a path and the metadata the caller read (`std::fs::metadata`). `None` without a modification time.
    pub fn from_metadata(path: &Path, metadata: &fs::Metadata) -> Option<CertFileStamp> {
        let modified = metadata.modified().ok()?;
        Some(CertFileStamp::new(path, metadata.len(), modified))
    }

    /// From its parts.
    pub fn new(path: &Path, len: u64, modified: SystemTime) -> CertFileStamp {
        let modified_ns = modified.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        CertFileStamp { path: path.to_string_lossy().into_owned(), len, modified_ns }
    }
}

#[derive(Default, Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    #[serde(default)]
    tokens: BTreeMap<String, Entry>,
    #[serde(default)]
    certificates: BTreeMap<String, CertEntry>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Entry {
    access_token: String,
    token_type: String,
    /// Unix seconds.
    expires_on: i64,
    scope: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CertEntry {
    len: u64,
    modified_ns: u64,
    sha1: String,
}

#[derive(Default)]
struct State {
    tokens: HashMap<String, Entry>,
    certificates: HashMap<String, CertEntry>,
}

/// Access tokens in memory and, optionally, in a JSON file shared by processes.
///
/// The file is created 0600 (its folder 0700), replaced atomically (temporary file in the same folder, fsync,
/// rename) under an exclusive lock on `<file>.lock`, and merged with what other processes wrote meanwhile.
/// A damaged file is ignored (with a warning) and rewritten on the next store; it never makes a call fail.
///
/// Two things make the file unusable instead, and are never overwritten: on Unix, a folder or file that group or
/// others may write, or that another user owns (someone else could plant tokens in it:
/// [`Error::CacheNotPrivate`]), and a file in a newer format than this version reads
/// ([`Error::CacheNewerFormat`]). Lookups then miss (with a warning in the log) and stores return the error;
/// call [`check`](Self::check) first to report it up front.
/// Cheap to clone: clones share the same memory.
#[derive(Clone)]
pub struct TokenCache {
    file: Option<Arc<PathBuf>>,
    state: Arc<Mutex<State>>,
    margin: Duration,
}

impl TokenCache {
    /// A cache that lives in this process only.
    pub fn in_memory() -> TokenCache {
        TokenCache { file: None, state: Arc::default(), margin: REFRESH_MARGIN }
    }

    /// A cache backed by `path` (created on first store; its folder too).
    pub fn with_file(path: impl Into<PathBuf>) -> TokenCache {
        TokenCache { file: Some(Arc::new(path.into())), ..TokenCache::in_memory() }
    }

    /// Treat tokens with less than `margin` left as expired (default [`REFRESH_MARGIN`]).
    pub fn refresh_margin(mut self, margin: Duration) -> TokenCache {
        self.margin = margin;
        self
    }

    /// The backing file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_deref().map(PathBuf::as_path)
    }

    /// A token for `key` with at least the refresh margin left at `now`.
    pub fn get(&self, key: &CacheKey, now: OffsetDateTime) -> Option<AccessToken> {
        if let Some(t) = self.get_in_memory(key, now) {
            return Some(t);
        }
        // Another process may have stored one meanwhile.
        let path = self.file.as_deref()?;
        self.absorb_file(path);
        self.get_in_memory(key, now)
    }

    /// Whether the backing file can be used: on Unix its folder and the file (when they exist) are private to
    /// this user ([`Error::CacheNotPrivate`]), and the file is not in a newer format ([`Error::CacheNewerFormat`]).
    /// A missing or damaged file is fine (it is created or rewritten on the next store). Always `Ok` in memory.
    pub fn check(&self) -> Result<()> {
        match self.file.as_deref() {
            Some(path) => read_file(path).map(drop),
            None => Ok(()),
        }
    }

    fn get_in_memory(&self, key: &CacheKey, now: OffsetDateTime) -> Option<AccessToken> {
        let state = self.lock();
        let e = state.tokens.get(key.as_str())?;
        let expires_on = OffsetDateTime::from_unix_timestamp(e.expires_on).ok()?;
        let token = AccessToken::new(e.access_token.as_str(), e.token_type.as_str(), expires_on, e.scope.as_str())
            .with_from_cache(true);
        token.is_fresh(now, self.margin).then_some(token)
    }

    /// Store a token (and, with a file, persist it; entries expired at `now` are dropped from the file).
    pub fn put(&self, key: &CacheKey, token: &AccessToken, now: OffsetDateTime) -> Result<()> {
        let entry = Entry {
            access_token: token.secret().to_owned(),
            token_type: token.token_type.clone(),
            expires_on: token.expires_on.unix_timestamp(),
            scope: token.scope.clone(),
        };
        self.lock().tokens.insert(key.as_str().to_owned(), entry.clone());
        self.update_file(|file| {
            file.tokens.insert(key.as_str().to_owned(), entry);
            let now = now.unix_timestamp();
            file.tokens.retain(|_, e| e.expires_on > now);
        })
    }

    /// The SHA-1 thumbprint (uppercase hex) remembered for this certificate file, if the file is unchanged.
    pub fn cert_thumbprint(&self, stamp: &CertFileStamp) -> Option<String> {
        let lookup = |state: &State| {
            state
                .certificates
                .get(&stamp.path)
                .filter(|c| c.len == stamp.len && c.modified_ns == stamp.modified_ns)
                .map(|c| c.sha1.clone())
        };
        if let Some(t) = lookup(&self.lock()) {
            return Some(t);
        }
        let path = self.file.as_deref()?;
        self.absorb_file(path);
        lookup(&self.lock())
    }

    /// Remember the thumbprint of a certificate file (persisted at once when it is new).
    pub fn remember_cert(&self, stamp: &CertFileStamp, thumbprint_sha1_hex: &str) -> Result<()> {
        let entry = CertEntry {
            len: stamp.len,
            modified_ns: stamp.modified_ns,
            sha1: thumbprint_sha1_hex.to_ascii_uppercase(),
        };
        if self.lock().certificates.insert(stamp.path.clone(), entry.clone()).as_ref() == Some(&entry) {
            return Ok(());
        }
        self.update_file(|file| {
            file.certificates.insert(stamp.path.clone(), entry);
        })
    }

    /// Forget the token for `key`, in memory and on disk (a token the service refused: the next lookup misses).
    pub fn remove(&self, key: &CacheKey) -> Result<()> {
        self.remove_where(|k| k == key.as_str()).map(drop)
    }

    /// Forget every token of app `client_id` in `tenant` at `authority`, whatever its scope or certificate, in
    /// memory and on disk (the app was deleted, or its certificate replaced). `tenant` is matched as written in
    /// the key (an id and a domain are different keys: call once for each). Returns how many were removed.
    pub fn remove_app(&self, authority: &Authority, tenant: &str, client_id: &str) -> Result<usize> {
        let prefix = CacheKey::app_prefix(authority, tenant, client_id);
        self.remove_where(|k| k.starts_with(&prefix))
    }

    /// Remove the tokens whose key `matches`; the file is rewritten only when it holds one.
    fn remove_where(&self, matches: impl Fn(&str) -> bool) -> Result<usize> {
        let mut removed: std::collections::HashSet<String> = {
            let mut state = self.lock();
            let keys: Vec<String> = state.tokens.keys().filter(|k| matches(k)).cloned().collect();
            for k in &keys {
                state.tokens.remove(k);
            }
            keys.into_iter().collect()
        };
        if let Some(path) = self.file.as_deref() {
            let on_disk: Vec<String> = read_file(path)?.tokens.into_keys().filter(|k| matches(k)).collect();
            if !on_disk.is_empty() {
                self.update_file(|file| file.tokens.retain(|k, _| !matches(k)))?;
                removed.extend(on_disk);
            }
        }
        Ok(removed.len())
    }

    /// Forget everything, in memory and on disk.
    pub fn clear(&self) -> Result<()> {
        *self.lock() = State::default();
        let Some(path) = self.file.as_deref() else { return Ok(()) };
        if !path.exists() {
            return Ok(());
        }
        with_lock(path, || match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Cache { path: path.clone(), source: e }),
            _ => Ok(()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// [`absorb`](Self::absorb) the file, unless it cannot be trusted or read (then it is a miss).
    fn absorb_file(&self, path: &Path) {
        match read_file(path) {
            Ok(disk) => self.absorb(disk),
            Err(e) => tracing::warn!(error = %e, "not using the token cache"),
        }
    }

    /// Take in what the file holds; for a key present in both, the token that lives longer wins.
    fn absorb(&self, disk: CacheFile) {
        let mut state = self.lock();
        for (k, e) in disk.tokens {
            match state.tokens.get(&k) {
                Some(mine) if mine.expires_on >= e.expires_on => {}
                _ => {
                    state.tokens.insert(k, e);
                }
            }
        }
        for (k, c) in disk.certificates {
            state.certificates.entry(k).or_insert(c);
        }
    }

    /// Read-modify-write the file under its lock, so concurrent writers do not lose each other's entries.
    fn update_file(&self, change: impl FnOnce(&mut CacheFile)) -> Result<()> {
        let Some(path) = self.file.as_deref() else { return Ok(()) };
        check_folder(path)?;
        with_lock(path, || {
            let mut file = read_file(path)?;
            change(&mut file);
            file.version = FORMAT_VERSION;
            let json = serde_json::to_vec_pretty(&file).expect("the cache serialises");
            write_atomic(path, &json).map_err(|e| Error::Cache { path: path.clone(), source: e })
        })
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("TokenCache")
            .field("file", &self.file)
            .field("tokens", &state.tokens.len())
            .field("certificates", &state.certificates.len())
            .field("margin", &self.margin)
            .finish()
    }
}

/// Just the version, read before the rest so that a newer layout is recognised even when it does not parse.
#[derive(Deserialize)]
struct Versioned {
    version: u32,
}

/// The file's content; missing → empty; unreadable or damaged → empty with a warning (it gets rewritten).
/// Not private (Unix) or in a newer format → an error: the file must be neither trusted nor overwritten.
fn read_file(path: &Path) -> Result<CacheFile> {
    check_folder(path)?;
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(CacheFile::default()),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the token cache; ignoring it");
            return Ok(CacheFile::default());
        }
    };
    // The open file's own metadata: what is checked is what is read.
    if let Ok(metadata) = file.metadata() {
        check_private(path, false, &metadata)?;
    }
    let mut bytes = Vec::new();
    if let Err(e) = io::Read::read_to_end(&mut file, &mut bytes) {
        tracing::warn!(path = %path.display(), error = %e, "cannot read the token cache; ignoring it");
        return Ok(CacheFile::default());
    }
    match serde_json::from_slice::<Versioned>(&bytes) {
        Ok(v) if v.version > FORMAT_VERSION => {
            return Err(Error::CacheNewerFormat {
                path: path.to_path_buf(),
                found: v.version,
                supported: FORMAT_VERSION,
            });
        }
        Ok(v) if v.version < FORMAT_VERSION => {
            tracing::warn!(path = %path.display(), version = v.version, "token cache has an unknown format version; ignoring it");
            return Ok(CacheFile::default());
        }
        _ => {}
    }
    match serde_json::from_slice::<CacheFile>(&bytes) {
        Ok(f) => Ok(f),
        Err(e) => {
            tracing::warn!(path = %path.display(), line = e.line(), column = e.column(), "token cache is damaged; ignoring it (it will be rewritten)");
            Ok(CacheFile::default())
        }
    }
}

/// The cache file's folder, when it exists, must be private (it is created 0700 otherwise).
fn check_folder(path: &Path) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match fs::metadata(dir) {
        Ok(metadata) => check_private(dir, true, &metadata),
        Err(_) => Ok(()),
    }
}

/// Unix: nobody but this user may write `path` (no group/other write bit, owned by our effective uid).
/// Elsewhere the platform's ACLs are left to the user.
#[cfg(unix)]
fn check_private(path: &Path, folder: bool, metadata: &fs::Metadata) -> Result<()> {
    use std::os::unix::fs::MetadataExt as _;

    use crate::error::CacheExposure;
    let refuse = |exposure| Err(Error::CacheNotPrivate { path: path.to_path_buf(), exposure });
    let mode = metadata.mode();
    if mode & 0o022 != 0 {
        return refuse(CacheExposure::Writable { mode: mode & 0o7777, folder });
    }
    let me = rustix::process::geteuid().as_raw();
    if metadata.uid() != me {
        return refuse(CacheExposure::OtherOwner { owner: metadata.uid(), me });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _folder: bool, _metadata: &fs::Metadata) -> Result<()> {
    Ok(())
}

fn with_lock<T>(path: &Path, body: impl FnOnce() -> Result<T>) -> Result<T> {
    let io_err = |p: &Path, e: io::Error| Error::Cache { path: p.to_path_buf(), source: e };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(|e| io_err(dir, e))?;
    }
    let mut lock_name = path.file_name().unwrap_or_default().to_os_string();
    lock_name.push(".lock");
    let lock_path = path.with_file_name(lock_name);
    let lock = private_options().read(true).write(true).create(true).truncate(false).open(&lock_path);
    let lock = lock.map_err(|e| io_err(&lock_path, e))?;
    lock.lock().map_err(|e| io_err(&lock_path, e))?;
    let result = body();
    // Closing the file releases the lock too; unlock explicitly to make the order obvious.
    let _ = lock.unlock();
    result
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Write `bytes` to `path` so that readers see the old content or the new, never a mix.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let written = (|| {
        let mut f = private_options().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    // Make the rename itself durable (best effort: not every platform can fsync a directory).
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn private_options() -> OpenOptions {
    #[allow(unused_mut)] // `mut` is needed on unix only
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn cache_dir_rules() {
        let check = |vars: &[(&str, &str)], expected: Option<&str>| {
            assert_eq!(default_cache_dir(env(vars)), expected.map(PathBuf::from), "{vars:?}");
        };
        check(&[("XDG_CACHE_HOME", "/x/cache"), ("HOME", "/home/a")], Some("/x/cache/cba"));
        check(&[("XDG_CACHE_HOME", "relative"), ("HOME", "/home/a")], Some("/home/a/.cache/cba"));
        check(&[("XDG_CACHE_HOME", ""), ("HOME", "/home/a")], Some("/home/a/.cache/cba"));
        check(&[("HOME", "/home/a")], Some("/home/a/.cache/cba"));
        check(&[], None);
    }

    #[test]
    fn key_normalises_case_but_not_scope() {
        let a = Authority::new("https://login.microsoftonline.com").unwrap();
        let k1 = CacheKey::new(&a, "Contoso.onmicrosoft.com", "ABC", "https://x/.default", "ab12");
        let k2 = CacheKey::new(&a, "contoso.onmicrosoft.com", "abc", "https://x/.default", "AB12");
        assert_eq!(k1, k2);
        assert_ne!(k1, CacheKey::new(&a, "contoso.onmicrosoft.com", "abc", "https://y/.default", "AB12"));
    }
}
