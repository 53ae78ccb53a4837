//! Problems found in configuration, each pinned to a file, a line, a resource and a field.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The configuration is refused.
    Error,
    /// Accepted, but the user should know (Istio's warnings and `istioctl analyze` messages).
    Warning,
    /// A document meshgate does not read (a Deployment in a sample, say): skipped.
    Notice,
}

/// One problem, printed as `FILE[:LINE]: [warning: ]Kind namespace/name: field.path: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub line: Option<usize>,
    /// `Kind namespace/name`, when the problem belongs to a resource.
    pub resource: Option<String>,
    /// The field path inside the resource, e.g. `spec.http[0].route[1].weight`.
    pub field: Option<String>,
    pub message: String,
    /// Stable code for analyzer-style warnings (Istio's message type name).
    pub code: Option<&'static str>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        match self.severity {
            Severity::Error => {}
            Severity::Warning => f.write_str("warning: ")?,
            Severity::Notice => f.write_str("notice: ")?,
        }
        if let Some(r) = &self.resource {
            write!(f, "{r}: ")?;
        }
        if let Some(p) = &self.field {
            write!(f, "{p}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(code) = self.code {
            write!(f, " [{code}]")?;
        }
        Ok(())
    }
}
