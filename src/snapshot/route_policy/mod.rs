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

/// Everything an `HTTPRoute` does around its destination.
#[derive(Debug, Default)]
pub struct RoutePolicy {
    pub rewrite: Option<Rewrite>,
    pub headers: HeaderPolicy,
    pub fault: Option<Fault>,
    /// `timeout`: the whole request, retries included. Istio's default: none.
    pub timeout: Option<Duration>,
    pub retry: RetryPolicy,
    pub mirrors: Vec<Mirror>,
    pub cors: Option<Cors>,
}
