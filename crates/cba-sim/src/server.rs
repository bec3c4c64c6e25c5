//! The one responder behind every route (serve.rs calls it): log, inject faults, dispatch by path to login,
//! Graph or Exchange, and answer anything else with a Graph-shaped error (never a bare 404).

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use wiremock::Request;

use crate::clock::Clock;
use crate::config::{Knobs, Service};
use crate::http::{self, Reply};
use crate::state::State;
use crate::{RequestRecord, exchange, faults, graph, inspect, login, tenant_faults};

/// The request log keeps this many entries (a long `cba sim serve` must not grow without bound).
const REQUEST_LOG_LIMIT: usize = 10_000;

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) knobs: Knobs,
    pub(crate) clock: Clock,
    /// `http://127.0.0.1:PORT`: the root standing for the login, Graph and Exchange hosts.
    pub(crate) base_url: String,
    /// The Key Vault fake's own state (its routes never touch the tenants').
    pub(crate) vault: Mutex<crate::keyvault::Vault>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a sim bug; keep serving with the data as it is.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn vault(&self) -> MutexGuard<'_, crate::keyvault::Vault> {
        self.vault.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Which simulated service a path belongs to (`None`: no service has it).
pub(crate) fn classify(segments: &[String]) -> Option<Service> {
    match segments.first().map(String::as_str) {
        Some("v1.0" | "beta") => Some(Service::Graph),
        Some("adminapi") => Some(Service::Exchange),
        Some(_)
            if matches!(
                segments.get(1).map(String::as_str),
                Some("oauth2" | "v2.0" | "discovery" | "adminconsent")
            ) =>
        {
            Some(Service::Login)
        }
        _ => None,
    }
}

/// Answer one request (under the state lock), and how long to delay the answer (the latency knob, slept by
/// the caller outside every lock: serve.rs).
pub(crate) fn answer(shared: &Shared, request: &Request) -> (Reply, Duration) {
    let segments = http::segments(request);
    if segments.first().map(String::as_str) == Some("_sim") {
        return (inspect::handle(shared, request, &segments), Duration::ZERO);
    }
    if crate::keyvault::owns(&segments) {
        let reply = crate::keyvault::handle(shared, request, &segments);
        record(&mut shared.lock(), request, None, &reply);
        return (reply, shared.knobs.latency);
    }
    let service = classify(&segments);
    let mut state = shared.lock();
    if !shared.knobs.delete_replication_delay.is_zero() {
        // Without the knob deletes take effect at once: nothing to purge (and 1,000 tenants to walk).
        state.purge_deleted(shared.clock.now_ms());
    }
    let fault = service.and_then(|s| {
        faults::check(shared, &mut state, s, request)
            .or_else(|| tenant_faults::check(shared, &mut state, s, request, &segments))
    });
    let reply = match (fault, service) {
        (Some(reply), _) => reply,
        (None, Some(Service::Login)) => login::handle(shared, &mut state, request, &segments),
        (None, Some(Service::Graph)) => graph::handle(shared, &mut state, request, &segments),
        (None, Some(Service::Exchange)) => exchange::handle(shared, &mut state, request, &segments),
        (None, None) => catch_all(shared, request, &segments),
    };
    record(&mut state, request, service, &reply);
    drop(state);
    (reply, shared.knobs.latency)
}

fn catch_all(shared: &Shared, request: &Request, segments: &[String]) -> Reply {
    let first = segments.first().map_or("", String::as_str);
    let error = graph::GraphError::malformed(format!(
        "Invalid version: '{first}'. cba-sim serves /v1.0/... (Graph), /{{tenant}}/oauth2/v2.0/... (login), /adminapi/beta/... (Exchange) and /_sim/... (inspection)."
    ));
    graph::error_reply(&error, &graph::RequestIds::of(request), shared.clock.now())
}

fn record(state: &mut State, request: &Request, service: Option<Service>, reply: &Reply) {
    state.requests_total += 1;
    if state.requests.len() >= REQUEST_LOG_LIMIT {
        state.requests.pop_front();
    }
    let path = match request.url.query() {
        Some(query) => format!("{}?{query}", request.url.path()),
        None => request.url.path().to_string(),
    };
    state.requests.push_back(RequestRecord { method: request.method.to_string(), path, status: reply.status, service });
}
