//! `--key pkcs11:…`: keys generated in a real SoftHSM2 token, used by `cba cert` and `cba token` against the
//! simulated tenant. Each test makes its own token folder and hands it to the `cba` child through SOFTHSM2_CONF
//! (a module is initialised once per process, so the child is where the token is opened). SoftHSM2 is required:
//! without it these tests fail and say that `.ci/run` installs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{assert_code, cba, json, run, stderr, stdout};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "1234";
const URI: &str = "pkcs11:token=cba;object=e2e";

/// A fresh SoftHSM2 token labelled `cba` (user PIN 1234) in a folder of its own, where `cba` runs.
struct Hsm {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

fn hsm() -> Hsm {
    let missing = |what: &str| {
        format!(
            "SoftHSM2 is required by these tests and {what}; run .ci/run, which installs the Debian package softhsm2"
        )
    };
    assert!(Path::new(MODULE).exists(), "{}", missing(&format!("{MODULE} is missing")));
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
    )
    .unwrap();
    let init = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", "cba", "--pin", PIN, "--so-pin", "5678"])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap_or_else(|e| panic!("{}", missing(&format!("softhsm2-util does not run ({e})"))));
    assert!(init.status.success(), "softhsm2-util --init-token failed: {}", String::from_utf8_lossy(&init.stderr));
    Hsm { dir, conf }
}

