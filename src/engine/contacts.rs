//! Contacts files (SPEC §7): insert-only.
//!
//! An import adds new contacts and never updates existing ones (the
//! original product's documented rule: contacts are then maintained in the
//! application). A contact is "already there" when its `contact_unique_key`
//! matches, or, without one, when client, last name, first name and email
//! match case-insensitively. `contact_collection = 1` on an added contact
//! makes it its client's single collection contact.

use super::{
    ClientCodes, Field, Handler, HeaderMap, Line, LineParser, Parsed, duplicate_message,
    resolve_client,
};
use crate::engine::report::Counts;
use crate::ledger::{FileType, Value};
use crate::store::{LedgerTx, Seen, Shape, StoreError};

/// The columns a contacts file writes: those it has, in its order, and the
/// role last (it has a default).
fn columns(header: &HeaderMap) -> Vec<Field> {
    let mut fields = header.present_fields(&["contact_role"]);
    fields.push(header.field("contact_role"));
    fields
}

fn position(fields: &[Field], name: &str) -> Option<usize> {
    fields.iter().position(|f| f.name() == name)
}

pub struct ContactParser {
    fields: Vec<Field>,
    role: usize,
    client: Field,
    lastname: Field,
    firstname: Field,
    email: Field,
    unique_key: Field,
    clients: std::sync::Arc<ClientCodes>,
}

impl ContactParser {
    pub fn new(header: &HeaderMap, clients: std::sync::Arc<ClientCodes>) -> Self {
        let fields = columns(header);
        ContactParser {
            role: fields.len() - 1,
            fields,
            client: header.field("client_code"),
            lastname: header.field("contact_lastname"),
            firstname: header.field("contact_firstname"),
            email: header.field("contact_email"),
            unique_key: header.field("contact_unique_key"),
            clients,
        }
    }
}

impl LineParser for ContactParser {
    /// `ident` holds the names and email, lower-cased: the handler prefixes
    /// the client it resolves.
    fn parse(&self, line: &Line<'_>) -> Parsed {
        let mut p = Parsed::new(line.number);
        p.values = line.values(&self.fields, &mut p.errors);
        if p.values[self.role].is_null() {
            p.values[self.role] = Value::Text("other".into());
        }
        p.client_code = line.non_empty(&self.client);
        self.clients.resolve(&mut p, false);
        p.key = line.non_empty(&self.unique_key);
        let part = |f: &Field| line.raw(f).unwrap_or_default().to_lowercase();
        p.ident = Some(format!(
            "{}\u{1f}{}\u{1f}{}",
            part(&self.lastname),
            part(&self.firstname),
            part(&self.email)
        ));
        p
    }
}

pub struct Contacts {
    shape: Shape,
    client: usize,
    collection: Option<usize>,
}

impl Contacts {
    pub fn new(header: &HeaderMap, tx: &mut dyn LedgerTx) -> Result<Self, StoreError> {
        let fields = columns(header);
        let names: Vec<&'static str> = fields.iter().map(Field::name).collect();
        Ok(Contacts {
            shape: tx.shape(FileType::Contacts, &names)?,
            client: position(&fields, "client_code").expect("client_code is required"),
            collection: position(&fields, "contact_collection"),
        })
    }
}

impl Handler for Contacts {
    fn apply(
        &mut self,
        tx: &mut dyn LedgerTx,
        line: &mut Parsed,
        counts: &mut Counts,
    ) -> Result<Result<(), String>, StoreError> {
        let client_ref = resolve_client(tx, line, false)?;
        if !line.errors.is_empty() {
            return Ok(Err(line.errors.join("; ")));
        }
        let client_ref = client_ref.expect("client_code is required");
        line.values[self.client] = Value::Int(client_ref);
        let ident = match &line.key {
            Some(key) => format!("K:{key}"),
            None => format!(
                "N:{client_ref}\u{1f}{}",
                line.ident.as_deref().unwrap_or_default()
            ),
        };
        let id = match tx.find_id(self.shape, &ident)? {
            Some(id) => {
                if let Some(earlier) = tx.mark_seen(Seen::Contact, id, 0, line.number)? {
                    return Ok(Err(duplicate_message(earlier, "contact")));
                }
                counts.nb_contact_unchanged += 1;
                return Ok(Ok(()));
            }
            None => tx.insert(self.shape, &ident, &line.values)?,
        };
        tx.mark_seen(Seen::Contact, id, 0, line.number)?;
        counts.nb_contact_added += 1;
        if let Some(i) = self.collection
            && line.values[i] == Value::Int(1)
        {
            tx.set_collection_contact(client_ref, id)?;
        }
        Ok(Ok(()))
    }
}
