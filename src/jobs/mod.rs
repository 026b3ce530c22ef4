//! The jobs: from a completed upload to an import, durably.
//!
//! To come with the SFTP door: a journal of completed uploads in the store,
//! written before the client is told the upload succeeded; per-account FIFO
//! processing, one import at a time per account and accounts in parallel;
//! and a recovery pass at start that finishes whatever a crash interrupted,
//! so that every acknowledged upload ends with exactly one report. The
//! engine already records each import as pending before it reads the file
//! and commits its report with its ledger changes, which is what recovery
//! will build on.
