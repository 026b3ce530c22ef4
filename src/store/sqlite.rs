//! The embedded store: one SQLite file in the data folder.
//!
//! Settings chosen for durability first: WAL journal with
//! `synchronous=FULL`, so a committed import survives a power cut; foreign
//! keys on; a generous busy timeout, because imports of different accounts
//! take turns at SQLite's single writer. Each file is applied in one
//! `BEGIN IMMEDIATE` transaction.
//!
//! The per-file "seen" set ([`SeenLines`]) is kept in memory as one `u32`
//! line number per row id, dense over the span of ids the file touches: a
//! few bytes per row of the account's ledger, whatever the size of the file,
//! and no B-tree write per imported line.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{FromSql, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{
    Connection, OptionalExtension, Statement, ToSql, Transaction, TransactionBehavior, params,
};

use super::{
    AccountRecord, ImportRecord, LedgerTx, Lookup, Origin, Outcome, Result, Seen, Shape, Store,
    StoreError, StoredKey, TokenRecord,
};
use crate::ledger::{CLIENT_CODE, FileType, Value};

/// Migrations, applied in order; `PRAGMA user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/001_initial.sql"),
    include_str!("migrations/002_spool.sql"),
    include_str!("migrations/003_http.sql"),
];

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
        // 16 KiB pages: shallower B-trees and fewer WAL frames for the wide
        // item rows (measured: a million-line first import 16% faster than
        // with 4 KiB). Takes effect only when the database is created.
        conn.pragma_update(None, "page_size", 16384)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // 64 MiB of page cache: enough to keep the indexes of a large
        // ledger hot, and a fixed bound whatever the file size (128 MiB
        // measured no faster).
        conn.pragma_update(None, "cache_size", -65536)?;
        conn.set_prepared_statement_cache_capacity(64);
        let mut store = SqliteStore { conn, path };
        store.migrate()?;
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

/// Item columns kept in the `items` rows; the item's other (descriptive)
/// columns live in `item_details`, written only by files that have them.
/// ERP exports mostly carry just these, and every byte of a million-line
/// file's rows goes through the WAL and the checkpoint (measured: the first
/// import of the benchmark file 8% faster with the narrow row).
const ITEM_ROW_COLUMNS: [&str; 12] = [
    "client_code",
    "item_type",
    "item_number",
    "item_date_issue",
    "item_date_due",
    "item_amount_initial_inc_tax",
    "item_amount_initial",
    "item_amount_remaining_inc_tax",
    "item_amount_remaining",
    "item_currency",
    "item_date_payment",
    "item_unique_key",
];

/// The table holding a file type's descriptive columns, if any, and whether
/// a column lives there.
fn in_details(file_type: FileType, name: &str) -> bool {
    file_type == FileType::Items && !ITEM_ROW_COLUMNS.contains(&name)
}

const DETAILS_TABLE: &str = "item_details";

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
        spool: r.get(9)?,
        origin: match r.get_ref(10)?.as_str()? {
            "request" => Origin::Request,
            _ => Origin::Drop,
        },
        request_options: r
            .get::<_, Option<String>>(11)?
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default(),
    })
}

const ACCOUNT_COLUMNS: &str = "id, name, password_hash, settings, created_at";
const IMPORT_COLUMNS: &str = "id, account_id, file_name, file_type, status, success, \
     received_at, processed_at, report, spool, origin, request_options";

