//! The resolved dependency graph from `cargo metadata`: normal edges only, walked transitively.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use super::json::{self, Json};

#[derive(Debug)]
pub struct Package {
    pub name: String,
    pub manifest_path: PathBuf,
}

#[derive(Debug)]
pub struct Graph {
    packages: HashMap<String, Package>,
    /// Package id -> ids of its normal (not dev, not build) dependencies.
    normal: HashMap<String, Vec<String>>,
    members: Vec<String>,
}

impl Graph {
    /// The workspace's graph for the host platform, computed once per test run.
    pub fn workspace() -> &'static Graph {
        static GRAPH: OnceLock<Graph> = OnceLock::new();
        GRAPH.get_or_init(|| {
            let text = cargo_metadata().unwrap_or_else(|e| panic!("{e}"));
            let doc = json::parse(&text).unwrap_or_else(|e| panic!("cargo metadata printed no JSON: {e}"));
            Graph::from_metadata(&doc).unwrap_or_else(|e| panic!("unexpected cargo metadata: {e}"))
        })
    }

    pub fn from_metadata(doc: &Json) -> Result<Graph, String> {
        let mut packages = HashMap::new();
        for p in doc.get("packages").items() {
            let id = p.get("id").as_str().ok_or("a package without an id")?;
            let name = p.get("name").as_str().ok_or("a package without a name")?;
            let manifest_path = p.get("manifest_path").as_str().ok_or("a package without a manifest_path")?;
            packages.insert(id.to_string(), Package { name: name.into(), manifest_path: manifest_path.into() });
        }
        let resolve = doc.get("resolve");
        if resolve == &Json::Null {
            return Err("no `resolve` (was --no-deps passed?)".into());
        }
        let mut normal = HashMap::new();
        for node in resolve.get("nodes").items() {
            let id = node.get("id").as_str().ok_or("a resolve node without an id")?;
            // `kind` is null for a normal dependency, "dev" or "build" otherwise. An edge can carry several kinds.
            let deps = node
                .get("deps")
                .items()
                .iter()
                .filter(|d| d.get("dep_kinds").items().iter().any(|k| k.get("kind") == &Json::Null))
                .filter_map(|d| d.get("pkg").as_str().map(String::from))
                .collect();
            normal.insert(id.to_string(), deps);
        }
        let members: Vec<String> =
            doc.get("workspace_members").items().iter().filter_map(|m| m.as_str().map(String::from)).collect();
        if members.is_empty() {
            return Err("no workspace_members".into());
        }
        Ok(Graph { packages, normal, members })
    }

    /// The workspace's own packages, by name.
    pub fn members(&self) -> BTreeMap<&str, &Package> {
        self.members.iter().map(|id| (self.packages[id].name.as_str(), &self.packages[id])).collect()
    }

    fn member_id(&self, name: &str) -> &str {
        self.members
            .iter()
            .find(|id| self.packages[*id].name == name)
            .unwrap_or_else(|| panic!("{name} is not a workspace member"))
    }

    fn name(&self, id: &str) -> &str {
        &self.packages[id].name
    }

    /// Names of the crate's direct normal dependencies.
    pub fn direct(&self, krate: &str) -> Vec<&str> {
        self.normal[self.member_id(krate)].iter().map(|id| self.name(id)).collect()
    }

    /// For every package `krate` reaches through normal dependencies (itself excluded), one shortest path
    /// `krate -> .. -> it`, by package name.
    pub fn reachable(&self, krate: &str) -> BTreeMap<&str, Vec<&str>> {
        let root = self.member_id(krate);
        let mut parent: HashMap<&str, &str> = HashMap::new();
        let mut queue = VecDeque::from([root]);
        while let Some(at) = queue.pop_front() {
            for dep in self.normal.get(at).into_iter().flatten() {
                if dep != root && !parent.contains_key(dep.as_str()) {
                    parent.insert(dep, at);
                    queue.push_back(dep);
                }
            }
        }
        let mut paths = BTreeMap::new();
        for &id in parent.keys() {
            let mut path = vec![self.name(id)];
            let mut at = id;
            while let Some(&up) = parent.get(at) {
                path.push(self.name(up));
                at = up;
            }
            path.reverse();
            // Two versions of one crate: keep the shorter path.
            let name = self.name(id);
            if paths.get(name).is_none_or(|p: &Vec<&str>| p.len() > path.len()) {
                paths.insert(name, path);
            }
        }
        paths
    }
}

/// `cargo metadata` for the host platform (what CI builds). Offline first: after a build every package it
/// names is on disk, and the windows-only ones it would otherwise want are not.
fn cargo_metadata() -> Result<String, String> {
    let host = {
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let out = Command::new(&rustc).arg("-vV").output().map_err(|e| format!("cannot run `{rustc} -vV`: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix("host: "))
            .map(str::to_string)
            .ok_or_else(|| format!("`{rustc} -vV` names no host"))?
    };
    let mut last_error = String::new();
    for offline in [true, false] {
        let mut cmd = crate::cargo();
        cmd.args(["metadata", "--format-version", "1", "--filter-platform", &host]);
        if offline {
            cmd.arg("--offline");
        }
        let out = cmd.output().map_err(|e| format!("cannot run cargo metadata: {e}"))?;
        if out.status.success() {
            return String::from_utf8(out.stdout).map_err(|e| e.to_string());
        }
        last_error = String::from_utf8_lossy(&out.stderr).into_owned();
    }
    Err(format!("cargo metadata failed:\n{last_error}"))
}

#[cfg(test)]
mod tests {
    use super::Graph;
    use crate::invariants::json;

    /// a -> b (normal) -> c (normal); a -> d (dev only); b -> e (build only); b -> c twice over, as both kinds.
    const METADATA: &str = r#"{
        "packages": [
            {"id": "a 1", "name": "a", "manifest_path": "/w/a/Cargo.toml"},
            {"id": "b 1", "name": "b", "manifest_path": "/r/b/Cargo.toml"},
            {"id": "c 1", "name": "c", "manifest_path": "/r/c/Cargo.toml"},
            {"id": "d 1", "name": "d", "manifest_path": "/r/d/Cargo.toml"},
            {"id": "e 1", "name": "e", "manifest_path": "/r/e/Cargo.toml"}
        ],
        "workspace_members": ["a 1"],
        "resolve": {"nodes": [
            {"id": "a 1", "deps": [
                {"name": "b", "pkg": "b 1", "dep_kinds": [{"kind": null, "target": null}]},
                {"name": "d", "pkg": "d 1", "dep_kinds": [{"kind": "dev", "target": null}]}
            ]},
            {"id": "b 1", "deps": [
                {"name": "c", "pkg": "c 1", "dep_kinds": [{"kind": "dev", "target": null}, {"kind": null, "target": null}]},
                {"name": "e", "pkg": "e 1", "dep_kinds": [{"kind": "build", "target": null}]}
            ]},
            {"id": "c 1", "deps": []}, {"id": "d 1", "deps": []}, {"id": "e 1", "deps": []}
        ]}
    }"#;

    #[test]
    fn walks_normal_edges_transitively_and_ignores_dev_and_build() {
        let graph = Graph::from_metadata(&json::parse(METADATA).unwrap()).unwrap();
        let reach = graph.reachable("a");
        assert_eq!(reach.keys().copied().collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(reach["c"], ["a", "b", "c"]);
        assert_eq!(graph.direct("a"), ["b"]);
        assert_eq!(graph.members().keys().copied().collect::<Vec<_>>(), ["a"]);
    }
}
