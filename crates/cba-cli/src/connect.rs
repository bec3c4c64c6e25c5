//! What `setup`, `status`, `cert rotate`, `teardown` and `demo` share: the endpoints, the administrator's
//! sign-in, the Graph and token clients, the addKey/removeKey proof, and turning library errors into exit
//! codes with a message that names the object and the fix.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cba_graph::{GraphClient, ProofSigner, RetryNotice, RetryPolicy, StaticToken, TokenSource};
use cba_token::admin::{self, DeviceCodeOptions};
use cba_token::{
    AccessToken, AssertionAlg, AssertionOptions, Authority, CertificateTokenSource, ClientCertificate, Cloud,
    Endpoints, ErrorKind, Resource, TokenClient,
};
use zeroize::Zeroizing;

use crate::exit::{Exit, fail};
use crate::output::{self, Style};
use crate::profile::{self, Profile};
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

/// Where the admin's token comes from, once files and variables are read.
pub enum Admin {
    DeviceCode,
    Token(Zeroizing<String>),
    Cert { identity: Box<cba_cert::Identity>, client_id: String },
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Admin::DeviceCode => f.write_str("DeviceCode"),
            Admin::Token(_) => f.write_str("Token([redacted])"),
            Admin::Cert { client_id, .. } => write!(f, "Cert({client_id})"),
        }
    }
}

impl AdminArgs {
    pub fn given(&self) -> bool {
        self.admin.is_some() || self.admin_token_file.is_some() || self.admin_cert.is_some()
    }

    /// Read the credential the flags name (`env` for CBA_GRAPH_TOKEN).
    pub fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Admin> {
        let env_token = env("CBA_GRAPH_TOKEN").filter(|t| !t.trim().is_empty());
        let mode = self.admin.unwrap_or(if self.admin_cert.is_some() {
            AdminMode::Cert
        } else if self.admin_token_file.is_some() || env_token.is_some() {
            AdminMode::Token
        } else {
            AdminMode::DeviceCode
        });
        match mode {
            AdminMode::DeviceCode => Ok(Admin::DeviceCode),
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
                Ok(Admin::Token(Zeroizing::new(token)))
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
                Ok(Admin::Cert { identity: Box::new(identity), client_id: client_id.clone() })
            }
        }
    }
}

/// Progress settings for stderr.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub style: Style,
    /// Show every retry wait (the demo), not only those of a second or more.
    pub all_waits: bool,
}

impl Ui {
    pub fn step(&self, text: impl std::fmt::Display) {
        output::info(text);
    }

    pub fn detail(&self, text: &str) {
        output::info(self.style.dim(&format!("  {text}")));
    }
}

/// A token client for `urls` (retries per cba-token's policy; no cache: these commands want fresh answers).
pub fn token_client(urls: &Urls) -> anyhow::Result<TokenClient> {
    TokenClient::builder()
        .cloud(urls.cloud)
        .authority(urls.token_endpoints().authority)
        .http_client(crate::cmd::token::http_client(urls.login.starts_with("http://"))?)
        .build()
        .map_err(|e| token_failure(e, "configuring the token client"))
}

/// The administrator's Graph token source, and the tenant id the token names (`tid`) when it can be read.
pub async fn admin_tokens(
    admin: &Admin,
    urls: &Urls,
    tenant: &str,
    ui: Ui,
) -> anyhow::Result<(Arc<dyn TokenSource>, Option<String>)> {
    let client = token_client(urls)?;
    let graph_resource = urls.cloud.graph_root();
    let token: AccessToken = match admin {
        Admin::Token(t) => admin::existing_token(t, graph_resource, time::OffsetDateTime::now_utc()).map_err(|e| {
            let exit = if matches!(e, cba_token::Error::TokenExpired { .. }) { Exit::Auth } else { Exit::BadInput };
            fail(exit, format!("the admin's Graph token (CBA_GRAPH_TOKEN / --admin-token-file) cannot be used: {e}"))
        })?,
        Admin::DeviceCode => {
            let mut options = DeviceCodeOptions::for_setup(graph_resource);
            options.tenant = tenant.to_string();
            let style = ui.style;
            admin::device_code(&client, &options, |prompt| {
                output::info(style.warning(&prompt.message));
            })
            .await
            .map_err(|e| token_failure(e, "the administrator's device-code sign-in"))?
        }
        Admin::Cert { identity, client_id } => {
            let cert = ClientCertificate::new((**identity).clone(), tenant, client_id)
                .map_err(|e| fail(Exit::BadInput, format!("--admin-cert: {e}")))?;
            let source = CertificateTokenSource::new(client, cert, &Resource::Graph);
            let token = source
                .access_token()
                .await
                .map_err(|e| token_failure(e, &format!("the provisioning app {client_id}'s Graph token")))?;
            let tid = tenant_of(&token);
            return Ok((Arc::new(source), tid));
        }
    };
    let tid = tenant_of(&token);
    Ok((Arc::new(StaticToken::new(token.secret())), tid))
}

