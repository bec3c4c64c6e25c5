//! The OPATH subset management scopes take (`-RecipientRestrictionFilter`) and Get-Recipient/Get-User take
//! (`-Filter`): `Prop -eq 'v'`, `-ne`, `-like 'pre*'`, `-and`, `-or`, parentheses, on Department,
//! CustomAttribute1..15, RecipientTypeDetails and PrimarySmtpAddress. Values compare case-insensitively.
//! Anything else (another property, `-not`, `-notlike`, `$null`, an unquoted value) is refused, so a client
//! cannot rely on something the sim would silently misread.

use std::fmt;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Filter {
    Compare { property: String, op: Op, value: String },
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Like,
}

/// Why a filter was refused: what was wrong and where (0-based character position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilterError {
    pub(crate) message: String,
    pub(crate) position: usize,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at position {}.", self.message, self.position)
    }
}

/// The properties the subset knows, in their canonical spelling.
fn canonical_property(name: &str) -> Option<String> {
    for known in ["Department", "RecipientTypeDetails", "PrimarySmtpAddress"] {
        if known.eq_ignore_ascii_case(name) {
            return Some(known.to_string());
        }
    }
    let n: u8 =
        name.get(..15).filter(|p| p.eq_ignore_ascii_case("CustomAttribute")).and_then(|_| name[15..].parse().ok())?;
    ((1..=15).contains(&n) && name[15..] == n.to_string()).then(|| format!("CustomAttribute{n}"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Operator(String),
    Quoted(String),
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            tokens.push((start, Token::Open));
            i += 1;
        } else if c == ')' {
            tokens.push((start, Token::Close));
            i += 1;
        } else if c == '\'' || c == '"' {
            // A quote inside is doubled, as in PowerShell.
            let mut value = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(FilterError { message: "Unterminated quoted string".into(), position: start }),
                    Some(&q) if q == c && chars.get(i + 1) == Some(&c) => {
                        value.push(c);
                        i += 2;
                    }
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        value.push(other);
                        i += 1;
                    }
                }
            }
            tokens.push((start, Token::Quoted(value)));
        } else {
            let mut word = String::new();
            while let Some(&w) = chars.get(i) {
                if w.is_whitespace() || w == '(' || w == ')' || w == '\'' || w == '"' {
                    break;
                }
                word.push(w);
                i += 1;
            }
            if word.starts_with('-') {
                tokens.push((start, Token::Operator(word.to_ascii_lowercase())));
            } else {
                tokens.push((start, Token::Word(word)));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    next: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next).map(|(_, t)| t)
    }

    fn position(&self) -> usize {
        self.tokens.get(self.next).map_or(self.end, |(p, _)| *p)
    }

    fn fail<T>(&self, message: impl Into<String>) -> Result<T, FilterError> {
        Err(FilterError { message: message.into(), position: self.position() })
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Operator("-or".into())) {
            self.next += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.primary()?;
        while self.peek() == Some(&Token::Operator("-and".into())) {
            self.next += 1;
            left = Filter::And(Box::new(left), Box::new(self.primary()?));
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Filter, FilterError> {
        match self.peek().cloned() {
            Some(Token::Open) => {
                self.next += 1;
                let inner = self.or()?;
                if self.peek() != Some(&Token::Close) {
                    return self.fail("Expected ')'");
                }
                self.next += 1;
                Ok(inner)
            }
            Some(Token::Word(name)) => {
                let Some(property) = canonical_property(&name) else {
                    return self.fail(format!(
                        "'{name}' is not a recognized filterable property (cba-sim knows Department, CustomAttribute1-15, RecipientTypeDetails, PrimarySmtpAddress)"
                    ));
                };
                self.next += 1;
                let op = match self.peek() {
                    Some(Token::Operator(o)) if o == "-eq" => Op::Eq,
                    Some(Token::Operator(o)) if o == "-ne" => Op::Ne,
                    Some(Token::Operator(o)) if o == "-like" => Op::Like,
                    Some(Token::Operator(o)) => {
                        let o = o.clone();
                        return self.fail(format!("The operator '{o}' is not supported (-eq, -ne, -like)"));
                    }
                    _ => return self.fail(format!("Expected an operator after '{property}'")),
                };
                self.next += 1;
                let value = match self.peek() {
                    Some(Token::Quoted(v)) => v.clone(),
                    Some(Token::Word(w)) => {
                        let w = w.clone();
                        return self.fail(format!("The value '{w}' must be quoted"));
                    }
                    _ => return self.fail(format!("Expected a quoted value after '{property}'")),
                };
                self.next += 1;
                Ok(Filter::Compare { property, op, value })
            }
            Some(Token::Operator(o)) => {
                let o = o.clone();
                self.fail(format!("Unexpected operator '{o}'"))
            }
            Some(Token::Quoted(_)) => self.fail("Expected a property name, not a value"),
            Some(Token::Close) => self.fail("Unexpected ')'"),
            None => self.fail("The filter ends where a comparison was expected"),
        }
    }
}

impl Filter {
    pub(crate) fn parse(text: &str) -> Result<Filter, FilterError> {
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens, next: 0, end: text.chars().count() };
        let filter = parser.or()?;
        if parser.next < parser.tokens.len() {
            return parser.fail("Unexpected text after the end of the filter");
        }
        Ok(filter)
    }

    /// Whether a recipient matches; `property` gives its value of a canonical property (`None`: not set).
    pub(crate) fn matches(&self, property: &dyn Fn(&str) -> Option<String>) -> bool {
        match self {
            Filter::And(a, b) => a.matches(property) && b.matches(property),
            Filter::Or(a, b) => a.matches(property) || b.matches(property),
            Filter::Compare { property: name, op, value } => {
                let actual = property(name);
                match op {
                    Op::Eq => actual.is_some_and(|a| a.eq_ignore_ascii_case(value)),
                    Op::Ne => !actual.is_some_and(|a| a.eq_ignore_ascii_case(value)),
                    Op::Like => actual.is_some_and(|a| like(&a.to_lowercase(), &value.to_lowercase())),
                }
            }
        }
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn like(text: &str, pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return text == pattern;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipient(department: &'static str) -> impl Fn(&str) -> Option<String> {
        move |p: &str| match p {
            "Department" => Some(department.to_string()),
            "RecipientTypeDetails" => Some("UserMailbox".into()),
            "PrimarySmtpAddress" => Some("user00001@contoso.onmicrosoft.com".into()),
            "CustomAttribute1" => Some("Blue".into()),
            _ => None,
        }
    }

    #[test]
    fn accepted_filters_match_as_opath_does() {
        for (filter, department, expected) in [
            ("Department -eq 'Sales'", "Sales", true),
            ("Department -eq 'sales'", "Sales", true),
            ("department -EQ \"SALES\"", "Sales", true),
            ("Department -eq 'Sales'", "Finance", false),
            ("Department -ne 'Sales'", "Finance", true),
            ("Department -like 'Sal*'", "Sales", true),
            ("Department -like '*ing'", "Marketing", true),
            ("Department -like 'M*t*g'", "Marketing", true),
            ("Department -like 'Sal*'", "Finance", false),
            ("Department -eq 'Sales' -or Department -eq 'Finance'", "Finance", true),
            ("Department -eq 'Sales' -and CustomAttribute1 -eq 'blue'", "Sales", true),
            ("Department -eq 'Sales' -and CustomAttribute2 -eq 'blue'", "Sales", false),
            ("CustomAttribute2 -ne 'x'", "Sales", true),
            (
                "(Department -eq 'Sales' -or Department -eq 'Finance') -and RecipientTypeDetails -eq 'UserMailbox'",
                "Sales",
                true,
            ),
            ("Department -eq 'Finance' -or Department -eq 'Sales' -and CustomAttribute1 -eq 'red'", "Sales", false),
            ("PrimarySmtpAddress -like '*@contoso.onmicrosoft.com'", "Sales", true),
            ("Department -eq 'O''Brien'", "O'Brien", true),
        ] {
            let parsed = Filter::parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
            assert_eq!(parsed.matches(&recipient(department)), expected, "{filter} on {department}");
        }
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let parsed = Filter::parse("Department -eq 'a' -or Department -eq 'b' -and Department -eq 'c'").unwrap();
        assert!(matches!(parsed, Filter::Or(_, _)), "{parsed:?}");
    }

    #[test]
    fn rejects_what_it_does_not_understand() {
        for (filter, position, text) in [
            ("", 0, "ends where a comparison"),
            ("Department", 10, "Expected an operator"),
            ("Department -eq", 14, "Expected a quoted value"),
            ("Department -eq Sales", 15, "must be quoted"),
            ("Department -gt 'a'", 11, "'-gt' is not supported"),
            ("Department -notlike 'a*'", 11, "not supported"),
            ("Title -eq 'a'", 0, "'Title' is not a recognized"),
            ("CustomAttribute16 -eq 'a'", 0, "not a recognized"),
            ("CustomAttribute01 -eq 'a'", 0, "not a recognized"),
            ("-not (Department -eq 'a')", 0, "Unexpected operator '-not'"),
            ("Department -eq 'a' -and", 23, "ends where"),
            ("(Department -eq 'a'", 19, "Expected ')'"),
            ("Department -eq 'a')", 18, "Unexpected text"),
            ("Department -eq 'a", 15, "Unterminated"),
            ("Department -eq $null", 15, "must be quoted"),
            ("'Sales' -eq Department", 0, "not a value"),
        ] {
            let error = Filter::parse(filter).expect_err(filter);
            assert!(error.message.contains(text), "{filter}: {error}");
            assert_eq!(error.position, position, "{filter}: {error}");
        }
    }

    #[test]
    fn like_patterns() {
        assert!(like("abc", "abc"));
        assert!(!like("abcd", "abc"));
        assert!(like("abc", "*"));
        assert!(like("abc", "a*c"));
        assert!(!like("ac", "ab*bc"));
        assert!(like("abbc", "ab*bc"));
    }
}
