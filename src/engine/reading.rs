//! Reading a data file: encoding, separator, header and records (SPEC §4, §5).
//!
//! The file is read as a stream, twice at most: a first pass only when the
//! encoding must be established (auto-detection without BOM, or a strict
//! `UTF-8` check), then the parsing pass. Nothing holds more than one record
//! in memory; a record is capped at [`MAX_RECORD_BYTES`] so that a stray
//! quote cannot make dropgate buffer the rest of a large file.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252};
use encoding_rs_io::DecodeReaderBytesBuilder;

use super::options::EncodingChoice;

/// The longest record (one line, or several joined by a quoted line break).
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

/// Why a file could not be read at all: a file-level error of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// `ENCODING_INVALID`
    Encoding(String),
    /// `CSV_BAD_SYNTAX`
    Syntax(String),
    /// `CSV_EMPTY`
    Empty,
    /// An I/O error reading the file (`INTERNAL_ERROR`).
    Io(String),
}

/// How a file was read, for the report.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub encoding: &'static Encoding,
    pub separator: u8,
}

/// The file's header: the column names, normalized, and its line number.
#[derive(Debug)]
pub struct Header {
    pub names: Vec<String>,
    pub line: u64,
}

/// Establishes the encoding of `file` according to `choice`.
pub fn detect_encoding(
    file: &mut File,
    choice: EncodingChoice,
) -> Result<&'static Encoding, ReadError> {
    let io = |e: io::Error| ReadError::Io(e.to_string());
    let mut head = [0u8; 3];
    let n = read_up_to(file, &mut head).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let bom = Encoding::for_bom(&head[..n]).map(|(e, _)| e);
    let encoding = match choice {
        EncodingChoice::Fixed(e) if e == UTF_8 => {
            if let Some((line, byte)) = first_invalid_utf8(file).map_err(io)? {
                return Err(ReadError::Encoding(format!(
                    "line {line}: invalid UTF-8 byte 0x{byte:02X} (the file is not UTF-8: \
                     try encoding=windows-1252 or encoding=auto)"
                )));
            }
            UTF_8
        }
        EncodingChoice::Fixed(e) => e,
        EncodingChoice::Auto => match bom {
            Some(e) => e,
            None => {
                if first_invalid_utf8(file).map_err(io)?.is_none() {
                    UTF_8
                } else {
                    WINDOWS_1252
                }
            }
        },
    };
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    Ok(encoding)
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Streams through the file and returns the line and value of the first
/// byte that is not valid UTF-8, if any.
fn first_invalid_utf8(file: &mut File) -> io::Result<Option<(u64, u8)>> {
    const CHUNK: usize = 1 << 16;
    // Room for a chunk plus the (at most 3) bytes of a character cut by the
    // previous chunk's end.
    let mut buf = vec![0u8; CHUNK + 4];
    let mut carried = 0usize;
    let mut line = 1u64;
    let newlines = |bytes: &[u8]| memchr::memchr_iter(b'\n', bytes).count() as u64;
    loop {
        let n = file.read(&mut buf[carried..carried + CHUNK])?;
        if n == 0 {
            // A character cut short by the end of the file.
            return Ok((carried > 0).then(|| (line, buf[0])));
        }
        let len = carried + n;
        let valid = match std::str::from_utf8(&buf[..len]) {
            Ok(_) => len,
            Err(e) if e.error_len().is_some() => {
                let at = e.valid_up_to();
                return Ok(Some((line + newlines(&buf[..at]), buf[at])));
            }
            Err(e) => e.valid_up_to(),
        };
        line += newlines(&buf[..valid]);
        buf.copy_within(valid..len, 0);
        carried = len - valid;
    }
}

/// Shared between the [`QuoteGuard`] and the caller, which reads it after
/// the CSV reader has finished or failed. (Both live on the thread that
/// reads the file; the atomics and the mutex only make it `Send`.)
#[derive(Debug, Default)]
pub struct GuardState {
    /// The line on which an unterminated quoted field opened, at EOF (0:
    /// none; lines start at 1).
    unterminated_at: AtomicU64,
    /// The line of a record that grew past [`MAX_RECORD_BYTES`] (0: none).
    too_long_at: AtomicU64,
    /// Stream offsets of the newlines passed to the CSV reader and not yet
    /// accounted for by [`LineCounter`]: at most a read buffer's worth.
    newlines: Mutex<VecDeque<u64>>,
}

