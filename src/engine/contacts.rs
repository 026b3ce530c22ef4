//! Contacts files (SPEC §7): insert-only.
//!
//! An import adds new contacts and never updates existing ones (the
//! original product's documented rule: contacts are then maintained in the
//! application). A contact is "already there" when its `contact_unique_key`
//! matches, or, without one, when client, last name, first name and email
//! match case-insensitively. `contact_collection = 1` on an added contact
//! makes it its client's single collection contact.

use super::{ClientLookup, Field, Handler, HeaderMap, Line, duplicate_message};
use crate::engine::report::Counts;
use crate::ledger::{FileType, Value};
use crate::store::{LedgerTx, Seen, Shape, StoreError};

pub struct Contacts {
    fields: Vec<Field>,
    client: usize,
    role: usize,
    collection: Option<usize>,
    lastname: Field,
    firstname: Field,
    email: Field,
    unique_key: Field,
    shape: Shape,
    clients: ClientLookup,
}

impl Contacts {
    pub fn new(header: &HeaderMap, tx: &mut dyn LedgerTx) -> Result<Self, StoreError> {
        let mut fields = header.present_fields(&["contact_role"]);
        fields.push(header.field("contact_role"));
        let names: Vec<&'static str> = fields.iter().map(Field::name).collect();
        let position = |name: &str| names.iter().position(|n| *n == name);
        Ok(Contacts {
            shape: tx.shape(FileType::Contacts, &names)?,
            client: position("client_code").expect("client_code is required"),
            role: names.len() - 1,
            collection: position("contact_collection"),
            lastname: header.field("contact_lastname"),
            firstname: header.field("contact_firstname"),
            email: header.field("contact_email"),
            unique_key: header.field("contact_unique_key"),
            fields,
            clients: ClientLookup::new(),
        })
    }
}

impl Handler for Contacts {
    fn line(
        &mut self,
        tx: &mut dyn LedgerTx,
        line: &Line<'_>,
        counts: &mut Counts,
    ) -> Result<Result<(), String>, StoreError> {
        let mut errors = Vec::new();
        let mut values = line.values(&self.fields, &mut errors);
        let mut client_ref = None;
        if let Some(code) = line
            .raw(&self.fields[self.client])
            .filter(|c| !c.is_empty())
        {
            match self.clients.resolve(tx, code)? {
                Some(id) => client_ref = Some(id),
                None => errors.push(format!("Unknown client_code: '{code}'")),
            }
        }
        if !errors.is_empty() {
            return Ok(Err(errors.join("; ")));
        }
        let client_ref = client_ref.expect("client_code is required");
        values[self.client] = Value::Int(client_ref);
        if values[self.role].is_null() {
            values[self.role] = Value::Text("other".into());
        }
        let ident = match line.raw(&self.unique_key).filter(|k| !k.is_empty()) {
            Some(key) => format!("K:{key}"),
            None => {
                let part = |f: &Field| line.raw(f).unwrap_or_default().to_lowercase();
                format!(
                    "N:{client_ref}\u{1f}{}\u{1f}{}\u{1f}{}",
                    part(&self.lastname),
                    part(&self.firstname),
                    part(&self.email)
                )
            }
        };
        let id = match tx.find_id(self.shape, &ident)? {
            Some(id) => {
                if let Some(earlier) = tx.mark_seen(Seen::Contact, id, 0, line.number)? {
                    return Ok(Err(duplicate_message(earlier, "contact")));
                }
                counts.nb_contact_unchanged += 1;
                return Ok(Ok(()));
            }
            None => tx.insert(self.shape, &ident, &values)?,
        };
        tx.mark_seen(Seen::Contact, id, 0, line.number)?;
        counts.nb_contact_added += 1;
        if let Some(i) = self.collection
            && values[i] == Value::Int(1)
        {
            tx.set_collection_contact(client_ref, id)?;
        }
        Ok(Ok(()))
    }
}
