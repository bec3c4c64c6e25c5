//! The request exactly as docs/wire-formats.md §6 describes it.

use cba_exo::{ExoClient, Hashtable, Parameters, RetryPolicy};
use serde_json::json;
use wiremock::matchers::{body_json, header, header_exists, header_regex, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{TENANT, Tokens, client_with, invoke_path};

#[tokio::test]
async fn headers_and_body_follow_the_reference() {
    let server = MockServer::start().await;
    let params = Parameters::new()
        .with("Identity", "john@contoso.com")
        .with("ResultSize", 10)
        .with("Enabled", true)
        .with("Tags", vec!["a", "b"])
        .with("Manager", None::<String>)
        .with(
            "EmailAddresses",
            Hashtable::new().with("Add", vec!["smtp:j@contoso.com"]).with("Remove", "smtp:old@contoso.com"),
        );
    let expected_body = json!({"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {
        "Identity": "john@contoso.com",
        "ResultSize": 10,
        "Enabled": true,
        "Tags": ["a", "b"],
        "Manager": null,
        "EmailAddresses": {"@odata.type": "#Exchange.GenericHashTable", "Add": ["smtp:j@contoso.com"], "Remove": "smtp:old@contoso.com"}
    }}});
    let anchor = format!("APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{TENANT}");
    let guid = "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$";
    let matches = |m: wiremock::MockBuilder| {
        m.and(path(invoke_path()))
            .and(header("authorization", "Bearer token-1"))
            .and(header("content-type", "application/json"))
            .and(header("x-cmdletname", "Get-Mailbox"))
            .and(header("prefer", "odata.maxpagesize=250"))
            .and(header("x-anchormailbox", anchor.as_str()))
            .and(header("x-responseformat", "json"))
            .and(header_exists("client-request-id"))
            .and(header_regex("client-request-id", guid))
            .and(body_json(&expected_body))
    };
    matches(Mock::given(method("POST")).and(query_param("$skiptoken", "p2")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [{"n": 2}]})))
        .expect(1)
        .mount(&server)
        .await;
    matches(Mock::given(method("POST")).and(wiremock::matchers::query_param_is_missing("$skiptoken")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [{"n": 1}],
            "@odata.nextLink": format!("{}{}?$skiptoken=p2", server.uri(), invoke_path())
        })))
        .expect(1)
        .mount(&server)
        .await;
    // Anything that does not match exactly gets a loud 418 and fails the test.
    Mock::given(wiremock::matchers::any()).respond_with(ResponseTemplate::new(418)).expect(0).mount(&server).await;

    let (exo, _) = client_with(&server, Tokens::new(), |b| b.page_size(250).retry_policy(RetryPolicy::none()));
    let items = exo.collect_all("Get-Mailbox", &params).await.unwrap();
    assert_eq!(items, vec![json!({"n": 1}), json!({"n": 2})]);
}

#[tokio::test]
async fn the_anchor_mailbox_and_root_path_can_be_set() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/exo/adminapi/beta/{TENANT}/InvokeCommand")))
        .and(header(
            "x-anchormailbox",
            "UPN:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@contoso.onmicrosoft.com",
        ))
        .and(header("prefer", "odata.maxpagesize=1000"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": []})))
        .expect(1)
        .mount(&server)
        .await;
    let exo = ExoClient::builder()
        .base_url(format!("{}/exo", server.uri()))
        .tenant_id(TENANT)
        .token_source(Tokens::new())
        .anchor_mailbox("UPN:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@contoso.onmicrosoft.com")
        .build()
        .unwrap();
    assert!(exo.collect_all("Get-OrganizationConfig", &Parameters::new()).await.unwrap().is_empty());
}
