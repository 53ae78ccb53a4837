//! The egress role's connections (an SNI on a PASSTHROUGH server that no `tls` route
//! takes, a CONNECT tunnel): the registry decides, by name and port. A registered name goes
//! to its ServiceEntry's cluster (a wildcard DNS entry: to the name itself, resolved now);
//! an unregistered one to the name itself under ALLOW_ANY (Envoy's PassthroughCluster), or
//! nowhere under REGISTRY_ONLY. Every decision is an access-log line (the audit trail:
//! `%RESPONSE_CODE_DETAILS%` says allowed, passthrough or refused, `%UPSTREAM_CLUSTER%`
//! the ServiceEntry's cluster) and a count in `meshgate_egress_connections_total`.

use super::ListenerApp;
use crate::snapshot::egress::{label, Decision};
use crate::tcp::{Downstream, Via};
use crate::telemetry::ResponseFlags;
use crate::upstream::Generation;
use pingora::apps::HttpServerApp;
use tokio::io::{AsyncRead, AsyncWrite};

/// `%RESPONSE_CODE_DETAILS%` of each egress decision.
pub const ALLOWED: &str = "egress_allowed";
pub const PASSTHROUGH: &str = "egress_passthrough";
pub const REFUSED: &str = "egress_refused_unregistered";
pub const UNRESOLVED: &str = "egress_dns_resolution_failure";
pub const LOOP: &str = "egress_refused_loop";
pub const LOCAL: &str = "egress_refused_local_address";

impl<H: HttpServerApp + Send + Sync + 'static> ListenerApp<H> {
    /// The address `name:port` resolves to now (a dynamic cluster's destination); `None`
    /// after logging the refusal (UH) when it does not resolve.
    pub(super) async fn resolve_for(
        &self,
        name: &str,
        port: u16,
        conn: &Downstream<'_>,
    ) -> Option<Via> {
        match self.registry.resolver.resolve(name, port).await {
            // The address the client reached the gateway on: a loop, refused.
            Ok(addrs) if conn.local == Some(addrs[0]) => {
                log::info!("egress: {name}:{port} is this listener: refused (a loop)");
                crate::tcp::refused(conn, ResponseFlags::NR, Some(LOOP), &self.telemetry);
                None
            }
            Ok(addrs) => Some(Via::Address(addrs[0])),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                log::info!("egress: {name}:{port} refused: {e}");
                crate::tcp::refused(conn, ResponseFlags::NR, Some(LOCAL), &self.telemetry);
                None
            }
            Err(e) => {
                log::info!("egress: cannot connect to {name}:{port}: {e}");
                crate::tcp::refused(conn, ResponseFlags::UH, Some(UNRESOLVED), &self.telemetry);
                None
            }
        }
    }

    /// Whether `name` on `port` may leave (CONNECT asks before it answers the client).
    pub(super) fn egress_allowed(&self, active: &Generation, name: &str, port: u16) -> bool {
        !matches!(
            active.snapshot.egress.decide(name, u32::from(port)),
            Decision::Refused
        )
    }

    /// Carries `stream` to `name:port` as the registry decides.
    pub(super) async fn egress<S>(
        &self,
        stream: S,
        name: &str,
        port: u16,
        active: &Generation,
        conn: &Downstream<'_>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let snap = &active.snapshot;
        let name = name.to_ascii_lowercase();
        let decision = snap.egress.decide(&name, u32::from(port));
        let own = &self.telemetry.own;
        let (id, details, dynamic_port) = match &decision {
            Decision::Allowed(e) => {
                own.egress("allowed", label(&decision));
                let id = e.cluster;
                let spec = id.and_then(|id| snap.cluster(id));
                (
                    id,
                    ALLOWED,
                    e.dynamic.then(|| spec.map_or(port, |s| s.target_port)),
                )
            }
            Decision::Passthrough => {
                own.egress("passthrough", label(&decision));
                (snap.passthrough, PASSTHROUGH, Some(port))
            }
            Decision::Refused => {
                own.egress("refused", label(&decision));
                log::info!("egress refused: {name}:{port} is not registered (REGISTRY_ONLY)");
                crate::tcp::refused(conn, ResponseFlags::NR, Some(REFUSED), &self.telemetry);
                return;
            }
        };
        let Some(cluster) = id.and_then(|id| active.cluster(id)) else {
            crate::tcp::no_cluster(conn, &self.telemetry);
            return;
        };
        let via = match dynamic_port {
            None => Via::Balanced,
            Some(p) => match self.resolve_for(&name, p, conn).await {
                Some(via) => via,
                None => return,
            },
        };
        let dest = self.telemetry.destination(snap, id);
        crate::tcp::forward_via(
            stream,
            conn,
            cluster,
            via,
            Some(details),
            &dest,
            &self.telemetry,
        )
        .await
    }
}
