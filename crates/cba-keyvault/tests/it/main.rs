//! cba-keyvault against cba-sim's vault and managed-identity endpoint.

use std::sync::Arc;
use std::time::Duration;

use cba_cert::{KeySigner, SignAlg};
use cba_http::{HttpConfig, RetryPolicy, StaticToken, TokenSource};
use cba_keyvault::{CertificatePolicy, CertificateUrl, Error, ManagedIdentity, VaultClient, VaultSigner};
use cba_sim::SimTenant;

fn url(sim: &SimTenant, name: &str) -> CertificateUrl {
    format!("{}/certificates/{name}", sim.keyvault_url()).parse().expect("the sim's vault URL parses")
}

fn client_with(sim: &SimTenant, token: Arc<dyn TokenSource>, policy: RetryPolicy) -> VaultClient {
    VaultClient::new(&url(sim, "x"), HttpConfig::new().platform_roots(false), token, policy).unwrap()
}

fn client(sim: &SimTenant) -> VaultClient {
    client_with(sim, Arc::new(StaticToken::new(sim.keyvault_token())), RetryPolicy::fast())
}

#[tokio::test]
async fn create_wait_read_and_sign_with_both_algorithms() {
    let sim = SimTenant::builder().keyvault_pending_polls(2).start().await;
    let vault = client(&sim);
    assert!(vault.find_certificate("contoso-exo").await.unwrap().is_none());
    let made = vault.create_certificate("contoso-exo", &CertificatePolicy::new("CN=contoso-exo")).await.unwrap();
    assert_eq!(made.certificate.subject(), "CN=contoso-exo");
    assert!(made.kid.starts_with(&format!("{}/keys/contoso-exo/", sim.keyvault_url())), "{}", made.kid);
    assert_eq!(made.url.version(), Some(made.version.as_str()));
    let days = (made.certificate.not_after() - made.certificate.not_before()).whole_days();
    assert!((364..=367).contains(&days), "12 months: {days} days");
    let snapshot = sim.keyvault_certificates();
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0].thumbprint, made.certificate.thumbprint_sha1_hex());
    assert!(!snapshot[0].exportable, "the policy asks for a key that cannot be exported");

    // Sign from inside this (current-thread) runtime: the signer has its own thread.
    let public = made.certificate.rsa_public_key().unwrap().clone();
    let signer = VaultSigner::new(&vault, made.clone()).unwrap();
    for alg in [SignAlg::Ps256, SignAlg::Rs256] {
        let signature = signer.sign(alg, b"header.payload").unwrap();
        assert_eq!(signature.len(), 256);
        public.verify(alg, b"header.payload", &signature).unwrap();
        assert!(public.verify(alg, b"header.payloaD", &signature).is_err(), "the signature is over the message");
    }
    assert_eq!(sim.keyvault_sign_count(), 2);

    // A second create is the next version; both stay readable.
    let next = vault.create_certificate("contoso-exo", &CertificatePolicy::new("CN=contoso-exo")).await.unwrap();
    assert_ne!(next.version, made.version);
    assert_ne!(next.certificate.thumbprint_sha1(), made.certificate.thumbprint_sha1());
    let latest = vault.get_certificate("contoso-exo", None).await.unwrap();
    assert_eq!(latest.version, next.version);
    let old = vault.get_certificate("contoso-exo", Some(&made.version)).await.unwrap();
    assert_eq!(old.certificate.der(), made.certificate.der());
}

