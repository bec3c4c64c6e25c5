//! `cba exo invoke`'s output: the objects of a page stream as json, jsonl, a table or csv, written as they
//! arrive (the table excepted: it needs every row for its widths).
#![allow(
    clippy::result_large_err,
    reason = "cba_exo::Error keeps the service's fields inline so callers can match on them; errors are the cold path"
)]

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{self, Write};

use futures::{FutureExt as _, Stream, StreamExt as _};
use serde_json::value::RawValue;

use crate::output::{self, OutputFormat};

/// Write every object `items` yields in `format` (`--select` keeps those properties, in that order); the
/// number of objects written.
pub async fn write(
    format: OutputFormat,
    items: &mut impl ItemSource,
    select: &[String],
    out: &mut impl Write,
    style: output::Style,
) -> Result<usize, WriteError> {
    match format {
        OutputFormat::Jsonl => write_jsonl(items, select, out).await,
        OutputFormat::Json => write_json(items, select, out).await,
        OutputFormat::Csv => write_csv(items, select, out, style).await,
        OutputFormat::Text | OutputFormat::Table => write_table(items, select, out, style).await,
    }
}

/// Failures while writing: an Exchange error keeps its exit code; an I/O error (a closed pipe) stays an
/// `io::Error` so `main` can treat BrokenPipe as a normal end.
#[derive(Debug)]
pub enum WriteError {
    /// The cmdlet failed (or sent something unreadable) after `written` objects were already on stdout.
    Exo {
        error: cba_exo::Error,
        written: usize,
    },
    Io(io::Error),
}

impl WriteError {
    /// Note that `written` objects were out before this failure.
    fn after(self, written: usize) -> WriteError {
        match self {
            WriteError::Exo { error, .. } => WriteError::Exo { error, written },
            io => io,
        }
    }
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> Self {
        WriteError::Io(e)
    }
}

impl From<cba_exo::Error> for WriteError {
    fn from(error: cba_exo::Error) -> Self {
        WriteError::Exo { error, written: 0 }
    }
}

/// Output objects one at a time, each borrowed from whatever holds it.
pub trait ItemSource {
    /// The next object's JSON text. When it is not at hand yet (a page is on its way) what was written is
    /// flushed first, so output appears page by page.
    async fn next_item(&mut self, out: &mut impl Write) -> Result<Option<&str>, WriteError>;
}

/// The objects of a page stream, at most `left` of them.
pub struct PagedItems<S> {
    pages: S,
    page: cba_exo::RawPage,
    at: usize,
    left: usize,
}

impl<S> PagedItems<S> {
    /// The objects of `pages`, at most `limit` of them.
    pub fn new(pages: S, limit: Option<u64>) -> PagedItems<S> {
        let left = limit.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        PagedItems { pages, page: cba_exo::RawPage::default(), at: 0, left }
    }
}

impl<S: Stream<Item = Result<cba_exo::RawPage, cba_exo::Error>> + Unpin> ItemSource for PagedItems<S> {
    async fn next_item(&mut self, out: &mut impl Write) -> Result<Option<&str>, WriteError> {
        if self.left == 0 {
            return Ok(None);
        }
        while self.at >= self.page.len() {
            // Done with this page: its buffer goes back to the client for the next one (two in use at most).
            self.page = cba_exo::RawPage::default();
            let next = match self.pages.next().now_or_never() {
                Some(next) => next,
                None => {
                    out.flush()?;
                    self.pages.next().await
                }
            };
            match next {
                Some(page) => (self.page, self.at) = (page?, 0),
                None => {
                    self.left = 0;
                    return Ok(None);
                }
            }
        }
        self.left -= 1;
        self.at += 1;
        Ok(self.page.get(self.at - 1))
    }
}