impl GuardState {
    pub fn unterminated_at(&self) -> Option<u64> {
        Some(self.unterminated_at.load(Ordering::Relaxed)).filter(|l| *l != 0)
    }
    pub fn too_long_at(&self) -> Option<u64> {
        Some(self.too_long_at.load(Ordering::Relaxed)).filter(|l| *l != 0)
    }
}

/// Physical line numbers for records.
///
/// The `csv` crate's own line count skips blank lines, and the start offset
/// it gives a record after a CRLF is the previous line's `\n`. The end of a
/// record is exact, though: a record lies on the line of its terminator,
/// minus the line breaks inside its quoted fields. The [`QuoteGuard`] has
/// seen every newline on its way to the reader.
pub struct LineCounter {
    /// The line of the first byte after the header.
    first: u64,
    /// Newlines before the current position.
    passed: u64,
    shared: Arc<GuardState>,
}

impl LineCounter {
    /// The first line of the record whose reading ended at stream offset
    /// `end` and whose fields hold `inner_newlines` line breaks. Records
    /// must be asked for in order.
    pub fn record_line(&mut self, end: u64, inner_newlines: u64) -> u64 {
        let mut newlines = self.shared.newlines.lock().expect("never poisoned");
        // The terminator itself is the byte just before `end` (LF), or
        // at `end` (the LF of a CRLF, not consumed yet): not counted.
        while newlines.front().is_some_and(|&nl| nl + 1 < end) {
            newlines.pop_front();
            self.passed += 1;
        }
        (self.first + self.passed).saturating_sub(inner_newlines)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuoteState {
    /// At the start of a field, where a quote opens a quoted field.
    FieldStart,
    /// Inside an unquoted field (quotes here are literal).
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// Just after a quote inside a quoted field: `""` or the closing quote.
    QuoteInQuoted,
}

/// Follows the CSV quoting of the decoded stream as it passes to the CSV
/// reader, with the same rules (a quote opens a field only at its start;
/// `""` is a literal quote), to detect two things the `csv` crate accepts
/// silently: an unterminated quote (it swallows the rest of the file into one
/// field) and an over-long record.
pub struct QuoteGuard<R> {
    inner: R,
    separator: u8,
    state: QuoteState,
    line: u64,
    quote_opened_at: u64,
    /// Bytes of the current record so far, and the line it started on.
    record_bytes: u64,
    record_line: u64,
    /// The first line of a record found longer than [`MAX_RECORD_BYTES`].
    too_long: Option<u64>,
    /// Bytes passed on before the current buffer.
    offset: u64,
    shared: Arc<GuardState>,
}

impl<R: Read> QuoteGuard<R> {
    pub fn new(inner: R, separator: u8, first_line: u64, shared: Arc<GuardState>) -> Self {
        QuoteGuard {
            inner,
            separator,
            state: QuoteState::FieldStart,
            line: first_line,
            quote_opened_at: first_line,
            record_bytes: 0,
            record_line: first_line,
            too_long: None,
            offset: 0,
            shared,
        }
    }

    fn check_size(&mut self) {
        if self.record_bytes > MAX_RECORD_BYTES && self.too_long.is_none() {
            self.too_long = Some(self.record_line);
        }
    }

    fn newline(&mut self, index_in_buffer: usize) {
        self.line += 1;
        self.shared
            .newlines
            .lock()
            .expect("never poisoned")
            .push_back(self.offset + index_in_buffer as u64);
    }

    fn scan(&mut self, bytes: &[u8]) {
        use QuoteState::*;
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                Quoted => match memchr::memchr2(b'"', b'\n', &bytes[i..]) {
                    None => {
                        self.record_bytes += (bytes.len() - i) as u64;
                        return;
                    }
                    Some(off) => {
                        self.record_bytes += off as u64 + 1;
                        i += off;
                        if bytes[i] == b'\n' {
                            self.newline(i);
                        } else {
                            self.state = QuoteInQuoted;
                        }
                        i += 1;
                    }
                },
                FieldStart | Unquoted | QuoteInQuoted => {
                    let b = bytes[i];
                    if self.state == QuoteInQuoted && b == b'"' {
                        self.state = Quoted;
                        self.record_bytes += 1;
                        i += 1;
                        continue;
                    }
                    if self.state == FieldStart && b == b'"' {
                        self.state = Quoted;
                        self.quote_opened_at = self.line;
                        self.record_bytes += 1;
                        i += 1;
                        continue;
                    }
                    if b == b'\n' {
                        // The record ends here: check its size before the
                        // count starts over.
                        self.check_size();
                        self.newline(i);
                        self.record_bytes = 0;
                        self.record_line = self.line;
                        self.state = FieldStart;
                    } else if b == self.separator {
                        self.state = FieldStart;
                        self.record_bytes += 1;
                    } else if b == b'\r' && self.state == FieldStart {
                        self.record_bytes += 1;
                    } else {
                        self.state = Unquoted;
                        // Skip quickly to the next byte that can change state.
                        let rest = &bytes[i + 1..];
                        let skip =
                            memchr::memchr2(b'\n', self.separator, rest).unwrap_or(rest.len());
                        self.record_bytes += 1 + skip as u64;
                        i += 1 + skip;
                        continue;
                    }
                    i += 1;
                }
            }
        }
    }
}

