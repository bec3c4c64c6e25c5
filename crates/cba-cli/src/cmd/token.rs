//! `cba token`: an app-only access token from a certificate, for scripts (`$(cba token)`).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cba_token::jwt::{self, DecodedJwt};
use cba_token::{
    AccessToken, AssertionAlg, AssertionOptions, Authority, CacheKey, CertFileStamp, ClientCertificate, Cloud,
    Endpoints, ErrorKind, Resource, TokenCache, TokenClient, WaitOptions,
};
use serde::Serialize;
use time::OffsetDateTime;

use crate::Global;
use crate::exit::{Exit, ExitExt as _, fail};
use crate::output::{self, OutputFormat};
use crate::secrets::PasswordArgs;
use crate::settings::AppArgs;
pub use crate::settings::Credentials;

const EXAMPLES: &str = "\
Examples:
  export AZURE_TENANT_ID=contoso.onmicrosoft.com AZURE_CLIENT_ID=631a96bc-... \\
         AZURE_CLIENT_CERTIFICATE_PATH=contoso-exo.pfx CBA_PFX_PASSWORD=...
  curl -H \"$(cba token --format header)\" https://outlook.office365.com/adminapi/beta/...
  cba token --resource graph --format json
  eval \"$(cba token --format env)\"          # CBA_ACCESS_TOKEN and CBA_ACCESS_TOKEN_EXPIRES_ON
  cba token --format env --shell powershell | Invoke-Expression   # the same in PowerShell
  cba token --wait 5m                       # right after setup: wait for Entra to replicate the app
  cba token --decode                        # what does my token carry? (roles, expiry)
  pbpaste | cba token --decode -            # decode any JWT from stdin
  cba token --print-assertion               # the signed client assertion, not sent anywhere
  CBA_PKCS11_PIN=... cba token --key 'pkcs11:token=cba;object=contoso-exo' -v
  cba token --key https://contoso-kv.vault.azure.net/certificates/contoso-exo -v

Credentials come from the flags, else AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_CERTIFICATE_PATH (PFX or
PEM), AZURE_CLIENT_CERTIFICATE_PASSWORD (or CBA_PFX_PASSWORD), AZURE_AUTHORITY_HOST and
AZURE_CLIENT_SEND_CERTIFICATE_CHAIN=1|true; --key signs in a PKCS#11 token with the certificate stored there
(module: --pkcs11-module, the URI's module-path or CBA_PKCS11_MODULE; docs/keys.md). Tokens are cached in $XDG_CACHE_HOME/cba (else ~/.cache/cba) and
renewed when under 5 minutes are left. Behind a TLS-inspecting proxy set HTTPS_PROXY and SSL_CERT_FILE.
AADSTS errors: docs/troubleshooting-aadsts.md.";

/// `cba token` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    pub app: AppArgs,
    #[command(flatten)]
    pub key: crate::pkcs11::KeyArgs,
    /// What the token is for: exchange, graph, or a resource URL (`/.default` is added).
    #[arg(long, value_name = "exchange|graph|URL", value_parser = parse_resource)]
    pub resource: Option<Resource>,
    /// The Microsoft cloud: global, usgov-high, usgov-dod or china.
    #[arg(long, value_name = "CLOUD", value_parser = crate::settings::parse_cloud)]
    pub cloud: Option<Cloud>,
    /// Another login root, e.g. http://127.0.0.1:8080 for `cba sim` [env: AZURE_AUTHORITY_HOST].
    #[arg(long, value_name = "URL")]
    pub authority_host: Option<String>,
    /// Client assertion algorithm: ps256 (default, x5t#S256) or rs256 (x5t).
    #[arg(long, value_enum)]
    pub alg: Option<Alg>,
    /// Send the certificate chain (x5c), for subject name + issuer registrations
    /// [env: AZURE_CLIENT_SEND_CERTIFICATE_CHAIN=1|true].
    #[arg(long)]
    pub send_x5c: bool,
    /// raw: the token alone (default); header: `Authorization: Bearer …`; env: shell export lines; json.
    #[arg(long, value_enum)]
    pub format: Option<TokenFormat>,
    /// With `--format env`: sh (`export NAME='…'`, the default) or powershell (`$env:NAME='…'`).
    #[arg(long, value_enum, value_name = "sh|powershell")]
    pub shell: Option<Shell>,
    /// Neither read nor write the token cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Empty the token cache and exit.
    #[arg(long)]
    pub clear_cache: bool,
    /// Print the signed client assertion for this configuration (sent nowhere) and exit.
    #[arg(long, conflicts_with_all = ["decode", "wait", "clear_cache"])]
    pub print_assertion: bool,
    /// Show a token's header and claims, unverified: TOKEN, `-` for stdin, or nothing for the token this
    /// configuration gets.
    #[arg(long, value_name = "TOKEN|-", num_args = 0..=1, conflicts_with = "clear_cache")]
    pub decode: Option<Option<String>>,
    /// Right after setup: keep trying through AADSTS700016/700027 (replication) for up to DURATION (90s, 5m, 1h).
    #[arg(long, value_name = "DURATION", value_parser = crate::settings::parse_duration)]
    pub wait: Option<Duration>,
}

