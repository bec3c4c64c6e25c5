//! Exchange admin REST: InvokeCommand, paging, cmdlet errors, authorization.

use cba_sim::SimTenant;
use serde_json::{Value, json};

use crate::common::*;

fn invoke_url(sim: &SimTenant, tenant: &str) -> String {
    format!("{}/adminapi/beta/{tenant}/InvokeCommand", sim.exchange_url())
}

/// The app-only anchor for `tenant` (id or domain).
fn anchor(tenant: &str) -> String {
    format!("APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{tenant}")
}

/// A POST to an InvokeCommand URL (first page or next link), anchored in the URL's tenant.
fn post(url: &str, token: &str) -> reqwest::RequestBuilder {
    let path = url.split('?').next().unwrap_or(url);
    let tenant = path.trim_end_matches("/InvokeCommand").rsplit('/').next().unwrap_or("");
    client().post(url).bearer_auth(token).header("X-AnchorMailbox", anchor(tenant))
}

async fn invoke(url: &str, token: &str, body: &Value, page: Option<usize>) -> (u16, Value) {
    let mut request =
        post(url, token).header("X-CmdletName", body["CmdletInput"]["CmdletName"].as_str().unwrap_or("")).json(body);
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
    let response = post(&invoke_url(&sim, sim.tenant_id()), &token)
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
    let response = post(&url, &token).body("{nope").send().await.unwrap();
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
    let response = post(&url, &token).json(&set).send().await.unwrap();
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
    let response = post(&url, &token).json(&set("one")).send().await.unwrap();
    assert_eq!(response.status(), 500);
    assert!(response.headers().get("retry-after").is_none());
    let (_, admin) = invoke(&url, &token, &cmdlet("Get-Mailbox", json!({"Identity": "admin"})), None).await;
    assert_eq!(admin["value"][0]["CustomAttribute1"], "one", "carried out: {admin}");
    let response = post(&url, &token).json(&set("two")).send().await.unwrap();
    assert_eq!(response.status(), 204, "only the first write fails");
}

/// Assign Exchange Administrator to the app through Graph (replication applies, unlike seeding).
async fn assign_role_through_graph(sim: &SimTenant, app: &cba_sim::SeededApp) {
    let body = json!({
        "@odata.type": "#microsoft.graph.unifiedRoleAssignment",
        "roleDefinitionId": EXCHANGE_ADMIN,
        "principalId": app.service_principal_id,
        "directoryScopeId": "/",
    });
    let (status, created) = admin(sim).post("/roleManagement/directory/roleAssignments", &body).await;
    assert_eq!(status, 201, "{created}");
}

fn assert_not_allowed(status: u16, error: &Value) {
    assert_eq!(status, 401, "{error}");
    assert_eq!(error["error"]["code"], "Unauthorized", "{error}");
    assert_eq!(error["error"]["message"], "User is not allowed to call Get-Mailbox", "{error}");
}

#[tokio::test]
async fn a_role_works_in_exchange_only_once_it_has_reached_exchange_whatever_the_token_lists() {
    let delay = std::time::Duration::from_secs(10);
    let sim = SimTenant::builder().replication_delay(delay).start().await;
    let app = sim.seed_app("late-role", &[der(cert(0))]).await;
    sim.seed_grant_manage_as_app(&app).await;
    assign_role_through_graph(&sim, &app).await;
    let url = invoke_url(&sim, sim.tenant_id());
    let body = cmdlet("Get-Mailbox", json!({}));

    // Replicated in the directory: a new token lists the role, but Exchange's copy is exchange_role_delay behind.
    sim.advance_clock(delay);
    let token = token_for(&sim, &app, cert(0), EXO_SCOPE).await;
    assert_eq!(claims(&token)["wids"], json!([EXCHANGE_ADMIN]));
    let (status, error) = invoke(&url, &token, &body, None).await;
    assert_not_allowed(status, &error);

    sim.advance_clock(delay);
    let (status, body_) = invoke(&url, &token, &body, None).await;
    assert_eq!(status, 200, "the same token, once the role has reached Exchange: {body_}");

    // The knob: Exchange as fast as the directory.
    let sim =
        SimTenant::builder().replication_delay(delay).exchange_role_delay(std::time::Duration::ZERO).start().await;
    let app = sim.seed_app("prompt-role", &[der(cert(0))]).await;
    sim.seed_grant_manage_as_app(&app).await;
    assign_role_through_graph(&sim, &app).await;
    let (status, error) =
        invoke(&invoke_url(&sim, sim.tenant_id()), &sim.app_token(&app, "https://outlook.office365.com"), &body, None)
            .await;
    assert_not_allowed(status, &error);
    sim.advance_clock(delay);
    let (status, error) =
        invoke(&invoke_url(&sim, sim.tenant_id()), &sim.app_token(&app, "https://outlook.office365.com"), &body, None)
            .await;
    assert_eq!(status, 200, "{error}");
}

