//! The SFTP door: SSH (russh) with the `sftp` subsystem (russh-sftp), and
//! nothing else: no shell, no exec, no forwarding.
//!
//! Each request is translated into a call of the account's
//! [`AccountArea`]; this module decides nothing about names, completion or
//! reports. What it does own is the SSH side: host keys (generated once,
//! kept in the data folder so clients never see a changed key),
//! authentication through [`Authenticator`], and the "pump" between russh
//! and russh-sftp. russh delivers channel data into a bounded queue and
//! blocks its whole session loop when that queue is full; russh-sftp
//! answers one request at a time. A client that pipelines many READs (OpenSSH
//! with `limits@openssh.com`, `sftp -R 512`, paramiko's prefetch) then
//! wedges the session for good. The pump drains the channel into a
//! byte-bounded pipe as fast as it arrives, so the session loop never
//! blocks, while uploads still get back-pressure from the pipe's bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{Algorithm, PrivateKey};
use russh::server::{Auth, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use russh_sftp::protocol::{
    Attrs, Data, ExtendedReply, File, FileAttributes, Handle, Name, OpenFlags, Packet, Status,
    StatusCode, Version,
};
use russh_sftp::server::StatusReply;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWriteExt, duplex};
use tokio_util::sync::CancellationToken;

use super::sessions::{Arrival, SessionCounts, SessionGuard, SessionKey, next_arrival};
use crate::auth::{AuthError, Authenticator};
use crate::drop_area::{AccountArea, AreaError, Completion, DropArea, Entry, Target, Upload};
use crate::store::AccountRecord;

/// `[sftp]` in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SftpConfig {
    /// Address and port to listen on (`0` picks a free port, which the
    /// server prints at start).
    pub listen: String,
    /// Also generate and offer an RSA host key, for old clients.
    pub rsa_host_key: bool,
    /// A session with no traffic for this long is closed.
    pub idle_timeout_secs: u64,
    /// Keepalives every this many seconds; three unanswered end the session.
    pub keepalive_secs: u64,
    /// A connection that has not logged in after this long is closed.
    pub login_grace_secs: u64,
    /// Connections open at once from one address; more are closed at once.
    pub max_sessions_per_address: usize,
    /// Sessions logged in at once to one account; more are refused at login.
    pub max_sessions_per_account: usize,
}

impl Default for SftpConfig {
    fn default() -> Self {
        SftpConfig {
            listen: "0.0.0.0:2222".into(),
            rsa_host_key: true,
            idle_timeout_secs: 600,
            keepalive_secs: 30,
            login_grace_secs: 30,
            max_sessions_per_address: 50,
            max_sessions_per_account: 20,
        }
    }
}

/// The bytes of upload data the pump holds for russh-sftp: back-pressure
/// for uploads, never a stall for the session loop.
const PUMP_BUDGET: usize = 1 << 20;
/// What `limits@openssh.com` announces: 255 KiB reads and writes.
const MAX_IO: u64 = 255 * 1024;

/// Loads the host keys from the data folder, creating them on first start.
pub fn host_keys(data_dir: &Path, rsa: bool) -> anyhow::Result<Vec<PrivateKey>> {
    let mut keys = vec![load_or_create(
        &data_dir.join("ssh_host_ed25519_key"),
        Algorithm::Ed25519,
    )?];
    if rsa {
        keys.push(load_or_create(
            &data_dir.join("ssh_host_rsa_key"),
            Algorithm::Rsa { hash: None },
        )?);
    }
    Ok(keys)
}

fn load_or_create(path: &Path, algorithm: Algorithm) -> anyhow::Result<PrivateKey> {
    if path.exists() {
        return Ok(russh::keys::load_secret_key(path, None)?);
    }
    let key = PrivateKey::random(&mut rand::rng(), algorithm)?;
    key.write_openssh_file(path, russh::keys::ssh_key::LineEnding::LF)?;
    tracing::info!(path = %path.display(), "generated a host key");
    Ok(key)
}

