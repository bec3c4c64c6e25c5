//! The architecture invariants of docs/architecture.md that a machine can check, as `#[test]`s.
//!
//! Dependencies come from `cargo metadata` (the resolved graph, normal edges only, walked transitively; dev- and
//! build-dependencies may use anything). The graph is the workspace's, with features unified across members, so
//! it can only over-report: a passing check holds for each crate built alone. Source rules are text scans of
//! `src/`.

mod graph;
mod json;
mod modules;
mod scan;

use std::path::Path;

use graph::{Graph, Package};

/// Workspace members that are not libraries: the binary and this tool may read the environment, parse
/// arguments and use anyhow.
const NOT_LIBRARIES: [&str; 2] = ["cba-cli", "xtask"];

fn libraries(graph: &Graph) -> Vec<(&str, &Package)> {
    graph.members().into_iter().filter(|(name, _)| !NOT_LIBRARIES.contains(name)).collect()
}

/// Broken rules, one message each; the test fails once, listing all of them.
#[derive(Debug, Default)]
struct Violations(Vec<String>);

impl Violations {
    /// `krate` reaches any of `forbidden` through normal dependencies: each path is named.
    fn reaching(&mut self, graph: &Graph, krate: &str, forbidden: &[&str], why: &str) {
        let reach = graph.reachable(krate);
        let paths: Vec<String> = forbidden.iter().filter_map(|f| reach.get(f)).map(|path| path.join(" -> ")).collect();
        if !paths.is_empty() {
            self.0
                .push(format!("{krate} must not depend on these, even indirectly ({why}):\n  {}", paths.join("\n  ")));
        }
    }

    /// `krate` itself lists any of `forbidden` as a normal dependency.
    fn direct(&mut self, graph: &Graph, krate: &str, forbidden: &[&str], why: &str) {
        let direct: Vec<&str> = graph.direct(krate).into_iter().filter(|d| forbidden.contains(d)).collect();
        if !direct.is_empty() {
            self.0.push(format!("{krate} must not depend directly on {} ({why})", direct.join(", ")));
        }
    }

