//! The directory data of every simulated tenant, behind one mutex.

use std::collections::HashMap;

use cba_cert::Certificate;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::ids;
use crate::wellknown::{EXCHANGE_APP_ID, EXCHANGE_APP_ROLES, GLOBAL_ADMINISTRATOR, GRAPH_APP_ID, GRAPH_APP_ROLES};

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) tenants: Vec<Tenant>,
    /// Client-assertion `jti` values already redeemed, with the assertion's `exp` (Unix seconds).
    pub(crate) used_jtis: HashMap<String, i64>,
    pub(crate) device_codes: Vec<DeviceCode>,
    pub(crate) refresh_tokens: HashMap<String, RefreshGrant>,
    /// The request log, oldest first (a ring: a full log drops its oldest entry in O(1)).
    pub(crate) requests: std::collections::VecDeque<crate::RequestRecord>,
    /// Requests seen so far by the targeted services (drives the fault schedules).
    pub(crate) fault_counter: u64,
    /// What Exchange write cmdlets changed (Set-Mailbox), and the Exchange write fault still to fire.
    pub(crate) exchange: crate::exchange::ExchangeState,
    /// Graph writes still to be committed but answered 500 (the crash-in-flight test aid).
    pub(crate) fail_after_commit: Vec<FailAfterCommit>,
    /// Opaque (non-JWT) bearer tokens the sim accepts, with the claims they stand for.
    pub(crate) opaque_tokens: HashMap<String, crate::jwt::AccessClaims>,
    /// Lower-case tenant id and domain → index in `tenants` (a sim may hold thousands of tenants).
    pub(crate) tenant_keys: HashMap<String, usize>,
    /// Admin consents a customer admin has opened (`/adminconsent`) and not yet approved.
    pub(crate) pending_consents: Vec<PendingConsent>,
    /// Per-tenant throttling and failures (`SimTenant::tenant_fault`, `POST /_sim/tenant-fault`), by tenant index.
    pub(crate) tenant_faults: HashMap<usize, crate::tenant_faults::TenantFault>,
    /// Admin tokens `GET /_sim/tenants` handed out, with their `exp` (minting a thousand costs ~1 s of RSA).
    pub(crate) admin_tokens: HashMap<usize, (String, i64)>,
    /// Requests the simulated services answered since start (`GET /_sim/request-count`).
    pub(crate) requests_total: u64,
}

/// An admin-consent page a customer admin has opened: approving it is the admin's click on Accept.
#[derive(Debug, Clone)]
pub(crate) struct PendingConsent {
    pub(crate) tenant_index: usize,
    pub(crate) app_id: String,
    /// Resources of a v2 request's `scope` (`None`: the v1 form, every resource in requiredResourceAccess).
    pub(crate) resources: Option<Vec<String>>,
}

/// The next `remaining` Graph writes matching `method` (any write when `None`) and `path_prefix` (below
/// `/v1.0`, query excluded) are carried out, then answered 500 as if the connection died with the answer.
#[derive(Debug, Clone)]
pub(crate) struct FailAfterCommit {
    pub(crate) remaining: u64,
    pub(crate) method: Option<String>,
    pub(crate) path_prefix: String,
}

impl FailAfterCommit {
    /// `"POST /applications"`, `"/applications"` (any write method) or `""` / `"*"` (every write).
    pub(crate) fn parse(count: u64, pattern: &str) -> FailAfterCommit {
        let pattern = pattern.trim();
        let (method, path) = match pattern.split_once(' ') {
            Some((m, p)) => (Some(m.trim().to_ascii_uppercase()), p.trim()),
            None if pattern.starts_with('/') || pattern.is_empty() || pattern == "*" => (None, pattern),
            None => (Some(pattern.to_ascii_uppercase()), ""),
        };
        let path_prefix = if path == "*" { String::new() } else { path.to_string() };
        FailAfterCommit { remaining: count, method, path_prefix }
    }

    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        self.remaining > 0
            && self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path.starts_with(&self.path_prefix)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct AppRole {
    pub(crate) id: String,
    pub(crate) value: String,
    pub(crate) display_name: String,
}

#[derive(Debug)]
pub(crate) struct Tenant {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) domain: String,
    pub(crate) admin_id: String,
    pub(crate) admin_upn: String,
    pub(crate) mailboxes: usize,
    pub(crate) applications: Vec<Application>,
    pub(crate) service_principals: Vec<ServicePrincipal>,
    pub(crate) app_role_assignments: Vec<AppRoleAssignment>,
    pub(crate) role_assignments: Vec<RoleAssignment>,
}

