//! The token cache: hits, renewal, expiry, damaged files, file safety, sharing between instances and processes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use cba_token::{AccessToken, CacheExposure, CacheKey, CertFileStamp, ClientCertificate, Error, Resource, TokenCache};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use crate::support::*;

async fn serve(server: &MockServer, script: &Script) {
    Mock::given(method("POST")).and(path(TOKEN_PATH)).respond_with(script.clone()).mount(server).await;
}

#[tokio::test]
async fn second_call_is_a_cache_hit_without_network() {
    let server = MockServer::start().await;
    let script = Script::new(vec![token_ok(1, 3599), token_ok(2, 3599)]);
    serve(&server, &script).await;
    let clock = clock();
    let client = client(&server.uri(), &clock, Some(TokenCache::in_memory()));
    let first = client.get_token(&cert(), &Resource::Exchange).await.unwrap();
    let second = client.get_token(&cert(), &Resource::Exchange).await.unwrap();
    assert!(!first.from_cache);
    assert!(second.from_cache);
    assert_eq!(second.secret(), first.secret());
    assert_eq!(second.expires_on, first.expires_on);
    assert_eq!(script.count(), 1);

    // Another scope is another key.
    let graph = client.get_token(&cert(), &Resource::Graph).await.unwrap();
    assert!(!graph.from_cache);
    assert_eq!(script.count(), 2);
}

#[tokio::test]
async fn renewed_with_under_five_minutes_left_and_after_expiry() {
    let server = MockServer::start().await;
    let script = Script::new(vec![token_ok(1, 600), token_ok(2, 600), token_ok(3, 600)]);
    serve(&server, &script).await;
    let clock = clock();
    let client = client(&server.uri(), &clock, Some(TokenCache::in_memory()));
    let cert = cert();
    let get = || client.get_token(&cert, &Resource::Exchange);

    assert_eq!(get().await.unwrap().secret(), access_token(1));
    clock.advance(Duration::from_secs(299)); // 301 s left: still good
    assert!(get().await.unwrap().from_cache);
    clock.advance(Duration::from_secs(2)); // 299 s left: renew
    let renewed = get().await.unwrap();
    assert_eq!((renewed.secret(), renewed.from_cache), (access_token(2).as_str(), false));
    clock.advance(Duration::from_secs(3600)); // long expired
    assert_eq!(get().await.unwrap().secret(), access_token(3));
    assert_eq!(script.count(), 3);
}

#[tokio::test]
async fn another_certificate_is_another_key() {
    let server = MockServer::start().await;
    let script = Script::new(vec![token_ok(1, 3599), token_ok(2, 3599)]);
    serve(&server, &script).await;
    let client = client(&server.uri(), &clock(), Some(TokenCache::in_memory()));
    let other = ClientCertificate::new(other_identity(), TENANT, CLIENT_ID).unwrap();
    client.get_token(&cert(), &Resource::Exchange).await.unwrap();
    let t = client.get_token(&other, &Resource::Exchange).await.unwrap();
    assert_eq!(t.secret(), access_token(2));
}

#[tokio::test]
async fn the_file_is_private_and_shared_with_a_new_instance() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sub/cba/tokens.json");
    let server = MockServer::start().await;
    let script = Script::new(vec![token_ok(1, 3599)]);
    serve(&server, &script).await;
    let clock = clock();
    client(&server.uri(), &clock, Some(TokenCache::with_file(&file)))
        .get_token(&cert(), &Resource::Exchange)
        .await
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
    }
    let leftovers: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");

    // A fresh instance (another process, in effect) finds the token without the network.
    let t = client(&server.uri(), &clock, Some(TokenCache::with_file(&file)))
        .get_token(&cert(), &Resource::Exchange)
        .await
        .unwrap();
    assert!(t.from_cache);
    assert_eq!(t.secret(), access_token(1));
    assert_eq!(script.count(), 1);
}

#[tokio::test]
async fn a_damaged_file_is_ignored_and_rewritten() {
    for garbage in [&b"{ this is not json"[..], b"", b"\x00\xff\xfe", br#"{"version": 0, "tokens": {}}"#, br#"[1,2,3]"#]
    {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.json");
        write_private(&file, garbage);
        let server = MockServer::start().await;
        let script = Script::new(vec![token_ok(1, 3599)]);
        serve(&server, &script).await;
        let clock = clock();
        let t = client(&server.uri(), &clock, Some(TokenCache::with_file(&file)))
            .get_token(&cert(), &Resource::Exchange)
            .await
            .unwrap();
        assert!(!t.from_cache);
        let text = std::fs::read_to_string(&file).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).expect("rewritten as JSON");
        assert_eq!(json["version"], 1);
        assert_eq!(json["tokens"].as_object().unwrap().len(), 1, "{garbage:?}");
        let again = client(&server.uri(), &clock, Some(TokenCache::with_file(&file)))
            .get_token(&cert(), &Resource::Exchange)
            .await
            .unwrap();
        assert!(again.from_cache);
    }
}

