//! The Key Vault fake and the managed-identity endpoint, over plain HTTP.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cba_cert::{Certificate, SignAlg};
use cba_sim::SimTenant;
use serde_json::{Value, json};

use crate::common::{client, json_of};

struct Vault<'a> {
    sim: &'a SimTenant,
    token: Option<String>,
}

impl Vault<'_> {
    fn url(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{}{path}{sep}api-version=7.4", self.sim.keyvault_url())
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut request = client().request(method, self.url(path));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        json_of(request.send().await.unwrap()).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
}

fn vault(sim: &SimTenant) -> Vault<'_> {
    Vault { sim, token: Some(sim.keyvault_token()) }
}

fn policy(subject: &str) -> Value {
    json!({"policy": {
        "key_props": {"exportable": false, "kty": "RSA", "key_size": 2048, "reuse_key": false},
        "secret_props": {"contentType": "application/x-pkcs12"},
        "x509_props": {"subject": subject, "ekus": ["1.3.6.1.5.5.7.3.2"], "key_usage": ["digitalSignature"], "validity_months": 6},
        "issuer": {"name": "Self"}
    }})
}

fn digest(message: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message).as_ref())
}

/// Create `name` and poll until it completes; the certificate's JSON.
async fn create(v: &Vault<'_>, name: &str) -> Value {
    let (status, op) = v.post(&format!("/certificates/{name}/create"), &policy(&format!("CN={name}"))).await;
    assert_eq!(status, 202, "{op}");
    assert_eq!(op["status"], "inProgress");
    for _ in 0..5 {
        let (status, op) = v.get(&format!("/certificates/{name}/pending")).await;
        assert_eq!(status, 200, "{op}");
        if op["status"] == "completed" {
            assert_eq!(op["target"], format!("{}/certificates/{name}", v.sim.keyvault_url()));
            let (status, cert) = v.get(&format!("/certificates/{name}")).await;
            assert_eq!(status, 200, "{cert}");
            return cert;
        }
        assert_eq!(op["status"], "inProgress");
    }
    panic!("the operation did not complete");
}

#[tokio::test]
async fn create_poll_read_and_sign_verified_against_the_certificate() {
    let sim = SimTenant::builder().start().await;
    let v = vault(&sim);
    let (status, body) = v.get("/certificates/exo").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "CertificateNotFound");

    // Default: the first poll still says inProgress.
    let (_, op) = v.post("/certificates/exo/create", &policy("CN=exo")).await;
    assert_eq!(op["status"], "inProgress");
    let (status, busy) = v.post("/certificates/exo/create", &policy("CN=exo")).await;
    assert_eq!(status, 409, "one operation at a time: {busy}");
    let (_, op) = v.get("/certificates/exo/pending").await;
    assert_eq!(op["status"], "inProgress");
    assert_eq!(v.get("/certificates/exo").await.0, 404, "not readable before it completes");
    let (_, op) = v.get("/certificates/exo/pending").await;
    assert_eq!(op["status"], "completed");
    let (_, cert) = v.get("/certificates/exo").await;

    let der = STANDARD.decode(cert["cer"].as_str().unwrap()).unwrap();
    let certificate = Certificate::from_der(&der).unwrap();
    assert_eq!(certificate.subject(), "CN=exo");
    assert_eq!(cert["x5t"], certificate.x5t());
    assert_eq!(cert["policy"]["key_props"]["exportable"], false);
    let months = (certificate.not_after() - certificate.not_before()).whole_days();
    assert!((180..=186).contains(&months), "6 months: {months} days");
    let version = cert["id"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    assert_eq!(cert["kid"], format!("{}/keys/exo/{version}", sim.keyvault_url()));
    assert!(cert.get("key").is_none() && cert.get("value").is_none(), "no private key in the answer: {cert}");

    let public = certificate.rsa_public_key().unwrap();
    for alg in [SignAlg::Rs256, SignAlg::Ps256] {
        let (status, signed) =
            v.post(&format!("/keys/exo/{version}/sign"), &json!({"alg": alg.name(), "value": digest(b"a.b")})).await;
        assert_eq!(status, 200, "{signed}");
        let signature = URL_SAFE_NO_PAD.decode(signed["value"].as_str().unwrap()).unwrap();
        public.verify(alg, b"a.b", &signature).unwrap();
    }
    assert_eq!(sim.keyvault_sign_count(), 2);

    // The next create is a new version; the old one stays readable by version.
    let next = create(&v, "exo").await;
    assert_ne!(next["id"], cert["id"]);
    assert_eq!(v.get(&format!("/certificates/exo/{version}")).await.1["cer"], cert["cer"]);
    assert_eq!(sim.keyvault_certificates().len(), 2);
}

