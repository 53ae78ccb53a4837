//! Fault injection (Istio `fault`, Envoy's fault filter): the delay, then the abort,
//! each on its own share of requests; an aborted request never reaches an upstream.

use super::context::{RequestContext, ResponseFlags};
use super::local_reply::{grpc_reply, local_reply, BODY_FAULT_ABORT};
use crate::snapshot::route_policy::{Abort, RoutePolicy};
use pingora::prelude::*;

/// Fault injection: the delay, then the abort, each sampled on its own. `true` when
/// the request was aborted (it never reaches an upstream).
pub(super) async fn inject(
    session: &mut Session,
    policy: &RoutePolicy,
    ctx: &mut RequestContext,
) -> Result<bool> {
    let Some(fault) = &policy.fault else {
        return Ok(false);
    };
    if let Some((d, sampler)) = &fault.delay {
        if sampler.sample() {
            ctx.flags.insert(ResponseFlags::DI);
            tokio::time::sleep(*d).await;
        }
    }
    if let Some((abort, sampler)) = &fault.abort {
        if sampler.sample() {
            ctx.flags.insert(ResponseFlags::FI);
            match *abort {
                Abort::Http(status) => {
                    local_reply(session, status, BODY_FAULT_ABORT.as_bytes()).await?
                }
                Abort::Grpc(code) => grpc_reply(session, code, BODY_FAULT_ABORT).await?,
            }
            return Ok(true);
        }
    }
    Ok(false)
}
