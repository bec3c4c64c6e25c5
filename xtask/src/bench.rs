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
        ["token", rest @ ..] => token(runs(rest)?),
        ["setup", "--key", "pkcs11", rest @ ..] => setup(runs(rest)?.max(10), true),
        ["setup", rest @ ..] => setup(runs(rest)?.max(10), false),
        ["exo", rest @ ..] => exo(runs(rest)?),
        _ => bail!("usage: cargo xtask bench cert|token|setup [--key pkcs11]|exo [--runs N]"),
    }
}

fn runs(rest: &[&str]) -> anyhow::Result<usize> {
    match rest {
        [] => Ok(25),
        ["--runs", n] => n.parse().context("--runs takes a number"),
        _ => bail!("unknown bench options {rest:?}"),
    }
}

/// Build the release binary and return its path (`CBA_BENCH_BIN` names an already built one instead).
pub fn release_binary() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("CBA_BENCH_BIN") {
        let cwd = std::env::current_dir().context("cannot read the current folder")?;
        return Ok(bench_bin(Path::new(&bin), &cwd));
    }
    run(cargo().args(["build", "--release", "-p", "cba-cli", "--bin", "cba"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    Ok(target.join("release").join("cba"))
}

/// `CBA_BENCH_BIN` as given on the command line: a relative path means the folder the bench was started in,
/// not the temporary folders the benchmarks later run `cba` in. A bare name (`cba`) is left to the PATH search.
fn bench_bin(bin: &Path, cwd: &Path) -> PathBuf {
    if bin.is_absolute() || bin.components().count() == 1 { bin.to_path_buf() } else { cwd.join(bin) }
}

/// `cmd` without `SSL_CERT_FILE` and `SSL_CERT_DIR`: cba reads and parses the extra roots they name even when
/// every endpoint is plain http on loopback (about 150 files, ~10 ms, on a machine that points both at the
/// system bundle), which would measure the machine's environment rather than cba.
pub fn without_extra_roots(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR")
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

/// A running `cba sim serve`, killed on drop.
pub struct SimProcess {
    child: std::process::Child,
    pub info: std::collections::HashMap<String, String>,
}

impl SimProcess {
    pub fn start(cba: &Path, args: &[&str]) -> anyhow::Result<SimProcess> {
        use std::io::BufRead as _;
        let mut child = Command::new(cba)
            .args(["sim", "serve"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting cba sim serve")?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        let info = parse_flat_json(&line).context("cba sim serve printed no JSON line")?;
        Ok(SimProcess { child, info })
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sim's one-line JSON object of strings (xtask keeps its dependencies few).
fn parse_flat_json(line: &str) -> Option<std::collections::HashMap<String, String>> {
    let body = line.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut map = std::collections::HashMap::new();
    for pair in body.split("\",\"") {
        let pair = pair.trim_matches('"');
        let (k, v) = pair.split_once("\":\"")?;
        map.insert(k.to_string(), v.to_string());
    }
    Some(map)
}

/// Peak RSS in KiB of a command, via /usr/bin/time (GNU time) when present.
pub fn peak_rss_kib(cmd: &Command) -> anyhow::Result<Option<u64>> {
    if !Path::new("/usr/bin/time").exists() {
        return Ok(None);
    }
    let mut timed = Command::new("/usr/bin/time");
    timed.arg("-f").arg("%M").arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    let out = timed.stdout(Stdio::null()).output()?;
    let text = String::from_utf8_lossy(&out.stderr);
    Ok(text.lines().last().and_then(|l| l.trim().parse().ok()))
}

/// `cba sim serve` with an app already registered for `DIR/bench.pfx` (made here, unprotected).
fn seeded_sim(cba: &Path, dir: &Path, sim_args: &[&str]) -> anyhow::Result<SimProcess> {
    let status = Command::new(cba)
        .args(["cert", "new", "--name", "bench", "--no-password", "--out-dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("cba cert new failed");
    }
    let cer = dir.join("bench.cer");
    let mut args = sim_args.to_vec();
    args.extend(["--seed-app-cert", cer.to_str().context("the temp folder's path is not UTF-8")?]);
    SimProcess::start(cba, &args)
}

/// `cba token`: cache hit, cache miss against the sim on loopback, peak RSS; then a file key against a SoftHSM2
/// key (cache misses, side by side).
fn token(n: usize) -> anyhow::Result<()> {
    let cba = release_binary()?;
    let dir = tempdir()?;
    let sim = seeded_sim(&cba, &dir, &[])?;
    let cache = dir.join("cache");
    let make = |extra: &[&str]| {
        let mut cmd = Command::new(&cba);
        cmd.arg("token")
            .args(extra)
            .env("AZURE_TENANT_ID", &sim.info["tenant_id"])
            .env("AZURE_CLIENT_ID", &sim.info["seeded_app_id"])
            .env("AZURE_CLIENT_CERTIFICATE_PATH", dir.join("bench.pfx"))
            .env("AZURE_AUTHORITY_HOST", &sim.info["login_url"])
            .env("XDG_CACHE_HOME", &cache)
            .env_remove("CBA_PFX_PASSWORD");
        without_extra_roots(&mut cmd);
        cmd
    };
    // Warm the cache once, then interleave hits and misses.
    time(&mut make(&[]))?;
    let (mut hits, mut misses) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        hits.push(time(&mut make(&[]))?);
        misses.push(time(&mut make(&["--no-cache"]))?);
    }
    let rss_hit = peak_rss_kib(&make(&[]))?;
    let rss_miss = peak_rss_kib(&make(&["--no-cache"]))?;
    let (h, m) = (median(&mut hits), median(&mut misses));
    let kib = |v: Option<u64>| v.map(|k| format!("{:.1} MB", k as f64 / 1024.0)).unwrap_or_else(|| "n/a".into());
    println!("| `cba token` (whole process) | median (ms) | target | peak RSS | runs |");
    println!("|---|---|---|---|---|");
    println!("| cache hit | {} | ≤ 5 ms | {} | {n} |", ms(h), kib(rss_hit));
    println!("| cache miss, sim on loopback | {} | ≤ 25 ms | {} | {n} |", ms(m), kib(rss_miss));
    let _ = std::fs::remove_dir_all(&dir);
    println!();
    crate::bench_pkcs11::token_keys(n)
}

/// `cba setup` against `cba sim serve --latency-ms 100` (no replication delay): median wall time against the
/// critical-path bound (round-trip depth × 100 ms, from `--output json`), and the request count. A fresh app
/// name each run: with an existing certificate (`--cert`, the network part alone) and making one; with
/// `--key pkcs11` also a SoftHSM2 key already in the token and one generated in the run. The rows are run in
/// turn in each round (interleaved), so all see the same machine.
fn setup(n: usize, pkcs11: bool) -> anyhow::Result<()> {
    const LATENCY_MS: u64 = 100;
    let cba = release_binary()?;
    let dir = tempdir()?.join("setup");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let status = Command::new(&cba)
        .args(["cert", "new", "--name", "bench", "--no-password", "--force", "--out-dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("cba cert new failed");
    }
    let hsm = if pkcs11 {
        let hsm = crate::bench_pkcs11::SoftHsm::init(&dir)?;
        let mut cmd = Command::new(&cba);
        cmd.args(["cert", "new", "--name", "bench-token", "--key", "pkcs11:token=cba;object=bench", "--out-dir"])
            .arg(&dir)
            .stdout(Stdio::null());
        if !hsm.env(&mut cmd).status()?.success() {
            bail!("cba cert new --key failed");
        }
        Some(hsm)
    } else {
        None
    };
    let sim = SimProcess::start(&cba, &["--latency-ms", &LATENCY_MS.to_string()])?;
    let field = |json: &str, key: &str| -> anyhow::Result<u64> {
        let at = json.find(&format!("\"{key}\": ")).with_context(|| format!("no {key} in the JSON"))?;
        let rest = &json[at + key.len() + 4..];
        let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        rest[..end].parse().with_context(|| format!("{key} is not a number"))
    };
    type Args = fn(usize) -> Vec<String>;
    let mut rows: Vec<(&str, Args)> = vec![
        ("existing certificate (`--cert`)", |_| vec!["--cert".into(), "bench.pfx".into()]),
        ("new certificate (RSA-2048 made in the run)", |_| vec!["--no-password".into()]),
    ];
    if pkcs11 {
        rows.push(("SoftHSM2 key already in the token (`--key pkcs11:…`)", |_| {
            vec!["--key".into(), "pkcs11:token=cba;object=bench".into()]
        }));
        rows.push(("SoftHSM2 key generated in the run (`--key pkcs11:…`, a new label)", |i| {
            vec!["--key".into(), format!("pkcs11:token=cba;object=bench-new-{i}")]
        }));
    }
    let mut samples: Vec<(Vec<Duration>, Vec<u64>, Vec<u64>)> = vec![Default::default(); rows.len()];
    for i in 0..n {
        for (r, (_, args)) in rows.iter().enumerate() {
            let mut cmd = Command::new(&cba);
            cmd.args([
                "setup",
                "--tenant",
                &sim.info["tenant_domain"],
                "--name",
                &format!("bench-{r}-{i}"),
                "--admin",
                "token",
                "--output",
                "json",
            ])
            .args(args(i))
            .current_dir(&dir)
            .env("CBA_GRAPH_TOKEN", &sim.info["admin_token"])
            .env("AZURE_AUTHORITY_HOST", &sim.info["login_url"])
            .env("CBA_GRAPH_URL", &sim.info["graph_url"])
            .env("CBA_EXCHANGE_URL", &sim.info["exchange_url"])
            .env_remove("CBA_PFX_PASSWORD")
            .env_remove("CBA_PROFILE");
            if let Some(hsm) = &hsm {
                hsm.env(&mut cmd);
            }
            without_extra_roots(&mut cmd);
            let start = Instant::now();
            let out = cmd.stderr(Stdio::piped()).output().context("starting cba setup")?;
            let wall = start.elapsed();
            if !out.status.success() {
                bail!("cba setup failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let json = String::from_utf8_lossy(&out.stdout);
            let (walls, depths, requests) = &mut samples[r];
            walls.push(wall);
            depths.push(field(&json, "round_trip_depth")?);
            requests.push(field(&json, "requests")?);
        }
    }
    drop(sim);
    println!(
        "| `cba setup`, sim latency {LATENCY_MS} ms | median wall (ms) | critical-path bound (ms) | ratio | target | requests | runs |"
    );
    println!("|---|---|---|---|---|---|---|");
    for ((label, _), (walls, depths, requests)) in rows.iter().zip(&mut samples) {
        let wall = median(walls);
        depths.sort_unstable();
        requests.sort_unstable();
        let depth = depths[depths.len() / 2];
        let bound = Duration::from_millis(depth * LATENCY_MS);
        println!(
            "| {label} | {} | {} (depth {depth}) | {:.2} | ≤ 1.3 | {} (target ≤ 10) | {n}, interleaved |",
            ms(wall),
            ms(bound),
            wall.as_secs_f64() / bound.as_secs_f64(),
            requests[requests.len() / 2]
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `cba exo invoke Get-Mailbox` over 10,000 mailboxes (pages of 1,000) against the sim's own serving time for
/// the same pages; peak RSS. The measuring harness is crates/cba-exo/bench/exo_bench.py (python3).
fn exo(n: usize) -> anyhow::Result<()> {
    let cba = release_binary()?;
    let dir = tempdir()?;
    let sim = seeded_sim(&cba, &dir, &["--mailboxes", "10000"])?;
    let token = Command::new(&cba)
        .args(["token", "--resource", "exchange", "--no-cache"])
        .args(["--tenant", &sim.info["tenant_id"], "--client-id", &sim.info["seeded_app_id"]])
        .arg("--cert")
        .arg(dir.join("bench.pfx"))
        .args(["--authority-host", &sim.info["login_url"]])
        .output()?;
    if !token.status.success() {
        bail!("cba token failed: {}", String::from_utf8_lossy(&token.stderr));
    }
    let sim_json = dir.join("sim.json");
    std::fs::write(
        &sim_json,
        format!(r#"{{"exchange_url":"{}","tenant_id":"{}"}}"#, sim.info["exchange_url"], sim.info["tenant_id"]),
    )?;
    let status = Command::new("python3")
        .arg(root().join("crates/cba-exo/bench/exo_bench.py"))
        .arg("--cba")
        .arg(&cba)
        .arg("--sim-json")
        .arg(&sim_json)
        .args(["--runs", &n.to_string()])
        .env("CBA_EXO_TOKEN", String::from_utf8_lossy(&token.stdout).trim())
        .status()?;
    let _ = std::fs::remove_dir_all(&dir);
    if !status.success() {
        eprintln!("(a target was missed; see the line above)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_bench_bin_is_resolved_against_the_starting_folder() {
        let start = std::env::temp_dir().join("cba-bench-start");
        let cwd = start.as_path();
        assert_eq!(bench_bin(Path::new("target/release/cba"), cwd), start.join("target/release/cba"));
        assert_eq!(bench_bin(Path::new("./cba"), cwd), start.join("./cba"));
        let absolute = std::env::temp_dir().join("elsewhere").join("cba");
        assert_eq!(bench_bin(&absolute, cwd), absolute, "an absolute path is kept");
        assert_eq!(bench_bin(Path::new("cba"), cwd), Path::new("cba"), "found on PATH, as Command does");
    }
}
