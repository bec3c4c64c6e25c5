//! `cba cert new` / `cba cert show` as a user runs them.

use std::fs;

use super::{APP, Tenant, assert_code, cba, json, mode, run, stderr, stdout};

/// Run openssl in `dir` (required: .ci/run installs it; never skipped).
fn openssl(args: &[&str], dir: &std::path::Path) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl is required by these tests ({e})"));
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

const JSON_KEYS: &[&str] = &[
    "subject",
    "issuer",
    "serial",
    "not_before",
    "not_after",
    "days_left",
    "key_type",
    "key_bits",
    "thumbprint_sha1",
    "thumbprint_sha256",
    "x5t",
    "x5t_s256",
    "has_private_key",
    "key_matches",
    "pfx_format",
    "files",
];

#[test]
fn new_writes_pfx_and_cer_with_private_modes_and_reports_json() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        cba()
            .args(["cert", "new", "--name", "exo", "--pem", "--output", "json", "--out-dir"])
            .arg(dir.path())
            .env("CBA_PFX_PASSWORD", "pw-1"),
        None,
    );
    assert_code(&o, 0);
    let doc = json(&o);
    for key in JSON_KEYS {
        assert!(doc.get(key).is_some(), "missing key {key} in {doc}");
    }
    assert_eq!(doc["subject"], "CN=exo");
    assert_eq!(doc["pfx_format"], "modern");
    assert_eq!(doc["key_bits"], 2048);
    assert_eq!(doc["has_private_key"], true);
    assert_eq!(doc["key_matches"], true);
    let pfx = dir.path().join("exo.pfx");
    assert_eq!(doc["files"]["pfx"], pfx.display().to_string());
    assert_eq!(mode(&pfx), 0o600);
    assert_eq!(mode(&dir.path().join("exo.pem")), 0o600);
    assert_eq!(mode(&dir.path().join("exo.cer")), 0o644);
    assert!(stderr(&o).is_empty(), "nothing on stderr: {}", stderr(&o));
    // No temp files left behind.
    let names: Vec<_> =
        fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names.len(), 3, "{names:?}");

    // `show` reads it back with the same facts.
    let shown = run(cba().args(["cert", "show", "--output", "json"]).arg(&pfx).env("CBA_PFX_PASSWORD", "pw-1"), None);
    assert_code(&shown, 0);
    assert_eq!(json(&shown)["thumbprint_sha1"], doc["thumbprint_sha1"]);
    let cer = run(cba().args(["cert", "show", "--output", "json"]).arg(dir.path().join("exo.cer")), None);
    assert_code(&cer, 0);
    assert_eq!(json(&cer)["has_private_key"], false);
    assert_eq!(json(&cer)["pfx_format"], serde_json::Value::Null);
}

#[test]
fn never_overwrites_without_force_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let make = |extra: &[&str]| {
        run(cba().args(["cert", "new", "--name", "a", "--no-password", "--out-dir"]).arg(dir.path()).args(extra), None)
    };
    assert_code(&make(&[]), 0);
    let before = fs::read(dir.path().join("a.pfx")).unwrap();
    let o = make(&[]);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("already exists") && stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(fs::read(dir.path().join("a.pfx")).unwrap(), before, "untouched");
    // Only the .cer exists: still refused, and the .pfx is not created on its own.
    fs::remove_file(dir.path().join("a.pfx")).unwrap();
    assert_code(&make(&[]), 3);
    assert!(!dir.path().join("a.pfx").exists(), "no partial set");
    assert_code(&make(&["--force"]), 0);
    assert_ne!(fs::read(dir.path().join("a.pfx")).unwrap(), before);
}

#[test]
fn passwords_come_from_file_env_or_stdin_never_argv() {
    let dir = tempfile::tempdir().unwrap();
    let pwfile = dir.path().join("pw.txt");
    fs::write(&pwfile, "from-file\n").unwrap();
    let o = run(
        cba().args(["cert", "new", "--name", "f", "--out-dir"]).arg(dir.path()).arg("--password-file").arg(&pwfile),
        None,
    );
    assert_code(&o, 0);
    let o =
        run(cba().args(["cert", "show"]).arg(dir.path().join("f.pfx")).arg("--password-stdin"), Some("from-file\n"));
    assert_code(&o, 0);
    let o = run(
        cba().args(["cert", "show", "--password-env", "MY_PW"]).arg(dir.path().join("f.pfx")).env("MY_PW", "from-file"),
        None,
    );
    assert_code(&o, 0);
    let o = run(
        cba()
            .args(["cert", "show"])
            .arg(dir.path().join("f.pfx"))
            .env("AZURE_CLIENT_CERTIFICATE_PASSWORD", "from-file"),
        None,
    );
    assert_code(&o, 0);
    // Wrong password: exit 3, names the file, no secret echoed.
    let o =
        run(cba().args(["cert", "show"]).arg(dir.path().join("f.pfx")).env("CBA_PFX_PASSWORD", "nope-secret"), None);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("f.pfx") && stderr(&o).contains("wrong password"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("nope-secret"));
    // No source, no terminal: fail naming the options.
    let o = run(cba().args(["cert", "new", "--name", "g", "--out-dir"]).arg(dir.path()), None);
    assert_code(&o, 3);
    for option in ["CBA_PFX_PASSWORD", "--password-file", "--password-stdin", "--no-password"] {
        assert!(stderr(&o).contains(option), "{option} missing from: {}", stderr(&o));
    }
    assert!(!dir.path().join("g.pfx").exists());
    // There is no --password flag taking the secret itself.
    let o = run(cba().args(["cert", "new", "--name", "h", "--password", "x"]), None);
    assert_code(&o, 2);
}

