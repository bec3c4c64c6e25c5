#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![allow(
    clippy::result_large_err,
    reason = "an Error ends a network round trip, so its size costs nothing; the flat `Api` variant is what callers match on"
)]

mod api;
mod client;
mod error;
pub mod model;
pub mod provision;
pub mod wellknown;

pub use client::{
    DEFAULT_GRAPH_ROOT, GraphClient, GraphClientBuilder, ProofSigner, Replication, RetryNotice, RetryObserver,
};
pub use error::{Error, required_role_for};
pub use model::{Created, Deleted, KeyCredential};

/// Re-exported so callers need not depend on `cba-http` for the policy and the token trait.
pub use cba_http::{BoxError, RetryPolicy, StaticToken, TokenSource};
