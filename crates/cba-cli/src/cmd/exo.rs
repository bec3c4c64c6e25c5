//! `cba exo invoke` and `cba exo check`: Exchange Online cmdlets over the admin REST endpoint, no PowerShell.
//!
//! Glue: flags → `cba_exo::Parameters` and an `ExoClient`; the output stream → json / jsonl / table / csv.
#![allow(
    clippy::result_large_err,
    reason = "cba_exo::Error keeps the service's fields inline so callers can match on them; errors are the cold path"
)]

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use cba_exo::{ExoClient, ParamValue, Parameters, StaticToken, TokenSource};
use futures::{FutureExt as _, Stream, StreamExt as _};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::Global;
use crate::cmd::token::{Credentials, certificate_source};
use crate::connect::AppArgs;
use crate::exit::{Exit, ExitExt as _, fail};
use crate::output::{self, OutputFormat};
use cba_token::Resource;

const INVOKE_EXAMPLES: &str = "\
Examples:
  export CBA_PROFILE=contoso-exo.profile.json      # written by `cba setup`; or AZURE_TENANT_ID, AZURE_CLIENT_ID,
                                                   # AZURE_CLIENT_CERTIFICATE_PATH and CBA_PFX_PASSWORD
  cba exo invoke Get-Mailbox -p ResultSize=Unlimited --select DisplayName,PrimarySmtpAddress --output csv
  cba exo invoke Get-Mailbox -p Identity=john@contoso.com --output json
  cba exo invoke Get-Mailbox --result-size 10                     # a table of the first 10
  cba exo invoke Set-Mailbox -p Identity=john@contoso.com -p HiddenFromAddressListsEnabled=true
  cba exo invoke Set-Mailbox --params-json '{\"Identity\":\"john\",\"EmailAddresses\":{\"Add\":[\"smtp:j@contoso.com\"]}}'
  cba exo invoke Get-Mailbox -p ResultSize=Unlimited --output jsonl | jq -r .PrimarySmtpAddress

-p values: 10 is a number, true/false booleans, null null, [a,b] an array (\\, for a comma inside), {...} a JSON
hashtable, 'text' or \"text\" a string as written; anything else (Unlimited, addresses) is a string. A bare
-p NAME is a switch (NAME=true). Warnings from the cmdlet go to stderr. docs/exo.md has the details.";

const CHECK_EXAMPLES: &str = "\
Examples:
  cba exo check --profile contoso-exo.profile.json
  cba exo check --organization contoso.onmicrosoft.com --client-id 631a96bc-... --cert contoso-exo.pfx --output json
  CBA_EXO_TOKEN=$(cba token --resource exchange) cba exo check --tenant contoso.onmicrosoft.com --access-token-env CBA_EXO_TOKEN

Runs Get-OrganizationConfig (cheap, read-only) and prints the organization and the Connect-ExchangeOnline line
that makes the same connection in PowerShell. Exit 5 means the app lacks an Exchange role or
Exchange.ManageAsApp (run `cba status`), 4 that the token was refused.";

/// `cba exo` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run a cmdlet and print what it returns (table, json, jsonl or csv with --output).
    #[command(after_help = INVOKE_EXAMPLES)]
    Invoke(InvokeArgs),
    /// Prove the whole chain works (token, Exchange, permissions) with Get-OrganizationConfig.
    #[command(after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),
}

/// Where Exchange is and how to sign in: the app's certificate (as `cba token`), or a token you already have.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionArgs {
    /// Tenant (default: --organization), app, certificate and profile.
    #[command(flatten)]
    pub app: AppArgs,
    /// The Microsoft cloud: global, usgov-high, usgov-dod or china.
    #[arg(long, value_name = "CLOUD", value_parser = crate::connect::parse_cloud)]
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
    /// Use the token in this environment variable instead of the certificate (it cannot be renewed).
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
    tokens: Arc<dyn TokenSource>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Flags, then the profile, then the environment, then the cloud's defaults (as `cba token`).
