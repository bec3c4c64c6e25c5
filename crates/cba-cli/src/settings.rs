//! The one settings resolver: raw flags (clap) → validated settings, in one order for every command:
//! flags, then the profile, then the environment, then the cloud's defaults.

use std::path::PathBuf;
use std::time::Duration;

use cba_lifecycle::exchange_roles::ExchangeAdminCredential;
use cba_lifecycle::{AdminCredential, Profile};
use cba_token::{Authority, Cloud, Endpoints};
use zeroize::Zeroizing;

use crate::exit::{Exit, fail};
use crate::profile::{self, FileStore};
use crate::secrets::{self, PasswordArgs, Purpose};

/// `--cloud` and the per-service overrides.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EndpointArgs {
    /// The Microsoft cloud: global, usgov-high, usgov-dod or china (login, Graph and Exchange hosts).
    #[arg(long, value_name = "CLOUD", value_parser = parse_cloud)]
    pub cloud: Option<Cloud>,
    /// Another login root, e.g. `cba sim serve`'s login_url [env: AZURE_AUTHORITY_HOST].
    #[arg(long, value_name = "URL")]
    pub authority_host: Option<String>,
    /// Another Microsoft Graph root, without the version (https://graph.microsoft.com) [env: CBA_GRAPH_URL].
    #[arg(long, value_name = "URL")]
    pub graph_url: Option<String>,
    /// Another Exchange Online root (https://outlook.office365.com) [env: CBA_EXCHANGE_URL].
    #[arg(long, value_name = "URL")]
    pub exchange_url: Option<String>,
}

pub fn parse_cloud(s: &str) -> Result<Cloud, String> {
    s.parse().map_err(|e: cba_token::Error| e.to_string())
}

/// The roots requests go to. Token scopes always name the cloud's resource identifiers
/// (`https://graph.microsoft.com/.default`), whatever URL serves them (a proxy, the simulator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    pub cloud: Cloud,
    pub login: String,
    pub graph: String,
    pub exchange: String,
}

impl Urls {
    /// Flags first, then the profile, then the environment, then the cloud's defaults.
    pub fn resolve(
        args: &EndpointArgs,
        profile: Option<&Profile>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Urls> {
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let from_profile = |f: fn(&profile::Endpoints) -> &String| profile.map(|p| f(&p.endpoints).clone());
        let cloud = match (args.cloud, profile) {
            (Some(c), _) => c,
            (None, Some(p)) => parse_cloud(&p.cloud).map_err(|e| fail(Exit::BadInput, format!("profile: {e}")))?,
            (None, None) => Cloud::Global,
        };
        let pick = |flag: &Option<String>, f: fn(&profile::Endpoints) -> &String, var: &str, default: &str| {
            flag.clone()
                .or_else(|| from_profile(f))
                .or_else(|| env(var))
                .unwrap_or_else(|| default.to_string())
                .trim()
                .trim_end_matches('/')
                .to_string()
        };
        let urls = Urls {
            cloud,
            login: pick(&args.authority_host, |e| &e.login, "AZURE_AUTHORITY_HOST", cloud.login_root()),
            graph: pick(&args.graph_url, |e| &e.graph, "CBA_GRAPH_URL", cloud.graph_root()),
            exchange: pick(&args.exchange_url, |e| &e.exchange, "CBA_EXCHANGE_URL", cloud.exchange_root()),
        };
        Authority::new(&urls.login).map_err(|e| fail(Exit::Usage, format!("--authority-host: {e}")))?;
        for (flag, url) in [("--graph-url", &urls.graph), ("--exchange-url", &urls.exchange)] {
            let checked = cba_http::check_endpoint(url).map_err(|e| fail(Exit::Usage, format!("{flag}: {e}")))?;
            if checked.path().trim_end_matches('/').ends_with("/v1.0") || checked.path().ends_with("/beta") {
                return Err(fail(
                    Exit::Usage,
                    format!("{flag} {url}: give the root without the API version (e.g. https://graph.microsoft.com)"),
                ));
            }
        }
        Ok(urls)
    }

    /// For cba-token: the login root used, the cloud's resource identifiers.
    pub fn token_endpoints(&self) -> Endpoints {
        let mut endpoints = self.cloud.endpoints();
        endpoints.authority = Authority::new(&self.login).expect("checked by resolve");
        endpoints
    }

    pub fn for_profile(&self) -> profile::Endpoints {
        profile::Endpoints { login: self.login.clone(), graph: self.graph.clone(), exchange: self.exchange.clone() }
    }
}

/// `--admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AdminMode {
    /// Sign in in a browser with a code (microsoft.com/devicelogin).
    DeviceCode,
    /// A Graph token the admin already has: CBA_GRAPH_TOKEN or --admin-token-file.
    Token,
    /// A provisioning app's certificate: --admin-cert FILE --admin-client-id ID.
    Cert,
}

