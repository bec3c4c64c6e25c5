//! Cmdlet parameters: the values PowerShell would bind, in the JSON shape the admin API accepts.

use serde::ser::{SerializeMap as _, SerializeSeq as _};
use serde::{Serialize, Serializer};

use crate::Error;

/// The `@odata.type` the admin API wants on a hashtable parameter value.
///
/// The ExchangeOnlineManagement module adds it to every hashtable (nested ones too) before sending, and
/// scripts calling the endpoint directly do the same for multi-valued updates such as
/// `EmailAddresses = @{ "@odata.type" = "#Exchange.GenericHashTable"; Add = ... }`. Without it the service
/// binds the object as a plain property bag, which cmdlets taking a hashtable reject.
pub const GENERIC_HASHTABLE: &str = "#Exchange.GenericHashTable";

/// One parameter value: what `-Name value` would bind in PowerShell.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// `$null`.
    Null,
    /// `$true` / `$false`; for a switch, `true` means present.
    Bool(bool),
    /// An integer or a floating-point number.
    Number(serde_json::Number),
    /// A string, sent as is (`"Unlimited"` for `-ResultSize Unlimited`).
    String(String),
    /// An array (`-Tags a,b`).
    Array(Vec<ParamValue>),
    /// A hashtable (`@{Add = "x"}`), sent with its `@odata.type`.
    Hashtable(Hashtable),
}

/// A hashtable parameter value: ordered keys and an `@odata.type` ([`GENERIC_HASHTABLE`] unless set).
#[derive(Debug, Clone, PartialEq)]
pub struct Hashtable {
    odata_type: String,
    entries: Vec<(String, ParamValue)>,
}

impl Default for Hashtable {
    fn default() -> Self {
        Hashtable { odata_type: GENERIC_HASHTABLE.to_string(), entries: Vec::new() }
    }
}

impl Hashtable {
    /// An empty `#Exchange.GenericHashTable`.
    pub fn new() -> Hashtable {
        Hashtable::default()
    }

    /// A hashtable with another `@odata.type` (e.g. `#Exchange.ByteArrayType`).
    pub fn with_odata_type(odata_type: impl Into<String>) -> Hashtable {
        Hashtable { odata_type: odata_type.into(), entries: Vec::new() }
    }

    /// Its `@odata.type`.
    pub fn odata_type(&self) -> &str {
        &self.odata_type
    }

    /// Set `key` (replacing an earlier value, keeping its position), builder style.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<ParamValue>) -> Hashtable {
        self.insert(key, value);
        self
    }

    /// Set `key`, replacing an earlier value (keys compare case-insensitively, as in PowerShell).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<ParamValue>) {
        insert(&mut self.entries, key.into(), value.into());
    }

    /// The value of `key` (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&ParamValue> {
        get(&self.entries, key)
    }

    /// The entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ParamValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// A cmdlet's parameters, in insertion order; names compare case-insensitively as in PowerShell.
///
/// ```
/// use cba_exo::{Hashtable, Parameters};
/// let params = Parameters::new()
///     .with("Identity", "john@contoso.com")
///     .with("EmailAddresses", Hashtable::new().with("Add", vec!["smtp:j@contoso.com"]));
/// assert_eq!(
///     serde_json::to_string(&params).unwrap(),
///     r##"{"Identity":"john@contoso.com","EmailAddresses":{"@odata.type":"#Exchange.GenericHashTable","Add":["smtp:j@contoso.com"]}}"##
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parameters {
    entries: Vec<(String, ParamValue)>,
}

impl Parameters {
    /// No parameters.
    pub fn new() -> Parameters {
        Parameters::default()
    }

    /// Set `name`, builder style.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<ParamValue>) -> Parameters {
        self.insert(name, value);
        self
    }

    /// Set `name`, replacing an earlier value of the same name (any case).
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<ParamValue>) {
        insert(&mut self.entries, name.into(), value.into());
    }

    /// Remove `name` (any case), returning its value.
    pub fn remove(&mut self, name: &str) -> Option<ParamValue> {
        let at = self.entries.iter().position(|(k, _)| k.eq_ignore_ascii_case(name))?;
        Some(self.entries.remove(at).1)
    }

    /// The value of `name` (any case).
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        get(&self.entries, name)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The parameters in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ParamValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// From a JSON object (`{"Identity":"x","ResultSize":10}`). Nested objects become hashtables; an
    /// `@odata.type` already in one is kept, otherwise [`GENERIC_HASHTABLE`] is added.
    pub fn from_json(value: serde_json::Value) -> Result<Parameters, Error> {
        match value {
            serde_json::Value::Object(map) => {
                let mut params = Parameters::new();
                for (k, v) in map {
                    params.insert(k, ParamValue::from(v));
                }
                Ok(params)
            }
            other => Err(Error::Parameters {
                message: format!("parameters must be a JSON object of name → value, not {}", json_kind(&other)),
            }),
        }
    }

    /// Merge `other` into `self`; `other` wins on a name both have.
    pub fn extend(&mut self, other: Parameters) {
        for (k, v) in other.entries {
            self.insert(k, v);
        }
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn insert(entries: &mut Vec<(String, ParamValue)>, key: String, value: ParamValue) {
    match entries.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(&key)) {
        Some(slot) => *slot = (key, value),
        None => entries.push((key, value)),
    }
}

