//! A service provider's fleet: customer tenants listed by `/_sim/tenants`, admin consent of the provider's
//! multi-tenant app in a customer tenant (the consent page, the admin's click, what it creates), per-tenant
//! throttling and failures, and requests overlapping their latency.

use std::time::{Duration, Instant};

use cba_sim::wellknown::{EXCHANGE_APP_ID, GRAPH_APP_ID, MANAGE_AS_APP_ROLE_ID};
use cba_sim::{SeededApp, Service, SimTenant, TenantFault};
use serde_json::{Value, json};

use crate::common::*;

const DIRECTORY_READ_ALL: &str = "7ab1d382-f21e-4acd-a863-ba3e13f7da61";
const UNKNOWN_APP: &str = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";

/// The provider's multi-tenant app, made through Graph like `cba setup --multi-tenant` does: certificate 0 and
/// the application permissions Exchange.ManageAsApp and Graph Directory.Read.All.
async fn provider_app(sim: &SimTenant, extra: Value) -> String {
    let mut body = json!({
        "displayName": "msp-exo",
        "signInAudience": "AzureADMultipleOrgs",
        "keyCredentials": [key_credential(cert(0))],
        "requiredResourceAccess": [
            {"resourceAppId": EXCHANGE_APP_ID, "resourceAccess": [{"id": MANAGE_AS_APP_ROLE_ID, "type": "Role"}]},
            {"resourceAppId": GRAPH_APP_ID, "resourceAccess": [{"id": DIRECTORY_READ_ALL, "type": "Role"}]},
        ],
    });
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    create_app(&admin(sim), body).await.1
}

/// A token request for `app_id` from `tenant`'s authority with certificate 0.
async fn customer_token(sim: &SimTenant, tenant: &str, app_id: &str, scope: &str) -> (u16, Value) {
    let assertion = Assertion::new(sim, cert(0), app_id, tenant).sign(cert(0));
    request_token(sim, tenant, app_id, &assertion, scope).await
}

async fn get(url: String) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap()
}

async fn sim_post(sim: &SimTenant, route: &str, body: &Value) -> (u16, Value) {
    json_of(client().post(format!("{}/_sim/{route}", sim.graph_url())).json(body).send().await.unwrap()).await
}

