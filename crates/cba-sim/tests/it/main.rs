//! Integration tests for cba-sim: one binary, a module per simulated surface.

mod common;
mod deletes;
mod device_code;
mod exchange;
mod exchange_rbac;
mod faults;
mod fleet;
mod graph_apps;
mod graph_sps;
mod graph_upsert;
mod independence;
mod inspect;
mod keyvault;
mod login;
mod robustness;
mod strictness;
mod tenants;
