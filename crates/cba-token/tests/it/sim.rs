//! Against `cba-sim`: a strict fake that verifies our assertions with the registered certificate.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cba_sim::SimTenant;
use cba_token::admin::{self, DeviceCodeOptions};
use cba_token::{
    AssertionAlg, AssertionOptions, Authority, ClientCertificate, Clock, Error, ErrorKind, Resource, Sleep, TokenCache,
    TokenClient, WaitOptions, aadsts_meaning,
};
use serde_json::json;
use time::OffsetDateTime;

use crate::support::{identity, other_identity, retry_policy};

/// The sim's own clock: our sleeps move it, so replication delays and device-code timers pass at once.
#[derive(Debug, Clone)]
struct SimClock {
    sim: Arc<SimTenant>,
    sleeps: Arc<Mutex<Vec<Duration>>>,
}

impl SimClock {
    fn new(sim: &Arc<SimTenant>) -> SimClock {
        SimClock { sim: sim.clone(), sleeps: Arc::default() }
    }

    fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().unwrap().clone()
    }
}

impl Clock for SimClock {
    fn now(&self) -> OffsetDateTime {
        self.sim.now()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        self.sim.advance_clock(duration);
        self.sleeps.lock().unwrap().push(duration);
        Box::pin(std::future::ready(()))
    }
}

fn client(sim: &Arc<SimTenant>, clock: &SimClock, options: AssertionOptions) -> TokenClient {
    TokenClient::builder()
        .authority(Authority::new(sim.login_url()).unwrap())
        .clock(Arc::new(clock.clone()))
        .retry_policy(retry_policy())
        .assertion_options(options)
        .cache(TokenCache::in_memory())
        .build()
        .unwrap()
}

async fn sim_with_app() -> (Arc<SimTenant>, String) {
    let sim = SimTenant::builder().tenant_name("contoso").start().await;
    let app = sim.seed_app("cba-test", &[identity().certificate.der()]).await;
    sim.seed_grant_manage_as_app(&app).await;
    sim.seed_role_assignment(&app, "29232cdf-9323-42fd-ade2-1d097af3e4de").await;
    (Arc::new(sim), app.app_id)
}

#[tokio::test]
async fn the_sim_accepts_our_ps256_rs256_and_x5c_assertions() {
    let (sim, app_id) = sim_with_app().await;
    let clock = SimClock::new(&sim);
    let options = [
        AssertionOptions::default(),
        AssertionOptions { alg: AssertionAlg::Rs256, ..AssertionOptions::default() },
        AssertionOptions { send_x5c: true, ..AssertionOptions::default() },
    ];
    for (i, options) in options.into_iter().enumerate() {
        // By domain and by tenant id.
        let tenant = if i % 2 == 0 { sim.tenant_domain() } else { sim.tenant_id() };
        let cert = ClientCertificate::new(identity(), tenant, &app_id).unwrap();
        let token = client(&sim, &clock, options.clone()).get_token(&cert, &Resource::Exchange).await.unwrap();
        let claims = token.decode().unwrap();
        assert_eq!(claims.claim_str("aud"), Some("https://outlook.office365.com"), "{options:?}");
        assert_eq!(claims.claim_str("tid"), Some(sim.tenant_id()));
        assert_eq!(claims.claim_str("appid"), Some(app_id.as_str()));
        assert!(claims.claim_strings("roles").contains(&"Exchange.ManageAsApp"), "{:?}", claims.claims);
        assert!(claims.claim_strings("wids").contains(&"29232cdf-9323-42fd-ade2-1d097af3e4de"));
        assert!(token.expires_in(clock.now()) > Duration::from_secs(3000));
    }
    let cert = ClientCertificate::new(identity(), sim.tenant_domain(), &app_id).unwrap();
    let graph = client(&sim, &clock, AssertionOptions::default()).get_token(&cert, &Resource::Graph).await.unwrap();
    assert_eq!(graph.decode().unwrap().claim_str("aud"), Some("https://graph.microsoft.com"));
}

