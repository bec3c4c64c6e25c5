//! `https://VAULT.vault.azure.net/certificates/NAME[/VERSION]`: which vault, which certificate, which audience.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// The vault host suffixes of the public, China and US Government clouds, with their token audience.
const CLOUDS: &[(&str, &str)] = &[
    (".vault.azure.net", "https://vault.azure.net"),
    (".vault.azure.cn", "https://vault.azure.cn"),
    (".vault.usgovcloudapi.net", "https://vault.usgovcloudapi.net"),
];

/// The audience of the simulator's vault (it stands for the public cloud).
const SIMULATOR_RESOURCE: &str = "https://vault.azure.net";

/// A Key Vault certificate, latest or one version: `https://contoso.vault.azure.net/certificates/contoso-exo`.
///
/// Plain `http` is accepted for loopback hosts only (127.0.0.0/8, `::1`, `localhost`), where the simulator
/// serves its vault below a path (`http://127.0.0.1:PORT/keyvault/contoso/certificates/NAME`); any other http
/// URL is refused, since the vault token would travel in clear.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertificateUrl {
    vault: String,
    name: String,
    version: Option<String>,
    resource: &'static str,
}

impl CertificateUrl {
    /// The vault's root, no trailing slash (`https://contoso.vault.azure.net`).
    pub fn vault(&self) -> &str {
        &self.vault
    }

    /// The certificate's name (also its key's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version, when the URL names one.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The token audience for this vault (`https://vault.azure.net`; scope `{resource}/.default`).
    pub fn resource(&self) -> &'static str {
        self.resource
    }

    /// The same certificate at `version` (`None`: the latest).
    pub fn with_version(&self, version: Option<&str>) -> CertificateUrl {
        CertificateUrl { version: version.map(str::to_string), ..self.clone() }
    }

    /// Whether `url` (a `kid`, a certificate `id`) is below this vault's root: the vault token goes nowhere else.
    pub fn is_in_vault(&self, url: &str) -> bool {
        url.strip_prefix(&self.vault).is_some_and(|rest| rest.starts_with('/'))
    }
}

impl fmt::Display for CertificateUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/certificates/{}", self.vault, self.name)?;
        if let Some(version) = &self.version {
            write!(f, "/{version}")?;
        }
        Ok(())
    }
}