/// Ciphers offered, most preferred first: russh's defaults plus
/// `aes128-gcm@openssh.com`, which it implements but does not offer, and
/// which clients configured for it (and OpenSSH's own preference list after
/// ChaCha20) expect.
const CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_GCM,
    russh::cipher::AES_128_GCM,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_192_CTR,
    russh::cipher::AES_128_CTR,
];

/// russh's settings for this door.
pub fn ssh_config(
    config: &SftpConfig,
    auth: &Authenticator,
    keys: Vec<PrivateKey>,
) -> russh::server::Config {
    russh::server::Config {
        server_id: russh::SshId::Standard("SSH-2.0-dropgate".into()),
        methods: MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..]),
        auth_rejection_time: Duration::from_millis(auth.config().failure_delay_ms),
        // OpenSSH starts with a "none" probe: no reason to delay that one.
        auth_rejection_time_initial: Some(Duration::ZERO),
        max_auth_attempts: 6,
        inactivity_timeout: Some(Duration::from_secs(config.idle_timeout_secs)),
        keepalive_interval: Some(Duration::from_secs(config.keepalive_secs.max(1))),
        keepalive_max: 3,
        window_size: 8 * 1024 * 1024,
        maximum_packet_size: 65535,
        nodelay: true,
        keys,
        preferred: russh::Preferred {
            cipher: std::borrow::Cow::Borrowed(CIPHERS),
            ..russh::Preferred::DEFAULT
        },
        ..Default::default()
    }
}

/// Everything a session needs.
pub struct DoorContext {
    pub area: Arc<DropArea>,
    pub auth: Arc<Authenticator>,
    pub limits: SftpConfig,
    pub sessions: Arc<SessionCounts>,
}

/// Serves SFTP on `listener` until `shutdown`.
///
/// Each connection runs as its own russh session (`run_stream`), which lets
/// the door do what russh leaves to it: refuse an address that is banned or
/// has too many connections open before any SSH is spoken, close a
/// connection that has not logged in within the login grace time, and
/// disconnect every session when the server stops.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: russh::server::Config,
    context: Arc<DoorContext>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let mut sessions = tokio::task::JoinSet::new();
    let per_address = context.limits.max_sessions_per_address;
    while let Some(arrival) = next_arrival(
        &listener,
        &shutdown,
        &context.auth,
        &context.sessions,
        per_address,
    )
    .await
    {
        // A refused connection is closed before any SSH is spoken.
        let Arrival::Admitted {
            stream,
            peer: ip,
            guard: address_guard,
        } = arrival
        else {
            continue;
        };
        let logged_in = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handler = SshSession {
            context: context.clone(),
            peer: ip,
            account: None,
            channels: HashMap::new(),
            logged_in: logged_in.clone(),
            _address: address_guard,
            account_guard: None,
        };
        let grace = Duration::from_secs(context.limits.login_grace_secs.max(1));
        let (config, shutdown) = (config.clone(), shutdown.clone());
        sessions.spawn(run_session(
            config, stream, handler, grace, logged_in, shutdown,
        ));
        // Forget the sessions that ended.
        while sessions.try_join_next().is_some() {}
    }
    // Stopping: every session was told by the shutdown token; wait for them.
    while sessions.join_next().await.is_some() {}
    Ok(())
}

async fn run_session(
    config: Arc<russh::server::Config>,
    stream: tokio::net::TcpStream,
    handler: SshSession,
    grace: Duration,
    logged_in: Arc<std::sync::atomic::AtomicBool>,
    shutdown: CancellationToken,
) {
    let peer = handler.peer;
    let deadline = tokio::time::Instant::now() + grace;
    // The SSH greeting and key exchange count against the grace time too.
    let started = russh::server::run_stream(config, stream, handler);
    let running = match tokio::time::timeout_at(deadline, started).await {
        Ok(Ok(running)) => running,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "ssh session failed to start");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "connection closed: no login within the grace time");
            return;
        }
    };
    let handle = running.handle();
    tokio::pin!(running);
    let grace_timer = tokio::time::sleep_until(deadline);
    tokio::pin!(grace_timer);
    let mut grace_over = false;
    loop {
        tokio::select! {
            result = &mut running => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "ssh session ended with an error");
                }
                return;
            }
            _ = &mut grace_timer, if !grace_over => {
                grace_over = true;
                if !logged_in.load(std::sync::atomic::Ordering::Relaxed) {
                    tracing::info!(%peer, "connection closed: no login within the grace time");
                    let _ = handle
                        .disconnect(russh::Disconnect::ByApplication, "login grace time over".into(), "en".into())
                        .await;
                }
            }
            _ = shutdown.cancelled() => {
                let _ = handle
                    .disconnect(russh::Disconnect::ByApplication, "the server is stopping".into(), "en".into())
                    .await;
                let _ = tokio::time::timeout(Duration::from_secs(10), &mut running).await;
                return;
            }
        }
    }
}

