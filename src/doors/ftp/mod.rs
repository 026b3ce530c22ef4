//! The FTP door: FTP, explicit FTPS (`AUTH TLS`) and, on a port of its own,
//! implicit FTPS.
//!
//! Like the SFTP door it decides nothing about names, completion or
//! reports: each command becomes a call of the account's
//! [`AccountArea`](crate::drop_area::AccountArea). What it owns is FTP
//! itself:
//!
//! - [`control`]: the control connection (lines in, replies out, the TLS
//!   upgrade), read in a way that can watch for `ABOR` or a dropped
//!   connection while a transfer runs;
//! - [`data`]: data connections: passive listeners that accept only the
//!   control connection's address, active connections only to it (no FTP
//!   bounce), TLS on them (`PROT P`), and the copies, in large blocks;
//! - [`session`]: the commands, login through [`crate::auth`], and the
//!   completion rules of FTP: an upload is complete when its transfer ends
//!   cleanly (with TLS `close_notify` over FTPS) and the control
//!   connection is still there, and only then answered 226;
//! - [`listing`]: `LIST`, `NLST`, `MLSD` and `MLST` lines.
//!
//! Why not libunftp: its 0.24 data transfers run on their own, detached
//! from the control connection: an `ABOR` during a `STOR`, or a control
//! connection that drops, does not stop the transfer, and the upload ends
//! as if it were complete. Its passive data connections are accepted from
//! any address (outside its pooled mode), `PORT` connects anywhere, `EPRT`
//! and implicit FTPS are missing, and a failed TLS handshake on a data
//! connection panics (`unwrap`, libunftp #375). Each of these is a rule of
//! SPEC §3 or §11, so the door speaks FTP itself, on tokio and rustls.

mod control;
mod data;
mod listing;
mod session;

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::sessions::{Arrival, Refusal, SessionCounts, next_arrival};
use crate::auth::Authenticator;
use crate::drop_area::DropArea;

/// `[ftp]` in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FtpConfig {
    /// Whether the FTP door opens at all.
    pub enabled: bool,
    /// Address and port of the FTP door (`0` picks a free port, which the
    /// server prints at start).
    pub listen: String,
    /// Ports for passive data connections, `"FIRST-LAST"`; `"0"` lets the
    /// system pick any free port (no firewall to open).
    pub passive_ports: String,
    /// The IPv4 address announced in PASV replies, for a server behind NAT;
    /// empty: the address the client connected to.
    pub passive_host: String,
    /// PEM certificate chain and private key for FTPS; empty: no TLS.
    pub tls_cert: String,
    pub tls_key: String,
    /// `"off"`, `"optional"` or `"required"`; empty: `optional` when a
    /// certificate is configured, else `off`.
    pub tls: String,
    /// Address and port for implicit FTPS (TLS from the first byte, as on
    /// port 990); empty: none. Needs the certificate.
    pub implicit_tls_listen: String,
    /// A session with no command (and no transfer) for this long is closed.
    pub idle_timeout_secs: u64,
    /// A connection that has not logged in after this long is closed.
    pub login_grace_secs: u64,
    /// How long the server waits for a data connection, or for the TLS
    /// handshake on it.
    pub data_timeout_secs: u64,
    /// Connections open at once from one address; more are refused.
    pub max_sessions_per_address: usize,
    /// Sessions logged in at once to one account; more are refused at login.
    pub max_sessions_per_account: usize,
}

impl Default for FtpConfig {
    fn default() -> Self {
        FtpConfig {
            enabled: true,
            listen: "0.0.0.0:2121".into(),
            passive_ports: "50000-50100".into(),
            passive_host: String::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            tls: String::new(),
            implicit_tls_listen: String::new(),
            idle_timeout_secs: 600,
            login_grace_secs: 30,
            data_timeout_secs: 30,
            max_sessions_per_address: 50,
            max_sessions_per_account: 20,
        }
    }
}

/// Whether, and how strictly, the door speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPolicy {
    Off,
    /// `AUTH TLS` is offered; plain sessions are allowed.
    Optional,
    /// Login and every data connection must be protected.
    Required,
}

/// The settings of the door, checked.
#[derive(Clone)]
pub struct FtpSettings {
    pub passive_ports: Option<RangeInclusive<u16>>,
    pub passive_host: Option<Ipv4Addr>,
    pub tls_policy: TlsPolicy,
    /// For the control connection (and implicit FTPS).
    pub tls_control: Option<Arc<rustls::ServerConfig>>,
    /// For data connections: the same certificate and session cache, but
    /// no TLS 1.3 session tickets. A client that only writes to an upload's
    /// data connection never reads the tickets a TLS 1.3 server sends after
    /// the handshake; when it closes, the unread tickets make its kernel
    /// reset the connection instead of closing it, and the end of the upload
    /// can be lost (the "FTPS uploads fail with TLS 1.3" reports of lftp,
    /// curl and ProFTPD, proftpd #959; the reason libunftp turned TLS 1.3
    /// off). lftp 4.9.2 here uploads over TLS 1.3 either way; without
    /// tickets the hazard is gone, and resumption still works from the
    /// control connection's tickets.
    pub tls_data: Option<Arc<rustls::ServerConfig>>,
    pub idle_timeout: Duration,
    pub login_grace: Duration,
    pub data_timeout: Duration,
    pub max_sessions_per_address: usize,
    pub max_sessions_per_account: usize,
}

