//! A multi-tenant app in a customer's tenant (docs/wire-formats.md §11): its service principal there (created
//! by appId: the consent), the Exchange.ManageAsApp grant and the directory roles, all in that tenant with
//! its administrator's Graph token. The app itself, and its certificates, stay in the provider's tenant.

use serde::Serialize;

use super::{
    AssignedRole, Change, Event, Recorder, RoleState, Step, assignment_for, ensure_grant, ensure_roles,
    ensure_service_principal, exchange_service_principal, manage_as_app_grant,
};
use crate::model::Deleted;
use crate::wellknown::Role;
use crate::{Error, GraphClient, Replication};

/// What [`onboard_tenant`] left in place in the customer's tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantOutcome {
    /// The app's service principal in that tenant (its own object id, the same appId).
    pub sp_id: String,
    /// The Exchange.ManageAsApp grant.
    pub grant_id: String,
    /// The role assignments, in the requested order.
    pub role_assignments: Vec<AssignedRole>,
    /// Steps that created something.
    pub created: Vec<Step>,
    /// Steps that found everything in place.
    pub unchanged: Vec<Step>,
    /// Requests sent, retries included.
    pub requests: u32,
}

/// Consent `app_id` (a multi-tenant app of another tenant) into the tenant `client` acts in, grant it
/// Exchange.ManageAsApp and assign `roles`, creating only what is missing: the same steps, look-ups before
/// creates and "already exists is success" as [`apply`](super::apply), without touching the app. Graph
/// refuses the service principal for a single-tenant app of another tenant.
pub async fn onboard_tenant(
    client: &GraphClient,
    app_id: &str,
    roles: &[Role],
    progress: impl Fn(&Event) + Send + Sync,
) -> Result<TenantOutcome, Error> {
    let start = client.requests_sent();
    let rec = Recorder { progress: &progress };
    let object = format!("appId {app_id}");
    let mut roles_unique: Vec<Role> = Vec::new();
    for role in roles {
        if !roles_unique.iter().any(|r| r.template_id == role.template_id) {
            roles_unique.push(*role);
        }
    }
    let (exchange, (sp, sp_is_new, _, sp_change)) = tokio::try_join!(
        async { exchange_service_principal(client).await.map_err(|e| e.in_step(Step::Lookup, object.clone())) },
        async {
            ensure_service_principal(client, app_id, false, &rec)
                .await
                .map_err(|e| e.in_step(Step::ServicePrincipal, object.clone()))
        },
    )?;
    let sp_object = format!("service principal {} of {object}", sp.id);
    let (grant, assigned) = tokio::try_join!(
        async {
            ensure_grant(client, &sp, sp_is_new, &exchange, &rec)
                .await
                .map_err(|e| e.in_step(Step::Grant, sp_object.clone()))
        },
        ensure_roles(client, &sp, sp_is_new, &roles_unique, &rec),
    )?;
    let mut changes = vec![sp_change, grant.1];
    changes.extend(assigned.1);
    let (created, unchanged): (Vec<_>, Vec<_>) = changes.into_iter().partition(|(_, c)| *c == Change::Created);
    Ok(TenantOutcome {
        sp_id: sp.id,
        grant_id: grant.0,
        role_assignments: assigned.0,
        created: created.into_iter().map(|(s, _)| s).collect(),
        unchanged: unchanged.into_iter().map(|(s, _)| s).collect(),
        requests: client.requests_sent() - start,
    })
}

/// What the app holds in the tenant `client` acts in (read-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantState {
    /// Its service principal there, if consented.
    pub sp_id: Option<String>,
    /// The Exchange.ManageAsApp grant, if any.
    pub grant_id: Option<String>,
    /// The requested roles and their assignments.
    pub roles: Vec<RoleState>,
    /// Requests sent.
    pub requests: u32,
}

/// Look up the app's service principal, grant and role assignments in the tenant `client` acts in.
pub async fn tenant_state(client: &GraphClient, app_id: &str, roles: &[Role]) -> Result<TenantState, Error> {
    let start = client.requests_sent();
    let object = format!("appId {app_id}");
    let (exchange, sp) = tokio::try_join!(exchange_service_principal(client), async {
        client.service_principal_for_app(app_id, Replication::NotExpected).await
    })
    .map_err(|e| e.in_step(Step::Lookup, object.clone()))?;
    let Some(sp) = sp else {
        let roles = roles.iter().map(|r| RoleState { role: *r, assignment_id: None }).collect();
        return Ok(TenantState { sp_id: None, grant_id: None, roles, requests: client.requests_sent() - start });
    };
    let (grants, assignments) = tokio::try_join!(
        client.list_app_role_assignments(&sp.id, Replication::NotExpected),
        client.list_directory_role_assignments(&sp.id, Replication::NotExpected),
    )
    .map_err(|e| e.in_step(Step::Grant, format!("service principal {} of {object}", sp.id)))?;
    Ok(TenantState {
        sp_id: Some(sp.id),
        grant_id: manage_as_app_grant(&grants, &exchange.id).map(|g| g.id.clone()),
        roles: roles
            .iter()
            .map(|r| RoleState { role: *r, assignment_id: assignment_for(&assignments, r).map(|a| a.id.clone()) })
            .collect(),
        requests: client.requests_sent() - start,
    })
}

/// What [`remove_from_tenant`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantRemoval {
    /// Steps that deleted something.
    pub removed: Vec<Step>,
    /// Steps whose object was already gone.
    pub already_gone: Vec<Step>,
    /// Requests sent.
    pub requests: u32,
}

/// Remove the app from the tenant `client` acts in: its role assignments and grants, then its service
/// principal (the consent). The app and its certificates, in the provider's tenant, are untouched. A 404 is
/// "already gone": a rerun succeeds and removes nothing.
pub async fn remove_from_tenant(
    client: &GraphClient,
    app_id: &str,
    progress: impl Fn(&Event) + Send + Sync,
) -> Result<TenantRemoval, Error> {
    let start = client.requests_sent();
    let mut removed = Vec::new();
    let mut gone = Vec::new();
    let mut record = |step: Step, outcome: Deleted, id: &str| {
        let change = if outcome == Deleted::Deleted { Change::Removed } else { Change::AlreadyGone };
        progress(&Event::Finished { step: step.clone(), change, id: id.to_string() });
        if outcome == Deleted::Deleted { removed.push(step) } else { gone.push(step) }
    };
    let object = format!("appId {app_id}");
    let sp = client
        .service_principal_for_app(app_id, Replication::NotExpected)
        .await
        .map_err(|e| e.in_step(Step::ServicePrincipal, object.clone()))?;
    let Some(sp) = sp else {
        record(Step::ServicePrincipal, Deleted::AlreadyGone, "");
        return Ok(TenantRemoval { removed, already_gone: gone, requests: client.requests_sent() - start });
    };
    let sp_object = format!("service principal {} of {object}", sp.id);
    for (step, outcome, id) in
        super::teardown::delete_links(client, &sp.id, &sp_object, Replication::NotExpected).await?
    {
        record(step, outcome, &id);
    }
    let outcome =
        client.delete_service_principal(&sp.id).await.map_err(|e| e.in_step(Step::ServicePrincipal, sp_object))?;
    record(Step::ServicePrincipal, outcome, &sp.id);
    Ok(TenantRemoval { removed, already_gone: gone, requests: client.requests_sent() - start })
}
