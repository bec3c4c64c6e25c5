//! [`HttpConfig`]: the one description of how `cba`'s HTTP clients connect (trust, user agent, timeouts).

use std::fmt;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// Why an [`HttpConfig`] cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Root certificates given to [`HttpConfig::add_root_certificates`] cannot be trusted as roots.
    #[error("root certificates from {source_name}: {reason}")]
    RootCertificates {
        /// Where the caller read them (a file name, `SSL_CERT_FILE`).
        source_name: String,
        /// What is wrong with them.
        reason: String,
    },
    /// reqwest refused the settings (the platform trust store could not be loaded, ...).
    #[error("cannot set up the HTTP client: {reason}")]
    Client {
        /// reqwest's error and its causes, joined with `: `.
        reason: String,
    },
}

/// How every `cba` HTTP client (token, Graph, Exchange) connects: trusted roots, `User-Agent`, timeouts.
///
/// Built once by the caller (the CLI reads `SSL_CERT_FILE` and `SSL_CERT_DIR`; a library never reads
/// environment variables or files) and given to each client's builder, so all of them trust the same roots.
/// Proxies come from `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` with `NO_PROXY` exclusions (reqwest reads those
/// itself; add `127.0.0.1,localhost` to `NO_PROXY` when talking to `cba sim` behind a proxy).
///
/// ```
/// let config = cba_http::HttpConfig::new().user_agent("cba/0.1.0");
/// let client = config.build()?;
/// # let _ = client;
/// # Ok::<(), cba_http::Error>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct HttpConfig {
    extra_roots: Vec<Root>,
    platform_roots: bool,
    user_agent: Option<String>,
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
}

