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
use crate::pkcs11::{self, KeyArgs};
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
  CBA_PKCS11_PIN=... cba cert new --name contoso-exo --key 'pkcs11:token=cba;object=contoso-exo'
  cba cert new --name contoso-exo --key https://contoso-kv.vault.azure.net/certificates/contoso-exo

The password never comes from the command line: --password-env VAR, --password-file FILE, --password-stdin,
CBA_PFX_PASSWORD, or a prompt (asked twice) when a terminal is attached.

With --key the RSA-2048 key is generated inside the PKCS#11 token and never leaves it (not extractable); the
self-signed certificate is stored beside it and NAME.cer written for upload (no PFX). A rerun reuses the key
and certificate with that label; --force replaces them. The module: --pkcs11-module PATH, the URI's
module-path, or CBA_PKCS11_MODULE (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so). With --key https://… the vault
makes the key (not exportable) and the certificate; a rerun reuses its latest version, --force makes a new one.
docs/keys.md.";

const SHOW_EXAMPLES: &str = "\
Examples:
  cba cert show contoso-exo.cer
  CBA_PFX_PASSWORD=... cba cert show contoso-exo.pfx --output json
  cba cert show contoso-exo.pem
  CBA_PKCS11_PIN=... cba cert show --key 'pkcs11:token=cba;object=contoso-exo'
  cba cert show --key https://contoso-kv.vault.azure.net/certificates/contoso-exo --output json

Exits 3 when the certificate cannot work as an Entra credential (expired, not RSA, key mismatch, ...).";

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// Base name of the files (NAME.pfx, NAME.cer, NAME.pem) and the default subject CN.
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub options: NewCertOptions,
    #[command(flatten)]
    pub key: KeyArgs,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The certificate file.
    #[arg(required_unless_present = "key", conflicts_with = "key")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub password: PasswordArgs,
    #[command(flatten)]
    pub key: KeyArgs,
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
    pfx: Option<String>,
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
    token_key: Option<TokenKeyJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vault_key: Option<crate::keyvault::VaultKeyJson>,
}

/// Where a `--key` key is and how the token protects it (read back from the token).
#[derive(Debug, Serialize)]
struct TokenKeyJson {
    uri: String,
    token: String,
    label: String,
    id: String,
    sensitive: bool,
    extractable: bool,
    reused: bool,
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
        token_key: None,
        vault_key: None,
    }
}

fn new(args: NewArgs, global: &Global) -> anyhow::Result<()> {
    if let Some(url) = args.key.key.as_deref().filter(|k| crate::keyvault::is_vault(k)) {
        pkcs11::refuse_pfx_options(&args.options)?;
        let made = crate::keyvault::make_certificate(&args.name, &args.options, url)?;
        let mut doc = vault_report(&made.certificate, made.reused);
        doc.files = Some(Files { pfx: None, cer: made.cer_path.display().to_string(), pem: None });
        return print_report(&doc, global);
    }
    if let Some(uri) = &args.key.key {
        return new_in_token(&args, uri, global);
    }
    let made = make_certificate(&args.name, &args.options, global.style)?;
    let mut doc = report(&made.identity, OffsetDateTime::now_utc(), true);
    doc.files = Some(Files {
        pfx: Some(made.pfx_path.display().to_string()),
        cer: made.cer_path.display().to_string(),
        pem: made.pem_path.as_ref().map(|p| p.display().to_string()),
    });
    print_report(&doc, global)
}

fn show(args: ShowArgs, global: &Global) -> anyhow::Result<()> {
    let Some(file) = &args.file else {
        let uri = args.key.key.as_deref().expect("clap requires FILE or --key");
        if crate::keyvault::is_vault(uri) {
            let (certificate, _signer) = crate::keyvault::open(&crate::keyvault::parse_url(uri)?)?;
            print_report(&vault_report(&certificate, true), global)?;
            let identity = Identity {
                certificate: certificate.certificate.clone(),
                private_key: None,
                chain: Vec::new(),
                pfx_format: None,
            };
            return refuse_problems(&identity, false, &certificate.url.to_string());
        }
        return show_in_token(uri, args.key.pkcs11_module.as_deref(), global);
    };
    let bytes = fsutil::read(file)?;
    let identity = open(file, &bytes, &args.password)?;
    let is_pfx = identity.pfx_format.is_some();
    let mut doc = report(&identity, OffsetDateTime::now_utc(), is_pfx);
    doc.file = Some(file.display().to_string());
    print_report(&doc, global)?;
    refuse_problems(&identity, is_pfx, &file.display().to_string())
}

