//! Authentication, for every door: passwords, public keys and the bans of
//! addresses that keep failing.
//!
//! Passwords are checked against their argon2id hash; an unknown account
//! costs the same work as a wrong password (a verification against a fixed
//! hash), so the two cannot be told apart by their answer or their timing.
//! An address with `max_failures` failed logins within `failure_window` is
//! refused outright for `ban` (SPEC §11). The doors add their own delay to a
//! failed attempt (russh's `auth_rejection_time` for SSH).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::accounts::verify_password;
use crate::store::{AccountRecord, SqliteStore, Store, StoreError};

/// `[auth]` in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Failed logins from one address, within `failure_window_secs`, that
    /// get the address banned.
    pub max_failures: u32,
    pub failure_window_secs: u64,
    /// How long a banned address is refused.
    pub ban_secs: u64,
    /// The delay before a failed login is answered.
    pub failure_delay_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            max_failures: 10,
            failure_window_secs: 300,
            ban_secs: 900,
            failure_delay_ms: 1000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong name, password or key: deliberately one answer.
    #[error("access denied")]
    Denied,
    #[error("too many failed logins from this address; try again later")]
    Banned,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Failures of one address.
#[derive(Debug, Default)]
struct Failures {
    recent: Vec<Instant>,
    banned_until: Option<Instant>,
}

pub struct Authenticator {
    store: Mutex<SqliteStore>,
    config: AuthConfig,
    failures: Mutex<HashMap<IpAddr, Failures>>,
    /// Password checks under way: each argon2 verification takes ~19 MiB,
    /// so they are bounded, or a crowd of logins (even with unknown names)
    /// would take the memory.
    checks: CheckGate,
}

/// A counting gate: at most `max` holders at once, the others wait.
struct CheckGate {
    running: Mutex<usize>,
    freed: std::sync::Condvar,
    max: usize,
}

impl CheckGate {
    fn new(max: usize) -> CheckGate {
        CheckGate {
            running: Mutex::new(0),
            freed: std::sync::Condvar::new(),
            max: max.max(1),
        }
    }

    fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            while *running >= self.max {
                running = self.freed.wait(running).unwrap_or_else(|p| p.into_inner());
            }
            *running += 1;
        }
        let result = f();
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        self.freed.notify_one();
        result
    }
}

/// Password checks run at once: two per core keeps the CPUs busy.
fn concurrent_checks() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get() * 2)
}

/// The hash an unknown account's password is checked against, so that it
/// takes as long as a known one. (Its password is not a secret.)
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1rJ9ypQJ0y7U0vOQ9Gf0f0Y0N8sY2n1C8bS3g0k3c6o";

