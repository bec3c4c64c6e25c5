//! `/servicePrincipals`: create (also across tenants for multi-tenant apps), `Prefer: create-if-missing` upsert,
//! get, list with `$filter`, delete, and app role grants (`appRoleAssignedTo` / `appRoleAssignments`).

use serde_json::{Map, Value, json};

use super::query::{self, Listing};
use super::{Ctx, GraphError, Key, entity, method_not_allowed, split_key};
use crate::http::{self, Reply};
use crate::ids;
use crate::state::{AppRole, AppRoleAssignment, ServicePrincipal, State, Tenant};

const READ: &[&str] =
    &["Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"];
const WRITE: &[&str] = &["Application.ReadWrite.All"];
const GRANT_READ: &[&str] =
    &["Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All", "AppRoleAssignment.ReadWrite.All"];
const GRANT_WRITE: &[&str] = &["AppRoleAssignment.ReadWrite.All"];

const WRITABLE: &[&str] = &[
    "accountEnabled",
    "alternativeNames",
    "appRoleAssignmentRequired",
    "description",
    "displayName",
    "homepage",
    "loginUrl",
    "logoutUrl",
    "notes",
    "notificationEmailAddresses",
    "preferredSingleSignOnMode",
    "replyUrls",
    "servicePrincipalNames",
    "tags",
];

const DEFAULT_ROLE: &str = "00000000-0000-0000-0000-000000000000";

pub(super) fn route(ctx: &Ctx<'_>, state: &mut State, segments: &[String]) -> Result<Reply, GraphError> {
    let (key, rest) = split_key(segments, "servicePrincipals")?;
    let method = ctx.method();
    match (key, rest) {
        (None, []) => match method {
            "GET" => list(ctx, state),
            "POST" => create(ctx, state),
            _ => Err(method_not_allowed()),
        },
        (Some(key), []) => match method {
            "GET" => get(ctx, state, &key),
            "PATCH" => update(ctx, state, &key),
            "DELETE" => delete(ctx, state, &key),
            _ => Err(method_not_allowed()),
        },
        (Some(key), [nav, tail @ ..]) if nav == "appRoleAssignedTo" || nav == "appRoleAssignments" => {
            let side = if nav == "appRoleAssignedTo" { Side::Resource } else { Side::Principal };
            let sp_id = find(ctx, state, &key)?.id.clone();
            match (tail, method) {
                ([], "GET") => list_grants(ctx, state, &sp_id, side),
                ([], "POST") => grant(ctx, state, &sp_id, side),
                ([id], "GET") => get_grant(ctx, state, &sp_id, side, id),
                ([id], "DELETE") => revoke(ctx, state, &sp_id, side, id),
                ([], _) | ([_], _) => Err(method_not_allowed()),
                ([_, segment, ..], _) => {
                    Err(GraphError::malformed(format!("Resource not found for the segment '{segment}'.")))
                }
            }
        }
        (_, [segment, ..]) => Err(GraphError::malformed(format!("Resource not found for the segment '{segment}'."))),
    }
}

fn find<'s>(ctx: &Ctx<'_>, state: &'s State, key: &Key) -> Result<&'s ServicePrincipal, GraphError> {
    let tenant = &state.tenants[ctx.tenant];
    match key {
        Key::Id(id) => tenant.sp(id, ctx.now_ms).ok_or_else(|| GraphError::not_found(id)),
        Key::AppId(app_id) => tenant.sp_by_app_id(app_id, ctx.now_ms).ok_or_else(|| GraphError::not_found(app_id)),
        Key::UniqueName(name) => Err(GraphError::not_found(name)),
    }
}

/// For writes: as [`find`], but a deleted principal is gone at once (the write path is authoritative).
fn find_live<'s>(ctx: &Ctx<'_>, state: &'s State, key: &Key) -> Result<&'s ServicePrincipal, GraphError> {
    let sp = find(ctx, state, key)?;
    if sp.gone_at_ms.is_some() {
        return Err(GraphError::not_found(&sp.id));
    }
    Ok(sp)
}

fn app_role_json(role: &AppRole) -> Value {
    json!({
        "allowedMemberTypes": ["Application"],
        "description": role.display_name,
        "displayName": role.display_name,
        "id": role.id,
        "isEnabled": true,
        "origin": "Application",
        "value": role.value,
    })
}

