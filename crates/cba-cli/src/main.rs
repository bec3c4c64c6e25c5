//! `cba`: certificate-based app-only authentication for Exchange Online in one command.
//!
//! Glue only: parse arguments, read env and files, call the library crates, print.

mod certfile;
mod cmd;
mod connect;
mod exit;
mod fleetfile;
mod fsutil;
mod hints;
mod http;
mod keyvault;
mod output;
mod pkcs11;
mod powershell;
mod profile;
mod secrets;
mod settings;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

use crate::exit::Exit;
use crate::output::{ColorChoice, OutputFormat, Style};

/// Certificate-based (app-only) authentication for Exchange Online, from any OS.
#[derive(Debug, clap::Parser)]
#[command(name = "cba", version, about, long_about = None, after_help = TOP_EXAMPLES, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Output format: text for people, json for scripts (stable snake_case keys). Data goes to stdout only.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    /// More logs on stderr: -v request-level (tokens redacted), -vv everything.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Colour on stderr (NO_COLOR is honoured under auto).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
}

const TOP_EXAMPLES: &str = "\
Examples:
  cba demo                                   # the whole flow against a local simulated tenant
  cba cert new --name contoso-exo            # make contoso-exo.pfx + contoso-exo.cer
  cba cert show contoso-exo.pfx --output json

Exit codes: 0 ok, 2 usage, 3 bad input, 4 authentication, 5 permission, 6 remote service, 7 verification failed
(docs/exit-codes.md).";

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Make and inspect certificates.
    #[command(subcommand)]
    Cert(cmd::cert::Command),
    /// Register the Exchange Online app in one go: certificate, app, consent, role, proof, profile.
    Setup(Box<cmd::setup::Args>),
    /// Check every link of a setup (certificate, app, grant, role, token); exit 0 only when all pass.
    Status(Box<cmd::status::Args>),
    /// Remove the app, its service principal, grant and role assignments (asks first).
    Teardown(Box<cmd::teardown::Args>),
    /// The whole flow against a simulated tenant, in-process: setup, status, token, rotate, status, teardown.
    #[cfg(feature = "sim")]
    Demo(cmd::demo::Args),
    /// Get an app-only access token with the app's certificate (for scripts: `$(cba token)`).
    Token(Box<cmd::token::Args>),
    /// Run Exchange Online cmdlets with the app's certificate, no PowerShell needed.
    #[command(subcommand)]
    Exo(Box<cmd::exo::Command>),
    /// A multi-tenant app in many customer tenants: onboard (add), check (status), remove.
    #[command(subcommand)]
    Fleet(Box<cmd::fleet::Command>),
    /// A strict local simulated tenant (login, Graph, Exchange) for tests, demos and pipelines.
    #[cfg(feature = "sim")]
    #[command(subcommand)]
    Sim(cmd::sim::Command),
    /// Print a shell completion script.
    Completions(cmd::completions::Args),
}

impl Command {
    /// `--output` is global, but only `cba exo` prints jsonl, tables and csv: refuse the rest up front.
    fn check_output(&self, format: OutputFormat) -> anyhow::Result<()> {
        let name = match self {
            Command::Exo(_) => return Ok(()),
            Command::Fleet(c) => {
                let all = [OutputFormat::Text, OutputFormat::Json, OutputFormat::Jsonl, OutputFormat::Csv];
                return match c.as_ref() {
                    cmd::fleet::Command::Status(_) => output::check_supported(format, &all, "fleet status"),
                    _ => output::check_supported(format, &all[..2], "fleet"),
                };
            }
            Command::Cert(_) => "cert",
            Command::Setup(_) => "setup",
            Command::Status(_) => "status",
            Command::Teardown(_) => "teardown",
            #[cfg(feature = "sim")]
            Command::Demo(_) => "demo",
            Command::Token(_) => "token",
            #[cfg(feature = "sim")]
            Command::Sim(_) => "sim",
            Command::Completions(_) => "completions",
        };
        output::check_supported(format, &[OutputFormat::Text, OutputFormat::Json], name)
    }
}

