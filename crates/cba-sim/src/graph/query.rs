//! OData query options: `$filter` (equality clauses joined by `and`), `$select`, `$top` with `$skiptoken`
//! paging. Anything else is refused loudly rather than silently ignored.

use serde_json::{Map, Value, json};

use super::{Ctx, GraphError};
use crate::http::{self, GRAPH_JSON, Reply};

const SUPPORTED: &[&str] = &["$filter", "$select", "$top", "$skiptoken"];

pub(crate) fn check_options(query: &[(String, String)]) -> Result<(), GraphError> {
    for (name, _) in query {
        if name.starts_with('$') && !SUPPORTED.contains(&name.as_str()) {
            return Err(GraphError::malformed(format!(
                "The query option '{name}' is not supported by cba-sim (it supports {}).",
                SUPPORTED.join(", ")
            )));
        }
    }
    Ok(())
}

/// `prop eq 'value' [and prop eq 'value']...`, with the property names canonicalised from `allowed`.
pub(crate) fn filter(ctx: &Ctx<'_>, allowed: &[&str], resource: &str) -> Result<Vec<(String, String)>, GraphError> {
    let Some(text) = http::param(&ctx.query, "$filter") else {
        return Ok(Vec::new());
    };
    let clauses = parse_filter(text)?;
    clauses
        .into_iter()
        .map(|(prop, value)| {
            allowed
                .iter()
                .find(|a| a.eq_ignore_ascii_case(&prop))
                .map(|a| (a.to_string(), value))
                .ok_or_else(|| {
                    GraphError::new(
                        400,
                        "Request_UnsupportedQuery",
                        format!("Unsupported or invalid query filter clause specified for property '{prop}' of resource '{resource}'."),
                    )
                })
        })
        .collect()
}

/// Whether `object` satisfies every clause (strings compared case-insensitively, as the directory does).
pub(crate) fn matches(object: &Map<String, Value>, clauses: &[(String, String)]) -> bool {
    clauses
        .iter()
        .all(|(prop, value)| object.get(prop).and_then(Value::as_str).is_some_and(|v| v.eq_ignore_ascii_case(value)))
}

fn parse_filter(text: &str) -> Result<Vec<(String, String)>, GraphError> {
    let invalid = || GraphError::malformed(format!("Invalid filter clause: {text}"));
    let tokens = tokenize(text).ok_or_else(invalid)?;
    let mut clauses = Vec::new();
    let mut i = 0;
    loop {
        match (tokens.get(i), tokens.get(i + 1), tokens.get(i + 2)) {
            (Some(Token::Word(prop)), Some(Token::Word(op)), Some(Token::Literal(value)))
                if op.eq_ignore_ascii_case("eq") =>
            {
                clauses.push((prop.clone(), value.clone()));
            }
            (Some(Token::Word(prop)), Some(Token::Word(op)), Some(_)) if !op.eq_ignore_ascii_case("eq") => {
                return Err(GraphError::new(
                    400,
                    "Request_UnsupportedQuery",
                    format!(
                        "Unsupported query operator '{op}' for property '{prop}' (cba-sim supports 'eq' joined by 'and')."
                    ),
                ));
            }
            _ => return Err(invalid()),
        }
        i += 3;
        match tokens.get(i) {
            None => return Ok(clauses),
            Some(Token::Word(and)) if and.eq_ignore_ascii_case("and") => i += 1,
            Some(_) => return Err(invalid()),
        }
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Literal(String),
}

fn tokenize(text: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut literal = String::new();
            i += 1;
            loop {
                match (chars.get(i), chars.get(i + 1)) {
                    (Some('\''), Some('\'')) => {
                        literal.push('\'');
                        i += 2;
                    }
                    (Some('\''), _) => {
                        i += 1;
                        break;
                    }
                    (Some(ch), _) => {
                        literal.push(*ch);
                        i += 1;
                    }
                    (None, _) => return None,
                }
            }
            tokens.push(Token::Literal(literal));
        } else if c.is_alphanumeric() || c == '_' || c == '/' || c == '.' || c == '-' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '/' | '.' | '-')) {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            return None;
        }
    }
    Some(tokens)
}

