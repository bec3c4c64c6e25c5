//! Exchange Online admin REST (docs/wire-formats.md §6): `POST /adminapi/beta/{tenant}/InvokeCommand` for Get-Mailbox,
//! Get-OrganizationConfig and Get-AcceptedDomain over generated data, with OData paging, and one write,
//! Set-Mailbox (CustomAttribute1–15, HiddenFromAddressListsEnabled), whose changes later Get-Mailbox calls show.
//!
//! Mailboxes are generated from their index, never stored: 10,000 of them cost nothing until read. Only what
//! Set-Mailbox changed is kept.
//!
//! Authorization: `Exchange.ManageAsApp` comes from the token's `roles`; the Entra role from the tenant's
//! role assignments as Exchange's copy of the directory sees them (`exchange_role_delay` behind Graph), never
//! from the token's `wids`. Every request must be anchored (`X-AnchorMailbox`) in the token's tenant.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use wiremock::Request;

use crate::http::{self, GRAPH_JSON, Reply};
use crate::ids;
use crate::jwt::{self, AccessClaims};
use crate::server::Shared;
use crate::state::{State, Tenant};
use crate::wellknown::{EXCHANGE_APP_ID, EXCHANGE_CAPABLE_ROLES, EXCHANGE_RESOURCE};

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
const DEFAULT_RESULT_SIZE: usize = 1000;
const SERVER: &str = "SA1PR01A001DC01.NAMPR01A001.PROD.OUTLOOK.COM";
/// The system mailbox app-only requests are anchored to: `X-AnchorMailbox: APP:<this>@{tenant}`.
const APP_ANCHOR_MAILBOX: &str = "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}";

/// What Exchange write cmdlets changed, and the write fault still to fire.
#[derive(Debug, Default)]
pub(crate) struct ExchangeState {
    /// Properties set by Set-Mailbox, by (tenant id, mailbox index); laid over the generated mailbox.
    mailbox_edits: HashMap<(String, usize), Map<String, Value>>,
    /// Write cmdlets still to be carried out and then answered 500, as if the service failed after doing the
    /// work (`SimTenantBuilder::exchange_fail_after_execute`).
    pub(crate) fail_after_execute: u64,
}

/// Properties Set-Mailbox takes besides Identity: CustomAttribute1..15 (strings) and one switch-like boolean.
fn settable_mailbox_property(name: &str) -> Option<String> {
    if name.eq_ignore_ascii_case("HiddenFromAddressListsEnabled") {
        return Some("HiddenFromAddressListsEnabled".to_string());
    }
    let n: u8 =
        name.get(..15).filter(|p| p.eq_ignore_ascii_case("CustomAttribute")).and_then(|_| name[15..].parse().ok())?;
    (1..=15).contains(&n).then(|| format!("CustomAttribute{n}"))
}

/// An Exchange error: status and body.
struct ExoError {
    status: u16,
    body: Value,
    www_authenticate: bool,
}

fn error(status: u16, code: &str, message: &str) -> ExoError {
    ExoError {
        status,
        body: json!({"error": {"code": code, "message": message, "details": [], "innererror": {
            "message": message,
            "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
            "stacktrace": "",
        }}}),
        www_authenticate: false,
    }
}

fn unauthorized(message: &str) -> ExoError {
    ExoError { www_authenticate: true, ..error(401, "Unauthorized", message) }
}

fn bad_request(message: &str) -> ExoError {
    error(400, "BadRequest", message)
}

/// The 404 the service gives for an identity it cannot find (docs/wire-formats.md §6).
fn object_not_found(identity: &str) -> ExoError {
    let inner = format!(
        "Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed because object '{identity}' couldn't be found on '{SERVER}'."
    );
    ExoError {
        status: 404,
        body: json!({"error": {
            "code": "NotFound",
            "message": "Error executing cmdlet",
            "details": [{"code": "Context", "target": "", "message": inner}],
            "innererror": {
                "message": "Error executing cmdlet",
                "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
                "stacktrace": "",
                "internalexception": {
                    "message": inner,
                    "type": "Microsoft.Exchange.Management.PSDirectInvoke.DirectInvokeCmdletExecutionException",
                    "stacktrace": "",
                },
            },
        }}),
        www_authenticate: false,
    }
}

