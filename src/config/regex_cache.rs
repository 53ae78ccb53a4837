//! Compiling each distinct regex of a config once. Thousands of VirtualServices often
//! repeat the same few patterns; inside [`scope`], [`compile`] hands out the first
//! compilation of a pattern, shared (an `Arc`, not a `Regex` clone: each clone carries
//! its own pool of match caches, about 1 KiB before its first use). The cache lives as
//! long as the scope (one validation, one snapshot compilation), so patterns of an old
//! config are not kept across reloads.

use regex::Regex;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The patterns met in one scope.
#[derive(Default)]
struct Cache {
    compiled: HashMap<String, Arc<Regex>>,
    /// Patterns known to compile, whose compilation was not kept ([`check`]).
    valid: HashSet<String>,
}

thread_local! {
    static CACHE: RefCell<Option<Cache>> = const { RefCell::new(None) };
}

/// Ends the scope that created it, even when the scope unwinds.
struct Scope;

impl Drop for Scope {
    fn drop(&mut self) {
        CACHE.with(|c| c.borrow_mut().take());
    }
}

/// Runs `f` with a regex cache on this thread (a scope within a scope shares the outer
/// cache).
pub fn scope<T>(f: impl FnOnce() -> T) -> T {
    let open = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_some() {
            return false;
        }
        *c = Some(Cache::default());
        true
    });
    // (Not `then_some`: a `Scope` made and dropped would close the outer scope.)
    let _scope = if open { Some(Scope) } else { None };
    f()
}

/// `Regex::new(pattern)`, through the scope's cache when one is open. Errors are not
/// cached (a valid config has none).
pub fn compile(pattern: &str) -> Result<Arc<Regex>, regex::Error> {
    let cached = CACHE.with(|c| {
        c.borrow()
            .as_ref()
            .map(|m| m.compiled.get(pattern).cloned().ok_or(()))
    });
    match cached {
        Some(Ok(re)) => Ok(re),
        Some(Err(())) => {
            let re = Arc::new(Regex::new(pattern)?);
            CACHE.with(|c| {
                if let Some(m) = c.borrow_mut().as_mut() {
                    m.compiled.insert(pattern.to_string(), re.clone());
                }
            });
            Ok(re)
        }
        None => Regex::new(pattern).map(Arc::new),
    }
}

/// Whether `pattern` compiles (validation), through the scope's cache when one is open;
/// the compiled program itself is not kept.
pub fn check(pattern: &str) -> Result<(), regex::Error> {
    let known = CACHE.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|m| m.valid.contains(pattern) || m.compiled.contains_key(pattern))
    });
    if known {
        return Ok(());
    }
    Regex::new(pattern)?;
    CACHE.with(|c| {
        if let Some(m) = c.borrow_mut().as_mut() {
            m.valid.insert(pattern.to_string());
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached() -> usize {
        CACHE.with(|c| {
            c.borrow()
                .as_ref()
                .map_or(0, |m| m.compiled.len() + m.valid.len())
        })
    }

    #[test]
    fn a_pattern_compiles_once_per_scope() {
        scope(|| {
            let a = compile("/api/v[0-9]+").unwrap();
            let b = compile("/api/v[0-9]+").unwrap();
            assert!(Arc::ptr_eq(&a, &b), "one compilation, shared");
            assert!(b.is_match("/api/v2"));
            assert!(compile("(").is_err());
            scope(|| compile("x+").unwrap());
            assert_eq!(cached(), 2, "the inner scope shares the outer cache");
            assert!(check("x+").is_ok() && check("z*").is_ok() && check("z*").is_ok());
            assert!(check(")").is_err());
            assert_eq!(cached(), 3, "validity is cached too");
        });
        assert_eq!(cached(), 0, "the cache ends with its scope");
        assert!(compile("y").is_ok(), "outside a scope: plain compilation");
        assert_eq!(cached(), 0);
    }
}