/// Write a file the way the cache would (0600), whatever the umask.
fn write_private(file: &Path, bytes: &[u8]) {
    std::fs::write(file, bytes).unwrap();
    #[cfg(unix)]
    set_mode(file, 0o600);
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn key(thumbprint: &str) -> CacheKey {
    let a = cba_token::Authority::new("https://login.microsoftonline.com").unwrap();
    CacheKey::new(&a, TENANT, CLIENT_ID, EXO_SCOPE, thumbprint)
}

/// A cache file holding a token for `key("AA")`, as another process (or an attacker) would leave it.
fn planted_cache(file: &Path, secret: &str) {
    let at = now();
    let writer = TokenCache::with_file(file);
    writer.put(&key("AA"), &AccessToken::new(secret, "Bearer", at + time::Duration::hours(1), EXO_SCOPE), at).unwrap();
}

#[cfg(unix)]
#[test]
fn a_cache_folder_or_file_others_can_write_is_neither_read_nor_written() {
    for (target_is_folder, mode) in [(true, 0o777), (true, 0o770), (false, 0o666), (false, 0o620)] {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("cba");
        let file = folder.join("tokens.json");
        planted_cache(&file, "planted");
        let target = if target_is_folder { folder.clone() } else { file.clone() };
        set_mode(&target, mode);
        let before = std::fs::read(&file).unwrap();

        let cache = TokenCache::with_file(&file);
        let err = cache.check().unwrap_err();
        let Error::CacheNotPrivate { path, exposure } = &err else { panic!("{mode:o}: {err:?}") };
        assert_eq!(path, &target);
        assert_eq!(*exposure, CacheExposure::Writable { mode, folder: target_is_folder });
        assert_eq!(err.kind(), cba_token::ErrorKind::Input);
        let shown = err.to_string();
        let fix = if target_is_folder { "chmod 700" } else { "chmod 600" };
        assert!(shown.contains(&target.display().to_string()) && shown.contains(fix), "{shown}");

        assert!(cache.get(&key("AA"), now()).is_none(), "{mode:o}: a token from an exposed cache was used");
        let at = now();
        let mine = AccessToken::new("mine", "Bearer", at + time::Duration::hours(1), EXO_SCOPE);
        let refused = cache.put(&key("BB"), &mine, at).unwrap_err();
        assert!(matches!(refused, Error::CacheNotPrivate { .. }), "{refused:?}");
        assert_eq!(std::fs::read(&file).unwrap(), before, "{mode:o}: the exposed file was rewritten");
    }
}

#[cfg(unix)]
#[test]
fn a_cache_owned_by_another_user_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("cba");
    let file = folder.join("tokens.json");
    planted_cache(&file, "planted");
    // Only root can give a file away; as another user this checks that our own files pass.
    if std::os::unix::fs::chown(&file, Some(54321), None).is_err() {
        TokenCache::with_file(&file).check().unwrap();
        return;
    }
    let cache = TokenCache::with_file(&file);
    let err = cache.check().unwrap_err();
    assert!(
        matches!(&err, Error::CacheNotPrivate { path, exposure: CacheExposure::OtherOwner { owner: 54321, .. } } if path == &file),
        "{err:?}"
    );
    assert!(err.to_string().contains("another user"), "{err}");
    assert!(cache.get(&key("AA"), now()).is_none());
    std::os::unix::fs::chown(&folder, Some(54321), None).unwrap();
    assert!(matches!(
        TokenCache::with_file(&file).check(),
        Err(Error::CacheNotPrivate { exposure: CacheExposure::OtherOwner { .. }, .. })
    ));
}