pub(crate) fn handle(shared: &Shared, state: &mut State, request: &Request, segments: &[String]) -> Reply {
    let request_id = ids::guid();
    let reply = match invoke(shared, state, request, segments) {
        Ok(reply) => reply,
        Err(e) => {
            let mut reply = Reply::json_as(e.status, &e.body, GRAPH_JSON);
            if e.www_authenticate {
                reply = reply.header(
                    "WWW-Authenticate",
                    format!(
                        "Bearer client_id=\"{EXCHANGE_APP_ID}\", trusted_issuers=\"00000001-0000-0000-c000-000000000000@*\", token_types=\"app_asserted_user_v1 service_asserted_app_v1\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", error=\"invalid_token\""
                    ),
                );
            }
            reply
        }
    };
    let reply = reply.header("request-id", request_id);
    match http::header(request, "client-request-id") {
        Some(id) => reply.header("client-request-id", id),
        None => reply,
    }
}

fn authenticate(shared: &Shared, request: &Request) -> Result<AccessClaims, ExoError> {
    let header = http::header(request, "authorization").unwrap_or("");
    let token = header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).unwrap_or("").trim();
    if token.is_empty() {
        return Err(unauthorized("The request does not carry a bearer access token."));
    }
    let claims = jwt::verify_access(token, shared.clock.now_secs())
        .map_err(|_| unauthorized("The access token is invalid or has expired."))?;
    let aud = claims.aud.trim_end_matches('/');
    if aud != EXCHANGE_RESOURCE && aud != EXCHANGE_APP_ID {
        return Err(unauthorized(
            "The access token has the wrong audience; request https://outlook.office365.com/.default.",
        ));
    }
    Ok(claims)
}

