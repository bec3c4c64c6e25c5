//! The token endpoint: client credentials with a certificate assertion, and discovery.

use cba_sim::SimTenant;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn accepts_rs256_assertion_and_issues_exchange_token_with_roles() {
    let sim = SimTenant::builder().start().await;
    let app = exchange_ready_app(&sim).await;
    let assertion = Assertion::new(&sim, cert(0), &app.app_id, sim.tenant_id()).sign(cert(0));
    let (status, body) = request_token(&sim, sim.tenant_id(), &app.app_id, &assertion, EXO_SCOPE).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    let claims = claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "https://outlook.office365.com");
    assert_eq!(claims["iss"], format!("https://sts.windows.net/{}/", sim.tenant_id()));
    assert_eq!(claims["tid"], sim.tenant_id());
    assert_eq!(claims["appid"], app.app_id);
    assert_eq!(claims["oid"], app.service_principal_id);
    assert_eq!(claims["roles"], json!(["Exchange.ManageAsApp"]));
    assert_eq!(claims["wids"], json!([EXCHANGE_ADMIN]));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3599);
}

#[tokio::test]
async fn accepts_ps256_with_sha256_thumbprint_and_tenant_domain() {
    let sim = SimTenant::builder().tenant_name("fabrikam").start().await;
    let app = exchange_ready_app(&sim).await;
    let mut a = Assertion::new(&sim, cert(0), &app.app_id, sim.tenant_domain());
    a.alg = Algorithm::PS256;
    a.x5t = None;
    a.x5t_s256 = Some(cert(0).certificate.x5t_s256());
    let (status, body) = request_token(&sim, sim.tenant_domain(), &app.app_id, &a.sign(cert(0)), EXO_SCOPE).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sim.tenant_domain(), "fabrikam.onmicrosoft.com");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["tid"], sim.tenant_id());
}