/// The administrator's Graph sign-in.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AdminArgs {
    /// How the Entra administrator signs in to Graph [default: token when CBA_GRAPH_TOKEN is set, else
    /// device-code].
    #[arg(long, value_enum, value_name = "device-code|token|cert")]
    pub admin: Option<AdminMode>,
    /// With `--admin token`: read the token from this file instead of CBA_GRAPH_TOKEN.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// With `--admin cert`: the provisioning app's certificate (PFX password: CBA_ADMIN_PFX_PASSWORD or a prompt).
    #[arg(long, value_name = "FILE")]
    pub admin_cert: Option<PathBuf>,
    /// With `--admin cert`: the provisioning app's client id.
    #[arg(long, value_name = "ID")]
    pub admin_client_id: Option<String>,
}

impl AdminArgs {
    pub fn given(&self) -> bool {
        self.admin.is_some() || self.admin_token_file.is_some() || self.admin_cert.is_some()
    }

    /// Read the credential the flags name (`env` for CBA_GRAPH_TOKEN).
    pub fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<AdminCredential> {
        let env_token = env("CBA_GRAPH_TOKEN").filter(|t| !t.trim().is_empty());
        let mode = self.admin.unwrap_or(if self.admin_cert.is_some() {
            AdminMode::Cert
        } else if self.admin_token_file.is_some() || env_token.is_some() {
            AdminMode::Token
        } else {
            AdminMode::DeviceCode
        });
        match mode {
            AdminMode::DeviceCode => Ok(AdminCredential::DeviceCode),
            AdminMode::Token => {
                let token = match (&self.admin_token_file, env_token) {
                    (Some(file), _) => {
                        let bytes = crate::fsutil::read(file)?;
                        String::from_utf8_lossy(&bytes).trim().to_string()
                    }
                    (None, Some(t)) => t.trim().to_string(),
                    (None, None) => {
                        return Err(fail(
                            Exit::Usage,
                            "--admin token needs CBA_GRAPH_TOKEN or --admin-token-file FILE (with `cba sim serve`: its admin_token)",
                        ));
                    }
                };
                Ok(AdminCredential::Token(Zeroizing::new(token)))
            }
            AdminMode::Cert => {
                let (Some(path), Some(client_id)) = (&self.admin_cert, &self.admin_client_id) else {
                    return Err(fail(Exit::Usage, "--admin cert needs --admin-cert FILE and --admin-client-id ID"));
                };
                let bytes = crate::fsutil::read(path)?;
                let envs = &["CBA_ADMIN_PFX_PASSWORD"];
                let given = secrets::from_sources(&PasswordArgs::default(), envs)?;
                let identity = match cba_cert::load(&bytes, given.as_ref()) {
                    Err(cba_cert::Error::WrongPassword { given: false }) => {
                        let p = secrets::prompt(Purpose::Open, &path.display().to_string(), envs)?;
                        cba_cert::load(&bytes, Some(&p))
                    }
                    other => other,
                }
                .map_err(|e| fail(Exit::BadInput, format!("{}: {e}", path.display())))?;
                Ok(AdminCredential::Certificate { identity: Box::new(identity), client_id: client_id.clone() })
            }
        }
    }
}

