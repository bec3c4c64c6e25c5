//! The application upsert by a client-chosen key (`PATCH /applications(uniqueName='…')` + `Prefer:
//! create-if-missing`) and reads by that key, against cba-sim.

use std::sync::Arc;
use std::time::Duration;

use cba_graph::model::{Created, NewApplication};
use cba_graph::{Error, GraphClient, Replication, StaticToken};
use cba_sim::SimTenant;

use crate::support::{client, key_credential};

const KEY: &str = "cba-contoso-exo-0b1c";

fn admin(sim: &SimTenant) -> GraphClient {
    client(sim.graph_url(), Arc::new(StaticToken::new(sim.admin_token())))
}

/// An app as setup makes it, with a real certificate (the sim checks keyCredentials).
fn new_app() -> NewApplication {
    let identity = cba_cert::generate(&cba_cert::NewCertificate::new("contoso-exo")).expect("certificate");
    let key = serde_json::from_value(serde_json::to_value(identity.certificate.key_credential()).unwrap()).unwrap();
    NewApplication::for_exchange("contoso-exo", key)
}

#[tokio::test]
async fn created_then_already_existed() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    let new = new_app();
    let created = match graph.upsert_application(KEY, &new).await.expect("upsert") {
        Created::Created(app) => app,
        Created::AlreadyExisted => panic!("nothing existed yet"),
    };
    assert_eq!(created.unique_name.as_deref(), Some(KEY));
    assert_eq!(created.display_name, "contoso-exo");
    assert_eq!(created.key_credentials.len(), 1);

    assert_eq!(graph.upsert_application(KEY, &new).await.expect("upsert"), Created::AlreadyExisted);
    let read = graph.application_by_unique_name(KEY, Replication::NotExpected).await.expect("read");
    assert_eq!(read.as_ref().map(|a| a.id.as_str()), Some(created.id.as_str()));
    assert_eq!(read.unwrap().unique_name.as_deref(), Some(KEY));
    assert_eq!(graph.application_by_unique_name("cba-other", Replication::NotExpected).await.unwrap(), None);

    let state = sim.state().await;
    assert_eq!(state.primary().applications.len(), 1);
    assert_eq!(state.primary().applications[0].unique_name.as_deref(), Some(KEY));
    assert_eq!(graph.requests_sent(), 4);
}

#[tokio::test]
async fn read_back_is_404_until_replicated() {
    let sim = SimTenant::builder().replication_delay(Duration::from_secs(30)).start().await;
    let graph = admin(&sim);
    let Created::Created(created) = graph.upsert_application(KEY, &new_app()).await.unwrap() else {
        panic!("created");
    };
    // Not expecting replication: the 404 is the answer.
    assert_eq!(graph.application_by_unique_name(KEY, Replication::NotExpected).await.unwrap(), None);
    // The upsert itself is not fooled by replication: it finds the app it made.
    assert_eq!(graph.upsert_application(KEY, &new_app()).await.unwrap(), Created::AlreadyExisted);
    assert_eq!(sim.state().await.primary().applications.len(), 1);
    sim.advance_clock(Duration::from_secs(31));
    let read = graph.application_by_unique_name(KEY, Replication::NotExpected).await.unwrap();
    assert_eq!(read.map(|a| a.id), Some(created.id));
}

#[tokio::test]
async fn expected_replication_waits_for_the_read_back() {
    let sim = SimTenant::builder().replication_delay(Duration::from_millis(300)).start().await;
    let graph = admin(&sim);
    let Created::Created(created) = graph.upsert_application(KEY, &new_app()).await.unwrap() else {
        panic!("created");
    };
    let read = graph.application_by_unique_name(KEY, Replication::Expected).await.unwrap();
    assert_eq!(read.map(|a| a.id), Some(created.id));
    assert!(graph.requests_sent() > 2, "the 404s were retried: {}", graph.requests_sent());
}

/// "Killed while the request was in flight": the write happened, the answer was lost. The upsert is
/// retried and finds the app; the POST is not retried (it cannot be, safely) and leaves an app behind that
/// only a name search can find.
#[tokio::test]
async fn a_retry_after_a_lost_answer_gives_one_app_not_two() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    sim.fail_after_commit(1, "PATCH /applications");
    assert_eq!(graph.upsert_application(KEY, &new_app()).await.expect("retried"), Created::AlreadyExisted);
    assert_eq!(graph.requests_sent(), 2);
    let state = sim.state().await;
    assert_eq!(state.primary().applications.len(), 1, "{:#?}", state.primary().applications);
    // A rerun of the whole step (a new process with the recorded key) adopts the same app.
    assert_eq!(graph.upsert_application(KEY, &new_app()).await.unwrap(), Created::AlreadyExisted);
    assert_eq!(sim.state().await.primary().applications.len(), 1);

    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    sim.fail_after_commit(1, "POST /applications");
    let error = graph.create_application(&new_app()).await.expect_err("a lost POST answer is not retried");
    assert!(matches!(error.api(), Some((500, _, _))), "{error}");
    assert_eq!(graph.requests_sent(), 1);
    assert_eq!(sim.state().await.primary().applications.len(), 1, "the POST did create it");
}

#[tokio::test]
async fn the_key_is_checked_before_any_request() {
    let sim = SimTenant::builder().start().await;
    let graph = admin(&sim);
    for bad in ["", "a/b", "a b", "x?y", "50%"] {
        let error = graph.upsert_application(bad, &NewApplication::for_exchange("x", key_credential())).await;
        assert!(matches!(error, Err(Error::Invalid { what: "uniqueName", .. })), "{bad:?}: {error:?}");
        let error = graph.application_by_unique_name(bad, Replication::NotExpected).await;
        assert!(matches!(error, Err(Error::Invalid { what: "uniqueName", .. })), "{bad:?}: {error:?}");
    }
    assert_eq!(graph.requests_sent(), 0);
    // A quote is doubled inside the literal, not refused.
    let Created::Created(app) = graph.upsert_application("cba-o'brien", &new_app()).await.unwrap() else {
        panic!("created");
    };
    assert_eq!(app.unique_name.as_deref(), Some("cba-o'brien"));
    let read = graph.application_by_unique_name("cba-o'brien", Replication::NotExpected).await.unwrap();
    assert_eq!(read.map(|a| a.id), Some(app.id));
}

/// The client never reads its bearer token: an opaque one works as well as a JWT.
#[tokio::test]
async fn an_opaque_admin_token_is_enough() {
    let sim = SimTenant::builder().start().await;
    let graph = client(sim.graph_url(), Arc::new(StaticToken::new(sim.admin_token_opaque())));
    assert!(matches!(graph.upsert_application(KEY, &new_app()).await.unwrap(), Created::Created(_)));
    assert!(graph.application_by_unique_name(KEY, Replication::NotExpected).await.unwrap().is_some());
}
