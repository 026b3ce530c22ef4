//! Clients files (SPEC §7): upsert by `client_code`.
//!
//! Only the columns present in the file are written, so a file with just
//! code and name leaves a client's other fields as they were; an empty cell
//! in a present column clears that field. `client_unique_key` must not be
//! held by another client.

use super::{
    Field, Handler, HeaderMap, Line, LineParser, Parsed, Upserted, duplicate_message, upsert,
};
use crate::engine::report::Counts;
use crate::ledger::FileType;
use crate::store::{LedgerTx, Seen, Shape, StoreError};

/// The columns a clients file writes: those it has, in its order.
fn columns(header: &HeaderMap) -> Vec<Field> {
    header.present_fields(&[])
}

pub struct ClientParser {
    fields: Vec<Field>,
    code: Field,
    unique_key: Field,
}

impl ClientParser {
    pub fn new(header: &HeaderMap) -> Self {
        ClientParser {
            fields: columns(header),
            code: header.field("client_code"),
            unique_key: header.field("client_unique_key"),
        }
    }
}

impl LineParser for ClientParser {
    fn parse(&self, line: &Line<'_>) -> Parsed {
        let mut p = Parsed::new(line.number);
        p.values = line.values(&self.fields, &mut p.errors);
        p.ident = line.non_empty(&self.code);
        p.key = line.non_empty(&self.unique_key);
        p
    }
}

pub struct Clients {
    shape: Shape,
}

impl Clients {
    pub fn new(header: &HeaderMap, tx: &mut dyn LedgerTx) -> Result<Self, StoreError> {
        let names: Vec<&'static str> = columns(header).iter().map(Field::name).collect();
        Ok(Clients {
            shape: tx.shape(FileType::Clients, &names)?,
        })
    }
}

impl Handler for Clients {
    fn apply(
        &mut self,
        tx: &mut dyn LedgerTx,
        line: &mut Parsed,
        counts: &mut Counts,
    ) -> Result<Result<(), String>, StoreError> {
        if !line.errors.is_empty() {
            return Ok(Err(line.errors.join("; ")));
        }
        let code = line.ident.as_deref().expect("client_code is required");
        if let Some(key) = &line.key
            && let Some((_, holder)) = tx.client_code_by_unique_key(key)?
            && holder != code
        {
            return Ok(Err(format!(
                "client_unique_key '{key}' is already used by client_code '{holder}'"
            )));
        }
        match upsert(
            tx,
            self.shape,
            Seen::Client,
            code,
            &line.values,
            line.number,
        )? {
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
