//! The drop area and the jobs behind it: confinement, naming, completion,
//! listing, per-account order, partial uploads and recovery at every point
//! where a stop can interrupt the work. Real files, a real SQLite store; no
//! door yet: the calls a door makes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dropgate::drop_area::{AccountArea, AreaError, Completion, DropArea, EntryKind};
use dropgate::engine::options::ImportOptions;
use dropgate::jobs::{self, Queue, Settings};
use dropgate::store::{SqliteStore, Store};
use serde_json::Value as Json;

struct Gate {
    _dir: tempfile::TempDir,
    data: PathBuf,
    area: Arc<DropArea>,
    queue: Option<Queue>,
    acme: AccountArea,
    scheduler: Option<tokio::task::JoinHandle<()>>,
    receiver: Option<jobs::Receiver>,
}

fn settings(data: &Path) -> Settings {
    Settings {
        data_dir: data.to_path_buf(),
        workers: 2,
        import_defaults: ImportOptions::default(),
    }
}

impl Gate {
    /// A data folder with accounts `acme` and `other`; jobs not started.
    fn new() -> Gate {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut store = SqliteStore::open(&data).unwrap();
        store.create_account("acme", None).unwrap();
        store.create_account("other", None).unwrap();
        drop(store);
        Gate::reopen(dir, data)
    }

    /// The same data folder as after a restart.
    fn reopen(dir: tempfile::TempDir, data: PathBuf) -> Gate {
        let (queue, receiver) = jobs::queue();
        let area = DropArea::open(&data, queue.clone()).unwrap();
        let acme = account(&area, &data, "acme");
        Gate {
            _dir: dir,
            data,
            area,
            queue: Some(queue),
            acme,
            scheduler: None,
            receiver: Some(receiver),
        }
    }

    fn start_jobs(&mut self) {
        let receiver = self.receiver.take().unwrap();
        self.scheduler = Some(tokio::spawn(jobs::run(
            receiver,
            self.area.clone(),
            settings(&self.data),
            tokio_util::sync::CancellationToken::new(),
        )));
    }

    fn recover(&self) -> usize {
        jobs::recover(&self.area, &self.data, self.queue.as_ref().unwrap()).unwrap()
    }

    /// Stops as a crash would, keeping the data folder: nothing is flushed
    /// or finished beyond what was already on disk.
    fn restart(mut self) -> Gate {
        if let Some(s) = self.scheduler.take() {
            s.abort();
        }
        let Gate { _dir, data, .. } = self;
        Gate::reopen(_dir, data)
    }

    fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.data).unwrap()
    }
}

fn account(area: &Arc<DropArea>, data: &Path, name: &str) -> AccountArea {
    let id = SqliteStore::open(data)
        .unwrap()
        .account(name)
        .unwrap()
        .unwrap()
        .id;
    area.account(id, name).unwrap()
}

/// Uploads `body` as `name` the way a door does, and completes it.
fn upload(area: &AccountArea, name: &str, body: &str) -> Completion {
    let mut up = area.create_upload(name, true).unwrap();
    // Two writes at explicit offsets, the second first, as pipelined
    // SFTP writes may land.
    let (a, b) = body.as_bytes().split_at(body.len() / 2);
    up.write_at(a.len() as u64, b).unwrap();
    up.write_at(0, a).unwrap();
    area.complete(up).unwrap()
}

/// Waits (polling, with a deadline) for a report to appear, and reads it.
async fn report(area: &AccountArea, name: &str) -> Json {
    let deadline = Instant::now() + Duration::from_secs(30);
    let report_name = format!("{name}.report.json");
    loop {
        if let Ok(mut f) = area.open_read(&report_name) {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut f, &mut text).unwrap();
            return serde_json::from_str(&text).unwrap();
        }
        assert!(Instant::now() < deadline, "no report for {name}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn names(area: &AccountArea) -> Vec<(String, EntryKind)> {
    area.list()
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.kind))
        .collect()
}

