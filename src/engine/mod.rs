//! The import engine: one data file in, ledger changes and a report out.
//!
//! The flow of [`import_file`]:
//!
//! 1. the name says the file type and carries name tags
//!    ([`crate::drop_area::naming`]); options are layered ([`options`]);
//! 2. the import is recorded as pending in the store (its `import_id`);
//! 3. [`reading`] establishes the encoding, decodes, sniffs the separator
//!    and reads the header, which is checked against the file type's columns
//!    ([`crate::ledger`]);
//! 4. each record becomes a [`Line`] handed to the file type's handler
//!    ([`clients`], [`items`], [`contacts`], [`users`]), which parses its
//!    cells ([`fields`]) and applies it through the store's [`LedgerTx`]; a
//!    bad line is skipped and reported, the rest goes on;
//! 5. the handler finishes (STOCK clearing, user association replacement);
//! 6. the transaction commits together with the report, or rolls back on a
//!    file-level error or a dry run: a file is applied all or nothing.

pub mod clients;
pub mod contacts;
pub mod export;
pub mod fields;
pub mod items;
pub mod messages;
pub mod options;
pub mod reading;
pub mod report;
pub mod users;

use std::fs::File;
use std::io::Read;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::drop_area::naming::{self, NameKind};
use crate::ledger::{Column, FileType, Value};

use crate::store::{LedgerTx, Lookup, Outcome, Store, StoreError};
use fields::{FieldError, Problem, parse_cell};
use options::ImportOptions;
use reading::ReadError;
use report::{Counts, ErrorCode, Report};

/// One import to run.
pub struct ImportRequest<'a> {
    /// Where the bytes are.
    pub path: &'a Path,
    /// The file's name as uploaded: its type, its tags, the report's `file`.
    pub file_name: &'a str,
    pub account_id: i64,
    /// The import's id when it was recorded already (a queued upload);
    /// `None` records a new one.
    pub import_id: Option<i64>,
    /// The server's and the account's defaults, already layered.
    pub defaults: ImportOptions,
    /// Options given with the request (`--option`, query parameters), which
    /// win over name tags.
    pub explicit: &'a [(String, String)],
    pub received_at: DateTime<Utc>,
    /// Called with the number of bytes read so far, for a progress bar.
    pub progress: Option<Box<dyn Fn(u64) + Send>>,
}

/// A failure that is not the file's fault: the store or the disk failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Imports one file and returns its report. `Err` only for internal errors
/// (the store failed): the file is then untouched and can be retried.
pub fn import_file(
    store: &mut dyn Store,
    mut req: ImportRequest<'_>,
) -> Result<Report, EngineError> {
    let received_at = rfc3339(req.received_at);
    let mut report = Report::new(req.file_name, &received_at);

    let mut options = req.defaults.clone();
    let mut framing = None;
    let (file_type, option_error) = match naming::classify(req.file_name) {
        NameKind::Data {
            file_type,
            tags,
            extension,
        } => {
            framing = messages::Framing::from_extension(&extension);
            let mut error = None;
            for tag in &tags {
                if let Err(e) = options.apply_tag(tag, req.file_name) {
                    error = Some(e);
                    break;
                }
            }
            (Some(file_type), error)
        }
        _ => (None, None),
    };
    let option_error = option_error.or_else(|| {
        req.explicit
            .iter()
            .find_map(|(k, v)| options.set(k, v).err())
    });
    report.file_type = file_type.map(|t| t.as_str().to_string());
    report.dry_run = options.dry_run;

    let import_id = match req.import_id {
        Some(id) => id,
        None => store.create_import(req.account_id, req.file_name, file_type, &received_at)?,
    };
    report.import_id = Some(import_id);

    let finished = match (file_type, option_error) {
        (None, _) => {
            report.options = Some(options);
            report.fail(
                ErrorCode::FileTypeUnknown,
                format!(
                    "'{}' is not a recognized file name; accepted: {}",
                    req.file_name,
                    naming::ACCEPTED_PATTERNS
                ),
            );
            None
        }
        (Some(_), Some(e)) => {
            report.options = Some(options);
            report.fail(ErrorCode::OptionInvalid, e.to_string());
            None
        }
        (Some(file_type), None) => {
            report.options = Some(options.clone());
            match framing {
                Some(framing) => run_messages(store, &req, framing, &options, &mut report)?,
                None => {
                    let progress = req.progress.take();
                    run(store, &req, file_type, &options, progress, &mut report)?
                }
            }
        }
    };

    report.processed_at = rfc3339(Utc::now());
    let json = report.to_json_pretty();
    let outcome = Outcome {
        success: report.success,
        processed_at: &report.processed_at,
        report_json: &json,
    };
    // The ledger changes and their report commit together; an import that
    // changed nothing records its report on its own.
    // (The block ends the transaction's borrow of the store before the
    // `complete_import` below.)
    let committed = {
        let finished = finished;
        match finished {
            Some(tx) => {
                crate::failpoint::hit("before-commit");
                tx.commit(import_id, &outcome)?;
                true
            }
            None => false,
        }
    };
    if !committed {
        store.complete_import(import_id, &outcome)?;
    }
    Ok(report)
}

