//! JSON contact-person messages (SPEC §10): the DigiOffice gateway's
//! `ImportContactpersoon`, as a file (`contacts*.json`, `contacts*.jsonl`)
//! or an HTTP request, through the same import as every other file.
//!
//! A file holds one message, a JSON array of messages, or JSON Lines (one
//! message per line). Each message is `{"Header": {...}, "Data": {...}}`
//! and gets one response, in order: `{"Header": <echoed>, "Response":
//! {Status, Errors, DigiOfficeContactPersonID, DigiOfficeGlobalID}}`. The
//! responses are the report's `responses`; the HTTP door answers with them
//! in the framing of the request.
//!
//! Unlike CSV contacts, messages upsert: the contact is identified by
//! `systemId` (else `digiOfficeId`) as its `contact_unique_key`, the same
//! identity a CSV line with that key has, and a later message with the same
//! key updates it. A bad message is answered with `Status: "Error"` and
//! skipped like a bad CSV line; the others go on, and the file is still
//! applied in one transaction. Messages are read one at a time (a JSON
//! array is walked element by element), so memory does not grow with the
//! file beyond the responses themselves.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use serde::Deserializer as _;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value as Json, json};

use super::fields::parse_cell;
use super::report::{Counts, ErrorCode, Report};
use crate::ledger::{FileType, Value};
use crate::store::{LedgerTx, Lookup, Shape, StoreError};

/// How the messages of a file are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One JSON value: a message or an array of messages.
    Json,
    /// One message per line.
    JsonLines,
}

impl Framing {
    /// The framing a contacts file's extension says, if it is a message file.
    pub fn from_extension(extension: &str) -> Option<Framing> {
        match extension {
            "json" => Some(Framing::Json),
            "jsonl" => Some(Framing::JsonLines),
            _ => None,
        }
    }
}

/// The GUID of a message that imported nothing.
pub const ZERO_GUID: &str = "00000000-0000-0000-0000-000000000000";

/// A JSON Lines line longer than this is refused (as a CSV record is).
const MAX_LINE: usize = 1 << 20;

/// The most messages one file (or request) may hold: each gets a response
/// kept in the report, so their number bounds the report's size.
pub const MAX_MESSAGES: usize = 10_000;

/// The largest message file: a JSON value is read whole before it is
/// applied, so this bounds the memory one file can take.
pub const MAX_FILE: u64 = 16 << 20;

/// A message's `Header` is echoed in its response up to this size (as JSON);
/// a larger one is refused, as it would make the report grow.
const MAX_HEADER: usize = 4096;

/// Where message fields go: (contact column, the `Data` keys that can
/// fill it, first present wins). The client and the last name have rules
/// of their own.
const MAPPED: [(&str, &[&str]); 5] = [
    ("contact_firstname", &["firstName"]),
    ("contact_title", &["jobTitle"]),
    ("contact_email", &["eMail"]),
    ("contact_phone", &["phoneNo"]),
    ("contact_phone_cell", &["mobilePhoneNo"]),
];

/// What a file-level failure was.
pub enum Failure {
    Syntax(String),
    Empty,
    TooLarge(String),
}

/// Applies the messages of `input` in `tx`, filling `report`. `Ok(Err(..))`
/// is a file-level failure (nothing to commit).
pub fn apply(
    input: impl Read,
    framing: Framing,
    dry_run: bool,
    tx: &mut dyn LedgerTx,
    report: &mut Report,
) -> Result<Result<(), Failure>, StoreError> {
    let mut sink = Sink {
        shapes: HashMap::new(),
        dry_run,
        too_many: false,
        tx,
        report,
        counts: Counts::default(),
        responses: Vec::new(),
        failed: None,
    };
    let mut reader = BufReader::new(input);
    if let Err(e) = skip_bom(&mut reader) {
        return Ok(Err(Failure::Syntax(format!("cannot read the file: {e}"))));
    }
    let outcome = match framing {
        Framing::Json => sink.read_json(reader),
        Framing::JsonLines => sink.read_lines(reader),
    };
    if let Some(e) = sink.failed.take() {
        return Err(e);
    }
    if sink.too_many {
        return Ok(Err(Failure::TooLarge(format!(
            "more than {MAX_MESSAGES} messages in one file or request: split them"
        ))));
    }
    let Sink {
        counts, responses, ..
    } = sink;
    if let Err(failure) = outcome {
        return Ok(Err(failure));
    }
    if responses.is_empty() {
        return Ok(Err(Failure::Empty));
    }
    report.set_counts(counts);
    report.responses = Some(responses);
    Ok(Ok(()))
}