#[tokio::test]
async fn customer_tenants_are_listed_provider_first_with_working_admin_tokens() {
    let sim = SimTenant::builder().tenant_name("provider").customer_tenants(3).start().await;
    let (status, list) = json_of(client().get(format!("{}/_sim/tenants", sim.graph_url())).send().await.unwrap()).await;
    assert_eq!(status, 200, "{list}");
    let list = list.as_array().unwrap();
    let domains: Vec<&str> = list.iter().map(|t| t["tenant_domain"].as_str().unwrap()).collect();
    assert_eq!(
        domains,
        [
            "provider.onmicrosoft.com",
            "customer0001.onmicrosoft.com",
            "customer0002.onmicrosoft.com",
            "customer0003.onmicrosoft.com"
        ]
    );
    assert_eq!(list[0]["tenant_id"], sim.tenant_id());
    let mut ids: Vec<&str> = list.iter().map(|t| t["tenant_id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "each tenant has its own id");
    for entry in list {
        assert_eq!(entry.as_object().unwrap().len(), 3, "{entry}");
        let graph = Graph { sim: &sim, token: entry["admin_token"].as_str().unwrap().to_string() };
        let (status, org) = graph.get("/organization").await;
        assert_eq!(status, 200, "{org}");
        assert_eq!(org["value"][0]["id"], entry["tenant_id"], "the admin token acts in its own tenant");
    }
    // The same tokens come back on a second call (minting a thousand costs a second of RSA).
    let (_, again) = json_of(client().get(format!("{}/_sim/tenants", sim.graph_url())).send().await.unwrap()).await;
    assert_eq!(again[3]["admin_token"], list[3]["admin_token"]);

    // ?exchange=true adds each admin's delegated Exchange token, which InvokeCommand takes in that tenant only.
    let url = format!("{}/_sim/tenants?exchange=true", sim.graph_url());
    let (status, with_exchange) = json_of(client().get(url).send().await.unwrap()).await;
    assert_eq!(status, 200, "{with_exchange}");
    let customer = &with_exchange[2];
    let token = customer["exchange_admin_token"].as_str().expect("exchange_admin_token");
    let invoke = |tenant: &str| {
        client()
            .post(format!("{}/adminapi/beta/{tenant}/InvokeCommand", sim.exchange_url()))
            .bearer_auth(token)
            .header("X-AnchorMailbox", format!("UPN:admin@{}", customer["tenant_domain"].as_str().unwrap()))
            .json(&json!({"CmdletInput": {"CmdletName": "Get-RoleGroup", "Parameters": {}}}))
            .send()
    };
    let (status, body) = json_of(invoke(customer["tenant_id"].as_str().unwrap()).await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = json_of(invoke(sim.tenant_id()).await.unwrap()).await;
    assert_eq!(status, 401, "another tenant's path");
    let url = format!("{}/_sim/tenants?exchange=yes", sim.graph_url());
    assert_eq!(client().get(url).send().await.unwrap().status(), 400);
}

#[tokio::test]
async fn a_customer_token_needs_the_admins_consent_and_replication() {
    let sim = SimTenant::builder()
        .tenant_name("provider")
        .customer_tenants(2)
        .replication_delay(Duration::from_secs(5))
        .start()
        .await;
    let app_id = provider_app(&sim, json!({})).await;
    sim.advance_clock(Duration::from_secs(6));
    let customer = sim.tenant("customer0001").unwrap().clone();

    let (status, body) = customer_token(&sim, &customer.id, &app_id, EXO_SCOPE).await;
    assert_aadsts(status, &body, 400, "unauthorized_client", 700016);

    // The customer's admin opens the v1 consent URL: a page waiting for the click, no consent yet.
    let page = get(format!("{}/{}/adminconsent?client_id={app_id}", sim.login_url(), customer.domain)).await;
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.text().await.unwrap().contains("/_sim/consent"));
    assert_eq!(sim.pending_consents(), vec![(customer.id.clone(), app_id.clone())]);
    let (status, body) = customer_token(&sim, &customer.id, &app_id, EXO_SCOPE).await;
    assert_aadsts(status, &body, 400, "unauthorized_client", 700016);

    // The click, through the route a separate process uses.
    let (status, approved) = sim_post(&sim, "consent", &json!({"tenant": customer.domain, "app_id": app_id})).await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["new_grants"], 2);
    assert!(sim.pending_consents().is_empty());
    let (status, body) = customer_token(&sim, &customer.id, &app_id, EXO_SCOPE).await;
    assert_aadsts(status, &body, 400, "unauthorized_client", 700016);
    sim.advance_clock(Duration::from_secs(6));

    let (status, body) = customer_token(&sim, &customer.id, &app_id, EXO_SCOPE).await;
    assert_eq!(status, 200, "{body}");
    let token = claims(body["access_token"].as_str().unwrap());
    assert_eq!(token["tid"], customer.id);
    assert_eq!(token["roles"], json!(["Exchange.ManageAsApp"]));
    assert_eq!(token["oid"], approved["service_principal_id"]);
    assert!(token.get("wids").is_none(), "consent assigns no directory role: {token}");
    let (status, body) = customer_token(&sim, &customer.id, &app_id, GRAPH_SCOPE).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["roles"], json!(["Directory.Read.All"]));

    let state = sim.state().await;
    let there = state.tenant(&customer.id).unwrap();
    let sp: Vec<_> = there.custom_service_principals().collect();
    assert_eq!(sp.len(), 1);
    assert_eq!(sp[0].app_owner_organization_id, sim.tenant_id());
    assert!(there.applications.is_empty(), "the certificate stays on the provider's application");
    let other = sim.tenant("customer0002").unwrap().id.clone();
    assert_eq!(state.tenant(&other).unwrap().custom_service_principals().count(), 0);
    let (status, body) = customer_token(&sim, &other, &app_id, EXO_SCOPE).await;
    assert_aadsts(status, &body, 400, "unauthorized_client", 700016);

    // Approving again without a page open is refused; a second visit and approval adds nothing.
    let (status, body) = sim_post(&sim, "consent", &json!({"tenant": customer.id, "app_id": app_id})).await;
    assert_eq!(status, 404, "{body}");
    get(format!("{}/{}/adminconsent?client_id={app_id}", sim.login_url(), customer.id)).await;
    assert_eq!(
        sim.approve_consent(&customer.id, &app_id),
        Some(approved["service_principal_id"].as_str().unwrap().to_string())
    );
    assert_eq!(sim.state().await.tenant(&customer.id).unwrap().app_role_assignments.len(), 2);
}