/// A random (version 4) GUID in its usual text form.
fn new_guid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

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

    fn queue_import(
        &mut self,
        account_id: i64,
        file_name: &str,
        file_type: Option<FileType>,
        received_at: &str,
        spool: &str,
        origin: Origin,
        request_options: &[(String, String)],
    ) -> Result<i64> {
        let request_options = (!request_options.is_empty())
            .then(|| serde_json::to_string(request_options).expect("pairs of strings serialize"));
        self.conn.execute(
            "INSERT INTO imports
                 (account_id, file_name, file_type, received_at, spool, origin, request_options)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                account_id,
                file_name,
                file_type.map(FileType::as_str),
                received_at,
                spool,
                origin.as_str(),
                request_options
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn spooled_for_account(&self, account_id: i64) -> Result<Vec<ImportRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {IMPORT_COLUMNS} FROM imports
             WHERE spool IS NOT NULL AND account_id = ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([account_id], import_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn set_spool(&mut self, import_id: i64, spool: Option<&str>) -> Result<()> {
        // Clearing the mark need not wait for the disk: if a crash loses
        // it, recovery publishes the import again, which changes nothing.
        // That saves one fsync per upload on the way to its report.
        let relaxed = spool.is_none();
        if relaxed {
            self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        let result = self.conn.execute(
            "UPDATE imports SET spool = ?2 WHERE id = ?1",
            params![import_id, spool],
        );
        if relaxed {
            self.conn.pragma_update(None, "synchronous", "FULL")?;
        }
        result?;
        Ok(())
    }

    fn spooled_imports(&self) -> Result<Vec<ImportRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE spool IS NOT NULL ORDER BY id"
        ))?;
        let rows = stmt.query_map([], import_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn import_by_id(&self, import_id: i64) -> Result<Option<ImportRecord>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {IMPORT_COLUMNS} FROM imports WHERE id = ?1"),
                [import_id],
                import_from_row,
            )
            .optional()?)
    }

    fn account_by_id(&self, account_id: i64) -> Result<Option<AccountRecord>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?1"),
                [account_id],
                account_from_row,
            )
            .optional()?)
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

    fn add_token(&mut self, account_id: i64, name: &str, sha256_hex: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "INSERT INTO api_tokens (account_id, name, token_sha256, created_at)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            params![account_id, name, sha256_hex, now()],
        )? > 0)
    }

    fn tokens(&self, account_id: i64) -> Result<Vec<TokenRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT name, created_at FROM api_tokens WHERE account_id = ?1 ORDER BY name",
        )?;
        let rows = stmt.query_map([account_id], |r| {
            Ok(TokenRecord {
                name: r.get(0)?,
                created_at: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn revoke_token(&mut self, account_id: i64, name: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "DELETE FROM api_tokens WHERE account_id = ?1 AND name = ?2",
            params![account_id, name],
        )? > 0)
    }

    fn account_by_token(&self, sha256_hex: &str) -> Result<Option<AccountRecord>> {
        let columns = ACCOUNT_COLUMNS
            .split(", ")
            .map(|c| format!("a.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {columns} FROM api_tokens t JOIN accounts a ON a.id = t.account_id
                 WHERE t.token_sha256 = ?1"
            ))?
            .query_row([sha256_hex], account_from_row)
            .optional()?)
    }

    fn begin_import(&mut self, account_id: i64) -> Result<Box<dyn LedgerTx + '_>> {
        // An unchecked transaction borrows the connection immutably, so the
        // ledger can also hold statements prepared on it for the whole file.
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        Ok(Box::new(SqliteLedger {
            shapes: Vec::new(),
            conn: &self.conn,
            tx,
            account_id,
            seen: [
                SeenLines::default(),
                SeenLines::default(),
                SeenLines::default(),
            ],
            user_links: HashMap::new(),
            unseen_open: None,
            fresh: Default::default(),
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
                } else if in_details(file_type, c.name) {
                    format!("d.{}", c.name)
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
                let details = if file_type == FileType::Items {
                    " LEFT JOIN item_details d ON d.item_id = t.id"
                } else {
                    ""
                };
                format!(
                    "SELECT {select} FROM {table} t JOIN clients c ON c.id = t.client_ref{details}
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

/// The statements of one [`Shape`], prepared once per file.
struct ShapeStatements<'c> {
    file_type: FileType,
    width: usize,
    /// The digest of the column names, where a row's digest starts.
    salt: u64,
    find: Statement<'c>,
    fetch: Statement<'c>,
    insert: Statement<'c>,
    update: Statement<'c>,
    /// Positions (in the shape) of the values kept in the main row, and of
    /// those kept in the details table with the statement that writes them.
    main: Vec<usize>,
    details: Option<(Vec<usize>, Statement<'c>)>,
}

struct SqliteLedger<'c> {
    // Declared before `tx`: statements are finalized before the transaction
    // ends (fields drop in order).
    shapes: Vec<ShapeStatements<'c>>,
    conn: &'c Connection,
    tx: Transaction<'c>,
    account_id: i64,
    /// Rows of clients, items and contacts this file touched.
    seen: [SeenLines; 3],
    /// (user, client) pairs of a users file; staff lists are small.
    user_links: HashMap<(i64, i64), u64>,
    /// STOCK: the unseen open items, found once for both counting and
    /// clearing (nothing writes items in between: both come after the
    /// last line).
    unseen_open: Option<Vec<i64>>,
    /// Per table (by [`FileType`] order): what this file knows of the
    /// identities the account has there ([`Fresh`]).
    fresh: [Fresh; 4],
}

/// A first import into a table where the account has no rows yet (the
/// initial load of a ledger, the common large import) can skip the
/// identity lookup of each line: the only identities there are the ones
/// this file inserted, and a set of their hashes says for certain that an
/// identity is not among them. A hash in the set (a duplicate line, or a
/// collision) goes to the index as usual. Eight bytes or so per row, like
/// [`SeenLines`]; beyond [`FRESH_LIMIT`] rows the set is dropped and every
/// line is looked up. This holds because [`LedgerTx::insert`] is the only
/// statement that adds rows to the four ledger tables, and no statement
/// changes a row's `ident`: keep it so.
#[derive(Default)]
enum Fresh {
    /// Not checked yet: checked at the first lookup.
    #[default]
    Unknown,
    /// The table held none of the account's rows when checked; the hashes
    /// of the identities inserted since.
    Empty(std::collections::HashSet<u64, BuildHasherDefault<PassThrough>>),
    /// The account had rows there (or the set grew too large).
    Known,
}

/// Rows a [`Fresh::Empty`] set follows at most (about 20 bytes each).
const FRESH_LIMIT: usize = 2_000_000;

/// A hasher for keys that are hashes already.
#[derive(Default)]
struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn ident_hash(ident: &str) -> u64 {
    hash_bytes(SEED, ident.as_bytes())
}

/// A 64-bit multiply-xorshift hash over 8-byte words: fast on short rows,
/// and fixed here (not a library's hasher, which may change between
/// versions) because its values are kept in the database.
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;
const MULTIPLIER: u64 = 0xff51_afd7_ed55_8ccd;

fn mix(h: u64, word: u64) -> u64 {
    let h = (h ^ word).wrapping_mul(MULTIPLIER);
    h ^ (h >> 29)
}

/// Hashes `bytes` into `h`, length included so that field boundaries
/// count.
fn hash_bytes(mut h: u64, bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        h = mix(h, u64::from_le_bytes(c.try_into().expect("8 bytes")));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        h = mix(h, u64::from_le_bytes(last));
    }
    mix(h, bytes.len() as u64)
}

fn digest_salt(columns: &[&str]) -> u64 {
    columns
        .iter()
        .fold(SEED, |h, c| hash_bytes(h, c.as_bytes()))
}

/// The digest of a row's values in a shape: the shape's column names, then
/// each value tagged with its type so that `NULL`, `1` and `'1'` differ.
/// Stored as the i64 SQLite keeps.
fn digest(salt: u64, values: &[Value]) -> i64 {
    let h = values.iter().fold(salt, |h, v| match v {
        Value::Null => mix(h, 0),
        Value::Int(i) => mix(mix(h, 1), *i as u64),
        Value::Text(t) => hash_bytes(mix(h, 2), t.as_bytes()),
    });
    // 0 is reserved for rows written outside a shape (STOCK clearing):
    // their digest must never match, so their values are compared.
    (if h == 0 { 1 } else { h }) as i64
}

/// The digest of a row whose values were changed outside a shape.
const NO_DIGEST: i64 = 0;

/// Writes the shape's detail columns of row `id`, if it has any.
fn write_details(st: &mut ShapeStatements<'_>, id: i64, values: &[Value]) -> Result<()> {
    if let Some((positions, upsert)) = &mut st.details {
        upsert.raw_bind_parameter(1, id)?;
        for (n, &i) in positions.iter().enumerate() {
            upsert.raw_bind_parameter(n + 2, &values[i])?;
        }
        upsert.raw_execute()?;
    }
    Ok(())
}

/// Whether a stored value equals one the engine computed.
fn same_value(stored: ValueRef<'_>, value: &Value) -> bool {
    match (stored, value) {
        (ValueRef::Null, Value::Null) => true,
        (ValueRef::Integer(a), Value::Int(b)) => a == *b,
        (ValueRef::Text(a), Value::Text(b)) => a == b.as_bytes(),
        _ => false,
    }
}

/// The line on which a file first touched each row, as a dense array over
/// the row ids seen so far (0 = not seen). Row ids of one account are
/// close together, and a file mostly visits them in ascending order.
#[derive(Debug, Default)]
pub struct SeenLines {
    base: i64,
    lines: Vec<u32>,
}

impl SeenLines {
    /// Records `line` for `id`; returns the earlier line if `id` was seen.
    pub fn mark(&mut self, id: i64, line: u64) -> Option<u64> {
        let line = u32::try_from(line).unwrap_or(u32::MAX).max(1);
        if self.lines.is_empty() {
            self.base = id;
        } else if id < self.base {
            let shift = (self.base - id) as usize;
            self.lines.splice(0..0, std::iter::repeat_n(0, shift));
            self.base = id;
        }
        let at = (id - self.base) as usize;
        if at >= self.lines.len() {
            self.lines.resize(at + 1, 0);
        }
        match self.lines[at] {
            0 => {
                self.lines[at] = line;
                None
            }
            earlier => Some(u64::from(earlier)),
        }
    }

    pub fn contains(&self, id: i64) -> bool {
        id >= self.base
            && self
                .lines
                .get((id - self.base) as usize)
                .is_some_and(|l| *l != 0)
    }
}

impl SqliteLedger<'_> {
    /// The account's open items that this file did not touch.
    fn unseen_open_items(&mut self) -> Result<&[i64]> {
        if self.unseen_open.is_none() {
            // The account's rows lie in a span of row ids, found from the
            // identity index alone; the open ones are then read from the
            // table in row id order, sequentially, instead of one random
            // table read per index entry. (`+account_id` keeps the planner
            // on the row id range.)
            let (low, high): (Option<i64>, Option<i64>) = self.tx.query_row(
                "SELECT min(id), max(id) FROM items WHERE account_id = ?1",
                [self.account_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let mut stmt = self.tx.prepare_cached(
                "SELECT id FROM items WHERE id BETWEEN ?2 AND ?3
                   AND +account_id = ?1 AND item_date_payment IS NULL",
            )?;
            let seen = &self.seen[Seen::Item as usize];
            let mut ids = Vec::new();
            let mut rows = stmt.query(params![
                self.account_id,
                low.unwrap_or(0),
                high.unwrap_or(-1)
            ])?;
            while let Some(r) = rows.next()? {
                let id: i64 = r.get(0)?;
                if !seen.contains(id) {
                    ids.push(id);
                }
            }
            self.unseen_open = Some(ids);
        }
        Ok(self.unseen_open.as_deref().unwrap_or_default())
    }
}

impl LedgerTx for SqliteLedger<'_> {
    fn shape(&mut self, file_type: FileType, columns: &[&'static str]) -> Result<Shape> {
        let table = file_type.as_str();
        let (details, main): (Vec<usize>, Vec<usize>) =
            (0..columns.len()).partition(|&i| in_details(file_type, columns[i]));
        let sql = |i: &usize| sql_column(file_type, columns[*i]);
        let main_cols: Vec<&str> = main.iter().map(sql).collect();
        let detail_cols: Vec<&str> = details.iter().map(sql).collect();

        let find = format!("SELECT id, digest FROM {table} WHERE account_id = ?1 AND ident = ?2");
        // Read back in shape order, from whichever table holds each column.
        let fetched: Vec<String> = columns
            .iter()
            .map(|c| {
                let prefix = if in_details(file_type, c) { "d" } else { "t" };
                format!("{prefix}.{}", sql_column(file_type, c))
            })
            .collect();
        let fetch = format!(
            "SELECT t.id{} FROM {table} t{} WHERE t.id = ?1",
            fetched.iter().map(|c| format!(", {c}")).collect::<String>(),
            if details.is_empty() {
                String::new()
            } else {
                format!(" LEFT JOIN {DETAILS_TABLE} d ON d.item_id = t.id")
            }
        );
        let insert = format!(
            "INSERT INTO {table} (account_id, ident, digest{}) VALUES (?1, ?2, ?3{})",
            main_cols
                .iter()
                .map(|c| format!(", {c}"))
                .collect::<String>(),
            (0..main_cols.len())
                .map(|i| format!(", ?{}", i + 4))
                .collect::<String>()
        );
        let sets: String = main_cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!(", {c} = ?{}", i + 3))
            .collect();
        let update = format!("UPDATE {table} SET digest = ?2{sets} WHERE id = ?1");
        let details = if details.is_empty() {
            None
        } else {
            // Only this file's columns are written: a row's other details
            // stay as they were, like the main row's.
            let upsert = format!(
                "INSERT INTO {DETAILS_TABLE} (item_id{}) VALUES (?1{})
                 ON CONFLICT (item_id) DO UPDATE SET {}",
                detail_cols
                    .iter()
                    .map(|c| format!(", {c}"))
                    .collect::<String>(),
                (0..detail_cols.len())
                    .map(|i| format!(", ?{}", i + 2))
                    .collect::<String>(),
                detail_cols
                    .iter()
                    .map(|c| format!("{c} = excluded.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Some((details, self.conn.prepare(&upsert)?))
        };
        let all_cols: Vec<&str> = columns.iter().map(|c| sql_column(file_type, c)).collect();
        self.shapes.push(ShapeStatements {
            file_type,
            width: columns.len(),
            salt: digest_salt(&all_cols),
            find: self.conn.prepare(&find)?,
            fetch: self.conn.prepare(&fetch)?,
            insert: self.conn.prepare(&insert)?,
            update: self.conn.prepare(&update)?,
            main,
            details,
        });
        Ok(Shape(self.shapes.len() - 1))
    }

    fn lookup(&mut self, shape: Shape, ident: &str, values: &[Value]) -> Result<Lookup> {
        let table = self.shapes[shape.0].file_type;
        let fresh = &mut self.fresh[table as usize];
        if matches!(fresh, Fresh::Unknown) {
            let any: bool = self.tx.query_row(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM {} WHERE account_id = ?1)",
                    table.as_str()
                ),
                [self.account_id],
                |r| r.get(0),
            )?;
            *fresh = if any {
                Fresh::Known
            } else {
                Fresh::Empty(Default::default())
            };
        }
        if let Fresh::Empty(inserted) = fresh
            && !inserted.contains(&ident_hash(ident))
        {
            return Ok(Lookup::Missing);
        }
        let st = &mut self.shapes[shape.0];
        debug_assert!(values.is_empty() || values.len() == st.width);
        // The identity index holds the digest: no need to read the row when
        // the digest says the values are the ones already stored.
        let found: Option<(i64, i64)> = st
            .find
            .query_row(params![self.account_id, ident], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let Some((id, stored_digest)) = found else {
            return Ok(Lookup::Missing);
        };
        if values.is_empty() || stored_digest == digest(st.salt, values) {
            return Ok(Lookup::Same(id));
        }
        // Another shape wrote the row last, or a value changed: compare.
        let same = st.fetch.query_row([id], |row| {
            for (i, v) in values.iter().enumerate() {
                if !same_value(row.get_ref(i + 1)?, v) {
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        Ok(if same {
            Lookup::Same(id)
        } else {
            Lookup::Differs(id)
        })
    }

    fn find_id(&mut self, shape: Shape, ident: &str) -> Result<Option<i64>> {
        Ok(match self.lookup(shape, ident, &[])? {
            Lookup::Missing => None,
            Lookup::Same(id) | Lookup::Differs(id) => Some(id),
        })
    }

    fn insert(&mut self, shape: Shape, ident: &str, values: &[Value]) -> Result<i64> {
        let st = &mut self.shapes[shape.0];
        debug_assert_eq!(values.len(), st.width);
        st.insert.raw_bind_parameter(1, self.account_id)?;
        st.insert.raw_bind_parameter(2, ident)?;
        st.insert.raw_bind_parameter(3, digest(st.salt, values))?;
        for (n, &i) in st.main.iter().enumerate() {
            st.insert.raw_bind_parameter(n + 4, &values[i])?;
        }
        st.insert.raw_execute()?;
        let id = self.conn.last_insert_rowid();
        let fresh = &mut self.fresh[st.file_type as usize];
        if let Fresh::Empty(inserted) = fresh {
            inserted.insert(ident_hash(ident));
            if inserted.len() > FRESH_LIMIT {
                *fresh = Fresh::Known;
            }
        }
        write_details(st, id, values)?;
        Ok(id)
    }

    fn update(&mut self, shape: Shape, id: i64, values: &[Value]) -> Result<()> {
        let st = &mut self.shapes[shape.0];
        debug_assert_eq!(values.len(), st.width);
        st.update.raw_bind_parameter(1, id)?;
        st.update.raw_bind_parameter(2, digest(st.salt, values))?;
        for (n, &i) in st.main.iter().enumerate() {
            st.update.raw_bind_parameter(n + 3, &values[i])?;
        }
        st.update.raw_execute()?;
        write_details(st, id, values)
    }

    fn client_by_code(&mut self, code: &str) -> Result<Option<i64>> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT id FROM clients WHERE account_id = ?1 AND ident = ?2")?;
        Ok(stmt
            .query_row(params![self.account_id, code], |r| r.get(0))
            .optional()?)
    }

    fn client_codes(&mut self, limit: usize) -> Result<Vec<(String, i64)>> {
        let mut stmt = self
            .tx
            .prepare("SELECT client_code, id FROM clients WHERE account_id = ?1 LIMIT ?2")?;
        let rows = stmt.query_map(params![self.account_id, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
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
        Ok(match what {
            Seen::UserLink => match self.user_links.entry((a, b)) {
                std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(line);
                    None
                }
            },
            _ => self.seen[what as usize].mark(a, line),
        })
    }

    fn count_open_items(&mut self) -> Result<u64> {
        Ok(self.tx.query_row(
            "SELECT count(*) FROM items WHERE account_id = ?1 AND item_date_payment IS NULL",
            [self.account_id],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    fn count_unseen_open_items(&mut self) -> Result<u64> {
        Ok(self.unseen_open_items()?.len() as u64)
    }

    fn clear_unseen_open_items(&mut self, date: i64) -> Result<u64> {
        let ids = self.unseen_open_items()?.to_vec();
        self.unseen_open = None;
        let mut stmt = self.tx.prepare_cached(
            "UPDATE items SET digest = ?3, item_date_payment = ?2, item_amount_remaining_inc_tax = 0,
                 item_amount_remaining = CASE WHEN item_amount_remaining IS NULL THEN NULL ELSE 0 END
             WHERE id = ?1",
        )?;
        for id in &ids {
            stmt.execute(params![id, date, NO_DIGEST])?;
        }
        Ok(ids.len() as u64)
    }

    fn set_collection_contact(&mut self, client_ref: i64, contact_id: i64) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE contacts SET contact_collection = (id = ?2), digest = ?3
                 WHERE client_ref = ?1 AND (contact_collection = 1 OR id = ?2)",
            )?
            .execute(params![client_ref, contact_id, NO_DIGEST])?;
        Ok(())
    }

    fn contact_global_id(&mut self, contact_id: i64, assign: bool) -> Result<Option<String>> {
        let existing: Option<String> = self
            .tx
            .prepare_cached("SELECT global_id FROM contacts WHERE id = ?1")?
            .query_row([contact_id], |r| r.get(0))?;
        if existing.is_some() || !assign {
            return Ok(existing);
        }
        let id = new_guid();
        self.tx
            .prepare_cached("UPDATE contacts SET global_id = ?2 WHERE id = ?1")?
            .execute(params![contact_id, id])?;
        Ok(Some(id))
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
        let clients: std::collections::BTreeSet<i64> =
            self.user_links.keys().map(|(_, client)| *client).collect();
        let mut stale: Vec<(i64, i64)> = Vec::new();
        {
            let mut stmt = self
                .tx
                .prepare_cached("SELECT user_id FROM user_clients WHERE client_ref = ?1")?;
            for &client in &clients {
                let users = stmt.query_map([client], |r| r.get::<_, i64>(0))?;
                for user in users {
                    let user = user?;
                    if !self.user_links.contains_key(&(user, client)) {
                        stale.push((user, client));
                    }
                }
            }
        }
        let mut delete = self
            .tx
            .prepare_cached("DELETE FROM user_clients WHERE user_id = ?1 AND client_ref = ?2")?;
        for (user, client) in &stale {
            delete.execute(params![user, client])?;
        }
        let mut users: Vec<i64> = stale.into_iter().map(|(u, _)| u).collect();
        users.sort_unstable();
        users.dedup();
        Ok(users)
    }

    fn commit(self: Box<Self>, import_id: i64, outcome: &Outcome<'_>) -> Result<()> {
        let SqliteLedger { shapes, tx, .. } = *self;
        drop(shapes);
        record_outcome(&tx, import_id, outcome)?;
        tx.commit()?;
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
            let details: Vec<String> = store
                .conn
                .prepare("SELECT name FROM pragma_table_info('item_details')")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            for c in t.columns() {
                if t == FileType::Users && c.name == CLIENT_CODE {
                    continue; // users link to clients through user_clients
                }
                let want = sql_column(t, c.name);
                let home = if in_details(t, c.name) {
                    &details
                } else {
                    &names
                };
                assert!(home.iter().any(|n| n == want), "{t}.{want} missing");
            }
        }
    }

    #[test]
    fn seen_lines_remember_the_first_line_in_any_id_order() {
        let mut s = SeenLines::default();
        assert_eq!(s.mark(100, 2), None);
        assert_eq!(s.mark(105, 3), None);
        assert_eq!(s.mark(90, 4), None, "below the first id");
        assert_eq!(s.mark(100, 5), Some(2));
        assert_eq!(s.mark(90, 6), Some(4));
        assert!(s.contains(105) && !s.contains(101) && !s.contains(89) && !s.contains(500));
    }

    #[test]
    fn digests_tell_types_columns_and_values_apart() {
        let salt = digest_salt(&["a", "b"]);
        let d = |v: &[Value]| digest(salt, v);
        let one = [Value::Int(1), Value::Null];
        assert_eq!(d(&one), d(&one.clone()));
        assert_ne!(d(&one), d(&[Value::Text("1".into()), Value::Null]));
        assert_ne!(d(&one), d(&[Value::Null, Value::Int(1)]));
        assert_ne!(
            d(&[Value::Text("ab".into()), Value::Text("c".into())]),
            d(&[Value::Text("a".into()), Value::Text("bc".into())])
        );
        assert_ne!(digest(digest_salt(&["a", "c"]), &one), d(&one));
        assert_ne!(d(&one), NO_DIGEST);
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
