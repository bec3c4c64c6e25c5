//! `/roleManagement/directory`: role assignments (create, list with `$filter=principalId eq '...'`, get,
//! delete) and the built-in role definitions.

use serde_json::{Map, Value, json};

use super::query::{self, Listing};
use super::{Ctx, GraphError, entity, method_not_allowed};
use crate::config::DuplicateRoleAssignment;
use crate::http::Reply;
use crate::ids;
use crate::state::{RoleAssignment, State};
use crate::wellknown::{self, ROLE_DEFINITIONS};

const READ: &[&str] = &[
    "RoleManagement.Read.Directory",
    "RoleManagement.ReadWrite.Directory",
    "RoleManagement.Read.All",
    "Directory.Read.All",
];
const WRITE: &[&str] = &["RoleManagement.ReadWrite.Directory"];

pub(super) fn route(ctx: &Ctx<'_>, state: &mut State, segments: &[String]) -> Result<Reply, GraphError> {
    let method = ctx.method();
    match segments {
        [_, directory, set, rest @ ..] if directory == "directory" && set == "roleAssignments" => {
            match (rest, method) {
                ([], "GET") => list(ctx, state),
                ([], "POST") => create(ctx, state),
                ([id], "GET") => get(ctx, state, id),
                ([id], "DELETE") => delete(ctx, state, id),
                ([] | [_], _) => Err(method_not_allowed()),
                ([_, segment, ..], _) => {
                    Err(GraphError::malformed(format!("Resource not found for the segment '{segment}'.")))
                }
            }
        }
        [_, directory, set, rest @ ..] if directory == "directory" && set == "roleDefinitions" => {
            match (rest, method) {
                ([], "GET") => definitions(ctx),
                ([id], "GET") => definition(ctx, id),
                ([] | [_], _) => Err(method_not_allowed()),
                ([_, segment, ..], _) => {
                    Err(GraphError::malformed(format!("Resource not found for the segment '{segment}'.")))
                }
            }
        }
        [_] => Err(GraphError::malformed("Resource not found for the segment 'roleManagement'.")),
        [_, segment, ..] if segment != "directory" => {
            Err(GraphError::malformed(format!("Resource not found for the segment '{segment}'.")))
        }
        [_, _, segment, ..] => Err(GraphError::malformed(format!("Resource not found for the segment '{segment}'."))),
        _ => Err(GraphError::malformed("Resource not found for the segment 'directory'.")),
    }
}

