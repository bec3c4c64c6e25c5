//! Malformed and hostile input gets a service-shaped error, never a panic or a wiremock default.

use cba_sim::SimTenant;
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn hostile_requests_get_shaped_errors_and_the_sim_keeps_serving() {
    let sim = SimTenant::builder().start().await;
    let app = exchange_ready_app(&sim).await;
    let base = sim.graph_url().to_string();
    let admin = sim.admin_token();
    let exo = sim.app_token(&app, "https://outlook.office365.com");

    // Assertion claims at the edges of i64.
    let mut a = Assertion::new(&sim, cert(0), &app.app_id, sim.tenant_id());
    a.nbf = Some(i64::MIN);
    a.exp = Some(i64::MAX);
    let (status, body) = request_token(&sim, sim.tenant_id(), &app.app_id, &a.sign(cert(0)), EXO_SCOPE).await;
    assert_aadsts(status, &body, 401, "invalid_client", 700024);

    let requests: Vec<(reqwest::Method, String, Option<&str>, Vec<u8>)> = vec![
        (
            reqwest::Method::POST,
            format!("{base}/{}/oauth2/v2.0/token", sim.tenant_id()),
            None,
            vec![0xff, 0xfe, b'=', b'&'],
        ),
        (
            reqwest::Method::POST,
            format!("{base}/{}/oauth2/v2.0/token", "%zz"),
            None,
            b"grant_type=client_credentials".to_vec(),
        ),
        (reqwest::Method::POST, format!("{base}/v1.0/applications"), Some(&admin), vec![0xff; 10]),
        (reqwest::Method::POST, format!("{base}/v1.0/applications"), Some(&admin), b"[1,2,3]".to_vec()),
        (
            reqwest::Method::POST,
            format!("{base}/v1.0/applications"),
            Some(&admin),
            br#"{"displayName":"x","keyCredentials":"nope"}"#.to_vec(),
        ),
        (
            reqwest::Method::POST,
            format!("{base}/v1.0/applications"),
            Some(&admin),
            br#"{"displayName":"x","keyCredentials":[7]}"#.to_vec(),
        ),
        (
            reqwest::Method::GET,
            format!("{base}/v1.0/applications?$skiptoken=sim-18446744073709551615"),
            Some(&admin),
            vec![],
        ),
        (reqwest::Method::GET, format!("{base}/v1.0/applications(appId='x''y')"), Some(&admin), vec![]),
        (reqwest::Method::GET, format!("{base}/v1.0/applications(displayName='x')"), Some(&admin), vec![]),
        (reqwest::Method::GET, format!("{base}/v1.0/applications?$filter=%27%27%27"), Some(&admin), vec![]),
        (reqwest::Method::GET, format!("{base}/v1.0/roleManagement"), Some(&admin), vec![]),
        (
            reqwest::Method::POST,
            format!("{base}/adminapi/beta/{}/InvokeCommand?$skiptoken=18446744073709551615", sim.tenant_id()),
            Some(&exo),
            br#"{"CmdletInput":{"CmdletName":"Get-Mailbox"}}"#.to_vec(),
        ),
        (
            reqwest::Method::POST,
            format!("{base}/adminapi/beta/{}/InvokeCommand", sim.tenant_id()),
            Some(&exo),
            br#"{"CmdletInput":{"CmdletName":"Get-Mailbox","Parameters":{"ResultSize":-1}}}"#.to_vec(),
        ),
        (
            reqwest::Method::POST,
            format!("{base}/adminapi/beta/{}/InvokeCommand", sim.tenant_id()),
            Some(&exo),
            br#"{"CmdletInput":{"CmdletName":"Get-Mailbox","Parameters":{"Identity":{"a":1}}}}"#.to_vec(),
        ),
        (
            reqwest::Method::POST,
            format!("{base}/_sim/clock"),
            None,
            br#"{"advance_secs":9223372036854775807}"#.to_vec(),
        ),
    ];
    for (method, url, token, body) in requests {
        let mut request = client().request(method.clone(), &url).header("content-type", "application/json").body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let parsed: Result<Value, _> = serde_json::from_str(&text);
        assert!(parsed.is_ok(), "{method} {url}: not JSON: {text}");
        assert!(status < 500, "{method} {url}: {status} {text}");
    }
    // Still serving, with a sane clock.
    let (status, _) = admin_graph_get(&sim).await;
    assert_eq!(status, 200);
    assert!((sim.now() - time::OffsetDateTime::now_utc()).abs() < time::Duration::days(365 * 300));
    let _ = json!({});
}

async fn admin_graph_get(sim: &SimTenant) -> (u16, Value) {
    admin(sim).get("/applications").await
}
