//! The naming rules of a dropped file (SPEC §3): which names are data files,
//! which are temporary, which tags they carry, and what their report is
//! called.
//!
//! Every front door and the command-line `import` ask this module; none of
//! them looks at a name itself.

use crate::ledger::FileType;

/// Suffix of the report that replaces an upload.
pub const REPORT_SUFFIX: &str = ".report.json";

/// Suffixes that upload clients use for files still being written (WinSCP's
/// `.filepart`, lftp/rsync style `.part`/`.partial`, editors' `~`, ...).
const TEMPORARY_SUFFIXES: [&str; 6] = [".filepart", ".part", ".partial", ".tmp", ".temp", "~"];

/// What a file name says about the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameKind {
    /// A data file: its type and the name tags before the extension.
    Data {
        file_type: FileType,
        tags: Vec<String>,
        extension: String,
    },
    /// Still being uploaded: never processed until renamed.
    Temporary,
    /// A report; clients may read and delete these but never upload one.
    Report,
    /// Anything else: processed into a `FILE_TYPE_UNKNOWN` report.
    Unknown,
}

/// Classifies a bare file name (no directory part).
pub fn classify(name: &str) -> NameKind {
    let lower = name.to_ascii_lowercase();
    if lower.starts_with('.') || TEMPORARY_SUFFIXES.iter().any(|s| lower.ends_with(s)) {
        return NameKind::Temporary;
    }
    if lower.ends_with(REPORT_SUFFIX) {
        return NameKind::Report;
    }
    let Some((stem, extension)) = name.rsplit_once('.') else {
        return NameKind::Unknown;
    };
    let extension = extension.to_ascii_lowercase();
    let mut parts = stem.split('@');
    let base = parts.next().unwrap_or_default().to_ascii_lowercase();
    let tags: Vec<String> = parts.map(str::to_string).collect();
    let Some(file_type) = FileType::ALL
        .into_iter()
        .find(|t| base.starts_with(t.as_str()))
    else {
        return NameKind::Unknown;
    };
    let accepted = match extension.as_str() {
        "csv" | "txt" => true,
        "json" | "jsonl" => file_type == FileType::Contacts,
        _ => false,
    };
    if !accepted {
        return NameKind::Unknown;
    }
    NameKind::Data {
        file_type,
        tags,
        extension,
    }
}

/// The name of the report written for an upload called `name`.
pub fn report_name(name: &str) -> String {
    format!("{name}{REPORT_SUFFIX}")
}

/// The patterns dropgate recognizes, for the `FILE_TYPE_UNKNOWN` message.
pub const ACCEPTED_PATTERNS: &str = "clients*.csv, items*.csv, contacts*.csv, users*.csv \
     (or .txt; contacts also .json/.jsonl), optionally with @tags before the extension";

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> Option<(FileType, Vec<String>)> {
        match classify(name) {
            NameKind::Data {
                file_type, tags, ..
            } => Some((file_type, tags)),
            _ => None,
        }
    }

    #[test]
    fn recognizes_the_documented_names() {
        assert_eq!(data("items_20251205.csv"), Some((FileType::Items, vec![])));
        assert_eq!(data("CLIENTS.TXT"), Some((FileType::Clients, vec![])));
        assert_eq!(data("users-eu.csv"), Some((FileType::Users, vec![])));
        assert_eq!(
            data("contacts.jsonl").map(|d| d.0),
            Some(FileType::Contacts)
        );
        assert_eq!(
            data("items_20251205@stock@windows-1252.csv"),
            Some((FileType::Items, vec!["stock".into(), "windows-1252".into()]))
        );
    }

    #[test]
    fn refuses_other_names() {
        for name in [
            "col_items.csv",
            "invoices.csv",
            "items.xlsx",
            "items.json",
            "items",
        ] {
            assert_eq!(classify(name), NameKind::Unknown, "{name}");
        }
    }

    #[test]
    fn temporary_and_report_names() {
        for name in [
            ".items.csv",
            "items.csv.filepart",
            "items.csv.part",
            "items.csv.partial",
            "items.csv.tmp",
            "items.csv.TEMP",
            "items.csv~",
        ] {
            assert_eq!(classify(name), NameKind::Temporary, "{name}");
        }
        assert_eq!(classify("items.csv.report.json"), NameKind::Report);
        assert_eq!(report_name("items.csv"), "items.csv.report.json");
    }
}