#[derive(Debug, Clone)]
pub(crate) struct Application {
    pub(crate) id: String,
    pub(crate) app_id: String,
    pub(crate) display_name: String,
    pub(crate) sign_in_audience: String,
    /// The client-chosen alternate key (`/applications(uniqueName='…')`): unique, immutable once set.
    pub(crate) unique_name: Option<String>,
    pub(crate) created: OffsetDateTime,
    pub(crate) key_credentials: Vec<KeyCred>,
    /// Other writable properties as the client sent them (names validated).
    pub(crate) props: Map<String, Value>,
    pub(crate) visible_at_ms: i64,
    /// Deleted, but reads keep seeing it until then (`delete_replication_delay`).
    pub(crate) gone_at_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub(crate) struct KeyCred {
    pub(crate) key_id: String,
    pub(crate) display_name: String,
    pub(crate) start: OffsetDateTime,
    pub(crate) end: OffsetDateTime,
    pub(crate) custom_key_identifier: Vec<u8>,
    pub(crate) certificate: Certificate,
    pub(crate) visible_at_ms: i64,
    pub(crate) gone_at_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub(crate) struct ServicePrincipal {
    pub(crate) id: String,
    pub(crate) app_id: String,
    pub(crate) display_name: String,
    pub(crate) app_roles: Vec<AppRole>,
    pub(crate) app_owner_organization_id: String,
    pub(crate) sign_in_audience: String,
    pub(crate) built_in: bool,
    pub(crate) props: Map<String, Value>,
    pub(crate) visible_at_ms: i64,
    pub(crate) gone_at_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub(crate) struct AppRoleAssignment {
    pub(crate) id: String,
    pub(crate) principal_id: String,
    pub(crate) resource_id: String,
    pub(crate) app_role_id: String,
    pub(crate) created: OffsetDateTime,
    pub(crate) visible_at_ms: i64,
    pub(crate) gone_at_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub(crate) struct RoleAssignment {
    pub(crate) id: String,
    pub(crate) role_definition_id: String,
    pub(crate) principal_id: String,
    pub(crate) directory_scope_id: String,
    pub(crate) visible_at_ms: i64,
    pub(crate) gone_at_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceCodeStatus {
    Pending,
    Approved,
    Declined,
    Expired,
    Redeemed,
}

#[derive(Debug, Clone)]
pub(crate) struct DeviceCode {
    pub(crate) device_code: String,
    pub(crate) user_code: String,
    pub(crate) client_id: String,
    pub(crate) tenant_id: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) issued_ms: i64,
    pub(crate) expires_ms: i64,
    pub(crate) status: DeviceCodeStatus,
    pub(crate) last_poll_ms: Option<i64>,
}

/// What a refresh token issued by the device-code flow stands for.
#[derive(Debug, Clone)]
pub(crate) struct RefreshGrant {
    pub(crate) tenant_id: String,
    pub(crate) client_id: String,
    pub(crate) scope: String,
}

impl Application {
    pub(crate) fn is_multi_tenant(&self) -> bool {
        matches!(self.sign_in_audience.as_str(), "AzureADMultipleOrgs" | "AzureADandPersonalMicrosoftAccount")
    }
}

impl Tenant {
    pub(crate) fn new(id: String, name: String, domain: String, mailboxes: usize) -> Tenant {
        let admin_upn = format!("admin@{domain}");
        let mut tenant = Tenant {
            id,
            name,
            domain,
            admin_id: ids::guid(),
            admin_upn,
            mailboxes,
            applications: Vec::new(),
            service_principals: Vec::new(),
            app_role_assignments: Vec::new(),
            role_assignments: Vec::new(),
        };
        let microsoft_tenant = "f8cdef31-a31e-4b4a-93e4-5f571e91255a".to_string();
        for (app_id, name, roles) in [
            (EXCHANGE_APP_ID, "Office 365 Exchange Online", EXCHANGE_APP_ROLES),
            (GRAPH_APP_ID, "Microsoft Graph", GRAPH_APP_ROLES),
        ] {
            tenant.service_principals.push(ServicePrincipal {
                id: ids::guid(),
                app_id: app_id.to_string(),
                display_name: name.to_string(),
                app_roles: roles
                    .iter()
                    .map(|(id, value, display)| AppRole {
                        id: id.to_string(),
                        value: value.to_string(),
                        display_name: display.to_string(),
                    })
                    .collect(),
                app_owner_organization_id: microsoft_tenant.clone(),
                sign_in_audience: "AzureADMultipleOrgs".into(),
                built_in: true,
                props: Map::new(),
                visible_at_ms: i64::MIN,
                gone_at_ms: None,
            });
        }
        tenant
    }

    /// The role template ids the admin user holds.
    pub(crate) fn admin_roles(&self) -> Vec<String> {
        vec![GLOBAL_ADMINISTRATOR.to_string()]
    }

    pub(crate) fn app(&self, id: &str, now_ms: i64) -> Option<&Application> {
        self.applications.iter().find(|a| a.id.eq_ignore_ascii_case(id) && a.visible_at_ms <= now_ms)
    }

    /// For writes: replicated and not deleted.
    pub(crate) fn app_mut(&mut self, id: &str, now_ms: i64) -> Option<&mut Application> {
        self.applications
            .iter_mut()
            .find(|a| a.id.eq_ignore_ascii_case(id) && a.visible_at_ms <= now_ms && a.gone_at_ms.is_none())
    }

    pub(crate) fn app_by_app_id(&self, app_id: &str, now_ms: i64) -> Option<&Application> {
        self.applications.iter().find(|a| a.app_id.eq_ignore_ascii_case(app_id) && a.visible_at_ms <= now_ms)
    }

    pub(crate) fn sp(&self, id: &str, now_ms: i64) -> Option<&ServicePrincipal> {
        self.service_principals.iter().find(|s| s.id.eq_ignore_ascii_case(id) && s.visible_at_ms <= now_ms)
    }

    pub(crate) fn sp_by_app_id(&self, app_id: &str, now_ms: i64) -> Option<&ServicePrincipal> {
        self.service_principals.iter().find(|s| s.app_id.eq_ignore_ascii_case(app_id) && s.visible_at_ms <= now_ms)
    }

    /// Whether a service principal for `app_id` exists at all, replicated or not (deleted ones excluded).
    pub(crate) fn sp_exists_for(&self, app_id: &str) -> bool {
        self.service_principals.iter().any(|s| s.app_id.eq_ignore_ascii_case(app_id) && s.gone_at_ms.is_none())
    }

    /// The values of the app roles `principal_id` holds on the resource with `resource_app_id`.
    pub(crate) fn granted_roles(&self, principal_id: &str, resource_app_id: &str, now_ms: i64) -> Vec<String> {
        let Some(resource) = self.sp_by_app_id(resource_app_id, now_ms) else {
            return Vec::new();
        };
        let mut roles: Vec<String> = self
            .app_role_assignments
            .iter()
            .filter(|a| a.principal_id == principal_id && a.resource_id == resource.id && a.visible_at_ms <= now_ms)
            .filter_map(|a| resource.app_roles.iter().find(|r| r.id == a.app_role_id))
            .map(|r| r.value.clone())
            .collect();
        roles.sort();
        roles.dedup();
        roles
    }

    /// Directory role template ids assigned to `principal_id`.
    pub(crate) fn directory_roles(&self, principal_id: &str, now_ms: i64) -> Vec<String> {
        let mut roles: Vec<String> = self
            .role_assignments
            .iter()
            .filter(|r| r.principal_id == principal_id && r.visible_at_ms <= now_ms)
            .map(|r| r.role_definition_id.clone())
            .collect();
        roles.sort();
        roles.dedup();
        roles
    }

    /// Remove a service principal and everything that points at it: now (`gone_at_ms` `None`), or for reads
    /// only once `gone_at_ms` has passed (a delete replicating; writes see it gone at once).
    pub(crate) fn delete_sp(&mut self, id: &str, gone_at_ms: Option<i64>) {
        let Some(at) = gone_at_ms else {
            self.service_principals.retain(|s| s.id != id);
            self.app_role_assignments.retain(|a| a.principal_id != id && a.resource_id != id);
            self.role_assignments.retain(|r| r.principal_id != id);
            return;
        };
        for s in self.service_principals.iter_mut().filter(|s| s.id == id) {
            s.gone_at_ms.get_or_insert(at);
        }
        for a in self.app_role_assignments.iter_mut().filter(|a| a.principal_id == id || a.resource_id == id) {
            a.gone_at_ms.get_or_insert(at);
        }
        for r in self.role_assignments.iter_mut().filter(|r| r.principal_id == id) {
            r.gone_at_ms.get_or_insert(at);
        }
    }

    /// Remove an application, its service principal here, and that principal's grants and roles (now, or
    /// for reads once `gone_at_ms` has passed, as [`Tenant::delete_sp`]).
    pub(crate) fn delete_app(&mut self, id: &str, gone_at_ms: Option<i64>) {
        let Some(index) = self.applications.iter().position(|a| a.id == id) else {
            return;
        };
        let app_id = self.applications[index].app_id.clone();
        match gone_at_ms {
            None => {
                self.applications.remove(index);
            }
            Some(at) => {
                self.applications[index].gone_at_ms.get_or_insert(at);
            }
        }
        let sp_ids: Vec<String> =
            self.service_principals.iter().filter(|s| s.app_id == app_id).map(|s| s.id.clone()).collect();
        for sp in sp_ids {
            self.delete_sp(&sp, gone_at_ms);
        }
    }

    /// Forget deleted objects whose deletion has replicated.
    fn purge(&mut self, now_ms: i64) {
        let live = |gone: Option<i64>| gone.is_none_or(|at| now_ms < at);
        self.applications.retain(|a| live(a.gone_at_ms));
        for app in &mut self.applications {
            app.key_credentials.retain(|k| live(k.gone_at_ms));
        }
        self.service_principals.retain(|s| live(s.gone_at_ms));
        self.app_role_assignments.retain(|a| live(a.gone_at_ms));
        self.role_assignments.retain(|r| live(r.gone_at_ms));
    }

    /// Whether an application with this alternate key exists (replicated or not, deletions excluded: the
    /// write path is authoritative), other than `except_id`.
    pub(crate) fn unique_name_taken(&self, unique_name: &str, except_id: &str) -> bool {
        self.applications.iter().any(|a| {
            a.gone_at_ms.is_none()
                && a.id != except_id
                && a.unique_name.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(unique_name))
        })
    }
}

impl State {
    /// Add a tenant (its id and domain must not be taken: the builder checks).
    pub(crate) fn add_tenant(&mut self, tenant: Tenant) -> usize {
        let index = self.tenants.len();
        self.tenant_keys.insert(tenant.id.to_ascii_lowercase(), index);
        self.tenant_keys.insert(tenant.domain.to_ascii_lowercase(), index);
        self.tenants.push(tenant);
        index
    }

    pub(crate) fn tenant(&self, id_or_domain: &str) -> Option<&Tenant> {
        self.tenant_index(id_or_domain).map(|i| &self.tenants[i])
    }

    pub(crate) fn tenant_index(&self, id_or_domain: &str) -> Option<usize> {
        match self.tenant_keys.get(id_or_domain) {
            Some(&index) => Some(index),
            None => self.tenant_keys.get(&id_or_domain.to_ascii_lowercase()).copied(),
        }
    }

    /// The application object behind `app_id` as `tenant_index` sees it: its own registration, or a
    /// multi-tenant app registered in another tenant of this sim (the home tenant's replication applies).
    pub(crate) fn application_for(&self, tenant_index: usize, app_id: &str, now_ms: i64) -> Option<&Application> {
        if let Some(app) = self.tenants[tenant_index].app_by_app_id(app_id, now_ms) {
            return Some(app);
        }
        self.tenants
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != tenant_index)
            .filter_map(|(_, t)| t.app_by_app_id(app_id, now_ms))
            .find(|a| a.is_multi_tenant())
    }

    /// Home tenant id of an application (for `appOwnerOrganizationId`).
    pub(crate) fn home_tenant_of(&self, app_id: &str) -> Option<String> {
        self.tenants
            .iter()
            .find(|t| t.applications.iter().any(|a| a.app_id.eq_ignore_ascii_case(app_id)))
            .map(|t| t.id.clone())
    }

    /// Forget deleted objects whose deletion has replicated, in every tenant.
    pub(crate) fn purge_deleted(&mut self, now_ms: i64) {
        for tenant in &mut self.tenants {
            tenant.purge(now_ms);
        }
    }

    /// Forget redeemed `jti`s whose assertion has expired anyway.
    pub(crate) fn prune_jtis(&mut self, now_secs: i64, skew: i64) {
        self.used_jtis.retain(|_, exp| exp.saturating_add(skew) >= now_secs);
    }
}
