//! Keys in a real SoftHSM2 token.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` once, at `C_Initialize`, and a module is initialised once per process. So
//! each test runs its body in a child process (this test binary again, with `--exact`), given its own
//! configuration and token folder through the child's environment: tests stay parallel and isolated, and
//! nothing changes this process's environment. SoftHSM2 is required: without it these tests fail and say
//! that `.ci/run` installs it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use cba_cert::{KeySigner, NewCertificate, SignAlg};
use cba_pkcs11::{Error, KeyUri, Module, Pin, Token};
use cba_token::{AssertionAlg, AssertionOptions, ClientCertificate};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const CHILD: &str = "CBA_IT_SOFTHSM_CHILD";
const PIN: &str = "1234";
const AUD: &str = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";
const CLIENT_ID: &str = "631a96bc-a705-4eda-9f99-fdaf9f54f6a2";

/// Run `body` against a fresh SoftHSM2 token labelled `cba` (user PIN 1234), in a child process.
fn in_softhsm(test: &str, body: fn(&Module)) {
    if std::env::var_os(CHILD).is_some() {
        body(&Module::open(MODULE).expect("the SoftHSM2 module loads"));
        return;
    }
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

    let name = format!("softhsm::{test}");
    let child = Command::new(std::env::current_exe().unwrap())
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    let output = format!("{}{}", String::from_utf8_lossy(&child.stdout), String::from_utf8_lossy(&child.stderr));
    assert!(child.status.success(), "{name} failed in its SoftHSM2 process:\n{output}");
    assert!(output.contains("1 passed"), "{name} did not run in the child (renamed?):\n{output}");
    // Visible with --nocapture: the child's timings.
    for line in output.lines().filter_map(|l| l.find("timing:").map(|at| &l[at..])) {
        eprintln!("{line}");
    }
}

fn uri() -> KeyUri {
    "pkcs11:token=cba;object=contoso-exo".parse().unwrap()
}

fn login(module: &Module) -> Token {
    module.login(&uri(), &Pin::new(PIN)).expect("login")
}

fn verify(jwt: &str, alg: Algorithm, certificate: &cba_cert::Certificate) -> serde_json::Value {
    let public = certificate.rsa_public_key().unwrap();
    let key = DecodingKey::from_rsa_raw_components(&public.modulus, &public.exponent);
    let mut validation = Validation::new(alg);
    validation.set_audience(&[AUD]);
    jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &validation).unwrap_or_else(|e| panic!("{alg:?}: {e}")).claims
}

#[test]
fn a_key_generated_in_the_token_cannot_leave_it_and_gets_its_certificate() {
    in_softhsm("a_key_generated_in_the_token_cannot_leave_it_and_gets_its_certificate", |module| {
        let token = login(module);
        assert_eq!(token.label(), "cba");
        let started = Instant::now();
        let mut key = token.generate_key("contoso-exo", false).unwrap();
        println!("timing: RSA-2048 key generation in SoftHSM2: {:?}", started.elapsed());
        assert_eq!(key.label(), "contoso-exo");
        assert_eq!(key.id().len(), 16);
        assert_eq!(key.public_key().bits(), 2048);
        assert!(key.certificate().is_none());

        let p = key.protection().unwrap();
        assert!(p.token && p.private && p.sensitive && p.never_extractable, "{p:?}");
        assert!(!p.extractable, "{p:?}");

        let started = Instant::now();
        let certificate = cba_cert::generate_with(&NewCertificate::new("contoso-exo"), &key).unwrap();
        println!("timing: self-signed certificate through the token: {:?}", started.elapsed());
        assert_eq!(certificate.rsa_public_key(), Some(key.public_key()));
        token.store_certificate(&mut key, &certificate).unwrap();
        token.store_certificate(&mut key, &certificate).unwrap(); // the same one again: left as it is
        assert_eq!(key.certificate(), Some(&certificate));

        // Found again by a new session, by label and by id, with the certificate.
        drop(token);
        let token = login(module);
        let found = token.find_key(Some("contoso-exo"), None).unwrap().expect("found by label");
        assert_eq!(found.id(), key.id());
        assert_eq!(found.certificate(), Some(&certificate));
        assert_eq!(token.find_key(None, Some(key.id())).unwrap().unwrap().label(), "contoso-exo");
        assert!(token.find_key(Some("other"), None).unwrap().is_none());

        // A certificate of another key is refused.
        let other = cba_cert::generate(&NewCertificate::new("other")).unwrap().certificate;
        let mut found = found;
        assert!(matches!(token.store_certificate(&mut found, &other), Err(Error::CertificateMismatch { .. })));
    });
}