#[tokio::test]
async fn a_deleted_role_stops_working_although_the_token_still_lists_it() {
    let body = cmdlet("Get-Mailbox", json!({}));
    for delete_delay in [std::time::Duration::ZERO, std::time::Duration::from_secs(5)] {
        let sim = SimTenant::builder().delete_replication_delay(delete_delay).start().await;
        let app = exchange_ready_app(&sim).await;
        let token = token_for(&sim, &app, cert(0), EXO_SCOPE).await;
        assert_eq!(claims(&token)["wids"], json!([EXCHANGE_ADMIN]));
        let url = invoke_url(&sim, sim.tenant_id());
        let (status, error) = invoke(&url, &token, &body, None).await;
        assert_eq!(status, 200, "{error}");

        let graph = admin(&sim);
        let list =
            format!("/roleManagement/directory/roleAssignments?$filter=principalId eq '{}'", app.service_principal_id);
        let (_, assignments) = graph.get(&list).await;
        let id = assignments["value"][0]["id"].as_str().unwrap().to_string();
        let (status, _) = graph.delete(&format!("/roleManagement/directory/roleAssignments/{id}")).await;
        assert_eq!(status, 204);

        if !delete_delay.is_zero() {
            let (status, error) = invoke(&url, &token, &body, None).await;
            assert_eq!(status, 200, "the delete has not replicated yet: {error}");
            sim.advance_clock(delete_delay + std::time::Duration::from_secs(1));
        }
        let (status, error) = invoke(&url, &token, &body, None).await;
        assert_not_allowed(status, &error);
    }
}

#[tokio::test]
async fn the_anchor_mailbox_is_required_and_must_be_in_the_tokens_tenant() {
    let sim = SimTenant::builder().tenant("other").start().await;
    let token = ready(&sim).await;
    let url = invoke_url(&sim, sim.tenant_id());
    let body = cmdlet("Get-OrganizationConfig", json!({}));
    let other = sim.tenant("other").unwrap().id.clone();
    let send = |anchor: Option<String>| {
        let mut request = client().post(&url).bearer_auth(&token).json(&body);
        if let Some(a) = anchor {
            request = request.header("X-AnchorMailbox", a);
        }
        async move { json_of(request.send().await.unwrap()).await }
    };
    for (given, status, text) in [
        (None, 400, "The X-AnchorMailbox header is required"),
        (Some(anchor(&other)), 400, "does not route to a mailbox of this organization"),
        (Some(anchor("fabrikam.onmicrosoft.com")), 400, "does not route"),
        (Some(format!("UPN:admin@{}", sim.tenant_domain())), 400, "does not route"),
        (
            Some(format!("APP:SystemMailbox{{00000000-0000-0000-0000-000000000000}}@{}", sim.tenant_id())),
            400,
            "does not route",
        ),
        (Some(anchor(sim.tenant_id())), 200, ""),
        (Some(anchor(sim.tenant_domain())), 200, ""),
        (Some(anchor(sim.tenant_id()).to_ascii_lowercase()), 200, ""),
    ] {
        let (got, answer) = send(given.clone()).await;
        assert_eq!(got, status, "{given:?}: {answer}");
        if status == 400 {
            assert_eq!(answer["error"]["code"], "BadRequest", "{answer}");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains(text), "{given:?}: {message}");
            assert!(message.contains(&anchor(sim.tenant_id())), "names the expected anchor: {message}");
        }
    }

    // The knob turns the check off.
    let sim = SimTenant::builder().require_anchor_mailbox(false).start().await;
    let token = ready(&sim).await;
    let response = client().post(invoke_url(&sim, sim.tenant_id())).bearer_auth(&token).json(&body).send().await;
    assert_eq!(response.unwrap().status(), 200);
}
