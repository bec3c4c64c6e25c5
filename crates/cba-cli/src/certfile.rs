//! Certificate files: making a certificate and writing PFX + CER (+ PEM) all or none, and opening one with
//! its password. Shared by `cba cert`, `cba setup`, `cba cert rotate`, `cba status` and `cba token`.

use std::path::{Path, PathBuf};

use cba_cert::{Identity, KeySize, NewCertificate, Password, PfxFormat, Validity};

use crate::exit::{Exit, ExitExt as _, fail};
use crate::fsutil::{self, Mode};
use crate::hints;
use crate::output::{self, Style};
use crate::secrets::{self, PasswordArgs, Purpose};

/// Environment variables `cert new` reads the new PFX's password from, unless told otherwise.
pub const NEW_PASSWORD_ENVS: &[&str] = &["CBA_PFX_PASSWORD"];
/// Environment variables `cert show` (and everything that opens a PFX) reads the password from.
pub const OPEN_PASSWORD_ENVS: &[&str] = &["CBA_PFX_PASSWORD", "AZURE_CLIENT_CERTIFICATE_PASSWORD"];

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
    let plain = !name.trim().is_empty()
        && name.trim() == name
        && !name.starts_with('.')
        && !name.chars().any(|c| c.is_control() || "/\\<>:\"|?*".contains(c))
        && name.len() <= 200;
    if !plain {
        return Err(fail(
            Exit::Usage,
            format!(
                "--name {name:?} must be a plain file name: no folders, not hidden, no leading or trailing spaces, \
                 no control characters or any of / \\ < > : \" | ? *"
            ),
        ));
    }
    Ok(())
}

/// `--out-dir` must be an existing folder.
pub fn check_out_dir(out_dir: &Path) -> anyhow::Result<()> {
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
    Ok(())
}

/// `cba cert new`'s work: make a certificate and write NAME.pfx, NAME.cer (and NAME.pem) into the options'
/// folder, all or none, never replacing a file without `force`.
pub fn make_certificate(name: &str, options: &NewCertOptions, style: Style) -> anyhow::Result<MadeCertificate> {
    check_file_name(name)?;
    check_out_dir(&options.out_dir)?;
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

    let identity = cba_cert::generate(&new_request(name, options))
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

/// The certificate the options ask for (subject, DNS names, validity, key size).
pub fn new_request(name: &str, options: &NewCertOptions) -> NewCertificate {
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
    request
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
