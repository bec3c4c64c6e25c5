//! The inspection view (`GET /_sim/state`, `GET /_sim/requests`, and the same from the library) and the
//! control routes a separate process needs (`POST /_sim/clock`, `POST /_sim/device-codes/{code}/{action}`).
//! None of this is part of the simulated APIs: no authentication, no faults, not in the request log.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wiremock::Request;

use crate::config::Service;
use crate::http::{self, Reply};
use crate::server::Shared;
use crate::state::{DeviceCodeStatus, State};
use crate::wellknown;

/// Everything the sim holds, as `GET {graph_url}/_sim/state` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct StateSnapshot {
    /// Every tenant, the primary one first.
    pub tenants: Vec<TenantSnapshot>,
}

impl StateSnapshot {
    /// A tenant by id, domain or name.
    pub fn tenant(&self, id_domain_or_name: &str) -> Option<&TenantSnapshot> {
        self.tenants.iter().find(|t| {
            t.id.eq_ignore_ascii_case(id_domain_or_name)
                || t.domain.eq_ignore_ascii_case(id_domain_or_name)
                || t.name.eq_ignore_ascii_case(id_domain_or_name)
        })
    }

    /// The primary tenant (the one `SimTenant::tenant_id` names).
    pub fn primary(&self) -> &TenantSnapshot {
        &self.tenants[0]
    }
}

/// One tenant's directory objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TenantSnapshot {
    /// Tenant id (GUID).
    pub id: String,
    /// Short name (`contoso`).
    pub name: String,
    /// Primary domain (`contoso.onmicrosoft.com`).
    pub domain: String,
    /// App registrations, in creation order.
    pub applications: Vec<ApplicationSnapshot>,
    /// Service principals, the pre-seeded Microsoft ones (`builtIn`) included.
    pub service_principals: Vec<ServicePrincipalSnapshot>,
    /// App role grants (admin consent to application permissions).
    pub app_role_assignments: Vec<AppRoleAssignmentSnapshot>,
    /// Directory role assignments.
    pub role_assignments: Vec<RoleAssignmentSnapshot>,
    /// Exchange service principals (New-ServicePrincipal).
    #[serde(default)]
    pub exchange_service_principals: Vec<ExchangeServicePrincipalSnapshot>,
    /// Exchange role groups, the built-in ones included.
    #[serde(default)]
    pub role_groups: Vec<RoleGroupSnapshot>,
    /// Exchange management scopes.
    #[serde(default)]
    pub management_scopes: Vec<ManagementScopeSnapshot>,
    /// Whether Exchange still refuses custom role groups (the `dehydrated` knob, until
    /// Enable-OrganizationCustomization has completed).
    #[serde(default)]
    pub exchange_dehydrated: bool,
}

/// An Exchange service principal: Exchange's pointer at an Entra service principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ExchangeServicePrincipalSnapshot {
    /// The application's client id.
    pub app_id: String,
    /// The Entra service principal's object id it was created with.
    pub object_id: String,
    /// Display name.
    pub display_name: String,
}

/// An Exchange role group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RoleGroupSnapshot {
    /// Name (also its identity).
    pub name: String,
    /// Role names.
    pub roles: Vec<String>,
    /// Member names: the ObjectId of a service principal, the alias of a mailbox.
    pub members: Vec<String>,
    /// The management scope limiting its writes (`CustomRecipientWriteScope`), if any.
    pub write_scope: Option<String>,
    /// One of the built-in groups (Organization Management, ...).
    pub built_in: bool,
}

/// An Exchange management scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ManagementScopeSnapshot {
    /// Name (also its identity).
    pub name: String,
    /// The OPATH filter, as given.
    pub recipient_restriction_filter: String,
}

impl TenantSnapshot {
    /// Service principals other than the pre-seeded Microsoft ones.
    pub fn custom_service_principals(&self) -> impl Iterator<Item = &ServicePrincipalSnapshot> {
        self.service_principals.iter().filter(|s| !s.built_in)
    }
}

/// An app registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ApplicationSnapshot {
    /// Object id.
    pub id: String,
    /// Client id.
    pub app_id: String,
    /// Display name.
    pub display_name: String,
    /// `AzureADMyOrg`, `AzureADMultipleOrgs`, ...
    pub sign_in_audience: String,
    /// The client-chosen alternate key, when set.
    #[serde(default)]
    pub unique_name: Option<String>,
    /// Registered certificates.
    pub key_credentials: Vec<KeyCredentialSnapshot>,
    /// Whether reads already see it (false during the replication delay).
    pub replicated: bool,
}

/// A registered certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct KeyCredentialSnapshot {
    /// Graph's key id.
    pub key_id: String,
    /// Display name.
    pub display_name: String,
    /// Upper-case hex SHA-1 thumbprint of the certificate.
    pub thumbprint_sha1: String,
    /// RFC 3339.
    pub start_date_time: String,
    /// RFC 3339.
    pub end_date_time: String,
    /// Whether the token endpoint already accepts it.
    pub replicated: bool,
}

