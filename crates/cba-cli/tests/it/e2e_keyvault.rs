//! `--key https://…/certificates/NAME`: keys that stay in the simulator's Key Vault, with `cba cert`, `setup`,
//! `token`, `status`, `exo`, `cert rotate` and `teardown` against the simulated tenant. The vault token comes
//! from CBA_KEYVAULT_TOKEN or from the simulator's managed-identity endpoint (IDENTITY_ENDPOINT +
//! IDENTITY_HEADER); the instance metadata endpoint is never called.

use std::path::Path;
use std::process::{Command, Output};

use super::{APP, Tenant, assert_code, json, run, stderr, stdout};

const VAULT_ENV: [&str; 5] = [
    "CBA_KEYVAULT_TOKEN",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "CBA_KEYVAULT_IMDS",
    "CBA_KEYVAULT_IDENTITY_CLIENT_ID",
];

fn key_url(t: &Tenant) -> String {
    format!("{}/certificates/{APP}", t.sim.keyvault_url())
}

/// `cba ARGS` against the sim, with no vault token source unless `vault` sets one.
fn cba_with(t: &Tenant, args: &[&str], vault: &[(&str, String)]) -> Output {
    let mut cmd = t.cmd(args);
    for var in VAULT_ENV {
        cmd.env_remove(var);
    }
    for (k, v) in vault {
        cmd.env(k, v);
    }
    run(&mut cmd, None)
}

/// With CBA_KEYVAULT_TOKEN.
fn cba(t: &Tenant, args: &[&str]) -> Output {
    cba_with(t, args, &[("CBA_KEYVAULT_TOKEN", t.sim.keyvault_token())])
}

fn cer_thumbprint(path: &Path) -> String {
    cba_cert::Certificate::from_der(&std::fs::read(path).unwrap()).unwrap().thumbprint_sha1_hex()
}

fn app_thumbprints(state: &cba_sim::StateSnapshot) -> Vec<String> {
    let mut keys: Vec<String> =
        state.primary().applications[0].key_credentials.iter().map(|k| k.thumbprint_sha1.clone()).collect();
    keys.sort();
    keys
}

/// Python `cryptography` (independent of cba) checks a client assertion against a DER certificate.
const PY_VERIFY: &str = r#"
import base64, hashlib, json, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
def b64(s):
    return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))
der = open(sys.argv[1], 'rb').read()
head, body, sig = open(sys.argv[2]).read().strip().split('.')
header, claims = json.loads(b64(head)), json.loads(b64(body))
key = x509.load_der_x509_certificate(der).public_key()
pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32) if header['alg'] == 'PS256' else padding.PKCS1v15()
key.verify(b64(sig), (head + '.' + body).encode(), pad, hashes.SHA256())
assert b64(header['x5t#S256']) == hashlib.sha256(der).digest(), 'x5t#S256'
assert claims['iss'] == sys.argv[3] and claims['sub'] == sys.argv[3], claims
print('ok', header['alg'])
"#;

