//! Reads configuration files: directories recursively (`*.yaml`, `*.yml`, sorted),
//! multi-document YAML, Istio kinds parsed into the typed model with every unknown field
//! reported, other kinds skipped with a notice. Never panics on any input.

use super::diagnostic::{Diagnostic, Severity};
use super::locate::LazyLineIndex;
use super::model::*;
use super::resource::{Resource, Skipped, Source};
use super::unsupported;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Everything read from the given paths.
#[derive(Debug, Default, Clone)]
pub struct Loaded {
    pub resources: Vec<Resource>,
    pub skipped: Vec<Skipped>,
    pub diagnostics: Vec<Diagnostic>,
}

/// One document's text and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocText {
    pub start_line: usize,
    pub text: String,
}

/// Splits a YAML stream at `---` / `...` markers, keeping each document's first line.
/// Content after a `---` on the same line stays in the document, in its column.
pub fn split_documents(text: &str) -> Vec<DocText> {
    let mut docs = Vec::new();
    let mut cur = String::new();
    let mut start = 1usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let lineno = i + 1;
        let bare = line.trim_end_matches(['\n', '\r']);
        // A marker is the whole line, or followed by white space (then maybe content).
        let is_marker = |m: &str| {
            bare.strip_prefix(m)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
        };
        if is_marker("---") {
            docs.push(DocText {
                start_line: start,
                text: std::mem::take(&mut cur),
            });
            start = lineno;
            // Keep any inline content, blanking the marker so columns stay right.
            let rest = &line[3..];
            if !rest.trim().is_empty() && !rest.trim_start().starts_with('#') {
                cur.push_str("   ");
                cur.push_str(rest);
            } else {
                cur.push('\n');
            }
            continue;
        }
        if is_marker("...") {
            docs.push(DocText {
                start_line: start,
                text: std::mem::take(&mut cur),
            });
            start = lineno + 1;
            continue;
        }
        cur.push_str(line);
    }
    docs.push(DocText {
        start_line: start,
        text: cur,
    });
    docs.retain(|d| !is_blank_yaml(&d.text));
    docs
}

/// True when a document holds only blank lines, comments and directives.
fn is_blank_yaml(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t.starts_with('%')
    })
}

/// Lists the files a `--config` path stands for: the file itself, or the YAML files of a
/// directory tree in sorted order.
pub fn expand_path(path: &Path, diags: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            diags.push(file_error(path, None, format!("cannot read: {e}")));
            return Vec::new();
        }
    };
    if meta.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    walk_dir(path, &mut out, diags, 0);
    out.sort();
    out
}

fn walk_dir(dir: &Path, out: &mut Vec<PathBuf>, diags: &mut Vec<Diagnostic>, depth: usize) {
    if depth > 32 {
        diags.push(file_error(
            dir,
            None,
            "directory nesting too deep; not read",
        ));
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diags.push(file_error(dir, None, format!("cannot read directory: {e}")));
            return;
        }
    };
    for entry in entries.flatten() {
        let p = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue; // editor swap files, Kubernetes ..data links
        }
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => walk_dir(&p, out, diags, depth + 1),
            Ok(m) if m.is_file() => {
                if matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml") | Some("yml")
                ) {
                    out.push(p);
                }
            }
            _ => {}
        }
    }
}

fn file_error(file: &Path, line: Option<usize>, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: file.to_path_buf(),
        line,
        resource: None,
        field: None,
        message: message.into(),
        code: None,
    }
}

/// The largest configuration file read (bytes); a larger one is refused unread.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// The largest YAML document (bytes), about five times the 1.5 MiB Kubernetes allows
/// one object; a larger one is refused unparsed.
pub const MAX_DOCUMENT_BYTES: usize = 8 << 20;

/// The nodes alias references (`*name`) may add to one document when expanded. A
/// "billion laughs" document (anchors of aliases of anchors) is refused before it is
/// expanded; a document with a few aliases adds a few nodes.
pub const MAX_ALIAS_NODES: u64 = 100_000;

