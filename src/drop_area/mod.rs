//! The drop area: what every front door shares about files.
//!
//! Each account has one folder, seen by its clients as `/`. It shows the
//! uploads in progress, the uploads waiting to be imported and the reports
//! that replace them; nothing else. The doors (SFTP, FTP, HTTP) translate
//! their protocol into the calls of [`AccountArea`] and implement no rule of
//! their own: path confinement ([`paths`]), which names are data, temporary
//! or reports ([`naming`]), when an upload is complete, how it is queued,
//! how its report is written.
//!
//! On disk, under the data folder:
//!
//! ```text
//! drop/<account>/        the account's folder: uploads in progress, reports
//! spool/<token>          completed uploads waiting for their import
//! archive/<account>/     imported uploads, kept for audit (`<import id>-<name>`)
//! ```
//!
//! An upload completes (SFTP CLOSE, FTP 226, a rename of a temporary name
//! into a data name, an HTTP body received) in [`AccountArea::complete`]:
//! the file is flushed to disk, moved into the spool, and its import is
//! recorded as queued in the store. Only then is the client told it
//! succeeded, so an acknowledged upload is never lost; the jobs
//! ([`crate::jobs`]) take it from there and call [`DropArea::publish`] when
//! its import is done. An upload whose session ended while it was being
//! written is removed, never imported, and answered with `UPLOAD_INCOMPLETE`.

pub mod naming;
pub mod paths;

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};

use crate::engine::report::{ErrorCode, Report};
use crate::engine::rfc3339;
use crate::ledger::FileType;
use crate::store::{ImportRecord, Origin, Outcome, SqliteStore, Store, StoreError};
use naming::NameKind;
pub use paths::Target;

/// How long a client may still SETSTAT (or `touch`) an upload that was
/// already taken for import: WinSCP sets timestamps right after CLOSE.
pub const SETSTAT_GRACE: Duration = Duration::from_secs(60);

/// Prefix of the files dropgate itself writes in an account's folder while
/// it writes them (reports, before their rename); never listed.
const OWN_TEMP_PREFIX: &str = ".dropgate-";

/// Prefix of HTTP request bodies being received into the spool.
const REQUEST_PREFIX: &str = ".request-";

/// Why a drop-area operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AreaError {
    #[error("{0}")]
    Path(#[from] paths::PathError),
    #[error("'{0}': no such file")]
    NotFound(String),
    #[error("'{0}': report names are reserved for dropgate's answers")]
    ReportName(String),
    #[error("'{0}': only reports and pending uploads can be removed")]
    NotRemovable(String),
    #[error("folders cannot be created or removed here")]
    NoFolders,
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AreaError {
    /// Whether the client asked for something that is not allowed (as
    /// opposed to a failure of the server).
    pub fn is_refusal(&self) -> bool {
        !matches!(self, AreaError::Io(_) | AreaError::Store(_))
    }
}

/// What an account's folder lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A file being uploaded, or one with a temporary name.
    Upload,
    /// A completed upload waiting for its import.
    Pending,
    /// A report.
    Report,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub size: u64,
    pub modified: SystemTime,
    pub kind: EntryKind,
}

/// The drop areas of all accounts, and the spool and archive behind them.
pub struct DropArea {
    drop_root: PathBuf,
    spool_root: PathBuf,
    archive_root: PathBuf,
    /// A connection for the doors' quick metadata work (queueing, listing).
    store: Mutex<SqliteStore>,
    /// Where queued imports are announced (the jobs' scheduler).
    queue: crate::jobs::Queue,
    /// Uploads recently taken for import, for [`SETSTAT_GRACE`].
    recent: Mutex<HashMap<(i64, String), Instant>>,
}

/// Distinguishes spool tokens made in the same nanosecond, and temporary
/// report names.
static TOKEN_COUNTER: AtomicU64 = AtomicU64::new(0);

