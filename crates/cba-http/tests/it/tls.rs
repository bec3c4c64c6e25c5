//! A refused server certificate fails at once, says what was refused, and is not retried; an extra root makes
//! the same server trusted.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cba_http::{HttpConfig, RetryPolicy, TlsFailureKind, Verdict};

/// An HTTPS server on 127.0.0.1 with a certificate for `localhost` issued by its own CA. Answers every
/// request with `200 hello`; counts the connections it accepts.
struct TlsServer {
    addr: SocketAddr,
    ca_pem: String,
    connections: Arc<AtomicUsize>,
}

impl TlsServer {
    fn start() -> TlsServer {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "cba test proxy CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &rcgen::Issuer::from_params(&ca_params, &ca_key))
            .unwrap();

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(leaf_key.serialize_der());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key.into())
            .unwrap();
        let config = Arc::new(config);

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(mut tcp) = tcp else { return };
                counter.fetch_add(1, Ordering::SeqCst);
                let config = config.clone();
                std::thread::spawn(move || {
                    let mut conn = rustls::ServerConnection::new(config).unwrap();
                    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
                    let (mut request, mut chunk) = (Vec::new(), [0u8; 1024]);
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut chunk) {
                            Ok(0) | Err(_) => return, // the client refused the handshake
                            Ok(n) => request.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello");
                    let _ = tls.flush();
                });
            }
        });
        TlsServer { addr, ca_pem: ca.pem(), connections }
    }

    fn url(&self, host: &str) -> String {
        format!("https://{host}:{}/ping", self.addr.port())
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// GET `url` under a retry policy that would retry a transient failure for up to 10 s, with
/// `is_transient_error` deciding, as the clients do.
async fn get(config: &HttpConfig, url: &str) -> (Result<String, reqwest::Error>, u32) {
    let client = config.build().unwrap();
    let (outcome, stats) = cba_http::with_retry_attempts(
        &cba_http::SystemClock,
        &RetryPolicy::fast(),
        |attempt| {
            let request = client.get(url).timeout(attempt.timeout);
            async move { request.send().await?.error_for_status()?.text().await }
        },
        |outcome| match outcome {
            Err(e) if cba_http::is_transient_error(e) => Verdict::Retry { after: None, reason: e.to_string() },
            _ => Verdict::Done,
        },
        |_, _| {},
    )
    .await;
    (outcome, stats.attempts)
}

#[tokio::test]
async fn an_untrusted_certificate_fails_at_once_naming_what_was_refused() {
    let server = TlsServer::start();
    // The platform store (the test CA is not in it), and no store at all: both refuse the issuer.
    for config in [HttpConfig::new(), HttpConfig::new().platform_roots(false)] {
        let before = server.connections();
        let started = Instant::now();
        let (outcome, attempts) = get(&config, &server.url("localhost")).await;
        let elapsed = started.elapsed();
        let error = outcome.expect_err("the server's CA is not trusted");
        assert!(!cba_http::is_transient_error(&error), "{error:?}");
        let failure = cba_http::tls_failure(&error).unwrap_or_else(|| panic!("not recognised: {error:?}"));
        assert_eq!(failure.kind, TlsFailureKind::UnknownIssuer, "{failure:?}");
        assert_eq!(failure.to_string(), "invalid peer certificate: UnknownIssuer");
        assert_eq!(attempts, 1, "not retried");
        assert_eq!(server.connections() - before, 1, "one connection, no retry behind our back");
        assert!(elapsed < Duration::from_millis(500), "{elapsed:?}");
    }
}

#[tokio::test]
async fn an_extra_root_makes_the_server_trusted_and_names_are_still_checked() {
    let server = TlsServer::start();
    let config = HttpConfig::new()
        .platform_roots(false)
        .add_root_certificates("proxy-ca.pem", server.ca_pem.as_bytes())
        .unwrap();
    let (outcome, attempts) = get(&config, &server.url("localhost")).await;
    assert_eq!(outcome.unwrap(), "hello");
    assert_eq!(attempts, 1);

    // Merged with the platform store, as the CLI does with SSL_CERT_FILE.
    let merged = HttpConfig::new().add_root_certificates("proxy-ca.pem", server.ca_pem.as_bytes()).unwrap();
    assert_eq!(get(&merged, &server.url("localhost")).await.0.unwrap(), "hello");

    // Trusted issuer, wrong name (the certificate is for localhost): refused, not retried.
    let before = server.connections();
    let (outcome, attempts) = get(&config, &server.url("127.0.0.1")).await;
    let error = outcome.unwrap_err();
    let failure = cba_http::tls_failure(&error).unwrap_or_else(|| panic!("not recognised: {error:?}"));
    assert_eq!(failure.kind, TlsFailureKind::WrongName, "{failure:?}");
    assert!(failure.detail.contains("localhost"), "says which names the certificate has: {failure}");
    assert_eq!((attempts, server.connections() - before), (1, 1));
}

#[tokio::test]
async fn the_failure_is_found_through_a_client_error_chain() {
    #[derive(Debug, thiserror::Error)]
    #[error("could not reach the login service")]
    struct ClientError(#[source] reqwest::Error);

    let server = TlsServer::start();
    let (outcome, _) = get(&HttpConfig::new().platform_roots(false), &server.url("localhost")).await;
    let wrapped = ClientError(outcome.unwrap_err());
    let failure = cba_http::find_tls_failure(&wrapped).expect("found below the client's error");
    assert_eq!(failure.kind, TlsFailureKind::UnknownIssuer);
    assert_eq!(cba_http::find_tls_failure(&std::io::Error::other("connection reset")), None);
}