/// Reads and applies the file. Returns the transaction to commit, or `None`
/// when nothing is to be committed (file-level error, dry run).
fn run<'s, 'o: 's>(
    store: &'s mut (dyn Store + 'o),
    req: &ImportRequest<'_>,
    file_type: FileType,
    options: &ImportOptions,
    progress: Option<Box<dyn Fn(u64) + Send>>,
    report: &mut Report,
) -> Result<Option<Box<dyn LedgerTx + 's>>, EngineError> {
    let read_error = |source| EngineError::Read {
        path: req.path.display().to_string(),
        source,
    };
    let mut file = File::open(req.path).map_err(read_error)?;
    let file_len = file.metadata().map_err(read_error)?.len();
    let fail = |report: &mut Report, e: ReadError| -> Result<(), EngineError> {
        match e {
            ReadError::Encoding(m) => report.fail(ErrorCode::EncodingInvalid, m),
            ReadError::Syntax(m) => report.fail(ErrorCode::CsvBadSyntax, m),
            ReadError::Empty => report.fail(ErrorCode::CsvEmpty, "the file is empty"),
            ReadError::Io(m) => {
                return Err(read_error(std::io::Error::other(m)));
            }
        }
        Ok(())
    };

    let encoding = match reading::detect_encoding(&mut file, options.encoding) {
        Ok(e) => e,
        Err(e) => {
            fail(report, e)?;
            return Ok(None);
        }
    };
    report.encoding = Some(encoding.name().to_string());
    let raw: Box<dyn Read + Send> = Box::new(reading::Progress::new(file, progress));
    let opened = match reading::open(raw, encoding) {
        Ok(o) => o,
        Err(e) => {
            fail(report, e)?;
            return Ok(None);
        }
    };
    report.separator = Some(reading::separator_name(opened.layout.separator).to_string());

    let header = match HeaderMap::new(file_type, &opened.header.names) {
        Ok(h) => h,
        Err((code, message)) => {
            report.fail(code, format!("line {}: {message}", opened.header.line));
            return Ok(None);
        }
    };
    report.ignored_columns = header.ignored.clone();

    let mut tx = store.begin_import(req.account_id)?;
    let today = fields::date_number(req.received_at.date_naive());
    let clients = if file_type == FileType::Clients {
        None
    } else if file_len < SMALL_FILE {
        Some(std::sync::Arc::new(ClientCodes::on_demand()))
    } else {
        Some(std::sync::Arc::new(ClientCodes::load(tx.as_mut())?))
    };
    let clients = || clients.clone().expect("loaded for every type but clients");
    let (parser, mut handler): (Box<dyn LineParser>, Box<dyn Handler>) = match file_type {
        FileType::Clients => (
            Box::new(clients::ClientParser::new(&header)),
            Box::new(clients::Clients::new(&header, tx.as_mut())?),
        ),
        FileType::Items => (
            Box::new(items::ItemParser::new(&header, options, clients())),
            Box::new(items::Items::new(&header, options, today, tx.as_mut())?),
        ),
        FileType::Contacts => (
            Box::new(contacts::ContactParser::new(&header, clients())),
            Box::new(contacts::Contacts::new(&header, tx.as_mut())?),
        ),
        FileType::Users => (
            Box::new(users::UserParser::new(&header, clients())),
            Box::new(users::Users::new(&header, options, tx.as_mut())?),
        ),
    };

    // Two threads, so that a large file uses both cores: this one applies
    // lines through the store while a reader thread decodes, splits and
    // parses the next ones. A bounded channel of batches keeps memory
    // bounded whatever the file size.
    let mut counts = Counts::default();
    let ended = std::thread::scope(|scope| -> Result<ReadEnd, StoreError> {
        let (sender, batches) = std::sync::mpsc::sync_channel::<Batch>(PIPELINE_DEPTH);
        // Spent batches go back to the reader, so that the strings it
        // allocated are freed on its thread, off this one's critical path.
        let (recycle, spent) = std::sync::mpsc::sync_channel::<Vec<ReadLine>>(PIPELINE_DEPTH + 1);
        let parser = parser.as_ref();
        let header = &header;
        scope.spawn(move || read_lines(opened, header, parser, sender, spent));
        for batch in batches.iter() {
            match batch {
                Batch::Lines(mut lines) => {
                    for read in &mut lines {
                        report.lines_read += 1;
                        let (number, outcome) = match read {
                            ReadLine::Parsed(parsed) => (
                                parsed.number,
                                handler.apply(tx.as_mut(), parsed, &mut counts)?,
                            ),
                            ReadLine::Skipped { number, message } => {
                                (*number, Err(std::mem::take(message)))
                            }
                        };
                        match outcome {
                            Ok(()) => report.lines_imported += 1,
                            Err(message) => report.exception(number, message),
                        }
                    }
                    // Full or gone: either way the batch is dropped here.
                    let _ = recycle.try_send(lines);
                }
                Batch::End(end) => return Ok(end),
            }
        }
        // The reader ends every stream with `End`; a missing one means the
        // thread panicked.
        Ok(ReadEnd::Failed(std::io::Error::other(
            "the file reader stopped unexpectedly",
        )))
    })?;
    match ended {
        ReadEnd::Complete => {}
        ReadEnd::BadSyntax(message) => {
            report.fail(ErrorCode::CsvBadSyntax, message);
            return Ok(None);
        }
        ReadEnd::Failed(e) => return Err(read_error(e)),
    }
    handler.finish(tx.as_mut(), &mut counts, report)?;
    report.set_counts(counts);
    if options.dry_run {
        report.warnings.push(DRY_RUN_WARNING.into());
        return Ok(None);
    }
    Ok(Some(tx))
}

