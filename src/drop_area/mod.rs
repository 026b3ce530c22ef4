//! The drop area: what every front door shares about files.
//!
//! Today it holds the naming rules ([`naming`]): which names are data
//! files, temporary uploads or reports, and the name tags they carry. The
//! SFTP, FTP and HTTP doors will add confinement of client paths to the
//! account's folder, staging, completion, listing and atomic report writing
//! here, so that no door implements them a second time.

pub mod naming;
