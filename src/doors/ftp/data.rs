//! Data connections: where they come from, TLS on them, and the copies.
//!
//! Passive (`PASV`, `EPSV`): the session listens on a port of the passive
//! range and takes the first connection from the control connection's
//! address; a connection from any other address is closed at once and
//! logged (SPEC §11: no one else can hijack a transfer by guessing the
//! port). Active (`PORT`, `EPRT`): the server connects only to the control
//! connection's own address, on an unprivileged port (no FTP bounce).
//!
//! Copies go in blocks of [`BLOCK`] bytes: an upload is written to its file
//! a block at a time, at explicit offsets, never held whole in memory.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::server::TlsStream;

use crate::doors::sessions::canonical;
use crate::drop_area::Upload;

/// The size of the blocks a transfer reads and writes.
pub const BLOCK: usize = 256 * 1024;

/// A data connection that moves no byte for this long has failed (an
/// upload on it is then incomplete).
pub const STALL: Duration = Duration::from_secs(300);

fn stalled() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "no data for 300 s")
}

/// How the next transfer gets its data connection.
pub enum DataPlan {
    None,
    /// Listening after `PASV`/`EPSV`.
    Passive(TcpListener),
    /// Connect to this address (`PORT`/`EPRT`, already checked).
    Active(SocketAddr),
}

/// Why no data connection could be made.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("use PASV, EPSV, PORT or EPRT first")]
    NoPlan,
    #[error("no data connection within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Opens a passive listener on the control connection's local address, on a
/// free port of `ports` (any free port when `None`).
pub fn listen_passive(
    local: IpAddr,
    ports: Option<&RangeInclusive<u16>>,
) -> io::Result<TcpListener> {
    let bind = |port: u16| -> io::Result<TcpListener> {
        let socket = match local {
            IpAddr::V4(_) => TcpSocket::new_v4()?,
            IpAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::new(local, port))?;
        socket.listen(8)
    };
    let Some(range) = ports else {
        return bind(0);
    };
    // Start at a random port, then walk the range: a pool shared by every
    // session, so a port in use is simply skipped.
    let span = (*range.end() - *range.start()) as u32 + 1;
    let start = rand::random::<u32>() % span;
    for i in 0..span {
        let port = *range.start() + ((start + i) % span) as u16;
        if let Ok(listener) = bind(port) {
            return Ok(listener);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "every passive port is in use",
    ))
}

/// Whether an active-mode target is allowed: the client's own address,
/// and not a privileged port.
pub fn active_target_allowed(target: SocketAddr, client: IpAddr) -> bool {
    canonical(target.ip()) == canonical(client) && target.port() >= 1024
}

/// Parses `PORT h1,h2,h3,h4,p1,p2`.
pub fn parse_port(arg: &str) -> Option<SocketAddr> {
    let numbers: Vec<u8> = arg
        .trim()
        .split(',')
        .map(|n| n.trim().parse().ok())
        .collect::<Option<_>>()?;
    let [a, b, c, d, p1, p2] = numbers[..] else {
        return None;
    };
    let ip = std::net::Ipv4Addr::new(a, b, c, d);
    Some(SocketAddr::new(
        ip.into(),
        u16::from(p1) << 8 | u16::from(p2),
    ))
}

/// Parses `EPRT |1|132.235.1.2|6275|` (any delimiter, RFC 2428).
pub fn parse_eprt(arg: &str) -> Option<SocketAddr> {
    let arg = arg.trim();
    let delimiter = arg.chars().next()?;
    let parts: Vec<&str> = arg.split(delimiter).collect();
    let [_, family, host, port, _] = parts[..] else {
        return None;
    };
    let ip: IpAddr = host.parse().ok()?;
    match (family, ip) {
        ("1", IpAddr::V4(_)) | ("2", IpAddr::V6(_)) => {}
        _ => return None,
    }
    Some(SocketAddr::new(ip, port.parse().ok()?))
}

