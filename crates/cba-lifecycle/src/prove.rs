//! The proof step: an app-only Exchange token with the certificate, carrying what the setup gave the app.

use std::time::Duration;

use cba_graph::wellknown::EXCHANGE_MANAGE_AS_APP;
use cba_http::{RetryPolicy, Verdict};
use cba_token::{AccessToken, ClientCertificate, Resource};
use serde::Serialize;

use crate::error::Missing;
use crate::progress::Event;
use crate::{Error, Services};

/// What [`prove`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proof {
    /// The token's `roles` (Exchange.ManageAsApp).
    pub roles: Vec<String>,
    /// The token's `wids` (directory roles), when it has the claim.
    pub wids: Option<Vec<String>>,
    /// The tenant the token was issued in (`tid`), when the token can be read.
    pub tenant_id: Option<String>,
    /// Token requests sent.
    pub requests: u32,
    /// Time spent, waits included.
    #[serde(skip)]
    pub elapsed: Duration,
}

/// The claims the status and proof checks read, when the token is a JWT (Microsoft's tokens are opaque to
/// clients by contract: an unreadable token yields nothing, not an error).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenClaims {
    /// `roles`.
    pub roles: Vec<String>,
    /// `wids`, when present.
    pub wids: Option<Vec<String>>,
    /// `tid`.
    pub tenant_id: Option<String>,
    /// `app_displayname`.
    pub app_name: Option<String>,
    /// Whether the token could be read at all.
    pub readable: bool,
}

impl TokenClaims {
    /// Read what can be read.
    pub fn of(token: &AccessToken) -> TokenClaims {
        match token.decode() {
            Ok(d) => TokenClaims {
                roles: d.claim_strings("roles").into_iter().map(str::to_owned).collect(),
                wids: d.claims.get("wids").map(|_| d.claim_strings("wids").into_iter().map(str::to_owned).collect()),
                tenant_id: d.claim_str("tid").map(str::to_owned),
                app_name: d.claim_str("app_displayname").map(str::to_owned),
                readable: true,
            },
            Err(_) => TokenClaims::default(),
        }
    }

    /// Exchange.ManageAsApp in `roles`.
    pub fn has_grant(&self) -> bool {
        self.roles.iter().any(|r| r == EXCHANGE_MANAGE_AS_APP)
    }

    /// One of `role_ids` in `wids`; `None` when the token has no `wids` claim (it cannot tell).
    pub fn has_role(&self, role_ids: &[&str]) -> Option<bool> {
        self.wids
            .as_ref()
            .map(|w| role_ids.is_empty() || w.iter().any(|id| role_ids.iter().any(|r| r.eq_ignore_ascii_case(id))))
    }
}

/// Get an app-only Exchange token with `cert`, waiting out replication until `deadline`: the app or
/// certificate not known yet (AADSTS700016/700027), and a token without Exchange.ManageAsApp in `roles` or
/// (when it has `wids`) without one of `role_ids`. Every wait goes through [`cba_http::with_retry_on`] on
/// the services' clock and is reported as [`Event::Wait`].
pub async fn prove(
    services: &Services,
    cert: &ClientCertificate,
    deadline: Duration,
    role_ids: &[&str],
) -> Result<Proof, Error> {
    let policy = RetryPolicy {
        max_attempts: u32::MAX,
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(30),
        deadline,
        ..services.retry.clone()
    };
    let start = services.now();
    let scope = services.tokens.scope_for(&Resource::Exchange);
    let progress = services.progress.clone();
    let (outcome, stats) = cba_http::with_retry_on(
        services.clock.as_ref(),
        &policy,
        |_| services.tokens.get_token_for_scope(cert, &scope),
        |outcome| match outcome {
            Err(e) if e.is_replication_pending() => {
                let code = e.aadsts().first().map(|c| format!("AADSTS{c}: ")).unwrap_or_default();
                Verdict::Retry {
                    after: None,
                    reason: format!("{code}Entra has not replicated the app or its certificate yet"),
                }
            }
            Ok(token) => {
                let claims = TokenClaims::of(token);
                match missing(&claims, role_ids) {
                    None => Verdict::Done,
                    Some(m) => Verdict::Retry {
                        after: None,
                        reason: format!("the token has no {} yet (replication)", m.describe()),
                    },
                }
            }
            Err(_) => Verdict::Done,
        },
        |event| {
            progress.event(&Event::Wait {
                reason: event.reason.clone(),
                next_try_in: event.wait,
                elapsed: event.elapsed,
                remaining: deadline.saturating_sub(event.elapsed + event.wait),
            })
        },
    )
    .await;
    let elapsed = services.since(start);
    let doing = || {
        format!(
            "getting an Exchange token as app {} with certificate {}",
            cert.client_id(),
            cert.certificate().thumbprint_sha1_hex()
        )
    };
    let token = outcome.map_err(|e| {
        let source = if stats.gave_up && e.is_replication_pending() {
            cba_token::Error::GaveUp { attempts: stats.attempts, elapsed: stats.elapsed, last: Box::new(e) }
        } else {
            e
        };
        Error::Token { doing: doing(), source }
    })?;
    let claims = TokenClaims::of(&token);
    if let Some(m) = missing(&claims, role_ids) {
        return Err(Error::NotProven {
            app_id: cert.client_id().to_string(),
            missing: m,
            roles: claims.roles,
            waited: elapsed,
        });
    }
    Ok(Proof { roles: claims.roles, wids: claims.wids, tenant_id: claims.tenant_id, requests: stats.attempts, elapsed })
}

/// What the token lacks. An unreadable (opaque) token cannot be checked: it was issued, which proves the
/// app, certificate and service principal; the claims are then not held against it.
fn missing(claims: &TokenClaims, role_ids: &[&str]) -> Option<Missing> {
    if !claims.readable {
        return None;
    }
    if !claims.has_grant() {
        return Some(Missing::Grant);
    }
    if claims.has_role(role_ids) == Some(false) {
        return Some(Missing::Role);
    }
    None
}
