//! The front doors: where files come in.
//!
//! Each door authenticates the account ([`crate::auth`]), translates its
//! protocol into calls of the account's drop area ([`crate::drop_area`]) and
//! implements no naming, completion or report rule of its own. `dropgate
//! serve` ([`crate::serve`]) runs them together.
//!
//! - [`sftp`]: SSH with the `sftp` subsystem (russh, russh-sftp).
//! - [`ftp`]: FTP, explicit and implicit FTPS (tokio, rustls).
//! - [`http`]: the HTTP API, JSON messages, health and metrics (axum, hyper).
//!
//! What the doors share: [`sessions`] (limits per address and account),
//! [`tls`] (certificates), and the one log line per upload.

pub mod ftp;
pub mod http;
pub mod sessions;
pub mod sftp;
pub mod tls;

use std::net::IpAddr;
use std::time::Instant;

use crate::drop_area::Completion;

/// The log line of an upload that completed (SPEC §12): one per upload,
/// whatever the door.
pub fn log_upload(
    door: &str,
    peer: IpAddr,
    account: &str,
    file: &str,
    bytes: u64,
    started: Instant,
    completion: &Completion,
) {
    let outcome = match completion {
        Completion::Queued(_) => "queued",
        Completion::Kept => "kept",
    };
    let import_id = match completion {
        Completion::Queued(id) => Some(*id),
        Completion::Kept => None,
    };
    crate::metrics::upload(door, outcome);
    tracing::info!(door, %peer, account, file, bytes,
        duration_ms = started.elapsed().as_millis() as u64, outcome, import_id, "upload");
}

/// The log line of an upload that ended before it was complete (the door
/// then calls [`crate::drop_area::AccountArea::abandon`]).
pub fn log_incomplete(door: &str, peer: IpAddr, account: &str, file: &str, bytes: u64, why: &str) {
    crate::metrics::upload(door, "incomplete");
    tracing::info!(door, %peer, account, file, bytes, outcome = "incomplete", why, "upload");
}
