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

#[test]
fn a_1024_bit_key_is_too_small_not_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    tool(
        "openssl",
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
    tool(
        "openssl",
        &["pkcs12", "-export", "-in", "c.pem", "-inkey", "k.pem", "-out", "small.pfx", "-passout", "pass:pw"],
        dir.path(),
    );
    let pfx = std::fs::read(dir.path().join("small.pfx")).unwrap();
    let err = cba_cert::load(&pfx, Some(&Password::new("pw"))).unwrap_err();
    assert!(matches!(err, Error::KeyTooSmall { bits: 1024 }), "{err:?}");
    let shown = err.to_string();
    assert!(shown.contains("too small (1024-bit)") && shown.contains("2048"), "{shown}");
    assert!(!shown.contains("corrupt"), "{shown}");
    let pem = std::fs::read(dir.path().join("k.pem")).unwrap();
    let cert = std::fs::read(dir.path().join("c.pem")).unwrap();
    assert!(matches!(cba_cert::load(&[cert.clone(), pem].concat(), None), Err(Error::KeyTooSmall { bits: 1024 })));
    // The certificate alone loads, and says why Entra will refuse it.
    let id = cba_cert::load(&cert, None).unwrap();
    assert_eq!(id.problems(OffsetDateTime::now_utc(), false), vec![Problem::KeyTooSmall { bits: 1024 }]);
    assert!(id.problems(OffsetDateTime::now_utc(), false)[0].to_string().contains("1024-bit"));
}

/// The MAC digest of a PFX written by cba: the last `OCTET STRING` of 32 bytes (HMAC-SHA256).
fn mac_digest_position(pfx: &[u8]) -> usize {
    (0..pfx.len() - 34).rev().find(|&i| pfx[i] == 0x04 && pfx[i + 1] == 0x20).expect("a 32-byte MAC") + 2
}

#[test]
fn a_failed_integrity_check_says_what_it_can() {
    let right = Password::new("right");
    let pfx = shared_identity().to_pfx(Some(&right), PfxFormat::Modern).unwrap();
    // A wrong password and a damaged file look the same to PKCS#12: the message says both.
    let wrong = cba_cert::load(&pfx, Some(&Password::new("wrong"))).unwrap_err();
    assert!(matches!(wrong, Error::WrongPassword { given: true }));
    assert!(wrong.to_string().contains("wrong password, or the PKCS#12 file is damaged"), "{wrong}");

    // A damaged MAC, with the right password: the contents still decrypt, so it is damage, not the password.
    let mut damaged = pfx.clone();
    damaged[mac_digest_position(&pfx) + 5] ^= 0x01;
    let err = cba_cert::load(&damaged, Some(&right)).unwrap_err();
    assert!(matches!(err, Error::Corrupt { format: cba_cert::Format::Pkcs12, .. }), "{err:?}");
    assert!(err.to_string().contains("damaged") && !err.to_string().contains("wrong password"), "{err}");
    // ... while with a wrong password it is still "wrong password, or damaged".
    assert!(matches!(cba_cert::load(&damaged, Some(&Password::new("wrong"))), Err(Error::WrongPassword { .. })));

    // No flipped byte ever loads as something else, and a flip reported as damage really is one.
    for pos in (0..pfx.len()).step_by(5) {
        let mut bytes = pfx.clone();
        bytes[pos] ^= 0x10;
        match cba_cert::load(&bytes, Some(&right)) {
            Ok(id) => assert_eq!(id.certificate, shared_identity().certificate, "flip at {pos}"),
            Err(Error::WrongPassword { given: true } | Error::Corrupt { .. } | Error::UnknownFormat { .. }) => {}
            Err(other) => panic!("flip at {pos}: {other:?}"),
        }
    }
}

#[test]
fn problems_describe_without_naming_commands() {
    let expired = Problem::Expired { not_after: datetime!(2021-01-02 00:00:00 UTC) };
    let cases = [
        expired,
        Problem::NotRsa { algorithm: "an elliptic-curve key".into() },
        Problem::KeyTooSmall { bits: 1024 },
        Problem::NoPrivateKey,
        Problem::KeyMismatch,
        Problem::NotYetValid { not_before: datetime!(2031-01-02 00:00:00 UTC) },
    ];
    for p in cases {
        let text = p.to_string();
        assert!(!text.contains("cba ") && !text.contains("--"), "{}: {text}", p.code());
    }
}
