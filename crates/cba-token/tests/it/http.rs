//! `default_http_client`: proxies from the environment (HTTP(S)_PROXY / NO_PROXY) and extra root certificates.
//!
//! Environment variables cannot be set inside this process safely, so the proxy checks run a child process (this
//! same test binary, one ignored test) with the variables set.

use std::process::Command;

use cba_token::{Error, HttpOptions, default_http_client};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::identity;

const CHILD_URL: &str = "CBA_TOKEN_IT_PROXY_URL";
const CHILD_EXPECT: &str = "CBA_TOKEN_IT_PROXY_EXPECT";

#[tokio::test]
#[ignore = "helper run as a child process by proxies_come_from_the_environment"]
async fn proxy_child() {
    let (Ok(url), Ok(expect)) = (std::env::var(CHILD_URL), std::env::var(CHILD_EXPECT)) else { return };
    let client = default_http_client(&HttpOptions::default()).unwrap();
    let result = client.get(&url).send().await;
    match expect.as_str() {
        "proxied" => assert_eq!(result.unwrap().status(), 200),
        "direct" => assert!(result.is_err(), "the host does not exist: only the proxy could have answered"),
        other => panic!("{other}"),
    }
}

fn run_child(envs: &[(&str, &str)]) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", "http::proxy_child", "--ignored", "--quiet"]);
    for var in
        ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"]
    {
        command.env_remove(var);
    }
    command.envs(envs.iter().copied());
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("1 passed"), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn proxies_come_from_the_environment() {
    let proxy = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/ping"))
        .and(header("host", "login.cba-test.invalid"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&proxy)
        .await;
    let target = "http://login.cba-test.invalid/ping";

    run_child(&[(CHILD_URL, target), (CHILD_EXPECT, "proxied"), ("HTTP_PROXY", &proxy.uri())]);
    assert_eq!(proxy.received_requests().await.unwrap().len(), 1, "the request went through the proxy");

    run_child(&[
        (CHILD_URL, target),
        (CHILD_EXPECT, "direct"),
        ("HTTP_PROXY", &proxy.uri()),
        ("NO_PROXY", "cba-test.invalid"),
    ]);
    assert_eq!(proxy.received_requests().await.unwrap().len(), 1, "NO_PROXY bypasses the proxy");
}

#[test]
fn extra_roots_must_be_pem_certificates() {
    let pem = identity().certificate.to_pem();
    default_http_client(&HttpOptions::default().extra_root_certs(pem.clone())).unwrap();
    let mut bundle = pem.clone();
    bundle.push_str(&pem);
    default_http_client(&HttpOptions::default().extra_root_certs(bundle)).unwrap();
    for bad in ["", "not a certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"] {
        let err = default_http_client(&HttpOptions::default().extra_root_certs(bad)).unwrap_err();
        assert!(matches!(err, Error::Invalid { what: "root certificates", .. }), "{bad:?}: {err:?}");
    }
}
