//! Benchmarks of a key in a PKCS#11 token (SoftHSM2) side by side with a file key: `cba token` cache misses
//! (`bench token`) and `cba setup --key pkcs11:…` (`bench setup --key pkcs11`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::bench::{SimProcess, median, ms, release_binary, tempdir, without_extra_roots};

/// SoftHSM2's module as the Debian package `softhsm2` installs it (.ci/run).
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "1234";

/// A SoftHSM2 token labelled `cba` (user PIN 1234) in a folder of its own. Every `cba` command made with
/// [`SoftHsm::env`] sees only this token.
pub struct SoftHsm {
    conf: PathBuf,
}

impl SoftHsm {
    pub fn init(dir: &Path) -> anyhow::Result<SoftHsm> {
        if !Path::new(MODULE).exists() {
            bail!("{MODULE} is missing: install the Debian package softhsm2 (.ci/run does)");
        }
        let tokens = dir.join("softhsm-tokens");
        std::fs::create_dir_all(&tokens)?;
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
        )?;
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", "cba", "--pin", PIN, "--so-pin", "5678"])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .context("softhsm2-util does not run: install the Debian package softhsm2 (.ci/run does)")?;
        if !out.status.success() {
            bail!("softhsm2-util --init-token failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(SoftHsm { conf })
    }

    /// Point `cmd` at this token: its config, the module and the PIN from the environment.
    pub fn env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        cmd.env("SOFTHSM2_CONF", &self.conf).env("CBA_PKCS11_MODULE", MODULE).env("CBA_PKCS11_PIN", PIN)
    }
}

