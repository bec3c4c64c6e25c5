//! `PATCH /applications(uniqueName='…')` with `Prefer: create-if-missing` (application-upsert.md), reads by the
//! alternate key, its uniqueness and immutability, and the fail-after-commit crash aid.

use std::time::Duration;

use cba_sim::SimTenant;
use serde_json::{Value, json};

use crate::common::*;

/// PATCH an application by its alternate key, with or without `Prefer: create-if-missing`.
async fn upsert(graph: &Graph<'_>, unique_name: &str, body: &Value, create: bool) -> (u16, Value) {
    let url = graph.url(&format!("/applications(uniqueName='{}')", unique_name.replace('\'', "''")));
    let mut request = client().patch(url).bearer_auth(&graph.token).json(body);
    if create {
        request = request.header("Prefer", "create-if-missing");
    }
    json_of(request.send().await.expect("send")).await
}

#[tokio::test]
async fn upsert_creates_then_updates_and_reads_back_by_key() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    let body = json!({"displayName": "contoso-exo", "signInAudience": "AzureADMyOrg"});
    let (status, created) = upsert(&graph, "cba-contoso-exo", &body, true).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["uniqueName"], "cba-contoso-exo");
    assert_eq!(created["displayName"], "contoso-exo");
    assert_eq!(created["@odata.context"], format!("{}/v1.0/$metadata#applications/$entity", sim.graph_url()));
    let id = created["id"].as_str().unwrap().to_string();

    // The same request again: the app exists, so it is updated and answered 204 without a body.
    let renamed = json!({"displayName": "contoso-exo-2"});
    let (status, again) = upsert(&graph, "cba-contoso-exo", &renamed, true).await;
    assert_eq!((status, again), (204, Value::Null));
    let (status, read) = graph.get("/applications(uniqueName='cba-contoso-exo')").await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["id"], id.as_str());
    assert_eq!(read["displayName"], "contoso-exo-2");
    let (status, listed) = graph.get("/applications?$filter=uniqueName eq 'cba-contoso-exo'").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["value"].as_array().unwrap().len(), 1);
    assert_eq!(listed["value"][0]["id"], id.as_str());

    let state = sim.state().await;
    assert_eq!(state.primary().applications.len(), 1);
    assert_eq!(state.primary().applications[0].unique_name.as_deref(), Some("cba-contoso-exo"));
}

#[tokio::test]
async fn without_prefer_a_missing_key_is_404_and_nothing_is_created() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    let (status, error) = upsert(&graph, "cba-missing", &json!({"displayName": "x"}), false).await;
    assert_graph_error(status, &error, 404, "Request_ResourceNotFound");
    let (status, error) = graph.get("/applications(uniqueName='cba-missing')").await;
    assert_graph_error(status, &error, 404, "Request_ResourceNotFound");
    assert!(sim.state().await.primary().applications.is_empty());
    // Create needs displayName, like POST /applications.
    let (status, error) = upsert(&graph, "cba-missing", &json!({"signInAudience": "AzureADMyOrg"}), true).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");
    // The alternate key exists on applications only.
    let (status, error) = graph.get("/servicePrincipals(uniqueName='cba-missing')").await;
    assert_graph_error(status, &error, 400, "BadRequest");
}

#[tokio::test]
async fn reads_by_key_wait_for_replication_but_the_upsert_does_not() {
    let sim = SimTenant::builder().replication_delay(Duration::from_secs(30)).start().await;
    let graph = admin(&sim);
    let (status, created) = upsert(&graph, "cba-replicating", &json!({"displayName": "r"}), true).await;
    assert_eq!(status, 201, "{created}");
    let (status, error) = graph.get("/applications(uniqueName='cba-replicating')").await;
    assert_graph_error(status, &error, 404, "Request_ResourceNotFound");
    let (status, listed) = graph.get("/applications?$filter=uniqueName eq 'cba-replicating'").await;
    assert_eq!((status, listed["value"].clone()), (200, json!([])));
    // A plain update by key is a read of the key: 404 until replicated.
    let (status, error) = upsert(&graph, "cba-replicating", &json!({"notes": "n"}), false).await;
    assert_graph_error(status, &error, 404, "Request_ResourceNotFound");
    // The upsert finds it at once: no second app.
    let (status, _) = upsert(&graph, "cba-replicating", &json!({"displayName": "r"}), true).await;
    assert_eq!(status, 204);
    assert_eq!(sim.state().await.primary().applications.len(), 1);

    sim.advance_clock(Duration::from_secs(31));
    let (status, read) = graph.get("/applications(uniqueName='cba-replicating')").await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["id"], created["id"]);
}

