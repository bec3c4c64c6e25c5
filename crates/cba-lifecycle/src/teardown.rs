//! Teardown: the role assignments, the grant, the service principal and the app; rerunnable.

use std::path::PathBuf;
use std::time::Duration;

use cba_graph::Replication;
use cba_graph::provision::{self, AppRef, Change, Event as GraphEvent, Step};
use serde::Serialize;

use crate::admin::{self, AdminCredential};
use crate::profile::Profile;
use crate::progress::ProgressExt as _;
use crate::setup::millis;
use crate::{Error, Services};

/// Which app to remove.
#[derive(Debug, Clone)]
pub struct TeardownRequest {
    /// The tenant: id or domain.
    pub tenant: String,
    /// The app.
    pub app: AppRef,
    /// How to name it in messages (`"contoso-exo" (appId …)`).
    pub label: String,
    /// The profile records a setup that did not finish, last written at this time (RFC 3339): the app may
    /// exist without being visible yet.
    pub interrupted_setup: Option<Option<String>>,
}

impl TeardownRequest {
    /// The app a profile records.
    pub fn for_profile(p: &Profile) -> TeardownRequest {
        let app = if p.app_object_id.is_empty() {
            AppRef::Name(p.app_name.clone())
        } else {
            AppRef::ObjectId(p.app_object_id.clone())
        };
        let app_id = if p.app_id.is_empty() { "?" } else { &p.app_id };
        TeardownRequest {
            tenant: p.tenant_id.clone(),
            app,
            label: format!("{:?} (appId {app_id})", p.app_name),
            interrupted_setup: p.incomplete.then(|| p.updated_at.clone()),
        }
    }
}

/// What teardown did (the `cba teardown --output json` document, docs/cli-json.md).
#[derive(Debug, Clone, Serialize)]
pub struct TeardownReport {
    /// The app, as named.
    pub app: String,
    /// Its client id, if it still existed.
    pub app_id: Option<String>,
    /// Objects deleted now (`application`, `service_principal`, `grant`, `role_assignment:<role>`).
    pub removed: Vec<String>,
    /// Objects that were already gone.
    pub already_gone: Vec<String>,
    /// Local files deleted (filled in by the caller, which owns the files).
    pub files_deleted: Vec<String>,
    /// Requests sent.
    pub requests: u32,
    /// Sequential round trips.
    pub round_trip_depth: u32,
    /// Time spent.
    pub elapsed_ms: u64,
}

/// Remove the app and what belongs to it. A second run removes nothing and succeeds.
pub async fn teardown(
    services: &Services,
    admin_credential: &AdminCredential,
    request: &TeardownRequest,
) -> Result<TeardownReport, Error> {
    let started = services.now();
    let session = admin::sign_in(services, admin_credential, &request.tenant).await?;
    let graph = services.graph(session.tokens.clone(), Duration::from_secs(300))?;
    // Before any delete: the credential must act in the tenant named.
    admin::confirm_tenant(services, &graph, &session, &request.tenant).await?;
    let progress = services.progress.as_ref();
    progress.stage(format!("removing app {} and what belongs to it", request.label));
    // After an interrupted setup the recorded app may not have replicated yet: wait for it by id instead of
    // taking a 404 for "already gone".
    let replication = match (&request.interrupted_setup, &request.app) {
        (Some(_), AppRef::ObjectId(_)) => Replication::Expected,
        _ => Replication::NotExpected,
    };
    let outcome = provision::teardown_with(&graph, &request.app, replication, |event: &GraphEvent| {
        if let GraphEvent::Finished { step, change, id } = event {
            let verb = if *change == Change::Removed { "removed" } else { "already gone" };
            progress
                .detail(format!("{step}: {verb}{}", if id.is_empty() { String::new() } else { format!(" ({id})") }));
        }
    })
    .await
    .map_err(Error::graph_in(format!("teardown of app {}", request.label)))?;
    if outcome.application.is_none()
        && let (Some(written), AppRef::Name(name)) = (&request.interrupted_setup, &request.app)
    {
        // The setup stopped before it recorded the app's id: a create may have been in flight, and a new app
        // is not listed by name until it replicates. Not finding it proves nothing yet.
        let recent = written
            .as_deref()
            .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
            .is_none_or(|t| services.now() - t < time::Duration::minutes(15));
        if recent {
            return Err(Error::MayStillExist { app_name: name.clone() });
        }
    }
    let name = |step: &Step| match step {
        Step::RoleAssignment { role } => format!("role_assignment:{role}"),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.get("step").and_then(|s| s.as_str()).map(str::to_owned))
            .unwrap_or_else(|| other.to_string()),
    };
    Ok(TeardownReport {
        app: request.label.clone(),
        app_id: outcome.application.as_ref().map(|a| a.app_id.clone()),
        removed: outcome.removed.iter().map(name).collect(),
        already_gone: outcome.already_gone.iter().map(name).collect(),
        files_deleted: Vec::new(),
        requests: outcome.requests,
        round_trip_depth: outcome.round_trip_depth,
        elapsed_ms: millis(services.since(started)),
    })
}

/// The local files teardown may delete: only those `cba` made (every certificate a setup or rotation
/// wrote), never a certificate the user brought. The profile itself is the caller's to delete.
pub fn files_made_by_cba(profile: &Profile) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for c in profile.certificates().filter(|c| c.created) {
        files.push(c.path.clone());
        files.extend(c.cer_path.clone());
    }
    files
}
