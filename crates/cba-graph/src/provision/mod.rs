//! The idempotent provisioning steps behind `cba setup`, `cba status`, `cba cert rotate` and `cba teardown`.
//!
//! Setup ([`plan`], [`apply`]) in the numbering:
//! 3. look up the Exchange Online service principal and the app by name, concurrently;
//! 4. create the app (single tenant, Exchange.ManageAsApp only, the certificate in the same POST), or adopt
//!    the one app of that name and register the certificate on it if its thumbprint is missing;
//! 5. the service principal (upsert);
//! 6. ∥ 7. the Exchange.ManageAsApp grant and the directory role assignment(s), concurrently.
//!
//! Critical path on a fresh tenant: look-ups → create app → upsert principal → (grant ∥ roles): 4 round
//! trips and 5 + (number of roles) requests. Nothing is listed that cannot exist: a principal this run
//! created cannot hold grants or roles yet, so those lists are skipped. A rerun lists before it creates,
//! and "already exists" answers count as success, so a rerun after a crash at any point converges without
//! duplicates.

mod rotate;
mod status;
mod teardown;
mod tenant;

use std::fmt;

use futures::future::try_join_all;
use serde::Serialize;

use crate::api::AppKey;
use crate::model::{
    AppRoleAssignment, Application, Created, KeyCredential, NewAppRoleAssignment, NewApplication, RoleAssignment,
    ServicePrincipal,
};
use crate::wellknown::{self, EXCHANGE_APP_ID, EXCHANGE_MANAGE_AS_APP_ROLE_ID, Role};
use crate::{Error, GraphClient, Replication};

pub use rotate::{KeyChange, add_key_with_proof, remove_key_with_proof, replace_keys_patch};
pub use status::{RegisteredCertificate, StatusReport, StatusRequest, status};
pub use teardown::{TeardownOutcome, teardown, teardown_with};
pub use tenant::{TenantOutcome, TenantRemoval, TenantState, onboard_tenant, remove_from_tenant, tenant_state};

/// One provisioning step, as reported in progress events and outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Looking up the Exchange Online service principal and the app (never created).
    Lookup,
    /// The application registration.
    Application,
    /// The certificate on the application.
    Certificate,
    /// Switching an existing app's `signInAudience` to multi-tenant (`AzureADMultipleOrgs`).
    SignInAudience,
    /// The service principal.
    ServicePrincipal,
    /// The Exchange.ManageAsApp grant (admin consent).
    Grant,
    /// A directory role assignment; `role` is the role's name (or template id when not a known role).
    RoleAssignment {
        /// The role.
        role: String,
    },
}

impl Step {
    fn role(role: &Role) -> Step {
        Step::RoleAssignment { role: role.name.to_string() }
    }

    fn rank(&self) -> u8 {
        match self {
            Step::Lookup => 0,
            Step::Application => 1,
            Step::Certificate | Step::SignInAudience => 2,
            Step::ServicePrincipal => 3,
            Step::Grant => 4,
            Step::RoleAssignment { .. } => 5,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Lookup => f.write_str("look-up"),
            Step::Application => f.write_str("application"),
            Step::Certificate => f.write_str("certificate registration"),
            Step::SignInAudience => f.write_str("multi-tenant sign-in (signInAudience AzureADMultipleOrgs)"),
            Step::ServicePrincipal => f.write_str("service principal"),
            Step::Grant => f.write_str("Exchange.ManageAsApp grant"),
            Step::RoleAssignment { role } => write!(f, "{role} role assignment"),
        }
    }
}

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Made (or registered) now.
    Created,
    /// Already there; left as it was.
    Unchanged,
    /// Deleted now (teardown).
    Removed,
    /// Already absent (teardown).
    AlreadyGone,
}

/// Progress, for a CLI's step lines. Retry waits are reported separately, through
/// [`GraphClientBuilder::on_retry`](crate::GraphClientBuilder::on_retry).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A step begins.
    Started(Step),
    /// A step ended; `id` is the object's id (app object id, principal id, grant or assignment id).
    Finished {
        /// The step.
        step: Step,
        /// What it did.
        change: Change,
        /// The object concerned.
        id: String,
    },
}

