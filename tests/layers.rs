//! Module layering, checked from the crate's source so CI fails when an import runs back up.
//!
//! The top-level modules are the entries of `src/` (`src/x.rs` or `src/x/`), less `lib.rs`
//! and `main.rs`. Every `crate::x` path in a module's code (`use` statements, paths in
//! expressions, `use crate::{a, b::c}` groups) and every `super::…` path that climbs to the
//! crate root is an edge to `x`. Comments and string literals are not code. `super` paths
//! that stay inside the module are not edges.
//!
//! Test code is left out: files named `tests.rs`, files declared by `#[cfg(test)] mod x;`,
//! and the item after a `#[cfg(test)]` attribute (the `mod tests { … }` blocks). Tests may
//! build their fixtures with higher layers (compile a snapshot, run a proxy) without the
//! shipped code depending on them.
//!
//! `cargo test --test layers -- --nocapture` prints each module's edges.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first: a module may import only modules of a strictly lower level.
/// A new top-level module fails the test until it is placed here.
const LAYERS: &[&[&str]] = &[
    &["tls", "rng", "logger", "notify"], // 0: leaves
    &["config"],                         // 1
    &["snapshot"],                       // 2
    &["upstream", "telemetry"],          // 3
    &["http", "tcp"],                    // 4
    &["listener"],                       // 5
    &["admin"],                          // 6
    &["server"],                         // 7: assembles listeners, pipeline and admin
    &["cli"],                            // 8
];

/// The only files that may write to stderr with `eprintln!` / `eprint!`: the command line.
const EPRINT_ALLOWED: &[&str] = &["src/cli.rs", "src/main.rs"];

// ---------------------------------------------------------------------------------------
// Tokens: just enough of Rust's lexer to tell code from comments and literals.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
    /// A string, char or number literal; its text is dropped.
    Lit,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn tokenize(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            // `//`, `///` and `//!` alike.
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            // Block comments nest.
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch == '"' {
            out.push(Token {
                tok: Tok::Lit,
                line,
            });
            i = skip_string(&c, i + 1, &mut line);
        } else if ch == '\'' {
            if at(i + 1) == '\\' {
                // '\n', '\'', '\u{..}'
                let mut j = i + 3;
                while j < c.len() && c[j] != '\'' {
                    j += 1;
                }
                out.push(Token {
                    tok: Tok::Lit,
                    line,
                });
                i = j + 1;
            } else if at(i + 2) == '\'' {
                out.push(Token {
                    tok: Tok::Lit,
                    line,
                });
                i += 3;
            } else {
                // A lifetime or a label; its name follows as an identifier.
                out.push(Token {
                    tok: Tok::Punct('\''),
                    line,
                });
                i += 1;
            }
        } else if is_ident_start(ch) {
            let start = i;
            while i < c.len() && is_ident_continue(c[i]) {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let next = at(i);
            if matches!(word.as_str(), "r" | "br" | "cr") && (next == '"' || next == '#') {
                let mut hashes = 0;
                let mut j = i;
                while at(j) == '#' {
                    hashes += 1;
                    j += 1;
                }
                if at(j) == '"' {
                    out.push(Token {
                        tok: Tok::Lit,
                        line,
                    });
                    i = skip_raw_string(&c, j + 1, hashes, &mut line);
                    continue;
                }
                if word == "r" && hashes == 1 && is_ident_start(at(j)) {
                    // A raw identifier, r#type.
                    let s = j;
                    while j < c.len() && is_ident_continue(c[j]) {
                        j += 1;
                    }
                    out.push(Token {
                        tok: Tok::Ident(c[s..j].iter().collect()),
                        line,
                    });
                    i = j;
                    continue;
                }
            }
            if matches!(word.as_str(), "b" | "c") && next == '"' {
                out.push(Token {
                    tok: Tok::Lit,
                    line,
                });
                i = skip_string(&c, i + 1, &mut line);
                continue;
            }
            if word == "b" && next == '\'' {
                let mut j = i + 1;
                if at(j) == '\\' {
                    j += 1;
                }
                j += 1;
                while j < c.len() && c[j] != '\'' {
                    j += 1;
                }
                out.push(Token {
                    tok: Tok::Lit,
                    line,
                });
                i = j + 1;
                continue;
            }
            out.push(Token {
                tok: Tok::Ident(word),
                line,
            });
        } else if ch.is_ascii_digit() {
            while i < c.len() && is_ident_continue(c[i]) {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Lit,
                line,
            });
        } else if ch == ':' && at(i + 1) == ':' {
            out.push(Token {
                tok: Tok::PathSep,
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                tok: Tok::Punct(ch),
                line,
            });
            i += 1;
        }
    }
    out
}

