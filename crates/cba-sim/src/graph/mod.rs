//! Microsoft Graph v1.0: authorization, routing, OData conventions (`@odata.context`, `value`, `$filter`,
//! `$select`, `$top`), and the error body shared by every route.

mod applications;
mod key_credentials;
mod query;
mod roles;
pub(crate) mod service_principals;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use wiremock::Request;

use crate::http::{self, GRAPH_JSON, Reply};
use crate::ids;
use crate::jwt::{self, AccessClaims, AccessError};
use crate::server::Shared;
use crate::state::State;
use crate::wellknown::{GRAPH_APP_ID, GRAPH_RESOURCE};

/// A Graph failure: status, `error.code`, `error.message` and optional `error.details`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub(crate) struct GraphError {
    pub(crate) status: u16,
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) details: Vec<Value>,
    pub(crate) headers: Vec<(String, String)>,
}

impl GraphError {
    pub(crate) fn new(status: u16, code: &str, message: impl Into<String>) -> GraphError {
        GraphError { status, code: code.into(), message: message.into(), details: Vec::new(), headers: Vec::new() }
    }

    /// 400 `Request_BadRequest`: the directory refused the values.
    pub(crate) fn bad_request(message: impl Into<String>) -> GraphError {
        GraphError::new(400, "Request_BadRequest", message)
    }

    /// 400 `BadRequest`: the OData layer could not read the request.
    pub(crate) fn malformed(message: impl Into<String>) -> GraphError {
        GraphError::new(400, "BadRequest", message)
    }

    pub(crate) fn not_found(id: &str) -> GraphError {
        GraphError::new(
            404,
            "Request_ResourceNotFound",
            format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
        )
    }

    pub(crate) fn denied() -> GraphError {
        GraphError::new(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
    }

    pub(crate) fn unknown_property(name: &str, type_name: &str) -> GraphError {
        GraphError::malformed(format!(
            "Property '{name}' does not exist on type 'microsoft.graph.{type_name}'. Make sure to only use property names that are defined by the type."
        ))
    }

    pub(crate) fn invalid_value(property: &str, resource: &str) -> GraphError {
        GraphError::bad_request(format!("Invalid value specified for property '{property}' of resource '{resource}'."))
    }

    pub(crate) fn invalid_id(id: &str) -> GraphError {
        GraphError::bad_request(format!("Invalid object identifier '{id}'."))
    }

    pub(crate) fn not_a_valid_reference() -> GraphError {
        GraphError::bad_request("Not a valid reference update.")
    }

    pub(crate) fn with_status(mut self, status: u16, code: &str) -> GraphError {
        self.status = status;
        self.code = code.into();
        self
    }

    pub(crate) fn detail(mut self, code: &str, target: &str) -> GraphError {
        self.details.push(json!({"code": code, "message": self.message, "target": target}));
        self
    }

    fn unauthorized(message: &str) -> GraphError {
        let mut e = GraphError::new(401, "InvalidAuthenticationToken", message);
        e.headers.push((
            "WWW-Authenticate".into(),
            format!(
                "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"{GRAPH_APP_ID}\""
            ),
        ));
        e
    }
}

/// Per-request ids Graph puts in every answer.
pub(crate) struct RequestIds {
    pub(crate) request_id: String,
    pub(crate) client_request_id: String,
}

impl RequestIds {
    pub(crate) fn of(request: &Request) -> RequestIds {
        let request_id = ids::guid();
        let client_request_id =
            http::header(request, "client-request-id").map(str::to_string).unwrap_or_else(|| request_id.clone());
        RequestIds { request_id, client_request_id }
    }
}

/// Render a Graph error body (docs/wire-formats.md §3), echoing `client-request-id`.
pub(crate) fn error_reply(error: &GraphError, ids: &RequestIds, now: OffsetDateTime) -> Reply {
    let mut inner = Map::new();
    inner.insert("code".into(), json!(error.code));
    inner.insert("message".into(), json!(error.message));
    if !error.details.is_empty() {
        inner.insert("details".into(), Value::Array(error.details.clone()));
    }
    inner.insert(
        "innerError".into(),
        json!({
            "date": http::rfc3339(now).trim_end_matches('Z'),
            "request-id": ids.request_id,
            "client-request-id": ids.client_request_id,
        }),
    );
    let mut reply = Reply::json_as(error.status, &json!({ "error": inner }), GRAPH_JSON);
    for (name, value) in &error.headers {
        reply = reply.header(name, value.clone());
    }
    with_ids(reply, ids)
}

fn with_ids(reply: Reply, ids: &RequestIds) -> Reply {
    reply
        .header("request-id", ids.request_id.clone())
        .header("client-request-id", ids.client_request_id.clone())
        .header(
            "x-ms-ags-diagnostic",
            r#"{"ServerInfo":{"DataCenter":"cba-sim","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"SIM"}}"#,
        )
}

/// What a Graph handler sees: the request, its decoded query, the caller's token and the tenant it names.
pub(crate) struct Ctx<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) request: &'a Request,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) claims: AccessClaims,
    pub(crate) tenant: usize,
    pub(crate) now: OffsetDateTime,
    pub(crate) now_ms: i64,
}

