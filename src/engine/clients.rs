//! Clients files (SPEC §7): upsert by `client_code`.
//!
//! Only the columns present in the file are written, so a file with just
//! code and name leaves a client's other fields as they were; an empty cell
//! in a present column clears that field. `client_unique_key` must not be
//! held by another client.

use super::{Field, Handler, HeaderMap, Line, Upserted, duplicate_message, upsert};
use crate::engine::report::Counts;
use crate::ledger::FileType;
use crate::store::{LedgerTx, Seen, Shape, StoreError};

pub struct Clients {
    fields: Vec<Field>,
    code: Field,
    unique_key: Field,
    shape: Shape,
}

impl Clients {
    pub fn new(header: &HeaderMap, tx: &mut dyn LedgerTx) -> Result<Self, StoreError> {
        let fields = header.present_fields(&[]);
        let names: Vec<&'static str> = fields.iter().map(Field::name).collect();
        Ok(Clients {
            shape: tx.shape(FileType::Clients, &names)?,
            fields,
            code: header.field("client_code"),
            unique_key: header.field("client_unique_key"),
        })
    }
}

impl Handler for Clients {
    fn line(
        &mut self,
        tx: &mut dyn LedgerTx,
        line: &Line<'_>,
        counts: &mut Counts,
    ) -> Result<Result<(), String>, StoreError> {
        let mut errors = Vec::new();
        let values = line.values(&self.fields, &mut errors);
        if !errors.is_empty() {
            return Ok(Err(errors.join("; ")));
        }
        let code = line.raw(&self.code).unwrap_or_default();
        if let Some(key) = line.raw(&self.unique_key).filter(|k| !k.is_empty())
            && let Some((_, holder)) = tx.client_code_by_unique_key(key)?
            && holder != code
        {
            return Ok(Err(format!(
                "client_unique_key '{key}' is already used by client_code '{holder}'"
            )));
        }
        match upsert(tx, self.shape, Seen::Client, code, &values, line.number)? {
            Upserted::Added(_) => counts.nb_client_added += 1,
            Upserted::Modified(_) => counts.nb_client_modified += 1,
            Upserted::Unchanged(_) => counts.nb_client_unchanged += 1,
            Upserted::Duplicate(earlier) => {
                return Ok(Err(duplicate_message(earlier, "client")));
            }
        }
        Ok(Ok(()))
    }
}