#[derive(Clone)]
struct Root {
    source_name: String,
    der: Vec<u8>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            extra_roots: Vec::new(),
            platform_roots: true,
            user_agent: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: None,
        }
    }
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roots: Vec<&str> = self.extra_roots.iter().map(|r| r.source_name.as_str()).collect();
        f.debug_struct("HttpConfig")
            .field("extra_roots", &roots)
            .field("platform_roots", &self.platform_roots)
            .field("user_agent", &self.user_agent)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl HttpConfig {
    /// The platform's trust store, no extra roots, reqwest's `User-Agent` unless one is set, 10 s to connect,
    /// no overall per-request limit beyond each client's [`RetryPolicy`](crate::RetryPolicy).
    pub fn new() -> HttpConfig {
        HttpConfig::default()
    }

    /// Trust these certificates as roots too (a TLS-inspecting proxy's CA): a PEM bundle (every
    /// `CERTIFICATE` block) or one DER certificate, as the caller read it. `source_name` names where the bytes
    /// came from in errors. Fails at once if nothing in `bytes` can serve as a root.
    pub fn add_root_certificates(mut self, source_name: impl Into<String>, bytes: &[u8]) -> Result<Self, Error> {
        let source_name = source_name.into();
        let refuse = |reason: String| Error::RootCertificates { source_name: source_name.clone(), reason };
        let ders: Vec<Vec<u8>> = if looks_like_pem(bytes) {
            CertificateDer::pem_slice_iter(bytes)
                .map(|c| c.map(|c| c.to_vec()))
                .collect::<Result<_, _>>()
                .map_err(|e| refuse(format!("not a PEM certificate bundle ({e})")))?
        } else {
            vec![bytes.to_vec()]
        };
        if ders.is_empty() {
            return Err(refuse("no CERTIFICATE block (a PEM bundle of CA certificates is expected)".into()));
        }
        for (i, der) in ders.iter().enumerate() {
            let mut store = rustls::RootCertStore::empty();
            store.add(CertificateDer::from(der.as_slice())).map_err(|e| {
                let which = if ders.len() == 1 { String::new() } else { format!("certificate #{}: ", i + 1) };
                refuse(format!("{which}not a usable X.509 certificate ({e})"))
            })?;
        }
        self.extra_roots.extend(ders.into_iter().map(|der| Root { source_name: source_name.clone(), der }));
        Ok(self)
    }

    /// Whether to trust the platform's store as well as the extra roots (default yes). Turn it off for
    /// clients whose endpoints are all plain http on loopback (`cba sim`): no TLS happens, and loading the
    /// store is most of such a run's start-up cost (~30 ms). With it off, only the extra roots are trusted.
    pub fn platform_roots(mut self, yes: bool) -> Self {
        self.platform_roots = yes;
        self
    }

    /// The `User-Agent` header (the CLI sends `cba/<version>`).
    pub fn user_agent(mut self, agent: impl Into<String>) -> Self {
        self.user_agent = Some(agent.into());
        self
    }

    /// The longest wait for a TCP + TLS connection (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The longest any single request may take, reading the answer included. Clients also cap each attempt
    /// by their [`RetryPolicy`](crate::RetryPolicy)'s `request_timeout` and what is left of its deadline
    /// ([`Attempt::timeout`](crate::Attempt::timeout)); the smallest limit wins.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// The per-request limit, if one was set.
    pub fn request_timeout_limit(&self) -> Option<Duration> {
        self.request_timeout
    }

    /// Whether the platform's trust store is used.
    pub fn uses_platform_roots(&self) -> bool {
        self.platform_roots
    }

    /// How many extra roots are trusted.
    pub fn extra_root_count(&self) -> usize {
        self.extra_roots.len()
    }

    /// A `reqwest` client with these settings (rustls, reqwest's redirect policy).
    pub fn build(&self) -> Result<reqwest::Client, Error> {
        self.build_with(self.platform_roots)
    }

    /// [`build`](Self::build) for a client that talks to `endpoint`'s origin only: a plain-http endpoint
    /// (loopback, as [`check_endpoint`](crate::check_endpoint) allows) needs no TLS, so the platform store is
    /// not loaded whatever [`platform_roots`](Self::platform_roots) says.
    pub fn build_for(&self, endpoint: &url::Url) -> Result<reqwest::Client, Error> {
        self.build_with(self.platform_roots && endpoint.scheme() != "http")
    }

    fn build_with(&self, platform_roots: bool) -> Result<reqwest::Client, Error> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            // check_endpoint, in every client's builder, already limits plain http to loopback.
            .https_only(false);
        if let Some(agent) = &self.user_agent {
            builder = builder.user_agent(agent.clone());
        }
        if let Some(timeout) = self.request_timeout {
            builder = builder.timeout(timeout);
        }
        let mut roots = Vec::with_capacity(self.extra_roots.len());
        for root in &self.extra_roots {
            roots.push(
                reqwest::Certificate::from_der(&root.der).map_err(|e| Error::RootCertificates {
                    source_name: root.source_name.clone(),
                    reason: chain(&e),
                })?,
            );
        }
        builder = if platform_roots { builder.tls_certs_merge(roots) } else { builder.tls_certs_only(roots) };
        builder.build().map_err(|e| Error::Client { reason: chain(&e) })
    }
}

/// DER starts with a SEQUENCE tag; anything else is read as PEM text.
fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.first() != Some(&0x30)
}

/// An error and its causes, joined with `: ` (reqwest's builder errors say only "builder error").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn roots_are_checked_when_added_and_named_in_errors() {
        let pem = ca_pem();
        let config = HttpConfig::new().add_root_certificates("a.pem", pem.as_bytes()).unwrap();
        assert_eq!(config.extra_root_count(), 1);
        let bundle = format!("# a comment\n{pem}{}", ca_pem());
        let config = config.add_root_certificates("bundle.pem", bundle.as_bytes()).unwrap();
        assert_eq!(config.extra_root_count(), 3);
        let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let config = config.add_root_certificates("ca.der", &der).unwrap();
        assert_eq!(config.extra_root_count(), 4);
        config.clone().platform_roots(false).build().unwrap();
        assert!(format!("{config:?}").contains("ca.der"), "{config:?}");

        let garbled = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        for (bad, expected) in [
            ("", "no CERTIFICATE block"),
            ("not a certificate\n", "no CERTIFICATE block"),
            ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "no CERTIFICATE block"),
            (garbled, "not a usable X.509 certificate"),
            ("\u{30}\u{1}\u{2}", "not a usable X.509 certificate"),
        ] {
            let err = HttpConfig::new().add_root_certificates("/etc/proxy-ca.pem", bad.as_bytes()).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("root certificates from /etc/proxy-ca.pem: "), "{bad:?}: {text}");
            assert!(text.contains(expected), "{bad:?}: {text}");
        }
    }
}
