//! The store: accounts, the ledger and the import history, behind a narrow
//! interface.
//!
//! The import engine never writes SQL. It asks a [`LedgerTx`], one database
//! transaction for one file, to find, insert and update rows by the column
//! names of [`crate::ledger`], to remember which rows this file has touched,
//! and finally to commit the changes together with the import's report.
//! [`Store`] is the administrative side (accounts, keys, history, export).
//!
//! SQLite ([`sqlite::SqliteStore`]) is the embedded implementation; another
//! database can be added by implementing these two traits, without touching
//! the engine.

pub mod sqlite;

use crate::ledger::{FileType, Value};

pub use sqlite::SqliteStore;

/// Every store failure: the engine turns it into `INTERNAL_ERROR`, the CLI
/// into a message and exit code.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot open the database at {path}: {source}")]
    Open {
        path: std::path::PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the database schema is version {found}, newer than this dropgate knows ({known}); upgrade dropgate"
    )]
    TooNew { found: i64, known: i64 },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An account as stored. `settings` is the account's import defaults as a
/// JSON object; its meaning belongs to [`crate::accounts`].
#[derive(Debug, Clone)]
pub struct AccountRecord {
    pub id: i64,
    pub name: String,
    pub password_hash: Option<String>,
    pub settings: String,
    pub created_at: String,
}

/// One line of an account's `authorized_keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub algorithm: String,
    pub key_base64: String,
    pub comment: String,
}

/// One import as recorded: pending until its report is written.
#[derive(Debug, Clone)]
pub struct ImportRecord {
    pub id: i64,
    pub account_id: i64,
    pub file_name: String,
    pub file_type: Option<String>,
    pub status: String,
    pub success: Option<bool>,
    pub received_at: String,
    pub processed_at: Option<String>,
    pub report: Option<String>,
    /// Set while the upload waits in the spool (see `jobs`).
    pub spool: Option<String>,
    /// Who waits for the report.
    pub origin: Origin,
    /// Options given with an HTTP request (query parameters), which win
    /// over name tags and defaults.
    pub request_options: Vec<(String, String)>,
}

/// Where an import came from, which says where its report goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A file in the account's folder (any door): the report is written
    /// beside it.
    Drop,
    /// An HTTP request that answers with the report: nothing is written
    /// into the folder.
    Request,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Drop => "drop",
            Origin::Request => "request",
        }
    }
}

/// An API token as listed (its secret is never stored).
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub name: String,
    pub created_at: String,
}

/// How an import ended, as recorded in its history row.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    pub success: bool,
    pub processed_at: &'a str,
    pub report_json: &'a str,
}

/// The administrative side of the store.
pub trait Store {
    fn create_account(&mut self, name: &str, password_hash: Option<&str>) -> Result<i64>;
    fn account(&self, name: &str) -> Result<Option<AccountRecord>>;
    fn accounts(&self) -> Result<Vec<AccountRecord>>;
    /// Removes the account and everything it owns. False when unknown.
    fn remove_account(&mut self, name: &str) -> Result<bool>;
    fn set_password_hash(&mut self, account_id: i64, hash: &str) -> Result<()>;
    fn set_settings(&mut self, account_id: i64, settings_json: &str) -> Result<()>;
    /// Adds a key; false when the account already had it.
    fn add_key(&mut self, account_id: i64, key: &StoredKey) -> Result<bool>;
    fn keys(&self, account_id: i64) -> Result<Vec<StoredKey>>;

