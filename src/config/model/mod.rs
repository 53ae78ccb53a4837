//! The configuration model: Istio networking resources as written in YAML, plus
//! meshgate's own `MeshConfig`. Every field of Istio's API reference is here, so
//! nothing a user writes is silently dropped.

pub mod common;
pub mod destination_rule;
pub mod gateway;
pub mod mesh_config;
pub mod service_entry;
pub mod virtual_service;

pub use common::*;
pub use destination_rule::*;
pub use gateway::*;
pub use mesh_config::*;
pub use service_entry::*;
pub use virtual_service::*;

use serde::{Deserialize, Serialize};

/// The kinds meshgate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Kind {
    Gateway,
    VirtualService,
    DestinationRule,
    ServiceEntry,
    WorkloadEntry,
    MeshConfig,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gateway => "Gateway",
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
            Kind::ServiceEntry => "ServiceEntry",
            Kind::WorkloadEntry => "WorkloadEntry",
            Kind::MeshConfig => "MeshConfig",
        }
    }

    /// The kind a document declares, if meshgate reads it under that apiVersion.
    pub fn from_api(api_version: &str, kind: &str) -> Option<Kind> {
        match api_version {
            "networking.istio.io/v1"
            | "networking.istio.io/v1beta1"
            | "networking.istio.io/v1alpha3" => match kind {
                "Gateway" => Some(Kind::Gateway),
                "VirtualService" => Some(Kind::VirtualService),
                "DestinationRule" => Some(Kind::DestinationRule),
                "ServiceEntry" => Some(Kind::ServiceEntry),
                "WorkloadEntry" => Some(Kind::WorkloadEntry),
                _ => None,
            },
            "meshgate.io/v1alpha1" if kind == "MeshConfig" => Some(Kind::MeshConfig),
            _ => None,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The spec of one resource, by kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Spec {
    Gateway(GatewaySpec),
    VirtualService(VirtualServiceSpec),
    DestinationRule(Box<DestinationRuleSpec>),
    ServiceEntry(ServiceEntrySpec),
    WorkloadEntry(WorkloadEntrySpec),
    MeshConfig(Box<MeshConfigSpec>),
}

/// A Kubernetes-style document envelope around a typed spec.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<S> {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `None` when the document has no `spec` at all (Istio: "spec: Required value").
    #[serde(default = "Option::default")]
    pub spec: Option<S>,
    /// Written by Kubernetes, never read by meshgate.
    #[serde(default)]
    pub status: Option<serde_yaml::Value>,
}

impl<S> Envelope<S> {
    /// The same envelope with its spec converted (e.g. into a [`Spec`] variant).
    pub fn map<T>(self, f: impl FnOnce(S) -> T) -> Envelope<T> {
        Envelope {
            api_version: self.api_version,
            kind: self.kind,
            metadata: self.metadata,
            spec: self.spec.map(f),
            status: self.status,
        }
    }
}
