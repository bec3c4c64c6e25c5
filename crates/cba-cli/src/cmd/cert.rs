//! `cba cert new` and `cba cert show`.

use std::path::PathBuf;

use cba_cert::{Identity, PfxFormat};
use serde::Serialize;
use time::OffsetDateTime;

use crate::Global;
use crate::certfile::{NewCertOptions, make_certificate, open};
use crate::exit::{Exit, fail};
use crate::fsutil;
use crate::hints;
use crate::output::{self, OutputFormat};
use crate::secrets::PasswordArgs;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Make a self-signed RSA certificate: NAME.pfx (with the private key) and NAME.cer (for Entra).
    #[command(after_help = NEW_EXAMPLES)]
    New(NewArgs),
    /// Show everything about a certificate file (.pfx/.p12/.cer/.crt/.der/.pem).
    #[command(after_help = SHOW_EXAMPLES)]
    Show(ShowArgs),
    /// Replace the app's certificate: a new one registered, proven, then the old one removed (no admin needed).
    Rotate(Box<super::rotate::Args>),
}

const NEW_EXAMPLES: &str = "\
Examples:
  CBA_PFX_PASSWORD=... cba cert new --name contoso-exo
  cba cert new --name contoso-exo --out-dir ./certs --years 2 --password-file ./pfx-password.txt
  cba cert new --name legacy-host --pfx-format legacy --pem --no-password --output json

The password never comes from the command line: --password-env VAR, --password-file FILE, --password-stdin,
CBA_PFX_PASSWORD, or a prompt (asked twice) when a terminal is attached.";

const SHOW_EXAMPLES: &str = "\
Examples:
  cba cert show contoso-exo.cer
  CBA_PFX_PASSWORD=... cba cert show contoso-exo.pfx --output json
  cba cert show contoso-exo.pem

Exits 3 when the certificate cannot work as an Entra credential (expired, not RSA, key mismatch, ...).";

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// Base name of the files (NAME.pfx, NAME.cer, NAME.pem) and the default subject CN.
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub options: NewCertOptions,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The certificate file.
    pub file: PathBuf,
    #[command(flatten)]
    pub password: PasswordArgs,
}

pub fn run(command: Command, global: &Global) -> anyhow::Result<()> {
    match command {
        Command::New(args) => new(args, global),
        Command::Show(args) => show(args, global),
        Command::Rotate(args) => super::rotate::run(*args, global),
    }
}

/// Paths of the files `cert new` wrote.
#[derive(Debug, Serialize)]
struct Files {
    pfx: String,
    cer: String,
    pem: Option<String>,
}

/// The JSON document of `cert new` and `cert show` (docs/cli-json.md).
#[derive(Debug, Serialize)]
struct Report {
    file: Option<String>,
    #[serde(flatten)]
    facts: cba_cert::CertificateFacts,
    has_private_key: bool,
    key_matches: Option<bool>,
    pfx_format: Option<&'static str>,
    chain_length: usize,
    problems: Vec<ProblemJson>,
    files: Option<Files>,
}

#[derive(Debug, Serialize)]
struct ProblemJson {
    code: &'static str,
    message: String,
}

fn report(identity: &Identity, now: OffsetDateTime, need_key: bool) -> Report {
    Report {
        file: None,
        facts: identity.certificate.facts(now),
        has_private_key: identity.private_key.is_some(),
        key_matches: identity.key_matches(),
        pfx_format: identity.pfx_format.map(PfxFormat::as_str),
        chain_length: identity.chain.len(),
        problems: identity
            .problems(now, need_key)
            .iter()
            .map(|p| ProblemJson { code: p.code(), message: hints::with_hint(p, hints::cert_problem_hint(p)) })
            .collect(),
        files: None,
    }
}

fn new(args: NewArgs, global: &Global) -> anyhow::Result<()> {
    let made = make_certificate(&args.name, &args.options, global.style)?;
    let mut doc = report(&made.identity, OffsetDateTime::now_utc(), true);
    doc.files = Some(Files {
        pfx: made.pfx_path.display().to_string(),
        cer: made.cer_path.display().to_string(),
        pem: made.pem_path.as_ref().map(|p| p.display().to_string()),
    });
    print_report(&doc, global)
}

fn show(args: ShowArgs, global: &Global) -> anyhow::Result<()> {
    let bytes = fsutil::read(&args.file)?;
    let identity = open(&args.file, &bytes, &args.password)?;
    let is_pfx = identity.pfx_format.is_some();
    let mut doc = report(&identity, OffsetDateTime::now_utc(), is_pfx);
    doc.file = Some(args.file.display().to_string());
    print_report(&doc, global)?;
    let problems = identity.problems(OffsetDateTime::now_utc(), is_pfx);
    match problems.first() {
        None => Ok(()),
        Some(p) => Err(fail(
            Exit::BadInput,
            format!("{}: {}", args.file.display(), hints::with_hint(p, hints::cert_problem_hint(p))),
        )),
    }
}

fn print_report(doc: &Report, global: &Global) -> anyhow::Result<()> {
    match global.output {
        OutputFormat::Json => output::print_json(doc),
        _ => {
            let f = &doc.facts;
            let mut fields = Vec::new();
            if let Some(file) = &doc.file {
                fields.push(("file", file.clone()));
            }
            fields.extend([
                ("subject", f.subject.clone()),
                ("issuer", f.issuer.clone()),
                ("serial", f.serial.clone()),
                ("not before", f.not_before.clone()),
                ("not after", format!("{} ({})", f.not_after, days_in_words(f.days_left))),
                ("key", format!("{} {}", f.key_type, f.key_bits.map(|b| b.to_string()).unwrap_or_default())),
                ("thumbprint (SHA-1)", f.thumbprint_sha1.clone()),
                ("thumbprint (SHA-256)", f.thumbprint_sha256.clone()),
                ("x5t", f.x5t.clone()),
                ("x5t#S256", f.x5t_s256.clone()),
                (
                    "private key",
                    match doc.key_matches {
                        None => "no".to_string(),
                        Some(true) => "yes, matches the certificate".to_string(),
                        Some(false) => "yes, but it does NOT match the certificate".to_string(),
                    },
                ),
            ]);
            if let Some(format) = doc.pfx_format {
                fields.push(("pfx format", format.to_string()));
            }
            if let Some(files) = &doc.files {
                fields.push(("wrote", files.pfx.clone()));
                fields.push(("wrote", files.cer.clone()));
                if let Some(pem) = &files.pem {
                    fields.push(("wrote", pem.clone()));
                }
            }
            output::print_fields(&fields)?;
            if (0..30).contains(&f.days_left) {
                output::warn(global.style, format!("the certificate expires in {} days: rotate it", f.days_left));
            }
            Ok(())
        }
    }
}

fn days_in_words(days: i64) -> String {
    match days {
        d if d < 0 => format!("expired {} days ago", -d),
        0 => "expires within a day".to_string(),
        1 => "1 day left".to_string(),
        d => format!("{d} days left"),
    }
}