impl<R: Read> Read for QuoteGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            if self.state == QuoteState::Quoted {
                self.shared
                    .unterminated_at
                    .store(self.quote_opened_at, Ordering::Relaxed);
                return Err(io::Error::other("unterminated quoted field"));
            }
            return Ok(0);
        }
        self.scan(&buf[..n]);
        self.offset += n as u64;
        self.check_size();
        if let Some(line) = self.too_long {
            self.shared.too_long_at.store(line, Ordering::Relaxed);
            return Err(io::Error::other("record too long"));
        }
        Ok(n)
    }
}

/// Counts the bytes taken from the file, for a progress display.
pub struct Progress<R> {
    inner: R,
    read: u64,
    reported: u64,
    report: Option<Box<dyn Fn(u64) + Send>>,
}

impl<R> Progress<R> {
    pub fn new(inner: R, report: Option<Box<dyn Fn(u64) + Send>>) -> Self {
        Progress {
            inner,
            read: 0,
            reported: 0,
            report,
        }
    }
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if let Some(report) = &self.report
            && (self.read - self.reported >= 1 << 20 || n == 0)
        {
            self.reported = self.read;
            report(self.read);
        }
        Ok(n)
    }
}

/// A decoded stream positioned after the header line, and what was learned
/// from reading that line.
pub struct Opened {
    pub layout: Layout,
    pub header: Header,
    /// The records after the header, as a CSV reader.
    pub records: csv::Reader<QuoteGuard<Box<dyn Read + Send>>>,
    pub guard: Arc<GuardState>,
    pub lines: LineCounter,
}

/// Decodes `raw` as `encoding`, finds the first non-blank line, sniffs the
/// separator from it and parses it as the header.
pub fn open(raw: Box<dyn Read + Send>, encoding: &'static Encoding) -> Result<Opened, ReadError> {
    let decoded: Box<dyn Read + Send> = Box::new(
        DecodeReaderBytesBuilder::new()
            .encoding(Some(encoding))
            .bom_override(true)
            .utf8_passthru(true)
            .strip_bom(true)
            .build(raw),
    );
    let mut decoded = BufReader::with_capacity(1 << 16, decoded);
    // Find the header line: the first line with something other than
    // white space on it.
    let mut line_no = 0u64;
    let mut header_line = Vec::new();
    loop {
        header_line.clear();
        let n = (&mut decoded)
            .take(MAX_RECORD_BYTES)
            .read_until(b'\n', &mut header_line)
            .map_err(|e| ReadError::Io(e.to_string()))?;
        if n == 0 {
            return Err(ReadError::Empty);
        }
        line_no += 1;
        if !header_line.ends_with(b"\n") && n as u64 >= MAX_RECORD_BYTES {
            return Err(ReadError::Syntax(format!(
                "line {line_no}: the header line is longer than {MAX_RECORD_BYTES} bytes"
            )));
        }
        if header_line.iter().any(|b| !b.is_ascii_whitespace()) {
            break;
        }
    }
    let separator = sniff_separator(&header_line);
    let header_record = parse_single_record(&header_line, separator).map_err(|why| {
        ReadError::Syntax(format!(
            "line {line_no}: the header cannot be parsed: {why}"
        ))
    })?;
    let names = header_record
        .iter()
        .map(|f| {
            String::from_utf8_lossy(f)
                .trim()
                .trim_matches('"')
                .trim()
                .to_lowercase()
        })
        .collect();
    let guard = Arc::new(GuardState::default());
    let rest: Box<dyn Read + Send> = Box::new(decoded);
    let records = csv::ReaderBuilder::new()
        .delimiter(separator)
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(QuoteGuard::new(rest, separator, line_no + 1, guard.clone()));
    Ok(Opened {
        layout: Layout {
            encoding,
            separator,
        },
        header: Header {
            names,
            line: line_no,
        },
        records,
        lines: LineCounter {
            first: line_no + 1,
            passed: 0,
            shared: guard.clone(),
        },
        guard,
    })
}