/// Whether `s` holds a CR or LF. Runs over every output byte, so 32 bytes at a time without branches (the
/// compiler vectorises the inner fold); `str::contains([..])` decodes char by char and cost a quarter of the CPU.
fn has_line_break(s: &[u8]) -> bool {
    let found = |chunk: &[u8]| chunk.iter().fold(0u8, |acc, &b| acc | u8::from(b == b'\n') | u8::from(b == b'\r')) != 0;
    let mut chunks = s.chunks_exact(32);
    chunks.by_ref().any(found) || found(chunks.remainder())
}

/// One JSON value, compact: the service's text if it is already on one line, else with the whitespace
/// between tokens removed (order and number spelling kept).
fn write_compact(raw: &str, out: &mut impl Write) -> io::Result<()> {
    if !has_line_break(raw.as_bytes()) {
        return out.write_all(raw.as_bytes());
    }
    let mut in_string = false;
    let mut escaped = false;
    let mut compact = String::with_capacity(raw.len());
    for c in raw.chars() {
        if in_string {
            compact.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            compact.push(c);
        } else if !c.is_ascii_whitespace() {
            compact.push(c);
        }
    }
    out.write_all(compact.as_bytes())
}

/// One output object after `prefix`, optionally reduced to the `select`ed properties. Nothing is written when
/// the object cannot be read, so what is out stays whole.
fn write_item(raw: &str, select: &[String], prefix: &[u8], out: &mut impl Write) -> Result<(), WriteError> {
    if select.is_empty() {
        out.write_all(prefix)?;
        return Ok(write_compact(raw, out)?);
    }
    let record = Record::parse(raw)?;
    out.write_all(prefix)?;
    out.write_all(b"{")?;
    for (i, name) in select.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        let (key, value) = match record.get(name) {
            Some((key, value)) => (key, value),
            None => (name.as_str(), "null"),
        };
        serde_json::to_writer(&mut *out, key).map_err(io::Error::from)?;
        out.write_all(b":")?;
        write_compact(value, out)?;
    }
    out.write_all(b"}")?;
    Ok(())
}

async fn write_jsonl(
    items: &mut impl ItemSource,
    select: &[String],
    out: &mut impl Write,
) -> Result<usize, WriteError> {
    let mut count = 0;
    let result = async {
        while let Some(raw) = items.next_item(out).await? {
            write_item(raw, select, b"", out)?;
            out.write_all(b"\n")?;
            count += 1;
        }
        Ok(())
    }
    .await;
    result.map(|()| count).map_err(|e: WriteError| e.after(count))
}

