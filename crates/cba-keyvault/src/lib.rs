#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod client;
mod error;
mod identity;
mod signer;
mod url;

pub use client::{API_VERSION, CertificatePolicy, Operation, VaultCertificate, VaultClient};
pub use error::Error;
pub use identity::{IMDS_ENDPOINT, ManagedIdentity};
pub use signer::VaultSigner;
pub use url::{CertificateUrl, is_vault_url};

/// The roles an identity needs on the vault: signing, and creating certificates (setup and rotation).
pub const ROLES_HINT: &str = "the identity needs the \"Key Vault Crypto User\" role on the vault to sign, and \
    \"Key Vault Certificates Officer\" to create certificates (cba setup, cba cert rotate)";