fn connect(conn: &ConnectionArgs) -> anyhow::Result<Connection> {
    let profile = match crate::connect::profile_path(conn.app.profile.clone()) {
        Some(path) => {
            let profile = crate::profile::Profile::load(&path)?;
            profile.require_complete(&path)?;
            Some(profile)
        }
        None => None,
    };
    let flags = Credentials {
        cloud: conn.cloud,
        authority_host: conn.authority_host.clone(),
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
        .or_else(|| env("CBA_EXCHANGE_URL"))
        .or_else(|| profile.as_ref().map(|p| p.endpoints.exchange.clone()).filter(|u| !u.is_empty()))
        .unwrap_or_else(|| creds.cloud.unwrap_or_default().endpoints().exchange_root);
    let (client_id, cert) = (creds.client_id.clone(), creds.cert.clone());
    let tokens = match &conn.access_token_env {
        Some(var) => static_token(var)?,
        None => certificate_source(creds, &conn.app.password, conn.no_cache, Resource::Exchange)?,
    };
    Ok(Connection { tenant, organization, exchange_url, client_id, cert, tokens })
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
    }
}

// ---------------------------------------------------------------------------------------------------------
// Settings

/// A token from an environment variable (`--access-token-env`); a run that outlives it fails with "token refused".
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
            cba_exo::Event::Warning { cmdlet, message } => output::warn(style, format!("{cmdlet}: {message}")),
            cba_exo::Event::CmdletError { cmdlet, message } => {
                cmdlet_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("{} {cmdlet}: {message}", style.error("error:"));
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
        E::Config { .. } | E::Endpoint(_) => Exit::Usage,
        E::Parameters { .. } => Exit::BadInput,
        _ => Exit::Remote,
    }
}

fn exo_error(e: cba_exo::Error) -> anyhow::Error {
    let exit = exit_for(&e);
    Err::<(), _>(e).exit(exit).unwrap_err()
}

// ---------------------------------------------------------------------------------------------------------
// Parameters

/// `Verb-Noun`, as PowerShell names cmdlets (it also goes into a header).
fn check_cmdlet(name: &str) -> anyhow::Result<()> {
    let ok = name.split_once('-').is_some_and(|(verb, noun)| {
        !verb.is_empty()
            && !noun.is_empty()
            && verb.chars().all(|c| c.is_ascii_alphabetic())
            && noun.chars().all(|c| c.is_ascii_alphanumeric())
    });
    if ok {
        Ok(())
    } else {
        Err(fail(Exit::Usage, format!("{name:?} is not a cmdlet name (Verb-Noun, e.g. Get-Mailbox)")))
    }
}

/// Parse one `-p NAME=VALUE` (or a bare `NAME` switch).
fn parse_param(arg: &str) -> Result<(String, ParamValue), String> {
    let (name, value) = match arg.split_once('=') {
        Some((name, value)) => (name.trim(), Some(value)),
        None => (arg.trim(), None),
    };
    let name = name.strip_prefix('-').unwrap_or(name);
    if name.is_empty()
        || !name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(format!("-p {arg:?}: expected NAME=VALUE with a parameter name like ResultSize"));
    }
    let value = match value {
        None => ParamValue::Bool(true),
        Some(v) => parse_value(v).map_err(|e| format!("-p {name}: {e}"))?,
    };
    Ok((name.to_string(), value))
}

/// The value rules of docs/exo.md.
fn parse_value(v: &str) -> Result<ParamValue, String> {
    if let Some(inner) = v.strip_prefix('[') {
        let inner =
            inner.strip_suffix(']').ok_or("an array starts with [ and ends with ]; quote it ('[x') for a string")?;
        return split_array(inner)?
            .into_iter()
            .map(|(item, quoted)| Ok(if quoted { ParamValue::String(item) } else { parse_scalar(&item) }))
            .collect::<Result<Vec<_>, String>>()
            .map(ParamValue::Array);
    }
    if v.starts_with('{') {
        let json: serde_json::Value =
            serde_json::from_str(v).map_err(|e| format!("a value starting with {{ is a JSON hashtable: {e}"))?;
        return match json {
            serde_json::Value::Object(_) => Ok(ParamValue::from(json)),
            _ => Err("a value starting with { must be a JSON object".to_string()),
        };
    }
    if let Some(s) = unquote(v) {
        return Ok(ParamValue::String(s.to_string()));
    }
    Ok(parse_scalar(v))
}

/// `'text'` or `"text"` → text, verbatim.
fn unquote(v: &str) -> Option<&str> {
    for q in ['\'', '"'] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return Some(&v[1..v.len() - 1]);
        }
    }
    None
}