/// The `q`-quantile by nearest rank (`q` = 0.9: the p90).
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    let rank = (q * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

fn check(out: std::process::Output, what: &str) -> anyhow::Result<String> {
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `cba setup` of app `name` in the sim, with `key` (`--cert FILE` or `--key URI`), writing `DIR/NAME.profile.json`.
fn setup_app(cba: &Path, sim: &SimProcess, hsm: &SoftHsm, dir: &Path, name: &str, key: &[&str]) -> anyhow::Result<()> {
    let mut cmd = Command::new(cba);
    cmd.args(["setup", "--tenant", &sim.info["tenant_domain"], "--name", name, "--admin", "token", "--wait", "60s"])
        .args(key)
        .current_dir(dir)
        .env("CBA_GRAPH_TOKEN", &sim.info["admin_token"])
        .env("AZURE_AUTHORITY_HOST", &sim.info["login_url"])
        .env("CBA_GRAPH_URL", &sim.info["graph_url"])
        .env("CBA_EXCHANGE_URL", &sim.info["exchange_url"])
        .env_remove("CBA_PFX_PASSWORD")
        .env_remove("CBA_PROFILE");
    check(without_extra_roots(hsm.env(&mut cmd)).output()?, &format!("cba setup --name {name}"))?;
    Ok(())
}

/// `cba token --no-cache` (a cache miss: sign an assertion, one token request) from a profile with a file key
/// and from one with a SoftHSM2 key, both apps set up in one `cba sim serve`, the two alternated.
pub fn token_keys(n: usize) -> anyhow::Result<()> {
    let cba = release_binary()?;
    let dir = tempdir()?.join("token-keys");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let hsm = SoftHsm::init(&dir)?;
    check(
        Command::new(&cba)
            .args(["cert", "new", "--name", "file-key", "--no-password", "--force", "--out-dir"])
            .arg(&dir)
            .output()?,
        "cba cert new",
    )?;
    let sim = SimProcess::start(&cba, &[])?;
    setup_app(&cba, &sim, &hsm, &dir, "file-key", &["--cert", "file-key.pfx"])?;
    setup_app(&cba, &sim, &hsm, &dir, "token-key", &["--key", "pkcs11:token=cba;object=token-key"])?;
    let token = |profile: &str| {
        let mut cmd = Command::new(&cba);
        cmd.args(["token", "--no-cache", "--profile"])
            .arg(dir.join(format!("{profile}.profile.json")))
            .current_dir(&dir)
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .env_remove("CBA_PFX_PASSWORD");
        without_extra_roots(hsm.env(&mut cmd));
        cmd
    };
    // Wall time, and the CPU time the finished child used (user + system, from /proc/self/stat).
    let timed = |mut cmd: Command, series: &mut Series| -> anyhow::Result<()> {
        let cpu_before = children_cpu();
        let start = Instant::now();
        let out = cmd.stderr(Stdio::piped()).output().context("starting a benchmark command")?;
        let elapsed = start.elapsed();
        let text = check(out, &format!("{:?}", cmd.get_program()))?;
        if cmd.get_program() != "softhsm2-util" && !text.starts_with("ey") {
            bail!("cba token printed no JWT: {text:?}");
        }
        series.walls.push(elapsed);
        series.cpu += children_cpu().zip(cpu_before).map(|(after, before)| after - before).unwrap_or_default();
        Ok(())
    };
    // One of each first: the page cache holds the binary, the module and the token's files.
    timed(token("file-key"), &mut Series::default())?;
    timed(token("token-key"), &mut Series::default())?;
    // What any process pays to use SoftHSM2 at all: its tool loading the module, C_Initialize, the slot list.
    let floor = || {
        let mut cmd = Command::new("softhsm2-util");
        cmd.arg("--show-slots").env("SOFTHSM2_CONF", &hsm.conf);
        cmd
    };
    let (mut file, mut hsm_key, mut alone) = (Series::default(), Series::default(), Series::default());
    for i in 0..n {
        // Alternate which goes first, so neither always follows the other.
        if i % 2 == 0 {
            timed(token("file-key"), &mut file)?;
            timed(token("token-key"), &mut hsm_key)?;
        } else {
            timed(token("token-key"), &mut hsm_key)?;
            timed(token("file-key"), &mut file)?;
        }
        timed(floor(), &mut alone)?;
    }
    drop(sim);
    let ratio = file.median().map(|f| hsm_key.median().unwrap_or_default().as_secs_f64() / f.as_secs_f64());
    let p90 = |s: &mut Series| quantile(&mut s.walls, 0.9);
    let p90_ratio = p90(&mut hsm_key).as_secs_f64() / p90(&mut file).as_secs_f64();
    let cpu_known = children_cpu().is_some();
    let cpu_ratio = cpu_known.then(|| hsm_key.cpu.as_secs_f64() / file.cpu.as_secs_f64());
    println!(
        "| `cba token --no-cache` (whole process), sim on loopback | median (ms) | p90 (ms) | CPU per run, mean (ms) | runs |"
    );
    println!("|---|---|---|---|---|");
    for (label, s) in [
        ("file key (PFX from `cba cert new`)", &mut file),
        ("SoftHSM2 key (`--key pkcs11:…`, PS256 in the token)", &mut hsm_key),
        ("for scale: SoftHSM2 alone (`softhsm2-util --show-slots`: module load, C_Initialize, slot list)", &mut alone),
    ] {
        let median = s.median().map(ms).unwrap_or_default();
        let cpu = if cpu_known { ms(s.cpu / n as u32) } else { "n/a".into() };
        println!("| {label} | {median} | {} | {cpu} | {n}, alternated |", ms(p90(s)));
    }
    let ratio = ratio.unwrap_or(f64::NAN);
    println!(
        "| ratio token key / file key | {ratio:.2} | {p90_ratio:.2} | {} | target ≤ 1.2 (median): {} |",
        cpu_ratio.map(|r| format!("{r:.2}")).unwrap_or_else(|| "n/a".into()),
        if ratio <= 1.2 { "met" } else { "**not met**" }
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Wall times of one command, and the CPU time its runs used in all.
#[derive(Default)]
struct Series {
    walls: Vec<Duration>,
    /// Zero where /proc/self/stat cannot be read (not Linux).
    cpu: Duration,
}

impl Series {
    fn median(&mut self) -> Option<Duration> {
        (!self.walls.is_empty()).then(|| median(&mut self.walls))
    }
}

/// User + system CPU time of this process's waited-for children (`cutime` + `cstime` in /proc/self/stat), at
/// the usual 100 ticks a second: each reading is 10 ms coarse, but the sum over a series is exact to a tick.
fn children_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    children_cpu_of(&stat)
}

fn children_cpu_of(stat: &str) -> Option<Duration> {
    // After the command name in parentheses: state is field 3; cutime and cstime are fields 16 and 17.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(13)?.parse::<u64>().ok()? + fields.get(14)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_cpu_reads_cutime_and_cstime() {
        // A real line's shape, with a space and a parenthesis in the command name.
        let stat = "4242 (x task) S 1 4242 4242 0 -1 4194304 100 5 0 0 7 3 120 35 20 0 1 0 99 1000 50";
        assert_eq!(children_cpu_of(stat), Some(Duration::from_millis(1550)));
        assert_eq!(children_cpu_of("4242 (x) S 1"), None);
        assert!(children_cpu().is_some(), "this test runs on Linux");
    }

    #[test]
    fn quantile_is_the_nearest_rank() {
        let mut ten: Vec<Duration> = (1..=10).rev().map(Duration::from_millis).collect();
        assert_eq!(quantile(&mut ten, 0.9), Duration::from_millis(9));
        assert_eq!(quantile(&mut ten, 0.5), Duration::from_millis(5));
        assert_eq!(quantile(&mut ten, 1.0), Duration::from_millis(10));
        let mut one = [Duration::from_millis(7)];
        assert_eq!(quantile(&mut one, 0.9), Duration::from_millis(7));
        let mut three: Vec<Duration> = [3, 1, 2].into_iter().map(Duration::from_millis).collect();
        assert_eq!(quantile(&mut three, 0.9), Duration::from_millis(3));
    }
}
