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
    /// Explain how a request is routed, step by step (beyond Istio).
    #[command(after_help = EXPLAIN_HELP)]
    Explain(ExplainArgs),
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
    /// Binary upgrade: take the listening sockets of the running meshgate (send it SIGQUIT
    /// once this one waits) instead of binding them; no connection is refused.
    #[arg(long)]
    pub upgrade: bool,
    /// The unix socket the listening sockets pass through on an upgrade.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/tmp/meshgate-upgrade.sock"
    )]
    pub upgrade_socket: PathBuf,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The request's Host (a port in it picks the listener); default the SNI.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// The path, with its query string if any [default: /].
    #[arg(long, value_name = "PATH", value_parser = parse_explain_path)]
    pub path: Option<String>,
    /// The method [default: GET].
    #[arg(long, value_name = "METHOD", value_parser = parse_explain_method)]
    pub method: Option<String>,
    /// A request header (NAME=VALUE, repeatable).
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = crate::snapshot::explain::parse_header)]
    pub headers: Vec<(String, String)>,
    /// The listener: PORT, or ADDR:PORT [default: the Host's port, else the only listener].
    #[arg(long, value_name = "PORT", value_parser = parse_explain_port)]
    pub port: Option<String>,
    /// The request comes over TLS with this SNI (server name).
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,
    /// A YAML file or directory, read and compiled as `run` does; repeatable [default: /etc/meshgate].
    #[arg(long = "config", value_name = "PATH", conflicts_with = "admin")]
    pub config: Vec<PathBuf>,
    /// This instance's labels (KEY=VALUE, repeatable), with --config.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label, conflicts_with = "admin")]
    pub labels: Vec<(String, String)>,
    /// Ask the running instance whose admin listener is ADDR (its live config) instead.
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
}

const EXPLAIN_HELP: &str = "\
The decision is printed on stdout, one line per step (`step: what and why`): the request,
the listener, for TLS the filter chain the SNI picks (exact, wildcard, *, or the port's
first terminating server), the virtual host and why, each rule tried in order and the
condition that failed, the chosen route's pipeline (CORS, fault, redirect or direct
response, rewrite, headers, timeout, retries, mirrors), each destination with its weight,
its cluster's policy and endpoints, and a closing `result:` line.

Exit status: 0 when a route or a direct answer (redirect, direct response, httpsRedirect,
CORS preflight, fault abort) is found, even if its destination then gets 503 NC or UH;
3 when none is (404 NR, 400, a refused or closed connection); 1 for an invalid config or
an admin listener that cannot answer; 2 for bad arguments.

Examples:
  meshgate explain --config conf/ --host bookinfo.example.com:8080 --path /reviews/1 --header end-user=jason
  meshgate explain --admin 127.0.0.1:15000 --port 443 --sni www.example.com --path /";

fn parse_explain_path(s: &str) -> Result<String, String> {
    let q = crate::snapshot::explain::Query {
        path: Some(s.to_string()),
        ..Default::default()
    };
    q.check().map(|()| s.to_string())
}

fn parse_explain_method(s: &str) -> Result<String, String> {
    let q = crate::snapshot::explain::Query {
        method: Some(s.to_string()),
        ..Default::default()
    };
    q.check().map(|()| s.to_string())
}

fn parse_explain_port(s: &str) -> Result<String, String> {
    crate::snapshot::explain::parse_listener(s).map(|_| s.to_string())
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
        Command::Explain(args) => explain(&args),
        Command::Run(args) => {
            crate::logger::init(cli.log_level.as_deref());
            let parsed = config::loader::DocCache::default();
            let mut checked = config::load_and_check_cached(&args.config, &args.labels, &parsed);
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
            let start_only = crate::server::start_only_fields(&checked.config);
            // The model is not needed once compiled (a reload reads the files again).
            drop(checked);
            let source = crate::server::Source {
                paths: args.config.clone(),
                cli_labels: args.labels.clone(),
                parsed,
                start_only,
            };
            let upgrade = crate::server::Upgrade {
                socket: args.upgrade_socket.clone(),
                take_over: args.upgrade,
            };
            crate::server::serve(snapshot, &admin, telemetry, source, upgrade)
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

/// `meshgate explain`: the trace on stdout; exit 0 (found), 3 (refused), 1, 2.
fn explain(args: &ExplainArgs) -> i32 {
    let q = crate::snapshot::explain::Query {
        host: args.host.clone(),
        path: args.path.clone(),
        method: args.method.clone(),
        headers: args.headers.clone(),
        port: args.port.clone(),
        sni: args.sni.clone(),
    };
    let (text, found) = match &args.admin {
        Some(addr) => match explain_remote(addr, &q) {
            Ok(r) => r,
            Err((code, e)) => {
                eprintln!("meshgate explain: {e}");
                return code;
            }
        },
        None => {
            let paths = if args.config.is_empty() {
                vec![PathBuf::from("/etc/meshgate")]
            } else {
                args.config.clone()
            };
            let checked = config::load_and_check(&paths, &args.labels);
            if checked.has_errors() {
                report(&checked, false, true);
                eprintln!("meshgate explain: the configuration is invalid");
                return 1;
            }
            let labels = checked.config.instance_labels(&args.labels);
            let snapshot = crate::snapshot::compile(&checked.config, &labels);
            match crate::admin::explain(&snapshot, &q) {
                Ok(e) => (e.text(), e.outcome.found()),
                Err(e) => {
                    eprintln!("meshgate explain: {e}");
                    return 2;
                }
            }
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if found {
        0
    } else {
        3
    }
}

/// `GET /explain?...` on a running instance's admin listener: (the trace, found), or
/// (exit code, why not).
fn explain_remote(
    addr: &str,
    q: &crate::snapshot::explain::Query,
) -> Result<(String, bool), (i32, String)> {
    use std::io::Read;
    use std::time::Duration;
    let fail = |e: std::io::Error| (1, format!("admin listener {addr}: {e}"));
    let mut conn = std::net::TcpStream::connect(addr).map_err(fail)?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(fail)?;
    let request = format!(
        "GET /explain?{} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n",
        q.to_query_string()
    );
    conn.write_all(request.as_bytes()).map_err(fail)?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).map_err(fail)?;
    let answer = String::from_utf8_lossy(&answer);
    let Some((head, body)) = answer.split_once("\r\n\r\n") else {
        return Err((1, format!("admin listener {addr}: no HTTP answer")));
    };
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(0);
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    };
    let body = match header("content-length").and_then(|n| n.parse::<usize>().ok()) {
        Some(n) => body.get(..n).unwrap_or(body),
        None => body,
    };
    match (status, header("x-meshgate-explain")) {
        (200, Some(outcome)) => Ok((body.to_string(), outcome != "refused")),
        (400, _) => Err((
            2,
            body.trim_end().trim_start_matches("explain: ").to_string(),
        )),
        (404, _) | (200, None) => Err((
            1,
            format!("admin listener {addr} has no /explain (an older meshgate?)"),
        )),
        (s, _) => Err((
            1,
            format!("admin listener {addr} answered {s}: {}", body.trim_end()),
        )),
    }
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