/// Makes the data connection the plan says: accepts the first connection
/// from `client` (closing any other), or connects to the checked target.
pub async fn connect(
    plan: DataPlan,
    client: IpAddr,
    timeout: Duration,
) -> Result<TcpStream, DataError> {
    let stream = match plan {
        DataPlan::None => return Err(DataError::NoPlan),
        DataPlan::Passive(listener) => {
            let accept = async {
                loop {
                    let (stream, from) = listener.accept().await?;
                    if canonical(from.ip()) == canonical(client) {
                        return Ok::<_, io::Error>(stream);
                    }
                    tracing::warn!(expected = %client, from = %from.ip(),
                        "data connection refused: not from the control connection's address");
                    drop(stream);
                }
            };
            tokio::time::timeout(timeout, accept)
                .await
                .map_err(|_| DataError::Timeout(timeout))??
        }
        DataPlan::Active(target) => tokio::time::timeout(timeout, TcpStream::connect(target))
            .await
            .map_err(|_| DataError::Timeout(timeout))??,
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A data connection, plain or TLS.
pub enum DataStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl DataStream {
    /// Wraps `stream` in TLS when the session asked for protection (`PROT
    /// P`); the handshake must finish within `timeout`.
    pub async fn open(
        stream: TcpStream,
        tls: Option<Arc<rustls::ServerConfig>>,
        timeout: Duration,
    ) -> io::Result<DataStream> {
        let Some(config) = tls else {
            return Ok(DataStream::Plain(stream));
        };
        let handshake = tokio_rustls::TlsAcceptor::from(config).accept(stream);
        match tokio::time::timeout(timeout, handshake).await {
            Ok(Ok(tls)) => Ok(DataStream::Tls(Box::new(tls))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no TLS handshake on the data connection",
            )),
        }
    }

    /// Reads; a transfer that stalls for [`STALL`] fails.
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = async {
            match self {
                DataStream::Plain(s) => s.read(buf).await,
                DataStream::Tls(s) => s.read(buf).await,
            }
        };
        tokio::time::timeout(STALL, read)
            .await
            .unwrap_or_else(|_| Err(stalled()))
    }

    async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let write = async {
            match self {
                DataStream::Plain(s) => s.write_all(buf).await,
                DataStream::Tls(s) => s.write_all(buf).await,
            }
        };
        tokio::time::timeout(STALL, write)
            .await
            .unwrap_or_else(|_| Err(stalled()))
    }

    /// Ends the transfer: TLS `close_notify`, then the TCP end of stream.
    pub async fn finish(&mut self) -> io::Result<()> {
        match self {
            DataStream::Plain(s) => s.shutdown().await,
            DataStream::Tls(s) => s.shutdown().await,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, DataStream::Tls(_))
    }
}

/// Receives an upload into `upload` from `offset` until the end of the
/// stream. Over TLS the end must be a `close_notify`: a connection that
/// just stops is an error (`UnexpectedEof`), i.e. an incomplete upload.
pub async fn receive(data: &mut DataStream, upload: &mut Upload, offset: u64) -> io::Result<u64> {
    let mut block = vec![0u8; BLOCK];
    let mut at = offset;
    loop {
        let mut filled = 0;
        let mut ended = false;
        while filled < block.len() {
            let n = data.read(&mut block[filled..]).await?;
            if n == 0 {
                ended = true;
                break;
            }
            filled += n;
        }
        if filled > 0 {
            // A write to the page cache, rarely slow: off the async
            // worker's books so other sessions keep going if it is.
            tokio::task::block_in_place(|| upload.write_at(at, &block[..filled]))?;
            at += filled as u64;
        }
        if ended {
            return Ok(at - offset);
        }
    }
}

/// Sends `file` from `offset` to the end.
pub async fn send_file(data: &mut DataStream, file: std::fs::File, offset: u64) -> io::Result<u64> {
    let mut block = vec![0u8; BLOCK];
    let mut at = offset;
    loop {
        let n = tokio::task::block_in_place(|| {
            std::os::unix::fs::FileExt::read_at(&file, &mut block, at)
        })?;
        if n == 0 {
            return Ok(at - offset);
        }
        data.write_all(&block[..n]).await?;
        at += n as u64;
    }
}

/// Sends a listing's bytes.
pub async fn send_bytes(data: &mut DataStream, bytes: &[u8]) -> io::Result<u64> {
    data.write_all(bytes).await?;
    Ok(bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_and_eprt_arguments() {
        assert_eq!(
            parse_port("127,0,0,1,195,80"),
            Some("127.0.0.1:50000".parse().unwrap())
        );
        assert_eq!(parse_port("127,0,0,1,195"), None);
        assert_eq!(parse_port("300,0,0,1,1,1"), None);
        assert_eq!(
            parse_eprt("|1|127.0.0.1|50000|"),
            Some("127.0.0.1:50000".parse().unwrap())
        );
        assert_eq!(
            parse_eprt("|2|::1|50000|"),
            Some("[::1]:50000".parse().unwrap())
        );
        assert_eq!(parse_eprt("|2|127.0.0.1|50000|"), None);
    }

    #[test]
    fn active_mode_only_to_the_client_itself() {
        let client: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(active_target_allowed(
            "127.0.0.1:40000".parse().unwrap(),
            client
        ));
        assert!(!active_target_allowed(
            "127.0.0.2:40000".parse().unwrap(),
            client
        ));
        assert!(!active_target_allowed(
            "127.0.0.1:25".parse().unwrap(),
            client
        ));
        assert!(!active_target_allowed(
            "10.1.2.3:40000".parse().unwrap(),
            client
        ));
    }
}
