//! No single request outlives what is left of the retry policy's deadline.

use std::time::{Duration, Instant};

use cba_http::{HttpConfig, RetryPolicy, Verdict};

#[tokio::test]
async fn a_hanging_server_is_given_up_on_at_the_deadline() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hang", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let client = HttpConfig::new().build_for(&url.parse().unwrap()).unwrap();
    let policy = RetryPolicy {
        deadline: Duration::from_millis(400),
        request_timeout: Duration::from_secs(30),
        ..RetryPolicy::fast()
    };
    let mut timeouts = Vec::new();
    let started = Instant::now();
    let (outcome, stats) = cba_http::with_retry_attempts(
        &cba_http::SystemClock,
        &policy,
        |attempt| {
            timeouts.push(attempt.timeout);
            let request = client.get(&url).timeout(attempt.timeout);
            async move { request.send().await.map(|r| r.status()) }
        },
        |outcome| match outcome {
            Err(e) if cba_http::is_transient_error(e) => Verdict::Retry { after: None, reason: "timeout".into() },
            _ => Verdict::Done,
        },
        |_, _| {},
    )
    .await;
    let elapsed = started.elapsed();
    assert!(outcome.unwrap_err().is_timeout());
    assert!(stats.gave_up);
    assert!(
        timeouts[0] <= Duration::from_millis(400) && timeouts[0] > Duration::from_millis(350),
        "the first request gets what is left of the deadline, not its 30 s: {timeouts:?}"
    );
    assert!(elapsed < Duration::from_millis(1000), "{elapsed:?}");
}
