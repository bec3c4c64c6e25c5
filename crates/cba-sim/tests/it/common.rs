//! Helpers shared by the integration tests: certificates, client assertions, HTTP calls.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cba_cert::{Identity, NewCertificate, Validity};
use cba_sim::{SeededApp, SimTenant};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use time::OffsetDateTime;

pub const EXO_SCOPE: &str = "https://outlook.office365.com/.default";
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
pub const EXCHANGE_ADMIN: &str = "29232cdf-9323-42fd-ade2-1d097af3e4de";

/// Certificates with keys, made once per test binary (RSA key generation is slow).
pub fn cert(n: usize) -> &'static Identity {
    static CERTS: OnceLock<Vec<Identity>> = OnceLock::new();
    &CERTS.get_or_init(|| {
        (0..4)
            .map(|i| cba_cert::generate(&NewCertificate::new(format!("cba-sim-test-{i}"))).expect("generate"))
            .collect()
    })[n]
}

/// A certificate that expired a year ago (valid for 30 days, 400 days ago).
pub fn expired_cert() -> &'static Identity {
    static CERT: OnceLock<Identity> = OnceLock::new();
    CERT.get_or_init(|| {
        let long_ago = OffsetDateTime::now_utc() - time::Duration::days(400);
        cba_cert::generate(&NewCertificate::new("cba-sim-expired").now(long_ago).validity(Validity::Days(30)))
            .expect("generate")
    })
}

pub fn der(identity: &Identity) -> Vec<u8> {
    identity.certificate.der().to_vec()
}

pub fn now_secs(sim: &SimTenant) -> i64 {
    sim.now().unix_timestamp()
}

pub fn token_url(sim: &SimTenant, tenant: &str) -> String {
    format!("{}/{tenant}/oauth2/v2.0/token", sim.login_url())
}

/// What goes into a client assertion; `Assertion::new` gives a correct one, tests break one field.
#[derive(Clone)]
pub struct Assertion {
    pub alg: Algorithm,
    pub x5t: Option<String>,
    pub x5t_s256: Option<String>,
    pub kid: Option<String>,
    pub aud: String,
    pub iss: String,
    pub sub: String,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub jti: Option<String>,
}

impl Assertion {
    pub fn new(sim: &SimTenant, signer: &Identity, client_id: &str, tenant: &str) -> Assertion {
        let now = now_secs(sim);
        Assertion {
            alg: Algorithm::RS256,
            x5t: Some(signer.certificate.x5t()),
            x5t_s256: None,
            kid: None,
            aud: token_url(sim, tenant),
            iss: client_id.to_string(),
            sub: client_id.to_string(),
            nbf: Some(now),
            exp: Some(now + 600),
            jti: Some(uuid::Uuid::new_v4().to_string()),
        }
    }

    pub fn sign(&self, key: &Identity) -> String {
        let mut header = Header::new(self.alg);
        header.x5t = self.x5t.clone();
        header.x5t_s256 = self.x5t_s256.clone();
        header.kid = self.kid.clone();
        let mut claims = json!({"aud": self.aud, "iss": self.iss, "sub": self.sub});
        if let Some(nbf) = self.nbf {
            claims["nbf"] = json!(nbf);
            claims["iat"] = json!(nbf);
        }
        if let Some(exp) = self.exp {
            claims["exp"] = json!(exp);
        }
        if let Some(jti) = &self.jti {
            claims["jti"] = json!(jti);
        }
        let pkcs1 = key.private_key.as_ref().expect("key").rsa_pkcs1_der();
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_der(pkcs1)).expect("sign")
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

pub async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON body") };
    (status, value)
}

/// POST the token endpoint with a client assertion.
pub async fn request_token(
    sim: &SimTenant,
    tenant: &str,
    client_id: &str,
    assertion: &str,
    scope: &str,
) -> (u16, Value) {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("scope", scope),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", assertion),
    ];
    json_of(client().post(token_url(sim, tenant)).form(&form).send().await.expect("send")).await
}

