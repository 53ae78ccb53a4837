//! Types shared by several Istio networking kinds.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A YAML mapping whose order is kept as written (header `add` operations and
/// label selectors read better in the user's order, and `--print` shows it back).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderedMap<V>(pub Vec<(String, V)>);

impl<V> OrderedMap<V> {
    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl<V: Serialize> Serialize for OrderedMap<V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(OrderedMap(Vec::new()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out: Vec<(String, V)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.iter().any(|(k, _)| *k == key) {
                        return Err(serde::de::Error::custom(format!("duplicate key `{key}`")));
                    }
                    let value = map.next_value::<V>()?;
                    out.push((key, value));
                }
                Ok(OrderedMap(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// Istio `StringMatch`: one of `exact`, `prefix`, `regex` (RE2). An empty match
/// (`{}`) is allowed where Istio allows it: a header that must merely be present.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StringMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

impl StringMatch {
    /// How many of the mutually exclusive fields are set.
    pub fn set_count(&self) -> usize {
        [
            self.exact.is_some(),
            self.prefix.is_some(),
            self.regex.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count()
    }
}

/// Istio `Percent`: a double in 0..=100.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize)]
pub struct Percent {
    #[serde(default)]
    pub value: f64,
}

/// Istio `PortSelector`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct PortSelector {
    #[serde(default)]
    pub number: u32,
}

/// Istio `Destination`: a service host, optional subset and port.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Destination {
    #[serde(default)]
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

/// Istio `WorkloadSelector` (ServiceEntry, WorkloadEntry selection).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct WorkloadSelector {
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub labels: OrderedMap<String>,
}

/// Kubernetes `ObjectMeta`, reduced to what meshgate reads; the rest of the
/// fields Kubernetes writes there are accepted and kept out of the way.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub labels: OrderedMap<String>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub annotations: OrderedMap<String>,
    #[serde(default, skip_serializing)]
    pub generate_name: Option<String>,
    #[serde(default, skip_serializing)]
    pub uid: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing)]
    pub resource_version: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing)]
    pub generation: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing)]
    pub creation_timestamp: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing)]
    pub deletion_timestamp: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing)]
    pub owner_references: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing)]
    pub finalizers: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing)]
    pub managed_fields: Option<serde_yaml::Value>,
}

/// Labels given as a plain map, for selectors.
pub type Labels = BTreeMap<String, String>;
