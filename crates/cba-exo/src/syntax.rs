//! The `NAME=VALUE` text form of a parameter (what `cba exo invoke -p` takes; the grammar is in docs/exo.md):
//! one string in, a name and a [`ParamValue`] out, so command lines and config files read values alike.

use std::fmt;

use crate::ParamValue;

/// Why a `NAME=VALUE` text (or a cmdlet name) could not be read. [`kind`](Self::kind) says what was wrong,
/// [`parameter`](Self::parameter) which parameter it was in, when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    parameter: Option<String>,
    kind: ParamErrorKind,
}

/// What was wrong with a parameter text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamErrorKind {
    /// The name is missing or is not a parameter name (a letter, then letters, digits or `_`).
    InvalidName {
        /// The whole text as given.
        text: String,
    },
    /// A value starting with `[` does not end with `]`.
    UnclosedArray,
    /// An array element opened with a quote that is never closed.
    UnclosedQuote {
        /// The quote, `'` or `"`.
        quote: char,
    },
    /// Something other than a comma follows a quoted array element.
    TextAfterQuotedElement,
    /// A `\` at the very end of an array escapes nothing.
    DanglingEscape,
    /// A value starting with `{` is not valid JSON.
    InvalidHashtable {
        /// The JSON parser's message.
        message: String,
    },
    /// A value starting with `{` is JSON but not an object (`{}x`).
    HashtableNotAnObject,
    /// Not a `Verb-Noun` cmdlet name.
    InvalidCmdletName {
        /// The name as given.
        name: String,
    },
}

impl ParamError {
    fn new(kind: ParamErrorKind) -> ParamError {
        ParamError { parameter: None, kind }
    }

    /// What was wrong.
    pub fn kind(&self) -> &ParamErrorKind {
        &self.kind
    }

    /// The parameter whose value was wrong (set by [`parse_param`]; `None` for a bad name or from
    /// [`ParamValue::parse`]).
    pub fn parameter(&self) -> Option<&str> {
        self.parameter.as_deref()
    }

    pub(crate) fn cmdlet_name(name: &str) -> ParamError {
        ParamError::new(ParamErrorKind::InvalidCmdletName { name: name.to_string() })
    }
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.parameter {
            write!(f, "{name}: ")?;
        }
        match &self.kind {
            ParamErrorKind::InvalidName { text } => {
                write!(f, "{text:?}: expected NAME=VALUE with a parameter name like ResultSize")
            }
            ParamErrorKind::UnclosedArray => {
                f.write_str("an array starts with [ and ends with ]; quote it ('[x') for a string")
            }
            ParamErrorKind::UnclosedQuote { quote } => write!(f, "unclosed {quote} in the array"),
            ParamErrorKind::TextAfterQuotedElement => {
                f.write_str("text after a quoted array element; put a comma between elements")
            }
            ParamErrorKind::DanglingEscape => f.write_str("a \\ at the end of the array escapes nothing"),
            ParamErrorKind::InvalidHashtable { message } => {
                write!(f, "a value starting with {{ is a JSON hashtable: {message}")
            }
            ParamErrorKind::HashtableNotAnObject => f.write_str("a value starting with { must be a JSON object"),
            ParamErrorKind::InvalidCmdletName { name } => {
                write!(f, "{name:?} is not a cmdlet name (Verb-Noun, e.g. Get-Mailbox)")
            }
        }
    }
}

impl std::error::Error for ParamError {}

/// Read one `NAME=VALUE` (or a bare `NAME`, a switch: `true`). The name may start with `-` (`-Identity=x`);
/// everything after the first `=` is the value, read by [`ParamValue::parse`].
///
/// ```
/// use cba_exo::{ParamValue, parse_param};
/// assert_eq!(parse_param("ResultSize=10").unwrap(), ("ResultSize".to_string(), ParamValue::from(10)));
/// assert_eq!(parse_param("-Force").unwrap(), ("Force".to_string(), ParamValue::Bool(true)));
/// assert_eq!(parse_param("Tags=[a\\,b").unwrap_err().parameter(), Some("Tags"));
/// ```
pub fn parse_param(text: &str) -> Result<(String, ParamValue), ParamError> {
    let (name, value) = match text.split_once('=') {
        Some((name, value)) => (name.trim(), Some(value)),
        None => (text.trim(), None),
    };
    let name = name.strip_prefix('-').unwrap_or(name);
    if !name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(ParamError::new(ParamErrorKind::InvalidName { text: text.to_string() }));
    }
    let value = match value {
        None => ParamValue::Bool(true),
        Some(v) => ParamValue::parse(v).map_err(|e| ParamError { parameter: Some(name.to_string()), ..e })?,
    };
    Ok((name.to_string(), value))
}