fn to_json(r: &RoleAssignment) -> Map<String, Value> {
    match json!({
        "id": r.id,
        "principalId": r.principal_id,
        "directoryScopeId": r.directory_scope_id,
        "roleDefinitionId": r.role_definition_id,
    }) {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn list(ctx: &Ctx<'_>, state: &State) -> Result<Reply, GraphError> {
    ctx.require(READ)?;
    let clauses =
        query::filter(ctx, &["principalId", "roleDefinitionId", "directoryScopeId", "id"], "UnifiedRoleAssignment")?;
    let items: Vec<Value> = state.tenants[ctx.tenant]
        .role_assignments
        .iter()
        .filter(|r| r.visible_at_ms <= ctx.now_ms)
        .map(to_json)
        .filter(|o| query::matches(o, &clauses))
        .map(Value::Object)
        .collect();
    let context = format!("{}/$metadata#roleManagement/directory/roleAssignments", ctx.base());
    Listing { context, path: "/roleManagement/directory/roleAssignments".into() }.reply(ctx, items)
}

fn get(ctx: &Ctx<'_>, state: &State, id: &str) -> Result<Reply, GraphError> {
    ctx.require(READ)?;
    let r = state.tenants[ctx.tenant]
        .role_assignments
        .iter()
        .find(|r| r.id == id && r.visible_at_ms <= ctx.now_ms)
        .ok_or_else(|| GraphError::not_found(id))?;
    let context = format!("{}/$metadata#roleManagement/directory/roleAssignments/$entity", ctx.base());
    Ok(entity(200, context, to_json(r)))
}

fn create(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply, GraphError> {
    ctx.require(WRITE)?;
    let body = ctx.body()?;
    let invalid = |name: &str| GraphError::invalid_value(name, "UnifiedRoleAssignment");
    for (name, value) in &body {
        match name.as_str() {
            "@odata.type" => {
                if value.as_str() != Some("#microsoft.graph.unifiedRoleAssignment") {
                    return Err(GraphError::malformed(format!("Invalid '@odata.type' {value} for a role assignment.")));
                }
            }
            "roleDefinitionId" | "principalId" | "directoryScopeId" => {}
            "appScopeId" => {
                return Err(GraphError::bad_request(
                    "cba-sim supports directoryScopeId only (appScopeId is not simulated).",
                ));
            }
            other => return Err(GraphError::unknown_property(other, "unifiedRoleAssignment")),
        }
    }
    let role = body.get("roleDefinitionId").and_then(Value::as_str).ok_or_else(|| invalid("roleDefinitionId"))?;
    let principal_id = body.get("principalId").and_then(Value::as_str).ok_or_else(|| invalid("principalId"))?;
    let scope = body
        .get("directoryScopeId")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::bad_request("Either directoryScopeId or appScopeId must be specified."))?;
    if !scope.starts_with('/') {
        return Err(invalid("directoryScopeId"));
    }
    if !ids::is_guid(principal_id) {
        return Err(invalid("principalId"));
    }
    // The role definition must exist (it accepts the template id); unknown ids are a 404, like any missing object.
    if !ids::is_guid(role) || wellknown::role_definition(role).is_none() {
        return Err(GraphError::not_found(role));
    }
    let tenant = &state.tenants[ctx.tenant];
    let principal = tenant.sp(principal_id, ctx.now_ms).map(|s| s.id.clone());
    let principal = match principal {
        Some(id) => id,
        None if principal_id.eq_ignore_ascii_case(&tenant.admin_id) => tenant.admin_id.clone(),
        None => return Err(GraphError::not_found(principal_id).with_status(400, "Request_BadRequest")),
    };
    let role = role.to_ascii_lowercase();
    let duplicate = tenant.role_assignments.iter().any(|r| {
        r.principal_id == principal
            && r.role_definition_id == role
            && r.directory_scope_id == scope
            && r.gone_at_ms.is_none()
    });
    if duplicate {
        let message =
            "A conflicting object with one or more of the specified property values is present in the directory.";
        return Err(match ctx.shared.knobs.duplicate_role_assignment {
            DuplicateRoleAssignment::BadRequest => GraphError::bad_request(message),
            DuplicateRoleAssignment::Conflict => {
                GraphError::new(409, "Request_MultipleObjectsWithSameKeyValue", message)
            }
        });
    }
    let assignment = RoleAssignment {
        id: format!("{}-1", ids::opaque()),
        role_definition_id: role,
        principal_id: principal,
        directory_scope_id: scope.to_string(),
        visible_at_ms: ctx.visible_at(),
        gone_at_ms: None,
    };
    let object = to_json(&assignment);
    state.tenants[ctx.tenant].role_assignments.push(assignment);
    let context = format!("{}/$metadata#roleManagement/directory/roleAssignments/$entity", ctx.base());
    Ok(entity(201, context, object))
}

fn delete(ctx: &Ctx<'_>, state: &mut State, id: &str) -> Result<Reply, GraphError> {
    ctx.require(WRITE)?;
    let now_ms = ctx.now_ms;
    let tenant = &mut state.tenants[ctx.tenant];
    let Some(index) =
        tenant.role_assignments.iter().position(|r| r.id == id && r.visible_at_ms <= now_ms && r.gone_at_ms.is_none())
    else {
        return Err(GraphError::not_found(id));
    };
    match ctx.shared.knobs.deleted_at(now_ms) {
        None => drop(tenant.role_assignments.remove(index)),
        Some(at) => tenant.role_assignments[index].gone_at_ms = Some(at),
    }
    Ok(Reply::empty(204))
}

fn definition_json(id: &str, name: &str) -> Map<String, Value> {
    match json!({
        "id": id,
        "templateId": id,
        "displayName": name,
        "description": format!("Built-in role: {name}."),
        "isBuiltIn": true,
        "isEnabled": true,
        "resourceScopes": ["/"],
        "rolePermissions": [],
        "version": "1",
    }) {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn definitions(ctx: &Ctx<'_>) -> Result<Reply, GraphError> {
    ctx.require(READ)?;
    let clauses = query::filter(ctx, &["displayName", "id", "templateId"], "UnifiedRoleDefinition")?;
    let items = ROLE_DEFINITIONS
        .iter()
        .map(|(id, name)| definition_json(id, name))
        .filter(|o| query::matches(o, &clauses))
        .map(Value::Object)
        .collect();
    let context = format!("{}/$metadata#roleManagement/directory/roleDefinitions", ctx.base());
    Listing { context, path: "/roleManagement/directory/roleDefinitions".into() }.reply(ctx, items)
}

fn definition(ctx: &Ctx<'_>, id: &str) -> Result<Reply, GraphError> {
    ctx.require(READ)?;
    let name = wellknown::role_definition(id).ok_or_else(|| GraphError::not_found(id))?;
    let context = format!("{}/$metadata#roleManagement/directory/roleDefinitions/$entity", ctx.base());
    Ok(entity(200, context, definition_json(&id.to_ascii_lowercase(), name)))
}
