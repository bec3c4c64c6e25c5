//! `cba token` against the simulated tenant: the real binary, real assertions, real cache file.

use std::process::Output;

use super::{assert_code, cba, json, run, stderr, stdout};

struct Fixture {
    _sim: cba_sim::SimTenant,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Fixture {
    fn cba(&self, args: &[&str], extra_env: &[(&str, &str)], stdin: Option<&str>) -> Output {
        let mut cmd = cba();
        cmd.args(args).env("HOME", self.dir.path());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        run(&mut cmd, stdin)
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let id = cba_cert::generate(&cba_cert::NewCertificate::new("e2e")).unwrap();
    let pfx = dir.path().join("app.pfx");
    std::fs::write(&pfx, id.to_pfx(Some(&cba_cert::Password::new("pw")), cba_cert::PfxFormat::Modern).unwrap())
        .unwrap();
    std::fs::write(dir.path().join("app.pem"), id.to_pem().unwrap().as_bytes()).unwrap();
    let sim = cba_sim::SimTenant::builder().start().await;
    let app = sim.seed_app("e2e", &[id.certificate.der()]).await;
    sim.seed_grant_manage_as_app(&app).await;
    sim.seed_role_assignment(&app, "29232cdf-9323-42fd-ade2-1d097af3e4de").await;
    let env = vec![
        ("AZURE_TENANT_ID".into(), sim.tenant_domain().to_string()),
        ("AZURE_CLIENT_ID".into(), app.app_id.clone()),
        ("AZURE_CLIENT_CERTIFICATE_PATH".into(), pfx.display().to_string()),
        ("AZURE_AUTHORITY_HOST".into(), sim.login_url().to_string()),
        ("CBA_PFX_PASSWORD".into(), "pw".into()),
        ("XDG_CACHE_HOME".into(), dir.path().join("cache").display().to_string()),
    ];
    Fixture { _sim: sim, dir, env }
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_token_formats_cache_and_decode() {
    let f = fixture().await;
    let o = f.cba(&["token", "--format", "json"], &[], None);
    assert_code(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["from_cache"], false);
    assert_eq!(doc["token_type"], "Bearer");
    assert_eq!(doc["claims"]["roles"][0], "Exchange.ManageAsApp");
    assert_eq!(doc["claims"]["wids"][0], "29232cdf-9323-42fd-ade2-1d097af3e4de");
    assert!(doc["scope"].as_str().unwrap().ends_with("/.default"));
    let cache_file = f.dir.path().join("cache/cba/tokens.json");
    assert!(cache_file.exists());
    assert_eq!(super::mode(&cache_file), 0o600);

    // A cache hit needs no password: the PFX is not opened.
    let o = f.cba(&["token", "--output", "json"], &[("CBA_PFX_PASSWORD", "")], None);
    assert_code(&o, 0);
    assert_eq!(json(&o)["from_cache"], true);
    assert_eq!(json(&o)["access_token"], doc["access_token"]);

    let raw = stdout(&f.cba(&["token"], &[], None)).trim().to_string();
    assert_eq!(raw, doc["access_token"].as_str().unwrap(), "raw prints the token alone");
    assert_eq!(
        stdout(&f.cba(&["token", "--format", "header"], &[], None)).trim(),
        format!("Authorization: Bearer {raw}")
    );
    assert!(
        stdout(&f.cba(&["token", "--format", "env"], &[], None))
            .starts_with(&format!("export CBA_ACCESS_TOKEN='{raw}'"))
    );

    let o = f.cba(&["token", "--no-cache", "--format", "json", "--alg", "rs256", "--send-x5c"], &[], None);
    assert_code(&o, 0);
    assert_eq!(json(&o)["from_cache"], false);
    assert_ne!(json(&o)["access_token"], doc["access_token"]);

    let assertion = f.cba(&["token", "--print-assertion"], &[], None);
    assert_code(&assertion, 0);
    let decoded = f.cba(&["token", "--decode", "-"], &[], Some(&stdout(&assertion)));
    assert!(
        stdout(&decoded).contains("x5t#S256") && stdout(&decoded).contains("oauth2/v2.0/token"),
        "{}",
        stdout(&decoded)
    );
    let decoded = f.cba(&["token", "--decode", &raw, "--output", "json"], &[], None);
    assert!(stdout(&decoded).contains("\"expiry\": \"expires in"), "{}", stdout(&decoded));

    let o = f.cba(&["token", "--cert", f.dir.path().join("app.pem").to_str().unwrap(), "--no-cache"], &[], None);
    assert_code(&o, 0);

    let o = f.cba(&["token", "--clear-cache"], &[], None);
    assert_code(&o, 0);
    assert!(!cache_file.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_token_failures_have_their_exit_codes() {
    let f = fixture().await;
    let o = f.cba(&["token", "--client-id", "00000000-0000-0000-0000-000000000001", "--no-cache"], &[], None);
    assert_code(&o, 4);
    assert!(stderr(&o).contains("AADSTS700016"), "{}", stderr(&o));
    let o = f.cba(&["token", "--no-cache"], &[("CBA_PFX_PASSWORD", "wrong-secret")], None);
    assert_code(&o, 3);
    assert!(!stderr(&o).contains("wrong-secret"));
    let o = f.cba(&["token", "--authority-host", "http://example.com"], &[], None);
    assert_code(&o, 2);
    let o = f.cba(&["token", "--no-cache"], &[("AZURE_TENANT_ID", "")], None);
    assert_code(&o, 2);
}