#[tokio::test]
async fn a_newer_cache_format_is_a_miss_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    // A layout this version does not know, with tokens it must not destroy.
    let newer = br#"{"version": 2, "tokens": [{"key": "k", "sealed": "..."}]}"#;
    write_private(&file, newer);
    let cache = TokenCache::with_file(&file);
    let err = cache.check().unwrap_err();
    assert!(matches!(&err, Error::CacheNewerFormat { path, found: 2, supported: 1 } if path == &file), "{err:?}");
    assert!(err.to_string().contains("left untouched"), "{err}");

    let server = MockServer::start().await;
    let script = Script::new(vec![token_ok(1, 3599), token_ok(2, 3599)]);
    serve(&server, &script).await;
    let clock = clock();
    let t = client(&server.uri(), &clock, Some(cache)).get_token(&cert(), &Resource::Exchange).await.unwrap();
    assert!(!t.from_cache, "the token still comes, from the network");
    assert_eq!(std::fs::read(&file).unwrap(), newer, "not overwritten");
    let at = now();
    let put = TokenCache::with_file(&file).put(
        &key("AA"),
        &AccessToken::new("x", "Bearer", at + time::Duration::hours(1), EXO_SCOPE),
        at,
    );
    assert!(matches!(put, Err(Error::CacheNewerFormat { .. })), "{put:?}");
    assert_eq!(std::fs::read(&file).unwrap(), newer);
    // Clearing is an explicit request: it removes the file.
    TokenCache::with_file(&file).clear().unwrap();
    assert!(!file.exists());
}

#[test]
fn expired_entries_are_dropped_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let cache = TokenCache::with_file(&file);
    let a = cba_token::Authority::new("https://login.microsoftonline.com").unwrap();
    let at = now();
    let old = cba_token::AccessToken::new("old", "Bearer", at + time::Duration::minutes(10), EXO_SCOPE);
    let new = cba_token::AccessToken::new("new", "Bearer", at + time::Duration::hours(2), EXO_SCOPE);
    cache.put(&CacheKey::new(&a, TENANT, CLIENT_ID, EXO_SCOPE, "AA"), &old, at).unwrap();
    cache.put(&CacheKey::new(&a, TENANT, CLIENT_ID, EXO_SCOPE, "BB"), &new, at + time::Duration::hours(1)).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let tokens = json["tokens"].as_object().unwrap();
    assert_eq!(tokens.len(), 1);
    assert!(tokens.keys().next().unwrap().ends_with("|BB"));
}

#[test]
fn clear_forgets_memory_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let cache = TokenCache::with_file(&file);
    let a = cba_token::Authority::new("https://login.microsoftonline.com").unwrap();
    let key = CacheKey::new(&a, TENANT, CLIENT_ID, EXO_SCOPE, "AA");
    let at = now();
    cache.put(&key, &cba_token::AccessToken::new("t", "Bearer", at + time::Duration::hours(1), EXO_SCOPE), at).unwrap();
    assert!(cache.get(&key, at).is_some());
    cache.clear().unwrap();
    assert!(!file.exists());
    assert!(cache.get(&key, at).is_none());
    cache.clear().unwrap(); // clearing twice is fine
}

#[test]
fn remove_and_remove_app_forget_only_those_tokens_in_memory_and_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let cache = TokenCache::with_file(&file);
    let login = cba_token::Authority::new("https://login.microsoftonline.com").unwrap();
    let other_cloud = cba_token::Authority::new("https://login.microsoftonline.us").unwrap();
    let at = now();
    let token = |s: &str| AccessToken::new(s, "Bearer", at + time::Duration::hours(1), EXO_SCOPE);
    let other_app = "0b9a3e5c-1111-4222-8333-444455556666";
    let keys = [
        CacheKey::new(&login, TENANT, CLIENT_ID, EXO_SCOPE, "AA"),
        CacheKey::new(&login, TENANT, CLIENT_ID, "https://graph.microsoft.com/.default", "AA"),
        CacheKey::new(&login, TENANT, CLIENT_ID, EXO_SCOPE, "BB"),
        CacheKey::new(&login, TENANT, other_app, EXO_SCOPE, "AA"),
        CacheKey::new(&login, "fabrikam.onmicrosoft.com", CLIENT_ID, EXO_SCOPE, "AA"),
        CacheKey::new(&other_cloud, TENANT, CLIENT_ID, EXO_SCOPE, "AA"),
    ];
    for (i, k) in keys.iter().enumerate() {
        cache.put(k, &token(&format!("t{i}")), at).unwrap();
    }

    cache.remove(&keys[0]).unwrap();
    assert!(cache.get(&keys[0], at).is_none());
    // Not in the file either: a new instance (another process) misses too.
    let fresh = TokenCache::with_file(&file);
    assert!(fresh.get(&keys[0], at).is_none());
    assert!(fresh.get(&keys[2], at).is_some());
    cache.remove(&keys[0]).unwrap(); // removing a missing key is fine

    // Every scope and certificate of the app in that tenant and cloud; case does not matter.
    let removed = cache.remove_app(&login, &TENANT.to_ascii_uppercase(), &CLIENT_ID.to_ascii_uppercase()).unwrap();
    assert_eq!(removed, 2);
    let fresh = TokenCache::with_file(&file);
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(cache.get(k, at).is_some(), i >= 3, "memory, key {i}");
        assert_eq!(fresh.get(k, at).is_some(), i >= 3, "file, key {i}");
    }
    assert_eq!(cache.remove_app(&login, TENANT, CLIENT_ID).unwrap(), 0, "twice is fine");

    // An in-memory cache forgets too; a missing file is not created.
    let memory = TokenCache::in_memory();
    memory.put(&keys[0], &token("m"), at).unwrap();
    assert_eq!(memory.remove_app(&login, TENANT, CLIENT_ID).unwrap(), 1);
    assert!(memory.get(&keys[0], at).is_none());
    let absent = dir.path().join("absent").join("tokens.json");
    assert_eq!(TokenCache::with_file(&absent).remove_app(&login, TENANT, CLIENT_ID).unwrap(), 0);
    assert!(!absent.parent().unwrap().exists());
}

