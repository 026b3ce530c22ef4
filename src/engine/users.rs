//! Users files (SPEC §7): the account's staff, linked to clients.
//!
//! A user is identified by email when given, else matricule, else first and
//! last name (case-insensitive). Each line links its user to its client.
//! With `replace_users_association`, every client the file mentions ends up
//! linked to exactly the users the file pairs it with. A user counts once:
//! added if new, modified if its details or links changed.

use std::collections::HashMap;

use super::options::ImportOptions;
use super::{
    ClientCodes, Field, Handler, HeaderMap, Line, LineParser, Parsed, duplicate_message,
    resolve_client,
};
use crate::engine::report::{Counts, Report};
use crate::ledger::FileType;
use crate::store::{LedgerTx, Lookup, Seen, Shape, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fate {
    Unchanged,
    Modified,
    Added,
}

/// The columns a users file writes: the user's, in the file's order (the
/// client is a link, not a column of the user).
fn columns(header: &HeaderMap) -> Vec<Field> {
    header.present_fields(&["client_code"])
}

pub struct UserParser {
    fields: Vec<Field>,
    client: Field,
    firstname: Field,
    lastname: Field,
    email: Field,
    matricule: Field,
    clients: std::sync::Arc<ClientCodes>,
}

impl UserParser {
    pub fn new(header: &HeaderMap, clients: std::sync::Arc<ClientCodes>) -> Self {
        UserParser {
            fields: columns(header),
            client: header.field("client_code"),
            firstname: header.field("user_firstname"),
            lastname: header.field("user_lastname"),
            email: header.field("user_email"),
            matricule: header.field("user_matricule"),
            clients,
        }
    }
}

impl LineParser for UserParser {
    fn parse(&self, line: &Line<'_>) -> Parsed {
        let mut p = Parsed::new(line.number);
        p.values = line.values(&self.fields, &mut p.errors);
        match line.required(&self.client) {
            Ok(code) => p.client_code = Some(code.to_string()),
            Err(e) => p.errors.insert(0, e.to_string()),
        }
        self.clients.resolve(&mut p, true);
        let cell = |f: &Field| line.raw(f).unwrap_or_default().to_lowercase();
        let email = cell(&self.email);
        let matricule = line.raw(&self.matricule).unwrap_or_default();
        p.ident = Some(if !email.is_empty() {
            format!("E:{email}")
        } else if !matricule.is_empty() {
            format!("M:{matricule}")
        } else {
            format!("N:{}\u{1f}{}", cell(&self.firstname), cell(&self.lastname))
        });
        p
    }
}

pub struct Users {
    shape: Shape,
    replace: bool,
    /// What happened to each user the file touched: staff lists are small.
    fates: HashMap<i64, Fate>,
}

impl Users {
    pub fn new(
        header: &HeaderMap,
        options: &ImportOptions,
        tx: &mut dyn LedgerTx,
    ) -> Result<Self, StoreError> {
        let names: Vec<&'static str> = columns(header).iter().map(Field::name).collect();
        Ok(Users {
            shape: tx.shape(FileType::Users, &names)?,
            replace: options.replace_users_association,
            fates: HashMap::new(),
        })
    }

    fn record(&mut self, user: i64, fate: Fate) {
        let entry = self.fates.entry(user).or_insert(fate);
        *entry = (*entry).max(fate);
    }
}

impl Handler for Users {
    fn apply(
        &mut self,
        tx: &mut dyn LedgerTx,
        line: &mut Parsed,
        _counts: &mut Counts,
    ) -> Result<Result<(), String>, StoreError> {
        let client_ref = resolve_client(tx, line, true)?;
        if !line.errors.is_empty() {
            return Ok(Err(line.errors.join("; ")));
        }
        let client_ref = client_ref.expect("checked above");
        let ident = line
            .ident
            .as_deref()
            .expect("users always have an identity");
        let values = &line.values;
        match tx.lookup(self.shape, ident, values)? {
            found @ (Lookup::Same(user) | Lookup::Differs(user)) => {
                if let Some(earlier) =
                    tx.mark_seen(Seen::UserLink, user, client_ref, line.number)?
                {
                    return Ok(Err(duplicate_message(earlier, "user and client")));
                }
                let mut fate = Fate::Unchanged;
                if found == Lookup::Differs(user) {
                    tx.update(self.shape, user, values)?;
                    fate = Fate::Modified;
                }
                if tx.link_user(user, client_ref)? {
                    fate = Fate::Modified;
                }
                self.record(user, fate);
            }
            Lookup::Missing => {
                let user = tx.insert(self.shape, ident, values)?;
                tx.mark_seen(Seen::UserLink, user, client_ref, line.number)?;
                tx.link_user(user, client_ref)?;
                self.record(user, Fate::Added);
            }
        }
        Ok(Ok(()))
    }

    fn finish(
        &mut self,
        tx: &mut dyn LedgerTx,
        counts: &mut Counts,
        _report: &mut Report,
    ) -> Result<(), StoreError> {
        if self.replace {
            for user in tx.unlink_users_not_seen()? {
                self.record(user, Fate::Modified);
            }
        }
        for fate in self.fates.values() {
            match fate {
                Fate::Added => counts.nb_user_added += 1,
                Fate::Modified => counts.nb_user_modified += 1,
                Fate::Unchanged => counts.nb_user_unchanged += 1,
            }
        }
        Ok(())
    }
}
