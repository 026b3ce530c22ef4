//! Test harness: a real SQLite store in a temporary data folder, one
//! account, and imports through the real engine.
#![allow(dead_code)]

pub mod http;
#[macro_use]
pub mod server;

use std::path::{Path, PathBuf};

use dropgate::accounts::AccountSettings;
use dropgate::engine::{self, ImportRequest, options::ImportOptions};
use dropgate::ledger::FileType;
use dropgate::store::{SqliteStore, Store};
use serde_json::Value as Json;

pub struct Ledger {
    pub dir: tempfile::TempDir,
    pub store: SqliteStore,
    pub account_id: i64,
    pub settings: AccountSettings,
}

impl Ledger {
    pub fn new() -> Ledger {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("data")).unwrap();
        let account_id = store.create_account("acme", None).unwrap();
        Ledger {
            dir,
            store,
            account_id,
            settings: AccountSettings::default(),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Sets account defaults, as `dropgate account set` does.
    pub fn set(&mut self, assignments: &[&str]) {
        let a: Vec<String> = assignments.iter().map(|s| s.to_string()).collect();
        self.settings.assign(&a).unwrap();
    }

    /// Writes `bytes` to a file called `name` and imports it.
    pub fn import(&mut self, name: &str, bytes: impl AsRef<[u8]>) -> Json {
        self.import_with(name, bytes, &[])
    }

    pub fn import_with(
        &mut self,
        name: &str,
        bytes: impl AsRef<[u8]>,
        options: &[(&str, &str)],
    ) -> Json {
        let path = self.dir.path().join("upload");
        std::fs::write(&path, bytes).unwrap();
        self.import_path(name, &path, options)
    }

    pub fn import_path(&mut self, name: &str, path: &Path, options: &[(&str, &str)]) -> Json {
        let explicit: Vec<(String, String)> = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let defaults = self.settings.apply(&ImportOptions::default()).unwrap();
        let report = engine::import_file(
            &mut self.store,
            ImportRequest {
                path,
                file_name: name,
                account_id: self.account_id,
                import_id: None,
                defaults,
                explicit: &explicit,
                received_at: chrono::Utc::now(),
                progress: None,
            },
        )
        .unwrap();
        serde_json::from_str(&report.to_json()).unwrap()
    }

    /// The ledger as CSV, as `dropgate export` writes it.
    pub fn export(&self, file_type: FileType, open_only: bool) -> String {
        let mut out = Vec::new();
        engine::export::export(&self.store, self.account_id, file_type, open_only, &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Every row of every ledger table, for "nothing changed" checks.
    pub fn dump(&self) -> String {
        let conn = rusqlite::Connection::open(self.data_dir().join("dropgate.db")).unwrap();
        let mut out = String::new();
        for table in ["clients", "items", "contacts", "users", "user_clients"] {
            let mut stmt = conn
                .prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2"))
                .unwrap();
            let n = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            while let Some(r) = rows.next().unwrap() {
                let cells: Vec<String> = (0..n)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect();
                out.push_str(&format!("{table}: {}\n", cells.join("|")));
            }
        }
        out
    }

    /// One column of the export, by the row whose `key_column` is `key`.
    pub fn cell(&self, file_type: FileType, key_column: &str, key: &str, column: &str) -> String {
        let csv = self.export(file_type, false);
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(b';')
            .from_reader(csv.as_bytes());
        let headers = reader.headers().unwrap().clone();
        let k = headers.iter().position(|h| h == key_column).unwrap();
        let c = headers.iter().position(|h| h == column).unwrap();
        for r in reader.records() {
            let r = r.unwrap();
            if &r[k] == key {
                return r[c].to_string();
            }
        }
        panic!("no {file_type} with {key_column} = {key}");
    }

    pub fn count(&self, file_type: FileType) -> usize {
        self.export(file_type, false).lines().count() - 1
    }

    pub fn open_items(&self) -> usize {
        self.export(FileType::Items, true).lines().count() - 1
    }
}

/// Builds a semicolon CSV from a header and rows.
pub fn csv(lines: &[&str]) -> String {
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

pub const CLIENTS: &str =
    "client_code;client_business_name\nC0001;My company\nC0002;Other company\nC0003;Third\n";

/// The counts every report has (SPEC §8's documented keys).
pub const DOCUMENTED_COUNTS: [&str; 7] = [
    "nb_client_added",
    "nb_client_modified",
    "nb_contact_added",
    "nb_item_added",
    "nb_item_modified",
    "nb_user_added",
    "nb_user_modified",
];

pub const ITEM_HEADER: &str =
    "client_code;item_type;item_number;item_date_issue;item_date_due;item_amount_initial_inc_tax";

pub fn exceptions(report: &Json) -> Vec<(String, String)> {
    report
        .get("exception_lines")
        .and_then(|e| e.as_object())
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

pub fn assert_ok(report: &Json) {
    assert_eq!(report["success"], true, "report: {report:#}");
}
