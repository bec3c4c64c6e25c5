//! Every `cba …` example in every `--help` (the `Examples:` sections, read from the real binary) and in the
//! code blocks of README.md and docs/*.md, run. The important ones run against the simulated tenant with the
//! placeholders filled in (tenant, app id, files an earlier example made); the others (a real tenant, a
//! browser, a server that never stops) get `--help` appended, which clap only reaches when every flag before
//! it exists and every value parses. A help example clap wrapped into two lines fails too: as printed, it is
//! not the command it was written as.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cba_sim::SimTenant;

use super::{Tenant, assert_code, cba, json, run, stderr, stdout};

/// One example as written: where it is, the variables set on its line or exported before it, its arguments.
#[derive(Debug, Clone)]
struct Example {
    source: String,
    /// Set on the example's own line: part of the example.
    env: Vec<(String, String)>,
    /// `export`ed earlier in the same block: applied when it runs.
    exported: Vec<(String, String)>,
    args: Vec<String>,
}

impl Example {
    /// The example as a key: `NAME=VALUE … cba ARGS…` (quotes removed).
    fn key(&self) -> String {
        let mut words: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        words.push("cba".into());
        words.extend(self.args.iter().cloned());
        words.join(" ")
    }
}

/// Where the examples run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// A folder of its own, no tenant (`cba cert new/show`, completions).
    Files,
    /// `cba setup --help`'s simulator example: nothing but its own flags points it at the simulator.
    SimFlags,
    /// A simulated tenant named by the environment (AZURE_AUTHORITY_HOST, CBA_GRAPH_URL, CBA_EXCHANGE_URL,
    /// CBA_GRAPH_TOKEN) and CBA_PFX_PASSWORD=..., as docs/exo.md's quick start exports it.
    Tenant,
}

/// What the scenario made, for the placeholders of later examples and the checks.
struct Context<'a> {
    dir: &'a Path,
    sim: Option<&'a SimTenant>,
    app_id: Option<String>,
}

