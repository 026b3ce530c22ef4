//! Client paths: what a path sent by an SFTP, FTP or HTTP client names in an
//! account's drop area.
//!
//! A drop area is flat: the account's folder is `/` and holds files only.
//! Any path resolves, as inside a chroot, against `/`: empty and `.`
//! components are skipped and `..` never climbs above `/`. What remains is
//! either the root itself or one file name, which must be a plain name (no
//! NUL, no control characters, at most 255 bytes). This is the first line;
//! the second is that every file operation then goes through a `cap_std`
//! directory handle on the account's folder, which the operating system
//! will not let out of it (no absolute paths, no `..`, no symlink escapes).

use std::fmt;

/// What a client path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The account's folder.
    Root,
    /// A file in it.
    Name(String),
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// More than one component left: there are no subfolders.
    NoSuchFolder(String),
    /// A name no file may have.
    BadName(String),
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::NoSuchFolder(p) => {
                write!(f, "'{p}': there are no folders here, only files in /")
            }
            PathError::BadName(n) => {
                write!(f, "'{}': not an acceptable file name", n.escape_debug())
            }
        }
    }
}

impl std::error::Error for PathError {}

/// Longest file name accepted, in bytes (the usual file system limit).
pub const MAX_NAME_BYTES: usize = 255;

/// Resolves a client path against the drop area's root.
pub fn resolve(path: &str) -> Result<Target, PathError> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    match parts.as_slice() {
        [] => Ok(Target::Root),
        [name] => {
            check_name(name)?;
            Ok(Target::Name((*name).to_string()))
        }
        _ => Err(PathError::NoSuchFolder(path.to_string())),
    }
}

/// A name for a file of the drop area: no separators, NUL or control
/// characters, not empty, not too long.
pub fn check_name(name: &str) -> Result<(), PathError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(PathError::BadName(name.to_string()))
    }
}

/// The path of a file as clients see it.
pub fn client_path(name: &str) -> String {
    format!("/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Result<Target, PathError> {
        resolve(s)
    }

    #[test]
    fn everything_resolves_inside_the_root() {
        for root in ["", "/", ".", "./", "..", "/..", "/../..", "a/..", "//"] {
            assert_eq!(name(root), Ok(Target::Root), "{root:?}");
        }
        for p in [
            "items.csv",
            "/items.csv",
            "./items.csv",
            "/../items.csv",
            "../../etc/../items.csv",
        ] {
            assert_eq!(name(p), Ok(Target::Name("items.csv".into())), "{p:?}");
        }
    }

    #[test]
    fn escapes_and_folders_are_refused() {
        assert!(matches!(
            name("/etc/passwd"),
            Err(PathError::NoSuchFolder(_))
        ));
        assert!(matches!(
            name("sub/items.csv"),
            Err(PathError::NoSuchFolder(_))
        ));
        for bad in ["a\0b", "a\\b", "tab\there", &"x".repeat(256)] {
            assert!(matches!(name(bad), Err(PathError::BadName(_))), "{bad:?}");
        }
    }
}
