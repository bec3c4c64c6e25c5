//! The public face: [`SimTenant`] and its builder, seeding shortcuts and inspection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cba_cert::Certificate;
use serde::Serialize;
use serde_json::Map;

use crate::clock::Clock;
use crate::config::{DuplicateRoleAssignment, Knobs, Service};
use crate::inspect::{self, RequestRecord, StateSnapshot};
use crate::serve::Server;
use crate::server::Shared;
use crate::state::{
    AppRoleAssignment, Application, DeviceCodeStatus, FailAfterCommit, KeyCred, RoleAssignment, ServicePrincipal,
    State, Tenant,
};
use crate::wellknown::{self, ADMIN_SCOPES, EXCHANGE_APP_ID, MANAGE_AS_APP_ROLE_ID};
use crate::{ids, login};

/// The public client id the builder's admin token names (Microsoft Graph Command Line Tools).
pub(crate) const ADMIN_CLIENT_ID: &str = "14d82eec-204b-4c2f-b7e8-296a70dab67e";

/// The delegated scopes of the builder's admin tokens: the setup scopes and User.Read (for `GET /organization`).
pub(crate) fn admin_scopes() -> Vec<String> {
    ADMIN_SCOPES.iter().map(|s| s.to_string()).chain(std::iter::once("User.Read".to_string())).collect()
}

/// Why a sim could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The loopback port could not be bound.
    #[error("cannot listen on 127.0.0.1:{port}; choose another --port or omit it for a free one")]
    Bind {
        /// The port asked for (0: any).
        port: u16,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A tenant name that cannot be an `onmicrosoft.com` label, or a tenant id that is not a GUID.
    #[error(
        "invalid tenant {0:?}: names are letters, digits and '-' (they become <name>.onmicrosoft.com), ids are GUIDs"
    )]
    InvalidTenant(String),
    /// Two tenants with the same name or id.
    #[error("tenant {0:?} is configured twice")]
    DuplicateTenant(String),
}

#[derive(Debug, Clone)]
struct TenantSpec {
    name: String,
    id: Option<String>,
    domain: Option<String>,
}

impl TenantSpec {
    fn named(name: &str) -> TenantSpec {
        TenantSpec { name: name.to_string(), id: None, domain: None }
    }
}

/// Configures a [`SimTenant`]. Every knob has a realistic default; see the crate docs for the list.
#[derive(Debug, Clone)]
#[must_use]
pub struct SimTenantBuilder {
    tenants: Vec<TenantSpec>,
    pub(crate) knobs: Knobs,
    clock_offset: time::Duration,
    port: u16,
}

impl Default for SimTenantBuilder {
    fn default() -> Self {
        SimTenantBuilder {
            tenants: vec![TenantSpec::named("contoso")],
            knobs: Knobs::default(),
            clock_offset: time::Duration::ZERO,
            port: 0,
        }
    }
}

impl SimTenantBuilder {
    /// Name of the primary tenant (default `contoso`): its domain becomes `<name>.onmicrosoft.com`.
    pub fn tenant_name(mut self, name: &str) -> Self {
        self.tenants[0].name = name.to_string();
        self
    }

    /// Fixed id (GUID) for the primary tenant (default: random).
    pub fn tenant_id(mut self, id: &str) -> Self {
        self.tenants[0].id = Some(id.to_string());
        self
    }

    /// Primary domain of the primary tenant (default `<name>.onmicrosoft.com`).
    pub fn tenant_domain(mut self, domain: &str) -> Self {
        self.tenants[0].domain = Some(domain.to_string());
        self
    }

    /// Add another tenant (random id, `<name>.onmicrosoft.com`), with its own admin and pre-seeded objects.
    pub fn tenant(mut self, name: &str) -> Self {
        self.tenants.push(TenantSpec::named(name));
        self
    }

    /// Add `n` customer tenants for a service provider's fleet: `customer0001` … (domains
    /// `customerNNNN.onmicrosoft.com`, at least four digits), each with its own id, admin and pre-seeded objects,
    /// after the tenants named so far. The primary tenant stands for the provider. Cheap: a tenant holds a few
    /// KiB (mailboxes are generated on the fly), so thousands start in well under a second.
    pub fn customer_tenants(mut self, n: usize) -> Self {
        let width = n.to_string().len().max(4);
        self.tenants.extend((1..=n).map(|i| TenantSpec::named(&format!("customer{i:0width$}"))));
        self
    }