/// Loads every path; problems are returned as diagnostics, never as panics.
pub fn load(paths: &[PathBuf]) -> Loaded {
    load_cached(paths, None)
}

/// What the last load parsed, by document (file, first line and text): a reload parses
/// again only the documents that changed. Parsing dominates loading a large config
/// (10,000 VirtualServices: about 1 s of YAML parsing and its allocations).
#[derive(Debug, Default)]
pub struct DocCache {
    parsed: std::sync::Mutex<std::collections::HashMap<u64, Loaded>>,
}

impl DocCache {
    /// Documents held (those of the last load).
    pub fn len(&self) -> usize {
        self.parsed.lock().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn doc_key(file: &Path, doc: &DocText) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    file.hash(&mut h);
    doc.start_line.hash(&mut h);
    doc.text.hash(&mut h);
    h.finish()
}

/// As [`load`], taking unchanged documents from `cache` and leaving in it what this load
/// parsed (only the current documents: it does not grow over reloads).
pub fn load_cached(paths: &[PathBuf], cache: Option<&DocCache>) -> Loaded {
    let mut loaded = Loaded::default();
    let mut files = Vec::new();
    for p in paths {
        files.extend(expand_path(p, &mut loaded.diagnostics));
    }
    // Files are read and split in order; their documents are parsed in parallel and
    // collected in order again.
    let mut jobs: Vec<Job> = Vec::new();
    for (i, f) in files.iter().enumerate() {
        match read_capped(f) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => jobs.extend(file_documents(&text).map(|d| Job::Document(i, d))),
                Err(_) => jobs.push(Job::Failed(file_error(f, None, "not UTF-8 text"))),
            },
            Err(msg) => jobs.push(Job::Failed(file_error(f, None, msg))),
        }
    }
    load_jobs(&files, jobs, &mut loaded, cache);
    loaded
}

/// A unit of loading: a document of `files[i]`, or a file that could not be read.
enum Job {
    Document(usize, DocText),
    Failed(Diagnostic),
}

/// Runs the jobs (in parallel) and appends what they read to `loaded`, in job order;
/// with a cache, documents parsed before are taken from it.
fn load_jobs(files: &[PathBuf], jobs: Vec<Job>, loaded: &mut Loaded, cache: Option<&DocCache>) {
    let mut previous =
        cache.map(|c| std::mem::take(&mut *c.parsed.lock().unwrap_or_else(|p| p.into_inner())));
    // (key, what was read, whether it came from the cache)
    let parts = super::parallel::map(jobs, |job| {
        let mut part = Loaded::default();
        let mut key = None;
        match job {
            Job::Document(i, doc) => {
                if let Some(previous) = &previous {
                    let k = doc_key(&files[i], &doc);
                    if let Some(hit) = previous.get(&k) {
                        return (Some(k), hit.clone(), true);
                    }
                    key = Some(k);
                }
                load_document(&files[i], doc, &mut part);
            }
            Job::Failed(d) => part.diagnostics.push(d),
        }
        (key, part, false)
    });
    if let (Some(cache), Some(previous)) = (cache, previous.as_mut()) {
        // Unchanged documents move over; new ones are copied in.
        let next: std::collections::HashMap<u64, Loaded> = parts
            .iter()
            .filter_map(|(k, part, hit)| {
                let k = (*k)?;
                let kept = if *hit { previous.remove(&k) } else { None };
                Some((k, kept.unwrap_or_else(|| part.clone())))
            })
            .collect();
        *cache.parsed.lock().unwrap_or_else(|p| p.into_inner()) = next;
    }
    let parts: Vec<Loaded> = parts.into_iter().map(|(_, p, _)| p).collect();
    loaded
        .resources
        .reserve(parts.iter().map(|p| p.resources.len()).sum());
    for part in parts {
        loaded.resources.extend(part.resources);
        loaded.skipped.extend(part.skipped);
        loaded.diagnostics.extend(part.diagnostics);
    }
}

/// The documents of one file's text (a leading byte-order mark dropped).
fn file_documents(text: &str) -> impl Iterator<Item = DocText> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    split_documents(text).into_iter()
}

