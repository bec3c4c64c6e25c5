use std::time::Duration;

use crate::error::{Error, Result};

/// Settings for [`default_http_client`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct HttpOptions {
    /// Extra trusted roots as PEM bundles (a TLS-inspecting proxy's CA; the CLI reads `SSL_CERT_FILE`).
    pub extra_root_certs_pem: Vec<Vec<u8>>,
    /// Connect timeout (default 10 s).
    pub connect_timeout: Option<Duration>,
    /// `User-Agent` (default `cba-token/<version>`).
    pub user_agent: Option<String>,
    /// Every endpoint is plain http on loopback (`cba sim`): no TLS will happen, so don't load the platform's
    /// trust store (reading and parsing it is most of a cache miss's cost on loopback).
    pub loopback_http_only: bool,
}

impl HttpOptions {
    /// Trust the certificates in this PEM bundle as well as the system's roots.
    pub fn extra_root_certs(mut self, pem: impl Into<Vec<u8>>) -> HttpOptions {
        self.extra_root_certs_pem.push(pem.into());
        self
    }

    /// Skip the platform trust store: for endpoints that are all plain http on loopback.
    pub fn loopback_http_only(mut self, yes: bool) -> HttpOptions {
        self.loopback_http_only = yes;
        self
    }

    /// Set the `User-Agent`.
    pub fn user_agent(mut self, agent: impl Into<String>) -> HttpOptions {
        self.user_agent = Some(agent.into());
        self
    }
}

/// A `reqwest` client for the login service: rustls with the platform's roots plus `options`' extra roots;
/// proxies from `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` with `NO_PROXY` exclusions (reqwest reads those itself;
/// add `127.0.0.1,localhost` to `NO_PROXY` when talking to `cba sim` behind a proxy).
pub fn default_http_client(options: &HttpOptions) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .user_agent(options.user_agent.clone().unwrap_or_else(|| format!("cba-token/{}", env!("CARGO_PKG_VERSION"))))
        .connect_timeout(options.connect_timeout.unwrap_or(Duration::from_secs(10)))
        .https_only(false); // the authority check (`Authority::new`) already limits plain http to loopback
    if options.loopback_http_only {
        builder = builder.tls_certs_only(Vec::<reqwest::Certificate>::new());
    }
    for (i, pem) in options.extra_root_certs_pem.iter().enumerate() {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| Error::Invalid { what: "root certificates", reason: format!("PEM bundle #{}: {e}", i + 1) })?;
        if certs.is_empty() {
            return Err(Error::Invalid {
                what: "root certificates",
                reason: format!("PEM bundle #{} holds no CERTIFICATE block", i + 1),
            });
        }
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().map_err(|e| {
        // reqwest says only "builder error"; the cause (a certificate rustls refused, ...) is in the chain.
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            reason = format!("{reason}: {s}");
            source = s.source();
        }
        let what = if options.extra_root_certs_pem.is_empty() { "HTTP client settings" } else { "root certificates" };
        Error::Invalid { what, reason }
    })
}