/// Settings every command sees.
#[derive(Debug, Clone, Copy)]
pub struct Global {
    pub output: OutputFormat,
    pub verbose: u8,
    pub style: Style,
}

/// A tokio runtime for commands that do network work.
#[allow(dead_code, reason = "used by the network commands")]
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => Exit::Usage as u8,
            });
        }
    };
    let style = Style::new(cli.color, std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()));
    init_logging(cli.verbose, style);
    let global = Global { output: cli.output, verbose: cli.verbose, style };
    quiet_closed_pipe_panics();
    // A `println!`/`eprintln!` into a closed pipe panics; unwinding runs the destructors (the demo's folder
    // guard), and the closed pipe then ends the process quietly like any other.
    let run = std::panic::AssertUnwindSafe(|| {
        cli.command.check_output(cli.output).and_then(|()| match cli.command {
            Command::Cert(c) => cmd::cert::run(c, &global),
            Command::Setup(a) => cmd::setup::run(*a, &global),
            Command::Status(a) => cmd::status::run(*a, &global),
            Command::Teardown(a) => cmd::teardown::run(*a, &global),
            #[cfg(feature = "sim")]
            Command::Demo(a) => cmd::demo::run(a, &global),
            Command::Token(a) => cmd::token::run(*a, &global),
            Command::Exo(c) => cmd::exo::run(*c, &global),
            Command::Fleet(c) => cmd::fleet::run(*c, &global),
            #[cfg(feature = "sim")]
            Command::Sim(c) => cmd::sim::run(c),
            Command::Completions(a) => cmd::completions::run(a),
        })
    });
    let result = match std::panic::catch_unwind(run) {
        Ok(result) => result,
        Err(panic) if is_closed_pipe_panic(&*panic) => return ExitCode::SUCCESS,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let code = exit::code_for(&e);
            let _ = writeln!(std::io::stderr(), "{} {e:#}", style.error("error:"));
            if let Some(hint) = http::tls_hint(&e) {
                let _ = writeln!(std::io::stderr(), "  hint: {hint}");
            }
            ExitCode::from(code as u8)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// The panic of `print!`-style macros when stdout or stderr is a closed pipe ("failed printing to stderr:
/// Broken pipe (os error 32)").
fn is_closed_pipe_panic(payload: &(dyn std::any::Any + Send)) -> bool {
    let text = match (payload.downcast_ref::<String>(), payload.downcast_ref::<&str>()) {
        (Some(s), _) => s.as_str(),
        (None, Some(s)) => s,
        (None, None) => return false,
    };
    closed_pipe_message(text)
}

fn closed_pipe_message(text: &str) -> bool {
    let printing = text.starts_with("failed printing to stdout") || text.starts_with("failed printing to stderr");
    let os_error = text
        .rsplit_once("(os error ")
        .and_then(|(_, code)| code.strip_suffix(')'))
        .and_then(|code| code.parse::<i32>().ok());
    printing
        && os_error.is_some_and(|code| std::io::Error::from_raw_os_error(code).kind() == std::io::ErrorKind::BrokenPipe)
}

/// No panic message for a closed pipe (there is nowhere to print it, or nobody reading); others as usual.
fn quiet_closed_pipe_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_closed_pipe_panic(info.payload()) {
            default(info);
        }
    }));
}

fn init_logging(verbose: u8, style: Style) {
    let level = match verbose {
        0 => return,
        1 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(style.color())
        .with_target(verbose > 1)
        .try_init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_print_into_a_closed_pipe_is_recognised() {
        #[cfg(unix)]
        let code = 32; // EPIPE
        #[cfg(windows)]
        let code = 232; // ERROR_NO_DATA
        let os = std::io::Error::from_raw_os_error(code);
        assert!(super::closed_pipe_message(&format!("failed printing to stderr: {os}")), "{os}");
        assert!(super::closed_pipe_message(&format!("failed printing to stdout: {os}")));
        let full = std::io::Error::from_raw_os_error(28); // ENOSPC on Linux: a real failure, not a closed pipe
        assert!(!super::closed_pipe_message(&format!("failed printing to stdout: {full}")));
        assert!(!super::closed_pipe_message(&format!("index out of bounds {os}")));
    }
}