/// A service principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ServicePrincipalSnapshot {
    /// Object id.
    pub id: String,
    /// The application's client id.
    pub app_id: String,
    /// Display name.
    pub display_name: String,
    /// Tenant that owns the application.
    pub app_owner_organization_id: String,
    /// Pre-seeded Microsoft service principal (Exchange Online, Microsoft Graph).
    pub built_in: bool,
    /// Whether reads already see it.
    pub replicated: bool,
}

/// An app role grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AppRoleAssignmentSnapshot {
    /// Opaque id.
    pub id: String,
    /// The client service principal.
    pub principal_id: String,
    /// The resource service principal.
    pub resource_id: String,
    /// The app role id.
    pub app_role_id: String,
    /// The app role's value (`Exchange.ManageAsApp`), when the resource defines it.
    pub app_role_value: Option<String>,
    /// Whether reads and new tokens already see it.
    pub replicated: bool,
}

/// A directory role assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RoleAssignmentSnapshot {
    /// Opaque id.
    pub id: String,
    /// The assignee.
    pub principal_id: String,
    /// Role template id.
    pub role_definition_id: String,
    /// Role display name, for built-in roles the sim knows.
    pub role_name: Option<String>,
    /// `/` for the whole directory.
    pub directory_scope_id: String,
    /// Whether reads and new tokens already see it.
    pub replicated: bool,
}

/// One request the simulated services answered (inspection routes are not logged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// Status the sim answered.
    pub status: u16,
    /// The service the path belongs to (`None` for paths no service has).
    pub service: Option<Service>,
}

pub(crate) fn snapshot(state: &State, now_ms: i64) -> StateSnapshot {
    let tenants = state
        .tenants
        .iter()
        .map(|t| TenantSnapshot {
            id: t.id.clone(),
            name: t.name.clone(),
            domain: t.domain.clone(),
            // Deleted objects whose deletion is still replicating are gone: the snapshot is authoritative.
            applications: t
                .applications
                .iter()
                .filter(|a| a.gone_at_ms.is_none())
                .map(|a| ApplicationSnapshot {
                    id: a.id.clone(),
                    app_id: a.app_id.clone(),
                    display_name: a.display_name.clone(),
                    sign_in_audience: a.sign_in_audience.clone(),
                    unique_name: a.unique_name.clone(),
                    key_credentials: a
                        .key_credentials
                        .iter()
                        .filter(|k| k.gone_at_ms.is_none())
                        .map(|k| KeyCredentialSnapshot {
                            key_id: k.key_id.clone(),
                            display_name: k.display_name.clone(),
                            thumbprint_sha1: k.certificate.thumbprint_sha1_hex(),
                            start_date_time: http::rfc3339(k.start),
                            end_date_time: http::rfc3339(k.end),
                            replicated: k.visible_at_ms <= now_ms,
                        })
                        .collect(),
                    replicated: a.visible_at_ms <= now_ms,
                })
                .collect(),
            service_principals: t
                .service_principals
                .iter()
                .filter(|s| s.gone_at_ms.is_none())
                .map(|s| ServicePrincipalSnapshot {
                    id: s.id.clone(),
                    app_id: s.app_id.clone(),
                    display_name: s.display_name.clone(),
                    app_owner_organization_id: s.app_owner_organization_id.clone(),
                    built_in: s.built_in,
                    replicated: s.visible_at_ms <= now_ms,
                })
                .collect(),
            app_role_assignments: t
                .app_role_assignments
                .iter()
                .filter(|a| a.gone_at_ms.is_none())
                .map(|a| AppRoleAssignmentSnapshot {
                    id: a.id.clone(),
                    principal_id: a.principal_id.clone(),
                    resource_id: a.resource_id.clone(),
                    app_role_id: a.app_role_id.clone(),
                    app_role_value: t
                        .service_principals
                        .iter()
                        .find(|s| s.id == a.resource_id)
                        .and_then(|s| s.app_roles.iter().find(|r| r.id.eq_ignore_ascii_case(&a.app_role_id)))
                        .map(|r| r.value.clone()),
                    replicated: a.visible_at_ms <= now_ms,
                })
                .collect(),
            role_assignments: t
                .role_assignments
                .iter()
                .filter(|r| r.gone_at_ms.is_none())
                .map(|r| RoleAssignmentSnapshot {
                    id: r.id.clone(),
                    principal_id: r.principal_id.clone(),
                    role_definition_id: r.role_definition_id.clone(),
                    role_name: wellknown::role_definition(&r.role_definition_id).map(str::to_string),
                    directory_scope_id: r.directory_scope_id.clone(),
                    replicated: r.visible_at_ms <= now_ms,
                })
                .collect(),
            exchange_service_principals: state.exchange.snapshot(&t.id, now_ms).service_principals,
            role_groups: state.exchange.snapshot(&t.id, now_ms).role_groups,
            management_scopes: state.exchange.snapshot(&t.id, now_ms).management_scopes,
            exchange_dehydrated: state.exchange.snapshot(&t.id, now_ms).dehydrated,
        })
        .collect();
    StateSnapshot { tenants }
}