/// `;` unless the header has none: then tab if it has one, else `,` if it
/// has one (SPEC §5).
fn sniff_separator(header: &[u8]) -> u8 {
    if header.contains(&b';') {
        b';'
    } else if header.contains(&b'\t') {
        b'\t'
    } else if header.contains(&b',') {
        b','
    } else {
        b';'
    }
}

fn parse_single_record(line: &[u8], separator: u8) -> Result<csv::ByteRecord, String> {
    let guard = Arc::new(GuardState::default());
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(separator)
        .has_headers(false)
        .flexible(true)
        .from_reader(QuoteGuard::new(line, separator, 1, guard.clone()));
    let mut record = csv::ByteRecord::new();
    match reader.read_byte_record(&mut record) {
        Ok(true) => Ok(record),
        Ok(false) => Err("it is empty".into()),
        Err(_) if guard.unterminated_at().is_some() => Err("a quoted name is not closed".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// The separator as the report shows it.
pub fn separator_name(separator: u8) -> &'static str {
    match separator {
        b'\t' => "\t",
        b',' => ",",
        _ => ";",
    }
}

/// Encodings we name in messages when a BOM or auto-detection chose them.
pub fn is_unicode(e: &'static Encoding) -> bool {
    e == UTF_8 || e == UTF_16LE || e == UTF_16BE
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f
    }

    #[test]
    fn auto_detects_utf8_and_windows_1252() {
        let mut f = file_with("a;b\né;ü\n".as_bytes());
        assert_eq!(
            detect_encoding(&mut f, EncodingChoice::Auto).unwrap(),
            UTF_8
        );
        let mut f = file_with(b"a;b\n\xe9;\xfc\n");
        assert_eq!(
            detect_encoding(&mut f, EncodingChoice::Auto).unwrap(),
            WINDOWS_1252
        );
        let mut f = file_with(b"\xff\xfea\x00");
        assert_eq!(
            detect_encoding(&mut f, EncodingChoice::Auto).unwrap(),
            UTF_16LE
        );
    }

    #[test]
    fn strict_utf8_names_the_line() {
        let mut f = file_with(b"a;b\nok;ok\nbad;\xe9t\xe9\n");
        let err = detect_encoding(&mut f, EncodingChoice::Fixed(UTF_8)).unwrap_err();
        match err {
            ReadError::Encoding(m) => {
                assert!(m.starts_with("line 3: invalid UTF-8 byte 0xE9"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn utf8_check_across_buffer_boundaries() {
        // A multi-byte character straddling the 64 KiB read buffer.
        let mut bytes = vec![b'a'; (1 << 16) - 1];
        bytes.extend_from_slice("é\n".as_bytes());
        bytes.extend_from_slice(&vec![b'b'; 70_000]);
        let mut f = file_with(&bytes);
        assert_eq!(first_invalid_utf8(&mut f).unwrap(), None);
        let mut bytes = vec![b'a'; (1 << 16) - 1];
        bytes.extend_from_slice(b"\n\xc3");
        let mut f = file_with(&bytes);
        assert_eq!(first_invalid_utf8(&mut f).unwrap(), Some((2, 0xc3)));
    }

    #[test]
    fn separator_sniffing() {
        assert_eq!(sniff_separator(b"a;b,c"), b';');
        assert_eq!(sniff_separator(b"a\tb,c"), b'\t');
        assert_eq!(sniff_separator(b"a,b"), b',');
        assert_eq!(sniff_separator(b"a"), b';');
    }
}
