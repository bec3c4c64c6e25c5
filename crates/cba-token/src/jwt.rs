//! Read a JWT's header and claims without verifying it (`cba token --decode`), and say when it expires in words.

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// A JWT's header and claims. Nothing here has been verified: use it to look, never to decide access.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecodedJwt {
    /// The JOSE header.
    pub header: Value,
    /// The claims.
    pub claims: Value,
}

impl DecodedJwt {
    /// A string claim.
    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name)?.as_str()
    }

    /// A string-array claim such as `roles` or `wids` (empty when absent).
    pub fn claim_strings(&self, name: &str) -> Vec<&str> {
        match self.claims.get(name) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(s)) => s.split(' ').filter(|s| !s.is_empty()).collect(),
            _ => Vec::new(),
        }
    }

    /// `exp` as a time.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        numeric_date(self.claims.get("exp")?)
    }

    /// `nbf` as a time.
    pub fn not_before(&self) -> Option<OffsetDateTime> {
        numeric_date(self.claims.get("nbf")?)
    }
}

fn numeric_date(v: &Value) -> Option<OffsetDateTime> {
    let secs = match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    OffsetDateTime::from_unix_timestamp(secs).ok()
}

/// Split a compact JWT (`header.claims.signature`) and decode the first two parts. A leading `Bearer ` and
/// surrounding whitespace are ignored. Encrypted tokens (five parts) are refused.
pub fn decode(token: &str) -> Result<DecodedJwt> {
    let token = strip_bearer(token);
    let invalid = |reason: &str| Error::InvalidToken { reason: reason.to_owned() };
    let parts: Vec<&str> = token.split('.').collect();
    match parts.len() {
        3 => {}
        5 => return Err(invalid("it is an encrypted token (JWE): only its audience can read it")),
        _ => return Err(invalid("expected three dot-separated parts (header.claims.signature)")),
    }
    let part = |i: usize, name: &str| -> Result<Value> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[i].trim_end_matches('='))
            .map_err(|_| invalid(&format!("the {name} is not base64url")))?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid(&format!("the {name} is not JSON")))?;
        if !value.is_object() {
            return Err(invalid(&format!("the {name} is not a JSON object")));
        }
        Ok(value)
    };
    let header = part(0, "header")?;
    let claims = part(1, "claims part")?;
    if header.get("alg").and_then(Value::as_str).is_none() {
        return Err(invalid("the header has no \"alg\""));
    }
    Ok(DecodedJwt { header, claims })
}

/// The token without surrounding whitespace and without a leading `Bearer ` (the word alone leaves nothing).
pub fn strip_bearer(token: &str) -> &str {
    let token = token.trim();
    if token.eq_ignore_ascii_case("bearer") {
        return "";
    }
    token.strip_prefix("Bearer ").or_else(|| token.strip_prefix("bearer ")).unwrap_or(token).trim()
}

/// "expires in 59 minutes", "expired 2 hours 3 minutes ago".
pub fn describe_expiry(expires_at: OffsetDateTime, now: OffsetDateTime) -> String {
    let delta = expires_at - now;
    let secs = delta.whole_seconds();
    if secs >= 0 {
        format!("expires in {}", words(secs.unsigned_abs()))
    } else {
        format!("expired {} ago", words(secs.unsigned_abs()))
    }
}

fn words(secs: u64) -> String {
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        if h > 0 { format!("{} {}", plural(d, "day"), plural(h, "hour")) } else { plural(d, "day") }
    } else if h > 0 {
        if m > 0 { format!("{} {}", plural(h, "hour"), plural(m, "minute")) } else { plural(h, "hour") }
    } else if m > 0 {
        plural(m, "minute")
    } else {
        plural(s, "second")
    }
}

/// RFC 3339 in UTC, second precision (`2026-11-26T10:00:00Z`).
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| t.to_string())
}
