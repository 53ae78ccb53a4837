//! Configuration: reading Istio YAML into the model, validating each resource with
//! Istio's rules, and analysing the set as `istioctl analyze` would.
//!
//! The path a document takes: `loader` (files → documents → typed resources, unknown
//! fields, unsupported fields) → `validate` (per-resource rules) → `analyze`
//! (cross-resource warnings). The result is a [`Config`] plus every [`Diagnostic`].

pub mod analyze;
pub mod diagnostic;
pub mod duration;
pub mod host;
pub mod loader;
pub mod locate;
pub mod model;
pub mod registry;
pub mod resource;
pub mod tls_spec;
pub mod unsupported;
pub mod validate;

pub use diagnostic::{Diagnostic, Severity};
pub use resource::{Resource, Skipped, Source};

use model::{Kind, MeshConfigSpec, Spec};
use std::path::PathBuf;

/// The label every Istio ingress gateway carries, used when no labels are configured.
pub const DEFAULT_LABELS: &[(&str, &str)] = &[("istio", "ingressgateway")];

/// Where the admin listener goes when neither `--admin` nor MeshConfig says.
pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:15000";

/// A validated set of resources, in file order.
#[derive(Debug, Default)]
pub struct Config {
    /// Resources that passed validation: what a gateway would serve.
    pub resources: Vec<Resource>,
    /// Resources refused by validation (kept so analysis can still explain references).
    pub invalid: Vec<Resource>,
    pub skipped: Vec<Skipped>,
}

impl Config {
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Resource> {
        self.resources.iter().filter(move |r| r.kind == kind)
    }

    /// The MeshConfig document, if one was given.
    pub fn mesh_config(&self) -> Option<&MeshConfigSpec> {
        self.resources.iter().find_map(|r| match &r.spec {
            Spec::MeshConfig(m) => Some(m),
            _ => None,
        })
    }

    /// MeshConfig `credentialsDir`, a relative path taken relative to the file declaring it.
    pub fn credentials_dir(&self) -> Option<PathBuf> {
        let mc = self.resources.iter().find(|r| r.kind == Kind::MeshConfig)?;
        let Spec::MeshConfig(spec) = &mc.spec else {
            return None;
        };
        let dir = PathBuf::from(spec.credentials_dir.as_ref()?);
        if dir.is_absolute() {
            return Some(dir);
        }
        let base = mc.source.file.parent().unwrap_or(std::path::Path::new("."));
        Some(base.join(dir))
    }

    /// This instance's labels: the CLI's, else MeshConfig's, else `istio=ingressgateway`.
    pub fn instance_labels(&self, cli: &[(String, String)]) -> Vec<(String, String)> {
        if !cli.is_empty() {
            return cli.to_vec();
        }
        match self.mesh_config() {
            Some(m) if !m.labels.is_empty() => m.labels.0.clone(),
            _ => DEFAULT_LABELS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

/// The outcome of reading and checking configuration.
#[derive(Debug, Default)]
pub struct Checked {
    pub config: Config,
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Reads `paths`, validates every resource and analyses the whole set.
/// `cli_labels` are the `--label` flags (empty when none were given).
pub fn load_and_check(paths: &[PathBuf], cli_labels: &[(String, String)]) -> Checked {
    let loaded = loader::load(paths);
    check(loaded, cli_labels)
}

/// Validation and analysis of already-loaded documents.
pub fn check(loaded: loader::Loaded, cli_labels: &[(String, String)]) -> Checked {
    let mut diags = loaded.diagnostics;
    let mut resources: Vec<Resource> = Vec::with_capacity(loaded.resources.len());
    let mut invalid: Vec<Resource> = Vec::new();
    for res in loaded.resources {
        let findings = validate::validate(&res);
        let refused = findings.items.iter().any(|i| i.0 == Severity::Error);
        diags.extend(findings.into_diagnostics(&res));
        if let Some(first) = resources
            .iter()
            .chain(invalid.iter())
            .find(|r| r.kind == res.kind && r.namespace == res.namespace && r.name == res.name)
        {
            diags.push(res.diagnostic(
                Severity::Error,
                "metadata.name",
                format!(
                    "duplicate {}: first defined at {}:{}",
                    res.display_name(),
                    first.source.file.display(),
                    first.source.line
                ),
                None,
            ));
            continue;
        }
        if res.kind == Kind::MeshConfig {
            if let Some(first) = resources.iter().find(|r| r.kind == Kind::MeshConfig) {
                diags.push(res.diagnostic(
                    Severity::Error,
                    "",
                    format!(
                        "only one MeshConfig is allowed; {} is already defined at {}:{}",
                        first.display_name(),
                        first.source.file.display(),
                        first.source.line
                    ),
                    None,
                ));
                continue;
            }
        }
        if refused {
            invalid.push(res);
        } else {
            resources.push(res);
        }
    }
    let config = Config {
        resources,
        invalid,
        skipped: loaded.skipped,
    };
    let labels = config.instance_labels(cli_labels);
    diags.extend(analyze::analyze(&config, &labels));
    diags.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Checked {
        config,
        diagnostics: diags,
    }
}
