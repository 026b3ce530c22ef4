//! Accounts: names, passwords, SSH keys and import defaults (SPEC §2, §11).
//!
//! Passwords are kept as argon2id PHC strings and checked in constant time
//! by the argon2 crate. An account's import defaults are stored as the
//! textual `KEY=VALUE` pairs the administrator gave, and validated by the
//! same [`ImportOptions::set`] that reads name tags and query parameters, so
//! there is one definition of what a valid option is.

use std::collections::BTreeMap;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;

use crate::engine::options::{ImportOptions, OptionError};
use crate::store::StoredKey;

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccountError {
    #[error(
        "invalid account name '{0}': use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    )]
    BadName(String),
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    #[error("line {line}: {message}")]
    BadKey { line: usize, message: String },
    #[error(transparent)]
    Option(#[from] OptionError),
    #[error("'{0}' is not KEY=VALUE")]
    NotKeyValue(String),
}

/// `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`: the name is also the account's folder
/// name and login, so it must be a single safe path component.
pub fn validate_name(name: &str) -> Result<(), AccountError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(AccountError::BadName(name.to_string()))
    }
}

pub fn hash_password(password: &str) -> Result<String, AccountError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::WeakPassword);
    }
    let salt = SaltString::generate(&mut rand_core::OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string())
}

/// Checks a password against a stored hash; false for a malformed hash.
/// A new API token: `dg_` and 256 random bits in URL-safe base64. Shown
/// once; only [`token_digest`] of it is stored.
pub fn new_api_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    format!(
        "dg_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// What is stored of an API token: its SHA-256, in hex. A token is random
/// and long, so unlike a password it needs no slow hash: nobody can guess
/// it from its digest, and checking it stays cheap per request.
pub fn token_digest(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Key types accepted in `authorized_keys` lines.
const KEY_TYPES: [&str; 6] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
];

/// Parses the keys of an OpenSSH `authorized_keys` text. Blank lines and
/// comments are skipped. Lines with options (`from=`, `command=`, ...) are
/// refused rather than imported without the restriction they ask for.
pub fn parse_authorized_keys(text: &str) -> Result<Vec<StoredKey>, AccountError> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |message: String| AccountError::BadKey {
            line: i + 1,
            message,
        };
        let mut parts = line.split_whitespace();
        let algorithm = parts.next().unwrap_or_default();
        if !KEY_TYPES.contains(&algorithm) {
            return Err(bad(if algorithm.contains('=') || algorithm.contains(',') {
                "key options (from=, command=, ...) are not supported: give the bare key".into()
            } else {
                format!(
                    "unknown key type '{algorithm}' (expected one of {})",
                    KEY_TYPES.join(", ")
                )
            }));
        }
        let data = parts
            .next()
            .ok_or_else(|| bad("the key data is missing".into()))?;
        let blob = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| bad("the key data is not base64".into()))?;
        // The blob starts with its own type as an SSH string.
        let declared = blob
            .get(..4)
            .map(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize)
            .and_then(|n| blob.get(4..4 + n));
        if declared != Some(algorithm.as_bytes()) {
            return Err(bad(format!("the key data is not a {algorithm} key")));
        }
        keys.push(StoredKey {
            algorithm: algorithm.to_string(),
            key_base64: data.to_string(),
            comment: parts.collect::<Vec<_>>().join(" "),
        });
    }
    Ok(keys)
}

/// An account's import defaults, as stored: option name → value.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct AccountSettings(pub BTreeMap<String, String>);

impl AccountSettings {
    pub fn from_json(json: &str) -> AccountSettings {
        serde_json::from_str(json).unwrap_or_default()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a string map serializes")
    }

    /// Applies `KEY=VALUE` assignments; an empty value removes the key.
    /// Each is validated before anything is changed.
    pub fn assign(&mut self, assignments: &[String]) -> Result<(), AccountError> {
        let mut next = self.clone();
        for a in assignments {
            let (key, value) = a
                .split_once('=')
                .ok_or_else(|| AccountError::NotKeyValue(a.clone()))?;
            let key = key.trim().to_string();
            let value = value.trim().to_string();
            // Validate by applying to a scratch set of options.
            ImportOptions::default().set(&key, &value)?;
            if value.is_empty() {
                next.0.remove(&key);
            } else {
                next.0.insert(key, value);
            }
        }
        *self = next;
        Ok(())
    }

    /// Layers these defaults over `base` (the server's).
    pub fn apply(&self, base: &ImportOptions) -> Result<ImportOptions, OptionError> {
        let mut options = base.clone();
        for (k, v) in &self.0 {
            options.set(k, v)?;
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["acme", "A1", "acme.eu_01-x", &"a".repeat(64)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".acme",
            "-x",
            "a/b",
            "..",
            "a b",
            "é",
            &"a".repeat(65),
            "a\0",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_are_argon2id() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct horsf"));
        assert!(!verify_password("garbage", "x"));
        assert_eq!(hash_password("short"), Err(AccountError::WeakPassword));
    }

    #[test]
    fn authorized_keys() {
        let blob = {
            let mut b = Vec::new();
            b.extend_from_slice(&11u32.to_be_bytes());
            b.extend_from_slice(b"ssh-ed25519");
            b.extend_from_slice(&32u32.to_be_bytes());
            b.extend_from_slice(&[7u8; 32]);
            base64::engine::general_purpose::STANDARD.encode(b)
        };
        let text = format!("# mine\n\nssh-ed25519 {blob} me@host\n");
        let keys = parse_authorized_keys(&text).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].comment, "me@host");
        assert!(parse_authorized_keys(&format!("ssh-rsa {blob}")).is_err());
        assert!(parse_authorized_keys(&format!("from=\"1.2.3.4\" ssh-ed25519 {blob}")).is_err());
        assert!(parse_authorized_keys("ssh-ed25519 !!!").is_err());
    }

    #[test]
    fn settings_are_validated_before_stored() {
        let mut s = AccountSettings::default();
        s.assign(&[
            "clear_items_not_modified=true".into(),
            "item_type_map.NF=FAC".into(),
        ])
        .unwrap();
        assert!(
            s.assign(&["encoding=klingon".into(), "dry_run=true".into()])
                .is_err()
        );
        assert!(
            !s.0.contains_key("dry_run"),
            "nothing applied from a failed assign"
        );
        s.assign(&["item_type_map.NF=".into()]).unwrap();
        assert!(!s.0.contains_key("item_type_map.NF"));
    }
}