/// The ids of an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppInfo {
    /// Object id.
    pub object_id: String,
    /// Client id.
    pub app_id: String,
    /// Display name.
    pub display_name: String,
}

impl From<&Application> for AppInfo {
    fn from(app: &Application) -> AppInfo {
        AppInfo { object_id: app.id.clone(), app_id: app.app_id.clone(), display_name: app.display_name.clone() }
    }
}

/// Which application: by object id, client id or display name (which must match exactly one app).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppRef {
    /// Object id.
    ObjectId(String),
    /// Client id.
    AppId(String),
    /// Display name.
    Name(String),
}

impl fmt::Display for AppRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppRef::ObjectId(id) => write!(f, "app object {id}"),
            AppRef::AppId(id) => write!(f, "appId {id}"),
            AppRef::Name(name) => write!(f, "app {name:?}"),
        }
    }
}

/// What `cba setup` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupRequest {
    /// The app's display name (the key for idempotency: at most one app may have it).
    pub display_name: String,
    /// The certificate, with `key` (base64 DER) set.
    pub key_credential: KeyCredential,
    /// The certificate's SHA-1 thumbprint, hex, to recognise it among the app's credentials.
    pub thumbprint_sha1: String,
    /// Directory roles to assign (default: Exchange Administrator).
    pub roles: Vec<Role>,
    /// `signInAudience` for a new app (default `AzureADMyOrg`). [`MULTI_TENANT`](wellknown::MULTI_TENANT)
    /// also switches an existing app (a PATCH, reported as [`Step::SignInAudience`]); a single-tenant request
    /// never switches a multi-tenant app back (that would lock out every customer tenant).
    pub sign_in_audience: String,
    /// A client-chosen alternate key (`uniqueName`) to create the app by: with it, the create is an upsert
    /// (`PATCH /applications(uniqueName='…')` + `Prefer: create-if-missing`) that a rerun after a crash
    /// repeats safely, finding the app it made even before the name look-up lists it. Record it before
    /// calling [`apply`]. Without it, `POST /applications` (never resent blindly).
    pub unique_name: Option<String>,
}

impl SetupRequest {
    /// A single-tenant app with the Exchange Administrator role.
    pub fn new(
        display_name: impl Into<String>,
        key_credential: KeyCredential,
        thumbprint_sha1: impl Into<String>,
    ) -> SetupRequest {
        SetupRequest {
            display_name: display_name.into(),
            key_credential,
            thumbprint_sha1: thumbprint_sha1.into(),
            roles: vec![wellknown::EXCHANGE_ADMINISTRATOR],
            sign_in_audience: wellknown::SINGLE_TENANT.into(),
            unique_name: None,
        }
    }

    fn validate(&self) -> Result<(), Error> {
        let invalid = |what: &'static str, value: &str, reason: &str| Error::Invalid {
            what,
            value: value.to_string(),
            reason: reason.into(),
        };
        let name = self.display_name.trim();
        if name.is_empty() || name.chars().count() > 256 || name != self.display_name {
            return Err(invalid(
                "display name",
                &self.display_name,
                "1 to 256 characters, no leading or trailing spaces",
            ));
        }
        if self.key_credential.key.as_deref().is_none_or(str::is_empty) {
            return Err(invalid("keyCredential", "", "the certificate (`key`, base64 DER) is missing"));
        }
        let hex: String = self.thumbprint_sha1.chars().filter(|c| *c != ':').collect();
        if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("SHA-1 thumbprint", &self.thumbprint_sha1, "40 hex digits"));
        }
        Ok(())
    }

    fn multi_tenant(&self) -> bool {
        self.sign_in_audience == wellknown::MULTI_TENANT
    }

    fn roles(&self) -> Vec<Role> {
        let mut roles: Vec<Role> = Vec::new();
        for role in &self.roles {
            if !roles.iter().any(|r| r.template_id == role.template_id) {
                roles.push(*role);
            }
        }
        roles
    }
}