/// Applies a file of JSON contact-person messages ([`messages`]). Returns
/// the transaction to commit, as [`run`] does.
fn run_messages<'s, 'o: 's>(
    store: &'s mut (dyn Store + 'o),
    req: &ImportRequest<'_>,
    framing: messages::Framing,
    options: &ImportOptions,
    report: &mut Report,
) -> Result<Option<Box<dyn LedgerTx + 's>>, EngineError> {
    let read_error = |source| EngineError::Read {
        path: req.path.display().to_string(),
        source,
    };
    let file = File::open(req.path).map_err(read_error)?;
    report.encoding = Some("UTF-8".into());
    let size = file.metadata().map_err(read_error)?.len();
    if size > messages::MAX_FILE {
        let failure = messages::Failure::TooLarge(format!(
            "a message file may hold at most {} MiB ({} bytes here): split it",
            messages::MAX_FILE >> 20,
            size
        ));
        messages::fail(report, failure);
        return Ok(None);
    }
    let mut tx = store.begin_import(req.account_id)?;
    if let Err(failure) = messages::apply(file, framing, options.dry_run, tx.as_mut(), report)? {
        messages::fail(report, failure);
        return Ok(None);
    }
    if options.dry_run {
        report.warnings.push(DRY_RUN_WARNING.into());
        return Ok(None);
    }
    Ok(Some(tx))
}

