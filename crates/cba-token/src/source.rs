//! [`CertificateTokenSource`]: the [`cba_http::TokenSource`] of a certificate credential, for the Graph and
//! Exchange clients.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use cba_http::{BoxError, TokenSource};
use tokio::sync::Mutex;

use crate::assertion::ClientCertificate;
use crate::cache::REFRESH_MARGIN;
use crate::client::TokenClient;
use crate::cloud::Resource;
use crate::token::AccessToken;

/// App-only tokens for one resource from one certificate, held in memory and renewed when under
/// [`REFRESH_MARGIN`] is left (or after [`invalidate`](TokenSource::invalidate)). Concurrent callers share
/// one request: the first fetches, the others wait for its token.
///
/// The client's own cache (if any) is consulted first, except right after `invalidate`.
pub struct CertificateTokenSource {
    client: TokenClient,
    cert: ClientCertificate,
    scope: String,
    current: Mutex<Option<AccessToken>>,
    stale: std::sync::atomic::AtomicBool,
}

impl CertificateTokenSource {
    /// Tokens for `resource` (scope `<resource>/.default` in the client's cloud).
    pub fn new(client: TokenClient, cert: ClientCertificate, resource: &Resource) -> CertificateTokenSource {
        let scope = client.scope_for(resource);
        CertificateTokenSource {
            client,
            cert,
            scope,
            current: Mutex::new(None),
            stale: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The scope asked for.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// A valid token (the held one, or a new one).
    pub async fn access_token(&self) -> crate::Result<AccessToken> {
        let mut held = self.current.lock().await;
        let now = self.client.now();
        let stale = self.stale.swap(false, std::sync::atomic::Ordering::SeqCst);
        if stale {
            *held = None;
        }
        if let Some(token) = held.as_ref()
            && token.is_fresh(now, REFRESH_MARGIN)
        {
            return Ok(token.clone());
        }
        let token = if stale {
            self.client.fetch_token(&self.cert, &self.scope).await?
        } else {
            self.client.get_token_for_scope(&self.cert, &self.scope).await?
        };
        *held = Some(token.clone());
        Ok(token)
    }
}

impl TokenSource for CertificateTokenSource {
    fn token(&self) -> Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send + '_>> {
        Box::pin(async move {
            let token = self.access_token().await?;
            Ok(token.secret().to_owned())
        })
    }

    fn invalidate(&self) {
        self.stale.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl fmt::Debug for CertificateTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateTokenSource")
            .field("cert", &self.cert)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Authority;

    #[tokio::test]
    async fn holds_the_token_shares_it_and_renews_after_invalidate() {
        let sim = cba_sim::SimTenant::builder().start().await;
        let identity = cba_cert::generate(&cba_cert::NewCertificate::new("source")).unwrap();
        let app = sim.seed_app("source", &[identity.certificate.der()]).await;
        sim.seed_grant_manage_as_app(&app).await;
        let client = TokenClient::builder().authority(Authority::new(sim.login_url()).unwrap()).build().unwrap();
        let cert = ClientCertificate::new(identity, sim.tenant_id(), &app.app_id).unwrap();
        let source = CertificateTokenSource::new(client, cert, &Resource::Exchange);
        assert!(source.scope().ends_with("/.default"));

        let (a, b) = tokio::join!(source.token(), source.token());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a, b, "concurrent callers share one token");
        let token_requests =
            || async { sim.requests().await.iter().filter(|r| r.path.ends_with("/oauth2/v2.0/token")).count() };
        assert_eq!(token_requests().await, 1);
        assert_eq!(source.token().await.unwrap(), a, "held, not fetched again");
        assert_eq!(token_requests().await, 1);

        source.invalidate();
        let c = source.token().await.unwrap();
        assert_ne!(c, a, "a new token after invalidate");
        assert_eq!(token_requests().await, 2);
        assert!(!format!("{source:?}").contains(&c), "Debug never shows the token");
    }
}