#[tokio::test]
async fn the_v2_consent_url_grants_only_the_resources_in_its_scope() {
    let sim = SimTenant::builder().tenant_name("provider").customer_tenants(1).start().await;
    let app_id = provider_app(&sim, json!({})).await;
    let customer = sim.tenant("customer0001").unwrap().id.clone();
    let url = format!(
        "{}/{customer}/v2.0/adminconsent?client_id={app_id}&scope=https%3A%2F%2Foutlook.office365.com%2F.default",
        sim.login_url()
    );
    assert_eq!(get(url).await.status(), 200);
    assert!(sim.approve_consent("customer0001", &app_id).is_some());
    let (status, body) = customer_token(&sim, &customer, &app_id, GRAPH_SCOPE).await;
    assert_eq!(status, 200, "{body}");
    assert!(claims(body["access_token"].as_str().unwrap()).get("roles").is_none(), "no Graph permission granted");
    let (_, body) = customer_token(&sim, &customer, &app_id, EXO_SCOPE).await;
    assert_eq!(claims(body["access_token"].as_str().unwrap())["roles"], json!(["Exchange.ManageAsApp"]));
}

#[tokio::test]
async fn the_consent_page_refuses_what_entra_refuses() {
    let sim = SimTenant::builder().tenant_name("provider").customer_tenants(1).start().await;
    let multi = provider_app(&sim, json!({})).await;
    let (_, single) =
        create_app(&admin(&sim), json!({"displayName": "single", "signInAudience": "AzureADMyOrg"})).await;
    let customer = sim.tenant("customer0001").unwrap().id.clone();
    let login = sim.login_url();
    let cases: Vec<(String, u16, &str, u64)> = vec![
        (format!("{login}/{customer}/adminconsent?client_id={single}"), 400, "unauthorized_client", 700016),
        (format!("{login}/{customer}/adminconsent?client_id={UNKNOWN_APP}"), 400, "unauthorized_client", 700016),
        (format!("{login}/{customer}/adminconsent"), 400, "invalid_request", 900144),
        (format!("{login}/organizations/adminconsent?client_id={multi}"), 400, "invalid_request", 50059),
        (format!("{login}/nowhere.example/adminconsent?client_id={multi}"), 400, "invalid_tenant", 90002),
        (
            format!("{login}/{customer}/adminconsent?client_id={multi}&redirect_uri=https%3A%2F%2Fmsp.example%2Fdone"),
            400,
            "invalid_request",
            50011,
        ),
        (format!("{login}/{customer}/v2.0/adminconsent?client_id={multi}"), 400, "invalid_request", 900144),
        (
            format!("{login}/{customer}/v2.0/adminconsent?client_id={multi}&scope=Directory.Read.All"),
            400,
            "invalid_scope",
            70011,
        ),
    ];
    for (url, status, error, code) in cases {
        let (got, body) = json_of(get(url.clone()).await).await;
        assert_aadsts(got, &body, status, error, code);
    }
    let (status, body) =
        json_of(client().post(format!("{login}/{customer}/adminconsent?client_id={multi}")).send().await.unwrap())
            .await;
    assert_aadsts(status, &body, 400, "invalid_request", 900561);
    assert!(sim.pending_consents().is_empty(), "a refused page records nothing");
    // The single-tenant app cannot get a service principal there through Graph either.
    let customer_admin = Graph { sim: &sim, token: sim.admin_token_for(&customer).unwrap() };
    let (status, error) = customer_admin.post("/servicePrincipals", &json!({"appId": single})).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");
    assert_eq!(error["error"]["details"][0]["code"], "NoBackingApplicationObject");
    let (status, sp) = customer_admin.post("/servicePrincipals", &json!({"appId": multi})).await;
    assert_eq!(status, 201, "{sp}");
    assert_eq!(sp["appOwnerOrganizationId"], sim.tenant_id());
}

#[tokio::test]
async fn auto_approval_redirects_like_entra() {
    let sim =
        SimTenant::builder().tenant_name("provider").customer_tenants(1).admin_consent_auto_approve(true).start().await;
    let app_id = provider_app(&sim, json!({"web": {"redirectUris": ["https://msp.example/done"]}})).await;
    let customer = sim.tenant("customer0001").unwrap().id.clone();
    let url = format!(
        "{}/{customer}/adminconsent?client_id={app_id}&redirect_uri=https%3A%2F%2Fmsp.example%2Fdone&state=abc",
        sim.login_url()
    );
    let answer = get(url).await;
    assert_eq!(answer.status(), 302);
    let location = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.host_str(), Some("msp.example"));
    let pairs: Vec<(String, String)> = location.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    assert_eq!(
        pairs,
        [("admin_consent".into(), "True".into()), ("tenant".into(), customer.clone()), ("state".into(), "abc".into())]
    );
    assert!(sim.pending_consents().is_empty());
    let (status, body) = customer_token(&sim, &customer, &app_id, EXO_SCOPE).await;
    assert_eq!(status, 200, "{body}");
}

