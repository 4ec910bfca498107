//! The kernel's module structure, checked from its sources: `arch` (the CPU) names
//! nothing outside itself, and no import circle exists among the kernel's top-level
//! modules, nor among the sibling submodules of one module (`partition/model.rs`,
//! `partition/run.rs`, …), so data flows one way (docs/ARCHITECTURE.md).
//!
//! `cargo test -p plinth-tests --test layers -- --nocapture` also prints the modules in
//! dependency order with what each one uses.
//!
//! A module's dependencies are the modules its files name through `crate::…` (including
//! `use crate::{a, b::c}` groups) or, from a top-level file, `super::…`; a name that is no
//! module is charged to the module that defines it (a `#[macro_export]` macro) or else to
//! the crate root. Comments are ignored, so prose may name any module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module name → the modules it uses.
type Graph = BTreeMap<String, BTreeSet<String>>;

const ROOT: &str = "main";

fn kernel_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel/src")
}

/// Every `.rs` file under `dir`, as paths relative to `base`.
fn rust_files(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(base, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.strip_prefix(base).unwrap().to_path_buf());
        }
    }
    out.sort();
}

/// The text without `//` comments (doc comments included) and `/* */` blocks.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let line = rest.find("//");
        let block = rest.find("/*");
        match (line, block) {
            (Some(l), b) if b.is_none_or(|b| l < b) => {
                out.push_str(&rest[..l]);
                rest = &rest[l..];
                rest = rest.find('\n').map_or("", |n| &rest[n..]);
            }
            (_, Some(b)) => {
                out.push_str(&rest[..b]);
                rest = rest[b..].find("*/").map_or("", |e| &rest[b + e + 2..]);
            }
            _ => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first path segment of every path that follows `prefix` in `code`: `prefix::a`
/// gives `a`, `prefix::{a, b::c, d::{e}}` gives `a`, `b`, `d`.
fn first_segments(code: &str, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(i) = code[at..].find(prefix) {
        let start = at + i;
        at = start + prefix.len();
        // `$crate::` in a macro and `xcrate::` are other paths.
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let after = &code[at..];
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => item_start = true,
                    c if c.is_whitespace() => {}
                    _ if item_start && depth == 1 => {
                        found.push(ident_at(&group[k..]).to_owned());
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.push(ident_at(after).to_owned());
        }
    }
    found.retain(|s| !s.is_empty() && s != "self");
    found
}

/// Whether `code` has a path starting `name::` (not `xname::` nor `a::name::`).
fn uses_path(code: &str, name: &str) -> bool {
    let pat = format!("{name}::");
    code.match_indices(&pat).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    })
}

/// Top-level module of a file (`arch/paging.rs` → `arch`, `clock.rs` → `clock`).
fn top_module(file: &Path) -> String {
    let first = file
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_str()
        .unwrap();
    first.trim_end_matches(".rs").to_owned()
}

/// Whether `file` is a top-level module's own file, where `super::` is the crate root.
fn is_top_file(file: &Path) -> bool {
    let n = file.components().count();
    n == 1 || (n == 2 && file.ends_with("mod.rs"))
}

struct Kernel {
    files: Vec<(PathBuf, String)>,
    modules: BTreeSet<String>,
    /// `#[macro_export]` macro → the module that defines it.
    macros: BTreeMap<String, String>,
}

fn read_kernel() -> Kernel {
    let base = kernel_src();
    let mut paths = Vec::new();
    rust_files(&base, &base, &mut paths);
    let files: Vec<(PathBuf, String)> = paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(base.join(&p)).unwrap();
            (p, strip_comments(&text))
        })
        .collect();
    let modules = files.iter().map(|(p, _)| top_module(p)).collect();
    let mut macros = BTreeMap::new();
    for (p, code) in &files {
        for (i, _) in code.match_indices("#[macro_export]") {
            if let Some(m) = code[i..].find("macro_rules!") {
                let name = ident_at(code[i + m + "macro_rules!".len()..].trim_start());
                macros.insert(name.to_owned(), top_module(p));
            }
        }
    }
    Kernel {
        files,
        modules,
        macros,
    }
}

fn top_level_graph(k: &Kernel) -> Graph {
    let mut graph: Graph = k
        .modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for (path, code) in &k.files {
        let me = top_module(path);
        let mut names = first_segments(code, "crate::");
        if is_top_file(path) {
            names.extend(first_segments(code, "super::"));
        }
        if me == ROOT {
            // The root names its modules directly (`drivers::init`).
            names.extend(k.modules.iter().filter(|m| uses_path(code, m)).cloned());
        }
        for name in names {
            let target = if k.modules.contains(&name) {
                name
            } else if let Some(m) = k.macros.get(&name) {
                m.clone()
            } else {
                ROOT.to_owned()
            };
            if target != me {
                graph.get_mut(&me).unwrap().insert(target);
            }
        }
    }
    graph
}

