//! The jobs: from a queued upload to its report, exactly once.
//!
//! The journal is the store: an upload is queued by recording its import
//! (with the spool name of its file) before the client is told it
//! succeeded ([`crate::drop_area::AccountArea::complete`]). From there:
//!
//! - the scheduler ([`run`]) keeps one queue per account and starts that
//!   account's imports one at a time, oldest first, so `clients` uploaded
//!   before `items` are applied first; different accounts are imported in
//!   parallel, up to `workers` at once, on blocking threads, so a protocol
//!   session is never held up by an import;
//! - a job ([`process`]) imports the spooled file through the engine,
//!   which commits the ledger changes and the report in one transaction,
//!   then publishes: report into the account's folder, upload into the
//!   archive, spool mark cleared;
//! - at start, [`recover`] queues again every import whose upload is still
//!   spooled: one not yet committed is imported (its transaction was rolled
//!   back by SQLite), one already committed is only published (its report
//!   comes from the store, the ledger is not touched again). An upload that
//!   reached the spool but was never recorded was never acknowledged: it is
//!   removed and answered with `UPLOAD_INCOMPLETE`.
//!
//! Every acknowledged upload thus ends with exactly one applied import and
//! one report, whatever the point at which the server stopped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::accounts::AccountSettings;
use crate::drop_area::{DropArea, parse_spool_token};
use crate::engine::{self, ImportRequest, options::ImportOptions};
use crate::store::{SqliteStore, Store};

/// One queued import.
#[derive(Debug)]
struct Job {
    account_id: i64,
    import_id: i64,
    /// Told when the import has ended (an HTTP request waiting for it).
    done: Option<oneshot::Sender<()>>,
}

/// Where completed uploads are announced; cheap to clone, usable from any
/// thread.
#[derive(Clone, Debug)]
pub struct Queue {
    sender: mpsc::UnboundedSender<Job>,
}

impl Queue {
    pub fn submit(&self, account_id: i64, import_id: i64) {
        // A closed queue means the server is stopping: the import stays
        // recorded with its spooled file, and recovery takes it next start.
        let _ = self.sender.send(Job {
            account_id,
            import_id,
            done: None,
        });
    }

    /// Submits an import someone waits for: the receiver fires when the
    /// import has ended, successfully or not (the store says how), and is
    /// dropped unfired when the server stops before it ran.
    pub fn submit_watched(&self, account_id: i64, import_id: i64) -> oneshot::Receiver<()> {
        let (done, ended) = oneshot::channel();
        let _ = self.sender.send(Job {
            account_id,
            import_id,
            done: Some(done),
        });
        ended
    }
}

/// The scheduler's end of the queue.
pub struct Receiver {
    receiver: mpsc::UnboundedReceiver<Job>,
}

pub fn queue() -> (Queue, Receiver) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (Queue { sender }, Receiver { receiver })
}

/// What the jobs need to know.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// Imports running at once (of different accounts).
    pub workers: usize,
    /// The server's import defaults, under each account's.
    pub import_defaults: ImportOptions,
}