fn invoke(shared: &Shared, state: &mut State, request: &Request, segments: &[String]) -> Result<Reply, ExoError> {
    let tenant_segment = match segments {
        [api, beta, tenant, action]
            if api == "adminapi" && beta == "beta" && action.eq_ignore_ascii_case("InvokeCommand") =>
        {
            tenant
        }
        _ => {
            return Err(error(
                404,
                "NotFound",
                &format!(
                    "The resource '{}' is not simulated by cba-sim (supported: POST /adminapi/beta/{{tenantId}}/InvokeCommand).",
                    request.url.path()
                ),
            ));
        }
    };
    if request.method.as_str() != "POST" {
        return Err(error(405, "MethodNotAllowed", "The requested resource does not support this HTTP method."));
    }
    let claims = authenticate(shared, request)?;
    let tenant = state
        .tenant(tenant_segment)
        .filter(|t| t.id.eq_ignore_ascii_case(&claims.tid))
        .ok_or_else(|| unauthorized("The tenant in the request path does not match the access token's tenant."))?;

    if shared.knobs.require_anchor_mailbox {
        check_anchor(http::header(request, "x-anchormailbox"), &claims, tenant)?;
    }

    let body: Value = serde_json::from_slice(&request.body).map_err(|_| {
        bad_request(
            "The request body is not valid JSON: expected {\"CmdletInput\":{\"CmdletName\":...,\"Parameters\":{...}}}.",
        )
    })?;
    let input =
        body.get("CmdletInput").and_then(Value::as_object).ok_or_else(|| bad_request("CmdletInput is required."))?;
    let cmdlet = input
        .get("CmdletName")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("CmdletInput.CmdletName is required."))?;
    let parameters = match input.get("Parameters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => return Err(bad_request("CmdletInput.Parameters must be an object.")),
    };

    // The Entra role as Exchange's copy of the directory sees it (exchange_role_delay behind Graph), not the
    // token's `wids`: a role assigned moments ago is not effective yet, a deleted one no longer is.
    let seen_at = shared.clock.now_ms().saturating_sub(shared.knobs.exchange_role_ms());
    let allowed = claims.is_app_only()
        && claims.roles.iter().any(|r| r == "Exchange.ManageAsApp")
        && tenant
            .directory_roles(&claims.oid, seen_at)
            .iter()
            .any(|w| EXCHANGE_CAPABLE_ROLES.iter().any(|r| r.eq_ignore_ascii_case(w)));
    let name = canonical_cmdlet(cmdlet).ok_or_else(|| {
        bad_request(&format!(
            "The term '{cmdlet}' is not recognized as a cmdlet available to this session (cba-sim simulates Get-Mailbox, Get-OrganizationConfig, Get-AcceptedDomain and Set-Mailbox)."
        ))
    })?;
    if !allowed {
        return Err(unauthorized(&format!("User is not allowed to call {name}")));
    }

    let page_size = page_size(http::header(request, "prefer"));
    let skip = match http::param(&http::query(request), "$skiptoken") {
        None => 0,
        Some(raw) => raw.parse::<usize>().map_err(|_| bad_request("The $skiptoken is not valid."))?,
    };
    let context =
        format!("{}/adminapi/beta/{}/$metadata#Collection(Exchange.GenericHashTable)", shared.base_url, tenant_segment);
    let next_link =
        |next: usize| format!("{}/adminapi/beta/{}/InvokeCommand?$skiptoken={next}", shared.base_url, tenant_segment);
    let mut body = json!({"@odata.context": context});
    match name {
        "Set-Mailbox" => {
            let index = {
                let identity = parameters
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("Identity"))
                    .map(|(_, v)| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                    .ok_or_else(|| {
                        bad_request(
                            "Cannot process command because of one or more missing mandatory parameters: Identity.",
                        )
                    })?;
                Mailboxes { tenant, edits: &state.exchange.mailbox_edits }
                    .find(&identity)
                    .ok_or_else(|| object_not_found(&identity))?
            };
            let mut changes = Map::new();
            for (name, value) in &parameters {
                if name.eq_ignore_ascii_case("Identity") {
                    continue;
                }
                let property = settable_mailbox_property(name).ok_or_else(|| {
                    bad_request(&format!("A parameter cannot be found that matches parameter name '{name}'."))
                })?;
                let valid = match property.as_str() {
                    "HiddenFromAddressListsEnabled" => value.is_boolean(),
                    _ => value.is_string() || value.is_null(),
                };
                if !valid {
                    return Err(bad_request(&format!(
                        "Cannot process argument transformation on parameter '{property}'. Cannot convert value \"{value}\" to the parameter's type."
                    )));
                }
                changes.insert(property, value.clone());
            }
            let key = (tenant.id.clone(), index);
            state.exchange.mailbox_edits.entry(key).or_default().extend(changes);
            if state.exchange.fail_after_execute > 0 {
                state.exchange.fail_after_execute -= 1;
                return Err(error(
                    500,
                    "InternalServerError",
                    "An internal server error occurred. The operation failed.",
                ));
            }
            return Ok(Reply::empty(204));
        }
        "Get-Mailbox" => {
            check_parameters(&parameters, &["Identity", "ResultSize"])?;
            let mailboxes = Mailboxes { tenant, edits: &state.exchange.mailbox_edits };
            if let Some(identity) = parameters.get("Identity") {
                let identity = identity.as_str().map(str::to_string).unwrap_or_else(|| identity.to_string());
                let index = mailboxes.find(&identity).ok_or_else(|| object_not_found(&identity))?;
                body["value"] = json!([mailboxes.get(index)]);
            } else {
                let result_size = result_size(parameters.get("ResultSize"))?;
                let total = tenant.mailboxes.min(result_size);
                let end = skip.saturating_add(page_size).min(total);
                let page: Vec<Value> = (skip.min(end)..end).map(|i| mailboxes.get(i)).collect();
                body["value"] = Value::Array(page);
                if end < total {
                    body["@odata.nextLink"] = Value::String(next_link(end));
                } else if tenant.mailboxes > result_size {
                    body["@adminapi.warnings"] = json!([
                        "There are more results available than are currently displayed. To view them, increase the value for the ResultSize parameter."
                    ]);
                }
            }
        }
        "Get-OrganizationConfig" => {
            check_parameters(&parameters, &[])?;
            body["value"] = json!([{
                "Name": tenant.domain,
                "DisplayName": tenant.name,
                "Guid": tenant.id,
                "Identity": tenant.domain,
                "Id": tenant.domain,
                "IsDehydrated": false,
                "OrganizationId": format!("{} - {}", tenant.domain, tenant.domain),
                "ExchangeVersion": "0.20 (15.0.0.0)",
            }]);
        }
        "Get-AcceptedDomain" => {
            check_parameters(&parameters, &["Identity"])?;
            let domain = json!({
                "DomainName": tenant.domain,
                "Name": tenant.domain,
                "Identity": tenant.domain,
                "Id": tenant.domain,
                "DomainType": "Authoritative",
                "Default": true,
                "InitialDomain": true,
            });
            if let Some(identity) = parameters.get("Identity").and_then(Value::as_str)
                && !identity.eq_ignore_ascii_case(&tenant.domain)
            {
                return Err(object_not_found(identity));
            }
            body["value"] = json!([domain]);
        }
        _ => return Err(bad_request(&format!("The term '{cmdlet}' is not recognized."))),
    }
    Ok(Reply::json_as(200, &body, GRAPH_JSON).header("Preference-Applied", format!("odata.maxpagesize={page_size}")))
}