/// A role and its assignment id, if assigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleState {
    /// The role.
    pub role: Role,
    /// The assignment, when it exists.
    pub assignment_id: Option<String>,
}

/// What [`plan`] found and what [`apply`] would create (read-only; for `--dry-run`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The name looked up.
    pub display_name: String,
    /// The Exchange Online service principal's object id in this tenant.
    pub exchange_sp_id: String,
    /// The one app with that name, if any.
    pub application: Option<AppInfo>,
    /// Whether the certificate is registered on it.
    pub certificate_registered: bool,
    /// The app's service principal, if any.
    pub sp_id: Option<String>,
    /// The Exchange.ManageAsApp grant, if any.
    pub grant_id: Option<String>,
    /// The requested roles and their assignments.
    pub role_assignments: Vec<RoleState>,
    /// Steps already done.
    pub existing: Vec<Step>,
    /// Steps apply would perform.
    pub to_create: Vec<Step>,
    /// Requests sent (all GETs).
    pub requests: u32,
    /// Sequential round trips.
    pub round_trip_depth: u32,
}

/// A role with its assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssignedRole {
    /// The role.
    pub role: Role,
    /// The `unifiedRoleAssignment` id.
    pub assignment_id: String,
}

/// What [`apply`] left in place: every id the profile needs, and what it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetupOutcome {
    /// Application object id.
    pub app_object_id: String,
    /// Application (client) id.
    pub app_id: String,
    /// The app's service principal.
    pub sp_id: String,
    /// The Exchange Online service principal (the grant's resource).
    pub exchange_sp_id: String,
    /// The certificate's `keyId` on the app (what `removeKey` needs when rotating it out later).
    pub certificate_key_id: String,
    /// The Exchange.ManageAsApp grant.
    pub grant_id: String,
    /// The role assignments, in the requested order.
    pub role_assignments: Vec<AssignedRole>,
    /// Steps that created something.
    pub created: Vec<Step>,
    /// Steps that found everything in place.
    pub unchanged: Vec<Step>,
    /// HTTP requests sent, retries included (the client's counter over the run: assumes no other
    /// concurrent use of the same client).
    pub requests: u32,
    /// Sequential round trips on the critical path, counting one per call (retries not included).
    pub round_trip_depth: u32,
}

impl SetupOutcome {
    /// True when the run changed nothing (a rerun after success).
    pub fn changed_nothing(&self) -> bool {
        self.created.is_empty()
    }
}

// ---- shared look-ups ------------------------------------------------------------------------------

/// Step 3a: the Exchange Online service principal, with the Exchange.ManageAsApp role checked.
pub(crate) async fn exchange_service_principal(client: &GraphClient) -> Result<ServicePrincipal, Error> {
    let sp = client
        .resource_service_principal(EXCHANGE_APP_ID)
        .await?
        .ok_or_else(|| Error::ExchangeNotAvailable { reason: "no service principal for it".into() })?;
    if !sp.app_roles.is_empty()
        && !sp.app_roles.iter().any(|r| r.id.eq_ignore_ascii_case(EXCHANGE_MANAGE_AS_APP_ROLE_ID))
    {
        return Err(Error::ExchangeNotAvailable {
            reason: format!("it offers no {} app role", wellknown::EXCHANGE_MANAGE_AS_APP),
        });
    }
    Ok(sp)
}

/// Step 3b: the one app with this display name; two or more is an error listing their appIds.
pub(crate) async fn find_one_app(client: &GraphClient, display_name: &str) -> Result<Option<Application>, Error> {
    let mut apps = client.find_applications_by_name(display_name).await?;
    // Graph's `eq` on displayName ignores case: names differing only in case are ambiguous too (safe side).
    if apps.len() > 1 {
        return Err(Error::AmbiguousApplication {
            display_name: display_name.to_string(),
            app_ids: apps.iter().map(|a| a.app_id.clone()).collect(),
        });
    }
    Ok(apps.pop())
}

