//! The access log (MeshConfig `accessLogFile`, `accessLogEncoding`, `accessLogFormat`):
//! Envoy's command operators compiled once (`format`), one line per exchange written off
//! the request path (`writer`).

pub mod digits;
pub mod format;
mod json;
mod operators;
pub mod time;
pub mod writer;