    /// Listen on this loopback port (default: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Delay every answer of the simulated services (login, Graph, Exchange) by this much.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.knobs.latency = latency;
        self
    }

    /// Objects created through Graph stay invisible to reads, dependent writes and token requests this long.
    pub fn replication_delay(mut self, delay: Duration) -> Self {
        self.knobs.replication_delay = delay;
        self
    }

    /// Deletes (applications, service principals, grants, role assignments) and removeKey reach reads, the
    /// token endpoint and tokens' claims only this long after they were answered (default 0: at once). Writes
    /// see them at once. Opt-in, because code that expects an immediate 404 after a delete is the norm in
    /// tests; Entra's deletes do replicate like its creates.
    pub fn delete_replication_delay(mut self, delay: Duration) -> Self {
        self.knobs.delete_replication_delay = delay;
        self
    }

    /// Carry out the first `n` successful Graph writes (POST, PATCH, PUT, DELETE), then answer each 500 as
    /// if the connection died with the answer in flight (a crash-in-flight test aid; default 0). See also
    /// [`SimTenant::fail_after_commit`].
    pub fn fail_after_commit(mut self, n: u64) -> Self {
        self.knobs.fail_after_commit = n;
        self
    }

    /// Answer every `k`-th request with 429 + `Retry-After` (0: never).
    pub fn throttle_every(mut self, k: u64) -> Self {
        self.knobs.throttle.every = k;
        self
    }

    /// Answer the first `n` requests with 429 + `Retry-After`.
    pub fn throttle_burst(mut self, n: u64) -> Self {
        self.knobs.throttle.burst = n;
        self
    }

    /// The `Retry-After` of throttled and 503 answers (whole seconds, default 1).
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.knobs.retry_after_secs = after.as_secs();
        self
    }

    /// Answer every `k`-th request with 503 (0: never).
    pub fn fail_5xx_every(mut self, k: u64) -> Self {
        self.knobs.fail_5xx.every = k;
        self
    }

    /// Answer the first `n` requests with 503.
    pub fn fail_5xx_burst(mut self, n: u64) -> Self {
        self.knobs.fail_5xx.burst = n;
        self
    }

    /// Which services the throttling and 5xx knobs apply to (default: all three). Requests are counted per
    /// sim over these services only.
    pub fn fault_services(mut self, services: impl IntoIterator<Item = Service>) -> Self {
        self.knobs.fault_services = services.into_iter().collect();
        self
    }

    /// Shift the sim's clock (positive: the sim is ahead of this machine).
    pub fn clock_offset(mut self, offset: time::Duration) -> Self {
        self.clock_offset = offset;
        self
    }

    /// Lifetime of the access tokens the sim issues (default 3599 s).
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.knobs.token_lifetime_secs = lifetime.as_secs() as i64;
        self
    }

    /// Clock skew tolerated on client assertions' `nbf`/`exp` (default 5 minutes).
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.knobs.clock_skew_secs = skew.as_secs() as i64;
        self
    }

    /// Longest accepted client assertion (`exp` − `nbf`, default 10 minutes).
    pub fn max_assertion_lifetime(mut self, lifetime: Duration) -> Self {
        self.knobs.max_assertion_lifetime_secs = lifetime.as_secs() as i64;
        self
    }

    /// Refuse a client assertion without `nbf` with AADSTS700024 (default true: certificate-credentials.md
    /// lists `nbf` as required; whether Entra enforces it is UNVERIFIED).
    pub fn require_assertion_nbf(mut self, require: bool) -> Self {
        self.knobs.require_assertion_nbf = require;
        self
    }

    /// Refuse a client assertion whose `jti` was already redeemed, and one without `jti` (default true).
    pub fn reject_replayed_jti(mut self, reject: bool) -> Self {
        self.knobs.reject_replayed_jti = reject;
        self
    }

    /// Also accept the v1 token URL (`{login}/{tenant}/oauth2/token`) as assertion `aud` (default false).
    pub fn accept_v1_assertion_audience(mut self, accept: bool) -> Self {
        self.knobs.accept_v1_assertion_audience = accept;
        self
    }

    /// A device code is approved this long after it was issued (default 0: at the first poll).
    pub fn device_code_delay(mut self, delay: Duration) -> Self {
        self.knobs.device_code_delay = delay;
        self
    }

    /// Whether device codes are approved automatically after the delay (default true). When false, only
    /// [`SimTenant::approve_device_code`] approves them.
    pub fn device_code_auto_approve(mut self, auto: bool) -> Self {
        self.knobs.device_code_auto_approve = auto;
        self
    }

    /// The polling `interval` the device-code answer announces; polling faster gets `slow_down` (default 5 s).
    pub fn device_code_interval(mut self, interval: Duration) -> Self {
        self.knobs.device_code_interval_secs = interval.as_secs();
        self
    }

    /// Device-code lifetime (default 900 s).
    pub fn device_code_expires_in(mut self, expires_in: Duration) -> Self {
        self.knobs.device_code_expires_in_secs = expires_in.as_secs();
        self
    }

    /// Mailboxes per tenant for Get-Mailbox (default 5; generated on the fly, so 10,000 is cheap).
    pub fn mailboxes(mut self, count: usize) -> Self {
        self.knobs.mailboxes = count;
        self
    }

    /// Status for a duplicate directory role assignment (UNVERIFIED; default 400).
    pub fn duplicate_role_assignment(mut self, answer: DuplicateRoleAssignment) -> Self {
        self.knobs.duplicate_role_assignment = answer;
        self
    }

    /// The first `n` successful Exchange write cmdlets (Set-Mailbox, the New-/Remove-/Add- RBAC cmdlets,
    /// Enable-OrganizationCustomization) are carried out, then answered 500
    /// InternalServerError without `Retry-After`, as when the service fails after doing the work: a client that
    /// sends such a write again does it twice (default 0).
    pub fn exchange_fail_after_execute(mut self, n: u64) -> Self {
        self.knobs.exchange_fail_after_execute = n;
        self
    }

    /// How long after Graph reads and tokens see a directory role assignment Exchange starts honouring it
    /// (default: the [`replication_delay`](Self::replication_delay), so a role assigned through Graph works in
    /// Exchange twice that long after the write). Exchange authorizes from its own copy of the directory, not
    /// from the token's `wids`: a token minted while the role was already visible is still refused until then,
    /// and a deleted role stops working once the delete has replicated, whatever the token says. Seeded roles
    /// are effective at once.
    pub fn exchange_role_delay(mut self, delay: Duration) -> Self {
        self.knobs.exchange_role_delay = Some(delay);
        self
    }

    /// Whether Exchange refuses a request whose `X-AnchorMailbox` is missing or names another tenant (default
    /// true): app-only tokens need `APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@{tenant id or
    /// domain}`, delegated ones `UPN:<the token's upn>`. The real service's answer is UNVERIFIED (crate docs).
    pub fn require_anchor_mailbox(mut self, require: bool) -> Self {
        self.knobs.require_anchor_mailbox = require;
        self
    }

    /// How long an Exchange role-group membership change (Add-/Remove-RoleGroupMember, Remove-RoleGroup,
    /// Remove-ServicePrincipal) takes to reach app-only authorization (default 0). The RBAC read cmdlets show
    /// the change at once; the app's cmdlets are allowed or refused by the old membership until then.
    pub fn exchange_rbac_delay(mut self, delay: Duration) -> Self {
        self.knobs.exchange_rbac_delay = delay;
        self
    }

    /// Exchange organizations start dehydrated (default false): New-RoleGroup is refused with
    /// InvalidOperationInDehydratedContextException until Enable-OrganizationCustomization has completed, and
    /// Get-OrganizationConfig reports `IsDehydrated: true`.
    pub fn dehydrated(mut self, dehydrated: bool) -> Self {
        self.knobs.dehydrated = dehydrated;
        self
    }

    /// How long Enable-OrganizationCustomization takes to complete (default 0: at once).
    pub fn enable_customization_delay(mut self, delay: Duration) -> Self {
        self.knobs.enable_customization_delay = delay;
        self
    }

    /// Whether opening the admin-consent page (`{login}/{tenant}/adminconsent?client_id=…`) consents at once
    /// (default false: the consent waits for [`SimTenant::approve_consent`] or `POST /_sim/consent`, the customer
    /// admin's click on Accept).
    pub fn admin_consent_auto_approve(mut self, auto: bool) -> Self {
        self.knobs.admin_consent_auto_approve = auto;
        self
    }

    /// Start the sim.
    ///
    /// # Panics
    /// When the configuration is invalid or the port cannot be bound; use [`SimTenantBuilder::try_start`] to
    /// get the error instead.
    pub async fn start(self) -> SimTenant {
        match self.try_start().await {
            Ok(sim) => sim,
            Err(e) => panic!("cba-sim failed to start: {e}"),
        }
    }

    /// Start the sim, or say why it cannot.
    pub async fn try_start(self) -> Result<SimTenant, SimError> {
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        for spec in &self.tenants {
            let label_ok = !spec.name.is_empty()
                && spec.name.len() <= 48
                && spec.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !label_ok {
                return Err(SimError::InvalidTenant(spec.name.clone()));
            }
            if let Some(id) = &spec.id
                && !ids::is_guid(id)
            {
                return Err(SimError::InvalidTenant(id.clone()));
            }
            if !seen.insert(spec.name.to_ascii_lowercase()) {
                return Err(SimError::DuplicateTenant(spec.name.clone()));
            }
        }
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port))
            .map_err(|source| SimError::Bind { port: self.port, source })?;
        // The signing key is made once per process (~100 ms of RSA key generation): off the async threads.
        let _ = tokio::task::spawn_blocking(crate::jwt::signing_key).await;
        let bind_error = |source| SimError::Bind { port: self.port, source };
        let base_url = format!("http://{}", listener.local_addr().map_err(bind_error)?);
        let clock = Clock::new(self.clock_offset);
        let mut state = State::default();
        if self.knobs.fail_after_commit > 0 {
            state.fail_after_commit.push(FailAfterCommit::parse(self.knobs.fail_after_commit, "*"));
        }
        state.exchange.fail_after_execute = self.knobs.exchange_fail_after_execute;
        state.exchange.dehydrated = self.knobs.dehydrated;
        let mut tenants = Vec::new();
        for spec in &self.tenants {
            let id = spec.id.clone().map(|i| i.to_ascii_lowercase()).unwrap_or_else(ids::guid);
            let domain =
                spec.domain.clone().unwrap_or_else(|| format!("{}.onmicrosoft.com", spec.name.to_ascii_lowercase()));
            if state.tenant_index(&id).is_some() || state.tenant_index(&domain).is_some() {
                return Err(SimError::DuplicateTenant(id));
            }
            state.add_tenant(Tenant::new(id.clone(), spec.name.clone(), domain.clone(), self.knobs.mailboxes));
            tenants.push(TenantInfo { id, name: spec.name.clone(), domain });
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            knobs: self.knobs,
            clock,
            base_url,
            vault: Mutex::new(crate::keyvault::Vault::new()),
        });
        let server = Server::start(listener, shared.clone()).map_err(bind_error)?;
        Ok(SimTenant { server, shared, tenants })
    }
}

