//! `login.microsoftonline.com`: the v2.0 token endpoint (client credentials with a certificate assertion,
//! device code, refresh token), the device authorization endpoint, OpenID discovery and the JWKS.

use serde_json::{Value, json};
use wiremock::Request;

use crate::exchange::EXCHANGE_POWERSHELL_CLIENT_ID;
use crate::http::{self, Reply};
use crate::ids;
use crate::jwt::{self, AccessClaims, ParsedJwt};
use crate::server::Shared;
use crate::state::{DeviceCode, DeviceCodeStatus, KeyCred, State, Tenant};
use crate::wellknown::{
    self, AZURE_CLI_CLIENT_ID, FIRST_PARTY_PUBLIC_CLIENTS, GRAPH_DELEGATED_SCOPES, GRAPH_RESOURCE, OIDC_SCOPES,
};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Entra refuses certificate credentials with smaller RSA keys (AADSTS50032).
const MIN_RSA_BITS: u32 = 2048;
const CERT_DOCS: &str = "Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .";

/// An AADSTS failure: rendered as the login service's error body (docs/wire-formats.md §4).
#[derive(Debug, Clone)]
pub(crate) struct Aadsts {
    pub(crate) error: &'static str,
    pub(crate) code: u32,
    pub(crate) message: String,
}

fn fail(error: &'static str, code: u32, message: impl Into<String>) -> Aadsts {
    Aadsts { error, code, message: message.into() }
}

fn missing(name: &str) -> Aadsts {
    fail("invalid_request", 900144, format!("The request body must contain the following parameter: '{name}'."))
}

impl Aadsts {
    pub(crate) fn status(&self) -> u16 {
        if self.error == "invalid_client" { 401 } else { 400 }
    }

    pub(crate) fn render(&self, shared: &Shared, request: &Request) -> Reply {
        let now = shared.clock.now();
        let timestamp = http::login_timestamp(now);
        let trace_id = ids::guid();
        let correlation_id = http::header(request, "client-request-id")
            .filter(|id| ids::is_guid(id))
            .map(str::to_string)
            .unwrap_or_else(ids::guid);
        let body = json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}",
                self.code, self.message
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("{}/error?code={}", shared.base_url, self.code),
        });
        Reply::json(self.status(), &body)
            .header("x-ms-request-id", trace_id)
            .header("client-request-id", correlation_id)
            .header("cache-control", "no-store, no-cache")
    }
}

pub(crate) fn handle(shared: &Shared, state: &mut State, request: &Request, segments: &[String]) -> Reply {
    let result = match segments {
        [tenant, a, b, c] if a == "oauth2" && b == "v2.0" && c == "token" => {
            post_only(request).and_then(|()| token(shared, state, request, tenant))
        }
        [tenant, a, b, c] if a == "oauth2" && b == "v2.0" && c == "devicecode" => {
            post_only(request).and_then(|()| device_code(shared, state, request, tenant))
        }
        [tenant, a] if a == "adminconsent" => {
            get_only(request).and_then(|()| admin_consent(shared, state, request, tenant, false))
        }
        [tenant, a, b] if a == "v2.0" && b == "adminconsent" => {
            get_only(request).and_then(|()| admin_consent(shared, state, request, tenant, true))
        }
        [tenant, a, b, c] if a == "v2.0" && b == ".well-known" && c == "openid-configuration" => {
            openid_configuration(shared, state, tenant)
        }
        [tenant, a, b, c] if a == "discovery" && b == "v2.0" && c == "keys" => resolve_tenant(state, tenant).map(|t| {
            let issuer = format!("{}/{}/v2.0", shared.base_url, state.tenants[t].id);
            Reply::json(200, &jwt::signing_key().jwks(&issuer))
        }),
        _ => Err(fail(
            "invalid_request",
            900561,
            format!(
                "The endpoint '{}' is not simulated by cba-sim (supported: /{{tenant}}/oauth2/v2.0/token, /{{tenant}}/oauth2/v2.0/devicecode, /{{tenant}}/v2.0/.well-known/openid-configuration, /{{tenant}}/discovery/v2.0/keys, /{{tenant}}/adminconsent, /{{tenant}}/v2.0/adminconsent).",
                request.url.path()
            ),
        )),
    };
    result.unwrap_or_else(|e| e.render(shared, request))
}

fn post_only(request: &Request) -> Result<(), Aadsts> {
    if request.method.as_str() == "POST" {
        Ok(())
    } else {
        Err(fail(
            "invalid_request",
            900561,
            format!("The endpoint only accepts POST requests. Received a {} request.", request.method),
        ))
    }
}

fn get_only(request: &Request) -> Result<(), Aadsts> {
    if request.method.as_str() == "GET" {
        Ok(())
    } else {
        Err(fail(
            "invalid_request",
            900561,
            format!(
                "The endpoint only accepts GET requests (a browser opens it). Received a {} request.",
                request.method
            ),
        ))
    }
}

