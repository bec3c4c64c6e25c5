use std::fmt;
use std::str::FromStr;

use url::{Host, Url};

use crate::error::{Error, Result};

/// A Microsoft cloud: decides the login host and the resource URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Cloud {
    /// The global cloud (also GCC).
    #[default]
    Global,
    /// US Government GCC High.
    UsGovHigh,
    /// US Government DoD.
    UsGovDod,
    /// Microsoft Azure operated by 21Vianet (China).
    China,
}

impl Cloud {
    /// Every cloud, in the order of the docs.
    pub const ALL: [Cloud; 4] = [Cloud::Global, Cloud::UsGovHigh, Cloud::UsGovDod, Cloud::China];

    /// The name used on the command line (`global`, `usgov-high`, `usgov-dod`, `china`).
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::UsGovHigh => "usgov-high",
            Cloud::UsGovDod => "usgov-dod",
            Cloud::China => "china",
        }
    }

    /// The login (authority) root, such as `https://login.microsoftonline.com`.
    pub fn login_root(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGovHigh | Cloud::UsGovDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }

    /// The Microsoft Graph root, such as `https://graph.microsoft.com`.
    pub fn graph_root(self) -> &'static str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::UsGovHigh => "https://graph.microsoft.us",
            Cloud::UsGovDod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }

    /// The Exchange Online resource, such as `https://outlook.office365.com`.
    ///
    /// For DoD this is UNVERIFIED: `https://outlook.office365.us` (what a public pipeline uses) is returned;
    /// `Connect-ExchangeOnline` documents `webmail.apps.mil` as the connection URI. Override it with
    /// [`TokenClientBuilder::exchange_root`](crate::TokenClientBuilder::exchange_root) or `--resource <URL>`.
    pub fn exchange_root(self) -> &'static str {
        match self {
            Cloud::Global => "https://outlook.office365.com",
            Cloud::UsGovHigh | Cloud::UsGovDod => "https://outlook.office365.us",
            Cloud::China => "https://partner.outlook.cn",
        }
    }

    /// This cloud's endpoints, ready to override one by one.
    pub fn endpoints(self) -> Endpoints {
        Endpoints {
            authority: Authority(self.login_root().to_owned()),
            graph_root: self.graph_root().to_owned(),
            exchange_root: self.exchange_root().to_owned(),
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Cloud {
    type Err = Error;

    fn from_str(s: &str) -> Result<Cloud> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "global" | "public" | "gcc" | "azurecloud" | "o365default" => Cloud::Global,
            "usgov-high" | "usgovhigh" | "gcchigh" | "gcc-high" | "o365usgovgcchigh" => Cloud::UsGovHigh,
            "usgov-dod" | "usgovdod" | "dod" | "o365usgovdod" => Cloud::UsGovDod,
            "china" | "azurechinacloud" | "o365china" => Cloud::China,
            _ => {
                return Err(Error::Invalid {
                    what: "cloud",
                    reason: format!("{s:?}: expected global, usgov-high, usgov-dod or china"),
                });
            }
        })
    }
}

/// Where to sign in and which resource URLs to ask tokens for. Start from [`Cloud::endpoints`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The login root.
    pub authority: Authority,
    /// The Microsoft Graph resource root (no trailing slash).
    pub graph_root: String,
    /// The Exchange Online resource root (no trailing slash).
    pub exchange_root: String,
}

/// The root URL of a login service, such as `https://login.microsoftonline.com`.
///
/// HTTPS only, except on loopback hosts (127.0.0.0/8, ::1, `localhost`), where tests and `cba sim` run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Authority(String);

impl Authority {
    /// Check and normalise a login root (trailing slashes dropped; a path prefix is kept).
    pub fn new(url: &str) -> Result<Authority> {
        let invalid = |reason: String| Error::Invalid { what: "authority", reason };
        let parsed = Url::parse(url.trim()).map_err(|e| invalid(format!("{url:?} is not a URL ({e})")))?;
        let host = parsed.host().ok_or_else(|| invalid(format!("{url:?} has no host")))?;
        match parsed.scheme() {
            "https" => {}
            "http" if is_loopback(&host) => {}
            "http" => {
                return Err(invalid(format!(
                    "{url:?} uses plain http; only https is allowed, except for loopback hosts (127.0.0.1, ::1, localhost)"
                )));
            }
            other => return Err(invalid(format!("{url:?}: scheme {other:?} is not https"))),
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(invalid(format!("{url:?}: a login root has no query or fragment")));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid("a login root must not carry credentials".to_owned()));
        }
        let text = parsed.as_str().trim_end_matches('/').to_owned();
        Ok(Authority(text))
    }

    /// The login root of a cloud.
    pub fn for_cloud(cloud: Cloud) -> Authority {
        Authority(cloud.login_root().to_owned())
    }

    /// The normalised root URL, without trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `{root}/{tenant}/oauth2/v2.0/token`: the token endpoint, also the `aud` of client assertions.
    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.0, tenant)
    }

    /// `{root}/{tenant}/oauth2/v2.0/devicecode`.
    pub fn device_code_url(&self, tenant: &str) -> String {
        format!("{}/{}/oauth2/v2.0/devicecode", self.0, tenant)
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Authority {
    type Err = Error;

    fn from_str(s: &str) -> Result<Authority> {
        Authority::new(s)
    }
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// What a token is for. App-only tokens use the resource's `/.default` scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Resource {
    /// Exchange Online (the cloud's Exchange root; the default).
    #[default]
    Exchange,
    /// Microsoft Graph.
    Graph,
    /// Any resource URL or app id URI (`/.default` is appended unless present).
    Url(String),
}

impl Resource {
    /// The scope to request, such as `https://outlook.office365.com/.default`.
    pub fn scope(&self, endpoints: &Endpoints) -> String {
        let root = match self {
            Resource::Exchange => &endpoints.exchange_root,
            Resource::Graph => &endpoints.graph_root,
            Resource::Url(url) => url,
        };
        if root.ends_with("/.default") { root.clone() } else { format!("{}/.default", root.trim_end_matches('/')) }
    }
}

impl FromStr for Resource {
    type Err = Error;

    fn from_str(s: &str) -> Result<Resource> {
        let s = s.trim();
        match s.to_ascii_lowercase().as_str() {
            "exchange" | "exo" => Ok(Resource::Exchange),
            "graph" => Ok(Resource::Graph),
            _ if s.contains("://") && !s.contains(char::is_whitespace) => Ok(Resource::Url(s.to_owned())),
            _ => Err(Error::Invalid {
                what: "resource",
                reason: format!("{s:?}: expected exchange, graph or a resource URL such as https://example.com"),
            }),
        }
    }
}

/// Check a tenant (GUID, domain, `organizations`) or client id before it goes into a URL path or a JWT.
pub(crate) fn check_identifier(what: &'static str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 256
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            what,
            reason: format!("{value:?}: expected a GUID or a domain name (letters, digits, '-', '.')"),
        })
    }
}
