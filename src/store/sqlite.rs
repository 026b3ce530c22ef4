//! The embedded store: one SQLite file in the data folder.
//!
//! Settings chosen for durability first: WAL journal with
//! `synchronous=FULL`, so a committed import survives a power cut; foreign
//! keys on; a generous busy timeout, because imports of different accounts
//! take turns at SQLite's single writer. Each file is applied in one
//! `BEGIN IMMEDIATE` transaction.
//!
//! The per-file "seen" set lives in a TEMP table rather than in memory, so an
//! import of a million lines keeps a bounded memory footprint: SQLite spills
//! it to a temporary file past its cache.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{FromSql, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, ToSql, Transaction, TransactionBehavior, params};

use super::{
    AccountRecord, ImportRecord, LedgerTx, Outcome, Result, Seen, Shape, Store, StoreError,
    StoredKey,
};
use crate::ledger::{CLIENT_CODE, FileType, Value};

/// Migrations, applied in order; `PRAGMA user_version` is the number applied.
const MIGRATIONS: &[&str] = &[include_str!("migrations/001_initial.sql")];

/// The database file's name inside the data folder.
pub const DB_FILE: &str = "dropgate.db";

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

impl FromSql for Value {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Ok(match value {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Int(i),
            ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
            // Nothing in the ledger is stored as REAL or BLOB; read them as
            // text rather than fail an import on a hand-edited database.
            ValueRef::Real(r) => Value::Text(r.to_string()),
            ValueRef::Blob(b) => Value::Text(String::from_utf8_lossy(b).into_owned()),
        })
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir` and applies pending
    /// migrations.
    pub fn open(data_dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Open {
            path: data_dir.to_path_buf(),
            source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
        })?;
        let path = data_dir.join(DB_FILE);
        let conn = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        conn.busy_timeout(Duration::from_secs(60))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // 64 MiB of page cache: enough to keep the indexes of a large
        // ledger hot, and a fixed bound whatever the file size.
        conn.pragma_update(None, "cache_size", -65536)?;
        conn.set_prepared_statement_cache_capacity(64);
        let mut store = SqliteStore { conn, path };
        store.migrate()?;
        store.conn.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS seen (
                 kind INTEGER NOT NULL, a INTEGER NOT NULL, b INTEGER NOT NULL,
                 line INTEGER NOT NULL, PRIMARY KEY (kind, a, b)
             ) WITHOUT ROWID;",
        )?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&mut self) -> Result<()> {
        let known = MIGRATIONS.len() as i64;
        let found: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > known {
            return Err(StoreError::TooNew { found, known });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }
}

/// The SQL column a ledger column is stored in.
fn sql_column(file_type: FileType, name: &'static str) -> &'static str {
    if name == CLIENT_CODE && file_type != FileType::Clients {
        "client_ref"
    } else {
        name
    }
}

fn account_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AccountRecord> {
    Ok(AccountRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        password_hash: r.get(2)?,
        settings: r.get(3)?,
        created_at: r.get(4)?,
    })
}

fn import_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ImportRecord> {
    Ok(ImportRecord {
        id: r.get(0)?,
        account_id: r.get(1)?,
        file_name: r.get(2)?,
        file_type: r.get(3)?,
        status: r.get(4)?,
        success: r.get(5)?,
        received_at: r.get(6)?,
        processed_at: r.get(7)?,
        report: r.get(8)?,
    })
}

const ACCOUNT_COLUMNS: &str = "id, name, password_hash, settings, created_at";
const IMPORT_COLUMNS: &str =
    "id, account_id, file_name, file_type, status, success, received_at, processed_at, report";

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn record_outcome(conn: &Connection, import_id: i64, outcome: &Outcome<'_>) -> Result<()> {
    conn.execute(
        "UPDATE imports SET status = 'done', success = ?2, processed_at = ?3, report = ?4
         WHERE id = ?1",
        params![
            import_id,
            outcome.success,
            outcome.processed_at,
            outcome.report_json
        ],
    )?;
    Ok(())
}

impl Store for SqliteStore {
    fn create_account(&mut self, name: &str, password_hash: Option<&str>) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO accounts (name, password_hash, created_at) VALUES (?1, ?2, ?3)",
            params![name, password_hash, now()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn account(&self, name: &str) -> Result<Option<AccountRecord>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE name = ?1"),
                [name],
                account_from_row,
            )
            .optional()?)
    }

    fn accounts(&self) -> Result<Vec<AccountRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY name"
        ))?;
        let rows = stmt.query_map([], account_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn remove_account(&mut self, name: &str) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM accounts WHERE name = ?1", [name])?
            > 0)
    }

    fn set_password_hash(&mut self, account_id: i64, hash: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE accounts SET password_hash = ?2 WHERE id = ?1",
            params![account_id, hash],
        )?;
        Ok(())
    }

    fn set_settings(&mut self, account_id: i64, settings_json: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE accounts SET settings = ?2 WHERE id = ?1",
            params![account_id, settings_json],
        )?;
        Ok(())
    }

    fn add_key(&mut self, account_id: i64, key: &StoredKey) -> Result<bool> {
        Ok(self.conn.execute(
            "INSERT INTO account_keys (account_id, algorithm, key_base64, comment, added_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            params![
                account_id,
                key.algorithm,
                key.key_base64,
                key.comment,
                now()
            ],
        )? > 0)
    }

    fn keys(&self, account_id: i64) -> Result<Vec<StoredKey>> {
        let mut stmt = self.conn.prepare(
            "SELECT algorithm, key_base64, comment FROM account_keys WHERE account_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([account_id], |r| {
            Ok(StoredKey {
                algorithm: r.get(0)?,
                key_base64: r.get(1)?,
                comment: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn create_import(
        &mut self,
        account_id: i64,
        file_name: &str,
        file_type: Option<FileType>,
        received_at: &str,
    ) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO imports (account_id, file_name, file_type, received_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                account_id,
                file_name,
                file_type.map(FileType::as_str),
                received_at
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn complete_import(&mut self, import_id: i64, outcome: &Outcome<'_>) -> Result<()> {
        record_outcome(&self.conn, import_id, outcome)
    }

    fn import(&self, account_id: i64, import_id: i64) -> Result<Option<ImportRecord>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {IMPORT_COLUMNS} FROM imports WHERE account_id = ?1 AND id = ?2"),
                params![account_id, import_id],
                import_from_row,
            )
            .optional()?)
    }

    fn imports(&self, account_id: i64, limit: usize) -> Result<Vec<ImportRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE account_id = ?1 ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![account_id, limit as i64], import_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn begin_import(&mut self, account_id: i64) -> Result<Box<dyn LedgerTx + '_>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM temp.seen", [])?;
        Ok(Box::new(SqliteLedger {
            tx,
            account_id,
            shapes: Vec::new(),
        }))
    }

    fn export(
        &self,
        account_id: i64,
        file_type: FileType,
        open_only: bool,
        row: &mut dyn FnMut(&[Value]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let columns = file_type.columns();
        let select: Vec<String> = columns
            .iter()
            .map(|c| {
                if c.name == CLIENT_CODE && file_type != FileType::Clients {
                    "c.client_code".to_string()
                } else {
                    format!("t.{}", c.name)
                }
            })
            .collect();
        let select = select.join(", ");
        let sql = match file_type {
            FileType::Clients => {
                format!("SELECT {select} FROM clients t WHERE t.account_id = ?1 ORDER BY t.id")
            }
            FileType::Items | FileType::Contacts => {
                let open = if open_only && file_type == FileType::Items {
                    " AND t.item_date_payment IS NULL"
                } else {
                    ""
                };
                format!(
                    "SELECT {select} FROM {table} t JOIN clients c ON c.id = t.client_ref
                     WHERE t.account_id = ?1{open} ORDER BY t.id",
                    table = file_type.as_str()
                )
            }
            FileType::Users => format!(
                "SELECT {select} FROM user_clients uc
                 JOIN users t ON t.id = uc.user_id JOIN clients c ON c.id = uc.client_ref
                 WHERE t.account_id = ?1 ORDER BY t.id, c.id"
            ),
        };
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query([account_id])?;
        let mut values = Vec::with_capacity(columns.len());
        while let Some(r) = rows.next()? {
            values.clear();
            for i in 0..columns.len() {
                values.push(r.get::<_, Value>(i)?);
            }
            row(&values)?;
        }
        Ok(())
    }
}

/// The SQL of one [`Shape`], built once per file.
struct ShapeSql {
    width: usize,
    find: String,
    insert: String,
    update: String,
}

struct SqliteLedger<'c> {
    tx: Transaction<'c>,
    account_id: i64,
    shapes: Vec<ShapeSql>,
}

impl SqliteLedger<'_> {
    fn shape_sql(&self, shape: Shape) -> &ShapeSql {
        &self.shapes[shape.0]
    }
}

/// `ORDER`-independent: both the seen set and the items table are keyed by
/// the account's own rows, so the subquery below only ever sees this file.
const UNSEEN_OPEN_ITEMS: &str = "FROM items WHERE account_id = ?1 AND item_date_payment IS NULL
     AND id NOT IN (SELECT a FROM temp.seen WHERE kind = 1)";

impl LedgerTx for SqliteLedger<'_> {
    fn shape(&mut self, file_type: FileType, columns: &[&'static str]) -> Result<Shape> {
        let table = file_type.as_str();
        let cols: Vec<&str> = columns.iter().map(|c| sql_column(file_type, c)).collect();
        let select = if cols.is_empty() {
            String::new()
        } else {
            format!(", {}", cols.join(", "))
        };
        let find = format!("SELECT id{select} FROM {table} WHERE account_id = ?1 AND ident = ?2");
        let placeholders: Vec<String> = (0..cols.len()).map(|i| format!("?{}", i + 3)).collect();
        let insert = format!(
            "INSERT INTO {table} (account_id, ident{select}) VALUES (?1, ?2{})",
            placeholders
                .iter()
                .map(|p| format!(", {p}"))
                .collect::<String>()
        );
        let sets: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ?{}", i + 2))
            .collect();
        let update = if sets.is_empty() {
            // Nothing to write: a harmless statement keeps the code uniform.
            format!("UPDATE {table} SET id = id WHERE id = ?1")
        } else {
            format!("UPDATE {table} SET {} WHERE id = ?1", sets.join(", "))
        };
        self.shapes.push(ShapeSql {
            width: cols.len(),
            find,
            insert,
            update,
        });
        Ok(Shape(self.shapes.len() - 1))
    }

    fn find(&mut self, shape: Shape, ident: &str) -> Result<Option<(i64, Vec<Value>)>> {
        let sql = self.shape_sql(shape);
        let width = sql.width;
        let mut stmt = self.tx.prepare_cached(&sql.find)?;
        let found = stmt
            .query_row(params![self.account_id, ident], |r| {
                let id: i64 = r.get(0)?;
                let mut values = Vec::with_capacity(width);
                for i in 0..width {
                    values.push(r.get::<_, Value>(i + 1)?);
                }
                Ok((id, values))
            })
            .optional()?;
        Ok(found)
    }

    fn insert(&mut self, shape: Shape, ident: &str, values: &[Value]) -> Result<i64> {
        let sql = self.shape_sql(shape);
        debug_assert_eq!(values.len(), sql.width);
        let mut stmt = self.tx.prepare_cached(&sql.insert)?;
        stmt.raw_bind_parameter(1, self.account_id)?;
        stmt.raw_bind_parameter(2, ident)?;
        for (i, v) in values.iter().enumerate() {
            stmt.raw_bind_parameter(i + 3, v)?;
        }
        stmt.raw_execute()?;
        Ok(self.tx.last_insert_rowid())
    }

    fn update(&mut self, shape: Shape, id: i64, values: &[Value]) -> Result<()> {
        let sql = self.shape_sql(shape);
        debug_assert_eq!(values.len(), sql.width);
        let mut stmt = self.tx.prepare_cached(&sql.update)?;
        stmt.raw_bind_parameter(1, id)?;
        for (i, v) in values.iter().enumerate() {
            stmt.raw_bind_parameter(i + 2, v)?;
        }
        stmt.raw_execute()?;
        Ok(())
    }

    fn client_by_code(&mut self, code: &str) -> Result<Option<i64>> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT id FROM clients WHERE account_id = ?1 AND ident = ?2")?;
        Ok(stmt
            .query_row(params![self.account_id, code], |r| r.get(0))
            .optional()?)
    }

    fn client_code_by_unique_key(&mut self, key: &str) -> Result<Option<(i64, String)>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT id, client_code FROM clients WHERE account_id = ?1 AND client_unique_key = ?2",
        )?;
        Ok(stmt
            .query_row(params![self.account_id, key], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
    }

    fn mark_seen(&mut self, what: Seen, a: i64, b: i64, line: u64) -> Result<Option<u64>> {
        let kind = what as i64;
        let inserted = self
            .tx
            .prepare_cached(
                "INSERT INTO temp.seen (kind, a, b, line) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![kind, a, b, line as i64])?;
        if inserted == 1 {
            return Ok(None);
        }
        let earlier: i64 = self
            .tx
            .prepare_cached("SELECT line FROM temp.seen WHERE kind = ?1 AND a = ?2 AND b = ?3")?
            .query_row(params![kind, a, b], |r| r.get(0))?;
        Ok(Some(earlier as u64))
    }

    fn count_open_items(&mut self) -> Result<u64> {
        Ok(self.tx.query_row(
            "SELECT count(*) FROM items WHERE account_id = ?1 AND item_date_payment IS NULL",
            [self.account_id],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    fn count_unseen_open_items(&mut self) -> Result<u64> {
        Ok(self.tx.query_row(
            &format!("SELECT count(*) {UNSEEN_OPEN_ITEMS}"),
            [self.account_id],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    fn clear_unseen_open_items(&mut self, date: &str) -> Result<u64> {
        let n = self.tx.execute(
            &format!(
                "UPDATE items SET item_date_payment = ?2, item_amount_remaining_inc_tax = 0,
                     item_amount_remaining = CASE WHEN item_amount_remaining IS NULL THEN NULL ELSE 0 END
                 WHERE id IN (SELECT id {UNSEEN_OPEN_ITEMS})"
            ),
            params![self.account_id, date],
        )?;
        Ok(n as u64)
    }

    fn set_collection_contact(&mut self, client_ref: i64, contact_id: i64) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE contacts SET contact_collection = (id = ?2)
                 WHERE client_ref = ?1 AND (contact_collection = 1 OR id = ?2)",
            )?
            .execute(params![client_ref, contact_id])?;
        Ok(())
    }

    fn link_user(&mut self, user_id: i64, client_ref: i64) -> Result<bool> {
        Ok(self
            .tx
            .prepare_cached(
                "INSERT INTO user_clients (user_id, client_ref) VALUES (?1, ?2)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![user_id, client_ref])?
            == 1)
    }

    fn unlink_users_not_seen(&mut self) -> Result<Vec<i64>> {
        const STALE: &str = "FROM user_clients uc
             WHERE uc.client_ref IN (SELECT b FROM temp.seen WHERE kind = 3)
               AND NOT EXISTS (SELECT 1 FROM temp.seen s
                               WHERE s.kind = 3 AND s.a = uc.user_id AND s.b = uc.client_ref)";
        let users: Vec<i64> = {
            let mut stmt = self
                .tx
                .prepare(&format!("SELECT DISTINCT uc.user_id {STALE} ORDER BY 1"))?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        self.tx.execute(
            &format!(
                "DELETE FROM user_clients WHERE (user_id, client_ref) IN
                 (SELECT uc.user_id, uc.client_ref {STALE})"
            ),
            [],
        )?;
        Ok(users)
    }

    fn commit(self: Box<Self>, import_id: i64, outcome: &Outcome<'_>) -> Result<()> {
        record_outcome(&self.tx, import_id, outcome)?;
        self.tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ledger_column_has_a_table_column() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        for t in FileType::ALL {
            let mut stmt = store
                .conn
                .prepare(&format!(
                    "SELECT name FROM pragma_table_info('{}')",
                    t.as_str()
                ))
                .unwrap();
            let names: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            for c in t.columns() {
                if t == FileType::Users && c.name == CLIENT_CODE {
                    continue; // users link to clients through user_clients
                }
                let want = sql_column(t, c.name);
                assert!(names.iter().any(|n| n == want), "{t}.{want} missing");
            }
        }
    }

    #[test]
    fn reopening_applies_no_migration_twice() {
        let dir = tempfile::tempdir().unwrap();
        SqliteStore::open(dir.path()).unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let v: i64 = store
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
    }
}