const DRY_RUN_WARNING: &str =
    "dry run: nothing was changed; the counts say what the import would do";

/// Batches in flight between the reader thread and the store.
const PIPELINE_DEPTH: usize = 4;
/// Lines per batch: large enough that the channel costs nothing per line.
const BATCH_LINES: usize = 512;

/// What the reader thread sends, in file order.
enum Batch {
    Lines(Vec<ReadLine>),
    End(ReadEnd),
}

enum ReadLine {
    Parsed(Parsed),
    /// A line refused before its cells were looked at (column count).
    Skipped {
        number: u64,
        message: String,
    },
}

enum ReadEnd {
    Complete,
    /// A file-level syntax error: nothing of the file may be applied.
    BadSyntax(String),
    Failed(std::io::Error),
}

/// The reader thread: records → lines with physical numbers → parsed lines,
/// in batches. Stops early when the receiving side has gone.
fn read_lines(
    mut opened: reading::Opened,
    header: &HeaderMap,
    parser: &dyn LineParser,
    sender: std::sync::mpsc::SyncSender<Batch>,
    spent: std::sync::mpsc::Receiver<Vec<ReadLine>>,
) {
    let mut record = csv::ByteRecord::new();
    let mut ranges: Vec<std::ops::Range<usize>> = Vec::new();
    let mut batch = Vec::with_capacity(BATCH_LINES);
    let end = loop {
        match opened.records.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break ReadEnd::Complete,
            Err(e) => {
                break if let Some(line) = opened.guard.unterminated_at() {
                    ReadEnd::BadSyntax(format!(
                        "line {line}: a quoted field is never closed (unterminated quote)"
                    ))
                } else if let Some(line) = opened.guard.too_long_at() {
                    ReadEnd::BadSyntax(format!(
                        "line {line}: the record is longer than {} bytes (an unterminated quote?)",
                        reading::MAX_RECORD_BYTES
                    ))
                } else if let csv::ErrorKind::Io(io) = e.kind() {
                    ReadEnd::Failed(std::io::Error::new(io.kind(), io.to_string()))
                } else {
                    ReadEnd::BadSyntax(e.to_string())
                };
            }
        }
        let end = opened.records.position().byte();
        let inner_newlines = memchr::memchr_iter(b'\n', record.as_slice()).count() as u64;
        let number = opened.lines.record_line(end, inner_newlines);
        // Blank lines (csv yields a single empty field) are skipped.
        if record.len() == 1 && record[0].iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let read = if record.len() != header.width {
            ReadLine::Skipped {
                number,
                message: format!(
                    "Column count doesn't match (defined={}, found={})",
                    header.width,
                    record.len()
                ),
            }
        } else if let Ok(text) = std::str::from_utf8(record.as_slice()) {
            // Validated once; cells are slices of the record, not copies.
            // (The encoding was checked or transcoded before, so this fails
            // only on a lossy decode of an explicitly chosen encoding.)
            ranges.clear();
            ranges.extend((0..record.len()).filter_map(|i| record.range(i)));
            ReadLine::Parsed(parser.parse(&Line {
                number,
                text,
                ranges: &ranges,
            }))
        } else {
            ReadLine::Skipped {
                number,
                message: "Invalid UTF-8 in this line".into(),
            }
        };
        batch.push(read);
        if batch.len() == BATCH_LINES {
            let next = match spent.try_recv() {
                Ok(mut reused) => {
                    reused.clear();
                    reused
                }
                Err(_) => Vec::with_capacity(BATCH_LINES),
            };
            let full = std::mem::replace(&mut batch, next);
            if sender.send(Batch::Lines(full)).is_err() {
                return;
            }
        }
    };
    if !batch.is_empty() && sender.send(Batch::Lines(batch)).is_err() {
        return;
    }
    let _ = sender.send(Batch::End(end));
}