impl Authenticator {
    pub fn open(data_dir: &Path, config: AuthConfig) -> Result<Authenticator, StoreError> {
        Ok(Authenticator {
            store: Mutex::new(SqliteStore::open(data_dir)?),
            config,
            failures: Mutex::new(HashMap::new()),
            checks: CheckGate::new(concurrent_checks()),
        })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    fn account(&self, name: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .account(name)
    }

    /// Whether `peer` is refused at the moment.
    pub fn is_banned(&self, peer: IpAddr) -> bool {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match failures.get(&peer).and_then(|f| f.banned_until) {
            Some(until) if until > Instant::now() => true,
            Some(_) => {
                failures.remove(&peer);
                false
            }
            None => false,
        }
    }

    fn failed(&self, peer: IpAddr, user: &str, method: &str) {
        let window = Duration::from_secs(self.config.failure_window_secs);
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let f = failures.entry(peer).or_default();
        f.recent.retain(|t| t.elapsed() < window);
        f.recent.push(Instant::now());
        let banned = f.recent.len() as u32 >= self.config.max_failures;
        if banned {
            f.banned_until = Some(Instant::now() + Duration::from_secs(self.config.ban_secs));
            f.recent.clear();
        }
        crate::metrics::failed_login(method);
        tracing::warn!(%peer, user, method, banned, "failed login");
    }

    /// Checks a password. Blocking (argon2 is deliberately slow): call it
    /// off the async runtime.
    pub fn password(
        &self,
        peer: IpAddr,
        user: &str,
        password: &str,
    ) -> Result<AccountRecord, AuthError> {
        if self.is_banned(peer) {
            return Err(AuthError::Banned);
        }
        let account = self.account(user)?;
        let hash = account
            .as_ref()
            .and_then(|a| a.password_hash.as_deref())
            .unwrap_or(DUMMY_HASH);
        let verified = self.checks.run(|| verify_password(hash, password));
        let ok = verified && account.as_ref().is_some_and(|a| a.password_hash.is_some());
        match account {
            Some(a) if ok => Ok(a),
            _ => {
                self.failed(peer, user, "password");
                Err(AuthError::Denied)
            }
        }
    }

    /// Checks an API token (HTTP `Authorization: Bearer`). Only its SHA-256
    /// is stored ([`crate::accounts::token_digest`]); the lookup by digest
    /// reveals nothing about the token through its timing.
    pub fn token(&self, peer: IpAddr, token: &str) -> Result<AccountRecord, AuthError> {
        if self.is_banned(peer) {
            return Err(AuthError::Banned);
        }
        let digest = crate::accounts::token_digest(token);
        let account = self
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .account_by_token(&digest)?;
        match account {
            Some(a) => Ok(a),
            None => {
                self.failed(peer, "-", "token");
                Err(AuthError::Denied)
            }
        }
    }

    /// Whether `key` (algorithm and base64 blob, as in `authorized_keys`)
    /// is one of the account's keys. The door has verified the signature.
    pub fn public_key(
        &self,
        peer: IpAddr,
        user: &str,
        algorithm: &str,
        key_base64: &str,
        signed: bool,
    ) -> Result<AccountRecord, AuthError> {
        if self.is_banned(peer) {
            return Err(AuthError::Banned);
        }
        let account = self.account(user)?;
        let known = match &account {
            Some(a) => self
                .store
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .keys(a.id)?
                .iter()
                .any(|k| k.algorithm == algorithm && k.key_base64 == key_base64),
            None => false,
        };
        match account {
            Some(a) if known => Ok(a),
            // An offered key that is not the account's is not yet a failed
            // login (clients try their keys one by one); a signed one is.
            _ => {
                if signed {
                    self.failed(peer, user, "publickey");
                }
                Err(AuthError::Denied)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_users_and_wrong_passwords_fail_alike_and_bans_expire() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(dir.path()).unwrap();
        let hash = crate::accounts::hash_password("right-password").unwrap();
        store.create_account("acme", Some(&hash)).unwrap();
        let auth = Authenticator::open(
            dir.path(),
            AuthConfig {
                max_failures: 3,
                ban_secs: 1,
                ..AuthConfig::default()
            },
        )
        .unwrap();
        let peer: IpAddr = "127.0.0.9".parse().unwrap();
        assert!(auth.password(peer, "acme", "right-password").is_ok());
        let wrong = auth
            .password(peer, "acme", "wrong")
            .unwrap_err()
            .to_string();
        let unknown = auth
            .password(peer, "ghost", "wrong")
            .unwrap_err()
            .to_string();
        assert_eq!(wrong, unknown);
        assert!(matches!(
            auth.password(peer, "acme", "x"),
            Err(AuthError::Denied)
        ));
        // Third failure: banned, even with the right password.
        assert!(matches!(
            auth.password(peer, "acme", "right-password"),
            Err(AuthError::Banned)
        ));
        let other: IpAddr = "127.0.0.10".parse().unwrap();
        assert!(
            auth.password(other, "acme", "right-password").is_ok(),
            "per address"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while auth.is_banned(peer) {
            assert!(Instant::now() < deadline, "the ban expires");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(auth.password(peer, "acme", "right-password").is_ok());
    }

    #[test]
    fn the_check_gate_lets_at_most_max_run_at_once() {
        let gate = std::sync::Arc::new(CheckGate::new(2));
        let now = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (gate, now, peak) = (gate.clone(), now.clone(), peak.clone());
                std::thread::spawn(move || {
                    gate.run(|| {
                        let n = now.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        peak.fetch_max(n, std::sync::atomic::Ordering::SeqCst);
                        // Hold the gate a little, so that others queue.
                        crate::accounts::verify_password(DUMMY_HASH, "x");
                        now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    })
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert!(peak.load(std::sync::atomic::Ordering::SeqCst) <= 2);
    }

    #[test]
    fn the_dummy_hash_is_a_valid_argon2id_hash() {
        assert!(argon2::password_hash::PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
