//! A login service whose TLS certificate is not trusted (a TLS-inspecting proxy): `Error::Tls` at once, one
//! connection, no retries (they used to take six attempts over 11 s).

use std::io::Read as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cba_token::{Authority, Error, ErrorKind, HttpConfig, Resource, TlsFailureKind, TokenClient};

use crate::support::cert;

/// An HTTPS listener on 127.0.0.1 presenting a self-signed certificate for `localhost` (trusted by nobody).
/// Returns its port and a count of the connections it accepted.
fn untrusted_tls_server() -> (u16, Arc<AtomicUsize>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
    let chain = vec![made.cert.der().clone()];
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key.into())
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
async fn an_untrusted_login_certificate_fails_at_once_and_is_not_retried() {
    let (port, connections) = untrusted_tls_server();
    // The default retry policy (6 attempts, 90 s) and the platform trust store, as `cba token` runs.
    let client = TokenClient::builder()
        .authority(Authority::new(&format!("https://localhost:{port}")).unwrap())
        .http_config(&HttpConfig::new().user_agent("cba-test"))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client.get_token(&cert(), &Resource::Exchange).await.unwrap_err();
    let elapsed = started.elapsed();
    let Error::Tls { url, failure } = &err else { panic!("{err:?}") };
    assert_eq!(url, &format!("https://localhost:{port}/contoso.onmicrosoft.com/oauth2/v2.0/token"));
    assert_eq!(failure.kind, TlsFailureKind::UnknownIssuer, "{failure:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "the TLS certificate of https://localhost:{port}/contoso.onmicrosoft.com/oauth2/v2.0/token was refused: \
             invalid peer certificate: UnknownIssuer"
        )
    );
    assert_eq!(err.tls_failure(), Some(failure));
    assert_eq!(err.kind(), ErrorKind::Remote);
    assert_eq!(connections.load(Ordering::SeqCst), 1, "no retry");
    assert!(elapsed < Duration::from_millis(800), "{elapsed:?}");
}
