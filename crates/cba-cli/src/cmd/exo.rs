//! `cba exo invoke` and `cba exo check`: Exchange Online cmdlets over the admin REST endpoint, no PowerShell.
//!
//! Glue: flags → `cba_exo::Parameters` and an `ExoClient`; the pages go to `output::exo` (json / jsonl / table
//! / csv).
#![allow(
    clippy::result_large_err,
    reason = "cba_exo::Error keeps the service's fields inline so callers can match on them; errors are the cold path"
)]

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use cba_exo::{ExoClient, ParamValue, Parameters, StaticToken, TokenSource};
use serde::Serialize;

use crate::Global;
use crate::cmd::token::{Credentials, certificate_source};
use crate::exit::{Exit, ExitExt as _, fail};
use crate::output::exo::{PagedItems, WriteError};
use crate::output::{self, OutputFormat};
use crate::powershell::{self, ConnectExchangeOnline, PfxPassword};
use crate::settings::AppArgs;
use cba_token::Resource;

const INVOKE_EXAMPLES: &str = "\
Examples:
  export CBA_PROFILE=contoso-exo.profile.json   # written by `cba setup`; or AZURE_TENANT_ID,
                                                # AZURE_CLIENT_ID, AZURE_CLIENT_CERTIFICATE_PATH
                                                # and CBA_PFX_PASSWORD
  cba exo invoke Get-Mailbox -p ResultSize=Unlimited --select DisplayName,PrimarySmtpAddress \\
      --output csv
  cba exo invoke Get-Mailbox -p Identity=john@contoso.com --output json
  cba exo invoke Get-Mailbox --result-size 10                     # a table of the first 10
  cba exo invoke Set-Mailbox -p Identity=john@contoso.com -p HiddenFromAddressListsEnabled=true
  cba exo invoke Set-Mailbox --params-json \\
      '{\"Identity\":\"john\",\"EmailAddresses\":{\"Add\":[\"smtp:j@contoso.com\"]}}'
  cba exo invoke Get-Mailbox -p ResultSize=Unlimited --output jsonl | jq -r .PrimarySmtpAddress

-p values: 10 is a number, true/false booleans, null null, [a,b] an array (\\, for a comma inside),
{...} a JSON hashtable, 'text' or \"text\" a string as written; anything else (Unlimited, addresses)
is a string. A bare -p NAME is a switch (NAME=true). Warnings from the cmdlet go to stderr.
docs/exo.md has the details.";

const CHECK_EXAMPLES: &str = "\
Examples:
  cba exo check --profile contoso-exo.profile.json
  cba exo check --organization contoso.onmicrosoft.com --client-id 631a96bc-... \\
      --cert contoso-exo.pfx --output json
  CBA_EXO_TOKEN=$(cba token --resource exchange) \\
      cba exo check --tenant contoso.onmicrosoft.com --access-token-env CBA_EXO_TOKEN

Runs Get-OrganizationConfig (cheap, read-only) and prints the organization and the Connect-ExchangeOnline line
that makes the same connection in PowerShell. Exit 5 means the app lacks an Exchange role or
Exchange.ManageAsApp (run `cba status`), 4 that the token was refused. A refused cached token is replaced by
a new one once, so a role restored since the last run is seen without --no-cache.";

/// `cba exo` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run a cmdlet and print what it returns (table, json, jsonl or csv with --output).
    #[command(after_help = INVOKE_EXAMPLES)]
    Invoke(InvokeArgs),
    /// Prove the whole chain works (token, Exchange, permissions) with Get-OrganizationConfig.
    #[command(after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),
    /// Which Exchange role groups and roles the app holds, read from Exchange (role groups given by `cba setup
    /// --exchange-role-group/--exchange-roles`).
    #[command(after_help = ROLES_EXAMPLES)]
    Roles(RolesArgs),
}

