//! Output conventions: data on stdout (text for people or JSON for scripts), everything else on stderr.

pub mod exo;

use std::io::{self, IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

/// `--output`: how a command prints its result. Not every command supports every format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned fields for people.
    #[default]
    Text,
    /// One JSON document with stable snake_case keys.
    Json,
    /// One JSON object per line, streamed (`cba exo invoke`).
    Jsonl,
    /// A table (`cba exo invoke`).
    Table,
    /// Comma-separated values (`cba exo invoke`).
    Csv,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when stderr is a terminal and NO_COLOR is unset.
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

impl OutputFormat {
    /// The name on the command line (`jsonl`, not `Jsonl`).
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Text => "text",
            OutputFormat::Json => "json",
            OutputFormat::Jsonl => "jsonl",
            OutputFormat::Table => "table",
            OutputFormat::Csv => "csv",
        }
    }
}

/// Refuse an `--output` a command cannot print, before the command does anything (a `cba cert new
/// --output csv` must not write the certificate and then fail).
pub fn check_supported(format: OutputFormat, supported: &[OutputFormat], command: &str) -> anyhow::Result<()> {
    if supported.contains(&format) {
        return Ok(());
    }
    let names: Vec<&str> = supported.iter().map(|f| f.name()).collect();
    Err(crate::exit::fail(
        crate::exit::Exit::Usage,
        format!("`cba {command}` cannot print --output {}; use {}", format.name(), names.join(" or ")),
    ))
}

/// Print a command's one result document: JSON, or the text made by `text` (formats were checked up front).
pub fn print_document<T: Serialize>(
    format: OutputFormat,
    doc: &T,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => print_json(doc),
        _ => write_stdout(&text(doc)),
    }
}

/// Print `value` as pretty JSON on stdout, followed by a newline.
pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    // Back to the io::Error a closed pipe is (BrokenPipe: a quiet exit, see main).
    serde_json::to_writer_pretty(&mut out, value).map_err(io::Error::from)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Print aligned `label: value` lines on stdout.
pub fn print_fields(fields: &[(&str, String)]) -> anyhow::Result<()> {
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = io::stdout().lock();
    for (k, v) in fields {
        writeln!(out, "{k:<width$}  {v}")?;
    }
    out.flush()?;
    Ok(())
}

/// Styles for stderr messages, honouring `--color` and NO_COLOR (https://no-color.org).
#[derive(Debug, Clone, Copy)]
pub struct Style {
    color: bool,
}

impl Style {
    pub fn new(choice: ColorChoice, no_color_env: bool) -> Style {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => !no_color_env && io::stderr().is_terminal(),
        };
        Style { color }
    }

    pub fn color(self) -> bool {
        self.color
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    pub fn error(self, text: &str) -> String {
        self.paint("1;31", text)
    }

    pub fn warning(self, text: &str) -> String {
        self.paint("1;33", text)
    }

    pub fn ok(self, text: &str) -> String {
        self.paint("1;32", text)
    }

    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
}

/// Whether stderr's last line is an updating progress line (rewritten with `\r`, no newline yet).
static UPDATING_LINE: AtomicBool = AtomicBool::new(false);

/// Write on stderr, first ending an updating progress line. A closed or failing stderr is ignored: messages
/// are not the command's result, and `cba … 2>&1 | head` must not turn into a panic.
fn write_stderr(text: &str) {
    let mut err = io::stderr().lock();
    if UPDATING_LINE.swap(false, Ordering::SeqCst) {
        let _ = err.write_all(b"\n");
    }
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// Progress on stderr as `render` makes it: given whether an updating line is showing, it returns the bytes
/// and whether one is showing after them.
pub fn progress(render: impl FnOnce(bool) -> (String, bool)) {
    let mut err = io::stderr().lock();
    let (text, open) = render(UPDATING_LINE.load(Ordering::SeqCst));
    UPDATING_LINE.store(open, Ordering::SeqCst);
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// A warning line on stderr.
pub fn warn(style: Style, message: impl std::fmt::Display) {
    write_stderr(&format!("{} {message}\n", style.warning("warning:")));
}

/// A progress/info line on stderr.
pub fn info(message: impl std::fmt::Display) {
    write_stderr(&format!("{message}\n"));
}

/// Endpoints that mix loopback and other hosts: a simulator for some services and Microsoft's for others
/// (`cba sim serve` with `--exchange-url` forgotten), so the profile would send the simulator's tokens to
/// Microsoft. `urls` are `(flag, url)` pairs; the warning, if any.
pub fn mixed_hosts(urls: &[(&str, &str)]) -> Option<String> {
    let is_loopback = |url: &str| {
        url::Url::parse(url).ok().is_some_and(|u| match u.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        })
    };
    let (local, remote): (Vec<_>, Vec<_>) = urls.iter().partition(|(_, url)| is_loopback(url));
    if local.is_empty() || remote.is_empty() {
        return None;
    }
    let names =
        |v: &[&(&str, &str)]| v.iter().map(|(flag, url)| format!("{flag} {url}")).collect::<Vec<_>>().join(", ");
    Some(format!(
        "the endpoints mix loopback ({}) and other hosts ({}): a simulator for some services and the real ones \
         for others; give every endpoint of the same service (`cba sim serve` prints login_url, graph_url and \
         exchange_url)",
        names(&local),
        names(&remote)
    ))
}

/// Warn on stderr when `urls` ((flag, url) pairs) mix loopback and other hosts (see [`mixed_hosts`]).
pub fn warn_mixed_hosts(style: Style, urls: &[(&str, &str)]) {
    if let Some(message) = mixed_hosts(urls) {
        warn(style, message);
    }
}

/// Write text on stdout as is.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_next_to_microsoft_is_a_mix() {
        let sim = "http://127.0.0.1:41234";
        let warning = mixed_hosts(&[
            ("--authority-host", sim),
            ("--graph-url", "http://localhost:41235"),
            ("--exchange-url", "https://outlook.office365.com"),
        ])
        .expect("a mix");
        assert!(
            warning.contains("loopback (--authority-host http://127.0.0.1:41234, --graph-url http://localhost:41235)"),
            "{warning}"
        );
        assert!(warning.contains("other hosts (--exchange-url https://outlook.office365.com)"), "{warning}");
        assert!(
            mixed_hosts(&[("--graph-url", "http://[::1]:8080"), ("--exchange-url", "https://outlook.office365.us")])
                .is_some()
        );
        assert_eq!(mixed_hosts(&[("a", sim), ("b", "http://127.0.0.2:9")]), None, "all loopback");
        assert_eq!(
            mixed_hosts(&[("a", "https://login.microsoftonline.com"), ("b", "https://graph.microsoft.com")]),
            None,
            "all Microsoft"
        );
        assert_eq!(mixed_hosts(&[]), None);
    }
}