/// An object after `$select`, with the selected property names when there was one.
pub(crate) type Selected = (Map<String, Value>, Option<Vec<String>>);

/// Apply `$select` to an object: only the named properties, canonical names; unknown names are refused.
/// Returns the object and the selected names (for the `@odata.context`).
pub(crate) fn select(ctx: &Ctx<'_>, object: Map<String, Value>, type_name: &str) -> Result<Selected, GraphError> {
    let Some(list) = http::param(&ctx.query, "$select") else {
        return Ok((object, None));
    };
    let mut picked = Map::new();
    let mut names = Vec::new();
    for wanted in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, value)) = object.iter().find(|(k, _)| k.eq_ignore_ascii_case(wanted)) else {
            return Err(GraphError::malformed(format!(
                "Could not find a property named '{wanted}' on type 'microsoft.graph.{type_name}'."
            )));
        };
        picked.insert(name.clone(), value.clone());
        names.push(name.clone());
    }
    Ok((picked, Some(names)))
}

/// Whether `$select` names `property`.
pub(crate) fn selects(ctx: &Ctx<'_>, property: &str) -> bool {
    http::param(&ctx.query, "$select")
        .is_some_and(|list| list.split(',').any(|s| s.trim().eq_ignore_ascii_case(property)))
}

/// A collection answer: `{"@odata.context", "value", "@odata.nextLink"?}` with `$top`/`$skiptoken` paging.
pub(crate) struct Listing {
    pub(crate) context: String,
    pub(crate) path: String,
}

impl Listing {
    pub(crate) fn reply(self, ctx: &Ctx<'_>, items: Vec<Value>) -> Result<Reply, GraphError> {
        let top = match http::param(&ctx.query, "$top") {
            None => 100,
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=999).contains(&n) => n,
                _ => {
                    return Err(GraphError::malformed(format!(
                        "Invalid page size specified: '{raw}'. Must be between 1 and 999 inclusive."
                    )));
                }
            },
        };
        let skip = match http::param(&ctx.query, "$skiptoken") {
            None => 0,
            Some(raw) => raw
                .strip_prefix("sim-")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| GraphError::malformed(format!("Invalid skip token '{raw}'.")))?,
        };
        let total = items.len();
        let page: Vec<Value> = items.into_iter().skip(skip).take(top).collect();
        let mut body = json!({"@odata.context": self.context, "value": page});
        if skip.saturating_add(top) < total {
            let mut next = url::Url::parse(&format!("{}{}", ctx.base(), self.path))
                .map_err(|_| GraphError::malformed("Invalid request URL."))?;
            {
                let mut pairs = next.query_pairs_mut();
                for (name, value) in &ctx.query {
                    if name != "$skiptoken" {
                        pairs.append_pair(name, value);
                    }
                }
                pairs.append_pair("$skiptoken", &format!("sim-{}", skip.saturating_add(top)));
            }
            body["@odata.nextLink"] = Value::String(next.to_string());
        }
        Ok(Reply::json_as(200, &body, GRAPH_JSON))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse() {
        assert_eq!(parse_filter("displayName eq 'a b'").unwrap(), vec![("displayName".into(), "a b".into())]);
        assert_eq!(parse_filter("displayName eq 'it''s'").unwrap(), vec![("displayName".into(), "it's".into())]);
        assert_eq!(
            parse_filter("principalId eq 'x' and roleDefinitionId eq 'y'").unwrap(),
            vec![("principalId".into(), "x".into()), ("roleDefinitionId".into(), "y".into())]
        );
        assert!(parse_filter("displayName eq").is_err());
        assert!(parse_filter("displayName eq 'x").is_err());
        assert!(parse_filter("displayName eq 'x' or appId eq 'y'").is_err());
        assert_eq!(parse_filter("startswith(displayName,'x')").unwrap_err().code, "BadRequest");
        assert_eq!(parse_filter("displayName ne 'x'").unwrap_err().code, "Request_UnsupportedQuery");
    }
}
