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
    /// The token was issued by the named tenant's own authority (device code, a provisioning app's
    /// certificate): Entra resolved the tenant, so its `tid` is that tenant. A token the caller brought may
    /// come from anywhere.
    pub issued_for_tenant: bool,
}

/// The tenant an administrator's credential acts in, confirmed before any write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmedTenant {
    /// The tenant id.
    pub id: String,
    /// Its initial `*.onmicrosoft.com` domain, when Graph said.
    pub initial_domain: Option<String>,
}

/// Confirm that `session` acts in `tenant` (an id or a domain) before anything is written: by the token's
/// `tid` when the token can be read and the tenant is an id, else by Graph's `GET /organization` (its id
/// and verified domains). Refuses with [`Error::WrongTenant`] naming both, or when nothing can confirm it.
pub async fn confirm_tenant(
    services: &Services,
    graph: &cba_graph::GraphClient,
    session: &AdminSession,
    tenant: &str,
) -> Result<ConfirmedTenant, Error> {
    if let Some(tid) = &session.tenant_id
        && crate::is_guid(tenant)
        && !tid.eq_ignore_ascii_case(tenant)
    {
        return Err(Error::WrongTenant { expected: tenant.to_string(), actual: tid.clone() });
    }
    match graph.organization().await {
        Ok(org) if org.is(tenant) => {
            Ok(ConfirmedTenant { id: org.id.clone(), initial_domain: org.initial_domain().map(str::to_owned) })
        }
        Ok(org) => {
            let actual = match org.initial_domain() {
                Some(domain) => format!("{} ({domain})", org.id),
                None => org.id.clone(),
            };
            Err(Error::WrongTenant { expected: tenant.to_string(), actual })
        }
        // The token may not read the organization (a provisioning app without Organization.Read.All).
        Err(e) if e.is_permission_denied() => match &session.tenant_id {
            Some(tid) if crate::is_guid(tenant) || session.issued_for_tenant => {
                // The id matched above, or Entra itself resolved the named tenant when it issued the token.
                Ok(ConfirmedTenant { id: tid.clone(), initial_domain: None })
            }
            Some(tid) => {
                // A domain: ask the login service (public, no token) which tenant it belongs to.
                let resolved = services
                    .tokens
                    .tenant_id_of(tenant)
                    .await
                    .map_err(Error::token_in(format!("looking up which tenant {tenant} is")))?;
                if resolved.eq_ignore_ascii_case(tid) {
                    Ok(ConfirmedTenant { id: tid.clone(), initial_domain: None })
                } else {
                    Err(Error::WrongTenant { expected: format!("{tenant} ({resolved})"), actual: tid.clone() })
                }
            }
            None => Err(Error::TenantUnconfirmed { tenant: tenant.to_string(), source: e }),
        },
        Err(e) => Err(Error::Graph { doing: format!("confirming that the administrator acts in {tenant}"), source: e }),
    }
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
            // User.Read lets `GET /organization` confirm the tenant and name its onmicrosoft.com domain.
            options.scopes.push(format!("{}/User.Read", graph_resource.trim_end_matches('/')));
            let progress = services.progress.clone();
            admin::device_code(&services.tokens, &options, |prompt| {
                // Named, as the Exchange sign-in's prompt is: a setup with a role group shows both.
                progress.event(&Event::Prompt(format!("Microsoft Graph sign-in: {}", prompt.message)));
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
            return Ok(AdminSession { tokens: Arc::new(source), tenant_id, issued_for_tenant: true });
        }
    };
    let tenant_id = tenant_of(&token);
    let issued_for_tenant = matches!(credential, AdminCredential::DeviceCode);
    Ok(AdminSession { tokens: Arc::new(StaticToken::new(token.secret())), tenant_id, issued_for_tenant })
}

fn tenant_of(token: &AccessToken) -> Option<String> {
    token.decode().ok().and_then(|d| d.claim_str("tid").map(str::to_owned))
}