#[tokio::test]
async fn sim_refusals_map_to_codes_and_meanings() {
    let (sim, app_id) = sim_with_app().await;
    let clock = SimClock::new(&sim);
    let c = client(&sim, &clock, AssertionOptions::default());
    let cases: Vec<(ClientCertificate, Resource, u32)> = vec![
        (ClientCertificate::new(other_identity(), sim.tenant_domain(), &app_id).unwrap(), Resource::Exchange, 700027),
        (
            ClientCertificate::new(identity(), sim.tenant_domain(), "00000000-0000-0000-0000-00000000beef").unwrap(),
            Resource::Exchange,
            700016,
        ),
        (ClientCertificate::new(identity(), "nowhere.onmicrosoft.com", &app_id).unwrap(), Resource::Exchange, 90002),
        (
            ClientCertificate::new(identity(), sim.tenant_domain(), &app_id).unwrap(),
            Resource::Url("https://unknown.example.com".into()),
            500011,
        ),
    ];
    for (cert, resource, code) in cases {
        let err = c.get_token(&cert, &resource).await.unwrap_err();
        assert_eq!(err.aadsts(), &[code], "{err}");
        assert!(matches!(err, Error::Token { meaning, .. } if meaning == aadsts_meaning(code)));
        assert_eq!(err.kind(), ErrorKind::Auth);
    }
}

#[tokio::test]
async fn a_wrong_clock_is_700024() {
    let sim = SimTenant::builder().clock_offset(time::Duration::hours(1)).start().await;
    let app = sim.seed_app("cba-test", &[identity().certificate.der()]).await;
    let sim = Arc::new(sim);
    // Our clock is the system clock: an hour behind the sim.
    let c = TokenClient::builder()
        .authority(Authority::new(sim.login_url()).unwrap())
        .retry_policy(retry_policy())
        .build()
        .unwrap();
    let cert = ClientCertificate::new(identity(), sim.tenant_id(), &app.app_id).unwrap();
    let err = c.get_token(&cert, &Resource::Exchange).await.unwrap_err();
    assert_eq!(err.aadsts(), &[700024], "{err}");
    assert!(err.to_string().contains("clock"), "{err}");
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried() {
    let sim =
        SimTenant::builder().throttle_burst(1).fail_5xx_every(2).retry_after(Duration::from_secs(3)).start().await;
    let app = sim.seed_app("cba-test", &[identity().certificate.der()]).await;
    let sim = Arc::new(sim);
    let clock = SimClock::new(&sim);
    let cert = ClientCertificate::new(identity(), sim.tenant_id(), &app.app_id).unwrap();
    // Request 1: 429; request 2: 503; request 3: OK.
    let token = client(&sim, &clock, AssertionOptions::default()).get_token(&cert, &Resource::Exchange).await.unwrap();
    assert!(!token.from_cache);
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(3); 2], "Retry-After honoured on 429 and 503");
}

