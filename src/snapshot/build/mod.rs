//! Compiling a validated config into a [`Snapshot`](super::Snapshot), one stage per file
//! in the order a connection meets them: listeners, virtual hosts, routes (HTTP, and TCP /
//! TLS passthrough), clusters.

mod clusters;
mod egress;
mod l4;
mod listeners;
mod routes;
mod virtual_hosts;

use clusters::*;
use l4::*;
pub use listeners::compile;
use listeners::*;
use routes::*;
use virtual_hosts::*;