/// Numbers in canonical form (no leading zeros: `007` stays a string), true/false, null; else the string.
fn parse_scalar(v: &str) -> ParamValue {
    if v.eq_ignore_ascii_case("true") {
        return ParamValue::Bool(true);
    }
    if v.eq_ignore_ascii_case("false") {
        return ParamValue::Bool(false);
    }
    if v == "null" {
        return ParamValue::Null;
    }
    if is_canonical_number(v) {
        if let Ok(n) = v.parse::<i64>() {
            return ParamValue::from(n);
        }
        if v.contains('.')
            && let Some(n) = v.parse::<f64>().ok().and_then(serde_json::Number::from_f64)
        {
            return ParamValue::Number(n);
        }
    }
    ParamValue::String(v.to_string())
}

fn is_canonical_number(v: &str) -> bool {
    let digits = v.strip_prefix('-').unwrap_or(v);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    !int.is_empty()
        && int.chars().all(|c| c.is_ascii_digit())
        && (int == "0" || !int.starts_with('0'))
        && frac.is_none_or(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()))
}

/// Split the inside of `[...]` on commas. `\` escapes the next character; an element wrapped in quotes is a
/// string as written (commas included). Returns (text, was quoted).
fn split_array(inner: &str) -> Result<Vec<(String, bool)>, String> {
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut items = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ') {
            chars.next();
        }
        let mut item = String::new();
        let quoted = match chars.peek() {
            Some(&q @ ('\'' | '"')) => {
                chars.next();
                loop {
                    match chars.next() {
                        Some(c) if c == q => break,
                        Some(c) => item.push(c),
                        None => return Err(format!("unclosed {q} in the array")),
                    }
                }
                while chars.peek().is_some_and(|c| *c == ' ') {
                    chars.next();
                }
                if chars.peek().is_some_and(|c| *c != ',') {
                    return Err("text after a quoted array element; put a comma between elements".to_string());
                }
                true
            }
            _ => {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    chars.next();
                    if c == '\\' {
                        item.push(chars.next().ok_or("a \\ at the end of the array escapes nothing")?);
                    } else {
                        item.push(c);
                    }
                }
                let trimmed = item.trim_end().len();
                item.truncate(trimmed);
                false
            }
        };
        items.push((item, quoted));
        match chars.next() {
            Some(',') => continue,
            None => return Ok(items),
            Some(c) => return Err(format!("unexpected {c:?} in the array")),
        }
    }
}

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
        let (name, value) = parse_param(p).map_err(|e| fail(Exit::Usage, e))?;
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
    check_cmdlet(&args.cmdlet)?;
    let (params, limit) = build_params(&args)?;
    let select: Vec<String> = args.select.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    let page_size = match limit {
        Some(n) if n < u64::from(args.page_size) => n as u32,
        _ => args.page_size,
    };
    let cmdlet_errors = Arc::new(AtomicUsize::new(0));
    let exo = client(&connect(&args.connection)?, page_size, global, cmdlet_errors.clone())?;
    // One worker: it reads the next page off the socket while this thread parses and writes the current one.
    // A second worker only added cross-thread wake-ups and spread the HTTP buffers over two malloc arenas (more
    // fresh pages to fault in); with no worker (a current-thread runtime) the read waits for the writing.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let format = global.output;
    let cmdlet = args.cmdlet.clone();
    let stdout = io::stdout();
    let result = runtime.block_on(async move {
        // Whole pages, each object written straight from the page's text (no copy or allocation per object).
        let pages = std::pin::pin!(exo.invoke_pages(&cmdlet, &params));
        let mut items = PagedItems {
            pages,
            page: cba_exo::RawPage::default(),
            at: 0,
            left: limit.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX)),
        };
        let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
        let printed = match format {
            OutputFormat::Jsonl => write_jsonl(&mut items, &select, &mut out).await,
            OutputFormat::Json => write_json(&mut items, &select, &mut out).await,
            OutputFormat::Csv => write_csv(&mut items, &select, &mut out, global.style).await,
            OutputFormat::Text | OutputFormat::Table => write_table(&mut items, &select, &mut out, global.style).await,
        };
        out.flush()?;
        printed
    });
    let printed = result?;
    tracing::debug!(printed, "objects written");
    let errors = cmdlet_errors.load(Ordering::Relaxed);
    if errors > 0 {
        return Err(fail(Exit::Remote, format!("{} reported {errors} error(s) for some objects (above)", args.cmdlet)));
    }
    Ok(())
}