const ROLES_EXAMPLES: &str = "\
Examples:
  CBA_EXO_ADMIN_TOKEN=... cba exo roles --profile contoso-exo.profile.json   # as the admin
  cba exo roles --profile contoso-exo.profile.json --exchange-admin device-code
  cba exo roles --profile contoso-exo.profile.json --output json     # with the app's own token

Reading role groups needs the Role Management role: the administrator's Exchange sign-in has it
(--exchange-admin, or CBA_EXO_ADMIN_TOKEN); the app's own token only when one of its groups holds
it (else exit 5). The Entra role's implicit group (Exchange Administrator acts as Organization
Management) is not a membership and is not listed.";

/// `cba exo roles` flags.
#[derive(Debug, clap::Args)]
pub struct RolesArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub exchange_admin: crate::settings::ExchangeAdminArgs,
}

/// Where Exchange is and how to sign in: the app's certificate (as `cba token`), or a token you already have.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionArgs {
    /// Tenant (default: --organization), app, certificate and profile.
    #[command(flatten)]
    pub app: AppArgs,
    /// The app's key in a PKCS#11 token or a Key Vault instead of --cert: pkcs11:token=…;object=… or
    /// https://VAULT.vault.azure.net/certificates/NAME (docs/keys.md; the PKCS#11 module from the URI's
    /// module-path, --pkcs11-module or CBA_PKCS11_MODULE).
    #[arg(long, value_name = "URI", conflicts_with = "cert")]
    pub key: Option<String>,
    /// The PKCS#11 module (shared library) for --key or the profile's key [env: CBA_PKCS11_MODULE; or the
    /// URI's module-path].
    #[arg(long, value_name = "PATH")]
    pub pkcs11_module: Option<std::path::PathBuf>,
    /// The Microsoft cloud: global, usgov-high, usgov-dod or china.
    #[arg(long, value_name = "CLOUD", value_parser = crate::settings::parse_cloud)]
    pub cloud: Option<cba_token::Cloud>,
    /// Another login root, e.g. `cba sim serve`'s login_url [env: AZURE_AUTHORITY_HOST].
    #[arg(long, value_name = "URL")]
    pub authority_host: Option<String>,
    /// The organization's primary domain, e.g. contoso.onmicrosoft.com (Connect-ExchangeOnline -Organization).
    #[arg(long, value_name = "DOMAIN")]
    pub organization: Option<String>,
    /// Exchange root where requests go (default: the profile's, else the cloud's, e.g. https://outlook.office365.com)
    /// [env: CBA_EXCHANGE_URL].
    #[arg(long, value_name = "URL")]
    pub exchange_url: Option<String>,
    /// Neither read nor write the token cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Use the token in this environment variable instead of the certificate, as it is (never decoded; it
    /// cannot be renewed).
    #[arg(long, value_name = "VAR")]
    pub access_token_env: Option<String>,
}

