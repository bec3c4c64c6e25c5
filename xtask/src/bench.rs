//! Benchmarks: whole-process wall times, peers run side by side (interleaved), medians.
//! Results go to docs/benchmarks.md by hand; this prints the table.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::{cargo, root, run};

pub fn run_bench(args: &[&str]) -> anyhow::Result<()> {
    match args {
        ["cert", rest @ ..] => cert(runs(rest)?),
        _ => bail!("usage: cargo xtask bench cert [--runs N]"),
    }
}

fn runs(rest: &[&str]) -> anyhow::Result<usize> {
    match rest {
        [] => Ok(25),
        ["--runs", n] => n.parse().context("--runs takes a number"),
        _ => bail!("unknown bench options {rest:?}"),
    }
}

/// Build the release binary and return its path.
pub fn release_binary() -> anyhow::Result<PathBuf> {
    run(cargo().args(["build", "--release", "-p", "cba-cli", "--bin", "cba"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    Ok(target.join("release").join("cba"))
}

fn time(cmd: &mut Command) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let out =
        cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output().context("cannot start the benchmark command")?;
    let elapsed = start.elapsed();
    if !out.status.success() {
        bail!("benchmark command failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(elapsed)
}

pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    let n = samples.len();
    if n % 2 == 1 { samples[n / 2] } else { (samples[n / 2 - 1] + samples[n / 2]) / 2 }
}

pub fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// `cba cert new` (RSA-2048, PFX + CER) against `openssl req -x509 -newkey rsa:2048 -nodes` + `openssl pkcs12 -export`.
fn cert(n: usize) -> anyhow::Result<()> {
    let cba = release_binary()?;
    let dir = tempdir()?;
    let (mut ours, mut theirs) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        // Interleave so both see the same machine state.
        ours.push(time(
            Command::new(&cba)
                .args(["cert", "new", "--name", &format!("c{i}"), "--out-dir"])
                .arg(&dir)
                .env("CBA_PFX_PASSWORD", "bench-password"),
        )?);
        theirs.push(openssl_pipeline(&dir, i)?);
    }
    let (a, b) = (median(&mut ours), median(&mut theirs));
    println!("| task | cba median (ms) | openssl median (ms) | ratio cba/openssl | runs |");
    println!("|---|---|---|---|---|");
    println!(
        "| RSA-2048 self-signed cert, PFX (AES-256) + CER | {} | {} | {:.2} | {n} each, interleaved |",
        ms(a),
        ms(b),
        a.as_secs_f64() / b.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn openssl_pipeline(dir: &Path, i: usize) -> anyhow::Result<Duration> {
    let key = dir.join(format!("o{i}.key"));
    let crt = dir.join(format!("o{i}.crt"));
    let pfx = dir.join(format!("o{i}.pfx"));
    let cer = dir.join(format!("o{i}.cer"));
    let start = Instant::now();
    let steps: [Vec<std::ffi::OsString>; 3] = [
        vec![
            "req".into(),
            "-x509".into(),
            "-newkey".into(),
            "rsa:2048".into(),
            "-nodes".into(),
            "-sha256".into(),
            "-days".into(),
            "365".into(),
            "-subj".into(),
            format!("/CN=o{i}").into(),
            "-addext".into(),
            "keyUsage=critical,digitalSignature,keyEncipherment".into(),
            "-addext".into(),
            "extendedKeyUsage=clientAuth".into(),
            "-keyout".into(),
            key.clone().into(),
            "-out".into(),
            crt.clone().into(),
        ],
        vec![
            "pkcs12".into(),
            "-export".into(),
            "-inkey".into(),
            key.into(),
            "-in".into(),
            crt.clone().into(),
            "-out".into(),
            pfx.into(),
            "-passout".into(),
            "pass:bench-password".into(),
        ],
        vec!["x509".into(), "-in".into(), crt.into(), "-outform".into(), "DER".into(), "-out".into(), cer.into()],
    ];
    for args in steps {
        let out = Command::new("openssl").args(&args).stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
        if !out.status.success() {
            bail!("openssl failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(start.elapsed())
}

pub fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("cba-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
