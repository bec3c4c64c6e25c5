use std::fmt;
use std::time::Duration;

use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::error::Result;
use crate::jwt::{self, DecodedJwt};

/// An access token. `Debug` never shows the token itself; read it with [`secret`](Self::secret).
#[derive(Clone)]
#[non_exhaustive]
pub struct AccessToken {
    secret: Zeroizing<String>,
    /// `Bearer`.
    pub token_type: String,
    /// When it expires. For a token whose expiry is unknown (an opaque token given by the caller, see
    /// [`opaque`](Self::opaque)) this is the latest representable time: read [`expires_at`](Self::expires_at)
    /// to tell the two apart.
    pub expires_on: OffsetDateTime,
    /// The scope it was requested for (app-only) or granted (delegated).
    pub scope: String,
    /// Whether it came from the token cache rather than the token endpoint.
    pub from_cache: bool,
    expiry_known: bool,
}

impl AccessToken {
    /// A token from its parts (`from_cache` false).
    pub fn new(
        secret: impl Into<String>,
        token_type: impl Into<String>,
        expires_on: OffsetDateTime,
        scope: impl Into<String>,
    ) -> AccessToken {
        AccessToken {
            secret: Zeroizing::new(secret.into()),
            token_type: token_type.into(),
            expires_on,
            scope: scope.into(),
            from_cache: false,
            expiry_known: true,
        }
    }

    /// A token whose expiry is unknown (not a JWT, or a JWT without `exp`): it is used until the service
    /// refuses it. [`expires_at`](Self::expires_at) is `None` and [`is_fresh`](Self::is_fresh) always true.
    pub fn opaque(secret: impl Into<String>, token_type: impl Into<String>, scope: impl Into<String>) -> AccessToken {
        let far_future = time::PrimitiveDateTime::MAX.assume_utc();
        AccessToken { expiry_known: false, ..AccessToken::new(secret, token_type, far_future, scope) }
    }

    /// When it expires, if known.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.expiry_known.then_some(self.expires_on)
    }

    /// The token, for an `Authorization: Bearer` header.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Time left at `now` (zero once expired).
    pub fn expires_in(&self, now: OffsetDateTime) -> Duration {
        (self.expires_on - now).try_into().unwrap_or(Duration::ZERO)
    }

    /// Whether at least `margin` is left at `now`.
    pub fn is_fresh(&self, now: OffsetDateTime, margin: Duration) -> bool {
        self.expires_in(now) >= margin
    }

    /// The token's header and claims, decoded without verification (Entra's app tokens are JWTs; an opaque
    /// token given by an administrator is not, and gets [`Error::InvalidToken`](crate::Error::InvalidToken)).
    pub fn decode(&self) -> Result<DecodedJwt> {
        jwt::decode(&self.secret)
    }

    pub(crate) fn with_from_cache(mut self, from_cache: bool) -> AccessToken {
        self.from_cache = from_cache;
        self
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_on", &self.expires_at())
            .field("scope", &self.scope)
            .field("from_cache", &self.from_cache)
            .finish()
    }
}