#[tokio::test]
async fn unique_name_is_unique_and_immutable() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    let (status, _) = upsert(&graph, "cba-taken", &json!({"displayName": "first"}), true).await;
    assert_eq!(status, 201);
    // POST with a key another app holds.
    let (status, error) =
        graph.post("/applications", &json!({"displayName": "second", "uniqueName": "CBA-TAKEN"})).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");
    assert_eq!(error["error"]["details"][0]["code"], "ObjectConflict", "{error}");
    assert_eq!(error["error"]["details"][0]["target"], "uniqueName", "{error}");

    // An app without a key may get one once (settable while null) ...
    let (id, _) = create_app(&graph, json!({"displayName": "keyless"})).await;
    let (status, error) = graph.patch(&format!("/applications/{id}"), &json!({"uniqueName": "cba-taken"})).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");
    let (status, _) = graph.patch(&format!("/applications/{id}"), &json!({"uniqueName": "cba-second"})).await;
    assert_eq!(status, 204);
    // ... and then never change it (the same value is not a change).
    let (status, _) = graph.patch(&format!("/applications/{id}"), &json!({"uniqueName": "cba-second"})).await;
    assert_eq!(status, 204);
    for value in [json!("cba-third"), Value::Null] {
        let (status, error) = graph.patch(&format!("/applications/{id}"), &json!({ "uniqueName": value })).await;
        assert_graph_error(status, &error, 400, "Request_BadRequest");
    }
    let (status, error) = upsert(&graph, "cba-second", &json!({"uniqueName": "cba-other"}), true).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");
    let (status, read) = graph.get("/applications(uniqueName='cba-second')").await;
    assert_eq!((status, read["id"].as_str()), (200, Some(id.as_str())));
    let (status, error) = graph.post("/applications", &json!({"displayName": "x", "uniqueName": 7})).await;
    assert_graph_error(status, &error, 400, "Request_BadRequest");
}

#[tokio::test]
async fn upsert_needs_application_write_permission() {
    let sim = SimTenant::builder().start().await;
    let app = sim.seed_app("reader", &[der(cert(0))]).await;
    sim.seed_grant(&app, "00000003-0000-0000-c000-000000000000", "Application.Read.All").await;
    let reader = Graph { sim: &sim, token: token_for(&sim, &app, cert(0), GRAPH_SCOPE).await };
    let (status, error) = upsert(&reader, "cba-x", &json!({"displayName": "x"}), true).await;
    assert_graph_error(status, &error, 403, "Authorization_RequestDenied");
    let (status, error) = reader.get("/applications(uniqueName='cba-x')").await;
    assert_graph_error(status, &error, 404, "Request_ResourceNotFound");
}

/// A write answered 500 by `fail_after_commit` did happen: a POST resent after it makes a second app, the
/// upsert resent after it finds the first.
#[tokio::test]
async fn fail_after_commit_commits_the_write_and_loses_the_answer() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    sim.fail_after_commit(1, "POST /applications");
    let body = json!({"displayName": "in-flight"});
    let (status, error) = graph.post("/applications", &body).await;
    assert_graph_error(status, &error, 500, "UnknownError");
    assert_eq!(sim.state().await.primary().applications.len(), 1, "the write was carried out");
    // Armed once: the retry goes through, and there are now two apps of that name.
    let (status, _) = graph.post("/applications", &body).await;
    assert_eq!(status, 201);
    assert_eq!(sim.state().await.primary().applications.len(), 2);

    sim.fail_after_commit(1, "PATCH /applications");
    let (status, error) = upsert(&graph, "cba-in-flight", &body, true).await;
    assert_graph_error(status, &error, 500, "UnknownError");
    let (status, _) = upsert(&graph, "cba-in-flight", &body, true).await;
    assert_eq!(status, 204, "the retried upsert finds the app its lost attempt made");
    let apps = sim.state().await.primary().applications.clone();
    assert_eq!(apps.iter().filter(|a| a.unique_name.as_deref() == Some("cba-in-flight")).count(), 1);

    // Refused writes and reads do not consume the knob; the builder form arms every write.
    let sim = SimTenant::builder().fail_after_commit(1).start().await;
    let graph = admin(&sim);
    let (status, _) = graph.get("/applications").await;
    assert_eq!(status, 200);
    let (status, _) = graph.post("/applications", &json!({})).await;
    assert_eq!(status, 400);
    let (status, _) = graph.post("/applications", &body).await;
    assert_eq!(status, 500);
    let (status, _) = graph.post("/applications", &body).await;
    assert_eq!(status, 201);

    // The same over HTTP, for a `cba sim serve` process.
    let armed = client()
        .post(format!("{}/_sim/fail-after-commit", sim.graph_url()))
        .json(&json!({"count": 1, "pattern": "/applications"}))
        .send()
        .await
        .unwrap();
    assert_eq!(armed.status(), 204);
    let (status, _) = graph.post("/applications", &body).await;
    assert_eq!(status, 500);
}
