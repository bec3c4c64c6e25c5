#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod error;
mod token;
mod uri;

use std::fmt;

use zeroize::Zeroizing;

pub use error::Error;
pub use token::{KeyProtection, Module, ObjectInfo, Token, TokenKey};
pub use uri::KeyUri;

/// A token's user PIN. `Debug` prints `[redacted]`; wiped on drop. The caller reads it (a prompt, a
/// `pin-source` file, an environment variable): this crate reads nothing by itself.
#[derive(Clone)]
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// Wrap a PIN.
    pub fn new(pin: impl Into<String>) -> Pin {
        Pin(Zeroizing::new(pin.into()))
    }

    /// The contents of a `pin-source` file: the PIN without the line ending a text editor adds.
    pub fn from_file_contents(contents: &str) -> Pin {
        Pin::new(contents.strip_suffix('\n').map(|s| s.strip_suffix('\r').unwrap_or(s)).unwrap_or(contents))
    }

    /// The PIN text. Keep its uses few and local.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin([redacted])")
    }
}
