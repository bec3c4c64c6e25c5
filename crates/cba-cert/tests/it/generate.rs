use cba_cert::{CLOCK_SKEW, Error, KeySize, NewCertificate, Validity};
use time::macros::datetime;
use x509_parser::prelude::{FromDer as _, X509Certificate};

#[test]
fn new_certificate_has_the_profile_entra_expects() {
    let now = datetime!(2026-03-01 12:00:00 UTC);
    let id = cba_cert::generate(
        &NewCertificate::new("contoso-exo").dns_name("exo.contoso.com").validity(Validity::Days(30)).now(now),
    )
    .unwrap();
    let c = &id.certificate;
    assert_eq!(c.subject(), "CN=contoso-exo");
    assert_eq!(c.issuer(), "CN=contoso-exo");
    assert_eq!(c.not_before(), now - CLOCK_SKEW);
    assert_eq!(c.not_after(), datetime!(2026-03-31 12:00:00 UTC));
    assert_eq!(c.rsa_public_key().unwrap().bits(), 2048);
    assert_eq!(id.key_matches(), Some(true));

    let (_, x509) = X509Certificate::from_der(c.der()).unwrap();
    assert_eq!(x509.signature_algorithm.algorithm.to_id_string(), "1.2.840.113549.1.1.11", "sha256WithRSAEncryption");
    let serial = x509.raw_serial();
    assert_eq!(serial.len(), 16);
    assert!(serial[0] & 0x80 == 0 && serial[0] != 0, "positive and minimally encoded");
    let ku = x509.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign());
    let eku = x509.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    let bc = x509.basic_constraints().unwrap().unwrap().value;
    assert!(!bc.ca);
    let san = x509.subject_alternative_name().unwrap().unwrap().value;
    assert_eq!(format!("{:?}", san.general_names), r#"[DNSName("exo.contoso.com")]"#);
}

#[test]
fn serials_are_random() {
    let a = cba_cert::generate(&NewCertificate::new("a")).unwrap();
    let b = cba_cert::generate(&NewCertificate::new("a")).unwrap();
    assert_ne!(a.certificate.serial_hex(), b.certificate.serial_hex());
}

#[test]
fn subject_with_several_attributes() {
    let id = cba_cert::generate(&NewCertificate::new("x").subject("CN=contoso-exo, O=Contoso, C=US")).unwrap();
    assert_eq!(id.certificate.subject(), "CN=contoso-exo, O=Contoso, C=US");
}

#[test]
fn bad_requests_are_refused_with_a_reason() {
    fn check(request: NewCertificate, expected: &str) {
        match cba_cert::generate(&request) {
            Err(Error::InvalidRequest(msg)) => assert!(msg.contains(expected), "{msg:?} should mention {expected:?}"),
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
    }
    for too_long in [Validity::Years(11), Validity::Days(3654)] {
        let err = cba_cert::generate(&NewCertificate::new("x").validity(too_long)).unwrap_err();
        assert!(matches!(err, Error::ValidityTooLong { requested } if requested == too_long), "{err:?}");
        assert!(err.to_string().contains("at most 10 years"), "{err}");
    }
    check(NewCertificate::new("x").validity(Validity::Days(0)), "at least 1 day");
    check(NewCertificate::new("x").subject("O=NoCommonName"), "no CN=");
    check(NewCertificate::new("x").subject("CN=a, XX=b"), "not supported");
    check(NewCertificate::new("x").subject("CN"), "KEY=VALUE");
    check(NewCertificate::new("x").dns_name("bücher.example"), "not a valid DNS name");
}

#[test]
fn ten_years_is_allowed_and_leap_day_rolls_back() {
    let now = datetime!(2028-02-29 00:00:00 UTC);
    let id = cba_cert::generate(&NewCertificate::new("x").validity(Validity::Years(1)).now(now)).unwrap();
    assert_eq!(id.certificate.not_after(), datetime!(2029-02-28 00:00:00 UTC));
    let id = cba_cert::generate(&NewCertificate::new("x").validity(Validity::Years(10))).unwrap();
    assert!(cba_cert::days_left(id.certificate.not_after(), time::OffsetDateTime::now_utc()) >= 3650);
}

#[test]
fn larger_keys() {
    let id = cba_cert::generate(&NewCertificate::new("x").key_size(KeySize::Rsa3072)).unwrap();
    assert_eq!(id.certificate.rsa_public_key().unwrap().bits(), 3072);
    assert_eq!(id.private_key.as_ref().unwrap().bits(), 3072);
}

#[test]
fn secrets_do_not_leak_through_debug() {
    let id = super::shared_identity();
    let debug = format!("{id:?}");
    assert!(debug.contains("[redacted]"), "{debug}");
    let pem = id.to_pem().unwrap();
    let key_b64_line = pem.lines().skip_while(|l| !l.contains("PRIVATE KEY")).nth(1).unwrap();
    assert!(!debug.contains(key_b64_line));
    assert_eq!(format!("{:?}", cba_cert::Password::new("hunter2")), "Password([redacted])");
}

#[test]
fn key_credential_matches_graph_shape() {
    let id = super::shared_identity();
    let json = serde_json::to_value(id.certificate.key_credential()).unwrap();
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD.decode(json["key"].as_str().unwrap()).unwrap();
    assert_eq!(der, id.certificate.der());
    assert_eq!(json["type"], "AsymmetricX509Cert");
    assert_eq!(json["usage"], "Verify");
    assert_eq!(json["displayName"], "CN=cba-test");
    let start = json["startDateTime"].as_str().unwrap();
    let parsed = time::OffsetDateTime::parse(start, &time::format_description::well_known::Rfc3339).unwrap();
    assert_eq!(parsed, id.certificate.not_before());
    assert!(json.get("keyId").is_none() && json.get("customKeyIdentifier").is_none());
    assert_eq!(id.certificate.x5t().len(), 27);
    assert_eq!(id.certificate.x5t_s256().len(), 43);
}
