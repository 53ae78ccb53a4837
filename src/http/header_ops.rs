//! Istio header operations applied to Pingora's request and response headers.

use crate::snapshot::route_policy::HeaderOps;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;

/// Either side of an exchange: both header types offer the same operations.
pub trait HeaderMap {
    fn set(&mut self, k: &str, v: &str) -> Result<()>;
    fn add(&mut self, k: &str, v: &str) -> Result<()>;
    fn remove(&mut self, k: &str);
}

/// Both header types have the same inherent methods; one implementation serves both.
macro_rules! header_map {
    ($t:ty) => {
        impl HeaderMap for $t {
            fn set(&mut self, k: &str, v: &str) -> Result<()> {
                self.insert_header(k.to_string(), v)
            }
            fn add(&mut self, k: &str, v: &str) -> Result<()> {
                self.append_header(k.to_string(), v).map(drop)
            }
            fn remove(&mut self, k: &str) {
                self.remove_header(k);
            }
        }
    };
}

header_map!(RequestHeader);
header_map!(ResponseHeader);

/// Applies `set`, then `add`, then `remove`, as Envoy orders them.
pub fn apply(ops: &HeaderOps, h: &mut impl HeaderMap) -> Result<()> {
    for (k, v) in &ops.set {
        h.set(k, v)?;
    }
    for (k, v) in &ops.add {
        h.add(k, v)?;
    }
    for k in &ops.remove {
        h.remove(k);
    }
    Ok(())
}
