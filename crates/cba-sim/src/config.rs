//! Knob values chosen on the builder, read by every handler.

use std::time::Duration;

/// One of the three simulated services (they share one HTTP server; see the crate docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// `login.microsoftonline.com`: token, device code, discovery.
    Login,
    /// `graph.microsoft.com/v1.0`.
    Graph,
    /// `outlook.office365.com/adminapi`.
    Exchange,
}

impl Service {
    /// All three.
    pub const ALL: [Service; 3] = [Service::Login, Service::Graph, Service::Exchange];
}

/// How `POST /roleManagement/directory/roleAssignments` answers an assignment that already exists.
/// The real status is UNVERIFIED (docs/wire-formats.md §3): clients should list first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DuplicateRoleAssignment {
    /// 400 `Request_BadRequest` (default: what the directory answers for other duplicate writes).
    #[default]
    BadRequest,
    /// 409 `Conflict`.
    Conflict,
}

/// When a fault fires: on every `every`-th request and/or on the first `burst` requests of the targeted
/// services. `every == 0` and `burst == 0` mean never.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Schedule {
    pub(crate) every: u64,
    pub(crate) burst: u64,
}

impl Schedule {
    /// `n` is the 1-based number of the request among the targeted services.
    pub(crate) fn fires(&self, n: u64) -> bool {
        n <= self.burst || (self.every > 0 && n.is_multiple_of(self.every))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Knobs {
    pub(crate) latency: Duration,
    pub(crate) replication_delay: Duration,
    pub(crate) delete_replication_delay: Duration,
    pub(crate) throttle: Schedule,
    pub(crate) retry_after_secs: u64,
    pub(crate) fail_5xx: Schedule,
    pub(crate) fault_services: Vec<Service>,
    pub(crate) token_lifetime_secs: i64,
    pub(crate) clock_skew_secs: i64,
    pub(crate) max_assertion_lifetime_secs: i64,
    pub(crate) require_assertion_nbf: bool,
    pub(crate) reject_replayed_jti: bool,
    pub(crate) accept_v1_assertion_audience: bool,
    pub(crate) device_code_delay: Duration,
    pub(crate) device_code_auto_approve: bool,
    pub(crate) device_code_interval_secs: u64,
    pub(crate) device_code_expires_in_secs: u64,
    pub(crate) mailboxes: usize,
    pub(crate) duplicate_role_assignment: DuplicateRoleAssignment,
    /// Exchange write cmdlets at the start that are carried out but answered 500.
    pub(crate) exchange_fail_after_execute: u64,
    /// Graph writes at the start that are carried out but answered 500.
    pub(crate) fail_after_commit: u64,
    /// How long after Graph a role assignment reaches Exchange (`None`: the replication delay).
    pub(crate) exchange_role_delay: Option<Duration>,
    /// Exchange refuses a request without the `X-AnchorMailbox` of the token's tenant.
    pub(crate) require_anchor_mailbox: bool,
    /// The Key Vault fake's knobs.
    pub(crate) keyvault: crate::keyvault::VaultKnobs,
    /// How long a role-group membership change takes to reach app-only authorization in Exchange.
    pub(crate) exchange_rbac_delay: Duration,
    /// Exchange organizations start dehydrated: custom role groups need Enable-OrganizationCustomization.
    pub(crate) dehydrated: bool,
    /// How long Enable-OrganizationCustomization takes to complete.
    pub(crate) enable_customization_delay: Duration,
    /// Opening the admin-consent page consents at once (else a test approves it: `SimTenant::approve_consent`).
    pub(crate) admin_consent_auto_approve: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            latency: Duration::ZERO,
            replication_delay: Duration::ZERO,
            delete_replication_delay: Duration::ZERO,
            throttle: Schedule::default(),
            retry_after_secs: 1,
            fail_5xx: Schedule::default(),
            fault_services: Service::ALL.to_vec(),
            token_lifetime_secs: 3599,
            clock_skew_secs: 300,
            max_assertion_lifetime_secs: 600,
            require_assertion_nbf: true,
            reject_replayed_jti: true,
            accept_v1_assertion_audience: false,
            device_code_delay: Duration::ZERO,
            device_code_auto_approve: true,
            device_code_interval_secs: 5,
            device_code_expires_in_secs: 900,
            mailboxes: 5,
            duplicate_role_assignment: DuplicateRoleAssignment::default(),
            exchange_fail_after_execute: 0,
            fail_after_commit: 0,
            exchange_role_delay: None,
            require_anchor_mailbox: true,
            keyvault: crate::keyvault::VaultKnobs::default(),
            exchange_rbac_delay: Duration::ZERO,
            dehydrated: false,
            enable_customization_delay: Duration::ZERO,
            admin_consent_auto_approve: false,
        }
    }
}

impl Knobs {
    pub(crate) fn replication_ms(&self) -> i64 {
        self.replication_delay.as_millis() as i64
    }

    /// How far behind Graph Exchange's view of role assignments is, in milliseconds.
    pub(crate) fn exchange_role_ms(&self) -> i64 {
        self.exchange_role_delay.unwrap_or(self.replication_delay).as_millis() as i64
    }

    /// How long a role-group membership change takes to reach Exchange authorization, in milliseconds.
    pub(crate) fn exchange_rbac_ms(&self) -> i64 {
        self.exchange_rbac_delay.as_millis() as i64
    }

    /// When a delete made at `now_ms` reaches reads: `None` (at once) unless `delete_replication_delay` is set.
    pub(crate) fn deleted_at(&self, now_ms: i64) -> Option<i64> {
        (!self.delete_replication_delay.is_zero())
            .then(|| now_ms.saturating_add(self.delete_replication_delay.as_millis() as i64))
    }
}
