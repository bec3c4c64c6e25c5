//! Exchange Online admin REST (docs/wire-formats.md §6 and §10): `POST /adminapi/beta/{tenant}/InvokeCommand`
//! for the recipient cmdlets (Get-Mailbox, Get-User, Get-Recipient over generated mailboxes, with OData paging;
//! Set-Mailbox, whose changes later reads show), the configuration reads (Get-OrganizationConfig,
//! Get-AcceptedDomain) and the RBAC cmdlets of rbac.rs.
//!
//! Authorization: every cmdlet needs one of its roles (`CMDLETS`), held as rbac.rs computes them: a delegated
//! admin token acts as Organization Management; an app-only token needs `Exchange.ManageAsApp` in `roles`, then
//! holds the role group its Entra role maps to (from the tenant's role assignments as Exchange's copy of the
//! directory sees them, `exchange_role_delay` behind Graph, never from the token's `wids`) and the groups its
//! Exchange service principal is a member of (`exchange_rbac_delay`). Every request must be anchored
//! (`X-AnchorMailbox`) in the token's tenant.

mod opath;
mod rbac;
mod recipients;

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use wiremock::Request;

use self::opath::Filter;
use self::rbac::Organization;
use self::recipients::{Mailboxes, settable_mailbox_property};
use crate::http::{self, GRAPH_JSON, Reply};
use crate::ids;
use crate::inspect::{ExchangeServicePrincipalSnapshot, ManagementScopeSnapshot, RoleGroupSnapshot};
use crate::jwt::{self, AccessClaims};
use crate::server::Shared;
use crate::state::{State, Tenant};
use crate::wellknown::{EXCHANGE_APP_ID, EXCHANGE_RESOURCE};

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
const DEFAULT_RESULT_SIZE: usize = 1000;
const SERVER: &str = "SA1PR01A001DC01.NAMPR01A001.PROD.OUTLOOK.COM";
/// The system mailbox app-only requests are anchored to: `X-AnchorMailbox: APP:<this>@{tenant}`.
const APP_ANCHOR_MAILBOX: &str = "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}";
/// The public client `Connect-ExchangeOnline` signs admins in with (wire-formats §10).
pub(crate) const EXCHANGE_POWERSHELL_CLIENT_ID: &str = "fb78d390-0c51-40cd-8e17-fdbfab77341b";
/// The delegated scopes of an admin's Exchange token.
const EXCHANGE_ADMIN_SCOPES: &str =
    "AdminApi.AccessAsUser.All FfoPowerShell.AccessAsUser.All RemotePowerShell.AccessAsUser.All";

const READ_RECIPIENTS: &[&str] = &["View-Only Recipients", "Mail Recipients"];
const READ_CONFIGURATION: &[&str] = &["View-Only Configuration", "Organization Configuration"];
const ROLE_MANAGEMENT: &[&str] = &["Role Management"];

/// A cmdlet the sim simulates: the roles that allow it (any one), and whether it writes (the
/// `exchange_fail_after_execute` fault applies to writes).
struct Cmdlet {
    name: &'static str,
    roles: &'static [&'static str],
    write: bool,
}

