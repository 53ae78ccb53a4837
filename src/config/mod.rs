//! Configuration: reading Istio YAML into the model, validating each resource with
//! Istio's rules, and analysing the set as `istioctl analyze` would.
//!
//! The path a document takes: `loader` (files → documents → typed resources, unknown
//! fields, unsupported fields) → `validate` (per-resource rules) → `analyze`
//! (cross-resource warnings). The result is a [`Config`] plus every [`Diagnostic`].

pub mod analyze;
pub mod client_tls;
pub mod diagnostic;
pub mod duration;
pub mod host;
pub mod loader;
pub mod locate;
pub mod model;
pub mod parallel;
pub mod regex_cache;
pub mod registry;
pub mod resource;
pub mod tls_spec;
pub mod unsupported;
pub mod validate;

pub use diagnostic::{Diagnostic, Severity};
pub use resource::{Resource, Skipped, Source};

use model::{Kind, MeshConfigSpec, Spec};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

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
    /// Look-up tables over `resources`, built on first use (so `resources` must not
    /// change after a look-up).
    index: OnceLock<registry::Index>,
}

impl Config {
    /// The look-up tables over `resources`.
    pub fn index(&self) -> &registry::Index {
        self.index
            .get_or_init(|| registry::Index::build(&self.resources))
    }

    /// The valid resources of `kind`, in file order.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Resource> {
        self.index()
            .of_kind(kind)
            .iter()
            .map(move |&i| &self.resources[i])
    }

    /// The valid resource `kind namespace/name`.
    pub fn named(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Resource> {
        self.index()
            .named(kind, namespace, name)
            .map(|i| &self.resources[i])
    }

    /// The MeshConfig document, if one was given.
    pub fn mesh_config(&self) -> Option<&MeshConfigSpec> {
        self.of_kind(Kind::MeshConfig).find_map(|r| match &r.spec {
            Spec::MeshConfig(m) => Some(&**m),
            _ => None,
        })
    }

    /// MeshConfig `credentialsDir`, a relative path taken relative to the file declaring it.
    pub fn credentials_dir(&self) -> Option<PathBuf> {
        let mc = self.of_kind(Kind::MeshConfig).next()?;
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

/// As [`load_and_check`], parsing only documents `cache` has not seen (reloads).
pub fn load_and_check_cached(
    paths: &[PathBuf],
    cli_labels: &[(String, String)],
    cache: &loader::DocCache,
) -> Checked {
    let loaded = loader::load_cached(paths, Some(cache));
    check(loaded, cli_labels)
}

/// Validation and analysis of already-loaded documents.
pub fn check(loaded: loader::Loaded, cli_labels: &[(String, String)]) -> Checked {
    let mut diags = loaded.diagnostics;
    let mut resources: Vec<Resource> = Vec::with_capacity(loaded.resources.len());
    let mut invalid: Vec<Resource> = Vec::new();
    // (kind, namespace, name) → where it was first defined; the MeshConfig kept.
    let mut defined: HashMap<(Kind, String, String), Source> = HashMap::new();
    let mut mesh_config: Option<(String, Source)> = None;
    // Each resource's rules are independent: checked in parallel, reported in order.
    let findings = parallel::map(loaded.resources.iter().collect(), validate::validate);
    for (res, findings) in loaded.resources.into_iter().zip(findings) {
        let refused = findings.items.iter().any(|i| i.0 == Severity::Error);
        diags.extend(findings.into_diagnostics(&res));
        let key = (res.kind, res.namespace.clone(), res.name.clone());
        if let Some(first) = defined.get(&key) {
            diags.push(res.diagnostic(
                Severity::Error,
                "metadata.name",
                format!(
                    "duplicate {}: first defined at {}:{}",
                    res.display_name(),
                    first.file.display(),
                    first.line
                ),
                None,
            ));
            continue;
        }
        if res.kind == Kind::MeshConfig {
            if let Some((name, first)) = &mesh_config {
                diags.push(res.diagnostic(
                    Severity::Error,
                    "",
                    format!(
                        "only one MeshConfig is allowed; {name} is already defined at {}:{}",
                        first.file.display(),
                        first.line
                    ),
                    None,
                ));
                continue;
            }
            if !refused {
                mesh_config = Some((res.display_name(), res.source.clone()));
            }
        }
        defined.insert(key, res.source.clone());
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
        index: OnceLock::new(),
    };
    let labels = config.instance_labels(cli_labels);
    diags.extend(analyze::analyze(&config, &labels));
    diags.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Checked {
        config,
        diagnostics: diags,
    }
}