/// Resolve an [`AppRef`].
pub(crate) async fn resolve_app(
    client: &GraphClient,
    app: &AppRef,
    replication: Replication,
) -> Result<Option<Application>, Error> {
    match app {
        AppRef::ObjectId(id) => client.application(AppKey::ObjectId(id), replication).await,
        AppRef::AppId(id) => client.application(AppKey::AppId(id), replication).await,
        AppRef::Name(name) => find_one_app(client, name).await,
    }
}

fn is_multi_tenant(app: &Application) -> bool {
    // Any organization's accounts (with or without personal accounts): consentable in other tenants.
    app.sign_in_audience
        .as_deref()
        .is_some_and(|a| a == wellknown::MULTI_TENANT || a == "AzureADandPersonalMicrosoftAccount")
}

fn manage_as_app_grant<'a>(grants: &'a [AppRoleAssignment], exchange_sp_id: &str) -> Option<&'a AppRoleAssignment> {
    grants.iter().find(|g| {
        g.resource_id.eq_ignore_ascii_case(exchange_sp_id)
            && g.app_role_id.eq_ignore_ascii_case(EXCHANGE_MANAGE_AS_APP_ROLE_ID)
    })
}

fn assignment_for<'a>(assignments: &'a [RoleAssignment], role: &Role) -> Option<&'a RoleAssignment> {
    assignments.iter().find(|a| a.role_definition_id.eq_ignore_ascii_case(role.template_id))
}

// ---- plan -------------------------------------------------------------------------------------------

/// Read-only: what exists and what [`apply`] would create. Sends only GETs.
pub async fn plan(client: &GraphClient, request: &SetupRequest) -> Result<Plan, Error> {
    request.validate()?;
    let start = client.requests_sent();
    let roles = request.roles();
    let (exchange, app) =
        tokio::try_join!(exchange_service_principal(client), find_one_app(client, &request.display_name))
            .map_err(|e| e.in_step(Step::Lookup, format!("app {:?}", request.display_name)))?;
    let mut depth = 1;
    let mut sp = None;
    let mut grants = Vec::new();
    let mut assignments = Vec::new();
    if let Some(app) = &app {
        depth += 1;
        sp = client
            .service_principal_for_app(&app.app_id, Replication::NotExpected)
            .await
            .map_err(|e| e.in_step(Step::ServicePrincipal, format!("appId {}", app.app_id)))?;
        if let Some(sp) = &sp {
            depth += 1;
            (grants, assignments) = tokio::try_join!(
                client.list_app_role_assignments(&sp.id, Replication::Expected),
                client.list_directory_role_assignments(&sp.id, Replication::Expected),
            )
            .map_err(|e| e.in_step(Step::Grant, format!("service principal {}", sp.id)))?;
        }
    }
    let certificate_registered = app.as_ref().is_some_and(|a| a.has_certificate(&request.thumbprint_sha1));
    let grant_id = manage_as_app_grant(&grants, &exchange.id).map(|g| g.id.clone());
    let role_assignments: Vec<RoleState> = roles
        .iter()
        .map(|role| RoleState { role: *role, assignment_id: assignment_for(&assignments, role).map(|a| a.id.clone()) })
        .collect();
    let mut existing = Vec::new();
    let mut to_create = Vec::new();
    let mut note = |step: Step, exists: bool| if exists { existing.push(step) } else { to_create.push(step) };
    note(Step::Application, app.is_some());
    note(Step::Certificate, certificate_registered);
    if request.multi_tenant()
        && let Some(app) = &app
    {
        note(Step::SignInAudience, is_multi_tenant(app));
    }
    note(Step::ServicePrincipal, sp.is_some());
    note(Step::Grant, grant_id.is_some());
    for state in &role_assignments {
        note(Step::role(&state.role), state.assignment_id.is_some());
    }
    Ok(Plan {
        display_name: request.display_name.clone(),
        exchange_sp_id: exchange.id,
        application: app.as_ref().map(AppInfo::from),
        certificate_registered,
        sp_id: sp.map(|s| s.id),
        grant_id,
        role_assignments,
        existing,
        to_create,
        requests: client.requests_sent() - start,
        round_trip_depth: depth,
    })
}

