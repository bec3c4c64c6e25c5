//! Fleet: one multi-tenant app and one certificate in the provider's ("home") tenant, consented into many
//! customer tenants (docs/fleet.md, docs/wire-formats.md §11).
//!
//! The [`Fleet`] records, per customer tenant, what onboarding made there and how far it got; a
//! [`FleetStore`] keeps it (the CLI in a locked JSON file, a portal in a table). [`add`] onboards one tenant
//! (with the customer admin's Graph sign-in, or by the admin-consent URL and a wait), [`status`] checks every
//! tenant with a bounded pool, [`remove`] takes the app out of a tenant, [`fan_out`] runs an Exchange cmdlet in
//! many tenants at once and [`prove_in`] proves a certificate (a rotation's new one) in a set of tenants.
//!
//! Crash safety: an entry is recorded (state `started`) before the first write in a tenant and updated after
//! each step, and every step lists before it creates, so a rerun of [`add`] converges without duplicates.
//! Every save goes through [`FleetStore::update`], which re-reads under the store's lock, so concurrent adds
//! of different tenants never lose each other's entries.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cba_exo::{ExoClient, Parameters, RawPage};
use cba_graph::provision::{self, Change, Event as GraphEvent, Step};
use cba_graph::wellknown::{self, Role};
use cba_http::{BoxError, RetryPolicy, Verdict};
use cba_token::{CertificateTokenSource, Resource};
use futures::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};

use crate::admin::{self, AdminCredential};
use crate::exchange_roles::{self, ExchangeAdminCredential, ExchangeReport, ExchangeSetup, ExchangeTeardown};
use crate::profile::{ExchangeProfile, Profile};
use crate::progress::{Event, ProgressExt as _};
use crate::prove::TokenClaims;
use crate::setup::millis;
use crate::status::Check;
use crate::{Credential, Error, Services};

/// The fleet file's format version.
pub const VERSION: u32 = 1;

/// Concurrency of [`status`] and [`fan_out`] unless the caller says otherwise: requests in flight, each
/// holding a connection; enough to keep a latency-bound run fed without stressing a 2-core machine.
pub const DEFAULT_CONCURRENCY: usize = 64;

/// The home app and every customer tenant it was added to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fleet {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// The provider's app.
    pub home: Home,
    /// One entry per customer tenant, sorted by tenant id.
    #[serde(default)]
    pub tenants: Vec<CustomerTenant>,
}

/// The provider's multi-tenant app, as its profile records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Home {
    /// Where its profile is kept (a path, as the caller names it).
    pub profile: String,
    /// The provider's tenant id.
    pub tenant_id: String,
    /// The app's client id (the same in every tenant).
    pub app_id: String,
    /// Its display name (what a customer's admin sees on the consent page and under Enterprise applications).
    pub app_name: String,
}

impl Home {
    /// The home of `profile`, kept at `location`.
    pub fn of(profile: &Profile, location: impl Into<String>) -> Home {
        Home {
            profile: location.into(),
            tenant_id: profile.tenant_id.clone(),
            app_id: profile.app_id.clone(),
            app_name: profile.app_name.clone(),
        }
    }
}

/// How far onboarding of a tenant got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OnboardingState {
    /// Recorded before the first write; a rerun finishes it.
    Started,
    /// The admin-consent URL was given; the customer's admin has not consented yet (as far as known).
    AwaitingConsent,
    /// The app has a service principal and Exchange.ManageAsApp there; a role is still missing.
    Consented,
    /// Service principal, grant and role(s) in place, proven by a token from that tenant.
    Onboarded,
    /// Removal was asked of the customer's admin (no admin sign-in to do it).
    RemovalRequested,
}

impl OnboardingState {
    /// The snake_case name (as in the fleet file and JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            OnboardingState::Started => "started",
            OnboardingState::AwaitingConsent => "awaiting_consent",
            OnboardingState::Consented => "consented",
            OnboardingState::Onboarded => "onboarded",
            OnboardingState::RemovalRequested => "removal_requested",
        }
    }
}

/// A role the app should hold in a customer tenant, and its assignment once made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRole {
    /// The role's name.
    pub role: String,
    /// Its template id.
    pub template_id: String,
    /// The assignment, when known.
    #[serde(default)]
    pub assignment_id: Option<String>,
}

/// The outcome of the last [`status`] of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastCheck {
    /// When (RFC 3339).
    pub at: String,
    /// Every link passed.
    pub healthy: bool,
    /// The links that did not pass (`consent`, `grant`, `role`, `exchange`, and for an Exchange role group
    /// `exchange_membership` and the other Exchange links that failed).
    #[serde(default)]
    pub broken: Vec<String>,
}

/// One customer tenant of the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerTenant {
    /// The tenant id (a GUID).
    pub tenant_id: String,
    /// Its domain (`*.onmicrosoft.com` when known).
    #[serde(default)]
    pub tenant_domain: Option<String>,
    /// How far onboarding got.
    pub state: OnboardingState,
    /// The app's service principal there.
    #[serde(default)]
    pub service_principal_id: Option<String>,
    /// The Exchange.ManageAsApp grant there.
    #[serde(default)]
    pub grant_id: Option<String>,
    /// The roles asked for, with their assignments.
    #[serde(default)]
    pub roles: Vec<TenantRole>,
    /// Least privilege: what cba made in the tenant's Exchange (service principal, scope, role group,
    /// membership), each intent recorded before its create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<ExchangeProfile>,
    /// The admin-consent URL, when onboarding went that way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_url: Option<String>,
    /// When the entry last changed (RFC 3339).
    #[serde(default)]
    pub updated_at: Option<String>,
    /// The last status check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<LastCheck>,
}

impl CustomerTenant {
    fn new(tenant_id: &str) -> CustomerTenant {
        CustomerTenant {
            tenant_id: tenant_id.to_ascii_lowercase(),
            tenant_domain: None,
            state: OnboardingState::Started,
            service_principal_id: None,
            grant_id: None,
            roles: Vec::new(),
            exchange: None,
            consent_url: None,
            updated_at: None,
            last_check: None,
        }
    }

    /// Named by `key`: its id or domain (case-insensitive).
    pub fn is(&self, key: &str) -> bool {
        self.tenant_id.eq_ignore_ascii_case(key)
            || self.tenant_domain.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(key))
    }

    /// The roles as known roles (unknown template ids are skipped).
    pub fn known_roles(&self) -> Vec<Role> {
        self.roles.iter().filter_map(|r| wellknown::role_by_template_id(&r.template_id)).collect()
    }

    /// `id (domain)` or `id`.
    pub fn label(&self) -> String {
        match &self.tenant_domain {
            Some(d) => format!("{} ({d})", self.tenant_id),
            None => self.tenant_id.clone(),
        }
    }
}

impl Fleet {
    /// An empty fleet of `home`.
    pub fn new(home: Home) -> Fleet {
        Fleet { version: VERSION, home, tenants: Vec::new() }
    }

    /// The tenant named by `key` (id or domain).
    pub fn tenant(&self, key: &str) -> Option<&CustomerTenant> {
        self.tenants.iter().find(|t| t.is(key))
    }

    /// Insert or replace the entry of `entry.tenant_id` (an entry recorded under the domain alone is merged).
    pub fn upsert(&mut self, entry: CustomerTenant) {
        self.tenants.retain(|t| {
            !(t.tenant_id.eq_ignore_ascii_case(&entry.tenant_id)
                || entry.tenant_domain.as_deref().is_some_and(|d| t.tenant_id.eq_ignore_ascii_case(d)))
        });
        self.tenants.push(entry);
        self.tenants.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
    }