/// `--alg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Alg {
    Ps256,
    Rs256,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TokenFormat {
    Raw,
    Json,
    Header,
    Env,
}

/// `--shell`: the language of `--format env`'s lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Shell {
    /// POSIX sh, bash, zsh: `export NAME='…'` (use with `eval "$(cba token --format env)"`).
    #[default]
    Sh,
    /// PowerShell: `$env:NAME='…'` (use with `cba token --format env --shell powershell | Invoke-Expression`).
    Powershell,
}

fn parse_resource(s: &str) -> Result<Resource, String> {
    s.parse().map_err(|e: cba_token::Error| e.to_string())
}

impl Credentials {
    pub fn from_flags(args: &Args) -> Credentials {
        Credentials {
            tenant: args.app.tenant.clone(),
            client_id: args.app.client_id.clone(),
            cert: args.app.cert.clone(),
            key: args.key.key.clone(),
            pkcs11_module: args.key.pkcs11_module.clone(),
            cloud: args.cloud,
            authority_host: args.authority_host.clone(),
            send_x5c: args.send_x5c.then_some(true),
        }
    }
}

/// Where the app's certificate and private key are.
enum CertSource {
    /// A PFX or PEM file.
    File(PathBuf),
    /// A key and its certificate in a PKCS#11 token (`--key`).
    Token { uri: String, module: Option<PathBuf> },
}

/// Validated settings: everything needed before any file is opened or request sent.
struct Settings {
    tenant: String,
    client_id: String,
    source: CertSource,
    endpoints: Endpoints,
    cloud: Cloud,
    scope: String,
    assertion: AssertionOptions,
    cache: Option<TokenCache>,
}

