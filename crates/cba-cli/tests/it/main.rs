//! Black-box tests of the `cba` binary. Modules named `e2e_*` are the end-to-end suites `cargo xtask e2e` runs.

mod cert;
mod e2e_closed_pipes;
mod e2e_demo;
mod e2e_device_code;
mod e2e_exo;
mod e2e_exo_failures;
mod e2e_fleet;
mod e2e_keyvault;
mod e2e_pkcs11;
mod e2e_rbac;
mod e2e_rotate;
mod e2e_setup;
mod e2e_sim;
mod e2e_status;
mod e2e_teardown;
mod e2e_token;
mod e2e_trust;
mod examples;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The `cba` binary under test, with a clean environment for the variables it reads.
pub fn cba() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cba"));
    for var in [
        "CBA_PFX_PASSWORD",
        "AZURE_CLIENT_CERTIFICATE_PASSWORD",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "AZURE_AUTHORITY_HOST",
        "CBA_GRAPH_TOKEN",
        "CBA_EXO_ADMIN_TOKEN",
        "CBA_GRAPH_URL",
        "CBA_EXCHANGE_URL",
        "CBA_PROFILE",
        "CBA_ADMIN_PFX_PASSWORD",
        "CBA_PKCS11_MODULE",
        "CBA_PKCS11_PIN",
        "SOFTHSM2_CONF",
        "NO_COLOR",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Run and capture; `stdin` is fed when given.
pub fn run(cmd: &mut Command, stdin: Option<&str>) -> Output {
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn cba");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
pub fn assert_code(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "exit code\nstdout:\n{}\nstderr:\n{}", stdout(o), stderr(o));
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", stdout(o)))
}

#[cfg(unix)]
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A simulated tenant and a folder for one black-box scenario; `cba` runs in the folder, pointed at the sim
/// through the environment (AZURE_AUTHORITY_HOST, CBA_GRAPH_URL, CBA_EXCHANGE_URL, CBA_GRAPH_TOKEN).
#[derive(Debug)]
pub struct Tenant {
    pub sim: cba_sim::SimTenant,
    pub dir: tempfile::TempDir,
}

pub const APP: &str = "e2e-app";

impl Tenant {
    pub async fn start(builder: cba_sim::SimTenantBuilder) -> Tenant {
        Tenant { sim: builder.start().await, dir: tempfile::tempdir().unwrap() }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = cba();
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .env("AZURE_AUTHORITY_HOST", self.sim.login_url())
            .env("CBA_GRAPH_URL", self.sim.graph_url())
            .env("CBA_EXCHANGE_URL", self.sim.exchange_url())
            .env("CBA_GRAPH_TOKEN", self.sim.admin_token());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        run(&mut self.cmd(args), None)
    }

    /// `cba setup` for APP with an unprotected new certificate, plus `extra`.
    pub fn setup_args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args =
            vec!["setup", "--tenant", self.sim.tenant_domain(), "--name", APP, "--no-password", "--wait", "60s"];
        args.extend_from_slice(extra);
        args
    }

    pub fn setup(&self, extra: &[&str]) -> Output {
        self.run(&self.setup_args(extra))
    }

    pub fn profile(&self) -> std::path::PathBuf {
        self.dir.path().join(format!("{APP}.profile.json"))
    }

    pub fn profile_json(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.profile()).unwrap()).unwrap()
    }

    /// Exactly one app (named APP, with one certificate), one service principal, one grant, one role.
    pub async fn assert_one_of_each(&self) -> cba_sim::StateSnapshot {
        let state = self.sim.state().await;
        let t = state.primary();
        assert_eq!(t.applications.len(), 1, "{:#?}", t.applications);
        assert_eq!(t.applications[0].display_name, APP);
        assert_eq!(t.applications[0].key_credentials.len(), 1, "{:#?}", t.applications[0].key_credentials);
        let sps: Vec<_> = t.custom_service_principals().collect();
        assert_eq!(sps.len(), 1, "{sps:#?}");
        assert_eq!(sps[0].app_id, t.applications[0].app_id);
        assert_eq!(t.app_role_assignments.len(), 1, "{:#?}", t.app_role_assignments);
        assert_eq!(t.app_role_assignments[0].principal_id, sps[0].id);
        assert_eq!(t.role_assignments.len(), 1, "{:#?}", t.role_assignments);
        assert_eq!(t.role_assignments[0].principal_id, sps[0].id);
        assert_eq!(t.role_assignments[0].role_definition_id, "29232cdf-9323-42fd-ade2-1d097af3e4de");
        state
    }

    /// A Graph client signed in as the tenant's admin, to change the tenant behind `cba`'s back.
    pub fn admin_graph(&self) -> cba_graph::GraphClient {
        cba_graph::GraphClient::builder()
            .base_url(self.sim.graph_url())
            .token_source(std::sync::Arc::new(cba_graph::StaticToken::new(self.sim.admin_token())))
            .build()
            .unwrap()
    }

    pub async fn assert_empty(&self) {
        let state = self.sim.state().await;
        let t = state.primary();
        assert!(t.applications.is_empty(), "{:#?}", t.applications);
        assert_eq!(t.custom_service_principals().count(), 0);
        assert!(t.app_role_assignments.is_empty());
        assert!(t.role_assignments.is_empty());
    }

    /// Start `cba` with `args` and kill it once `stop` says so (polled every 5 ms) or it exits.
    pub async fn run_until(&self, args: &[&str], mut stop: impl AsyncFnMut() -> bool) -> bool {
        let mut child = self.cmd(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn cba");
        loop {
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            if stop().await {
                child.kill().unwrap();
                child.wait().unwrap();
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
