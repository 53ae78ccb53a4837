//! `meshgate.io/v1alpha1` `MeshConfig`: the appliance's own settings. Field names follow
//! Istio's MeshConfig where Istio has one; the rest are meshgate's.

use super::common::OrderedMap;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshConfigSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
    /// Istio `accessLogFile`: a path, `/dev/stdout`, or empty for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_encoding: Option<AccessLogEncoding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_format: Option<String>,
    /// Where `credentialName: X` is found: `X/tls.crt`, `X/tls.key`, `X/ca.crt`
    /// (or `X-cacert/ca.crt`). A relative path is relative to the file declaring it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_dir: Option<String>,
    /// This instance's labels, matched against `Gateway.spec.selector`.
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub labels: OrderedMap<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_address: Option<String>,
    /// Address Gateway servers without `bind` listen on (default 0.0.0.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_bind_address: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct OutboundTrafficPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<OutboundMode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundMode {
    AllowAny,
    RegistryOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessLogEncoding {
    Text,
    Json,
}