/// One JSON array, written as items arrive (one object per line), never held whole. Stdout is valid JSON or
/// empty whatever happens (docs/exo.md): the `[` waits for the first object, so a cmdlet that fails at once
/// prints nothing; one that fails later gets its array closed after the objects already written (the caller
/// says on stderr that they are only part of the result).
async fn write_json(items: &mut impl ItemSource, select: &[String], out: &mut impl Write) -> Result<usize, WriteError> {
    let mut count = 0;
    let result = async {
        while let Some(raw) = items.next_item(out).await? {
            write_item(raw, select, if count == 0 { b"[\n" } else { b",\n" }, out)?;
            count += 1;
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            out.write_all(if count == 0 { b"[]\n" } else { b"\n]\n" })?;
            Ok(count)
        }
        Err(WriteError::Io(e)) => Err(WriteError::Io(e)),
        Err(e) => {
            if count > 0 {
                out.write_all(b"\n]\n")?;
            }
            Err(e.after(count))
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Records for table and csv

/// An output object with its properties in the service's order (serde_json's map would sort them), or a
/// bare value (a cmdlet that outputs strings).
enum Record {
    Object(Vec<(String, Box<RawValue>)>),
    Scalar(String),
}

/// The column a bare value goes in.
const SCALAR_COLUMN: &str = "Value";

impl Record {
    fn parse(raw: &str) -> Result<Record, cba_exo::Error> {
        if !raw.trim_start().starts_with('{') {
            return Ok(Record::Scalar(raw.to_string()));
        }
        let fields: OrderedFields = serde_json::from_str(raw).map_err(|e| cba_exo::Error::Protocol {
            cmdlet: "the cmdlet".to_string(),
            message: format!("an output object is not valid JSON: {e}"),
        })?;
        Ok(Record::Object(fields.0))
    }

    /// A property by name, case-insensitively as in PowerShell: (its spelling, its value).
    fn get(&self, name: &str) -> Option<(&str, &str)> {
        match self {
            Record::Object(fields) => fields
                .iter()
                .find(|(k, _)| k == name)
                .or_else(|| fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                .map(|(k, v)| (k.as_str(), v.get())),
            Record::Scalar(v) if name == SCALAR_COLUMN => Some((SCALAR_COLUMN, v.as_str())),
            Record::Scalar(_) => None,
        }
    }

    /// Property names worth a column (not OData annotations).
    fn names(&self) -> Vec<&str> {
        match self {
            Record::Object(fields) => {
                fields.iter().map(|(k, _)| k.as_str()).filter(|k| !k.starts_with("@odata.")).collect()
            }
            Record::Scalar(_) => vec![SCALAR_COLUMN],
        }
    }
}

struct OrderedFields(Vec<(String, Box<RawValue>)>);

impl<'de> serde::Deserialize<'de> for OrderedFields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OrderedFields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<OrderedFields, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    fields.push(entry);
                }
                Ok(OrderedFields(fields))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// A property value as text for a cell: strings bare, null empty, arrays of scalars joined with `sep`,
/// anything nested as compact JSON.
fn cell_text(raw: &str, sep: &str) -> String {
    let value: serde_json::Value = match serde_json::from_str(raw) {
        Ok(v) => v,
        Err(_) => return raw.to_string(),
    };
    fn scalar(v: &serde_json::Value) -> Option<String> {
        match v {
            serde_json::Value::Null => Some(String::new()),
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Bool(_) | serde_json::Value::Number(_) => Some(v.to_string()),
            _ => None,
        }
    }
    if let Some(s) = scalar(&value) {
        return s;
    }
    if let serde_json::Value::Array(items) = &value
        && let Some(parts) = items.iter().map(scalar).collect::<Option<Vec<_>>>()
    {
        return parts.join(sep);
    }
    value.to_string()
}

// ---------------------------------------------------------------------------------------------------------
// table

/// Columns shown when --select is not given (Get-Mailbox has hundreds of properties).
const DEFAULT_TABLE_COLUMNS: usize = 8;
/// Widest a table cell gets before it is cut with `…`.
const MAX_CELL: usize = 40;

async fn write_table(
    items: &mut impl ItemSource,
    select: &[String],
    out: &mut impl Write,
    style: output::Style,
) -> Result<usize, WriteError> {
    let mut records = Vec::new();
    while let Some(raw) = items.next_item(out).await? {
        records.push(Record::parse(raw)?);
    }
    if records.is_empty() {
        output::info(style.dim("(no output)"));
        return Ok(0);
    }
    let columns: Vec<String> = if select.is_empty() {
        let mut seen = HashSet::new();
        let mut all = Vec::new();
        for r in &records {
            for name in r.names() {
                if seen.insert(name.to_ascii_lowercase()) {
                    all.push(name.to_string());
                }
            }
        }
        if all.len() > DEFAULT_TABLE_COLUMNS {
            output::info(style.dim(&format!(
                "showing {DEFAULT_TABLE_COLUMNS} of {} properties; choose with --select a,b or see all with --output json",
                all.len()
            )));
            all.truncate(DEFAULT_TABLE_COLUMNS);
        }
        all
    } else {
        select.to_vec()
    };
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| {
                    r.get(c).map(|(_, v)| truncate(&terminal_text(&cell_text(v, ", ")), MAX_CELL)).unwrap_or_default()
                })
                .collect()
        })
        .collect();
    render_table(&columns, &rows, out)?;
    Ok(records.len())
}