    /// Drop the entry of `tenant_id`; whether there was one.
    pub fn remove(&mut self, tenant_id: &str) -> bool {
        let before = self.tenants.len();
        self.tenants.retain(|t| !t.tenant_id.eq_ignore_ascii_case(tenant_id));
        self.tenants.len() != before
    }

    /// The tenants named by `keys` (ids or domains), or every tenant when `keys` is `None`; a key naming no
    /// tenant of the fleet is an error.
    pub fn select(&self, keys: Option<&[String]>) -> Result<Vec<CustomerTenant>, Error> {
        match keys {
            None => Ok(self.tenants.clone()),
            Some(keys) => keys
                .iter()
                .map(|k| {
                    self.tenant(k)
                        .cloned()
                        .ok_or_else(|| Error::NotInFleet { tenant: k.clone(), app_name: self.home.app_name.clone() })
                })
                .collect(),
        }
    }
}

/// Where a fleet is kept. The library reads and writes it only through this; `cba-cli` keeps it in a
/// locked JSON file beside the home profile.
pub trait FleetStore: Send + Sync {
    /// The stored fleet, if any.
    fn load(&self) -> Result<Option<Fleet>, BoxError>;
    /// Change the stored fleet under the store's lock: read it again (`None` when there is none yet), apply
    /// `change`, write it atomically. Two processes updating different tenants both land.
    fn update(&self, change: &mut (dyn FnMut(&mut Option<Fleet>) + Send)) -> Result<(), BoxError>;
    /// A name for messages (a file path, a row key).
    fn describe(&self) -> String;
}

/// A fleet in memory: for tests, and for callers that persist it themselves.
#[derive(Debug, Default)]
pub struct MemoryFleetStore {
    fleet: std::sync::Mutex<Option<Fleet>>,
}

impl MemoryFleetStore {
    /// An empty store.
    pub fn new() -> MemoryFleetStore {
        MemoryFleetStore::default()
    }

