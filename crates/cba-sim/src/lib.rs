#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![recursion_limit = "256"]

mod clock;
mod config;
mod consent;
mod exchange;
mod faults;
mod fleet_routes;
mod graph;
mod http;
mod ids;
mod inspect;
mod jwt;
mod keyvault;
mod login;
mod serve;
mod server;
mod sim;
mod state;
mod tenant_faults;
pub mod wellknown;

pub use config::{DuplicateRoleAssignment, Service};
pub use inspect::{
    AppRoleAssignmentSnapshot, ApplicationSnapshot, ExchangeServicePrincipalSnapshot, KeyCredentialSnapshot,
    ManagementScopeSnapshot, RequestRecord, RoleAssignmentSnapshot, RoleGroupSnapshot, ServicePrincipalSnapshot,
    StateSnapshot, TenantSnapshot,
};
pub use keyvault::VaultCertificateSnapshot;
pub use sim::{ConnectionInfo, SeededApp, SimError, SimTenant, SimTenantBuilder, TenantInfo};
pub use tenant_faults::TenantFault;
