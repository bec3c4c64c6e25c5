//! Admin consent of a multi-tenant app in a customer tenant: the page a customer's admin opens
//! (`{login}/{tenant}/adminconsent?client_id=…`, login.rs), the click on Accept that approves it, and what the
//! approval creates there: the app's service principal and the app-role grants for the application permissions
//! of its requiredResourceAccess, visible after the replication delay. Directory roles are never part of
//! consent: the customer (or the provider with the customer admin's sign-in) assigns them separately.

use serde_json::{Map, Value};

use crate::graph::service_principals::service_principal_for;
use crate::ids;
use crate::server::Shared;
use crate::state::{AppRoleAssignment, PendingConsent, State};

/// What an approved consent made (or found) in the tenant.
#[derive(Debug, Clone)]
pub(crate) struct Granted {
    pub(crate) service_principal_id: String,
    /// App-role grants made now (ids); grants that existed already are not repeated.
    pub(crate) new_grants: Vec<String>,
}

/// The admin opened the consent page: remember it until approved (a second visit replaces the first).
pub(crate) fn record(state: &mut State, tenant_index: usize, app_id: &str, resources: Option<Vec<String>>) {
    state.pending_consents.retain(|p| !(p.tenant_index == tenant_index && p.app_id.eq_ignore_ascii_case(app_id)));
    state.pending_consents.push(PendingConsent { tenant_index, app_id: app_id.to_ascii_lowercase(), resources });
}

/// The admin clicks Accept on a page opened earlier; `None` when no such page is open.
pub(crate) fn approve(shared: &Shared, state: &mut State, tenant_index: usize, app_id: &str) -> Option<Granted> {
    let position = state
        .pending_consents
        .iter()
        .position(|p| p.tenant_index == tenant_index && p.app_id.eq_ignore_ascii_case(app_id))?;
    let pending = state.pending_consents.remove(position);
    grant(shared, state, tenant_index, &pending.app_id, pending.resources.as_deref())
}

/// Consent now: the app's service principal in the tenant (unless it has one) and a grant for each application
/// permission (`"type": "Role"`) in the app's requiredResourceAccess on the resources consented (`None`: all of
/// them, the v1 endpoint; else the resource app ids a v2 request's `scope` named). `None` when the app is not
/// visible from this tenant (unknown, single-tenant elsewhere, or not replicated).
pub(crate) fn grant(
    shared: &Shared,
    state: &mut State,
    tenant_index: usize,
    app_id: &str,
    resources: Option<&[String]>,
) -> Option<Granted> {
    let now_ms = shared.clock.now_ms();
    grant_visible_at(
        shared,
        state,
        tenant_index,
        app_id,
        resources,
        now_ms.saturating_add(shared.knobs.replication_ms()),
    )
}

/// [`grant`], with what it creates visible from `visible_at` (`i64::MIN`: already replicated, for seeding).
pub(crate) fn grant_visible_at(
    shared: &Shared,
    state: &mut State,
    tenant_index: usize,
    app_id: &str,
    resources: Option<&[String]>,
    visible_at: i64,
) -> Option<Granted> {
    let now_ms = shared.clock.now_ms();
    let app = state.application_for(tenant_index, app_id, now_ms)?;
    let required = application_permissions(app.props.get("requiredResourceAccess"));
    let app_id = app.app_id.clone();
    let existing = state.tenants[tenant_index]
        .service_principals
        .iter()
        .find(|s| s.app_id.eq_ignore_ascii_case(&app_id) && s.gone_at_ms.is_none())
        .map(|s| s.id.clone());
    let sp_id = match existing {
        Some(id) => id,
        None => {
            let sp = service_principal_for(state, app, Map::new(), visible_at);
            let id = sp.id.clone();
            state.tenants[tenant_index].service_principals.push(sp);
            id
        }
    };
    let tenant = &mut state.tenants[tenant_index];
    let mut new_grants = Vec::new();
    for (resource_app_id, role_id) in required {
        if resources.is_some_and(|r| !r.iter().any(|x| x.eq_ignore_ascii_case(&resource_app_id))) {
            continue;
        }
        let Some(resource) = tenant.sp_by_app_id(&resource_app_id, now_ms) else {
            continue;
        };
        if !resource.app_roles.iter().any(|r| r.id.eq_ignore_ascii_case(&role_id)) {
            continue;
        }
        let resource_id = resource.id.clone();
        let exists = tenant.app_role_assignments.iter().any(|a| {
            a.principal_id == sp_id
                && a.resource_id == resource_id
                && a.app_role_id.eq_ignore_ascii_case(&role_id)
                && a.gone_at_ms.is_none()
        });
        if exists {
            continue;
        }
        let id = ids::opaque();
        new_grants.push(id.clone());
        tenant.app_role_assignments.push(AppRoleAssignment {
            id,
            principal_id: sp_id.clone(),
            resource_id,
            app_role_id: role_id.to_ascii_lowercase(),
            created: shared.clock.now(),
            visible_at_ms: visible_at,
            gone_at_ms: None,
        });
    }
    Some(Granted { service_principal_id: sp_id, new_grants })
}

/// `(resourceAppId, app role id)` for every `"type": "Role"` entry of a requiredResourceAccess value.
fn application_permissions(required: Option<&Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for item in required.and_then(Value::as_array).into_iter().flatten() {
        let Some(resource) = item.get("resourceAppId").and_then(Value::as_str) else {
            continue;
        };
        for entry in item.get("resourceAccess").and_then(Value::as_array).into_iter().flatten() {
            if entry.get("type").and_then(Value::as_str) == Some("Role")
                && let Some(id) = entry.get("id").and_then(Value::as_str)
            {
                out.push((resource.to_string(), id.to_string()));
            }
        }
    }
    out
}
