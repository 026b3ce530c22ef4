//! The front doors: where files come in.
//!
//! SFTP (russh + russh-sftp), FTP/FTPS (libunftp) and HTTP (axum) will live
//! here, one module each, all three served by `dropgate serve`. A door
//! authenticates the account, confines every path to the account's folder
//! and hands completed uploads to the drop area; it implements no naming,
//! completion or report rule of its own (see [`crate::drop_area`]).
//!
//! Until they exist, the `import` command of [`crate::cli`] is the one door:
//! it hands files straight to the engine.
