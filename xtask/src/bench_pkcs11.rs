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
    let timed = |mut cmd: Command| -> anyhow::Result<Duration> {
        let start = Instant::now();
        let out = cmd.stderr(Stdio::piped()).output().context("starting cba token")?;
        let elapsed = start.elapsed();
        let text = check(out, "cba token")?;
        if !text.starts_with("ey") {
            bail!("cba token printed no JWT: {text:?}");
        }
        Ok(elapsed)
    };
    // One of each first: the page cache holds the binary, the module and the token's files.
    timed(token("file-key"))?;
    timed(token("token-key"))?;
    // What any process pays to use SoftHSM2 at all: its tool loading the module, C_Initialize, the slot list.
    let floor = || -> anyhow::Result<Duration> {
        let mut cmd = Command::new("softhsm2-util");
        cmd.arg("--show-slots").env("SOFTHSM2_CONF", &hsm.conf).stdout(Stdio::null()).stderr(Stdio::piped());
        let start = Instant::now();
        let out = cmd.output().context("starting softhsm2-util")?;
        let elapsed = start.elapsed();
        check(out, "softhsm2-util --show-slots")?;
        Ok(elapsed)
    };
    let (mut file, mut hsm_key, mut alone) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        // Alternate which goes first, so neither always follows the other.
        if i % 2 == 0 {
            file.push(timed(token("file-key"))?);
            hsm_key.push(timed(token("token-key"))?);
        } else {
            hsm_key.push(timed(token("token-key"))?);
            file.push(timed(token("file-key"))?);
        }
        alone.push(floor()?);
    }
    drop(sim);
    let (f50, f90) = (median(&mut file), quantile(&mut file, 0.9));
    let (h50, h90) = (median(&mut hsm_key), quantile(&mut hsm_key, 0.9));
    let ratio = h50.as_secs_f64() / f50.as_secs_f64();
    println!("| `cba token --no-cache` (whole process), sim on loopback | median (ms) | p90 (ms) | runs |");
    println!("|---|---|---|---|");
    println!("| file key (PFX from `cba cert new`) | {} | {} | {n}, alternated |", ms(f50), ms(f90));
    println!("| SoftHSM2 key (`--key pkcs11:…`, PS256 in the token) | {} | {} | {n}, alternated |", ms(h50), ms(h90));
    let (a50, a90) = (median(&mut alone), quantile(&mut alone, 0.9));
    println!(
        "| for scale: SoftHSM2 alone (`softhsm2-util --show-slots`: module load, C_Initialize, slot list) | {} | {} | {n} |",
        ms(a50),
        ms(a90)
    );
    println!(
        "| ratio token key / file key | {ratio:.2} | {:.2} | target ≤ 1.2 (median): {} |",
        h90.as_secs_f64() / f90.as_secs_f64(),
        if ratio <= 1.2 { "met" } else { "**not met**" }
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
