//! Authorities (HTTPS only, loopback excepted), clouds and resource scopes.

use cba_token::{Authority, Cloud, Error, Resource};

#[test]
fn https_only_except_loopback() {
    let check = |url: &str, expected: Option<&str>| {
        let got = Authority::new(url);
        match expected {
            Some(normalised) => assert_eq!(got.unwrap().as_str(), normalised, "{url}"),
            None => assert!(matches!(got, Err(Error::Invalid { what: "authority", .. })), "{url} must be refused"),
        }
    };
    check("https://login.microsoftonline.com", Some("https://login.microsoftonline.com"));
    check("https://Login.MicrosoftOnline.com/", Some("https://login.microsoftonline.com"));
    check("https://login.example.com/prefix/", Some("https://login.example.com/prefix"));
    check("http://127.0.0.1:8080", Some("http://127.0.0.1:8080"));
    check("http://127.9.8.7", Some("http://127.9.8.7"));
    check("http://[::1]:9000/", Some("http://[::1]:9000"));
    check("http://localhost:1234", Some("http://localhost:1234"));
    check("http://LOCALHOST", Some("http://localhost"));
    check("http://example.com", None);
    check("http://login.microsoftonline.com", None);
    check("http://10.0.0.1", None);
    check("http://128.0.0.1", None);
    check("http://localhost.evil.example", None);
    check("http://[::2]", None);
    check("ftp://127.0.0.1", None);
    check("https://login.microsoftonline.com/?x=1", None);
    check("https://user:pw@login.microsoftonline.com", None);
    check("login.microsoftonline.com", None);
    check("", None);
}

#[test]
fn refusal_says_why() {
    let e = Authority::new("http://example.com").unwrap_err().to_string();
    assert!(e.contains("https") && e.contains("loopback"), "{e}");
}

#[test]
fn token_urls() {
    let a = Authority::new("https://login.microsoftonline.us/").unwrap();
    assert_eq!(
        a.token_url("contoso.onmicrosoft.us"),
        "https://login.microsoftonline.us/contoso.onmicrosoft.us/oauth2/v2.0/token"
    );
    assert_eq!(
        a.device_code_url("organizations"),
        "https://login.microsoftonline.us/organizations/oauth2/v2.0/devicecode"
    );
}

#[test]
fn scopes_per_cloud() {
    let check = |cloud: Cloud, login: &str, exchange: &str, graph: &str| {
        let e = cloud.endpoints();
        assert_eq!(e.authority.as_str(), login, "{cloud}");
        assert_eq!(Resource::Exchange.scope(&e), exchange, "{cloud}");
        assert_eq!(Resource::Graph.scope(&e), graph, "{cloud}");
    };
    check(
        Cloud::Global,
        "https://login.microsoftonline.com",
        "https://outlook.office365.com/.default",
        "https://graph.microsoft.com/.default",
    );
    check(
        Cloud::UsGovHigh,
        "https://login.microsoftonline.us",
        "https://outlook.office365.us/.default",
        "https://graph.microsoft.us/.default",
    );
    check(
        Cloud::UsGovDod,
        "https://login.microsoftonline.us",
        "https://outlook.office365.us/.default",
        "https://dod-graph.microsoft.us/.default",
    );
    check(
        Cloud::China,
        "https://login.chinacloudapi.cn",
        "https://partner.outlook.cn/.default",
        "https://microsoftgraph.chinacloudapi.cn/.default",
    );
}

#[test]
fn resources_parse() {
    let e = Cloud::Global.endpoints();
    let scope = |s: &str| s.parse::<Resource>().map(|r| r.scope(&e));
    assert_eq!(scope("exchange").unwrap(), "https://outlook.office365.com/.default");
    assert_eq!(scope("Graph").unwrap(), "https://graph.microsoft.com/.default");
    assert_eq!(scope("https://vault.azure.net/").unwrap(), "https://vault.azure.net/.default");
    assert_eq!(scope("api://my-api/.default").unwrap(), "api://my-api/.default");
    assert!(scope("outlook").is_err());
    assert!(scope("https://a b").is_err());
}

#[test]
fn clouds_parse_and_print() {
    for cloud in Cloud::ALL {
        assert_eq!(cloud.name().parse::<Cloud>().unwrap(), cloud);
    }
    assert_eq!("GCCHigh".parse::<Cloud>().unwrap(), Cloud::UsGovHigh);
    assert!("mars".parse::<Cloud>().is_err());
}