fn skip_bom(reader: &mut impl BufRead) -> std::io::Result<()> {
    if reader.fill_buf()?.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
    }
    Ok(())
}

/// Reads the first present, non-empty text of the given `Data` keys.
type TextField<'a> = dyn Fn(&[&str]) -> Result<Option<String>, String> + 'a;

/// Receives messages one by one, applies them, and collects the responses.
struct Sink<'a, 't> {
    tx: &'a mut (dyn LedgerTx + 't),
    report: &'a mut Report,
    /// (update, insert) shapes by which optional columns a message has:
    /// a message writes only what it carries.
    shapes: HashMap<u8, (Shape, Shape)>,
    dry_run: bool,
    /// The file holds more than [`MAX_MESSAGES`].
    too_many: bool,
    counts: Counts,
    responses: Vec<Json>,
    /// A store failure met inside the JSON walk, which only carries serde
    /// errors: kept here and returned once the walk has stopped.
    failed: Option<StoreError>,
}

impl Sink<'_, '_> {
    fn read_json(&mut self, reader: impl Read) -> Result<(), Failure> {
        let mut de = serde_json::Deserializer::from_reader(reader);
        let walked = (&mut de).deserialize_any(DocumentVisitor { sink: self });
        if self.failed.is_some() || self.too_many {
            return Ok(());
        }
        walked
            .and_then(|()| de.end())
            .map_err(|e| Failure::Syntax(json_syntax(&e)))
    }

    fn read_lines(&mut self, mut reader: impl BufRead) -> Result<(), Failure> {
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            let n = (&mut reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(|e| Failure::Syntax(format!("cannot read the file: {e}")))?;
            if n == 0 {
                return Ok(());
            }
            number += 1;
            if line.len() > MAX_LINE {
                return Err(Failure::Syntax(format!(
                    "line {number}: longer than {MAX_LINE} bytes"
                )));
            }
            let text = String::from_utf8_lossy(&line);
            if text.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Json>(&text) {
                Ok(message) => self.message(number, message),
                Err(e) => {
                    let what = e.to_string();
                    let what = what.split(" at line ").next().unwrap_or_default();
                    let error = format!(
                        "line {number}, column {}: not a JSON message: {what}",
                        e.column()
                    );
                    self.refuse(number, Json::Null, error);
                }
            }
            if self.failed.is_some() || self.too_many {
                return Ok(());
            }
        }
    }

    /// Applies one message and records its response.
    fn message(&mut self, number: u64, message: Json) {
        self.report.lines_read += 1;
        if self.responses.len() >= MAX_MESSAGES {
            // One too many: the walk stops and `apply` fails the file.
            self.too_many = true;
            return;
        }
        let header = message.get("Header").cloned().unwrap_or(Json::Null);
        let header_size = serde_json::to_string(&header).map_or(0, |h| h.len());
        if header_size > MAX_HEADER {
            let error = format!("the Header is larger than {MAX_HEADER} bytes");
            return self.refuse(number, Json::Null, error);
        }
        let outcome = match message {
            Json::Object(mut fields) => match fields.remove("Data") {
                Some(Json::Object(data)) => self.apply(&data),
                Some(_) => Ok(Err("'Data' must be an object".to_string())),
                None => Ok(Err("the message has no 'Data'".to_string())),
            },
            _ => Ok(Err("a message must be a JSON object".to_string())),
        };
        match outcome {
            Ok(Ok((id, guid))) => {
                self.report.lines_imported += 1;
                self.responses.push(json!({
                    "Header": header,
                    "Response": {
                        "Status": "Ok",
                        "Errors": "",
                        "DigiOfficeContactPersonID": id,
                        "DigiOfficeGlobalID": guid,
                    }
                }));
            }
            Ok(Err(error)) => self.refuse(number, header, error),
            Err(e) => self.failed = Some(e),
        }
    }

