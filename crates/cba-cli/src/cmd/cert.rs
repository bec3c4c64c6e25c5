//! `cba cert new` and `cba cert show`.

use std::path::{Path, PathBuf};

use cba_cert::{Identity, KeySize, NewCertificate, Password, PfxFormat, Validity};
use serde::Serialize;
use time::OffsetDateTime;

use crate::Global;
use crate::exit::{Exit, ExitExt as _, fail};
use crate::fsutil::{self, Mode};
use crate::hints;
use crate::output::{self, OutputFormat, Style};
use crate::secrets::{self, PasswordArgs, Purpose};

/// Environment variables `cert new` reads the new PFX's password from, unless told otherwise.
pub const NEW_PASSWORD_ENVS: &[&str] = &["CBA_PFX_PASSWORD"];
/// Environment variables `cert show` (and everything that opens a PFX) reads the password from.
pub const OPEN_PASSWORD_ENVS: &[&str] = &["CBA_PFX_PASSWORD", "AZURE_CLIENT_CERTIFICATE_PASSWORD"];

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

/// How to make a certificate: `cba cert new`, and `cba setup` without `--cert`.
#[derive(Debug, Clone, clap::Args)]
pub struct NewCertOptions {
    /// Folder to write into (must exist).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out_dir: PathBuf,
    /// Subject DN, e.g. "CN=contoso-exo, O=Contoso" (default: CN=NAME).
    #[arg(long)]
    pub subject: Option<String>,
    /// DNS subject alternative name (repeatable).
    #[arg(long = "dns", value_name = "NAME")]
    pub dns: Vec<String>,
    /// Validity in days (default 365; at most 10 years).
    #[arg(long, conflicts_with = "years")]
    pub days: Option<u32>,
    /// Validity in years (at most 10).
    #[arg(long)]
    pub years: Option<u32>,
    /// RSA key size.
    #[arg(long, value_enum, default_value_t = KeyBits::Rsa2048)]
    pub key_size: KeyBits,
    /// PKCS#12 protection: modern (AES-256, SHA-256 MAC) or legacy (3DES, SHA-1 MAC) for Windows Server 2016 and older.
    #[arg(long, value_enum, default_value_t = PfxKind::Modern)]
    pub pfx_format: PfxKind,
    /// Also write NAME.pem with the certificate and the unencrypted PKCS#8 private key (0600).
    #[arg(long)]
    pub pem: bool,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Write the PFX without a password (an empty one). Anyone who can read the file gets the key.
    #[arg(long, conflicts_with_all = ["password_env", "password_file", "password_stdin"])]
    pub no_password: bool,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

impl Default for NewCertOptions {
    fn default() -> Self {
        NewCertOptions {
            out_dir: PathBuf::from("."),
            subject: None,
            dns: Vec::new(),
            days: None,
            years: None,
            key_size: KeyBits::Rsa2048,
            pfx_format: PfxKind::Modern,
            pem: false,
            password: PasswordArgs::default(),
            no_password: false,
            force: false,
        }
    }
}

impl NewCertOptions {
    /// Whether any option differs from its default (`cba setup` refuses them beside `--cert`).
    pub fn any_given(&self) -> bool {
        self.out_dir != Path::new(".")
            || self.subject.is_some()
            || !self.dns.is_empty()
            || self.days.is_some()
            || self.years.is_some()
            || self.key_size != KeyBits::Rsa2048
            || self.pfx_format != PfxKind::Modern
            || self.pem
            || self.no_password
            || self.force
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyBits {
    #[value(name = "2048")]
    Rsa2048,
    #[value(name = "3072")]
    Rsa3072,
    #[value(name = "4096")]
    Rsa4096,
}

impl From<KeyBits> for KeySize {
    fn from(bits: KeyBits) -> KeySize {
        match bits {
            KeyBits::Rsa2048 => KeySize::Rsa2048,
            KeyBits::Rsa3072 => KeySize::Rsa3072,
            KeyBits::Rsa4096 => KeySize::Rsa4096,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PfxKind {
    Modern,
    Legacy,
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

/// A certificate `make_certificate` wrote.
#[derive(Debug)]
pub struct MadeCertificate {
    /// The certificate with its key (`pfx_format` set).
    pub identity: Identity,
    pub pfx_path: PathBuf,
    pub cer_path: PathBuf,
    pub pem_path: Option<PathBuf>,
}

/// Check a `--name` used for file names.
pub fn check_file_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(fail(Exit::Usage, format!("--name {name:?} must be a plain file name (no folders, not hidden)")));
    }
    Ok(())
}

/// `cba cert new`'s work: make a certificate and write NAME.pfx, NAME.cer (and NAME.pem) into the options'
/// folder, all or none, never replacing a file without `force`.
pub fn make_certificate(name: &str, options: &NewCertOptions, style: Style) -> anyhow::Result<MadeCertificate> {
    check_file_name(name)?;
    let out_dir = &options.out_dir;
    if out_dir.exists() && !out_dir.is_dir() {
        return Err(fail(
            Exit::BadInput,
            format!("--out-dir {} is a file, not a folder; give the folder to write NAME.pfx into", out_dir.display()),
        ));
    }
    if !out_dir.is_dir() {
        return Err(fail(
            Exit::BadInput,
            format!("the output folder {} does not exist; create it or choose another --out-dir", out_dir.display()),
        ));
    }
    let pfx_path = options.out_dir.join(format!("{name}.pfx"));
    let cer_path = options.out_dir.join(format!("{name}.cer"));
    let pem_path = options.pem.then(|| options.out_dir.join(format!("{name}.pem")));
    let mut targets = vec![pfx_path.as_path(), cer_path.as_path()];
    targets.extend(pem_path.as_deref());
    fsutil::check_free(&targets, options.force)?;

    let password = if options.no_password {
        None
    } else {
        match secrets::from_sources(&options.password, NEW_PASSWORD_ENVS)? {
            Some(p) => Some(p),
            None => Some(secrets::prompt(Purpose::Create, &pfx_path.display().to_string(), NEW_PASSWORD_ENVS)?),
        }
    };
    if let Some(p) = &password
        && !p.is_ascii()
    {
        output::warn(style, "the password is not ASCII: Java keytool (17) cannot open such PFX files");
    }

    let validity = match (options.days, options.years) {
        (_, Some(y)) => Validity::Years(y),
        (Some(d), None) => Validity::Days(d),
        (None, None) => Validity::default(),
    };
    let mut request = NewCertificate::new(name).validity(validity).key_size(options.key_size.into());
    if let Some(subject) = &options.subject {
        request = request.subject(subject);
    }
    for dns in &options.dns {
        request = request.dns_name(dns);
    }
    let identity = cba_cert::generate(&request)
        .map_err(|e| fail(Exit::BadInput, hints::with_hint(&e, hints::cert_error_hint(&e))))?;
    let format = match options.pfx_format {
        PfxKind::Modern => PfxFormat::Modern,
        PfxKind::Legacy => PfxFormat::Legacy,
    };
    let mut identity =
        write_identity(identity, password.as_ref(), format, &pfx_path, &cer_path, pem_path.as_deref(), options.force)?;
    identity.pfx_format = Some(format);
    Ok(MadeCertificate { identity, pfx_path, cer_path, pem_path })
}

/// Write PFX + CER (+ PEM) atomically, all or none.
pub fn write_identity(
    identity: Identity,
    password: Option<&Password>,
    format: PfxFormat,
    pfx_path: &Path,
    cer_path: &Path,
    pem_path: Option<&Path>,
    force: bool,
) -> anyhow::Result<Identity> {
    let pfx = identity.to_pfx(password, format).exit(Exit::Internal)?;
    let mut staged = vec![
        fsutil::stage(pfx_path, &pfx, Mode::Private)?,
        fsutil::stage(cer_path, identity.certificate.der(), Mode::Public)?,
    ];
    if let Some(pem_path) = pem_path {
        let pem = identity.to_pem().exit(Exit::Internal)?;
        staged.push(fsutil::stage(pem_path, pem.as_bytes(), Mode::Private)?);
    }
    fsutil::commit_all(&mut staged, force)?;
    Ok(identity)
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

/// Load a certificate file, asking for a password only when it is a protected PFX.
pub fn open(path: &Path, bytes: &[u8], password: &PasswordArgs) -> anyhow::Result<Identity> {
    open_with_password(path, bytes, password).map(|(identity, _)| identity)
}

/// [`open`], also returning the password that opened it (to protect a successor with the same one).
pub fn open_with_password(
    path: &Path,
    bytes: &[u8],
    password: &PasswordArgs,
) -> anyhow::Result<(Identity, Option<Password>)> {
    let named = |e: cba_cert::Error| {
        fail(Exit::BadInput, format!("{}: {}", path.display(), hints::with_hint(&e, hints::cert_error_hint(&e))))
    };
    let given = secrets::from_sources(password, OPEN_PASSWORD_ENVS)?;
    match cba_cert::load(bytes, given.as_ref()) {
        Ok(identity) => Ok((identity, given)),
        // No source given: the PFX may be unprotected (tried above with the empty password); else ask.
        Err(cba_cert::Error::WrongPassword { given: false }) if !password.unprotected => {
            let prompted: Password = secrets::prompt(Purpose::Open, &path.display().to_string(), OPEN_PASSWORD_ENVS)?;
            let identity = cba_cert::load(bytes, Some(&prompted)).map_err(named)?;
            Ok((identity, Some(prompted)))
        }
        Err(e) => Err(named(e)),
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
