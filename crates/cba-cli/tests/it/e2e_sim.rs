//! `cba sim serve` as another process uses it: one JSON line on stdout, loopback only, a seeded app that
//! `cba token` can sign in as, and a clean exit on SIGTERM.

use std::io::BufRead as _;
use std::process::Stdio;

use super::{assert_code, cba, json, run};

#[test]
fn e2e_sim_serve_prints_one_line_seeds_an_app_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let made = run(cba().args(["cert", "new", "--name", "seed", "--no-password", "--out-dir"]).arg(dir.path()), None);
    assert_code(&made, 0);

    let mut child = cba()
        .args(["sim", "serve", "--tenant", "fabrikam", "--seed-app-cert"])
        .arg(dir.path().join("seed.cer"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let info: serde_json::Value = serde_json::from_str(&line).unwrap();
    for key in ["login_url", "graph_url", "exchange_url", "tenant_id", "tenant_domain", "admin_token", "seeded_app_id"]
    {
        assert!(info[key].as_str().is_some_and(|v| !v.is_empty()), "{key} missing from {line}");
    }
    assert_eq!(info["tenant_domain"], "fabrikam.onmicrosoft.com");
    let login = info["login_url"].as_str().unwrap();
    assert!(login.starts_with("http://127.0.0.1:"), "loopback only: {login}");

    // The seeded app has its grant and role: a token carries both.
    let token = run(
        cba()
            .args(["token", "--format", "json", "--no-cache", "--authority-host", login])
            .args([
                "--tenant",
                info["tenant_id"].as_str().unwrap(),
                "--client-id",
                info["seeded_app_id"].as_str().unwrap(),
            ])
            .arg("--cert")
            .arg(dir.path().join("seed.pfx")),
        None,
    );
    assert_code(&token, 0);
    let claims = &json(&token)["claims"];
    assert_eq!(claims["roles"][0], "Exchange.ManageAsApp");
    assert_eq!(claims["wids"][0], "29232cdf-9323-42fd-ade2-1d097af3e4de");

    let status = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    assert_eq!(child.wait().unwrap().code(), Some(0), "SIGTERM ends the sim cleanly");
}