/// `s` for a terminal: every control character (C0 such as ESC, BEL, CR, LF and TAB; DEL; C1) becomes a space,
/// so text from the service can neither break a table row nor send escape sequences (colours, cursor moves,
/// window titles, OSC 52 clipboard writes) to the terminal.
pub fn terminal_text(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_control) {
        Cow::Owned(s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect())
    } else {
        Cow::Borrowed(s)
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut cut: String = s.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

fn render_table(columns: &[String], rows: &[Vec<String>], out: &mut impl Write) -> io::Result<()> {
    let headers: Vec<String> = columns.iter().map(|c| truncate(&terminal_text(c), MAX_CELL)).collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([headers[i].chars().count()]).max().unwrap_or(0))
        .collect();
    let line = |cells: &[String], out: &mut dyn Write| -> io::Result<()> {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            text.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count()));
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(&headers, out)?;
    line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(), out)?;
    for row in rows {
        line(row, out)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// csv

/// One CSV field, safe to open in a spreadsheet (docs/exo.md, "CSV and spreadsheets"):
/// - control characters are dropped, except TAB, CR and LF, which are kept inside quotes (multi-line notes
///   survive; ESC and BEL do not reach a terminal that `cat`s the file);
/// - a field starting with `=` `+` `-` `@` TAB or CR gets a leading `'` so Excel, LibreOffice and Google Sheets
///   show it as text instead of running it as a formula (OWASP "CSV Injection"); a plain number such as `-1`
///   is left alone, being no formula;
/// - RFC 4180 quoting: a field is quoted when it holds a comma, a quote, TAB, CR or LF (or starts/ends with a
///   space), quotes doubled; records end with CRLF.
fn csv_field(s: &str) -> String {
    let kept = |c: char| !c.is_control() || matches!(c, '\t' | '\r' | '\n');
    let clean: Cow<'_, str> =
        if s.chars().all(kept) { Cow::Borrowed(s) } else { Cow::Owned(s.chars().filter(|c| kept(*c)).collect()) };
    let field: Cow<'_, str> = if clean.starts_with(['=', '+', '-', '@', '\t', '\r']) && !is_plain_number(&clean) {
        Cow::Owned(format!("'{clean}"))
    } else {
        clean
    };
    if field.contains([',', '"', '\t', '\r', '\n']) || field.starts_with(' ') || field.ends_with(' ') {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.into_owned()
    }
}

/// A number as JSON writes one (`-1`, `-0.5`, `-2e3`): what a spreadsheet reads as a number, not a formula.
fn is_plain_number(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        && serde_json::from_str::<serde_json::Number>(s).is_ok()
}

fn csv_record(fields: impl IntoIterator<Item = String>, out: &mut impl Write) -> io::Result<()> {
    let line: Vec<String> = fields.into_iter().map(|f| csv_field(&f)).collect();
    out.write_all(line.join(",").as_bytes())?;
    out.write_all(b"\r\n")
}