    /// The fleet as last saved.
    pub fn get(&self) -> Option<Fleet> {
        self.fleet.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl FleetStore for MemoryFleetStore {
    fn load(&self) -> Result<Option<Fleet>, BoxError> {
        Ok(self.get())
    }

    fn update(&self, change: &mut (dyn FnMut(&mut Option<Fleet>) + Send)) -> Result<(), BoxError> {
        change(&mut self.fleet.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(())
    }

    fn describe(&self) -> String {
        "the in-memory fleet".into()
    }
}

fn save_entry(
    services: &Services,
    store: &dyn FleetStore,
    home: &Home,
    entry: &mut CustomerTenant,
) -> Result<(), Error> {
    entry.updated_at = Some(cba_token::jwt::rfc3339(services.now()));
    let entry = entry.clone();
    let mut once = Some(entry);
    store
        .update(&mut |fleet| {
            let fleet = fleet.get_or_insert_with(|| Fleet::new(home.clone()));
            if let Some(entry) = once.take() {
                fleet.upsert(entry);
            }
        })
        .map_err(|source| Error::Store { store: store.describe(), source })
}

fn require_multi_tenant(home: &Profile) -> Result<(), Error> {
    home.require_complete()?;
    if !home.multi_tenant {
        return Err(Error::NotMultiTenant { app_name: home.app_name.clone(), app_id: home.app_id.clone() });
    }
    Ok(())
}

/// The admin-consent URL a customer's Global Administrator (or Privileged Role / Cloud Application
/// Administrator) opens to consent to `app_id` in `tenant` (the v1 form: everything in the app's
/// requiredResourceAccess, that is Exchange.ManageAsApp).
pub fn consent_url(login_root: &str, tenant: &str, app_id: &str) -> String {
    format!("{}/{tenant}/adminconsent?client_id={app_id}", login_root.trim_end_matches('/'))
}

// ---- add --------------------------------------------------------------------------------------------

/// What [`add`] is asked to do.
#[derive(Debug, Clone)]
pub struct AddRequest {
    /// The customer tenant: id or domain.
    pub tenant: String,
    /// Roles to assign there (with an admin sign-in).
    pub roles: Vec<Role>,
    /// The home app's certificate (the proof signs in with it, from the customer tenant's authority).
    pub credential: Credential,
    /// Without an admin: wait this long for the consent (None: give the URL and return).
    pub consent_wait: Option<Duration>,
    /// With an admin: how long to wait out replication and throttling, the proof included.
    pub wait: Duration,
    /// Least privilege: an Exchange role group in the tenant (with the customer admin's Exchange sign-in)
    /// instead of (or, with `keep_entra_role`, besides) the Entra `roles`.
    pub exchange: Option<ExchangeSetup>,
}

/// What [`add`] did (the `cba fleet add --output json` document, docs/cli-json.md).
#[derive(Debug, Clone, Serialize)]
pub struct AddReport {
    /// The tenant id.
    pub tenant_id: String,
    /// Its domain, when known.
    pub tenant_domain: Option<String>,
    /// How far onboarding got.
    pub state: OnboardingState,
    /// The app.
    pub app_id: String,
    /// The service principal there.
    pub service_principal_id: Option<String>,
    /// The grant there.
    pub grant_id: Option<String>,
    /// The roles and their assignments.
    pub roles: Vec<TenantRole>,
    /// Steps that created something.
    pub created: Vec<String>,
    /// Steps already in place.
    pub unchanged: Vec<String>,
    /// The admin-consent URL (consent path).
    pub consent_url: Option<String>,
    /// The proof token's `roles` (when a token was had).
    pub token_roles: Option<Vec<String>>,
    /// The proof token's `wids`.
    pub token_wids: Option<Vec<String>>,
    /// What is left for the customer's admin, in words (empty when onboarded).
    pub pending: Vec<String>,
    /// The Exchange role group steps and their proof (null without `--exchange-role-group`/`--exchange-roles`).
    pub exchange: Option<ExchangeReport>,
    /// Where the fleet is kept.
    pub fleet: String,
    /// Requests sent (the admin's sign-in not counted).
    pub requests: u32,
    /// Time spent.
    pub elapsed_ms: u64,
}

fn roles_of(roles: &[Role]) -> Vec<TenantRole> {
    roles
        .iter()
        .map(|r| TenantRole { role: r.name.to_string(), template_id: r.template_id.to_string(), assignment_id: None })
        .collect()
}

/// Onboard one customer tenant. With `admin` (the customer admin's sign-in, or a partner's with the right
/// GDAP roles): confirm the credential acts in the tenant named before any write, consent by creating the
/// app's service principal there, grant Exchange.ManageAsApp, assign the roles, prove with an app-only token
/// from that tenant's authority. Without: record the tenant with its admin-consent URL and, with
/// `consent_wait`, poll the token endpoint until AADSTS700016/7000229 stop (the consent arrived). Rerunnable.
pub async fn add(
    services: &Services,
    store: &dyn FleetStore,
    home: &Profile,
    home_location: &str,
    admin: Option<&AdminCredential>,
    request: &AddRequest,
) -> Result<AddReport, Error> {
    let started = services.now();
    require_multi_tenant(home)?;
    crate::check_tenant(&request.tenant)?;
    if let Some(exchange) = &request.exchange {
        exchange_roles::check(&exchange.roles)?;
        if !request.roles.is_empty() && !exchange.keep_entra_role {
            return Err(Error::Invalid {
                what: "roles",
                value: request.roles.iter().map(|r| r.name).collect::<Vec<_>>().join(", "),
                reason: "an Exchange role group and an Entra directory role add up: drop the Entra role, or keep it \
                         on purpose with --keep-entra-role"
                    .into(),
            });
        }
        if admin.is_none() {
            return Err(Error::Invalid {
                what: "tenant",
                value: request.tenant.clone(),
                reason: "an Exchange role group is made with the customer administrator's sign-in (--admin, or \
                         CBA_GRAPH_TOKEN, and the Exchange one): the admin-consent URL cannot make it"
                    .into(),
            });
        }
    }
    let home_ref = Home::of(home, home_location);
    let known = store.load().map_err(|source| Error::Store { store: store.describe(), source })?;
    let known = known.as_ref().and_then(|f| f.tenant(&request.tenant)).cloned();
    match admin {
        Some(admin) => add_with_admin(services, store, home, &home_ref, admin, request, known, started).await,
        None => add_by_consent(services, store, home, &home_ref, request, known, started).await,
    }
}

#[allow(clippy::too_many_arguments, reason = "one private step of `add`, called once")]
async fn add_with_admin(
    services: &Services,
    store: &dyn FleetStore,
    home: &Profile,
    home_ref: &Home,
    admin_credential: &AdminCredential,
    request: &AddRequest,
    known: Option<CustomerTenant>,
    started: time::OffsetDateTime,
) -> Result<AddReport, Error> {
    let progress = services.progress.as_ref();
    progress.stage(format!("1/3 the customer administrator's sign-in ({})", request.tenant));
    let session = admin::sign_in(services, admin_credential, &request.tenant).await?;
    let graph = services.graph(session.tokens.clone(), request.wait)?;
    // Before any write: the credential must act in the tenant named.
    let confirmed = admin::confirm_tenant(services, &graph, &session, &request.tenant).await?;
    if confirmed.id.eq_ignore_ascii_case(&home.tenant_id) {
        return Err(Error::Invalid {
            what: "tenant",
            value: request.tenant.clone(),
            reason: format!("it is the home tenant of app {:?}, not a customer tenant", home.app_name),
        });
    }
    // The Exchange sign-in right after Graph's, before any write, and in the same tenant.
    let exchange_admin = match &request.exchange {
        Some(exchange) => {
            Some(exchange_admin_in(services, &exchange.admin, &confirmed.id, &request.tenant, request.wait).await?)
        }
        None => None,
    };
    let mut entry = known.unwrap_or_else(|| CustomerTenant::new(&confirmed.id));
    entry.tenant_id = confirmed.id.to_ascii_lowercase();
    if let Some(domain) =
        confirmed.initial_domain.clone().or_else(|| request.tenant.contains('.').then(|| request.tenant.clone()))
    {
        entry.tenant_domain = Some(domain.to_ascii_lowercase());
    }
    let mut roles = roles_of(&request.roles);
    for r in &mut roles {
        r.assignment_id =
            entry.roles.iter().find(|k| k.template_id == r.template_id).and_then(|k| k.assignment_id.clone());
    }
    entry.roles = roles;
    if entry.state != OnboardingState::Onboarded {
        entry.state = OnboardingState::Started;
    }
    save_entry(services, store, home_ref, &mut entry)?;

    progress.stage(format!(
        "2/3 in tenant {}: service principal of {} (appId {}), Exchange.ManageAsApp grant, role",
        entry.label(),
        home.app_name,
        home.app_id
    ));
    let on_event = |event: &GraphEvent| {
        if let GraphEvent::Finished { step, change, id } = event {
            let verb = match change {
                Change::Created => "created",
                Change::Unchanged => "already there",
                _ => "done",
            };
            progress.detail(format!("{step}: {verb} ({id})"));
        }
    };
    let outcome = provision::onboard_tenant(&graph, &home.app_id, &request.roles, on_event)
        .await
        .map_err(Error::graph_in(format!("onboarding app {} in tenant {}", home.app_id, entry.label())))?;
    let mut requests = graph.requests_sent();
    entry.service_principal_id = Some(outcome.sp_id.clone());
    entry.grant_id = Some(outcome.grant_id.clone());
    for assigned in &outcome.role_assignments {
        if let Some(r) = entry.roles.iter_mut().find(|r| r.template_id == assigned.role.template_id) {
            r.assignment_id = Some(assigned.assignment_id.clone());
        }
    }
    if entry.state != OnboardingState::Onboarded {
        entry.state = OnboardingState::Consented;
    }
    entry.consent_url = None;
    save_entry(services, store, home_ref, &mut entry)?;

    let mut exchange_report = None;
    if let (Some(exchange), Some(exo)) = (&request.exchange, &exchange_admin) {
        progress.stage(format!("2/3 in tenant {}: Exchange service principal, role group, membership", entry.label()));
        let app = exchange_roles::App { app_id: &home.app_id, sp_object_id: &outcome.sp_id, name: &home.app_name };
        let left = request.wait.saturating_sub(services.since(started));
        // Each intent is saved in the fleet entry before its create.
        let mut recorded = entry.exchange.clone();
        let mut snapshot = entry.clone();
        let mut save = |state: &ExchangeProfile| {
            snapshot.exchange = Some(state.clone());
            save_entry(services, store, home_ref, &mut snapshot)
        };
        let report =
            exchange_roles::apply_recorded(services, exo, &app, exchange, &mut recorded, &mut save, left).await?;
        entry.exchange = recorded;
        save_entry(services, store, home_ref, &mut entry)?;
        exchange_report = Some(report);
    }

    progress.stage(format!("3/3 proof: an Exchange token from tenant {}'s authority", entry.label()));
    let cert = request
        .credential
        .client_certificate(&entry.tenant_id, &home.app_id)
        .map_err(Error::token_in("the home app's certificate"))?;
    let role_ids: Vec<&str> = request.roles.iter().map(|r| r.template_id).collect();
    let left = request.wait.saturating_sub(services.since(started));
    let proof = crate::prove(services, &cert, left, &role_ids).await?;
    requests += proof.requests;
    if let (Some(exchange), Some(report)) = (&request.exchange, exchange_report.as_mut()) {
        if !exchange.keep_entra_role && proof.wids.as_ref().is_some_and(|w| !w.is_empty()) {
            return Err(Error::ExchangeObject {
                object: format!("the Exchange token of app {} from tenant {}", home.app_id, entry.label()),
                problem: format!(
                    "it carries Entra directory roles (wids [{}]) besides the role group: remove the role \
                     assignment in that tenant, or keep it on purpose with --keep-entra-role",
                    proof.wids.as_deref().unwrap_or_default().join(", ")
                ),
            });
        }
        let left = request.wait.saturating_sub(services.since(started));
        let app = exchange_roles::app_client(services, cert, left)?;
        match exchange_roles::proof_cmdlet(&report.roles) {
            Some((cmdlet, params)) => {
                progress.detail(format!("the app runs {cmdlet} with its own token (role group {})", report.role_group));
                let waited = exchange_roles::prove_access(services, &app, cmdlet, &params, left).await?;
                report.proof_cmdlet = Some(cmdlet.to_string());
                report.rbac_wait_ms = millis(waited);
            }
            None => progress.detail(format!(
                "no read cmdlet known for the roles [{}]: the app's access is not proven by a cmdlet",
                report.roles.join(", ")
            )),
        }
        report.requests += app.requests();
        requests += report.requests;
    }
    entry.state = OnboardingState::Onboarded;
    entry.last_check =
        Some(LastCheck { at: cba_token::jwt::rfc3339(services.now()), healthy: true, broken: Vec::new() });
    save_entry(services, store, home_ref, &mut entry)?;
    Ok(AddReport {
        tenant_id: entry.tenant_id.clone(),
        tenant_domain: entry.tenant_domain.clone(),
        state: entry.state,
        app_id: home.app_id.clone(),
        service_principal_id: entry.service_principal_id.clone(),
        grant_id: entry.grant_id.clone(),
        roles: entry.roles.clone(),
        created: outcome.created.iter().map(ToString::to_string).collect(),
        unchanged: outcome.unchanged.iter().map(ToString::to_string).collect(),
        consent_url: None,
        token_roles: Some(proof.roles),
        token_wids: proof.wids,
        pending: Vec::new(),
        exchange: exchange_report,
        fleet: store.describe(),
        requests,
        elapsed_ms: millis(services.since(started)),
    })
}

/// The customer administrator's Exchange client for `tenant_id` (already confirmed with Graph): a delegated
/// token issued in another tenant is refused before anything is sent.
async fn exchange_admin_in(
    services: &Services,
    credential: &ExchangeAdminCredential,
    tenant_id: &str,
    named: &str,
    wait: Duration,
) -> Result<exchange_roles::Exo, Error> {
    if let Some(tid) = exchange_roles::admin_token_tenant(credential)
        && !tid.eq_ignore_ascii_case(tenant_id)
    {
        // The Exchange token (CBA_EXO_ADMIN_TOKEN) of another tenant: nothing is sent with it.
        return Err(Error::WrongTenant { expected: format!("{named} ({tenant_id})"), actual: tid });
    }
    services.progress.stage(format!("the customer administrator's Exchange Online sign-in ({named})"));
    exchange_roles::admin_client(services, credential, tenant_id, wait).await
}

/// The AADSTS codes of a token request for an app that has no service principal in the tenant yet.
fn not_consented(e: &cba_token::Error) -> bool {
    e.aadsts().iter().any(|c| matches!(c, 700016 | 7000229))
}

async fn add_by_consent(
    services: &Services,
    store: &dyn FleetStore,
    home: &Profile,
    home_ref: &Home,
    request: &AddRequest,
    known: Option<CustomerTenant>,
    started: time::OffsetDateTime,
) -> Result<AddReport, Error> {
    let progress = services.progress.as_ref();
    let tenant_id = match (&known, crate::is_guid(&request.tenant)) {
        (Some(k), _) => k.tenant_id.clone(),
        (None, true) => request.tenant.to_ascii_lowercase(),
        (None, false) => services
            .tokens
            .tenant_id_of(&request.tenant)
            .await
            .map_err(Error::token_in(format!("looking up which tenant {} is", request.tenant)))?,
    };
    if tenant_id.eq_ignore_ascii_case(&home.tenant_id) {
        return Err(Error::Invalid {
            what: "tenant",
            value: request.tenant.clone(),
            reason: format!("it is the home tenant of app {:?}, not a customer tenant", home.app_name),
        });
    }
    let mut entry = known.unwrap_or_else(|| CustomerTenant::new(&tenant_id));
    if request.tenant.contains('.') && entry.tenant_domain.is_none() {
        entry.tenant_domain = Some(request.tenant.to_ascii_lowercase());
    }
    if entry.roles.is_empty() {
        entry.roles = roles_of(&request.roles);
    }
    let url = consent_url(&services.endpoints.login, &entry.tenant_id, &home.app_id);
    // A tenant that consented before: one token request says whether it still has (unless a wait is asked).
    let consented_before = matches!(entry.state, OnboardingState::Consented | OnboardingState::Onboarded);
    if !consented_before {
        entry.state = OnboardingState::AwaitingConsent;
        entry.consent_url = Some(url.clone());
        save_entry(services, store, home_ref, &mut entry)?;
        progress.stage(format!(
            "a Global Administrator of tenant {} opens this link, signs in, reviews {:?} asking for \
             Exchange.ManageAsApp, and accepts:",
            entry.label(),
            home.app_name
        ));
        progress.detail(url.clone());
    }

    let mut report = AddReport {
        tenant_id: entry.tenant_id.clone(),
        tenant_domain: entry.tenant_domain.clone(),
        state: entry.state,
        app_id: home.app_id.clone(),
        service_principal_id: entry.service_principal_id.clone(),
        grant_id: entry.grant_id.clone(),
        roles: entry.roles.clone(),
        created: Vec::new(),
        unchanged: Vec::new(),
        consent_url: Some(url.clone()),
        token_roles: None,
        token_wids: None,
        pending: vec![format!("a Global Administrator of tenant {} opens the consent URL and accepts", entry.label())],
        exchange: None,
        fleet: store.describe(),
        requests: 0,
        elapsed_ms: 0,
    };
    let Some(wait) = request.consent_wait.or(consented_before.then_some(Duration::ZERO)) else {
        report.elapsed_ms = millis(services.since(started));
        return Ok(report);
    };

    progress.stage(if wait.is_zero() {
        format!("checking the consent in tenant {} (a token request)", entry.label())
    } else {
        format!("waiting up to {} s for the consent (token requests to tenant {})", wait.as_secs(), entry.label())
    });
    let cert = request
        .credential
        .client_certificate(&entry.tenant_id, &home.app_id)
        .map_err(Error::token_in("the home app's certificate"))?;
    let policy = RetryPolicy {
        max_attempts: u32::MAX,
        initial_backoff: Duration::from_secs(2),
        max_backoff: Duration::from_secs(15),
        deadline: wait,
        ..services.retry.clone()
    };
    let scope = services.tokens.scope_for(&Resource::Exchange);
    let (outcome, stats) = cba_http::with_retry_on(
        services.clock.as_ref(),
        &policy,
        |_| services.tokens.get_token_for_scope(&cert, &scope),
        |outcome| match outcome {
            Err(e) if not_consented(e) || e.is_replication_pending() => Verdict::Retry {
                after: None,
                reason: format!(
                    "AADSTS{}: no consent in tenant {} yet",
                    e.aadsts().first().copied().unwrap_or_default(),
                    entry.tenant_id
                ),
            },
            Ok(token) if TokenClaims::of(token).readable && !TokenClaims::of(token).has_grant() => Verdict::Retry {
                after: None,
                reason: "consented; the token has no Exchange.ManageAsApp yet (replication)".into(),
            },
            _ => Verdict::Done,
        },
        |event| {
            services.progress.event(&Event::Wait {
                reason: event.reason.clone(),
                next_try_in: event.wait,
                elapsed: event.elapsed,
                remaining: wait.saturating_sub(event.elapsed + event.wait),
            })
        },
    )
    .await;
    report.requests = stats.attempts;
    let token = match outcome {
        Ok(token) => token,
        Err(e) if not_consented(&e) || e.is_replication_pending() => {
            return Err(Error::ConsentPending { tenant: entry.label(), consent_url: url, waited: stats.elapsed });
        }
        Err(source) => {
            return Err(Error::Token {
                doing: format!("getting an Exchange token as app {} in tenant {}", home.app_id, entry.label()),
                source,
            });
        }
    };
    let claims = TokenClaims::of(&token);
    entry.service_principal_id = token.decode().ok().and_then(|d| d.claim_str("oid").map(str::to_owned));
    let role_ids: Vec<String> = entry.roles.iter().map(|r| r.template_id.clone()).collect();
    let role_ids: Vec<&str> = role_ids.iter().map(String::as_str).collect();
    let has_role = claims.has_role(&role_ids);
    entry.state = if has_role == Some(true) || entry.roles.is_empty() {
        OnboardingState::Onboarded
    } else {
        OnboardingState::Consented
    };
    report.pending.clear();
    if entry.state == OnboardingState::Consented {
        for r in &entry.roles {
            report.pending.push(format!(
                "role {}: not assigned; the customer's administrator assigns it to {} (Entra admin center → Roles and \
                 administrators → {} → Add assignments), or the tenant is added again with the administrator's sign-in",
                r.role, home.app_name, r.role
            ));
        }
    }
    entry.last_check = Some(LastCheck {
        at: cba_token::jwt::rfc3339(services.now()),
        healthy: entry.state == OnboardingState::Onboarded,
        broken: if entry.state == OnboardingState::Onboarded { Vec::new() } else { vec!["role".into()] },
    });
    save_entry(services, store, home_ref, &mut entry)?;
    report.state = entry.state;
    report.service_principal_id = entry.service_principal_id.clone();
    report.token_roles = Some(claims.roles);
    report.token_wids = claims.wids;
    report.elapsed_ms = millis(services.since(started));
    Ok(report)
}

// ---- status -----------------------------------------------------------------------------------------

/// What [`status`] checks.
#[derive(Debug, Clone)]
pub struct StatusRequest {
    /// The home app's certificate.
    pub credential: Credential,
    /// Tenants checked at once.
    pub concurrency: usize,
    /// Only these tenants (ids or domains); all when `None`.
    pub tenants: Option<Vec<String>>,
    /// A tenant that has not answered within this long (wall time, retries included) is reported
    /// unconfirmed, so one tenant's outage cannot hold up the matrix for the whole retry deadline.
    pub tenant_timeout: Duration,
    /// Reads the Exchange links (service principal, membership, roles, scope) of the tenants that record a
    /// role group: the customer administrator's Exchange sign-in (a delegated token is used only in the tenant
    /// that issued it). Without one those links are unconfirmed; the app's own access is checked either way.
    pub exchange_admin: Option<ExchangeAdminCredential>,
}

/// One tenant's links (a row of the `cba fleet status` matrix, docs/cli-json.md). `None`: not confirmed (an
/// earlier link failed, or nothing could tell), which is not healthy.
#[derive(Debug, Clone, Serialize)]
pub struct TenantHealth {
    /// The tenant id.
    pub tenant_id: String,
    /// Its domain.
    pub tenant_domain: Option<String>,
    /// The onboarding state recorded.
    pub state: OnboardingState,
    /// The app has a service principal there (a token was issued).
    pub consent: Option<bool>,
    /// Exchange.ManageAsApp in the token's `roles`.
    pub grant: Option<bool>,
    /// One of the recorded roles in the token's `wids`.
    pub role: Option<bool>,
    /// An Exchange token was issued from that tenant's authority.
    pub token: Option<bool>,
    /// Get-OrganizationConfig ran (for a tenant with an Exchange role group: the read cmdlet its roles allow).
    pub exchange: Option<bool>,
    /// For a tenant with an Exchange role group: `exchange_service_principal`, `exchange_membership`,
    /// `exchange_roles`, `exchange_scope`, `exchange_access` (as `cba status`; `ok` null: not confirmed).
    pub exchange_links: Vec<Check>,
    /// Every link passed (an unconfirmed Exchange RBAC link does not fail it when the app's access is proven).
    pub healthy: bool,
    /// The first problem, in words (empty when healthy).
    pub detail: String,
    /// Requests sent.
    pub requests: u32,
    /// Time spent.
    pub elapsed_ms: u64,
}

impl TenantHealth {
    /// The links that did not pass.
    pub fn broken(&self) -> Vec<String> {
        [
            ("consent", self.consent),
            ("grant", self.grant),
            ("role", self.role),
            ("token", self.token),
            ("exchange", self.exchange),
        ]
        .into_iter()
        .filter(|(_, ok)| *ok != Some(true))
        .map(|(name, _)| name.to_string())
        .chain(
            self.exchange_links
                .iter()
                .filter(|c| c.ok == Some(false) && c.check != "exchange_access")
                .map(|c| c.check.to_string()),
        )
        .collect()
    }
}

/// Every tenant's links.
#[derive(Debug, Clone, Serialize)]
pub struct FleetStatus {
    /// Tenants checked.
    pub total: usize,
    /// Tenants with every link passing.
    pub healthy: usize,
    /// One row per tenant, in the fleet's order.
    pub tenants: Vec<TenantHealth>,
    /// Time spent.
    pub elapsed_ms: u64,
}

/// Check every selected tenant, `concurrency` at a time: a token from the tenant's authority with the home
/// app's certificate (consent, grant, role read off it or its AADSTS refusal), then Get-OrganizationConfig
/// with it. `on_row` sees each row as it completes (any order); the report has them in the fleet's order.
pub async fn status(
    services: &Services,
    fleet: &Fleet,
    request: &StatusRequest,
    mut on_row: impl FnMut(&TenantHealth),
) -> Result<FleetStatus, Error> {
    let started = services.now();
    let tenants = fleet.select(request.tenants.as_deref())?;
    let http = exchange_http(services)?;
    let app_id = fleet.home.app_id.as_str();
    let mut rows: Vec<(usize, TenantHealth)> = Vec::with_capacity(tenants.len());
    let mut checks = futures::stream::iter(tenants.iter().enumerate())
        .map(|(i, t)| {
            let http = http.clone();
            async move {
                let check = check_tenant(services, &http, app_id, request, t);
                match tokio::time::timeout(request.tenant_timeout, check).await {
                    Ok(row) => (i, row),
                    Err(_) => {
                        let mut row = empty_row(t);
                        row.detail = format!("no answer within {} s", request.tenant_timeout.as_secs());
                        row.elapsed_ms = millis(request.tenant_timeout);
                        (i, row)
                    }
                }
            }
        })
        .buffer_unordered(request.concurrency.max(1));
    while let Some((i, row)) = checks.next().await {
        on_row(&row);
        rows.push((i, row));
    }
    rows.sort_by_key(|(i, _)| *i);
    let tenants: Vec<TenantHealth> = rows.into_iter().map(|(_, r)| r).collect();
    Ok(FleetStatus {
        total: tenants.len(),
        healthy: tenants.iter().filter(|t| t.healthy).count(),
        tenants,
        elapsed_ms: millis(services.since(started)),
    })
}

/// Record each row's verdict in the fleet (one locked update for the whole run).
pub fn record_checks(services: &Services, store: &dyn FleetStore, report: &FleetStatus) -> Result<(), Error> {
    let at = cba_token::jwt::rfc3339(services.now());
    store
        .update(&mut |fleet| {
            let Some(fleet) = fleet.as_mut() else { return };
            for row in &report.tenants {
                if let Some(t) = fleet.tenants.iter_mut().find(|t| t.tenant_id.eq_ignore_ascii_case(&row.tenant_id)) {
                    t.last_check = Some(LastCheck { at: at.clone(), healthy: row.healthy, broken: row.broken() });
                }
            }
        })
        .map_err(|source| Error::Store { store: store.describe(), source })
}

/// One HTTP client for every tenant's Exchange requests (connections pooled across tenants).
fn exchange_http(services: &Services) -> Result<cba_token::reqwest::Client, Error> {
    let root = cba_http::check_endpoint(&services.endpoints.exchange).map_err(|e| Error::Invalid {
        what: "Exchange root",
        value: services.endpoints.exchange.clone(),
        reason: e.to_string(),
    })?;
    services.http.build_for(&root).map_err(|e| Error::Invalid {
        what: "HTTP configuration",
        value: String::new(),
        reason: e.to_string(),
    })
}

fn exo_client(
    services: &Services,
    http: &cba_token::reqwest::Client,
    tenant: &str,
    tokens: Arc<dyn cba_exo::TokenSource>,
) -> Result<ExoClient, Error> {
    ExoClient::builder()
        .base_url(services.endpoints.exchange.trim_end_matches('/'))
        .tenant_id(tenant)
        .token_source(tokens)
        .http_client(http.clone())
        .build()
        .map_err(|source| Error::Exchange {
            doing: format!("configuring the Exchange client for tenant {tenant}"),
            source,
        })
}

/// A row with nothing confirmed yet.
fn empty_row(tenant: &CustomerTenant) -> TenantHealth {
    TenantHealth {
        tenant_id: tenant.tenant_id.clone(),
        tenant_domain: tenant.tenant_domain.clone(),
        state: tenant.state,
        consent: None,
        grant: None,
        role: None,
        token: None,
        exchange: None,
        exchange_links: Vec::new(),
        healthy: false,
        detail: String::new(),
        requests: 0,
        elapsed_ms: 0,
    }
}

async fn check_tenant(
    services: &Services,
    http: &cba_token::reqwest::Client,
    app_id: &str,
    request: &StatusRequest,
    tenant: &CustomerTenant,
) -> TenantHealth {
    let credential = &request.credential;
    let started = services.now();
    let mut row = empty_row(tenant);
    let finish = |mut row: TenantHealth| {
        row.healthy = [row.consent, row.grant, row.role, row.token, row.exchange].iter().all(|c| *c == Some(true))
            && row.exchange_links.iter().all(|c| c.ok != Some(false));
        row.elapsed_ms = millis(services.since(started));
        row
    };
    let cert = match credential.client_certificate(&tenant.tenant_id, app_id) {
        Ok(cert) => cert,
        Err(e) => {
            row.detail = format!("the home app's certificate: {e}");
            return finish(row);
        }
    };
    row.requests += 1;
    let token = match services.tokens.get_token(&cert, &Resource::Exchange).await {
        Ok(token) => token,
        Err(e) => {
            row.token = Some(false);
            if not_consented(&e) {
                row.consent = Some(false);
                row.detail = format!("no consent: the app has no service principal in this tenant ({})", codes(&e));
            } else {
                row.detail = format!("token refused: {}", one_line(&chain_of(&e)));
            }
            return finish(row);
        }
    };
    row.token = Some(true);
    row.consent = Some(true);
    let claims = TokenClaims::of(&token);
    let role_ids: Vec<&str> = tenant.roles.iter().map(|r| r.template_id.as_str()).collect();
    if claims.readable {
        row.grant = Some(claims.has_grant());
        row.role = if role_ids.is_empty() { Some(true) } else { claims.has_role(&role_ids) };
    }
    if row.grant == Some(false) {
        row.detail = "the token has no Exchange.ManageAsApp in `roles`: the grant is missing".into();
    } else if row.role == Some(false) {
        let names: Vec<&str> = tenant.roles.iter().map(|r| r.role.as_str()).collect();
        row.detail =
            format!("the token's `wids` hold none of the roles {}: the role assignment is missing", names.join(", "));
    } else if row.role.is_none() {
        row.detail = "the token carries no `wids`: the role cannot be confirmed".into();
    }
    // Least privilege: with a role group and no Entra role kept, an Entra role in the token undoes it.
    let extra_wids = claims.wids.as_ref().filter(|w| !w.is_empty());
    if let (Some(_), true, Some(wids), Some(true)) = (&tenant.exchange, role_ids.is_empty(), extra_wids, row.grant) {
        row.role = Some(false);
        row.detail = format!(
            "the token carries Entra directory roles (wids [{}]) besides the Exchange role group: remove the role \
             assignment in that tenant, or keep it on purpose (fleet add --role R --keep-entra-role)",
            wids.join(", ")
        );
    }
    let tokens: Arc<dyn cba_exo::TokenSource> = Arc::new(cba_http::StaticToken::new(token.secret()));
    if let Some(recorded) = &tenant.exchange {
        exchange_links(services, http, app_id, request, tenant, recorded, tokens, &mut row).await;
        return finish(row);
    }
    match exo_client(services, http, &tenant.tenant_id, tokens) {
        Ok(exo) => {
            row.requests += 1;
            match exo.collect_all("Get-OrganizationConfig", &Parameters::new()).await {
                Ok(_) => row.exchange = Some(true),
                Err(e) => {
                    row.exchange = Some(false);
                    if row.role.is_none() && row.grant == Some(true) && e.is_permission() && !role_ids.is_empty() {
                        // No `wids` (Entra leaves the claim out when no directory role is assigned) and
                        // Exchange refuses the app: the role assignment is what is missing.
                        row.role = Some(false);
                        row.detail = format!(
                            "no role: the token carries no `wids` and Exchange refused the app ({})",
                            one_line(&chain_of(&e))
                        );
                    }
                    if row.detail.is_empty() {
                        row.detail = format!("Exchange: {}", one_line(&chain_of(&e)));
                    }
                }
            }
        }
        Err(e) => row.detail = e.to_string(),
    }
    finish(row)
}

/// The Exchange links of a tenant that records a role group: read with the customer administrator's Exchange
/// sign-in when there is one for this tenant, the app's access with its own token; `row.exchange` is that access.
#[allow(clippy::too_many_arguments, reason = "one private step of `check_tenant`")]
async fn exchange_links(
    services: &Services,
    http: &cba_token::reqwest::Client,
    app_id: &str,
    request: &StatusRequest,
    tenant: &CustomerTenant,
    recorded: &ExchangeProfile,
    tokens: Arc<dyn cba_exo::TokenSource>,
    row: &mut TenantHealth,
) {
    let app = match exo_client(services, http, &tenant.tenant_id, tokens) {
        Ok(exo) => exchange_roles::Exo::new(exo, format!("app {app_id}")),
        Err(e) => {
            row.detail = e.to_string();
            return;
        }
    };
    let mut no_reader = None;
    let reader = match &request.exchange_admin {
        Some(credential) => match exchange_roles::admin_token_tenant(credential) {
            Some(tid) if !tid.eq_ignore_ascii_case(&tenant.tenant_id) => {
                no_reader = Some(format!("the Exchange admin token is for tenant {tid}"));
                None
            }
            _ => match exchange_roles::admin_client(services, credential, &tenant.tenant_id, request.tenant_timeout)
                .await
            {
                Ok(exo) => Some(exo),
                Err(e) => {
                    no_reader = Some(one_line(&chain_of(&e)));
                    None
                }
            },
        },
        None => None,
    };
    let mut links = exchange_roles::checks(reader.as_ref(), Some(&app), app_id, recorded).await;
    if let Some(why) = no_reader {
        for c in links.iter_mut().filter(|c| c.ok.is_none() && c.check != "exchange_access") {
            c.detail = format!("not confirmed: {why}");
        }
    }
    row.requests += app.requests() + reader.as_ref().map_or(0, exchange_roles::Exo::requests);
    row.exchange = links.iter().find(|c| c.check == "exchange_access").and_then(|c| c.ok);
    if row.detail.is_empty()
        && let Some(bad) = links
            .iter()
            .find(|c| c.ok == Some(false))
            .or_else(|| links.iter().find(|c| c.check == "exchange_access" && c.ok.is_none()))
    {
        row.detail = format!("{}: {}", bad.check, one_line(&bad.detail));
    }
    row.exchange_links = links;
}

/// `AADSTS700016, AADSTS7000229`.
fn codes(e: &cba_token::Error) -> String {
    e.aadsts().iter().map(|c| format!("AADSTS{c}")).collect::<Vec<_>>().join(", ")
}

/// The first line of a message (a row of the matrix stays one line; the rest is in `-v` logs).
fn one_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_string()
}

fn chain_of(e: &(dyn std::error::Error + 'static)) -> String {
    crate::status::chain(e)
}

// ---- remove -----------------------------------------------------------------------------------------

/// What [`remove`] did.
#[derive(Debug, Clone, Serialize)]
pub struct RemoveReport {
    /// The tenant id.
    pub tenant_id: String,
    /// The app's service principal, grant and roles are gone from the tenant, and the entry from the fleet.
    pub removed: bool,
    /// Steps that deleted something (with an admin sign-in).
    pub deleted: Vec<String>,
    /// Steps whose object was already gone.
    pub already_gone: Vec<String>,
    /// Without an admin sign-in: what the customer's admin does to remove the app.
    pub customer_steps: Vec<String>,
    /// What was removed from the tenant's Exchange (null when the entry records no role group).
    pub exchange: Option<ExchangeTeardown>,
    /// Where the fleet is kept.
    pub fleet: String,
}

/// Take the app out of a customer tenant. With `admin` (confirmed to act in that tenant first): remove what cba
/// made in the tenant's Exchange when the entry records a role group (with `exchange_admin`, required then:
/// the membership, the group and scope cba made, the Exchange service principal), delete its role
/// assignments, grant and service principal there, then the fleet entry. Without: if a token from that
/// tenant is refused for want of a service principal, the customer already removed it and the entry goes;
/// else the entry is marked `removal_requested` and the report says what the customer's admin does.
pub async fn remove(
    services: &Services,
    store: &dyn FleetStore,
    home: &Profile,
    admin_credential: Option<&AdminCredential>,
    exchange_admin: Option<&ExchangeAdminCredential>,
    credential: &Credential,
    tenant: &str,
) -> Result<RemoveReport, Error> {
    let fleet = store.load().map_err(|source| Error::Store { store: store.describe(), source })?;
    let entry = fleet
        .as_ref()
        .and_then(|f| f.tenant(tenant))
        .cloned()
        .ok_or_else(|| Error::NotInFleet { tenant: tenant.to_string(), app_name: home.app_name.clone() })?;
    let home_ref = fleet.map(|f| f.home).unwrap_or_else(|| Home::of(home, String::new()));
    let mut report = RemoveReport {
        tenant_id: entry.tenant_id.clone(),
        removed: false,
        deleted: Vec::new(),
        already_gone: Vec::new(),
        customer_steps: Vec::new(),
        exchange: None,
        fleet: store.describe(),
    };
    let drop_entry = |report: &mut RemoveReport| {
        let id = entry.tenant_id.clone();
        store
            .update(&mut |fleet| {
                if let Some(fleet) = fleet.as_mut() {
                    fleet.remove(&id);
                }
            })
            .map_err(|source| Error::Store { store: store.describe(), source })?;
        report.removed = true;
        Ok::<_, Error>(())
    };
    match admin_credential {
        Some(admin_credential) => {
            let session = admin::sign_in(services, admin_credential, &entry.tenant_id).await?;
            let graph = services.graph(session.tokens.clone(), Duration::from_secs(120))?;
            admin::confirm_tenant(services, &graph, &session, &entry.tenant_id).await?;
            let progress = services.progress.as_ref();
            if let Some(recorded) = &entry.exchange {
                let Some(exchange_admin) = exchange_admin else {
                    return Err(Error::Invalid {
                        what: "Exchange sign-in",
                        value: entry.label(),
                        reason: format!(
                            "the fleet entry records the Exchange role group {:?} cba joined there: pass the customer \
                             administrator's Exchange sign-in (--exchange-admin, or CBA_EXO_ADMIN_TOKEN) so it is \
                             removed too",
                            recorded.role_group
                        ),
                    });
                };
                let wait = Duration::from_secs(300);
                let exo = exchange_admin_in(services, exchange_admin, &entry.tenant_id, &entry.label(), wait).await?;
                progress.stage(format!("removing what cba made in the Exchange of tenant {}", entry.label()));
                let out = exchange_roles::teardown(&exo, &home.app_id, recorded).await?;
                for r in &out.removed {
                    progress.detail(format!("{r}: removed"));
                }
                let mut left = entry.clone();
                left.exchange = None;
                save_entry(services, store, &home_ref, &mut left)?;
                report.exchange = Some(out);
            }
            let outcome = provision::remove_from_tenant(&graph, &home.app_id, |event| {
                if let GraphEvent::Finished { step, change, id } = event {
                    let verb = if *change == Change::Removed { "removed" } else { "already gone" };
                    progress.detail(format!("{step}: {verb} {id}"));
                }
            })
            .await
            .map_err(Error::graph_in(format!(
                "removing app {} from tenant {}",
                home.app_id,
                entry.label()
            )))?;
            report.deleted = outcome.removed.iter().map(ToString::to_string).collect();
            report.already_gone = outcome.already_gone.iter().map(ToString::to_string).collect();
            drop_entry(&mut report)?;
        }
        None => {
            let cert = credential
                .client_certificate(&entry.tenant_id, &home.app_id)
                .map_err(Error::token_in("the home app's certificate"))?;
            match services.tokens.get_token(&cert, &Resource::Exchange).await {
                Err(e) if not_consented(&e) => {
                    report.already_gone.push(Step::ServicePrincipal.to_string());
                    drop_entry(&mut report)?;
                }
                _ => {
                    let mut marked = entry.clone();
                    marked.state = OnboardingState::RemovalRequested;
                    save_entry(services, store, &home_ref, &mut marked)?;
                    report.customer_steps = vec![
                        format!(
                            "a Global Administrator (or Cloud Application Administrator) of tenant {} deletes the \
                             enterprise application {:?} (appId {}): Entra admin center → Enterprise applications → \
                             {} → Properties → Delete",
                            entry.label(),
                            home.app_name,
                            home.app_id,
                            home.app_name
                        ),
                        format!(
                            "or in PowerShell: Connect-MgGraph -TenantId {} -Scopes Application.ReadWrite.All; \
                             Remove-MgServicePrincipal -ServicePrincipalId (Get-MgServicePrincipal -Filter \"appId eq '{}'\").Id",
                            entry.tenant_id, home.app_id
                        ),
                    ];
                    if let Some(x) = &entry.exchange {
                        report.customer_steps.push(format!(
                            "and in Exchange Online PowerShell (Connect-ExchangeOnline -Organization {}): \
                             Remove-RoleGroupMember -Identity {:?} -Member {}; Remove-ServicePrincipal -Identity {}{}",
                            entry.tenant_domain.as_deref().unwrap_or(&entry.tenant_id),
                            x.role_group,
                            x.service_principal,
                            home.app_id,
                            if x.role_group_created {
                                format!("; Remove-RoleGroup -Identity {:?}", x.role_group)
                            } else {
                                String::new()
                            }
                        ));
                    }
                }
            }
        }
    }
    Ok(report)
}

// ---- fan-out ----------------------------------------------------------------------------------------

/// What arrives from a [`fan_out`] run, tenant by tenant, as it arrives.
#[derive(Debug)]
#[non_exhaustive]
pub enum FanOutEvent {
    /// A page of the cmdlet's output in `tenant`.
    Page {
        /// The tenant id.
        tenant: Arc<str>,
        /// The objects, as the service sent them.
        page: RawPage,
    },
    /// The cmdlet finished in `tenant`.
    Done {
        /// The tenant id.
        tenant: Arc<str>,
        /// Objects returned.
        objects: usize,
        /// Time spent in that tenant.
        elapsed: Duration,
    },
    /// The cmdlet (or its token) failed in `tenant`; the other tenants go on.
    Failed {
        /// The tenant id.
        tenant: Arc<str>,
        /// Why.
        error: Box<Error>,
    },
}

/// A per-tenant Exchange event (warnings, non-terminating errors, retries), tagged with its tenant.
pub type ExchangeObserver = Arc<dyn Fn(&str, &cba_exo::Event<'_>) + Send + Sync>;

/// What [`fan_out`] runs.
#[derive(Clone)]
pub struct FanOut {
    /// The cmdlet.
    pub cmdlet: String,
    /// Its parameters.
    pub params: Parameters,
    /// Objects per page.
    pub page_size: u32,
    /// Tenants run at once.
    pub concurrency: usize,
    /// Sees each tenant's Exchange events.
    pub observer: Option<ExchangeObserver>,
}

impl std::fmt::Debug for FanOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanOut")
            .field("cmdlet", &self.cmdlet)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// Run a cmdlet in every one of `tenants`, `concurrency` tenants at a time, each with its own token (from
/// that tenant's authority with the home app's certificate, held for the run and renewed once when refused)
/// and its own retries: a throttled tenant waits out its Retry-After while the others go on. The stream
/// yields pages as they arrive, tagged with their tenant, then `Done` or `Failed` per tenant. A write cmdlet
/// is sent once per tenant (cba-exo's single-send rule: an ambiguous failure is reported, not resent).
pub fn fan_out(
    services: &Services,
    app_id: &str,
    credential: &Credential,
    tenants: &[CustomerTenant],
    run: &FanOut,
) -> Result<Pin<Box<dyn Stream<Item = FanOutEvent> + Send>>, Error> {
    // One context for every tenant; per tenant only its id until its turn comes (a certificate credential,
    // token source and client are made then and dropped when it ends), so memory follows the concurrency,
    // not the fleet's size.
    let shared = Arc::new(Shared {
        services: services.clone(),
        http: exchange_http(services)?,
        app_id: app_id.to_string(),
        credential: credential.clone(),
        run: run.clone(),
    });
    let streams: Vec<_> =
        tenants.iter().map(|t| tenant_stream(shared.clone(), Arc::from(t.tenant_id.as_str()))).collect();
    Ok(Box::pin(futures::stream::iter(streams).flatten_unordered(run.concurrency.max(1))))
}

/// What every tenant of a [`fan_out`] run shares.
struct Shared {
    services: Services,
    http: cba_token::reqwest::Client,
    app_id: String,
    credential: Credential,
    run: FanOut,
}

type Pages = Pin<Box<dyn Stream<Item = Result<RawPage, cba_exo::Error>> + Send>>;

/// One tenant's run: nothing until first polled, then its pages, then `Done` or `Failed`.
fn tenant_stream(shared: Arc<Shared>, tenant: Arc<str>) -> Pin<Box<dyn Stream<Item = FanOutEvent> + Send>> {
    enum Phase {
        Start(Arc<Shared>),
        Running(Pages, time::OffsetDateTime, Arc<Shared>),
        Over,
    }
    let failed = |tenant: &Arc<str>, doing: String, source: cba_exo::Error| FanOutEvent::Failed {
        tenant: tenant.clone(),
        error: Box::new(Error::Exchange { doing, source }),
    };
    let stream =
        futures::stream::unfold((Phase::Start(shared), tenant, 0usize), move |(phase, tenant, objects)| async move {
            let (mut pages, started, shared) = match phase {
                Phase::Over => return None,
                Phase::Running(pages, started, shared) => (pages, started, shared),
                Phase::Start(shared) => {
                    let started = shared.services.now();
                    let cert = match shared.credential.client_certificate(&tenant, &shared.app_id) {
                        Ok(cert) => cert,
                        Err(source) => {
                            let error = Box::new(Error::Token { doing: "the home app's certificate".into(), source });
                            return Some((
                                FanOutEvent::Failed { tenant: tenant.clone(), error },
                                (Phase::Over, tenant, 0),
                            ));
                        }
                    };
                    let source = CertificateTokenSource::new(shared.services.tokens.clone(), cert, &Resource::Exchange);
                    let mut builder = ExoClient::builder()
                        .base_url(shared.services.endpoints.exchange.trim_end_matches('/'))
                        .tenant_id(tenant.to_string())
                        .token_source(Arc::new(source))
                        .http_client(shared.http.clone())
                        .page_size(shared.run.page_size);
                    if let Some(observer) = shared.run.observer.clone() {
                        let t = tenant.clone();
                        builder = builder.on_event(move |e| observer(&t, e));
                    }
                    match builder.build() {
                        Ok(exo) => {
                            let pages: Pages = Box::pin(exo.invoke_pages(&shared.run.cmdlet, &shared.run.params));
                            (pages, started, shared)
                        }
                        Err(source) => {
                            let event = failed(&tenant, format!("configuring Exchange for tenant {tenant}"), source);
                            return Some((event, (Phase::Over, tenant, objects)));
                        }
                    }
                }
            };
            match pages.next().await {
                Some(Ok(page)) => {
                    let n = objects + page.len();
                    let event = FanOutEvent::Page { tenant: tenant.clone(), page };
                    Some((event, (Phase::Running(pages, started, shared), tenant, n)))
                }
                Some(Err(source)) => {
                    let event = failed(&tenant, format!("in tenant {tenant}"), source);
                    Some((event, (Phase::Over, tenant, objects)))
                }
                None => {
                    let elapsed = shared.services.since(started);
                    Some((
                        FanOutEvent::Done { tenant: tenant.clone(), objects, elapsed },
                        (Phase::Over, tenant, objects),
                    ))
                }
            }
        });
    Box::pin(stream)
}

// ---- proof across tenants (rotation) -----------------------------------------------------------------

/// A certificate's proof in one tenant.
#[derive(Debug, Clone, Serialize)]
pub struct TenantProof {
    /// The tenant id.
    pub tenant_id: String,
    /// A token with Exchange.ManageAsApp was issued.
    pub ok: bool,
    /// What went wrong, when not ok.
    pub detail: Option<String>,
}

/// Prove `credential` (say a rotation's new certificate) in each of `tenants`, `concurrency` at a time: an
/// Exchange token from that tenant's authority, waiting out replication (AADSTS700027: the new key not known
/// yet) up to `wait`. One row per tenant, in the given order.
pub async fn prove_in(
    services: &Services,
    app_id: &str,
    credential: &Credential,
    tenants: &[CustomerTenant],
    concurrency: usize,
    wait: Duration,
) -> Vec<TenantProof> {
    let mut rows: Vec<(usize, TenantProof)> = futures::stream::iter(tenants.iter().enumerate())
        .map(|(i, t)| async move {
            let proof = match credential.client_certificate(&t.tenant_id, app_id) {
                Ok(cert) => crate::prove(services, &cert, wait, &[]).await.map(drop),
                Err(e) => Err(Error::Token { doing: "the certificate".into(), source: e }),
            };
            let detail = proof.as_ref().err().map(|e| chain_of(e));
            (i, TenantProof { tenant_id: t.tenant_id.clone(), ok: proof.is_ok(), detail })
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    rows.sort_by_key(|(i, _)| *i);
    rows.into_iter().map(|(_, r)| r).collect()
}
