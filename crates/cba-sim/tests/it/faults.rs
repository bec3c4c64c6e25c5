//! Fault knobs: replication delay, throttling, 5xx, latency, clock offset.

use std::time::{Duration, Instant};

use cba_sim::{Service, SimTenant};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn replication_delay_hides_new_objects_from_reads_and_dependent_writes() {
    let sim = SimTenant::builder().replication_delay(Duration::from_secs(30)).start().await;
    let graph = admin(&sim);
    let (id, app_id) =
        create_app(&graph, json!({"displayName": "fresh", "keyCredentials": [key_credential(cert(0))]})).await;

    let (status, error) = graph.get(&format!("/applications/{id}")).await;
    assert_graph_error(status, &error, 404, "Request_ResourceNotFound");
    let (_, list) = graph.get("/applications?$filter=displayName eq 'fresh'").await;
    assert_eq!(list["value"], json!([]));
    let (status, error) = graph.post("/servicePrincipals", &json!({"appId": app_id})).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");
    assert_eq!(error["error"]["details"][0]["code"], "NoBackingApplicationObject");
    let assertion = Assertion::new(&sim, cert(0), &app_id, sim.tenant_id()).sign(cert(0));
    let (status, body) = request_token(&sim, sim.tenant_id(), &app_id, &assertion, EXO_SCOPE).await;
    assert_aadsts(status, &body, 400, "unauthorized_client", 700016);
    assert!(!sim.state().await.primary().applications[0].replicated);

    sim.advance_clock(Duration::from_secs(31));
    let (status, _) = graph.get(&format!("/applications/{id}")).await;
    assert_eq!(status, 200);
    let (status, sp) = graph.post("/servicePrincipals", &json!({"appId": app_id})).await;
    assert_eq!(status, 201, "{sp}");
    let (_, exo) = graph.get("/servicePrincipals(appId='00000002-0000-0ff1-ce00-000000000000')").await;
    let grant =
        json!({"principalId": sp["id"], "resourceId": exo["id"], "appRoleId": "dc50a0fb-09a3-484d-be87-e023b12c6440"});
    let path = format!("/servicePrincipals/{}/appRoleAssignedTo", exo["id"].as_str().unwrap());
    let (status, error) = graph.post(&path, &grant).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");
    assert_eq!(error["error"]["message"], "Not a valid reference update.");

    sim.advance_clock(Duration::from_secs(31));
    let (status, body) = graph.post(&path, &grant).await;
    assert_eq!(status, 201, "{body}");
    let assertion = Assertion::new(&sim, cert(0), &app_id, sim.tenant_id()).sign(cert(0));
    let (status, body) = request_token(&sim, sim.tenant_id(), &app_id, &assertion, EXO_SCOPE).await;
    assert_eq!(status, 200, "{body}");
    assert!(claims(body["access_token"].as_str().unwrap()).get("roles").is_none(), "the grant has not replicated yet");

    // A certificate added later is refused with AADSTS700027 until it replicates.
    let (status, _) = graph
        .patch(
            &format!("/applications/{id}"),
            &json!({"keyCredentials": [key_credential(cert(0)), key_credential(cert(1))]}),
        )
        .await;
    assert_eq!(status, 204);
    let assertion = Assertion::new(&sim, cert(1), &app_id, sim.tenant_id()).sign(cert(1));
    let (status, body) = request_token(&sim, sim.tenant_id(), &app_id, &assertion, EXO_SCOPE).await;
    assert_aadsts(status, &body, 401, "invalid_client", 700027);
    let assertion = Assertion::new(&sim, cert(0), &app_id, sim.tenant_id()).sign(cert(0));
    let (status, _) = request_token(&sim, sim.tenant_id(), &app_id, &assertion, EXO_SCOPE).await;
    assert_eq!(status, 200, "the old certificate kept working");
    sim.advance_clock(Duration::from_secs(31));
    let assertion = Assertion::new(&sim, cert(1), &app_id, sim.tenant_id()).sign(cert(1));
    let (status, body) = request_token(&sim, sim.tenant_id(), &app_id, &assertion, EXO_SCOPE).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["roles"], json!(["Exchange.ManageAsApp"]));
}