/// A line as far as it can be understood without the store: parsed on the
/// reader thread, applied by the file type's [`Handler`].
#[derive(Debug)]
pub struct Parsed {
    pub number: u64,
    /// The values of the parser's columns, in its order.
    pub values: Vec<Value>,
    /// Everything wrong with the line so far, in column order.
    pub errors: Vec<String>,
    /// The record's identity, when readable (also on a rejected line); its
    /// meaning is the file type's.
    pub ident: Option<String>,
    /// The `client_code` cell, when present and non-empty.
    pub client_code: Option<String>,
    /// The client it names, once resolved.
    pub client_ref: Option<i64>,
    /// A unique key cell, when present and non-empty.
    pub key: Option<String>,
}

impl Parsed {
    fn new(number: u64) -> Parsed {
        Parsed {
            number,
            values: Vec::new(),
            errors: Vec::new(),
            ident: None,
            client_code: None,
            client_ref: None,
            key: None,
        }
    }
}

/// The store-free half of a file type, run on the reader thread.
trait LineParser: Sync {
    fn parse(&self, line: &Line<'_>) -> Parsed;
}

/// The half of a file type that applies parsed lines through the store.
trait Handler {
    /// Applies one line. The inner `Err` is the message of a skipped line;
    /// the outer one an internal error.
    fn apply(
        &mut self,
        tx: &mut dyn LedgerTx,
        line: &mut Parsed,
        counts: &mut Counts,
    ) -> Result<Result<(), String>, StoreError>;

    fn finish(
        &mut self,
        _tx: &mut dyn LedgerTx,
        _counts: &mut Counts,
        _report: &mut Report,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The header mapped onto a file type's columns.
pub struct HeaderMap {
    pub file_type: FileType,
    /// Number of fields every line must have.
    pub width: usize,
    /// For each of `file_type.columns()`, its position in the file.
    positions: Vec<Option<usize>>,
    pub ignored: Vec<String>,
}

impl HeaderMap {
    fn new(file_type: FileType, names: &[String]) -> Result<HeaderMap, (ErrorCode, String)> {
        let columns = file_type.columns();
        let mut positions = vec![None; columns.len()];
        let mut ignored = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match columns.iter().position(|c| c.name == name) {
                Some(c) => {
                    if let Some(first) = positions[c] {
                        return Err((
                            ErrorCode::CsvBadSyntax,
                            format!(
                                "column '{name}' appears twice in the header (columns {} and {})",
                                first + 1,
                                i + 1
                            ),
                        ));
                    }
                    positions[c] = Some(i);
                }
                None => ignored.push(if name.is_empty() {
                    format!("(unnamed column {})", i + 1)
                } else {
                    name.clone()
                }),
            }
        }
        let missing: Vec<&str> = columns
            .iter()
            .zip(&positions)
            .filter(|(c, p)| c.required && p.is_none())
            .map(|(c, _)| c.name)
            .collect();
        if !missing.is_empty() {
            return Err((
                ErrorCode::CsvMissingColumn,
                format!(
                    "missing required column{}: {}",
                    if missing.len() > 1 { "s" } else { "" },
                    missing.join(", ")
                ),
            ));
        }
        Ok(HeaderMap {
            file_type,
            width: names.len(),
            positions,
            ignored,
        })
    }

    /// A column of this file type, with its position in the file resolved
    /// once so that reading it from each line costs nothing.
    pub fn field(&self, name: &str) -> Field {
        let columns = self.file_type.columns();
        let i = columns
            .iter()
            .position(|c| c.name == name)
            .unwrap_or_else(|| panic!("{} has no column {name}", self.file_type));
        Field {
            column: &columns[i],
            position: self.positions[i],
        }
    }

    /// The file's columns other than those in `except`, in the file's
    /// order, so that a line's error messages read left to right.
    pub fn present_fields(&self, except: &[&str]) -> Vec<Field> {
        let mut fields: Vec<Field> = self
            .file_type
            .columns()
            .iter()
            .zip(&self.positions)
            .filter(|(c, p)| p.is_some() && !except.contains(&c.name))
            .map(|(c, p)| Field {
                column: c,
                position: *p,
            })
            .collect();
        fields.sort_by_key(|f| f.position);
        fields
    }
}

/// A column and where the file has it (if it does).
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub column: &'static Column,
    position: Option<usize>,
}

impl Field {
    pub fn present(&self) -> bool {
        self.position.is_some()
    }
    pub fn name(&self) -> &'static str {
        self.column.name
    }
}