impl Hsm {
    /// `cba ARGS` in the folder, with this token, the module from CBA_PKCS11_MODULE and `pin` (if any) from
    /// CBA_PKCS11_PIN.
    fn cba(&self, args: &[&str], pin: Option<&str>) -> Output {
        let mut cmd = cba();
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .env("SOFTHSM2_CONF", &self.conf)
            .env("CBA_PKCS11_MODULE", MODULE);
        if let Some(pin) = pin {
            cmd.env("CBA_PKCS11_PIN", pin);
        }
        run(&mut cmd, None)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

#[test]
fn e2e_pkcs11_cert_new_makes_a_non_extractable_key_and_a_rerun_reuses_it() {
    let h = hsm();
    let o = h.cba(&["cert", "new", "--name", "e2e", "--key", URI, "--output", "json"], Some(PIN));
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["token_key"]["label"], "e2e");
    assert_eq!(doc["token_key"]["sensitive"], true, "{doc}");
    assert_eq!(doc["token_key"]["extractable"], false, "{doc}");
    assert_eq!(doc["token_key"]["reused"], false);
    assert_eq!(doc["has_private_key"], true);
    assert_eq!(doc["files"]["pfx"], serde_json::Value::Null);
    assert!(!h.path("e2e.pfx").exists(), "no PFX: the key never leaves the token");
    let der = std::fs::read(h.path("e2e.cer")).unwrap();
    let cer = cba_cert::Certificate::from_der(&der).unwrap();
    assert_eq!(doc["thumbprint_sha1"], cer.thumbprint_sha1_hex());

    // A rerun finds the key and certificate by label: the same certificate, nothing replaced.
    let o = h.cba(&["cert", "new", "--name", "e2e", "--key", URI, "--output", "json"], Some(PIN));
    assert_code(&o, 0);
    let again = json(&o);
    assert_eq!(again["token_key"]["reused"], true);
    assert_eq!(again["thumbprint_sha1"], doc["thumbprint_sha1"]);
    assert_eq!(again["token_key"]["id"], doc["token_key"]["id"]);
    assert_eq!(std::fs::read(h.path("e2e.cer")).unwrap(), der);

    // `cert show --key` reads the token's certificate.
    let o = h.cba(&["cert", "show", "--key", URI, "--output", "json"], Some(PIN));
    assert_code(&o, 0);
    assert_eq!(json(&o)["thumbprint_sha1"], doc["thumbprint_sha1"]);

    // --force makes a new key (another id, another certificate) and replaces the .cer.
    let o = h.cba(&["cert", "new", "--name", "e2e", "--key", URI, "--force", "--output", "json"], Some(PIN));
    assert_code(&o, 0);
    let forced = json(&o);
    assert_eq!(forced["token_key"]["reused"], false);
    assert_ne!(forced["token_key"]["id"], doc["token_key"]["id"]);
    assert_ne!(forced["thumbprint_sha1"], doc["thumbprint_sha1"]);
    assert_ne!(std::fs::read(h.path("e2e.cer")).unwrap(), der);
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_pkcs11_token_is_signed_in_the_token() {
    let h = hsm();
    assert_code(&h.cba(&["cert", "new", "--name", "e2e", "--key", URI], Some(PIN)), 0);
    let der = std::fs::read(h.path("e2e.cer")).unwrap();
    let sim = cba_sim::SimTenant::builder().start().await;
    // The simulator verifies the assertion's signature with this certificate.
    let app = sim.seed_app("e2e", &[der.as_slice()]).await;
    sim.seed_grant_manage_as_app(&app).await;
    let args = [
        "token",
        "--key",
        URI,
        "--tenant",
        sim.tenant_domain(),
        "--client-id",
        &app.app_id,
        "--authority-host",
        sim.login_url(),
        "--format",
        "json",
        "-v",
    ];
    let o = h.cba(&args, Some(PIN));
    assert_code(&o, 0);
    assert_eq!(json(&o)["claims"]["roles"][0], "Exchange.ManageAsApp");
    assert_eq!(json(&o)["claims"]["appid"], app.app_id.as_str());
    assert!(stderr(&o).contains("client assertion: PS256, signed with the PKCS#11 token's key"), "{}", stderr(&o));

    // Another app's key (a file certificate) is not this one: AADSTS700027.
    let other = cba_cert::generate(&cba_cert::NewCertificate::new("other")).unwrap();
    let stranger = sim.seed_app("stranger", &[other.certificate.der()]).await;
    let mut args = args;
    args[6] = &stranger.app_id;
    let o = h.cba(&args, Some(PIN));
    assert_code(&o, 4);
}

#[test]
fn e2e_pkcs11_wrong_pin_pin_value_missing_module_and_token() {
    let h = hsm();
    assert_code(&h.cba(&["cert", "new", "--name", "e2e", "--key", URI], Some(PIN)), 0);
    let before = std::fs::read(h.path("e2e.cer")).unwrap();

    // A wrong PIN: exit 3 (docs/exit-codes.md), the token named, the PIN nowhere.
    let wrong = "918273";
    for args in [
        &["cert", "show", "--key", URI][..],
        &["cert", "new", "--name", "e2e", "--key", URI, "--force"],
        &[
            "token",
            "--key",
            URI,
            "--tenant",
            "contoso.onmicrosoft.com",
            "--client-id",
            "631a96bc-a705-4eda-9f99-fdaf9f54f6a2",
        ],
    ] {
        let o = h.cba(args, Some(wrong));
        assert_code(&o, 3);
        assert!(stderr(&o).contains("wrong PIN for PKCS#11 token \"cba\""), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains(wrong) && !stdout(&o).contains(wrong), "{args:?} printed the PIN");
    }
    assert_eq!(std::fs::read(h.path("e2e.cer")).unwrap(), before, "a refused --force changed nothing");

    // The PIN in the URI is refused before anything is opened: exit 2, saying why, without the PIN.
    let with_pin = "pkcs11:token=cba;object=e2e?pin-value=4321";
    for args in [&["cert", "new", "--name", "pinned", "--key", with_pin][..], &["cert", "show", "--key", with_pin]] {
        let o = h.cba(args, None);
        assert_code(&o, 2);
        assert!(stderr(&o).contains("readable by every user"), "{}", stderr(&o));
        assert!(!stderr(&o).contains("4321"), "{}", stderr(&o));
    }
    assert!(!h.path("pinned.cer").exists());

    // A PIN file named by pin-source works without CBA_PKCS11_PIN.
    let pin_file = h.path("pin.txt");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    let from_file = format!("{URI}?pin-source=file:{}", pin_file.display());
    assert_code(&h.cba(&["cert", "show", "--key", &from_file], None), 0);

    // No PIN source and no terminal: exit 3 naming the sources.
    let o = h.cba(&["cert", "show", "--key", URI], None);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("CBA_PKCS11_PIN"), "{}", stderr(&o));

    // A module that will not load: 3, naming the path.
    let o = h.cba(&["cert", "show", "--key", URI, "--pkcs11-module", "/nonexistent/libnone.so"], Some(PIN));
    assert_code(&o, 3);
    assert!(stderr(&o).contains("/nonexistent/libnone.so"), "{}", stderr(&o));

    // A token that is not there: 3, listing the tokens that are.
    let o = h.cba(&["cert", "show", "--key", "pkcs11:token=elsewhere;object=e2e"], Some(PIN));
    assert_code(&o, 3);
    assert!(stderr(&o).contains("no PKCS#11 token \"elsewhere\"") && stderr(&o).contains("\"cba\""), "{}", stderr(&o));

    // A label with no key: 3, saying how to make one.
    let o = h.cba(&["cert", "show", "--key", "pkcs11:token=cba;object=absent"], Some(PIN));
    assert_code(&o, 3);
    assert!(stderr(&o).contains("cba cert new"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_pkcs11_setup_with_a_token_key_then_token_and_status_from_the_profile() {
    let h = hsm();
    let t = super::Tenant::start(cba_sim::SimTenant::builder()).await;
    let with_token = |args: &[&str]| {
        let mut cmd = t.cmd(args);
        cmd.env("SOFTHSM2_CONF", &h.conf).env("CBA_PKCS11_MODULE", MODULE).env("CBA_PKCS11_PIN", PIN);
        run(&mut cmd, None)
    };
    let setup = ["setup", "--tenant", t.sim.tenant_domain(), "--name", super::APP, "--key", URI, "--wait", "60s"];
    let o = with_token(&[&setup[..], &["--output", "json"]].concat());
    assert_code(&o, 0);
    let state = t.assert_one_of_each().await;
    let cer_path = t.dir.path().join(format!("{}.cer", super::APP));
    let cer = cba_cert::Certificate::from_der(&std::fs::read(&cer_path).unwrap()).unwrap();
    let app = &state.primary().applications[0];
    assert_eq!(app.key_credentials[0].thumbprint_sha1, cer.thumbprint_sha1_hex(), "the token's certificate");
    assert!(!t.dir.path().join(format!("{}.pfx", super::APP)).exists(), "no PFX: the key stays in the token");
    // The token holds that certificate beside the key (cert show reads it from there).
    let o = with_token(&["cert", "show", "--key", URI, "--output", "json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["thumbprint_sha1"], cer.thumbprint_sha1_hex().as_str());

    let text = std::fs::read_to_string(t.profile()).unwrap();
    let profile = t.profile_json();
    let key = profile["certificate"]["key"].as_str().expect("the profile records the key");
    assert!(key.starts_with("pkcs11:token=cba;object=e2e;id=%"), "{key}");
    assert_eq!(profile["certificate"]["path"], format!("{}.cer", super::APP));
    assert_eq!(profile["certificate"]["created"], true);
    assert!(!text.contains(PIN) && !text.contains("pin-"), "no PIN in the profile: {text}");

    // A dry run with another label makes nothing in the token.
    let other = "pkcs11:token=cba;object=e2e-other";
    let dry = ["setup", "--tenant", t.sim.tenant_domain(), "--name", super::APP, "--key", other, "--dry-run"];
    assert_code(&with_token(&dry), 0);
    assert_code(&with_token(&["cert", "show", "--key", other]), 3);

    // A rerun reuses the key and changes nothing.
    let o = with_token(&[&setup[..], &["--output", "json"]].concat());
    assert_code(&o, 0);
    assert_eq!(json(&o)["changed"], false, "{}", stdout(&o));
    t.assert_one_of_each().await;

    // token and status from the profile alone sign in the token.
    let profile_path = t.profile();
    let profile_arg = profile_path.to_str().unwrap();
    let o = with_token(&["token", "--profile", profile_arg, "--format", "json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["claims"]["appid"], app.app_id.as_str());
    let o = with_token(&["status", "--profile", profile_arg, "--output", "json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["ok"], true, "{}", stdout(&o));

    let o = with_token(&["exo", "check", "--profile", profile_arg, "--output", "json"]);
    assert_code(&o, 0);

    // Teardown deletes the .cer it wrote and nothing in the token.
    let o = with_token(&["teardown", "--profile", profile_arg, "--yes", "--delete-files"]);
    assert_code(&o, 0);
    t.assert_empty().await;
    assert!(!cer_path.exists());
    let o = with_token(&["cert", "show", "--key", URI, "--output", "json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["thumbprint_sha1"], cer.thumbprint_sha1_hex().as_str(), "the key and certificate stay");
}

fn app_thumbprints(state: &cba_sim::StateSnapshot) -> Vec<String> {
    let mut keys: Vec<String> =
        state.primary().applications[0].key_credentials.iter().map(|k| k.thumbprint_sha1.clone()).collect();
    keys.sort();
    keys
}

fn cer_thumbprint(path: &Path) -> String {
    cba_cert::Certificate::from_der(&std::fs::read(path).unwrap()).unwrap().thumbprint_sha1_hex()
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_pkcs11_rotate_makes_the_next_key_in_the_token_and_deletes_the_old_one_after_remove_key() {
    let h = hsm();
    let t = super::Tenant::start(cba_sim::SimTenant::builder()).await;
    let with_token = |args: &[&str]| {
        let mut cmd = t.cmd(args);
        cmd.env("SOFTHSM2_CONF", &h.conf).env("CBA_PKCS11_MODULE", MODULE).env("CBA_PKCS11_PIN", PIN);
        run(&mut cmd, None)
    };
    let setup = ["setup", "--tenant", t.sim.tenant_domain(), "--name", super::APP, "--key", URI, "--wait", "60s"];
    assert_code(&with_token(&setup), 0);
    t.assert_one_of_each().await;
    let profile_path = t.profile();
    let profile_arg = profile_path.to_str().unwrap();
    let cer_path = t.dir.path().join(format!("{}.cer", super::APP));
    let first_uri = t.profile_json()["certificate"]["key"].as_str().unwrap().to_string();
    let first = cer_thumbprint(&cer_path);

    // What a run killed after generating the next key (before it saved the profile) leaves: a key under
    // today's label, made after the current one. The rerun finds it by label and uses it.
    let today = time::OffsetDateTime::now_utc().date();
    let label = format!("e2e-{:04}{:02}{:02}", today.year(), u8::from(today.month()), today.day());
    let leftover_uri = format!("pkcs11:token=cba;object={label}");
    let o = h.cba(&["cert", "new", "--name", "leftover", "--key", &leftover_uri, "--output", "json"], Some(PIN));
    assert_code(&o, 0);
    let leftover = json(&o)["thumbprint_sha1"].as_str().unwrap().to_string();

    // --overlap 0: the next key is generated in the token, registered, proven, switched to; the old one's
    // key is removed from the app, then its key object deleted from the token.
    let o = with_token(&[
        "cert",
        "rotate",
        "--profile",
        profile_arg,
        "--overlap",
        "0",
        "--wait",
        "60s",
        "--output",
        "json",
    ]);
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["rotated"], true, "{doc}");
    assert_eq!(doc["old_removed"], true, "{doc}");
    let second = cer_thumbprint(&cer_path);
    assert_ne!(second, first, "the stable .cer holds the new certificate");
    assert_eq!(second, leftover, "the key the interrupted run made, found by its label");
    assert_eq!(doc["new_thumbprint_sha1"], second.as_str());
    assert_eq!(app_thumbprints(&t.sim.state().await), [second.as_str()], "exactly the new certificate registered");
    let profile = t.profile_json();
    let second_uri = profile["certificate"]["key"].as_str().unwrap().to_string();
    assert_ne!(second_uri, first_uri);
    assert!(second_uri.starts_with("pkcs11:token=cba;object=e2e-2"), "a dated label: {second_uri}");
    assert_eq!(profile["certificate"]["path"], format!("{}.cer", super::APP), "the stable path stays");
    assert!(profile["pending_certificate"].is_null() && profile["retired"].as_array().is_none_or(|r| r.is_empty()));
    let o = with_token(&["cert", "show", "--key", &first_uri]);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("no such key"), "the old key object is gone: {}", stderr(&o));
    let o = with_token(&["cert", "show", "--key", &second_uri, "--output", "json"]);
    assert_code(&o, 0);
    let shown = json(&o);
    assert_eq!(shown["thumbprint_sha1"], second.as_str());
    assert_eq!(shown["token_key"]["extractable"], false, "{shown}");
    assert_eq!(shown["token_key"]["sensitive"], true, "{shown}");
    let cers: Vec<_> = std::fs::read_dir(t.dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".cer"))
        .collect();
    assert_eq!(cers, [format!("{}.cer", super::APP)], "the dated .cer is deleted with the key");

    // The profile switched: token signs with the new key.
    let o = with_token(&["token", "--profile", profile_arg, "--format", "json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["claims"]["roles"][0], "Exchange.ManageAsApp");

    // --overlap 7d: the old key stays in the token and registered until a later run past the overlap.
    let o = with_token(&[
        "cert",
        "rotate",
        "--profile",
        profile_arg,
        "--overlap",
        "7d",
        "--wait",
        "60s",
        "--output",
        "json",
    ]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["old_removed"], false);
    let third = cer_thumbprint(&cer_path);
    let mut both = vec![second.clone(), third.clone()];
    both.sort();
    assert_eq!(app_thumbprints(&t.sim.state().await), both);
    let third_uri = t.profile_json()["certificate"]["key"].as_str().unwrap().to_string();
    assert_ne!(third_uri, second_uri);
    let retired = t.profile_json()["retired"][0].clone();
    assert_eq!(retired["certificate"]["key"], second_uri.as_str());
    let dated = t.dir.path().join(retired["certificate"]["path"].as_str().unwrap());
    assert_eq!(cer_thumbprint(&dated), second, "the old .cer is kept under its dated name");
    assert_code(&with_token(&["cert", "show", "--key", &second_uri]), 0);
    assert_code(&with_token(&["token", "--profile", profile_arg]), 0);

    // Not due and inside the overlap: nothing changes.
    let daily = ["cert", "rotate", "--profile", profile_arg, "--if-expiring-within", "30", "--output", "json"];
    let o = with_token(&daily);
    assert_code(&o, 0);
    assert_eq!(json(&o)["rotated"], false);
    assert_eq!(app_thumbprints(&t.sim.state().await), both);
    assert_code(&with_token(&["cert", "show", "--key", &second_uri]), 0);

    // Past the overlap (remove_after moved into the past, as e2e_rotate does): removed, then deleted.
    let mut p = t.profile_json();
    for r in p["retired"].as_array_mut().unwrap() {
        r["remove_after"] = "2000-01-01T00:00:00Z".into();
    }
    std::fs::write(t.profile(), serde_json::to_vec_pretty(&p).unwrap()).unwrap();
    let o = with_token(&daily);
    assert_code(&o, 0);
    assert_eq!(json(&o)["removed"][0], second.as_str(), "{}", stdout(&o));
    assert_eq!(app_thumbprints(&t.sim.state().await), [third.as_str()]);
    assert_code(&with_token(&["cert", "show", "--key", &second_uri]), 3);
    assert!(!dated.exists());
    assert_code(&with_token(&["cert", "show", "--key", &third_uri]), 0);
    assert_code(&with_token(&["token", "--profile", profile_arg]), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_pkcs11_setup_refuses_pfx_options_and_cert_with_key() {
    let t = super::Tenant::start(cba_sim::SimTenant::builder()).await;
    let base = ["setup", "--tenant", t.sim.tenant_domain(), "--name", super::APP, "--key", URI];
    for extra in [&["--no-password"][..], &["--pem"], &["--key-size", "4096"], &["--cert", "x.pfx"]] {
        let o = t.run(&[&base[..], extra].concat());
        assert_code(&o, 2);
    }
    assert!(t.sim.requests().await.is_empty(), "refused before any request");
}