#[test]
fn legacy_format_and_validity_rules() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        cba()
            .args([
                "cert",
                "new",
                "--name",
                "l",
                "--pfx-format",
                "legacy",
                "--years",
                "2",
                "--key-size",
                "3072",
                "--no-password",
                "--output",
                "json",
                "--out-dir",
            ])
            .arg(dir.path()),
        None,
    );
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["pfx_format"], "legacy");
    assert_eq!(doc["key_bits"], 3072);
    assert!(doc["days_left"].as_i64().unwrap() >= 729);
    let shown = run(cba().args(["cert", "show", "--output", "json"]).arg(dir.path().join("l.pfx")), None);
    assert_code(&shown, 0);
    assert_eq!(json(&shown)["pfx_format"], "legacy");

    let o = run(
        cba().args(["cert", "new", "--name", "x", "--years", "11", "--no-password", "--out-dir"]).arg(dir.path()),
        None,
    );
    assert_code(&o, 3);
    assert!(stderr(&o).contains("at most 10 years"), "{}", stderr(&o));
    let o = run(cba().args(["cert", "new", "--name", "x", "--days", "3", "--years", "1"]), None);
    assert_code(&o, 2);
    let o = run(cba().args(["cert", "new", "--name", "x", "--key-size", "1024"]), None);
    assert_code(&o, 2);
}

#[test]
fn bad_files_get_their_own_message_and_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let id = cba_cert::generate(&cba_cert::NewCertificate::new("t")).unwrap();
    let expired = cba_cert::generate(
        &cba_cert::NewCertificate::new("old")
            .validity(cba_cert::Validity::Days(1))
            .now(time::macros::datetime!(2021-01-01 00:00 UTC)),
    )
    .unwrap();
    let pfx = id.to_pfx(None, cba_cert::PfxFormat::Modern).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated.pfx", pfx[..pfx.len() / 2].to_vec(), "corrupt or truncated"),
        ("empty.cer", Vec::new(), "empty"),
        ("text.cer", b"just some words".to_vec(), "-----BEGIN"),
        ("expired.cer", expired.certificate.der().to_vec(), "expired on 2021-01-02"),
        ("key-only.pem", id.private_key.as_ref().unwrap().pkcs8_pem().as_bytes().to_vec(), "without its certificate"),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        let o = run(cba().args(["cert", "show"]).arg(&path), None);
        assert_code(&o, 3);
        assert!(stderr(&o).contains(name) && stderr(&o).contains(expected), "{name}: {}", stderr(&o));
    }
    // The library says what is wrong; the CLI says which command fixes it.
    let o = run(cba().args(["cert", "show"]).arg(dir.path().join("expired.cer")), None);
    assert!(stderr(&o).contains("`cba cert rotate`"), "{}", stderr(&o));
    let o = run(cba().args(["cert", "show"]).arg(dir.path().join("missing.pfx")), None);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("missing.pfx") && stderr(&o).contains("check the path"), "{}", stderr(&o));
    let o = run(
        cba().args(["cert", "new", "--name", "z", "--no-password", "--out-dir"]).arg(dir.path().join("nope")),
        None,
    );
    assert_code(&o, 3);
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
}

#[test]
fn unwritable_folder_is_reported_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    fs::create_dir(&ro).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o500)).unwrap();
    // root ignores directory modes (CI runs as root); sysfs refuses new files even to root.
    let target = if fs::write(ro.join("probe"), b"").is_ok() { std::path::PathBuf::from("/sys") } else { ro };
    let o = run(cba().args(["cert", "new", "--name", "z", "--no-password", "--out-dir"]).arg(&target), None);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("not writable"), "{}", stderr(&o));
    assert!(!target.join("z.pfx").exists() && !target.join("z.cer").exists());
}

#[test]
fn text_output_is_for_people_and_warns_near_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        cba().args(["cert", "new", "--name", "soon", "--days", "10", "--no-password", "--out-dir"]).arg(dir.path()),
        None,
    );
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("thumbprint (SHA-1)") && out.contains("9 days left"), "{out}");
    assert!(stderr(&o).contains("warning: the certificate expires in 9 days"), "{}", stderr(&o));
    assert!(!stderr(&o).contains('\x1b'), "no colour without a terminal");
}

