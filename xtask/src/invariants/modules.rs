//! The module graph of a crate's `src/`, from `crate::…` and `super::…` paths in the source (tests excluded),
//! to check that no two modules import each other through a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name (`cmd::setup`, `connect`) → the modules it names.
pub fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut sources = BTreeMap::new();
    collect(src, src, &mut sources);
    let names: BTreeSet<String> = sources.keys().cloned().collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in &sources {
        let text = text.split("#[cfg(test)]").next().unwrap_or("");
        let targets = edges.entry(module.clone()).or_default();
        for (prefix, base) in [("crate::", String::new()), ("super::", parent(module))] {
            for (at, _) in text.match_indices(prefix) {
                let path: String = text[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
                for k in (1..=parts.len()).rev() {
                    let name = parts[..k].join("::");
                    let full = if base.is_empty() { name } else { format!("{base}::{name}") };
                    if names.contains(&full) {
                        if &full != module {
                            targets.insert(full);
                        }
                        break;
                    }
                }
            }
        }
    }
    edges
}

fn parent(module: &str) -> String {
    module.rsplit_once("::").map(|(p, _)| p.to_string()).unwrap_or_default()
}

fn collect(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap().with_extension("");
            let mut name = rel.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "::");
            if let Some(stripped) = name.strip_suffix("::mod") {
                name = stripped.to_string();
            }
            // The crate root declares the modules and dispatches to them; it is not part of a circle.
            if name == "main" || name == "lib" {
                continue;
            }
            out.insert(name, std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
}

/// Every circle, as `a -> b -> a`.
pub fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = BTreeSet::new();
    for (from, targets) in edges {
        for to in targets {
            if let Some(mut path) = path_between(edges, to, from) {
                path.insert(0, from.clone());
                // One spelling per circle: start at its smallest module.
                let cycle = &path[..path.len() - 1];
                let start = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap();
                let mut rotated: Vec<String> = cycle[start..].iter().chain(&cycle[..start]).cloned().collect();
                rotated.push(rotated[0].clone());
                found.insert(rotated.join(" -> "));
            }
        }
    }
    found.into_iter().collect()
}

fn path_between(edges: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> Option<Vec<String>> {
    let mut queue = std::collections::VecDeque::from([vec![from.to_string()]]);
    let mut seen = BTreeSet::from([from.to_string()]);
    while let Some(path) = queue.pop_front() {
        let last = path.last().unwrap();
        if last == to {
            return Some(path);
        }
        for next in edges.get(last).into_iter().flatten() {
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                queue.push_back(longer);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_circle_and_ignores_a_chain() {
        let edges: BTreeMap<String, BTreeSet<String>> =
            [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec!["a"])]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
                .collect();
        assert_eq!(circles(&edges), ["a -> b -> c -> a"]);
    }
}