// ---- apply ------------------------------------------------------------------------------------------

struct Recorder<'p> {
    progress: &'p (dyn Fn(&Event) + Send + Sync),
}

impl Recorder<'_> {
    fn start(&self, step: &Step) {
        (self.progress)(&Event::Started(step.clone()));
    }

    fn done(&self, step: Step, change: Change, id: &str) -> (Step, Change) {
        (self.progress)(&Event::Finished { step: step.clone(), change, id: id.to_string() });
        (step, change)
    }
}

/// Steps 3–7: make the app, certificate, service principal, grant and role assignments exist, creating
/// only what is missing. Rerunnable: after success it changes nothing; after a crash it finishes the job
/// with no duplicates.
pub async fn apply(
    client: &GraphClient,
    request: &SetupRequest,
    progress: impl Fn(&Event) + Send + Sync,
) -> Result<SetupOutcome, Error> {
    request.validate()?;
    // Choose the keyId here, so it is known whichever way the certificate gets registered.
    let mut request = request.clone();
    let key_id = request.key_credential.key_id.get_or_insert_with(|| uuid::Uuid::new_v4().to_string()).clone();
    let request = &request;
    let start = client.requests_sent();
    let rec = Recorder { progress: &progress };
    let roles = request.roles();
    let name = &request.display_name;
    let app_object = format!("app {name:?}");

    // 3. Both look-ups at once.
    rec.start(&Step::Lookup);
    let (exchange, found) = tokio::try_join!(exchange_service_principal(client), find_one_app(client, name))
        .map_err(|e| e.in_step(Step::Lookup, app_object.clone()))?;
    let mut changes = vec![rec.done(Step::Lookup, Change::Unchanged, &exchange.id)];
    let mut depth = 1;

    // 4. Create, or adopt.
    let (app, app_is_new) = match found {
        Some(app) => {
            changes.push(rec.done(Step::Application, Change::Unchanged, &app.id));
            (app, false)
        }
        None => {
            rec.start(&Step::Application);
            let (app, recovered, calls) =
                create_app(client, request).await.map_err(|e| e.in_step(Step::Application, app_object.clone()))?;
            depth += calls;
            changes.push(rec.done(Step::Application, Change::Created, &app.id));
            // An app recovered after an ambiguous failure goes through the adopt path (certificate check,
            // look-ups before creates), as if found by the first look-up.
            (app, !recovered)
        }
    };
    let app_object = format!("app {name:?} (appId {})", app.app_id);

    // 4b (adopted app: certificate) ∥ 5–7 (principal, then grant ∥ roles).
    let certificate = async {
        if app_is_new {
            let id = app
                .key_credentials
                .iter()
                .find(|k| k.matches_thumbprint(&request.thumbprint_sha1))
                .and_then(|k| k.key_id.clone())
                .unwrap_or_else(|| key_id.clone());
            Ok((vec![rec.done(Step::Certificate, Change::Created, &id)], 0, id))
        } else {
            ensure_certificate(client, &app, request, &rec)
                .await
                .map_err(|e| e.in_step(Step::Certificate, app_object.clone()))
        }
    };
    let rest = async {
        let (sp, sp_is_new, mut depth, sp_change) = ensure_service_principal(client, &app.app_id, app_is_new, &rec)
            .await
            .map_err(|e| e.in_step(Step::ServicePrincipal, app_object.clone()))?;
        let sp_object = format!("service principal {} of {app_object}", sp.id);
        let (grant, assigned) = tokio::try_join!(
            async {
                ensure_grant(client, &sp, sp_is_new, &exchange, &rec)
                    .await
                    .map_err(|e| e.in_step(Step::Grant, sp_object.clone()))
            },
            ensure_roles(client, &sp, sp_is_new, &roles, &rec),
        )?;
        depth += grant.2.max(assigned.2);
        let mut changes = vec![sp_change, grant.1];
        changes.extend(assigned.1);
        Ok::<_, Error>((sp, grant.0, assigned.0, changes, depth))
    };
    let audience = async {
        if app_is_new || !request.multi_tenant() {
            return Ok((Vec::new(), 0));
        }
        if is_multi_tenant(&app) {
            return Ok((vec![rec.done(Step::SignInAudience, Change::Unchanged, &app.id)], 0));
        }
        rec.start(&Step::SignInAudience);
        client
            .set_sign_in_audience(&app.id, wellknown::MULTI_TENANT, Replication::Expected)
            .await
            .map_err(|e| e.in_step(Step::SignInAudience, app_object.clone()))?;
        Ok::<_, Error>((vec![rec.done(Step::SignInAudience, Change::Created, &app.id)], 1))
    };
    let (cert, audience, (sp, grant_id, role_assignments, rest_changes, rest_depth)) =
        tokio::try_join!(certificate, audience, rest)?;
    depth += cert.1.max(audience.1).max(rest_depth);
    changes.extend(cert.0);
    changes.extend(audience.0);
    changes.extend(rest_changes);
    changes.retain(|(step, _)| *step != Step::Lookup);
    changes.sort_by_key(|(step, _)| step.rank());
    let (created, unchanged): (Vec<_>, Vec<_>) = changes.into_iter().partition(|(_, c)| *c == Change::Created);
    Ok(SetupOutcome {
        app_object_id: app.id,
        app_id: app.app_id,
        sp_id: sp.id,
        exchange_sp_id: exchange.id,
        certificate_key_id: cert.2,
        grant_id,
        role_assignments,
        created: created.into_iter().map(|(s, _)| s).collect(),
        unchanged: unchanged.into_iter().map(|(s, _)| s).collect(),
        requests: client.requests_sent() - start,
        round_trip_depth: depth,
    })
}

