#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![recursion_limit = "256"]

mod clock;
mod config;
mod exchange;
mod faults;
mod graph;
mod http;
mod ids;
mod inspect;
mod jwt;
mod login;
mod server;
mod sim;
mod state;
pub mod wellknown;

pub use config::{DuplicateRoleAssignment, Service};
pub use inspect::{
    AppRoleAssignmentSnapshot, ApplicationSnapshot, KeyCredentialSnapshot, RequestRecord, RoleAssignmentSnapshot,
    ServicePrincipalSnapshot, StateSnapshot, TenantSnapshot,
};
pub use sim::{ConnectionInfo, SeededApp, SimError, SimTenant, SimTenantBuilder, TenantInfo};
