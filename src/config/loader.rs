//! Reads configuration files: directories recursively (`*.yaml`, `*.yml`, sorted),
//! multi-document YAML, Istio kinds parsed into the typed model with every unknown field
//! reported, other kinds skipped with a notice. Never panics on any input.

use super::diagnostic::{Diagnostic, Severity};
use super::locate::LineIndex;
use super::model::*;
use super::resource::{Resource, Skipped, Source};
use super::unsupported;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Everything read from the given paths.
#[derive(Debug, Default)]
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

/// Loads every path; problems are returned as diagnostics, never as panics.
pub fn load(paths: &[PathBuf]) -> Loaded {
    let mut loaded = Loaded::default();
    let mut files = Vec::new();
    for p in paths {
        files.extend(expand_path(p, &mut loaded.diagnostics));
    }
    for f in files {
        match std::fs::read(&f) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => load_text(&f, &text, &mut loaded),
                Err(_) => loaded
                    .diagnostics
                    .push(file_error(&f, None, "not UTF-8 text")),
            },
            Err(e) => loaded
                .diagnostics
                .push(file_error(&f, None, format!("cannot read: {e}"))),
        }
    }
    loaded
}

/// Loads the documents of one file's text into `loaded`.
pub fn load_text(file: &Path, text: &str, loaded: &mut Loaded) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for doc in split_documents(text) {
        load_document(file, &doc, loaded);
    }
}

fn load_document(file: &Path, doc: &DocText, loaded: &mut Loaded) {
    let at = |l: usize| doc.start_line + l.saturating_sub(1);
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
    let lines = LineIndex::build(&doc.text);
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

    let mut unknown: Vec<String> = Vec::new();
    let parsed =
        match kind {
            Kind::Gateway => {
                typed::<GatewaySpec>(&doc.text, &mut unknown).map(|e| e.map(Spec::Gateway))
            }
            Kind::VirtualService => typed::<VirtualServiceSpec>(&doc.text, &mut unknown)
                .map(|e| e.map(Spec::VirtualService)),
            Kind::DestinationRule => typed::<DestinationRuleSpec>(&doc.text, &mut unknown)
                .map(|e| e.map(|s| Spec::DestinationRule(Box::new(s)))),
            Kind::ServiceEntry => typed::<ServiceEntrySpec>(&doc.text, &mut unknown)
                .map(|e| e.map(Spec::ServiceEntry)),
            Kind::WorkloadEntry => typed::<WorkloadEntrySpec>(&doc.text, &mut unknown)
                .map(|e| e.map(Spec::WorkloadEntry)),
            Kind::MeshConfig => {
                typed::<MeshConfigSpec>(&doc.text, &mut unknown).map(|e| e.map(Spec::MeshConfig))
            }
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
    loaded.resources.push(Resource {
        kind,
        name,
        namespace,
        meta: envelope.metadata,
        spec,
        source,
        lines,
    });
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
    fn splits_documents_with_start_lines() {
        let docs = split_documents("a: 1\n---\nb: 2\n--- # c\n\n---\n# only comment\n...\nc: 3\n");
        let got: Vec<(usize, &str)> = docs.iter().map(|d| (d.start_line, d.text.trim())).collect();
        assert_eq!(got, vec![(1, "a: 1"), (2, "b: 2"), (9, "c: 3")]);
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