impl Ctx<'_> {
    /// `https://graph.microsoft.com/v1.0` for this sim.
    pub(crate) fn base(&self) -> String {
        format!("{}/v1.0", self.shared.base_url)
    }

    /// When an object written now becomes visible to reads and dependent writes.
    pub(crate) fn visible_at(&self) -> i64 {
        self.now_ms + self.shared.knobs.replication_ms()
    }

    /// The caller must hold one of `permissions` (delegated scope or app role).
    pub(crate) fn require(&self, permissions: &[&str]) -> Result<(), GraphError> {
        if permissions.iter().any(|p| self.claims.has(p)) { Ok(()) } else { Err(GraphError::denied()) }
    }

    pub(crate) fn method(&self) -> &str {
        self.request.method.as_str()
    }

    /// The JSON object in the body. Graph needs `Content-Type: application/json` and an object.
    pub(crate) fn body(&self) -> Result<Map<String, Value>, GraphError> {
        let unreadable = || {
            GraphError::malformed(
                "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
            )
        };
        if self.request.body.iter().all(u8::is_ascii_whitespace) {
            return Err(GraphError::malformed("Empty Payload. JSON content expected."));
        }
        let json_type = http::header(self.request, "content-type")
            .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("application/json"));
        if !json_type {
            return Err(unreadable());
        }
        match serde_json::from_slice::<Value>(&self.request.body) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(unreadable()),
        }
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        http::header(self.request, name)
    }
}

/// A successful JSON answer with `@odata.context`.
pub(crate) fn entity(status: u16, context: String, mut object: Map<String, Value>) -> Reply {
    object.insert("@odata.context".into(), Value::String(context));
    Reply::json_as(status, &Value::Object(object), GRAPH_JSON)
}

pub(crate) fn handle(shared: &Shared, state: &mut State, request: &Request, segments: &[String]) -> Reply {
    let ids = RequestIds::of(request);
    let now = shared.clock.now();
    match route(shared, state, request, segments) {
        Ok(reply) if lose_answer(state, request, segments, reply.status) => {
            let error = GraphError::new(
                500,
                "UnknownError",
                "The write was carried out, but its answer was lost (cba-sim fail_after_commit).",
            );
            error_reply(&error, &ids, now)
        }
        Ok(reply) => with_ids(reply, &ids),
        Err(error) => error_reply(&error, &ids, now),
    }
}

/// Whether a successful write must be answered 500 instead (the `fail_after_commit` knob), counting it.
fn lose_answer(state: &mut State, request: &Request, segments: &[String], status: u16) -> bool {
    let method = request.method.as_str();
    if !(200..300).contains(&status) || !matches!(method, "POST" | "PATCH" | "PUT" | "DELETE") {
        return false;
    }
    let path = format!("/{}", segments.get(1..).unwrap_or_default().join("/"));
    match state.fail_after_commit.iter_mut().find(|f| f.matches(method, &path)) {
        Some(armed) => {
            armed.remaining -= 1;
            state.fail_after_commit.retain(|f| f.remaining > 0);
            true
        }
        None => false,
    }
}

fn authenticate(shared: &Shared, state: &State, request: &Request) -> Result<(AccessClaims, usize), GraphError> {
    let header = http::header(request, "authorization").unwrap_or("");
    let token = header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).map(str::trim).unwrap_or("");
    if token.is_empty() {
        return Err(GraphError::unauthorized("Access token is empty."));
    }
    if let Some(claims) = state.opaque_tokens.get(token) {
        // An opaque token (SimTenant::admin_token_opaque): clients must not need to read a token.
        if shared.clock.now_secs() >= claims.exp {
            return Err(GraphError::unauthorized("Lifetime validation failed, the token is expired."));
        }
        let tenant = state
            .tenant_index(&claims.tid)
            .ok_or_else(|| GraphError::unauthorized("Access token validation failure. Invalid tenant."))?;
        return Ok((claims.clone(), tenant));
    }
    let claims = jwt::verify_access(token, shared.clock.now_secs()).map_err(|e| match e {
        AccessError::Malformed => GraphError::unauthorized("IDX14100: JWT is not well formed, there are no dots (.)."),
        AccessError::BadSignature => GraphError::unauthorized("Access token validation failure. Invalid signature."),
        AccessError::Expired | AccessError::NotYetValid => {
            GraphError::unauthorized("Lifetime validation failed, the token is expired.")
        }
    })?;
    if claims.aud != GRAPH_RESOURCE && claims.aud != GRAPH_APP_ID && claims.aud != format!("{GRAPH_RESOURCE}/") {
        return Err(GraphError::unauthorized("Access token validation failure. Invalid audience."));
    }
    let tenant = state
        .tenant_index(&claims.tid)
        .ok_or_else(|| GraphError::unauthorized("Access token validation failure. Invalid tenant."))?;
    Ok((claims, tenant))
}