impl Settings {
    fn resolve(creds: Credentials, resource: Resource, alg: Option<Alg>, no_cache: bool) -> anyhow::Result<Settings> {
        let missing =
            |what: &str, flag: &str, env: &str| fail(Exit::Usage, format!("no {what}: pass {flag} or set {env}"));
        let tenant = creds.tenant.ok_or_else(|| missing("tenant", "--tenant", "AZURE_TENANT_ID"))?;
        let client_id = creds.client_id.ok_or_else(|| missing("client id", "--client-id", "AZURE_CLIENT_ID"))?;
        let source = match (creds.key, creds.cert) {
            (Some(uri), _) => CertSource::Token { uri, module: creds.pkcs11_module },
            (None, Some(path)) => CertSource::File(path),
            (None, None) => {
                return Err(missing("certificate", "--cert (or --key)", "AZURE_CLIENT_CERTIFICATE_PATH"));
            }
        };
        let cloud = creds.cloud.unwrap_or_default();
        let mut endpoints = cloud.endpoints();
        if let Some(host) = &creds.authority_host {
            endpoints.authority = Authority::new(host).exit(Exit::Usage)?;
        }
        let scope = resource.scope(&endpoints);
        let assertion = AssertionOptions {
            alg: match alg {
                Some(Alg::Rs256) => AssertionAlg::Rs256,
                _ => AssertionAlg::Ps256,
            },
            send_x5c: creds.send_x5c.unwrap_or(false),
            ..AssertionOptions::default()
        };
        let cache = if no_cache { None } else { cache_file().map(TokenCache::with_file) };
        if let Some(cache) = &cache {
            // A cache folder other users can write to could hand us their tokens: refuse it up front.
            cache.check().map_err(|e| fail(Exit::BadInput, format!("{e}; or pass --no-cache")))?;
        }
        Ok(Settings { tenant, client_id, source, endpoints, cloud, scope, assertion, cache })
    }
}

pub(crate) fn cache_file() -> Option<PathBuf> {
    cba_token::default_cache_dir(|k| std::env::var(k).ok()).map(|d| d.join(cba_token::CACHE_FILE_NAME))
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    if args.shell.is_some() && args.format != Some(TokenFormat::Env) {
        return Err(fail(Exit::Usage, "--shell says how --format env prints its lines: add --format env"));
    }
    if args.clear_cache {
        return clear_cache();
    }
    if let Some(Some(source)) = &args.decode {
        let text = if source == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| fail(Exit::BadInput, format!("cannot read stdin: {e}")))?;
            s
        } else {
            source.clone()
        };
        let decoded = jwt::decode(&text).exit(Exit::BadInput)?;
        return print_decoded(&decoded, json_wanted(args.format, global));
    }

    let from_profile = crate::settings::complete_profile(args.app.profile.clone())?
        .map(|p| Credentials::from_profile(&p))
        .unwrap_or_default();
    let creds = Credentials::from_flags(&args).or(from_profile).or(Credentials::from_env(|k| std::env::var(k).ok()));
    let settings = Settings::resolve(creds, args.resource.clone().unwrap_or_default(), args.alg, args.no_cache)?;

    if args.print_assertion {
        let cert = load_certificate(&settings, &args.app.password)?;
        say_alg(&cert, &settings, global);
        let url = settings.endpoints.authority.token_url(&settings.tenant);
        let assertion =
            cert.sign_assertion(&url, &settings.assertion, OffsetDateTime::now_utc()).exit(Exit::BadInput)?;
        return write_stdout(&format!("{}\n", assertion.expose()));
    }

    let token = match cached_token(&settings) {
        Some(token) => token,
        None => fetch(&settings, &args, global)?,
    };

    if matches!(args.decode, Some(None)) {
        let decoded = token.decode().exit(Exit::Remote)?;
        return print_decoded(&decoded, json_wanted(args.format, global));
    }
    print_token(
        &token,
        args.format.unwrap_or(if global.output == OutputFormat::Json { TokenFormat::Json } else { TokenFormat::Raw }),
        args.shell.unwrap_or_default(),
    )
}

fn json_wanted(format: Option<TokenFormat>, global: &Global) -> bool {
    format == Some(TokenFormat::Json) || (format.is_none() && global.output == OutputFormat::Json)
}

fn clear_cache() -> anyhow::Result<()> {
    let Some(path) = cache_file() else {
        return Err(fail(Exit::BadInput, "cannot locate the cache folder: set XDG_CACHE_HOME or HOME"));
    };
    TokenCache::with_file(&path).clear().exit(Exit::BadInput)?;
    output::info(format!("cleared the token cache ({})", path.display()));
    Ok(())
}

