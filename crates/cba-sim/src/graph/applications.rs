//! `/applications`: create, get (by id, `(appId='...')` and `(uniqueName='...')`), list with `$filter`, PATCH
//! (keyCredentials are replaced as a whole), the `Prefer: create-if-missing` upsert by `uniqueName`, delete
//! (cascades to service principals), addKey/removeKey with a proof JWT.

use serde_json::{Map, Value, json};

use super::query::{self, Listing};
use super::{Ctx, GraphError, Key, entity, key_credentials, method_not_allowed, split_key};
use crate::http::Reply;
use crate::ids;
use crate::jwt::ParsedJwt;
use crate::state::{Application, KeyCred, State};
use crate::wellknown::PROOF_AUDIENCE;

const READ: &[&str] =
    &["Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"];
const WRITE: &[&str] = &["Application.ReadWrite.All"];

const AUDIENCES: &[&str] =
    &["AzureADMyOrg", "AzureADMultipleOrgs", "AzureADandPersonalMicrosoftAccount", "PersonalMicrosoftAccount"];

/// Properties a client may set that the sim stores as sent.
const WRITABLE: &[&str] = &[
    "addIns",
    "api",
    "appRoles",
    "defaultRedirectUri",
    "description",
    "groupMembershipClaims",
    "identifierUris",
    "info",
    "isDeviceOnlyAuthSupported",
    "isFallbackPublicClient",
    "nativeAuthenticationApisEnabled",
    "notes",
    "optionalClaims",
    "parentalControlSettings",
    "publicClient",
    "requestSignatureVerification",
    "requiredResourceAccess",
    "serviceManagementReference",
    "servicePrincipalLockConfiguration",
    "spa",
    "tags",
    "tokenEncryptionKeyId",
    "web",
];

const READ_ONLY: &[&str] = &[
    "id",
    "appId",
    "createdDateTime",
    "deletedDateTime",
    "publisherDomain",
    "disabledByMicrosoftStatus",
    "applicationTemplateId",
    "certification",
    "verifiedPublisher",
    "samlMetadataUrl",
];

pub(super) fn route(ctx: &Ctx<'_>, state: &mut State, segments: &[String]) -> Result<Reply, GraphError> {
    let (key, rest) = split_key(segments, "applications")?;
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
        (Some(key), [action]) if action == "addKey" || action == "removeKey" => {
            if method != "POST" {
                return Err(method_not_allowed());
            }
            if action == "addKey" { add_key(ctx, state, &key) } else { remove_key(ctx, state, &key) }
        }
        (_, [segment, ..]) => Err(GraphError::malformed(format!("Resource not found for the segment '{segment}'."))),
    }
}

fn find<'s>(ctx: &Ctx<'_>, state: &'s State, key: &Key) -> Result<&'s Application, GraphError> {
    let tenant = &state.tenants[ctx.tenant];
    match key {
        Key::Id(id) => tenant.app(id, ctx.now_ms).ok_or_else(|| GraphError::not_found(id)),
        Key::AppId(app_id) => tenant.app_by_app_id(app_id, ctx.now_ms).ok_or_else(|| GraphError::not_found(app_id)),
        Key::UniqueName(name) => tenant
            .applications
            .iter()
            .find(|a| a.visible_at_ms <= ctx.now_ms && has_unique_name(a, name))
            .ok_or_else(|| GraphError::not_found(name)),
    }
}

fn has_unique_name(app: &Application, name: &str) -> bool {
    app.unique_name.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(name))
}

/// For writes: as [`find`], but a deleted app is gone at once (the write path is authoritative).
fn find_live<'s>(ctx: &Ctx<'_>, state: &'s State, key: &Key) -> Result<&'s Application, GraphError> {
    let app = find(ctx, state, key)?;
    if app.gone_at_ms.is_some() {
        return Err(GraphError::not_found(&app.id));
    }
    Ok(app)
}

