//! The inspection routes of a provider's fleet: `GET /_sim/tenants` (every tenant with its admin token),
//! `GET /_sim/consents` and `POST /_sim/consent` (the customer admin's click on the consent page),
//! `POST /_sim/tenant-fault` (per-tenant throttling and failures), `POST /_sim/seed-fleet` (a seeding shortcut:
//! an app consented with a role in every customer tenant at once). Like the rest of `/_sim`: no auth, no faults.

use serde_json::{Value, json};
use wiremock::Request;

use crate::http::Reply;
use crate::inspect::sim_error;
use crate::server::Shared;
use crate::sim::{ADMIN_CLIENT_ID, admin_scopes};
use crate::state::{AppRoleAssignment, RoleAssignment};
use crate::tenant_faults::TenantFault;
use crate::wellknown::{self, EXCHANGE_APP_ID, MANAGE_AS_APP_ROLE_ID};
use crate::{consent, ids, login};

/// `[{"tenant_id","tenant_domain","admin_token"}]`, the provider (primary tenant) first. Admin tokens are
/// reused while more than half their lifetime is left: a thousand fresh RSA signatures would take a second.
/// With `?exchange=true` each entry also has `exchange_admin_token`, the admin's delegated Exchange token
/// (for `CBA_EXO_ADMIN_TOKEN`; signed per call, so only when asked).
pub(crate) fn tenants(shared: &Shared, request: &Request) -> Reply {
    let query = crate::http::query(request);
    let exchange = match crate::http::param(&query, "exchange") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return sim_error(400, &format!("exchange must be true or false, not {other:?}")),
    };
    let mut state = shared.lock();
    let now = shared.clock.now_secs();
    let half_life = shared.knobs.token_lifetime_secs / 2;
    let scopes = admin_scopes();
    let mut out = Vec::with_capacity(state.tenants.len());
    for index in 0..state.tenants.len() {
        let cached = state.admin_tokens.get(&index).filter(|(_, exp)| exp - now > half_life).map(|(t, _)| t.clone());
        let token = match cached {
            Some(token) => token,
            None => {
                let token = login::mint_admin_token(shared, &state.tenants[index], ADMIN_CLIENT_ID, &scopes);
                let exp = now + shared.knobs.token_lifetime_secs;
                state.admin_tokens.insert(index, (token.clone(), exp));
                token
            }
        };
        let tenant = &state.tenants[index];
        let mut entry = json!({"tenant_id": tenant.id, "tenant_domain": tenant.domain, "admin_token": token});
        if exchange {
            entry["exchange_admin_token"] = Value::String(crate::exchange::admin_token(shared, tenant));
        }
        out.push(entry);
    }
    Reply::json(200, &Value::Array(out))
}

/// `{"pending": [{"tenant_id","app_id"}]}`: consent pages opened and not yet approved.
pub(crate) fn pending_consents(shared: &Shared) -> Reply {
    let state = shared.lock();
    let pending: Vec<Value> = state
        .pending_consents
        .iter()
        .map(|p| json!({"tenant_id": state.tenants[p.tenant_index].id, "app_id": p.app_id}))
        .collect();
    Reply::json(200, &json!({ "pending": pending }))
}

/// `POST /_sim/consent {"tenant": "<id or domain>", "app_id": "<client id>"}`: approve the consent page the
/// admin opened; 200 `{"service_principal_id"}`, or 404 when no page is open for that app in that tenant.
pub(crate) fn approve_consent(shared: &Shared, request: &Request) -> Reply {
    let usage = "body must be {\"tenant\": \"<tenant id or domain>\", \"app_id\": \"<client id>\"}";
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return sim_error(400, usage);
    };
    let (Some(tenant), Some(app_id)) = (body["tenant"].as_str(), body["app_id"].as_str()) else {
        return sim_error(400, usage);
    };
    let mut state = shared.lock();
    let Some(index) = state.tenant_index(tenant) else {
        return sim_error(404, &format!("no tenant {tenant:?} in this sim"));
    };
    match consent::approve(shared, &mut state, index, app_id) {
        Some(granted) => Reply::json(
            200,
            &json!({"service_principal_id": granted.service_principal_id, "new_grants": granted.new_grants.len()}),
        ),
        None => sim_error(
            404,
            &format!(
                "no admin-consent page is open for app {app_id} in tenant {tenant}: GET {{login}}/{tenant}/adminconsent?client_id={app_id} first"
            ),
        ),
    }
}