/// Reads a file of at most [`MAX_FILE_BYTES`].
fn read_capped(f: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let too_large = |len: u64| {
        format!(
            "file is {len} bytes, more than the {} MiB a configuration file may hold; not read (split it into several files)",
            MAX_FILE_BYTES >> 20
        )
    };
    let file = std::fs::File::open(f).map_err(|e| format!("cannot read: {e}"))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > MAX_FILE_BYTES {
        return Err(too_large(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // The file may grow while it is read: never read past the cap.
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Loads the documents of one file's text into `loaded`.
pub fn load_text(file: &Path, text: &str, loaded: &mut Loaded) {
    let jobs = file_documents(text).map(|d| Job::Document(0, d)).collect();
    load_jobs(&[file.to_path_buf()], jobs, loaded, None);
}

/// Why a document is refused before it is parsed: too large, or aliases that expand too
/// far. (line relative to the document, message)
fn document_limits(text: &str) -> Result<(), (usize, String)> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err((
            1,
            format!(
                "document is {} bytes, more than the {} MiB a document may hold; not parsed",
                text.len(),
                MAX_DOCUMENT_BYTES >> 20
            ),
        ));
    }
    // No anchor, no alias (an alias to an unknown anchor is a syntax error): the common
    // case costs one byte search.
    if !text.contains('&') {
        return Ok(());
    }
    alias_expansion(text)
}

/// Counts, in one pass over the parser's events and without expanding anything, the
/// nodes the document's aliases stand for; refuses it at the alias that takes the count
/// over [`MAX_ALIAS_NODES`]. Syntax errors are left to the parser that reports them.
fn alias_expansion(text: &str) -> Result<(), (usize, String)> {
    use std::collections::HashMap;
    use yaml_rust2::parser::{Event, Parser};
    let mut parser = Parser::new_from_str(text);
    // Expanded size of every complete anchored node; the open collections (anchor id,
    // size so far).
    let mut anchored: HashMap<usize, u64> = HashMap::new();
    let mut open: Vec<(usize, u64)> = Vec::new();
    let mut added = 0u64;
    let mut aliases = 0u64;
    loop {
        let Ok((event, mark)) = parser.next_token() else {
            return Ok(());
        };
        let size = match event {
            Event::StreamEnd => return Ok(()),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                open.push((anchor, 1));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some((anchor, size)) = open.pop() else {
                    continue;
                };
                if anchor > 0 {
                    anchored.insert(anchor, size);
                }
                size
            }
            Event::Scalar(_, _, anchor, _) => {
                if anchor > 0 {
                    anchored.insert(anchor, 1);
                }
                1
            }
            Event::Alias(anchor) => {
                // An alias inside its own anchor (not complete yet) counts as one node;
                // serde_yaml refuses the recursion itself.
                let size = anchored.get(&anchor).copied().unwrap_or(1);
                aliases += 1;
                added = added.saturating_add(size);
                if added > MAX_ALIAS_NODES {
                    return Err((
                        mark.line(),
                        format!(
                            "YAML aliases expand to more than {MAX_ALIAS_NODES} nodes (after {aliases} alias references); \
                             refused unexpanded (a \"billion laughs\" document?)"
                        ),
                    ));
                }
                size
            }
            _ => continue,
        };
        if let Some(parent) = open.last_mut() {
            parent.1 = parent.1.saturating_add(size);
        }
    }
}

fn load_document(file: &Path, doc: DocText, loaded: &mut Loaded) {
    let at = |l: usize| doc.start_line + l.saturating_sub(1);
    if let Err((line, msg)) = document_limits(&doc.text) {
        loaded
            .diagnostics
            .push(file_error(file, Some(at(line)), msg));
        return;
    }
    let value: serde_yaml::Value = match serde_yaml::from_str(&doc.text) {
        Ok(v) => v,
        Err(e) => {
            let (line, msg) = yaml_error(&e, doc.start_line);
            loaded
                .diagnostics
                .push(file_error(file, line, format!("YAML syntax error: {msg}")));
            return;
        }
    };
    let map = match &value {
        serde_yaml::Value::Mapping(m) => m,
        serde_yaml::Value::Null => return,
        _ => {
            loaded.diagnostics.push(file_error(
                file,
                Some(doc.start_line),
                "document is not a mapping (expected apiVersion, kind, metadata, spec)",
            ));
            return;
        }
    };
    let get_str = |k: &str| {
        map.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let api_version = get_str("apiVersion");
    let kind_name = get_str("kind");
    let meta = map.get("metadata");
    let meta_str = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    if api_version.is_empty() || kind_name.is_empty() {
        let missing = if api_version.is_empty() {
            "apiVersion"
        } else {
            "kind"
        };
        loaded.diagnostics.push(Diagnostic {
            field: Some(missing.into()),
            ..file_error(
                file,
                Some(doc.start_line),
                "Required value: every document needs apiVersion and kind",
            )
        });
        return;
    }
    let source = Source {
        file: file.to_path_buf(),
        line: doc.start_line,
    };
    let Some(kind) = Kind::from_api(&api_version, &kind_name) else {
        let name = meta_str("name");
        let namespace = meta_str("namespace");
        let istio_group = api_version.starts_with("networking.istio.io/")
            || api_version.starts_with("meshgate.io/");
        loaded.diagnostics.push(Diagnostic {
            severity: if istio_group {
                Severity::Warning
            } else {
                Severity::Notice
            },
            file: file.to_path_buf(),
            line: Some(doc.start_line),
            resource: Some(format!("{kind_name} {}/{name}", or_default(&namespace))),
            field: None,
            message: if istio_group {
                format!("{kind_name} ({api_version}) is not served by meshgate; skipped")
            } else {
                format!("skipped: {api_version} {kind_name} is not a kind meshgate reads")
            },
            code: None,
        });
        loaded.skipped.push(Skipped {
            api_version,
            kind: kind_name,
            name,
            namespace: or_default(&namespace).to_string(),
            source,
        });
        return;
    };

    // The document's text stays with the resource; its lines are indexed only when a
    // diagnostic needs one.
    let lines = LazyLineIndex::new(doc.text);
    let mut unknown: Vec<String> = Vec::new();
    let parsed = match kind {
        Kind::Gateway => {
            typed::<GatewaySpec>(lines.text(), &mut unknown).map(|e| e.map(Spec::Gateway))
        }
        Kind::VirtualService => typed::<VirtualServiceSpec>(lines.text(), &mut unknown)
            .map(|e| e.map(Spec::VirtualService)),
        Kind::DestinationRule => typed::<DestinationRuleSpec>(lines.text(), &mut unknown)
            .map(|e| e.map(|s| Spec::DestinationRule(Box::new(s)))),
        Kind::ServiceEntry => {
            typed::<ServiceEntrySpec>(lines.text(), &mut unknown).map(|e| e.map(Spec::ServiceEntry))
        }
        Kind::WorkloadEntry => typed::<WorkloadEntrySpec>(lines.text(), &mut unknown)
            .map(|e| e.map(Spec::WorkloadEntry)),
        Kind::MeshConfig => typed::<MeshConfigSpec>(lines.text(), &mut unknown)
            .map(|e| e.map(|s| Spec::MeshConfig(Box::new(s)))),
    };
    let name = meta_str("name");
    let namespace = or_default(&meta_str("namespace")).to_string();
    let resource_name = format!("{kind} {namespace}/{name}");
    let diag = |line: usize, field: Option<String>, message: String| Diagnostic {
        severity: Severity::Error,
        file: file.to_path_buf(),
        line: Some(line),
        resource: Some(resource_name.clone()),
        field,
        message,
        code: None,
    };
    let mut failed = false;
    for path in &unknown {
        let line = lines.line_of(path).map(at).unwrap_or(doc.start_line);
        let leaf = path.rsplit(['.', ']']).next().unwrap_or(path);
        loaded.diagnostics.push(diag(
            line,
            Some(path.clone()),
            format!("unknown field `{leaf}` (not in the {kind} API; check the spelling)"),
        ));
        failed = true;
    }
    let envelope = match parsed {
        Ok(env) => env,
        Err(e) => {
            let (line, msg) = yaml_error(&e, doc.start_line);
            let (field, msg) = split_serde_path(&msg);
            loaded
                .diagnostics
                .push(diag(line.unwrap_or(doc.start_line), field, msg));
            return;
        }
    };
    if name.is_empty() {
        loaded.diagnostics.push(diag(
            lines.line_of("metadata").map(at).unwrap_or(doc.start_line),
            Some("metadata.name".into()),
            "Required value: every resource needs a name".into(),
        ));
        failed = true;
    }
    let Some(spec) = envelope.spec else {
        loaded.diagnostics.push(diag(
            doc.start_line,
            Some("spec".into()),
            "Required value".into(),
        ));
        return;
    };
    for (path, why) in unsupported::find(kind, &value) {
        let line = lines.line_of(&path).map(at).unwrap_or(doc.start_line);
        loaded.diagnostics.push(Diagnostic {
            severity: Severity::Warning,
            ..diag(
                line,
                Some(path),
                format!("not supported by meshgate: {why}"),
            )
        });
    }
    if failed {
        return;
    }
    let mut spec = spec;
    if let Spec::VirtualService(vs) = &mut spec {
        compact_virtual_service(vs);
    }
    loaded.resources.push(Resource {
        kind,
        name,
        namespace,
        meta: Box::new(envelope.metadata),
        spec,
        source,
        lines,
    });
}

/// Drops the spare capacity deserialization leaves in a VirtualService's lists (a list
/// of one match is allocated for four): the bulk of a large config, kept for the life of
/// the process.
fn compact_virtual_service(vs: &mut VirtualServiceSpec) {
    fn map<T>(m: &mut OrderedMap<T>) {
        m.0.shrink_to_fit();
    }
    fn headers(h: &mut Option<Box<Headers>>) {
        let Some(h) = h else { return };
        for ops in [&mut h.request, &mut h.response].into_iter().flatten() {
            map(&mut ops.set);
            map(&mut ops.add);
            ops.remove.shrink_to_fit();
        }
    }
    vs.hosts.shrink_to_fit();
    vs.gateways.shrink_to_fit();
    vs.export_to.shrink_to_fit();
    for r in &mut vs.http {
        for m in &mut r.r#match {
            map(&mut m.headers);
            map(&mut m.query_params);
            map(&mut m.without_headers);
            map(&mut m.source_labels);
            m.gateways.shrink_to_fit();
        }
        r.r#match.shrink_to_fit();
        for d in &mut r.route {
            headers(&mut d.headers);
        }
        r.route.shrink_to_fit();
        if let Some(m) = &mut r.mirrors {
            m.shrink_to_fit();
        }
        headers(&mut r.headers);
        if let Some(c) = &mut r.cors_policy {
            c.allow_origins.shrink_to_fit();
            c.allow_origin.shrink_to_fit();
            c.allow_methods.shrink_to_fit();
            c.allow_headers.shrink_to_fit();
            c.expose_headers.shrink_to_fit();
        }
    }
    vs.http.shrink_to_fit();
    for r in &mut vs.tls {
        for m in &mut r.r#match {
            m.sni_hosts.shrink_to_fit();
            m.destination_subnets.shrink_to_fit();
            m.gateways.shrink_to_fit();
        }
        r.r#match.shrink_to_fit();
        r.route.shrink_to_fit();
    }
    vs.tls.shrink_to_fit();
    for r in &mut vs.tcp {
        for m in &mut r.r#match {
            m.destination_subnets.shrink_to_fit();
            m.gateways.shrink_to_fit();
        }
        r.r#match.shrink_to_fit();
        r.route.shrink_to_fit();
    }
    vs.tcp.shrink_to_fit();
}

