//! A loaded resource: its kind, identity, typed spec, and where it was written.

use super::diagnostic::{Diagnostic, Severity};
use super::locate::LazyLineIndex;
use super::model::{Kind, ObjectMeta, Spec};
use std::path::PathBuf;

/// Where a document came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub file: PathBuf,
    /// 1-based line of the document's first line in the file.
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub kind: Kind,
    pub name: String,
    /// `metadata.namespace`, `default` when absent.
    pub namespace: String,
    pub meta: Box<ObjectMeta>,
    pub spec: Spec,
    pub source: Source,
    /// The document's text, indexed by field path when a diagnostic needs a line.
    pub(crate) lines: LazyLineIndex,
}

impl Resource {
    /// `Kind namespace/name`, as diagnostics name a resource.
    pub fn display_name(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }

    /// The file line of a field path of this resource (its document's start when the
    /// path is not written down).
    pub fn line_of(&self, field: &str) -> usize {
        match self.lines.line_of(field) {
            Some(l) => self.source.line + l - 1,
            None => self.source.line,
        }
    }

    pub fn diagnostic(
        &self,
        severity: Severity,
        field: &str,
        message: impl Into<String>,
        code: Option<&'static str>,
    ) -> Diagnostic {
        Diagnostic {
            severity,
            file: self.source.file.clone(),
            line: Some(self.line_of(field)),
            resource: Some(self.display_name()),
            field: (!field.is_empty()).then(|| field.to_string()),
            message: message.into(),
            code,
        }
    }
}

/// A document of a kind meshgate does not read (kept to explain, for instance, that a
/// destination host is only a Kubernetes Service).
#[derive(Debug, Clone)]
pub struct Skipped {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub source: Source,
}

/// Findings of a rule on one resource, before they are pinned to lines.
#[derive(Debug, Default)]
pub struct Findings {
    pub items: Vec<(Severity, String, String, Option<&'static str>)>,
}

impl Findings {
    pub fn error(&mut self, field: impl Into<String>, msg: impl Into<String>) {
        self.items
            .push((Severity::Error, field.into(), msg.into(), None));
    }
    pub fn warn(&mut self, field: impl Into<String>, msg: impl Into<String>) {
        self.items
            .push((Severity::Warning, field.into(), msg.into(), None));
    }
    pub fn warn_code(
        &mut self,
        field: impl Into<String>,
        msg: impl Into<String>,
        code: &'static str,
    ) {
        self.items
            .push((Severity::Warning, field.into(), msg.into(), Some(code)));
    }
    /// Records an error when `r` is one.
    pub fn check(&mut self, field: impl Into<String>, r: Result<(), String>) {
        if let Err(e) = r {
            self.error(field, e);
        }
    }
    pub fn into_diagnostics(self, res: &Resource) -> Vec<Diagnostic> {
        self.items
            .into_iter()
            .map(|(sev, field, msg, code)| res.diagnostic(sev, &field, msg, code))
            .collect()
    }
}
