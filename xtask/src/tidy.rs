//! Tidy checks: `#[test]`s over the workspace's own sources and docs, run by
//! `cargo test --workspace` (xtask is a workspace member), in the manner of rust-analyzer's
//! `xtask/src/tidy.rs`.
//!
//! - [`crate_edges_match_architecture`]: every dependency between workspace crates that
//!   `cargo metadata` reports is allowed by the crates table of `docs/ARCHITECTURE.md` (column
//!   "may depend on"), and every workspace crate has a row there.
//! - [`no_module_cycles`]: inside every crate, the graph of top-level modules (edges read from
//!   `crate::x` and `super::x` paths, textually) has no cycle.
//!
//! The conventions these checks read are written down in ARCHITECTURE ("The crates", "Modules
//! of `repocache`").

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::workspace_root;

/// Module cycles that exist today and are being removed on another branch; each entry is a crate
/// and the modules of the cycle (a strongly connected component, sorted). An entry whose cycle is
/// gone fails the test, so that it is removed with the cycle.
const ALLOWED_CYCLES: &[(&str, &[&str])] = &[];

/// The heading of ARCHITECTURE's section that holds the crates table.
const CRATES_SECTION: &str = "## The crates";
/// The header of the table's column of crates (a path from the workspace root, in backticks).
const CRATE_COLUMN: &str = "crate";
/// The header of the table's column of allowed dependencies.
const DEPENDS_COLUMN: &str = "may depend on";

/// A workspace package as `cargo metadata` describes it.
struct Package {
    name: String,
    /// The package's directory, relative to the workspace root (`crates/repocache`).
    dir: String,
    /// (dependency, kind) for each dependency on another workspace package; kind is `normal`,
    /// `build` or `dev`.
    deps: Vec<(String, String)>,
    /// The roots of its library and binary targets.
    roots: Vec<PathBuf>,
}

fn workspace_packages(root: &Path) -> Vec<Package> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata's JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let names: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    packages
        .iter()
        .map(|p| {
            let manifest = PathBuf::from(p["manifest_path"].as_str().expect("manifest_path"));
            let dir = manifest
                .parent()
                .and_then(|d| d.strip_prefix(root).ok())
                .map(|d| d.to_string_lossy().replace('\\', "/"))
                .expect("a package inside the workspace");
            let deps = p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["path"].is_string())
                .filter_map(|d| {
                    let name = d["name"].as_str()?;
                    names.contains(name).then(|| {
                        let kind = d["kind"].as_str().unwrap_or("normal");
                        (name.to_owned(), kind.to_owned())
                    })
                })
                .collect();
            let roots = p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| {
                    t["kind"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|k| k == "lib" || k == "bin")
                })
                .filter_map(|t| t["src_path"].as_str().map(PathBuf::from))
                .collect();
            Package {
                name: p["name"].as_str().expect("name").to_owned(),
                dir,
                deps,
                roots,
            }
        })
        .collect()
}

/// One row of ARCHITECTURE's crates table.
#[derive(Debug)]
struct Row {
    /// The crate's directory, as the first backticked word of its cell.
    dir: String,
    /// Workspace crates in backticks in the "may depend on" cell, not preceded by "never".
    allowed: BTreeSet<String>,
    /// Workspace crates in backticks preceded by "never".
    forbidden: BTreeSet<String>,
}

/// The backticked words of a table cell, each with the word before it.
fn backticked(cell: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = cell;
    let mut before = String::new();
    while let Some(start) = rest.find('`') {
        before.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('`') else { break };
        let word = after[..end].to_owned();
        let previous = before
            .split(|c: char| !c.is_alphanumeric())
            .rfind(|w| !w.is_empty())
            .unwrap_or("")
            .to_owned();
        before.push_str(&word);
        out.push((previous, word));
        rest = &after[end + 1..];
    }
    out
}

fn cells(line: &str) -> Vec<String> {
    let line = line.trim();
    let line = line.strip_prefix('|').unwrap_or(line);
    let line = line.strip_suffix('|').unwrap_or(line);
    line.split('|').map(|c| c.trim().to_owned()).collect()
}

