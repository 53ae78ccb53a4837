//! meshgate: an edge ingress/egress gateway on Pingora, configured with Istio's
//! networking API.
//!
//! Layout follows the path configuration and requests take:
//! - [`config`]: Istio YAML → typed model → validation → analysis.
//! - [`snapshot`]: the validated config compiled into listeners, route tables, clusters.
//! - [`proxy`]: the HTTP pipeline on Pingora's `ProxyHttp` hooks.
//! - [`admin`]: readiness and config dump; [`server`]: assembles the Pingora server.
//! - [`cli`]: the command line (`validate`, `run`, `version`).

pub mod admin;
pub mod cli;
pub mod config;
pub mod http;
pub mod listener;
pub mod logger;
pub mod rng;
pub mod server;
pub mod snapshot;
pub mod tcp;
pub mod telemetry;
pub mod tls;
pub mod upstream;