fn python_verifies(dir: &Path, cer: &Path, jwt: &str, client_id: &str) -> (bool, String) {
    let file = dir.join("assertion.jwt");
    std::fs::write(&file, jwt).unwrap();
    let out = Command::new("python3").arg("-c").arg(PY_VERIFY).arg(cer).arg(&file).arg(client_id).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_keyvault_setup_then_token_status_exo_and_teardown() {
    let available =
        Command::new("python3").args(["-c", "import cryptography"]).output().is_ok_and(|o| o.status.success());
    assert!(available, "python3 with the `cryptography` package is required (.ci/run installs python3-cryptography)");
    let t = Tenant::start(cba_sim::SimTenant::builder()).await;
    let url = key_url(&t);
    let setup = ["setup", "--tenant", t.sim.tenant_domain(), "--name", APP, "--key", &url, "--wait", "60s"];
    // A dry run makes nothing in the vault (nor asks it anything).
    assert_code(&cba(&t, &[&setup[..], &["--dry-run"]].concat()), 0);
    assert!(t.sim.keyvault_certificates().is_empty());
    assert!(t.sim.requests().await.iter().all(|r| !r.path.starts_with("/keyvault/")), "the vault was not asked");
    let o = cba(&t, &[&setup[..], &["--output", "json"]].concat());
    assert_code(&o, 0);
    let doc = json(&o);
    let state = t.assert_one_of_each().await;
    let cer_path = t.dir.path().join(format!("{APP}.cer"));
    let thumbprint = cer_thumbprint(&cer_path);
    assert_eq!(app_thumbprints(&state), [thumbprint.as_str()], "the vault's certificate is registered");
    assert!(!t.dir.path().join(format!("{APP}.pfx")).exists(), "no PFX: the key stays in the vault");
    let versions = t.sim.keyvault_certificates();
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_eq!(versions[0].thumbprint, thumbprint);
    assert!(!versions[0].exportable, "created with exportable: false");
    let powershell = doc["powershell_access_token"].as_str().expect("the -AccessToken hand-off");
    assert!(powershell.starts_with("Connect-ExchangeOnline -AccessToken (cba token --profile "), "{powershell}");
    assert!(doc["next_steps"].is_null(), "no PFX-based PowerShell lines for a vault key: {doc}");

    let profile = t.profile_json();
    let key = profile["certificate"]["key"].as_str().expect("the profile records the key");
    assert_eq!(key, format!("{url}/{}", versions[0].version), "the versioned URL");
    assert_eq!(profile["certificate"]["path"], format!("{APP}.cer"));
    let text = std::fs::read_to_string(t.profile()).unwrap();
    assert!(!text.contains(&t.sim.keyvault_token()), "no vault token in the profile");

    // The assertion signed in the vault verifies against the .cer with Python's cryptography, and fails when
    // it should.
    let profile_path = t.profile();
    let profile_arg = profile_path.to_str().unwrap();
    let o = cba(&t, &["token", "--profile", profile_arg, "--print-assertion"]);
    assert_code(&o, 0);
    let assertion = stdout(&o).trim().to_string();
    let app_id = profile["app_id"].as_str().unwrap().to_string();
    let (ok, said) = python_verifies(t.dir.path(), &cer_path, &assertion, &app_id);
    assert!(ok, "python cryptography refused the vault-signed assertion:\n{said}");
    assert_eq!(said.trim(), "ok PS256");
    let (head, sig) = assertion.rsplit_once('.').unwrap();
    let flipped = match sig.strip_prefix('A') {
        Some(rest) => format!("B{rest}"),
        None => format!("A{}", &sig[1..]),
    };
    assert!(!python_verifies(t.dir.path(), &cer_path, &format!("{head}.{flipped}"), &app_id).0);

    // token, status and exo check from the profile alone sign in the vault.
    let signs = t.sim.keyvault_sign_count();
    let o = cba(&t, &["token", "--profile", profile_arg, "--no-cache", "--format", "json", "-v"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["claims"]["appid"], app_id.as_str());
    assert!(stderr(&o).contains("signed with the vault key of"), "{}", stderr(&o));
    assert!(t.sim.keyvault_sign_count() > signs, "the vault signed");
    let o = cba(&t, &["status", "--profile", profile_arg, "--output", "json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["ok"], true, "{}", stdout(&o));
    let o = cba(&t, &["exo", "check", "--profile", profile_arg, "--output", "json"]);
    assert_code(&o, 0);
    let o = cba(&t, &["cert", "show", "--key", key, "--output", "json"]);
    assert_code(&o, 0);
    let shown = json(&o);
    assert_eq!(shown["thumbprint_sha1"], thumbprint.as_str());
    assert_eq!(shown["vault_key"]["exportable"], false, "{shown}");
    assert_eq!(shown["vault_key"]["version"], versions[0].version.as_str());

    // --key on status and exo, without a profile: the app named by flags, the key by its URL.
    let (tenant, latest) = (t.sim.tenant_domain(), url.as_str());
    let o = cba(&t, &["status", "--tenant", tenant, "--client-id", &app_id, "--key", latest, "--output", "json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["ok"], true, "{}", stdout(&o));
    let o = cba(&t, &["exo", "check", "--tenant", tenant, "--client-id", &app_id, "--key", latest, "--no-cache"]);
    assert_code(&o, 0);
    let o = cba(&t, &["status", "--tenant", tenant, "--client-id", &app_id, "--key", latest, "--cert", "x.pfx"]);
    assert_code(&o, 2);

    // Without a vault token source: a clear error naming them all, exit 3.
    let o = cba_with(&t, &["token", "--profile", profile_arg, "--no-cache"], &[]);
    assert_code(&o, 3);
    for name in ["CBA_KEYVAULT_TOKEN", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "CBA_KEYVAULT_IMDS"] {
        assert!(stderr(&o).contains(name), "{}", stderr(&o));
    }

    // A rerun finds the certificate in the vault and changes nothing.
    let o = cba(&t, &[&setup[..], &["--output", "json"]].concat());
    assert_code(&o, 0);
    assert_eq!(json(&o)["changed"], false, "{}", stdout(&o));
    assert_eq!(t.sim.keyvault_certificates().len(), 1, "no second version");
    t.assert_one_of_each().await;

    // Teardown deletes the .cer it wrote and leaves the vault's certificate, saying so.
    let o = cba(&t, &["teardown", "--profile", profile_arg, "--yes", "--delete-files"]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("left the certificate") && stderr(&o).contains("in the vault"), "{}", stderr(&o));
    t.assert_empty().await;
    assert!(!cer_path.exists());
    assert_eq!(t.sim.keyvault_certificates().len(), 1, "the vault certificate stays");
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_keyvault_token_from_the_managed_identity_endpoint() {
    let t = Tenant::start(cba_sim::SimTenant::builder()).await;
    let url = key_url(&t);
    let identity = [("IDENTITY_ENDPOINT", t.sim.identity_endpoint()), ("IDENTITY_HEADER", t.sim.identity_header())];
    let o = cba_with(&t, &["cert", "new", "--name", APP, "--key", &url, "--output", "json"], &identity);
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["vault_key"]["reused"], false);
    assert_eq!(doc["files"]["pfx"], serde_json::Value::Null);
    assert_eq!(doc["thumbprint_sha1"], cer_thumbprint(&t.dir.path().join(format!("{APP}.cer"))).as_str());
    let msi = t.sim.requests().await.iter().filter(|r| r.path.starts_with("/msi/token")).count();
    assert_eq!(msi, 1, "one identity token for the whole command");

    // A rerun reuses it; --force makes the next version.
    let o = cba_with(&t, &["cert", "new", "--name", APP, "--key", &url, "--output", "json"], &identity);
    assert_code(&o, 0);
    assert_eq!(json(&o)["vault_key"]["reused"], true);
    assert_eq!(json(&o)["thumbprint_sha1"], doc["thumbprint_sha1"]);
    let o = cba_with(&t, &["cert", "new", "--name", APP, "--key", &url, "--force", "--output", "json"], &identity);
    assert_code(&o, 0);
    assert_ne!(json(&o)["thumbprint_sha1"], doc["thumbprint_sha1"]);
    assert_eq!(t.sim.keyvault_certificates().len(), 2);

    // The wrong identity header: the endpoint refuses, exit 4, and the header value is not printed.
    let wrong = [("IDENTITY_ENDPOINT", t.sim.identity_endpoint()), ("IDENTITY_HEADER", "wrong-secret".to_string())];
    let o = cba_with(&t, &["cert", "show", "--key", &url], &wrong);
    assert_code(&o, 4);
    assert!(stderr(&o).contains("IDENTITY_ENDPOINT"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("wrong-secret"), "{}", stderr(&o));

    // A token the vault refuses (a Graph token): 401 with the challenge, exit 4.
    let o = cba_with(&t, &["cert", "show", "--key", &url], &[("CBA_KEYVAULT_TOKEN", t.sim.admin_token())]);
    assert_code(&o, 4);
    assert!(stderr(&o).contains("resource https://vault.azure.net"), "{}", stderr(&o));
    assert!(!stderr(&o).contains(&t.sim.admin_token()), "no token in the error");

    // A certificate the vault does not have: exit 3 naming it.
    let missing = format!("{}/certificates/nope", t.sim.keyvault_url());
    let o = cba(&t, &["cert", "show", "--key", &missing]);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("certificate nope") && stderr(&o).contains("CertificateNotFound"), "{}", stderr(&o));

    // Plain http to anything but loopback is refused before any request.
    let o = cba(&t, &["cert", "show", "--key", "http://contoso.vault.azure.net/certificates/x"]);
    assert_code(&o, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_keyvault_forbidden_by_rbac_changes_nothing() {
    let t = Tenant::start(cba_sim::SimTenant::builder().keyvault_forbidden(true)).await;
    let url = key_url(&t);
    let o = cba(&t, &["setup", "--tenant", t.sim.tenant_domain(), "--name", APP, "--key", &url, "--wait", "60s"]);
    assert_code(&o, 5);
    let said = stderr(&o);
    assert!(said.contains("ForbiddenByRbac"), "{said}");
    assert!(said.contains("Key Vault Crypto User") && said.contains("Key Vault Certificates Officer"), "{said}");
    t.assert_empty().await;
    assert!(!t.profile().exists(), "no profile written");
    assert!(!t.dir.path().join(format!("{APP}.cer")).exists(), "no .cer written");
    assert!(t.sim.keyvault_certificates().is_empty());
    let graph = t.sim.requests().await.iter().filter(|r| r.service.is_some()).count();
    assert_eq!(graph, 0, "nothing sent to Graph or login");
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_keyvault_rotate_makes_the_next_version_and_disables_the_old_one_after_remove_key() {
    let t = Tenant::start(cba_sim::SimTenant::builder()).await;
    let url = key_url(&t);
    let setup = ["setup", "--tenant", t.sim.tenant_domain(), "--name", APP, "--key", &url, "--wait", "60s"];
    assert_code(&cba(&t, &setup), 0);
    let profile_path = t.profile();
    let profile_arg = profile_path.to_str().unwrap();
    let cer_path = t.dir.path().join(format!("{APP}.cer"));
    let first_url = t.profile_json()["certificate"]["key"].as_str().unwrap().to_string();
    let first = cer_thumbprint(&cer_path);

    // --overlap 7d: the next version is created, registered, proven and switched to; the old one stays
    // registered and enabled.
    let rotate = |overlap: &str| {
        cba(
            &t,
            &["cert", "rotate", "--profile", profile_arg, "--overlap", overlap, "--wait", "60s", "--output", "json"],
        )
    };
    let o = rotate("7d");
    assert_code(&o, 0);
    assert_eq!(json(&o)["rotated"], true, "{}", stdout(&o));
    assert_eq!(json(&o)["old_removed"], false);
    assert!(json(&o)["next_steps"].is_null(), "no PFX instructions for a vault key: {}", stdout(&o));
    assert!(json(&o)["powershell_access_token"].as_str().is_some_and(|l| l.contains("-AccessToken (cba token")));
    let second = cer_thumbprint(&cer_path);
    assert_ne!(second, first);
    let mut both = vec![first.clone(), second.clone()];
    both.sort();
    assert_eq!(app_thumbprints(&t.sim.state().await), both);
    let second_url = t.profile_json()["certificate"]["key"].as_str().unwrap().to_string();
    assert_ne!(second_url, first_url);
    assert!(second_url.starts_with(&format!("{url}/")), "a version of the same certificate: {second_url}");
    let versions = t.sim.keyvault_certificates();
    assert_eq!(versions.len(), 2);
    assert!(versions.iter().all(|v| v.enabled), "{versions:?}");
    assert_code(&cba(&t, &["token", "--profile", profile_arg, "--no-cache"]), 0);

    // Past the overlap: removeKey, then the old version is disabled in the vault (its key signs no more).
    let mut p = t.profile_json();
    for r in p["retired"].as_array_mut().unwrap() {
        r["remove_after"] = "2000-01-01T00:00:00Z".into();
    }
    std::fs::write(t.profile(), serde_json::to_vec_pretty(&p).unwrap()).unwrap();
    let o = cba(&t, &["cert", "rotate", "--profile", profile_arg, "--if-expiring-within", "30", "--output", "json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["removed"][0], first.as_str(), "{}", stdout(&o));
    assert_eq!(app_thumbprints(&t.sim.state().await), [second.as_str()]);
    let versions = t.sim.keyvault_certificates();
    let old = versions.iter().find(|v| v.thumbprint == first).unwrap();
    assert!(!old.enabled, "the retired version is disabled: {versions:?}");
    assert!(versions.iter().find(|v| v.thumbprint == second).unwrap().enabled);
    let o = cba(&t, &["cert", "show", "--key", &first_url]);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("disabled"), "{}", stderr(&o));
    let cers: Vec<_> = std::fs::read_dir(t.dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".cer"))
        .collect();
    assert_eq!(cers, [format!("{APP}.cer")], "the dated .cer is deleted");

    // --overlap 0 in one run; the token still works from the profile.
    let o = rotate("0");
    assert_code(&o, 0);
    assert_eq!(json(&o)["old_removed"], true, "{}", stdout(&o));
    let third = cer_thumbprint(&cer_path);
    assert_eq!(app_thumbprints(&t.sim.state().await), [third.as_str()]);
    assert_eq!(t.sim.keyvault_certificates().iter().filter(|v| v.enabled).count(), 1);
    let o = cba(&t, &["token", "--profile", profile_arg, "--no-cache", "--format", "json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["claims"]["roles"][0], "Exchange.ManageAsApp");
}

#[test]
fn e2e_keyvault_sim_serve_names_its_vault_and_identity_endpoint() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let mut child = super::cba()
        .args(["sim", "serve"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let info: serde_json::Value = serde_json::from_str(&line).unwrap();
    let vault = info["keyvault_url"].as_str().unwrap_or_else(|| panic!("no keyvault_url in {line}"));
    let login = info["login_url"].as_str().unwrap();
    assert_eq!(vault, format!("{login}/keyvault/cba-sim"));
    let (endpoint, header) = (info["identity_endpoint"].as_str().unwrap(), info["identity_header"].as_str().unwrap());
    assert!(endpoint.starts_with("http://127.0.0.1:") && !header.is_empty(), "{line}");

    // What the line names is enough for a vault key.
    let mut cmd = super::cba();
    for var in VAULT_ENV {
        cmd.env_remove(var);
    }
    let url = format!("{vault}/certificates/served");
    cmd.args(["cert", "new", "--name", "served", "--key", &url, "--output", "json"])
        .current_dir(dir.path())
        .env("IDENTITY_ENDPOINT", endpoint)
        .env("IDENTITY_HEADER", header);
    let o = run(&mut cmd, None);
    let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
    assert_code(&o, 0);
    assert_eq!(json(&o)["vault_key"]["exportable"], false);
    assert!(dir.path().join("served.cer").exists());
}

#[test]
fn e2e_keyvault_demo_runs_with_a_vault_key() {
    let mut cmd = super::cba();
    for var in VAULT_ENV {
        cmd.env_remove(var);
    }
    cmd.args(["demo", "--key", "keyvault", "--replication-delay-ms", "0", "--throttle-every", "0", "--output", "json"]);
    let o = run(&mut cmd, None);
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["ok"], true, "{doc}");
    let steps: Vec<&str> = doc["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert!(steps.contains(&"rotate") && steps.contains(&"teardown"), "{steps:?}");
    assert!(stderr(&o).contains("in the vault"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_keyvault_throttling_past_the_deadline_is_exit_6_and_reads_name_the_reader_role() {
    let builder =
        cba_sim::SimTenant::builder().keyvault_throttle_burst(u64::MAX).retry_after(std::time::Duration::ZERO);
    let t = Tenant::start(builder).await;
    let o = cba(&t, &["cert", "show", "--key", &key_url(&t)]);
    assert_code(&o, 6);
    assert!(stderr(&o).contains("429"), "{}", stderr(&o));
    let vault_requests = t.sim.requests().await.iter().filter(|r| r.path.starts_with("/keyvault/")).count();
    assert!(vault_requests > 1, "retried before giving up: {vault_requests}");

    let t = Tenant::start(cba_sim::SimTenant::builder().keyvault_forbidden(true)).await;
    let o = cba(&t, &["cert", "show", "--key", &key_url(&t)]);
    assert_code(&o, 5);
    assert!(stderr(&o).contains("Key Vault Reader"), "{}", stderr(&o));
}