#[test]
fn an_output_format_the_command_cannot_print_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        cba().args(["cert", "new", "--name", "n", "--no-password", "--output", "csv", "--out-dir"]).arg(dir.path()),
        None,
    );
    assert_code(&o, 2);
    assert!(stderr(&o).contains("`cba cert` cannot print --output csv; use text or json"), "{}", stderr(&o));
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "no certificate written");
}

#[test]
fn help_has_examples_and_completions_generate() {
    let o = run(cba().args(["cert", "new", "--help"]), None);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("Examples:"));
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let o = run(cba().args(["completions", shell]), None);
        assert_code(&o, 0);
        assert!(stdout(&o).contains("cert"), "{shell}");
    }
}

#[test]
fn an_empty_password_from_stdin_is_refused_unless_no_password_is_said() {
    let dir = tempfile::tempdir().unwrap();
    for input in ["", "\n", "\r\n"] {
        let o = run(
            cba().args(["cert", "new", "--name", "e", "--password-stdin", "--out-dir"]).arg(dir.path()),
            Some(input),
        );
        assert_code(&o, 3);
        assert!(stderr(&o).contains("empty") && stderr(&o).contains("--no-password"), "{input:?}: {}", stderr(&o));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "{input:?}: nothing written");
    }
    // Saying so is the way to an unprotected PFX.
    let o = run(cba().args(["cert", "new", "--name", "e", "--no-password", "--out-dir"]).arg(dir.path()), None);
    assert_code(&o, 0);
    // Opening with an empty stdin password is refused the same way (like an empty --password-file).
    let o = run(cba().args(["cert", "show", "--password-stdin"]).arg(dir.path().join("e.pfx")), Some("\n"));
    assert_code(&o, 3);
    assert!(stderr(&o).contains("empty"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_refuses_an_empty_password_from_stdin() {
    let t = Tenant::start(cba_sim::SimTenant::builder()).await;
    let args = ["setup", "--tenant", t.sim.tenant_domain(), "--name", APP, "--password-stdin", "--wait", "10s"];
    let o = run(&mut t.cmd(&args), Some("\n"));
    assert_code(&o, 3);
    assert!(stderr(&o).contains("--no-password"), "{}", stderr(&o));
    assert!(!t.dir.path().join(format!("{APP}.pfx")).exists(), "no unprotected PFX");
}

#[test]
fn pfx_failures_say_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    // An RSA-1024 PFX: the key is too small, not "corrupt".
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:1024",
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "c.pem",
            "-days",
            "3",
            "-subj",
            "/CN=small",
        ],
        dir.path(),
    );
    openssl(
        &["pkcs12", "-export", "-in", "c.pem", "-inkey", "k.pem", "-out", "small.pfx", "-passout", "pass:pw"],
        dir.path(),
    );
    let o = run(cba().args(["cert", "show"]).arg(dir.path().join("small.pfx")).env("CBA_PFX_PASSWORD", "pw"), None);
    assert_code(&o, 3);
    let err = stderr(&o);
    assert!(err.contains("small.pfx") && err.contains("too small (1024-bit)") && err.contains("2048"), "{err}");
    assert!(!err.contains("corrupt") && !err.contains("TooSmall"), "{err}");

    // One changed byte in the integrity check: with the right password that is damage, not the password.
    let id = cba_cert::generate(&cba_cert::NewCertificate::new("d")).unwrap();
    let pfx = id.to_pfx(Some(&cba_cert::Password::new("pw")), cba_cert::PfxFormat::Modern).unwrap();
    let mac = (0..pfx.len() - 34).rev().find(|&i| pfx[i] == 0x04 && pfx[i + 1] == 0x20).unwrap() + 2;
    let mut damaged = pfx.clone();
    damaged[mac + 3] ^= 0x40;
    let path = dir.path().join("damaged.pfx");
    fs::write(&path, &damaged).unwrap();
    let o = run(cba().args(["cert", "show"]).arg(&path).env("CBA_PFX_PASSWORD", "pw"), None);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("damaged") && !stderr(&o).contains("wrong password"), "{}", stderr(&o));
    // With another password PKCS#12 cannot tell, and says both.
    let o = run(cba().args(["cert", "show"]).arg(&path).env("CBA_PFX_PASSWORD", "other"), None);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("wrong password, or the PKCS#12 file is damaged"), "{}", stderr(&o));
}

#[test]
fn an_out_dir_that_is_a_file_is_called_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file.pfx");
    fs::write(&file, b"x").unwrap();
    let o = run(cba().args(["cert", "new", "--name", "n", "--no-password", "--out-dir"]).arg(&file), None);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("is a file, not a folder") && stderr(&o).contains("file.pfx"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("does not exist"), "{}", stderr(&o));
}