/// Runs the scheduler until `stop` (or until every [`Queue`] is dropped),
/// then lets the imports under way finish. Queued imports not yet started
/// stay recorded: [`recover`] takes them at the next start.
pub async fn run(
    mut receiver: Receiver,
    area: Arc<DropArea>,
    settings: Settings,
    stop: tokio_util::sync::CancellationToken,
) {
    let settings = Arc::new(settings);
    let workers = settings.workers.max(1);
    // Connections kept between jobs: opening one per import costs more than
    // a small import.
    let connections: Arc<std::sync::Mutex<Vec<SqliteStore>>> = Arc::default();
    let mut waiting: HashMap<i64, VecDeque<Job>> = HashMap::new();
    let mut busy: HashSet<i64> = HashSet::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<i64>();
    let mut open = true;
    loop {
        // Start what can start: an account not busy, a worker free, in the
        // order accounts' jobs arrived.
        let ready: Vec<i64> = waiting
            .iter()
            .filter(|(account, queue)| !busy.contains(account) && !queue.is_empty())
            .map(|(account, _)| *account)
            .collect();
        for account in ready {
            if busy.len() >= workers {
                break;
            }
            let Some(job) = waiting.get_mut(&account).and_then(VecDeque::pop_front) else {
                continue;
            };
            let Job {
                import_id,
                done: watcher,
                ..
            } = job;
            busy.insert(account);
            let (area, settings, done) = (area.clone(), settings.clone(), done_tx.clone());
            let connections = connections.clone();
            tokio::task::spawn_blocking(move || {
                let kept = connections.lock().unwrap_or_else(|p| p.into_inner()).pop();
                let result = match kept {
                    Some(store) => Ok(store),
                    None => SqliteStore::open(&settings.data_dir),
                }
                .map_err(JobError::from)
                .and_then(|mut store| {
                    let result = process(&area, &settings, &mut store, import_id);
                    connections
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(store);
                    result
                });
                if let Err(e) = result {
                    tracing::error!(import_id, error = %e, "import job failed; kept for retry at next start");
                }
                if let Some(watcher) = watcher {
                    let _ = watcher.send(());
                }
                let _ = done.send(account);
            });
        }
        if !open && busy.is_empty() {
            return;
        }
        tokio::select! {
            job = receiver.receiver.recv(), if open => match job {
                Some(job) => waiting.entry(job.account_id).or_default().push_back(job),
                None => open = false,
            },
            _ = stop.cancelled(), if open => {
                open = false;
                waiting.clear();
            }
            Some(account) = done_rx.recv() => {
                busy.remove(&account);
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error(transparent)]
    Area(#[from] crate::drop_area::AreaError),
    #[error("import {0} is not recorded")]
    Unknown(i64),
}

/// Imports one queued upload (unless its import was committed already) and
/// publishes its report. Blocking.
pub fn process(
    area: &DropArea,
    settings: &Settings,
    store: &mut SqliteStore,
    import_id: i64,
) -> Result<(), JobError> {
    let import = store
        .import_by_id(import_id)?
        .ok_or(JobError::Unknown(import_id))?;
    let Some(token) = import.spool.clone() else {
        return Ok(()); // published already
    };
    let Some(account) = store.account_by_id(import.account_id)? else {
        // The account was removed while its upload waited.
        let _ = std::fs::remove_file(area.spool_path(&token));
        store.set_spool(import_id, None)?;
        return Ok(());
    };
    let report_json = match (&import.status[..], &import.report) {
        ("done", Some(report)) => report.clone(),
        _ => {
            let defaults = AccountSettings::from_json(&account.settings)
                .apply(&settings.import_defaults)
                .unwrap_or_else(|e| {
                    tracing::warn!(account = %account.name, error = %e, "account settings invalid; using the server's defaults");
                    settings.import_defaults.clone()
                });
            let received_at = chrono::DateTime::parse_from_rfc3339(&import.received_at)
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or_else(|_| chrono::Utc::now());
            let started = std::time::Instant::now();
            let report = engine::import_file(
                store,
                ImportRequest {
                    path: &area.spool_path(&token),
                    file_name: &import.file_name,
                    account_id: account.id,
                    import_id: Some(import_id),
                    defaults,
                    explicit: &import.request_options,
                    received_at,
                    progress: None,
                },
            )?;
            tracing::info!(
                account = %account.name,
                file = %import.file_name,
                import_id,
                success = report.success,
                error_code = report.error_code.map(|c| c.as_str()),
                lines_read = report.lines_read,
                lines_imported = report.lines_imported,
                exceptions = report.nb_exception_lines,
                duration_ms = started.elapsed().as_millis() as u64,
                "import"
            );
            crate::metrics::import(
                report.file_type.as_deref().unwrap_or("unknown"),
                report.error_code.map_or("success", |c| c.as_str()),
                report.lines_imported,
                report.nb_exception_lines,
                started.elapsed(),
            );
            crate::failpoint::hit("after-commit");
            report.to_json_pretty()
        }
    };
    area.publish(store, &account.name, &import, &report_json)?;
    Ok(())
}

/// Finishes at start what a stop interrupted: queues every import whose
/// upload is still spooled, oldest first, and answers for spooled files
/// that were never recorded. Call before the doors open.
pub fn recover(
    area: &Arc<DropArea>,
    data_dir: &std::path::Path,
    queue: &Queue,
) -> Result<usize, JobError> {
    let store = SqliteStore::open(data_dir)?;
    let spooled = store.spooled_imports()?;
    let known: HashSet<&str> = spooled.iter().filter_map(|i| i.spool.as_deref()).collect();
    for entry in std::fs::read_dir(area.spool_root()).map_err(crate::drop_area::AreaError::from)? {
        let entry = entry.map_err(crate::drop_area::AreaError::from)?;
        let Ok(token) = entry.file_name().into_string() else {
            continue;
        };
        if known.contains(token.as_str()) {
            continue;
        }
        // Moved to the spool, never recorded: never acknowledged.
        if let Some((account_id, name)) = parse_spool_token(&token)
            && let Some(account) = store.account_by_id(account_id)?
        {
            area.account(account.id, &account.name)?.report_incomplete(
                &name,
                &format!(
                    "the server stopped while '{name}' was being received: nothing was \
                     imported; upload the file again"
                ),
            )?;
        }
        let _ = std::fs::remove_file(entry.path());
    }
    // A file left in an account's folder (other than a report) belonged to
    // a session that the stop ended: never complete, never acknowledged.
    for account in store.accounts()? {
        let folder = area.account(account.id, &account.name)?;
        // Never acknowledged either: a private HTTP upload, or a report cut
        // off before its rename (publishing writes it again).
        folder.remove_own_leftovers()?;
        for entry in folder.list()? {
            if entry.kind == crate::drop_area::EntryKind::Upload {
                folder.discard_incomplete(
                    &entry.name,
                    &format!(
                        "the server stopped while '{}' was being uploaded ({} bytes received): \
                         nothing was imported; upload the file again",
                        entry.name, entry.size
                    ),
                )?;
            }
        }
    }
    for import in &spooled {
        queue.submit(import.account_id, import.id);
    }
    if !spooled.is_empty() {
        tracing::info!(count = spooled.len(), "recovery: queued unfinished imports");
    }
    Ok(spooled.len())
}
