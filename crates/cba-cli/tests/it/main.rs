//! Black-box tests of the `cba` binary. Modules named `e2e_*` are the end-to-end suites `cargo xtask e2e` runs.

mod cert;
mod e2e_token;

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
        "CBA_GRAPH_URL",
        "CBA_EXCHANGE_URL",
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
