//! Each kind of bad input gets its own error.

use cba_cert::{Error, NewCertificate, Password, PfxFormat, Problem, Validity};
use time::OffsetDateTime;
use time::macros::datetime;

use super::{shared_identity, tool};

#[test]
fn wrong_or_missing_password() {
    let pfx = shared_identity().to_pfx(Some(&Password::new("right")), PfxFormat::Modern).unwrap();
    assert!(matches!(cba_cert::load(&pfx, Some(&Password::new("wrong"))), Err(Error::WrongPassword { given: true })));
    assert!(matches!(cba_cert::load(&pfx, None), Err(Error::WrongPassword { given: false })));
    let legacy = shared_identity().to_pfx(Some(&Password::new("right")), PfxFormat::Legacy).unwrap();
    assert!(matches!(cba_cert::load(&legacy, Some(&Password::new("wrong"))), Err(Error::WrongPassword { .. })));
}

#[test]
fn unprotected_pfx_opens_without_password() {
    let pfx = shared_identity().to_pfx(None, PfxFormat::Modern).unwrap();
    let id = cba_cert::load(&pfx, None).unwrap();
    assert_eq!(id.key_matches(), Some(true));
}

#[test]
fn pfx_without_key_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.pem"), shared_identity().certificate.to_pem()).unwrap();
    tool(
        "openssl",
        &["pkcs12", "-export", "-nokeys", "-in", "c.pem", "-out", "n.pfx", "-passout", "pass:pw"],
        dir.path(),
    );
    let id = cba_cert::load(&std::fs::read(dir.path().join("n.pfx")).unwrap(), Some(&Password::new("pw"))).unwrap();
    assert!(id.private_key.is_none());
    assert_eq!(id.problems(OffsetDateTime::now_utc(), true), vec![Problem::NoPrivateKey]);
    assert!(matches!(id.signing_key(), Err(Error::NoPrivateKey)));
    assert!(matches!(id.to_pfx(None, PfxFormat::Modern), Err(Error::NoPrivateKey)));
}

#[test]
fn key_of_another_certificate_is_a_mismatch() {
    let other = cba_cert::generate(&NewCertificate::new("other")).unwrap();
    let pem = format!(
        "{}{}",
        shared_identity().certificate.to_pem(),
        other.private_key.as_ref().unwrap().pkcs8_pem().as_str()
    );
    let id = cba_cert::load(pem.as_bytes(), None).unwrap();
    assert_eq!(id.key_matches(), Some(false));
    assert_eq!(id.problems(OffsetDateTime::now_utc(), true), vec![Problem::KeyMismatch]);
    assert!(matches!(id.signing_key(), Err(Error::KeyMismatch)));
}

#[test]
fn elliptic_curve_keys_and_certificates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    tool(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "c.pem",
            "-days",
            "3",
            "-subj",
            "/CN=ec",
        ],
        dir.path(),
    );
    let cert = std::fs::read_to_string(dir.path().join("c.pem")).unwrap();
    let key = std::fs::read_to_string(dir.path().join("k.pem")).unwrap();
    let err = cba_cert::load(format!("{cert}{key}").as_bytes(), None).unwrap_err();
    assert!(matches!(err, Error::NotRsa { .. }), "{err:?}");
    assert!(err.to_string().contains("Entra certificate credentials need RSA"), "{err}");
    let id = cba_cert::load(cert.as_bytes(), None).unwrap();
    assert!(matches!(id.problems(OffsetDateTime::now_utc(), false).as_slice(), [Problem::NotRsa { .. }]));
    assert_eq!(id.certificate.facts(OffsetDateTime::now_utc()).key_bits, None);
}

#[test]
fn expired_and_not_yet_valid() {
    let id = cba_cert::generate(
        &NewCertificate::new("old").validity(Validity::Days(10)).now(datetime!(2020-01-01 00:00:00 UTC)),
    )
    .unwrap();
    let now = OffsetDateTime::now_utc();
    let problems = id.problems(now, true);
    assert!(matches!(problems.as_slice(), [Problem::Expired { .. }]), "{problems:?}");
    assert!(problems[0].to_string().contains("expired on 2020-01-11"));
    assert!(id.certificate.facts(now).days_left < 0);
    let future = cba_cert::generate(&NewCertificate::new("new").now(now + time::Duration::days(3))).unwrap();
    assert!(matches!(future.problems(now, true).as_slice(), [Problem::NotYetValid { .. }]));
}

#[test]
fn formats_are_told_apart() {
    fn check(bytes: &[u8], expected: &str) {
        let err = cba_cert::load(bytes, None).unwrap_err();
        assert!(err.to_string().contains(expected), "{err} should mention {expected:?}");
    }
    check(b"", "empty");
    check(b"hello, I am not a certificate", "without a -----BEGIN");
    check(&[0xFF, 0x00, 0x13], "neither DER nor PKCS#12");
    check(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "no certificate");
    let key_only = shared_identity().private_key.as_ref().unwrap().pkcs8_pem();
    check(key_only.as_bytes(), "without its certificate");
    check(shared_identity().private_key.as_ref().unwrap().pkcs8_der(), "bare private key");
}
