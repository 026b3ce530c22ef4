-- 003: the HTTP door.
--
-- `origin` says who waits for an import's report: 'drop' (a file in the
-- account's folder: the report is written beside it) or 'request' (an HTTP
-- request that answers with the report in its response body, and whose
-- report is therefore not written into the folder). `request_options` are
-- the options given with a request (query parameters), as a JSON array of
-- [key, value] pairs, so that a queued request is imported with them even
-- after a restart.
ALTER TABLE imports ADD COLUMN origin TEXT NOT NULL DEFAULT 'drop';
ALTER TABLE imports ADD COLUMN request_options TEXT;

-- API tokens: only a SHA-256 of each token is kept. Tokens are 256 random
-- bits, so a fast hash is as good as a slow one here (nothing to guess by
-- brute force) and keeps a request's authentication cheap.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    UNIQUE (account_id, name)
);

-- The GUID a contact is known by to JSON message senders (SPEC §10):
-- assigned once, on the first message that names the contact.
ALTER TABLE contacts ADD COLUMN global_id TEXT;
