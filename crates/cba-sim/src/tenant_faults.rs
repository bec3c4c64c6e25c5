//! Faults aimed at one tenant of a multi-tenant sim (a service provider's fleet): throttle its token endpoint,
//! Graph or Exchange, fail them with 500, or have its Exchange refuse the app (401), while every other tenant is
//! served normally. Set with `SimTenant::set_tenant_fault` or `POST /_sim/tenant-fault`; costs nothing while
//! no tenant has one.

use serde::{Deserialize, Serialize};
use serde_json::json;
use wiremock::Request;

use crate::config::Service;
use crate::graph::{self, GraphError, RequestIds};
use crate::http::{self, GRAPH_JSON, Reply};
use crate::login::Aadsts;
use crate::server::Shared;
use crate::state::State;
use crate::wellknown::EXCHANGE_APP_ID;

/// What one tenant's requests get. `TenantFault::default()` clears every fault.
///
/// A request counts when it goes to one of `services` and names the tenant: the token endpoint by the tenant
/// in its path, Graph by the bearer token's tenant (`tid`), Exchange by the tenant in its path. The first
/// `throttle` such requests are answered 429 with `Retry-After`, the next `fail` ones 500; a faulted request
/// changes nothing. `exchange_unauthorized` makes every Exchange request of the tenant 401 (the app is not
/// allowed there) until cleared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct TenantFault {
    /// The services counted (default: all three).
    pub services: Vec<Service>,
    /// How many requests to answer 429 (`u64::MAX`: until cleared).
    pub throttle: u64,
    /// How many requests to answer 500 after the throttled ones (`u64::MAX`: until cleared).
    pub fail: u64,
    /// `Retry-After` of the 429 answers, in seconds.
    pub retry_after_secs: u64,
    /// Exchange answers 401 "not allowed" to this tenant's requests.
    pub exchange_unauthorized: bool,
}

impl Default for TenantFault {
    fn default() -> Self {
        TenantFault {
            services: Service::ALL.to_vec(),
            throttle: 0,
            fail: 0,
            retry_after_secs: 1,
            exchange_unauthorized: false,
        }
    }
}

impl TenantFault {
    /// Throttle the next `count` requests of `services` (429 + `Retry-After: retry_after_secs`).
    pub fn throttle(services: impl IntoIterator<Item = Service>, count: u64, retry_after_secs: u64) -> TenantFault {
        TenantFault {
            services: services.into_iter().collect(),
            throttle: count,
            retry_after_secs,
            ..Default::default()
        }
    }

    /// Fail the next `count` requests of `services` with 500.
    pub fn fail(services: impl IntoIterator<Item = Service>, count: u64) -> TenantFault {
        TenantFault { services: services.into_iter().collect(), fail: count, ..Default::default() }
    }

    /// The tenant's Exchange refuses the app with 401 (as when its role was removed there).
    pub fn exchange_unauthorized() -> TenantFault {
        TenantFault { exchange_unauthorized: true, ..Default::default() }
    }

    pub(crate) fn is_clear(&self) -> bool {
        self.throttle == 0 && self.fail == 0 && !self.exchange_unauthorized
    }
}

/// The fault answer for this request, if its tenant has one (counting it).
pub(crate) fn check(
    shared: &Shared,
    state: &mut State,
    service: Service,
    request: &Request,
    segments: &[String],
) -> Option<Reply> {
    if state.tenant_faults.is_empty() {
        return None;
    }
    let index = request_tenant(state, service, request, segments)?;
    let fault = state.tenant_faults.get_mut(&index)?;
    if service == Service::Exchange && fault.exchange_unauthorized {
        return Some(exchange_error(
            401,
            "Unauthorized",
            "The app is not allowed to call Exchange in this tenant (cba-sim tenant fault exchange_unauthorized).",
        )
        .header(
            "WWW-Authenticate",
            format!("Bearer client_id=\"{EXCHANGE_APP_ID}\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", error=\"invalid_token\""),
        ));
    }
    if !fault.services.contains(&service) {
        return None;
    }
    if fault.throttle > 0 {
        fault.throttle -= 1;
        let retry_after = fault.retry_after_secs.to_string();
        let reply = match service {
            Service::Graph => graph::error_reply(
                &GraphError::new(
                    429,
                    "TooManyRequests",
                    "Too many requests; retry after the interval in the Retry-After header.",
                ),
                &RequestIds::of(request),
                shared.clock.now(),
            ),
            Service::Login => {
                let mut reply = Aadsts {
                    error: "temporarily_unavailable",
                    code: 90055,
                    message: "TenantThrottlingError - There are too many incoming requests. Retry after the interval in the Retry-After header.".into(),
                }
                .render(shared, request);
                reply.status = 429;
                reply
            }
            Service::Exchange => exchange_error(
                429,
                "TooManyRequests",
                "The request was throttled; retry after the interval in the Retry-After header.",
            ),
        };
        return Some(reply.header("Retry-After", retry_after));
    }
    if fault.fail > 0 {
        fault.fail -= 1;
        return Some(match service {
            Service::Graph => graph::error_reply(
                &GraphError::new(500, "UnknownError", "An internal server error occurred (cba-sim tenant fault)."),
                &RequestIds::of(request),
                shared.clock.now(),
            ),
            Service::Login => {
                let mut reply = Aadsts {
                    error: "server_error",
                    code: 50000,
                    message: "There was an error issuing a token or an issue with our sign-in service (cba-sim tenant fault).".into(),
                }
                .render(shared, request);
                reply.status = 500;
                reply
            }
            Service::Exchange => {
                exchange_error(500, "InternalServerError", "An internal server error occurred (cba-sim tenant fault).")
            }
        });
    }
    None
}

/// The tenant a request is for: the path's tenant (login, Exchange) or the bearer token's (Graph).
fn request_tenant(state: &State, service: Service, request: &Request, segments: &[String]) -> Option<usize> {
    match service {
        Service::Login => state.tenant_index(segments.first()?),
        Service::Exchange => state.tenant_index(segments.get(2)?),
        Service::Graph => {
            let header = http::header(request, "authorization")?;
            let token = header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer "))?.trim();
            let tid = match state.opaque_tokens.get(token) {
                Some(claims) => claims.tid.clone(),
                None => unverified_tid(token)?,
            };
            state.tenant_index(&tid)
        }
    }
}

/// The `tid` of a JWT, signature unchecked (only to pick the fault; Graph still authenticates the request).
fn unverified_tid(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("tid")?.as_str().map(str::to_string)
}

fn exchange_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json_as(
        status,
        &json!({"error": {"code": code, "message": message, "details": [], "innererror": {
            "message": message,
            "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
            "stacktrace": "",
        }}}),
        GRAPH_JSON,
    )
}