#[tokio::test]
async fn every_route_wants_a_vault_token() {
    let sim = SimTenant::builder().start().await;
    let no_token = Vault { sim: &sim, token: None };
    let graph_token = Vault { sim: &sim, token: Some(sim.admin_token()) };
    let garbage = Vault { sim: &sim, token: Some("not-a-jwt".into()) };
    for v in [&no_token, &graph_token, &garbage] {
        for (method, path) in [
            (reqwest::Method::GET, "/certificates/exo"),
            (reqwest::Method::GET, "/certificates/exo/pending"),
            (reqwest::Method::POST, "/certificates/exo/create"),
            (reqwest::Method::POST, "/keys/exo/v1/sign"),
        ] {
            let mut request = client().request(method.clone(), v.url(path));
            if let Some(t) = &v.token {
                request = request.bearer_auth(t);
            }
            let response = request.json(&json!({})).send().await.unwrap();
            let challenge = response.headers().get("www-authenticate").map(|h| h.to_str().unwrap().to_string());
            let (status, body) = json_of(response).await;
            assert_eq!(status, 401, "{method} {path}: {body}");
            assert_eq!(body["error"]["code"], "Unauthorized");
            assert_eq!(
                challenge.as_deref(),
                Some(
                    format!(
                        "Bearer authorization=\"{}/{}\", resource=\"https://vault.azure.net\"",
                        sim.login_url(),
                        sim.tenant_id()
                    )
                    .as_str()
                )
            );
        }
    }
    assert!(sim.keyvault_certificates().is_empty());
}

