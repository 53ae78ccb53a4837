//! meshgate: an edge ingress/egress gateway on Pingora, configured with Istio's
//! networking API.
//!
//! Layout follows the path configuration and requests take:
//! - [`config`]: Istio YAML → typed model → validation → analysis.
//! - [`snapshot`]: the validated config compiled into listeners, route tables, clusters.
//! - [`upstream`]: cluster state and the connect path; [`telemetry`]: metrics, access log.
//! - [`listener`]: accepting connections; [`http`]: the HTTP pipeline on Pingora's
//!   `ProxyHttp` hooks; [`tcp`]: TCP and passthrough TLS.
//! - [`admin`]: readiness, config dump, stats; [`server`]: assembles the Pingora server,
//!   reloads and drains it.
//! - [`cli`]: the command line.

pub mod admin;
pub mod cli;
pub mod config;
pub mod http;
pub mod listener;
pub mod logger;
pub mod notify;
pub mod rng;
pub mod server;
pub mod snapshot;
pub mod tcp;
pub mod telemetry;
pub mod tls;
pub mod upstream;