/// Each broken assertion is refused with its own AADSTS code and reason.
#[tokio::test]
async fn rejects_each_broken_assertion_with_its_code() {
    let sim = SimTenant::builder().start().await;
    let app = exchange_ready_app(&sim).await;
    let tenant = sim.tenant_id().to_string();
    let good = Assertion::new(&sim, cert(0), &app.app_id, &tenant);
    let now = now_secs(&sim);
    struct Case {
        name: &'static str,
        assertion: String,
        code: u64,
        reason: &'static str,
    }
    let mut cases = Vec::new();
    // Wrong key: names the registered certificate but is signed by another key.
    cases.push(Case {
        name: "wrong key",
        assertion: good.sign(cert(1)),
        code: 700027,
        reason: "did not match the expected signature",
    });
    let mut a = good.clone();
    a.aud = format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token");
    cases.push(Case { name: "wrong aud", assertion: a.sign(cert(0)), code: 50013, reason: "audience" });
    let mut a = good.clone();
    a.nbf = Some(now - 3600);
    a.exp = Some(now - 3000);
    cases.push(Case {
        name: "expired assertion",
        assertion: a.sign(cert(0)),
        code: 700024,
        reason: "not within its valid time range",
    });
    let mut a = good.clone();
    a.nbf = Some(now + 900);
    a.exp = Some(now + 1200);
    cases.push(Case {
        name: "future nbf",
        assertion: a.sign(cert(0)),
        code: 700024,
        reason: "not within its valid time range",
    });
    let mut a = good.clone();
    a.x5t = Some(cert(2).certificate.x5t());
    cases.push(Case {
        name: "unregistered certificate",
        assertion: a.sign(cert(2)),
        code: 700027,
        reason: "The key was not found",
    });
    let mut a = good.clone();
    a.x5t = None;
    cases.push(Case {
        name: "missing thumbprint",
        assertion: a.sign(cert(0)),
        code: 700027,
        reason: "Thumbprint of key used by client: ''",
    });
    let mut a = good.clone();
    a.exp = Some(now + 3600);
    cases.push(Case { name: "lifetime over 10 minutes", assertion: a.sign(cert(0)), code: 700024, reason: "lifetime" });
    let mut a = good.clone();
    a.iss = uuid::Uuid::new_v4().to_string();
    a.sub = a.iss.clone();
    cases.push(Case {
        name: "issuer is another client",
        assertion: a.sign(cert(0)),
        code: 700021,
        reason: "doesn't match 'client_id'",
    });
    let mut a = good.clone();
    a.sub = "someone-else".into();
    cases.push(Case {
        name: "subject differs from issuer",
        assertion: a.sign(cert(0)),
        code: 50048,
        reason: "Subject mismatches Issuer",
    });
    let mut a = good.clone();
    a.alg = Algorithm::HS256;
    let hs = {
        let header = jsonwebtoken::Header { x5t: a.x5t.clone(), ..jsonwebtoken::Header::new(Algorithm::HS256) };
        jsonwebtoken::encode(
            &header,
            &json!({"aud": a.aud, "iss": a.iss, "sub": a.sub, "exp": a.exp, "nbf": a.nbf, "jti": "x"}),
            &jsonwebtoken::EncodingKey::from_secret(b"secret"),
        )
        .unwrap()
    };
    cases.push(Case {
        name: "HMAC algorithm",
        assertion: hs,
        code: 5002738,
        reason: "not a supported signature algorithm",
    });
    let mut a = good.clone();
    a.jti = None;
    cases.push(Case { name: "no jti", assertion: a.sign(cert(0)), code: 50013, reason: "jti" });

    for case in cases {
        let (status, body) = request_token(&sim, &tenant, &app.app_id, &case.assertion, EXO_SCOPE).await;
        assert_aadsts(status, &body, 401, "invalid_client", case.code);
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains(case.reason), "{}: {description}", case.name);
    }
    // And the correct one still works, so the failures above were about the broken field.
    let (status, _) = request_token(&sim, &tenant, &app.app_id, &good.sign(cert(0)), EXO_SCOPE).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn rejects_replayed_jti() {
    let sim = SimTenant::builder().start().await;
    let app = exchange_ready_app(&sim).await;
    let assertion = Assertion::new(&sim, cert(0), &app.app_id, sim.tenant_id()).sign(cert(0));
    let (status, _) = request_token(&sim, sim.tenant_id(), &app.app_id, &assertion, EXO_SCOPE).await;
    assert_eq!(status, 200);
    let (status, body) = request_token(&sim, sim.tenant_id(), &app.app_id, &assertion, EXO_SCOPE).await;
    assert_aadsts(status, &body, 401, "invalid_client", 50013);
    assert!(body["error_description"].as_str().unwrap().contains("already been used"));

    // The knob turns the check off.
    let lax = SimTenant::builder().reject_replayed_jti(false).start().await;
    let app = exchange_ready_app(&lax).await;
    let assertion = Assertion::new(&lax, cert(0), &app.app_id, lax.tenant_id()).sign(cert(0));
    for _ in 0..2 {
        let (status, body) = request_token(&lax, lax.tenant_id(), &app.app_id, &assertion, EXO_SCOPE).await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn rejects_expired_registered_certificate() {
    let sim = SimTenant::builder().start().await;
    let app = sim.seed_app("old-cert", &[der(expired_cert())]).await;
    let assertion = Assertion::new(&sim, expired_cert(), &app.app_id, sim.tenant_id()).sign(expired_cert());
    let (status, body) = request_token(&sim, sim.tenant_id(), &app.app_id, &assertion, EXO_SCOPE).await;
    assert_aadsts(status, &body, 401, "invalid_client", 700027);
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains("The key used is expired."), "{description}");
    assert!(description.contains(&expired_cert().certificate.thumbprint_sha1_hex()), "{description}");
}

#[tokio::test]
async fn clock_skew_allowance_is_five_minutes_and_a_knob() {
    let sim = SimTenant::builder().start().await;
    let app = exchange_ready_app(&sim).await;
    let now = now_secs(&sim);
    let mut a = Assertion::new(&sim, cert(0), &app.app_id, sim.tenant_id());
    a.nbf = Some(now - 500);
    a.exp = Some(now - 120); // expired two minutes ago: inside the 5-minute skew
    let (status, body) = request_token(&sim, sim.tenant_id(), &app.app_id, &a.sign(cert(0)), EXO_SCOPE).await;
    assert_eq!(status, 200, "{body}");

    let strict = SimTenant::builder().clock_skew(std::time::Duration::ZERO).start().await;
    let app = exchange_ready_app(&strict).await;
    let mut a = Assertion::new(&strict, cert(0), &app.app_id, strict.tenant_id());
    a.nbf = Some(now - 500);
    a.exp = Some(now - 120);
    let (status, body) = request_token(&strict, strict.tenant_id(), &app.app_id, &a.sign(cert(0)), EXO_SCOPE).await;
    assert_aadsts(status, &body, 401, "invalid_client", 700024);
}

#[tokio::test]
async fn v1_audience_is_refused_unless_the_knob_allows_it() {
    for accept in [false, true] {
        let sim = SimTenant::builder().accept_v1_assertion_audience(accept).start().await;
        let app = exchange_ready_app(&sim).await;
        let mut a = Assertion::new(&sim, cert(0), &app.app_id, sim.tenant_id());
        a.aud = format!("{}/{}/oauth2/token", sim.login_url(), sim.tenant_id());
        let (status, body) = request_token(&sim, sim.tenant_id(), &app.app_id, &a.sign(cert(0)), EXO_SCOPE).await;
        if accept {
            assert_eq!(status, 200, "{body}");
        } else {
            assert_aadsts(status, &body, 401, "invalid_client", 50013);
        }
    }
}

#[tokio::test]
async fn request_errors_have_their_codes() {
    let sim = SimTenant::builder().start().await;
    let app = exchange_ready_app(&sim).await;
    let tid = sim.tenant_id().to_string();
    let assertion = || Assertion::new(&sim, cert(0), &app.app_id, &tid).sign(cert(0));

    let (s, b) = request_token(&sim, "nosuch.onmicrosoft.com", &app.app_id, &assertion(), EXO_SCOPE).await;
    assert_aadsts(s, &b, 400, "invalid_tenant", 90002);
    let (s, b) = request_token(&sim, "not-a-tenant", &app.app_id, &assertion(), EXO_SCOPE).await;
    assert_aadsts(s, &b, 400, "invalid_request", 900023);
    let stranger = uuid::Uuid::new_v4().to_string();
    let a = Assertion::new(&sim, cert(0), &stranger, &tid).sign(cert(0));
    let (s, b) = request_token(&sim, &tid, &stranger, &a, EXO_SCOPE).await;
    assert_aadsts(s, &b, 400, "unauthorized_client", 700016);
    let (s, b) =
        request_token(&sim, &tid, &app.app_id, &assertion(), "https://outlook.office365.com/Exchange.ManageAsApp")
            .await;
    assert_aadsts(s, &b, 400, "invalid_scope", 1002012);
    let (s, b) = request_token(&sim, &tid, &app.app_id, &assertion(), "https://contoso.example/.default").await;
    assert_aadsts(s, &b, 400, "invalid_resource", 500011);
    let (s, b) = request_token(&sim, &tid, &app.app_id, &assertion(), &format!("{EXO_SCOPE} {GRAPH_SCOPE}")).await;
    assert_aadsts(s, &b, 400, "invalid_scope", 70011);
    let (s, b) = request_token(&sim, &tid, &app.app_id, "not.a.jwt", EXO_SCOPE).await;
    assert_aadsts(s, &b, 400, "invalid_request", 50027);

    let url = token_url(&sim, &tid);
    let (s, b) = json_of(client().post(&url).form(&[("client_id", app.app_id.as_str())]).send().await.unwrap()).await;
    assert_aadsts(s, &b, 400, "invalid_request", 900144);
    assert!(b["error_description"].as_str().unwrap().contains("'grant_type'"));
    let (s, b) = json_of(client().post(&url).form(&[("grant_type", "password")]).send().await.unwrap()).await;
    assert_aadsts(s, &b, 400, "unsupported_grant_type", 70003);
    let (s, b) = json_of(client().get(&url).send().await.unwrap()).await;
    assert_aadsts(s, &b, 400, "invalid_request", 900561);
    let form = [("grant_type", "client_credentials"), ("client_id", app.app_id.as_str()), ("scope", EXO_SCOPE)];
    let (s, b) = json_of(client().post(&url).form(&form).send().await.unwrap()).await;
    assert_aadsts(s, &b, 401, "invalid_client", 7000218);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", app.app_id.as_str()),
        ("scope", EXO_SCOPE),
        ("client_secret", "x"),
    ];
    let (s, b) = json_of(client().post(&url).form(&form).send().await.unwrap()).await;
    assert_aadsts(s, &b, 401, "invalid_client", 7000215);
}

