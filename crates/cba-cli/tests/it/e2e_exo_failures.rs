//! `cba exo invoke` when Exchange fails: a write that may have run is not sent again (exit 6, what to check),
//! and `--output json` leaves valid JSON or nothing on stdout.

use std::time::Duration;

use cba_sim::Service;

use super::{Tenant, assert_code, run, stderr, stdout};

const EXCHANGE_ADMINISTRATOR: &str = "29232cdf-9323-42fd-ade2-1d097af3e4de";

/// A tenant with an Exchange-ready app, and `cba exo invoke` with that app's token.
struct Exo {
    t: Tenant,
    token: String,
}

impl Exo {
    async fn start(builder: cba_sim::SimTenantBuilder) -> Exo {
        let t = Tenant::start(builder).await;
        let app = t.sim.seed_app("exo-e2e", &[] as &[Vec<u8>]).await;
        t.sim.seed_grant_manage_as_app(&app).await;
        t.sim.seed_role_assignment(&app, EXCHANGE_ADMINISTRATOR).await;
        let token = t.sim.app_token(&app, "https://outlook.office365.com");
        Exo { t, token }
    }

    fn invoke(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = self.t.cmd(&["exo", "invoke"]);
        cmd.args(args).args(["--tenant", self.t.sim.tenant_id(), "--access-token-env", "E2E_EXO_TOKEN"]);
        cmd.env("E2E_EXO_TOKEN", &self.token);
        run(&mut cmd, None)
    }

    async fn exchange_statuses(&self) -> Vec<u16> {
        let requests = self.t.sim.requests().await;
        requests.iter().filter(|r| r.service == Some(Service::Exchange)).map(|r| r.status).collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_exo_a_write_that_failed_after_running_is_not_sent_again() {
    let exo = Exo::start(cba_sim::SimTenant::builder().mailboxes(3).exchange_fail_after_execute(1)).await;
    let o = exo.invoke(&["Set-Mailbox", "-p", "Identity=user00001", "-p", "CustomAttribute1=blue"]);
    assert_code(&o, 6);
    let err = stderr(&o);
    assert!(
        err.contains("the outcome of Set-Mailbox is unknown: after the request was sent, Exchange answered HTTP 500"),
        "{err}"
    );
    assert!(err.contains("was not sent again"), "{err}");
    assert!(err.contains("to see whether it ran: `cba exo invoke Get-Mailbox -p Identity=user00001`"), "{err}");
    assert_eq!(stdout(&o), "");
    assert_eq!(exo.exchange_statuses().await, [500], "sent exactly once");

    // It ran: the look-up the message suggests shows the change.
    let o = exo.invoke(&["Get-Mailbox", "-p", "Identity=user00001", "--output", "json"]);
    assert_code(&o, 0);
    let mailboxes: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(mailboxes[0]["CustomAttribute1"], "blue", "{mailboxes}");

    // The knob fired once: the next write succeeds (204, no output).
    let o = exo.invoke(&["Set-Mailbox", "-p", "Identity=user00001", "-p", "CustomAttribute1=green"]);
    assert_code(&o, 0);
    assert_eq!(exo.exchange_statuses().await, [500, 200, 204]);
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_exo_json_output_is_valid_or_empty_when_the_cmdlet_fails() {
    // Every second Exchange request is throttled with a Retry-After past the 5-minute retry budget: the first
    // page arrives, the second never does.
    let exo = Exo::start(
        cba_sim::SimTenant::builder()
            .mailboxes(5)
            .throttle_every(2)
            .retry_after(Duration::from_secs(600))
            .fault_services([Service::Exchange]),
    )
    .await;
    let o = exo.invoke(&["Get-Mailbox", "-p", "ResultSize=Unlimited", "--page-size", "2", "--output", "json"]);
    assert_code(&o, 6);
    let partial: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(&o)));
    let aliases: Vec<&str> = partial.as_array().unwrap().iter().map(|m| m["Alias"].as_str().unwrap()).collect();
    assert_eq!(aliases, ["admin", "user00001"]);
    let err = stderr(&o);
    assert!(err.contains("throttled Get-Mailbox"), "{err}");
    assert!(err.contains("the output is partial: only the 2 object(s) received before the failure were written, in a closed JSON array"), "{err}");

    // A failure before any object: nothing on stdout (request 3 is answered, 4 would be throttled).
    let o = exo.invoke(&["Get-Mailbox", "-p", "Identity=nobody", "--output", "json"]);
    assert_code(&o, 6);
    assert_eq!(stdout(&o), "", "no lone `[`");
    assert!(stderr(&o).contains("couldn't be found"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("partial"), "{}", stderr(&o));
}
