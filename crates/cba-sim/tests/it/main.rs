//! Integration tests for cba-sim: one binary, a module per simulated surface.

mod common;
mod device_code;
mod exchange;
mod faults;
mod graph_apps;
mod graph_sps;
mod independence;
mod inspect;
mod login;
mod robustness;
