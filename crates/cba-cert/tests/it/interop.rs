//! Our files open in OpenSSL 3 and Java keytool; theirs open in ours; thumbprints agree with OpenSSL.

use cba_cert::{Password, PfxFormat};

use super::{shared_identity, tool};

const PW: &str = "Interop-Pass1";

#[test]
fn our_modern_pfx_opens_in_openssl_and_keytool() {
    let dir = tempfile::tempdir().unwrap();
    let pfx = shared_identity().to_pfx(Some(&Password::new(PW)), PfxFormat::Modern).unwrap();
    std::fs::write(dir.path().join("m.pfx"), pfx).unwrap();
    let info =
        tool("openssl", &["pkcs12", "-in", "m.pfx", "-passin", &format!("pass:{PW}"), "-info", "-nodes"], dir.path());
    assert!(info.contains("MAC: sha256"), "{info}");
    assert!(info.contains("Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC"), "{info}");
    assert!(info.contains("PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC"), "{info}");
    assert!(info.contains("BEGIN PRIVATE KEY") && info.contains("BEGIN CERTIFICATE"), "{info}");
    let list = tool("keytool", &["-list", "-storetype", "PKCS12", "-keystore", "m.pfx", "-storepass", PW], dir.path());
    assert!(list.contains("PrivateKeyEntry"), "{list}");
}

#[test]
fn our_legacy_pfx_opens_in_openssl_without_legacy_provider_and_in_keytool() {
    let dir = tempfile::tempdir().unwrap();
    let pfx = shared_identity().to_pfx(Some(&Password::new(PW)), PfxFormat::Legacy).unwrap();
    std::fs::write(dir.path().join("l.pfx"), pfx).unwrap();
    let info =
        tool("openssl", &["pkcs12", "-in", "l.pfx", "-passin", &format!("pass:{PW}"), "-info", "-nodes"], dir.path());
    assert!(info.contains("MAC: sha1"), "{info}");
    assert!(info.contains("Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC"), "{info}");
    assert!(info.contains("PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC"), "{info}");
    let list = tool("keytool", &["-list", "-storetype", "PKCS12", "-keystore", "l.pfx", "-storepass", PW], dir.path());
    assert!(list.contains("PrivateKeyEntry"), "{list}");
}

#[test]
fn our_pem_and_cer_open_in_openssl_and_thumbprints_agree() {
    let dir = tempfile::tempdir().unwrap();
    let id = shared_identity();
    std::fs::write(dir.path().join("c.cer"), id.certificate.der()).unwrap();
    std::fs::write(dir.path().join("c.pem"), id.to_pem().unwrap().as_bytes()).unwrap();
    let sha1 =
        tool("openssl", &["x509", "-in", "c.cer", "-inform", "DER", "-noout", "-fingerprint", "-sha1"], dir.path());
    let sha256 = tool("openssl", &["x509", "-in", "c.pem", "-noout", "-fingerprint", "-sha256"], dir.path());
    assert_eq!(sha1.trim().split('=').nth(1).unwrap().replace(':', ""), id.certificate.thumbprint_sha1_hex());
    assert_eq!(sha256.trim().split('=').nth(1).unwrap().replace(':', ""), id.certificate.thumbprint_sha256_hex());
    // The PEM key is PKCS#8 and belongs to the certificate: compare moduli.
    let key_mod = tool("openssl", &["rsa", "-in", "c.pem", "-noout", "-modulus"], dir.path());
    let cert_mod = tool("openssl", &["x509", "-in", "c.pem", "-noout", "-modulus"], dir.path());
    assert_eq!(key_mod.trim(), cert_mod.trim());
    let pkey = std::fs::read_to_string(dir.path().join("c.pem")).unwrap();
    assert!(pkey.contains("-----BEGIN PRIVATE KEY-----"), "PKCS#8, not PKCS#1");
}

/// Make a key + certificate with OpenSSL, return the folder.
fn openssl_pair() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    tool(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "c.pem",
            "-days",
            "30",
            "-subj",
            "/CN=from-openssl",
        ],
        dir.path(),
    );
    dir
}