fn route(shared: &Shared, state: &mut State, request: &Request, segments: &[String]) -> Result<Reply, GraphError> {
    let Some((version, rest)) = segments.split_first() else {
        return Err(GraphError::malformed("Invalid version."));
    };
    if version != "v1.0" {
        return Err(GraphError::malformed(format!(
            "Invalid version: {version} (cba-sim simulates Microsoft Graph v1.0 only)."
        )));
    }
    let (claims, tenant) = authenticate(shared, state, request)?;
    let query = http::query(request);
    query::check_options(&query)?;
    let now = shared.clock.now();
    let ctx = Ctx { shared, request, query, claims, tenant, now, now_ms: shared.clock.now_ms() };
    let Some(first) = rest.first() else {
        return Err(GraphError::malformed("Resource not found for the segment ''."));
    };
    let entity_set = first.split('(').next().unwrap_or("");
    match entity_set {
        "applications" => applications::route(&ctx, state, rest),
        "servicePrincipals" => service_principals::route(&ctx, state, rest),
        "roleManagement" => roles::route(&ctx, state, rest),
        "organization" if rest.len() == 1 && ctx.method() == "GET" => organization(&ctx, state),
        "me" if rest.len() == 1 && ctx.method() == "GET" => me(&ctx, state),
        _ => Err(GraphError::malformed(format!("Resource not found for the segment '{first}'."))),
    }
}

pub(crate) fn method_not_allowed() -> GraphError {
    GraphError::new(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
}

/// `GET /organization`: the tenant the token acts in. Delegated: `User.Read` is enough; app-only needs an
/// organization or directory read permission (organization-list.md).
fn organization(ctx: &Ctx<'_>, state: &State) -> Result<Reply, GraphError> {
    const DELEGATED: &[&str] = &[
        "User.Read",
        "Organization.Read.All",
        "Organization.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ];
    const APP_ONLY: &[&str] =
        &["Organization.Read.All", "Organization.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"];
    ctx.require(if ctx.claims.is_app_only() { APP_ONLY } else { DELEGATED })?;
    let tenant = &state.tenants[ctx.tenant];
    let org = json!({
        "id": tenant.id,
        "displayName": tenant.name,
        "tenantType": "AAD",
        "verifiedDomains": [{
            "capabilities": "Email, OfficeCommunicationsOnline",
            "isDefault": true,
            "isInitial": true,
            "name": tenant.domain,
            "type": "Managed",
        }],
    });
    let body = json!({"@odata.context": format!("{}/$metadata#organization", ctx.base()), "value": [org]});
    Ok(Reply::json_as(200, &body, GRAPH_JSON))
}

fn me(ctx: &Ctx<'_>, state: &State) -> Result<Reply, GraphError> {
    if ctx.claims.is_app_only() {
        return Err(GraphError::malformed("/me request is only valid with delegated authentication flow."));
    }
    let tenant = &state.tenants[ctx.tenant];
    let mut user = Map::new();
    user.insert("id".into(), json!(tenant.admin_id));
    user.insert("displayName".into(), json!("Sim Admin"));
    user.insert("userPrincipalName".into(), json!(tenant.admin_upn));
    user.insert("mail".into(), json!(tenant.admin_upn));
    Ok(entity(200, format!("{}/$metadata#users/$entity", ctx.base()), user))
}

/// A `name(appId='...')` key segment, or the id after `name/`; `(uniqueName='...')` for applications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    Id(String),
    AppId(String),
    UniqueName(String),
}

/// Split `[set, id, rest..]` or `[set(appId='x'), rest..]` into the key and the rest.
pub(crate) fn split_key<'s>(segments: &'s [String], set: &str) -> Result<(Option<Key>, &'s [String]), GraphError> {
    let Some((first, rest)) = segments.split_first() else {
        return Ok((None, segments));
    };
    if first == set {
        return match rest.split_first() {
            Some((id, tail)) => {
                if !ids::is_guid(id) {
                    return Err(GraphError::invalid_id(id));
                }
                Ok((Some(Key::Id(id.clone())), tail))
            }
            None => Ok((None, rest)),
        };
    }
    let inner = first
        .strip_prefix(set)
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| GraphError::malformed(format!("Resource not found for the segment '{first}'.")))?;
    let bad_key = || GraphError::malformed(format!("Bad Request - Error in query syntax: invalid key '{inner}'."));
    let (name, literal) = match inner.split_once('=') {
        Some((name, literal)) => (name.trim(), literal.trim()),
        None => ("id", inner.trim()),
    };
    let value = literal
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .map(|s| s.replace("''", "'"))
        .ok_or_else(bad_key)?;
    let key = if name.eq_ignore_ascii_case("appId") {
        if !ids::is_guid(&value) {
            return Err(GraphError::invalid_id(&value));
        }
        Key::AppId(value)
    } else if name.eq_ignore_ascii_case("uniqueName") && set == "applications" {
        if value.is_empty() {
            return Err(bad_key());
        }
        Key::UniqueName(value)
    } else if name.eq_ignore_ascii_case("id") {
        if !ids::is_guid(&value) {
            return Err(GraphError::invalid_id(&value));
        }
        Key::Id(value)
    } else {
        return Err(bad_key());
    };
    Ok((Some(key), rest))
}