const fn cmdlet(name: &'static str, roles: &'static [&'static str], write: bool) -> Cmdlet {
    Cmdlet { name, roles, write }
}

const CMDLETS: &[Cmdlet] = &[
    cmdlet("Get-Mailbox", READ_RECIPIENTS, false),
    cmdlet("Get-User", READ_RECIPIENTS, false),
    cmdlet("Get-Recipient", READ_RECIPIENTS, false),
    cmdlet("Set-Mailbox", &["Mail Recipients"], true),
    cmdlet("Get-OrganizationConfig", READ_CONFIGURATION, false),
    cmdlet("Get-AcceptedDomain", READ_CONFIGURATION, false),
    cmdlet("Get-ServicePrincipal", ROLE_MANAGEMENT, false),
    cmdlet("New-ServicePrincipal", ROLE_MANAGEMENT, true),
    cmdlet("Remove-ServicePrincipal", ROLE_MANAGEMENT, true),
    cmdlet("Get-RoleGroup", ROLE_MANAGEMENT, false),
    cmdlet("New-RoleGroup", ROLE_MANAGEMENT, true),
    cmdlet("Remove-RoleGroup", ROLE_MANAGEMENT, true),
    cmdlet("Get-RoleGroupMember", ROLE_MANAGEMENT, false),
    cmdlet("Add-RoleGroupMember", ROLE_MANAGEMENT, true),
    cmdlet("Remove-RoleGroupMember", ROLE_MANAGEMENT, true),
    cmdlet("Get-ManagementScope", ROLE_MANAGEMENT, false),
    cmdlet("New-ManagementScope", ROLE_MANAGEMENT, true),
    cmdlet("Remove-ManagementScope", ROLE_MANAGEMENT, true),
    cmdlet("Get-ManagementRoleAssignment", ROLE_MANAGEMENT, false),
    cmdlet("Enable-OrganizationCustomization", ROLE_MANAGEMENT, true),
];

/// What Exchange write cmdlets changed, the RBAC objects of each tenant, and the write fault still to fire.
#[derive(Debug, Default)]
pub(crate) struct ExchangeState {
    /// Properties set by Set-Mailbox, by (tenant id, mailbox index); laid over the generated mailbox.
    mailbox_edits: HashMap<(String, usize), Map<String, Value>>,
    /// Write cmdlets still to be carried out and then answered 500, as if the service failed after doing the
    /// work (`SimTenantBuilder::exchange_fail_after_execute`).
    pub(crate) fail_after_execute: u64,
    /// Role groups, scopes and Exchange service principals, by tenant id; made at a tenant's first cmdlet.
    orgs: HashMap<String, Organization>,
    /// Organizations start dehydrated (the `dehydrated` knob).
    pub(crate) dehydrated: bool,
}

impl ExchangeState {
    /// What the state snapshot shows of a tenant's Exchange RBAC (inspect.rs).
    pub(crate) fn snapshot(&self, tenant_id: &str, now_ms: i64) -> ExchangeSnapshot {
        let fresh;
        let org = match self.orgs.get(&tenant_id.to_ascii_lowercase()) {
            Some(org) => org,
            None => {
                fresh = Organization::new(tenant_id, self.dehydrated);
                &fresh
            }
        };
        ExchangeSnapshot {
            service_principals: org
                .service_principals
                .iter()
                .map(|s| ExchangeServicePrincipalSnapshot {
                    app_id: s.app_id.clone(),
                    object_id: s.object_id.clone(),
                    display_name: s.display_name.clone(),
                })
                .collect(),
            role_groups: org
                .role_groups()
                .map(|g| RoleGroupSnapshot {
                    name: g.name.clone(),
                    roles: g.roles.iter().map(|r| r.to_string()).collect(),
                    members: g.member_names(),
                    write_scope: g.write_scope.clone(),
                    built_in: g.built_in,
                })
                .collect(),
            management_scopes: org
                .scopes
                .iter()
                .map(|s| ManagementScopeSnapshot {
                    name: s.name.clone(),
                    recipient_restriction_filter: s.filter_text.clone(),
                })
                .collect(),
            dehydrated: org.is_dehydrated(now_ms),
        }
    }
}

/// A tenant's Exchange RBAC objects as the state snapshot shows them.
pub(crate) struct ExchangeSnapshot {
    pub(crate) service_principals: Vec<ExchangeServicePrincipalSnapshot>,
    pub(crate) role_groups: Vec<RoleGroupSnapshot>,
    pub(crate) management_scopes: Vec<ManagementScopeSnapshot>,
    pub(crate) dehydrated: bool,
}

/// A delegated Exchange token of the tenant's admin (Global Administrator), as the admin's device-code sign-in
/// with the Exchange Online PowerShell client would give it.
pub(crate) fn admin_token(shared: &Shared, tenant: &Tenant) -> String {
    let mut claims = crate::login::admin_claims(shared, tenant, EXCHANGE_POWERSHELL_CLIENT_ID, &[]);
    claims.aud = EXCHANGE_RESOURCE.to_string();
    claims.app_displayname = Some("Microsoft Exchange REST API Based Powershell".into());
    claims.scp = Some(EXCHANGE_ADMIN_SCOPES.to_string());
    jwt::issue(&claims)
}

/// An Exchange error: status and body.
pub(crate) struct ExoError {
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

pub(crate) fn bad_request(message: &str) -> ExoError {
    error(400, "BadRequest", message)
}

/// The `Ex<6 hex>` prefix of a cmdlet error: the real one where known, else stable per exception type.
fn error_id(exception: &str) -> String {
    if exception.ends_with(".ManagementObjectNotFoundException") {
        return "Ex6F9304".into();
    }
    let hash = exception.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ b as u32).wrapping_mul(0x0100_0193));
    format!("Ex{:06X}", hash & 0xFF_FFFF)
}