/// The seeded multi-tenant app consented, granted Exchange.ManageAsApp and Exchange Administrator in every
/// customer tenant; returns each tenant's service principal.
async fn seeded_fleet(sim: &SimTenant) -> Vec<SeededApp> {
    let home = sim.seed_app_in(sim.tenant_id(), "msp", &[der(cert(0))], true).await;
    let mut out = Vec::new();
    for tenant in sim.tenants().iter().skip(1) {
        let app = sim.seed_consent(&home, &tenant.id).await;
        sim.seed_grant_manage_as_app(&app).await;
        sim.seed_role_assignment(&app, EXCHANGE_ADMIN).await;
        out.push(app);
    }
    out
}

async fn org_config(sim: &SimTenant, app: &SeededApp) -> (u16, Value) {
    let token = sim.app_token(app, "https://outlook.office365.com");
    let tenant = &app.tenant_id;
    let request = client()
        .post(format!("{}/adminapi/beta/{tenant}/InvokeCommand", sim.exchange_url()))
        .bearer_auth(token)
        .header("X-AnchorMailbox", format!("APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{tenant}"))
        .json(&json!({"CmdletInput": {"CmdletName": "Get-OrganizationConfig", "Parameters": {}}}));
    json_of(request.send().await.unwrap()).await
}

#[tokio::test]
async fn a_tenant_fault_touches_only_that_tenant() {
    let sim = SimTenant::builder().tenant_name("provider").customer_tenants(3).start().await;
    let fleet = seeded_fleet(&sim).await;
    let (one, two, three) = (&fleet[0], &fleet[1], &fleet[2]);

    // Throttle customer0002's token endpoint twice: it gets 429 + Retry-After, the others are served.
    sim.set_tenant_fault("customer0002", TenantFault::throttle([Service::Login], 2, 7));
    for _ in 0..2 {
        let (status, body) = customer_token(&sim, &two.tenant_id, &two.app_id, EXO_SCOPE).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error_codes"], json!([90055]));
        let (status, body) = customer_token(&sim, &one.tenant_id, &one.app_id, EXO_SCOPE).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = customer_token(&sim, &two.tenant_id, &two.app_id, EXO_SCOPE).await;
    assert_eq!(status, 200, "the throttling is over: {body}");
    let assertion = Assertion::new(&sim, cert(0), &two.app_id, &two.tenant_id).sign(cert(0));
    sim.set_tenant_fault(&two.tenant_id, TenantFault::throttle([Service::Login], 1, 7));
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", two.app_id.as_str()),
        ("scope", EXO_SCOPE),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", assertion.as_str()),
    ];
    let throttled = client().post(token_url(&sim, &two.tenant_id)).form(&form).send().await.unwrap();
    assert_eq!(throttled.headers()["retry-after"], "7");

    // Graph is told apart by the token's tenant.
    sim.set_tenant_fault("customer0002", TenantFault::throttle([Service::Graph], u64::MAX, 3));
    let graph_of = |name: &str| Graph { sim: &sim, token: sim.admin_token_for(name).unwrap() };
    let (status, body) = graph_of("customer0002").get("/organization").await;
    assert_graph_error(status, &body, 429, "TooManyRequests");
    assert_eq!(graph_of("customer0003").get("/organization").await.0, 200);
    assert_eq!(graph_of("provider").get("/organization").await.0, 200);

    // A failing tenant: 500 from its Exchange until cleared; an Exchange that refuses the app: 401.
    sim.set_tenant_fault("customer0002", TenantFault::fail([Service::Exchange], u64::MAX));
    let (status, body) = org_config(&sim, two).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "InternalServerError");
    assert_eq!(org_config(&sim, one).await.0, 200);
    assert_eq!(graph_of("customer0002").get("/organization").await.0, 200, "Graph is not in the fault's services");

    let (status, _) =
        sim_post(&sim, "tenant-fault", &json!({"tenant": three.tenant_id, "exchange_unauthorized": true})).await;
    assert_eq!(status, 204);
    let (status, body) = org_config(&sim, three).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "Unauthorized");
    assert_eq!(org_config(&sim, one).await.0, 200);

    // Cleared, by the library and by the route.
    sim.set_tenant_fault("customer0002", TenantFault::default());
    let (status, _) = sim_post(&sim, "tenant-fault", &json!({"tenant": three.tenant_id})).await;
    assert_eq!(status, 204);
    for app in &fleet {
        assert_eq!(org_config(&sim, app).await.0, 200);
    }
    let (status, body) = sim_post(&sim, "tenant-fault", &json!({"tenant": "nowhere.example", "throttle": 1})).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = sim_post(&sim, "tenant-fault", &json!({"tenant": three.tenant_id, "throtle": 1})).await;
    assert_eq!(status, 400, "an unknown field is refused, not ignored: {body}");
}

