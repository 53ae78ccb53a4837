//! `GET /clusters`: each cluster's endpoints as Envoy's admin shows them, in its text
//! form (`cluster::address::stat::value` lines) or `?format=json`: address, weight,
//! requests in flight, successes and failures, outlier ejection (and until when), and
//! the cluster's circuit-breaker thresholds and occupancy.

use crate::upstream::endpoint::now_ms;
use crate::upstream::Generation;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

/// Milliseconds until `until` (`now_ms` scale) from `now`.
fn remaining_ms(until: Option<u64>, now: u64) -> Option<u64> {
    until.map(|u| u.saturating_sub(now))
}

/// Envoy's text form.
pub fn text(g: &Generation) -> String {
    let now = now_ms();
    let mut out = String::new();
    for c in g.clusters() {
        let name = c.name();
        let l = c.breaker.limits();
        let (rq, cx, pending, retries) = c.breaker.in_flight();
        for (k, v) in [
            ("max_connections", l.max_connections),
            ("max_pending_requests", l.max_pending_requests),
            ("max_requests", l.max_requests),
            ("max_retries", l.max_retries),
        ] {
            let _ = writeln!(out, "{name}::default_priority::{k}::{v}");
        }
        for (k, v) in [
            ("rq_active", rq),
            ("cx_active", cx),
            ("rq_pending_active", pending),
            ("rq_retry_active", retries),
        ] {
            let _ = writeln!(out, "{name}::circuit_breakers::{k}::{v}");
        }
        let set = c.endpoints();
        for e in &set.endpoints {
            let a = e.address;
            let until = e.outlier.ejected_until(now);
            let health = if until.is_some() {
                "/failed_outlier_check"
            } else {
                "healthy"
            };
            let _ = writeln!(
                out,
                "{name}::{a}::rq_active::{}",
                e.outstanding.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "{name}::{a}::rq_success::{}",
                e.successes.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "{name}::{a}::rq_error::{}",
                e.failures.load(Ordering::Relaxed)
            );
            let _ = writeln!(out, "{name}::{a}::weight::{}", e.weight);
            let _ = writeln!(out, "{name}::{a}::health_flags::{health}");
            if let Some(ms) = remaining_ms(until, now) {
                let _ = writeln!(out, "{name}::{a}::ejected_for_ms::{ms}");
            }
        }
    }
    out
}

/// `?format=json`: Envoy's `cluster_statuses` shape, with meshgate's additions
/// (`ejected_for_ms`, `circuit_breakers`).
pub fn json(g: &Generation) -> Value {
    let now = now_ms();
    let statuses: Vec<Value> = g
        .clusters()
        .iter()
        .map(|c| {
            let set = c.endpoints();
            let hosts: Vec<Value> = set
                .endpoints
                .iter()
                .map(|e| {
                    let until = e.outlier.ejected_until(now);
                    json!({
                        "address": {"socket_address": {
                            "address": e.address.ip().to_string(),
                            "port_value": e.address.port(),
                        }},
                        "weight": e.weight,
                        "stats": [
                            {"name": "rq_active", "value": e.outstanding.load(Ordering::Relaxed)},
                            {"name": "rq_success", "value": e.successes.load(Ordering::Relaxed)},
                            {"name": "rq_error", "value": e.failures.load(Ordering::Relaxed)},
                        ],
                        "health_status": {
                            "eds_health_status": "HEALTHY",
                            "failed_outlier_check": until.is_some(),
                        },
                        "ejections": e.outlier.ejections(),
                        "ejected_for_ms": remaining_ms(until, now),
                    })
                })
                .collect();
            let (rq, cx, pending, retries) = c.breaker.in_flight();
            json!({
                "name": c.name(),
                "host_statuses": hosts,
                "circuit_breakers": {
                    "thresholds": c.breaker.limits(),
                    "rq_active": rq,
                    "cx_active": cx,
                    "rq_pending_active": pending,
                    "rq_retry_active": retries,
                },
            })
        })
        .collect();
    json!({ "cluster_statuses": statuses })
}
