//! Integration tests for cba-token: one binary, one module per area.

mod admin;
mod assertion;
mod authority;
mod cache;
mod docs;
mod http;
mod jwt;
mod secrets;
mod signer;
mod sim;
mod support;
mod tls;
mod token_endpoint;
