//! `cba teardown`: role assignments and grants, then the service principal, then the app.

use futures::future::try_join_all;
use serde::Serialize;

use super::{AppInfo, AppRef, Change, Event, Step, resolve_app};
use crate::model::Deleted;
use crate::wellknown::role_by_template_id;
use crate::{Error, GraphClient, Replication};

/// Delete a service principal's app-role grants and directory role assignments, all at once (two lists, then
/// every delete in parallel): what was deleted or already gone, by step and id.
pub(super) async fn delete_links(
    client: &GraphClient,
    sp_id: &str,
    sp_object: &str,
    replication: Replication,
) -> Result<Vec<(Step, Deleted, String)>, Error> {
    let (grants, assignments) = tokio::try_join!(
        client.list_app_role_assignments(sp_id, replication),
        client.list_directory_role_assignments(sp_id, replication),
    )
    .map_err(|e| e.in_step(Step::Grant, sp_object.to_string()))?;
    let grant_deletes = try_join_all(grants.iter().map(|g| async {
        let outcome = client.delete_app_role_assignment(&g.resource_id, &g.id).await?;
        Ok::<_, Error>((Step::Grant, outcome, g.id.clone()))
    }));
    let role_deletes = try_join_all(assignments.iter().map(|a| async {
        let role = role_by_template_id(&a.role_definition_id)
            .map(|r| r.name.to_string())
            .unwrap_or_else(|| a.role_definition_id.clone());
        let outcome = client.delete_directory_role_assignment(&a.id).await?;
        Ok::<_, Error>((Step::RoleAssignment { role }, outcome, a.id.clone()))
    }));
    let (grant_results, role_results) =
        tokio::try_join!(grant_deletes, role_deletes).map_err(|e| e.in_step(Step::Grant, sp_object.to_string()))?;
    Ok(grant_results.into_iter().chain(role_results).collect())
}

/// What [`teardown`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TeardownOutcome {
    /// The app, if it still existed.
    pub application: Option<AppInfo>,
    /// Steps that deleted something.
    pub removed: Vec<Step>,
    /// Steps whose object was already gone.
    pub already_gone: Vec<Step>,
    /// Requests sent.
    pub requests: u32,
    /// Sequential round trips.
    pub round_trip_depth: u32,
}

/// Remove the principal's directory role assignments and app role grants (concurrently), the service
/// principal, then the application. A 404 on any delete is "already gone": a second run succeeds and
/// removes nothing. Look-ups do not wait for replication (a rerun must not wait on what is really gone).
pub async fn teardown(
    client: &GraphClient,
    app: &AppRef,
    progress: impl Fn(&Event) + Send + Sync,
) -> Result<TeardownOutcome, Error> {
    teardown_with(client, app, Replication::NotExpected, progress).await
}

/// [`teardown`], looking the app up with `replication`: [`Replication::Expected`] when the caller knows the
/// app was created moments ago (an interrupted setup), so a lagging replica's 404 is waited out under the
/// retry policy instead of being taken for "already gone".
pub async fn teardown_with(
    client: &GraphClient,
    app: &AppRef,
    replication: Replication,
    progress: impl Fn(&Event) + Send + Sync,
) -> Result<TeardownOutcome, Error> {
    let start = client.requests_sent();
    let mut removed = Vec::new();
    let mut gone = Vec::new();
    let mut record = |step: Step, outcome: Deleted, id: &str| {
        let change = if outcome == Deleted::Deleted { Change::Removed } else { Change::AlreadyGone };
        progress(&Event::Finished { step: step.clone(), change, id: id.to_string() });
        if outcome == Deleted::Deleted { removed.push(step) } else { gone.push(step) }
    };
    let found = resolve_app(client, app, replication).await.map_err(|e| e.in_step(Step::Lookup, app.to_string()))?;
    let mut depth = 1;
    let Some(found) = found else {
        record(Step::Application, Deleted::AlreadyGone, "");
        return Ok(TeardownOutcome {
            application: None,
            removed,
            already_gone: gone,
            requests: client.requests_sent() - start,
            round_trip_depth: depth,
        });
    };
    let object = format!("app {:?} (appId {})", found.display_name, found.app_id);

    depth += 1;
    let sp = client
        .service_principal_for_app(&found.app_id, Replication::NotExpected)
        .await
        .map_err(|e| e.in_step(Step::ServicePrincipal, object.clone()))?;
    match sp {
        None => record(Step::ServicePrincipal, Deleted::AlreadyGone, ""),
        Some(sp) => {
            depth += 2;
            let sp_object = format!("service principal {} of {object}", sp.id);
            let links = delete_links(client, &sp.id, &sp_object, Replication::Expected).await?;
            if !links.iter().any(|(step, _, _)| *step == Step::Grant) {
                record(Step::Grant, Deleted::AlreadyGone, "");
            }
            for (step, outcome, id) in links {
                record(step, outcome, &id);
            }
            depth += 1;
            let outcome = client
                .delete_service_principal(&sp.id)
                .await
                .map_err(|e| e.in_step(Step::ServicePrincipal, sp_object))?;
            record(Step::ServicePrincipal, outcome, &sp.id);
        }
    }
    depth += 1;
    let outcome = client.delete_application(&found.id).await.map_err(|e| e.in_step(Step::Application, object))?;
    record(Step::Application, outcome, &found.id);
    Ok(TeardownOutcome {
        application: Some(AppInfo::from(&found)),
        removed,
        already_gone: gone,
        requests: client.requests_sent() - start,
        round_trip_depth: depth,
    })
}
