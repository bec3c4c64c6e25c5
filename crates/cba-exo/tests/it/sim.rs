//! Against cba-sim's Exchange endpoint: real tokens (signed JWTs with roles), real paging and real refusals.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cba_exo::{Error, ExoClient, Parameters, RetryPolicy, TokenSource};
use cba_sim::{SeededApp, Service, SimTenant};
use futures::TryStreamExt as _;

const EXCHANGE_ADMINISTRATOR: &str = "29232cdf-9323-42fd-ade2-1d097af3e4de";

/// What cba-token does for a certificate, minus the assertion: cache a token until told it is no good.
#[derive(Debug)]
struct SimTokens {
    sim: Arc<SimTenant>,
    app: SeededApp,
    cached: Mutex<Option<String>>,
    minted: Mutex<u32>,
}

impl SimTokens {
    fn new(sim: &Arc<SimTenant>, app: &SeededApp) -> Arc<SimTokens> {
        Arc::new(SimTokens { sim: sim.clone(), app: app.clone(), cached: Mutex::new(None), minted: Mutex::new(0) })
    }

    fn minted(&self) -> u32 {
        *self.minted.lock().unwrap()
    }
}

impl TokenSource for SimTokens {
    fn token(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, cba_http::BoxError>> + Send + '_>> {
        let mut cached = self.cached.lock().unwrap();
        let token = cached
            .get_or_insert_with(|| {
                *self.minted.lock().unwrap() += 1;
                self.sim.app_token(&self.app, "https://outlook.office365.com")
            })
            .clone();
        Box::pin(async move { Ok(token) })
    }

    fn invalidate(&self) {
        *self.cached.lock().unwrap() = None;
    }
}

async fn sim_with(
    mailboxes: usize,
    tweak: impl FnOnce(cba_sim::SimTenantBuilder) -> cba_sim::SimTenantBuilder,
) -> Arc<SimTenant> {
    Arc::new(tweak(SimTenant::builder().tenant_name("contoso").mailboxes(mailboxes)).start().await)
}

/// An app with Exchange.ManageAsApp and, if `role`, Exchange Administrator.
async fn app(sim: &SimTenant, role: bool) -> SeededApp {
    let app = sim.seed_app("exo-script", &[] as &[Vec<u8>]).await;
    sim.seed_grant_manage_as_app(&app).await;
    if role {
        sim.seed_role_assignment(&app, EXCHANGE_ADMINISTRATOR).await;
    }
    app
}

fn client(sim: &SimTenant, tokens: Arc<SimTokens>, page_size: u32) -> ExoClient {
    ExoClient::builder()
        .base_url(sim.exchange_url())
        .tenant_id(sim.tenant_id())
        .token_source(tokens)
        .retry_policy(RetryPolicy::fast())
        .page_size(page_size)
        .build()
        .unwrap()
}

async fn exchange_requests(sim: &SimTenant) -> Vec<(String, u16)> {
    sim.requests()
        .await
        .into_iter()
        .filter(|r| r.service == Some(Service::Exchange))
        .map(|r| (r.path, r.status))
        .collect()
}

#[tokio::test]
async fn organization_config_is_one_page() {
    let sim = sim_with(1, |b| b).await;
    let app = app(&sim, true).await;
    let exo = client(&sim, SimTokens::new(&sim, &app), 1000);
    let org = exo.collect_all("Get-OrganizationConfig", &Parameters::new()).await.unwrap();
    assert_eq!(org.len(), 1);
    assert_eq!(org[0]["Name"], sim.tenant_domain());
}

#[tokio::test]
async fn many_mailboxes_stream_page_by_page() {
    let sim = sim_with(2500, |b| b).await;
    let app = app(&sim, true).await;
    let exo = client(&sim, SimTokens::new(&sim, &app), 1000);
    let params = Parameters::new().with("ResultSize", "Unlimited");
    let mut stream = std::pin::pin!(exo.invoke("Get-Mailbox", &params));
    let first = stream.try_next().await.unwrap().unwrap();
    assert_eq!(first["Alias"], "admin");
    assert_eq!(exchange_requests(&sim).await.len(), 1, "one page for the first mailbox");
    let mut rest = 0;
    while let Some(m) = stream.try_next().await.unwrap() {
        rest += 1;
        assert_eq!(m["Alias"], format!("user{rest:05}"));
    }
    assert_eq!(rest, 2499);
    assert_eq!(exchange_requests(&sim).await.len(), 3);
}

