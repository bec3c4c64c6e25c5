//! Pages: one, many (lazily), none, warnings, and where a next link may point.

use std::pin::pin;

use cba_exo::{Error, Parameters};
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Pages, Tokens, client, invoke_path, mailbox};

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test]
async fn a_single_page() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(invoke_path()))
        .respond_with(Pages::new(server.uri(), 3, 1000))
        .expect(1)
        .mount(&server)
        .await;
    let (exo, events) = client(&server, Tokens::new());
    let all = exo.collect_all("Get-Mailbox", &Parameters::new()).await.unwrap();
    assert_eq!(all, vec![mailbox(0), mailbox(1), mailbox(2)]);
    assert_eq!(*events.lock().unwrap(), ["page 1: 3"]);
}

#[tokio::test]
async fn many_pages_are_fetched_only_when_needed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(invoke_path()))
        .respond_with(Pages::new(server.uri(), 2500, 1000))
        .mount(&server)
        .await;
    let (exo, _) = client(&server, Tokens::new());
    let mut stream = pin!(exo.invoke("Get-Mailbox", &Parameters::new()));
    assert_eq!(requests(&server).await, 0, "nothing is sent before the stream is polled");

    assert_eq!(stream.try_next().await.unwrap(), Some(mailbox(0)));
    assert_eq!(requests(&server).await, 1, "the first item needs only the first page");
    for i in 1..1000 {
        assert_eq!(stream.try_next().await.unwrap().unwrap()["Index"], i);
    }
    assert_eq!(requests(&server).await, 1, "the whole first page is served from memory");
    assert_eq!(stream.try_next().await.unwrap(), Some(mailbox(1000)));
    assert_eq!(requests(&server).await, 2);

    let rest: Vec<_> = stream.try_collect().await.unwrap();
    assert_eq!(rest.len(), 1499);
    assert_eq!(rest.last(), Some(&mailbox(2499)));
    assert_eq!(requests(&server).await, 3);

    // The same body goes to every page; the next link is followed as given.
    let seen = server.received_requests().await.unwrap();
    assert_eq!(seen[1].url.query(), Some("$skiptoken=1000"));
    assert_eq!(seen[2].url.query(), Some("$skiptoken=2000"));
    assert!(seen.iter().all(|r| r.body == seen[0].body));
}

#[tokio::test]
async fn taking_a_few_items_stops_paging() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(invoke_path()))
        .respond_with(Pages::new(server.uri(), 10_000, 100))
        .mount(&server)
        .await;
    let (exo, _) = client(&server, Tokens::new());
    let first: Vec<_> = exo.invoke("Get-Mailbox", &Parameters::new()).take(150).try_collect().await.unwrap();
    assert_eq!(first.len(), 150);
    assert_eq!(requests(&server).await, 2, "two pages of 100 for 150 items, never the other 98");
}

/// Peak memory while streaming 40 MB of output in 2 MB pages stays near one page, where collecting it would
/// take well over 100 MB. Measured with the kernel's high-water mark, reset first (Linux only).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_while_streaming() {
    fn peak_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
    fn big(i: usize) -> serde_json::Value {
        json!({"Index": i, "Blob": "x".repeat(2000)})
    }

    let server = MockServer::start().await;
    let mut pages = Pages::new(server.uri(), 20_000, 1000);
    pages.item = big;
    Mock::given(method("POST")).and(path(invoke_path())).respond_with(pages).mount(&server).await;
    let (exo, _) = client(&server, Tokens::new());

    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        eprintln!("cannot reset the peak RSS here; skipping");
        return;
    }
    let before = peak_kib();
    let mut stream = pin!(exo.invoke("Get-Mailbox", &Parameters::new()));
    let (mut count, mut bytes) = (0usize, 0usize);
    while let Some(item) = stream.try_next().await.unwrap() {
        assert_eq!(item["Index"], count);
        bytes += item["Blob"].as_str().unwrap().len();
        count += 1;
    }
    let grew_mib = (peak_kib().saturating_sub(before)) / 1024;
    assert_eq!(count, 20_000);
    assert_eq!(bytes, 40_000_000, "the test streams 40 MB");
    assert_eq!(requests(&server).await, 20);
    eprintln!("peak RSS grew by {grew_mib} MiB");
    assert!(grew_mib < 32, "peak RSS grew by {grew_mib} MiB while streaming 2 MB pages");
}

#[tokio::test]
async fn no_content_is_an_empty_stream() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(204)).expect(1).mount(&server).await;
    let (exo, _) = client(&server, Tokens::new());
    let params = Parameters::new().with("Identity", "john@contoso.com").with("HiddenFromAddressListsEnabled", true);
    assert!(exo.collect_all("Set-Mailbox", &params).await.unwrap().is_empty());
}