type Check = fn(&Output, &Context<'_>);

/// The examples that run, in this order within each scenario; every other example is parse-checked. Each
/// must still be found in the help or the docs (a renamed example fails here, not silently).
const RUN: &[(&str, Scenario, Option<Check>)] = &[
    ("CBA_PFX_PASSWORD=... cba cert new --name contoso-exo", Scenario::Files, None),
    ("cba cert show contoso-exo.cer", Scenario::Files, None),
    ("CBA_PFX_PASSWORD=... cba cert show contoso-exo.pfx --output json", Scenario::Files, Some(pfx_opened)),
    ("cba cert new --name legacy-host --pfx-format legacy --pem --no-password --output json", Scenario::Files, None),
    (
        "cba cert new --name contoso-exo --out-dir ./certs --years 2 --password-file ./pfx-password.txt",
        Scenario::Files,
        None,
    ),
    ("cba completions bash", Scenario::Files, None),
    ("cba completions zsh", Scenario::Files, None),
    ("cba completions fish", Scenario::Files, None),
    ("cba completions powershell", Scenario::Files, None),
    (
        "CBA_GRAPH_TOKEN=<admin_token> cba setup --admin token --tenant <tenant_id> --name demo --authority-host \
         <login_url> --graph-url <graph_url> --exchange-url <exchange_url>",
        Scenario::SimFlags,
        Some(profile_names_only_the_simulator),
    ),
    ("cba setup --tenant contoso.onmicrosoft.com --name contoso-exo", Scenario::Tenant, Some(next_steps_shown)),
    ("cba setup --tenant contoso.onmicrosoft.com --name contoso-exo --dry-run", Scenario::Tenant, None),
    ("cba status --profile contoso-exo.profile.json", Scenario::Tenant, None),
    ("CBA_PROFILE=contoso-exo.profile.json cba status --output json", Scenario::Tenant, None),
    (
        "cba status --tenant contoso.onmicrosoft.com --client-id 631a96bc-... --cert contoso-exo.pfx",
        Scenario::Tenant,
        None,
    ),
    ("cba token --profile contoso-exo.profile.json", Scenario::Tenant, None),
    ("cba token --format header", Scenario::Tenant, Some(header)),
    ("cba token --resource graph --format json", Scenario::Tenant, None),
    ("cba token --format env", Scenario::Tenant, Some(sh_env)),
    ("cba token --format env --shell powershell", Scenario::Tenant, Some(powershell_env)),
    ("cba token --wait 5m", Scenario::Tenant, None),
    ("cba token --decode", Scenario::Tenant, None),
    ("cba token --print-assertion", Scenario::Tenant, None),
    ("cba exo check", Scenario::Tenant, None),
    ("cba exo check --profile contoso-exo.profile.json", Scenario::Tenant, None),
    (
        "cba exo check --organization contoso.onmicrosoft.com --client-id 631a96bc-... --cert contoso-exo.pfx \
         --output json",
        Scenario::Tenant,
        Some(check_by_organization),
    ),
    ("cba exo invoke Get-Mailbox --result-size 10", Scenario::Tenant, None),
    (
        "cba exo invoke Get-Mailbox -p ResultSize=Unlimited --select DisplayName,PrimarySmtpAddress --output csv",
        Scenario::Tenant,
        None,
    ),
    ("cba exo invoke Get-Mailbox -p Identity=john@contoso.com --output json", Scenario::Tenant, None),
    (
        "cba exo invoke Set-Mailbox -p Identity=john@contoso.com -p HiddenFromAddressListsEnabled=true",
        Scenario::Tenant,
        None,
    ),
    ("cba exo invoke Get-Mailbox -p ResultSize=Unlimited --output jsonl", Scenario::Tenant, None),
    ("cba exo invoke Get-Mailbox --profile contoso-exo.profile.json --result-size 10", Scenario::Tenant, None),
    ("cba cert rotate --profile contoso-exo.profile.json --if-expiring-within 30", Scenario::Tenant, None),
    ("cba teardown --profile contoso-exo.profile.json --yes --delete-files", Scenario::Tenant, Some(torn_down)),
];

#[tokio::test(flavor = "multi_thread")]
async fn every_example_in_the_help_and_the_docs_works() {
    let examples = all_examples();
    assert!(examples.len() >= 50, "the extraction found only {} examples: {examples:#?}", examples.len());
    for (key, _, _) in RUN {
        assert!(examples.iter().any(|e| e.key() == *key), "no example {key:?} any more: update RUN");
    }

    // Parse-check whatever does not run.
    let mut failures = Vec::new();
    for example in examples.iter().filter(|e| !RUN.iter().any(|(key, _, _)| e.key() == *key)) {
        let mut cmd = cba();
        cmd.args(&example.args).arg("--help").current_dir(std::env::temp_dir());
        let o = run(&mut cmd, None);
        if o.status.code() != Some(0) || !stdout(&o).contains("Usage: cba") {
            failures.push(format!("{} ({}): clap refused it:\n{}", example.key(), example.source, stderr(&o)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    let files = tempfile::tempdir().unwrap();
    // What the examples take as given: a password file, a folder for certificates.
    std::fs::write(files.path().join("pfx-password.txt"), "a PFX password\n").unwrap();
    std::fs::create_dir(files.path().join("certs")).unwrap();
    let ctx = Context { dir: files.path(), sim: None, app_id: None };
    run_scenario(&examples, Scenario::Files, &ctx, |args| {
        let mut cmd = cba();
        cmd.args(args).current_dir(files.path());
        cmd
    });

    let t = Tenant::start(SimTenant::builder()).await;
    let ctx = Context { dir: t.dir.path(), sim: Some(&t.sim), app_id: None };
    run_scenario(&examples, Scenario::SimFlags, &ctx, |args| {
        let mut cmd = cba();
        cmd.args(args)
            .current_dir(t.dir.path())
            .env("HOME", t.dir.path())
            .env("XDG_CACHE_HOME", t.dir.path().join("cache"))
            .env("CBA_PFX_PASSWORD", "...");
        cmd
    });

    let t = Tenant::start(SimTenant::builder()).await;
    let mut ctx = Context { dir: t.dir.path(), sim: Some(&t.sim), app_id: None };
    let tenant = |args: &[String]| {
        let mut cmd = t.cmd(&[]);
        cmd.args(args).env("CBA_PFX_PASSWORD", "...");
        cmd
    };
    // setup first: the app id it makes fills the `631a96bc-...` of later examples.
    let (setup, rest): (Vec<_>, Vec<_>) =
        RUN.iter().filter(|r| r.1 == Scenario::Tenant).partition(|r| r.0.starts_with("cba setup"));
    run_entries(&examples, &setup, &ctx, tenant);
    let profile = t.dir.path().join("contoso-exo.profile.json");
    let profile: serde_json::Value = serde_json::from_slice(&std::fs::read(&profile).unwrap()).unwrap();
    ctx.app_id = Some(profile["app_id"].as_str().unwrap().to_string());
    run_entries(&examples, &rest, &ctx, tenant);
}

fn run_scenario(examples: &[Example], scenario: Scenario, ctx: &Context<'_>, cmd: impl Fn(&[String]) -> Command) {
    let entries: Vec<_> = RUN.iter().filter(|r| r.1 == scenario).collect();
    run_entries(examples, &entries, ctx, cmd);
}

fn run_entries(
    examples: &[Example],
    entries: &[&(&str, Scenario, Option<Check>)],
    ctx: &Context<'_>,
    cmd: impl Fn(&[String]) -> Command,
) {
    for (key, _, check) in entries {
        for example in examples.iter().filter(|e| e.key() == *key) {
            let args: Vec<String> = example.args.iter().map(|a| fill(a, ctx)).collect();
            let mut command = cmd(&args);
            for (name, value) in example.exported.iter().chain(&example.env) {
                command.env(name, fill(value, ctx));
            }
            let o = run(&mut command, None);
            assert_eq!(
                o.status.code(),
                Some(0),
                "{key} ({}) exited {:?}\nstdout:\n{}\nstderr:\n{}",
                example.source,
                o.status.code(),
                stdout(&o),
                stderr(&o)
            );
            if let Some(check) = check {
                check(&o, ctx);
            }
        }
    }
}

/// The placeholders of the examples, for what the scenario has.
fn fill(text: &str, ctx: &Context<'_>) -> String {
    let mut text = text.to_string();
    if let Some(app_id) = &ctx.app_id {
        text = text.replace("631a96bc-...", app_id);
    }
    if let Some(sim) = ctx.sim {
        for (placeholder, value) in [
            ("<tenant_id>", sim.tenant_id().to_string()),
            ("<login_url>", sim.login_url().to_string()),
            ("<graph_url>", sim.graph_url().to_string()),
            ("<exchange_url>", sim.exchange_url().to_string()),
            ("<admin_token>", sim.admin_token()),
            ("john@contoso.com", format!("user00001@{}", sim.tenant_domain())),
            ("contoso.onmicrosoft.com", sim.tenant_domain().to_string()),
        ] {
            text = text.replace(placeholder, &value);
        }
    }
    text
}

// ---------------------------------------------------------------------------------------------------------
// checks beyond exit 0

fn pfx_opened(o: &Output, _: &Context<'_>) {
    let doc = json(o);
    assert_eq!(doc["has_private_key"], true, "{doc:#}");
    assert_eq!(doc["key_matches"], true, "{doc:#}");
}

fn profile_names_only_the_simulator(_: &Output, ctx: &Context<'_>) {
    let sim = ctx.sim.unwrap();
    let profile: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ctx.dir.join("demo.profile.json")).unwrap()).unwrap();
    assert_eq!(profile["endpoints"]["login"], sim.login_url().trim_end_matches('/'));
    assert_eq!(profile["endpoints"]["graph"], sim.graph_url().trim_end_matches('/'));
    assert_eq!(profile["endpoints"]["exchange"], sim.exchange_url().trim_end_matches('/'), "{profile:#}");
}

fn next_steps_shown(o: &Output, ctx: &Context<'_>) {
    let text = stdout(o);
    let pfx = std::fs::canonicalize(ctx.dir.join("contoso-exo.pfx")).unwrap();
    let quoted = format!("-CertificateFilePath '{}'", pfx.display());
    assert!(text.contains(&quoted), "an absolute, quoted path ({quoted}):\n{text}");
    assert!(text.contains("-Organization contoso.onmicrosoft.com"), "{text}");
    assert!(text.contains("(ConvertTo-SecureString $env:CBA_PFX_PASSWORD -AsPlainText -Force)"), "{text}");
    assert!(text.contains("(Get-Secret -Name contoso-exo)"), "{text}");
}

fn header(o: &Output, _: &Context<'_>) {
    assert!(stdout(o).starts_with("Authorization: Bearer ey"), "{}", stdout(o));
}

fn sh_env(o: &Output, _: &Context<'_>) {
    let text = stdout(o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("export CBA_ACCESS_TOKEN='ey") && lines[0].ends_with('\''), "{text}");
    assert!(lines[1].starts_with("export CBA_ACCESS_TOKEN_EXPIRES_ON='20"), "{text}");
}

fn powershell_env(o: &Output, _: &Context<'_>) {
    let text = stdout(o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("$env:CBA_ACCESS_TOKEN='ey") && lines[0].ends_with('\''), "{text}");
    assert!(lines[1].starts_with("$env:CBA_ACCESS_TOKEN_EXPIRES_ON='20"), "{text}");
}

fn check_by_organization(o: &Output, ctx: &Context<'_>) {
    let doc = json(o);
    assert_eq!(doc["ok"], true, "{doc:#}");
    assert_eq!(doc["tenant"], ctx.sim.unwrap().tenant_domain(), "the tenant falls back to --organization");
    let line = doc["connect_exchange_online"].as_str().unwrap();
    let pfx = std::fs::canonicalize(ctx.dir.join("contoso-exo.pfx")).unwrap();
    assert!(line.contains(&format!("-CertificateFilePath '{}'", pfx.display())), "{line}");
    assert!(line.contains(&format!("-AppId {} ", ctx.app_id.as_deref().unwrap())), "{line}");
    assert!(line.ends_with(" -Organization contoso.onmicrosoft.com"), "{line}");
}

fn torn_down(_: &Output, ctx: &Context<'_>) {
    assert!(!ctx.dir.join("contoso-exo.profile.json").exists());
    assert!(!ctx.dir.join("contoso-exo.pfx").exists());
}

// ---------------------------------------------------------------------------------------------------------
// finding the examples

fn all_examples() -> Vec<Example> {
    let (mut examples, mut sections, mut wrapped) = (Vec::new(), Vec::new(), Vec::new());
    for (command, help) in help_texts() {
        let source = format!("`cba {}--help`", command.iter().map(|c| format!("{c} ")).collect::<String>());
        let section = examples_section(&help);
        if let Some(section) = section {
            for line in logical_lines(&section) {
                let line = strip_comment(&line);
                let first = line.split_whitespace().next().unwrap_or("");
                let known = first.is_empty()
                    || first == "cba"
                    || is_assignment(first)
                    || ["export", "curl", "eval", "pbpaste"].contains(&first);
                if !known {
                    wrapped.push(format!("{source}: {line:?}"));
                }
            }
            sections.push((source, section));
        }
    }
    assert!(
        wrapped.is_empty(),
        "example lines that are not commands, as printed: wrapped by clap at 100 columns? Keep each example \
         line (comment included) within 100 columns:\n{}",
        wrapped.join("\n")
    );
    for (source, section) in sections {
        examples.extend(extract(&source, &section));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut docs: Vec<PathBuf> = vec![root.join("README.md")];
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    docs.extend(pages);
    for path in docs {
        let name = path.strip_prefix(&root).unwrap().display().to_string();
        for block in shell_blocks(&std::fs::read_to_string(&path).unwrap()) {
            examples.extend(extract(&name, &block));
        }
    }
    examples
}

/// `cba --help` and that of every command and subcommand, found through the `Commands:` lists.
fn help_texts() -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    let mut todo: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = todo.pop() {
        let o = run(cba().args(&path).arg("--help"), None);
        assert_code(&o, 0);
        let help = stdout(&o);
        let mut in_commands = false;
        for line in help.lines() {
            if line == "Commands:" {
                in_commands = true;
            } else if in_commands && line.is_empty() {
                in_commands = false;
            } else if in_commands
                && let Some(name) = line.strip_prefix("  ").and_then(|l| l.split_whitespace().next())
                && !line.starts_with("   ")
                && name != "help"
            {
                let mut sub = path.clone();
                sub.push(name.to_string());
                todo.push(sub);
            }
        }
        out.push((path, help));
    }
    assert!(out.len() >= 12, "found only {} commands", out.len());
    out
}

/// The lines after `Examples:` up to the first blank line.
fn examples_section(help: &str) -> Option<String> {
    let start = help.find("\nExamples:\n")? + "\nExamples:\n".len();
    let rest = &help[start..];
    Some(rest.split("\n\n").next().unwrap_or(rest).to_string())
}

/// The shell code blocks (```sh, ```bash, ``` …) of a Markdown page; `text` blocks are output.
fn shell_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        if let Some(lang) = line.trim_start().strip_prefix("```") {
            match current.take() {
                Some(block) => blocks.push(block),
                None if ["", "sh", "bash", "shell", "console"].contains(&lang.trim()) => current = Some(String::new()),
                None => current = Some(String::from("\u{0}")),
            }
            continue;
        }
        if let Some(block) = &mut current
            && !block.starts_with('\u{0}')
        {
            block.push_str(line);
            block.push('\n');
        }
    }
    blocks.retain(|b| !b.starts_with('\u{0}'));
    blocks
}

/// Lines with their `\` continuations joined.
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        match line.trim_end().strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(line);
                lines.push(std::mem::take(&mut pending));
            }
        }
    }
    if !pending.is_empty() {
        lines.push(pending);
    }
    lines
}