/// The admin-consent page a customer's admin opens in a browser: `GET /{tenant}/adminconsent?client_id=…`
/// (v1: every permission in the app's requiredResourceAccess) or `GET /{tenant}/v2.0/adminconsent?client_id=…
/// &scope=https://outlook.office365.com/.default` (the resources named), with an optional `redirect_uri` that
/// must be one of the app's `web.redirectUris` and an opaque `state`. The sim cannot show the page, so it
/// records the request and waits for the admin's click (`SimTenant::approve_consent`, `POST /_sim/consent`);
/// with `admin_consent_auto_approve` it consents at once and redirects like Entra
/// (`redirect_uri?admin_consent=True&tenant={tid}[&scope=…][&state=…]`). Errors are the login service's JSON
/// error body, where Entra shows an HTML error page (or redirects with `error=`): UNVERIFIED shape.
fn admin_consent(
    shared: &Shared,
    state: &mut State,
    request: &Request,
    tenant: &str,
    v2: bool,
) -> Result<Reply, Aadsts> {
    if tenant.eq_ignore_ascii_case("organizations") || tenant.eq_ignore_ascii_case("common") {
        return Err(fail(
            "invalid_request",
            50059,
            format!(
                "No tenant-identifying information found in either the request or implied by any provided credentials. cba-sim cannot tell which tenant the signed-in admin belongs to: name the customer tenant (id or domain) instead of '{tenant}'."
            ),
        ));
    }
    let tenant_index = resolve_tenant(state, tenant)?;
    let query = http::query(request);
    let client_id = http::param(&query, "client_id").ok_or_else(|| missing("client_id"))?;
    let resources = if v2 {
        let scope = http::param(&query, "scope").ok_or_else(|| missing("scope"))?;
        Some(consent_resources(scope)?)
    } else {
        None
    };
    let now_ms = shared.clock.now_ms();
    let app = state
        .application_for(tenant_index, client_id, now_ms)
        .ok_or_else(|| not_found_in_directory(client_id, &state.tenants[tenant_index]))?;
    let redirect = http::param(&query, "redirect_uri");
    if let Some(uri) = redirect {
        let registered = app
            .props
            .get("web")
            .and_then(|w| w.get("redirectUris"))
            .and_then(Value::as_array)
            .is_some_and(|uris| uris.iter().any(|u| u.as_str() == Some(uri)));
        if !registered {
            return Err(fail(
                "invalid_request",
                50011,
                format!(
                    "The redirect URI '{uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal (web.redirectUris), or leave redirect_uri out."
                ),
            ));
        }
    }
    let app_name = app.display_name.clone();
    let app_id = app.app_id.clone();
    let tenant_id = state.tenants[tenant_index].id.clone();
    let domain = state.tenants[tenant_index].domain.clone();
    if !shared.knobs.admin_consent_auto_approve {
        crate::consent::record(state, tenant_index, &app_id, resources);
        let page = format!(
            "<!DOCTYPE html><html><head><title>Permissions requested</title></head><body><h1>Permissions requested</h1><p>{app_name} ({app_id}) asks for admin consent in {domain} ({tenant_id}).</p><p>cba-sim cannot show the Accept button: the admin's click is POST {}/_sim/consent {{\"tenant\": \"{tenant_id}\", \"app_id\": \"{app_id}\"}} (or SimTenant::approve_consent).</p></body></html>",
            shared.base_url
        );
        return Ok(html(200, page));
    }
    crate::consent::grant(shared, state, tenant_index, &app_id, resources.as_deref());
    match redirect {
        Some(uri) => {
            let mut location = url::Url::parse(uri).map_err(|_| {
                fail("invalid_request", 50011, format!("The redirect URI '{uri}' is not an absolute URL."))
            })?;
            {
                let mut pairs = location.query_pairs_mut();
                pairs.append_pair("admin_consent", "True").append_pair("tenant", &tenant_id);
                if let Some(scope) = http::param(&query, "scope").filter(|_| v2) {
                    pairs.append_pair("scope", scope);
                }
                if let Some(state_param) = http::param(&query, "state") {
                    pairs.append_pair("state", state_param);
                }
            }
            Ok(Reply::empty(302).header("Location", location.to_string()))
        }
        None => Ok(html(
            200,
            format!(
                "<!DOCTYPE html><html><body><p>{app_name} ({app_id}) was granted admin consent in {domain}.</p></body></html>"
            ),
        )),
    }
}

fn html(status: u16, page: String) -> Reply {
    Reply { status, headers: Vec::new(), body: Some((page.into_bytes(), "text/html; charset=utf-8")) }
}