/// One record with its line number; cells are read trimmed.
pub struct Line<'a> {
    pub number: u64,
    /// The record's fields, unescaped and concatenated.
    text: &'a str,
    /// Where each field lies in `text`.
    ranges: &'a [std::ops::Range<usize>],
}

impl Line<'_> {
    /// The trimmed cell of a column; `None` when the file lacks the column.
    pub fn raw(&self, field: &Field) -> Option<&str> {
        field
            .position
            .map(|p| self.text[self.ranges[p].clone()].trim())
    }

    /// The trimmed cell, when the file has the column and it is not empty.
    pub fn non_empty(&self, field: &Field) -> Option<String> {
        self.raw(field)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    /// A required text cell (empty → error).
    pub fn required(&self, field: &Field) -> Result<&str, FieldError> {
        match self.raw(field) {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(FieldError {
                column: field.name(),
                problem: Problem::Missing,
            }),
        }
    }

    /// Parses a column's cell: `None` when the file lacks the column,
    /// `Some(Null)` when the cell is empty and the column optional.
    pub fn value(&self, field: &Field) -> Result<Option<Value>, FieldError> {
        let column = field.column;
        match self.raw(field) {
            None => Ok(None),
            Some("") if column.required => Err(FieldError {
                column: column.name,
                problem: Problem::Missing,
            }),
            Some("") => Ok(Some(Value::Null)),
            Some(raw) => parse_cell(column.kind, column.name, raw).map(Some),
        }
    }

    /// Parses the given columns, collecting every error of the line into one
    /// message so the user can fix them all at once.
    pub fn values(&self, fields: &[Field], errors: &mut Vec<String>) -> Vec<Value> {
        let mut values = Vec::with_capacity(fields.len());
        for f in fields {
            match self.value(f) {
                Ok(v) => values.push(v.unwrap_or(Value::Null)),
                Err(e) => {
                    errors.push(e.to_string());
                    values.push(Value::Null);
                }
            }
        }
        values
    }
}

/// The account's clients by code, loaded once per file and shared with the
/// reader thread, which then resolves `client_code` itself: no file adds
/// clients while it imports items, contacts or users, so a complete map is
/// authoritative. Past [`CLIENT_MAP_LIMIT`] clients the map is left empty
/// and each line asks the store ([`resolve_client`]).
///
/// Codes are short, so they are kept inline in the key: one cache line per
/// lookup, no pointer to chase into the heap.
pub struct ClientCodes {
    map: std::collections::HashMap<InlineCode, i64>,
    complete: bool,
}

/// A client code of at most 23 bytes, stored with its length.
type InlineCode = [u8; 24];

fn inline_code(code: &str) -> Option<InlineCode> {
    let bytes = code.as_bytes();
    (bytes.len() < 24).then(|| {
        let mut key = [0u8; 24];
        key[0] = bytes.len() as u8;
        key[1..=bytes.len()].copy_from_slice(bytes);
        key
    })
}

/// Files smaller than this resolve their client codes one by one in the
/// store instead of loading the account's map first: a few hundred indexed
/// lookups cost less than reading and hashing every client of a large
/// ledger (measured: loading 20,000 codes was most of a 100-line import).
const SMALL_FILE: u64 = 64 << 10;

