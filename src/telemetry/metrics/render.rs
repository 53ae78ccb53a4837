//! Prometheus text exposition format 0.0.4 for Istio's standard metrics: families in a
//! fixed order, each family's `# HELP`/`# TYPE` once, labels in the order Istio's stats
//! filter adds them (`istio_stats.cc`), `le` last as Envoy prints it.

use super::histogram::HistogramSnapshot;
use super::table::{Key, Protocol, RequestSnapshot, TcpSnapshot};
use super::{DestinationLabels, SourceLabels};
use std::fmt::Write;

/// Appends `v` escaped as a label value: backslash, double quote and newline.
pub(crate) fn escape_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn label(out: &mut String, name: &str, value: &str) {
    if !out.is_empty() {
        out.push(',');
    }
    out.push_str(name);
    out.push_str("=\"");
    escape_into(out, value);
    out.push('"');
}

/// The labels every series of one destination shares, `reporter` to `destination_cluster`,
/// in the order of Istio's source reporter (a gateway reports as the source). Values Istio
/// takes from mTLS or peer metadata the gateway does not have: principals "unknown",
/// canonical revisions "latest".
pub(crate) fn destination_labels(src: &SourceLabels, dst: &DestinationLabels) -> String {
    let mut out = String::new();
    let o = &mut out;
    label(o, "reporter", "source");
    label(o, "source_workload", &src.workload);
    label(o, "source_canonical_service", &src.workload);
    label(o, "source_canonical_revision", "latest");
    label(o, "source_workload_namespace", &src.workload_namespace);
    label(o, "source_principal", "unknown");
    label(o, "source_app", &src.app);
    label(o, "source_version", &src.version);
    label(o, "source_cluster", &src.cluster);
    label(o, "destination_workload", &dst.workload);
    label(o, "destination_workload_namespace", &dst.workload_namespace);
    label(o, "destination_principal", "unknown");
    label(o, "destination_app", &dst.app);
    label(o, "destination_version", &dst.version);
    label(o, "destination_service", &dst.service);
    label(o, "destination_canonical_service", dst.canonical_service());
    label(o, "destination_canonical_revision", "latest");
    label(o, "destination_service_name", &dst.service_name);
    label(o, "destination_service_namespace", &dst.service_namespace);
    label(o, "destination_cluster", &dst.cluster);
    out
}

/// The per-series labels after the destination's, as Istio appends them: HTTP
/// `request_protocol, response_code, grpc_response_status, response_flags,
/// connection_security_policy`; TCP the same without the response code and gRPC status.
fn series_labels(out: &mut String, k: &Key) {
    let _ = write!(out, ",request_protocol=\"{}\"", k.protocol.label());
    if k.protocol != Protocol::Tcp {
        if k.overflow {
            out.push_str(",response_code=\"unknown\"");
        } else {
            let _ = write!(out, ",response_code=\"{}\"", k.response_code);
        }
        match (k.protocol, k.overflow, k.grpc_status) {
            (Protocol::Grpc, true, _) => out.push_str(",grpc_response_status=\"unknown\""),
            (_, _, Some(status)) => {
                let _ = write!(out, ",grpc_response_status=\"{status}\"");
            }
            _ => out.push_str(",grpc_response_status=\"\""),
        }
    }
    if k.overflow {
        out.push_str(",response_flags=\"unknown\"");
    } else {
        let _ = write!(out, ",response_flags=\"{}\"", k.flags);
    }
    out.push_str(",connection_security_policy=\"unknown\"");
}

