use std::time::Duration;

use cba_http::HttpConfig;

use crate::error::{Error, Result};

/// Settings for [`default_http_client`]. Kept for existing callers: new code gives a [`cba_http::HttpConfig`]
/// to [`TokenClientBuilder::http_config`](crate::TokenClientBuilder::http_config), the one configuration the
/// Graph and Exchange clients take too.
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

    /// The same settings as a [`HttpConfig`].
    pub fn to_http_config(&self) -> Result<HttpConfig> {
        let mut config = HttpConfig::new()
            .user_agent(self.user_agent.clone().unwrap_or_else(default_user_agent))
            .connect_timeout(self.connect_timeout.unwrap_or(Duration::from_secs(10)))
            .platform_roots(!self.loopback_http_only);
        for (i, pem) in self.extra_root_certs_pem.iter().enumerate() {
            config = config.add_root_certificates(format!("PEM bundle #{}", i + 1), pem).map_err(http_error)?;
        }
        Ok(config)
    }
}

/// A `reqwest` client for the login service: [`HttpOptions::to_http_config`], built. See [`HttpConfig`] for
/// trust and proxies.
pub fn default_http_client(options: &HttpOptions) -> Result<reqwest::Client> {
    options.to_http_config()?.build().map_err(http_error)
}

pub(crate) fn default_user_agent() -> String {
    format!("cba-token/{}", env!("CARGO_PKG_VERSION"))
}

pub(crate) fn http_error(e: cba_http::Error) -> Error {
    match e {
        cba_http::Error::RootCertificates { .. } => Error::Invalid { what: "root certificates", reason: e.to_string() },
        _ => Error::Invalid { what: "HTTP client settings", reason: e.to_string() },
    }
}