/// A circle in `graph`, if there is one, as the modules around it.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        g: &Graph,
        n: &str,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_owned(), 1);
        path.push(n.to_owned());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m).copied().unwrap_or(0) {
                1 => {
                    let from = path.iter().position(|p| p == m).unwrap();
                    let mut cycle = path[from..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(g, m, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if state.get(n).copied().unwrap_or(0) == 0 {
            let mut path = Vec::new();
            if let Some(c) = visit(graph, n, &mut state, &mut path) {
                return Some(c);
            }
        }
    }
    None
}

/// The modules in an order where each comes after everything it uses.
fn layered(graph: &Graph) -> Vec<String> {
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut order = Vec::new();
    while done.len() < graph.len() {
        let ready: Vec<String> = graph
            .iter()
            .filter(|(n, deps)| !done.contains(*n) && deps.iter().all(|d| done.contains(d)))
            .map(|(n, _)| n.clone())
            .collect();
        assert!(!ready.is_empty(), "a cycle is left: {graph:?}");
        done.extend(ready.iter().cloned());
        order.extend(ready);
    }
    order
}

#[test]
fn arch_names_nothing_outside_arch() {
    let k = read_kernel();
    let graph = top_level_graph(&k);
    assert!(
        graph["arch"].is_empty(),
        "arch uses {:?}; it must be the CPU only (handlers are registered, frames passed in)",
        graph["arch"]
    );
    // The grep form ARCHITECTURE.md gives must agree: no `crate::` in arch, even in prose.
    for (path, _) in k.files.iter().filter(|(p, _)| top_module(p) == "arch") {
        let text = std::fs::read_to_string(kernel_src().join(path)).unwrap();
        assert!(
            !first_segments(&text, "crate::").iter().any(|s| s != "arch"),
            "{} names crate::… outside arch",
            path.display()
        );
    }
}

#[test]
fn the_kernel_s_modules_use_each_other_one_way() {
    let k = read_kernel();
    let graph = top_level_graph(&k);
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "import circle among the kernel's modules: {}",
            cycle.join(" -> ")
        );
    }
    for n in layered(&graph) {
        let deps: Vec<&str> = graph[&n].iter().map(String::as_str).collect();
        println!("{n:<10} uses {}", deps.join(", "));
    }
    // The crate root sits on top: nothing reaches back into main.rs.
    for (n, deps) in &graph {
        assert!(n == ROOT || !deps.contains(ROOT), "{n} uses the crate root");
    }
}

#[test]
fn submodules_of_one_module_use_each_other_one_way() {
    let k = read_kernel();
    // Directory → (child module → siblings it uses through `super::`).
    let mut dirs: BTreeMap<PathBuf, Graph> = BTreeMap::new();
    for (path, code) in &k.files {
        let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
            continue;
        };
        if path.ends_with("mod.rs") {
            continue; // the parent: it declares and re-exports its children
        }
        let me = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let uses: BTreeSet<String> = first_segments(code, "super::")
            .into_iter()
            .filter(|s| {
                k.files
                    .iter()
                    .any(|(p, _)| p.parent() == Some(dir) && p.file_stem().unwrap() == s.as_str())
            })
            .filter(|s| *s != me)
            .collect();
        dirs.entry(dir.to_path_buf()).or_default().insert(me, uses);
    }
    for (dir, graph) in &dirs {
        let graph: Graph = graph
            .iter()
            .map(|(n, d)| {
                (
                    n.clone(),
                    d.iter()
                        .filter(|x| graph.contains_key(*x))
                        .cloned()
                        .collect(),
                )
            })
            .collect();
        if let Some(cycle) = find_cycle(&graph) {
            panic!("import circle in {}: {}", dir.display(), cycle.join(" -> "));
        }
    }
}

#[test]
fn the_checker_sees_paths_groups_and_circles() {
    // The parser: plain paths, groups, nested groups, `$crate` and comments.
    let code = strip_comments(
        "use crate::{a, b::c, d::{e, f}};\n// crate::x\nlet y = crate::g::h(); $crate::z /* crate::w */",
    );
    assert_eq!(first_segments(&code, "crate::"), ["a", "b", "d", "g"]);
    // Circles are found; a one-way graph has none and layers bottom-up.
    let g = |edges: &[(&str, &str)]| {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    let circle = g(&[("net", "mgmt"), ("mgmt", "net"), ("mgmt", "arch")]);
    assert!(find_cycle(&circle).is_some());
    let one_way = g(&[("mgmt", "net"), ("net", "arch"), ("mgmt", "arch")]);
    assert_eq!(find_cycle(&one_way), None);
    assert_eq!(layered(&one_way), ["arch", "net", "mgmt"]);
}