/// An app with certificate 0, Exchange.ManageAsApp and Exchange Administrator.
pub async fn exchange_ready_app(sim: &SimTenant) -> SeededApp {
    let app = sim.seed_app("exo-app", &[der(cert(0))]).await;
    sim.seed_grant_manage_as_app(&app).await;
    sim.seed_role_assignment(&app, EXCHANGE_ADMIN).await;
    app
}

/// A token from the real token endpoint, for `app` signed with `signer`.
pub async fn token_for(sim: &SimTenant, app: &SeededApp, signer: &Identity, scope: &str) -> String {
    let assertion = Assertion::new(sim, signer, &app.app_id, &app.tenant_id).sign(signer);
    let (status, body) = request_token(sim, &app.tenant_id, &app.app_id, &assertion, scope).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().expect("access_token").to_string()
}

/// Claims of a JWT, unverified.
pub fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("claims part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// Check an AADSTS error: status, `error`, code, and the body shape of docs/wire-formats.md §4.
pub fn assert_aadsts(status: u16, body: &Value, want_status: u16, error: &str, code: u64) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], json!([code]), "{body}");
    let description = body["error_description"].as_str().expect("error_description");
    assert!(description.starts_with(&format!("AADSTS{code}: ")), "{description}");
    for part in ["\r\nTrace ID: ", "\r\nCorrelation ID: ", "\r\nTimestamp: "] {
        assert!(description.contains(part), "{description}");
    }
    for field in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
        assert!(body[field].is_string(), "{field} missing in {body}");
    }
    assert!(description.contains(body["trace_id"].as_str().unwrap_or("-")));
}

/// Graph calls with a bearer token.
pub struct Graph<'a> {
    pub sim: &'a SimTenant,
    pub token: String,
}

impl Graph<'_> {
    pub fn url(&self, path: &str) -> String {
        format!("{}/v1.0{path}", self.sim.graph_url())
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        json_of(client().get(self.url(path)).bearer_auth(&self.token).send().await.expect("send")).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        json_of(client().post(self.url(path)).bearer_auth(&self.token).json(body).send().await.expect("send")).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        json_of(client().patch(self.url(path)).bearer_auth(&self.token).json(body).send().await.expect("send")).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        json_of(client().delete(self.url(path)).bearer_auth(&self.token).send().await.expect("send")).await
    }
}

pub fn admin(sim: &SimTenant) -> Graph<'_> {
    Graph { sim, token: sim.admin_token() }
}

/// Check a Graph error: status, `error.code`, and the innerError shape.
pub fn assert_graph_error(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    let inner = &body["error"]["innerError"];
    for field in ["date", "request-id", "client-request-id"] {
        assert!(inner[field].is_string(), "innerError.{field} missing in {body}");
    }
}

/// A Graph keyCredential for a certificate (what a client sends).
pub fn key_credential(identity: &Identity) -> Value {
    serde_json::to_value(identity.certificate.key_credential()).expect("serialize")
}

pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Create an app through Graph and return (object id, appId).
pub async fn create_app(graph: &Graph<'_>, body: Value) -> (String, String) {
    let (status, created) = graph.post("/applications", &body).await;
    assert_eq!(status, 201, "{created}");
    (created["id"].as_str().unwrap().to_string(), created["appId"].as_str().unwrap().to_string())
}

/// The audience of addKey/removeKey proofs.
pub const PROOF_AUD: &str = "00000002-0000-0000-c000-000000000000";

/// A proof of possession for addKey/removeKey (application-addkey.md), signed by `signer`.
pub fn proof(sim: &SimTenant, object_id: &str, signer: &Identity, aud: &str) -> String {
    let now = now_secs(sim);
    let mut header = Header::new(Algorithm::RS256);
    header.x5t = Some(signer.certificate.x5t());
    let claims = json!({"aud": aud, "iss": object_id, "nbf": now, "exp": now + 600});
    let key = EncodingKey::from_rsa_der(signer.private_key.as_ref().expect("key").rsa_pkcs1_der());
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}
