//! The egress role's registry: which outbound names (SNI, Host, CONNECT target) the
//! ServiceEntries register on which port, and MeshConfig `outboundTrafficPolicy` for the
//! rest. A name is looked up as Envoy matches hosts (exact, then the longest wildcard); a
//! registered host without the port asked for is unregistered for that port. Pure logic;
//! the listener, pipeline and CONNECT proxy act on the decision.

use super::cluster::ClusterId;
use super::host_index::HostIndex;
use serde::Serialize;
use std::sync::Arc;

/// MeshConfig `outboundTrafficPolicy.mode` (Istio's default ALLOW_ANY).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundMode {
    #[default]
    AllowAny,
    RegistryOnly,
}

/// A ServiceEntry host on one port.
#[derive(Debug, Serialize)]
pub struct Registered {
    /// The ServiceEntry host as written (`edition.cnn.com`, `*.wikipedia.org`).
    pub host: String,
    /// `namespace/name` of the ServiceEntry: the audit line and metric label.
    #[serde(serialize_with = "ser_str")]
    pub service_entry: Arc<str>,
    pub port: u32,
    /// The cluster (`outbound|PORT||HOST`); `None` when it could not be built.
    pub cluster: Option<ClusterId>,
    /// A `DYNAMIC_DNS` entry (or NONE with a wildcard host and no endpoints): the name
    /// asked for is itself resolved at connect time (Envoy's dynamic forward proxy).
    pub dynamic: bool,
}

fn ser_str<S: serde::Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

/// What to do with an outbound name on a port.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    /// A ServiceEntry registers it.
    Allowed(&'a Registered),
    /// Unregistered, ALLOW_ANY: to the name itself (Envoy's PassthroughCluster).
    Passthrough,
    /// Unregistered, REGISTRY_ONLY (Envoy's BlackHoleCluster).
    Refused,
}

impl PartialEq for Registered {
    fn eq(&self, o: &Registered) -> bool {
        self.host == o.host && self.port == o.port && self.service_entry == o.service_entry
    }
}

impl Eq for Registered {}

#[derive(Debug, Default)]
pub struct EgressRegistry {
    pub mode: OutboundMode,
    pub entries: Vec<Registered>,
    index: HostIndex,
}

impl EgressRegistry {
    pub fn new(mode: OutboundMode, entries: Vec<Registered>) -> EgressRegistry {
        let mut index = HostIndex::default();
        for (i, e) in entries.iter().enumerate() {
            index.insert(&e.host, i);
        }
        EgressRegistry {
            mode,
            entries,
            index,
        }
    }

    /// The entry registering `name` (lower-case, no port) on `port`: the most specific
    /// host pattern that has the port.
    pub fn find(&self, name: &str, port: u32) -> Option<&Registered> {
        self.index
            .candidates(name)
            .map(|i| &self.entries[i])
            .find(|e| e.port == port)
    }

    /// The decision for `name` on `port` under the outbound mode.
    pub fn decide(&self, name: &str, port: u32) -> Decision<'_> {
        match self.find(name, port) {
            Some(e) => Decision::Allowed(e),
            None if self.mode == OutboundMode::AllowAny => Decision::Passthrough,
            None => Decision::Refused,
        }
    }
}

/// The metric label of an egress decision: the ServiceEntry, or one value for every
/// unregistered name (never the raw name: label values stay bounded).
pub fn label<'a>(d: &Decision<'a>) -> &'a str {
    match d {
        Decision::Allowed(e) => &e.service_entry,
        Decision::Passthrough | Decision::Refused => "unregistered",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(host: &str, port: u32) -> Registered {
        Registered {
            host: host.into(),
            service_entry: format!("default/{host}").into(),
            port,
            cluster: None,
            dynamic: host.starts_with('*'),
        }
    }

    #[test]
    fn names_ports_and_the_outbound_mode() {
        let r = EgressRegistry::new(
            OutboundMode::RegistryOnly,
            vec![
                entry("edition.cnn.com", 443),
                entry("*.wikipedia.org", 443),
                entry("en.wikipedia.org", 80),
            ],
        );
        assert_eq!(
            r.decide("edition.cnn.com", 443),
            Decision::Allowed(&r.entries[0])
        );
        // The exact host lacks 443: the wildcard registers it there.
        assert_eq!(
            r.decide("en.wikipedia.org", 443),
            Decision::Allowed(&r.entries[1])
        );
        assert_eq!(
            r.decide("en.wikipedia.org", 80),
            Decision::Allowed(&r.entries[2])
        );
        // A registered host on a port its entry lacks is unregistered there.
        assert_eq!(r.decide("edition.cnn.com", 80), Decision::Refused);
        assert_eq!(r.decide("wikipedia.org", 443), Decision::Refused);
        assert_eq!(r.decide("example.com", 443), Decision::Refused);
        let any = EgressRegistry::new(OutboundMode::AllowAny, vec![entry("a.example", 443)]);
        assert_eq!(any.decide("b.example", 443), Decision::Passthrough);
        assert_eq!(label(&any.decide("b.example", 443)), "unregistered");
        assert_eq!(label(&any.decide("a.example", 443)), "default/a.example");
    }
}
