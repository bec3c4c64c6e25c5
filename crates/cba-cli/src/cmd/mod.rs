//! One module per command.

pub mod cert;
pub mod completions;
pub mod sim;
pub mod token;
