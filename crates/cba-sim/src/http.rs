//! Small HTTP helpers: the reply type every handler returns, path and query decoding.

use serde_json::Value;
use wiremock::Request;

pub(crate) const GRAPH_JSON: &str =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
pub(crate) const PLAIN_JSON: &str = "application/json; charset=utf-8";

/// What a handler answers; turned into the HTTP answer at the end (so the status is known for the log).
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Option<(Vec<u8>, &'static str)>,
}

impl Reply {
    pub(crate) fn json(status: u16, body: &Value) -> Reply {
        Reply::json_as(status, body, PLAIN_JSON)
    }

    pub(crate) fn json_as(status: u16, body: &Value, mime: &'static str) -> Reply {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        Reply { status, headers: Vec::new(), body: Some((bytes, mime)) }
    }

    pub(crate) fn empty(status: u16) -> Reply {
        Reply { status, headers: Vec::new(), body: None }
    }

    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The hyper answer (serve.rs).
    pub(crate) fn into_response(self) -> hyper::Response<http_body_util::Full<hyper::body::Bytes>> {
        use hyper::body::Bytes;
        let mut builder = hyper::Response::builder().status(self.status);
        for (name, value) in &self.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let body = match self.body {
            Some((bytes, mime)) => {
                builder = builder.header("content-type", mime);
                Bytes::from(bytes)
            }
            None => Bytes::new(),
        };
        // Header names and values are the handlers' own literals and ids: a bad one is a sim bug, answered 500.
        builder.body(http_body_util::Full::new(body)).unwrap_or_else(|_| {
            let mut response =
                hyper::Response::new(http_body_util::Full::new(Bytes::from_static(b"cba-sim: an invalid header")));
            *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            response
        })
    }
}

/// Decode `%XX` escapes (invalid escapes are kept as written).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded, non-empty path segments of a request.
pub(crate) fn segments(request: &Request) -> Vec<String> {
    request.url.path().split('/').filter(|s| !s.is_empty()).map(percent_decode).collect()
}

/// Query parameters, decoded (`+` is a space, as in forms).
pub(crate) fn query(request: &Request) -> Vec<(String, String)> {
    request.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// A form-encoded body as (name, value) pairs.
pub(crate) fn form(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// First value of a parameter.
pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

pub(crate) fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

/// `yyyy-mm-ddThh:mm:ssZ` (Graph's `innerError.date`, token timestamps).
pub(crate) fn rfc3339(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        at.month() as u8,
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// `yyyy-mm-dd hh:mm:ssZ`, the login service's timestamp format.
pub(crate) fn login_timestamp(at: time::OffsetDateTime) -> String {
    rfc3339(at).replacen('T', " ", 1)
}

/// Parse an RFC 3339 date-time (Graph accepts fractional seconds and offsets).
pub(crate) fn parse_datetime(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("applications(appId=%27abc%27)"), "applications(appId='abc')");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
