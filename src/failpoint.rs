//! Failpoints: named places where a test can make the process die at once,
//! as `kill -9` would (no destructor runs, nothing is flushed), to check
//! that a restart finishes the work exactly once.
//!
//! `DROPGATE_FAILPOINT=<name>` arms one; unset (always, in production) a
//! failpoint costs one comparison. The places:
//!
//! - `before-commit`: an import has applied its lines, not committed;
//! - `after-commit`: committed, its report not yet written;
//! - `after-report`: report written, upload not yet archived.

use std::sync::OnceLock;

/// The environment variable that arms a failpoint.
pub const VARIABLE: &str = "DROPGATE_FAILPOINT";

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var(VARIABLE).ok())
        .as_deref()
}

/// Dies here if this failpoint is armed.
pub fn hit(name: &str) {
    if armed() == Some(name) {
        eprintln!("dropgate: failpoint {name}: aborting");
        std::process::abort();
    }
}
