//! `mirror` / `mirrors`: which cluster gets a copy, for what share of requests.

use super::*;
use crate::snapshot::cluster::ClusterId;

/// Istio `HTTPMirrorPolicy`.
#[derive(Debug)]
pub struct Mirror {
    pub cluster_name: String,
    pub cluster: Option<ClusterId>,
    /// Absent `percentage` means every request.
    pub sampler: Sampler,
}