/// One destination's part of a scrape: its series, each in key order.
pub(crate) struct DestinationSnapshot<'a> {
    /// From [`destination_labels`].
    pub(crate) labels: &'a str,
    pub(crate) requests: Vec<(Key, RequestSnapshot)>,
    pub(crate) tcp: Vec<(Key, TcpSnapshot)>,
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// `(destination labels, key, value)` of each series of a family. A family with no
/// series prints nothing, as Prometheus clients leave out a vector with no children.
fn counter<'s>(
    out: &mut String,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (&'s str, &'s Key, u64)>,
) {
    let mut series = series.peekable();
    if series.peek().is_none() {
        return;
    }
    header(out, name, help, "counter");
    let mut labels = String::new();
    for (prefix, key, v) in series {
        labels.clear();
        labels.push_str(prefix);
        series_labels(&mut labels, key);
        let _ = writeln!(out, "{name}{{{labels}}} {v}");
    }
}

fn histogram<'s>(
    out: &mut String,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (&'s str, &'s Key, &'s HistogramSnapshot)>,
) {
    let mut series = series.peekable();
    if series.peek().is_none() {
        return;
    }
    header(out, name, help, "histogram");
    let mut labels = String::new();
    for (prefix, key, h) in series {
        labels.clear();
        labels.push_str(prefix);
        series_labels(&mut labels, key);
        for (le, n) in h.cumulative() {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count());
    }
}

/// Appends the ten families, in the order of Istio's documentation.
pub(crate) fn render(out: &mut String, dests: &[DestinationSnapshot<'_>]) {
    let requests = || {
        dests
            .iter()
            .flat_map(|d| d.requests.iter().map(move |(k, v)| (d.labels, k, v)))
    };
    let tcp = || {
        dests
            .iter()
            .flat_map(|d| d.tcp.iter().map(move |(k, v)| (d.labels, k, v)))
    };
    counter(
        out,
        "istio_requests_total",
        "Requests proxied.",
        // The duration histogram's count, so the two agree within a scrape.
        requests().map(|(l, k, v)| (l, k, v.duration.count())),
    );
    histogram(
        out,
        "istio_request_duration_milliseconds",
        "Request durations in milliseconds.",
        requests().map(|(l, k, v)| (l, k, &v.duration)),
    );
    histogram(
        out,
        "istio_request_bytes",
        "Request sizes in bytes.",
        requests().map(|(l, k, v)| (l, k, &v.request_bytes)),
    );
    histogram(
        out,
        "istio_response_bytes",
        "Response sizes in bytes.",
        requests().map(|(l, k, v)| (l, k, &v.response_bytes)),
    );
    let grpc = || requests().filter(|(_, k, _)| k.protocol == Protocol::Grpc);
    counter(
        out,
        "istio_request_messages_total",
        "gRPC messages received from clients.",
        grpc().map(|(l, k, v)| (l, k, v.request_messages)),
    );
    counter(
        out,
        "istio_response_messages_total",
        "gRPC messages sent to clients.",
        grpc().map(|(l, k, v)| (l, k, v.response_messages)),
    );
    counter(
        out,
        "istio_tcp_sent_bytes_total",
        "Bytes sent to clients on TCP connections.",
        tcp().map(|(l, k, v)| (l, k, v.sent)),
    );
    counter(
        out,
        "istio_tcp_received_bytes_total",
        "Bytes received from clients on TCP connections.",
        tcp().map(|(l, k, v)| (l, k, v.received)),
    );
    counter(
        out,
        "istio_tcp_connections_opened_total",
        "TCP connections opened.",
        tcp().map(|(l, k, v)| (l, k, v.opened)),
    );
    counter(
        out,
        "istio_tcp_connections_closed_total",
        "TCP connections closed.",
        tcp().map(|(l, k, v)| (l, k, v.closed)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut s = String::new();
        escape_into(&mut s, "a\\b\"c\nd");
        assert_eq!(s, r#"a\\b\"c\nd"#);
    }

    #[test]
    fn nothing_recorded_renders_nothing() {
        let mut out = String::new();
        render(
            &mut out,
            &[DestinationSnapshot {
                labels: "reporter=\"source\"",
                requests: Vec::new(),
                tcp: Vec::new(),
            }],
        );
        assert_eq!(out, "");
    }
}