/// Change a pending device code's fate; false when no pending code has that user code.
pub(crate) fn set_device_code(state: &mut State, user_code: &str, status: DeviceCodeStatus) -> bool {
    match state
        .device_codes
        .iter_mut()
        .find(|c| c.user_code.eq_ignore_ascii_case(user_code) && c.status == DeviceCodeStatus::Pending)
    {
        Some(code) => {
            code.status = status;
            true
        }
        None => false,
    }
}

pub(crate) fn pending_device_codes(state: &State, now_ms: i64) -> Vec<String> {
    state
        .device_codes
        .iter()
        .filter(|c| c.status == DeviceCodeStatus::Pending && now_ms < c.expires_ms)
        .map(|c| c.user_code.clone())
        .collect()
}

pub(crate) fn sim_error(status: u16, message: &str) -> Reply {
    Reply::json(status, &json!({"error": {"code": "SimInspection", "message": message}}))
}

pub(crate) fn handle(shared: &Shared, request: &Request, segments: &[String]) -> Reply {
    let method = request.method.as_str();
    let rest: Vec<&str> = segments.iter().skip(1).map(String::as_str).collect();
    match (method, rest.as_slice()) {
        ("GET", ["state"]) => {
            let state = shared.lock();
            let snapshot = snapshot(&state, shared.clock.now_ms());
            Reply::json(200, &serde_json::to_value(snapshot).unwrap_or(Value::Null))
        }
        ("GET", ["requests"]) => {
            let state = shared.lock();
            Reply::json(200, &serde_json::to_value(&state.requests).unwrap_or(Value::Null))
        }
        ("GET", ["device-codes"]) => {
            let state = shared.lock();
            Reply::json(200, &json!({"pending": pending_device_codes(&state, shared.clock.now_ms())}))
        }
        ("POST", ["device-codes", code, action]) => {
            let status = match *action {
                "approve" => DeviceCodeStatus::Approved,
                "decline" => DeviceCodeStatus::Declined,
                "expire" => DeviceCodeStatus::Expired,
                _ => return sim_error(404, "device-code actions are approve, decline and expire"),
            };
            if set_device_code(&mut shared.lock(), code, status) {
                Reply::empty(204)
            } else {
                sim_error(404, "no pending device code has that user code")
            }
        }
        ("POST", ["fail-after-commit"]) => {
            let body = serde_json::from_slice::<Value>(&request.body).ok();
            let count = body.as_ref().and_then(|v| v.get("count")).and_then(Value::as_u64);
            let pattern = body.as_ref().and_then(|v| v.get("pattern")).and_then(Value::as_str).unwrap_or("*");
            match count {
                Some(n) => {
                    if n > 0 {
                        shared.lock().fail_after_commit.push(crate::state::FailAfterCommit::parse(n, pattern));
                    }
                    Reply::empty(204)
                }
                None => sim_error(
                    400,
                    "body must be {\"count\": <integer>, \"pattern\": \"POST /applications\" (optional)}",
                ),
            }
        }
        ("POST", ["clock"]) => {
            let seconds = serde_json::from_slice::<Value>(&request.body)
                .ok()
                .and_then(|v| v.get("advance_secs").and_then(Value::as_i64));
            match seconds {
                Some(s) => {
                    shared.clock.advance(time::Duration::seconds(s));
                    Reply::json(200, &json!({"now": http::rfc3339(shared.clock.now())}))
                }
                None => sim_error(400, "body must be {\"advance_secs\": <integer>}"),
            }
        }
        ("GET", ["tenants"]) => crate::fleet_routes::tenants(shared, request),
        ("GET", ["consents"]) => crate::fleet_routes::pending_consents(shared),
        ("POST", ["consent"]) => crate::fleet_routes::approve_consent(shared, request),
        ("POST", ["tenant-fault"]) => crate::fleet_routes::tenant_fault(shared, request),
        ("POST", ["seed-fleet"]) => crate::fleet_routes::seed_fleet(shared, request),
        ("GET", ["request-count"]) => crate::fleet_routes::request_count(shared),
        _ => sim_error(
            404,
            "unknown inspection route: GET /_sim/state, GET /_sim/requests, GET /_sim/device-codes, POST /_sim/device-codes/{user_code}/{approve|decline|expire}, POST /_sim/clock, POST /_sim/fail-after-commit, GET /_sim/tenants, GET /_sim/consents, POST /_sim/consent, POST /_sim/tenant-fault, POST /_sim/seed-fleet, GET /_sim/request-count",
        ),
    }
}