#[tokio::test]
async fn the_default_result_size_warning_reaches_the_handler() {
    let sim = sim_with(1500, |b| b).await;
    let app = app(&sim, true).await;
    let warnings = Arc::new(Mutex::new(Vec::new()));
    let sink = warnings.clone();
    let exo = ExoClient::builder()
        .base_url(sim.exchange_url())
        .tenant_id(sim.tenant_id())
        .token_source(SimTokens::new(&sim, &app))
        .on_event(move |e| {
            if let cba_exo::Event::Warning { message, .. } = e {
                sink.lock().unwrap().push(message.to_string());
            }
        })
        .build()
        .unwrap();
    let all = exo.collect_all("Get-Mailbox", &Parameters::new()).await.unwrap();
    assert_eq!(all.len(), 1000, "Get-Mailbox returns 1000 without -ResultSize");
    let warnings = warnings.lock().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("ResultSize"), "{warnings:?}");
}

#[tokio::test]
async fn an_unknown_identity_is_a_cmdlet_error() {
    let sim = sim_with(3, |b| b).await;
    let app = app(&sim, true).await;
    let exo = client(&sim, SimTokens::new(&sim, &app), 1000);
    let err = exo.collect_all("Get-Mailbox", &Parameters::new().with("Identity", "nobody")).await.unwrap_err();
    match err {
        Error::Cmdlet { status: 404, code, details, .. } => {
            assert_eq!(code, "NotFound");
            assert_eq!(details[0].exception_name(), "ManagementObjectNotFoundException");
            assert!(details[0].text.contains("'nobody'"), "{details:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_app_without_a_role_is_not_allowed() {
    let sim = sim_with(3, |b| b).await;
    let app = app(&sim, false).await;
    let tokens = SimTokens::new(&sim, &app);
    let exo = client(&sim, tokens.clone(), 1000);
    let err = exo.collect_all("Get-Mailbox", &Parameters::new()).await.unwrap_err();
    assert!(matches!(&err, Error::NotAllowed { cmdlet, .. } if cmdlet == "Get-Mailbox"), "{err:?}");
    assert!(err.to_string().contains("Exchange.ManageAsApp"), "{err}");
    assert_eq!(exchange_requests(&sim).await.len(), 2, "sent again once, with a new token");
    assert_eq!(tokens.minted(), 2, "the refused token was thrown away, once");
}

#[tokio::test]
async fn a_permission_restored_after_a_refusal_works_although_the_held_token_predates_it() {
    // The grant (Exchange.ManageAsApp, in the token's `roles`) is missing, then restored: the token held since
    // the refusal lacks it, so the next call is refused once more and then goes through with a new token.
    let sim = sim_with(3, |b| b).await;
    let app = sim.seed_app("exo-script", &[] as &[Vec<u8>]).await;
    sim.seed_role_assignment(&app, EXCHANGE_ADMINISTRATOR).await;
    let tokens = SimTokens::new(&sim, &app);
    let exo = client(&sim, tokens.clone(), 1000);
    let err = exo.collect_all("Get-OrganizationConfig", &Parameters::new()).await.unwrap_err();
    assert!(err.is_permission(), "{err:?}");

    sim.seed_grant_manage_as_app(&app).await;
    exo.collect_all("Set-Mailbox", &set_custom_attribute("user00001", "restored")).await.unwrap();
    assert_eq!(custom_attribute(&exo, "user00001").await, "restored");
    let statuses: Vec<u16> = exchange_requests(&sim).await.into_iter().map(|(_, s)| s).collect();
    assert_eq!(statuses, [401, 401, 401, 204, 200], "the write was refused once, then ran once");
    assert_eq!(tokens.minted(), 3);
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried() {
    let sim = sim_with(5, |b| {
        b.throttle_burst(1).fail_5xx_every(3).retry_after(Duration::ZERO).fault_services([Service::Exchange])
    })
    .await;
    let app = app(&sim, true).await;
    let exo = client(&sim, SimTokens::new(&sim, &app), 2);
    let all = exo.collect_all("Get-Mailbox", &Parameters::new().with("ResultSize", "Unlimited")).await.unwrap();
    assert_eq!(all.len(), 5);
    let statuses: Vec<u16> = exchange_requests(&sim).await.into_iter().map(|(_, s)| s).collect();
    assert!(statuses.contains(&429) && statuses.contains(&503), "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 3, "three pages of 2: {statuses:?}");
}

#[tokio::test]
async fn a_token_expiring_mid_listing_is_renewed() {
    let sim = sim_with(30, |b| b.token_lifetime(Duration::from_secs(3600))).await;
    let app = app(&sim, true).await;
    let tokens = SimTokens::new(&sim, &app);
    let exo = client(&sim, tokens.clone(), 10);
    let params = Parameters::new().with("ResultSize", "Unlimited");
    let mut stream = std::pin::pin!(exo.invoke("Get-Mailbox", &params));
    for _ in 0..10 {
        stream.try_next().await.unwrap().unwrap();
    }
    sim.advance_clock(Duration::from_secs(2 * 3600)); // the cached token is now expired
    let mut rest = 0;
    while stream.try_next().await.unwrap().is_some() {
        rest += 1;
    }
    assert_eq!(rest, 20);
    assert_eq!(tokens.minted(), 2, "renewed once");
    let statuses: Vec<u16> = exchange_requests(&sim).await.into_iter().map(|(_, s)| s).collect();
    assert_eq!(statuses, [200, 401, 200, 200]);
}

fn set_custom_attribute(identity: &str, value: &str) -> Parameters {
    Parameters::new().with("Identity", identity).with("CustomAttribute1", value)
}

async fn custom_attribute(exo: &ExoClient, identity: &str) -> serde_json::Value {
    let mailbox = exo.collect_all("Get-Mailbox", &Parameters::new().with("Identity", identity)).await.unwrap();
    mailbox[0]["CustomAttribute1"].clone()
}

#[tokio::test]
async fn a_write_that_fails_after_running_is_sent_once_and_reported_as_unknown() {
    let sim = sim_with(3, |b| b.exchange_fail_after_execute(1)).await;
    let app = app(&sim, true).await;
    let exo = client(&sim, SimTokens::new(&sim, &app), 1000);
    let err = exo.collect_all("Set-Mailbox", &set_custom_attribute("user00001", "first")).await.unwrap_err();
    match &err {
        Error::OutcomeUnknown { cmdlet, status, check_with, client_request_id, .. } => {
            assert_eq!((cmdlet.as_str(), *status), ("Set-Mailbox", Some(500)));
            assert_eq!(check_with.as_deref(), Some("Get-Mailbox"));
            assert_eq!(client_request_id.len(), 36);
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("outcome of Set-Mailbox is unknown") && text.contains("Check with Get-Mailbox"), "{text}");
    assert!(err.is_outcome_unknown() && err.is_remote());
    let statuses: Vec<u16> = exchange_requests(&sim).await.into_iter().map(|(_, s)| s).collect();
    assert_eq!(statuses, [500], "sent exactly once");
    // It did run: the change is there.
    assert_eq!(custom_attribute(&exo, "user00001").await, "first");
}

#[tokio::test]
async fn a_read_answered_503_is_retried_and_a_throttled_write_too() {
    // The sim's faults (429 and 503, both with Retry-After) refuse a request before it runs.
    let sim = sim_with(3, |b| {
        b.throttle_burst(1).fail_5xx_every(3).retry_after(Duration::ZERO).fault_services([Service::Exchange])
    })
    .await;
    let app = app(&sim, true).await;
    let exo = client(&sim, SimTokens::new(&sim, &app), 1000);
    exo.collect_all("Set-Mailbox", &set_custom_attribute("user00002", "v")).await.unwrap();
    assert_eq!(custom_attribute(&exo, "user00002").await, "v");
    let statuses: Vec<u16> = exchange_requests(&sim).await.into_iter().map(|(_, s)| s).collect();
    assert_eq!(statuses, [429, 204, 503, 200], "the write after its 429, the read after its 503");
}
