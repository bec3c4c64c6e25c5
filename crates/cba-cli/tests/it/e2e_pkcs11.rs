//! `--key pkcs11:…`: keys generated in a real SoftHSM2 token, used by `cba cert` and `cba token` against the
//! simulated tenant. Each test makes its own token folder and hands it to the `cba` child through SOFTHSM2_CONF
//! (a module is initialised once per process, so the child is where the token is opened). SoftHSM2 is required:
//! without it these tests fail and say that `.ci/run` installs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

    // Without CBA_PKCS11_MODULE, --pkcs11-module names the module for status and exo, as for token.
    let without_env = |args: &[&str]| {
        let mut cmd = t.cmd(args);
        cmd.env("SOFTHSM2_CONF", &h.conf).env_remove("CBA_PKCS11_MODULE").env("CBA_PKCS11_PIN", PIN);
        run(&mut cmd, None)
    };
    let o = without_env(&["status", "--profile", profile_arg, "--output", "json"]);
    assert_ne!(o.status.code(), Some(0), "no module named: {}", stdout(&o));
    assert!(format!("{}{}", stdout(&o), stderr(&o)).contains("PKCS#11 module"), "{}", stderr(&o));
    let o = without_env(&["status", "--profile", profile_arg, "--pkcs11-module", MODULE, "--output", "json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["ok"], true, "{}", stdout(&o));
    let o = without_env(&["exo", "check", "--profile", profile_arg, "--pkcs11-module", MODULE, "--no-cache"]);
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
    assert!(doc["next_steps"].is_null(), "no PFX instructions for a token key: {doc}");
    assert!(
        doc["powershell_access_token"]
            .as_str()
            .is_some_and(|l| l.starts_with("Connect-ExchangeOnline -AccessToken (cba token")),
        "{doc}"
    );
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

/// Set in the child process [`Hsm::objects`] starts: this test binary again, running only
/// [`e2e_pkcs11_probe_child`] with the token's SOFTHSM2_CONF (a module reads it once per process).
const PROBE: &str = "CBA_IT_PKCS11_PROBE";

impl Hsm {
    /// Every object in the token, read through cba-pkcs11 in a process of its own (not through `cba`):
    /// `{class, label, id}`, and for a private key how the token reports its protection.
    fn objects(&self) -> Vec<serde_json::Value> {
        let name = "e2e_pkcs11::e2e_pkcs11_probe_child";
        let out = Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(PROBE, "1")
            .env("SOFTHSM2_CONF", &self.conf)
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "the token probe failed:\n{text}");
        let line = text
            .lines()
            .find_map(|l| Some(&l[l.find("PROBE [")? + 6..]))
            .unwrap_or_else(|| panic!("no probe:\n{text}"));
        serde_json::from_str::<Vec<serde_json::Value>>(line).unwrap()
    }

    /// The private keys' labels, sorted.
    fn key_labels(&self) -> Vec<String> {
        let objects = self.objects();
        let mut labels: Vec<String> = objects
            .iter()
            .filter(|o| o["class"] == "CKO_PRIVATE_KEY")
            .map(|o| o["label"].as_str().unwrap().to_string())
            .collect();
        labels.sort();
        labels
    }
}

#[test]
fn e2e_pkcs11_probe_child() {
    if std::env::var_os(PROBE).is_none() {
        return; // only a child process started by Hsm::objects does anything
    }
    let module = cba_pkcs11::Module::open(MODULE).unwrap();
    let token = module.login(&"pkcs11:token=cba".parse().unwrap(), &cba_pkcs11::Pin::new(PIN)).unwrap();
    let hex = |id: &[u8]| id.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut out = Vec::new();
    for o in token.objects().unwrap() {
        let mut entry = serde_json::json!({ "class": o.class, "label": o.label, "id": hex(&o.id) });
        if o.class == "CKO_PRIVATE_KEY" {
            let key = token.find_key(None, Some(&o.id)).unwrap().expect("the key by its id");
            let p = key.protection().unwrap();
            entry["token"] = p.token.into();
            entry["private"] = p.private.into();
            entry["sensitive"] = p.sensitive.into();
            entry["extractable"] = p.extractable.into();
            entry["never_extractable"] = p.never_extractable.into();
            entry["has_certificate"] = key.certificate().is_some().into();
        }
        out.push(entry);
    }
    println!("PROBE {}", serde_json::Value::Array(out));
}

/// Checks a client assertion against a DER certificate with Python's `cryptography` (an implementation
/// independent of cba's): the signature by the header's alg (PS256: MGF1-SHA256, salt 32), `x5t#S256`,
/// `iss` = `sub` = the client id, an `aud` ending in /oauth2/v2.0/token, `exp` in the future.
const PY_VERIFY_ASSERTION: &str = r#"
import base64, hashlib, json, sys, time
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
def b64(s):
    return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))