/// Failures while writing: an Exchange error keeps its exit code; an I/O error (a closed pipe) stays an
/// `io::Error` so `main` can treat BrokenPipe as a normal end.
#[derive(Debug)]
enum WriteError {
    Exo(cba_exo::Error),
    Io(io::Error),
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> Self {
        WriteError::Io(e)
    }
}

impl From<cba_exo::Error> for WriteError {
    fn from(e: cba_exo::Error) -> Self {
        WriteError::Exo(e)
    }
}

impl From<WriteError> for anyhow::Error {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Exo(e) => exo_error(e),
            WriteError::Io(e) => anyhow::Error::new(e),
        }
    }
}

/// Output objects one at a time, each borrowed from whatever holds it.
trait ItemSource {
    /// The next object's JSON text. When it is not at hand yet (a page is on its way) what was written is
    /// flushed first, so output appears page by page.
    async fn next_item(&mut self, out: &mut impl Write) -> Result<Option<&str>, WriteError>;
}

/// The objects of a page stream, at most `left` of them.
struct PagedItems<S> {
    pages: S,
    page: cba_exo::RawPage,
    at: usize,
    left: usize,
}

impl<S: Stream<Item = Result<cba_exo::RawPage, cba_exo::Error>> + Unpin> ItemSource for PagedItems<S> {
    async fn next_item(&mut self, out: &mut impl Write) -> Result<Option<&str>, WriteError> {
        if self.left == 0 {
            return Ok(None);
        }
        while self.at >= self.page.len() {
            // Done with this page: its buffer goes back to the client for the next one (two in use at most).
            self.page = cba_exo::RawPage::default();
            let next = match self.pages.next().now_or_never() {
                Some(next) => next,
                None => {
                    out.flush()?;
                    self.pages.next().await
                }
            };
            match next {
                Some(page) => (self.page, self.at) = (page?, 0),
                None => {
                    self.left = 0;
                    return Ok(None);
                }
            }
        }
        self.left -= 1;
        self.at += 1;
        Ok(self.page.get(self.at - 1))
    }
}

/// Whether `s` holds a CR or LF. Runs over every output byte, so 32 bytes at a time without branches (the
/// compiler vectorises the inner fold); `str::contains([..])` decodes char by char and cost a quarter of the CPU.
fn has_line_break(s: &[u8]) -> bool {
    let found = |chunk: &[u8]| chunk.iter().fold(0u8, |acc, &b| acc | u8::from(b == b'\n') | u8::from(b == b'\r')) != 0;
    let mut chunks = s.chunks_exact(32);
    chunks.by_ref().any(found) || found(chunks.remainder())
}

/// One JSON value, compact: the service's text if it is already on one line, else with the whitespace
/// between tokens removed (order and number spelling kept).
fn write_compact(raw: &str, out: &mut impl Write) -> io::Result<()> {
    if !has_line_break(raw.as_bytes()) {
        return out.write_all(raw.as_bytes());
    }
    let mut in_string = false;
    let mut escaped = false;
    let mut compact = String::with_capacity(raw.len());
    for c in raw.chars() {
        if in_string {
            compact.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            compact.push(c);
        } else if !c.is_ascii_whitespace() {
            compact.push(c);
        }
    }
    out.write_all(compact.as_bytes())
}

/// One output object, optionally reduced to the `select`ed properties.
fn write_item(raw: &str, select: &[String], out: &mut impl Write) -> Result<(), WriteError> {
    if select.is_empty() {
        return Ok(write_compact(raw, out)?);
    }
    let record = Record::parse(raw)?;
    out.write_all(b"{")?;
    for (i, name) in select.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        let (key, value) = match record.get(name) {
            Some((key, value)) => (key, value),
            None => (name.as_str(), "null"),
        };
        serde_json::to_writer(&mut *out, key).map_err(io::Error::from)?;
        out.write_all(b":")?;
        write_compact(value, out)?;
    }
    out.write_all(b"}")?;
    Ok(())
}

async fn write_jsonl(
    items: &mut impl ItemSource,
    select: &[String],
    out: &mut impl Write,
) -> Result<usize, WriteError> {
    let mut count = 0;
    while let Some(raw) = items.next_item(out).await? {
        write_item(raw, select, out)?;
        out.write_all(b"\n")?;
        count += 1;
    }
    Ok(count)
}

