//! One module per command.

pub mod cert;
pub mod completions;