type Changes = Vec<(Step, Change)>;

/// Step 4 for a new app: `POST /applications`. The POST is not idempotent, so a 5xx or timeout is not
/// blindly resent: the next attempt first looks the name up and adopts the app if the failed POST did
/// create it. Returns the app, whether it was recovered that way, and the calls made on the critical path.
async fn create_app(client: &GraphClient, request: &SetupRequest) -> Result<(Application, bool, u32), Error> {
    let new = NewApplication {
        display_name: request.display_name.clone(),
        sign_in_audience: request.sign_in_audience.clone(),
        required_resource_access: vec![crate::model::RequiredResourceAccess::exchange_manage_as_app()],
        key_credentials: vec![request.key_credential.clone()],
    };
    if let Some(key) = &request.unique_name {
        // Idempotent: the client retries it; a 204 means an earlier (crashed) run made it.
        return match client.upsert_application(key, &new).await? {
            Created::Created(app) => Ok((app, false, 1)),
            Created::AlreadyExisted => {
                let app = eventually(client, &format!("app with uniqueName {key:?}"), || {
                    client.application_by_unique_name(key, Replication::Expected)
                })
                .await?;
                Ok((app, true, 2))
            }
        };
    }
    let calls = std::sync::atomic::AtomicU32::new(0);
    let result = cba_http::with_retry(
        client.retry_policy(),
        |attempt| {
            let new = &new;
            let calls = &calls;
            async move {
                if attempt > 1 {
                    calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if let Some(app) = find_one_app(client, &new.display_name).await? {
                        return Ok((app, true));
                    }
                }
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                client.create_application(new).await.map(|app| (app, false))
            }
        },
        |outcome| match outcome {
            Err(e) if e.is_ambiguous_write() => cba_http::Verdict::Retry {
                after: None,
                reason: "the create may or may not have been applied: looking the name up before trying again".into(),
            },
            _ => cba_http::Verdict::Done,
        },
        |_| {},
    )
    .await?;
    Ok((result.0, result.1, calls.into_inner()))
}

