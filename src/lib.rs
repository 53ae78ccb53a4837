//! meshgate: an edge ingress/egress gateway on Pingora, configured with Istio's
//! networking API.
//!
//! Layout follows the path configuration and requests take:
//! - [`config`]: Istio YAML → typed model → validation → analysis.
//! - [`cli`]: the command line (`validate`, `run`, `version`).

pub mod cli;
pub mod config;
pub mod snapshot;
