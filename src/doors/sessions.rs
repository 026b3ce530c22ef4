//! Session limits shared by the doors: connections open at once from one
//! address, and sessions logged in at once to one account (SPEC §11).
//!
//! A door asks [`SessionCounts::enter`] when a connection arrives (by
//! address) and when it logs in (by account); the guard it gets back
//! uncounts the session when it is dropped, however the session ends.
//! Each door keeps its own counts, with its own configured limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections per address and logged-in sessions per account.
#[derive(Debug, Default)]
pub struct SessionCounts {
    counts: Mutex<HashMap<SessionKey, usize>>,
}

/// What a session is counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionKey {
    Address(IpAddr),
    Account(i64),
}

/// One counted session; uncounted when dropped (the session ended).
#[derive(Debug)]
pub struct SessionGuard {
    counts: Arc<SessionCounts>,
    key: SessionKey,
}

impl SessionCounts {
    /// Counts one more session under `key`, unless `limit` are already
    /// there.
    pub fn enter(self: &Arc<Self>, key: SessionKey, limit: usize) -> Option<SessionGuard> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(key).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(SessionGuard {
            counts: self.clone(),
            key,
        })
    }

    /// Sessions counted at the moment, all keys of one kind together.
    pub fn total_accounts(&self) -> usize {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts
            .iter()
            .filter(|(k, _)| matches!(k, SessionKey::Account(_)))
            .map(|(_, n)| n)
            .sum()
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut counts = self.counts.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_holds_until_a_guard_is_dropped() {
        let counts = Arc::new(SessionCounts::default());
        let key = SessionKey::Account(7);
        let first = counts.enter(key, 2).expect("first");
        let _second = counts.enter(key, 2).expect("second");
        assert!(counts.enter(key, 2).is_none());
        assert_eq!(counts.total_accounts(), 2);
        drop(first);
        assert!(counts.enter(key, 2).is_some());
    }
}
