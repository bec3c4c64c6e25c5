//! The administrator's Graph sign-in (setup, teardown, the rotation fallback, status with Graph checks),
//! and the guard that it acts in the tenant the caller named.

use std::sync::Arc;

use cba_graph::{StaticToken, TokenSource};
use cba_token::admin::{self, DeviceCodeOptions};
use cba_token::{AccessToken, CertificateTokenSource, ClientCertificate, Resource};

use crate::progress::Event;
use crate::{Error, Services};

/// How the administrator signs in to Graph. Reading a token file or a PFX is the caller's job; this holds
/// what it read.
pub enum AdminCredential {
    /// Device code: the prompt goes to the progress sink as [`Event::Prompt`].
    DeviceCode,
    /// A Graph token the admin already has (a JWT or an opaque string).
    Token(zeroize::Zeroizing<String>),
    /// A provisioning app's certificate.
    Certificate {
        /// Its certificate and key.
        identity: Box<cba_cert::Identity>,
        /// Its client id.
        client_id: String,
    },
}

impl std::fmt::Debug for AdminCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminCredential::DeviceCode => f.write_str("DeviceCode"),
            AdminCredential::Token(_) => f.write_str("Token([redacted])"),
            AdminCredential::Certificate { client_id, .. } => write!(f, "Certificate({client_id})"),
        }
    }
}

/// A signed-in administrator: Graph tokens, and the tenant they act in when the token says so.
#[derive(Clone)]
pub struct AdminSession {
    /// Bearer tokens for Graph.
    pub tokens: Arc<dyn TokenSource>,
    /// The token's `tid`, when the token can be read.
    pub tenant_id: Option<String>,
}

impl std::fmt::Debug for AdminSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSession").field("tenant_id", &self.tenant_id).finish_non_exhaustive()
    }
}

/// Sign the administrator in for `tenant` (id or domain).
pub async fn sign_in(services: &Services, credential: &AdminCredential, tenant: &str) -> Result<AdminSession, Error> {
    let graph_resource = services.cloud.graph_root();
    let token: AccessToken = match credential {
        AdminCredential::Token(t) => admin::existing_token(t, graph_resource, services.now())
            .map_err(Error::token_in("the admin's Graph token cannot be used"))?,
        AdminCredential::DeviceCode => {
            let mut options = DeviceCodeOptions::for_setup(graph_resource);
            options.tenant = tenant.to_string();
            let progress = services.progress.clone();
            admin::device_code(&services.tokens, &options, |prompt| {
                progress.event(&Event::Prompt(prompt.message.clone()));
            })
            .await
            .map_err(Error::token_in("the administrator's device-code sign-in"))?
        }
        AdminCredential::Certificate { identity, client_id } => {
            let cert = ClientCertificate::new((**identity).clone(), tenant, client_id)
                .map_err(Error::token_in("the provisioning app's certificate"))?;
            let source = CertificateTokenSource::new(services.tokens.clone(), cert, &Resource::Graph);
            let token = source
                .access_token()
                .await
                .map_err(Error::token_in(format!("the provisioning app {client_id}'s Graph token")))?;
            let tenant_id = tenant_of(&token);
            return Ok(AdminSession { tokens: Arc::new(source), tenant_id });
        }
    };
    let tenant_id = tenant_of(&token);
    Ok(AdminSession { tokens: Arc::new(StaticToken::new(token.secret())), tenant_id })
}

fn tenant_of(token: &AccessToken) -> Option<String> {
    token.decode().ok().and_then(|d| d.claim_str("tid").map(str::to_owned))
}