impl ParamValue {
    /// Read a value as written after `NAME=` (docs/exo.md has the table): plain numbers (no leading zeros or
    /// exponents: `007` and `1e3` stay strings), `true`/`false` in any case, `null`, `[a,b]` arrays (`\`
    /// escapes, quoted elements are strings), `{…}` JSON hashtables, `'text'` or `"text"` strings as
    /// written; anything else is the string itself.
    ///
    /// ```
    /// use cba_exo::ParamValue;
    /// assert_eq!(ParamValue::parse("10").unwrap(), ParamValue::from(10));
    /// assert_eq!(ParamValue::parse("007").unwrap(), ParamValue::from("007"));
    /// assert_eq!(ParamValue::parse("'true'").unwrap(), ParamValue::from("true"));
    /// assert_eq!(ParamValue::parse("[a,1]").unwrap(), ParamValue::Array(vec!["a".into(), 1.into()]));
    /// ```
    pub fn parse(text: &str) -> Result<ParamValue, ParamError> {
        if let Some(inner) = text.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(ParamError::new(ParamErrorKind::UnclosedArray))?;
            let items = split_array(inner).map_err(ParamError::new)?;
            return Ok(ParamValue::Array(
                items
                    .into_iter()
                    .map(|(item, quoted)| if quoted { ParamValue::String(item) } else { parse_scalar(&item) })
                    .collect(),
            ));
        }
        if text.starts_with('{') {
            let json: serde_json::Value = serde_json::from_str(text)
                .map_err(|e| ParamError::new(ParamErrorKind::InvalidHashtable { message: e.to_string() }))?;
            return match json {
                serde_json::Value::Object(_) => Ok(ParamValue::from(json)),
                _ => Err(ParamError::new(ParamErrorKind::HashtableNotAnObject)),
            };
        }
        if let Some(s) = unquote(text) {
            return Ok(ParamValue::String(s.to_string()));
        }
        Ok(parse_scalar(text))
    }
}

/// `'text'` or `"text"` → text, verbatim.
fn unquote(v: &str) -> Option<&str> {
    for q in ['\'', '"'] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return Some(&v[1..v.len() - 1]);
        }
    }
    None
}

/// Numbers in canonical form (no leading zeros: `007` stays a string), true/false, null; else the string.
fn parse_scalar(v: &str) -> ParamValue {
    if v.eq_ignore_ascii_case("true") {
        return ParamValue::Bool(true);
    }
    if v.eq_ignore_ascii_case("false") {
        return ParamValue::Bool(false);
    }
    if v == "null" {
        return ParamValue::Null;
    }
    if is_canonical_number(v) {
        if let Ok(n) = v.parse::<i64>() {
            return ParamValue::from(n);
        }
        if v.contains('.')
            && let Some(n) = v.parse::<f64>().ok().and_then(serde_json::Number::from_f64)
        {
            return ParamValue::Number(n);
        }
    }
    ParamValue::String(v.to_string())
}

fn is_canonical_number(v: &str) -> bool {
    let digits = v.strip_prefix('-').unwrap_or(v);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    !int.is_empty()
        && int.chars().all(|c| c.is_ascii_digit())
        && (int == "0" || !int.starts_with('0'))
        && frac.is_none_or(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()))
}