/// A tenant held by a sim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TenantInfo {
    /// Tenant id (GUID).
    pub id: String,
    /// Short name.
    pub name: String,
    /// Primary domain.
    pub domain: String,
}

/// An app registered by a seeding shortcut, with its service principal in [`SeededApp::tenant_id`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SeededApp {
    /// The tenant the service principal lives in.
    pub tenant_id: String,
    /// Client id.
    pub app_id: String,
    /// Application object id (in the app's home tenant).
    pub object_id: String,
    /// Service principal object id (in `tenant_id`).
    pub service_principal_id: String,
}

/// What `cba sim serve` prints: the roots and credentials a client needs.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// Stands for `https://login.microsoftonline.com`.
    pub login_url: String,
    /// Stands for `https://graph.microsoft.com` (requests add `/v1.0`).
    pub graph_url: String,
    /// Stands for `https://outlook.office365.com`.
    pub exchange_url: String,
    /// Primary tenant id.
    pub tenant_id: String,
    /// Primary tenant domain.
    pub tenant_domain: String,
    /// Delegated Graph token of the primary tenant's admin.
    pub admin_token: String,
    /// Delegated Exchange token of the primary tenant's admin (anchor `UPN:admin@<tenant domain>`).
    pub exchange_admin_token: String,
}