/// One JSON array, written as items arrive (one object per line), never held whole.
async fn write_json(items: &mut impl ItemSource, select: &[String], out: &mut impl Write) -> Result<usize, WriteError> {
    let mut count = 0;
    out.write_all(b"[")?;
    while let Some(raw) = items.next_item(out).await? {
        out.write_all(if count == 0 { b"\n" } else { b",\n" })?;
        write_item(raw, select, out)?;
        count += 1;
    }
    out.write_all(if count == 0 { b"]\n" } else { b"\n]\n" })?;
    Ok(count)
}

// ---------------------------------------------------------------------------------------------------------
// Records for table and csv

/// An output object with its properties in the service's order (serde_json's map would sort them), or a
/// bare value (a cmdlet that outputs strings).
enum Record {
    Object(Vec<(String, Box<RawValue>)>),
    Scalar(String),
}

/// The column a bare value goes in.
const SCALAR_COLUMN: &str = "Value";

impl Record {
    fn parse(raw: &str) -> Result<Record, cba_exo::Error> {
        if !raw.trim_start().starts_with('{') {
            return Ok(Record::Scalar(raw.to_string()));
        }
        let fields: OrderedFields = serde_json::from_str(raw).map_err(|e| cba_exo::Error::Protocol {
            cmdlet: "the cmdlet".to_string(),
            message: format!("an output object is not valid JSON: {e}"),
        })?;
        Ok(Record::Object(fields.0))
    }

    /// A property by name, case-insensitively as in PowerShell: (its spelling, its value).
    fn get(&self, name: &str) -> Option<(&str, &str)> {
        match self {
            Record::Object(fields) => fields
                .iter()
                .find(|(k, _)| k == name)
                .or_else(|| fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                .map(|(k, v)| (k.as_str(), v.get())),
            Record::Scalar(v) if name == SCALAR_COLUMN => Some((SCALAR_COLUMN, v.as_str())),
            Record::Scalar(_) => None,
        }
    }

    /// Property names worth a column (not OData annotations).
    fn names(&self) -> Vec<&str> {
        match self {
            Record::Object(fields) => {
                fields.iter().map(|(k, _)| k.as_str()).filter(|k| !k.starts_with("@odata.")).collect()
            }
            Record::Scalar(_) => vec![SCALAR_COLUMN],
        }
    }
}

struct OrderedFields(Vec<(String, Box<RawValue>)>);

impl<'de> serde::Deserialize<'de> for OrderedFields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OrderedFields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<OrderedFields, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    fields.push(entry);
                }
                Ok(OrderedFields(fields))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// A property value as text for a cell: strings bare, null empty, arrays of scalars joined with `sep`,
/// anything nested as compact JSON.
fn cell_text(raw: &str, sep: &str) -> String {
    let value: serde_json::Value = match serde_json::from_str(raw) {
        Ok(v) => v,
        Err(_) => return raw.to_string(),
    };
    fn scalar(v: &serde_json::Value) -> Option<String> {
        match v {
            serde_json::Value::Null => Some(String::new()),
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Bool(_) | serde_json::Value::Number(_) => Some(v.to_string()),
            _ => None,
        }
    }
    if let Some(s) = scalar(&value) {
        return s;
    }
    if let serde_json::Value::Array(items) = &value
        && let Some(parts) = items.iter().map(scalar).collect::<Option<Vec<_>>>()
    {
        return parts.join(sep);
    }
    value.to_string()
}

// ---------------------------------------------------------------------------------------------------------
// table

/// Columns shown when --select is not given (Get-Mailbox has hundreds of properties).
const DEFAULT_TABLE_COLUMNS: usize = 8;
/// Widest a table cell gets before it is cut with `…`.
const MAX_CELL: usize = 40;

