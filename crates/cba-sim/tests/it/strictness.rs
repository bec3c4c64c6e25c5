//! What the sim refuses that a lenient fake would let through (issue 10 item 21): app-only tokens from a
//! tenant-less authority, assertions without `nbf` or naming their key by a bare `kid`, weak and non-RSA keys.

use cba_sim::SimTenant;
use serde_json::json;

use crate::common::*;

/// A self-signed certificate with a 1024-bit RSA key, valid until 2126 (made with `openssl req -x509 -newkey
/// rsa:1024`): cba-cert refuses to make one.
const WEAK_RSA_1024: &[u8] = include_bytes!("fixtures/weak-rsa1024.der");
/// A self-signed P-256 certificate, valid until 2126 (`openssl req -x509 -newkey ec`).
const EC_P256: &[u8] = include_bytes!("fixtures/ec-p256.der");

#[tokio::test]
async fn client_credentials_need_a_tenant_not_organizations_or_common() {
    let sim = SimTenant::builder().start().await;
    let app = exchange_ready_app(&sim).await;
    for authority in ["organizations", "common", "Common"] {
        let assertion = Assertion::new(&sim, cert(0), &app.app_id, authority).sign(cert(0));
        let (status, body) = request_token(&sim, authority, &app.app_id, &assertion, EXO_SCOPE).await;
        assert_aadsts(status, &body, 400, "invalid_request", 50059);
        assert!(body["error_description"].as_str().unwrap().contains("No tenant-identifying information"), "{body}");
    }
    // The same assertion for the tenant by id and by domain is fine.
    for tenant in [sim.tenant_id(), sim.tenant_domain()] {
        let assertion = Assertion::new(&sim, cert(0), &app.app_id, tenant).sign(cert(0));
        let (status, body) = request_token(&sim, tenant, &app.app_id, &assertion, EXO_SCOPE).await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn assertion_without_nbf_is_refused_unless_the_knob_allows_it() {
    let sim = SimTenant::builder().start().await;
    let app = exchange_ready_app(&sim).await;
    let mut a = Assertion::new(&sim, cert(0), &app.app_id, sim.tenant_id());
    a.nbf = None;
    let (status, body) = request_token(&sim, sim.tenant_id(), &app.app_id, &a.sign(cert(0)), EXO_SCOPE).await;
    assert_aadsts(status, &body, 401, "invalid_client", 700024);
    assert!(body["error_description"].as_str().unwrap().contains("no 'nbf' claim"), "{body}");

    let lenient = SimTenant::builder().require_assertion_nbf(false).start().await;
    let app = exchange_ready_app(&lenient).await;
    let mut a = Assertion::new(&lenient, cert(0), &app.app_id, lenient.tenant_id());
    a.nbf = None;
    let (status, body) = request_token(&lenient, lenient.tenant_id(), &app.app_id, &a.sign(cert(0)), EXO_SCOPE).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_bare_kid_is_not_a_thumbprint() {
    let sim = SimTenant::builder().start().await;
    let app = exchange_ready_app(&sim).await;
    // What .NET's X509SigningCredentials puts in `kid` (hex SHA-1), and the x5t value, without x5t itself.
    for kid in [cert(0).certificate.thumbprint_sha1_hex(), cert(0).certificate.x5t()] {
        let mut a = Assertion::new(&sim, cert(0), &app.app_id, sim.tenant_id());
        a.x5t = None;
        a.kid = Some(kid);
        let (status, body) = request_token(&sim, sim.tenant_id(), &app.app_id, &a.sign(cert(0)), EXO_SCOPE).await;
        assert_aadsts(status, &body, 401, "invalid_client", 700027);
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains("The key was not found., Thumbprint of key used by client: ''"), "{description}");
    }
    // Beside x5t, a kid is harmless.
    let mut a = Assertion::new(&sim, cert(0), &app.app_id, sim.tenant_id());
    a.kid = Some("anything".into());
    let (status, body) = request_token(&sim, sim.tenant_id(), &app.app_id, &a.sign(cert(0)), EXO_SCOPE).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_registered_weak_rsa_key_gets_aadsts50032() {
    let sim = SimTenant::builder().start().await;
    let weak = cba_cert::Certificate::from_der(WEAK_RSA_1024).expect("fixture");
    // Graph registers it (as Entra does); the token endpoint refuses it.
    let graph = admin(&sim);
    let body = json!({"displayName": "weak", "keyCredentials": [serde_json::to_value(weak.key_credential()).unwrap()]});
    let (status, created) = graph.post("/applications", &body).await;
    assert_eq!(status, 201, "{created}");

    let app = sim.seed_app("weak", &[WEAK_RSA_1024]).await;
    // Named by its thumbprint; the key size is checked before the signature, so any signer shows it.
    let mut a = Assertion::new(&sim, cert(0), &app.app_id, sim.tenant_id());
    a.x5t = Some(weak.x5t());
    let (status, body) = request_token(&sim, sim.tenant_id(), &app.app_id, &a.sign(cert(0)), EXO_SCOPE).await;
    assert_aadsts(status, &body, 401, "invalid_client", 50032);
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains("WeakRsaKey") && description.contains("1024-bit"), "{description}");
}

#[tokio::test]
async fn graph_refuses_a_certificate_that_is_not_rsa() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    let ec = cba_cert::Certificate::from_der(EC_P256).expect("fixture");
    assert!(ec.rsa_public_key().is_none());
    let key = serde_json::to_value(ec.key_credential()).unwrap();
    let (status, error) = graph.post("/applications", &json!({"displayName": "ec", "keyCredentials": [key]})).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");
    assert!(error["error"]["message"].as_str().unwrap().contains("Invalid certificate"), "{error}");
    let (id, _) = create_app(&graph, json!({"displayName": "rsa first"})).await;
    let (status, error) = graph.patch(&format!("/applications/{id}"), &json!({"keyCredentials": [key]})).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");
    assert!(sim.state().await.primary().applications.iter().all(|a| a.key_credentials.is_empty()));
}