    fn refuse(&mut self, number: u64, header: Json, error: String) {
        self.report.exception(number, error.clone());
        self.responses.push(json!({
            "Header": header,
            "Response": {
                "Status": "Error",
                "Errors": error,
                "DigiOfficeContactPersonID": "",
                "DigiOfficeGlobalID": ZERO_GUID,
            }
        }));
    }

    /// Maps a message's `Data` onto a contact and upserts it; answers the
    /// contact's id and GUID, or why the message was refused.
    fn apply(
        &mut self,
        data: &Map<String, Json>,
    ) -> Result<Result<(String, String), String>, StoreError> {
        let text = |keys: &[&str]| -> Result<Option<String>, String> {
            for key in keys {
                match data.get(*key) {
                    None | Some(Json::Null) => continue,
                    Some(Json::String(s)) if s.trim().is_empty() => continue,
                    Some(Json::String(s)) => return Ok(Some(s.trim().to_string())),
                    Some(Json::Number(n)) => return Ok(Some(n.to_string())),
                    Some(other) => {
                        return Err(format!("Data.{key}: expected a string, got {other}"));
                    }
                }
            }
            Ok(None)
        };
        let client = match self.client(&text)? {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let key = match text(&["systemId", "digiOfficeId"]) {
            Ok(Some(k)) => k,
            Ok(None) => {
                return Ok(Err(
                    "Data.systemId (or Data.digiOfficeId) is required: it identifies the contact"
                        .into(),
                ));
            }
            Err(e) => return Ok(Err(e)),
        };
        let lastname = match text(&["lastName", "surname", "no"]) {
            Ok(Some(n)) => n,
            Ok(None) => {
                return Ok(Err(
                    "no last name: give Data.lastName, Data.surname or Data.no".into(),
                ));
            }
            Err(e) => return Ok(Err(e)),
        };
        let mut values = vec![
            Value::Int(client),
            Value::Text(lastname),
            Value::Text(key.clone()),
        ];
        // Only the fields the message carries are written: a message
        // without an email must not erase the one a CSV import stored.
        let mut present = 0u8;
        for (bit, (column, keys)) in MAPPED.into_iter().enumerate() {
            let raw = match text(keys) {
                Ok(Some(raw)) => raw,
                Ok(None) => continue,
                Err(e) => return Ok(Err(e)),
            };
            let kind = FileType::Contacts
                .column(column)
                .expect("mapped columns are contact columns")
                .kind;
            match parse_cell(kind, column, &raw) {
                Ok(v) => values.push(v),
                Err(e) => return Ok(Err(format!("{} ({})", e, keys[0]))),
            }
            present |= 1 << bit;
        }
        let (update, insert) = self.shapes_for(present)?;

        let ident = format!("K:{key}");
        let id = match self.tx.lookup(update, &ident, &values)? {
            Lookup::Same(id) => {
                self.counts.nb_contact_unchanged += 1;
                id
            }
            Lookup::Differs(id) => {
                self.tx.update(update, id, &values)?;
                self.counts.nb_contact_modified += 1;
                id
            }
            Lookup::Missing => {
                values.push(Value::Text("other".into()));
                self.counts.nb_contact_added += 1;
                self.tx.insert(insert, &ident, &values)?
            }
        };
        // A dry run answers with the GUID a contact already has, and the
        // zero GUID for one it would add: nothing it says is kept.
        let guid = self
            .tx
            .contact_global_id(id, !self.dry_run)?
            .unwrap_or_else(|| ZERO_GUID.to_string());
        Ok(Ok((id.to_string(), guid)))
    }

    /// The update and insert shapes of messages carrying the optional
    /// columns in `present` (bits in [`MAPPED`] order). The role is written
    /// only when a contact is added, so a later message does not undo a
    /// role set by a CSV import or by hand.
    fn shapes_for(&mut self, present: u8) -> Result<(Shape, Shape), StoreError> {
        if let Some(shapes) = self.shapes.get(&present) {
            return Ok(*shapes);
        }
        let mut columns = vec!["client_code", "contact_lastname", "contact_unique_key"];
        for (bit, (column, _)) in MAPPED.into_iter().enumerate() {
            if present & (1 << bit) != 0 {
                columns.push(column);
            }
        }
        let update = self.tx.shape(FileType::Contacts, &columns)?;
        columns.push("contact_role");
        let insert = self.tx.shape(FileType::Contacts, &columns)?;
        self.shapes.insert(present, (update, insert));
        Ok((update, insert))
    }

    /// The client a message names: `Data.clientCode`, else the client whose
    /// `client_unique_key` is `crmCompanyId`, else `companyId`.
    fn client(&mut self, text: &TextField<'_>) -> Result<Result<i64, String>, StoreError> {
        let code = match text(&["clientCode"]) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(code) = code {
            return Ok(match self.tx.client_by_code(&code)? {
                Some(id) => Ok(id),
                None => Err(format!("Data.clientCode '{code}': no such client")),
            });
        }
        let mut tried = Vec::new();
        for key in ["crmCompanyId", "companyId"] {
            match text(&[key]) {
                Ok(Some(value)) => {
                    if let Some((id, _)) = self.tx.client_code_by_unique_key(&value)? {
                        return Ok(Ok(id));
                    }
                    tried.push(format!("Data.{key} '{value}'"));
                }
                Ok(None) => {}
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Err(if tried.is_empty() {
            "no client: give Data.crmCompanyId (a client's client_unique_key), \
             Data.companyId or Data.clientCode"
                .into()
        } else {
            format!("no client has client_unique_key {}", tried.join(" or "))
        }))
    }
}

fn json_syntax(e: &serde_json::Error) -> String {
    format!("line {} column {}: invalid JSON: {e}", e.line(), e.column())
}

/// Walks the document: one message (an object) or an array of them, each
/// handed to the sink as soon as it is read.
struct DocumentVisitor<'s, 'a, 't> {
    sink: &'s mut Sink<'a, 't>,
}

impl<'de> Visitor<'de> for DocumentVisitor<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a message object or an array of messages")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let message =
            serde::Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        self.sink.message(1, message);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut number = 0;
        while let Some(message) = seq.next_element_seed(MessageSeed)? {
            number += 1;
            self.sink.message(number, message);
            if self.sink.failed.is_some() || self.sink.too_many {
                return Err(serde::de::Error::custom("stopped"));
            }
        }
        Ok(())
    }
}

/// One element of the array, as a JSON value.
struct MessageSeed;

impl<'de> DeserializeSeed<'de> for MessageSeed {
    type Value = Json;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        serde::Deserialize::deserialize(d)
    }
}

/// The report's line-level failure for a message file, as the file-level
/// error the engine records.
pub fn fail(report: &mut Report, failure: Failure) {
    match failure {
        Failure::Syntax(m) => report.fail(ErrorCode::CsvBadSyntax, m),
        Failure::Empty => report.fail(ErrorCode::CsvEmpty, "the file holds no message"),
        Failure::TooLarge(m) => report.fail(ErrorCode::FileTooLarge, m),
    }
}