async fn write_table(
    items: &mut impl ItemSource,
    select: &[String],
    out: &mut impl Write,
    style: output::Style,
) -> Result<usize, WriteError> {
    let mut records = Vec::new();
    while let Some(raw) = items.next_item(out).await? {
        records.push(Record::parse(raw)?);
    }
    if records.is_empty() {
        output::info(style.dim("(no output)"));
        return Ok(0);
    }
    let columns: Vec<String> = if select.is_empty() {
        let mut seen = HashSet::new();
        let mut all = Vec::new();
        for r in &records {
            for name in r.names() {
                if seen.insert(name.to_ascii_lowercase()) {
                    all.push(name.to_string());
                }
            }
        }
        if all.len() > DEFAULT_TABLE_COLUMNS {
            output::info(style.dim(&format!(
                "showing {DEFAULT_TABLE_COLUMNS} of {} properties; choose with --select a,b or see all with --output json",
                all.len()
            )));
            all.truncate(DEFAULT_TABLE_COLUMNS);
        }
        all
    } else {
        select.to_vec()
    };
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| r.get(c).map(|(_, v)| truncate(&one_line(&cell_text(v, ", ")), MAX_CELL)).unwrap_or_default())
                .collect()
        })
        .collect();
    render_table(&columns, &rows, out)?;
    Ok(records.len())
}

fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut cut: String = s.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

fn render_table(columns: &[String], rows: &[Vec<String>], out: &mut impl Write) -> io::Result<()> {
    let headers: Vec<String> = columns.iter().map(|c| truncate(c, MAX_CELL)).collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([headers[i].chars().count()]).max().unwrap_or(0))
        .collect();
    let line = |cells: &[String], out: &mut dyn Write| -> io::Result<()> {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            text.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count()));
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(&headers, out)?;
    line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(), out)?;
    for row in rows {
        line(row, out)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// csv

/// RFC 4180: a field is quoted when it holds a comma, a quote, CR or LF (or starts/ends with a space),
/// quotes doubled; records end with CRLF.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_record(fields: impl IntoIterator<Item = String>, out: &mut impl Write) -> io::Result<()> {
    let line: Vec<String> = fields.into_iter().map(|f| csv_field(&f)).collect();
    out.write_all(line.join(",").as_bytes())?;
    out.write_all(b"\r\n")
}