#[tokio::test]
async fn warnings_and_non_terminating_errors_are_surfaced_once() {
    let server = MockServer::start().await;
    let mut pages = Pages::new(server.uri(), 4, 2);
    pages.warnings = vec!["By default, only the first 1000 items are returned."];
    Mock::given(method("POST")).and(path(invoke_path())).respond_with(pages).mount(&server).await;
    let (exo, events) = client(&server, Tokens::new());
    assert_eq!(exo.collect_all("Get-Mailbox", &Parameters::new()).await.unwrap().len(), 4);
    assert_eq!(
        *events.lock().unwrap(),
        ["warning: By default, only the first 1000 items are returned.", "page 1: 2", "page 2: 2"]
    );

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [{"Name": "a"}],
            "@adminapi.warnings": ["first", "second"],
            "@adminapi.errors": ["The operation couldn't be performed because object 'b' couldn't be found."]
        })))
        .mount(&server)
        .await;
    let (exo, events) = client(&server, Tokens::new());
    assert_eq!(exo.collect_all("Get-Mailbox", &Parameters::new()).await.unwrap(), vec![json!({"Name": "a"})]);
    assert_eq!(
        *events.lock().unwrap(),
        [
            "warning: first",
            "warning: second",
            "error: The operation couldn't be performed because object 'b' couldn't be found.",
            "page 1: 1"
        ]
    );
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&elsewhere).await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [{"Name": "a"}],
            "@odata.nextLink": format!("{}/adminapi/beta/x/InvokeCommand?$skiptoken=1", elsewhere.uri())
        })))
        .mount(&server)
        .await;
    let (exo, _) = client(&server, Tokens::new());
    let mut stream = pin!(exo.invoke("Get-Mailbox", &Parameters::new()));
    let err = stream.try_next().await.unwrap_err();
    assert!(matches!(&err, Error::Protocol { message, .. } if message.contains("another host")), "{err}");
    assert!(stream.next().await.is_none(), "the stream ends after an error");
}

#[tokio::test]
async fn a_relative_next_link_is_resolved_against_the_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::query_param_is_missing("$skiptoken"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [{"Name": "a"}],
            "@odata.nextLink": "InvokeCommand?$skiptoken=1"
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(invoke_path()))
        .and(wiremock::matchers::query_param("$skiptoken", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [{"Name": "b"}]})))
        .expect(1)
        .mount(&server)
        .await;
    let (exo, _) = client(&server, Tokens::new());
    let names: Vec<_> = exo.collect_all("Get-Mailbox", &Parameters::new()).await.unwrap();
    assert_eq!(names, vec![json!({"Name": "a"}), json!({"Name": "b"})]);
}

#[tokio::test]
async fn raw_items_keep_the_service_key_order() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(r#"{"value":[{"Zeta":1,"Alpha":"x"}, {"B":2}]}"#, "application/json"),
        )
        .mount(&server)
        .await;
    let (exo, _) = client(&server, Tokens::new());
    let raw: Vec<Box<serde_json::value::RawValue>> =
        exo.invoke_as("Get-Mailbox", &Parameters::new()).try_collect().await.unwrap();
    let texts: Vec<&str> = raw.iter().map(|r| r.get()).collect();
    assert_eq!(texts, [r#"{"Zeta":1,"Alpha":"x"}"#, r#"{"B":2}"#]);
}

#[tokio::test]
async fn prefetch_fetches_one_page_ahead_and_nothing_after_the_stream_is_dropped() {
    let server = MockServer::start().await;
    let mut pages = Pages::new(server.uri(), 50, 10);
    pages.expire_after = vec![2]; // a renewal inside a prefetched fetch
    Mock::given(method("POST")).and(path(invoke_path())).respond_with(pages).mount(&server).await;
    let tokens = Tokens::new();
    let (exo, events) = crate::support::client_with(&server, tokens.clone(), |b| b.prefetch(true));

    let all: Vec<_> = exo.invoke("Get-Mailbox", &Parameters::new()).try_collect().await.unwrap();
    assert_eq!(all, (0..50).map(mailbox).collect::<Vec<_>>());
    assert_eq!(tokens.invalidated(), 1);
    let page_events = events.lock().unwrap().iter().filter(|e| e.starts_with("page ")).count();
    assert_eq!(page_events, 5);

    let before = requests(&server).await;
    {
        let mut stream = pin!(exo.invoke("Get-Mailbox", &Parameters::new()));
        stream.try_next().await.unwrap().unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let made = requests(&server).await - before;
    assert!((1..=2).contains(&made), "the first page and at most the prefetched second, not {made}");
}