/// A cmdlet that ran and failed: "Error executing cmdlet", the exception in `details` (docs/wire-formats.md §6).
pub(crate) fn cmdlet_error(status: u16, exception: &str, text: &str) -> ExoError {
    let code = match status {
        404 => "NotFound",
        500 => "InternalServerError",
        _ => "BadRequest",
    };
    let inner = format!("{}|{exception}|{text}", error_id(exception));
    ExoError {
        status,
        body: json!({"error": {
            "code": code,
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

/// The 404 the service gives for an identity it cannot find (docs/wire-formats.md §6).
pub(crate) fn object_not_found(identity: &str) -> ExoError {
    cmdlet_error(
        404,
        "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
        &format!("The operation couldn't be performed because object '{identity}' couldn't be found on '{SERVER}'."),
    )
}

fn invalid_filter(text: &str, e: &opath::FilterError) -> ExoError {
    cmdlet_error(
        400,
        "Microsoft.Exchange.Configuration.Tasks.InvalidFilterException",
        &format!("Invalid filter syntax: {e} Filter: \"{text}\""),
    )
}

/// What a cmdlet answers when it succeeds: rows (200) or nothing (204).
pub(crate) enum Outcome {
    Rows(Vec<Value>),
    Done,
}

/// Switch parameters: a boolean, or its PowerShell spelling as a string.
const SWITCHES: &[&str] = &["Confirm", "BypassSecurityGroupManagerCheck"];

/// A cmdlet's parameters, looked up by name ignoring case as PowerShell does.
pub(crate) struct Params<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Params<'a> {
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v).filter(|v| !v.is_null())
    }

    /// Refuse a parameter the cmdlet does not have, and a switch that is not a boolean.
    pub(crate) fn check(&self, allowed: &[&str]) -> Result<(), ExoError> {
        for (name, value) in self.map {
            let Some(known) = allowed.iter().find(|a| a.eq_ignore_ascii_case(name)) else {
                return Err(bad_request(&format!("A parameter cannot be found that matches parameter name '{name}'.")));
            };
            let switch_ok = match value {
                Value::Bool(_) | Value::Null => true,
                Value::String(s) => ["true", "false", "$true", "$false"].iter().any(|b| b.eq_ignore_ascii_case(s)),
                _ => false,
            };
            if SWITCHES.contains(known) && !switch_ok {
                return Err(bad_request(&format!(
                    "Cannot process argument transformation on parameter '{known}'. Cannot convert value \"{value}\" to type \"System.Management.Automation.SwitchParameter\"."
                )));
            }
        }
        Ok(())
    }

    /// Refuse a call that lacks mandatory parameters, naming them all.
    pub(crate) fn mandatory(&self, names: &[&str]) -> Result<(), ExoError> {
        let missing: Vec<&str> = names.iter().copied().filter(|n| self.get(n).is_none()).collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(bad_request(&format!(
            "Cannot process command because of one or more missing mandatory parameters: {}.",
            missing.join(" ")
        )))
    }

    /// A string parameter (a number is taken as its text).
    pub(crate) fn string(&self, name: &str) -> Result<Option<String>, ExoError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(bad_request(&format!(
                "Cannot process argument transformation on parameter '{name}'. Cannot convert value \"{other}\" to type \"System.String\"."
            ))),
        }
    }

    /// A mandatory, non-empty string parameter.
    pub(crate) fn required(&self, name: &str) -> Result<String, ExoError> {
        self.mandatory(&[name])?;
        let value = self.string(name)?.unwrap_or_default();
        if value.trim().is_empty() {
            return Err(bad_request(&format!(
                "Cannot bind argument to parameter '{name}' because it is an empty string."
            )));
        }
        Ok(value)
    }

    /// A mandatory GUID parameter, lower-cased.
    pub(crate) fn guid(&self, name: &str) -> Result<String, ExoError> {
        let value = self.required(name)?;
        if !ids::is_guid(value.trim()) {
            return Err(bad_request(&format!(
                "Cannot process argument transformation on parameter '{name}'. Cannot convert value \"{value}\" to type \"System.Guid\"."
            )));
        }
        Ok(value.trim().to_ascii_lowercase())
    }

    /// A multi-valued parameter: a JSON array of strings, or one comma-separated string.
    pub(crate) fn strings(&self, name: &str) -> Result<Vec<String>, ExoError> {
        let invalid = |v: &Value| {
            bad_request(&format!(
                "Cannot process argument transformation on parameter '{name}'. Cannot convert value \"{v}\" to type \"System.String[]\"."
            ))
        };
        let items: Vec<String> = match self.get(name) {
            None => Vec::new(),
            Some(Value::String(s)) => s.split(',').map(str::to_string).collect(),
            Some(Value::Array(values)) => values
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| invalid(v)))
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(invalid(other)),
        };
        Ok(items.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
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
    let tenant_index = state
        .tenant(tenant_segment)
        .filter(|t| t.id.eq_ignore_ascii_case(&claims.tid))
        .and_then(|t| state.tenant_index(&t.id))
        .ok_or_else(|| unauthorized("The tenant in the request path does not match the access token's tenant."))?;
    let tenant = &state.tenants[tenant_index];

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
    let requested = input
        .get("CmdletName")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("CmdletInput.CmdletName is required."))?;
    let parameters = match input.get("Parameters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => return Err(bad_request("CmdletInput.Parameters must be an object.")),
    };
    let params = Params { map: &parameters };
    let spec = CMDLETS.iter().find(|c| c.name.eq_ignore_ascii_case(requested)).ok_or_else(|| {
        let known: Vec<&str> = CMDLETS.iter().map(|c| c.name).collect();
        bad_request(&format!(
            "The term '{requested}' is not recognized as a cmdlet available to this session (cba-sim simulates {}).",
            known.join(", ")
        ))
    })?;
    if !claims.is_app_only() && claims.scopes().next().is_none() {
        return Err(unauthorized(
            "The delegated access token carries no scope (scp); sign in for the Exchange resource.",
        ));
    }

    let now_ms = shared.clock.now_ms();
    let rbac_delay_ms = shared.knobs.exchange_rbac_ms();
    let ExchangeState { mailbox_edits, orgs, fail_after_execute, dehydrated } = &mut state.exchange;
    let org = orgs.entry(tenant.id.to_ascii_lowercase()).or_insert_with(|| Organization::new(&tenant.id, *dehydrated));
    org.purge(now_ms, rbac_delay_ms);
    let entra_seen_at = now_ms.saturating_sub(shared.knobs.exchange_role_ms());
    let grants = rbac::grants(org, tenant, &claims, now_ms, entra_seen_at, rbac_delay_ms);
    if !grants.iter().any(|g| spec.roles.contains(&g.role)) {
        return Err(unauthorized(&format!("User is not allowed to call {}", spec.name)));
    }

    let page = Paging {
        size: page_size(http::header(request, "prefer")),
        skip: match http::param(&http::query(request), "$skiptoken") {
            None => 0,
            Some(raw) => raw.parse::<usize>().map_err(|_| bad_request("The $skiptoken is not valid."))?,
        },
        next_link: format!("{}/adminapi/beta/{}/InvokeCommand", shared.base_url, tenant_segment),
    };
    let mut body = json!({"@odata.context": format!(
        "{}/adminapi/beta/{}/$metadata#Collection(Exchange.GenericHashTable)",
        shared.base_url, tenant_segment
    )});
    let outcome = match spec.name {
        "Set-Mailbox" => {
            let mailboxes = Mailboxes { tenant, edits: mailbox_edits };
            let identity = params.required("Identity")?;
            let index = mailboxes.find(&identity).ok_or_else(|| object_not_found(&identity))?;
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
            if !rbac::in_write_scope(org, &grants, "Mail Recipients", &|p| mailboxes.property(index, p)) {
                return Err(rbac::out_of_write_scope(&Mailboxes::alias(index)));
            }
            mailbox_edits.entry((tenant.id.clone(), index)).or_default().extend(changes);
            Outcome::Done
        }
        "Get-Mailbox" | "Get-User" | "Get-Recipient" => {
            params.check(&["Identity", "ResultSize", "Filter", "RecipientTypeDetails"])?;
            let mailboxes = Mailboxes { tenant, edits: mailbox_edits };
            let view = |i: usize| match spec.name {
                "Get-User" => mailboxes.user(i),
                "Get-Recipient" => mailboxes.recipient(i),
                _ => mailboxes.get(i),
            };
            if let Some(identity) = params.string("Identity")? {
                let index = mailboxes.find(&identity).ok_or_else(|| object_not_found(&identity))?;
                Outcome::Rows(vec![view(index)])
            } else {
                let filter = match params.string("Filter")? {
                    Some(text) => Some(Filter::parse(&text).map_err(|e| invalid_filter(&text, &e))?),
                    None => None,
                };
                // Every generated recipient is a UserMailbox.
                let types = params.strings("RecipientTypeDetails")?;
                let type_ok = types.is_empty() || types.iter().any(|t| t.eq_ignore_ascii_case("UserMailbox"));
                let matching: Vec<usize> = (0..mailboxes.count())
                    .filter(|_| type_ok)
                    .filter(|i| filter.as_ref().is_none_or(|f| f.matches(&|p| mailboxes.property(*i, p))))
                    .collect();
                let result_size = result_size(params.get("ResultSize"))?;
                page.fill(&mut body, &matching, result_size, view);
                return Ok(ok_reply(&body, page.size));
            }
        }
        "Get-OrganizationConfig" => {
            params.check(&[])?;
            Outcome::Rows(vec![json!({
                "Name": tenant.domain,
                "DisplayName": tenant.name,
                "Guid": tenant.id,
                "Identity": tenant.domain,
                "Id": tenant.domain,
                "IsDehydrated": org.is_dehydrated(now_ms),
                "OrganizationId": format!("{} - {}", tenant.domain, tenant.domain),
                "ExchangeVersion": "0.20 (15.0.0.0)",
            })])
        }
        "Get-AcceptedDomain" => {
            params.check(&["Identity"])?;
            if let Some(identity) = params.string("Identity")?
                && !identity.eq_ignore_ascii_case(&tenant.domain)
            {
                return Err(object_not_found(&identity));
            }
            Outcome::Rows(vec![json!({
                "DomainName": tenant.domain,
                "Name": tenant.domain,
                "Identity": tenant.domain,
                "Id": tenant.domain,
                "DomainType": "Authoritative",
                "Default": true,
                "InitialDomain": true,
            })])
        }
        rbac_cmdlet => {
            let context = rbac::Context {
                tenant,
                mailboxes: Mailboxes { tenant, edits: mailbox_edits },
                now_ms,
                graph_now_ms: now_ms,
                customization_delay_ms: shared.knobs.enable_customization_delay.as_millis() as i64,
            };
            rbac::run(rbac_cmdlet, &params, org, &context)?
        }
    };
    if spec.write && *fail_after_execute > 0 {
        *fail_after_execute -= 1;
        return Err(error(500, "InternalServerError", "An internal server error occurred. The operation failed."));
    }
    match outcome {
        Outcome::Done => Ok(Reply::empty(204)),
        Outcome::Rows(rows) => {
            body["value"] = Value::Array(rows);
            Ok(ok_reply(&body, page.size))
        }
    }
}