fn or_default(ns: &str) -> &str {
    if ns.is_empty() {
        "default"
    } else {
        ns
    }
}

/// Deserializes a document into a typed envelope, collecting every ignored (unknown) key.
fn typed<S: DeserializeOwned>(
    text: &str,
    unknown: &mut Vec<String>,
) -> Result<Envelope<S>, serde_yaml::Error> {
    let de = serde_yaml::Deserializer::from_str(text);
    serde_ignored::deserialize(de, |p| unknown.push(path_string(&p)))
}

/// Formats a serde_ignored path as `spec.http[0].rout`.
fn path_string(p: &serde_ignored::Path) -> String {
    use serde_ignored::Path as P;
    match p {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", path_string(parent)),
        P::Map { parent, key } => {
            let base = path_string(parent);
            if base.is_empty() {
                key.clone()
            } else {
                format!("{base}.{key}")
            }
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            path_string(parent)
        }
    }
}

/// The file line of a serde_yaml error and its message without the position suffix.
fn yaml_error(e: &serde_yaml::Error, start_line: usize) -> (Option<usize>, String) {
    // libyaml's positions inside the message are relative to the document, not the
    // file: drop them and give the file-relative position once.
    let mut msg = String::new();
    let full = e.to_string();
    let mut rest = full.as_str();
    while let Some(i) = rest.find(" at line ") {
        msg.push_str(&rest[..i]);
        let tail = &rest[i + " at line ".len()..];
        let skip = tail
            .find(|c: char| !(c.is_ascii_digit() || c == ' ' || "column".contains(c)))
            .unwrap_or(tail.len());
        rest = &tail[skip..];
    }
    msg.push_str(rest);
    let msg = msg.trim_end().to_string();
    match e.location() {
        Some(loc) => {
            let line = start_line + loc.line() - 1;
            (
                Some(line),
                format!("{msg} (line {line}, column {})", loc.column()),
            )
        }
        None => (None, msg),
    }
}

