//! cba-graph's integration tests: exact wire behaviour against wiremock, end to end against cba-sim.

#![allow(clippy::result_large_err, reason = "the crate's flat Error is large by design (see src/lib.rs)")]

mod sim;
mod support;
mod tls;
mod upsert;
mod wire;
