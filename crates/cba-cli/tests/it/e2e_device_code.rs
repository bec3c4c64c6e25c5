//! `cba setup --admin device-code`: the administrator's normal sign-in, against the simulated device-code
//! flow (no CBA_GRAPH_TOKEN).

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cba_sim::SimTenant;

use super::{APP, Tenant, assert_code, stderr};

/// `cba setup --admin device-code` for APP, without the sim's admin token in the environment.
fn device_code_setup(t: &Tenant) -> Command {
    let mut args = t.setup_args(&["--admin", "device-code"]);
    args.retain(|a| *a != "--wait" && *a != "60s");
    args.extend(["--wait", "20s"]);
    let mut cmd = t.cmd(&args);
    cmd.env_remove("CBA_GRAPH_TOKEN").stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// The user code of the one device code the sim is waiting on, once `cba` asked for it (within 10 s).
async fn pending_user_code(t: &Tenant, child: &mut Child) -> String {
    let start = Instant::now();
    loop {
        if let [code] = t.sim.pending_device_codes().as_slice() {
            return code.clone();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("cba exited ({status}) before asking for a device code");
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no device code after 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn finish(child: Child) -> Output {
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_device_code_setup_signs_in_and_provisions() {
    let t = Tenant::start(
        SimTenant::builder()
            .device_code_delay(Duration::from_millis(1500))
            .device_code_interval(Duration::from_secs(1)),
    )
    .await;
    let mut child = device_code_setup(&t).spawn().expect("spawn cba");
    let user_code = pending_user_code(&t, &mut child).await;
    let o = finish(child);
    assert_code(&o, 0);

    // The instructions, on stderr: where to go and the code to enter.
    let err = stderr(&o);
    assert!(err.contains("https://microsoft.com/devicelogin"), "{err}");
    assert!(err.contains(&user_code), "user code {user_code} not shown:\n{err}");
    assert!(t.sim.pending_device_codes().is_empty());

    // One device code, asked of the tenant given (by domain).
    let requests = t.sim.requests().await;
    let device_code_requests: Vec<_> =
        requests.iter().filter(|r| r.path.ends_with("/oauth2/v2.0/devicecode")).collect();
    assert_eq!(device_code_requests.len(), 1, "{device_code_requests:#?}");
    assert!(device_code_requests[0].path.contains(t.sim.tenant_domain()), "{}", device_code_requests[0].path);

    let state = t.assert_one_of_each().await;
    let profile = t.profile_json();
    assert!(profile.get("incomplete").is_none(), "{profile:#}");
    assert_eq!(profile["app_id"], state.primary().applications[0].app_id.as_str());
    assert_eq!(profile["tenant_id"], t.sim.tenant_id(), "the token's tid replaces the domain");
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_device_code_setup_declined_creates_nothing() {
    let t = Tenant::start(
        SimTenant::builder().device_code_auto_approve(false).device_code_interval(Duration::from_secs(1)),
    )
    .await;
    let before = t.sim.state().await;
    let mut child = device_code_setup(&t).spawn().expect("spawn cba");
    let user_code = pending_user_code(&t, &mut child).await;
    assert!(t.sim.decline_device_code(&user_code));
    let o = finish(child);
    assert_code(&o, 4);
    let err = stderr(&o);
    assert!(err.contains(&user_code), "{err}");
    assert!(err.contains("device-code sign-in"), "names the step: {err}");
    assert!(err.contains("AADSTS70000") && err.contains("declined"), "{err}");
    assert!(err.contains("run the command again"), "says what to do: {err}");

    // Nothing in the tenant: not one Graph request was made.
    t.assert_empty().await;
    assert_eq!(t.sim.state().await, before);
    let graph: Vec<_> =
        t.sim.requests().await.into_iter().filter(|r| r.path.starts_with("/v1.0/")).map(|r| r.path).collect();
    assert!(graph.is_empty(), "{graph:?}");

    // On disk only what a rerun resumes from (setup writes both before the sign-in, by design): the
    // certificate and a profile marked incomplete that names no app.
    let profile = t.profile_json();
    assert_eq!(profile["incomplete"], true, "{profile:#}");
    assert_eq!(profile["app_id"], "", "{profile:#}");
    assert_eq!(profile["app_object_id"], "", "{profile:#}");

    // The admin approves the next attempt: it reuses that certificate and finishes.
    let pfx = std::fs::read(t.dir.path().join(format!("{APP}.pfx"))).unwrap();
    let mut child = device_code_setup(&t).spawn().expect("spawn cba");
    let user_code = pending_user_code(&t, &mut child).await;
    assert!(t.sim.approve_device_code(&user_code));
    let o = finish(child);
    assert_code(&o, 0);
    t.assert_one_of_each().await;
    assert_eq!(std::fs::read(t.dir.path().join(format!("{APP}.pfx"))).unwrap(), pfx);
    assert!(t.profile_json().get("incomplete").is_none());
}
