//! Exchange admin REST: InvokeCommand, paging, cmdlet errors, authorization.

use cba_sim::SimTenant;
use serde_json::{Value, json};

use crate::common::*;

fn invoke_url(sim: &SimTenant, tenant: &str) -> String {
    format!("{}/adminapi/beta/{tenant}/InvokeCommand", sim.exchange_url())
}

async fn invoke(url: &str, token: &str, body: &Value, page: Option<usize>) -> (u16, Value) {
    let mut request = client()
        .post(url)
        .bearer_auth(token)
        .header("X-CmdletName", body["CmdletInput"]["CmdletName"].as_str().unwrap_or(""))
        .header("X-AnchorMailbox", "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@tenant")
        .json(body);
    if let Some(n) = page {
        request = request.header("Prefer", format!("odata.maxpagesize={n}"));
    }
    json_of(request.send().await.unwrap()).await
}

fn cmdlet(name: &str, parameters: Value) -> Value {
    json!({"CmdletInput": {"CmdletName": name, "Parameters": parameters}})
}

async fn ready(sim: &SimTenant) -> String {
    let app = exchange_ready_app(sim).await;
    token_for(sim, &app, cert(0), EXO_SCOPE).await
}

#[tokio::test]
async fn get_mailbox_lists_the_seeded_mailboxes() {
    let sim = SimTenant::builder().start().await;
    let token = ready(&sim).await;
    let (status, body) =
        invoke(&invoke_url(&sim, sim.tenant_id()), &token, &cmdlet("Get-Mailbox", json!({"ResultSize": 10})), None)
            .await;
    assert_eq!(status, 200, "{body}");
    let value = body["value"].as_array().unwrap();
    assert_eq!(value.len(), 5);
    assert_eq!(value[0]["PrimarySmtpAddress"], format!("admin@{}", sim.tenant_domain()));
    assert_eq!(value[1]["Alias"], "user00001");
    assert_eq!(value[1]["RecipientTypeDetails"], "UserMailbox");
    assert!(body["@odata.context"].as_str().unwrap().starts_with(sim.exchange_url()));
    assert!(body.get("@odata.nextLink").is_none());
}

#[tokio::test]
async fn paging_follows_absolute_next_links() {
    let sim = SimTenant::builder().mailboxes(250).start().await;
    let token = ready(&sim).await;
    let body = cmdlet("Get-Mailbox", json!({"ResultSize": "Unlimited"}));
    let (status, first) = invoke(&invoke_url(&sim, sim.tenant_id()), &token, &body, None).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["value"].as_array().unwrap().len(), 100, "default page size");
    let mut link = first["@odata.nextLink"].as_str().unwrap().to_string();
    assert!(link.starts_with(&format!("{}/adminapi/beta/", sim.exchange_url())), "{link}");
    let mut aliases: Vec<String> =
        first["value"].as_array().unwrap().iter().map(|m| m["Alias"].as_str().unwrap().to_string()).collect();
    loop {
        let (status, page) = invoke(&link, &token, &body, None).await;
        assert_eq!(status, 200, "{page}");
        aliases.extend(page["value"].as_array().unwrap().iter().map(|m| m["Alias"].as_str().unwrap().to_string()));
        match page["@odata.nextLink"].as_str() {
            Some(next) => link = next.to_string(),
            None => break,
        }
    }
    assert_eq!(aliases.len(), 250);
    aliases.dedup();
    assert_eq!(aliases.len(), 250);

    let (_, small) = invoke(&invoke_url(&sim, sim.tenant_id()), &token, &body, Some(7)).await;
    assert_eq!(small["value"].as_array().unwrap().len(), 7);
    let response = client()
        .post(invoke_url(&sim, sim.tenant_id()))
        .bearer_auth(&token)
        .header("Prefer", "odata.maxpagesize=5000")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["preference-applied"], "odata.maxpagesize=1000");
}