/// From just after the opening quote to just after the closing one.
fn skip_string(c: &[char], mut i: usize, line: &mut usize) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => {
                if c.get(i + 1) == Some(&'\n') {
                    *line += 1;
                }
                i += 2;
            }
            '"' => return i + 1,
            ch => {
                if ch == '\n' {
                    *line += 1;
                }
                i += 1;
            }
        }
    }
    i
}

fn skip_raw_string(c: &[char], mut i: usize, hashes: usize, line: &mut usize) -> usize {
    while i < c.len() {
        if c[i] == '"' && (1..=hashes).all(|k| c.get(i + k) == Some(&'#')) {
            return i + 1 + hashes;
        }
        if c[i] == '\n' {
            *line += 1;
        }
        i += 1;
    }
    i
}

// ---------------------------------------------------------------------------------------
// Scanning a file's tokens.

#[derive(Debug, Default)]
struct Scan {
    /// First path segment below the crate root, and its line: `crate::config::x` gives
    /// `config`. Not yet filtered to top-level modules.
    refs: Vec<(String, usize)>,
    /// Lines of `eprintln!` / `eprint!`.
    eprints: Vec<usize>,
    /// `#[cfg(test)] mod x;` declarations: files to leave out.
    test_mods: Vec<String>,
}

fn is_ident(t: &[Token], i: usize, s: &str) -> bool {
    matches!(t.get(i), Some(Token { tok: Tok::Ident(w), .. }) if w == s)
}

fn is_punct(t: &[Token], i: usize, p: char) -> bool {
    matches!(t.get(i), Some(Token { tok: Tok::Punct(q), .. }) if *q == p)
}

fn is_sep(t: &[Token], i: usize) -> bool {
    matches!(
        t.get(i),
        Some(Token {
            tok: Tok::PathSep,
            ..
        })
    )
}

