//! `keyCredential` validation (resources/keycredential.md and what the directory refuses).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cba_cert::Certificate;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::GraphError;
use crate::http;
use crate::ids;
use crate::state::KeyCred;

const FIELDS: &[&str] =
    &["type", "usage", "key", "displayName", "startDateTime", "endDateTime", "keyId", "customKeyIdentifier"];

fn invalid(property: &str) -> GraphError {
    GraphError::invalid_value(property, "KeyCredential")
}

fn string_field<'v>(object: &'v Map<String, Value>, name: &str) -> Result<Option<&'v str>, GraphError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(GraphError::malformed(format!(
            "Cannot convert the literal '{other}' to the expected type 'Edm.String'."
        ))),
    }
}

fn date_field(object: &Map<String, Value>, name: &str) -> Result<Option<OffsetDateTime>, GraphError> {
    match string_field(object, name)? {
        None => Ok(None),
        Some(text) => http::parse_datetime(text).map(Some).ok_or_else(|| {
            GraphError::malformed(format!(
                "Cannot convert the literal '{text}' to the expected type 'Edm.DateTimeOffset'."
            ))
        }),
    }
}

/// Graph compares dates to the second (certificate validity has no fractions).
fn whole_seconds(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// Validate one `keyCredential` and turn it into stored form, visible from `visible_at_ms`.
pub(crate) fn parse(value: &Value, visible_at_ms: i64) -> Result<KeyCred, GraphError> {
    let Value::Object(object) = value else {
        return Err(GraphError::malformed(
            "Cannot convert the value to the expected type 'microsoft.graph.keyCredential'.",
        ));
    };
    for name in object.keys() {
        if !FIELDS.contains(&name.as_str()) && name != "@odata.type" {
            return Err(GraphError::unknown_property(name, "keyCredential"));
        }
    }
    match string_field(object, "type")? {
        Some("AsymmetricX509Cert") => {}
        Some("X509CertAndPassword") => {
            return Err(GraphError::bad_request(
                "cba-sim supports only AsymmetricX509Cert key credentials (X509CertAndPassword is for token signing/encryption).",
            ));
        }
        _ => return Err(invalid("type")),
    }
    if string_field(object, "usage")? != Some("Verify") {
        return Err(invalid("usage"));
    }
    let bad_key = || GraphError::bad_request("Invalid certificate: Key value is invalid certificate");
    let key = string_field(object, "key")?.ok_or_else(bad_key)?;
    let der = STANDARD.decode(key.trim()).map_err(|_| bad_key())?;
    let certificate = Certificate::from_der(&der).map_err(|_| bad_key())?;
    // Entra's certificate credentials are RSA only (docs/wire-formats.md §4); which answer Graph gives to an
    // EC certificate is UNVERIFIED: the invalid-certificate one.
    if certificate.rsa_public_key().is_none() {
        return Err(bad_key());
    }

    let start = date_field(object, "startDateTime")?.unwrap_or(certificate.not_before());
    let end = date_field(object, "endDateTime")?.unwrap_or(certificate.not_after());
    if whole_seconds(start) < whole_seconds(certificate.not_before())
        || whole_seconds(start) > whole_seconds(certificate.not_after())
    {
        return Err(GraphError::bad_request("Key credential start date is invalid."));
    }
    if whole_seconds(end) > whole_seconds(certificate.not_after()) || whole_seconds(end) <= whole_seconds(start) {
        return Err(GraphError::bad_request("Key credential end date is invalid."));
    }
    let key_id = match string_field(object, "keyId")? {
        None => ids::guid(),
        Some(id) if ids::is_guid(id) => id.to_ascii_lowercase(),
        Some(id) => {
            return Err(GraphError::malformed(format!(
                "Cannot convert the literal '{id}' to the expected type 'Edm.Guid'."
            )));
        }
    };
    let custom_key_identifier = match string_field(object, "customKeyIdentifier")? {
        None => certificate.thumbprint_sha1().to_vec(),
        Some(text) => match STANDARD.decode(text) {
            Ok(bytes) if !bytes.is_empty() && bytes.len() <= 32 => bytes,
            _ => return Err(invalid("customKeyIdentifier")),
        },
    };
    let display_name =
        string_field(object, "displayName")?.map(str::to_string).unwrap_or_else(|| certificate.subject().to_string());
    Ok(KeyCred {
        key_id,
        display_name,
        start,
        end,
        custom_key_identifier,
        certificate,
        visible_at_ms,
        gone_at_ms: None,
    })
}

/// Parse a whole `keyCredentials` collection (PATCH replaces the stored one with it).
pub(crate) fn parse_all(value: &Value, visible_at_ms: i64, previous: &[KeyCred]) -> Result<Vec<KeyCred>, GraphError> {
    let Value::Array(items) = value else {
        return Err(GraphError::malformed(
            "Cannot convert the value to the expected type 'Collection(microsoft.graph.keyCredential)'.",
        ));
    };
    let mut keys: Vec<KeyCred> = Vec::with_capacity(items.len());
    for item in items {
        let mut key = parse(item, visible_at_ms)?;
        if keys.iter().any(|k| k.key_id == key.key_id) {
            return Err(GraphError::bad_request(format!(
                "Key credential keyId '{}' is used more than once.",
                key.key_id
            )));
        }
        // A certificate that was already registered keeps its replication state (clients resend the
        // existing entries, often without their keyId, to add one).
        if let Some(old) = previous.iter().find(|p| p.certificate == key.certificate) {
            key.visible_at_ms = old.visible_at_ms;
        }
        keys.push(key);
    }
    Ok(keys)
}

/// The Graph JSON of a stored credential; `key` only when asked for with `$select=keyCredentials`.
pub(crate) fn to_json(key: &KeyCred, with_key: bool) -> Value {
    json!({
        "customKeyIdentifier": STANDARD.encode(&key.custom_key_identifier),
        "displayName": key.display_name,
        "endDateTime": http::rfc3339(key.end),
        "key": if with_key { Value::String(STANDARD.encode(key.certificate.der())) } else { Value::Null },
        "keyId": key.key_id,
        "startDateTime": http::rfc3339(key.start),
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
    })
}