/// A resolved connection.
struct Connection {
    tenant: String,
    organization: Option<String>,
    exchange_url: String,
    client_id: Option<String>,
    cert: Option<PathBuf>,
    cloud: cba_token::Cloud,
    tokens: Arc<dyn TokenSource>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Flags, then the profile, then the environment, then the cloud's defaults (as `cba token`).
fn connect(conn: &ConnectionArgs) -> anyhow::Result<Connection> {
    let profile = crate::settings::complete_profile(conn.app.profile.clone())?;
    let flags = Credentials {
        cloud: conn.cloud,
        authority_host: conn.authority_host.clone(),
        key: conn.key.clone(),
        pkcs11_module: conn.pkcs11_module.clone(),
        ..Credentials::from_app_args(&conn.app)
    };
    let creds = flags
        .or(profile.as_ref().map(Credentials::from_profile).unwrap_or_default())
        .or(Credentials::from_env(|k| std::env::var(k).ok()));
    let organization = conn
        .organization
        .clone()
        .or_else(|| profile.as_ref().and_then(|p| p.tenant_domain.clone()).filter(|d| !d.is_empty()));
    let tenant = creds.tenant.clone().or_else(|| organization.clone()).ok_or_else(|| {
        fail(
            Exit::Usage,
            "no tenant: pass --tenant (id or domain), --organization or --profile, or set AZURE_TENANT_ID",
        )
    })?;
    let exchange_url = conn
        .exchange_url
        .clone()
        .or_else(|| profile.as_ref().map(|p| p.endpoints.exchange.clone()).filter(|u| !u.is_empty()))
        .or_else(|| env("CBA_EXCHANGE_URL"))
        .unwrap_or_else(|| creds.cloud.unwrap_or_default().endpoints().exchange_root);
    let (client_id, cert, cloud) = (creds.client_id.clone(), creds.cert.clone(), creds.cloud.unwrap_or_default());
    let tokens = match &conn.access_token_env {
        Some(var) => static_token(var)?,
        // The token is for the tenant resolved here (it may have come from --organization).
        None => certificate_source(
            Credentials { tenant: Some(tenant.clone()), ..creds },
            &conn.app.password,
            conn.no_cache,
            Resource::Exchange,
        )?,
    };
    Ok(Connection { tenant, organization, exchange_url, client_id, cert, cloud, tokens })
}

/// `cba exo invoke` flags.
#[derive(Debug, clap::Args)]
pub struct InvokeArgs {
    /// The cmdlet, e.g. Get-Mailbox.
    #[arg(value_name = "CMDLET")]
    pub cmdlet: String,
    /// A parameter, NAME=VALUE (repeatable); a bare NAME is a switch. See the value rules below.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Parameters as a JSON object, or @FILE (@- for stdin); -p values override it.
    #[arg(long, value_name = "JSON|@FILE")]
    pub params_json: Option<String>,
    /// Only these properties, in this order (comma-separated; missing ones print as null/empty).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub select: Vec<String>,
    /// At most N objects (sent as -ResultSize N), or `unlimited` for all of them.
    #[arg(long, value_name = "N|unlimited", value_parser = parse_result_size)]
    pub result_size: Option<ResultSize>,
    /// Objects per page (the service allows 1 to 1000).
    #[arg(long, value_name = "N", default_value_t = cba_exo::DEFAULT_PAGE_SIZE,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub page_size: u32,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Run in the customer tenants of this fleet file (`cba fleet add`), rows tagged with a `tenant` field;
    /// the app and certificate are the home profile's (the fleet file names it, or --profile).
    #[arg(long, value_name = "FILE",
          conflicts_with_all = ["tenant", "client_id", "cert", "organization", "access_token_env"])]
    pub fleet: Option<PathBuf>,
    /// With --fleet: only these tenants (ids or domains, comma-separated).
    #[arg(long, value_name = "A,B", value_delimiter = ',', requires = "fleet", conflicts_with = "all")]
    pub tenants: Vec<String>,
    /// With --fleet: every tenant of the fleet.
    #[arg(long, requires = "fleet")]
    pub all: bool,
    /// With --fleet: tenants run at once.
    #[arg(long, value_name = "N", default_value_t = cba_lifecycle::fleet::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
}

/// `cba exo check` flags.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// `--result-size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultSize {
    Limit(u64),
    Unlimited,
}

fn parse_result_size(s: &str) -> Result<ResultSize, String> {
    if s.eq_ignore_ascii_case("unlimited") {
        return Ok(ResultSize::Unlimited);
    }
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(ResultSize::Limit(n)),
        _ => Err(format!("{s:?}: expected a positive number or `unlimited`")),
    }
}

pub fn run(cmd: Command, global: &Global) -> anyhow::Result<()> {
    match cmd {
        Command::Invoke(args) => invoke(args, global),
        Command::Check(args) => check(args, global),
        Command::Roles(args) => roles(args, global),
    }
}