/// Splits serde_yaml's `path: message` into its two parts.
fn split_serde_path(msg: &str) -> (Option<String>, String) {
    if let Some((p, rest)) = msg.split_once(": ") {
        if !p.contains(' ') && !p.is_empty() {
            return (Some(p.to_string()), rest.to_string());
        }
    }
    (None, msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_load_parses_only_changed_documents_and_reads_the_same() {
        let dir = std::env::temp_dir().join(format!("mg-doccache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let vs = |name: &str, host: &str| {
            format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec:\n  hosts: [{host}]\n  http:\n  - route: [{{destination: {{host: b.internal}}}}]\n")
        };
        std::fs::write(
            dir.join("a.yaml"),
            format!("{}---\n{}", vs("one", "a.com"), vs("two", "b.com")),
        )
        .unwrap();
        std::fs::write(dir.join("b.yaml"), vs("three", "c.com")).unwrap();
        let paths = [dir.clone()];
        let cache = DocCache::default();
        let first = load_cached(&paths, Some(&cache));
        assert_eq!(cache.len(), 3);
        let hosts = |l: &Loaded| -> Vec<String> {
            l.resources
                .iter()
                .map(|r| match &r.spec {
                    crate::config::model::Spec::VirtualService(v) => v.hosts.join(","),
                    _ => String::new(),
                })
                .collect()
        };
        assert_eq!(hosts(&first), ["a.com", "b.com", "c.com"]);
        // One document changed, one file unchanged: the same result as a fresh load.
        std::fs::write(
            dir.join("a.yaml"),
            format!("{}---\n{}", vs("one", "a.com"), vs("two", "changed.com")),
        )
        .unwrap();
        let cached = load_cached(&paths, Some(&cache));
        let fresh = load(&paths);
        assert_eq!(hosts(&cached), ["a.com", "changed.com", "c.com"]);
        assert_eq!(hosts(&cached), hosts(&fresh));
        assert_eq!(cached.resources[1].source, fresh.resources[1].source);
        // A removed file's documents leave the cache.
        std::fs::remove_file(dir.join("b.yaml")).unwrap();
        let after = load_cached(&paths, Some(&cache));
        assert_eq!(hosts(&after), ["a.com", "changed.com"]);
        assert_eq!(cache.len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn splits_documents_with_start_lines() {
        let docs = split_documents("a: 1\n---\nb: 2\n--- # c\n\n---\n# only comment\n...\nc: 3\n");
        let got: Vec<(usize, &str)> = docs.iter().map(|d| (d.start_line, d.text.trim())).collect();
        assert_eq!(got, vec![(1, "a: 1"), (2, "b: 2"), (9, "c: 3")]);
    }

    fn load_str(text: &str) -> Loaded {
        let mut loaded = Loaded::default();
        load_text(Path::new("t.yaml"), text, &mut loaded);
        loaded
    }

    #[test]
    fn alias_expansion_is_capped_before_parsing() {
        // 400 aliases of a 400-string list: 160,400 nodes from 4 KB of text.
        let bomb = format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: x}}\nspec:\n  a: &a [{}]\n  b: [{}]\n",
            ["l"; 400].join(","),
            ["*a"; 400].join(",")
        );
        let loaded = load_str(&format!("apiVersion: v1\n---\n{bomb}"));
        assert!(loaded.resources.is_empty());
        let d = &loaded.diagnostics[1];
        assert_eq!((d.line, d.severity), (Some(8), Severity::Error), "{d:?}");
        assert!(
            d.message.starts_with(
                "YAML aliases expand to more than 100000 nodes (after 250 alias references)"
            ),
            "{d:?}"
        );
        // Under the cap: 200 aliases of the same list load (as an unknown field here).
        let fine = bomb.replace(&["*a"; 400].join(","), &["*a"; 200].join(","));
        let loaded = load_str(&fine);
        assert!(
            loaded
                .diagnostics
                .iter()
                .all(|d| d.message.contains("unknown field")),
            "{:?}",
            loaded.diagnostics
        );
    }

    #[test]
    fn aliases_are_counted_as_expanded() {
        assert_eq!(
            alias_expansion("a: &a [1, 2]\nb: *a\nc: [*a, *a]\n"),
            Ok(())
        );
        // A scalar anchor, an anchor inside an anchor, an alias inside its own anchor.
        assert_eq!(
            alias_expansion("a: &s x\nb: &m {k: &n [*s]}\nc: *n\nd: &r [*r]\n"),
            Ok(())
        );
        let nested = |levels: usize, width: usize| {
            let mut t = format!("l0: &l0 [{}]\n", ["x"; 10].join(","));
            for l in 1..levels {
                let refs = vec![format!("*l{}", l - 1); width].join(",");
                t.push_str(&format!("l{l}: &l{l} [{refs}]\n"));
            }
            t
        };
        // 10 x 11 + 10 x 111 + 10 x 1111 = 12,330 nodes added: fine.
        assert_eq!(alias_expansion(&nested(4, 10)), Ok(()));
        // The 8th alias of level 4 (11,111 nodes each) passes 100,000.
        let err = alias_expansion(&nested(6, 10)).unwrap_err();
        assert_eq!(err.0, 5);
        assert!(err.1.contains("after 38 alias references"), "{err:?}");
        // Broken YAML is left to the parser's error.
        assert_eq!(alias_expansion("a: &a [\n"), Ok(()));
    }

    #[test]
    fn oversized_documents_are_refused() {
        let big = format!("a: \"{}\"\n", "x".repeat(MAX_DOCUMENT_BYTES));
        let loaded = load_str(&format!("# big\n---\n{big}"));
        assert_eq!(loaded.diagnostics.len(), 1, "{:?}", loaded.diagnostics);
        let d = &loaded.diagnostics[0];
        assert_eq!(d.line, Some(2));
        assert!(
            d.message
                .contains("more than the 8 MiB a document may hold"),
            "{d:?}"
        );
    }

    #[test]
    fn split_keeps_inline_content_after_marker() {
        let docs = split_documents("--- {a: 1}\n");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].text.trim(), "{a: 1}");
        let docs = split_documents("---x: 1\n");
        assert_eq!(docs[0].text.trim(), "---x: 1");
    }
}
