//! Export: the ledger written back as CSV in the import format.
//!
//! Every column of the file type, in [`crate::ledger`] order, semicolon
//! separated, amounts with a `.` decimal mark, dates `YYYY-MM-DD`. Importing
//! an export into the same account reports everything unchanged; that
//! round trip is what makes an export a faithful backup.

use std::io::Write;

use super::fields::{format_amount, format_date_number};
use crate::ledger::{FileType, Kind, Value};
use crate::store::Store;

/// Writes `file_type` of the account as CSV to `out`; returns the number of
/// data lines written.
pub fn export(
    store: &dyn Store,
    account_id: i64,
    file_type: FileType,
    open_only: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u64> {
    let columns = file_type.columns();
    let mut writer = csv::WriterBuilder::new()
        .delimiter(b';')
        .terminator(csv::Terminator::CRLF)
        .from_writer(out);
    writer.write_record(columns.iter().map(|c| c.name))?;
    let mut lines = 0u64;
    let mut cells: Vec<String> = Vec::with_capacity(columns.len());
    store.export(account_id, file_type, open_only, &mut |values| {
        cells.clear();
        for (column, value) in columns.iter().zip(values) {
            cells.push(match (column.kind, value) {
                (_, Value::Null) => String::new(),
                (Kind::Amount, Value::Int(micros)) => format_amount(*micros),
                (Kind::Date, Value::Int(date)) => format_date_number(*date),
                (_, Value::Int(i)) => i.to_string(),
                (_, Value::Text(s)) => s.clone(),
            });
        }
        writer.write_record(&cells)?;
        lines += 1;
        Ok(())
    })?;
    writer.flush()?;
    Ok(lines)
}
