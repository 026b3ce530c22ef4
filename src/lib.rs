//! dropgate: a file-drop gateway for ERP receivables data.
//!
//! ERP systems export clients, open items, contacts and users as
//! semicolon-separated CSV. dropgate receives those files, recognizes each
//! by its name, applies it to the account's ledger in one transaction, and
//! answers with a JSON report of what was added, modified, cleared and
//! rejected.
//!
//! The flow of a file, and the modules in that order:
//!
//! ```text
//! doors         SFTP, FTP/FTPS and HTTP (`dropgate serve`), the `import`
//!               command in `cli`
//!   → drop_area   confinement, naming, uploads and their completion, reports
//!   → jobs        durable queue, per-account order, recovery
//!   → engine      reading → fields → file types → report
//!   → store       one transaction per file (SQLite)
//! ```
//!
//! `metrics` counts what happens, for the HTTP door's `/metrics`.
//! `ledger` is the shared vocabulary (file types and their columns);
//! `accounts` holds names, passwords, keys and import defaults; `config`
//! and `logging` are the process's settings.

pub mod accounts;
pub mod auth;
pub mod cli;
pub mod config;
pub mod doors;
pub mod drop_area;
pub mod engine;
pub mod failpoint;
pub mod jobs;
pub mod ledger;
pub mod logging;
pub mod metrics;
pub mod serve;
pub mod store;
