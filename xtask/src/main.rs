//! Project automation: `cargo xtask ci | e2e | bench <name>`.

mod bench;
mod bench_fleet;
mod bench_pkcs11;
#[cfg(test)]
mod invariants;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["ci"] => ci(),
        ["e2e"] => e2e(),
        ["bench", "fleet", rest @ ..] => bench_fleet::run(rest),
        ["bench", rest @ ..] => bench::run_bench(rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 ci              fmt check, clippy -D warnings, the whole test suite (what CI runs)\n  \
                 e2e             the black-box suites: the real `cba` binary against cba-sim\n  \
                 bench cert      `cba cert new` against the OpenSSL pipeline (docs/benchmarks.md)\n  \
                 bench token     `cba token` cache hit / miss / RSS; a SoftHSM2 key against a file key\n  \
                 bench setup     `cba setup` against the sim (100 ms latency): wall time vs the critical path\n  \
                 bench setup --key pkcs11   the same, side by side with a SoftHSM2 key (`--key pkcs11:…`)\n  \
                 bench exo       `cba exo invoke Get-Mailbox` over 10,000 sim mailboxes: wall time vs the sim, peak RSS\n  \
                 bench fleet     `cba fleet status` / `cba exo invoke --fleet --all` over 1,000 sim tenants at 50 ms\n"
            );
            bail!("unknown or missing task");
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask is inside the workspace").to_path_buf()
}

pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("$ {}", display(cmd));
    let status = cmd.status().with_context(|| format!("cannot start {}", display(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", display(cmd));
    }
    Ok(())
}

fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program().to_string_lossy().into_owned())
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The external tools the interop tests drive. Missing ones fail loudly: tests never skip silently.
fn check_tools() -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for (tool, arg) in [("openssl", "version"), ("keytool", "-help")] {
        let ok = Command::new(tool).arg(arg).output().map(|o| o.status.success() || tool == "keytool").unwrap_or(false);
        if !ok {
            missing.push(tool);
        }
    }
    if !missing.is_empty() {
        bail!(
            "the interop tests need {} on PATH (Debian: apt-get install openssl openjdk-17-jre-headless); .ci/run installs them",
            missing.join(" and ")
        );
    }
    Ok(())
}

fn ci() -> anyhow::Result<()> {
    check_tools()?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    // The black-box e2e suites are part of `cargo test` (cba-cli's `it` binary), so this runs them too.
    run(cargo().args(["test", "--workspace"]).env("CBA_REQUIRE_INTEROP_TOOLS", "1"))?;
    eprintln!("xtask ci: all checks passed");
    Ok(())
}

fn e2e() -> anyhow::Result<()> {
    check_tools()?;
    // The black-box suites live in the cba-cli integration tests named `e2e_*`; they run the built binary.
    run(cargo().args(["test", "-p", "cba-cli", "--test", "it", "--", "e2e", "--test-threads", "2"]))
}