/// Step 4 for an adopted app: register the certificate unless its thumbprint is already there. A PATCH
/// replaces the whole list, so the current list is fetched with its `key`s and resent with the new entry.
async fn ensure_certificate(
    client: &GraphClient,
    app: &Application,
    request: &SetupRequest,
    rec: &Recorder<'_>,
) -> Result<(Changes, u32, String), Error> {
    let registered = |keys: &[KeyCredential]| {
        keys.iter()
            .find(|k| k.matches_thumbprint(&request.thumbprint_sha1) || k.same_key(&request.key_credential))
            .map(|k| k.key_id.clone().unwrap_or_default())
    };
    if let Some(key_id) = registered(&app.key_credentials) {
        return Ok((vec![rec.done(Step::Certificate, Change::Unchanged, &key_id)], 0, key_id));
    }
    rec.start(&Step::Certificate);
    // The app was found by a list in this run: a replica may not have it yet.
    let mut keys = client.get_key_credentials(&app.id, Replication::Expected).await?;
    if let Some(key_id) = registered(&keys) {
        return Ok((vec![rec.done(Step::Certificate, Change::Unchanged, &key_id)], 1, key_id));
    }
    keys.push(request.key_credential.clone());
    client.set_key_credentials(&app.id, &keys, Replication::Expected).await?;
    let key_id = request.key_credential.key_id.clone().unwrap_or_default();
    Ok((vec![rec.done(Step::Certificate, Change::Created, &key_id)], 2, key_id))
}

/// Step 5. For an app created in this run: upsert straight away (201 expected). For an adopted app: GET
/// first (a rerun usually finds it: one request), upsert only on 404. Returns whether the principal was
/// created now (then it has no grants or roles to list).
async fn ensure_service_principal(
    client: &GraphClient,
    app_id: &str,
    app_is_new: bool,
    rec: &Recorder<'_>,
) -> Result<(ServicePrincipal, bool, u32, (Step, Change)), Error> {
    let mut depth = 0;
    if !app_is_new {
        depth += 1;
        if let Some(sp) = client.service_principal_for_app(app_id, Replication::NotExpected).await? {
            let change = rec.done(Step::ServicePrincipal, Change::Unchanged, &sp.id);
            return Ok((sp, false, depth, change));
        }
    }
    rec.start(&Step::ServicePrincipal);
    depth += 1;
    // Right after the app's creation: 400 NoBackingApplicationObject until it replicates.
    match client.upsert_service_principal(app_id, Replication::Expected).await? {
        Created::Created(sp) => {
            let change = rec.done(Step::ServicePrincipal, Change::Created, &sp.id);
            Ok((sp, true, depth, change))
        }
        Created::AlreadyExisted => {
            // 204: it exists (perhaps made by a crashed run and not yet replicated to every reader).
            depth += 1;
            let sp = client.get_service_principal_by_app_id(app_id, Replication::Expected).await?;
            let change = rec.done(Step::ServicePrincipal, Change::Unchanged, &sp.id);
            Ok((sp, false, depth, change))
        }
    }
}

/// Poll `find` under the retry policy until it yields something (an object Graph says exists but a
/// lagging replica does not list yet).
async fn eventually<T, F, Fut>(client: &GraphClient, what: &str, find: F) -> Result<T, Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, Error>>,
{
    let found = cba_http::with_retry(
        client.retry_policy(),
        |_| find(),
        |outcome| match outcome {
            Ok(None) => cba_http::Verdict::Retry {
                after: None,
                reason: format!("waiting for replication: {what} not listed yet"),
            },
            _ => cba_http::Verdict::Done,
        },
        |_| {},
    )
    .await?;
    found.ok_or_else(|| Error::Invalid {
        what: "Graph answer",
        value: what.to_string(),
        reason: "Graph reports it exists but never lists it; run setup again later".into(),
    })
}