/// 400 for a `uniqueName` another application holds. The shape is the directory's answer for other unique
/// properties (identifierUris); for uniqueName it is UNVERIFIED.
fn unique_name_conflict() -> GraphError {
    GraphError::bad_request("Another object with the same value for property uniqueName already exists.")
        .detail("ObjectConflict", "uniqueName")
}

fn check_unique_name(state: &State, tenant: usize, app: &Application) -> Result<(), GraphError> {
    match &app.unique_name {
        Some(name) if state.tenants[tenant].unique_name_taken(name, &app.id) => Err(unique_name_conflict()),
        _ => Ok(()),
    }
}

/// The full v1.0 `application` resource, defaults overlaid with what the client set.
pub(super) fn to_json(app: &Application, publisher_domain: &str, with_keys: bool) -> Map<String, Value> {
    let mut object = json!({
        "id": app.id,
        "deletedDateTime": null,
        "appId": app.app_id,
        "applicationTemplateId": null,
        "disabledByMicrosoftStatus": null,
        "createdDateTime": crate::http::rfc3339(app.created),
        "displayName": app.display_name,
        "description": null,
        "groupMembershipClaims": null,
        "identifierUris": [],
        "isDeviceOnlyAuthSupported": null,
        "isFallbackPublicClient": null,
        "nativeAuthenticationApisEnabled": null,
        "notes": null,
        "publisherDomain": publisher_domain,
        "serviceManagementReference": null,
        "signInAudience": app.sign_in_audience,
        "tags": [],
        "tokenEncryptionKeyId": null,
        "uniqueName": app.unique_name,
        "samlMetadataUrl": null,
        "defaultRedirectUri": null,
        "certification": null,
        "optionalClaims": null,
        "servicePrincipalLockConfiguration": null,
        "requestSignatureVerification": null,
        "addIns": [],
        "api": {
            "acceptMappedClaims": null,
            "knownClientApplications": [],
            "requestedAccessTokenVersion": null,
            "oauth2PermissionScopes": [],
            "preAuthorizedApplications": []
        },
        "appRoles": [],
        "info": {"logoUrl": null, "marketingUrl": null, "privacyStatementUrl": null, "supportUrl": null, "termsOfServiceUrl": null},
        "keyCredentials": app.key_credentials.iter().map(|k| key_credentials::to_json(k, with_keys)).collect::<Vec<_>>(),
        "parentalControlSettings": {"countriesBlockedForMinors": [], "legalAgeGroupRule": "Allow"},
        "passwordCredentials": [],
        "publicClient": {"redirectUris": []},
        "requiredResourceAccess": [],
        "verifiedPublisher": {"displayName": null, "verifiedPublisherId": null, "addedDateTime": null},
        "web": {
            "homePageUrl": null,
            "logoutUrl": null,
            "redirectUris": [],
            "implicitGrantSettings": {"enableAccessTokenIssuance": false, "enableIdTokenIssuance": false},
            "redirectUriSettings": []
        },
        "spa": {"redirectUris": []}
    });
    if let Value::Object(map) = &mut object {
        for (name, value) in &app.props {
            map.insert(name.clone(), value.clone());
        }
        return std::mem::take(map);
    }
    Map::new()
}

fn render(ctx: &Ctx<'_>, state: &State, app: &Application, status: u16) -> Result<Reply, GraphError> {
    let domain = &state.tenants[ctx.tenant].domain;
    let with_keys = query::selects(ctx, "keyCredentials");
    let (object, selected) = query::select(ctx, to_json(app, domain, with_keys), "application")?;
    let context = match selected {
        Some(names) => format!("{}/$metadata#applications({})/$entity", ctx.base(), names.join(",")),
        None => format!("{}/$metadata#applications/$entity", ctx.base()),
    };
    Ok(entity(status, context, object))
}

fn get(ctx: &Ctx<'_>, state: &State, key: &Key) -> Result<Reply, GraphError> {
    ctx.require(READ)?;
    let app = find(ctx, state, key)?;
    render(ctx, state, app, 200)
}

