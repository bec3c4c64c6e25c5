//! One module per command.

pub mod cert;
pub mod completions;
#[cfg(feature = "sim")]
pub mod demo;
pub mod exo;
pub mod fleet;
pub mod rotate;
pub mod setup;
#[cfg(feature = "sim")]
pub mod sim;
pub mod status;
pub mod teardown;
pub mod token;