pub(super) fn to_json(sp: &ServicePrincipal) -> Map<String, Value> {
    let mut object = json!({
        "id": sp.id,
        "deletedDateTime": null,
        "accountEnabled": true,
        "alternativeNames": [],
        "appDisplayName": sp.display_name,
        "appDescription": null,
        "appId": sp.app_id,
        "applicationTemplateId": null,
        "appOwnerOrganizationId": sp.app_owner_organization_id,
        "appRoleAssignmentRequired": false,
        "description": null,
        "disabledByMicrosoftStatus": null,
        "displayName": sp.display_name,
        "homepage": null,
        "loginUrl": null,
        "logoutUrl": null,
        "notes": null,
        "notificationEmailAddresses": [],
        "preferredSingleSignOnMode": null,
        "preferredTokenSigningKeyThumbprint": null,
        "replyUrls": [],
        "servicePrincipalNames": [sp.app_id],
        "servicePrincipalType": "Application",
        "signInAudience": sp.sign_in_audience,
        "tags": [],
        "tokenEncryptionKeyId": null,
        "samlSingleSignOnSettings": null,
        "addIns": [],
        "appRoles": sp.app_roles.iter().map(app_role_json).collect::<Vec<_>>(),
        "info": {"logoUrl": null, "marketingUrl": null, "privacyStatementUrl": null, "supportUrl": null, "termsOfServiceUrl": null},
        "keyCredentials": [],
        "oauth2PermissionScopes": [],
        "passwordCredentials": [],
        "resourceSpecificApplicationPermissions": [],
        "verifiedPublisher": {"displayName": null, "verifiedPublisherId": null, "addedDateTime": null},
    });
    if let Value::Object(map) = &mut object {
        for (name, value) in &sp.props {
            map.insert(name.clone(), value.clone());
        }
        return std::mem::take(map);
    }
    Map::new()
}

fn render(ctx: &Ctx<'_>, sp: &ServicePrincipal, status: u16) -> Result<Reply, GraphError> {
    let (object, selected) = query::select(ctx, to_json(sp), "servicePrincipal")?;
    let context = match selected {
        Some(names) => format!("{}/$metadata#servicePrincipals({})/$entity", ctx.base(), names.join(",")),
        None => format!("{}/$metadata#servicePrincipals/$entity", ctx.base()),
    };
    Ok(entity(status, context, object))
}

fn get(ctx: &Ctx<'_>, state: &State, key: &Key) -> Result<Reply, GraphError> {
    ctx.require(READ)?;
    render(ctx, find(ctx, state, key)?, 200)
}

fn list(ctx: &Ctx<'_>, state: &State) -> Result<Reply, GraphError> {
    ctx.require(READ)?;
    let clauses = query::filter(ctx, &["appId", "displayName", "id", "servicePrincipalType"], "ServicePrincipal")?;
    let mut items = Vec::new();
    let mut selected = None;
    for sp in state.tenants[ctx.tenant].service_principals.iter().filter(|s| s.visible_at_ms <= ctx.now_ms) {
        let full = to_json(sp);
        if query::matches(&full, &clauses) {
            let (object, names) = query::select(ctx, full, "servicePrincipal")?;
            selected = names;
            items.push(Value::Object(object));
        }
    }
    let context = match selected {
        Some(names) => format!("{}/$metadata#servicePrincipals({})", ctx.base(), names.join(",")),
        None => format!("{}/$metadata#servicePrincipals", ctx.base()),
    };
    Listing { context, path: "/servicePrincipals".into() }.reply(ctx, items)
}

/// Validate the settable properties of a create/update body; returns the appId if the body names one.
fn apply(props: &mut Map<String, Value>, body: Map<String, Value>) -> Result<Option<String>, GraphError> {
    let mut app_id = None;
    for (name, value) in body {
        match name.as_str() {
            "@odata.type" => {
                if value.as_str() != Some("#microsoft.graph.servicePrincipal") {
                    return Err(GraphError::malformed(format!(
                        "Invalid '@odata.type' {value} for a service principal."
                    )));
                }
            }
            "appId" => match value.as_str() {
                Some(id) if ids::is_guid(id) => app_id = Some(id.to_string()),
                _ => return Err(GraphError::invalid_value("appId", "ServicePrincipal")),
            },
            "accountEnabled" | "appRoleAssignmentRequired" if !value.is_boolean() => {
                return Err(GraphError::invalid_value(&name, "ServicePrincipal"));
            }
            other if WRITABLE.contains(&other) => {
                props.insert(name, value);
            }
            "id" | "appOwnerOrganizationId" | "servicePrincipalType" | "appDisplayName" => {
                return Err(GraphError::bad_request(format!("Property '{name}' is read-only and cannot be set.")));
            }
            other => return Err(GraphError::unknown_property(other, "servicePrincipal")),
        }
    }
    Ok(app_id)
}