der = open(sys.argv[1], 'rb').read()
jwt = open(sys.argv[2]).read().strip()
client_id = sys.argv[3]
head, body, sig = jwt.split('.')
header, claims = json.loads(b64(head)), json.loads(b64(body))
key = x509.load_der_x509_certificate(der).public_key()
if header['alg'] == 'PS256':
    pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
elif header['alg'] == 'RS256':
    pad = padding.PKCS1v15()
else:
    sys.exit('unexpected alg ' + header['alg'])
key.verify(b64(sig), (head + '.' + body).encode(), pad, hashes.SHA256())
assert b64(header['x5t#S256']) == hashlib.sha256(der).digest(), 'x5t#S256'
assert claims['iss'] == client_id and claims['sub'] == client_id, claims
assert claims['aud'].endswith('/oauth2/v2.0/token'), claims['aud']
assert claims['exp'] > time.time(), claims['exp']
print('ok', header['alg'])
"#;

#[tokio::test(flavor = "multi_thread")]
async fn e2e_pkcs11_setup_assertion_verifies_with_python_and_the_key_cannot_leave_the_token() {
    let available =
        Command::new("python3").args(["-c", "import cryptography"]).output().is_ok_and(|o| o.status.success());
    assert!(available, "python3 with the `cryptography` package is required (.ci/run installs python3-cryptography)");
    let h = hsm();
    let t = super::Tenant::start(cba_sim::SimTenant::builder()).await;
    let with_token = |args: &[&str]| {
        let mut cmd = t.cmd(args);
        cmd.env("SOFTHSM2_CONF", &h.conf).env("CBA_PKCS11_MODULE", MODULE).env("CBA_PKCS11_PIN", PIN);
        run(&mut cmd, None)
    };
    let setup = ["setup", "--tenant", t.sim.tenant_domain(), "--name", super::APP, "--key", URI, "--wait", "60s"];
    assert_code(&with_token(&setup), 0);

    // The token, read by cba-pkcs11 in another process: one key pair and its certificate, the private key
    // sensitive and never extractable.
    let objects = h.objects();
    let classes: Vec<&str> = objects.iter().map(|o| o["class"].as_str().unwrap()).collect();
    assert_eq!(classes, ["CKO_CERTIFICATE", "CKO_PRIVATE_KEY", "CKO_PUBLIC_KEY"], "{objects:#?}");
    assert!(objects.iter().all(|o| o["label"] == "e2e" && o["id"] == objects[0]["id"]), "{objects:#?}");
    let key = &objects[1];
    assert_eq!(key["sensitive"], true, "CKA_SENSITIVE: {key}");
    assert_eq!(key["extractable"], false, "CKA_EXTRACTABLE: {key}");
    assert_eq!(key["never_extractable"], true, "CKA_NEVER_EXTRACTABLE: {key}");
    assert_eq!(key["token"], true, "CKA_TOKEN: {key}");
    assert_eq!(key["private"], true, "CKA_PRIVATE: {key}");
    assert_eq!(key["has_certificate"], true);

    // The assertion cba signs in the token verifies against the .cer with Python's cryptography.
    let profile = t.profile();
    let profile_arg = profile.to_str().unwrap();
    let o = with_token(&["token", "--profile", profile_arg, "--print-assertion"]);
    assert_code(&o, 0);
    let assertion = stdout(&o).trim().to_string();
    let app_id = t.profile_json()["app_id"].as_str().unwrap().to_string();
    let cer = t.dir.path().join(format!("{}.cer", super::APP));
    let verify = |jwt: &str| {
        let file = t.dir.path().join("assertion.jwt");
        std::fs::write(&file, jwt).unwrap();
        let out = Command::new("python3")
            .arg("-c")
            .arg(PY_VERIFY_ASSERTION)
            .arg(&cer)
            .arg(&file)
            .arg(&app_id)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let (ok, said) = verify(&assertion);
    assert!(ok, "python cryptography refused the token-signed assertion:\n{said}");
    assert_eq!(said.trim(), "ok PS256", "the token offers PSS, so PS256 is used");

    // The check can fail: one signature byte changed, or another app's client id, is refused.
    let (head, sig) = assertion.rsplit_once('.').unwrap();
    let flipped = match sig.strip_prefix('A') {
        Some(rest) => format!("B{rest}"),
        None => format!("A{}", &sig[1..]),
    };
    assert!(!verify(&format!("{head}.{flipped}")).0, "a changed signature must not verify");
    let (ok, said) = {
        let file = t.dir.path().join("assertion.jwt");
        std::fs::write(&file, &assertion).unwrap();
        let out = Command::new("python3")
            .arg("-c")
            .arg(PY_VERIFY_ASSERTION)
            .arg(&cer)
            .arg(&file)
            .arg("00000000-0000-0000-0000-000000000000")
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    assert!(!ok && said.contains("AssertionError"), "another client id must not pass: {said}");

    // And the simulated identity platform (which verifies with the registered certificate) issues a token.
    let o = with_token(&["token", "--profile", profile_arg, "--format", "json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["claims"]["appid"], app_id.as_str());
}

/// `cba ARGS` against the tenant, with the token's SOFTHSM2_CONF, module and PIN.
fn with_token_cmd(h: &Hsm, t: &super::Tenant, args: &[&str]) -> Command {
    let mut cmd = t.cmd(args);
    cmd.env("SOFTHSM2_CONF", &h.conf).env("CBA_PKCS11_MODULE", MODULE).env("CBA_PKCS11_PIN", PIN);
    cmd
}

/// The folder's file names, sorted.
fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_pkcs11_setup_wrong_pin_missing_module_and_taken_label_change_nothing() {
    let h = hsm();
    // A key labelled e2e already in the token, made in the token's own folder.
    assert_code(&h.cba(&["cert", "new", "--name", "e2e", "--key", URI], Some(PIN)), 0);
    let objects = h.objects();
    let t = super::Tenant::start(cba_sim::SimTenant::builder()).await;
    let with = |args: &[&str], pin: &str| {
        let mut cmd = t.cmd(args);
        cmd.env("SOFTHSM2_CONF", &h.conf).env("CBA_PKCS11_MODULE", MODULE).env("CBA_PKCS11_PIN", pin);
        run(&mut cmd, None)
    };
    let tenant = t.sim.tenant_domain();
    let taken = "pkcs11:token=cba;object=e2e;id=%00%01";
    let cases: [(&[&str], &str, &str); 5] = [
        (&["--key", URI], "918273", "wrong PIN for PKCS#11 token \"cba\""),
        (&["--key", "pkcs11:token=cba;object=fresh"], "918273", "wrong PIN for PKCS#11 token \"cba\""),
        (&["--key", URI, "--pkcs11-module", "/nonexistent/libnone.so"], PIN, "/nonexistent/libnone.so"),
        (&["--key", taken], PIN, "already holds a key labelled \"e2e\""),
        (&["--key", "pkcs11:token=other;object=e2e"], PIN, "no PKCS#11 token \"other\""),
    ];
    for (key, pin, says) in cases {
        let args = [&["setup", "--tenant", tenant, "--name", super::APP, "--wait", "60s"][..], key].concat();
        let o = with(&args, pin);
        assert_code(&o, 3);
        assert!(stderr(&o).contains(says), "{key:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("918273"), "{key:?} printed the PIN");
        assert_eq!(file_names(t.dir.path()), Vec::<String>::new(), "{key:?}: no .cer, no profile");
        let writes: Vec<_> = t.sim.requests().await.into_iter().filter(|r| r.method != "GET").collect();
        assert!(writes.is_empty(), "{key:?}: nothing written in the tenant: {writes:#?}");
        t.assert_empty().await;
        assert_eq!(h.objects(), objects, "{key:?}: the token is as it was");
    }
    // The taken label is refused by cert new too, saying how to replace it.
    let o = h.cba(&["cert", "new", "--name", "taken", "--key", taken], Some(PIN));
    assert_code(&o, 3);
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert!(!h.path("taken.cer").exists());
    assert_eq!(h.objects(), objects);

    // A .cer that is another certificate is not replaced without --force, and nothing is created.
    std::fs::write(t.dir.path().join(format!("{}.cer", super::APP)), b"not this certificate").unwrap();
    let o = with(&["setup", "--tenant", tenant, "--name", super::APP, "--key", URI, "--wait", "60s"], PIN);
    assert_code(&o, 3);
    t.assert_empty().await;
    assert_eq!(h.objects(), objects);
    assert_eq!(std::fs::read(t.dir.path().join(format!("{}.cer", super::APP))).unwrap(), b"not this certificate");
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_pkcs11_rotate_interrupted_after_add_key_and_after_remove_key_then_rerun_converges() {
    let h = hsm();
    // Latency gives the kill below a window between addKey and the next step.
    let t = super::Tenant::start(cba_sim::SimTenant::builder().latency(std::time::Duration::from_millis(100))).await;
    let with_token = |args: &[&str]| run(&mut with_token_cmd(&h, &t, args), None);
    let setup = ["setup", "--tenant", t.sim.tenant_domain(), "--name", super::APP, "--key", URI, "--wait", "60s"];
    assert_code(&with_token(&setup), 0);
    let object_id = t.sim.state().await.primary().applications[0].id.clone();
    let profile_path = t.profile();
    let profile_arg = profile_path.to_str().unwrap();
    let cer_path = t.dir.path().join(format!("{}.cer", super::APP));
    let first = cer_thumbprint(&cer_path);
    let first_uri = t.profile_json()["certificate"]["key"].as_str().unwrap().to_string();
    let rotate = ["cert", "rotate", "--profile", profile_arg, "--overlap", "0", "--wait", "60s", "--output", "json"];

    let add_keys =
        async || t.sim.requests().await.iter().filter(|r| r.method == "POST" && r.path.ends_with("/addKey")).count();

    // Killed once addKey has reached the tenant: the profile and the old key still work, and the old key
    // object is still in the token beside the new one.
    let mut child = with_token_cmd(&h, &t, &rotate).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let killed = loop {
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        if add_keys().await > 0 {
            child.kill().unwrap();
            child.wait().unwrap();
            break true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    assert!(killed, "the rotation ended before addKey was seen");
    assert_eq!(app_thumbprints(&t.sim.state().await).len(), 2, "addKey was carried out");
    assert_eq!(t.profile_json()["certificate"]["key"], first_uri.as_str());
    assert_eq!(cer_thumbprint(&cer_path), first);
    assert_eq!(h.key_labels().len(), 2, "the next key beside the old one: {:?}", h.key_labels());
    assert!(h.key_labels().contains(&"e2e".to_string()), "{:?}", h.key_labels());
    assert_code(&with_token(&["token", "--profile", profile_arg, "--no-cache"]), 0);

    // The rerun finishes with the key the first run made (addKey again with the key id the profile recorded:
    // "already exists" is success): one new key in the token, the old one deleted.
    let o = with_token(&rotate);
    assert_code(&o, 0);
    assert_eq!(json(&o)["old_removed"], true, "{}", stdout(&o));
    let second = cer_thumbprint(&cer_path);
    assert_ne!(second, first);
    assert_eq!(app_thumbprints(&t.sim.state().await), [second.as_str()]);
    let labels = h.key_labels();
    assert_eq!(labels.len(), 1, "one key in the token: {labels:?}");
    assert!(labels[0].starts_with("e2e-2"), "the dated label: {labels:?}");
    let second_uri = t.profile_json()["certificate"]["key"].as_str().unwrap().to_string();
    assert!(second_uri.contains(&format!("object={}", labels[0])), "{second_uri}");
    assert_code(&with_token(&["token", "--profile", profile_arg, "--no-cache"]), 0);

    // addKey carried out but its answer lost (500): the run sends it again with the same key id (Graph's
    // "already exists" is success), so the app lists the new certificate once; one key in the token.
    t.sim.fail_after_commit(1, &format!("POST /applications/{object_id}/addKey"));
    let before = add_keys().await;
    let o = with_token(&rotate);
    assert_code(&o, 0);
    assert_eq!(add_keys().await, before + 2, "the 500 and the one resent with the recorded key id");
    let third = cer_thumbprint(&cer_path);
    assert_ne!(third, second);
    assert_eq!(app_thumbprints(&t.sim.state().await), [third.as_str()]);
    assert_eq!(h.key_labels().len(), 1, "{:?}", h.key_labels());

    // removeKey carried out but its answer lost (500): resent, the key is already gone (404, success), and
    // only then is the old key object deleted from the token.
    t.sim.fail_after_commit(1, &format!("POST /applications/{object_id}/removeKey"));
    let o = with_token(&rotate);
    assert_code(&o, 0);
    let removes = t.sim.requests().await.iter().filter(|r| r.path.ends_with("/removeKey")).count();
    assert_eq!(removes, 4, "one each for the first two rotations, then the 500 and its resend");
    let fourth = cer_thumbprint(&cer_path);
    assert_eq!(app_thumbprints(&t.sim.state().await), [fourth.as_str()]);
    let labels = h.key_labels();
    assert_eq!(labels.len(), 1, "the old key deleted once its removal was known: {labels:?}");
    let daily = ["cert", "rotate", "--profile", profile_arg, "--if-expiring-within", "30", "--output", "json"];
    let o = with_token(&daily);
    assert_code(&o, 0);
    assert_eq!(json(&o)["rotated"], false, "{}", stdout(&o));
    assert_eq!(h.key_labels(), labels, "a rerun changes nothing");
    let fourth_uri = t.profile_json()["certificate"]["key"].as_str().unwrap().to_string();
    assert!(fourth_uri.contains(&format!("object={}", labels[0])), "{fourth_uri} vs {labels:?}");
    assert!(t.profile_json()["retired"].as_array().is_none_or(|r| r.is_empty()));
    let cers: Vec<_> = file_names(t.dir.path()).into_iter().filter(|n| n.ends_with(".cer")).collect();
    assert_eq!(cers, [format!("{}.cer", super::APP)]);
    assert_code(&with_token(&["token", "--profile", profile_arg, "--no-cache"]), 0);
    assert_code(&with_token(&["status", "--profile", profile_arg]), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_pkcs11_setup_killed_after_the_key_was_made_then_rerun_reuses_it() {
    let h = hsm();
    // Latency keeps the run in its first requests long after the key and NAME.cer are made.
    let t = super::Tenant::start(cba_sim::SimTenant::builder().latency(std::time::Duration::from_millis(200))).await;
    let setup = ["setup", "--tenant", t.sim.tenant_domain(), "--name", super::APP, "--key", URI, "--wait", "60s"];
    let cer = t.dir.path().join(format!("{}.cer", super::APP));
    let mut child = with_token_cmd(&h, &t, &setup).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let killed = loop {
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        if cer.exists() {
            child.kill().unwrap();
            child.wait().unwrap();
            break true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    };
    assert!(killed, "setup ended before it wrote the .cer");
    assert!(t.sim.state().await.primary().applications.is_empty(), "killed before the app was created");
    let made = h.objects();
    assert_eq!(h.key_labels(), ["e2e"], "{made:#?}");
    let thumbprint = cer_thumbprint(&cer);

    // The rerun finds the key and its certificate by label: nothing new in the token, that certificate on the app.
    let o = run(&mut with_token_cmd(&h, &t, &[&setup[..], &["--output", "json"]].concat()), None);
    assert_code(&o, 0);
    let state = t.assert_one_of_each().await;
    assert_eq!(state.primary().applications[0].key_credentials[0].thumbprint_sha1, thumbprint);
    assert_eq!(h.objects(), made, "the token is as the killed run left it");
    assert_eq!(cer_thumbprint(&cer), thumbprint);
}