struct SshSession {
    context: Arc<DoorContext>,
    peer: IpAddr,
    account: Option<AccountRecord>,
    channels: HashMap<ChannelId, Channel<Msg>>,
    logged_in: Arc<std::sync::atomic::AtomicBool>,
    _address: SessionGuard,
    account_guard: Option<SessionGuard>,
}

/// A public key as `authorized_keys` writes it: algorithm and base64.
fn key_parts(key: &russh::keys::PublicKey) -> Option<(String, String)> {
    let text = key.to_openssh().ok()?;
    let mut parts = text.split_whitespace();
    Some((parts.next()?.to_string(), parts.next()?.to_string()))
}

impl SshSession {
    /// A public key, offered (is it one of the account's?) or `signed`
    /// (russh verified the signature: log in).
    fn check_key(
        &mut self,
        user: &str,
        key: &russh::keys::PublicKey,
        signed: bool,
    ) -> anyhow::Result<Auth> {
        let Some((algorithm, data)) = key_parts(key) else {
            return Ok(Auth::reject());
        };
        let checked = self
            .context
            .auth
            .public_key(self.peer, user, &algorithm, &data, signed);
        Ok(match checked {
            Ok(account) if signed => self.accepted(account, "publickey"),
            Ok(_) => Auth::Accept,
            Err(AuthError::Store(e)) => return Err(e.into()),
            Err(_) => Auth::reject(),
        })
    }

    fn accepted(&mut self, account: AccountRecord, method: &str) -> Auth {
        let Some(guard) = self.context.sessions.enter(
            SessionKey::Account(account.id),
            self.context.limits.max_sessions_per_account,
        ) else {
            tracing::warn!(peer = %self.peer, account = %account.name, "login refused: too many sessions for this account");
            return Auth::reject();
        };
        tracing::info!(peer = %self.peer, account = %account.name, method, "login");
        self.account_guard = Some(guard);
        self.account = Some(account);
        self.logged_in
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Auth::Accept
    }
}

impl russh::server::Handler for SshSession {
    type Error = anyhow::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let (auth, peer) = (self.context.auth.clone(), self.peer);
        let (user, password) = (user.to_string(), password.to_string());
        let result =
            tokio::task::spawn_blocking(move || auth.password(peer, &user, &password)).await?;
        Ok(match result {
            Ok(account) => self.accepted(account, "password"),
            Err(AuthError::Store(e)) => return Err(e.into()),
            Err(_) => Auth::reject(),
        })
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        self.check_key(user, offer.public_key, false)
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        self.check_key(user, key.public_key, true)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(account), Some(channel)) = (self.account.clone(), self.channels.remove(&id))
        else {
            session.channel_failure(id)?;
            return Ok(());
        };
        if name != "sftp" {
            session.channel_failure(id)?;
            return Ok(());
        }
        let area = self.context.area.account(account.id, &account.name)?;
        session.channel_success(id)?;
        run_sftp_with_pump(channel, SftpSession::new(area, self.peer)).await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        id: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(id)?;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        id: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(id)?;
        Ok(())
    }
}

