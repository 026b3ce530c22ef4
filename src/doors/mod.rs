//! The front doors: where files come in.
//!
//! Each door authenticates the account ([`crate::auth`]), translates its
//! protocol into calls of the account's drop area ([`crate::drop_area`]) and
//! implements no naming, completion or report rule of its own. `dropgate
//! serve` ([`crate::serve`]) runs them together.
//!
//! - [`sftp`]: SSH with the `sftp` subsystem (russh, russh-sftp).
//! - FTP/FTPS and HTTP: to come.

pub mod sftp;
