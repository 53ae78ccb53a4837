//! Names resolved when a connection or request asks for them (egress to a `DYNAMIC_DNS`
//! ServiceEntry, the PassthroughCluster, CONNECT): MeshConfig `hostAliases` first (the
//! operator's word, taken as is), then the system resolver on Tokio's blocking pool, at
//! most `CONCURRENT_LOOKUPS` at once. Addresses a client must not reach through the
//! gateway by naming them are dropped from a resolved answer: loopback, unspecified,
//! link-local (cloud metadata services live there), multicast. Answers are kept
//! `DYNAMIC_TTL`, failures `NEGATIVE_TTL`, at most `DYNAMIC_NAMES` of them. The lock is
//! taken on this egress path only, never on a routed request's.

use crate::snapshot::cluster::{resolve_with, HostAliases};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a resolved name is remembered.
const DYNAMIC_TTL: Duration = Duration::from_secs(30);

/// How long a name that did not resolve is remembered as such.
const NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// The most names remembered (bounded memory whatever names clients ask for).
const DYNAMIC_NAMES: usize = 4096;

/// Lookups on the blocking pool at once; more wait their turn.
const CONCURRENT_LOOKUPS: usize = 32;

/// An answer: the usable addresses, or why there are none (`PermissionDenied`: only
/// addresses egress may not reach; `NotFound`: none at all).
type Answer = Result<Vec<SocketAddr>, (std::io::ErrorKind, String)>;

pub struct Resolver {
    aliases: ArcSwap<HostAliases>,
    cache: Mutex<HashMap<String, (Answer, Instant)>>,
    lookups: tokio::sync::Semaphore,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver {
            aliases: ArcSwap::default(),
            cache: Mutex::default(),
            lookups: tokio::sync::Semaphore::new(CONCURRENT_LOOKUPS),
        }
    }
}

/// Whether egress may reach `ip` by a name a client chose.
pub fn reachable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast())
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => reachable(IpAddr::V4(v4)),
            None => {
                let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
                !(v6.is_loopback() || v6.is_unspecified() || link_local || v6.is_multicast())
            }
        },
    }
}

fn fresh(answer: &Answer, at: Instant) -> bool {
    at.elapsed()
        < if answer.is_ok() {
            DYNAMIC_TTL
        } else {
            NEGATIVE_TTL
        }
}

impl Resolver {
    /// MeshConfig `hostAliases` of the serving generation.
    pub fn set_aliases(&self, aliases: Arc<HostAliases>) {
        self.aliases.store(aliases);
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn cached(&self, key: &str) -> Option<Answer> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let (answer, at) = cache.get(key)?;
        fresh(answer, *at).then(|| answer.clone())
    }

    fn remember(&self, key: String, answer: Answer) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= DYNAMIC_NAMES {
            cache.retain(|_, (a, at)| fresh(a, *at));
            if cache.len() >= DYNAMIC_NAMES {
                if let Some(k) = cache.keys().next().cloned() {
                    cache.remove(&k);
                }
            }
        }
        cache.insert(key, (answer, Instant::now()));
    }

    /// The addresses of `name:port` egress may connect to (never empty); an error when
    /// the name does not resolve, or only to addresses a client must not reach.
    pub async fn resolve(&self, name: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        let lower = name.to_ascii_lowercase();
        if let Some(ips) = self.aliases.load().get(&lower) {
            return Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect());
        }
        let key = format!("{lower}:{port}");
        let answer = match self.cached(&key) {
            Some(a) => a,
            None => {
                let _turn = self
                    .lookups
                    .acquire()
                    .await
                    .map_err(std::io::Error::other)?;
                // A lookup of the same name may have finished while this one waited.
                match self.cached(&key) {
                    Some(a) => a,
                    None => {
                        let owned = lower.clone();
                        let looked = tokio::task::spawn_blocking(move || {
                            resolve_with(&HostAliases::new(), &owned, port)
                        })
                        .await
                        .map_err(std::io::Error::other)?;
                        let answer = match looked {
                            Ok(addrs) => {
                                let usable: Vec<SocketAddr> =
                                    addrs.into_iter().filter(|a| reachable(a.ip())).collect();
                                if usable.is_empty() {
                                    Err((
                                        std::io::ErrorKind::PermissionDenied,
                                        format!("{lower} resolves only to loopback, link-local or unspecified addresses"),
                                    ))
                                } else {
                                    Ok(usable)
                                }
                            }
                            Err(e) => Err((std::io::ErrorKind::NotFound, e.to_string())),
                        };
                        self.remember(key, answer.clone());
                        answer
                    }
                }
            }
        };
        answer.map_err(|(kind, e)| std::io::Error::new(kind, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_link_local_addresses_are_not_reachable_by_name() {
        for bad in [
            "127.0.0.1",
            "0.0.0.0",
            "169.254.169.254",
            "::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!reachable(bad.parse().unwrap()), "{bad}");
        }
        for ok in ["10.0.0.1", "93.184.216.34", "2001:db8::1"] {
            assert!(reachable(ok.parse().unwrap()), "{ok}");
        }
    }

    #[tokio::test]
    async fn names_of_local_addresses_are_refused_unless_aliased() {
        let r = Resolver::default();
        assert!(
            r.resolve("127.0.0.1", 80).await.is_err(),
            "an IP literal too"
        );
        assert!(r.resolve("localhost", 80).await.is_err());
        assert!(r.resolve("no-such-host.invalid", 80).await.is_err());
        let mut aliases = HostAliases::new();
        aliases.insert("api.test".into(), vec!["127.0.0.1".parse().unwrap()]);
        r.set_aliases(Arc::new(aliases));
        assert_eq!(
            r.resolve("API.test", 8443).await.unwrap(),
            vec!["127.0.0.1:8443".parse().unwrap()]
        );
    }
}