/// The line without its `# comment` (a `#` that starts a word, outside quotes).
fn strip_comment(line: &str) -> String {
    let (mut quote, mut prev) = (None, ' ');
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') if prev.is_whitespace() => return line[..i].trim_end().to_string(),
            _ => {}
        }
        prev = c;
    }
    line.trim_end().to_string()
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    })
}

/// The `cba` commands of a block, with the variables each line sets and those `export`ed before it.
fn extract(source: &str, block: &str) -> Vec<Example> {
    let mut exported: BTreeMap<String, String> = BTreeMap::new();
    let mut examples = Vec::new();
    for line in logical_lines(block) {
        let line = strip_comment(&line);
        let trimmed = line.trim_start();
        if let Some(assignments) = trimmed.strip_prefix("export ") {
            for word in words(assignments, source).0 {
                if let Some((k, v)) = word.split_once('=') {
                    exported.insert(k.to_string(), v.to_string());
                }
            }
            continue;
        }
        for start in cba_positions(&line) {
            let (args, _) = words(&line[start + "cba".len()..], source);
            // NAME=VALUE words right before `cba`, in the same command.
            let before = &line[..start];
            let segment = before.rfind(['|', ';', '(', ')', '&']).map(|i| &before[i + 1..]).unwrap_or(before);
            let env = words(segment, source)
                .0
                .into_iter()
                .filter_map(|w| is_assignment(&w).then(|| w.split_once('=').map(|(k, v)| (k.into(), v.into())))?)
                .collect();
            let exported = exported.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            examples.push(Example { source: source.to_string(), env, exported, args });
        }
    }
    examples
}