fn tenant_of(token: &AccessToken) -> Option<String> {
    token.decode().ok().and_then(|d| d.claim_str("tid").map(str::to_owned))
}

/// A Graph client for `urls` whose retries end by `deadline`; waits of a second or more (all of them with
/// `ui.all_waits`) are told on stderr.
pub fn graph_client(
    urls: &Urls,
    tokens: Arc<dyn TokenSource>,
    deadline: Duration,
    ui: Ui,
) -> anyhow::Result<GraphClient> {
    let policy = RetryPolicy { deadline, ..RetryPolicy::default() };
    let observer = Arc::new(move |n: &RetryNotice| {
        let line = format!(
            "{}: {} {} — retrying in {:.1} s (attempt {})",
            n.reason,
            n.method,
            n.path.split('?').next().unwrap_or(""),
            n.wait.as_secs_f64(),
            n.attempt + 1
        );
        if ui.all_waits || n.wait >= Duration::from_secs(1) {
            ui.detail(&line);
        } else {
            tracing::debug!("{line}");
        }
    });
    GraphClient::builder()
        .base_url(&urls.graph)
        .token_source(tokens)
        .retry_policy(policy)
        .on_retry(observer)
        .build()
        .map_err(|e| fail(Exit::Usage, format!("--graph-url: {e}")))
}

/// Signs addKey/removeKey proofs with a certificate of the app: `aud` 00000002-0000-0000-c000-000000000000,
/// `iss` the app's object id, `nbf` now, `exp` ten minutes later; RS256 with `x5t`, the form of Microsoft's
/// own example.
pub struct CertProof(pub cba_cert::Identity);

impl ProofSigner for CertProof {
    fn proof(&self, app_object_id: &str) -> Result<String, cba_graph::BoxError> {
        let signer = ClientCertificate::new(self.0.clone(), "proof", app_object_id)?;
        let options = AssertionOptions {
            alg: AssertionAlg::Rs256,
            lifetime: Duration::from_secs(600),
            ..AssertionOptions::default()
        };
        let jwt =
            signer.sign_assertion(cba_graph::wellknown::PROOF_AUDIENCE, &options, time::OffsetDateTime::now_utc())?;
        Ok(jwt.expose().to_string())
    }
}

/// A Graph failure as an exit code and a message naming what failed and what to do.
pub fn graph_failure(e: cba_graph::Error, doing: &str) -> anyhow::Error {
    use cba_graph::Error as G;
    let mut text = format!("{doing}: {}", chain(&e));
    let exit = if e.is_permission_denied() {
        let role = e.required_role_hint().unwrap_or("a suitable Entra role");
        text.push_str(&format!(
            "; the signed-in administrator needs the Entra role {role} (and the sign-in's consent to \
             Application.ReadWrite.All, AppRoleAssignment.ReadWrite.All, RoleManagement.ReadWrite.Directory): \
             ask a Global Administrator, or sign in as one; a provisioning app (--admin cert) needs those three \
             as admin-consented Microsoft Graph application permissions instead"
        ));
        Exit::Permission
    } else {
        match e.root() {
            G::Api { status: 401, .. } => {
                text.push_str("; the admin's Graph token was refused: sign in again (a fresh CBA_GRAPH_TOKEN)");
                Exit::Auth
            }
            G::Api { status, .. } if *status == 429 || *status >= 500 => {
                text.push_str("; Microsoft Graph kept failing until the deadline: try again later or raise --wait");
                Exit::Remote
            }
            G::Api { status: 404, .. } => {
                text.push_str("; Entra did not show the object before the deadline (replication): rerun the command, or raise --wait");
                Exit::Remote
            }
            G::Transport { .. } => {
                text.push_str("; check the network, HTTPS_PROXY, or --graph-url");
                Exit::Remote
            }
            G::Token { source } => match source.downcast_ref::<cba_token::Error>() {
                Some(t) => kind_exit(t),
                None => Exit::Auth,
            },
            G::Invalid { .. } | G::UnknownRole { .. } => Exit::Usage,
            G::AmbiguousApplication { .. } | G::ExchangeNotAvailable { .. } => Exit::BadInput,
            G::LastKey { .. } => Exit::Verify,
            G::Api { .. } if matches!(e, G::RetriesExhausted { .. }) => Exit::Remote,
            G::Api { .. } => Exit::Remote,
            _ => Exit::Internal,
        }
    };
    fail(exit, text)
}

/// A token failure: AADSTS refusals → 4, network/5xx/deadline → 6, unusable input → 3.
pub fn token_failure(e: cba_token::Error, doing: &str) -> anyhow::Error {
    fail(kind_exit(&e), format!("{doing}: {}", chain(&e)))
}

pub fn kind_exit(e: &cba_token::Error) -> Exit {
    match e.kind() {
        ErrorKind::Auth => Exit::Auth,
        ErrorKind::Remote => Exit::Remote,
        ErrorKind::Input => Exit::BadInput,
        _ => Exit::Internal,
    }
}