impl DropArea {
    pub fn open(data_dir: &Path, queue: crate::jobs::Queue) -> Result<Arc<DropArea>, AreaError> {
        let area = DropArea {
            drop_root: data_dir.join("drop"),
            spool_root: data_dir.join("spool"),
            archive_root: data_dir.join("archive"),
            store: Mutex::new(SqliteStore::open(data_dir)?),
            queue,
            recent: Mutex::new(HashMap::new()),
        };
        for dir in [&area.drop_root, &area.spool_root, &area.archive_root] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Arc::new(area))
    }

    /// The folder of an account, created on first use.
    pub fn account(
        self: &Arc<Self>,
        account_id: i64,
        name: &str,
    ) -> Result<AccountArea, AreaError> {
        crate::accounts::validate_name(name).map_err(|_| paths::PathError::BadName(name.into()))?;
        let path = self.drop_root.join(name);
        std::fs::create_dir_all(&path)?;
        Ok(AccountArea {
            area: self.clone(),
            account_id,
            account_name: name.to_string(),
            dir: Arc::new(Dir::open_ambient_dir(&path, ambient_authority())?),
        })
    }

    pub fn spool_path(&self, token: &str) -> PathBuf {
        self.spool_root.join(token)
    }

    pub fn spool_root(&self) -> &Path {
        &self.spool_root
    }

    fn store(&self) -> std::sync::MutexGuard<'_, SqliteStore> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the store answers (the HTTP door's health check).
    pub fn store_reachable(&self) -> Result<(), AreaError> {
        self.store().imports(0, 1)?;
        Ok(())
    }

    /// Finishes an import whose report is recorded: writes the report into
    /// the account's folder (atomically), moves the upload from the spool
    /// to the archive, and clears the spool mark. Every step can be
    /// repeated, which is what makes recovery after a crash safe.
    pub fn publish(
        &self,
        store: &mut dyn Store,
        account_name: &str,
        import: &ImportRecord,
        report_json: &str,
    ) -> Result<(), AreaError> {
        let folder = self.drop_root.join(account_name);
        std::fs::create_dir_all(&folder)?;
        let dir = Dir::open_ambient_dir(&folder, ambient_authority())?;
        // A request's report was its answer: only a dropped file gets one
        // in the folder.
        if import.origin == Origin::Drop {
            write_report(&dir, &import.file_name, report_json)?;
            crate::failpoint::hit("after-report");
        }
        if let Some(token) = &import.spool {
            let from = self.spool_root.join(token);
            if from.exists() {
                let archive = self.archive_root.join(account_name);
                std::fs::create_dir_all(&archive)?;
                let to = archive.join(format!("{}-{}", import.id, import.file_name));
                std::fs::rename(&from, &to)?;
            }
            store.set_spool(import.id, None)?;
        }
        Ok(())
    }
}

/// How long what the drop areas keep is kept (SPEC §12).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Imported uploads in `archive/`.
    pub archive_days: u64,
    /// Reports in the accounts' folders.
    pub report_days: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            archive_days: 90,
            report_days: 30,
        }
    }
}

impl DropArea {
    /// Deletes archived uploads and reports older than `retention` says, by
    /// their modification time. Returns how many files went.
    pub fn clean_up(&self, retention: Retention, now: SystemTime) -> io::Result<usize> {
        let day = Duration::from_secs(86_400);
        let mut removed = 0;
        let older_than = |path: &Path, days: u64| -> bool {
            let age = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok());
            age.is_some_and(|a| a > day * days as u32)
        };
        for (root, days, reports_only) in [
            (&self.archive_root, retention.archive_days, false),
            (&self.drop_root, retention.report_days, true),
        ] {
            for folder in std::fs::read_dir(root)? {
                let folder = folder?.path();
                if !folder.is_dir() {
                    continue;
                }
                for file in std::fs::read_dir(&folder)? {
                    let path = file?.path();
                    let is_report = path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| naming::classify(n) == NameKind::Report);
                    if (!reports_only || is_report) && path.is_file() && older_than(&path, days) {
                        std::fs::remove_file(&path)?;
                        removed += 1;
                    }
                }
            }
        }
        Ok(removed)
    }
}

