//! An Exchange root whose TLS certificate is not trusted (a TLS-inspecting proxy): `Error::Tls` at once, one
//! connection, no retries, and for a write no unknown outcome (the handshake failed before anything was sent).

use std::io::Read as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cba_exo::{Error, ExoClient, Parameters, RetryPolicy, StaticToken};
use cba_http::{HttpConfig, TlsFailureKind};

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
async fn an_untrusted_certificate_is_a_tls_error_for_reads_and_writes_never_retried_or_unknown() {
    for cmdlet in ["Set-Mailbox", "Get-Mailbox"] {
        let (port, connections) = untrusted_tls_server();
        let exo = ExoClient::builder()
            .base_url(format!("https://localhost:{port}"))
            .tenant_id("contoso.onmicrosoft.com")
            .token_source(Arc::new(StaticToken::new("t")))
            .retry_policy(RetryPolicy { max_attempts: 5, ..RetryPolicy::fast() })
            .http_config(&HttpConfig::new().user_agent("cba-test"))
            .build()
            .unwrap();
        let params = Parameters::new().with("Identity", "john");
        let err = exo.collect_all(cmdlet, &params).await.unwrap_err();
        assert!(matches!(err, Error::Tls { .. }), "{cmdlet}: {err:?}");
        assert!(!err.is_outcome_unknown(), "nothing was sent");
        assert_eq!(err.tls_failure().map(|f| f.kind), Some(TlsFailureKind::UnknownIssuer), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "could not reach Exchange at https://localhost:{port}/adminapi/beta/contoso.onmicrosoft.com/InvokeCommand: \
                 the server's TLS certificate was refused: invalid peer certificate: UnknownIssuer"
            )
        );
        assert_eq!(connections.load(Ordering::SeqCst), 1, "{cmdlet}: no retry");
    }
}