/// The fast path: a cached token found by the certificate file's stamp, without opening the certificate
/// (no PFX decryption, no password, no HTTP client).
fn cached_token(settings: &Settings) -> Option<AccessToken> {
    let cache = settings.cache.as_ref()?;
    // A token key's certificate is read from the token, after the PIN: the client's cache serves it then.
    let CertSource::File(path) = &settings.source else { return None };
    let stamp = cert_stamp(path)?;
    let thumbprint = cache.cert_thumbprint(&stamp)?;
    let key = CacheKey::new(
        &settings.endpoints.authority,
        &settings.tenant,
        &settings.client_id,
        &settings.scope,
        &thumbprint,
    );
    let token = cache.get(&key, OffsetDateTime::now_utc());
    tracing::debug!(hit = token.is_some(), "token cache lookup by certificate file stamp");
    token
}

fn cert_stamp(path: &Path) -> Option<CertFileStamp> {
    let canonical = std::fs::canonicalize(path).ok()?;
    let metadata = std::fs::metadata(&canonical).ok()?;
    CertFileStamp::from_metadata(&canonical, &metadata)
}

fn load_certificate(settings: &Settings, password: &PasswordArgs) -> anyhow::Result<ClientCertificate> {
    let path = match &settings.source {
        CertSource::File(path) => path,
        CertSource::Token { uri, module } => {
            let key = crate::keyvault::open_key(uri, module.as_deref())?;
            return ClientCertificate::with_signer(key.certificate, key.signer, &settings.tenant, &settings.client_id)
                .map_err(|e| fail(Exit::BadInput, format!("--key {uri}: {e:#}")));
        }
    };
    let bytes = crate::fsutil::read(path)?;
    let identity = crate::certfile::open(path, &bytes, password)?;
    let cert = ClientCertificate::new(identity, &settings.tenant, &settings.client_id)
        .map_err(|e| fail(Exit::BadInput, format!("{}: {e:#}", path.display())))?;
    if let (Some(cache), Some(stamp)) = (&settings.cache, cert_stamp(path))
        && let Err(e) = cache.remember_cert(&stamp, &cert.certificate().thumbprint_sha1_hex())
    {
        tracing::warn!(error = %e, "could not record the certificate in the token cache");
    }
    Ok(cert)
}

/// The HTTP client for the login service. `loopback_http`: the authority is plain http on loopback (`cba sim`),
/// so no TLS happens and the platform trust store need not be loaded.
pub fn http_client(loopback_http: bool) -> anyhow::Result<cba_token::reqwest::Client> {
    crate::http::http_config(loopback_http)?.build().exit(Exit::BadInput)
}

/// A token source that signs in as the app with its certificate and renews the token before it expires
/// (`cba exo`: a long listing outlives one token). Same resolution as `cba token`: flags, profile, environment.
pub fn certificate_source(
    creds: Credentials,
    password: &PasswordArgs,
    no_cache: bool,
    resource: Resource,
) -> anyhow::Result<std::sync::Arc<dyn cba_http::TokenSource>> {
    let settings = Settings::resolve(creds, resource, None, no_cache)?;
    let cert = load_certificate(&settings, password)?;
    let client = token_client(&settings)?;
    let resource = Resource::Url(settings.scope.clone());
    Ok(std::sync::Arc::new(cba_token::CertificateTokenSource::new(client, cert, &resource)))
}

fn token_client(settings: &Settings) -> anyhow::Result<TokenClient> {
    let mut builder = TokenClient::builder()
        .cloud(settings.cloud)
        .authority(settings.endpoints.authority.clone())
        .http_client(http_client(settings.endpoints.authority.as_str().starts_with("http:"))?)
        .assertion_options(settings.assertion.clone());
    if let Some(cache) = &settings.cache {
        builder = builder.cache(cache.clone());
    }
    builder.build().exit(Exit::Internal)
}