/// Writes `<name>.report.json` through a hidden temporary name and a
/// rename, so a client polling the folder never reads half a report.
pub fn write_report(dir: &Dir, upload_name: &str, report_json: &str) -> io::Result<()> {
    // Unique per write: a job publishing and a door answering for an
    // abandoned upload may write in the same folder at the same time.
    let n = TOKEN_COUNTER.fetch_add(1, Ordering::Relaxed);
    let temp = format!("{OWN_TEMP_PREFIX}{}-{n}.tmp", std::process::id());
    let final_name = naming::report_name(upload_name);
    {
        let mut file = dir.open_with(
            &temp,
            OpenOptions::new().write(true).create(true).truncate(true),
        )?;
        file.write_all(report_json.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
    }
    dir.rename(&temp, dir, &final_name)?;
    Ok(())
}

/// One account's folder, as a door sees it.
#[derive(Clone)]
pub struct AccountArea {
    area: Arc<DropArea>,
    pub account_id: i64,
    pub account_name: String,
    dir: Arc<Dir>,
}

/// A file being uploaded.
pub struct Upload {
    pub name: String,
    file: std::fs::File,
    /// Bytes written so far.
    pub bytes: u64,
    pub started: Instant,
    /// Up to where the disk was asked to start writing the file back.
    written_back: u64,
}

/// Every this many bytes of an upload, the kernel is asked to start
/// writing them to disk (see [`Upload::write_at`]).
const WRITEBACK_STEP: u64 = 8 << 20;

impl Upload {
    /// Writes at an explicit offset: SFTP clients pipeline their writes.
    ///
    /// A completed upload is flushed to disk before it is acknowledged.
    /// Left to itself, the kernel would write a large upload back only then,
    /// all at once, and the client would wait for it; so the disk is asked
    /// to start on each [`WRITEBACK_STEP`] as soon as it is written
    /// (`sync_file_range`, which does not wait), and the final flush finds
    /// little left to do.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.file, data, offset)?;
        self.bytes = self.bytes.max(offset + data.len() as u64);
        if self.bytes >= self.written_back + WRITEBACK_STEP {
            use std::os::fd::AsRawFd;
            let (from, to) = (self.written_back, self.bytes);
            // SAFETY: a valid descriptor; the call only starts writeback.
            // Failing is harmless: the final fsync does the work.
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    from as libc::off64_t,
                    (to - from) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.written_back = to;
        }
        Ok(())
    }

    /// The file, for doors that stream into it.
    pub fn file(&mut self) -> &mut std::fs::File {
        &mut self.file
    }
}

/// What completing an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Queued for import under this id.
    Queued(i64),
    /// A temporary name: kept as it is until renamed.
    Kept,
}

impl AccountArea {
    /// What a client path names here.
    pub fn resolve(&self, path: &str) -> Result<Target, AreaError> {
        Ok(paths::resolve(path)?)
    }

    /// A file name from a client path; the root is not a file.
    pub fn file_name(&self, path: &str) -> Result<String, AreaError> {
        match self.resolve(path)? {
            Target::Name(n) => Ok(n),
            Target::Root => Err(AreaError::NotFound("/".into())),
        }
    }

