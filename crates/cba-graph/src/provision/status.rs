//! `cba status`: every Graph-side link, as data.

use serde::Serialize;

use super::{AppInfo, AppRef, RoleState, assignment_for, exchange_service_principal, manage_as_app_grant, resolve_app};
use crate::model::RoleAssignment;
use crate::wellknown::{self, Role};
use crate::{Error, GraphClient, Replication};

/// What to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRequest {
    /// The application.
    pub app: AppRef,
    /// The certificate expected on it (SHA-1 thumbprint hex), if any.
    pub thumbprint_sha1: Option<String>,
    /// Roles expected (default: Exchange Administrator).
    pub roles: Vec<Role>,
    /// [`Replication::Expected`] when the objects are known to exist (a profile written by a setup that may
    /// have finished moments ago): 404s, and a grant or role not listed yet, are then waited out under the
    /// retry policy (so a link that is really missing is reported only when the policy gives up). Default
    /// [`Replication::NotExpected`]: what Graph answers now is reported at once.
    pub replication: Replication,
}

impl StatusRequest {
    /// Check `app` for the Exchange Administrator role.
    pub fn new(app: AppRef) -> StatusRequest {
        StatusRequest {
            app,
            thumbprint_sha1: None,
            roles: vec![wellknown::EXCHANGE_ADMINISTRATOR],
            replication: Replication::NotExpected,
        }
    }
}

/// A certificate registered on the app (no `key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegisteredCertificate {
    /// Graph's credential id.
    pub key_id: Option<String>,
    /// SHA-1 thumbprint (uppercase hex), when Graph's `customKeyIdentifier` holds it.
    pub thumbprint_sha1: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// notBefore.
    pub start_date_time: Option<String>,
    /// notAfter.
    pub end_date_time: Option<String>,
}

/// Every Graph-side link of a setup. `None`/empty means missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    /// The application, if it exists.
    pub application: Option<AppInfo>,
    /// Its certificates.
    pub certificates: Vec<RegisteredCertificate>,
    /// Whether the expected certificate is among them (`None` when no thumbprint was given or no app).
    pub certificate_registered: Option<bool>,
    /// Its service principal.
    pub sp_id: Option<String>,
    /// The Exchange Online service principal.
    pub exchange_sp_id: String,
    /// The Exchange.ManageAsApp grant.
    pub grant_id: Option<String>,
    /// The expected roles and their assignments.
    pub roles: Vec<RoleState>,
    /// Other directory role assignments of the principal.
    pub other_role_assignments: Vec<RoleAssignment>,
    /// Requests sent.
    pub requests: u32,
    /// Sequential round trips.
    pub round_trip_depth: u32,
}

impl StatusReport {
    /// Every Graph-side check passed.
    pub fn is_complete(&self) -> bool {
        self.application.is_some()
            && self.certificate_registered != Some(false)
            && self.sp_id.is_some()
            && self.grant_id.is_some()
            && self.roles.iter().all(|r| r.assignment_id.is_some())
    }
}

/// Look up the app (∥ the Exchange Online principal), its principal, then its grants ∥ roles: at most
/// 5 GETs in 3 round trips. Missing objects are reported, not errors.
pub async fn status(client: &GraphClient, request: &StatusRequest) -> Result<StatusReport, Error> {
    let start = client.requests_sent();
    let (app, exchange) =
        tokio::try_join!(resolve_app(client, &request.app, request.replication), exchange_service_principal(client))?;
    let mut depth = 1;
    let mut report = StatusReport {
        application: app.as_ref().map(AppInfo::from),
        certificates: Vec::new(),
        certificate_registered: None,
        sp_id: None,
        exchange_sp_id: exchange.id.clone(),
        grant_id: None,
        roles: request.roles.iter().map(|role| RoleState { role: *role, assignment_id: None }).collect(),
        other_role_assignments: Vec::new(),
        requests: 0,
        round_trip_depth: 0,
    };
    if let Some(app) = &app {
        report.certificates = app
            .key_credentials
            .iter()
            .map(|k| RegisteredCertificate {
                key_id: k.key_id.clone(),
                thumbprint_sha1: k.thumbprint_sha1(),
                display_name: k.display_name.clone(),
                start_date_time: k.start_date_time.clone(),
                end_date_time: k.end_date_time.clone(),
            })
            .collect();
        report.certificate_registered = request.thumbprint_sha1.as_deref().map(|t| app.has_certificate(t));
        depth += 1;
        let sp = client.service_principal_for_app(&app.app_id, request.replication).await?;
        if let Some(sp) = sp {
            depth += 1;
            let lists = || async {
                tokio::try_join!(
                    client.list_app_role_assignments(&sp.id, Replication::Expected),
                    client.list_directory_role_assignments(&sp.id, Replication::Expected),
                )
            };
            let complete = |(grants, assignments): &(Vec<_>, Vec<_>)| {
                manage_as_app_grant(grants, &exchange.id).is_some()
                    && request.roles.iter().all(|role| assignment_for(assignments, role).is_some())
            };
            // With Replication::Expected the grant and roles are known to exist: a list that does not show
            // them yet is a lagging replica, so poll (Terraform's "wait until reads succeed") under the policy.
            let (grants, assignments) = if request.replication == Replication::Expected {
                cba_http::with_retry(
                    client.retry_policy(),
                    |_| lists(),
                    |outcome| match outcome {
                        Ok(found) if !complete(found) => cba_http::Verdict::Retry {
                            after: None,
                            reason: "waiting for replication: grant or role assignment not listed yet".into(),
                        },
                        _ => cba_http::Verdict::Done,
                    },
                    |_| {},
                )
                .await?
            } else {
                lists().await?
            };
            report.grant_id = manage_as_app_grant(&grants, &exchange.id).map(|g| g.id.clone());
            for state in &mut report.roles {
                state.assignment_id = assignment_for(&assignments, &state.role).map(|a| a.id.clone());
            }
            report.other_role_assignments = assignments
                .into_iter()
                .filter(|a| !request.roles.iter().any(|r| r.template_id.eq_ignore_ascii_case(&a.role_definition_id)))
                .collect();
            report.sp_id = Some(sp.id);
        }
    }
    report.requests = client.requests_sent() - start;
    report.round_trip_depth = depth;
    Ok(report)
}
