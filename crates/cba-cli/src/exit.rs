//! Exit codes (documented in docs/exit-codes.md) and the error wrapper that carries one.

use std::fmt;

/// Why `cba` stopped. The numbers are a public contract: scripts branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Unexpected internal error (a bug).
    Internal = 1,
    /// Bad command line (clap also exits 2).
    Usage = 2,
    /// Bad input: a file, certificate, password or profile we cannot use.
    BadInput = 3,
    /// The identity platform refused to authenticate us (AADSTS errors, declined sign-in).
    Auth = 4,
    /// Authenticated, but not allowed (Graph 403, Exchange 401 "not allowed to call").
    Permission = 5,
    /// The remote service failed or could not be reached within the deadline (5xx, 429 storms, network).
    Remote = 6,
    /// A check did not pass (`cba status`, the proof step of `cba setup`, `cba demo`).
    Verify = 7,
}

/// An error that knows its exit code. Attach one with [`ExitExt::exit`].
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Print the whole chain once; the wrapped error is not also a `source`.
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for Failure {}

/// Build a failure with a message.
pub fn fail(exit: Exit, message: impl fmt::Display) -> anyhow::Error {
    anyhow::Error::new(Failure { exit, error: anyhow::anyhow!("{message}") })
}

/// Tag a result's error with an exit code.
pub trait ExitExt<T> {
    fn exit(self, exit: Exit) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> ExitExt<T> for Result<T, E> {
    fn exit(self, exit: Exit) -> anyhow::Result<T> {
        self.map_err(|e| anyhow::Error::new(Failure { exit, error: e.into() }))
    }
}

/// The exit code for an error: the outermost [`Failure`] wins, else `Internal`.
pub fn code_for(err: &anyhow::Error) -> Exit {
    err.chain().find_map(|e| e.downcast_ref::<Failure>()).map(|f| f.exit).unwrap_or(Exit::Internal)
}
