//! A listing that outlives its token.

use cba_exo::{Error, Parameters};
use futures::TryStreamExt as _;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Pages, Tokens, client, invoke_path};

#[tokio::test]
async fn a_token_that_expires_mid_listing_is_renewed_and_the_listing_completes() {
    let server = MockServer::start().await;
    let mut pages = Pages::new(server.uri(), 5000, 1000);
    pages.expire_after = vec![2]; // token-1 expires after the second page
    Mock::given(method("POST")).and(path(invoke_path())).respond_with(pages).mount(&server).await;
    let tokens = Tokens::new();
    let (exo, events) = client(&server, tokens.clone());

    let items: Vec<_> = exo.invoke("Get-Mailbox", &Parameters::new()).try_collect().await.unwrap();
    assert_eq!(items.len(), 5000);
    assert!(items.iter().enumerate().all(|(i, m)| m["Index"] == i), "every mailbox once, in order");

    let requests = server.received_requests().await.unwrap();
    let auth: Vec<_> = requests.iter().map(|r| r.headers.get("authorization").unwrap().to_str().unwrap()).collect();
    assert_eq!(
        auth,
        ["Bearer token-1", "Bearer token-1", "Bearer token-1", "Bearer token-2", "Bearer token-2", "Bearer token-2"],
        "the third page is refused once, then sent again with the new token"
    );
    assert_eq!(requests[2].url.query(), requests[3].url.query(), "the refused page is the one asked again");
    assert_eq!(tokens.invalidated(), 1);
    assert_eq!(tokens.asked(), 7, "asked before every request, and once after the refusal for a new one");
    let events = events.lock().unwrap();
    assert_eq!(events.iter().filter(|e| *e == "token renewed").count(), 1);
}

#[tokio::test]
async fn a_token_refused_twice_is_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).insert_header(
            "www-authenticate",
            r#"Bearer error="invalid_token", error_description="audience mismatch""#,
        ))
        .mount(&server)
        .await;
    let tokens = Tokens::new();
    let (exo, _) = client(&server, tokens.clone());
    let err = exo.collect_all("Get-Mailbox", &Parameters::new()).await.unwrap_err();
    match &err {
        Error::Unauthorized { detail, renewed, .. } => {
            assert_eq!(detail.as_deref(), Some("invalid_token: audience mismatch"));
            assert!(renewed);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("even after renewing it"), "{err}");
    assert_eq!(server.received_requests().await.unwrap().len(), 2, "one renewal, not a loop");
    assert_eq!(tokens.invalidated(), 1);
}

#[tokio::test]
async fn a_fixed_token_refused_is_sent_once_and_not_said_to_be_renewed() {
    let server = MockServer::start().await;
    let body = serde_json::json!({"error": {"code": "Unauthorized", "message": "Token expired"}});
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(401).set_body_json(body)).mount(&server).await;
    let exo = cba_exo::ExoClient::builder()
        .base_url(server.uri())
        .tenant_id("contoso.onmicrosoft.com")
        .token_source(std::sync::Arc::new(cba_exo::StaticToken::new("not-a-jwt")))
        .retry_policy(cba_exo::RetryPolicy::fast())
        .build()
        .unwrap();
    for cmdlet in ["Get-Mailbox", "Set-Mailbox"] {
        let err = exo.collect_all(cmdlet, &Parameters::new()).await.unwrap_err();
        assert!(matches!(&err, Error::Unauthorized { renewed: false, .. }), "{err:?}");
        let text = err.to_string();
        assert!(!text.contains("renewing"), "{text}");
        assert!(text.contains("cannot be renewed"), "{text}");
    }
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2, "the same token is not sent again");
    assert_eq!(requests[0].headers["authorization"], "Bearer not-a-jwt", "used as it is");
}

#[tokio::test]
async fn each_page_may_renew_its_token() {
    // The token expires after page 1 and again after page 2: each page gets its own renewal, so a long run
    // survives any number of expiries.
    let server = MockServer::start().await;
    let mut pages = Pages::new(server.uri(), 30, 10);
    pages.expire_after = vec![1, 2];
    Mock::given(method("POST")).and(path(invoke_path())).respond_with(pages).mount(&server).await;
    let tokens = Tokens::new();
    let (exo, _) = client(&server, tokens.clone());
    let items = exo.collect_all("Get-Mailbox", &Parameters::new()).await.unwrap();
    assert_eq!(items.len(), 30);
    assert_eq!(tokens.invalidated(), 2);
    assert_eq!(server.received_requests().await.unwrap().len(), 5, "3 pages + 2 refused tries");
}
