//! Output conventions: data on stdout (text for people or JSON for scripts), everything else on stderr.

pub mod exo;

use std::io::{self, IsTerminal as _, Write as _};

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
    serde_json::to_writer_pretty(&mut out, value)?;
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

/// A warning line on stderr.
pub fn warn(style: Style, message: impl std::fmt::Display) {
    eprintln!("{} {message}", style.warning("warning:"));
}

/// A progress/info line on stderr.
pub fn info(message: impl std::fmt::Display) {
    eprintln!("{message}");
}

/// Write text on stdout as is.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