/// If an attribute starts at `i` (`#[…]` or `#![…]`): the index after it, whether it is
/// `cfg(test)`, and whether it is an inner attribute.
fn attribute(t: &[Token], i: usize) -> Option<(usize, bool, bool)> {
    if !is_punct(t, i, '#') {
        return None;
    }
    let inner = is_punct(t, i + 1, '!');
    let open = if inner { i + 2 } else { i + 1 };
    if !is_punct(t, open, '[') {
        return None;
    }
    let mut depth = 0;
    let mut j = open;
    while j < t.len() {
        match t[j].tok {
            Tok::Punct('[') => depth += 1,
            Tok::Punct(']') => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
        j += 1;
    }
    let body = &t[open + 1..j.min(t.len())];
    let is_test = body.len() == 4
        && is_ident(body, 0, "cfg")
        && is_punct(body, 1, '(')
        && is_ident(body, 2, "test")
        && is_punct(body, 3, ')');
    Some((j + 1, is_test, inner))
}

/// Skips the item that starts at `i` (after its `#[cfg(test)]`): its further attributes,
/// then up to a `;` or the `}` that closes its body, or to the brace that closes the
/// enclosing block (a field or match arm). Returns the index after the item.
fn skip_item(t: &[Token], mut i: usize) -> usize {
    while let Some((end, _, false)) = attribute(t, i) {
        i = end;
    }
    let mut depth = 0i32;
    while i < t.len() {
        match t[i].tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']') => {
                if depth == 0 {
                    return i;
                }
                depth -= 1;
            }
            Tok::Punct('}') => {
                if depth == 0 {
                    return i;
                }
                depth -= 1;
                if depth == 0 {
                    // `use a::{b, c};` and `const X: T = T { … };` end at the `;`.
                    return if is_punct(t, i + 1, ';') {
                        i + 2
                    } else {
                        i + 1
                    };
                }
            }
            Tok::Punct(';') if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// The elements of a `use` group whose `{` is at `open`: the first segment of each.
fn group_heads(t: &[Token], open: usize) -> Vec<(String, usize)> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut at_start = true;
    let mut j = open;
    while j < t.len() {
        match &t[j].tok {
            Tok::Punct('{') => {
                depth += 1;
                if depth == 1 {
                    at_start = true;
                    j += 1;
                    continue;
                }
            }
            Tok::Punct('}') => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            Tok::Punct(',') if depth == 1 => {
                at_start = true;
                j += 1;
                continue;
            }
            Tok::Ident(w)
                if depth == 1 && at_start && !matches!(w.as_str(), "self" | "super" | "crate") =>
            {
                heads.push((w.clone(), t[j].line));
            }
            _ => {}
        }
        at_start = false;
        j += 1;
    }
    heads
}

/// Scans a file whose module sits `depth` levels below the crate root (`src/x.rs` and
/// `src/x/mod.rs` are 1, `src/x/y.rs` is 2).
fn scan(src: &str, depth: usize) -> Scan {
    let t = tokenize(src);
    let mut out = Scan::default();
    let mut braces = 0usize;
    // Brace depths inside inline `mod x { … }` blocks, for `super` paths.
    let mut inline_mods: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < t.len() {
        if let Some((end, is_test, inner)) = attribute(&t, i) {
            if is_test && inner {
                // `#![cfg(test)]`: the whole file is test code.
                break;
            }
            if is_test {
                let mut k = end;
                while let Some((e, _, false)) = attribute(&t, k) {
                    k = e;
                }
                if is_ident(&t, k, "pub") {
                    k += 1;
                    if is_punct(&t, k, '(') {
                        while k < t.len() && !is_punct(&t, k, ')') {
                            k += 1;
                        }
                        k += 1;
                    }
                }
                if is_ident(&t, k, "mod") && is_punct(&t, k + 2, ';') {
                    if let Some(Token {
                        tok: Tok::Ident(name),
                        ..
                    }) = t.get(k + 1)
                    {
                        out.test_mods.push(name.clone());
                    }
                }
                i = skip_item(&t, end);
            } else {
                i = end;
            }
            continue;
        }
        let prev_sep = i > 0 && (is_sep(&t, i - 1) || is_punct(&t, i - 1, '$'));
        match &t[i].tok {
            Tok::Punct('{') => {
                if i >= 2 && is_ident(&t, i - 2, "mod") {
                    inline_mods.push(braces + 1);
                }
                braces += 1;
            }
            Tok::Punct('}') => {
                if inline_mods.last() == Some(&braces) {
                    inline_mods.pop();
                }
                braces = braces.saturating_sub(1);
            }
            Tok::Ident(w) if (w == "eprintln" || w == "eprint") && is_punct(&t, i + 1, '!') => {
                out.eprints.push(t[i].line);
            }
            // `crate::…`, not `$crate::…` in a macro nor `pub(crate)`.
            Tok::Ident(w) if w == "crate" && !prev_sep && is_sep(&t, i + 1) => {
                root_path(&t, i + 2, &mut out.refs);
            }
            // `super::super::…` that climbs to the crate root.
            Tok::Ident(w) if w == "super" && !prev_sep => {
                let mut k = i;
                let mut ups = 0;
                while is_ident(&t, k, "super") && is_sep(&t, k + 1) {
                    ups += 1;
                    k += 2;
                }
                if ups > 0 && ups == depth + inline_mods.len() {
                    root_path(&t, k, &mut out.refs);
                }
                i = k.max(i + 1);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The path below the crate root that starts at `k`: `config::…` or `{a, b::c}`.
fn root_path(t: &[Token], k: usize, refs: &mut Vec<(String, usize)>) {
    match t.get(k).map(|x| &x.tok) {
        Some(Tok::Ident(name)) => refs.push((name.clone(), t[k].line)),
        Some(Tok::Punct('{')) => refs.extend(group_heads(t, k)),
        _ => {} // `crate::*`: nothing to resolve.
    }
}

// ---------------------------------------------------------------------------------------
// The crate.

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root())
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Depth of a file's module below the crate root: `src/x.rs` 1, `src/x/y/mod.rs` 2.
fn module_depth(file: &Path) -> usize {
    let r = file.strip_prefix(root().join("src")).unwrap();
    let n = r.components().count();
    if file.file_name().is_some_and(|f| f == "mod.rs") {
        n - 1
    } else {
        n
    }
}

/// Directory holding a file's submodules: `src/x/mod.rs` → `src/x`, `src/x/y.rs` → `src/x/y`.
fn child_dir(file: &Path) -> PathBuf {
    if file.file_name().is_some_and(|f| f == "mod.rs") {
        file.parent().unwrap().to_path_buf()
    } else {
        file.with_extension("")
    }
}

/// One top-level module's shipped (non-test) files, scanned.
struct Module {
    /// `src/x.rs` or `src/x/`, for messages.
    place: String,
    files: Vec<(String, Scan)>,
}

fn modules() -> BTreeMap<String, Module> {
    let src = root().join("src");
    let mut names: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for e in fs::read_dir(&src).expect("reading src/") {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        let source = p.extension().is_some_and(|x| x == "rs") && name != "lib" && name != "main";
        if p.is_dir() || source {
            names.entry(name).or_default().push(p);
        }
    }
    let mut out = BTreeMap::new();
    for (name, entries) in names {
        let mut files = Vec::new();
        for p in &entries {
            if p.is_dir() {
                rs_files(p, &mut files);
            } else {
                files.push(p.clone());
            }
        }
        let mut scans: Vec<(PathBuf, Scan)> = files
            .into_iter()
            .map(|f| {
                let text = fs::read_to_string(&f)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
                let s = scan(&text, module_depth(&f));
                (f, s)
            })
            .collect();
        // Test files: `tests.rs`, and whatever `#[cfg(test)] mod x;` declares (with its
        // own submodules).
        let mut test_paths: Vec<PathBuf> = Vec::new();
        for (f, s) in &scans {
            for m in &s.test_mods {
                let dir = child_dir(f);
                test_paths.push(dir.join(format!("{m}.rs")));
                test_paths.push(dir.join(m));
            }
        }
        scans.retain(|(f, _)| {
            f.file_name().is_none_or(|n| n != "tests.rs")
                && !test_paths.iter().any(|t| f.starts_with(t))
        });
        let place = entries
            .iter()
            .map(|p| {
                if p.is_dir() {
                    format!("{}/", rel(p))
                } else {
                    rel(p)
                }
            })
            .collect::<Vec<_>>()
            .join(" and ");
        let files = scans.into_iter().map(|(f, s)| (rel(&f), s)).collect();
        out.insert(name, Module { place, files });
    }
    out
}

/// A use of module `to` at `file:line`.
#[derive(Debug, Clone)]
struct Site {
    file: String,
    line: usize,
}

/// from → to → sites, between distinct top-level modules.
type Graph = BTreeMap<String, BTreeMap<String, Vec<Site>>>;

fn graph(mods: &BTreeMap<String, Module>) -> Graph {
    let mut g: Graph = BTreeMap::new();
    for (name, m) in mods {
        let edges = g.entry(name.clone()).or_default();
        for (file, s) in &m.files {
            for (to, line) in &s.refs {
                if to == name || !mods.contains_key(to) {
                    continue;
                }
                let sites = edges.entry(to.clone()).or_default();
                if !sites.iter().any(|x| x.file == *file && x.line == *line) {
                    sites.push(Site {
                        file: file.clone(),
                        line: *line,
                    });
                }
            }
        }
    }
    g
}

fn level(name: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&name))
}

fn show_level(name: &str) -> String {
    level(name).map_or("unlisted".into(), |l| format!("level {l}"))
}

/// Strongly connected components with more than one module (Tarjan).
fn cyclic_components(g: &Graph) -> Vec<Vec<String>> {
    struct St<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut St<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on.insert(v);
        for w in s.g[v].keys() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = St {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

/// A shortest cycle through `start` inside its component: `[start, …, start]`.
fn shortest_cycle(g: &Graph, comp: &[String], start: &str) -> Vec<String> {
    let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in g[v].keys() {
            let w = w.as_str();
            if !comp.iter().any(|c| c == w) {
                continue;
            }
            if w == start {
                let mut path = vec![start.to_string()];
                let mut x = v;
                while x != start {
                    path.push(x.to_string());
                    x = prev[x];
                }
                path.push(start.to_string());
                path.reverse();
                return path;
            }
            if !prev.contains_key(w) {
                prev.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    unreachable!("{start} is in a cycle")
}

// ---------------------------------------------------------------------------------------
// The checks.

#[test]
fn modules_import_only_lower_layers() {
    let mods = modules();
    let g = graph(&mods);

    println!("module edges (level: module -> imports):");
    for (name, edges) in &g {
        let to: Vec<&str> = edges.keys().map(String::as_str).collect();
        let to = if to.is_empty() {
            "(none)".to_string()
        } else {
            to.join(", ")
        };
        println!("  {name} -> {to} [{}]", show_level(name));
    }

    let mut problems = Vec::new();
    for (name, m) in &mods {
        if level(name).is_none() {
            problems.push(format!(
                "module `{name}` ({}) is not in LAYERS: place it at a level in tests/layers.rs",
                m.place
            ));
        }
    }
    let mut edges = Vec::new();
    for (from, tos) in &g {
        let Some(lf) = level(from) else { continue };
        for (to, sites) in tos {
            let Some(lt) = level(to) else { continue };
            if lt >= lf {
                for s in sites {
                    edges.push((
                        s.file.clone(),
                        s.line,
                        format!(
                            "{}:{}: {from} (level {lf}) imports {to} (level {lt})",
                            s.file, s.line
                        ),
                    ));
                }
            }
        }
    }
    edges.sort();
    problems.extend(edges.into_iter().map(|e| e.2));
    for l in LAYERS.iter().flat_map(|l| l.iter()) {
        if !mods.contains_key(*l) {
            println!("note: LAYERS lists `{l}`, which src/ does not have (yet)");
        }
    }
    assert!(
        problems.is_empty(),
        "module layering broken ({} problems); a module may import only modules of a \
         strictly lower level (LAYERS in tests/layers.rs):\n{}\n",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn no_import_cycles_between_modules() {
    let mods = modules();
    let g = graph(&mods);
    let mut report = Vec::new();
    for comp in cyclic_components(&g) {
        let cycle = shortest_cycle(&g, &comp, &comp[0]);
        let mut s = format!("cycle: {}", cycle.join(" -> "));
        if comp.len() > cycle.len() - 1 {
            s += &format!(" (all of {{{}}} import each other)", comp.join(", "));
        }
        for w in cycle.windows(2) {
            let site = &g[&w[0]][&w[1]][0];
            s += &format!("\n  {} -> {}: {}:{}", w[0], w[1], site.file, site.line);
        }
        report.push(s);
    }
    assert!(
        report.is_empty(),
        "import cycles between top-level modules:\n{}\n",
        report.join("\n")
    );
}

#[test]
fn no_eprintln_outside_the_command_line() {
    let mut files = Vec::new();
    rs_files(&root().join("src"), &mut files);
    let scans: Vec<(PathBuf, Scan)> = files
        .into_iter()
        .map(|f| {
            let text =
                fs::read_to_string(&f).unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
            let s = scan(&text, module_depth(&f).max(1));
            (f, s)
        })
        .collect();
    let mut test_paths = Vec::new();
    for (f, s) in &scans {
        for m in &s.test_mods {
            let dir = child_dir(f);
            test_paths.push(dir.join(format!("{m}.rs")));
            test_paths.push(dir.join(m));
        }
    }
    let mut offenders = Vec::new();
    for (f, s) in &scans {
        let r = rel(f);
        if EPRINT_ALLOWED.contains(&r.as_str())
            || f.file_name().is_some_and(|n| n == "tests.rs")
            || test_paths.iter().any(|t| f.starts_with(t))
        {
            continue;
        }
        for line in &s.eprints {
            offenders.push(format!("{r}:{line}: eprintln!/eprint!"));
        }
    }
    assert!(
        offenders.is_empty(),
        "eprintln!/eprint! outside the command line ({}); only {} may write to stderr \
         directly:\n{}\n",
        offenders.len(),
        EPRINT_ALLOWED.join(" and "),
        offenders.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// The parser itself.

fn heads(src: &str, depth: usize) -> Vec<(String, usize)> {
    scan(src, depth).refs
}

#[test]
fn parser_reads_grouped_and_inline_paths() {
    let src = "\
use crate::{config::{self, model::Spec}, snapshot,
    tls::server_tls::ServerTls};
use crate::rng::Rng;
fn f() { let x = crate::admin::serve(); }
pub(crate) fn g() {}
macro_rules! m { () => { $crate::hidden::x() } }
use crate::*;
";
    let got = heads(src, 1);
    let want = [
        ("config", 1),
        ("snapshot", 1),
        ("tls", 2),
        ("rng", 3),
        ("admin", 4),
    ];
    assert_eq!(
        got,
        want.map(|(n, l)| (n.to_string(), l)).to_vec(),
        "grouped use, plain use, expression path; not pub(crate), $crate, crate::*"
    );
}

#[test]
fn parser_skips_comments_strings_and_test_code() {
    let src = r####"
// use crate::a;
/// crate::b in a doc comment
//! crate::c
/* crate::d /* nested crate::e */ crate::f */
const S: &str = "crate::g \" crate::h";
const R: &str = r#"crate::i " crate::j"#;
const B: &[u8] = b"crate::k";
const C: char = '"';
fn life<'a>(x: &'a str) -> &'a str { x }
use crate::kept;
eprintln!("crate::l");
#[cfg(test)]
use crate::{m, n};
#[cfg(test)]
#[allow(unused)]
mod tests {
    use crate::o;
    fn t() { eprintln!("x"); }
}
#[cfg(test)]
mod more;
use super::p;
use super::super::q;
mod inner { use super::super::r; use super::s; }
"####;
    let s = scan(src, 1);
    let names: Vec<(&str, usize)> = s.refs.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    assert_eq!(names, [("kept", 11), ("p", 23), ("r", 25)]);
    assert_eq!(s.eprints, [12]);
    assert_eq!(s.test_mods, ["more"]);
    // Two levels down, `super::super` is the crate root and `super` is not.
    let names: Vec<String> = heads(src, 2).into_iter().map(|x| x.0).collect();
    assert_eq!(names, ["kept", "q"]);
}

#[test]
fn cycles_are_found_with_their_path() {
    let mut g: Graph = BTreeMap::new();
    let site = || {
        vec![Site {
            file: "src/x.rs".into(),
            line: 1,
        }]
    };
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("e", "d")] {
        g.entry(a.into()).or_default().insert(b.into(), site());
        g.entry(b.into()).or_default();
    }
    let comps = cyclic_components(&g);
    assert_eq!(comps, [["a", "b", "c"]]);
    assert_eq!(shortest_cycle(&g, &comps[0], "a"), ["a", "b", "c", "a"]);
}
