//! Throttling (429 + Retry-After) and 5xx injection, counted over the requests of the targeted services and
//! shaped like each service's own errors. A faulted request has no effect on the state.

use wiremock::Request;

use crate::config::Service;
use crate::graph::{self, GraphError, RequestIds};
use crate::http::{GRAPH_JSON, Reply};
use crate::login::Aadsts;
use crate::server::Shared;
use crate::state::State;

pub(crate) fn check(shared: &Shared, state: &mut State, service: Service, request: &Request) -> Option<Reply> {
    let knobs = &shared.knobs;
    if !knobs.fault_services.contains(&service) {
        return None;
    }
    state.fault_counter += 1;
    let n = state.fault_counter;
    let retry_after = knobs.retry_after_secs.to_string();
    if knobs.throttle.fires(n) {
        let mut reply = match service {
            Service::Graph => graph::error_reply(
                &GraphError::new(429, "TooManyRequests", "Too many requests; retry after the interval in the Retry-After header."),
                &RequestIds::of(request),
                shared.clock.now(),
            ),
            Service::Login => Aadsts {
                error: "temporarily_unavailable",
                code: 90055,
                message: "TenantThrottlingError - There are too many incoming requests. Retry after the interval in the Retry-After header.".into(),
            }
            .render(shared, request),
            Service::Exchange => exchange_error(429, "TooManyRequests", "The request was throttled; retry after the interval in the Retry-After header."),
        };
        reply.status = 429;
        return Some(reply.header("Retry-After", retry_after));
    }
    if knobs.fail_5xx.fires(n) {
        let mut reply = match service {
            Service::Graph => graph::error_reply(
                &GraphError::new(503, "serviceNotAvailable", "Service Unavailable"),
                &RequestIds::of(request),
                shared.clock.now(),
            ),
            Service::Login => Aadsts {
                error: "temporarily_unavailable",
                code: 90033,
                message: "A transient error has occurred. Please try again.".into(),
            }
            .render(shared, request),
            Service::Exchange => exchange_error(503, "ServiceUnavailable", "The service is temporarily unavailable."),
        };
        reply.status = 503;
        return Some(reply.header("Retry-After", retry_after));
    }
    None
}

fn exchange_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json_as(status, &serde_json::json!({"error": {"code": code, "message": message}}), GRAPH_JSON)
}