fn roles(args: RolesArgs, global: &Global) -> anyhow::Result<()> {
    use cba_lifecycle::exchange_roles::{self, Exo};
    let conn = connect(&args.connection)?;
    let app_id = conn.client_id.clone().ok_or_else(|| {
        fail(Exit::Usage, "which app? pass --profile FILE (or CBA_PROFILE), or --client-id (AZURE_CLIENT_ID)")
    })?;
    let env = |k: &str| std::env::var(k).ok();
    let runtime = crate::runtime()?;
    let reader = if args.exchange_admin.given(env) {
        let profile = crate::settings::complete_profile(args.connection.app.profile.clone())?;
        let endpoints = crate::settings::EndpointArgs {
            cloud: args.connection.cloud,
            authority_host: args.connection.authority_host.clone(),
            graph_url: None,
            exchange_url: Some(conn.exchange_url.clone()),
        };
        let urls = crate::settings::Urls::resolve(&endpoints, profile.as_ref(), env)?;
        let services = crate::connect::services(&urls, crate::connect::Ui { style: global.style, all_waits: false })?;
        let credential = args.exchange_admin.resolve(None, env)?;
        runtime
            .block_on(exchange_roles::admin_client(
                &services,
                &credential,
                &conn.tenant,
                std::time::Duration::from_secs(120),
            ))
            .map_err(crate::connect::lifecycle_failure)?
    } else {
        Exo::new(
            client(&conn, cba_exo::DEFAULT_PAGE_SIZE, global, Arc::new(AtomicUsize::new(0)))?,
            format!("app {app_id}"),
        )
    };
    let report =
        runtime.block_on(exchange_roles::app_roles(&reader, &app_id)).map_err(crate::connect::lifecycle_failure)?;
    output::print_document(global.output, &report, roles_text)
}

