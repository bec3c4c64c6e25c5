//! Certificates signed through `KeySigner`: a key that rcgen never sees, checked by OpenSSL.

use std::sync::atomic::{AtomicUsize, Ordering};

use cba_cert::{Error, KeySigner, NewCertificate, PrivateKey, RsaPublicKey, SignAlg, Validity};

use super::{shared_identity, tool};

/// A key held "elsewhere": only the trait is visible, and every call is counted.
struct Remote {
    key: PrivateKey,
    algorithms: Vec<SignAlg>,
    /// Answer every request with this scheme instead (a signer that lies).
    answer_with: Option<SignAlg>,
    fail: bool,
    calls: AtomicUsize,
}

impl Remote {
    fn new() -> Remote {
        let key = shared_identity().private_key.clone().unwrap();
        Remote {
            key,
            algorithms: vec![SignAlg::Ps256, SignAlg::Rs256],
            answer_with: None,
            fail: false,
            calls: 0.into(),
        }
    }
}

impl KeySigner for Remote {
    fn public_key(&self) -> &RsaPublicKey {
        self.key.public_key()
    }

    fn algorithms(&self) -> &[SignAlg] {
        &self.algorithms
    }

    fn sign(&self, alg: SignAlg, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail {
            return Err(Error::Signer("the token was removed".into()));
        }
        KeySigner::sign(&self.key, self.answer_with.unwrap_or(alg), message)
    }
}

#[test]
fn a_certificate_signed_through_the_trait_verifies_in_openssl() {
    let remote = Remote::new();
    let request = NewCertificate::new("contoso-exo").validity(Validity::Days(30));
    let cert = cba_cert::generate_with(&request, &remote).unwrap();
    assert_eq!(remote.calls.load(Ordering::SeqCst), 1);
    assert_eq!(cert.subject(), "CN=contoso-exo");
    assert_eq!(cert.rsa_public_key(), Some(remote.public_key()));
    assert_ne!(cert, shared_identity().certificate, "a new certificate for the same key");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.pem"), cert.to_pem()).unwrap();
    // The certificate is its own trust anchor; -check_ss_sig makes OpenSSL check the self-signature too.
    let out = tool(
        "openssl",
        &["verify", "-partial_chain", "-check_ss_sig", "-purpose", "sslclient", "-CAfile", "c.pem", "c.pem"],
        dir.path(),
    );
    assert!(out.contains("c.pem: OK"), "{out}");
    let text = tool("openssl", &["x509", "-in", "c.pem", "-noout", "-text"], dir.path());
    assert!(text.contains("Signature Algorithm: sha256WithRSAEncryption"), "{text}");
}

#[test]
fn a_signer_that_answers_with_another_scheme_gives_no_certificate() {
    let remote = Remote { answer_with: Some(SignAlg::Ps256), ..Remote::new() };
    let err = cba_cert::generate_with(&NewCertificate::new("x"), &remote).unwrap_err();
    assert!(matches!(err, Error::BadSignature { alg: SignAlg::Rs256 }), "{err:?}");
}

#[test]
fn the_signers_failure_comes_back_as_it_was() {
    let remote = Remote { fail: true, ..Remote::new() };
    let err = cba_cert::generate_with(&NewCertificate::new("x"), &remote).unwrap_err();
    let Error::Signer(source) = &err else { panic!("{err:?}") };
    assert_eq!(source.to_string(), "the token was removed");
}

#[test]
fn a_signer_without_rs256_is_refused_before_signing() {
    let remote = Remote { algorithms: vec![SignAlg::Ps256], ..Remote::new() };
    let err = cba_cert::generate_with(&NewCertificate::new("x"), &remote).unwrap_err();
    assert!(matches!(err, Error::UnsupportedAlgorithm { alg: SignAlg::Rs256 }), "{err:?}");
    assert_eq!(remote.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn a_file_key_signs_both_schemes_and_verify_tells_them_apart() {
    let key = shared_identity().private_key.as_ref().unwrap();
    let public = key.public_key();
    for alg in [SignAlg::Rs256, SignAlg::Ps256] {
        let signature = KeySigner::sign(key, alg, b"header.claims").unwrap();
        assert_eq!(signature.len(), 256);
        public.verify(alg, b"header.claims", &signature).unwrap();
        assert!(matches!(public.verify(alg, b"header.claimz", &signature), Err(Error::BadSignature { .. })));
        let other = if alg == SignAlg::Rs256 { SignAlg::Ps256 } else { SignAlg::Rs256 };
        assert!(public.verify(other, b"header.claims", &signature).is_err(), "{alg} is not {other}");
    }
}