/// Parses the crates table: the first table after [`CRATES_SECTION`] whose header has a
/// [`CRATE_COLUMN`] and a [`DEPENDS_COLUMN`] column. `crates` are the workspace's package names
/// (only those count in the "may depend on" cell).
fn crates_table(architecture: &str, crates: &BTreeSet<String>) -> Vec<Row> {
    let section = architecture
        .split_once(CRATES_SECTION)
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("docs/ARCHITECTURE.md has no `{CRATES_SECTION}` section"));
    let mut lines = section
        .lines()
        .skip_while(|l| !l.trim_start().starts_with('|'));
    let header = cells(lines.next().expect("the crates table"));
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .unwrap_or_else(|| panic!("the crates table has no column `{name}`: {header:?}"))
    };
    let (crate_column, depends_column) = (column(CRATE_COLUMN), column(DEPENDS_COLUMN));
    lines
        .skip(1) // the |---| line
        .take_while(|l| l.trim_start().starts_with('|'))
        .map(|line| {
            let row = cells(line);
            let cell = |i: usize| row.get(i).map(String::as_str).unwrap_or("");
            let dir = backticked(cell(crate_column))
                .into_iter()
                .next()
                .map(|(_, w)| w)
                .unwrap_or_else(|| panic!("a crates table row without a `path`: {line}"));
            let mut allowed = BTreeSet::new();
            let mut forbidden = BTreeSet::new();
            for (previous, word) in backticked(cell(depends_column)) {
                if crates.contains(&word) {
                    if previous.eq_ignore_ascii_case("never") {
                        forbidden.insert(word);
                    } else {
                        allowed.insert(word);
                    }
                }
            }
            Row {
                dir,
                allowed,
                forbidden,
            }
        })
        .collect()
}

/// The problems with the workspace's crate edges against the table.
fn edge_violations(packages: &[Package], rows: &[Row]) -> Vec<String> {
    let mut problems = Vec::new();
    let by_dir: BTreeMap<&str, &Row> = rows.iter().map(|r| (r.dir.as_str(), r)).collect();
    for row in rows {
        if !packages.iter().any(|p| p.dir == row.dir) {
            problems.push(format!(
                "the crates table has a row for `{}`, which is no workspace package's directory",
                row.dir
            ));
        }
    }
    for package in packages {
        let Some(row) = by_dir.get(package.dir.as_str()) else {
            problems.push(format!(
                "workspace crate `{}` (`{}`) has no row in the crates table",
                package.name, package.dir
            ));
            continue;
        };
        for (dep, kind) in &package.deps {
            if row.forbidden.contains(dep) {
                problems.push(format!(
                    "{} -> {dep} ({kind} dependency): the crates table says `{}` never depends on `{dep}`",
                    package.name, package.name
                ));
            } else if kind != "dev" && !row.allowed.contains(dep) {
                problems.push(format!(
                    "{} -> {dep} ({kind} dependency) is not in the crates table's \"may depend on\" for `{}`",
                    package.name, package.dir
                ));
            }
        }
    }
    problems
}

#[test]
fn crate_edges_match_architecture() {
    let root = workspace_root();
    let packages = workspace_packages(&root);
    let names: BTreeSet<String> = packages.iter().map(|p| p.name.clone()).collect();
    let architecture = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md"))
        .expect("read docs/ARCHITECTURE.md");
    let rows = crates_table(&architecture, &names);
    let problems = edge_violations(&packages, &rows);
    assert!(
        problems.is_empty(),
        "docs/ARCHITECTURE.md's crates table and Cargo.toml disagree (fix the one that is wrong):\n  {}",
        problems.join("\n  ")
    );
}

/// The top-level modules of the crate rooted at `root` (`mod x;` at the start of a line,
/// `#[cfg(test)]` modules left out), each with its files.
fn top_level_modules(root: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let text = std::fs::read_to_string(root).unwrap_or_default();
    let dir = match root.file_name().and_then(|n| n.to_str()) {
        Some("lib.rs" | "main.rs" | "mod.rs") => root.parent().map(Path::to_path_buf),
        _ => root.with_extension("").into(),
    }
    .unwrap_or_default();
    let mut modules = BTreeMap::new();
    let mut previous = "";
    for line in text.lines() {
        let trimmed = line.trim();
        let declaration = trimmed
            .strip_prefix("pub(crate) ")
            .or_else(|| trimmed.strip_prefix("pub "))
            .unwrap_or(trimmed);
        if let Some(name) = declaration
            .strip_prefix("mod ")
            .and_then(|r| r.strip_suffix(';'))
            && previous != "#[cfg(test)]"
        {
            let mut files = Vec::new();
            let file = dir.join(format!("{name}.rs"));
            if file.is_file() {
                files.push(file);
            }
            rust_files(&dir.join(name), &mut files);
            modules.insert(name.to_owned(), files);
        }
        if !trimmed.is_empty() {
            previous = trimmed;
        }
    }
    modules
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file that counts for its module's dependencies: without comments (doc links
/// are no dependency) and without its `#[cfg(test)]` module (unit tests may use anything).
fn code_of(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        code.push_str(line.split(" // ").next().unwrap_or(line));
        code.push('\n');
    }
    code
}