fn no_backing_application(app_id: &str) -> GraphError {
    GraphError::bad_request(format!(
        "The appId '{app_id}' of the service principal does not reference a valid application object."
    ))
    .detail("NoBackingApplicationObject", "appId")
}

/// Make the service principal for `app_id` in this tenant (its own app, or a multi-tenant app registered
/// in another tenant of the sim, which is how admin consent in a customer tenant works).
fn new_service_principal(
    ctx: &Ctx<'_>,
    state: &State,
    app_id: &str,
    props: Map<String, Value>,
) -> Result<ServicePrincipal, GraphError> {
    let app = state.application_for(ctx.tenant, app_id, ctx.now_ms).ok_or_else(|| no_backing_application(app_id))?;
    Ok(service_principal_for(state, app, props, ctx.visible_at()))
}

/// The service principal of `app` in a tenant (its own, or a customer tenant's after consent), with the app
/// roles the application defines, visible from `visible_at_ms`.
pub(crate) fn service_principal_for(
    state: &State,
    app: &crate::state::Application,
    props: Map<String, Value>,
    visible_at_ms: i64,
) -> ServicePrincipal {
    let app_roles = app
        .props
        .get("appRoles")
        .and_then(Value::as_array)
        .map(|roles| {
            roles
                .iter()
                .filter_map(|r| {
                    Some(AppRole {
                        id: r.get("id")?.as_str()?.to_string(),
                        value: r.get("value").and_then(Value::as_str).unwrap_or("").to_string(),
                        display_name: r.get("displayName").and_then(Value::as_str).unwrap_or("").to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    ServicePrincipal {
        id: ids::guid(),
        app_id: app.app_id.clone(),
        display_name: app.display_name.clone(),
        app_roles,
        app_owner_organization_id: state.home_tenant_of(&app.app_id).unwrap_or_default(),
        sign_in_audience: app.sign_in_audience.clone(),
        built_in: false,
        props,
        visible_at_ms,
        gone_at_ms: None,
    }
}

fn duplicate_sp() -> GraphError {
    GraphError::new(
        409,
        "Request_MultipleObjectsWithSameKeyValue",
        "Another object with the same value for property servicePrincipalNames already exists.",
    )
}

fn create(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply, GraphError> {
    ctx.require(WRITE)?;
    let body = ctx.body()?;
    let mut props = Map::new();
    let app_id = apply(&mut props, body)?.ok_or_else(|| GraphError::invalid_value("appId", "ServicePrincipal"))?;
    if state.tenants[ctx.tenant].sp_exists_for(&app_id) {
        return Err(duplicate_sp());
    }
    let sp = new_service_principal(ctx, state, &app_id, props)?;
    let reply = render_created(ctx, &sp);
    state.tenants[ctx.tenant].service_principals.push(sp);
    Ok(reply)
}

fn render_created(ctx: &Ctx<'_>, sp: &ServicePrincipal) -> Reply {
    entity(201, format!("{}/$metadata#servicePrincipals/$entity", ctx.base()), to_json(sp))
}

fn update(ctx: &Ctx<'_>, state: &mut State, key: &Key) -> Result<Reply, GraphError> {
    ctx.require(WRITE)?;
    let body = ctx.body()?;
    let upsert =
        ctx.header("prefer").is_some_and(|p| p.split(',').any(|v| v.trim().eq_ignore_ascii_case("create-if-missing")));
    let tenant = &state.tenants[ctx.tenant];
    let existing = match key {
        Key::Id(id) => tenant.sp(id, ctx.now_ms).filter(|s| s.gone_at_ms.is_none()).map(|s| s.id.clone()),
        // An upsert sees the principal as soon as it exists (the write path is authoritative).
        Key::AppId(app_id) if upsert => tenant
            .service_principals
            .iter()
            .find(|s| s.app_id.eq_ignore_ascii_case(app_id) && s.gone_at_ms.is_none())
            .map(|s| s.id.clone()),
        Key::AppId(app_id) => {
            tenant.sp_by_app_id(app_id, ctx.now_ms).filter(|s| s.gone_at_ms.is_none()).map(|s| s.id.clone())
        }
        Key::UniqueName(name) => return Err(GraphError::not_found(name)),
    };
    match (existing, key) {
        (Some(id), _) => {
            let tenant = &mut state.tenants[ctx.tenant];
            let Some(sp) = tenant.service_principals.iter_mut().find(|s| s.id == id) else {
                return Err(GraphError::not_found(&id));
            };
            let mut props = sp.props.clone();
            if let Some(app_id) = apply(&mut props, body)?
                && !app_id.eq_ignore_ascii_case(&sp.app_id)
            {
                return Err(GraphError::bad_request("Property 'appId' is read-only and cannot be set."));
            }
            sp.props = props;
            Ok(Reply::empty(204))
        }
        (None, Key::AppId(app_id)) if upsert => {
            let mut props = Map::new();
            if let Some(body_app_id) = apply(&mut props, body)?
                && !body_app_id.eq_ignore_ascii_case(app_id)
            {
                return Err(GraphError::invalid_value("appId", "ServicePrincipal"));
            }
            let sp = new_service_principal(ctx, state, app_id, props)?;
            let reply = render_created(ctx, &sp);
            state.tenants[ctx.tenant].service_principals.push(sp);
            Ok(reply)
        }
        (None, Key::Id(id) | Key::AppId(id) | Key::UniqueName(id)) => Err(GraphError::not_found(id)),
    }
}

fn delete(ctx: &Ctx<'_>, state: &mut State, key: &Key) -> Result<Reply, GraphError> {
    ctx.require(WRITE)?;
    let id = find_live(ctx, state, key)?.id.clone();
    state.tenants[ctx.tenant].delete_sp(&id, ctx.shared.knobs.deleted_at(ctx.now_ms));
    Ok(Reply::empty(204))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// `/servicePrincipals/{resource}/appRoleAssignedTo`
    Resource,
    /// `/servicePrincipals/{client}/appRoleAssignments`
    Principal,
}

impl Side {
    fn nav(self) -> &'static str {
        match self {
            Side::Resource => "appRoleAssignedTo",
            Side::Principal => "appRoleAssignments",
        }
    }

    fn owns(self, assignment: &AppRoleAssignment, sp_id: &str) -> bool {
        match self {
            Side::Resource => assignment.resource_id == sp_id,
            Side::Principal => assignment.principal_id == sp_id,
        }
    }
}

fn grant_json(tenant: &Tenant, a: &AppRoleAssignment) -> Map<String, Value> {
    let name = |id: &str| tenant.service_principals.iter().find(|s| s.id == id).map(|s| s.display_name.clone());
    let object = json!({
        "id": a.id,
        "deletedDateTime": null,
        "appRoleId": a.app_role_id,
        "createdDateTime": http::rfc3339(a.created),
        "principalDisplayName": name(&a.principal_id),
        "principalId": a.principal_id,
        "principalType": "ServicePrincipal",
        "resourceDisplayName": name(&a.resource_id),
        "resourceId": a.resource_id,
    });
    match object {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn list_grants(ctx: &Ctx<'_>, state: &State, sp_id: &str, side: Side) -> Result<Reply, GraphError> {
    ctx.require(GRANT_READ)?;
    let clauses = query::filter(ctx, &["principalId", "resourceId", "appRoleId"], "AppRoleAssignment")?;
    let tenant = &state.tenants[ctx.tenant];
    let items: Vec<Value> = tenant
        .app_role_assignments
        .iter()
        .filter(|a| side.owns(a, sp_id) && a.visible_at_ms <= ctx.now_ms)
        .map(|a| grant_json(tenant, a))
        .filter(|o| query::matches(o, &clauses))
        .map(Value::Object)
        .collect();
    let path = format!("/servicePrincipals/{sp_id}/{}", side.nav());
    let context = format!("{}/$metadata#servicePrincipals('{sp_id}')/{}", ctx.base(), side.nav());
    Listing { context, path }.reply(ctx, items)
}

fn get_grant(ctx: &Ctx<'_>, state: &State, sp_id: &str, side: Side, id: &str) -> Result<Reply, GraphError> {
    ctx.require(GRANT_READ)?;
    let tenant = &state.tenants[ctx.tenant];
    let a = tenant
        .app_role_assignments
        .iter()
        .find(|a| a.id == id && side.owns(a, sp_id) && a.visible_at_ms <= ctx.now_ms)
        .ok_or_else(|| GraphError::not_found(id))?;
    let context = format!("{}/$metadata#servicePrincipals('{sp_id}')/{}/$entity", ctx.base(), side.nav());
    Ok(entity(200, context, grant_json(tenant, a)))
}

fn guid_field(body: &Map<String, Value>, name: &str) -> Result<String, GraphError> {
    match body.get(name).and_then(Value::as_str) {
        Some(v) if ids::is_guid(v) => Ok(v.to_ascii_lowercase()),
        _ => Err(GraphError::invalid_value(name, "AppRoleAssignment")),
    }
}

fn grant(ctx: &Ctx<'_>, state: &mut State, sp_id: &str, side: Side) -> Result<Reply, GraphError> {
    ctx.require(GRANT_WRITE)?;
    let body = ctx.body()?;
    for name in body.keys() {
        match name.as_str() {
            "principalId" | "resourceId" | "appRoleId" | "@odata.type" | "principalType" => {}
            other => return Err(GraphError::unknown_property(other, "appRoleAssignment")),
        }
    }
    let principal_id = guid_field(&body, "principalId")?;
    let resource_id = guid_field(&body, "resourceId")?;
    let app_role_id = guid_field(&body, "appRoleId")?;
    match side {
        Side::Resource if !resource_id.eq_ignore_ascii_case(sp_id) => {
            return Err(GraphError::invalid_value("resourceId", "AppRoleAssignment"));
        }
        Side::Principal if !principal_id.eq_ignore_ascii_case(sp_id) => {
            return Err(GraphError::invalid_value("principalId", "AppRoleAssignment"));
        }
        _ => {}
    }
    let tenant = &state.tenants[ctx.tenant];
    // The other end of the grant must be replicated here: the directory answers "Not a valid reference update".
    let principal = tenant.sp(&principal_id, ctx.now_ms).ok_or_else(GraphError::not_a_valid_reference)?;
    let resource = tenant.sp(&resource_id, ctx.now_ms).ok_or_else(GraphError::not_a_valid_reference)?;
    let role_known = resource.app_roles.iter().any(|r| r.id.eq_ignore_ascii_case(&app_role_id))
        || (app_role_id == DEFAULT_ROLE && resource.app_roles.is_empty());
    if !role_known {
        return Err(GraphError::bad_request(format!(
            "Permission being assigned was not found on application '{}'.",
            resource.app_id
        )));
    }
    let duplicate = tenant.app_role_assignments.iter().any(|a| {
        a.principal_id == principal.id
            && a.resource_id == resource.id
            && a.app_role_id.eq_ignore_ascii_case(&app_role_id)
            && a.gone_at_ms.is_none()
    });
    if duplicate {
        return Err(GraphError::bad_request("Permission being assigned already exists on the object."));
    }
    let assignment = AppRoleAssignment {
        id: ids::opaque(),
        principal_id: principal.id.clone(),
        resource_id: resource.id.clone(),
        app_role_id,
        created: ctx.now,
        visible_at_ms: ctx.visible_at(),
        gone_at_ms: None,
    };
    let object = grant_json(tenant, &assignment);
    state.tenants[ctx.tenant].app_role_assignments.push(assignment);
    let context = format!("{}/$metadata#servicePrincipals('{sp_id}')/{}/$entity", ctx.base(), side.nav());
    Ok(entity(201, context, object))
}

fn revoke(ctx: &Ctx<'_>, state: &mut State, sp_id: &str, side: Side, id: &str) -> Result<Reply, GraphError> {
    ctx.require(GRANT_WRITE)?;
    let tenant = &mut state.tenants[ctx.tenant];
    let now_ms = ctx.now_ms;
    let Some(index) = tenant
        .app_role_assignments
        .iter()
        .position(|a| a.id == id && side.owns(a, sp_id) && a.visible_at_ms <= now_ms && a.gone_at_ms.is_none())
    else {
        return Err(GraphError::not_found(id));
    };
    match ctx.shared.knobs.deleted_at(now_ms) {
        None => drop(tenant.app_role_assignments.remove(index)),
        Some(at) => tenant.app_role_assignments[index].gone_at_ms = Some(at),
    }
    Ok(Reply::empty(204))
}