const CLIENTS: &str = "client_code;client_business_name\nC1;A\nC2;B\n";
const ITEMS: &str = "client_code;item_type;item_number;item_date_issue;item_date_due;item_amount_initial_inc_tax\nC1;FAC;1;2025-01-01;2025-02-01;10\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_replaced_by_its_report_and_archived() {
    let mut g = Gate::new();
    g.start_jobs();
    assert!(matches!(
        upload(&g.acme, "clients.csv", CLIENTS),
        Completion::Queued(_)
    ));
    let r = report(&g.acme, "clients.csv").await;
    assert_eq!(r["success"], true);
    assert_eq!(r["nb_client_added"], 2);
    // The upload is gone from the folder, its report is there, and the
    // file is kept in the archive.
    assert_eq!(
        names(&g.acme),
        vec![("clients.csv.report.json".into(), EntryKind::Report)]
    );
    let archived: Vec<_> = std::fs::read_dir(g.data.join("archive/acme"))
        .unwrap()
        .collect();
    assert_eq!(archived.len(), 1);
    assert!(g.store().spooled_imports().unwrap().is_empty());
    // The report can be removed by the client.
    g.acme.remove("clients.csv.report.json").unwrap();
    assert!(names(&g.acme).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_imported_in_order_per_account() {
    let mut g = Gate::new();
    g.start_jobs();
    // 25 pairs: each items file needs the clients file just before it.
    for i in 0..25 {
        upload(
            &g.acme,
            &format!("clients_{i:02}.csv"),
            &format!("client_code;client_business_name\nK{i};Client {i}\n"),
        );
        upload(
            &g.acme,
            &format!("items_{i:02}.csv"),
            &format!(
                "client_code;item_type;item_number;item_date_issue;item_date_due;item_amount_initial_inc_tax\nK{i};FAC;N{i};2025-01-01;2025-02-01;10\n"
            ),
        );
    }
    for i in 0..25 {
        let r = report(&g.acme, &format!("items_{i:02}.csv")).await;
        assert_eq!(r["nb_item_added"], 1, "items_{i:02}: {r}");
        assert!(r.get("exception_lines").is_none(), "{r}");
    }
    let ids: Vec<i64> = g
        .store()
        .imports(g.acme.account_id, 100)
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids.len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_uploads_are_listed_until_processed() {
    let g = Gate::new(); // jobs not running: uploads stay queued
    upload(&g.acme, "items.csv", ITEMS);
    let entries = g.acme.list().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].name, "items.csv");
    assert_eq!(entries[0].kind, EntryKind::Pending);
    assert_eq!(entries[0].size, ITEMS.len() as u64);
    assert_eq!(g.acme.stat("items.csv").unwrap().kind, EntryKind::Pending);
    assert!(
        g.acme.setstat_allowed("items.csv"),
        "WinSCP's SETSTAT after CLOSE"
    );
    assert!(matches!(
        g.acme.remove("items.csv"),
        Err(AreaError::NotRemovable(_))
    ));
    // A second upload of the same name does not touch the queued one.
    upload(&g.acme, "items.csv", ITEMS);
    assert_eq!(
        g.store()
            .spooled_for_account(g.acme.account_id)
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_name_is_processed_once_when_renamed() {
    let mut g = Gate::new();
    g.start_jobs();
    upload(&g.acme, "clients.csv", CLIENTS);
    report(&g.acme, "clients.csv").await;
    assert_eq!(
        upload(&g.acme, "items.csv.filepart", ITEMS),
        Completion::Kept
    );
    assert!(names(&g.acme).contains(&("items.csv.filepart".into(), EntryKind::Upload)));
    assert!(matches!(
        g.acme.rename("items.csv.filepart", "items.csv"),
        Ok(Completion::Queued(_))
    ));
    let r = report(&g.acme, "items.csv").await;
    assert_eq!(r["nb_item_added"], 1);
    let imports = g.store().imports(g.acme.account_id, 10).unwrap();
    assert_eq!(
        imports
            .iter()
            .filter(|i| i.file_name == "items.csv")
            .count(),
        1,
        "once"
    );
    assert!(!names(&g.acme).iter().any(|(n, _)| n.contains("filepart")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrecognized_names_get_a_file_type_unknown_report() {
    let mut g = Gate::new();
    g.start_jobs();
    upload(&g.acme, "invoices.csv", CLIENTS);
    let r = report(&g.acme, "invoices.csv").await;
    assert_eq!(r["error_code"], "FILE_TYPE_UNKNOWN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_upload_is_never_imported() {
    let g = Gate::new();
    let mut up = g.acme.create_upload("clients.csv", true).unwrap();
    up.write_at(0, CLIENTS.as_bytes()).unwrap();
    g.acme.abandon(up).unwrap();
    let r = report(&g.acme, "clients.csv").await;
    assert_eq!(r["success"], false);
    assert_eq!(r["error_code"], "UPLOAD_INCOMPLETE");
    assert!(
        r["error_description"]
            .as_str()
            .unwrap()
            .contains(&format!("{} bytes", CLIENTS.len()))
    );
    assert_eq!(
        names(&g.acme),
        vec![("clients.csv.report.json".into(), EntryKind::Report)]
    );
    assert!(g.store().spooled_imports().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_stay_inside_the_account_folder() {
    let g = Gate::new();
    let other = account(&g.area, &g.data, "other");
    upload(&other, "secret.txt.part", "not for acme");
    for escape in ["../other/secret.txt.part", "/etc/passwd", "sub/x.csv"] {
        assert!(
            g.acme.file_name(escape).is_err()
                || g.acme
                    .open_read(&g.acme.file_name(escape).unwrap())
                    .is_err(),
            "{escape}"
        );
    }
    assert_eq!(
        g.acme.file_name("/../../x.csv").unwrap(),
        "x.csv",
        "chroot: .. stops at /"
    );
    assert!(names(&g.acme).is_empty(), "acme does not see other's files");
    assert!(matches!(
        g.acme.remove("secret.txt.part"),
        Err(AreaError::NotFound(_))
    ));
    // Report names are dropgate's.
    assert!(matches!(
        g.acme.create_upload("x.csv.report.json", true),
        Err(AreaError::ReportName(_))
    ));
    // A symlink planted in the folder is not followed out of it.
    std::os::unix::fs::symlink("/etc/passwd", g.data.join("drop/acme/link.csv")).unwrap();
    assert!(g.acme.open_read("link.csv").is_err());
    assert!(g.acme.create_upload("link.csv", true).is_err());
}

// Recovery: a stop at each point of an upload's life ends, after restart,
// with exactly one import and one report.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_imports_what_was_queued_but_not_committed() {
    let g = Gate::new();
    upload(&g.acme, "clients.csv", CLIENTS);
    let mut g = g.restart();
    assert_eq!(g.recover(), 1);
    g.start_jobs();
    let r = report(&g.acme, "clients.csv").await;
    assert_eq!(r["nb_client_added"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_publishes_what_was_committed_without_importing_it_again() {
    let g = Gate::new();
    let Completion::Queued(id) = upload(&g.acme, "clients.csv", CLIENTS) else {
        panic!()
    };
    // The import commits, then the server stops before the report is
    // written.
    let import = g.store().import_by_id(id).unwrap().unwrap();
    let mut store = g.store();
    dropgate::engine::import_file(
        &mut store,
        dropgate::engine::ImportRequest {
            path: &g.area.spool_path(import.spool.as_deref().unwrap()),
            file_name: "clients.csv",
            account_id: g.acme.account_id,
            import_id: Some(id),
            defaults: ImportOptions::default(),
            explicit: &[],
            received_at: chrono::Utc::now(),
            progress: None,
        },
    )
    .unwrap();
    drop(store);
    let mut g = g.restart();
    assert_eq!(g.recover(), 1);
    g.start_jobs();
    let r = report(&g.acme, "clients.csv").await;
    // The committed report, not a second import (which would say unchanged).
    assert_eq!(r["nb_client_added"], 2);
    assert_eq!(r["import_id"], id);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !g.store().spooled_imports().unwrap().is_empty() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(g.store().imports(g.acme.account_id, 10).unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_after_the_report_before_the_archive_finishes_the_move() {
    let mut g = Gate::new();
    g.start_jobs();
    let Completion::Queued(id) = upload(&g.acme, "clients.csv", CLIENTS) else {
        panic!()
    };
    let first = report(&g.acme, "clients.csv").await;
    // Put the work back to "report written, upload not archived yet".
    let mut g = g.restart();
    let archive = g
        .data
        .join("archive/acme")
        .join(format!("{id}-clients.csv"));
    let token = "back-in-spool";
    std::fs::rename(&archive, g.area.spool_path(token)).unwrap();
    g.store().set_spool(id, Some(token)).unwrap();
    assert_eq!(g.recover(), 1);
    g.start_jobs();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !archive.exists() {
        assert!(Instant::now() < deadline, "archived again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        report(&g.acme, "clients.csv").await,
        first,
        "the same report"
    );
    assert_eq!(g.store().imports(g.acme.account_id, 10).unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_answers_for_an_upload_spooled_but_never_recorded() {
    let g = Gate::new();
    // What a stop between the move into the spool and the journal entry
    // leaves: a spooled file no import names.
    let mut up = g.acme.create_upload("items.csv", true).unwrap();
    up.write_at(0, ITEMS.as_bytes()).unwrap();
    drop(up);
    let token = format!(
        "{}.abc.{}",
        g.acme.account_id,
        "items.csv"
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    std::fs::rename(
        g.data.join("drop/acme/items.csv"),
        g.area.spool_path(&token),
    )
    .unwrap();
    let g = g.restart();
    assert_eq!(g.recover(), 0);
    let r = report(&g.acme, "items.csv").await;
    assert_eq!(r["error_code"], "UPLOAD_INCOMPLETE");
    assert!(!g.area.spool_path(&token).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_removes_private_uploads_and_unfinished_requests_silently() {
    let g = Gate::new();
    // An apiPutFiles upload and a synchronous request's body, both cut off
    // by a stop: neither was answered, so neither gets a report.
    let mut private = g.acme.create_private_upload("items.csv").unwrap();
    private.write_at(0, ITEMS.as_bytes()).unwrap();
    drop(private);
    let mut request = g.acme.create_request_upload().unwrap();
    request.write_at(0, ITEMS.as_bytes()).unwrap();
    drop(request);
    assert!(names(&g.acme).is_empty(), "private uploads are not listed");
    let g = g.restart();
    assert_eq!(g.recover(), 0);
    let folder: Vec<_> = std::fs::read_dir(g.data.join("drop/acme"))
        .unwrap()
        .collect();
    assert!(folder.is_empty(), "{folder:?}");
    let spool: Vec<_> = std::fs::read_dir(g.data.join("spool")).unwrap().collect();
    assert!(spool.is_empty(), "{spool:?}");
    assert!(g.store().imports(g.acme.account_id, 10).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_archives_and_reports_are_removed() {
    let mut g = Gate::new();
    g.start_jobs();
    upload(&g.acme, "clients.csv", CLIENTS);
    report(&g.acme, "clients.csv").await;
    upload(&g.acme, "keep.csv.part", "in progress");
    let retention = dropgate::drop_area::Retention {
        archive_days: 90,
        report_days: 30,
    };
    let now = std::time::SystemTime::now();
    assert_eq!(
        g.area.clean_up(retention, now).unwrap(),
        0,
        "nothing is old yet"
    );
    // 31 days later the report goes; 91 days later the archive too. An
    // upload in progress is never touched.
    let day = Duration::from_secs(86_400);
    assert_eq!(g.area.clean_up(retention, now + day * 31).unwrap(), 1);
    assert!(g.acme.open_read("clients.csv.report.json").is_err());
    assert_eq!(g.area.clean_up(retention, now + day * 91).unwrap(), 1);
    assert_eq!(
        std::fs::read_dir(g.data.join("archive/acme"))
            .unwrap()
            .count(),
        0
    );
    assert!(g.acme.open_read("keep.csv.part").is_ok());
}
