//! One integration test binary for cba-exo: a hand-made InvokeCommand fake on wiremock for exact wire checks,
//! and cba-sim's strict Exchange endpoint for the end-to-end behaviour.

mod errors;
mod paging;
mod sim;
mod support;
mod tls;
mod tokens;
mod wire;
mod writes;