impl std::fmt::Debug for ConnectionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionInfo")
            .field("login_url", &self.login_url)
            .field("tenant_id", &self.tenant_id)
            .field("admin_token", &"[redacted]")
            .field("exchange_admin_token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// A running simulated tenant (or several). Dropping it stops the server.
pub struct SimTenant {
    server: Server,
    pub(crate) shared: Arc<Shared>,
    tenants: Vec<TenantInfo>,
}

impl std::fmt::Debug for SimTenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimTenant")
            .field("url", &self.shared.base_url)
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

impl SimTenant {
    /// A builder with the default knobs.
    pub fn builder() -> SimTenantBuilder {
        SimTenantBuilder::default()
    }

    /// Root standing for `https://login.microsoftonline.com` (no trailing slash).
    pub fn login_url(&self) -> &str {
        &self.shared.base_url
    }

    /// Root standing for `https://graph.microsoft.com`: request paths start with `/v1.0`.
    pub fn graph_url(&self) -> &str {
        &self.shared.base_url
    }

    /// Root standing for `https://outlook.office365.com`.
    pub fn exchange_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The address the server listens on (always loopback).
    pub fn address(&self) -> SocketAddr {
        self.server.address()
    }

    /// Primary tenant id.
    pub fn tenant_id(&self) -> &str {
        &self.tenants[0].id
    }

    /// Primary tenant domain (`contoso.onmicrosoft.com`).
    pub fn tenant_domain(&self) -> &str {
        &self.tenants[0].domain
    }

    /// Every tenant, the primary one first.
    pub fn tenants(&self) -> &[TenantInfo] {
        &self.tenants
    }

    /// A tenant by name, id or domain.
    pub fn tenant(&self, key: &str) -> Option<&TenantInfo> {
        self.tenants.iter().find(|t| {
            t.name.eq_ignore_ascii_case(key) || t.id.eq_ignore_ascii_case(key) || t.domain.eq_ignore_ascii_case(key)
        })
    }

    /// A delegated Graph token for the primary tenant's admin (Global Administrator) with the three setup
    /// scopes and `User.Read`, valid from the sim's current time for the token lifetime.
    pub fn admin_token(&self) -> String {
        self.admin_token_for(self.tenant_id()).unwrap_or_default()
    }

    /// The admin token of another tenant (by name, id or domain).
    pub fn admin_token_for(&self, tenant: &str) -> Option<String> {
        let state = self.shared.lock();
        let index = self.tenant_index(&state, tenant)?;
        Some(login::mint_admin_token(&self.shared, &state.tenants[index], ADMIN_CLIENT_ID, &admin_scopes()))
    }

    /// A delegated Exchange token of the primary tenant's admin (Global Administrator, so Organization
    /// Management in Exchange), as the admin's device-code sign-in with the Exchange Online PowerShell client
    /// gives it: `aud` the Exchange resource, `scp`, `upn`, `wids`. InvokeCommand takes it with
    /// `X-AnchorMailbox: UPN:<upn>`.
    pub fn exchange_admin_token(&self) -> String {
        self.exchange_admin_token_for(self.tenant_id()).unwrap_or_default()
    }

    /// The delegated Exchange admin token of another tenant (by name, id or domain).
    pub fn exchange_admin_token_for(&self, tenant: &str) -> Option<String> {
        let state = self.shared.lock();
        let index = self.tenant_index(&state, tenant)?;
        Some(crate::exchange::admin_token(&self.shared, &state.tenants[index]))
    }

    /// Like [`SimTenant::admin_token`], but an opaque string, not a JWT: Graph routes accept it (as Entra may
    /// issue tokens a client cannot read), so a test can prove a client never decodes its bearer token.
    pub fn admin_token_opaque(&self) -> String {
        self.admin_token_opaque_for(self.tenant_id()).unwrap_or_default()
    }

    /// The opaque admin token of another tenant (by name, id or domain).
    pub fn admin_token_opaque_for(&self, tenant: &str) -> Option<String> {
        let mut state = self.shared.lock();
        let index = self.tenant_index(&state, tenant)?;
        let claims = login::admin_claims(&self.shared, &state.tenants[index], ADMIN_CLIENT_ID, &admin_scopes());
        let token = format!("EwB{}", ids::opaque());
        state.opaque_tokens.insert(token.clone(), claims);
        Some(token)
    }

    /// Carry out the next `n` successful Graph writes matching `pattern`, then answer each 500 as if the
    /// connection died with the answer in flight: `"POST /applications"` (method and path prefix below
    /// `/v1.0`), `"/applications"` (any write method), or `"*"` (every write). Adds to what is armed already.
    pub fn fail_after_commit(&self, n: u64, pattern: &str) {
        if n > 0 {
            self.shared.lock().fail_after_commit.push(FailAfterCommit::parse(n, pattern));
        }
    }

    /// Admin consents waiting for the customer admin's click: `(tenant id, app id)` of every consent page opened
    /// (`{login}/{tenant}/adminconsent?client_id=…`) and not yet approved.
    pub fn pending_consents(&self) -> Vec<(String, String)> {
        let state = self.shared.lock();
        state.pending_consents.iter().map(|p| (state.tenants[p.tenant_index].id.clone(), p.app_id.clone())).collect()
    }

    /// The customer admin accepts the consent page opened for `app_id` in `tenant` (name, id or domain): the
    /// app's service principal and the app-role grants of its requiredResourceAccess appear there after the
    /// replication delay. Returns the service principal's id, or `None` when no such page is open.
    pub fn approve_consent(&self, tenant: &str, app_id: &str) -> Option<String> {
        let mut state = self.shared.lock();
        let index = self.tenant_index(&state, tenant)?;
        crate::consent::approve(&self.shared, &mut state, index, app_id).map(|g| g.service_principal_id)
    }

    /// Aim faults at one tenant (name, id or domain): throttling, 500s or an Exchange that refuses the app; the
    /// other tenants are served normally. Replaces the tenant's previous fault; `TenantFault::default()` clears it.
    ///
    /// # Panics
    /// When the tenant is unknown.
    pub fn set_tenant_fault(&self, tenant: &str, fault: crate::TenantFault) {
        let mut state = self.shared.lock();
        let index =
            self.tenant_index(&state, tenant).unwrap_or_else(|| panic!("set_tenant_fault: no tenant {tenant:?}"));
        if fault.is_clear() {
            state.tenant_faults.remove(&index);
        } else {
            state.tenant_faults.insert(index, fault);
        }
    }

    /// What `cba sim serve` prints.
    pub fn connection_info(&self) -> ConnectionInfo {
        ConnectionInfo {
            login_url: self.login_url().to_string(),
            graph_url: self.graph_url().to_string(),
            exchange_url: self.exchange_url().to_string(),
            tenant_id: self.tenant_id().to_string(),
            tenant_domain: self.tenant_domain().to_string(),
            admin_token: self.admin_token(),
            exchange_admin_token: self.exchange_admin_token(),
        }
    }

    fn tenant_index(&self, state: &State, key: &str) -> Option<usize> {
        state.tenant_index(key).or_else(|| state.tenant_index(&self.tenant(key)?.id))
    }

    fn seed(&self, tenant: &str, name: &str, certificates: &[&[u8]], audience: &str) -> SeededApp {
        let mut state = self.shared.lock();
        let index = self.tenant_index(&state, tenant).unwrap_or_else(|| panic!("seed_app: no tenant {tenant:?}"));
        let now = self.shared.clock.now();
        let key_credentials = certificates
            .iter()
            .enumerate()
            .map(|(i, der)| {
                let certificate = Certificate::from_der(der)
                    .unwrap_or_else(|e| panic!("seed_app: certificate #{i} is not an X.509 DER certificate: {e}"));
                // Graph refuses other key types; a weak RSA key is allowed, to get AADSTS50032.
                assert!(
                    certificate.rsa_public_key().is_some(),
                    "seed_app: certificate #{i} does not hold an RSA key (Entra certificate credentials are RSA)"
                );
                KeyCred {
                    key_id: ids::guid(),
                    display_name: certificate.subject().to_string(),
                    start: certificate.not_before(),
                    end: certificate.not_after(),
                    custom_key_identifier: certificate.thumbprint_sha1().to_vec(),
                    certificate,
                    visible_at_ms: i64::MIN,
                    gone_at_ms: None,
                }
            })
            .collect();
        let app = Application {
            id: ids::guid(),
            app_id: ids::guid(),
            display_name: name.to_string(),
            sign_in_audience: audience.to_string(),
            unique_name: None,
            created: now,
            key_credentials,
            props: Map::new(),
            visible_at_ms: i64::MIN,
            gone_at_ms: None,
        };
        let tenant = &mut state.tenants[index];
        let sp = ServicePrincipal {
            id: ids::guid(),
            app_id: app.app_id.clone(),
            display_name: name.to_string(),
            app_roles: Vec::new(),
            app_owner_organization_id: tenant.id.clone(),
            sign_in_audience: audience.to_string(),
            built_in: false,
            props: Map::new(),
            visible_at_ms: i64::MIN,
            gone_at_ms: None,
        };
        let seeded = SeededApp {
            tenant_id: tenant.id.clone(),
            app_id: app.app_id.clone(),
            object_id: app.id.clone(),
            service_principal_id: sp.id.clone(),
        };
        tenant.applications.push(app);
        tenant.service_principals.push(sp);
        seeded
    }

    /// Register an app with these certificates (DER) and its service principal in the primary tenant, already
    /// replicated. No grants, no roles.
    ///
    /// # Panics
    /// When a certificate is not X.509 DER.
    pub async fn seed_app<C: AsRef<[u8]>>(&self, name: &str, certificates: &[C]) -> SeededApp {
        let certs: Vec<&[u8]> = certificates.iter().map(AsRef::as_ref).collect();
        self.seed(&self.tenants[0].id.clone(), name, &certs, "AzureADMyOrg")
    }

    /// Like [`SimTenant::seed_app`] in another tenant (by name, id or domain), optionally multi-tenant
    /// (`AzureADMultipleOrgs`), so it can be consented elsewhere with [`SimTenant::seed_consent`].
    ///
    /// # Panics
    /// When the tenant is unknown or a certificate is not X.509 DER.
    pub async fn seed_app_in<C: AsRef<[u8]>>(
        &self,
        tenant: &str,
        name: &str,
        certificates: &[C],
        multi_tenant: bool,
    ) -> SeededApp {
        let certs: Vec<&[u8]> = certificates.iter().map(AsRef::as_ref).collect();
        let audience = if multi_tenant { "AzureADMultipleOrgs" } else { "AzureADMyOrg" };
        self.seed(tenant, name, &certs, audience)
    }

    /// Admin consent of a multi-tenant app in another tenant: its service principal there.
    ///
    /// # Panics
    /// When the tenant is unknown, or the app is not multi-tenant.
    pub async fn seed_consent(&self, app: &SeededApp, tenant: &str) -> SeededApp {
        let mut state = self.shared.lock();
        let index = self.tenant_index(&state, tenant).unwrap_or_else(|| panic!("seed_consent: no tenant {tenant:?}"));
        let (display_name, audience) = {
            let app = state
                .application_for(index, &app.app_id, i64::MAX)
                .unwrap_or_else(|| panic!("seed_consent: app {} is not multi-tenant or does not exist", app.app_id));
            (app.display_name.clone(), app.sign_in_audience.clone())
        };
        let home = state.home_tenant_of(&app.app_id).unwrap_or_default();
        let sp = ServicePrincipal {
            id: ids::guid(),
            app_id: app.app_id.clone(),
            display_name,
            app_roles: Vec::new(),
            app_owner_organization_id: home,
            sign_in_audience: audience,
            built_in: false,
            props: Map::new(),
            visible_at_ms: i64::MIN,
            gone_at_ms: None,
        };
        let tenant = &mut state.tenants[index];
        let seeded = SeededApp {
            tenant_id: tenant.id.clone(),
            app_id: app.app_id.clone(),
            object_id: app.object_id.clone(),
            service_principal_id: sp.id.clone(),
        };
        tenant.service_principals.push(sp);
        seeded
    }

    /// Grant the app's service principal `Exchange.ManageAsApp` (admin consent), already replicated.
    pub async fn seed_grant_manage_as_app(&self, app: &SeededApp) {
        self.seed_grant(app, EXCHANGE_APP_ID, MANAGE_AS_APP_ROLE_ID).await;
    }

    /// Grant an app role of a pre-seeded resource (`resource_app_id`; `app_role` is the role's id or value).
    ///
    /// # Panics
    /// When the tenant, resource or role is unknown.
    pub async fn seed_grant(&self, app: &SeededApp, resource_app_id: &str, app_role: &str) {
        let mut state = self.shared.lock();
        let index =
            state.tenant_index(&app.tenant_id).unwrap_or_else(|| panic!("seed_grant: no tenant {}", app.tenant_id));
        let tenant = &mut state.tenants[index];
        let resource = tenant
            .sp_by_app_id(resource_app_id, i64::MAX)
            .unwrap_or_else(|| panic!("seed_grant: no resource service principal for {resource_app_id}"));
        let role = resource
            .app_roles
            .iter()
            .find(|r| r.id.eq_ignore_ascii_case(app_role) || r.value == app_role)
            .unwrap_or_else(|| panic!("seed_grant: {resource_app_id} has no app role {app_role}"));
        let assignment = AppRoleAssignment {
            id: ids::opaque(),
            principal_id: app.service_principal_id.clone(),
            resource_id: resource.id.clone(),
            app_role_id: role.id.clone(),
            created: self.shared.clock.now(),
            visible_at_ms: i64::MIN,
            gone_at_ms: None,
        };
        tenant.app_role_assignments.push(assignment);
    }

    /// Assign a directory role (template id, e.g. Exchange Administrator 29232cdf-...) to the app's service
    /// principal, already replicated.
    ///
    /// # Panics
    /// When the role is not one the sim knows.
    pub async fn seed_role_assignment(&self, app: &SeededApp, role_template_id: &str) {
        assert!(
            wellknown::role_definition(role_template_id).is_some(),
            "seed_role_assignment: unknown role template id {role_template_id}"
        );
        let mut state = self.shared.lock();
        let index = state
            .tenant_index(&app.tenant_id)
            .unwrap_or_else(|| panic!("seed_role_assignment: no tenant {}", app.tenant_id));
        state.tenants[index].role_assignments.push(RoleAssignment {
            id: format!("{}-1", ids::opaque()),
            role_definition_id: role_template_id.to_ascii_lowercase(),
            principal_id: app.service_principal_id.clone(),
            directory_scope_id: "/".into(),
            visible_at_ms: i64::MIN,
            gone_at_ms: None,
        });
    }

    /// An app-only access token for `resource` (`https://outlook.office365.com` or `https://graph.microsoft.com`,
    /// or their appIds) as the token endpoint would issue it now, without the client-assertion round trip.
    ///
    /// # Panics
    /// When the resource or the app's service principal is unknown.
    pub fn app_token(&self, app: &SeededApp, resource: &str) -> String {
        let resource =
            wellknown::resource_for(resource).unwrap_or_else(|| panic!("app_token: unknown resource {resource}"));
        let state = self.shared.lock();
        let index =
            state.tenant_index(&app.tenant_id).unwrap_or_else(|| panic!("app_token: no tenant {}", app.tenant_id));
        let tenant = &state.tenants[index];
        let name =
            state.application_for(index, &app.app_id, i64::MAX).map(|a| a.display_name.clone()).unwrap_or_default();
        login::mint_app_token(&self.shared, tenant, &app.app_id, &name, &app.service_principal_id, resource)
    }

    /// Everything the sim holds (same as `GET {graph_url}/_sim/state`).
    pub async fn state(&self) -> StateSnapshot {
        inspect::snapshot(&self.shared.lock(), self.shared.clock.now_ms())
    }

    /// The request log (same as `GET {graph_url}/_sim/requests`).
    pub async fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().requests.iter().cloned().collect()
    }

    /// The sim's current time (system clock plus offset).
    pub fn now(&self) -> time::OffsetDateTime {
        self.shared.clock.now()
    }

    /// Move the sim's clock forward (ends replication delays, expires tokens and device codes without sleeping).
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(time::Duration::try_from(by).unwrap_or(time::Duration::MAX));
    }

    /// User codes of the device codes still waiting for the admin.
    pub fn pending_device_codes(&self) -> Vec<String> {
        inspect::pending_device_codes(&self.shared.lock(), self.shared.clock.now_ms())
    }

    /// The admin approves this pending device code; false when none is pending under that user code.
    pub fn approve_device_code(&self, user_code: &str) -> bool {
        inspect::set_device_code(&mut self.shared.lock(), user_code, DeviceCodeStatus::Approved)
    }

    /// The admin declines: the next poll gets `authorization_declined`.
    pub fn decline_device_code(&self, user_code: &str) -> bool {
        inspect::set_device_code(&mut self.shared.lock(), user_code, DeviceCodeStatus::Declined)
    }

    /// The code expires now: the next poll gets `expired_token`.
    pub fn expire_device_code(&self, user_code: &str) -> bool {
        inspect::set_device_code(&mut self.shared.lock(), user_code, DeviceCodeStatus::Expired)
    }
}
