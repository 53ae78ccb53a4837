//! The command line. `validate` is the front door: it prints every problem of a config
//! and exits 1 when any is an error, so the same messages guard `run` and CI pipelines.

use crate::config::{self, model::Spec, Checked, Severity};
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "meshgate",
    version,
    about = "An edge gateway configured with Istio's networking API"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// log filter, env_logger style: a level, or target=level pairs; default RUST_LOG, else info
    #[arg(long = "log-level", value_name = "SPEC", global = true)]
    pub log_level: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check configuration files and print every problem found (exit 1 on errors).
    Validate(ValidateArgs),
    /// Serve the Gateways whose selector matches this instance's labels.
    Run(RunArgs),
    /// Print the version.
    Version,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A YAML file, or a directory read recursively (*.yaml, *.yml); repeatable.
    #[arg(long = "config", value_name = "PATH", required = true)]
    pub config: Vec<PathBuf>,
    /// This instance's labels (KEY=VALUE, repeatable), matched against Gateway selectors.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Print the normalised model (what meshgate understood) as YAML on stdout.
    #[arg(long)]
    pub print: bool,
    /// Treat warnings as errors (for CI pipelines).
    #[arg(long)]
    pub strict: bool,
    /// Do not print notices about skipped non-Istio documents.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A YAML file, or a directory read recursively; repeatable.
    #[arg(long = "config", value_name = "PATH", default_value = "/etc/meshgate")]
    pub config: Vec<PathBuf>,
    /// Admin listener (readiness, config dump, metrics) [default: MeshConfig adminAddress, else 127.0.0.1:15000].
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// This instance's labels (KEY=VALUE, repeatable); default istio=ingressgateway.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
}

/// Parses `KEY=VALUE`.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => {
            config::host::validate_label_key(k)?;
            config::host::validate_label_value(v)?;
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Runs a parsed command; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Version => {
            println!("meshgate {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Command::Validate(args) => validate(&args),
        Command::Run(args) => {
            crate::logger::init(cli.log_level.as_deref());
            let mut checked = config::load_and_check(&args.config, &args.labels);
            let labels = checked.config.instance_labels(&args.labels);
            let telemetry = telemetry_settings(&mut checked, &labels);
            let failed = report(&checked, false, false);
            if failed {
                eprintln!("meshgate: refusing to start on an invalid configuration");
                return 1;
            }
            let admin = args
                .admin
                .clone()
                .or_else(|| {
                    checked
                        .config
                        .mesh_config()
                        .and_then(|m| m.admin_address.clone())
                })
                .unwrap_or_else(|| config::DEFAULT_ADMIN_ADDRESS.to_string());
            let Some(settings) = telemetry else {
                return 1; // reported above
            };
            let telemetry = match crate::telemetry::Telemetry::new(settings) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("meshgate: {e}");
                    return 1;
                }
            };
            let snapshot = crate::snapshot::compile(&checked.config, &labels);
            crate::server::serve(snapshot, &admin, telemetry)
        }
    }
}

fn validate(args: &ValidateArgs) -> i32 {
    let mut checked = config::load_and_check(&args.config, &args.labels);
    let labels = checked.config.instance_labels(&args.labels);
    telemetry_settings(&mut checked, &labels);
    let failed = report(&checked, args.strict, args.quiet);
    if args.print {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(print_model(&checked).as_bytes());
    }
    i32::from(failed)
}

/// Telemetry's settings (the access log format compiled); a format that does not compile
/// joins the config's diagnostics.
fn telemetry_settings(
    checked: &mut Checked,
    labels: &[(String, String)],
) -> Option<crate::telemetry::Settings> {
    match crate::telemetry::Settings::from_config(&checked.config, labels) {
        Ok(s) => Some(s),
        Err(d) => {
            checked.diagnostics.push(*d);
            None
        }
    }
}

/// Prints diagnostics and a summary to stderr; true when the config must be refused.
fn report(checked: &Checked, strict: bool, quiet: bool) -> bool {
    let mut err = std::io::stderr().lock();
    let (mut errors, mut warnings, mut notices) = (0, 0, 0);
    for d in &checked.diagnostics {
        match d.severity {
            Severity::Error => errors += 1,
            Severity::Warning => warnings += 1,
            Severity::Notice => {
                notices += 1;
                if quiet {
                    continue;
                }
            }
        }
        let _ = writeln!(err, "{d}");
    }
    let failed = errors > 0 || (strict && warnings > 0);
    let _ = writeln!(
        err,
        "meshgate: {} resource(s) read, {errors} error(s), {warnings} warning(s), {notices} document(s) skipped: {}",
        checked.config.resources.len() + checked.config.invalid.len(),
        if failed { "INVALID" } else { "valid" }
    );
    failed
}

/// The normalised model as multi-document YAML: every resource with its defaults filled
/// (namespace) in the `networking.istio.io/v1` form.
pub fn print_model(checked: &Checked) -> String {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Doc<'a> {
        api_version: &'static str,
        kind: &'static str,
        metadata: Meta<'a>,
        spec: &'a Spec,
    }
    #[derive(serde::Serialize)]
    struct Meta<'a> {
        name: &'a str,
        namespace: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    }
    let mut out = String::new();
    for r in &checked.config.resources {
        let doc = Doc {
            api_version: if matches!(r.spec, Spec::MeshConfig(_)) {
                "meshgate.io/v1alpha1"
            } else {
                "networking.istio.io/v1"
            },
            kind: r.kind.as_str(),
            metadata: Meta {
                name: &r.name,
                namespace: &r.namespace,
                source: Some(format!("{}:{}", r.source.file.display(), r.source.line)),
            },
            spec: &r.spec,
        };
        out.push_str("---\n");
        match serde_yaml::to_string(&doc) {
            Ok(s) => out.push_str(&s),
            Err(e) => out.push_str(&format!("# cannot print {}: {e}\n", r.display_name())),
        }
    }
    out
}
