//! cba-cert integration tests: one binary, modules by concern.

mod generate;
mod interop;
mod load_errors;
mod robustness;
mod signer;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use cba_cert::{Identity, NewCertificate};

/// One RSA-2048 identity shared by the tests that only read it (key generation costs ~100 ms).
pub fn shared_identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| cba_cert::generate(&NewCertificate::new("cba-test")).expect("generate"))
}

/// Run an external tool; panics with its output on failure. Tools are required, never skipped.
pub fn tool(program: &str, args: &[&str], dir: &Path) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} is required by the interop tests ({e}); .ci/run installs it"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
    text
}
