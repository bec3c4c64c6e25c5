//! `cargo xtask bench fleet`: a service provider's fleet of 1,000 customer tenants in one `cba sim serve`
//! (50 ms per answer), `cba fleet status` and `cba exo invoke Get-OrganizationConfig --fleet … --all` as whole
//! processes: wall time against the latency-bound floor (requests ÷ concurrency × latency), tenants per second,
//! peak RSS; and what the sim costs (start-up time, memory per tenant).
//!
//! Seeding: `cba setup --multi-tenant` makes the home app in the provider tenant (the real flow, with its
//! profile); `POST /_sim/seed-fleet` consents it, grants Exchange.ManageAsApp and assigns Exchange
//! Administrator in every customer tenant at once; the fleet file is written here in the format of
//! docs/fleet.md (cba-lifecycle `fleet::Fleet`).

use std::io::{BufRead as _, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::bench::{median, ms, release_binary, tempdir};

const EXCHANGE_ADMINISTRATOR: &str = "29232cdf-9323-42fd-ade2-1d097af3e4de";
/// What `cba fleet status` and `cba exo invoke --fleet` use unless told (cba-lifecycle `DEFAULT_CONCURRENCY`).
const CONCURRENCY: usize = 64;

/// The knobs of one bench run (`--tenants N --latency-ms N --runs N`).
struct Options {
    tenants: usize,
    latency_ms: u64,
    runs: usize,
}

fn options(rest: &[&str]) -> anyhow::Result<Options> {
    let mut o = Options { tenants: 1000, latency_ms: 50, runs: 3 };
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} takes a number"))?;
        let n: u64 = value.parse().with_context(|| format!("{flag} takes a number, not {value:?}"))?;
        match *flag {
            "--tenants" => o.tenants = n as usize,
            "--latency-ms" => o.latency_ms = n,
            "--runs" => o.runs = (n as usize).max(1),
            _ => bail!("unknown option {flag}: bench fleet takes --tenants N --latency-ms N --runs N"),
        }
    }
    Ok(o)
}