    /// Records a received file before it is processed, and returns its
    /// import id.
    fn create_import(
        &mut self,
        account_id: i64,
        file_name: &str,
        file_type: Option<FileType>,
        received_at: &str,
    ) -> Result<i64>;
    /// Records a completed upload waiting in the spool under `spool`, and
    /// returns its import id: the durable journal entry of the upload.
    #[allow(clippy::too_many_arguments)]
    fn queue_import(
        &mut self,
        account_id: i64,
        file_name: &str,
        file_type: Option<FileType>,
        received_at: &str,
        spool: &str,
        origin: Origin,
        request_options: &[(String, String)],
    ) -> Result<i64>;
    /// The account's uploads still waiting in the spool, oldest first.
    fn spooled_for_account(&self, account_id: i64) -> Result<Vec<ImportRecord>>;
    /// Marks where an upload waits for its import (`None`: no longer).
    fn set_spool(&mut self, import_id: i64, spool: Option<&str>) -> Result<()>;
    /// Every import whose upload is still spooled, oldest first, across
    /// accounts: the work a restart must finish.
    fn spooled_imports(&self) -> Result<Vec<ImportRecord>>;
    fn account_by_id(&self, account_id: i64) -> Result<Option<AccountRecord>>;
    /// An import of any account (the jobs know imports by id only).
    fn import_by_id(&self, import_id: i64) -> Result<Option<ImportRecord>>;
    /// Records the report of an import that changed nothing in the ledger
    /// (file-level error, dry run, unknown file type).
    fn complete_import(&mut self, import_id: i64, outcome: &Outcome<'_>) -> Result<()>;
    fn import(&self, account_id: i64, import_id: i64) -> Result<Option<ImportRecord>>;
    /// The account's most recent imports, newest first.
    fn imports(&self, account_id: i64, limit: usize) -> Result<Vec<ImportRecord>>;

    /// Stores a new API token's SHA-256 under `name`; false when the
    /// account already has a token of that name.
    fn add_token(&mut self, account_id: i64, name: &str, sha256_hex: &str) -> Result<bool>;
    fn tokens(&self, account_id: i64) -> Result<Vec<TokenRecord>>;
    /// Removes a token; false when the account has none of that name.
    fn revoke_token(&mut self, account_id: i64, name: &str) -> Result<bool>;
    /// The account holding the token with this SHA-256, if any.
    fn account_by_token(&self, sha256_hex: &str) -> Result<Option<AccountRecord>>;

    /// Starts the one transaction in which a file is applied.
    fn begin_import(&mut self, account_id: i64) -> Result<Box<dyn LedgerTx + '_>>;

    /// Calls `row` with every row of a file type, its values in
    /// [`FileType::columns`] order with `client_code` as text. Users come
    /// once per client they are linked to. `open_only` keeps open items.
    fn export(
        &self,
        account_id: i64,
        file_type: FileType,
        open_only: bool,
        row: &mut dyn FnMut(&[Value]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()>;
}

/// A set of columns the engine reads and writes together; prepared once per
/// file so that each line costs no SQL building.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape(pub usize);

/// What [`LedgerTx::lookup`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Missing,
    /// The row holds exactly the given values.
    Same(i64),
    /// The row exists and some value differs.
    Differs(i64),
}

/// What the engine remembers per file to find duplicate lines and, in STOCK
/// mode, which open items the file mentioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Client = 0,
    Item = 1,
    Contact = 2,
    /// A (user, client) pair of a users file.
    UserLink = 3,
}

/// One file's transaction. Dropping it without [`LedgerTx::commit`] rolls
/// everything back, which is how file-level errors and dry runs leave the
/// ledger exactly as it was.
pub trait LedgerTx {
    /// Declares the columns (ledger names; `client_code` stands for the
    /// client reference) that `find`, `insert` and `update` will use.
    fn shape(&mut self, file_type: FileType, columns: &[&'static str]) -> Result<Shape>;
    /// Looks up the row with this identity and compares its shape columns
    /// with `values` (in shape order) without copying them out.
    fn lookup(&mut self, shape: Shape, ident: &str, values: &[Value]) -> Result<Lookup>;
    /// The id of the row with this identity, if any.
    fn find_id(&mut self, shape: Shape, ident: &str) -> Result<Option<i64>>;
    fn insert(&mut self, shape: Shape, ident: &str, values: &[Value]) -> Result<i64>;
    fn update(&mut self, shape: Shape, id: i64, values: &[Value]) -> Result<()>;

    /// The client with this code, if any.
    fn client_by_code(&mut self, code: &str) -> Result<Option<i64>>;
    /// The account's clients as (code, id), at most `limit` of them.
    fn client_codes(&mut self, limit: usize) -> Result<Vec<(String, i64)>>;
    /// The code of the client holding this `client_unique_key`, if any.
    fn client_code_by_unique_key(&mut self, key: &str) -> Result<Option<(i64, String)>>;

    /// Remembers that line `line` touched `(a, b)`; returns the earlier line
    /// when this file already touched it.
    fn mark_seen(&mut self, what: Seen, a: i64, b: i64, line: u64) -> Result<Option<u64>>;

    /// Open items (no payment date) of the account.
    fn count_open_items(&mut self) -> Result<u64>;
    /// Open items this file did not mention.
    fn count_unseen_open_items(&mut self) -> Result<u64>;
    /// Clears (pays on `date`, in stored form `YYYYMMDD`, remaining 0) the
    /// open items this file did not mention; returns how many.
    fn clear_unseen_open_items(&mut self, date: i64) -> Result<u64>;

    /// Makes `contact_id` the only collection contact of its client.
    fn set_collection_contact(&mut self, client_ref: i64, contact_id: i64) -> Result<()>;
    /// Links a user to a client; false when already linked.
    fn link_user(&mut self, user_id: i64, client_ref: i64) -> Result<bool>;
    /// For every client this users file mentioned, removes the links to users
    /// the file did not pair with it. Returns the users who lost a link.
    fn unlink_users_not_seen(&mut self) -> Result<Vec<i64>>;

    /// The GUID of a contact; one is assigned (and kept) when it has none
    /// and `assign` is true, else `None`.
    fn contact_global_id(&mut self, contact_id: i64, assign: bool) -> Result<Option<String>>;

    /// Commits the ledger changes and the import's report together.
    fn commit(self: Box<Self>, import_id: i64, outcome: &Outcome<'_>) -> Result<()>;
}
