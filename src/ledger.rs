//! The ledger's vocabulary: file types, their columns and stored values.
//!
//! This module is the one place that lists the columns of each file type
//! (SPEC §7, seed 000). The import engine reads cells by these names, the
//! store keeps them in columns of the same names, and the export writes them
//! back in the same order, so that export followed by import changes nothing.
//!
//! It depends on nothing else in the crate: both the engine and the store
//! build on it.

use std::fmt;

/// A value as it is stored: everything the ledger holds is null, an integer
/// (amounts in micro-units, dates as `YYYYMMDD`, booleans, ids) or text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// What kind of value a column holds, and so how its cells are parsed
/// (`engine::fields`) and written back (`engine::export`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text, trimmed, at most `max` characters.
    Text { max: usize },
    /// A calendar date, stored as the number `YYYYMMDD`.
    Date,
    /// An exact decimal amount, stored as micro-units.
    Amount,
    /// A yes/no flag, stored as 0/1.
    Bool,
    /// A three-letter currency code, stored upper-cased.
    Currency,
    /// A comma-separated list, stored normalized as `a,b,c`.
    List,
    /// One of a fixed set of lower-case words.
    Enum(&'static [&'static str]),
}

/// The ordinary text limit; comments get [`COMMENT_MAX`].
pub const TEXT_MAX: usize = 255;
pub const COMMENT_MAX: usize = 4000;

const TEXT: Kind = Kind::Text { max: TEXT_MAX };
const COMMENT: Kind = Kind::Text { max: COMMENT_MAX };

/// One column of a file type.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        required: false,
    }
}
const fn req(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        required: true,
    }
}

/// The column that names a client in items, contacts and users files. It is
/// stored as a reference to the client's row (`client_ref`), not as text;
/// note that `client_id` is a documented client column (the legal id).
pub const CLIENT_CODE: &str = "client_code";

/// The four kinds of data file, recognized by the start of their name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    Clients,
    Items,
    Contacts,
    Users,
}

impl FileType {
    pub const ALL: [FileType; 4] = [
        FileType::Clients,
        FileType::Items,
        FileType::Contacts,
        FileType::Users,
    ];

    /// The keyword a file name starts with, the API path, and the table name.
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::Clients => "clients",
            FileType::Items => "items",
            FileType::Contacts => "contacts",
            FileType::Users => "users",
        }
    }

    pub fn from_keyword(word: &str) -> Option<FileType> {
        FileType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(word))
    }

    /// Every documented column, in export order.
    pub fn columns(self) -> &'static [Column] {
        match self {
            FileType::Clients => CLIENT_COLUMNS,
            FileType::Items => ITEM_COLUMNS,
            FileType::Contacts => CONTACT_COLUMNS,
            FileType::Users => USER_COLUMNS,
        }
    }

    pub fn column(self, name: &str) -> Option<&'static Column> {
        self.columns().iter().find(|c| c.name == name)
    }

    pub fn required_columns(self) -> impl Iterator<Item = &'static str> {
        self.columns().iter().filter(|c| c.required).map(|c| c.name)
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The six item types of SPEC §7, and on which side of the ledger each sits.
pub const ITEM_TYPES: [&str; 6] = ["FAC", "AVO", "RGL", "ODI", "TRT", "DPA"];

/// Contact roles (SPEC §7); `other` is the default.
pub const CONTACT_ROLES: &[&str] = &["accounting", "buyer", "company", "manager", "other"];

macro_rules! perso {
    ($prefix:literal) => {
        [
            col(concat!($prefix, "_field_perso1"), TEXT),
            col(concat!($prefix, "_field_perso2"), TEXT),
            col(concat!($prefix, "_field_perso3"), TEXT),
            col(concat!($prefix, "_field_perso4"), TEXT),
            col(concat!($prefix, "_field_perso5"), TEXT),
            col(concat!($prefix, "_field_perso6"), TEXT),
            col(concat!($prefix, "_field_perso7"), TEXT),
            col(concat!($prefix, "_field_perso8"), TEXT),
            col(concat!($prefix, "_field_perso9"), TEXT),
            col(concat!($prefix, "_field_perso10"), TEXT),
            col(concat!($prefix, "_field_perso11"), TEXT),
            col(concat!($prefix, "_field_perso12"), TEXT),
        ]
    };
}

const CLIENT_PERSO: [Column; 12] = perso!("client");
const ITEM_PERSO: [Column; 12] = perso!("item");

const fn concat_columns<const A: usize, const B: usize, const N: usize>(
    a: [Column; A],
    b: [Column; B],
) -> [Column; N] {
    assert!(A + B == N);
    let mut out = [col("", TEXT); N];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - A];
        i += 1;
    }
    out
}