/// Runs russh-sftp on `channel` through the pump (see the module docs).
async fn run_sftp_with_pump(channel: Channel<Msg>, handler: SftpSession) {
    let (mut from_client, to_client) = channel.split();
    let (sftp_side, pump_side) = duplex(PUMP_BUDGET);
    let (mut from_sftp, mut to_sftp) = tokio::io::split(pump_side);
    tokio::spawn(async move {
        while let Some(message) = from_client.wait().await {
            match message {
                russh::ChannelMsg::Data { data } if to_sftp.write_all(&data).await.is_err() => {
                    break;
                }
                russh::ChannelMsg::Eof | russh::ChannelMsg::Close => break,
                _ => {}
            }
        }
        let _ = to_sftp.shutdown().await;
    });
    tokio::spawn(async move {
        let mut writer = to_client.make_writer();
        let _ = tokio::io::copy(&mut from_sftp, &mut writer).await;
        let _ = writer.shutdown().await;
        // scp (SFTP mode) fails a transfer whose subsystem ends without an
        // exit status; sshj and JSch wait for the close.
        let _ = to_client.exit_status(0).await;
        let _ = to_client.close().await;
    });
    let config = russh_sftp::server::Config {
        max_client_packet_len: (MAX_IO + 1024) as u32,
    };
    russh_sftp::server::run_with_config(sftp_side, handler, config).await;
}

enum OpenHandle {
    /// `None` once completed or abandoned.
    Upload(Option<Upload>),
    Read(std::fs::File),
    /// The listing, handed out by the first READDIR.
    Dir(Option<Vec<Entry>>),
}

/// One SFTP session of one account.
struct SftpSession {
    area: AccountArea,
    peer: IpAddr,
    handles: HashMap<String, OpenHandle>,
    next_handle: u64,
}

impl SftpSession {
    fn new(area: AccountArea, peer: IpAddr) -> Self {
        SftpSession {
            area,
            peer,
            handles: HashMap::new(),
            next_handle: 0,
        }
    }

    fn add(&mut self, handle: OpenHandle) -> String {
        self.next_handle += 1;
        let name = self.next_handle.to_string();
        self.handles.insert(name.clone(), handle);
        name
    }

    fn name(&self, path: &str) -> Result<String, StatusReply> {
        self.area.file_name(path).map_err(|e| reply(&e))
    }
}

/// An upload still open when the session ends was never completed: the
/// drop area removes it and answers `UPLOAD_INCOMPLETE`.
impl Drop for SftpSession {
    fn drop(&mut self) {
        let uploads: Vec<Upload> = self
            .handles
            .drain()
            .filter_map(|(_, h)| match h {
                OpenHandle::Upload(u) => u,
                _ => None,
            })
            .collect();
        if uploads.is_empty() {
            return;
        }
        let area = self.area.clone();
        let peer = self.peer;
        let abandon = move || {
            for upload in uploads {
                crate::doors::log_incomplete(
                    "sftp",
                    peer,
                    &area.account_name,
                    &upload.name,
                    upload.bytes,
                    "the session ended",
                );
                if let Err(e) = area.abandon(upload) {
                    tracing::error!(error = %e, "could not answer for an incomplete upload");
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(abandon);
            }
            Err(_) => abandon(),
        }
    }
}

fn reply(e: &AreaError) -> StatusReply {
    let code = match e {
        AreaError::NotFound(_) => StatusCode::NoSuchFile,
        AreaError::Io(_) | AreaError::Store(_) => {
            tracing::error!(error = %e, "sftp request failed");
            StatusCode::Failure
        }
        _ => StatusCode::PermissionDenied,
    };
    code.with_message(e.to_string())
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".into(),
        language_tag: "en-US".into(),
    }
}

fn unix_time(t: std::time::SystemTime) -> u32 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// Attributes of the account's folder: a directory the client may read and
/// write files in.
fn root_attrs() -> FileAttributes {
    FileAttributes {
        size: Some(0),
        uid: Some(0),
        gid: Some(0),
        permissions: Some(0o040_755),
        atime: Some(0),
        mtime: Some(0),
        ..FileAttributes::empty()
    }
}

fn file_attrs(entry: &Entry) -> FileAttributes {
    FileAttributes {
        size: Some(entry.size),
        uid: Some(0),
        gid: Some(0),
        permissions: Some(0o100_644),
        atime: Some(unix_time(entry.modified)),
        mtime: Some(unix_time(entry.modified)),
        ..FileAttributes::empty()
    }
}