/// An error and its sources, joined by ": " (each once).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// The certificate's key credential in cba-graph's type (the same Graph JSON).
pub fn key_credential(certificate: &cba_cert::Certificate) -> cba_graph::KeyCredential {
    let json = serde_json::to_value(certificate.key_credential()).expect("a key credential serializes");
    serde_json::from_value(json).expect("cba-cert and cba-graph share Graph's keyCredential shape")
}

/// Whether `s` looks like a GUID (a tenant id rather than a domain).
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12]) && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
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

/// `90`, `90s`, `5m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits.parse().map_err(|_| format!("{s:?}: expected a number with s, m or h (90s, 5m, 1h)"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

/// The profile named by `--profile` or CBA_PROFILE.
pub fn profile_path(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| std::env::var_os("CBA_PROFILE").filter(|v| !v.is_empty()).map(PathBuf::from))
}

/// Load the profile a command needs, with a message saying how to get one.
pub fn require_profile(flag: Option<PathBuf>) -> anyhow::Result<(PathBuf, Profile)> {
    let Some(path) = profile_path(flag) else {
        return Err(fail(
            Exit::Usage,
            "no profile: pass --profile FILE or set CBA_PROFILE (`cba setup` writes ./<NAME>.profile.json)",
        ));
    };
    let profile = Profile::load(&path)?;
    Ok((path, profile))
}

/// The Exchange token check of setup and status: `roles` holds Exchange.ManageAsApp, and `wids` (when the
/// token has it) one of `role_ids`. Returns (roles, wids).
pub fn token_claims(token: &AccessToken) -> (Vec<String>, Option<Vec<String>>) {
    match token.decode() {
        Ok(d) => {
            let roles = d.claim_strings("roles").into_iter().map(str::to_owned).collect();
            let wids = d.claims.get("wids").map(|_| d.claim_strings("wids").into_iter().map(str::to_owned).collect());
            (roles, wids)
        }
        Err(_) => (Vec::new(), None),
    }
}

/// What [`prove`] found: the Exchange token's claims and the requests it took.
#[derive(Debug, Clone)]
pub struct Proof {
    pub roles: Vec<String>,
    pub wids: Option<Vec<String>>,
    pub tenant_id: Option<String>,
    pub requests: u32,
    pub elapsed: Duration,
}

/// Get an app-only Exchange token with `cert`, waiting out replication (AADSTS700016/700027, and a grant
/// or role not in the token yet) until `deadline`, with a progress line on stderr. The token must carry
/// Exchange.ManageAsApp in `roles` and, when it has `wids`, one of `role_ids`; otherwise exit 7.
pub async fn prove(
    urls: &Urls,
    cert: &ClientCertificate,
    deadline: Duration,
    role_ids: &[&str],
    ui: Ui,
) -> anyhow::Result<Proof> {
    use cba_graph::wellknown::EXCHANGE_MANAGE_AS_APP;
    let client = token_client(urls)?;
    let start = std::time::Instant::now();
    let mut requests = 0;
    let mut pause = Duration::from_secs(1);
    loop {
        let left = deadline.saturating_sub(start.elapsed()).max(Duration::from_secs(1));
        let mut waits = 0;
        let token = client
            .wait_until_ready(cert, &Resource::Exchange, &cba_token::WaitOptions::new(left), |p| {
                waits += 1;
                let code = p.error.aadsts().first().map(|c| format!("AADSTS{c}")).unwrap_or_default();
                ui.detail(&format!(
                    "{code}: Entra has not replicated the app or its certificate yet; trying again in {} s ({} s so far)",
                    p.next_try_in.as_secs(),
                    p.elapsed.as_secs()
                ));
            })
            .await;
        requests += waits + 1;
        let token = token.map_err(|e| {
            token_failure(
                e,
                &format!(
                    "getting an Exchange token as app {} with certificate {}",
                    cert.client_id(),
                    cert.certificate().thumbprint_sha1_hex()
                ),
            )
        })?;
        let (roles, wids) = token_claims(&token);
        let has_grant = roles.iter().any(|r| r == EXCHANGE_MANAGE_AS_APP);
        let has_role = match &wids {
            None => true,
            Some(w) => role_ids.is_empty() || w.iter().any(|id| role_ids.iter().any(|r| r.eq_ignore_ascii_case(id))),
        };
        if has_grant && has_role {
            return Ok(Proof { roles, wids, tenant_id: tenant_of(&token), requests, elapsed: start.elapsed() });
        }
        let missing = if has_grant { "an assigned Entra role in `wids`" } else { "Exchange.ManageAsApp in `roles`" };
        if start.elapsed() + pause > deadline {
            return Err(fail(
                Exit::Verify,
                format!(
                    "the Exchange token of app {} has no {missing} after {} s (roles: [{}]): the grant or role \
                     assignment has not reached the token service; run `cba status`, or rerun with a longer --wait",
                    cert.client_id(),
                    start.elapsed().as_secs(),
                    roles.join(", ")
                ),
            ));
        }
        ui.detail(&format!("the token has no {missing} yet (replication); trying again in {} s", pause.as_secs()));
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}
