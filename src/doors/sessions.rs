//! Session limits shared by the doors: connections open at once from one
//! address, and sessions logged in at once to one account (SPEC §11).
//!
//! A door takes its connections from [`next_arrival`], which refuses banned
//! addresses and addresses over their limit, and asks
//! [`SessionCounts::enter`] again when a session logs in (by account); the
//! guard it gets back uncounts the session when it is dropped, however the
//! session ends. Each door keeps its own counts, with its own limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;

/// A connection that came to a door.
pub enum Arrival {
    /// Counted against its address; the session may start.
    Admitted {
        stream: TcpStream,
        peer: IpAddr,
        guard: SessionGuard,
    },
    /// Refused (and logged): the door may say why before closing it.
    Refused { stream: TcpStream, why: Refusal },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failed logins from the address ([`crate::auth`]).
    Banned,
    /// Too many connections open from the address.
    Busy,
}

/// The next connection to a door, checked; `None` once `shutdown` is
/// cancelled.
pub async fn next_arrival(
    listener: &TcpListener,
    shutdown: &CancellationToken,
    auth: &Authenticator,
    counts: &Arc<SessionCounts>,
    per_address: usize,
) -> Option<Arrival> {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = shutdown.cancelled() => return None,
        };
        let peer = canonical(peer.ip());
        if auth.is_banned(peer) {
            tracing::info!(%peer, "connection refused: address banned");
            return Some(Arrival::Refused {
                stream,
                why: Refusal::Banned,
            });
        }
        let _ = stream.set_nodelay(true);
        return Some(match counts.enter(SessionKey::Address(peer), per_address) {
            Some(guard) => Arrival::Admitted {
                stream,
                peer,
                guard,
            },
            None => {
                tracing::warn!(%peer, "connection refused: too many connections from this address");
                Arrival::Refused {
                    stream,
                    why: Refusal::Busy,
                }
            }
        });
    }
}

/// An IPv4 client seen through an IPv6 socket is still that IPv4 address,
/// for bans, limits and the FTP data-connection check.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Open connections per address and logged-in sessions per account, at
/// one door.
#[derive(Debug)]
pub struct SessionCounts {
    door: &'static str,
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
    pub fn new(door: &'static str) -> Arc<SessionCounts> {
        Arc::new(SessionCounts {
            door,
            counts: Mutex::default(),
        })
    }

    /// Counts one more session under `key`, unless `limit` are already
    /// there.
    pub fn enter(self: &Arc<Self>, key: SessionKey, limit: usize) -> Option<SessionGuard> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(key).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        if matches!(key, SessionKey::Account(_)) {
            crate::metrics::session(self.door, 1);
        }
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
        if matches!(self.key, SessionKey::Account(_)) {
            crate::metrics::session(self.counts.door, -1);
        }
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
        let counts = SessionCounts::new("test");
        let key = SessionKey::Account(7);
        let first = counts.enter(key, 2).expect("first");
        let _second = counts.enter(key, 2).expect("second");
        assert!(counts.enter(key, 2).is_none());
        assert_eq!(counts.total_accounts(), 2);
        drop(first);
        assert!(counts.enter(key, 2).is_some());
    }
}
