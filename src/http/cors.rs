//! Envoy's CORS filter for a route's `corsPolicy`: preflights answered at the gateway,
//! allowed origins echoed on responses.

use super::context::RequestContext;
use super::local_reply::{local_reply, reply};
use super::routing::header;
use crate::snapshot::route_policy::RoutePolicy;
use pingora::http::ResponseHeader;
use pingora::prelude::*;

/// CORS (Envoy's filter): answers preflights for allowed origins (and, with
/// `unmatchedPreflights: IGNORE`, for the others); remembers an allowed origin so the
/// response carries it. `true` when the request was answered.
pub(super) async fn preflight(
    session: &mut Session,
    policy: &RoutePolicy,
    ctx: &mut RequestContext,
) -> Result<bool> {
    let Some(cors) = &policy.cors else {
        return Ok(false);
    };
    let req = session.req_header();
    let Some(origin) = header(req, http::header::ORIGIN).map(str::to_string) else {
        return Ok(false);
    };
    let preflight = req.method == http::Method::OPTIONS
        && req
            .headers
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD);
    let allowed = cors.allows(&origin);
    if !preflight {
        if allowed {
            ctx.cors_origin = Some(origin);
        }
        return Ok(false);
    }
    if !allowed {
        if cors.ignore_unmatched_preflights {
            local_reply(session, 200, b"").await?;
            return Ok(true);
        }
        return Ok(false); // forwarded, as Envoy does
    }
    let mut h: Vec<(&str, &str)> = vec![("access-control-allow-origin", &origin)];
    if !cors.allow_methods.is_empty() {
        h.push(("access-control-allow-methods", &cors.allow_methods));
    }
    if !cors.allow_headers.is_empty() {
        h.push(("access-control-allow-headers", &cors.allow_headers));
    }
    if let Some(age) = &cors.max_age {
        h.push(("access-control-max-age", age));
    }
    if cors.allow_credentials {
        h.push(("access-control-allow-credentials", "true"));
    }
    reply(session, 200, &h, b"").await?;
    Ok(true)
}

/// The response side: an allowed origin (remembered by [`preflight`]) is echoed with the
/// policy's expose-headers and credentials.
pub(super) fn on_response(
    resp: &mut ResponseHeader,
    policy: &RoutePolicy,
    ctx: &RequestContext,
) -> Result<()> {
    let (Some(origin), Some(cors)) = (&ctx.cors_origin, &policy.cors) else {
        return Ok(());
    };
    resp.insert_header("access-control-allow-origin", origin.as_str())?;
    if !cors.expose_headers.is_empty() {
        resp.insert_header(
            "access-control-expose-headers",
            cors.expose_headers.as_str(),
        )?;
    }
    if cors.allow_credentials {
        resp.insert_header("access-control-allow-credentials", "true")?;
    }
    Ok(())
}
