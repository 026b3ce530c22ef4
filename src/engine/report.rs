//! The report of one import (SPEC §8): what every front door answers and
//! what replaces an upload in a drop area.
//!
//! The documented keys come first and always carry their JSON types
//! (`success` is a boolean, counts are integers even when 0);
//! `error_code`/`error_description` appear only when `success` is false and
//! `exception_lines` only when lines were skipped, as in the original API.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::options::ImportOptions;

/// At most this many lines are listed in `exception_lines`;
/// `nb_exception_lines` has the total.
pub const MAX_EXCEPTION_LINES: usize = 1000;

/// The error codes of SPEC §8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    AccessDenied,
    CsvEmpty,
    CsvBadSyntax,
    CsvMissingColumn,
    EncodingInvalid,
    FileTypeUnknown,
    FileTooLarge,
    OptionInvalid,
    UploadIncomplete,
    InternalError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::AccessDenied => "ACCESS_DENIED",
            ErrorCode::CsvEmpty => "CSV_EMPTY",
            ErrorCode::CsvBadSyntax => "CSV_BAD_SYNTAX",
            ErrorCode::CsvMissingColumn => "CSV_MISSING_COLUMN",
            ErrorCode::EncodingInvalid => "ENCODING_INVALID",
            ErrorCode::FileTypeUnknown => "FILE_TYPE_UNKNOWN",
            ErrorCode::FileTooLarge => "FILE_TOO_LARGE",
            ErrorCode::OptionInvalid => "OPTION_INVALID",
            ErrorCode::UploadIncomplete => "UPLOAD_INCOMPLETE",
            ErrorCode::InternalError => "INTERNAL_ERROR",
        }
    }
}

/// Lines skipped, in line order (a file is read front to back), serialized
/// as `{"line N": "message"}`.
#[derive(Debug, Clone, Default)]
pub struct ExceptionLines(pub Vec<(u64, String)>);

impl Serialize for ExceptionLines {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (line, message) in &self.0 {
            map.serialize_entry(&format!("line {line}"), message)?;
        }
        map.end()
    }
}

/// Counts of what an import did; one set for every file type so each report
/// has every key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub nb_client_added: u64,
    pub nb_client_modified: u64,
    pub nb_client_unchanged: u64,
    pub nb_item_added: u64,
    pub nb_item_modified: u64,
    pub nb_item_unchanged: u64,
    pub nb_item_cleared: u64,
    pub nb_contact_added: u64,
    pub nb_contact_modified: u64,
    pub nb_contact_unchanged: u64,
    pub nb_user_added: u64,
    pub nb_user_modified: u64,
    pub nb_user_unchanged: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<ErrorCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    pub nb_client_added: u64,
    pub nb_client_modified: u64,
    pub nb_contact_added: u64,
    pub nb_item_added: u64,
    pub nb_item_modified: u64,
    pub nb_user_added: u64,
    pub nb_user_modified: u64,
    #[serde(skip_serializing_if = "ExceptionLines::is_empty")]
    pub exception_lines: ExceptionLines,
    pub file: String,
    pub file_type: Option<String>,
    pub import_id: Option<i64>,
    pub received_at: String,
    pub processed_at: String,
    pub options: Option<ImportOptions>,
    pub encoding: Option<String>,
    pub separator: Option<String>,
    pub lines_read: u64,
    pub lines_imported: u64,
    pub nb_item_cleared: u64,
    pub nb_client_unchanged: u64,
    pub nb_item_unchanged: u64,
    pub nb_contact_unchanged: u64,
    /// Contacts updated (JSON messages upsert; CSV contacts never update).
    pub nb_contact_modified: u64,
    pub nb_user_unchanged: u64,
    pub nb_exception_lines: u64,
    pub ignored_columns: Vec<String>,
    pub warnings: Vec<String>,
    pub dry_run: bool,
    /// JSON contact-person messages only: one response per message, in
    /// order ([`super::messages`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub responses: Option<Vec<serde_json::Value>>,
}

impl ExceptionLines {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Report {
    /// An empty successful report for `file`; the engine fills it in.
    pub fn new(file: &str, received_at: &str) -> Report {
        Report {
            success: true,
            error_code: None,
            error_description: None,
            nb_client_added: 0,
            nb_client_modified: 0,
            nb_contact_added: 0,
            nb_item_added: 0,
            nb_item_modified: 0,
            nb_user_added: 0,
            nb_user_modified: 0,
            exception_lines: ExceptionLines::default(),
            file: file.to_string(),
            file_type: None,
            import_id: None,
            received_at: received_at.to_string(),
            processed_at: received_at.to_string(),
            options: None,
            encoding: None,
            separator: None,
            lines_read: 0,
            lines_imported: 0,
            nb_item_cleared: 0,
            nb_client_unchanged: 0,
            nb_item_unchanged: 0,
            nb_contact_unchanged: 0,
            nb_contact_modified: 0,
            nb_user_unchanged: 0,
            nb_exception_lines: 0,
            ignored_columns: Vec::new(),
            warnings: Vec::new(),
            dry_run: false,
            responses: None,
        }
    }

    /// Marks the report failed. A failed import changes nothing, so the
    /// counts go back to zero: they would describe changes that were not made.
    pub fn fail(&mut self, code: ErrorCode, description: impl Into<String>) {
        self.success = false;
        self.error_code = Some(code);
        self.error_description = Some(description.into());
        self.set_counts(Counts::default());
        self.lines_imported = 0;
    }

    /// Records a skipped line.
    pub fn exception(&mut self, line: u64, message: impl Into<String>) {
        self.nb_exception_lines += 1;
        if self.exception_lines.0.len() < MAX_EXCEPTION_LINES {
            self.exception_lines.0.push((line, message.into()));
        }
    }

    pub fn set_counts(&mut self, c: Counts) {
        self.nb_client_added = c.nb_client_added;
        self.nb_client_modified = c.nb_client_modified;
        self.nb_client_unchanged = c.nb_client_unchanged;
        self.nb_item_added = c.nb_item_added;
        self.nb_item_modified = c.nb_item_modified;
        self.nb_item_unchanged = c.nb_item_unchanged;
        self.nb_item_cleared = c.nb_item_cleared;
        self.nb_contact_added = c.nb_contact_added;
        self.nb_contact_unchanged = c.nb_contact_unchanged;
        self.nb_contact_modified = c.nb_contact_modified;
        self.nb_user_added = c.nb_user_added;
        self.nb_user_modified = c.nb_user_modified;
        self.nb_user_unchanged = c.nb_user_unchanged;
    }

    /// Pretty-printed JSON, as written to drop areas and printed by the CLI.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }
}
