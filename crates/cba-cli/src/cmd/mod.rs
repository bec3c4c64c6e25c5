//! One module per command.

pub mod cert;
pub mod completions;
pub mod demo;
pub mod exo;
pub mod rotate;
pub mod setup;
pub mod sim;
pub mod status;
pub mod teardown;
pub mod token;