fn ok_reply(body: &Value, page_size: usize) -> Reply {
    Reply::json_as(200, body, GRAPH_JSON).header("Preference-Applied", format!("odata.maxpagesize={page_size}"))
}

/// OData paging of a listing: `Prefer: odata.maxpagesize`, `$skiptoken` = position in the listing.
struct Paging {
    size: usize,
    skip: usize,
    /// The InvokeCommand URL the next link extends.
    next_link: String,
}

impl Paging {
    /// Put one page of `matching` (at most `result_size` of it) into `body`, with the next link or the
    /// ResultSize warning.
    fn fill(&self, body: &mut Value, matching: &[usize], result_size: usize, view: impl Fn(usize) -> Value) {
        let total = matching.len().min(result_size);
        let end = self.skip.saturating_add(self.size).min(total);
        body["value"] = matching[self.skip.min(end)..end].iter().map(|i| view(*i)).collect();
        if end < total {
            body["@odata.nextLink"] = Value::String(format!("{}?$skiptoken={end}", self.next_link));
        } else if matching.len() > result_size {
            body["@adminapi.warnings"] = json!([
                "There are more results available than are currently displayed. To view them, increase the value for the ResultSize parameter."
            ]);
        }
    }
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
    fn error_ids_are_six_hex_digits() {
        assert_eq!(error_id("Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"), "Ex6F9304");
        let id = error_id("Microsoft.Exchange.Management.Tasks.MemberAlreadyExistsException");
        assert_eq!(id.len(), 8, "{id}");
        assert!(id[2..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()), "{id}");
    }
}