impl FtpSettings {
    /// Checks `[ftp]` and loads the certificate.
    pub fn from_config(config: &FtpConfig) -> anyhow::Result<FtpSettings> {
        let passive_ports = parse_port_range(&config.passive_ports).map_err(|e| {
            anyhow::anyhow!("[ftp] passive_ports = {:?}: {e}", config.passive_ports)
        })?;
        let passive_host = match config.passive_host.trim() {
            "" => None,
            host => Some(host.parse::<Ipv4Addr>().map_err(|_| {
                anyhow::anyhow!("[ftp] passive_host = {host:?}: not an IPv4 address (PASV can only announce one)")
            })?),
        };
        let has_cert = !config.tls_cert.is_empty() || !config.tls_key.is_empty();
        let tls_policy = match config.tls.trim() {
            "" if has_cert => TlsPolicy::Optional,
            "" | "off" => TlsPolicy::Off,
            "optional" => TlsPolicy::Optional,
            "required" => TlsPolicy::Required,
            other => anyhow::bail!(
                "[ftp] tls = {other:?}: expected \"off\", \"optional\" or \"required\""
            ),
        };
        let needs_cert = tls_policy != TlsPolicy::Off || !config.implicit_tls_listen.is_empty();
        let (tls_control, tls_data) = if needs_cert {
            if config.tls_cert.is_empty() || config.tls_key.is_empty() {
                anyhow::bail!("[ftp] FTPS needs both tls_cert and tls_key");
            }
            let control =
                super::tls::server_config(config.tls_cert.as_ref(), config.tls_key.as_ref())?;
            let mut data = control.clone();
            data.send_tls13_tickets = 0;
            (Some(Arc::new(control)), Some(Arc::new(data)))
        } else {
            (None, None)
        };
        Ok(FtpSettings {
            passive_ports,
            passive_host,
            tls_policy,
            tls_control,
            tls_data,
            idle_timeout: Duration::from_secs(config.idle_timeout_secs.max(1)),
            login_grace: Duration::from_secs(config.login_grace_secs.max(1)),
            data_timeout: Duration::from_secs(config.data_timeout_secs.max(1)),
            max_sessions_per_address: config.max_sessions_per_address,
            max_sessions_per_account: config.max_sessions_per_account,
        })
    }
}

/// `"50000-50100"`, or `"0"` for any free port (`None`).
fn parse_port_range(text: &str) -> Result<Option<RangeInclusive<u16>>, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(None);
    }
    let (first, last) = text.split_once('-').unwrap_or((text, text));
    let first: u16 = first
        .trim()
        .parse()
        .map_err(|_| "expected FIRST-LAST, e.g. 50000-50100".to_string())?;
    let last: u16 = last
        .trim()
        .parse()
        .map_err(|_| "expected FIRST-LAST, e.g. 50000-50100".to_string())?;
    if first == 0 || first > last {
        return Err("the first port must be between 1 and the last".into());
    }
    Ok(Some(first..=last))
}

/// Everything the door's sessions share.
pub struct FtpDoor {
    pub area: Arc<DropArea>,
    pub auth: Arc<Authenticator>,
    pub settings: FtpSettings,
    pub sessions: Arc<SessionCounts>,
}

/// Serves FTP on `listener` until `shutdown`; with `implicit_tls`, every
/// connection starts with a TLS handshake (implicit FTPS).
pub async fn serve(
    listener: TcpListener,
    door: Arc<FtpDoor>,
    implicit_tls: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut sessions = tokio::task::JoinSet::new();
    let per_address = door.settings.max_sessions_per_address;
    while let Some(arrival) = next_arrival(
        &listener,
        &shutdown,
        &door.auth,
        &door.sessions,
        per_address,
    )
    .await
    {
        match arrival {
            Arrival::Admitted {
                stream,
                peer,
                guard,
            } => {
                let (door, shutdown) = (door.clone(), shutdown.clone());
                sessions.spawn(async move {
                    session::run(door, stream, peer, implicit_tls, guard, shutdown).await;
                });
            }
            // Said in the clear, even on the implicit-TLS port: the
            // connection is refused before any TLS.
            Arrival::Refused { stream, why } => {
                session::refuse(
                    stream,
                    match why {
                        Refusal::Banned => {
                            "421 Too many failed logins from your address; try again later."
                        }
                        Refusal::Busy => "421 Too many connections from your address.",
                    },
                )
                .await
            }
        }
        // Forget the sessions that ended.
        while sessions.try_join_next().is_some() {}
    }
    // Stopping: every session was told by the shutdown token; wait for them.
    while sessions.join_next().await.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passive_port_ranges() {
        assert_eq!(parse_port_range("50000-50100"), Ok(Some(50000..=50100)));
        assert_eq!(parse_port_range("0"), Ok(None));
        assert_eq!(parse_port_range("2121"), Ok(Some(2121..=2121)));
        assert!(parse_port_range("50100-50000").is_err());
        assert!(parse_port_range("lots").is_err());
    }

    #[test]
    fn tls_policy_follows_the_certificate() {
        let plain = FtpSettings::from_config(&FtpConfig::default()).unwrap();
        assert_eq!(plain.tls_policy, TlsPolicy::Off);
        let config = FtpConfig {
            tls: "required".into(),
            ..FtpConfig::default()
        };
        let e = FtpSettings::from_config(&config).err().unwrap().to_string();
        assert!(e.contains("tls_cert and tls_key"), "{e}");
        let config = FtpConfig {
            tls: "sometimes".into(),
            ..FtpConfig::default()
        };
        assert!(FtpSettings::from_config(&config).is_err());
    }
}