/// Clients a [`ClientCodes`] map holds at most (about 40 bytes each).
const CLIENT_MAP_LIMIT: usize = 200_000;

impl ClientCodes {
    /// No map: every code is looked up in the store by the handler.
    pub fn on_demand() -> ClientCodes {
        ClientCodes {
            map: Default::default(),
            complete: false,
        }
    }

    pub fn load(tx: &mut dyn LedgerTx) -> Result<ClientCodes, StoreError> {
        let codes = tx.client_codes(CLIENT_MAP_LIMIT + 1)?;
        let complete = codes.len() <= CLIENT_MAP_LIMIT
            && codes.iter().all(|(code, _)| inline_code(code).is_some());
        let map = if complete {
            codes
                .iter()
                .filter_map(|(code, id)| Some((inline_code(code)?, *id)))
                .collect()
        } else {
            Default::default()
        };
        Ok(ClientCodes { map, complete })
    }

    /// Resolves the line's `client_code` when the map can: sets
    /// `client_ref`, or records the unknown code as an error (first in the
    /// message with `first`) and forgets it so the store is not asked.
    pub fn resolve(&self, line: &mut Parsed, first: bool) {
        if !self.complete {
            return;
        }
        let Some(code) = &line.client_code else {
            return;
        };
        match inline_code(code).and_then(|k| self.map.get(&k)) {
            Some(id) => line.client_ref = Some(*id),
            None => {
                let message = unknown_client(code);
                line.client_code = None;
                if first {
                    line.errors.insert(0, message);
                } else {
                    line.errors.push(message);
                }
            }
        }
    }
}

fn unknown_client(code: &str) -> String {
    format!("Unknown client_code: '{code}'")
}

/// The client a parsed line names: resolved by the reader thread, or asked
/// of the store when the account has too many clients for the map. An
/// unknown code becomes an error of the line.
pub fn resolve_client(
    tx: &mut dyn LedgerTx,
    line: &mut Parsed,
    first: bool,
) -> Result<Option<i64>, StoreError> {
    if line.client_ref.is_some() {
        return Ok(line.client_ref);
    }
    let Some(code) = line.client_code.take() else {
        return Ok(None);
    };
    let found = tx.client_by_code(&code)?;
    if found.is_none() {
        if first {
            line.errors.insert(0, unknown_client(&code));
        } else {
            line.errors.push(unknown_client(&code));
        }
    }
    line.client_ref = found;
    Ok(found)
}

/// The message for a line that repeats an earlier line's record.
pub fn duplicate_message(earlier: u64, what: &str) -> String {
    format!("Duplicate of line {earlier} (same {what})")
}

/// What [`upsert`] did with a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Added(i64),
    Modified(i64),
    Unchanged(i64),
    /// The file already had this record on the given line; nothing written.
    Duplicate(u64),
}

/// Inserts or updates the record with this identity, unless the file
/// already touched it: the shared rule of clients and items (SPEC §7).
pub fn upsert(
    tx: &mut dyn LedgerTx,
    shape: crate::store::Shape,
    seen: crate::store::Seen,
    ident: &str,
    values: &[Value],
    line: u64,
) -> Result<Upserted, StoreError> {
    Ok(match tx.lookup(shape, ident, values)? {
        Lookup::Missing => {
            let id = tx.insert(shape, ident, values)?;
            tx.mark_seen(seen, id, 0, line)?;
            Upserted::Added(id)
        }
        found @ (Lookup::Same(id) | Lookup::Differs(id)) => {
            match (tx.mark_seen(seen, id, 0, line)?, found) {
                (Some(earlier), _) => Upserted::Duplicate(earlier),
                (None, Lookup::Same(_)) => Upserted::Unchanged(id),
                (None, _) => {
                    tx.update(shape, id, values)?;
                    Upserted::Modified(id)
                }
            }
        }
    })
}