/// Names the crate root re-exports, each with the module it comes from (`pub use x::{A, B};`
/// makes `crate::A` a use of `x`).
fn root_reexports(
    root: &Path,
    modules: &BTreeMap<String, Vec<PathBuf>>,
) -> BTreeMap<String, String> {
    let text = code_of(&std::fs::read_to_string(root).unwrap_or_default());
    let mut names = BTreeMap::new();
    for statement in text.split(';') {
        let statement = statement.trim();
        let Some(path) = statement
            .strip_prefix("pub use ")
            .or_else(|| statement.strip_prefix("pub(crate) use "))
            .or_else(|| statement.strip_prefix("use "))
        else {
            continue;
        };
        let path = path.strip_prefix("crate::").unwrap_or(path);
        let Some((module, rest)) = path.split_once("::") else {
            continue;
        };
        if !modules.contains_key(module) {
            continue;
        }
        for name in identifiers(rest) {
            names.entry(name).or_insert_with(|| module.to_owned());
        }
    }
    names
}

fn identifiers(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty() && !matches!(*w, "as" | "self" | "super" | "crate"))
        .map(str::to_owned)
        .collect()
}

/// The first segment of each path in a use tree that starts right after `crate::` (a name, or a
/// `{...}` group).
fn first_segments(after: &str) -> Vec<(String, bool)> {
    if let Some(group) = after.strip_prefix('{') {
        // The group up to its closing brace; the first segment of each path at depth 0.
        let mut out = Vec::new();
        let mut depth = 0usize;
        let mut at_start = true;
        let mut word = String::new();
        for c in group.chars() {
            if depth == 0 && at_start && (c.is_alphanumeric() || c == '_') {
                word.push(c);
                continue;
            }
            if !word.is_empty() {
                out.push((std::mem::take(&mut word), false));
                at_start = false;
            }
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => at_start = true,
                _ => {}
            }
        }
        out
    } else {
        let word: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // `crate::reflector(…)` calls a function the root re-exports, not the module.
        let call = after[word.len()..].starts_with('(');
        vec![(word, call)]
    }
}

/// The module graph of one crate: module -> (module it uses -> a file that uses it).
fn module_graph(root: &Path) -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let modules = top_level_modules(root);
    let reexports = root_reexports(root, &modules);
    let mut graph: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    let crate_dir = root.parent().unwrap_or(root);
    for (module, files) in &modules {
        for file in files {
            let code = code_of(&std::fs::read_to_string(file).unwrap_or_default());
            // `super::` names the crate root only in a top-level module's own file.
            let top_file = file.parent() == Some(crate_dir)
                || (file.file_name().is_some_and(|n| n == "mod.rs")
                    && file.parent().and_then(Path::parent) == Some(crate_dir));
            let mut prefixes = vec!["crate::"];
            if top_file {
                prefixes.push("super::");
            }
            for prefix in prefixes {
                for (at, _) in code.match_indices(prefix) {
                    let before = code[..at].chars().next_back();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                        continue;
                    }
                    for (name, call) in first_segments(&code[at + prefix.len()..]) {
                        let target = if modules.contains_key(&name) && !call {
                            Some(name)
                        } else {
                            reexports.get(&name).cloned()
                        };
                        if let Some(target) = target
                            && &target != module
                        {
                            graph
                                .entry(module.clone())
                                .or_default()
                                .entry(target)
                                .or_insert_with(|| file.clone());
                        }
                    }
                }
            }
        }
    }
    graph
}