/// `-v`: which algorithm signs the client assertion (a token without PSS signs RS256 whatever was asked).
fn say_alg(cert: &ClientCertificate, settings: &Settings, global: &Global) {
    if global.verbose > 0 {
        let alg = cert.assertion_alg(settings.assertion.alg);
        let by = match &settings.source {
            CertSource::File(path) => format!("the key in {}", path.display()),
            CertSource::Token { uri, .. } if crate::keyvault::is_vault(uri) => format!("the vault key of {uri}"),
            CertSource::Token { .. } => "the PKCS#11 token's key".to_string(),
        };
        output::info(format!("client assertion: {alg}, signed with {by}"));
    }
}

fn fetch(settings: &Settings, args: &Args, global: &Global) -> anyhow::Result<AccessToken> {
    let cert = load_certificate(settings, &args.app.password)?;
    say_alg(&cert, settings, global);
    let client = token_client(settings)?;
    let runtime = crate::runtime()?;
    let style = global.style;
    let result = runtime.block_on(async {
        match args.wait {
            None => client.get_token_for_scope(&cert, &settings.scope).await,
            Some(timeout) => {
                let resource = Resource::Url(settings.scope.clone());
                client
                    .wait_until_ready(&cert, &resource, &WaitOptions::new(timeout), |p| {
                        let code = p.error.aadsts().first().map(|c| format!("AADSTS{c}")).unwrap_or_default();
                        output::info(style.dim(&format!(
                            "{code}: Entra has not replicated the app or certificate yet; try {} in {} s ({} s elapsed)",
                            p.attempt + 1,
                            p.next_try_in.as_secs(),
                            p.elapsed.as_secs()
                        )));
                    })
                    .await
            }
        }
    });
    result.or_else(|e| {
        let exit = exit_for(&e);
        Err(e).exit(exit)
    })
}

/// AADSTS refusals → 4, network/5xx/deadline → 6, unusable certificate or settings → 3.
fn exit_for(e: &cba_token::Error) -> Exit {
    match e.kind() {
        ErrorKind::Auth => Exit::Auth,
        ErrorKind::Remote => Exit::Remote,
        ErrorKind::Input => Exit::BadInput,
        _ => Exit::Internal,
    }
}

#[derive(Serialize)]
struct TokenJson<'a> {
    access_token: &'a str,
    token_type: &'a str,
    expires_on: String,
    scope: &'a str,
    from_cache: bool,
    claims: Option<ClaimsJson>,
}

#[derive(Serialize)]
struct ClaimsJson {
    aud: Option<String>,
    tid: Option<String>,
    appid: Option<String>,
    roles: Vec<String>,
    wids: Vec<String>,
}

fn claims_of(d: &DecodedJwt) -> ClaimsJson {
    let s = |n: &str| d.claim_str(n).map(str::to_owned);
    let list = |n: &str| d.claim_strings(n).into_iter().map(str::to_owned).collect();
    ClaimsJson {
        aud: s("aud"),
        tid: s("tid"),
        appid: s("appid").or_else(|| s("azp")),
        roles: list("roles"),
        wids: list("wids"),
    }
}

fn print_token(token: &AccessToken, format: TokenFormat, shell: Shell) -> anyhow::Result<()> {
    let secret = token.secret();
    match format {
        TokenFormat::Raw => write_stdout(&format!("{secret}\n")),
        TokenFormat::Header => write_stdout(&format!("Authorization: Bearer {secret}\n")),
        TokenFormat::Env => write_stdout(&env_lines(
            shell,
            &[("CBA_ACCESS_TOKEN", secret), ("CBA_ACCESS_TOKEN_EXPIRES_ON", &jwt::rfc3339(token.expires_on))],
        )),
        TokenFormat::Json => output::print_json(&TokenJson {
            access_token: secret,
            token_type: &token.token_type,
            expires_on: jwt::rfc3339(token.expires_on),
            scope: &token.scope,
            from_cache: token.from_cache,
            claims: token.decode().ok().as_ref().map(claims_of),
        }),
    }
}