#[tokio::test]
async fn replication_with_a_short_real_delay() {
    let sim = SimTenant::builder().replication_delay(Duration::from_millis(200)).start().await;
    let graph = admin(&sim);
    let (id, _) = create_app(&graph, json!({"displayName": "soon"})).await;
    let (status, _) = graph.get(&format!("/applications/{id}")).await;
    assert_eq!(status, 404);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (status, _) = graph.get(&format!("/applications/{id}")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn throttle_every_kth_request_with_retry_after() {
    let sim = SimTenant::builder().throttle_every(3).retry_after(Duration::from_secs(7)).start().await;
    let graph = admin(&sim);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = client().get(graph.url("/applications")).bearer_auth(&graph.token).send().await.unwrap();
        let status = response.status().as_u16();
        if status == 429 {
            assert_eq!(response.headers()["retry-after"], "7");
            let (_, body) = json_of(response).await;
            assert_graph_error(429, &body, 429, "TooManyRequests");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, vec![200, 200, 429, 200, 200, 429]);
}

#[tokio::test]
async fn throttle_burst_on_login_is_aadsts_shaped() {
    let sim = SimTenant::builder().throttle_burst(2).fault_services([Service::Login]).start().await;
    let url = format!("{}/{}/v2.0/.well-known/openid-configuration", sim.login_url(), sim.tenant_id());
    for _ in 0..2 {
        let response = client().get(&url).send().await.unwrap();
        assert!(response.headers().contains_key("retry-after"));
        let (status, body) = json_of(response).await;
        assert_eq!(status, 429);
        assert_eq!(body["error_codes"], json!([90055]));
    }
    let (status, _) = json_of(client().get(&url).send().await.unwrap()).await;
    assert_eq!(status, 200);
    // Graph is not targeted.
    let (status, _) = admin(&sim).get("/applications").await;
    assert_eq!(status, 200);
    // A throttled request changed nothing.
    assert_eq!(sim.requests().await.iter().filter(|r| r.status == 429).count(), 2);
}

#[tokio::test]
async fn fail_5xx_burst_and_every() {
    let sim = SimTenant::builder().fail_5xx_burst(1).fault_services([Service::Graph]).start().await;
    let graph = admin(&sim);
    let (status, body) = graph.post("/applications", &json!({"displayName": "flaky"})).await;
    assert_graph_error(status, &body, 503, "serviceNotAvailable");
    assert!(sim.state().await.primary().applications.is_empty(), "a failed request has no effect");
    let (status, _) = graph.post("/applications", &json!({"displayName": "flaky"})).await;
    assert_eq!(status, 201);

    let sim = SimTenant::builder().fail_5xx_every(2).fault_services([Service::Exchange]).start().await;
    let app = exchange_ready_app(&sim).await;
    let token = sim.app_token(&app, "https://outlook.office365.com");
    let url = format!("{}/adminapi/beta/{}/InvokeCommand", sim.exchange_url(), sim.tenant_id());
    let body = json!({"CmdletInput": {"CmdletName": "Get-AcceptedDomain"}});
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let anchor = format!("APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{}", sim.tenant_id());
        let request = client().post(&url).bearer_auth(&token).header("X-AnchorMailbox", anchor).json(&body);
        statuses.push(request.send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, vec![200, 503, 200, 503]);
}

#[tokio::test]
async fn latency_delays_answers() {
    let sim = SimTenant::builder().latency(Duration::from_millis(150)).start().await;
    let url = format!("{}/{}/v2.0/.well-known/openid-configuration", sim.login_url(), sim.tenant_id());
    let started = Instant::now();
    let (status, _) = json_of(client().get(&url).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150), "{:?}", started.elapsed());
}

#[tokio::test]
async fn clock_offset_makes_local_assertions_stale() {
    let sim = SimTenant::builder().clock_offset(time::Duration::hours(1)).start().await;
    let app = exchange_ready_app(&sim).await;
    assert!(sim.now() - time::OffsetDateTime::now_utc() > time::Duration::minutes(59));
    // Signed with this machine's clock: an hour behind the sim's.
    let local_now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut a = Assertion::new(&sim, cert(0), &app.app_id, sim.tenant_id());
    a.nbf = Some(local_now);
    a.exp = Some(local_now + 600);
    let (status, body) = request_token(&sim, sim.tenant_id(), &app.app_id, &a.sign(cert(0)), EXO_SCOPE).await;
    assert_aadsts(status, &body, 401, "invalid_client", 700024);
}
