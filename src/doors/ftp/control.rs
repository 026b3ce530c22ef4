//! The control connection: command lines in, replies out, and the switch
//! to TLS (`AUTH TLS`, or at once for implicit FTPS).
//!
//! [`Control::next_line`] is cancel-safe: what has been read stays in the
//! connection's own buffer, never in the future. That lets a session wait
//! for a transfer and for the next command at the same time, and so notice
//! an `ABOR` or a dropped control connection while an upload is running.

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A command line longer than this ends the session: no FTP command needs
/// it, and the buffer must not grow on a client's say-so.
const MAX_LINE: usize = 8 * 1024;

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Between the two, during the handshake; or after a failed one.
    Gone,
}

pub struct Control {
    stream: Stream,
    buffer: Vec<u8>,
    /// The client closed its side; what is in `buffer` is all there is.
    closed: bool,
}

/// What the control connection holds right now (see [`Control::waiting`]).
pub enum Waiting {
    Nothing,
    Command(Command),
    Closed,
}

/// A command line: the verb in upper case and its argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub verb: String,
    pub arg: String,
}

impl Command {
    fn parse(line: &str) -> Command {
        let line = line.trim_start();
        let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
        Command {
            verb: verb.to_ascii_uppercase(),
            arg: arg.to_string(),
        }
    }
}

impl Control {
    pub fn new(stream: TcpStream) -> Control {
        // Clients send ABOR as urgent data (Python's ftplib marks the whole
        // line urgent): keep urgent bytes in the stream, in order, rather
        // than out of band, where the line's last byte would go missing.
        set_oob_inline(&stream);
        Control {
            stream: Stream::Plain(stream),
            buffer: Vec::new(),
            closed: false,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Switches the connection to TLS (after `234` for `AUTH TLS`, or at
    /// once for implicit FTPS). A client must not send anything between its
    /// `AUTH TLS` and the handshake; anything it did is discarded.
    pub async fn start_tls(&mut self, config: Arc<rustls::ServerConfig>) -> io::Result<()> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(io::Error::other("TLS is already on"));
        };
        self.buffer.clear();
        self.closed = false;
        let tls = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await?;
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    /// The next command, or `None` when the client closed the connection.
    /// Telnet commands (IAC sequences, as sent before `ABOR`) are dropped.
    pub async fn next_line(&mut self) -> io::Result<Option<Command>> {
        loop {
            if let Some(command) = self.buffered_command() {
                return Ok(Some(command));
            }
            if self.closed {
                return Ok(None);
            }
            if self.buffer.len() > MAX_LINE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "command line too long",
                ));
            }
            let mut chunk = [0u8; 2048];
            let n = match &mut self.stream {
                Stream::Plain(s) => s.read(&mut chunk).await?,
                Stream::Tls(s) => s.read(&mut chunk).await?,
                Stream::Gone => 0,
            };
            if n == 0 {
                self.closed = true;
            }
            self.buffer.extend_from_slice(&chunk[..n]);
            self.take_arrived();
        }
    }

    /// What has arrived already, without waiting: a command, the end of
    /// the connection, or nothing. Used when a plain-FTP upload's data
    /// connection has ended, to tell an upload cut off by `ABOR` or a
    /// hang-up from a finished one.
    pub fn waiting(&mut self) -> Waiting {
        self.take_arrived();
        match self.buffered_command() {
            Some(command) => Waiting::Command(command),
            None if self.closed => Waiting::Closed,
            None => Waiting::Nothing,
        }
    }

    /// Reads, without waiting, whatever the socket holds, straight from the
    /// socket (plain connections only: TLS bytes belong to rustls).
    ///
    /// tokio's reactor cannot be asked for this. It takes a short read as
    /// "the socket is empty" and waits for the next readiness event; but a
    /// read stops at the urgent mark, so the rest of an `ABOR` sent as
    /// urgent data (its last byte) would wait there until the client sent
    /// something else. And right after a transfer, data that arrived since
    /// the reactor last looked is not known to it yet.
    fn take_arrived(&mut self) {
        use std::os::fd::AsRawFd;
        let Stream::Plain(tcp) = &self.stream else {
            return;
        };
        let mut chunk = [0u8; 2048];
        while !self.closed && self.buffer.len() <= MAX_LINE {
            // SAFETY: a valid socket and a buffer of the given length.
            let n = unsafe {
                libc::recv(
                    tcp.as_raw_fd(),
                    chunk.as_mut_ptr().cast(),
                    chunk.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            match n {
                0 => self.closed = true,
                n if n > 0 => self.buffer.extend_from_slice(&chunk[..n as usize]),
                _ => break,
            }
        }
    }

    /// A complete, non-empty line from the buffer, if there is one.
    fn buffered_command(&mut self) -> Option<Command> {
        while let Some(end) = memchr::memchr(b'\n', &self.buffer) {
            let raw: Vec<u8> = self.buffer.drain(..=end).collect();
            let text = strip_telnet(&raw[..end]);
            let text = String::from_utf8_lossy(&text);
            let text = text.trim_end_matches('\r');
            if !text.trim().is_empty() {
                return Some(Command::parse(text));
            }
        }
        None
    }

    /// Sends a reply; a text of several lines becomes a multi-line reply.
    pub async fn reply(&mut self, code: u16, text: &str) -> io::Result<()> {
        let lines: Vec<&str> = text.lines().collect();
        let mut out = String::new();
        match lines.split_last() {
            None => out.push_str(&format!("{code} \r\n")),
            Some((last, [])) => out.push_str(&format!("{code} {last}\r\n")),
            Some((last, first)) => {
                out.push_str(&format!("{code}-{}\r\n", first[0]));
                for line in &first[1..] {
                    out.push_str(&format!(" {line}\r\n"));
                }
                out.push_str(&format!("{code} {last}\r\n"));
            }
        }
        self.write(out.as_bytes()).await
    }

    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.stream {
            Stream::Plain(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Stream::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Stream::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Closes the connection (with TLS `close_notify` when on TLS).
    pub async fn close(&mut self) {
        match &mut self.stream {
            Stream::Plain(s) => {
                let _ = s.shutdown().await;
            }
            Stream::Tls(s) => {
                let _ = s.shutdown().await;
            }
            Stream::Gone => {}
        }
    }
}

/// Removes Telnet IAC sequences (`IAC IP`, `IAC DM`, ...): two bytes each.
fn strip_telnet(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        if b == 0xFF {
            bytes.next();
        } else {
            out.push(b);
        }
    }
    out
}

fn set_oob_inline(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and a c_int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_OOBINLINE,
            &on as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "SO_OOBINLINE not set");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telnet_sequences_before_abor_are_dropped() {
        assert_eq!(strip_telnet(b"\xff\xf4\xff\xf2ABOR"), b"ABOR");
        assert_eq!(strip_telnet(b"NOOP"), b"NOOP");
    }

    #[test]
    fn commands_split_into_verb_and_argument() {
        assert_eq!(
            Command::parse("stor my file.csv"),
            Command {
                verb: "STOR".into(),
                arg: "my file.csv".into()
            }
        );
        assert_eq!(Command::parse("PWD").arg, "");
    }
}