    /// Everything the folder shows: files on disk (uploads in progress and
    /// reports) and the uploads waiting for their import.
    pub fn list(&self) -> Result<Vec<Entry>, AreaError> {
        let mut entries: Vec<Entry> = Vec::new();
        for item in self.dir.entries()? {
            let item = item?;
            let Ok(name) = item.file_name().into_string() else {
                continue;
            };
            if name.starts_with(OWN_TEMP_PREFIX) {
                continue;
            }
            let meta = item.metadata()?;
            if !meta.is_file() {
                continue;
            }
            entries.push(Entry {
                kind: if naming::classify(&name) == NameKind::Report {
                    EntryKind::Report
                } else {
                    EntryKind::Upload
                },
                size: meta.len(),
                modified: meta
                    .modified()
                    .map(|t| t.into_std())
                    .unwrap_or(SystemTime::UNIX_EPOCH),
                name,
            });
        }
        let pending = self.area.store().spooled_for_account(self.account_id)?;
        for import in pending {
            if entries.iter().any(|e| e.name == import.file_name) {
                continue;
            }
            let meta = import
                .spool
                .as_deref()
                .and_then(|t| std::fs::metadata(self.area.spool_path(t)).ok());
            entries.push(Entry {
                name: import.file_name,
                size: meta.as_ref().map_or(0, |m| m.len()),
                modified: meta
                    .and_then(|m| m.modified().ok())
                    .unwrap_or(SystemTime::UNIX_EPOCH),
                kind: EntryKind::Pending,
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// One entry of [`AccountArea::list`].
    pub fn stat(&self, name: &str) -> Result<Entry, AreaError> {
        paths::check_name(name)?;
        self.list()?
            .into_iter()
            .find(|e| e.name == name)
            .ok_or_else(|| AreaError::NotFound(name.to_string()))
    }

    /// Opens a file for upload, emptied with `truncate`, else kept (a
    /// resumed upload, which writes at explicit offsets; never `O_APPEND`,
    /// under which Linux ignores them). Report names are refused: a client
    /// never writes dropgate's answers.
    pub fn create_upload(&self, name: &str, truncate: bool) -> Result<Upload, AreaError> {
        paths::check_name(name)?;
        if naming::classify(name) == NameKind::Report {
            return Err(AreaError::ReportName(name.to_string()));
        }
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(truncate);
        let file = self.dir.open_with(name, &options)?.into_std();
        let bytes = file.metadata()?.len();
        Ok(Upload {
            name: name.to_string(),
            file,
            bytes,
            started: Instant::now(),
            written_back: 0,
        })
    }

    /// Opens a file for an upload of `name` that nobody sees or writes
    /// until it is complete (HTTP `apiPutFiles`): under a hidden name of
    /// dropgate's own, so that two requests for one name, or a request and
    /// an SFTP client, never write into the same file.
    /// [`AccountArea::complete_private`] gives it its name.
    pub fn create_private_upload(&self, name: &str) -> Result<Upload, AreaError> {
        paths::check_name(name)?;
        if naming::classify(name) == NameKind::Report {
            return Err(AreaError::ReportName(name.to_string()));
        }
        let n = TOKEN_COUNTER.fetch_add(1, Ordering::Relaxed);
        let private = format!("{OWN_TEMP_PREFIX}upload-{}-{n}", std::process::id());
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        let file = self.dir.open_with(&private, &options)?.into_std();
        Ok(Upload {
            name: private,
            file,
            bytes: 0,
            started: Instant::now(),
            written_back: 0,
        })
    }

    /// Completes a private upload as `name`: like
    /// [`AccountArea::complete`] for a file uploaded under that name.
    pub fn complete_private(&self, upload: Upload, name: &str) -> Result<Completion, AreaError> {
        upload.file.sync_all()?;
        let private = upload.name.clone();
        drop(upload);
        self.queue_file_from(&private, name)
    }

    /// A private upload that ended before it was complete: removed, never
    /// imported, answered with `UPLOAD_INCOMPLETE` under `name`.
    pub fn abandon_private(&self, upload: Upload, name: &str) -> Result<(), AreaError> {
        let bytes = upload.bytes;
        self.discard_private(upload)?;
        self.report_incomplete(
            name,
            &format!(
                "the upload of '{name}' ended before it was complete ({bytes} bytes received): \
                 nothing was imported; upload the file again"
            ),
        )
    }

    /// Removes a private upload that was refused (too large): no report,
    /// the client was answered.
    pub fn discard_private(&self, upload: Upload) -> Result<(), AreaError> {
        let private = upload.name.clone();
        drop(upload);
        match self.dir.remove_file(&private) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes what dropgate's own unfinished writes left in the folder
    /// (a report or a private upload cut off by a stop). At start only.
    pub fn remove_own_leftovers(&self) -> Result<usize, AreaError> {
        let mut removed = 0;
        for item in self.dir.entries()? {
            let Ok(name) = item?.file_name().into_string() else {
                continue;
            };
            if name.starts_with(OWN_TEMP_PREFIX) {
                self.dir.remove_file(&name)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Opens a file of the folder for reading (reports, uploads on disk).
    pub fn open_read(&self, name: &str) -> Result<std::fs::File, AreaError> {
        paths::check_name(name)?;
        if name.starts_with(OWN_TEMP_PREFIX) {
            return Err(AreaError::NotFound(name.to_string()));
        }
        match self.dir.open(name) {
            Ok(f) => Ok(f.into_std()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(AreaError::NotFound(name.into())),
            Err(e) => Err(e.into()),
        }
    }

    /// Completes an upload: a data or unknown name is queued for import
    /// (see the module documentation); a temporary name is kept as it is.
    /// Blocks until the upload is durable: call it off the async runtime.
    pub fn complete(&self, upload: Upload) -> Result<Completion, AreaError> {
        upload.file.sync_all()?;
        let name = upload.name.clone();
        drop(upload);
        self.queue_file(&name)
    }

    /// Renames a file of the folder; a temporary name renamed into a data
    /// name completes that upload.
    pub fn rename(&self, from: &str, to: &str) -> Result<Completion, AreaError> {
        paths::check_name(from)?;
        paths::check_name(to)?;
        if naming::classify(to) == NameKind::Report {
            return Err(AreaError::ReportName(to.to_string()));
        }
        match self.dir.rename(from, &self.dir, to) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(AreaError::NotFound(from.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
        if naming::classify(to) == NameKind::Temporary {
            return Ok(Completion::Kept);
        }
        self.queue_file(to)
    }

    /// Moves `name` into the spool and records its import as queued.
    fn queue_file(&self, name: &str) -> Result<Completion, AreaError> {
        self.queue_file_from(name, name)
    }

    /// Queues the folder's file `from` as the upload `name` (they differ
    /// for a private upload); a temporary `name` is kept, under that name.
    fn queue_file_from(&self, from: &str, name: &str) -> Result<Completion, AreaError> {
        let kind = naming::classify(name);
        if kind == NameKind::Temporary {
            if from != name {
                self.dir.rename(from, &self.dir, name)?;
            }
            return Ok(Completion::Kept);
        }
        let import_id = self.enqueue(&self.dir, from, name, Origin::Drop, &[])?;
        self.area
            .recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((self.account_id, name.to_string()), Instant::now());
        self.area.queue.submit(self.account_id, import_id);
        Ok(Completion::Queued(import_id))
    }

    /// The journal step every completed upload goes through: the file
    /// (`from` in `dir`) moves into the spool under a token, the spool is
    /// flushed, and the import is recorded as queued. The caller submits it.
    fn enqueue(
        &self,
        dir: &Dir,
        from: &str,
        file_name: &str,
        origin: Origin,
        request_options: &[(String, String)],
    ) -> Result<i64, AreaError> {
        let file_type = match naming::classify(file_name) {
            NameKind::Data { file_type, .. } => Some(file_type),
            _ => None,
        };
        let mut token = spool_token(self.account_id, file_name);
        if origin == Origin::Request {
            // Not a token recovery can answer for in the folder: a request
            // cut off before it was recorded was never answered, and its
            // client knows (it got no answer); the file just goes.
            token.insert_str(0, "request-");
        }
        let spool = Dir::open_ambient_dir(self.area.spool_root(), ambient_authority())?;
        dir.rename(from, &spool, &token)?;
        std::fs::File::open(self.area.spool_root())?.sync_all()?;
        let received_at = rfc3339(chrono::Utc::now());
        Ok(self.area.store().queue_import(
            self.account_id,
            file_name,
            file_type,
            &received_at,
            &token,
            origin,
            request_options,
        )?)
    }

    /// Opens the file an HTTP request's body is received into: in the
    /// spool under a hidden name, never in the account's folder, because
    /// the request itself will answer with the report. Recovery removes
    /// such a file if the server stops before the body is complete.
    pub fn create_request_upload(&self) -> Result<Upload, AreaError> {
        let n = TOKEN_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{REQUEST_PREFIX}{}-{n}", std::process::id());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.area.spool_root.join(&name))?;
        Ok(Upload {
            name,
            file,
            bytes: 0,
            started: Instant::now(),
            written_back: 0,
        })
    }

    /// Completes a request's body: it is queued for import as `file_name`
    /// (which says its type) with the request's options, like any upload,
    /// and the returned receiver fires when its import has ended (or is
    /// dropped when the server stops first). Blocking, like
    /// [`AccountArea::complete`].
    pub fn complete_request(
        &self,
        upload: Upload,
        file_name: &str,
        request_options: &[(String, String)],
    ) -> Result<(i64, tokio::sync::oneshot::Receiver<()>), AreaError> {
        upload.file.sync_all()?;
        let temp = upload.name.clone();
        drop(upload);
        let spool = Dir::open_ambient_dir(self.area.spool_root(), ambient_authority())?;
        let import_id = self.enqueue(&spool, &temp, file_name, Origin::Request, request_options)?;
        let done = self.area.queue.submit_watched(self.account_id, import_id);
        Ok((import_id, done))
    }

    /// A request whose body did not arrive in full: its file goes, and
    /// nothing is recorded (the client got no answer but an error).
    pub fn discard_request(&self, upload: Upload) {
        let path = self.area.spool_root.join(&upload.name);
        drop(upload);
        let _ = std::fs::remove_file(path);
    }

    /// An upload whose session ended while it was being written: removed,
    /// never imported, answered with `UPLOAD_INCOMPLETE`.
    pub fn abandon(&self, upload: Upload) -> Result<(), AreaError> {
        let name = upload.name.clone();
        let bytes = upload.bytes;
        drop(upload);
        self.discard_incomplete(
            &name,
            &format!(
                "the upload of '{name}' ended before it was complete ({bytes} bytes received): \
                 nothing was imported; upload the file again"
            ),
        )
    }

    /// Removes a file left by a session that ended before completing it,
    /// and answers for it with `UPLOAD_INCOMPLETE`.
    pub fn discard_incomplete(&self, name: &str, description: &str) -> Result<(), AreaError> {
        paths::check_name(name)?;
        match self.dir.remove_file(name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        self.report_incomplete(name, description)
    }

    /// Records and writes an `UPLOAD_INCOMPLETE` report for `name`.
    pub fn report_incomplete(&self, name: &str, description: &str) -> Result<(), AreaError> {
        let now = rfc3339(chrono::Utc::now());
        let mut report = Report::new(name, &now);
        report.file_type = match naming::classify(name) {
            NameKind::Data { file_type, .. } => Some(file_type.as_str().to_string()),
            _ => None,
        };
        report.fail(ErrorCode::UploadIncomplete, description);
        let mut store = self.area.store();
        let file_type = report.file_type.as_deref().and_then(FileType::from_keyword);
        let id = store.create_import(self.account_id, name, file_type, &now)?;
        report.import_id = Some(id);
        let json = report.to_json_pretty();
        store.complete_import(
            id,
            &Outcome {
                success: false,
                processed_at: &now,
                report_json: &json,
            },
        )?;
        drop(store);
        write_report(&self.dir, name, &json)?;
        Ok(())
    }

    /// Removes a report, or a file on disk that is not being imported.
    /// Uploads already queued are not removed: their import is under way.
    pub fn remove(&self, name: &str) -> Result<(), AreaError> {
        paths::check_name(name)?;
        if name.starts_with(OWN_TEMP_PREFIX) {
            return Err(AreaError::NotFound(name.to_string()));
        }
        match self.dir.remove_file(name) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if self.stat(name).is_ok() {
                    Err(AreaError::NotRemovable(name.to_string()))
                } else {
                    Err(AreaError::NotFound(name.to_string()))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// One of the account's imports as recorded (pending ones have no
    /// report yet); `None` when it is not this account's.
    pub fn import(&self, import_id: i64) -> Result<Option<ImportRecord>, AreaError> {
        Ok(self.area.store().import(self.account_id, import_id)?)
    }

    /// The account's most recent imports, newest first.
    pub fn imports(&self, limit: usize) -> Result<Vec<ImportRecord>, AreaError> {
        Ok(self.area.store().imports(self.account_id, limit)?)
    }

    /// Whether a SETSTAT on `name` may succeed (as a no-op): the file is
    /// there, or was taken for import less than [`SETSTAT_GRACE`] ago.
    pub fn setstat_allowed(&self, name: &str) -> bool {
        if self.stat(name).is_ok() {
            return true;
        }
        let mut recent = self.area.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.retain(|_, at| at.elapsed() < SETSTAT_GRACE);
        recent.contains_key(&(self.account_id, name.to_string()))
    }
}

/// A unique spool name that still says whose upload it is and what it was
/// called, so that recovery can answer for an upload that was moved to the
/// spool but not yet recorded (`<account id>.<unique>.<hex name>`).
fn spool_token(account_id: i64, name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = TOKEN_COUNTER.fetch_add(1, Ordering::Relaxed);
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{account_id}.{nanos:x}{n:x}.{hex}")
}

/// The account id and upload name a spool token carries.
pub fn parse_spool_token(token: &str) -> Option<(i64, String)> {
    let mut parts = token.splitn(3, '.');
    let account: i64 = parts.next()?.parse().ok()?;
    parts.next()?;
    let hex = parts.next()?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect();
    Some((account, String::from_utf8(bytes?).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_tokens_carry_account_and_name() {
        let t = spool_token(42, "items_2025@stock.csv");
        assert_eq!(
            parse_spool_token(&t),
            Some((42, "items_2025@stock.csv".into()))
        );
        assert_ne!(spool_token(42, "a.csv"), spool_token(42, "a.csv"));
        assert_eq!(parse_spool_token("garbage"), None);
        assert_eq!(parse_spool_token(&format!("request-{t}")), None);
    }
}