/// `show` exits 3 when the certificate cannot work as an Entra credential.
fn refuse_problems(identity: &Identity, need_key: bool, what: &str) -> anyhow::Result<()> {
    let problems = identity.problems(OffsetDateTime::now_utc(), need_key);
    match problems.first() {
        None => Ok(()),
        Some(p) => Err(fail(Exit::BadInput, format!("{what}: {}", hints::with_hint(p, hints::cert_problem_hint(p))))),
    }
}

/// The report of a certificate stored beside a key in a token: the key is there and matches (cba-pkcs11
/// refuses a stored certificate that does not hold the key's public key).
fn token_report(
    key: &cba_pkcs11::TokenKey,
    certificate: &cba_cert::Certificate,
    reused: bool,
) -> anyhow::Result<Report> {
    let identity =
        Identity { certificate: certificate.clone(), private_key: None, chain: Vec::new(), pfx_format: None };
    let mut doc = report(&identity, OffsetDateTime::now_utc(), false);
    doc.has_private_key = true;
    doc.key_matches = Some(true);
    let protection = key.protection().map_err(pkcs11::error)?;
    doc.token_key = Some(TokenKeyJson {
        uri: key.uri().to_string(),
        token: key.uri().token.unwrap_or_default(),
        label: key.label().to_string(),
        id: key.id().iter().map(|b| format!("{b:02x}")).collect(),
        sensitive: protection.sensitive,
        extractable: protection.extractable,
        reused,
    });
    Ok(doc)
}

/// The report of a vault certificate: its key is in the vault (the vault made the certificate for it).
fn vault_report(certificate: &cba_keyvault::VaultCertificate, reused: bool) -> Report {
    let identity = Identity {
        certificate: certificate.certificate.clone(),
        private_key: None,
        chain: Vec::new(),
        pfx_format: None,
    };
    let mut doc = report(&identity, OffsetDateTime::now_utc(), false);
    doc.has_private_key = true;
    doc.key_matches = Some(true);
    doc.vault_key = Some(crate::keyvault::VaultKeyJson::new(certificate, reused));
    doc
}

/// `cert new --key`: the key generated in the token (or the one already there), its self-signed certificate
/// stored beside it, NAME.cer written.
fn new_in_token(args: &NewArgs, uri_text: &str, global: &Global) -> anyhow::Result<()> {
    pkcs11::refuse_pfx_options(&args.options)?;
    let made = pkcs11::make_certificate(&args.name, &args.options, uri_text, args.key.pkcs11_module.as_deref())?;
    let mut doc = token_report(&made.key, &made.certificate, made.reused)?;
    doc.files = Some(Files { pfx: None, cer: made.cer_path.display().to_string(), pem: None });
    print_report(&doc, global)
}

fn show_in_token(uri_text: &str, module: Option<&std::path::Path>, global: &Global) -> anyhow::Result<()> {
    let (key, _token) = pkcs11::key_with_certificate(uri_text, module)?;
    let certificate = key.certificate().expect("key_with_certificate checked").clone();
    let doc = token_report(&key, &certificate, true)?;
    print_report(&doc, global)?;
    let identity = Identity { certificate, private_key: None, chain: Vec::new(), pfx_format: None };
    refuse_problems(&identity, false, &key.uri().to_string())
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
            if let Some(k) = &doc.token_key {
                let private = fields.iter_mut().find(|(name, _)| *name == "private key").expect("pushed above");
                private.1 = format!(
                    "in PKCS#11 token {:?}, label {:?}, {}",
                    k.token,
                    k.label,
                    if k.extractable { "EXTRACTABLE" } else { "not extractable" }
                );
                fields.push(("key uri", k.uri.clone()));
            }
            if let Some(k) = &doc.vault_key {
                let private = fields.iter_mut().find(|(name, _)| *name == "private key").expect("pushed above");
                private.1 = format!(
                    "in the vault {}, {}",
                    k.vault,
                    match k.exportable {
                        Some(true) => "EXPORTABLE",
                        Some(false) => "not exportable",
                        None => "exportable: unknown",
                    }
                );
                fields.push(("key url", k.url.clone()));
                fields.push(("kid", k.kid.clone()));
            }
            if let Some(format) = doc.pfx_format {
                fields.push(("pfx format", format.to_string()));
            }
            if let Some(files) = &doc.files {
                fields.extend(files.pfx.clone().map(|pfx| ("wrote", pfx)));
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