/// The administrator's Exchange sign-in, for the role group steps (setup, status, teardown, `cba exo roles`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ExchangeAdminArgs {
    /// How the administrator signs in to Exchange Online for the role group cmdlets [default: token when
    /// CBA_EXO_ADMIN_TOKEN is set, cert with --admin cert, else device-code].
    #[arg(long, value_enum, value_name = "device-code|token|cert")]
    pub exchange_admin: Option<AdminMode>,
}

impl ExchangeAdminArgs {
    /// Whether an Exchange sign-in was asked for (the flag, or CBA_EXO_ADMIN_TOKEN set).
    pub fn given(&self, env: impl Fn(&str) -> Option<String>) -> bool {
        self.exchange_admin.is_some() || env("CBA_EXO_ADMIN_TOKEN").is_some_and(|t| !t.trim().is_empty())
    }

    /// The credential: a delegated token from CBA_EXO_ADMIN_TOKEN, the provisioning app of `graph` (`--admin
    /// cert`), or a device-code sign-in.
    pub fn resolve(
        &self,
        graph: Option<&AdminCredential>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<ExchangeAdminCredential> {
        let env_token = env("CBA_EXO_ADMIN_TOKEN").filter(|t| !t.trim().is_empty());
        let provisioning = match graph {
            Some(AdminCredential::Certificate { identity, client_id }) => Some((identity.clone(), client_id.clone())),
            _ => None,
        };
        let mode = self.exchange_admin.unwrap_or(if env_token.is_some() {
            AdminMode::Token
        } else if provisioning.is_some() {
            AdminMode::Cert
        } else {
            AdminMode::DeviceCode
        });
        match mode {
            AdminMode::DeviceCode => Ok(ExchangeAdminCredential::DeviceCode),
            AdminMode::Token => match env_token {
                Some(t) => Ok(ExchangeAdminCredential::Token(Zeroizing::new(t.trim().to_string()))),
                None => Err(fail(
                    Exit::Usage,
                    "--exchange-admin token needs CBA_EXO_ADMIN_TOKEN (a delegated Exchange token; with `cba sim \
                     serve`: its exchange_admin_token)",
                )),
            },
            AdminMode::Cert => match provisioning {
                Some((identity, client_id)) => Ok(ExchangeAdminCredential::Certificate { identity, client_id }),
                None => Err(fail(
                    Exit::Usage,
                    "--exchange-admin cert uses the provisioning app of --admin cert (--admin-cert FILE \
                     --admin-client-id ID); it needs the Role Management role in Exchange",
                )),
            },
        }
    }
}

/// Who signs in as the app: the flags `cba token`, `cba status` and `cba exo` share. They win over the profile,
/// which wins over AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_CERTIFICATE_PATH.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AppArgs {
    /// The profile `cba setup` wrote: tenant, app, certificate, cloud and endpoints [env: CBA_PROFILE].
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Tenant id (GUID) or domain [env: AZURE_TENANT_ID].
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// The app's client (application) id [env: AZURE_CLIENT_ID].
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// The certificate with its private key: PFX/P12 or PEM [env: AZURE_CLIENT_CERTIFICATE_PATH].
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    #[command(flatten)]
    pub password: crate::secrets::PasswordArgs,
}

/// `90`, `90s`, `5m`, `1h`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits.parse().map_err(|_| format!("{s:?}: expected a number with s, m, h or d (90s, 5m, 1h, 7d)"))?;
    let unit_secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use s, m, h or d")),
    };
    let secs = n.checked_mul(unit_secs).ok_or_else(|| format!("{s:?}: too long"))?;
    Ok(Duration::from_secs(secs))
}

/// The profile named by `--profile` or CBA_PROFILE.
pub fn profile_path(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| std::env::var_os("CBA_PROFILE").filter(|v| !v.is_empty()).map(PathBuf::from))
}

