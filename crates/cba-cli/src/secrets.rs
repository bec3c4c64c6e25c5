//! Where passwords come from. Never argv: an environment variable, a file, stdin, or a prompt.

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;

use cba_cert::Password;

use crate::exit::{Exit, fail};

/// The password flags shared by every command that reads or writes a PFX.
#[derive(Debug, Clone, Default, clap::Args)]
#[group(id = "password_source", multiple = false)]
pub struct PasswordArgs {
    /// Read the PFX password from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    /// Read the PFX password from the first line of this file.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Read the PFX password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Not a flag: the file has no password, read no source and never prompt (`cba demo`'s own files).
    #[arg(skip)]
    pub unprotected: bool,
}

/// Why a password is wanted: a new file asks twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Protecting a new PFX.
    Create,
    /// Opening an existing PFX.
    Open,
}

/// The password from the explicit flags, else the first set variable of `default_envs`.
/// `Ok(None)` when no source is configured (the caller decides whether to prompt).
pub fn from_sources(args: &PasswordArgs, default_envs: &[&str]) -> anyhow::Result<Option<Password>> {
    if args.unprotected {
        return Ok(None);
    }
    if let Some(var) = &args.password_env {
        return match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(Password::new(v))),
            Ok(_) => {
                Err(fail(Exit::BadInput, format!("the environment variable {var} (from --password-env) is empty")))
            }
            Err(_) => {
                Err(fail(Exit::BadInput, format!("the environment variable {var} (from --password-env) is not set")))
            }
        };
    }
    if let Some(path) = &args.password_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail(Exit::BadInput, format!("cannot read the password file {}: {e}", path.display())))?;
        let line = first_line(&text);
        if line.is_empty() {
            return Err(fail(Exit::BadInput, format!("the password file {} is empty", path.display())));
        }
        return Ok(Some(Password::new(line)));
    }
    if args.password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| fail(Exit::BadInput, format!("cannot read the password from standard input: {e}")))?;
        let line = first_line(&text);
        // An empty password would write a PFX anyone can open: that takes --no-password, said out loud.
        if line.is_empty() {
            return Err(fail(
                Exit::BadInput,
                "the password from standard input (--password-stdin) is empty; for a PFX without a password use \
                 --no-password instead",
            ));
        }
        return Ok(Some(Password::new(line)));
    }
    for var in default_envs {
        if let Ok(v) = std::env::var(var)
            && !v.is_empty()
        {
            return Ok(Some(Password::new(v)));
        }
    }
    Ok(None)
}

/// Ask on the terminal; with no terminal, fail naming the options.
pub fn prompt(purpose: Purpose, what: &str, default_envs: &[&str]) -> anyhow::Result<Password> {
    if !std::io::stdin().is_terminal() {
        let envs = default_envs.join(" or ");
        return Err(fail(
            Exit::BadInput,
            format!(
                "{what} needs a password and there is no terminal to ask on: set {envs}, or pass \
                 --password-env VAR, --password-file FILE or --password-stdin{}",
                if purpose == Purpose::Create { " (or --no-password for an unprotected PFX)" } else { "" }
            ),
        ));
    }
    let first = rpassword::prompt_password(format!("Password for {what}: "))
        .map_err(|e| fail(Exit::BadInput, format!("cannot read the password: {e}")))?;
    if purpose == Purpose::Create {
        if first.is_empty() {
            return Err(fail(Exit::BadInput, "the password is empty; use --no-password for an unprotected PFX"));
        }
        let again = rpassword::prompt_password("Repeat the password: ")
            .map_err(|e| fail(Exit::BadInput, format!("cannot read the password: {e}")))?;
        if again != first {
            return Err(fail(Exit::BadInput, "the two passwords differ; nothing was written"));
        }
    }
    Ok(Password::new(first))
}

/// Ask for a secret other than a PFX password (a token PIN) on the terminal; with no terminal, fail saying
/// `otherwise` (the other sources).
pub fn prompt_secret(prompt: &str, otherwise: &str) -> anyhow::Result<zeroize::Zeroizing<String>> {
    if !std::io::stdin().is_terminal() {
        return Err(fail(
            Exit::BadInput,
            format!("{prompt} is needed and there is no terminal to ask on: {otherwise}"),
        ));
    }
    let secret = rpassword::prompt_password(format!("{prompt}: "))
        .map_err(|e| fail(Exit::BadInput, format!("cannot read the {prompt}: {e}")))?;
    Ok(zeroize::Zeroizing::new(secret))
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").trim_end_matches('\r').to_string()
}