/// `--format env`: one assignment per variable, quoted so the shell takes each value verbatim.
fn env_lines(shell: Shell, variables: &[(&str, &str)]) -> String {
    variables
        .iter()
        .map(|(name, value)| match shell {
            Shell::Sh => format!("export {name}={}\n", shell_quote(value)),
            Shell::Powershell => format!("{}\n", crate::powershell::env_assignment(name, value)),
        })
        .collect()
}

pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[derive(Serialize)]
struct DecodedJson<'a> {
    header: &'a serde_json::Value,
    claims: &'a serde_json::Value,
    expires_on: Option<String>,
    expiry: Option<String>,
}

fn print_decoded(decoded: &DecodedJwt, json: bool) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    let expires = decoded.expires_at();
    if json {
        return output::print_json(&DecodedJson {
            header: &decoded.header,
            claims: &decoded.claims,
            expires_on: expires.map(jwt::rfc3339),
            expiry: expires.map(|e| jwt::describe_expiry(e, now)),
        });
    }
    let mut text = format!(
        "header:\n{}\nclaims:\n{}\n",
        serde_json::to_string_pretty(&decoded.header)?,
        serde_json::to_string_pretty(&decoded.claims)?
    );
    if let Some(e) = expires {
        text.push_str(&format!("expires: {} ({})\n", jwt::rfc3339(e), jwt::describe_expiry(e, now)));
    }
    let roles = decoded.claim_strings("roles");
    if !roles.is_empty() {
        text.push_str(&format!("roles: {}\n", roles.join(", ")));
    }
    if let Some(scp) = decoded.claim_str("scp") {
        text.push_str(&format!("scopes: {scp}\n"));
    }
    write_stdout(&text)
}

fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(crate::settings::parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(crate::settings::parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(crate::settings::parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(crate::settings::parse_duration("1h").unwrap(), Duration::from_secs(3600));
        for bad in ["", "m", "5x", "-1m", "1.5m"] {
            assert!(crate::settings::parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn flags_win_over_the_environment() {
        let env = |k: &str| match k {
            "AZURE_TENANT_ID" => Some("env-tenant".to_string()),
            "AZURE_CLIENT_ID" => Some("env-client".to_string()),
            "AZURE_CLIENT_CERTIFICATE_PATH" => Some("/env/cert.pfx".to_string()),
            "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN" => Some("TRUE".to_string()),
            "AZURE_AUTHORITY_HOST" => Some("   ".to_string()),
            _ => None,
        };
        let flags = Credentials { tenant: Some("flag-tenant".into()), ..Credentials::default() };
        let c = flags.or(Credentials::from_env(env));
        assert_eq!(c.tenant.as_deref(), Some("flag-tenant"));
        assert_eq!(c.client_id.as_deref(), Some("env-client"));
        assert_eq!(c.cert, Some(PathBuf::from("/env/cert.pfx")));
        assert_eq!(c.send_x5c, Some(true));
        assert_eq!(c.authority_host, None, "blank variables count as unset");
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("a.b-c_d"), "'a.b-c_d'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn env_lines_for_each_shell() {
        let vars = [("CBA_ACCESS_TOKEN", "eyJ0.a'b"), ("CBA_ACCESS_TOKEN_EXPIRES_ON", "2026-11-26T10:00:00Z")];
        assert_eq!(
            env_lines(Shell::Sh, &vars),
            "export CBA_ACCESS_TOKEN='eyJ0.a'\\''b'\nexport CBA_ACCESS_TOKEN_EXPIRES_ON='2026-11-26T10:00:00Z'\n"
        );
        assert_eq!(
            env_lines(Shell::Powershell, &vars),
            "$env:CBA_ACCESS_TOKEN='eyJ0.a''b'\n$env:CBA_ACCESS_TOKEN_EXPIRES_ON='2026-11-26T10:00:00Z'\n"
        );
    }
}
