//! A source scan for calls a crate must not make. Heuristic on purpose: whole-line comments are skipped,
//! everything else is searched as text, so a mention in a trailing comment or a string is a (loud, easily
//! reworded) false alarm rather than a silent miss.

use std::path::{Path, PathBuf};

#[derive(Debug, PartialEq)]
pub struct Hit {
    pub file: PathBuf,
    pub line: usize,
    pub pattern: &'static str,
    pub text: String,
}

/// Every `.rs` file under `dir` (sorted, so failures read the same every run).
pub fn scan_dir(dir: &Path, patterns: &[&'static str]) -> Vec<Hit> {
    let mut files = Vec::new();
    collect_rs(dir, &mut files);
    files.sort();
    let mut hits = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        for (line, pattern, text) in scan_text(&text, patterns) {
            hits.push(Hit { file: file.clone(), line, pattern, text });
        }
    }
    hits
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// (1-based line, pattern, trimmed line) for each pattern found on a code line.
pub fn scan_text(text: &str, patterns: &[&'static str]) -> Vec<(usize, &'static str, String)> {
    let mut hits = Vec::new();
    let mut in_block_comment = false;
    for (i, line) in text.lines().enumerate() {
        let code = line.trim();
        if in_block_comment {
            in_block_comment = !code.contains("*/");
            continue;
        }
        if code.starts_with("//") {
            continue;
        }
        if code.starts_with("/*") {
            in_block_comment = !code.contains("*/");
            continue;
        }
        for &pattern in patterns {
            if contains_token(code, pattern) {
                hits.push((i + 1, pattern, code.to_string()));
            }
        }
    }
    hits
}

/// `pattern` occurs in `line` and, when it starts with an identifier character, not as the tail of a longer
/// identifier (`fs::` must not match `prefs::`, `env::var` must not match `my_env::var`).
fn contains_token(line: &str, pattern: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let needs_boundary = pattern.starts_with(ident);
    line.match_indices(pattern).any(|(at, _)| !needs_boundary || !line[..at].ends_with(ident))
}

#[cfg(test)]
mod tests {
    use super::scan_text;

    fn check(source: &str, patterns: &[&'static str], expected: &[(usize, &str)]) {
        let found: Vec<(usize, &str)> = scan_text(source, patterns).into_iter().map(|(l, p, _)| (l, p)).collect();
        assert_eq!(found, expected, "in:\n{source}");
    }

    #[test]
    fn finds_calls_and_skips_comments() {
        let env = &["env::var", "env::args", "std::env::{"];
        check("let x = std::env::var(\"A\");", env, &[(1, "env::var")]);
        check("use std::env;\nfn f() { env::vars_os(); }", env, &[(2, "env::var")]);
        check("use std::env::{self, var};", env, &[(1, "std::env::{")]);
        check("let a = std::env::args().nth(1);", env, &[(1, "env::args")]);
        check("/// the CLI passes `std::env::var`\n// env::var\n/*\nenv::var\n*/\nfn f() {}", env, &[]);
        check("let v = env!(\"CARGO_PKG_VERSION\");", env, &[]);
        check("my_env::var(1);", env, &[]);
        let fs = &["std::fs", "fs::", "OpenOptions"];
        check("prefs::load();", fs, &[]);
        check("use std::fs;\nfs::write(p, b)?;\ntokio::fs::read(p)", fs, &[(1, "std::fs"), (2, "fs::"), (3, "fs::")]);
        check("let f = std::fs::OpenOptions::new();", fs, &[(1, "std::fs"), (1, "fs::"), (1, "OpenOptions")]);
    }
}
