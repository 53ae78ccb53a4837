//! What an Istio `HTTPRoute` does besides choosing a destination, compiled once: rewrite,
//! redirect, header operations, fault injection, timeout, retries, mirrors and CORS. Pure
//! logic (paths, locations, decisions); the proxy applies it to requests.

mod cors;
mod fault;
mod headers;
mod mirror;
mod redirect;
mod retry;
mod rewrite;
mod sample;

pub use cors::*;
pub use fault::*;
pub use headers::*;
pub use mirror::*;
pub use redirect::*;
pub use retry::*;
pub use rewrite::*;
pub use sample::*;
use std::time::Duration;

/// Everything an `HTTPRoute` does around its destination. The policies most routes do
/// without are boxed: a snapshot may hold a hundred thousand routes.
#[derive(Debug, Default)]
pub struct RoutePolicy {
    pub rewrite: Option<Box<Rewrite>>,
    /// Shared by the routes without header operations.
    pub headers: std::sync::Arc<HeaderPolicy>,
    pub fault: Option<Box<Fault>>,
    /// `timeout`: the whole request, retries included. Istio's default: none.
    pub timeout: Option<Duration>,
    pub retry: RetryPolicy,
    pub mirrors: Vec<Mirror>,
    pub cors: Option<Box<Cors>>,
}