/// Step 6: the Exchange.ManageAsApp grant. Returns (grant id, change, depth).
async fn ensure_grant(
    client: &GraphClient,
    sp: &ServicePrincipal,
    sp_is_new: bool,
    exchange: &ServicePrincipal,
    rec: &Recorder<'_>,
) -> Result<(String, (Step, Change), u32), Error> {
    let mut depth = 0;
    if !sp_is_new {
        depth += 1;
        let grants = client.list_app_role_assignments(&sp.id, Replication::Expected).await?;
        if let Some(grant) = manage_as_app_grant(&grants, &exchange.id) {
            return Ok((grant.id.clone(), rec.done(Step::Grant, Change::Unchanged, &grant.id), depth));
        }
    }
    rec.start(&Step::Grant);
    depth += 1;
    let grant = NewAppRoleAssignment {
        principal_id: sp.id.clone(),
        resource_id: exchange.id.clone(),
        app_role_id: EXCHANGE_MANAGE_AS_APP_ROLE_ID.into(),
    };
    // Right after the principal's creation: "Not a valid reference update" / 404 until it replicates.
    match client.grant_app_role(&grant, Replication::Expected).await? {
        Created::Created(created) => {
            Ok((created.id.clone(), rec.done(Step::Grant, Change::Created, &created.id), depth))
        }
        Created::AlreadyExisted => {
            depth += 1;
            let id = eventually(client, "the Exchange.ManageAsApp grant", || async {
                let grants = client.list_app_role_assignments(&sp.id, Replication::Expected).await?;
                Ok(manage_as_app_grant(&grants, &exchange.id).map(|g| g.id.clone()))
            })
            .await?;
            Ok((id.clone(), rec.done(Step::Grant, Change::Unchanged, &id), depth))
        }
    }
}

/// Step 7: every requested role, concurrently. Returns (assignments, changes, depth).
async fn ensure_roles(
    client: &GraphClient,
    sp: &ServicePrincipal,
    sp_is_new: bool,
    roles: &[Role],
    rec: &Recorder<'_>,
) -> Result<(Vec<AssignedRole>, Changes, u32), Error> {
    let object = format!("service principal {}", sp.id);
    let mut depth = 0;
    let existing = if sp_is_new || roles.is_empty() {
        Vec::new()
    } else {
        depth += 1;
        client
            .list_directory_role_assignments(&sp.id, Replication::Expected)
            .await
            .map_err(|e| e.in_step(Step::role(&roles[0]), object.clone()))?
    };
    let results = try_join_all(roles.iter().map(|role| {
        let existing = &existing;
        let object = &object;
        async move {
            let step = Step::role(role);
            if let Some(found) = assignment_for(existing, role) {
                let change = rec.done(step, Change::Unchanged, &found.id);
                return Ok((AssignedRole { role: *role, assignment_id: found.id.clone() }, change, 0));
            }
            rec.start(&step);
            let result = async {
                match client.assign_directory_role(&sp.id, role.template_id, Replication::Expected).await? {
                    Created::Created(created) => Ok((created.id, Change::Created, 1)),
                    Created::AlreadyExisted => {
                        let id = eventually(client, &format!("the {role} role assignment"), || async {
                            let all = client.list_directory_role_assignments(&sp.id, Replication::Expected).await?;
                            Ok(assignment_for(&all, role).map(|a| a.id.clone()))
                        })
                        .await?;
                        Ok((id, Change::Unchanged, 2))
                    }
                }
            }
            .await
            .map_err(|e: Error| e.in_step(step.clone(), object.clone()))?;
            let change = rec.done(step, result.1, &result.0);
            Ok::<_, Error>((AssignedRole { role: *role, assignment_id: result.0 }, change, result.2))
        }
    }))
    .await?;
    let calls = results.iter().map(|r| r.2).max().unwrap_or(0);
    let (assigned, changes): (Vec<_>, Vec<_>) = results.into_iter().map(|(a, c, _)| (a, c)).unzip();
    Ok((assigned, changes, depth + calls))
}