/// The latency is slept outside the sim's lock: requests in flight together overlap their delays. 200
/// requests at 250 ms would take 50 s one after another; the bound leaves room for a loaded machine.
#[tokio::test]
async fn concurrent_requests_overlap_their_latency() {
    let sim = SimTenant::builder().customer_tenants(4).latency(Duration::from_millis(250)).start().await;
    let tokens: Vec<String> = sim.tenants().iter().map(|t| sim.admin_token_for(&t.id).unwrap()).collect();
    let http = client();
    let url = format!("{}/v1.0/organization", sim.graph_url());
    let start = Instant::now();
    let requests = (0..200).map(|i| {
        let request = http.get(&url).bearer_auth(&tokens[i % tokens.len()]);
        async move { request.send().await.map(|r| r.status().as_u16()) }
    });
    let statuses = futures_join_all(requests).await;
    let elapsed = start.elapsed();
    assert!(statuses.iter().all(|s| *s == Ok(200)), "{statuses:?}");
    assert!(elapsed < Duration::from_secs(15), "200 requests at 250 ms took {elapsed:?}: served one at a time?");
}

/// `join_all` without the futures crate: spawn each request and wait for all.
async fn futures_join_all<F>(requests: impl Iterator<Item = F>) -> Vec<Result<u16, String>>
where
    F: std::future::Future<Output = Result<u16, reqwest::Error>> + Send + 'static,
{
    let handles: Vec<_> = requests.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())));
    }
    out
}

/// The seeding shortcut of benchmarks and process tests: consent, grant and role in every customer tenant at
/// once, reused on a rerun; the request counter sees every answered request (the log keeps only 10,000).
#[tokio::test]
async fn seed_fleet_onboards_every_customer_tenant_at_once() {
    let sim = SimTenant::builder()
        .tenant_name("provider")
        .customer_tenants(3)
        .replication_delay(Duration::from_secs(30))
        .start()
        .await;
    let home = sim.seed_app_in(sim.tenant_id(), "msp", &[der(cert(0))], true).await;
    let body = json!({"app_id": home.app_id, "role_template_id": EXCHANGE_ADMIN});
    let (status, seeded) = sim_post(&sim, "seed-fleet", &body).await;
    assert_eq!(status, 200, "{seeded}");
    let seeded = seeded.as_array().unwrap().clone();
    assert_eq!(seeded.len(), 3, "the provider is not a customer");
    for (entry, info) in seeded.iter().zip(sim.tenants().iter().skip(1)) {
        assert_eq!(entry["tenant_id"], info.id);
        assert_eq!(entry["tenant_domain"], info.domain);
        let (status, body) = customer_token(&sim, &info.id, &home.app_id, EXO_SCOPE).await;
        assert_eq!(status, 200, "replicated at once: {body}");
        let token = claims(body["access_token"].as_str().unwrap());
        assert_eq!(token["oid"], entry["service_principal_id"]);
        assert_eq!(token["roles"], json!(["Exchange.ManageAsApp"]));
        assert_eq!(token["wids"], json!([EXCHANGE_ADMIN]));
    }
    let (_, again) = sim_post(&sim, "seed-fleet", &body).await;
    assert_eq!(again.as_array().unwrap(), &seeded, "a rerun reuses what exists");
    let state = sim.state().await;
    assert_eq!(state.tenant("customer0002").unwrap().role_assignments.len(), 1);

    let (status, error) = sim_post(&sim, "seed-fleet", &json!({"app_id": UNKNOWN_APP})).await;
    assert_eq!(status, 404, "{error}");
    let count = || async {
        let (_, body) =
            json_of(client().get(format!("{}/_sim/request-count", sim.graph_url())).send().await.unwrap()).await;
        body["total"].as_u64().unwrap()
    };
    let before = count().await;
    admin(&sim).get("/organization").await;
    assert_eq!(count().await, before + 1, "inspection routes are not counted, Graph is");
}