#[tokio::test]
async fn requests_the_vault_refuses() {
    let sim = SimTenant::builder().keyvault_pending_polls(0).start().await;
    let v = vault(&sim);
    let cert = create(&v, "exo").await;
    let version = cert["id"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    let sign = format!("/keys/exo/{version}/sign");
    let check = |status: u16, body: &Value, want: u16, code: &str| {
        assert_eq!((status, body["error"]["code"].as_str()), (want, Some(code)), "{body}");
    };

    let (s, b) = v.post(&sign, &json!({"alg": "RS256", "value": URL_SAFE_NO_PAD.encode([0u8; 31])})).await;
    check(s, &b, 400, "BadParameter");
    assert!(b["error"]["message"].as_str().unwrap().contains("31"), "{b}");
    let (s, b) = v.post(&sign, &json!({"alg": "ES256", "value": digest(b"x")})).await;
    check(s, &b, 400, "BadParameter");
    let (s, b) = v.post(&sign, &json!({"value": digest(b"x")})).await;
    check(s, &b, 400, "BadParameter");
    let (s, b) = v.post("/keys/exo/0000/sign", &json!({"alg": "RS256", "value": digest(b"x")})).await;
    check(s, &b, 404, "KeyNotFound");
    let (s, b) = v.get("/certificates/exo/0000").await;
    check(s, &b, 404, "CertificateNotFound");

    let mut weak = policy("CN=exo");
    weak["policy"]["key_props"]["key_size"] = json!(1024);
    let (s, b) = v.post("/certificates/weak/create", &weak).await;
    check(s, &b, 400, "BadParameter");
    let mut ca = policy("CN=exo");
    ca["policy"]["issuer"]["name"] = json!("DigiCert");
    let (s, b) = v.post("/certificates/ca/create", &ca).await;
    check(s, &b, 400, "BadParameter");
    let (s, b) = v.post("/certificates/bad_name/create", &policy("CN=x")).await;
    check(s, &b, 400, "BadParameter");
    let (s, b) = v.post("/certificates/nopolicy/create", &json!({})).await;
    check(s, &b, 400, "BadParameter");

    let response = client()
        .get(format!("{}/certificates/exo", sim.keyvault_url()))
        .bearer_auth(sim.keyvault_token())
        .send()
        .await
        .unwrap();
    let (s, b) = json_of(response).await;
    check(s, &b, 400, "BadParameter");
    let response = client()
        .get(format!("{}/keyvault/other/certificates/exo?api-version=7.4", sim.login_url()))
        .bearer_auth(sim.keyvault_token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // A disabled version does not sign.
    let (s, b) = v
        .send(
            reqwest::Method::PATCH,
            &format!("/certificates/exo/{version}"),
            Some(&json!({"attributes": {"enabled": false}})),
        )
        .await;
    assert_eq!((s, &b["attributes"]["enabled"]), (200, &json!(false)), "{b}");
    let (s, b) = v.post(&sign, &json!({"alg": "RS256", "value": digest(b"x")})).await;
    check(s, &b, 403, "Forbidden");
    assert_eq!(sim.keyvault_certificates().iter().filter(|c| c.enabled).count(), 0);
    assert_eq!(sim.keyvault_certificates().len(), 1, "refused creates made nothing");
}

#[tokio::test]
async fn forbidden_by_rbac_and_throttling_knobs() {
    let sim = SimTenant::builder().keyvault_forbidden(true).start().await;
    let v = vault(&sim);
    let (s, b) = v.post("/certificates/exo/create", &policy("CN=exo")).await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(b["error"]["innererror"]["code"], "ForbiddenByRbac");
    assert!(b["error"]["message"].as_str().unwrap().contains("certificates/create"), "{b}");
    sim.set_keyvault_forbidden(false);
    assert_eq!(v.post("/certificates/exo/create", &policy("CN=exo")).await.0, 202);

    let sim = SimTenant::builder().keyvault_throttle_burst(2).start().await;
    let v = vault(&sim);
    for _ in 0..2 {
        let response = client().get(v.url("/certificates/exo")).bearer_auth(sim.keyvault_token()).send().await.unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "1");
    }
    assert_eq!(v.get("/certificates/exo").await.0, 404, "the third gets through");
}

#[tokio::test]
async fn the_managed_identity_endpoint_wants_its_header() {
    let sim = SimTenant::builder().start().await;
    let get = |header: Option<String>, query: &str| {
        let mut request = client().get(format!("{}?{query}", sim.identity_endpoint()));
        if let Some(h) = header {
            request = request.header("X-IDENTITY-HEADER", h);
        }
        async move { json_of(request.send().await.unwrap()).await }
    };
    let good = "resource=https://vault.azure.net&api-version=2019-08-01";
    assert_eq!(get(None, good).await.0, 401);
    assert_eq!(get(Some("wrong".into()), good).await.0, 401);
    assert_eq!(
        get(Some(sim.identity_header()), "resource=https://vault.azure.net&api-version=2017-09-01").await.0,
        400
    );
    assert_eq!(
        get(Some(sim.identity_header()), "resource=https://graph.microsoft.com&api-version=2019-08-01").await.0,
        400
    );
    let (status, body) = get(Some(sim.identity_header()), good).await;
    assert_eq!(status, 200, "{body}");
    let expires_on: i64 = body["expires_on"].as_str().unwrap().parse().unwrap();
    assert!(expires_on > sim.now().unix_timestamp() + 3000);
    assert_eq!(body["resource"], "https://vault.azure.net");
    let v = Vault { sim: &sim, token: Some(body["access_token"].as_str().unwrap().to_string()) };
    assert_eq!(v.get("/certificates/exo").await.0, 404, "the vault accepts the identity's token");
}