fn check_loads(dir: &std::path::Path, file: &str, expected: PfxFormat) {
    let bytes = std::fs::read(dir.join(file)).unwrap();
    let id = cba_cert::load(&bytes, Some(&Password::new(PW))).unwrap();
    assert_eq!(id.pfx_format, Some(expected), "{file}");
    assert_eq!(id.key_matches(), Some(true), "{file}");
    let fp = tool("openssl", &["x509", "-in", "c.pem", "-noout", "-fingerprint", "-sha1"], dir);
    assert_eq!(fp.trim().split('=').nth(1).unwrap().replace(':', ""), id.certificate.thumbprint_sha1_hex());
    assert!(matches!(
        cba_cert::load(&bytes, Some(&Password::new("wrong"))),
        Err(cba_cert::Error::WrongPassword { given: true })
    ));
}

#[test]
fn we_load_openssl_default_and_legacy_pfx() {
    let dir = openssl_pair();
    let pass = format!("pass:{PW}");
    tool(
        "openssl",
        &["pkcs12", "-export", "-inkey", "k.pem", "-in", "c.pem", "-out", "d.pfx", "-passout", &pass],
        dir.path(),
    );
    check_loads(dir.path(), "d.pfx", PfxFormat::Modern);
    tool(
        "openssl",
        &["pkcs12", "-export", "-legacy", "-inkey", "k.pem", "-in", "c.pem", "-out", "l.pfx", "-passout", &pass],
        dir.path(),
    );
    check_loads(dir.path(), "l.pfx", PfxFormat::LegacyRc2);
    // 3DES for both bags, as Windows Server 2016 exports.
    tool(
        "openssl",
        &[
            "pkcs12",
            "-export",
            "-certpbe",
            "PBE-SHA1-3DES",
            "-keypbe",
            "PBE-SHA1-3DES",
            "-macalg",
            "sha1",
            "-inkey",
            "k.pem",
            "-in",
            "c.pem",
            "-out",
            "w.pfx",
            "-passout",
            &pass,
        ],
        dir.path(),
    );
    check_loads(dir.path(), "w.pfx", PfxFormat::Legacy);
}

#[test]
fn we_load_keytool_pfx() {
    let dir = tempfile::tempdir().unwrap();
    tool(
        "keytool",
        &[
            "-genkeypair",
            "-alias",
            "exo",
            "-keyalg",
            "RSA",
            "-keysize",
            "2048",
            "-dname",
            "CN=from-keytool",
            "-validity",
            "30",
            "-storetype",
            "PKCS12",
            "-keystore",
            "k.pfx",
            "-storepass",
            PW,
        ],
        dir.path(),
    );
    let bytes = std::fs::read(dir.path().join("k.pfx")).unwrap();
    let id = cba_cert::load(&bytes, Some(&Password::new(PW))).unwrap();
    assert_eq!(id.certificate.subject(), "CN=from-keytool");
    assert_eq!(id.key_matches(), Some(true));
    tool(
        "keytool",
        &["-exportcert", "-alias", "exo", "-keystore", "k.pfx", "-storepass", PW, "-file", "k.cer"],
        dir.path(),
    );
    let cer = std::fs::read(dir.path().join("k.cer")).unwrap();
    assert_eq!(cba_cert::load(&cer, None).unwrap().certificate, id.certificate);
}

#[test]
fn we_load_pem_with_pkcs1_key_and_der_and_pem_regardless_of_extension() {
    let dir = openssl_pair();
    tool("openssl", &["rsa", "-in", "k.pem", "-traditional", "-out", "k1.pem"], dir.path());
    let cert = std::fs::read_to_string(dir.path().join("c.pem")).unwrap();
    let key1 = std::fs::read_to_string(dir.path().join("k1.pem")).unwrap();
    assert!(key1.contains("BEGIN RSA PRIVATE KEY"));
    let id = cba_cert::load(format!("{key1}{cert}").as_bytes(), None).unwrap();
    assert_eq!(id.key_matches(), Some(true));
    assert_eq!(id.certificate.subject(), "CN=from-openssl");
    // DER content in a file someone named .pem, PEM content named .cer: detection is by content.
    tool("openssl", &["x509", "-in", "c.pem", "-outform", "DER", "-out", "c.der"], dir.path());
    let der = std::fs::read(dir.path().join("c.der")).unwrap();
    assert_eq!(cba_cert::load(&der, None).unwrap().certificate, id.certificate);
    assert_eq!(cba_cert::load(cert.as_bytes(), None).unwrap().certificate, id.certificate);
}