pub fn run(rest: &[&str]) -> anyhow::Result<()> {
    let o = options(rest)?;
    let cba = release_binary()?;
    let dir = tempdir()?.join("fleet");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;

    let idle = Sim::start(&cba, &["--tenants", "0"])?;
    let idle_rss = idle.rss_kib();
    drop(idle);
    let started = Instant::now();
    let sim = Sim::start(&cba, &["--tenants", &o.tenants.to_string(), "--latency-ms", &o.latency_ms.to_string()])?;
    let startup = started.elapsed();
    let fleet_rss = sim.rss_kib();

    let home = setup_home(&cba, &dir, &sim)?;
    let seeded = sim
        .post("/_sim/seed-fleet", &format!(r#"{{"app_id":"{home}","role_template_id":"{EXCHANGE_ADMINISTRATOR}"}}"#))?;
    let tenants = flat_objects(&seeded);
    if tenants.len() != o.tenants {
        bail!("seed-fleet answered {} tenants, expected {}: {seeded:.300}", tenants.len(), o.tenants);
    }
    let fleet = dir.join("bench.fleet.json");
    write_fleet(&fleet, &dir.join("bench.profile.json"), &sim, &home, &tenants)?;

    println!(
        "| `cba` over {} customer tenants, sim latency {} ms | requests | concurrency | floor (ms) | median wall (ms) | ratio (target ≤ 1.5) | tenants/s (target ≥ 200) | peak RSS (target < 100 MiB) | CPU cba / sim (s) | runs |",
        o.tenants, o.latency_ms
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let fleet_arg = fleet.to_str().context("the temp folder's path is not UTF-8")?;
    let commands: [(&str, Vec<&str>); 2] = [
        ("`cba fleet status`", vec!["fleet", "status", "--fleet", fleet_arg, "--output", "json"]),
        (
            "`cba exo invoke Get-OrganizationConfig --fleet … --all`",
            vec!["exo", "invoke", "Get-OrganizationConfig", "--fleet", fleet_arg, "--all", "--output", "json"],
        ),
    ];
    let mut missed = false;
    for (label, args) in commands {
        let (mut walls, mut rss, mut requests, mut cpu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..o.runs {
            let before = sim.request_count()?;
            let sim_cpu = sim.cpu();
            let run = timed(&cba, &args, &dir, &sim)?;
            requests.push(sim.request_count()? - before);
            walls.push(run.wall);
            rss.extend(run.peak_rss_kib);
            cpu.push((run.cpu, sim.cpu().zip(sim_cpu).map(|(after, before)| after.saturating_sub(before))));
        }
        let wall = median(&mut walls);
        requests.sort_unstable();
        let requests = requests[requests.len() / 2];
        // Requests ÷ concurrency × latency; never less than one tenant's own round trips (they are sequential).
        let rounds = (requests as f64 / CONCURRENCY as f64).max(requests as f64 / o.tenants.max(1) as f64);
        let floor = Duration::from_secs_f64(rounds * o.latency_ms as f64 / 1000.0);
        let ratio = wall.as_secs_f64() / floor.as_secs_f64().max(f64::MIN_POSITIVE);
        let rate = o.tenants as f64 / wall.as_secs_f64();
        rss.sort_unstable();
        let peak = rss.last().map(|k| *k as f64 / 1024.0);
        missed |= ratio > 1.5 || rate < 200.0 || peak.is_some_and(|p| p >= 100.0);
        cpu.sort_by_key(|(cba, _)| *cba);
        let (cba_cpu, sim_cpu) = cpu[cpu.len() / 2];
        let secs = |d: Option<Duration>| d.map(|d| format!("{:.2}", d.as_secs_f64())).unwrap_or_else(|| "n/a".into());
        println!(
            "| {label} | {requests} | {CONCURRENCY} | {} | {} | {ratio:.2} | {rate:.0} | {} | {} / {} | {} |",
            ms(floor),
            ms(wall),
            peak.map(|p| format!("{p:.1} MiB")).unwrap_or_else(|| "n/a".into()),
            secs(cba_cpu),
            secs(sim_cpu),
            o.runs
        );
    }
    let per_tenant = match (idle_rss, fleet_rss) {
        (Some(idle), Some(fleet)) if o.tenants > 0 => {
            format!("{:.1} KiB per tenant", fleet.saturating_sub(idle) as f64 / o.tenants as f64)
        }
        _ => "n/a".into(),
    };
    println!(
        "\n`cba sim serve --tenants {}`: ready in {} ms; RSS {} (no customer tenants: {}), {per_tenant}; after the runs: {}",
        o.tenants,
        ms(startup),
        kib(fleet_rss),
        kib(idle_rss),
        kib(sim.rss_kib())
    );
    drop(sim);
    let _ = std::fs::remove_dir_all(&dir);
    if missed {
        eprintln!("(a target was missed; see the table)");
    }
    Ok(())
}

fn kib(v: Option<u64>) -> String {
    v.map(|k| format!("{:.1} MiB", k as f64 / 1024.0)).unwrap_or_else(|| "n/a".into())
}

/// `cba setup --multi-tenant` in the provider tenant with an admin token; returns the app's client id.
fn setup_home(cba: &Path, dir: &Path, sim: &Sim) -> anyhow::Result<String> {
    let status = Command::new(cba)
        .args(["cert", "new", "--name", "bench", "--no-password", "--force", "--out-dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("cba cert new failed");
    }
    let mut cmd = Command::new(cba);
    cmd.args(["setup", "--multi-tenant", "--tenant", &sim.field("tenant_domain")?, "--name", "bench"])
        .args(["--admin", "token", "--output", "json", "--cert"])
        .arg(dir.join("bench.pfx"))
        .current_dir(dir);
    sim.env(&mut cmd);
    let out = cmd.env("CBA_GRAPH_TOKEN", sim.field("admin_token")?).stderr(Stdio::piped()).output()?;
    if !out.status.success() {
        bail!("cba setup --multi-tenant failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let profile =
        std::fs::read_to_string(dir.join("bench.profile.json")).context("setup wrote no bench.profile.json")?;
    string_field(&profile, "app_id").context("no app_id in bench.profile.json")
}

/// The fleet file of docs/fleet.md: the home profile and one onboarded entry per customer tenant.
fn write_fleet(
    path: &Path,
    profile: &Path,
    sim: &Sim,
    app_id: &str,
    tenants: &[Vec<(String, String)>],
) -> anyhow::Result<()> {
    let get = |t: &[(String, String)], k: &str| {
        t.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default()
    };
    let mut entries: Vec<(String, String)> = tenants
        .iter()
        .map(|t| {
            let id = get(t, "tenant_id");
            let entry = format!(
                r#"{{"tenant_id":"{id}","tenant_domain":"{}","state":"onboarded","service_principal_id":"{}","grant_id":"{}","roles":[{{"role":"Exchange Administrator","template_id":"{EXCHANGE_ADMINISTRATOR}","assignment_id":"{}"}}]}}"#,
                get(t, "tenant_domain"),
                get(t, "service_principal_id"),
                get(t, "grant_id"),
                get(t, "role_assignment_id"),
            );
            (id, entry)
        })
        .collect();
    entries.sort();
    let body = format!(
        r#"{{"version":1,"home":{{"profile":"{}","tenant_id":"{}","app_id":"{app_id}","app_name":"bench"}},"tenants":[{}]}}"#,
        profile.to_str().context("the temp folder's path is not UTF-8")?,
        sim.field("tenant_id")?,
        entries.into_iter().map(|(_, e)| e).collect::<Vec<_>>().join(",")
    );
    std::fs::write(path, body)?;
    Ok(())
}

/// What one `cba` run cost.
struct Run {
    wall: Duration,
    /// Peak RSS (KiB) and user + system CPU, through GNU time when present.
    peak_rss_kib: Option<u64>,
    cpu: Option<Duration>,
}

/// Run `cba` once, timed; a failure is an error.
fn timed(cba: &Path, args: &[&str], dir: &Path, sim: &Sim) -> anyhow::Result<Run> {
    let gnu_time = Path::new("/usr/bin/time").exists();
    let mut cmd = if gnu_time {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "cba-peak-rss-kib=%M cba-cpu-secs=%U+%S"]).arg(cba);
        c
    } else {
        Command::new(cba)
    };
    cmd.args(args).current_dir(dir).stdout(Stdio::null()).stderr(Stdio::piped());
    sim.env(&mut cmd);
    let start = Instant::now();
    let out = cmd.output().context("starting cba")?;
    let wall = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("`cba {}` failed ({}): {}", args.join(" "), out.status, stderr.trim());
    }
    let line = stderr.lines().find(|l| l.starts_with("cba-peak-rss-kib=")).unwrap_or("");
    let field = |name: &str| line.split_whitespace().find_map(|w| w.strip_prefix(name)).map(str::to_string);
    let peak_rss_kib = field("cba-peak-rss-kib=").and_then(|v| v.parse().ok());
    let cpu = field("cba-cpu-secs=").and_then(|v| {
        let (user, sys) = v.split_once('+')?;
        Some(Duration::from_secs_f64(user.parse::<f64>().ok()? + sys.parse::<f64>().ok()?))
    });
    Ok(Run { wall, peak_rss_kib, cpu })
}

/// A running `cba sim serve`, killed on drop.
struct Sim {
    child: Child,
    line: String,
    base: String,
}

impl Sim {
    fn start(cba: &Path, args: &[&str]) -> anyhow::Result<Sim> {
        let mut child = Command::new(cba)
            .args(["sim", "serve"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting cba sim serve")?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().context("piped stdout")?).read_line(&mut line)?;
        let base = string_field(&line, "graph_url").context("cba sim serve printed no JSON line")?;
        Ok(Sim { child, line, base })
    }

    fn field(&self, key: &str) -> anyhow::Result<String> {
        string_field(&self.line, key).with_context(|| format!("no {key} in the sim's JSON line"))
    }

    /// The environment that points `cba` at this sim.
    fn env(&self, cmd: &mut Command) {
        cmd.env("AZURE_AUTHORITY_HOST", &self.base)
            .env("CBA_GRAPH_URL", &self.base)
            .env("CBA_EXCHANGE_URL", &self.base)
            .env_remove("CBA_PFX_PASSWORD")
            .env_remove("CBA_PROFILE")
            .env_remove("CBA_ADMIN_TOKEN");
    }

    /// Resident memory of the sim process now (KiB, /proc).
    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// User + system CPU the sim process has used so far (/proc, clock ticks taken as 100 Hz).
    fn cpu(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the command name in parentheses: utime and stime are the 12th and 13th of those.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Duration::from_millis(ticks * 10))
    }

    fn request_count(&self) -> anyhow::Result<u64> {
        let body = self.http("GET", "/_sim/request-count", "")?;
        let at = body.find("\"total\":").context("no total in /_sim/request-count")?;
        let digits: String =
            body[at + 8..].chars().skip_while(|c| c.is_whitespace()).take_while(char::is_ascii_digit).collect();
        digits.parse().context("total is not a number")
    }

    fn post(&self, path: &str, body: &str) -> anyhow::Result<String> {
        self.http("POST", path, body)
    }

    /// One HTTP/1.1 request to the sim on loopback (xtask keeps its dependencies few); the body of a 2xx answer.
    fn http(&self, method: &str, path: &str, body: &str) -> anyhow::Result<String> {
        let host = self.base.strip_prefix("http://").context("the sim's URL is not http://")?;
        let mut stream = TcpStream::connect(host).with_context(|| format!("connecting to the sim at {host}"))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let (head, body) = answer.split_once("\r\n\r\n").context("no HTTP answer from the sim")?;
        let status = head.split_whitespace().nth(1).unwrap_or("");
        if !status.starts_with('2') {
            bail!("{method} {path}: {status} {body:.300}");
        }
        Ok(body.to_string())
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The string value of `"key": "…"` in a JSON text (the first one; no escapes in the values read here).
fn string_field(json: &str, key: &str) -> Option<String> {
    let at = json.find(&format!("\"{key}\""))?;
    let rest = json[at + key.len() + 2..].trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// `[{"k":"v",…},…]` of string (or null) values into key/value lists.
fn flat_objects(json: &str) -> Vec<Vec<(String, String)>> {
    let body = json.trim().trim_start_matches('[').trim_end_matches(']');
    body.split("},{")
        .filter(|o| !o.trim().is_empty())
        .map(|o| {
            o.trim_matches(|c| c == '{' || c == '}')
                .split(',')
                .filter_map(|pair| {
                    let (k, v) = pair.split_once(':')?;
                    Some((k.trim().trim_matches('"').to_string(), v.trim().trim_matches('"').to_string()))
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_refuse() {
        let o = options(&["--tenants", "10", "--latency-ms", "5", "--runs", "0"]).unwrap();
        assert_eq!((o.tenants, o.latency_ms, o.runs), (10, 5, 1));
        assert!(options(&["--tenant", "3"]).is_err());
        assert!(options(&["--tenants"]).is_err());
    }

    #[test]
    fn the_sims_answers_are_read() {
        let line = r#"{"login_url":"http://127.0.0.1:1","tenant_id":"t-1","admin_token":"a.b.c"}"#;
        assert_eq!(string_field(line, "tenant_id").as_deref(), Some("t-1"));
        assert_eq!(string_field(line, "nope"), None);
        let list = r#"[{"tenant_id":"a","role_assignment_id":null},{"tenant_id":"b","grant_id":"g"}]"#;
        let objects = flat_objects(list);
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1], vec![("tenant_id".to_string(), "b".to_string()), ("grant_id".into(), "g".into())]);
        assert_eq!(objects[0][1], ("role_assignment_id".to_string(), "null".to_string()));
    }
}