/// The profile named by `--profile` or CBA_PROFILE, if any, refused when its setup did not finish (every
/// command but setup and teardown).
pub fn complete_profile(flag: Option<PathBuf>) -> anyhow::Result<Option<Profile>> {
    let Some(path) = profile_path(flag) else { return Ok(None) };
    let store = FileStore::new(path);
    let profile = store.read()?;
    store.require_complete(&profile)?;
    Ok(Some(profile))
}

/// Load the profile a command needs, with a message saying how to get one.
pub fn require_profile(flag: Option<PathBuf>) -> anyhow::Result<(FileStore, Profile)> {
    let Some(path) = profile_path(flag) else {
        return Err(fail(
            Exit::Usage,
            "no profile: pass --profile FILE or set CBA_PROFILE (`cba setup` writes ./<NAME>.profile.json)",
        ));
    };
    let store = FileStore::new(path);
    let profile = store.read()?;
    Ok((store, profile))
}

/// Who signs in and where: from the flags, then a profile (`--profile`, CBA_PROFILE), then the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub tenant: Option<String>,
    pub client_id: Option<String>,
    pub cert: Option<PathBuf>,
    /// A key in a PKCS#11 token (`--key pkcs11:…`) or a Key Vault, instead of `cert`.
    pub key: Option<String>,
    /// `--pkcs11-module`: the module for a `pkcs11:` key (else the URI's module-path, else CBA_PKCS11_MODULE).
    pub pkcs11_module: Option<PathBuf>,
    pub cloud: Option<Cloud>,
    pub authority_host: Option<String>,
    pub send_x5c: Option<bool>,
}

impl Credentials {
    /// The shared app flags (tenant, client id, certificate).
    pub fn from_app_args(app: &AppArgs) -> Credentials {
        Credentials {
            tenant: app.tenant.clone(),
            client_id: app.client_id.clone(),
            cert: app.cert.clone(),
            ..Credentials::default()
        }
    }

    /// What a `cba setup` profile says.
    pub fn from_profile(profile: &Profile) -> Credentials {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Credentials {
            tenant: non_empty(&profile.tenant_id),
            client_id: non_empty(&profile.app_id),
            // A token key's `path` is only its `.cer`: the key signs, in the token.
            cert: profile.certificate.key.is_none().then(|| profile.certificate.path.clone()),
            key: profile.certificate.key.clone(),
            pkcs11_module: None,
            cloud: profile.cloud.parse().ok(),
            authority_host: non_empty(&profile.endpoints.login),
            send_x5c: None,
        }
    }

    /// The azure-identity environment names.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Credentials {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        Credentials {
            tenant: var("AZURE_TENANT_ID"),
            client_id: var("AZURE_CLIENT_ID"),
            cert: var("AZURE_CLIENT_CERTIFICATE_PATH").map(PathBuf::from),
            key: None,
            pkcs11_module: None,
            cloud: None,
            authority_host: var("AZURE_AUTHORITY_HOST"),
            send_x5c: var("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN")
                .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true")),
        }
    }

    /// Fill what is missing here from `fallback`. The certificate file and the token key are one choice: the
    /// layer that names either wins both.
    pub fn or(self, fallback: Credentials) -> Credentials {
        let (cert, key) = if self.cert.is_some() || self.key.is_some() {
            (self.cert, self.key)
        } else {
            (fallback.cert, fallback.key)
        };
        Credentials {
            tenant: self.tenant.or(fallback.tenant),
            client_id: self.client_id.or(fallback.client_id),
            cert,
            key,
            pkcs11_module: self.pkcs11_module.or(fallback.pkcs11_module),
            cloud: self.cloud.or(fallback.cloud),
            authority_host: self.authority_host.or(fallback.authority_host),
            send_x5c: self.send_x5c.or(fallback.send_x5c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_days() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("0d"), Ok(Duration::ZERO));
        assert!(parse_duration("1.5d").is_err());
        assert!(parse_duration("99999999999999999d").is_err(), "overflow is refused, not wrapped");
    }
}