#[test]
fn the_signer_works_outside_any_runtime() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (sim, made, vault) = rt.block_on(async {
        let sim = SimTenant::builder().start().await;
        let vault = client(&sim);
        let made = vault.create_certificate("plain", &CertificatePolicy::new("CN=plain")).await.unwrap();
        (sim, made, vault)
    });
    let signer = VaultSigner::new(&vault, made.clone()).unwrap();
    let signature = signer.sign(SignAlg::Rs256, b"m").unwrap();
    made.certificate.rsa_public_key().unwrap().verify(SignAlg::Rs256, b"m", &signature).unwrap();
    drop(sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signer_works_inside_a_multi_threaded_runtime() {
    let sim = SimTenant::builder().start().await;
    let vault = client(&sim);
    let made = vault.create_certificate("mt", &CertificatePolicy::new("CN=mt")).await.unwrap();
    let signer = VaultSigner::new(&vault, made).unwrap();
    signer.sign(SignAlg::Ps256, b"m").unwrap();
}

#[tokio::test]
async fn a_wrong_token_is_401_with_the_challenge() {
    let sim = SimTenant::builder().start().await;
    // A Graph token: signed by the sim, but for another audience.
    let vault = client_with(&sim, Arc::new(StaticToken::new(sim.admin_token())), RetryPolicy::fast());
    let err = vault.get_certificate("x", None).await.unwrap_err();
    let Error::Unauthorized { authorization, resource, message, .. } = &err else { panic!("{err:?}") };
    assert_eq!(authorization.as_deref(), Some(format!("{}/{}", sim.login_url(), sim.tenant_id()).as_str()));
    assert_eq!(resource.as_deref(), Some("https://vault.azure.net"));
    assert!(message.contains("audience"), "{message}");
    let text = err.to_string();
    assert!(!text.contains(&sim.admin_token()), "no token in the error");
}

#[tokio::test]
async fn forbidden_by_rbac_is_structured_and_creates_nothing() {
    let sim = SimTenant::builder().keyvault_forbidden(true).start().await;
    let vault = client(&sim);
    let err = vault.create_certificate("exo", &CertificatePolicy::new("CN=exo")).await.unwrap_err();
    let Error::Forbidden { code, action, .. } = &err else { panic!("{err:?}") };
    assert_eq!(code, "ForbiddenByRbac");
    assert!(action.contains("exo"), "{action}");
    assert!(err.is_forbidden());
    sim.set_keyvault_forbidden(false);
    assert!(sim.keyvault_certificates().is_empty());
}

#[tokio::test]
async fn missing_certificate_and_key_are_404() {
    let sim = SimTenant::builder().start().await;
    let vault = client(&sim);
    let err = vault.get_certificate("nope", None).await.unwrap_err();
    let Error::NotFound { code, object, .. } = &err else { panic!("{err:?}") };
    assert_eq!(code, "CertificateNotFound");
    assert!(object.contains("nope"), "{object}");
    let kid = format!("{}/keys/nope/0123", sim.keyvault_url());
    let err = vault.sign(&kid, SignAlg::Rs256, &[0; 32]).await.unwrap_err();
    assert!(matches!(&err, Error::NotFound { code, .. } if code == "KeyNotFound"), "{err:?}");
}

#[tokio::test]
async fn a_key_id_outside_the_vault_gets_no_token() {
    let sim = SimTenant::builder().start().await;
    let vault = client(&sim);
    let err = vault.sign("http://127.0.0.1:1/keyvault/other/keys/k/v", SignAlg::Rs256, &[0; 32]).await.unwrap_err();
    assert!(err.to_string().contains("refusing to send the vault token elsewhere"), "{err}");
    assert!(sim.requests().await.is_empty(), "nothing was sent");
}

#[tokio::test]
async fn throttling_is_retried_and_exhaustion_is_structured() {
    let sim = SimTenant::builder().keyvault_throttle_burst(3).retry_after(Duration::ZERO).start().await;
    let vault = client(&sim);
    vault.create_certificate("exo", &CertificatePolicy::new("CN=exo")).await.unwrap();
    assert_eq!(sim.keyvault_certificates().len(), 1);

    let sim = SimTenant::builder().keyvault_throttle_burst(1000).retry_after(Duration::ZERO).start().await;
    let policy = RetryPolicy { max_attempts: 3, ..RetryPolicy::fast() };
    let vault = client_with(&sim, Arc::new(StaticToken::new(sim.keyvault_token())), policy);
    let err = vault.get_certificate("exo", None).await.unwrap_err();
    assert!(matches!(err, Error::RetriesExhausted { status: 429, attempts: 3, .. }), "{err:?}");
}

#[tokio::test]
async fn a_create_answered_500_after_it_ran_is_not_sent_again() {
    let sim = SimTenant::builder().keyvault_fail_after_create(1).start().await;
    let vault = client(&sim);
    let made = vault.create_certificate("exo", &CertificatePolicy::new("CN=exo")).await.unwrap();
    let versions = sim.keyvault_certificates();
    assert_eq!(versions.len(), 1, "one version, not two: {versions:?}");
    assert_eq!(versions[0].version, made.version);
    let creates = sim.requests().await.iter().filter(|r| r.method == "POST" && r.path.contains("/create")).count();
    assert_eq!(creates, 1);
}

#[tokio::test]
async fn a_5xx_on_reads_is_retried() {
    let sim = SimTenant::builder().keyvault_fail_5xx_burst(2).retry_after(Duration::ZERO).start().await;
    let vault = client(&sim);
    assert!(vault.find_certificate("exo").await.unwrap().is_none());
}

#[tokio::test]
async fn a_failed_operation_is_pending_failed() {
    let sim = SimTenant::builder().keyvault_fail_pending(true).start().await;
    let vault = client(&sim);
    let err = vault.create_certificate("exo", &CertificatePolicy::new("CN=exo")).await.unwrap_err();
    assert!(matches!(&err, Error::PendingFailed { status, .. } if status == "failed"), "{err:?}");
}

#[tokio::test]
async fn a_slow_operation_times_out_at_the_deadline() {
    let sim = SimTenant::builder().keyvault_pending_polls(10_000).start().await;
    let policy = RetryPolicy { deadline: Duration::from_millis(300), ..RetryPolicy::fast() };
    let vault = client_with(&sim, Arc::new(StaticToken::new(sim.keyvault_token())), policy);
    let err = vault.create_certificate("exo", &CertificatePolicy::new("CN=exo")).await.unwrap_err();
    assert!(matches!(err, Error::PendingTimeout { .. }), "{err:?}");
    // A rerun waits for the operation in progress instead of starting another (the vault would refuse: 409).
    let err = vault.create_certificate("exo", &CertificatePolicy::new("CN=exo")).await.unwrap_err();
    assert!(matches!(err, Error::PendingTimeout { .. }), "{err:?}");
    let creates = sim.requests().await.iter().filter(|r| r.method == "POST" && r.path.contains("/create")).count();
    assert_eq!(creates, 1);
}

#[tokio::test]
async fn policies_the_vault_would_refuse_are_refused_before_sending() {
    let sim = SimTenant::builder().start().await;
    let vault = client(&sim);
    for policy in [
        CertificatePolicy { key_size: 1024, ..CertificatePolicy::new("CN=x") },
        CertificatePolicy { validity_months: 0, ..CertificatePolicy::new("CN=x") },
        CertificatePolicy::new("O=no common name"),
    ] {
        let err = vault.create_certificate("x", &policy).await.unwrap_err();
        assert!(matches!(err, Error::InvalidPolicy { .. }), "{err:?}");
    }
    assert!(sim.requests().await.is_empty());
}

#[tokio::test]
async fn managed_identity_app_service_form() {
    let sim = SimTenant::builder().start().await;
    let http = HttpConfig::new().platform_roots(false);
    let identity = ManagedIdentity::app_service(
        &sim.identity_endpoint(),
        &sim.identity_header(),
        "https://vault.azure.net",
        http.clone(),
    )
    .unwrap()
    .retry_policy(RetryPolicy::fast());
    assert!(!format!("{identity:?}").contains(&sim.identity_header()), "Debug hides the header");
    let identity: Arc<dyn TokenSource> = Arc::new(identity);
    let vault = client_with(&sim, identity.clone(), RetryPolicy::fast());
    vault.create_certificate("mi", &CertificatePolicy::new("CN=mi")).await.unwrap();
    let msi = sim.requests().await.iter().filter(|r| r.path.starts_with("/msi/token")).count();
    assert_eq!(msi, 1, "the token is cached");

    let wrong =
        ManagedIdentity::app_service(&sim.identity_endpoint(), "not-the-header", "https://vault.azure.net", http)
            .unwrap()
            .retry_policy(RetryPolicy::fast());
    let err = wrong.fetch().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Identity { .. }), "{err:?}");
    assert!(text.contains("401") && text.contains("IDENTITY_ENDPOINT"), "{text}");
    assert!(!text.contains("not-the-header"));
}

