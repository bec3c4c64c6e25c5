//! Client assertions: claims and headers per the Entra docs, signatures checked by OpenSSL and Python.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use cba_token::{AssertionAlg, AssertionOptions, ClientCertificate, Error};

use crate::support::{CLIENT_ID, TENANT, cert, identity, jwt_parts, now, other_identity};

const AUD: &str = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";

fn sign(alg: AssertionAlg, send_x5c: bool) -> String {
    let options = AssertionOptions { alg, send_x5c, ..AssertionOptions::default() };
    cert().sign_assertion(AUD, &options, now()).unwrap().expose().to_owned()
}

#[test]
fn default_is_ps256_with_sha256_thumbprint_and_spec_claims() {
    let at = now();
    let jwt = cert().sign_assertion(AUD, &AssertionOptions::default(), at).unwrap();
    let (header, claims) = jwt_parts(jwt.expose());
    assert_eq!(header["alg"], "PS256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["x5t#S256"].as_str().unwrap().len(), 43);
    assert!(header.get("x5t").is_none(), "PS256 names the cert by SHA-256 only: {header}");
    assert!(header.get("x5c").is_none());
    assert_eq!(claims["aud"], AUD);
    assert_eq!(claims["iss"], CLIENT_ID);
    assert_eq!(claims["sub"], CLIENT_ID);
    let t = at.unix_timestamp();
    assert_eq!(claims["nbf"], t);
    assert_eq!(claims["iat"], t);
    assert_eq!(claims["exp"], t + 600);
    let jti = uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).unwrap();
    assert_eq!(jti.get_version_num(), 4);
    let (_, again) = jwt_parts(cert().sign_assertion(AUD, &AssertionOptions::default(), at).unwrap().expose());
    assert_ne!(claims["jti"], again["jti"], "every assertion needs a fresh jti");
}

#[test]
fn rs256_names_the_certificate_by_sha1() {
    let (header, _) = jwt_parts(&sign(AssertionAlg::Rs256, false));
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["x5t"].as_str().unwrap().len(), 27);
    assert!(header.get("x5t#S256").is_none());
}

#[test]
fn x5c_carries_the_certificate_in_standard_base64() {
    let (header, _) = jwt_parts(&sign(AssertionAlg::Ps256, true));
    let chain = header["x5c"].as_array().unwrap();
    assert_eq!(chain.len(), 1);
    let der = base64::engine::general_purpose::STANDARD.decode(chain[0].as_str().unwrap()).unwrap();
    assert_eq!(der, identity().certificate.der());
}

#[test]
fn lifetime_is_bounded_by_ten_minutes() {
    let at = now();
    let sign_for = |secs| {
        let options = AssertionOptions { lifetime: Duration::from_secs(secs), ..AssertionOptions::default() };
        cert().sign_assertion(AUD, &options, at)
    };
    let (_, claims) = jwt_parts(sign_for(300).unwrap().expose());
    assert_eq!(claims["exp"], at.unix_timestamp() + 300);
    for bad in [0, 601, 3600] {
        assert!(matches!(sign_for(bad), Err(Error::Invalid { .. })), "lifetime {bad} s must be refused");
    }
}

#[test]
fn unusable_identities_are_refused() {
    let mut no_key = identity();
    no_key.private_key = None;
    assert!(matches!(ClientCertificate::new(no_key, TENANT, CLIENT_ID), Err(Error::Certificate(_))));
    let mut mismatched = identity();
    mismatched.private_key = other_identity().private_key;
    assert!(matches!(ClientCertificate::new(mismatched, TENANT, CLIENT_ID), Err(Error::Certificate(_))));
    for (tenant, client) in [("contoso/../x", CLIENT_ID), ("", CLIENT_ID), (TENANT, "a b"), (TENANT, "")] {
        assert!(
            matches!(ClientCertificate::new(identity(), tenant, client), Err(Error::Invalid { .. })),
            "{tenant:?} {client:?}"
        );
    }
}

#[test]
fn assertions_parse_as_algorithms() {
    assert_eq!("ps256".parse::<AssertionAlg>().unwrap(), AssertionAlg::Ps256);
    assert_eq!("RS256".parse::<AssertionAlg>().unwrap(), AssertionAlg::Rs256);
    assert!("hs256".parse::<AssertionAlg>().is_err());
}