/// Whether `text` looks like a Key Vault certificate URL rather than another kind of key (`pkcs11:`).
pub fn is_vault_url(text: &str) -> bool {
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

impl FromStr for CertificateUrl {
    type Err = Error;

    fn from_str(text: &str) -> Result<CertificateUrl, Error> {
        let bad = |reason: &str| Error::Url { url: text.to_string(), reason: reason.to_string() };
        let url = url::Url::parse(text).map_err(|_| {
            bad("not an absolute URL; expected https://VAULT.vault.azure.net/certificates/NAME[/VERSION]")
        })?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(bad("a vault URL is https://VAULT.vault.azure.net/certificates/NAME"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("a certificate URL has no query or fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("a certificate URL holds no user name or password"));
        }
        let segments: Vec<&str> = url.path().split('/').filter(|s| !s.is_empty()).collect();
        let at = segments.iter().rposition(|s| *s == "certificates").ok_or_else(|| {
            bad("the path must be /certificates/NAME or /certificates/NAME/VERSION (the vault's certificate, not a key or secret)")
        })?;
        let (prefix, rest) = segments.split_at(at);
        let (name, version) = match rest {
            [_, name] => (*name, None),
            [_, name, version] => (*name, Some(*version)),
            _ => return Err(bad("the path must be /certificates/NAME or /certificates/NAME/VERSION")),
        };
        check_name(name).map_err(|r| bad(&r))?;
        if let Some(v) = version
            && (v.is_empty() || v.len() > 64 || !v.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(bad("the version is the vault's id of one version: letters and digits (32 hex digits)"));
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let (vault, resource) = match url.scheme() {
            "https" => {
                if !prefix.is_empty() {
                    return Err(bad("the path must start with /certificates/"));
                }
                if url.port().is_some() {
                    return Err(bad("a vault URL names no port"));
                }
                let (suffix, resource) = CLOUDS.iter().find(|(s, _)| host.ends_with(s)).ok_or_else(|| {
                    bad("not a Key Vault host: expected VAULT.vault.azure.net (or .vault.azure.cn, .vault.usgovcloudapi.net)")
                })?;
                let label = &host[..host.len() - suffix.len()];
                let label_ok = (3..=24).contains(&label.len())
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-');
                if !label_ok {
                    return Err(bad("the vault name is 3-24 letters, digits and '-'"));
                }
                (format!("https://{host}"), *resource)
            }
            "http" if is_loopback(&url) => {
                let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
                let host = match url.host() {
                    Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
                    _ => host,
                };
                let path: String = prefix.iter().map(|s| format!("/{s}")).collect();
                (format!("http://{host}{port}{path}"), SIMULATOR_RESOURCE)
            }
            "http" => {
                return Err(bad(
                    "plain http is only accepted for loopback hosts (the simulator); a vault URL is https://VAULT.vault.azure.net/...",
                ));
            }
            _ => return Err(bad("a vault URL is https://VAULT.vault.azure.net/certificates/NAME")),
        };
        Ok(CertificateUrl { vault, name: name.to_string(), version: version.map(str::to_string), resource })
    }
}

/// Key Vault object names: 1-127 letters, digits and '-'.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 127 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(format!("certificate name {name:?}: a vault name is 1-127 letters, digits and '-'"));
    }
    Ok(())
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<(&str, &str, Option<&str>, &str), &str>) {
        let got = text.parse::<CertificateUrl>();
        match (got, expected) {
            (Ok(u), Ok((vault, name, version, resource))) => {
                assert_eq!(
                    (u.vault(), u.name(), u.version(), u.resource()),
                    (vault, name, version, resource),
                    "{text}"
                );
                assert_eq!(u.to_string(), text.trim_end_matches('/'), "round trip");
            }
            (Err(e), Err(needle)) => assert!(e.to_string().contains(needle), "{text}: {e}"),
            (got, expected) => panic!("{text}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn certificate_urls() {
        let public = "https://vault.azure.net";
        check(
            "https://contoso.vault.azure.net/certificates/contoso-exo",
            Ok(("https://contoso.vault.azure.net", "contoso-exo", None, public)),
        );
        check(
            "https://kv1.vault.azure.cn/certificates/exo/0123456789abcdef0123456789abcdef",
            Ok((
                "https://kv1.vault.azure.cn",
                "exo",
                Some("0123456789abcdef0123456789abcdef"),
                "https://vault.azure.cn",
            )),
        );
        check(
            "https://kv1.vault.usgovcloudapi.net/certificates/exo",
            Ok(("https://kv1.vault.usgovcloudapi.net", "exo", None, "https://vault.usgovcloudapi.net")),
        );
        check(
            "http://127.0.0.1:8080/keyvault/contoso/certificates/exo",
            Ok(("http://127.0.0.1:8080/keyvault/contoso", "exo", None, public)),
        );
        check("http://localhost:9/certificates/exo/v1", Ok(("http://localhost:9", "exo", Some("v1"), public)));
        check("http://10.0.0.1/keyvault/x/certificates/exo", Err("loopback"));
        check("http://contoso.vault.azure.net/certificates/exo", Err("loopback"));
        check("https://contoso.vault.example.com/certificates/exo", Err("not a Key Vault host"));
        check("https://contoso.vault.azure.net/keys/exo", Err("/certificates/NAME"));
        check("https://contoso.vault.azure.net/certificates/exo/v1/x", Err("/certificates/NAME"));
        check("https://contoso.vault.azure.net/certificates/ex_o", Err("letters, digits and '-'"));
        check("https://contoso.vault.azure.net/certificates/exo?api-version=7.4", Err("no query"));
        check("https://contoso.vault.azure.net:444/certificates/exo", Err("no port"));
        check("https://a.vault.azure.net/certificates/exo", Err("3-24"));
        check("https://u:p@contoso.vault.azure.net/certificates/exo", Err("no user name"));
        check("pkcs11:token=cba", Err("a vault URL is https://"));
        check("contoso.vault.azure.net/certificates/exo", Err("not an absolute URL"));
    }

    #[test]
    fn mixed_case_host_is_lowered_and_versions_swap() {
        let u: CertificateUrl = "https://Contoso.Vault.Azure.Net/certificates/exo/abc".parse().unwrap();
        assert_eq!(u.to_string(), "https://contoso.vault.azure.net/certificates/exo/abc");
        assert_eq!(u.with_version(None).to_string(), "https://contoso.vault.azure.net/certificates/exo");
        assert!(u.is_in_vault("https://contoso.vault.azure.net/keys/exo/abc"));
        assert!(!u.is_in_vault("https://contoso.vault.azure.net.evil.example/keys/exo/abc"));
        assert!(!u.is_in_vault("https://other.vault.azure.net/keys/exo/abc"));
    }

    #[test]
    fn vault_urls_are_told_from_pkcs11_uris() {
        assert!(is_vault_url("https://contoso.vault.azure.net/certificates/exo"));
        assert!(is_vault_url("HTTP://127.0.0.1/certificates/exo"));
        assert!(!is_vault_url("pkcs11:token=cba;object=exo"));
        assert!(!is_vault_url("http"));
    }
}