const CLIENT_BASE: [Column; 46] = [
    req("client_code", TEXT),
    req("client_business_name", TEXT),
    col("client_unique_key", TEXT),
    col("client_trading_name", TEXT),
    col("client_id", TEXT),
    col("client_vat", TEXT),
    col("client_siret", TEXT),
    col("client_address_street_number", TEXT),
    col("client_address_street", TEXT),
    col("client_address_street_line2", TEXT),
    col("client_address_street_line3", TEXT),
    col("client_address_postbox", TEXT),
    col("client_address_zip", TEXT),
    col("client_address_city", TEXT),
    col("client_address_state", TEXT),
    col("client_address_country", TEXT),
    col("client_phone", TEXT),
    col("client_phone_cell", TEXT),
    col("client_fax", TEXT),
    col("client_email", TEXT),
    col("client_url", TEXT),
    col("client_business_line", TEXT),
    col("client_group", Kind::List),
    col("client_comments", COMMENT),
    col("client_blocked", Kind::Bool),
    col("client_blocked_date", Kind::Date),
    col("client_payment_mean", TEXT),
    col("client_payment_term", TEXT),
    col("client_credit_limit", Kind::Amount),
    col("client_order_backlog", Kind::Amount),
    col("client_guarantee_type", TEXT),
    col("client_guarantee_insurer", Kind::Amount),
    col("client_guarantee_insurer_reference", TEXT),
    col("client_guarantee_score", TEXT),
    col("client_guarantee_temporary", Kind::Amount),
    col("client_guarantee_temporary_date_start", Kind::Date),
    col("client_guarantee_temporary_date_end", Kind::Date),
    col("client_others_guarantees", Kind::Amount),
    col("client_guarantees_currency", Kind::Currency),
    col("client_commercial_firstname", TEXT),
    col("client_commercial_lastname", TEXT),
    col("client_commercial_email", TEXT),
    col("client_commercial_phone", TEXT),
    col("client_commercial_phone_cell", TEXT),
    col("client_commercial_fax", TEXT),
    col("client_commercial_matricule", TEXT),
];

static CLIENT_COLUMNS: &[Column] = &concat_columns::<46, 12, 58>(CLIENT_BASE, CLIENT_PERSO);

const ITEM_BASE: [Column; 19] = [
    req("client_code", TEXT),
    req("item_type", TEXT),
    req("item_number", TEXT),
    req("item_date_issue", Kind::Date),
    req("item_date_due", Kind::Date),
    req("item_amount_initial_inc_tax", Kind::Amount),
    col("item_amount_initial", Kind::Amount),
    col("item_amount_remaining_inc_tax", Kind::Amount),
    col("item_amount_remaining", Kind::Amount),
    col("item_currency", Kind::Currency),
    col("item_date_payment", Kind::Date),
    col("item_unique_key", TEXT),
    col("item_erp_type", TEXT),
    col("item_date_order", Kind::Date),
    col("item_order_number", TEXT),
    col("item_file_number", TEXT),
    col("item_business_case", TEXT),
    col("item_sales_manager", TEXT),
    col("item_sales_administrative", TEXT),
];

static ITEM_COLUMNS: &[Column] = &concat_columns::<19, 12, 31>(ITEM_BASE, ITEM_PERSO);

static CONTACT_COLUMNS: &[Column] = &[
    req("client_code", TEXT),
    req("contact_lastname", TEXT),
    col("contact_firstname", TEXT),
    col("contact_title", TEXT),
    col("contact_role", Kind::Enum(CONTACT_ROLES)),
    col("contact_email", TEXT),
    col("contact_phone", TEXT),
    col("contact_phone_cell", TEXT),
    col("contact_fax", TEXT),
    col("contact_collection", Kind::Bool),
    col("contact_email_copy_collection_auto", Kind::Bool),
    col("contact_comments", COMMENT),
    col("contact_unique_key", TEXT),
];

static USER_COLUMNS: &[Column] = &[
    req("client_code", TEXT),
    req("user_lastname", TEXT),
    col("user_firstname", TEXT),
    col("user_email", TEXT),
    col("user_matricule", TEXT),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn column_names_are_unique_and_typed_by_their_prefix() {
        for t in FileType::ALL {
            let mut seen = HashSet::new();
            for c in t.columns() {
                assert!(seen.insert(c.name), "{t}: {} twice", c.name);
                assert!(
                    c.name == CLIENT_CODE
                        || c.name.starts_with(&t.as_str()[..t.as_str().len() - 1]),
                    "{t}: {}",
                    c.name
                );
            }
        }
    }

    #[test]
    fn required_columns_match_the_spec() {
        let req = |t: FileType| t.required_columns().collect::<Vec<_>>();
        assert_eq!(
            req(FileType::Clients),
            ["client_code", "client_business_name"]
        );
        assert_eq!(
            req(FileType::Items),
            [
                "client_code",
                "item_type",
                "item_number",
                "item_date_issue",
                "item_date_due",
                "item_amount_initial_inc_tax"
            ]
        );
        assert_eq!(req(FileType::Contacts), ["client_code", "contact_lastname"]);
        assert_eq!(req(FileType::Users), ["client_code", "user_lastname"]);
    }
}