// ---- independent verification -------------------------------------------------------------------------------

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), identity().certificate.to_pem()).unwrap();
        let out = openssl(dir.path(), &["x509", "-in", "cert.pem", "-pubkey", "-noout", "-out", "pub.pem"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Files { dir }
    }

    /// Write the JWT's signing input and signature; returns nothing, the files are data.bin and sig.bin.
    fn write_jwt(&self, jwt: &str) {
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig).unwrap();
        std::fs::write(self.dir.path().join("data.bin"), input).unwrap();
        std::fs::write(self.dir.path().join("sig.bin"), sig).unwrap();
    }

    fn openssl_verify(&self, pss: bool) -> bool {
        let mut args = vec!["dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig.bin"];
        if pss {
            // PS256 = RSASSA-PSS, SHA-256, MGF1-SHA-256, salt length 32 (the digest length).
            args.extend(["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"]);
        }
        args.push("data.bin");
        let out = openssl(self.dir.path(), &args);
        let verified = String::from_utf8_lossy(&out.stdout).contains("Verified OK");
        assert_eq!(out.status.success(), verified, "exit status and output disagree");
        verified
    }
}

fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("openssl").args(args).current_dir(dir).output().expect("openssl must be installed for this test")
}

#[test]
fn openssl_verifies_rs256_and_ps256_signatures() {
    let files = Files::new();

    files.write_jwt(&sign(AssertionAlg::Rs256, false));
    assert!(files.openssl_verify(false), "RS256 must verify as PKCS#1 v1.5");
    assert!(!files.openssl_verify(true), "an RS256 signature must not verify as PSS");

    files.write_jwt(&sign(AssertionAlg::Ps256, true));
    assert!(files.openssl_verify(true), "PS256 must verify as PSS with salt length 32");
    assert!(!files.openssl_verify(false), "a PS256 signature must not verify as PKCS#1 v1.5");

    // Negative control: the same signature over different bytes fails, so the checks above can fail.
    let mut data = std::fs::read(files.dir.path().join("data.bin")).unwrap();
    data[10] ^= 1;
    std::fs::write(files.dir.path().join("data.bin"), data).unwrap();
    assert!(!files.openssl_verify(true));
}

fn fingerprint(dir: &Path, digest: &str) -> String {
    let out = openssl(dir, &["x509", "-in", "cert.pem", "-noout", "-fingerprint", digest]);
    assert!(out.status.success());
    // "sha1 Fingerprint=AB:CD:..." (capitalisation varies by version)
    let text = String::from_utf8(out.stdout).unwrap();
    let hex = text.trim().split_once('=').unwrap().1.replace(':', "");
    let bytes: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn thumbprint_headers_match_openssl_fingerprints() {
    let files = Files::new();
    let (rs, _) = jwt_parts(&sign(AssertionAlg::Rs256, false));
    let (ps, _) = jwt_parts(&sign(AssertionAlg::Ps256, false));
    assert_eq!(rs["x5t"], fingerprint(files.dir.path(), "-sha1"));
    assert_eq!(ps["x5t#S256"], fingerprint(files.dir.path(), "-sha256"));
}

const PY_VERIFY: &str = r#"
import sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
cert = x509.load_pem_x509_certificate(open(sys.argv[1], 'rb').read())
data = open(sys.argv[2], 'rb').read()
sig = open(sys.argv[3], 'rb').read()
if sys.argv[4] == 'PS256':
    pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
else:
    pad = padding.PKCS1v15()
cert.public_key().verify(sig, data, pad, hashes.SHA256())
print('ok')
"#;

#[test]
fn python_cryptography_verifies_both_algorithms() {
    // An independent implementation; .ci/run installs it, and a missing one fails here rather than skipping.
    let available =
        Command::new("python3").args(["-c", "import cryptography"]).output().is_ok_and(|o| o.status.success());
    assert!(available, "python3 with the `cryptography` package is required (.ci/run installs python3-cryptography)");
    let files = Files::new();
    let d = files.dir.path();
    let run = |alg: &str| {
        let out = Command::new("python3")
            .args(["-c", PY_VERIFY, "cert.pem", "data.bin", "sig.bin", alg])
            .current_dir(d)
            .output()
            .unwrap();
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok"
    };
    files.write_jwt(&sign(AssertionAlg::Ps256, false));
    assert!(run("PS256"));
    assert!(!run("RS256"));
    files.write_jwt(&sign(AssertionAlg::Rs256, false));
    assert!(run("RS256"));
    assert!(!run("PS256"));
}
