//! Client assertions signed by a key that is not a file (`ClientCertificate::with_signer`), checked by jsonwebtoken
//! with nothing but the certificate's public key.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cba_cert::{KeySigner, PrivateKey, RsaPublicKey, SignAlg};
use cba_token::{AssertionAlg, AssertionOptions, ClientCertificate, Error};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::support::{CLIENT_ID, TENANT, identity, jwt_parts, now, other_identity};

const AUD: &str = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";

/// A key behind the trait only, like a token's: it offers `algorithms` and counts what it signs.
struct Remote {
    key: PrivateKey,
    algorithms: Vec<SignAlg>,
    signed: AtomicUsize,
    fail: bool,
}

impl Remote {
    fn offering(algorithms: &[SignAlg]) -> Arc<Remote> {
        let key = identity().private_key.unwrap();
        Arc::new(Remote { key, algorithms: algorithms.to_vec(), signed: 0.into(), fail: false })
    }
}

impl KeySigner for Remote {
    fn public_key(&self) -> &RsaPublicKey {
        self.key.public_key()
    }

    fn algorithms(&self) -> &[SignAlg] {
        &self.algorithms
    }

    fn sign(&self, alg: SignAlg, message: &[u8]) -> Result<Vec<u8>, cba_cert::Error> {
        if self.fail {
            return Err(cba_cert::Error::Signer("CKR_DEVICE_REMOVED".into()));
        }
        assert!(self.algorithms.contains(&alg), "asked for {alg}, which this key does not offer");
        self.signed.fetch_add(1, Ordering::SeqCst);
        KeySigner::sign(&self.key, alg, message)
    }
}

fn credential(signer: Arc<Remote>) -> ClientCertificate {
    ClientCertificate::with_signer(identity().certificate, signer, TENANT, CLIENT_ID).unwrap()
}

/// Verify as a relying party would: signature with the certificate's public key, audience, issuer, expiry.
fn verify(jwt: &str, alg: Algorithm) -> serde_json::Value {
    let public = identity().certificate.rsa_public_key().unwrap().clone();
    let key = DecodingKey::from_rsa_raw_components(&public.modulus, &public.exponent);
    let mut validation = Validation::new(alg);
    validation.set_audience(&[AUD]);
    validation.set_issuer(&[CLIENT_ID]);
    jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &validation).unwrap_or_else(|e| panic!("{alg:?}: {e}")).claims
}

#[test]
fn a_remote_key_signs_ps256_and_rs256_that_verify_with_the_certificate() {
    for (asked, alg, thumbprint) in
        [(AssertionAlg::Ps256, Algorithm::PS256, "x5t#S256"), (AssertionAlg::Rs256, Algorithm::RS256, "x5t")]
    {
        let remote = Remote::offering(&[SignAlg::Ps256, SignAlg::Rs256]);
        let cert = credential(remote.clone());
        let options = AssertionOptions { alg: asked, ..AssertionOptions::default() };
        let assertion = cert.sign_assertion(AUD, &options, now()).unwrap();
        assert_eq!(assertion.alg(), asked);
        assert_eq!(remote.signed.load(Ordering::SeqCst), 1, "signed by the remote key");
        let claims = verify(assertion.expose(), alg);
        assert_eq!(claims["sub"], CLIENT_ID);
        let (header, _) = jwt_parts(assertion.expose());
        assert_eq!(header["alg"], asked.name());
        let expected = match asked {
            AssertionAlg::Ps256 => identity().certificate.x5t_s256(),
            AssertionAlg::Rs256 => identity().certificate.x5t(),
        };
        assert_eq!(header[thumbprint], expected.as_str());
    }
}

#[test]
fn a_key_without_pss_signs_rs256_and_says_so() {
    let cert = credential(Remote::offering(&[SignAlg::Rs256]));
    assert_eq!(cert.assertion_alg(AssertionAlg::Ps256), AssertionAlg::Rs256);
    let assertion = cert.sign_assertion(AUD, &AssertionOptions::default(), now()).unwrap();
    assert_eq!(assertion.alg(), AssertionAlg::Rs256);
    verify(assertion.expose(), Algorithm::RS256);
    let (header, _) = jwt_parts(assertion.expose());
    assert!(header.get("x5t#S256").is_none() && header.get("x5t").is_some(), "{header}");
}

#[test]
fn rs256_asked_of_a_pss_only_key_is_an_error_not_a_switch() {
    let cert = credential(Remote::offering(&[SignAlg::Ps256]));
    let options = AssertionOptions { alg: AssertionAlg::Rs256, ..AssertionOptions::default() };
    let err = cert.sign_assertion(AUD, &options, now()).unwrap_err();
    assert!(matches!(err, Error::Sign(cba_cert::Error::UnsupportedAlgorithm { alg: SignAlg::Rs256 })), "{err:?}");
}

#[test]
fn a_file_key_signs_the_same_jwt_shape_through_the_trait() {
    let file = ClientCertificate::new(identity(), TENANT, CLIENT_ID).unwrap();
    let assertion = file.sign_assertion(AUD, &AssertionOptions::default(), now()).unwrap();
    assert_eq!(assertion.alg(), AssertionAlg::Ps256);
    verify(assertion.expose(), Algorithm::PS256);
}

#[test]
fn the_certificate_must_hold_the_signers_key() {
    let err = ClientCertificate::with_signer(
        other_identity().certificate,
        Remote::offering(&[SignAlg::Ps256]),
        TENANT,
        CLIENT_ID,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Certificate(cba_cert::Error::KeyMismatch)), "{err:?}");
}

#[test]
fn the_stores_failure_is_a_sign_error_with_its_source() {
    let remote = Arc::new(Remote { fail: true, ..Arc::into_inner(Remote::offering(&[SignAlg::Ps256])).unwrap() });
    let err = credential(remote).sign_assertion(AUD, &AssertionOptions::default(), now()).unwrap_err();
    let Error::Sign(cba_cert::Error::Signer(source)) = &err else { panic!("{err:?}") };
    assert_eq!(source.to_string(), "CKR_DEVICE_REMOVED");
}