fn get<'a>(entries: &'a [(String, ParamValue)], key: &str) -> Option<&'a ParamValue> {
    entries.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

impl Serialize for Parameters {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Serialize for Hashtable {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.entries.len() + 1))?;
        map.serialize_entry("@odata.type", &self.odata_type)?;
        for (k, v) in &self.entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Serialize for ParamValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ParamValue::Null => s.serialize_unit(),
            ParamValue::Bool(b) => s.serialize_bool(*b),
            ParamValue::Number(n) => n.serialize(s),
            ParamValue::String(v) => s.serialize_str(v),
            ParamValue::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            ParamValue::Hashtable(h) => h.serialize(s),
        }
    }
}

impl From<serde_json::Value> for ParamValue {
    fn from(v: serde_json::Value) -> ParamValue {
        match v {
            serde_json::Value::Null => ParamValue::Null,
            serde_json::Value::Bool(b) => ParamValue::Bool(b),
            serde_json::Value::Number(n) => ParamValue::Number(n),
            serde_json::Value::String(s) => ParamValue::String(s),
            serde_json::Value::Array(items) => ParamValue::Array(items.into_iter().map(ParamValue::from).collect()),
            serde_json::Value::Object(mut map) => {
                let odata_type = match map.remove("@odata.type") {
                    Some(serde_json::Value::String(t)) => t,
                    _ => GENERIC_HASHTABLE.to_string(),
                };
                let mut h = Hashtable::with_odata_type(odata_type);
                for (k, v) in map {
                    h.insert(k, ParamValue::from(v));
                }
                ParamValue::Hashtable(h)
            }
        }
    }
}

impl From<&str> for ParamValue {
    fn from(v: &str) -> ParamValue {
        ParamValue::String(v.to_string())
    }
}

impl From<String> for ParamValue {
    fn from(v: String) -> ParamValue {
        ParamValue::String(v)
    }
}

impl From<bool> for ParamValue {
    fn from(v: bool) -> ParamValue {
        ParamValue::Bool(v)
    }
}

macro_rules! from_integer {
    ($($t:ty),*) => {$(
        impl From<$t> for ParamValue {
            fn from(v: $t) -> ParamValue {
                ParamValue::Number(v.into())
            }
        }
    )*};
}
from_integer!(i32, i64, u32, u64, usize);

impl From<f64> for ParamValue {
    /// A finite float; NaN and infinities (which JSON cannot carry) become `Null`.
    fn from(v: f64) -> ParamValue {
        serde_json::Number::from_f64(v).map(ParamValue::Number).unwrap_or(ParamValue::Null)
    }
}

impl From<Hashtable> for ParamValue {
    fn from(v: Hashtable) -> ParamValue {
        ParamValue::Hashtable(v)
    }
}

impl<T: Into<ParamValue>> From<Vec<T>> for ParamValue {
    fn from(v: Vec<T>) -> ParamValue {
        ParamValue::Array(v.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<ParamValue>> From<Option<T>> for ParamValue {
    fn from(v: Option<T>) -> ParamValue {
        v.map(Into::into).unwrap_or(ParamValue::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_hashtables_get_the_odata_type_and_explicit_types_are_kept() {
        let params = Parameters::from_json(json!({
            "Identity": "x",
            "Outer": {"Inner": {"A": 1}, "List": [{"B": true}]},
            "Bytes": {"@odata.type": "#Exchange.ByteArrayType", "Data": "AQI="}
        }))
        .unwrap();
        let sent = serde_json::to_value(&params).unwrap();
        assert_eq!(
            sent,
            json!({
                "Identity": "x",
                "Outer": {
                    "@odata.type": GENERIC_HASHTABLE,
                    "Inner": {"@odata.type": GENERIC_HASHTABLE, "A": 1},
                    "List": [{"@odata.type": GENERIC_HASHTABLE, "B": true}]
                },
                "Bytes": {"@odata.type": "#Exchange.ByteArrayType", "Data": "AQI="}
            })
        );
    }

    #[test]
    fn names_are_case_insensitive_and_keep_their_first_position() {
        let mut p = Parameters::new().with("ResultSize", 10).with("Identity", "a");
        p.insert("resultsize", "Unlimited");
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"resultsize":"Unlimited","Identity":"a"}"#);
        assert_eq!(p.remove("IDENTITY"), Some(ParamValue::from("a")));
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn from_json_wants_an_object() {
        assert!(Parameters::from_json(json!([1])).is_err());
        assert!(Parameters::from_json(json!("x")).is_err());
        assert!(Parameters::from_json(json!({})).unwrap().is_empty());
    }
}