    /// The crate's `src/` contains any of `patterns` outside `allowed`: each file:line is named.
    fn in_source(&mut self, package: &Package, krate: &str, patterns: &[&'static str], allowed: &[Allowed], why: &str) {
        let src = package.manifest_path.parent().expect("a manifest is in a folder").join("src");
        let root = crate::root();
        let hits: Vec<String> = scan::scan_dir(&src, patterns)
            .into_iter()
            .filter_map(|hit| {
                let file = hit.file.strip_prefix(&root).unwrap_or(&hit.file);
                let allowed = allowed.iter().any(|a| Path::new(a.file) == file && a.pattern == hit.pattern);
                (!allowed).then(|| format!("{}:{}: `{}` in `{}`", file.display(), hit.line, hit.pattern, hit.text))
            })
            .collect();
        if !hits.is_empty() {
            self.0.push(format!("{krate} ({why}):\n  {}", hits.join("\n  ")));
        }
    }

    #[track_caller]
    fn assert_none(self) {
        assert!(self.0.is_empty(), "{} broken:\n{}", self.0.len(), self.0.join("\n"));
    }
}

/// A source hit that is accepted, with the reason in `why` (for a reviewer; the check does not read it).
#[derive(Debug)]
struct Allowed {
    file: &'static str,
    pattern: &'static str,
    #[allow(dead_code, reason = "documentation for the reader of the allowlist")]
    why: &'static str,
}

/// Run-time reads of the environment and the command line. `env!`/`option_env!` are compile time and fine.
const ENV_READS: &[&str] = &[
    "env::var", // var, var_os, vars, vars_os
    "env::args",
    "env::home_dir",
    "env::temp_dir",
    "env::current_dir",
    "std::env::{",
];

/// Crates whose job is to read the environment or find the user's folders.
const ENV_CRATES: &[&str] = &["dotenvy", "dotenv", "envy", "dirs", "dirs-next", "directories", "home", "etcetera"];

/// Library code that reads the environment today. Empty: keep it so, or justify each entry.
const ENV_ALLOWED: &[Allowed] = &[];

/// Crates that parse arguments, prompt, draw on or probe a terminal, or set up logging output.
const CLI_CRATES: &[&str] = &[
    "clap",
    "clap_builder",
    "anyhow",
    "rpassword",
    "tracing-subscriber",
    "crossterm",
    "termion",
    "console",
    "dialoguer",
    "indicatif",
    "inquire",
    "rustyline",
    "ratatui",
    "terminal_size",
    "is-terminal",
    "atty",
    "anstream",
    "termcolor",
    "colored",
    "owo-colors",
];

#[test]
fn the_graph_is_the_real_one() {
    // The checks below can only fail if the walk sees the dependencies; prove it does.
    let graph = Graph::workspace();
    let members = graph.members();
    let names = [
        "cba-cert",
        "cba-http",
        "cba-token",
        "cba-graph",
        "cba-exo",
        "cba-sim",
        "cba-pkcs11",
        "cba-keyvault",
        "cba-cli",
        "xtask",
    ];
    for name in names {
        assert!(members.contains_key(name), "cargo metadata lists no workspace member {name}");
    }
    let cert = graph.reachable("cba-cert");
    assert!(cert.contains_key("rcgen") && cert.contains_key("p12-keystore"), "cba-cert's graph: {cert:?}");
    assert_eq!(graph.reachable("cba-graph")["reqwest"], ["cba-graph", "reqwest"]);
    assert!(graph.reachable("cba-cli")["clap_builder"].len() >= 3, "clap_builder comes through clap");
}

#[test]
fn cba_cert_knows_no_http() {
    let mut broken = Violations::default();
    broken.reaching(
        Graph::workspace(),
        "cba-cert",
        &[
            "cba-http",
            "cba-token",
            "cba-graph",
            "cba-exo",
            "cba-sim",
            "reqwest",
            "hyper",
            "hyper-util",
            "h2",
            "http",
            "http-body",
            "ureq",
            "curl",
            "isahc",
            "surf",
            "rustls",
            "wiremock",
            "url",
            "tokio",
            "async-std",
            "smol",
            "mio",
            "futures",
        ],
        "a project that only makes PFX files must not pull an HTTP stack or an async runtime",
    );
    broken.assert_none();
}

#[test]
fn cba_pkcs11_knows_no_http() {
    // A key in a token is used by the token and certificate code alone; the HTTP side gets a KeySigner.
    let mut broken = Violations::default();
    broken.reaching(
        Graph::workspace(),
        "cba-pkcs11",
        &["cba-http", "cba-token", "cba-graph", "cba-exo", "cba-sim", "reqwest", "hyper", "tokio", "rustls", "url"],
        "cba-pkcs11 is a key store: cba-token takes its keys through cba_cert::KeySigner",
    );
    broken.assert_none();
    assert!(Graph::workspace().reachable("cba-pkcs11").contains_key("cryptoki"), "the walk sees cba-pkcs11's graph");
}

#[test]
fn cba_keyvault_knows_no_graph_token_endpoint_or_pkcs11() {
    // A key in a vault is one more KeySigner: the vault's own HTTP calls, nothing of Graph, the token endpoint,
    // the lifecycle or PKCS#11; and the token code takes vault keys through KeySigner, never this crate.
    let graph = Graph::workspace();
    let mut broken = Violations::default();
    broken.reaching(
        graph,
        "cba-keyvault",
        &["cba-token", "cba-graph", "cba-exo", "cba-sim", "cba-lifecycle", "cba-pkcs11", "cryptoki", "wiremock"],
        "cba-keyvault is a key store: cba-token and cba-lifecycle take its keys through cba_cert::KeySigner",
    );
    for krate in ["cba-token", "cba-graph", "cba-lifecycle", "cba-pkcs11"] {
        broken.reaching(graph, krate, &["cba-keyvault"], "only cba-cli knows which key store a key is in");
    }
    broken.assert_none();
    assert!(graph.reachable("cba-keyvault").contains_key("reqwest"), "the walk sees cba-keyvault's graph");
}

#[test]
fn cba_graph_knows_no_certificate_crypto() {
    let graph = Graph::workspace();
    let mut broken = Violations::default();
    broken.reaching(
        graph,
        "cba-graph",
        &[
            "cba-cert",
            "cba-token",
            "cba-sim",
            "rcgen",
            "x509-parser",
            "x509-cert",
            "p12-keystore",
            "pkcs12",
            "jsonwebtoken",
            "rsa",
            "openssl",
        ],
        "proofs come in through ProofSigner, tokens through cba_http::TokenSource, certificates as KeyCredential data",
    );
    // TLS brings a crypto library (aws-lc-rs or ring) and hashes; cba-graph's own code must not use them.
    broken.direct(
        graph,
        "cba-graph",
        &["aws-lc-rs", "ring", "sha1", "sha2", "rsa", "der", "pem", "rustls-pki-types"],
        "the only crypto in cba-graph's graph is the TLS stack's",
    );
    broken.assert_none();
}

#[test]
fn no_library_parses_arguments_or_touches_the_terminal() {
    let graph = Graph::workspace();
    let mut broken = Violations::default();
    for (krate, _) in libraries(graph) {
        broken.reaching(
            graph,
            krate,
            &["clap", "clap_builder", "anyhow", "rpassword", "tracing-subscriber"],
            "libraries take settings through builders, return typed errors and leave log output to the binary",
        );
    }
    broken.assert_none();
}

#[test]
fn no_library_reads_the_environment() {
    let graph = Graph::workspace();
    let mut broken = Violations::default();
    for (krate, package) in libraries(graph) {
        broken.in_source(
            package,
            krate,
            ENV_READS,
            ENV_ALLOWED,
            "only cba-cli reads environment variables and arguments; a library takes them through its builder",
        );
        broken.direct(graph, krate, ENV_CRATES, "only cba-cli reads the environment or finds the user's folders");
    }
    broken.assert_none();
}

#[test]
fn cba_lifecycle_knows_no_cli_terminal_or_paths() {
    let graph = Graph::workspace();
    let package = graph.members().get("cba-lifecycle").copied().expect("cba-lifecycle is a workspace member");
    let mut broken = Violations::default();
    broken.reaching(
        graph,
        "cba-lifecycle",
        CLI_CRATES,
        "cba-lifecycle is driven by the CLI and by services alike: no argument parsing, prompts or terminal",
    );
    broken.in_source(
        package,
        "cba-lifecycle",
        &[
            "std::fs",
            "fs::",
            "File::open",
            "File::create",
            "OpenOptions",
            "std::io::stdin",
            "stdin()",
            "stdout()",
            "stderr()",
            "IsTerminal",
            "println!",
            "eprintln!",
            "print!",
            "eprint!",
        ],
        &[],
        "cba-lifecycle opens no files (the caller chooses paths and passes bytes or stores) and writes to no terminal",
    );
    broken.assert_none();
}

#[test]
fn cba_cli_modules_import_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/cba-cli/src");
    let edges = modules::graph(&src);
    assert!(edges.contains_key("connect") && edges.contains_key("cmd::setup"), "read the modules: {edges:?}");
    let circles = modules::circles(&edges);
    assert!(
        circles.is_empty(),
        "modules of cba-cli import each other in a circle (docs/architecture.md: cmd/* use the shared modules, \
         never the other way round):\n{}",
        circles.join("\n")
    );
}