/// The resource app ids of a v2 admin-consent `scope`: `<resource>/.default` items (space separated).
fn consent_resources(scope: &str) -> Result<Vec<String>, Aadsts> {
    let mut resources = Vec::new();
    for item in scope.split_whitespace() {
        let resource = item.strip_suffix("/.default").and_then(wellknown::resource_for).ok_or_else(|| {
            fail(
                "invalid_scope",
                70011,
                format!(
                    "The provided value for the input parameter 'scope' is not valid. The scope '{item}' is not valid: admin consent takes <resource>/.default (https://outlook.office365.com/.default, https://graph.microsoft.com/.default)."
                ),
            )
        })?;
        resources.push(wellknown::resource_app_id(resource).to_string());
    }
    if resources.is_empty() {
        return Err(missing("scope"));
    }
    Ok(resources)
}

/// Find the tenant named in the path (GUID or verified domain; `organizations`/`common` mean the first tenant,
/// where the device-code admin signs in).
fn resolve_tenant(state: &State, tenant: &str) -> Result<usize, Aadsts> {
    if tenant.eq_ignore_ascii_case("organizations") || tenant.eq_ignore_ascii_case("common") {
        return Ok(0);
    }
    if let Some(index) = state.tenant_index(tenant) {
        return Ok(index);
    }
    if !ids::is_guid(tenant) && !tenant.contains('.') {
        return Err(fail(
            "invalid_request",
            900023,
            format!("Specified tenant identifier '{tenant}' is neither a valid DNS name, nor a valid external domain."),
        ));
    }
    Err(fail(
        "invalid_tenant",
        90002,
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        ),
    ))
}

fn openid_configuration(shared: &Shared, state: &State, tenant: &str) -> Result<Reply, Aadsts> {
    let index = resolve_tenant(state, tenant)?;
    let base = &shared.base_url;
    let tid = &state.tenants[index].id;
    Ok(Reply::json(
        200,
        &json!({
            "token_endpoint": format!("{base}/{tid}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{base}/{tid}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": format!("{base}/{tid}/v2.0"),
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": format!("{base}/oidc/userinfo"),
            "authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{base}/{tid}/oauth2/v2.0/logout"),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
            "kerberos_endpoint": format!("{base}/{tid}/kerberos"),
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }),
    ))
}

