//! `meshgate explain` (beyond Istio): how a snapshot routes one request, step by step,
//! as plain text an operator reads: the listener and filter chain, the Gateway server,
//! the virtual host and why, each rule tried and why it did or did not match, the chosen
//! route's pipeline, the destinations, their clusters' policy and endpoints.
//!
//! The trace re-walks the compiled tables with the same look-ups the data path uses
//! (`RouteTable::select`, `RequestMatch::first_unmatched`, `SniRouter::route`,
//! `L4Route::matches`), so it says what serving does, not a second reading of the YAML.
//! Pure logic: the caller brings path normalization (the pipeline's, a higher layer).

mod l4;
mod names;
mod query;
mod request;
mod route;
mod sni;

pub use query::{parse_header, parse_listener, ListenerRef, Query};

use super::{Listener, Protocol, Snapshot};
use std::net::SocketAddr;

/// How the request ends, for the exit code and the admin answer's
/// `x-meshgate-explain` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A route (or a TCP / passthrough route) takes it to its destinations (even when
    /// they then answer 503 NC or UH: the route is found).
    Routed,
    /// The gateway answers it itself: redirect, direct response, httpsRedirect, a CORS
    /// preflight, a fault abort of every request.
    Answered,
    /// No route: 404 NR, 400, a refused or closed connection.
    Refused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Routed => "routed",
            Outcome::Answered => "answered",
            Outcome::Refused => "refused",
        }
    }

    /// A route or a direct answer was found.
    pub fn found(self) -> bool {
        self != Outcome::Refused
    }
}

/// The trace: one line per step, `step: what and why`.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub lines: Vec<String>,
    pub outcome: Outcome,
}

impl Explanation {
    /// The lines, each ending with a newline.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            out.push_str(l);
            out.push('\n');
        }
        out
    }
}

/// The lines being written.
#[derive(Debug, Default)]
pub(super) struct Trace {
    lines: Vec<String>,
    /// `Gateway ns/name` and `VirtualService ns/name` the trace met: the snapshot's notes
    /// about them are added at the end.
    met: Vec<String>,
}

impl Trace {
    fn step(&mut self, step: &str, text: impl AsRef<str>) {
        self.lines.push(format!("{step}: {}", text.as_ref()));
    }

    /// Remembers a resource (`Gateway ns/name ...` or `VirtualService ns/name ...`) whose
    /// snapshot notes matter to this request.
    fn met(&mut self, label: &str) {
        let mut words = label.split(' ');
        if let (Some(kind), Some(name)) = (words.next(), words.next()) {
            let key = format!("{kind} {name}");
            if !self.met.contains(&key) {
                self.met.push(key);
            }
        }
    }
}

/// What the pipeline does to a request's path before matching (MeshConfig
/// `pathNormalization`): the normalized path, or why the request is refused (400).
pub type Normalize<'a> = &'a dyn Fn(&str) -> Result<String, String>;

/// Explains how `snap` routes the request `q`. `Err` when the request cannot be placed
/// on a listener without more arguments (several listeners and no port): a bad argument.
pub fn explain(snap: &Snapshot, q: &Query, normalize: Normalize) -> Result<Explanation, String> {
    q.check()?;
    let req = request::Request::new(q);
    let mut t = Trace::default();
    t.step("request", req.describe());
    let outcome = match pick_listener(snap, q, &req)? {
        Ok((listener, local, why)) => {
            on_listener(&mut t, snap, listener, local, why, &req, normalize)
        }
        Err(none) => {
            t.step("listener", none);
            t.step("result", "connection refused: no listener");
            Outcome::Refused
        }
    };
    for note in &snap.notes {
        if t.met.iter().any(|m| note.starts_with(&format!("{m} "))) {
            t.step("note", note);
        }
    }
    Ok(Explanation {
        lines: t.lines,
        outcome,
    })
}

/// The listener (and the local address the connection arrives at), and why it is the
/// one; the inner `Err` says there is none on the port asked for.
#[allow(clippy::type_complexity)]
fn pick_listener<'s>(
    snap: &'s Snapshot,
    q: &Query,
    req: &request::Request,
) -> Result<Result<(&'s Listener, SocketAddr, String), String>, String> {
    let all = || {
        let list: Vec<String> = snap
            .listeners
            .iter()
            .map(|l| format!("{} {}", l.address, protocol_name(l)))
            .collect();
        if list.is_empty() {
            "this config has no listener for this instance".to_string()
        } else {
            format!("listeners: {}", list.join(", "))
        }
    };
    let wanted = match &q.port {
        Some(p) => Some((parse_listener(p)?, "--port")),
        None => req
            .host_port()
            .map(|p| (ListenerRef::Port(p), "the Host's port")),
    };
    let Some((wanted, from)) = wanted else {
        return match snap.listeners.as_slice() {
            [l] => Ok(Ok((l, l.address, "the only listener".into()))),
            [] => Ok(Err(all())),
            _ => Err(format!(
                "several listeners; say which with --port (or a port in --host): {}",
                all()
            )),
        };
    };
    Ok(match wanted {
        ListenerRef::Address(a) => match snap.listener_for(a) {
            Some(l) => Ok((l, a, format!("{from} {a}"))),
            None => Err(format!("none at {a} ({})", all())),
        },
        ListenerRef::Port(p) => {
            let on_port: Vec<&Listener> = snap
                .listeners
                .iter()
                .filter(|l| l.address.port() == p)
                .collect();
            match on_port.as_slice() {
                [] => Err(format!("none on port {p} ({})", all())),
                [l] => Ok((*l, l.address, format!("{from} {p}"))),
                [l, ..] => Ok((
                    *l,
                    l.address,
                    format!(
                        "{from} {p}; {} listeners bind it, the first is explained (give ADDR:PORT for another)",
                        on_port.len()
                    ),
                )),
            }
        }
    })
}

fn protocol_name(l: &Listener) -> &'static str {
    match l.protocol {
        Protocol::Http(_) => "HTTP",
        Protocol::Tls(_) => "TLS",
        Protocol::Tcp(_) => "TCP",
    }
}

fn on_listener(
    t: &mut Trace,
    snap: &Snapshot,
    l: &Listener,
    local: SocketAddr,
    why: String,
    req: &request::Request,
    normalize: Normalize,
) -> Outcome {
    for s in &l.servers {
        t.met(s);
    }
    t.step(
        "listener",
        format!("{} {} ({why})", l.address, protocol_name(l)),
    );
    match l.servers.as_slice() {
        [] => {}
        [one] => t.step("gateway server", one),
        many => t.step("gateway servers", many.join(", ")),
    }
    match &l.protocol {
        Protocol::Http(table) => {
            if let Some(sni) = &req.sni {
                t.step(
                    "tls",
                    format!("SNI {sni:?} ignored: this port speaks plain-text HTTP"),
                );
            }
            request::explain_http(t, snap, table, req, local, false, normalize)
        }
        Protocol::Tcp(routes) => l4::explain_tcp(t, snap, routes, local, "tcp route"),
        Protocol::Tls(router) => sni::explain_tls(t, snap, router, req, local, normalize),
    }
}

#[cfg(test)]
mod tests;