/// The strongly connected components with more than one module (Tarjan), each sorted.
fn cycles(graph: &BTreeMap<String, BTreeMap<String, PathBuf>>) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        graph: &'a BTreeMap<String, BTreeMap<String, PathBuf>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flat_map(|e| e.keys()) {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut tarjan = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !tarjan.index.contains_key(v.as_str()) {
            tarjan.visit(v);
        }
    }
    tarjan.found.sort();
    tarjan.found
}

/// One cycle through the modules of `component`, as `a -> b -> … -> a` with the file that makes
/// each edge.
fn describe(graph: &BTreeMap<String, BTreeMap<String, PathBuf>>, component: &[String]) -> String {
    let members: BTreeSet<&str> = component.iter().map(String::as_str).collect();
    let start = component[0].as_str();
    // Breadth-first from `start` inside the component back to `start`.
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    'search: while let Some(v) = queue.pop_front() {
        for w in graph.get(v).into_iter().flat_map(|e| e.keys()) {
            let w = w.as_str();
            if !members.contains(w) {
                continue;
            }
            if w == start {
                parent.insert(start, v);
                break 'search;
            }
            if !parent.contains_key(w) {
                parent.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    let mut path = vec![start];
    let mut v = parent.get(start).copied().unwrap_or(start);
    while v != start {
        path.push(v);
        v = parent.get(v).copied().unwrap_or(start);
    }
    path.push(start);
    path.reverse();
    let base = workspace_root();
    path.windows(2)
        .map(|pair| {
            let file = &graph[pair[0]][pair[1]];
            let file = file.strip_prefix(&base).unwrap_or(file);
            format!("{} -> {} ({})", pair[0], pair[1], file.display())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn no_module_cycles() {
    let root = workspace_root();
    let mut problems = Vec::new();
    let mut allowed_seen = BTreeSet::new();
    for package in workspace_packages(&root) {
        for crate_root in &package.roots {
            let graph = module_graph(crate_root);
            for component in cycles(&graph) {
                let allowed = ALLOWED_CYCLES
                    .iter()
                    .position(|(name, modules)| *name == package.name && *modules == component);
                match allowed {
                    Some(i) => {
                        allowed_seen.insert(i);
                    }
                    None => problems.push(format!(
                        "module cycle in {} ({}) among {}: {}",
                        package.name,
                        crate_root.display(),
                        component.join(", "),
                        describe(&graph, &component)
                    )),
                }
            }
        }
    }
    for (i, (name, modules)) in ALLOWED_CYCLES.iter().enumerate() {
        if !allowed_seen.contains(&i) {
            problems.push(format!(
                "the allowed cycle {modules:?} of {name} is gone: remove it from ALLOWED_CYCLES in xtask/src/tidy.rs"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "modules import each other in a cycle (move what both need into a module below them):\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_cycle_finder_finds_cycles() {
    // The checks above pass on a tidy workspace; this shows they would see a cycle.
    let mut graph: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("e", "d")] {
        graph
            .entry(a.to_owned())
            .or_default()
            .insert(b.to_owned(), PathBuf::from(format!("src/{a}.rs")));
    }
    let found = cycles(&graph);
    assert_eq!(found, vec![vec!["a", "b", "c"]]);
    assert_eq!(
        describe(&graph, &found[0]),
        "a -> b (src/a.rs), b -> c (src/b.rs), c -> a (src/c.rs)"
    );
}

#[test]
fn the_table_parser_reads_allowed_and_forbidden_crates() {
    let crates: BTreeSet<String> = ["core", "wire", "sim"].map(String::from).into();
    let doc = "# A\n\n## The crates\n\ntext\n\n| crate | what | may depend on |\n|---|---|---|\n\
               | `crates/core` | x | `wire`, tokio, `glasskube` feature; never `sim` |\n\
               | `crates/wire` (package `k8s-wire`) | y | serde; nothing of ours |\n\nafter\n";
    let rows = crates_table(doc, &crates);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].dir, "crates/core");
    assert_eq!(rows[0].allowed, BTreeSet::from(["wire".to_owned()]));
    assert_eq!(rows[0].forbidden, BTreeSet::from(["sim".to_owned()]));
    assert_eq!(rows[1].dir, "crates/wire");
    assert!(rows[1].allowed.is_empty());
}