#[tokio::test]
async fn ten_thousand_mailboxes_are_cheap() {
    let sim = SimTenant::builder().mailboxes(10_000).start().await;
    let token = ready(&sim).await;
    let body = cmdlet("Get-Mailbox", json!({"ResultSize": "Unlimited"}));
    let mut url = invoke_url(&sim, sim.tenant_id());
    let mut total = 0;
    let mut pages = 0;
    loop {
        let (status, page) = invoke(&url, &token, &body, Some(1000)).await;
        assert_eq!(status, 200);
        total += page["value"].as_array().unwrap().len();
        pages += 1;
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    assert_eq!((total, pages), (10_000, 10));
    let (status, one) = invoke(
        &invoke_url(&sim, sim.tenant_id()),
        &token,
        &cmdlet("Get-Mailbox", json!({"Identity": "user09999"})),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(one["value"][0]["DisplayName"], "User 09999");
    // By its object id, too.
    let guid = one["value"][0]["ExternalDirectoryObjectId"].as_str().unwrap();
    let (status, again) =
        invoke(&invoke_url(&sim, sim.tenant_id()), &token, &cmdlet("Get-Mailbox", json!({"Identity": guid})), None)
            .await;
    assert_eq!(status, 200);
    assert_eq!(again["value"][0]["Alias"], "user09999");
}

#[tokio::test]
async fn result_size_limits_and_warns() {
    let sim = SimTenant::builder().start().await;
    let token = ready(&sim).await;
    let (status, body) =
        invoke(&invoke_url(&sim, sim.tenant_id()), &token, &cmdlet("Get-Mailbox", json!({"ResultSize": 3})), None)
            .await;
    assert_eq!(status, 200);
    assert_eq!(body["value"].as_array().unwrap().len(), 3);
    assert!(body["@adminapi.warnings"][0].as_str().unwrap().contains("ResultSize"));
    let (status, _) =
        invoke(&invoke_url(&sim, sim.tenant_id()), &token, &cmdlet("Get-Mailbox", json!({"ResultSize": "lots"})), None)
            .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn unknown_identity_gets_the_real_404_body() {
    let sim = SimTenant::builder().start().await;
    let token = ready(&sim).await;
    let (status, body) = invoke(
        &invoke_url(&sim, sim.tenant_id()),
        &token,
        &cmdlet("Get-Mailbox", json!({"Identity": "nobody@contoso.com"})),
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "NotFound");
    assert_eq!(body["error"]["message"], "Error executing cmdlet");
    let detail = &body["error"]["details"][0];
    assert_eq!(detail["code"], "Context");
    assert_eq!(detail["target"], "");
    let message = detail["message"].as_str().unwrap();
    assert!(
        message.starts_with("Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|"),
        "{message}"
    );
    assert!(
        message
            .contains("The operation couldn't be performed because object 'nobody@contoso.com' couldn't be found on '"),
        "{message}"
    );
    assert!(body["error"]["innererror"].is_object());
}

#[tokio::test]
async fn organization_config_and_accepted_domain() {
    let sim = SimTenant::builder().start().await;
    let token = ready(&sim).await;
    let url = invoke_url(&sim, sim.tenant_domain());
    let (status, org) = invoke(&url, &token, &cmdlet("Get-OrganizationConfig", json!({})), None).await;
    assert_eq!(status, 200, "{org}");
    assert_eq!(org["value"][0]["Guid"], sim.tenant_id());
    let (status, domains) =
        invoke(&url, &token, &json!({"CmdletInput": {"CmdletName": "get-accepteddomain"}}), None).await;
    assert_eq!(status, 200, "{domains}");
    assert_eq!(domains["value"][0]["DomainName"], sim.tenant_domain());
    assert_eq!(domains["value"][0]["Default"], true);
}

#[tokio::test]
async fn authorization_needs_manage_as_app_and_a_supported_role() {
    let sim = SimTenant::builder().tenant("other").start().await;
    let url = invoke_url(&sim, sim.tenant_id());
    let body = cmdlet("Get-Mailbox", json!({}));

    let no_grant = sim.seed_app("no-grant", &[der(cert(0))]).await;
    sim.seed_role_assignment(&no_grant, EXCHANGE_ADMIN).await;
    let (status, error) = invoke(&url, &sim.app_token(&no_grant, "https://outlook.office365.com"), &body, None).await;
    assert_eq!(status, 401);
    assert_eq!(error["error"]["message"], "User is not allowed to call Get-Mailbox");

    let no_role = sim.seed_app("no-role", &[der(cert(0))]).await;
    sim.seed_grant_manage_as_app(&no_role).await;
    let token = sim.app_token(&no_role, "https://outlook.office365.com");
    let (status, error) = invoke(&url, &token, &body, None).await;
    assert_eq!(status, 401);
    assert_eq!(error["error"]["code"], "Unauthorized");

    // A role Exchange does not accept for app-only access.
    sim.seed_role_assignment(&no_role, "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3").await;
    let (status, _) = invoke(&url, &sim.app_token(&no_role, "https://outlook.office365.com"), &body, None).await;
    assert_eq!(status, 401);
    sim.seed_role_assignment(&no_role, "f2ef992c-3afb-46b9-b7cf-a126ee74c451").await; // Global Reader
    let good = sim.app_token(&no_role, "https://outlook.office365.com");
    let (status, _) = invoke(&url, &good, &body, None).await;
    assert_eq!(status, 200);

    let (status, _) = invoke(&url, &sim.app_token(&no_role, "https://graph.microsoft.com"), &body, None).await;
    assert_eq!(status, 401, "a Graph token is not an Exchange token");
    let response = client().post(&url).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let other = sim.tenant("other").unwrap().id.clone();
    let (status, _) = invoke(&invoke_url(&sim, &other), &good, &body, None).await;
    assert_eq!(status, 401, "the path tenant must be the token's tenant");
    sim.advance_clock(std::time::Duration::from_secs(3600));
    let (status, _) = invoke(&url, &good, &body, None).await;
    assert_eq!(status, 401, "expired token");
}

#[tokio::test]
async fn bad_requests() {
    let sim = SimTenant::builder().start().await;
    let token = ready(&sim).await;
    let url = invoke_url(&sim, sim.tenant_id());
    let (status, error) = invoke(&url, &token, &cmdlet("Set-Mailbox", json!({})), None).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["code"], "BadRequest");
    let (status, error) = invoke(&url, &token, &cmdlet("Get-Mailbox", json!({"Colour": "blue"})), None).await;
    assert_eq!(status, 400);
    assert!(error["error"]["message"].as_str().unwrap().contains("'Colour'"));
    let (status, _) = invoke(&url, &token, &json!({"Cmdlet": "Get-Mailbox"}), None).await;
    assert_eq!(status, 400);
    let response = client().post(&url).bearer_auth(&token).body("{nope").send().await.unwrap();
    assert_eq!(response.status(), 400);
    let response = client().get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 405);
    let response =
        client().post(format!("{}/adminapi/beta/{}/Other", sim.exchange_url(), sim.tenant_id())).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn set_mailbox_changes_what_get_mailbox_returns_and_rejects_what_the_service_rejects() {
    let sim = SimTenant::builder().mailboxes(3).start().await;
    let token = ready(&sim).await;
    let url = invoke_url(&sim, sim.tenant_id());
    let get = |identity: &str| cmdlet("Get-Mailbox", json!({"Identity": identity}));
    let (_, before) = invoke(&url, &token, &get("user00002"), None).await;
    assert!(before["value"][0].get("CustomAttribute3").is_none(), "{before}");

    let set = cmdlet(
        "Set-Mailbox",
        json!({"identity": "user00002@contoso.onmicrosoft.com", "customattribute3": "x", "HiddenFromAddressListsEnabled": true}),
    );
    let response = client().post(&url).bearer_auth(&token).json(&set).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let (_, after) = invoke(&url, &token, &get("user00002"), None).await;
    assert_eq!(after["value"][0]["CustomAttribute3"], "x", "{after}");
    assert_eq!(after["value"][0]["HiddenFromAddressListsEnabled"], true);
    let (_, listing) = invoke(&url, &token, &cmdlet("Get-Mailbox", json!({})), None).await;
    assert_eq!(listing["value"][2]["CustomAttribute3"], "x", "listings show it too");
    assert!(listing["value"][1].get("CustomAttribute3").is_none(), "only that mailbox");

    for (parameters, status, text) in [
        (json!({"CustomAttribute1": "x"}), 400, "missing mandatory parameters: Identity"),
        (json!({"Identity": "nobody", "CustomAttribute1": "x"}), 404, "'nobody' couldn't be found"),
        (json!({"Identity": "admin", "CustomAttribute16": "x"}), 400, "'CustomAttribute16'"),
        (json!({"Identity": "admin", "HiddenFromAddressListsEnabled": "yes"}), 400, "HiddenFromAddressListsEnabled"),
        (json!({"Identity": "admin", "CustomAttribute1": 5}), 400, "CustomAttribute1"),
    ] {
        let (got, error) = invoke(&url, &token, &cmdlet("Set-Mailbox", parameters.clone()), None).await;
        assert_eq!(got, status, "{parameters}: {error}");
        assert!(error.to_string().contains(text), "{parameters}: {error}");
    }
    let (_, admin) = invoke(&url, &token, &get("admin"), None).await;
    assert!(admin["value"][0].get("CustomAttribute1").is_none(), "a refused write changes nothing: {admin}");
}

#[tokio::test]
async fn fail_after_execute_does_the_write_then_answers_500() {
    let sim = SimTenant::builder().mailboxes(2).exchange_fail_after_execute(1).start().await;
    let token = ready(&sim).await;
    let url = invoke_url(&sim, sim.tenant_id());
    let set = |v: &str| cmdlet("Set-Mailbox", json!({"Identity": "admin", "CustomAttribute1": v}));
    let (status, error) = invoke(&url, &token, &cmdlet("Get-Mailbox", json!({})), None).await;
    assert_eq!(status, 200, "reads are not affected: {error}");
    let response = client().post(&url).bearer_auth(&token).json(&set("one")).send().await.unwrap();
    assert_eq!(response.status(), 500);
    assert!(response.headers().get("retry-after").is_none());
    let (_, admin) = invoke(&url, &token, &cmdlet("Get-Mailbox", json!({"Identity": "admin"})), None).await;
    assert_eq!(admin["value"][0]["CustomAttribute1"], "one", "carried out: {admin}");
    let response = client().post(&url).bearer_auth(&token).json(&set("two")).send().await.unwrap();
    assert_eq!(response.status(), 204, "only the first write fails");
}
