//! TLS session resumption state that outlives a config: a terminating server's session
//! cache (TLS 1.2 session IDs) and ticket keys (TLS 1.2 and 1.3 tickets) are kept by the
//! server's identity, so a reload or a credential refresh does not make every client do a
//! full handshake again (sozu's rule: runtime state survives a config change).
//!
//! Envoy resumes both ways by default (`disable_stateless_session_resumption` and
//! `disable_stateful_session_resumption` false) with BoringSSL's 20,480-entry cache;
//! rustls' defaults are a 256-entry cache and no tickets.

use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Sessions a server's cache holds (BoringSSL's default, which Envoy inherits).
pub const SESSION_CACHE_SIZE: usize = 20_480;

/// One server's resumption state, shared by every config built for it.
#[derive(Clone)]
pub struct Resumption {
    pub cache: Arc<dyn StoresServerSessions>,
    /// `None` if the provider could not make ticket keys (sessions are still cached).
    pub tickets: Option<Arc<dyn ProducesTickets>>,
}

/// Every server's state by its identity. Taken when a config is built, never per handshake.
fn kept() -> &'static Mutex<HashMap<String, Resumption>> {
    static KEPT: OnceLock<Mutex<HashMap<String, Resumption>>> = OnceLock::new();
    KEPT.get_or_init(Mutex::default)
}

/// The state of the server known as `identity`: its credential files and client
/// verification, everything that decides whom a resumed session may admit. Two servers
/// with the same identity would admit the same clients, so sharing is safe; any other
/// server gets its own. State nobody uses any more is dropped here.
pub fn for_server(
    identity: &str,
    new_tickets: impl FnOnce() -> Option<Arc<dyn ProducesTickets>>,
) -> Resumption {
    let mut kept = kept().lock().unwrap_or_else(|p| p.into_inner());
    kept.retain(|_, r| Arc::strong_count(&r.cache) > 1);
    kept.entry(identity.to_string())
        .or_insert_with(|| Resumption {
            cache: ServerSessionMemoryCache::new(SESSION_CACHE_SIZE),
            tickets: new_tickets(),
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_kept_by_identity_and_dropped_when_unused() {
        let a = for_server("test-a", || None);
        let again = for_server("test-a", || None);
        assert!(Arc::ptr_eq(&a.cache, &again.cache));
        let b = for_server("test-b", || None);
        assert!(!Arc::ptr_eq(&a.cache, &b.cache));
        drop((a, again));
        // Unused now: the next look-up forgets it and starts afresh.
        let weak = Arc::downgrade(&for_server("test-a", || None).cache);
        for_server("test-c", || None);
        assert!(weak.upgrade().is_none());
    }
}
