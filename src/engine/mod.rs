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
    /// The server's and the account's defaults, already layered.
    pub defaults: ImportOptions,
    /// Options given with the request (`--option`, query parameters), which
    /// win over name tags.
    pub explicit: &'a [(String, String)],
    pub received_at: DateTime<Utc>,
    /// Called with the number of bytes read so far, for a progress bar.
    pub progress: Option<Box<dyn Fn(u64)>>,
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
    let (file_type, option_error) = match naming::classify(req.file_name) {
        NameKind::Data {
            file_type, tags, ..
        } => {
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

    let import_id = store.create_import(req.account_id, req.file_name, file_type, &received_at)?;
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
            let progress = req.progress.take();
            run(store, &req, file_type, &options, progress, &mut report)?
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
    progress: Option<Box<dyn Fn(u64)>>,
    report: &mut Report,
) -> Result<Option<Box<dyn LedgerTx + 's>>, EngineError> {
    let read_error = |source| EngineError::Read {
        path: req.path.display().to_string(),
        source,
    };
    let mut file = File::open(req.path).map_err(read_error)?;
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
    let raw: Box<dyn Read> = Box::new(reading::Progress::new(file, progress));
    let mut opened = match reading::open(raw, encoding) {
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
    let today = fields::format_date(req.received_at.date_naive());
    let mut handler: Box<dyn Handler> = match file_type {
        FileType::Clients => Box::new(clients::Clients::new(&header, tx.as_mut())?),
        FileType::Items => Box::new(items::Items::new(&header, options, &today, tx.as_mut())?),
        FileType::Contacts => Box::new(contacts::Contacts::new(&header, tx.as_mut())?),
        FileType::Users => Box::new(users::Users::new(&header, options, tx.as_mut())?),
    };

    let mut record = csv::ByteRecord::new();
    let mut counts = Counts::default();
    let mut ranges: Vec<std::ops::Range<usize>> = Vec::new();
    loop {
        match opened.records.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let message = if let Some(line) = opened.guard.unterminated_at.get() {
                    format!("line {line}: a quoted field is never closed (unterminated quote)")
                } else if let Some(line) = opened.guard.too_long_at.get() {
                    format!(
                        "line {line}: the record is longer than {} bytes (an unterminated quote?)",
                        reading::MAX_RECORD_BYTES
                    )
                } else if let csv::ErrorKind::Io(io) = e.kind() {
                    return Err(read_error(std::io::Error::new(io.kind(), io.to_string())));
                } else {
                    format!("{e}")
                };
                report.fail(ErrorCode::CsvBadSyntax, message);
                return Ok(None);
            }
        }
        let end = opened.records.position().byte();
        let inner_newlines = memchr::memchr_iter(b'\n', record.as_slice()).count() as u64;
        let line = opened.lines.record_line(end, inner_newlines);
        // Blank lines (csv yields a single empty field) are skipped.
        if record.len() == 1 && record[0].iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        report.lines_read += 1;
        if record.len() != header.width {
            report.exception(
                line,
                format!(
                    "Column count doesn't match (defined={}, found={})",
                    header.width,
                    record.len()
                ),
            );
            continue;
        }
        // Validate the record once and hand out slices of it: no copy per
        // cell. (The encoding was checked or transcoded before, so this
        // fails only on a lossy decode of an explicitly chosen encoding.)
        let Ok(text) = std::str::from_utf8(record.as_slice()) else {
            report.exception(line, "Invalid UTF-8 in this line");
            continue;
        };
        ranges.clear();
        ranges.extend((0..record.len()).filter_map(|i| record.range(i)));
        let l = Line {
            number: line,
            text,
            ranges: &ranges,
        };
        match handler.line(tx.as_mut(), &l, &mut counts)? {
            Ok(()) => report.lines_imported += 1,
            Err(message) => report.exception(line, message),
        }
    }
    handler.finish(tx.as_mut(), &mut counts, report)?;
    report.set_counts(counts);
    if options.dry_run {
        report
            .warnings
            .push("dry run: nothing was changed; the counts say what the import would do".into());
        return Ok(None);
    }
    Ok(Some(tx))
}

/// What a file type does with each line and at the end of the file.
trait Handler {
    /// Applies one line. The inner `Err` is the message of a skipped line;
    /// the outer one an internal error.
    fn line(
        &mut self,
        tx: &mut dyn LedgerTx,
        line: &Line<'_>,
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

/// Resolves `client_code` to the client's row id, with a cache: item files
/// name the same clients over and over.
///
/// Codes are short, so the cache keeps them inline in the key (one cache
/// line per lookup, no pointer to chase into the heap); a longer code is
/// simply looked up in the store each time.
pub struct ClientLookup {
    cache: std::collections::HashMap<InlineCode, i64>,
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

/// Clients a lookup keeps; an account with more simply looks the rest up.
const CLIENT_CACHE_LIMIT: usize = 100_000;

impl ClientLookup {
    pub fn new() -> Self {
        ClientLookup {
            cache: std::collections::HashMap::new(),
        }
    }

    pub fn resolve(
        &mut self,
        tx: &mut dyn LedgerTx,
        code: &str,
    ) -> Result<Option<i64>, StoreError> {
        let key = inline_code(code);
        if let Some(id) = key.as_ref().and_then(|k| self.cache.get(k)) {
            return Ok(Some(*id));
        }
        let found = tx.client_by_code(code)?;
        if let (Some(id), Some(key)) = (found, key)
            && self.cache.len() < CLIENT_CACHE_LIMIT
        {
            self.cache.insert(key, id);
        }
        Ok(found)
    }
}

impl Default for ClientLookup {
    fn default() -> Self {
        Self::new()
    }
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
