//! What every operation is given: the cloud and its roots, the token client, how to build Graph clients,
//! the clock and the progress sink.

use std::sync::Arc;
use std::time::Duration;

use cba_graph::{GraphClient, RetryNotice, RetryPolicy, TokenSource};
use cba_http::Clock;
use cba_token::{CertificateTokenSource, ClientCertificate, Cloud, Resource, TokenClient};

use crate::Error;
use crate::profile::Endpoints;
use crate::progress::{Event, Progress};

/// The dependencies of every operation. Built once per process (or per tenant) by the caller, which owns
/// the HTTP configuration (trust roots, proxy, user agent) through the clients it hands in.
#[derive(Clone)]
pub struct Services {
    /// The Microsoft cloud (resource identifiers for token scopes).
    pub cloud: Cloud,
    /// The roots requests go to (the cloud's, or a proxy's or the simulator's).
    pub endpoints: Endpoints,
    /// Token client for app-only tokens (no cache: the operations want fresh answers).
    pub tokens: TokenClient,
    /// How to connect (trust roots, user agent, timeouts): the same configuration the caller gave the token
    /// client, for the Graph clients the operations build.
    pub http: cba_http::HttpConfig,
    /// Base retry policy for Graph and the proof loop; each operation sets its own deadline.
    pub retry: RetryPolicy,
    /// Time, for deadlines, waits and timestamps.
    pub clock: Arc<dyn Clock>,
    /// Where progress goes.
    pub progress: Arc<dyn Progress>,
    /// Report every retry wait to `progress`, not only those of a second or more (a demo).
    pub all_waits: bool,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("cloud", &self.cloud)
            .field("endpoints", &self.endpoints)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Services {
    /// A Graph client with `tokens`, whose retries end by `deadline`; waits go to the progress sink.
    pub fn graph(&self, tokens: Arc<dyn TokenSource>, deadline: Duration) -> Result<GraphClient, Error> {
        let progress = self.progress.clone();
        let all_waits = self.all_waits;
        let observer = Arc::new(move |n: &RetryNotice| {
            let reason = format!(
                "{}: {} {} — retrying in {:.1} s (attempt {})",
                n.reason,
                n.method,
                n.path.split('?').next().unwrap_or(""),
                n.wait.as_secs_f64(),
                n.attempt + 1
            );
            if all_waits || n.wait >= Duration::from_secs(1) {
                progress.event(&Event::Wait {
                    reason,
                    next_try_in: n.wait,
                    elapsed: Duration::ZERO,
                    remaining: deadline,
                });
            } else {
                tracing::debug!("{reason}");
            }
        });
        let builder = GraphClient::builder()
            .base_url(&self.endpoints.graph)
            .token_source(tokens)
            .retry_policy(self.retry.clone().with_deadline(deadline))
            .http_config(&self.http)
            .clock(self.clock.clone())
            .on_retry(observer);
        builder.build().map_err(|e| Error::Graph { doing: "configuring the Graph client".into(), source: e })
    }

    /// A Graph client signing in as the app itself with `cert` (rotation needs no admin).
    pub fn app_graph(&self, cert: ClientCertificate, deadline: Duration) -> Result<GraphClient, Error> {
        let source = CertificateTokenSource::new(self.tokens.clone(), cert, &Resource::Graph);
        self.graph(Arc::new(source), deadline)
    }

    /// Now, by the services' clock.
    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    pub(crate) fn since(&self, start: time::OffsetDateTime) -> Duration {
        (self.now() - start).try_into().unwrap_or(Duration::ZERO)
    }
}