/// `X-AnchorMailbox` must route to the token's tenant: `APP:SystemMailbox{bb558c35-…}@{tenant id or domain}`
/// for an app-only token, `UPN:<its upn>` for a delegated one. The real answer to a missing or foreign anchor
/// is UNVERIFIED: the sim answers 400 `BadRequest` (crate README).
fn check_anchor(anchor: Option<&str>, claims: &AccessClaims, tenant: &Tenant) -> Result<(), ExoError> {
    let anchor = anchor.map(str::trim).unwrap_or("");
    let ok = if claims.is_app_only() {
        anchor
            .split_once(':')
            .filter(|(kind, _)| kind.eq_ignore_ascii_case("APP"))
            .and_then(|(_, address)| address.rsplit_once('@'))
            .is_some_and(|(mailbox, at)| {
                mailbox.eq_ignore_ascii_case(APP_ANCHOR_MAILBOX)
                    && (at.eq_ignore_ascii_case(&tenant.id) || at.eq_ignore_ascii_case(&tenant.domain))
            })
    } else {
        anchor
            .split_once(':')
            .filter(|(kind, _)| kind.eq_ignore_ascii_case("UPN"))
            .is_some_and(|(_, upn)| claims.upn.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(upn)))
    };
    if ok {
        return Ok(());
    }
    let expected = if claims.is_app_only() {
        format!("APP:{APP_ANCHOR_MAILBOX}@{}", tenant.id)
    } else {
        format!("UPN:{}", claims.upn.as_deref().unwrap_or("<the signed-in user>"))
    };
    Err(bad_request(&if anchor.is_empty() {
        format!("The X-AnchorMailbox header is required; for this token it is {expected}.")
    } else {
        format!(
            "The X-AnchorMailbox header '{anchor}' does not route to a mailbox of this organization; for this token it is {expected}."
        )
    }))
}

fn canonical_cmdlet(name: &str) -> Option<&'static str> {
    ["Get-Mailbox", "Get-OrganizationConfig", "Get-AcceptedDomain", "Set-Mailbox"]
        .into_iter()
        .find(|c| c.eq_ignore_ascii_case(name))
}

fn check_parameters(parameters: &Map<String, Value>, allowed: &[&str]) -> Result<(), ExoError> {
    for name in parameters.keys() {
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(name)) {
            return Err(bad_request(&format!("A parameter cannot be found that matches parameter name '{name}'.")));
        }
    }
    Ok(())
}

/// `Prefer: odata.maxpagesize=N` (default 100, at most 1000).
fn page_size(prefer: Option<&str>) -> usize {
    prefer
        .into_iter()
        .flat_map(|p| p.split(','))
        .filter_map(|p| p.trim().strip_prefix("odata.maxpagesize="))
        .filter_map(|n| n.trim().parse::<usize>().ok())
        .find(|n| *n > 0)
        .map_or(DEFAULT_PAGE, |n| n.min(MAX_PAGE))
}

fn result_size(value: Option<&Value>) -> Result<usize, ExoError> {
    let invalid = |v: &Value| {
        bad_request(&format!(
            "Cannot process argument transformation on parameter 'ResultSize'. Cannot convert value \"{v}\" to type \"Microsoft.Exchange.Data.Unlimited`1[System.UInt32]\"."
        ))
    };
    match value {
        None | Some(Value::Null) => Ok(DEFAULT_RESULT_SIZE),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("Unlimited") => Ok(usize::MAX),
        Some(Value::String(s)) => {
            s.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| invalid(&Value::String(s.clone())))
        }
        Some(v @ Value::Number(n)) => n.as_u64().filter(|n| *n > 0).map(|n| n as usize).ok_or_else(|| invalid(v)),
        Some(other) => Err(invalid(other)),
    }
}