#[test]
fn assertions_signed_in_the_token_verify_with_ps256_and_rs256() {
    in_softhsm("assertions_signed_in_the_token_verify_with_ps256_and_rs256", |module| {
        let token = login(module);
        assert_eq!(token.algorithms(), [SignAlg::Ps256, SignAlg::Rs256], "SoftHSM2 offers both");
        let mut key = token.generate_key("contoso-exo", false).unwrap();
        let certificate = cba_cert::generate_with(&NewCertificate::new("contoso-exo"), &key).unwrap();
        token.store_certificate(&mut key, &certificate).unwrap();

        let credential = ClientCertificate::with_signer(
            certificate.clone(),
            Arc::new(key.clone()),
            "contoso.onmicrosoft.com",
            CLIENT_ID,
        )
        .unwrap();
        for (asked, alg) in [(AssertionAlg::Ps256, Algorithm::PS256), (AssertionAlg::Rs256, Algorithm::RS256)] {
            let options = AssertionOptions { alg: asked, ..AssertionOptions::default() };
            let now = time::OffsetDateTime::now_utc();
            let started = Instant::now();
            let assertion = credential.sign_assertion(AUD, &options, now).unwrap();
            println!("timing: one {asked} client assertion signed in SoftHSM2: {:?}", started.elapsed());
            assert_eq!(assertion.alg(), asked);
            assert_eq!(verify(assertion.expose(), alg, &certificate)["iss"], CLIENT_ID);
        }

        // The raw signer too, checked with the public key from the certificate.
        for alg in [SignAlg::Ps256, SignAlg::Rs256] {
            let signature = key.sign(alg, b"header.claims").unwrap();
            certificate.rsa_public_key().unwrap().verify(alg, b"header.claims", &signature).unwrap();
        }
    });
}

#[test]
fn reruns_find_the_key_and_an_existing_label_is_never_replaced_without_force() {
    in_softhsm("reruns_find_the_key_and_an_existing_label_is_never_replaced_without_force", |module| {
        let token = login(module);
        let first = token.generate_key("contoso-exo", false).unwrap();
        let again = token.find_key(Some("contoso-exo"), None).unwrap().unwrap();
        assert_eq!(again.id(), first.id(), "the rerun finds the same key");

        let err = token.generate_key("contoso-exo", false).unwrap_err();
        assert!(matches!(&err, Error::LabelExists { label, .. } if label == "contoso-exo"), "{err:?}");
        // Still exactly one key with that label: find_key would say Ambiguous otherwise.
        assert_eq!(token.find_key(Some("contoso-exo"), None).unwrap().unwrap().id(), first.id());

        let replaced = token.generate_key("contoso-exo", true).unwrap();
        assert_ne!(replaced.id(), first.id());
        assert!(token.find_key(None, Some(first.id())).unwrap().is_none(), "force deleted the old key");
        assert_eq!(token.find_key(Some("contoso-exo"), None).unwrap().unwrap().id(), replaced.id());

        // Rotation: the next key beside the old one, then the old one deleted with its certificate.
        let mut next = token.generate_key("contoso-exo-2", false).unwrap();
        let certificate = cba_cert::generate_with(&NewCertificate::new("contoso-exo-2"), &next).unwrap();
        token.store_certificate(&mut next, &certificate).unwrap();
        let old_id = replaced.id().to_vec();
        let listed = |token: &Token| -> Vec<(String, String, Vec<u8>)> {
            token.objects().unwrap().into_iter().map(|o| (o.class, o.label, o.id)).collect()
        };
        let mut both = vec![
            ("CKO_CERTIFICATE".to_owned(), "contoso-exo-2".to_owned(), next.id().to_vec()),
            ("CKO_PRIVATE_KEY".to_owned(), "contoso-exo".to_owned(), old_id.clone()),
            ("CKO_PRIVATE_KEY".to_owned(), "contoso-exo-2".to_owned(), next.id().to_vec()),
            ("CKO_PUBLIC_KEY".to_owned(), "contoso-exo".to_owned(), old_id.clone()),
            ("CKO_PUBLIC_KEY".to_owned(), "contoso-exo-2".to_owned(), next.id().to_vec()),
        ];
        both.sort();
        assert_eq!(listed(&token), both, "two key pairs and one certificate, the forced-out key gone");
        token.delete_key(replaced).unwrap();
        assert!(token.find_key(None, Some(&old_id)).unwrap().is_none());
        assert!(listed(&token).iter().all(|(_, label, id)| label == "contoso-exo-2" && id == next.id()));
        assert_eq!(listed(&token).len(), 3);
        assert!(token.find_key(Some("contoso-exo-2"), None).unwrap().unwrap().certificate().is_some());
    });
}

#[test]
fn a_wrong_pin_and_a_wrong_token_say_so() {
    in_softhsm("a_wrong_pin_and_a_wrong_token_say_so", |module| {
        let err = module.login(&uri(), &Pin::new("0000")).unwrap_err();
        assert!(matches!(&err, Error::PinIncorrect { token } if token == "cba"), "{err:?}");
        assert!(err.to_string().contains("CKR_PIN_INCORRECT") && !err.to_string().contains("0000"), "{err}");

        let elsewhere: KeyUri = "pkcs11:token=nope".parse().unwrap();
        let err = module.login(&elsewhere, &Pin::new(PIN)).unwrap_err();
        let Error::TokenNotFound { token, available, .. } = &err else { panic!("{err:?}") };
        assert_eq!((token.as_str(), available.as_slice()), ("nope", &["cba".to_owned()][..]));
        assert_eq!(module.token_labels().unwrap(), ["cba"]);
    });
}

#[test]
fn a_module_that_will_not_load_is_named() {
    let missing = PathBuf::from("/nonexistent/libpkcs11-missing.so");
    let err = Module::open(&missing).unwrap_err();
    let Error::ModuleLoad { path, .. } = &err else { panic!("{err:?}") };
    assert_eq!(path, &missing);
    assert!(err.to_string().contains("/nonexistent/libpkcs11-missing.so"), "{err}");
}
