//! `/applications`: create, get (by id and `(appId='...')`), list with `$filter`, PATCH (keyCredentials are
//! replaced as a whole), delete (cascades to service principals), addKey/removeKey with a proof JWT.

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
    "uniqueName",
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
        "uniqueName": null,
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
    let clauses = query::filter(ctx, &["displayName", "appId", "id", "signInAudience"], "Application")?;
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
            created: ctx.now,
            key_credentials: Vec::new(),
            props: Map::new(),
            visible_at_ms: 0,
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
        created: ctx.now,
        key_credentials: Vec::new(),
        props: Map::new(),
        visible_at_ms: ctx.visible_at(),
    };
    apply(ctx, &mut app, body)?;
    if app.display_name.is_empty() {
        return Err(GraphError::invalid_value("displayName", "Application"));
    }
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
    let id = find(ctx, state, key)?.id.clone();
    let tenant = &mut state.tenants[ctx.tenant];
    let Some(app) = tenant.app_mut(&id, ctx.now_ms) else {
        return Err(GraphError::not_found(&id));
    };
    let mut updated = app.clone();
    apply(ctx, &mut updated, body)?;
    *app = updated;
    Ok(Reply::empty(204))
}

fn delete(ctx: &Ctx<'_>, state: &mut State, key: &Key) -> Result<Reply, GraphError> {
    ctx.require(WRITE)?;
    let id = find(ctx, state, key)?.id.clone();
    state.tenants[ctx.tenant].delete_app(&id);
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
    let app = find(ctx, state, key)?;
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
    let app = find(ctx, state, key)?;
    if !may_roll_keys(ctx, app) {
        return Err(GraphError::denied());
    }
    let key_id = match body.get("keyId").and_then(Value::as_str) {
        Some(id) if ids::is_guid(id) => id.to_ascii_lowercase(),
        _ => return Err(GraphError::invalid_value("keyId", "KeyCredential")),
    };
    check_proof(ctx, app, body.get("proof").and_then(Value::as_str))?;
    if !app.key_credentials.iter().any(|k| k.key_id == key_id) {
        return Err(GraphError::not_found(&key_id));
    }
    let id = app.id.clone();
    if let Some(app) = state.tenants[ctx.tenant].app_mut(&id, ctx.now_ms) {
        app.key_credentials.retain(|k| k.key_id != key_id);
    }
    Ok(Reply::empty(204))
}