fn list(ctx: &Ctx<'_>, state: &State) -> Result<Reply, GraphError> {
    ctx.require(READ)?;
    let clauses = query::filter(ctx, &["displayName", "appId", "id", "signInAudience", "uniqueName"], "Application")?;
    let tenant = &state.tenants[ctx.tenant];
    let with_keys = query::selects(ctx, "keyCredentials");
    let mut items = Vec::new();
    let mut selected = None;
    for app in tenant.applications.iter().filter(|a| a.visible_at_ms <= ctx.now_ms) {
        let full = to_json(app, &tenant.domain, with_keys);
        if !query::matches(&full, &clauses) {
            continue;
        }
        let (object, names) = query::select(ctx, full, "application")?;
        selected = names;
        items.push(Value::Object(object));
    }
    if items.is_empty() {
        // Still validate $select against the type.
        let probe = Application {
            id: String::new(),
            app_id: String::new(),
            display_name: String::new(),
            sign_in_audience: String::new(),
            unique_name: None,
            created: ctx.now,
            key_credentials: Vec::new(),
            props: Map::new(),
            visible_at_ms: 0,
            gone_at_ms: None,
        };
        selected = query::select(ctx, to_json(&probe, "", false), "application")?.1;
    }
    let context = match selected {
        Some(names) => format!("{}/$metadata#applications({})", ctx.base(), names.join(",")),
        None => format!("{}/$metadata#applications", ctx.base()),
    };
    Listing { context, path: "/applications".into() }.reply(ctx, items)
}

