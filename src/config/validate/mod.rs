//! Istio's per-resource validation rules (istio/istio `pkg/config/validation` and the CRD's
//! CEL rules), applied to the typed model. Each rule reports the field path it concerns.
//! Pure functions over one resource; cross-resource checks live in `analyze`.

mod destination_rule;
mod gateway;
mod mesh_config;
mod rules;
mod service_entry;
pub mod virtual_service;

pub use rules::{validate_regex, HTTP_STATUS_RANGE};

use super::model::Spec;
use super::resource::{Findings, Resource};

/// Runs every rule of the resource's kind.
pub fn validate(res: &Resource) -> Findings {
    let mut f = Findings::default();
    if !res.name.is_empty() && !super::host::is_dns1123_subdomain(&res.name) {
        f.error(
            "metadata.name",
            format!(
                "invalid name {:?}: must be a lower-case DNS-1123 subdomain",
                res.name
            ),
        );
    }
    if !super::host::is_dns1123_label(&res.namespace) {
        f.error(
            "metadata.namespace",
            format!(
                "invalid namespace {:?}: must be a DNS-1123 label",
                res.namespace
            ),
        );
    }
    match &res.spec {
        Spec::Gateway(g) => gateway::validate(&res.name, g, &mut f),
        Spec::VirtualService(vs) => virtual_service::validate(&res.namespace, vs, &mut f),
        Spec::DestinationRule(dr) => destination_rule::validate(&res.namespace, dr, &mut f),
        Spec::ServiceEntry(se) => service_entry::validate(&res.namespace, se, &mut f),
        Spec::WorkloadEntry(we) => service_entry::validate_workload("spec", we, None, true, &mut f),
        Spec::MeshConfig(mc) => mesh_config::validate(mc, &mut f),
    }
    f
}
#[cfg(test)]
mod tests;