#[test]
fn certificate_stamps_find_the_thumbprint_until_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let pfx = dir.path().join("app.pfx");
    std::fs::write(&pfx, b"pfx bytes").unwrap();
    let stamp = CertFileStamp::from_metadata(&pfx, &std::fs::metadata(&pfx).unwrap()).unwrap();
    TokenCache::with_file(&file).remember_cert(&stamp, "ab12").unwrap();

    let fresh = TokenCache::with_file(&file);
    assert_eq!(fresh.cert_thumbprint(&stamp).as_deref(), Some("AB12"));
    std::fs::write(&pfx, b"other, longer pfx bytes").unwrap();
    let changed = CertFileStamp::from_metadata(&pfx, &std::fs::metadata(&pfx).unwrap()).unwrap();
    assert_eq!(fresh.cert_thumbprint(&changed), None);
    let moved = CertFileStamp::new(&dir.path().join("elsewhere.pfx"), 9, std::time::SystemTime::now());
    assert_eq!(fresh.cert_thumbprint(&moved), None);
}

const WRITERS: usize = 8;
const PER_WRITER: usize = 10;

fn write_entries(file: &Path, writer: usize) {
    let cache = TokenCache::with_file(file);
    let a = cba_token::Authority::new("https://login.microsoftonline.com").unwrap();
    let at = now();
    for i in 0..PER_WRITER {
        let key = CacheKey::new(&a, &format!("tenant-{writer}"), CLIENT_ID, EXO_SCOPE, &format!("{i:02X}"));
        let token = cba_token::AccessToken::new(
            format!("token-{writer}-{i}"),
            "Bearer",
            at + time::Duration::hours(1),
            EXO_SCOPE,
        );
        cache.put(&key, &token, at).unwrap();
    }
}

fn assert_all_entries(file: &Path, writers: usize) {
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    assert_eq!(json["tokens"].as_object().unwrap().len(), writers * PER_WRITER, "a writer lost another's entries");
    let reader = TokenCache::with_file(file);
    let a = cba_token::Authority::new("https://login.microsoftonline.com").unwrap();
    for w in 0..writers {
        for i in 0..PER_WRITER {
            let key = CacheKey::new(&a, &format!("tenant-{w}"), CLIENT_ID, EXO_SCOPE, &format!("{i:02X}"));
            assert_eq!(reader.get(&key, now()).unwrap().secret(), format!("token-{w}-{i}"));
        }
    }
}

#[test]
fn threads_with_their_own_instances_share_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let file = &file;
            s.spawn(move || write_entries(file, w));
        }
    });
    assert_all_entries(&file, WRITERS);
}

const CHILD_FILE: &str = "CBA_TOKEN_IT_CACHE_FILE";
const CHILD_WRITER: &str = "CBA_TOKEN_IT_CACHE_WRITER";

/// Not a test by itself: the body of the child processes of `processes_share_one_file`.
#[test]
#[ignore = "helper run as a child process by processes_share_one_file"]
fn cache_writer_child() {
    let (Ok(file), Ok(writer)) = (std::env::var(CHILD_FILE), std::env::var(CHILD_WRITER)) else { return };
    write_entries(Path::new(&file), writer.parse().unwrap());
}

#[test]
fn processes_share_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|w| {
            Command::new(&exe)
                .args(["--exact", "cache::cache_writer_child", "--ignored", "--quiet"])
                .env(CHILD_FILE, &file)
                .env(CHILD_WRITER, w.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"), "the child ran no test");
    }
    assert_all_entries(&file, 4);
}