/// `POST /_sim/tenant-fault {"tenant": "…", "services": ["login","graph","exchange"], "throttle": N, "fail": N,
/// "retry_after_secs": N, "exchange_unauthorized": bool}` (all but `tenant` optional; all zero clears): 204.
pub(crate) fn tenant_fault(shared: &Shared, request: &Request) -> Reply {
    let usage = "body must be {\"tenant\": \"<id or domain>\", \"services\": [\"login\"|\"graph\"|\"exchange\"], \"throttle\": N, \"fail\": N, \"retry_after_secs\": N, \"exchange_unauthorized\": bool}";
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&request.body) else {
        return sim_error(400, usage);
    };
    let Some(Value::String(tenant)) = body.remove("tenant") else {
        return sim_error(400, usage);
    };
    let fault: TenantFault = match serde_json::from_value(Value::Object(body)) {
        Ok(fault) => fault,
        Err(e) => return sim_error(400, &format!("{usage}: {e}")),
    };
    let mut state = shared.lock();
    let Some(index) = state.tenant_index(&tenant) else {
        return sim_error(404, &format!("no tenant {tenant:?} in this sim"));
    };
    if fault.is_clear() {
        state.tenant_faults.remove(&index);
    } else {
        state.tenant_faults.insert(index, fault);
    }
    Reply::empty(204)
}

/// `POST /_sim/seed-fleet {"app_id": "<multi-tenant app>", "role_template_id": "<directory role>"}`: in every
/// tenant but the primary one, what consent, the Exchange.ManageAsApp grant and the role assignment would make,
/// already replicated (a seeding shortcut for process tests and benchmarks, like `seed_consent`). 200
/// `[{"tenant_id","tenant_domain","service_principal_id","grant_id","role_assignment_id"}]`; reruns reuse what exists.
pub(crate) fn seed_fleet(shared: &Shared, request: &Request) -> Reply {
    let usage = "body must be {\"app_id\": \"<client id of a multi-tenant app>\", \"role_template_id\": \"<role template id>\" (optional)}";
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return sim_error(400, usage);
    };
    let Some(app_id) = body["app_id"].as_str() else {
        return sim_error(400, usage);
    };
    let role = body["role_template_id"].as_str().map(str::to_ascii_lowercase);
    if let Some(role) = &role
        && wellknown::role_definition(role).is_none()
    {
        return sim_error(400, &format!("unknown role template id {role}"));
    }
    let mut state = shared.lock();
    let mut out = Vec::with_capacity(state.tenants.len());
    for index in 1..state.tenants.len() {
        let Some(granted) = consent::grant_visible_at(shared, &mut state, index, app_id, None, i64::MIN) else {
            return sim_error(404, &format!("app {app_id} is not a multi-tenant app of another tenant of this sim"));
        };
        let sp_id = granted.service_principal_id;
        let tenant = &mut state.tenants[index];
        for sp in tenant.service_principals.iter_mut().filter(|s| s.id == sp_id) {
            sp.visible_at_ms = i64::MIN;
        }
        for grant in tenant.app_role_assignments.iter_mut().filter(|a| a.principal_id == sp_id) {
            grant.visible_at_ms = i64::MIN;
        }
        let exchange = tenant.sp_by_app_id(EXCHANGE_APP_ID, i64::MAX).map(|s| s.id.clone()).unwrap_or_default();
        let existing = tenant
            .app_role_assignments
            .iter()
            .find(|a| a.principal_id == sp_id && a.resource_id == exchange && a.app_role_id == MANAGE_AS_APP_ROLE_ID)
            .map(|a| a.id.clone());
        let grant_id = existing.unwrap_or_else(|| {
            let id = ids::opaque();
            tenant.app_role_assignments.push(AppRoleAssignment {
                id: id.clone(),
                principal_id: sp_id.clone(),
                resource_id: exchange.clone(),
                app_role_id: MANAGE_AS_APP_ROLE_ID.to_string(),
                created: shared.clock.now(),
                visible_at_ms: i64::MIN,
                gone_at_ms: None,
            });
            id
        });
        let role_assignment_id = role.as_ref().map(|role| {
            let existing = tenant
                .role_assignments
                .iter()
                .find(|r| r.principal_id == sp_id && &r.role_definition_id == role && r.gone_at_ms.is_none())
                .map(|r| r.id.clone());
            existing.unwrap_or_else(|| {
                let id = format!("{}-1", ids::opaque());
                tenant.role_assignments.push(RoleAssignment {
                    id: id.clone(),
                    role_definition_id: role.clone(),
                    principal_id: sp_id.clone(),
                    directory_scope_id: "/".into(),
                    visible_at_ms: i64::MIN,
                    gone_at_ms: None,
                });
                id
            })
        });
        out.push(json!({
            "tenant_id": tenant.id,
            "tenant_domain": tenant.domain,
            "service_principal_id": sp_id,
            "grant_id": grant_id,
            "role_assignment_id": role_assignment_id,
        }));
    }
    Reply::json(200, &Value::Array(out))
}

/// `GET /_sim/request-count`: `{"total": N}`, every request the simulated services answered since start (the
/// request log keeps only the last 10,000).
pub(crate) fn request_count(shared: &Shared) -> Reply {
    Reply::json(200, &json!({"total": shared.lock().requests_total}))
}