fn validate_writable(name: &str, value: &Value) -> Result<(), GraphError> {
    let invalid = || GraphError::invalid_value(name, "Application");
    let strings = |v: &Value| v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
    match name {
        "isFallbackPublicClient" | "isDeviceOnlyAuthSupported" if !(value.is_boolean() || value.is_null()) => {
            return Err(invalid());
        }
        "tags" | "identifierUris" if !strings(value) => return Err(invalid()),
        "requiredResourceAccess" => {
            let Some(items) = value.as_array() else { return Err(invalid()) };
            for item in items {
                let Some(object) = item.as_object() else { return Err(invalid()) };
                for field in object.keys() {
                    if field != "resourceAppId" && field != "resourceAccess" {
                        return Err(GraphError::unknown_property(field, "requiredResourceAccess"));
                    }
                }
                if !object.get("resourceAppId").and_then(Value::as_str).is_some_and(ids::is_guid) {
                    return Err(invalid());
                }
                let Some(access) = object.get("resourceAccess").and_then(Value::as_array) else {
                    return Err(invalid());
                };
                for entry in access {
                    let Some(entry) = entry.as_object() else { return Err(invalid()) };
                    for field in entry.keys() {
                        if field != "id" && field != "type" {
                            return Err(GraphError::unknown_property(field, "resourceAccess"));
                        }
                    }
                    let id_ok = entry.get("id").and_then(Value::as_str).is_some_and(ids::is_guid);
                    let type_ok = matches!(entry.get("type").and_then(Value::as_str), Some("Role" | "Scope"));
                    if !id_ok || !type_ok {
                        return Err(invalid());
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Apply a create or PATCH body to `app`.
fn apply(ctx: &Ctx<'_>, app: &mut Application, body: Map<String, Value>) -> Result<(), GraphError> {
    for (name, value) in body {
        match name.as_str() {
            "@odata.type" => {
                if value.as_str() != Some("#microsoft.graph.application") {
                    return Err(GraphError::malformed(format!("Invalid '@odata.type' {value} for an application.")));
                }
            }
            "displayName" => match value.as_str() {
                Some(s) if !s.trim().is_empty() && s.chars().count() <= 256 => app.display_name = s.to_string(),
                _ => return Err(GraphError::invalid_value("displayName", "Application")),
            },
            "signInAudience" => match value.as_str() {
                Some(s) if AUDIENCES.contains(&s) => app.sign_in_audience = s.to_string(),
                _ => return Err(GraphError::invalid_value("signInAudience", "Application")),
            },
            "keyCredentials" => {
                app.key_credentials = key_credentials::parse_all(&value, ctx.visible_at(), &app.key_credentials)?;
            }
            // Settable while null, immutable once set (application-update.md).
            "uniqueName" => match (&app.unique_name, &value) {
                (None, Value::Null) => {}
                (None, Value::String(name)) if !name.trim().is_empty() && name.chars().count() <= 256 => {
                    app.unique_name = Some(name.clone());
                }
                (None, _) => return Err(GraphError::invalid_value("uniqueName", "Application")),
                (Some(current), Value::String(name)) if current == name => {}
                (Some(_), _) => {
                    return Err(GraphError::bad_request(
                        "Property 'uniqueName' can be set only while it is null; it is immutable once set.",
                    ));
                }
            },
            "passwordCredentials" => {
                if !(value.is_null() || value.as_array().is_some_and(Vec::is_empty)) {
                    return Err(GraphError::bad_request(
                        "Adding passwordCredentials with create or update is not supported; use the addPassword method.",
                    ));
                }
            }
            other if WRITABLE.contains(&other) => {
                validate_writable(other, &value)?;
                app.props.insert(name, value);
            }
            other if READ_ONLY.contains(&other) => {
                return Err(GraphError::bad_request(format!("Property '{other}' is read-only and cannot be set.")));
            }
            other => return Err(GraphError::unknown_property(other, "application")),
        }
    }
    Ok(())
}

fn create(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply, GraphError> {
    ctx.require(WRITE)?;
    let body = ctx.body()?;
    let mut app = Application {
        id: ids::guid(),
        app_id: ids::guid(),
        display_name: String::new(),
        sign_in_audience: "AzureADandPersonalMicrosoftAccount".into(),
        unique_name: None,
        created: ctx.now,
        key_credentials: Vec::new(),
        props: Map::new(),
        visible_at_ms: ctx.visible_at(),
        gone_at_ms: None,
    };
    apply(ctx, &mut app, body)?;
    if app.display_name.is_empty() {
        return Err(GraphError::invalid_value("displayName", "Application"));
    }
    check_unique_name(state, ctx.tenant, &app)?;
    let reply = render_created(ctx, state, &app)?;
    state.tenants[ctx.tenant].applications.push(app);
    Ok(reply)
}

fn render_created(ctx: &Ctx<'_>, state: &State, app: &Application) -> Result<Reply, GraphError> {
    let domain = &state.tenants[ctx.tenant].domain;
    Ok(entity(201, format!("{}/$metadata#applications/$entity", ctx.base()), to_json(app, domain, false)))
}

fn update(ctx: &Ctx<'_>, state: &mut State, key: &Key) -> Result<Reply, GraphError> {
    ctx.require(WRITE)?;
    let body = ctx.body()?;
    if let Key::UniqueName(name) = key {
        return upsert(ctx, state, name, body);
    }
    let id = find_live(ctx, state, key)?.id.clone();
    store_update(ctx, state, &id, body)
}

/// Apply a PATCH body to the app with object id `id` (replicated or not) and store it.
fn store_update(ctx: &Ctx<'_>, state: &mut State, id: &str, body: Map<String, Value>) -> Result<Reply, GraphError> {
    let Some(mut updated) = state.tenants[ctx.tenant].applications.iter().find(|a| a.id == id).cloned() else {
        return Err(GraphError::not_found(id));
    };
    apply(ctx, &mut updated, body)?;
    check_unique_name(state, ctx.tenant, &updated)?;
    if let Some(app) = state.tenants[ctx.tenant].applications.iter_mut().find(|a| a.id == id) {
        *app = updated;
    }
    Ok(Reply::empty(204))
}

/// `PATCH /applications(uniqueName='…')` (application-upsert.md): with `Prefer: create-if-missing`, 201 + the
/// new object when no app holds the key, else 204 after updating it; without the header an update, 404 when
/// missing. The upsert sees an app as soon as it exists (the write path is authoritative), so a retry after a
/// lost answer updates the app the first attempt made instead of making a second one.
fn upsert(ctx: &Ctx<'_>, state: &mut State, name: &str, body: Map<String, Value>) -> Result<Reply, GraphError> {
    let create =
        ctx.header("prefer").is_some_and(|p| p.split(',').any(|v| v.trim().eq_ignore_ascii_case("create-if-missing")));
    let existing = state.tenants[ctx.tenant]
        .applications
        .iter()
        .find(|a| a.gone_at_ms.is_none() && has_unique_name(a, name) && (create || a.visible_at_ms <= ctx.now_ms))
        .map(|a| a.id.clone());
    match existing {
        Some(id) => store_update(ctx, state, &id, body),
        None if create => {
            let mut app = Application {
                id: ids::guid(),
                app_id: ids::guid(),
                display_name: String::new(),
                sign_in_audience: "AzureADandPersonalMicrosoftAccount".into(),
                unique_name: Some(name.to_string()),
                created: ctx.now,
                key_credentials: Vec::new(),
                props: Map::new(),
                visible_at_ms: ctx.visible_at(),
                gone_at_ms: None,
            };
            apply(ctx, &mut app, body)?;
            if app.display_name.is_empty() {
                return Err(GraphError::invalid_value("displayName", "Application"));
            }
            let reply = render_created(ctx, state, &app)?;
            state.tenants[ctx.tenant].applications.push(app);
            Ok(reply)
        }
        None => Err(GraphError::not_found(name)),
    }
}

fn delete(ctx: &Ctx<'_>, state: &mut State, key: &Key) -> Result<Reply, GraphError> {
    ctx.require(WRITE)?;
    let id = find_live(ctx, state, key)?.id.clone();
    state.tenants[ctx.tenant].delete_app(&id, ctx.shared.knobs.deleted_at(ctx.now_ms));
    Ok(Reply::empty(204))
}

/// Who may call addKey/removeKey: an admin with Application.ReadWrite.All, or the app itself (self-rotation).
fn may_roll_keys(ctx: &Ctx<'_>, app: &Application) -> bool {
    ctx.claims.has("Application.ReadWrite.All")
        || ctx.claims.has("Directory.ReadWrite.All")
        || (ctx.claims.is_app_only() && ctx.claims.appid.eq_ignore_ascii_case(&app.app_id))
}

/// Validate the proof of possession (application-addkey.md): signed by one of the app's currently valid
/// certificates, `aud` 00000002-0000-0000-c000-000000000000, `iss` the app's object id, at most 10 minutes long.
fn check_proof(ctx: &Ctx<'_>, app: &Application, proof: Option<&str>) -> Result<(), GraphError> {
    let valid: Vec<KeyCred> = app
        .key_credentials
        .iter()
        .filter(|k| {
            k.visible_at_ms <= ctx.now_ms
                && k.start <= ctx.now
                && ctx.now <= k.end
                && k.certificate.is_valid_at(ctx.now)
        })
        .cloned()
        .collect();
    if valid.is_empty() {
        return Err(GraphError::bad_request(
            "The application has no valid certificate credential to prove possession with; add the first certificate with Update application (PATCH keyCredentials) instead.",
        ));
    }
    let Some(proof) = proof.filter(|p| !p.is_empty()) else {
        return Err(GraphError::denied());
    };
    let rejected = || GraphError::new(401, "Authentication_MissingOrMalformed", "Access Token missing or malformed.");
    let jwt = ParsedJwt::parse(proof).map_err(|_| rejected())?;
    let key = jwt.find_key(&valid).ok_or_else(rejected)?;
    if !jwt.verify_with(&key.certificate) {
        return Err(rejected());
    }
    if jwt.claim_str("aud") != Some(PROOF_AUDIENCE)
        || !jwt.claim_str("iss").is_some_and(|iss| iss.eq_ignore_ascii_case(&app.id))
    {
        return Err(rejected());
    }
    let now = ctx.now.unix_timestamp();
    let skew = ctx.shared.knobs.clock_skew_secs;
    let (Some(nbf), Some(exp)) = (jwt.claim_time("nbf"), jwt.claim_time("exp")) else {
        return Err(rejected());
    };
    if nbf > now.saturating_add(skew) || exp.saturating_add(skew) < now || exp.saturating_sub(nbf) > 600 || exp <= nbf {
        return Err(rejected());
    }
    Ok(())
}

fn add_key(ctx: &Ctx<'_>, state: &mut State, key: &Key) -> Result<Reply, GraphError> {
    let body = ctx.body()?;
    for name in body.keys() {
        if !matches!(name.as_str(), "keyCredential" | "passwordCredential" | "proof") {
            return Err(GraphError::unknown_property(name, "addKey"));
        }
    }
    let app = find_live(ctx, state, key)?;
    if !may_roll_keys(ctx, app) {
        return Err(GraphError::denied());
    }
    if !body.get("passwordCredential").is_none_or(Value::is_null) {
        return Err(GraphError::bad_request("passwordCredential must be null for an AsymmetricX509Cert key."));
    }
    let new_key = key_credentials::parse(body.get("keyCredential").unwrap_or(&Value::Null), ctx.visible_at())?;
    check_proof(ctx, app, body.get("proof").and_then(Value::as_str))?;
    if app.key_credentials.iter().any(|k| k.key_id == new_key.key_id) {
        return Err(GraphError::bad_request(format!("Key credential keyId '{}' already exists.", new_key.key_id)));
    }
    let id = app.id.clone();
    let mut object = match key_credentials::to_json(&new_key, false) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    object.remove("key");
    object.insert("key".into(), Value::Null);
    if let Some(app) = state.tenants[ctx.tenant].app_mut(&id, ctx.now_ms) {
        app.key_credentials.push(new_key);
    }
    Ok(entity(200, format!("{}/$metadata#microsoft.graph.keyCredential", ctx.base()), object))
}

fn remove_key(ctx: &Ctx<'_>, state: &mut State, key: &Key) -> Result<Reply, GraphError> {
    let body = ctx.body()?;
    for name in body.keys() {
        if !matches!(name.as_str(), "keyId" | "proof") {
            return Err(GraphError::unknown_property(name, "removeKey"));
        }
    }
    let app = find_live(ctx, state, key)?;
    if !may_roll_keys(ctx, app) {
        return Err(GraphError::denied());
    }
    let key_id = match body.get("keyId").and_then(Value::as_str) {
        Some(id) if ids::is_guid(id) => id.to_ascii_lowercase(),
        _ => return Err(GraphError::invalid_value("keyId", "KeyCredential")),
    };
    check_proof(ctx, app, body.get("proof").and_then(Value::as_str))?;
    if !app.key_credentials.iter().any(|k| k.key_id == key_id && k.gone_at_ms.is_none()) {
        return Err(GraphError::not_found(&key_id));
    }
    let id = app.id.clone();
    let gone_at = ctx.shared.knobs.deleted_at(ctx.now_ms);
    if let Some(app) = state.tenants[ctx.tenant].app_mut(&id, ctx.now_ms) {
        match gone_at {
            None => app.key_credentials.retain(|k| k.key_id != key_id),
            // Reads and the token endpoint keep accepting the key until the removal replicates.
            Some(at) => {
                app.key_credentials.iter_mut().filter(|k| k.key_id == key_id).for_each(|k| k.gone_at_ms = Some(at))
            }
        }
    }
    Ok(Reply::empty(204))
}