/// Streamed: the columns are --select, else the first object's properties.
async fn write_csv(
    items: &mut impl ItemSource,
    select: &[String],
    out: &mut impl Write,
    style: output::Style,
) -> Result<usize, WriteError> {
    let mut columns: Option<Vec<String>> = (!select.is_empty()).then(|| select.to_vec());
    if let Some(columns) = &columns {
        csv_record(columns.iter().cloned(), out)?;
    }
    let mut warned = false;
    let mut count = 0;
    let result = async {
        while let Some(raw) = items.next_item(out).await? {
            let record = Record::parse(raw)?;
            let columns = match &mut columns {
                Some(c) => &*c,
                None => {
                    let first: Vec<String> = record.names().into_iter().map(str::to_string).collect();
                    csv_record(first.iter().cloned(), out)?;
                    columns.insert(first)
                }
            };
            if select.is_empty()
                && !warned
                && let Some(extra) = record.names().into_iter().find(|n| !columns.iter().any(|c| c.eq_ignore_ascii_case(n)))
            {
                output::warn(
                    style,
                    format!(
                        "object {} has a property the first one lacks ({}); the CSV columns are the first object's, choose them with --select",
                        count + 1,
                        terminal_text(extra)
                    ),
                );
                warned = true;
            }
            csv_record(columns.iter().map(|c| record.get(c).map(|(_, v)| cell_text(v, ";")).unwrap_or_default()), out)?;
            count += 1;
        }
        Ok(())
    }
    .await;
    result.map(|()| count).map_err(|e: WriteError| e.after(count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    type Pages = Vec<Result<cba_exo::RawPage, cba_exo::Error>>;

    /// The values as pages of two objects, as `invoke` gets them.
    fn pages(values: &[&str]) -> Pages {
        values
            .chunks(2)
            .map(|chunk| Ok(chunk.iter().map(|v| RawValue::from_string(v.to_string()).unwrap()).collect()))
            .collect()
    }

    /// What `write` puts on stdout for these pages, and what it returns.
    fn render_pages(format: OutputFormat, pages: Pages, select: &[&str]) -> (String, Result<usize, WriteError>) {
        let select: Vec<String> = select.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        let style = output::Style::new(output::ColorChoice::Never, true);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut items = PagedItems::new(futures::stream::iter(pages), None);
        let result = rt.block_on(write(format, &mut items, &select, &mut out, style));
        (String::from_utf8(out).unwrap(), result)
    }

    fn render(format: OutputFormat, values: &[&str], select: &[&str]) -> String {
        let (out, result) = render_pages(format, pages(values), select);
        result.unwrap();
        out
    }

    const ITEMS: &[&str] = &[
        r#"{"Zeta":"z1","Alpha":1,"Tags":["a","b"],"@odata.id":"x"}"#,
        "{\n  \"Zeta\": \"z 2\",\n  \"Alpha\": null\n}",
    ];

    #[test]
    fn jsonl_and_json_keep_the_service_order_and_stay_one_object_per_line() {
        assert_eq!(
            render(OutputFormat::Jsonl, ITEMS, &[]),
            "{\"Zeta\":\"z1\",\"Alpha\":1,\"Tags\":[\"a\",\"b\"],\"@odata.id\":\"x\"}\n{\"Zeta\":\"z 2\",\"Alpha\":null}\n"
        );
        assert_eq!(
            render(OutputFormat::Jsonl, ITEMS, &["alpha", "Missing"]),
            "{\"Alpha\":1,\"Missing\":null}\n{\"Alpha\":null,\"Missing\":null}\n"
        );
        let json = render(OutputFormat::Json, ITEMS, &["Zeta"]);
        assert_eq!(json, "[\n{\"Zeta\":\"z1\"},\n{\"Zeta\":\"z 2\"}\n]\n");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&json).unwrap(), json!([{"Zeta": "z1"}, {"Zeta": "z 2"}]));
        assert_eq!(render(OutputFormat::Json, &[], &[]), "[]\n");
    }

    #[test]
    fn csv_quotes_per_rfc_4180() {
        let items = [r#"{"Name":"a,b","Note":"say \"hi\"","Multi":"l1\nl2","Tags":["x","y"],"N":null,"Pad":" p"}"#];
        assert_eq!(
            render(OutputFormat::Csv, &items, &[]),
            "Name,Note,Multi,Tags,N,Pad\r\n\"a,b\",\"say \"\"hi\"\"\",\"l1\nl2\",x;y,,\" p\"\r\n"
        );
        assert_eq!(render(OutputFormat::Csv, ITEMS, &["Alpha", "Zeta"]), "Alpha,Zeta\r\n1,z1\r\n,z 2\r\n");
    }

    #[test]
    fn table_aligns_and_truncates() {
        let long = "x".repeat(60);
        let first = format!(r#"{{"Name":"a","Long":"{long}","Tags":["t1","t2"]}}"#);
        let items = [first.as_str(), r#"{"Name":"bbbb","Extra":{"k":1}}"#];
        let table = render(OutputFormat::Table, &items, &[]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], format!("Name  Long{}  Tags    Extra", " ".repeat(36)));
        assert_eq!(lines[1], format!("----  {}  ------  -------", "-".repeat(40)));
        assert_eq!(lines[2], format!("a     {}…  t1, t2", "x".repeat(39)));
        assert_eq!(lines[3], format!("bbbb  {}          {{\"k\":1}}", " ".repeat(40)));
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn compacting_keeps_strings_intact() {
        let mut out = Vec::new();
        write_compact("{\n \"a b\" : \"x \\\" y\",\n \"c\": [1, 2]\n}", &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"a b":"x \" y","c":[1,2]}"#);
    }

    fn failure() -> cba_exo::Error {
        cba_exo::Error::Status { cmdlet: "Get-Mailbox".into(), status: 503, body: String::new() }
    }

    /// The objects written before the failure, as `write` reports them.
    fn written(result: Result<usize, WriteError>) -> usize {
        match result {
            Err(WriteError::Exo { written, .. }) => written,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_stays_valid_or_empty_when_the_cmdlet_fails() {
        // At once: nothing at all on stdout.
        let (out, result) = render_pages(OutputFormat::Json, vec![Err(failure())], &[]);
        assert_eq!((out.as_str(), written(result)), ("", 0));
        // After a page: the array of what came, closed.
        let later = || {
            let mut pages = pages(ITEMS);
            pages.push(Err(failure()));
            pages
        };
        let (out, result) = render_pages(OutputFormat::Json, later(), &["Zeta"]);
        assert_eq!(out, "[\n{\"Zeta\":\"z1\"},\n{\"Zeta\":\"z 2\"}\n]\n");
        assert_eq!(written(result), 2);
        let (out, result) = render_pages(OutputFormat::Jsonl, later(), &[]);
        assert_eq!((out.lines().count(), written(result)), (2, 2));
        let (out, result) = render_pages(OutputFormat::Csv, later(), &["Alpha"]);
        assert_eq!((out.as_str(), written(result)), ("Alpha\r\n1\r\n\r\n", 2));
        // The table is written only once every object is in: nothing.
        let (out, result) = render_pages(OutputFormat::Table, later(), &[]);
        assert_eq!((out.as_str(), written(result)), ("", 0));
    }

    #[test]
    fn csv_fields_cannot_become_formulas_or_control_sequences() {
        let check = |input: &str, expected: &str| assert_eq!(csv_field(input), expected, "{input:?}");
        check(r#"=HYPERLINK("http://evil.example","click")"#, r#""'=HYPERLINK(""http://evil.example"",""click"")""#);
        check("=1+2", "'=1+2");
        check("+SUM(A1)", "'+SUM(A1)");
        check("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0");
        check("@SUM(A1)", "'@SUM(A1)");
        check("\t=1", "\"'\t=1\"");
        check("\r=1", "\"'\r=1\"");
        check("\x1b=1", "'=1");
        check("-1", "-1");
        check("-0.5e3", "-0.5e3");
        check("+1", "'+1");
        check("a=b", "a=b");
        check("a\x1b[31mred\x07\x7f\u{9b}2J", "a[31mred2J");
        check("l1\r\nl2\tx", "\"l1\r\nl2\tx\"");
        check("", "");
        assert_eq!(
            render(OutputFormat::Csv, &[r#"{"=cmd":"@x","N":-3}"#], &[]),
            "'=cmd,N\r\n'@x,-3\r\n",
            "headers too; JSON numbers stay numbers"
        );
    }

    #[test]
    fn the_table_sends_no_control_characters_to_the_terminal() {
        let items = [r#"{"Na\u001bme":"\u001b]0;pwned\u0007x","Bell":"a\u0007b\u009b"}"#];
        let table = render(OutputFormat::Table, &items, &[]);
        assert!(!table.chars().any(|c| c.is_control() && c != '\n'), "{table:?}");
        assert!(table.starts_with("Na me"), "{table:?}");
        assert!(table.contains(" ]0;pwned x") && table.contains("a b"), "{table:?}");
        assert_eq!(terminal_text("plain"), Cow::Borrowed("plain"));
    }
}