#[tokio::test]
async fn an_identity_endpoint_error_reaches_the_caller_structured() {
    let sim = SimTenant::builder().start().await;
    let identity = ManagedIdentity::app_service(
        &sim.identity_endpoint(),
        "wrong",
        "https://vault.azure.net",
        HttpConfig::new().platform_roots(false),
    )
    .unwrap()
    .retry_policy(RetryPolicy::fast());
    let vault = client_with(&sim, Arc::new(identity), RetryPolicy::fast());
    let err = vault.get_certificate("x", None).await.unwrap_err();
    assert!(matches!(err, Error::Identity { .. }), "{err:?}");
}

#[tokio::test]
async fn managed_identity_vm_form_asks_the_metadata_endpoint_with_metadata_true() {
    use wiremock::matchers::{header, method, path, query_param};
    // A stand-in for 169.254.169.254 (tests never call the real address).
    let imds = wiremock::MockServer::start().await;
    let expires = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    wiremock::Mock::given(method("GET"))
        .and(path("/metadata/identity/oauth2/token"))
        .and(header("Metadata", "true"))
        .and(query_param("api-version", "2018-02-01"))
        .and(query_param("resource", "https://vault.azure.net"))
        .and(query_param("client_id", "0f0e0d0c-user-assigned"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "vm-token",
            "expires_on": expires,
            "resource": "https://vault.azure.net",
            "token_type": "Bearer"
        })))
        .mount(&imds)
        .await;
    let endpoint = format!("{}/metadata/identity/oauth2/token", imds.uri());
    let identity = ManagedIdentity::imds(&endpoint, "https://vault.azure.net", HttpConfig::new().platform_roots(false))
        .unwrap()
        .client_id("0f0e0d0c-user-assigned")
        .retry_policy(RetryPolicy::fast());
    // Cached until five minutes before `expires_on` (a number here): one request for three tokens.
    for _ in 0..3 {
        assert_eq!(identity.token().await.unwrap(), "vm-token");
    }
    assert_eq!(imds.received_requests().await.unwrap().len(), 1);
    let (token, at) = identity.fetch().await.unwrap();
    assert_eq!((token.as_str(), at.unix_timestamp()), ("vm-token", expires));
}

#[tokio::test]
async fn a_signature_that_does_not_verify_is_refused() {
    let sim = SimTenant::builder().keyvault_wrong_signatures(true).start().await;
    let vault = client(&sim);
    let made = vault.create_certificate("exo", &CertificatePolicy::new("CN=exo")).await.unwrap();
    let signer = VaultSigner::new(&vault, made).unwrap();
    let err = signer.sign(SignAlg::Ps256, b"header.payload").unwrap_err();
    assert!(matches!(err, cba_cert::Error::Signer(_)), "{err:?}");
    let source = std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default();
    assert!(source.contains("does not verify with the certificate's public key"), "{source}");
    assert_eq!(sim.keyvault_sign_count(), 1, "the vault did sign; the client refused the answer");
}