/// Where `cba` starts a command: at the line's start or after a space, `(`, `|` or `;`, outside single quotes.
fn cba_positions(line: &str) -> Vec<usize> {
    let bytes = line.as_bytes();
    let mut single = false;
    let mut found = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\'' {
            single = !single;
        }
        let starts = i == 0 || matches!(bytes[i - 1], b' ' | b'(' | b'|' | b';' | b'\t');
        let ends = bytes.get(i + 3).is_none_or(|c| c.is_ascii_whitespace());
        if !single && starts && ends && line[i..].starts_with("cba") {
            // A command word, not an argument (`softhsm2-util --label cba`): only NAME=VALUE words may stand
            // between it and the start of its command.
            let before = &line[..i];
            let segment = before.rfind(['|', ';', '(', ')', '&']).map(|j| &before[j + 1..]).unwrap_or(before);
            if segment.split_whitespace().all(is_assignment) {
                found.push(i);
            }
        }
    }
    found
}

/// Shell words up to an unquoted `|`, `;`, `&`, `)` or redirection; the second value is what was consumed.
#[track_caller]
fn words(text: &str, source: &str) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '|' | ';' | '&' | ')' => return (out.into_iter().chain(word).collect(), i),
            // A redirection (`> file`, `>> file`), not a `<placeholder>`.
            '<' | '>' if word.is_none() && chars.peek().is_none_or(|(_, n)| n.is_whitespace() || *n == '>') => {
                return (out, i);
            }
            c if c.is_whitespace() => out.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, c)) => w.push(c),
                        None => panic!("{source}: unterminated ' in {text:?}"),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, c @ ('"' | '\\' | '$' | '`'))) => w.push(c),
                            Some((_, c)) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => panic!("{source}: unterminated \" in {text:?}"),
                        },
                        Some((_, c)) => w.push(c),
                        None => panic!("{source}: unterminated \" in {text:?}"),
                    }
                }
            }
            '\\' => {
                if let Some((_, c)) = chars.next() {
                    word.get_or_insert_with(String::new).push(c);
                }
            }
            '$' if chars.peek().is_some_and(|(_, c)| *c == '(') => {
                // A command substitution stays one word, as written (its own `cba` is found separately).
                let w = word.get_or_insert_with(String::new);
                w.push('$');
                let mut depth = 0;
                for (_, c) in chars.by_ref() {
                    w.push(c);
                    match c {
                        '(' => depth += 1,
                        ')' if depth == 1 => break,
                        ')' => depth -= 1,
                        _ => {}
                    }
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    (out.into_iter().chain(word).collect(), text.len())
}

#[test]
fn the_example_reader() {
    let ex = extract(
        "t",
        "export CBA_PROFILE=p.json\n\
         CBA_PFX_PASSWORD=... cba cert show a.pfx --output json   # comment\n\
         curl -H \"$(cba token --format header)\" https://x/\n\
         cba setup --role 'Exchange Recipient Administrator' \\\n    --name demo | jq .\n",
    );
    let keys: Vec<String> = ex.iter().map(Example::key).collect();
    assert_eq!(
        keys,
        [
            "CBA_PFX_PASSWORD=... cba cert show a.pfx --output json",
            "cba token --format header",
            "cba setup --role Exchange Recipient Administrator --name demo",
        ]
    );
    assert!(ex.iter().all(|e| e.exported == [("CBA_PROFILE".to_string(), "p.json".to_string())]));
    assert_eq!(ex[2].args[2], "Exchange Recipient Administrator");
}