fn blocking_error(e: tokio::task::JoinError) -> StatusReply {
    StatusCode::Failure.with_message(e.to_string())
}

impl russh_sftp::server::Handler for SftpSession {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported.into()
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        let mut version = Version::new();
        version
            .extensions
            .insert("limits@openssh.com".into(), "1".into());
        version
            .extensions
            .insert("posix-rename@openssh.com".into(), "1".into());
        Ok(version)
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let resolved = match self.area.resolve(&path).map_err(|e| reply(&e))? {
            Target::Root => "/".to_string(),
            Target::Name(n) => format!("/{n}"),
        };
        Ok(Name {
            id,
            files: vec![File::dummy(resolved)],
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let attrs = match self.area.resolve(&path).map_err(|e| reply(&e))? {
            Target::Root => root_attrs(),
            Target::Name(n) => file_attrs(&self.area.stat(&n).map_err(|e| reply(&e))?),
        };
        Ok(Attrs { id, attrs })
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.stat(id, path).await
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let size = match self.handles.get_mut(&handle) {
            Some(OpenHandle::Upload(Some(u))) => u.bytes,
            Some(OpenHandle::Read(f)) => f.metadata().map(|m| m.len()).unwrap_or(0),
            Some(OpenHandle::Dir(_)) => {
                return Ok(Attrs {
                    id,
                    attrs: root_attrs(),
                });
            }
            _ => return Err(StatusCode::Failure.with_message("no such handle")),
        };
        let mut attrs = file_attrs(&Entry {
            name: String::new(),
            size,
            modified: std::time::SystemTime::now(),
            kind: crate::drop_area::EntryKind::Upload,
        });
        attrs.size = Some(size);
        Ok(Attrs { id, attrs })
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        match self.area.resolve(&path).map_err(|e| reply(&e))? {
            Target::Root => Ok(Handle {
                id,
                handle: self.add(OpenHandle::Dir(None)),
            }),
            Target::Name(n) => {
                Err(StatusCode::NoSuchFile.with_message(format!("'{n}' is not a folder")))
            }
        }
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        let area = self.area.clone();
        let Some(OpenHandle::Dir(listed)) = self.handles.get_mut(&handle) else {
            return Err(StatusCode::Failure.with_message("no such handle"));
        };
        if listed.is_some() {
            return Err(StatusCode::Eof.into());
        }
        let entries = area.list().map_err(|e| reply(&e))?;
        // `File::new` fills the `ls -l` style long name, from which
        // FileZilla tells files from folders.
        let files = entries
            .iter()
            .map(|e| File::new(e.name.clone(), file_attrs(e)))
            .collect();
        *listed = Some(entries);
        Ok(Name { id, files })
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let name = self.name(&filename)?;
        let handle = if pflags.contains(OpenFlags::WRITE) {
            let upload = self
                .area
                .create_upload(&name, pflags.contains(OpenFlags::TRUNCATE))
                .map_err(|e| reply(&e))?;
            OpenHandle::Upload(Some(upload))
        } else {
            OpenHandle::Read(self.area.open_read(&name).map_err(|e| reply(&e))?)
        };
        Ok(Handle {
            id,
            handle: self.add(handle),
        })
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let Some(OpenHandle::Read(file)) = self.handles.get_mut(&handle) else {
            return Err(StatusCode::Failure.with_message("not open for reading"));
        };
        let mut data = vec![0u8; len.min(MAX_IO as u32) as usize];
        let n = std::os::unix::fs::FileExt::read_at(file, &mut data, offset)
            .map_err(|e| StatusCode::Failure.with_message(e.to_string()))?;
        if n == 0 {
            return Err(StatusCode::Eof.into());
        }
        data.truncate(n);
        Ok(Data { id, data })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        let Some(OpenHandle::Upload(Some(upload))) = self.handles.get_mut(&handle) else {
            return Err(StatusCode::Failure.with_message("not open for writing"));
        };
        upload
            .write_at(offset, &data)
            .map_err(|e| StatusCode::Failure.with_message(e.to_string()))?;
        Ok(ok(id))
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        match self.handles.remove(&handle) {
            Some(OpenHandle::Upload(Some(upload))) => {
                let area = self.area.clone();
                let (name, bytes, started) = (upload.name.clone(), upload.bytes, upload.started);
                // Durable before the client hears back (see drop_area).
                let completion = tokio::task::spawn_blocking(move || area.complete(upload))
                    .await
                    .map_err(blocking_error)?
                    .map_err(|e| reply(&e))?;
                super::log_upload(
                    "sftp",
                    self.peer,
                    &self.area.account_name,
                    &name,
                    bytes,
                    started,
                    &completion,
                );
                Ok(ok(id))
            }
            Some(_) => Ok(ok(id)),
            None => Err(StatusCode::Failure.with_message("no such handle")),
        }
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        // Timestamps and modes are not kept; accepted as a no-op on a file
        // that is there or was just taken for import (WinSCP, FileZilla).
        match self.area.resolve(&path).map_err(|e| reply(&e))? {
            Target::Root => Ok(ok(id)),
            Target::Name(n) if self.area.setstat_allowed(&n) => Ok(ok(id)),
            Target::Name(n) => {
                Err(StatusCode::NoSuchFile.with_message(format!("'{n}': no such file")))
            }
        }
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        if self.handles.contains_key(&handle) {
            Ok(ok(id))
        } else {
            Err(StatusCode::Failure.with_message("no such handle"))
        }
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        let name = self.name(&filename)?;
        self.area.remove(&name).map_err(|e| reply(&e))?;
        Ok(ok(id))
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, Self::Error> {
        self.do_rename(oldpath, newpath).await?;
        Ok(ok(id))
    }

    async fn mkdir(
        &mut self,
        _id: u32,
        _path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        Err(reply(&AreaError::NoFolders))
    }

    async fn rmdir(&mut self, _id: u32, _path: String) -> Result<Status, Self::Error> {
        Err(reply(&AreaError::NoFolders))
    }

    async fn symlink(
        &mut self,
        _id: u32,
        _link: String,
        _target: String,
    ) -> Result<Status, Self::Error> {
        Err(StatusCode::PermissionDenied.with_message("links cannot be created here"))
    }

    async fn extended(
        &mut self,
        id: u32,
        request: String,
        data: Vec<u8>,
    ) -> Result<Packet, Self::Error> {
        match request.as_str() {
            "limits@openssh.com" => {
                let limits = russh_sftp::extensions::LimitsExtension {
                    max_packet_len: MAX_IO + 1024,
                    max_read_len: MAX_IO,
                    max_write_len: MAX_IO,
                    max_open_handles: 64,
                };
                let data = russh_sftp::ser::to_bytes(&limits)
                    .map_err(|e| StatusCode::Failure.with_message(e.to_string()))?
                    .to_vec();
                Ok(Packet::ExtendedReply(ExtendedReply { id, data }))
            }
            "posix-rename@openssh.com" => {
                let (old, rest) = ssh_string(&data).ok_or(StatusCode::BadMessage)?;
                let (new, _) = ssh_string(rest).ok_or(StatusCode::BadMessage)?;
                self.do_rename(old, new).await?;
                Ok(Packet::Status(ok(id)))
            }
            _ => Err(StatusCode::OpUnsupported.into()),
        }
    }
}

impl SftpSession {
    async fn do_rename(&mut self, old: String, new: String) -> Result<(), StatusReply> {
        let (from, to) = (self.name(&old)?, self.name(&new)?);
        let area = self.area.clone();
        let completion = tokio::task::spawn_blocking(move || area.rename(&from, &to))
            .await
            .map_err(blocking_error)?
            .map_err(|e| reply(&e))?;
        if let Completion::Queued(import_id) = completion {
            tracing::info!(peer = %self.peer, account = %self.area.account_name, file = %new,
                import_id, outcome = "queued", "upload renamed");
        }
        Ok(())
    }
}

/// One SSH string (u32 length, bytes) off the front of `data`.
fn ssh_string(data: &[u8]) -> Option<(String, &[u8])> {
    let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let bytes = data.get(4..4 + len)?;
    Some((
        String::from_utf8_lossy(bytes).into_owned(),
        &data[4 + len..],
    ))
}