/// Split the inside of `[...]` on commas. `\` escapes the next character; an element wrapped in quotes is a
/// string as written (commas included). Returns (text, was quoted).
fn split_array(inner: &str) -> Result<Vec<(String, bool)>, ParamErrorKind> {
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut items = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ') {
            chars.next();
        }
        let mut item = String::new();
        let quoted = match chars.peek() {
            Some(&quote @ ('\'' | '"')) => {
                chars.next();
                loop {
                    match chars.next() {
                        Some(c) if c == quote => break,
                        Some(c) => item.push(c),
                        None => return Err(ParamErrorKind::UnclosedQuote { quote }),
                    }
                }
                while chars.peek().is_some_and(|c| *c == ' ') {
                    chars.next();
                }
                if chars.peek().is_some_and(|c| *c != ',') {
                    return Err(ParamErrorKind::TextAfterQuotedElement);
                }
                true
            }
            _ => {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    chars.next();
                    if c == '\\' {
                        item.push(chars.next().ok_or(ParamErrorKind::DanglingEscape)?);
                    } else {
                        item.push(c);
                    }
                }
                let trimmed = item.trim_end().len();
                item.truncate(trimmed);
                false
            }
        };
        items.push((item, quoted));
        // Both branches stop at a comma or at the end.
        if chars.next().is_none() {
            return Ok(items);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check_value(input: &str, expected: serde_json::Value) {
        let value = ParamValue::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(serde_json::to_value(&value).unwrap(), expected, "{input:?}");
    }

    #[test]
    fn param_values() {
        check_value("john@contoso.com", json!("john@contoso.com"));
        check_value("10", json!(10));
        check_value("-3", json!(-3));
        check_value("2.5", json!(2.5));
        check_value("007", json!("007"));
        check_value("1e3", json!("1e3"));
        check_value("99999999999999999999", json!("99999999999999999999"));
        check_value("true", json!(true));
        check_value("False", json!(false));
        check_value("null", json!(null));
        check_value("Unlimited", json!("Unlimited"));
        check_value("", json!(""));
        check_value("'123'", json!("123"));
        check_value("\"true\"", json!("true"));
        check_value("'", json!("'"));
        check_value("[a,b]", json!(["a", "b"]));
        check_value("[1, 2 ,x y]", json!([1, 2, "x y"]));
        check_value("[]", json!([]));
        check_value(r"[a\,b,c\\d,\]]", json!(["a,b", r"c\d", "]"]));
        check_value("['1',\"a,b\" , true]", json!(["1", "a,b", true]));
        check_value(
            r#"{"Add":["smtp:a@b.c"]}"#,
            json!({"@odata.type": "#Exchange.GenericHashTable", "Add": ["smtp:a@b.c"]}),
        );
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let check = |input: &str, expected: ParamErrorKind| {
            let e = ParamValue::parse(input).unwrap_err();
            assert_eq!(e.kind(), &expected, "{input:?}");
            assert_eq!(e.parameter(), None);
        };
        check("[a,b", ParamErrorKind::UnclosedArray);
        check("['a]", ParamErrorKind::UnclosedQuote { quote: '\'' });
        check("['a' b]", ParamErrorKind::TextAfterQuotedElement);
        check("['a", ParamErrorKind::UnclosedArray);
        check(r"[a\", ParamErrorKind::UnclosedArray);
        check(r"[a\]", ParamErrorKind::DanglingEscape);
        check(r"[\]", ParamErrorKind::DanglingEscape);
        check("[1]x", ParamErrorKind::UnclosedArray);
        check("{1}", ParamErrorKind::InvalidHashtable { message: "key must be a string at line 1 column 2".into() });
        for bad in ["{nope", "{}x"] {
            assert!(matches!(ParamValue::parse(bad).unwrap_err().kind(), ParamErrorKind::InvalidHashtable { .. }));
        }
        assert_eq!(ParamValue::parse(r"[a\]]").unwrap(), ParamValue::Array(vec!["a]".into()]));
    }

    #[test]
    fn param_names() {
        let (name, value) = parse_param("ResultSize=10").unwrap();
        assert_eq!((name.as_str(), value), ("ResultSize", ParamValue::from(10)));
        assert_eq!(parse_param("Force").unwrap().1, ParamValue::Bool(true), "a bare name is a switch");
        assert_eq!(parse_param("-Identity=a=b").unwrap(), ("Identity".to_string(), ParamValue::from("a=b")));
        for bad in ["=x", "1a=2", "a b=1", ""] {
            let e = parse_param(bad).unwrap_err();
            assert_eq!(e.kind(), &ParamErrorKind::InvalidName { text: bad.to_string() }, "{bad:?}");
        }
        assert_eq!(
            parse_param("=x").unwrap_err().to_string(),
            r#""=x": expected NAME=VALUE with a parameter name like ResultSize"#
        );
        let e = parse_param("Tags=[a").unwrap_err();
        assert_eq!((e.parameter(), e.kind()), (Some("Tags"), &ParamErrorKind::UnclosedArray));
        assert_eq!(e.to_string(), "Tags: an array starts with [ and ends with ]; quote it ('[x') for a string");
    }
}