#[tokio::test]
async fn error_echoes_client_request_id_as_correlation_id() {
    let sim = SimTenant::builder().start().await;
    let id = uuid::Uuid::new_v4().to_string();
    let response = client()
        .post(token_url(&sim, sim.tenant_id()))
        .header("client-request-id", &id)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 400);
    assert_eq!(body["correlation_id"], id);
    assert!(body["error_description"].as_str().unwrap().contains(&format!("Correlation ID: {id}")));
}

#[tokio::test]
async fn discovery_and_jwks_let_a_standard_client_verify_tokens() {
    let sim = SimTenant::builder().start().await;
    let url = format!("{}/{}/v2.0/.well-known/openid-configuration", sim.login_url(), sim.tenant_domain());
    let (status, config) = json_of(client().get(url).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let tid = sim.tenant_id();
    assert_eq!(config["token_endpoint"], format!("{}/{tid}/oauth2/v2.0/token", sim.login_url()));
    assert_eq!(config["device_authorization_endpoint"], format!("{}/{tid}/oauth2/v2.0/devicecode", sim.login_url()));
    assert_eq!(config["issuer"], format!("{}/{tid}/v2.0", sim.login_url()));

    let (status, jwks) = json_of(client().get(config["jwks_uri"].as_str().unwrap()).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let key: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
    let token = sim.admin_token();
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    validation.set_audience(&["https://graph.microsoft.com"]);
    validation.set_issuer(&[format!("https://sts.windows.net/{tid}/")]);
    let decoded =
        jsonwebtoken::decode::<Value>(&token, &jsonwebtoken::DecodingKey::from_jwk(&key).unwrap(), &validation);
    assert!(decoded.is_ok(), "{decoded:?}");

    let url = format!("{}/nosuch.onmicrosoft.com/v2.0/.well-known/openid-configuration", sim.login_url());
    let (status, body) = json_of(client().get(url).send().await.unwrap()).await;
    assert_aadsts(status, &body, 400, "invalid_tenant", 90002);
}

#[tokio::test]
async fn graph_token_carries_graph_app_roles_and_works_on_graph() {
    let sim = SimTenant::builder().start().await;
    let app = sim.seed_app("automation", &[der(cert(0))]).await;
    sim.seed_grant(&app, "00000003-0000-0000-c000-000000000000", "Application.ReadWrite.All").await;
    let token = token_for(&sim, &app, cert(0), GRAPH_SCOPE).await;
    assert_eq!(claims(&token)["roles"], json!(["Application.ReadWrite.All"]));
    assert_eq!(claims(&token)["idtyp"], "app");
    let graph = Graph { sim: &sim, token };
    let (status, body) = graph.get("/applications").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"].as_array().unwrap().len(), 1);
    // No Exchange grant: an Exchange token carries no roles.
    let exo = token_for(&sim, &app, cert(0), EXO_SCOPE).await;
    assert!(claims(&exo).get("roles").is_none());
}