#[tokio::test]
async fn wait_until_ready_outlasts_replication() {
    let sim = Arc::new(SimTenant::builder().replication_delay(Duration::from_secs(30)).start().await);
    let clock = SimClock::new(&sim);
    let http = cba_token::reqwest::Client::new();
    let graph = |path: &str| format!("{}/v1.0{path}", sim.graph_url());
    let created: serde_json::Value = http
        .post(graph("/applications"))
        .bearer_auth(sim.admin_token())
        .json(&json!({
            "displayName": "cba-replication-test",
            "signInAudience": "AzureADMyOrg",
            "keyCredentials": [identity().certificate.key_credential()],
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let app_id = created["appId"].as_str().expect("created app").to_owned();
    sim.advance_clock(Duration::from_secs(31));
    let sp = http
        .post(graph("/servicePrincipals"))
        .bearer_auth(sim.admin_token())
        .json(&json!({"appId": app_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(sp.status(), 201);

    let cert = ClientCertificate::new(identity(), sim.tenant_id(), &app_id).unwrap();
    let mut codes = Vec::new();
    let token = client(&sim, &clock, AssertionOptions::default())
        .wait_until_ready(&cert, &Resource::Exchange, &WaitOptions::new(Duration::from_secs(300)), |p| {
            codes.extend_from_slice(p.error.aadsts())
        })
        .await
        .unwrap();
    assert!(!codes.is_empty(), "the service principal should not be visible at once");
    assert!(codes.iter().all(|c| [700016, 700027].contains(c)), "{codes:?}");
    assert_eq!(token.decode().unwrap().claim_str("appid"), Some(app_id.as_str()));
}

fn device_options() -> DeviceCodeOptions {
    DeviceCodeOptions::for_setup("https://graph.microsoft.com")
}

#[tokio::test]
async fn device_code_sign_in_against_the_sim() {
    let sim = Arc::new(SimTenant::builder().device_code_delay(Duration::from_secs(12)).start().await);
    let clock = SimClock::new(&sim);
    let mut message = String::new();
    let token = admin::device_code(&client(&sim, &clock, AssertionOptions::default()), &device_options(), |p| {
        message = p.message.clone()
    })
    .await
    .unwrap();
    assert!(message.contains("https://microsoft.com/devicelogin"), "{message}");
    let claims = token.decode().unwrap();
    assert_eq!(claims.claim_str("tid"), Some(sim.tenant_id()));
    let scp = claims.claim_str("scp").unwrap();
    for p in admin::SETUP_PERMISSIONS {
        assert!(scp.contains(p), "{scp}");
    }
    // Interval 5 s (the sim's default); approved 12 s after issue: polls at 5, 10 (pending) and 15 s.
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(5); 3]);
    admin::existing_token(token.secret(), "https://graph.microsoft.com", clock.now()).unwrap();
}

#[tokio::test]
async fn device_code_polling_too_fast_is_slowed_down() {
    let sim = Arc::new(SimTenant::builder().device_code_delay(Duration::from_secs(20)).start().await);
    let clock = SimClock::new(&sim);
    let options = DeviceCodeOptions { poll_interval: Some(Duration::from_secs(1)), ..device_options() };
    admin::device_code(&client(&sim, &clock, AssertionOptions::default()), &options, |_| {}).await.unwrap();
    let secs: Vec<u64> = clock.sleeps().iter().map(Duration::as_secs).collect();
    // 1 s (pending), 1 s (too fast: slow_down → 6 s), then 6 s steps until approval at 20 s.
    assert_eq!(secs, vec![1, 1, 6, 6, 6], "{secs:?}");
}

#[tokio::test]
async fn device_code_declined_and_expired_in_the_sim() {
    for decline in [true, false] {
        let sim = Arc::new(SimTenant::builder().device_code_auto_approve(false).start().await);
        let clock = SimClock::new(&sim);
        let err = admin::device_code(&client(&sim, &clock, AssertionOptions::default()), &device_options(), |p| {
            if decline {
                assert!(sim.decline_device_code(&p.user_code));
            } else {
                assert!(sim.expire_device_code(&p.user_code));
            }
        })
        .await
        .unwrap_err();
        let expected = if decline { "authorization_declined" } else { "expired_token" };
        assert_eq!(err.oauth_error(), Some(expected), "{err}");
        assert!(matches!(err, Error::Token { meaning: Some(_), .. }));
    }
}

#[tokio::test]
async fn device_code_with_the_azure_cli_client_is_65002() {
    let sim = Arc::new(SimTenant::builder().start().await);
    let clock = SimClock::new(&sim);
    let options = DeviceCodeOptions { client_id: "04b07795-8ddb-461a-bbee-02f9e1bf7b46".into(), ..device_options() };
    let err =
        admin::device_code(&client(&sim, &clock, AssertionOptions::default()), &options, |_| {}).await.unwrap_err();
    assert_eq!(err.aadsts(), &[65002]);
}

#[tokio::test]
async fn the_sims_admin_token_is_accepted_as_an_existing_token() {
    let sim = SimTenant::builder().start().await;
    let token = admin::existing_token(&sim.admin_token(), "https://graph.microsoft.com", sim.now()).unwrap();
    assert!(token.scope.contains("Application.ReadWrite.All"), "{}", token.scope);
}

#[tokio::test]
async fn the_sims_opaque_admin_token_is_accepted_with_an_unknown_expiry() {
    let sim = SimTenant::builder().start().await;
    let opaque = sim.admin_token_opaque();
    let token = admin::existing_token(&opaque, "https://graph.microsoft.com", sim.now()).unwrap();
    assert_eq!(token.secret(), opaque);
    assert_eq!(token.expires_at(), None);
}