/// The generated mailboxes of a tenant: index 0 is the admin, the rest `user00001`...
struct Mailboxes<'t> {
    tenant: &'t Tenant,
    edits: &'t HashMap<(String, usize), Map<String, Value>>,
}

impl Mailboxes<'_> {
    fn alias(index: usize) -> String {
        if index == 0 { "admin".into() } else { format!("user{index:05}") }
    }

    fn display_name(index: usize) -> String {
        if index == 0 { "Sim Admin".into() } else { format!("User {index:05}") }
    }

    fn get(&self, index: usize) -> Value {
        let alias = Self::alias(index);
        let domain = &self.tenant.domain;
        let address = format!("{alias}@{domain}");
        let object_id = ids::derived_guid(&self.tenant.id, index as u64);
        let guid = ids::derived_guid(&self.tenant.id, (index as u64) | (1 << 40));
        let mut mailbox = json!({
            "ExternalDirectoryObjectId": object_id,
            "UserPrincipalName": address,
            "Alias": alias,
            "DisplayName": Self::display_name(index),
            "Name": alias,
            "Identity": alias,
            "Id": alias,
            "PrimarySmtpAddress": address,
            "EmailAddresses": [format!("SMTP:{address}")],
            "RecipientType": "UserMailbox",
            "RecipientTypeDetails": "UserMailbox",
            "Guid": guid,
            "ExchangeGuid": guid,
            "ExchangeVersion": "0.20 (15.0.0.0)",
            "DistinguishedName": format!("CN={alias},OU={domain},OU=Microsoft Exchange Hosted Organizations,DC=NAMPR01A001,DC=PROD,DC=OUTLOOK,DC=COM"),
            "OrganizationId": format!("NAMPR01A001.PROD.OUTLOOK.COM/Microsoft Exchange Hosted Organizations/{domain} - NAMPR01A001.PROD.OUTLOOK.COM/ConfigurationUnits/{domain}/Configuration"),
            "IsMailboxEnabled": true,
        });
        if let (Some(edits), Value::Object(fields)) = (self.edits.get(&(self.tenant.id.clone(), index)), &mut mailbox) {
            fields.extend(edits.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        mailbox
    }

    /// Resolve an identity the way Get-Mailbox does: alias, name, address, UPN, display name or GUID.
    fn find(&self, identity: &str) -> Option<usize> {
        let count = self.tenant.mailboxes;
        let wanted = identity.trim().to_ascii_lowercase();
        let local = wanted.split_once('@').map_or(wanted.as_str(), |(local, domain)| {
            if domain == self.tenant.domain.to_ascii_lowercase() { local } else { "" }
        });
        let index = if local == "admin" || wanted == "sim admin" {
            Some(0)
        } else if let Some(n) = local.strip_prefix("user").filter(|n| n.len() == 5) {
            n.parse::<usize>().ok().filter(|n| *n > 0)
        } else if let Some(n) = wanted.strip_prefix("user ").filter(|n| n.len() == 5) {
            n.parse::<usize>().ok().filter(|n| *n > 0)
        } else if ids::is_guid(&wanted) {
            (0..count).find(|i| {
                ids::derived_guid(&self.tenant.id, *i as u64) == wanted
                    || ids::derived_guid(&self.tenant.id, (*i as u64) | (1 << 40)) == wanted
            })
        } else {
            None
        };
        index.filter(|i| *i < count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(None), 100);
        assert_eq!(page_size(Some("odata.maxpagesize=10")), 10);
        assert_eq!(page_size(Some("return=minimal, odata.maxpagesize=5000")), 1000);
        assert_eq!(page_size(Some("odata.maxpagesize=abc")), 100);
    }

    #[test]
    fn settable_properties() {
        assert_eq!(settable_mailbox_property("customattribute7").as_deref(), Some("CustomAttribute7"));
        assert_eq!(settable_mailbox_property("CustomAttribute15").as_deref(), Some("CustomAttribute15"));
        for no in ["CustomAttribute0", "CustomAttribute16", "CustomAttribute", "CustomAttributeX", "DisplayName"] {
            assert_eq!(settable_mailbox_property(no), None, "{no}");
        }
    }
}