/// Streamed: the columns are --select, else the first object's properties.
async fn write_csv(
    items: &mut impl ItemSource,
    select: &[String],
    out: &mut impl Write,
    style: output::Style,
) -> Result<usize, WriteError> {
    let mut columns: Option<Vec<String>> = (!select.is_empty()).then(|| select.to_vec());
    if let Some(columns) = &columns {
        csv_record(columns.iter().cloned(), out)?;
    }
    let mut warned = false;
    let mut count = 0;
    while let Some(raw) = items.next_item(out).await? {
        let record = Record::parse(raw)?;
        let columns = match &mut columns {
            Some(c) => &*c,
            None => {
                let first: Vec<String> = record.names().into_iter().map(str::to_string).collect();
                csv_record(first.iter().cloned(), out)?;
                columns.insert(first)
            }
        };
        if select.is_empty()
            && !warned
            && let Some(extra) = record.names().into_iter().find(|n| !columns.iter().any(|c| c.eq_ignore_ascii_case(n)))
        {
            output::warn(
                style,
                format!(
                    "object {} has a property the first one lacks ({extra}); the CSV columns are the first object's, choose them with --select",
                    count + 1
                ),
            );
            warned = true;
        }
        csv_record(columns.iter().map(|c| record.get(c).map(|(_, v)| cell_text(v, ";")).unwrap_or_default()), out)?;
        count += 1;
    }
    Ok(count)
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
    let config = runtime.block_on(exo.collect_all(CMDLET, &Parameters::new())).map_err(exo_error)?;
    let elapsed = started.elapsed();
    let org = config.first().ok_or_else(|| fail(Exit::Remote, format!("{CMDLET} returned nothing")))?;
    let text = |k: &str| org.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let name = text("Name");
    let display_name = text("DisplayName");
    let organization = conn
        .organization
        .clone()
        .or_else(|| name.clone().filter(|n| n.to_ascii_lowercase().ends_with(".onmicrosoft.com")))
        .or_else(|| Some(tenant.clone()).filter(|t| t.contains('.')));
    let (client_id, cert) = (conn.client_id.clone(), conn.cert.clone());
    let line = connect_line(client_id.as_deref(), cert.as_deref(), organization.as_deref(), &conn.exchange_url);

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

/// The Connect-ExchangeOnline line for the same app, certificate and organization.
fn connect_line(
    client_id: Option<&str>,
    cert: Option<&std::path::Path>,
    organization: Option<&str>,
    exchange_url: &str,
) -> String {
    let quote = |s: &str| {
        if s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./\\:".contains(c)) {
            s.to_string()
        } else {
            format!("'{}'", s.replace('\'', "''"))
        }
    };
    let mut line = format!(
        "Connect-ExchangeOnline -AppId {} -CertificateFilePath {} -CertificatePassword (Read-Host -AsSecureString -Prompt 'PFX password') -Organization {}",
        client_id.map(quote).unwrap_or_else(|| "<app-id>".to_string()),
        cert.map(|p| quote(&p.display().to_string())).unwrap_or_else(|| "<certificate.pfx>".to_string()),
        organization.map(quote).unwrap_or_else(|| "<tenant>.onmicrosoft.com".to_string()),
    );
    let host =
        url::Url::parse(exchange_url).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase)).unwrap_or_default();
    let environment = match host.as_str() {
        "outlook.office365.us" => Some("O365USGovGCCHigh"),
        "webmail.apps.mil" => Some("O365USGovDoD"),
        "partner.outlook.cn" => Some("O365China"),
        _ => None,
    };
    if let Some(env) = environment {
        line.push_str(&format!(" -ExchangeEnvironmentName {env}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check_value(input: &str, expected: serde_json::Value) {
        let value = parse_value(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(serde_json::to_value(&value).unwrap(), expected, "{input:?}");
    }

    #[test]
    fn param_values() {
        check_value("john@contoso.com", json!("john@contoso.com"));
        check_value("10", json!(10));
        check_value("-3", json!(-3));
        check_value("2.5", json!(2.5));
        check_value("007", json!("007"));
        check_value("1e3", json!("1e3"));
        check_value("99999999999999999999", json!("99999999999999999999"));
        check_value("true", json!(true));
        check_value("False", json!(false));
        check_value("null", json!(null));
        check_value("Unlimited", json!("Unlimited"));
        check_value("", json!(""));
        check_value("'123'", json!("123"));
        check_value("\"true\"", json!("true"));
        check_value("'", json!("'"));
        check_value("[a,b]", json!(["a", "b"]));
        check_value("[1, 2 ,x y]", json!([1, 2, "x y"]));
        check_value("[]", json!([]));
        check_value(r"[a\,b,c\\d,\]]", json!(["a,b", r"c\d", "]"]));
        check_value("['1',\"a,b\" , true]", json!(["1", "a,b", true]));
        check_value(
            r#"{"Add":["smtp:a@b.c"]}"#,
            json!({"@odata.type": "#Exchange.GenericHashTable", "Add": ["smtp:a@b.c"]}),
        );
        for bad in ["[a,b", "['a", "['a' b]", r"[a\", "{nope", "{}x"] {
            assert!(parse_value(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn param_names() {
        let (name, value) = parse_param("ResultSize=10").unwrap();
        assert_eq!((name.as_str(), value), ("ResultSize", ParamValue::from(10)));
        assert_eq!(parse_param("Force").unwrap().1, ParamValue::Bool(true), "a bare name is a switch");
        assert_eq!(parse_param("-Identity=a=b").unwrap(), ("Identity".to_string(), ParamValue::from("a=b")));
        for bad in ["=x", "1a=2", "a b=1", ""] {
            assert!(parse_param(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cmdlet_names() {
        assert!(check_cmdlet("Get-Mailbox").is_ok());
        assert!(check_cmdlet("Get-EXOMailbox2").is_ok());
        for bad in ["Get", "Get-", "-Mailbox", "Get-Mail box", "Get-Mailbox\r\nX: y"] {
            assert!(check_cmdlet(bad).is_err(), "{bad:?}");
        }
    }

    /// The values as pages of two objects, as `invoke` gets them.
    fn raw_items(values: &[&str]) -> PagedItems<impl Stream<Item = Result<cba_exo::RawPage, cba_exo::Error>> + Unpin> {
        let pages: Vec<Result<cba_exo::RawPage, cba_exo::Error>> = values
            .chunks(2)
            .map(|chunk| Ok(chunk.iter().map(|v| RawValue::from_string(v.to_string()).unwrap()).collect()))
            .collect();
        PagedItems { pages: futures::stream::iter(pages), page: cba_exo::RawPage::default(), at: 0, left: usize::MAX }
    }

    fn render(format: OutputFormat, values: &[&str], select: &[&str]) -> String {
        let select: Vec<String> = select.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        let style = output::Style::new(output::ColorChoice::Never, true);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            match format {
                OutputFormat::Jsonl => write_jsonl(&mut raw_items(values), &select, &mut out).await,
                OutputFormat::Json => write_json(&mut raw_items(values), &select, &mut out).await,
                OutputFormat::Csv => write_csv(&mut raw_items(values), &select, &mut out, style).await,
                _ => write_table(&mut raw_items(values), &select, &mut out, style).await,
            }
        })
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    const ITEMS: &[&str] = &[
        r#"{"Zeta":"z1","Alpha":1,"Tags":["a","b"],"@odata.id":"x"}"#,
        "{\n  \"Zeta\": \"z 2\",\n  \"Alpha\": null\n}",
    ];

    #[test]
    fn jsonl_and_json_keep_the_service_order_and_stay_one_object_per_line() {
        assert_eq!(
            render(OutputFormat::Jsonl, ITEMS, &[]),
            "{\"Zeta\":\"z1\",\"Alpha\":1,\"Tags\":[\"a\",\"b\"],\"@odata.id\":\"x\"}\n{\"Zeta\":\"z 2\",\"Alpha\":null}\n"
        );
        assert_eq!(
            render(OutputFormat::Jsonl, ITEMS, &["alpha", "Missing"]),
            "{\"Alpha\":1,\"Missing\":null}\n{\"Alpha\":null,\"Missing\":null}\n"
        );
        let json = render(OutputFormat::Json, ITEMS, &["Zeta"]);
        assert_eq!(json, "[\n{\"Zeta\":\"z1\"},\n{\"Zeta\":\"z 2\"}\n]\n");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&json).unwrap(), json!([{"Zeta": "z1"}, {"Zeta": "z 2"}]));
        assert_eq!(render(OutputFormat::Json, &[], &[]), "[]\n");
    }

    #[test]
    fn csv_quotes_per_rfc_4180() {
        let items = [r#"{"Name":"a,b","Note":"say \"hi\"","Multi":"l1\nl2","Tags":["x","y"],"N":null,"Pad":" p"}"#];
        assert_eq!(
            render(OutputFormat::Csv, &items, &[]),
            "Name,Note,Multi,Tags,N,Pad\r\n\"a,b\",\"say \"\"hi\"\"\",\"l1\nl2\",x;y,,\" p\"\r\n"
        );
        assert_eq!(render(OutputFormat::Csv, ITEMS, &["Alpha", "Zeta"]), "Alpha,Zeta\r\n1,z1\r\n,z 2\r\n");
    }

    #[test]
    fn table_aligns_and_truncates() {
        let long = "x".repeat(60);
        let first = format!(r#"{{"Name":"a","Long":"{long}","Tags":["t1","t2"]}}"#);
        let items = [first.as_str(), r#"{"Name":"bbbb","Extra":{"k":1}}"#];
        let table = render(OutputFormat::Table, &items, &[]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], format!("Name  Long{}  Tags    Extra", " ".repeat(36)));
        assert_eq!(lines[1], format!("----  {}  ------  -------", "-".repeat(40)));
        assert_eq!(lines[2], format!("a     {}…  t1, t2", "x".repeat(39)));
        assert_eq!(lines[3], format!("bbbb  {}          {{\"k\":1}}", " ".repeat(40)));
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn compacting_keeps_strings_intact() {
        let mut out = Vec::new();
        write_compact("{\n \"a b\" : \"x \\\" y\",\n \"c\": [1, 2]\n}", &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"a b":"x \" y","c":[1,2]}"#);
    }

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
    fn connect_exchange_online_line() {
        assert_eq!(
            connect_line(
                Some("631a"),
                Some(std::path::Path::new("my certs/a.pfx")),
                Some("contoso.onmicrosoft.com"),
                "https://outlook.office365.com"
            ),
            "Connect-ExchangeOnline -AppId 631a -CertificateFilePath 'my certs/a.pfx' -CertificatePassword (Read-Host -AsSecureString -Prompt 'PFX password') -Organization contoso.onmicrosoft.com"
        );
        let gcc = connect_line(None, None, None, "https://outlook.office365.us");
        assert!(gcc.contains("-AppId <app-id> -CertificateFilePath <certificate.pfx> "), "{gcc}");
        assert!(
            gcc.ends_with("-Organization <tenant>.onmicrosoft.com -ExchangeEnvironmentName O365USGovGCCHigh"),
            "{gcc}"
        );
    }
}
