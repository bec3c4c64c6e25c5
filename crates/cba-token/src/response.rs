//! The token endpoint's JSON, v2 (numbers) and v1 (numbers as strings, `expires_on`, `resource`).

use serde_json::{Map, Value};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::token::AccessToken;

/// A JSON number or a string holding one (v1 sends `"3599"`).
fn int_field(obj: &Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| format!("{name} is not an integer")),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| format!("{name} is not a number")),
        Some(_) => Err(format!("{name} is not a number")),
    }
}

fn str_field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    obj.get(name).and_then(Value::as_str)
}

/// The longest lifetime believed from `expires_in`: Entra's access tokens last 60-90 minutes (CAE ones up to
/// 28 hours). A longer `expires_in` is clamped to this, so a cache renews the token a day later at worst.
pub(crate) const MAX_EXPIRES_IN: time::Duration = time::Duration::hours(28);

/// `expires_in` as a lifetime: negative is an error; past [`MAX_EXPIRES_IN`] (up to `u64::MAX`) it is clamped.
fn lifetime(obj: &Map<String, Value>) -> Result<Option<time::Duration>, String> {
    let secs: Option<i128> = match obj.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from)).ok_or("expires_in is not an integer")?,
        ),
        Some(Value::String(s)) => Some(s.trim().parse().map_err(|_| "expires_in is not a number")?),
        Some(_) => return Err("expires_in is not a number".to_owned()),
    };
    match secs {
        None => Ok(None),
        Some(s) if s < 0 => Err(format!("expires_in is negative ({s})")),
        Some(s) if s > i128::from(MAX_EXPIRES_IN.whole_seconds()) => Ok(Some(MAX_EXPIRES_IN)),
        Some(s) => Ok(Some(time::Duration::seconds(s as i64))),
    }
}

/// Parse a 200 answer. `requested_scope` fills `scope` when the answer has none (client credentials in v2).
///
/// Expiry comes from `expires_in` (relative, so immune to clock skew between us and Entra; clamped to
/// [`MAX_EXPIRES_IN`], negative refused), else from v1's absolute `expires_on`. Error messages never quote the
/// body.
pub(crate) fn parse_token(body: &[u8], now: OffsetDateTime, requested_scope: &str) -> Result<AccessToken, String> {
    let value: Value = serde_json::from_slice(body).map_err(|_| "the body is not JSON".to_owned())?;
    let obj = value.as_object().ok_or("the body is not a JSON object")?;
    let secret = Zeroizing::new(
        str_field(obj, "access_token").filter(|s| !s.is_empty()).ok_or("no access_token in the answer")?.to_owned(),
    );
    let token_type = str_field(obj, "token_type").unwrap_or("Bearer").to_owned();
    let expires_on = match (lifetime(obj)?, int_field(obj, "expires_on")?) {
        (Some(lifetime), _) => now.checked_add(lifetime).ok_or("expires_in is out of range")?,
        (None, Some(epoch)) => {
            OffsetDateTime::from_unix_timestamp(epoch).map_err(|_| "expires_on is out of range".to_owned())?
        }
        (None, None) => return Err("the answer has neither expires_in nor expires_on".to_owned()),
    };
    let scope = str_field(obj, "scope")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| requested_scope.to_owned());
    Ok(AccessToken::new(secret.as_str(), token_type, expires_on, scope))
}

/// An OAuth error body, or `None` when the body is not one (an HTML page, a proxy's answer).
pub(crate) fn parse_error(status: u16, body: &[u8]) -> Option<Error> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let obj = value.as_object()?;
    let error = str_field(obj, "error")?.to_owned();
    let raw_description = str_field(obj, "error_description").unwrap_or_default();
    let mut aadsts: Vec<u32> = match obj.get("error_codes") {
        Some(Value::Array(codes)) => codes
            .iter()
            .filter_map(|c| c.as_u64().or_else(|| c.as_str().and_then(|s| s.parse().ok())))
            .filter_map(|c| u32::try_from(c).ok())
            .collect(),
        _ => Vec::new(),
    };
    if aadsts.is_empty() {
        aadsts = codes_in(raw_description);
    }
    let (description, trace_in_text, correlation_in_text) = split_description(raw_description);
    let trace_id = str_field(obj, "trace_id").map(str::to_owned).or(trace_in_text);
    let correlation_id = str_field(obj, "correlation_id").map(str::to_owned).or(correlation_in_text);
    Some(Error::token(status, error, aadsts, description, trace_id, correlation_id))
}

/// `AADSTS<digits>` occurrences, in order, without repeats.
fn codes_in(text: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("AADSTS") {
        rest = &rest[i + 6..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(code) = digits.parse::<u32>()
            && !out.contains(&code)
        {
            out.push(code);
        }
    }
    out
}

/// Entra appends "\r\nTrace ID: …\r\nCorrelation ID: …\r\nTimestamp: …" to descriptions: keep the message, pull
/// out the ids.
fn split_description(raw: &str) -> (String, Option<String>, Option<String>) {
    let mut message = Vec::new();
    let (mut trace, mut correlation) = (None, None);
    for line in raw.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Trace ID:") {
            trace = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("Correlation ID:") {
            correlation = Some(v.trim().to_owned());
        } else if line.starts_with("Timestamp:") || line.is_empty() {
        } else {
            message.push(line);
        }
    }
    (message.join(" "), trace, correlation)
}

/// A short, printable excerpt of a non-token body (error pages), for [`Error::UnexpectedResponse`].
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return "empty body".to_owned();
    }
    let mut cut: String = flat.chars().take(200).collect();
    if cut.len() < flat.len() {
        cut.push('…');
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_is_split_from_ids() {
        let (m, t, c) = split_description(
            "AADSTS700027: Client assertion contains an invalid signature.\r\nTrace ID: t-1\r\nCorrelation ID: c-2\r\nTimestamp: 2026-11-26 10:00:00Z",
        );
        assert_eq!(m, "AADSTS700027: Client assertion contains an invalid signature.");
        assert_eq!(t.as_deref(), Some("t-1"));
        assert_eq!(c.as_deref(), Some("c-2"));
    }

    #[test]
    fn codes_found_in_text() {
        assert_eq!(codes_in("AADSTS7000215: x AADSTS50012 y AADSTS7000215"), vec![7000215, 50012]);
        assert_eq!(codes_in("no codes"), Vec::<u32>::new());
    }

    #[test]
    fn excerpt_is_bounded() {
        let long = "x".repeat(1000);
        assert!(excerpt(long.as_bytes()).chars().count() <= 201);
        assert_eq!(excerpt(b"  "), "empty body");
    }
}