fn token(shared: &Shared, state: &mut State, request: &Request, tenant: &str) -> Result<Reply, Aadsts> {
    let tenant_index = resolve_tenant(state, tenant)?;
    let form = http::form(request);
    let grant_type = http::param(&form, "grant_type").ok_or_else(|| missing("grant_type"))?;
    match grant_type {
        "client_credentials" => client_credentials(shared, state, &form, tenant, tenant_index),
        DEVICE_CODE_GRANT => device_code_grant(shared, state, &form, tenant_index),
        "refresh_token" => refresh_token_grant(shared, state, &form, tenant_index),
        other => Err(fail(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

/// The resource of a client-credentials `scope` (exactly one `<resource>/.default`).
fn client_credentials_resource(scope: &str, tenant: &Tenant) -> Result<&'static str, Aadsts> {
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let [only] = scopes.as_slice() else {
        return Err(fail(
            "invalid_scope",
            70011,
            format!("The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."),
        ));
    };
    let Some(resource) = only.strip_suffix("/.default") else {
        return Err(fail(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {only} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    };
    wellknown::resource_for(resource).ok_or_else(|| {
        fail(
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {resource} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
                tenant.name
            ),
        )
    })
}

fn not_found_in_directory(app_id: &str, tenant: &Tenant) -> Aadsts {
    fail(
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{app_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
            tenant.name
        ),
    )
}

fn client_credentials(
    shared: &Shared,
    state: &mut State,
    form: &[(String, String)],
    path_tenant: &str,
    tenant_index: usize,
) -> Result<Reply, Aadsts> {
    // `organizations` and `common` say "any tenant": an app-only token needs the tenant named. The exact
    // answer Entra gives is UNVERIFIED (docs/wire-formats.md §11): its "no tenant" code.
    if path_tenant.eq_ignore_ascii_case("organizations") || path_tenant.eq_ignore_ascii_case("common") {
        return Err(fail(
            "invalid_request",
            50059,
            format!(
                "No tenant-identifying information found in either the request or implied by any provided credentials. The client credentials grant needs a tenant id or domain in the path, not '{path_tenant}'."
            ),
        ));
    }
    let client_id = http::param(form, "client_id").ok_or_else(|| missing("client_id"))?;
    let scope = http::param(form, "scope").ok_or_else(|| missing("scope"))?;
    let resource = client_credentials_resource(scope, &state.tenants[tenant_index])?;
    if http::param(form, "client_secret").is_some() {
        return Err(fail(
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '".to_string()
                + client_id
                + "'.",
        ));
    }
    let assertion = http::param(form, "client_assertion").ok_or_else(|| {
        fail(
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    })?;
    match http::param(form, "client_assertion_type") {
        Some(JWT_BEARER) => {}
        Some(other) => {
            return Err(fail(
                "invalid_request",
                900144,
                format!("The value '{other}' of 'client_assertion_type' is not supported; use '{JWT_BEARER}'."),
            ));
        }
        None => return Err(missing("client_assertion_type")),
    }

    let now_ms = shared.clock.now_ms();
    let tenant = &state.tenants[tenant_index];
    let app = state
        .application_for(tenant_index, client_id, now_ms)
        .ok_or_else(|| not_found_in_directory(client_id, tenant))?;
    let Some(sp) = tenant.sp_by_app_id(client_id, now_ms) else {
        if tenant.applications.iter().any(|a| a.app_id.eq_ignore_ascii_case(client_id))
            && !tenant.sp_exists_for(client_id)
        {
            return Err(fail(
                "invalid_client",
                7000229,
                format!(
                    "The client application {client_id} is missing service principal in the tenant {}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119",
                    tenant.id
                ),
            ));
        }
        return Err(not_found_in_directory(client_id, tenant));
    };
    let sp_id = sp.id.clone();
    let display = app.display_name.clone();

    let expected_aud = format!("{}/{path_tenant}/oauth2/v2.0/token", shared.base_url);
    let v1_aud = format!("{}/{path_tenant}/oauth2/token", shared.base_url);
    let accepted: Vec<&str> = if shared.knobs.accept_v1_assertion_audience {
        vec![expected_aud.as_str(), v1_aud.as_str()]
    } else {
        vec![expected_aud.as_str()]
    };
    let checked = check_assertion(shared, assertion, &app.key_credentials, client_id, &accepted, now_ms)?;

    if shared.knobs.reject_replayed_jti {
        let now = shared.clock.now_secs();
        state.prune_jtis(now, shared.knobs.clock_skew_secs);
        let key = format!("{client_id}/{}", checked.jti);
        if state.used_jtis.contains_key(&key) {
            return Err(fail(
                "invalid_client",
                50013,
                format!(
                    "Assertion failed signature validation. [Reason - The assertion has already been used (jti '{}' replayed); sign a new client assertion with a fresh jti for every token request.] {CERT_DOCS}",
                    checked.jti
                ),
            ));
        }
        state.used_jtis.insert(key, checked.exp);
    }

    let token = mint_app_token(shared, &state.tenants[tenant_index], client_id, &display, &sp_id, resource);
    let lifetime = shared.knobs.token_lifetime_secs;
    Ok(Reply::json(
        200,
        &json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}),
    )
    .header("cache-control", "no-store, no-cache"))
}

/// What a valid client assertion said.
struct CheckedAssertion {
    jti: String,
    exp: i64,
}

fn key_window(key: &KeyCred) -> String {
    let f = |t: time::OffsetDateTime| {
        format!(
            "{:02}/{:02}/{:04} {:02}:{:02}:{:02}",
            t.month() as u8,
            t.day(),
            t.year(),
            t.hour(),
            t.minute(),
            t.second()
        )
    };
    format!("Found key 'Start={}, End={}'", f(key.start), f(key.end))
}

/// Validate a certificate client assertion against the app's registered keys (docs/wire-formats.md §4), in the order
/// Entra reports problems: format, key lookup, key validity, signature, then claims.
fn check_assertion(
    shared: &Shared,
    assertion: &str,
    keys: &[KeyCred],
    client_id: &str,
    audiences: &[&str],
    now_ms: i64,
) -> Result<CheckedAssertion, Aadsts> {
    let jwt = ParsedJwt::parse(assertion)
        .map_err(|why| fail("invalid_request", 50027, format!("JWT token is invalid or malformed ({why}).")))?;
    if jwt.alg != "RS256" && jwt.alg != "PS256" {
        return Err(fail(
            "invalid_client",
            5002738,
            format!(
                "Invalid JWT token. '{}' is not a supported signature algorithm. Supported signing algorithms are: 'RS256,PS256'",
                jwt.alg
            ),
        ));
    }
    let thumbprint = jwt.thumbprint_label();
    let portal = format!(
        "Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments if you are using a national cloud application."
    );
    let key_not_found = || {
        fail(
            "invalid_client",
            700027,
            format!(
                "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}', {portal}]"
            ),
        )
    };
    // Entra looks the key up by thumbprint: a bare `kid` names nothing it knows.
    if !jwt.names_a_thumbprint() {
        return Err(key_not_found());
    }
    let visible: Vec<KeyCred> = keys.iter().filter(|k| k.visible_at_ms <= now_ms).cloned().collect();
    let key = jwt.find_key_by_thumbprint(&visible).ok_or_else(key_not_found)?;
    let now = shared.clock.now();
    let expired = now > key.end || now > key.certificate.not_after();
    let not_yet = now < key.start || now < key.certificate.not_before();
    if let Some(rsa) = key.certificate.rsa_public_key()
        && rsa.bits() < MIN_RSA_BITS
        && !(expired || not_yet)
    {
        return Err(fail(
            "invalid_client",
            50032,
            format!(
                "WeakRsaKey - Indicates the erroneous user attempt to use a weak RSA key. [The certificate with thumbprint '{thumbprint}' has a {}-bit RSA key; at least {MIN_RSA_BITS} bits are required.]",
                rsa.bits()
            ),
        ));
    }
    if expired || not_yet {
        let reason = if expired { "The key used is expired." } else { "The key used is not yet valid." };
        return Err(fail(
            "invalid_client",
            700027,
            format!(
                "Client assertion contains an invalid signature. [Reason - {reason}, Thumbprint of key used by client: '{thumbprint}', {}, {portal}]",
                key_window(key)
            ),
        ));
    }
    if !jwt.verify_with(&key.certificate) {
        return Err(fail(
            "invalid_client",
            700027,
            format!(
                "Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '{thumbprint}', {}, {portal}]",
                key_window(key)
            ),
        ));
    }

    let aud = jwt.claim_str("aud").unwrap_or("");
    if !audiences.contains(&aud) {
        return Err(fail(
            "invalid_client",
            50013,
            format!(
                "Assertion audience claim does not match the required value. The audience in the assertion was '{aud}' and the expected audience is '{}'. {CERT_DOCS}",
                audiences[0]
            ),
        ));
    }
    let iss = jwt.claim_str("iss").unwrap_or("");
    if !iss.eq_ignore_ascii_case(client_id) {
        return Err(fail(
            "invalid_client",
            700021,
            format!("Client assertion application identifier doesn't match 'client_id' parameter. {CERT_DOCS}"),
        ));
    }
    if jwt.claim_str("sub") != Some(iss) {
        return Err(fail("invalid_client", 50048, "Subject mismatches Issuer claim in the client assertion."));
    }

    let now_secs = now.unix_timestamp();
    let skew = shared.knobs.clock_skew_secs;
    let exp = jwt.claim_time("exp");
    let nbf = jwt.claim_time("nbf");
    let out_of_range = |why: &str| {
        fail(
            "invalid_client",
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. {why}{CERT_DOCS}",
                unix_label(Some(now_secs)),
                unix_label(nbf),
                unix_label(exp)
            ),
        )
    };
    let Some(exp) = exp else {
        return Err(out_of_range("The assertion has no 'exp' claim. "));
    };
    if nbf.is_none() && shared.knobs.require_assertion_nbf {
        return Err(out_of_range("The assertion has no 'nbf' claim. "));
    }
    if now_secs > exp.saturating_add(skew) {
        return Err(out_of_range(""));
    }
    if let Some(nbf) = nbf
        && nbf > now_secs.saturating_add(skew)
    {
        return Err(out_of_range(""));
    }
    let start = nbf.or(jwt.claim_time("iat")).unwrap_or(now_secs);
    if exp.saturating_sub(start) > shared.knobs.max_assertion_lifetime_secs {
        return Err(out_of_range(&format!(
            "The assertion lifetime ({} s) exceeds the maximum of {} s. ",
            exp.saturating_sub(start),
            shared.knobs.max_assertion_lifetime_secs
        )));
    }
    let jti = jwt.claim_str("jti").unwrap_or("").to_string();
    if shared.knobs.reject_replayed_jti && jti.is_empty() {
        return Err(fail(
            "invalid_client",
            50013,
            format!("Assertion failed signature validation. [Reason - The assertion has no 'jti' claim.] {CERT_DOCS}"),
        ));
    }
    Ok(CheckedAssertion { jti, exp })
}

fn unix_label(secs: Option<i64>) -> String {
    secs.and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map(|t| http::login_timestamp(t).trim_end_matches('Z').to_string())
        .unwrap_or_else(|| "(none)".into())
}

/// An app-only access token for `resource`, carrying the roles granted to `sp_id` there and its directory roles.
pub(crate) fn mint_app_token(
    shared: &Shared,
    tenant: &Tenant,
    app_id: &str,
    app_name: &str,
    sp_id: &str,
    resource: &str,
) -> String {
    let now_ms = shared.clock.now_ms();
    let now = shared.clock.now_secs();
    let claims = AccessClaims {
        aud: resource.to_string(),
        iss: format!("https://sts.windows.net/{}/", tenant.id),
        iat: now,
        nbf: now,
        exp: now + shared.knobs.token_lifetime_secs,
        tid: tenant.id.clone(),
        appid: app_id.to_string(),
        app_displayname: Some(app_name.to_string()),
        appidacr: "2".into(),
        idtyp: "app".into(),
        oid: sp_id.to_string(),
        sub: sp_id.to_string(),
        roles: tenant.granted_roles(sp_id, wellknown::resource_app_id(resource), now_ms),
        wids: tenant.directory_roles(sp_id, now_ms),
        scp: None,
        upn: None,
        uti: ids::opaque()[..22].to_string(),
        ver: "1.0".into(),
    };
    jwt::issue(&claims)
}

/// A delegated Graph token for the tenant's admin user.
pub(crate) fn mint_admin_token(shared: &Shared, tenant: &Tenant, client_id: &str, scopes: &[String]) -> String {
    jwt::issue(&admin_claims(shared, tenant, client_id, scopes))
}

/// The claims of a delegated Graph token for the tenant's admin user.
pub(crate) fn admin_claims(shared: &Shared, tenant: &Tenant, client_id: &str, scopes: &[String]) -> AccessClaims {
    let now = shared.clock.now_secs();
    AccessClaims {
        aud: GRAPH_RESOURCE.to_string(),
        iss: format!("https://sts.windows.net/{}/", tenant.id),
        iat: now,
        nbf: now,
        exp: now + shared.knobs.token_lifetime_secs,
        tid: tenant.id.clone(),
        appid: client_id.to_string(),
        app_displayname: None,
        appidacr: "0".into(),
        idtyp: "user".into(),
        oid: tenant.admin_id.clone(),
        sub: tenant.admin_id.clone(),
        roles: Vec::new(),
        wids: tenant.admin_roles(),
        scp: Some(scopes.join(" ")),
        upn: Some(tenant.admin_upn.clone()),
        uti: ids::opaque()[..22].to_string(),
        ver: "1.0".into(),
    }
}

/// Delegated Graph scope names granted for a requested `scope` string (OpenID scopes dropped).
fn graph_scopes(scope: &str) -> Result<Vec<String>, Aadsts> {
    let invalid = |s: &str| {
        fail(
            "invalid_scope",
            70011,
            format!("The provided value for the input parameter 'scope' is not valid. The scope '{s}' is not valid."),
        )
    };
    let mut granted = Vec::new();
    for item in scope.split_whitespace() {
        if OIDC_SCOPES.contains(&item) {
            continue;
        }
        let name = match item.rsplit_once('/') {
            Some((resource, name)) => {
                if wellknown::resource_for(resource) != Some(GRAPH_RESOURCE) {
                    return Err(invalid(item));
                }
                name
            }
            None => item,
        };
        if name == ".default" {
            granted.extend(wellknown::ADMIN_SCOPES.iter().map(|s| s.to_string()));
        } else if let Some(known) = GRAPH_DELEGATED_SCOPES.iter().find(|s| s.eq_ignore_ascii_case(name)) {
            granted.push(known.to_string());
        } else {
            return Err(invalid(item));
        }
    }
    granted.sort();
    granted.dedup();
    if granted.is_empty() {
        granted.push("User.Read".into());
    }
    Ok(granted)
}

fn requested_oidc(scope: &str, name: &str) -> bool {
    scope.split_whitespace().any(|s| s == name)
}

/// Whether `client_id` may use public-client flows in this tenant (first-party tools, or a registered app that
/// allows public client flows).
fn public_client_check(state: &State, tenant_index: usize, client_id: &str, now_ms: i64) -> Result<(), Aadsts> {
    if FIRST_PARTY_PUBLIC_CLIENTS.iter().any(|(id, _)| id.eq_ignore_ascii_case(client_id)) {
        return Ok(());
    }
    let tenant = &state.tenants[tenant_index];
    let app = state
        .application_for(tenant_index, client_id, now_ms)
        .ok_or_else(|| not_found_in_directory(client_id, tenant))?;
    if app.props.get("isFallbackPublicClient") == Some(&Value::Bool(true)) {
        Ok(())
    } else {
        Err(fail(
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ))
    }
}

fn device_code(shared: &Shared, state: &mut State, request: &Request, tenant: &str) -> Result<Reply, Aadsts> {
    let tenant_index = resolve_tenant(state, tenant)?;
    let form = http::form(request);
    let client_id = http::param(&form, "client_id").ok_or_else(|| missing("client_id"))?.to_string();
    let scope = http::param(&form, "scope").ok_or_else(|| missing("scope"))?.to_string();
    let now_ms = shared.clock.now_ms();
    let known = FIRST_PARTY_PUBLIC_CLIENTS.iter().any(|(id, _)| id.eq_ignore_ascii_case(&client_id))
        || state.application_for(tenant_index, &client_id, now_ms).is_some();
    if !known {
        return Err(not_found_in_directory(&client_id, &state.tenants[tenant_index]));
    }
    // The Exchange Online PowerShell sign-in (docs/wire-formats.md §10): one resource per request, as Entra
    // wants, and only `.default` for Exchange.
    let exchange = exchange_scope(&scope)?;
    if exchange && !client_id.eq_ignore_ascii_case(EXCHANGE_POWERSHELL_CLIENT_ID) {
        return Err(fail(
            "invalid_request",
            65002,
            format!(
                "Consent between first party application '{client_id}' and first party resource '{}' must be configured via preauthorization - applications owned and operated by Microsoft must get approval from the API owner before requesting tokens for that API.",
                wellknown::EXCHANGE_APP_ID
            ),
        ));
    }
    let scopes = if exchange { Vec::new() } else { graph_scopes(&scope)? };
    let explicit_graph = scope.split_whitespace().any(|s| !OIDC_SCOPES.contains(&s) && !s.ends_with("/.default"));
    if client_id.eq_ignore_ascii_case(AZURE_CLI_CLIENT_ID) && explicit_graph {
        return Err(fail(
            "invalid_request",
            65002,
            format!(
                "Consent between first party application '{AZURE_CLI_CLIENT_ID}' and first party resource '{}' must be configured via preauthorization - applications owned and operated by Microsoft must get approval from the API owner before requesting tokens for that API.",
                wellknown::GRAPH_APP_ID
            ),
        ));
    }
    let knobs = &shared.knobs;
    let mut full_scopes: Vec<String> =
        scope.split_whitespace().filter(|s| OIDC_SCOPES.contains(s)).map(str::to_string).collect();
    full_scopes.extend(scopes.iter().map(|s| format!("{GRAPH_RESOURCE}/{s}")));
    if exchange {
        full_scopes.push(format!("{}/.default", wellknown::EXCHANGE_RESOURCE));
    }
    let code = DeviceCode {
        device_code: format!("DAQABIQEAAAD{}", ids::opaque()),
        user_code: ids::user_code(),
        client_id,
        tenant_id: state.tenants[tenant_index].id.clone(),
        scopes: full_scopes,
        issued_ms: now_ms,
        expires_ms: now_ms + (knobs.device_code_expires_in_secs as i64) * 1000,
        status: DeviceCodeStatus::Pending,
        last_poll_ms: None,
    };
    let verification_uri = "https://microsoft.com/devicelogin";
    let body = json!({
        "user_code": code.user_code,
        "device_code": code.device_code,
        "verification_uri": verification_uri,
        "expires_in": knobs.device_code_expires_in_secs,
        "interval": knobs.device_code_interval_secs,
        "message": format!(
            "To sign in, use a web browser to open the page {verification_uri} and enter the code {} to authenticate.",
            code.user_code
        ),
    });
    state.device_codes.push(code);
    Ok(Reply::json(200, &body))
}

fn device_code_grant(
    shared: &Shared,
    state: &mut State,
    form: &[(String, String)],
    tenant_index: usize,
) -> Result<Reply, Aadsts> {
    let client_id = http::param(form, "client_id").ok_or_else(|| missing("client_id"))?;
    let device_code = http::param(form, "device_code").ok_or_else(|| missing("device_code"))?;
    let now_ms = shared.clock.now_ms();
    let knobs = &shared.knobs;
    let tenant_id = state.tenants[tenant_index].id.clone();
    let bad_code = || {
        fail("bad_verification_code", 70018, "The provided value for the input parameter 'device_code' is not valid.")
    };
    let position = state
        .device_codes
        .iter()
        .position(|c| {
            c.device_code == device_code && c.client_id.eq_ignore_ascii_case(client_id) && c.tenant_id == tenant_id
        })
        .ok_or_else(bad_code)?;
    public_client_check(state, tenant_index, client_id, now_ms)?;
    let code = &mut state.device_codes[position];
    if code.status == DeviceCodeStatus::Pending && now_ms >= code.expires_ms {
        code.status = DeviceCodeStatus::Expired;
    }
    if code.status == DeviceCodeStatus::Pending
        && knobs.device_code_auto_approve
        && now_ms >= code.issued_ms + knobs.device_code_delay.as_millis() as i64
    {
        code.status = DeviceCodeStatus::Approved;
    }
    match code.status {
        DeviceCodeStatus::Expired => {
            return Err(fail("expired_token", 70019, "Verification code expired."));
        }
        DeviceCodeStatus::Declined => {
            return Err(fail("authorization_declined", 70000, "The user declined the authorization request."));
        }
        DeviceCodeStatus::Redeemed => {
            return Err(fail(
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
            ));
        }
        DeviceCodeStatus::Pending => {
            let interval_ms = (knobs.device_code_interval_secs as i64) * 1000;
            let too_fast = code.last_poll_ms.is_some_and(|last| now_ms - last < interval_ms);
            code.last_poll_ms = Some(now_ms);
            if too_fast {
                return Err(fail(
                    "slow_down",
                    70016,
                    format!(
                        "OAuth 2.0 device flow error. Polled faster than the interval of {} s: slow down (add 5 s to the interval).",
                        knobs.device_code_interval_secs
                    ),
                ));
            }
            return Err(fail(
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            ));
        }
        DeviceCodeStatus::Approved => {}
    }
    code.status = DeviceCodeStatus::Redeemed;
    let requested = code.scopes.join(" ");
    let client_id = code.client_id.clone();
    if exchange_scope(&requested).unwrap_or(false) {
        return Ok(exchange_delegated_reply(shared, &state.tenants[tenant_index], &requested));
    }
    Ok(delegated_reply(shared, state, tenant_index, &client_id, &requested))
}

/// Whether `scope` asks for Exchange (`https://outlook.office365.com/.default`, or the Exchange app id's).
/// Exchange beside another resource is refused (AADSTS28000), and Exchange scopes other than `.default` are
/// not simulated (70011).
fn exchange_scope(scope: &str) -> Result<bool, Aadsts> {
    let resources: Vec<(&str, &str)> =
        scope.split_whitespace().filter(|s| !OIDC_SCOPES.contains(s)).filter_map(|s| s.rsplit_once('/')).collect();
    let exchange = resources.iter().filter(|(r, _)| wellknown::resource_for(r) == Some(wellknown::EXCHANGE_RESOURCE));
    let Some((_, name)) = exchange.clone().next() else {
        return Ok(false);
    };
    let others = scope.split_whitespace().filter(|s| !OIDC_SCOPES.contains(s)).count() - exchange.count();
    if others > 0 {
        return Err(fail(
            "invalid_scope",
            28000,
            "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope https://outlook.office365.com/.default is not valid.",
        ));
    }
    if *name != ".default" {
        return Err(fail(
            "invalid_scope",
            70011,
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope '{scope}' is not valid (cba-sim simulates only https://outlook.office365.com/.default for Exchange)."
            ),
        ));
    }
    Ok(true)
}

/// The answer to an Exchange device-code sign-in: the admin's delegated Exchange token (no refresh token:
/// the Exchange sign-in is one-shot in cba).
fn exchange_delegated_reply(shared: &Shared, tenant: &Tenant, scope: &str) -> Reply {
    let lifetime = shared.knobs.token_lifetime_secs;
    Reply::json(
        200,
        &json!({
            "token_type": "Bearer",
            "scope": scope.split_whitespace().filter(|s| !OIDC_SCOPES.contains(s)).collect::<Vec<_>>().join(" "),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": crate::exchange::admin_token(shared, tenant),
        }),
    )
}

fn delegated_reply(shared: &Shared, state: &mut State, tenant_index: usize, client_id: &str, scope: &str) -> Reply {
    // Scopes were validated when the code (or refresh token) was issued.
    let scopes = graph_scopes(scope).unwrap_or_default();
    let tenant = &state.tenants[tenant_index];
    let token = mint_admin_token(shared, tenant, client_id, &scopes);
    let lifetime = shared.knobs.token_lifetime_secs;
    let mut granted: Vec<String> =
        scope.split_whitespace().filter(|s| OIDC_SCOPES.contains(s)).map(str::to_string).collect();
    granted.extend(scopes.iter().map(|s| format!("{GRAPH_RESOURCE}/{s}")));
    let mut body = json!({
        "token_type": "Bearer",
        "scope": granted.join(" "),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": token,
    });
    if requested_oidc(scope, "openid") {
        let now = shared.clock.now_secs();
        let id_claims = json!({
            "aud": client_id,
            "iss": format!("{}/{}/v2.0", shared.base_url, tenant.id),
            "iat": now, "nbf": now, "exp": now + lifetime,
            "oid": tenant.admin_id, "sub": tenant.admin_id, "tid": tenant.id,
            "preferred_username": tenant.admin_upn, "name": "Sim Admin", "ver": "2.0",
        });
        body["id_token"] = Value::String(jwt::issue_value(&id_claims));
    }
    if requested_oidc(scope, "offline_access") {
        let refresh = format!("1.AQEA{}", ids::opaque());
        state.refresh_tokens.insert(
            refresh.clone(),
            crate::state::RefreshGrant {
                tenant_id: tenant.id.clone(),
                client_id: client_id.to_string(),
                scope: scope.to_string(),
            },
        );
        body["refresh_token"] = Value::String(refresh);
    }
    Reply::json(200, &body).header("cache-control", "no-store, no-cache")
}

fn refresh_token_grant(
    shared: &Shared,
    state: &mut State,
    form: &[(String, String)],
    tenant_index: usize,
) -> Result<Reply, Aadsts> {
    let client_id = http::param(form, "client_id").ok_or_else(|| missing("client_id"))?;
    let refresh = http::param(form, "refresh_token").ok_or_else(|| missing("refresh_token"))?;
    let grant = state
        .refresh_tokens
        .get(refresh)
        .filter(|g| g.client_id.eq_ignore_ascii_case(client_id) && g.tenant_id == state.tenants[tenant_index].id)
        .cloned()
        .ok_or_else(|| {
            fail(
                "invalid_grant",
                9002313,
                "Invalid request. Request is malformed or invalid: the refresh token is not valid.",
            )
        })?;
    let scope = match http::param(form, "scope") {
        Some(requested) => {
            graph_scopes(requested)?;
            requested.to_string()
        }
        None => grant.scope.clone(),
    };
    state.refresh_tokens.remove(refresh);
    Ok(delegated_reply(shared, state, tenant_index, client_id, &scope))
}