fn roles_text(r: &cba_lifecycle::exchange_roles::AppRoles) -> String {
    let mut out = String::new();
    match &r.service_principal {
        None => out.push_str(&format!(
            "app {} has no Exchange service principal: it holds no role group (only what its Entra role gives)\n",
            r.app_id
        )),
        Some(sp) if r.role_groups.is_empty() => {
            out.push_str(&format!("app {} (Exchange service principal {sp}) is in no role group\n", r.app_id))
        }
        Some(sp) => {
            out.push_str(&format!("app {} (Exchange service principal {sp})\n", r.app_id));
            for g in &r.role_groups {
                out.push_str(&format!("  {}: {}\n", g.role_group, g.roles.join(", ")));
                if let Some(scope) = &g.write_scope {
                    let filter = g.write_scope_filter.as_deref().unwrap_or("?");
                    out.push_str(&format!("    write scope {scope}: {filter}\n"));
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// Settings

/// A token from an environment variable (`--access-token-env`); a run that outlives it fails with "token refused".
/// It is sent as it is: never decoded or checked for a JWT shape (Exchange decides; an opaque token is fine).
/// Only surrounding whitespace and an `Authorization:` / `Bearer ` prefix pasted along with it are dropped.
fn static_token(var: &str) -> anyhow::Result<Arc<dyn TokenSource>> {
    let raw = std::env::var(var).unwrap_or_default();
    let token = raw.trim();
    let token = token.strip_prefix("Authorization:").map(str::trim).unwrap_or(token);
    let token = token.strip_prefix("Bearer ").map(str::trim).unwrap_or(token);
    if token.is_empty() {
        return Err(fail(
            Exit::Usage,
            format!("no Exchange access token: set {var}, for example `export {var}=$(cba token --resource exchange)`"),
        ));
    }
    Ok(Arc::new(StaticToken::new(token)))
}

fn client(
    conn: &Connection,
    page_size: u32,
    global: &Global,
    cmdlet_errors: Arc<AtomicUsize>,
) -> anyhow::Result<ExoClient> {
    let style = global.style;
    ExoClient::builder()
        .base_url(conn.exchange_url.trim_end_matches('/'))
        .tenant_id(conn.tenant.clone())
        .token_source(conn.tokens.clone())
        .page_size(page_size)
        // Prefetch: the next page is asked for as soon as this one's next link is seen (before it is parsed), so
        // the service prepares it while this one is parsed and written. Two pages in memory at most.
        .prefetch(true)
        .on_event(move |event| match event {
            // The service's texts, on a terminal: no control characters (escape sequences) get through.
            cba_exo::Event::Warning { cmdlet, message } => {
                output::warn(style, format!("{cmdlet}: {}", output::exo::terminal_text(message)))
            }
            cba_exo::Event::CmdletError { cmdlet, message } => {
                cmdlet_errors.fetch_add(1, Ordering::Relaxed);
                output::info(format!("{} {cmdlet}: {}", style.error("error:"), output::exo::terminal_text(message)));
            }
            cba_exo::Event::Retry { cmdlet, attempt, wait, reason } => output::info(style.dim(&format!(
                "{cmdlet}: {reason}; retrying in {:.1} s (attempt {})",
                wait.as_secs_f64(),
                attempt + 1
            ))),
            cba_exo::Event::TokenRenewed { cmdlet } => {
                tracing::debug!(cmdlet, "the access token was refused; asked for a new one")
            }
            cba_exo::Event::Page { cmdlet, number, items, elapsed } => {
                tracing::debug!(cmdlet, number, items, elapsed_ms = elapsed.as_millis() as u64, "page")
            }
            other => tracing::debug!(?other, "exchange event"),
        })
        .build()
        .map_err(|e| {
            let exit = exit_for(&e);
            fail(exit, e)
        })
}

/// Exit codes (docs/exit-codes.md): permission 5, authentication 4, bad flags 2, bad input 3, the service 6.
fn exit_for(e: &cba_exo::Error) -> Exit {
    use cba_exo::Error as E;
    match e {
        E::NotAllowed { .. } | E::UnsupportedRole { .. } => Exit::Permission,
        E::Unauthorized { .. } | E::Token { .. } => Exit::Auth,
        // Refused before anything was sent, as a refused certificate is for Graph and the token endpoint.
        E::Tls { .. } => Exit::Remote,
        E::Config { .. } | E::Endpoint(_) => Exit::Usage,
        E::Parameters { .. } => Exit::BadInput,
        // Including OutcomeUnknown: the service failed; what to check is in the message.
        _ => Exit::Remote,
    }
}

/// What to do next, in `cba` terms (the library's messages name no command); `None` when the message says it.
/// `token_var`: `--access-token-env`'s variable, when the token is a fixed one.
fn next_step(e: &cba_exo::Error, token_var: Option<&str>) -> Option<String> {
    use cba_exo::Error as E;
    match e {
        E::NotAllowed { .. } => Some(
            "run `cba status` and look at the \"Exchange.ManageAsApp granted\" and \"role assigned\" checks"
                .to_string(),
        ),
        E::UnsupportedRole { .. } => Some("run `cba status` and look at the \"role assigned\" check".to_string()),
        E::Unauthorized { renewed: false, .. } => token_var.map(|var| {
            format!(
                "the token in {var} is used as it is and cannot be renewed: get a new one \
                 (`export {var}=$(cba token --resource exchange)`), or let cba sign in with the certificate \
                 (--profile, or --client-id and --cert, without --access-token-env)"
            )
        }),
        E::Tls { failure, .. } => Some(crate::http::tls_failure_hint(failure).to_string()),
        _ => None,
    }
}

fn exo_error(e: cba_exo::Error, token_var: Option<&str>) -> anyhow::Error {
    let exit = exit_for(&e);
    match next_step(&e, token_var) {
        Some(step) => fail(exit, format!("{:#}; {step}", anyhow::Error::new(e))),
        None => Err::<(), _>(e).exit(exit).unwrap_err(),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Parameters (the -p grammar is cba_exo::parse_param's)

fn read_params_json(source: &str) -> anyhow::Result<Parameters> {
    let (text, origin) = match source.strip_prefix('@') {
        Some("-") => {
            let mut s = String::new();
            io::Read::read_to_string(&mut io::stdin(), &mut s)
                .map_err(|e| fail(Exit::BadInput, format!("cannot read --params-json from stdin: {e}")))?;
            (s, "stdin".to_string())
        }
        Some(path) => {
            let bytes = crate::fsutil::read(std::path::Path::new(path))?;
            (String::from_utf8_lossy(&bytes).into_owned(), path.to_string())
        }
        None => (source.to_string(), "--params-json".to_string()),
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| fail(Exit::BadInput, format!("{origin} is not JSON: {e}")))?;
    Parameters::from_json(json).map_err(|e| fail(Exit::BadInput, format!("{origin}: {e}")))
}

/// The parameters to send and how many objects to print at most.
fn build_params(args: &InvokeArgs) -> anyhow::Result<(Parameters, Option<u64>)> {
    let mut params = match &args.params_json {
        Some(source) => read_params_json(source)?,
        None => Parameters::new(),
    };
    for p in &args.params {
        let (name, value) = cba_exo::parse_param(p).map_err(|e| fail(Exit::Usage, format!("-p {e}")))?;
        params.insert(name, value);
    }
    match args.result_size {
        Some(ResultSize::Limit(n)) => params.insert("ResultSize", n),
        Some(ResultSize::Unlimited) => params.insert("ResultSize", "Unlimited"),
        None => {}
    }
    let limit = match params.get("ResultSize") {
        Some(ParamValue::Number(n)) => n.as_u64(),
        Some(ParamValue::String(s)) => s.parse().ok(),
        _ => None,
    };
    Ok((params, limit))
}

// ---------------------------------------------------------------------------------------------------------
// invoke

fn invoke(args: InvokeArgs, global: &Global) -> anyhow::Result<()> {
    cba_exo::check_cmdlet_name(&args.cmdlet).map_err(|e| fail(Exit::Usage, e))?;
    let (params, limit) = build_params(&args)?;
    let select: Vec<String> = args.select.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    let page_size = match limit {
        Some(n) if n < u64::from(args.page_size) => n as u32,
        _ => args.page_size,
    };
    if let Some(fleet) = args.fleet {
        let run = crate::cmd::fleet::FleetInvoke {
            fleet,
            tenants: args.tenants,
            all: args.all,
            concurrency: args.concurrency,
            cmdlet: args.cmdlet,
            params,
            select,
            page_size,
            password: args.connection.app.password.clone(),
            profile: args.connection.app.profile.clone(),
        };
        return crate::cmd::fleet::invoke(run, global);
    }
    let cmdlet_errors = Arc::new(AtomicUsize::new(0));
    let exo = client(&connect(&args.connection)?, page_size, global, cmdlet_errors.clone())?;
    // One worker: it reads the next page off the socket while this thread parses and writes the current one.
    // A second worker only added cross-thread wake-ups and spread the HTTP buffers over two malloc arenas (more
    // fresh pages to fault in); with no worker (a current-thread runtime) the read waits for the writing.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let format = global.output;
    let cmdlet = args.cmdlet.clone();
    let identity = params.get("Identity").cloned();
    let stdout = io::stdout();
    let result = runtime.block_on(async move {
        // Whole pages, each object written straight from the page's text (no copy or allocation per object).
        let pages = std::pin::pin!(exo.invoke_pages(&cmdlet, &params));
        let mut items = PagedItems::new(pages, limit);
        let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
        let printed = output::exo::write(format, &mut items, &select, &mut out, global.style).await;
        out.flush()?;
        printed
    });
    let token_var = args.connection.access_token_env.as_deref();
    let printed = result.map_err(|e| write_error(e, format, identity.as_ref(), token_var))?;
    tracing::debug!(printed, "objects written");
    let errors = cmdlet_errors.load(Ordering::Relaxed);
    if errors > 0 {
        return Err(fail(Exit::Remote, format!("{} reported {errors} error(s) for some objects (above)", args.cmdlet)));
    }
    Ok(())
}

/// An Exchange error keeps its exit code, and says when stdout holds only part of the result; an I/O error (a
/// closed pipe) stays an `io::Error` so `main` can treat BrokenPipe as a normal end.
fn write_error(
    e: WriteError,
    format: OutputFormat,
    identity: Option<&ParamValue>,
    token_var: Option<&str>,
) -> anyhow::Error {
    let (error, written) = match e {
        WriteError::Exo { error, written } => (error, written),
        WriteError::Io(e) => return anyhow::Error::new(e),
    };
    let mut notes: Vec<String> = next_step(&error, token_var).into_iter().collect();
    if let cba_exo::Error::OutcomeUnknown { check_with: Some(get), .. } = &error {
        let look = match identity.and_then(|id| param_arg("Identity", id)) {
            Some(arg) => format!("cba exo invoke {get} -p {arg}"),
            None => format!("cba exo invoke {get} -p Identity=…"),
        };
        notes.push(format!("to see whether it ran: `{look}`"));
    }
    if written > 0 {
        let array = if format == OutputFormat::Json { ", in a closed JSON array" } else { "" };
        notes.push(format!(
            "the output is partial: only the {written} object(s) received before the failure were written{array}"
        ));
    }
    if notes.is_empty() {
        return exo_error(error, token_var);
    }
    let exit = exit_for(&error);
    fail(exit, format!("{:#}; {}", anyhow::Error::new(error), notes.join("; ")))
}

/// `NAME=VALUE` as a shell word that `-p` reads back as the same string (`None` for other values).
fn param_arg(name: &str, value: &ParamValue) -> Option<String> {
    let ParamValue::String(text) = value else { return None };
    let as_written = ParamValue::parse(text).ok().as_ref() == Some(value);
    let arg = if as_written { format!("{name}={text}") } else { format!("{name}=\"{text}\"") };
    let shell_safe = arg.chars().all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c));
    Some(if shell_safe { arg } else { format!("'{}'", arg.replace('\'', r"'\''")) })
}

// ---------------------------------------------------------------------------------------------------------
// check

#[derive(Serialize)]
struct CheckJson {
    ok: bool,
    cmdlet: &'static str,
    organization: Option<String>,
    display_name: Option<String>,
    tenant: String,
    exchange_url: String,
    elapsed_ms: u64,
    connect_exchange_online: String,
}

fn check(args: CheckArgs, global: &Global) -> anyhow::Result<()> {
    const CMDLET: &str = "Get-OrganizationConfig";
    let conn = connect(&args.connection)?;
    let tenant = conn.tenant.clone();
    let exo = client(&conn, 1, global, Arc::new(AtomicUsize::new(0)))?;
    let runtime = crate::runtime()?;
    let started = Instant::now();
    let config = runtime
        .block_on(exo.collect_all(CMDLET, &Parameters::new()))
        .map_err(|e| exo_error(e, args.connection.access_token_env.as_deref()))?;
    let elapsed = started.elapsed();
    let org = config.first().ok_or_else(|| fail(Exit::Remote, format!("{CMDLET} returned nothing")))?;
    let text = |k: &str| org.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let name = text("Name");
    let display_name = text("DisplayName");
    let organization = args.connection.organization.clone().or_else(|| {
        [name.as_deref(), conn.organization.as_deref(), Some(&tenant)].into_iter().find_map(powershell::organization)
    });
    if organization.is_none() {
        output::info(format!(
            "note: pass --organization with the tenant's *.onmicrosoft.com domain to fill in {} below",
            powershell::placeholder_organization(conn.cloud)
        ));
    }
    let line = connect_line(&conn, organization.clone());

    if global.output == OutputFormat::Json {
        return output::print_json(&CheckJson {
            ok: true,
            cmdlet: CMDLET,
            organization,
            display_name,
            tenant,
            exchange_url: conn.exchange_url.clone(),
            elapsed_ms: elapsed.as_millis() as u64,
            connect_exchange_online: line,
        });
    }
    output::info(format!("{} Exchange Online ran {CMDLET} in {:.2} s", global.style.ok("ok"), elapsed.as_secs_f64()));
    let org_text = match (&display_name, &name) {
        (Some(d), Some(n)) if d != n => format!("{d} ({n})"),
        (Some(d), _) => d.clone(),
        (None, Some(n)) => n.clone(),
        (None, None) => "(unnamed)".to_string(),
    };
    output::print_fields(&[
        ("organization", org_text),
        ("tenant", tenant),
        ("endpoint", exo.invoke_url().to_string()),
        ("powershell", line),
    ])
}

/// The Connect-ExchangeOnline line for the same app, certificate, organization and cloud.
fn connect_line(conn: &Connection, organization: Option<String>) -> String {
    ConnectExchangeOnline {
        app_id: conn.client_id.clone(),
        certificate: conn.cert.clone(),
        organization,
        cloud: conn.cloud,
    }
    .with_file(PfxPassword::Prompt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_size_limits_the_output_and_the_pages() {
        let args = |extra: &[&str]| {
            let mut argv = vec!["x", "Get-Mailbox"];
            argv.extend_from_slice(extra);
            #[derive(clap::Parser)]
            struct Cli {
                #[command(flatten)]
                invoke: InvokeArgs,
            }
            <Cli as clap::Parser>::parse_from(argv).invoke
        };
        let (params, limit) = build_params(&args(&["--result-size", "10"])).unwrap();
        assert_eq!((params.get("ResultSize"), limit), (Some(&ParamValue::from(10u64)), Some(10)));
        let (params, limit) = build_params(&args(&["-p", "ResultSize=Unlimited"])).unwrap();
        assert_eq!((params.get("ResultSize"), limit), (Some(&ParamValue::from("Unlimited")), None));
        let (_, limit) = build_params(&args(&["-p", "ResultSize=5", "--result-size", "7"])).unwrap();
        assert_eq!(limit, Some(7), "--result-size wins");
        let (params, _) =
            build_params(&args(&["--params-json", r#"{"Identity":"a","ResultSize":3}"#, "-p", "Identity=b"])).unwrap();
        assert_eq!(params.get("Identity"), Some(&ParamValue::from("b")), "-p overrides --params-json");
    }

    #[test]
    fn look_up_commands_read_back_the_same_identity() {
        let arg = |s: &str| param_arg("Identity", &ParamValue::from(s)).unwrap();
        assert_eq!(arg("john@contoso.com"), "Identity=john@contoso.com");
        assert_eq!(arg("123"), r#"'Identity="123"'"#, "else -p reads a number");
        assert_eq!(arg("John Smith"), "'Identity=John Smith'");
        assert_eq!(arg("O'Brien"), r#"'Identity=O'\''Brien'"#);
        assert_eq!(param_arg("Identity", &ParamValue::from(7)), None);
    }

    #[test]
    fn connect_exchange_online_line() {
        let conn = |cloud, cert: Option<&str>| Connection {
            tenant: "contoso.onmicrosoft.com".into(),
            organization: None,
            exchange_url: "http://127.0.0.1:1".into(),
            client_id: cert.map(|_| "631a".to_string()),
            cert: cert.map(PathBuf::from),
            cloud,
            tokens: Arc::new(StaticToken::new("t".to_string())),
        };
        assert_eq!(
            connect_line(
                &conn(cba_token::Cloud::Global, Some("/my certs/a.pfx")),
                Some("contoso.onmicrosoft.com".into())
            ),
            "Connect-ExchangeOnline -AppId 631a -CertificateFilePath '/my certs/a.pfx' -CertificatePassword (Read-Host -AsSecureString -Prompt 'PFX password') -Organization contoso.onmicrosoft.com"
        );
        // The cloud decides the environment, not the Exchange host (DoD and GCC High share outlook.office365.us).
        let dod = connect_line(&conn(cba_token::Cloud::UsGovDod, None), None);
        assert!(dod.contains("-AppId <app-id> -CertificateFilePath <certificate.pfx> "), "{dod}");
        assert!(dod.ends_with("-Organization <tenant>.onmicrosoft.com -ExchangeEnvironmentName O365USGovDoD"), "{dod}");
    }
}
