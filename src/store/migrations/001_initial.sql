-- 001: the initial schema.
--
-- Ledger tables use the CSV column names (SPEC §7) so that the engine, the
-- store and the export share one vocabulary (src/ledger.rs). Amounts are
-- INTEGER micro-units (6 decimals), booleans 0/1, dates INTEGER YYYYMMDD.
-- `ident` is the identity the engine computes for upserts (SPEC §7);
-- `digest` a 64-bit hash of the values last written with their column names
-- (store::sqlite::digest). The identity index carries it, so a line whose
-- values did not change is recognized from the index alone, without reading
-- the row: the nightly re-send of an unchanged export is the common case.
-- An identity is unique per account because the engine looks it up before
-- each insert, inside the single writer's transaction; a UNIQUE index would
-- repeat that search on every insert (and, with the digest in its key,
-- could not express the rule anyway).
-- `client_ref` is the row id of the client a line names by client_code.
-- Removing an account cascades through account_id, which every ledger table
-- indexes as the first column of its identity.

CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT,
    settings      TEXT NOT NULL DEFAULT '{}',
    created_at    TEXT NOT NULL
);

CREATE TABLE account_keys (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    algorithm  TEXT NOT NULL,
    key_base64 TEXT NOT NULL,
    comment    TEXT NOT NULL DEFAULT '',
    added_at   TEXT NOT NULL,
    UNIQUE (account_id, algorithm, key_base64)
);

-- One row per import: created when the file is received (status 'pending'),
-- completed in the same transaction as the ledger changes it made ('done'),
-- so an import is either fully applied and recorded, or neither.
CREATE TABLE imports (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    file_name    TEXT NOT NULL,
    file_type    TEXT,
    status       TEXT NOT NULL DEFAULT 'pending',
    success      INTEGER,
    received_at  TEXT NOT NULL,
    processed_at TEXT,
    report       TEXT
);
CREATE INDEX imports_by_account ON imports(account_id, id);

CREATE TABLE clients (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    ident TEXT NOT NULL,
    digest INTEGER NOT NULL,
    client_code TEXT NOT NULL,
    client_business_name TEXT NOT NULL,
    client_unique_key TEXT,
    client_trading_name TEXT,
    client_id TEXT,
    client_vat TEXT,
    client_siret TEXT,
    client_address_street_number TEXT,
    client_address_street TEXT,
    client_address_street_line2 TEXT,
    client_address_street_line3 TEXT,
    client_address_postbox TEXT,
    client_address_zip TEXT,
    client_address_city TEXT,
    client_address_state TEXT,
    client_address_country TEXT,
    client_phone TEXT,
    client_phone_cell TEXT,
    client_fax TEXT,
    client_email TEXT,
    client_url TEXT,
    client_business_line TEXT,
    client_group TEXT,
    client_comments TEXT,
    client_blocked INTEGER,
    client_blocked_date INTEGER,
    client_payment_mean TEXT,
    client_payment_term TEXT,
    client_credit_limit INTEGER,
    client_order_backlog INTEGER,
    client_guarantee_type TEXT,
    client_guarantee_insurer INTEGER,
    client_guarantee_insurer_reference TEXT,
    client_guarantee_score TEXT,
    client_guarantee_temporary INTEGER,
    client_guarantee_temporary_date_start INTEGER,
    client_guarantee_temporary_date_end INTEGER,
    client_others_guarantees INTEGER,
    client_guarantees_currency TEXT,
    client_commercial_firstname TEXT,
    client_commercial_lastname TEXT,
    client_commercial_email TEXT,
    client_commercial_phone TEXT,
    client_commercial_phone_cell TEXT,
    client_commercial_fax TEXT,
    client_commercial_matricule TEXT,
    client_field_perso1 TEXT,
    client_field_perso2 TEXT,
    client_field_perso3 TEXT,
    client_field_perso4 TEXT,
    client_field_perso5 TEXT,
    client_field_perso6 TEXT,
    client_field_perso7 TEXT,
    client_field_perso8 TEXT,
    client_field_perso9 TEXT,
    client_field_perso10 TEXT,
    client_field_perso11 TEXT,
    client_field_perso12 TEXT
);
CREATE INDEX clients_identity ON clients(account_id, ident, digest);

CREATE UNIQUE INDEX clients_by_unique_key ON clients(account_id, client_unique_key)
    WHERE client_unique_key IS NOT NULL;

CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    ident TEXT NOT NULL,
    digest INTEGER NOT NULL,
    client_ref INTEGER NOT NULL,
    item_type TEXT NOT NULL,
    item_number TEXT NOT NULL,
    item_date_issue INTEGER NOT NULL,
    item_date_due INTEGER NOT NULL,
    item_amount_initial_inc_tax INTEGER NOT NULL,
    item_amount_initial INTEGER,
    item_amount_remaining_inc_tax INTEGER,
    item_amount_remaining INTEGER,
    item_currency TEXT,
    item_date_payment INTEGER,
    item_unique_key TEXT
);

-- An item's descriptive columns, apart from its row: written only by files
-- that have them, so the rows every import reads and writes stay narrow.
CREATE TABLE item_details (
    item_id INTEGER PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
    item_erp_type TEXT,
    item_date_order INTEGER,
    item_order_number TEXT,
    item_file_number TEXT,
    item_business_case TEXT,
    item_sales_manager TEXT,
    item_sales_administrative TEXT,
    item_field_perso1 TEXT,
    item_field_perso2 TEXT,
    item_field_perso3 TEXT,
    item_field_perso4 TEXT,
    item_field_perso5 TEXT,
    item_field_perso6 TEXT,
    item_field_perso7 TEXT,
    item_field_perso8 TEXT,
    item_field_perso9 TEXT,
    item_field_perso10 TEXT,
    item_field_perso11 TEXT,
    item_field_perso12 TEXT
);
CREATE INDEX items_identity ON items(account_id, ident, digest);

-- Items carry no index but their identity, and client_ref no foreign key:
-- each costs a B-tree write or lookup per imported line, and a million-line
-- file is the common case. The engine sets client_ref from a lookup in the
-- same transaction, and clients are deleted only with their account, which
-- takes its items along. STOCK mode finds an account's open items through
-- the identity index's account_id.

CREATE TABLE contacts (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    ident TEXT NOT NULL,
    digest INTEGER NOT NULL,
    client_ref INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    contact_lastname TEXT NOT NULL,
    contact_firstname TEXT,
    contact_title TEXT,
    contact_role TEXT,
    contact_email TEXT,
    contact_phone TEXT,
    contact_phone_cell TEXT,
    contact_fax TEXT,
    contact_collection INTEGER,
    contact_email_copy_collection_auto INTEGER,
    contact_comments TEXT,
    contact_unique_key TEXT
);
CREATE INDEX contacts_identity ON contacts(account_id, ident, digest);

CREATE INDEX contacts_by_client ON contacts(client_ref);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    ident TEXT NOT NULL,
    digest INTEGER NOT NULL,
    user_lastname TEXT NOT NULL,
    user_firstname TEXT,
    user_email TEXT,
    user_matricule TEXT
);
CREATE INDEX users_identity ON users(account_id, ident, digest);

CREATE TABLE user_clients (
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_ref INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, client_ref)
) WITHOUT ROWID;
CREATE INDEX user_clients_by_client ON user_clients(client_ref, user_id);
