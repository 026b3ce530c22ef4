//! How the FTP door shows the drop area: `LIST` lines in the `ls -l` form
//! that every client parses, `NLST` names, and `MLSD`/`MLST` facts
//! (RFC 3659), which modern clients prefer because they are exact.

use std::time::SystemTime;

use chrono::{DateTime, Datelike, Utc};

use crate::drop_area::{Entry, EntryKind};

/// One `LIST` line: `-rw-r--r-- 1 ftp ftp 1234 Nov 22 10:00 items.csv`.
/// Pending uploads show as read-only: they can no longer be changed.
pub fn list_line(entry: &Entry, now: SystemTime) -> String {
    let mode = match entry.kind {
        EntryKind::Pending => "-r--r--r--",
        _ => "-rw-r--r--",
    };
    format!(
        "{mode} 1 ftp ftp {:>12} {} {}\r\n",
        entry.size,
        ls_time(entry.modified, now),
        entry.name
    )
}

/// `ls` shows the time for files of the last six months, else the year.
fn ls_time(modified: SystemTime, now: SystemTime) -> String {
    let t: DateTime<Utc> = modified.into();
    let now: DateTime<Utc> = now.into();
    let age = now.signed_duration_since(t);
    if age.num_days() < 180 && age.num_days() > -1 {
        t.format("%b %e %H:%M").to_string()
    } else {
        format!("{} {:>5}", t.format("%b %e"), t.year())
    }
}

/// The `MLSD`/`MLST` facts of an entry, then a space and its name.
pub fn facts(entry: &Entry) -> String {
    // r: can be read (RETR); d: can be deleted (DELE); f: can be renamed.
    let perm = match entry.kind {
        EntryKind::Pending => "",
        EntryKind::Report => "rd",
        EntryKind::Upload => "rdfw",
    };
    format!(
        "type=file;size={};modify={};perm={perm}; {}",
        entry.size,
        mdtm(entry.modified),
        entry.name
    )
}

/// The root folder's facts, for `MLST /` and the `.` line of `MLSD`.
pub fn root_facts() -> String {
    "type=cdir;perm=elc; /".to_string()
}

/// `YYYYMMDDHHMMSS` in UTC, as `MDTM` and `modify=` want it.
pub fn mdtm(t: SystemTime) -> String {
    let t: DateTime<Utc> = t.into();
    t.format("%Y%m%d%H%M%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(kind: EntryKind) -> Entry {
        Entry {
            name: "items.csv".into(),
            size: 1234,
            modified: SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000),
            kind,
        }
    }

    #[test]
    fn list_lines_look_like_ls() {
        let e = entry(EntryKind::Report);
        let now = e.modified + Duration::from_secs(3600);
        assert_eq!(
            list_line(&e, now),
            "-rw-r--r-- 1 ftp ftp         1234 Nov 24 16:00 items.csv\r\n"
        );
        let old = e.modified + Duration::from_secs(400 * 86400);
        assert!(list_line(&e, old).contains("Nov 24  2025 items.csv"));
    }

    #[test]
    fn facts_follow_rfc_3659() {
        assert_eq!(
            facts(&entry(EntryKind::Pending)),
            "type=file;size=1234;modify=20251124160000;perm=; items.csv"
        );
    }
}
