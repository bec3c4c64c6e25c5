//! A Graph root whose TLS certificate is not trusted (a TLS-inspecting proxy): `Error::Tls` at once, one
//! connection, no retries, even where the call would wait out replication.

use std::io::Read as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cba_graph::{Error, GraphClient, Replication, RetryPolicy};
use cba_http::{HttpConfig, StaticToken, TlsFailureKind};

/// An HTTPS listener on 127.0.0.1 presenting a self-signed certificate for `localhost` (trusted by nobody).
/// Returns its port and a count of the connections it accepted.
fn untrusted_tls_server() -> (u16, Arc<AtomicUsize>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key.into())
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(mut tcp) = tcp else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            let config = config.clone();
            std::thread::spawn(move || {
                let mut conn = rustls::ServerConnection::new(config).unwrap();
                // Runs the handshake until the client gives up on it.
                let _ = rustls::Stream::new(&mut conn, &mut tcp).read(&mut [0u8; 64]);
            });
        }
    });
    (port, connections)
}

#[tokio::test]
async fn an_untrusted_graph_certificate_fails_at_once_and_is_not_retried() {
    let (port, connections) = untrusted_tls_server();
    let client = GraphClient::builder()
        .base_url(format!("https://localhost:{port}"))
        .token_source(Arc::new(StaticToken::new("t")))
        .retry_policy(RetryPolicy::default())
        .http_config(&HttpConfig::new().user_agent("cba-test"))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client.get_application("22222222-2222-2222-2222-222222222222", Replication::Expected).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert_eq!(err.tls_failure().map(|f| f.kind), Some(TlsFailureKind::UnknownIssuer), "{err:?}");
    assert_eq!(
        err.to_string(),
        "Graph GET /applications/22222222-2222-2222-2222-222222222222: the server's TLS certificate was refused: \
         invalid peer certificate: UnknownIssuer"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 1, "no retry");
    assert!(elapsed < Duration::from_millis(800), "{elapsed:?}");
}
