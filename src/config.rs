//! Configuration: embedded defaults, then a TOML file, then environment
//! variables.
//!
//! Every key can be set by an environment variable named
//! `DROPGATE_<SECTION>_<KEY>` in upper case (`[import] encoding` →
//! `DROPGATE_IMPORT_ENCODING`; top-level keys: `DROPGATE_DATA_DIR`), which
//! wins over the file. Unknown keys, in the file or the environment, are
//! errors: a typo must not silently leave a setting at its default.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::options::{ImportOptions, OptionError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the database, drop areas and archive live.
    pub data_dir: PathBuf,
    pub log: LogConfig,
    /// Server-wide import defaults (SPEC §4), below each account's.
    pub import: ImportDefaults,
    pub sftp: crate::doors::sftp::SftpConfig,
    pub ftp: crate::doors::ftp::FtpConfig,
    pub http: crate::doors::http::HttpConfig,
    pub auth: crate::auth::AuthConfig,
    pub jobs: JobsConfig,
    pub retention: crate::drop_area::Retention,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Imports run at once (each of a different account).
    pub workers: usize,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig { workers: 2 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` or `json`.
    pub format: String,
    /// A `tracing` filter such as `info` or `dropgate=debug`.
    pub level: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportDefaults {
    pub encoding: String,
    pub clear_items_not_modified: bool,
    pub replace_users_association: bool,
    pub stock_max_clear_ratio: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            log: LogConfig::default(),
            import: ImportDefaults::default(),
            sftp: Default::default(),
            ftp: Default::default(),
            http: Default::default(),
            auth: Default::default(),
            jobs: Default::default(),
            retention: Default::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "human".into(),
            level: "info".into(),
        }
    }
}

impl Default for ImportDefaults {
    fn default() -> Self {
        ImportDefaults {
            encoding: "auto".into(),
            clear_items_not_modified: false,
            replace_users_association: false,
            stock_max_clear_ratio: 0.5,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration {origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// Environment variables that are not configuration keys.
const NOT_KEYS: [&str; 2] = ["DROPGATE_CONFIG", crate::failpoint::VARIABLE];

impl Config {
    /// Loads the configuration: defaults, then `file` if given, then the
    /// `DROPGATE_*` variables of `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = toml::Table::try_from(Config::default()).expect("defaults serialize");
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let from_file: toml::Table =
                text.parse()
                    .map_err(|e: toml::de::Error| ConfigError::Invalid {
                        origin: format!("file {}", path.display()),
                        message: e.to_string(),
                    })?;
            merge(&mut table, from_file);
            // Check the file alone first, so its errors name the file.
            table
                .clone()
                .try_into::<Config>()
                .map_err(|e| ConfigError::Invalid {
                    origin: format!("file {}", path.display()),
                    message: e.to_string(),
                })?;
        }
        let defaults = toml::Table::try_from(Config::default()).expect("defaults serialize");
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("DROPGATE_") else {
                continue;
            };
            if NOT_KEYS.contains(&name.as_str()) {
                continue;
            }
            let invalid = |message: String| ConfigError::Invalid {
                origin: format!("variable {name}"),
                message,
            };
            let (section, key) = locate(&defaults, &rest.to_ascii_lowercase())
                .ok_or_else(|| invalid("no such configuration key".into()))?;
            let template = match &section {
                Some(s) => defaults[s.as_str()].get(&key),
                None => defaults.get(&key),
            };
            let typed = typed_like(template, &value).map_err(invalid)?;
            match section {
                Some(s) => {
                    table
                        .entry(s)
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                        .as_table_mut()
                        .expect("sections are tables")
                        .insert(key, typed);
                }
                None => {
                    table.insert(key, typed);
                }
            }
        }
        table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid {
                origin: "from the environment".into(),
                message: e.to_string(),
            })
    }

    /// The server's import defaults as options.
    pub fn import_defaults(&self) -> Result<ImportOptions, OptionError> {
        let mut o = ImportOptions::default();
        o.set("encoding", &self.import.encoding)?;
        o.clear_items_not_modified = self.import.clear_items_not_modified;
        o.replace_users_association = self.import.replace_users_association;
        o.set(
            "stock_max_clear_ratio",
            &self.import.stock_max_clear_ratio.to_string(),
        )?;
        Ok(o)
    }
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// Splits `section_key` at a known section, or finds a top-level key.
fn locate(defaults: &toml::Table, name: &str) -> Option<(Option<String>, String)> {
    if defaults.get(name).is_some_and(|v| !v.is_table()) {
        return Some((None, name.to_string()));
    }
    defaults.iter().find_map(|(section, v)| {
        let keys = v.as_table()?;
        let key = name.strip_prefix(section.as_str())?.strip_prefix('_')?;
        keys.contains_key(key)
            .then(|| (Some(section.clone()), key.to_string()))
    })
}

/// Converts an environment string to the type the key has by default.
fn typed_like(template: Option<&toml::Value>, raw: &str) -> Result<toml::Value, String> {
    Ok(match template {
        Some(toml::Value::Boolean(_)) => toml::Value::Boolean(
            crate::engine::fields::parse_bool(raw)
                .ok_or(format!("'{raw}' is not true or false"))?,
        ),
        Some(toml::Value::Integer(_)) => toml::Value::Integer(
            raw.parse()
                .map_err(|_| format!("'{raw}' is not a whole number"))?,
        ),
        Some(toml::Value::Float(_)) => toml::Value::Float(
            raw.parse()
                .map_err(|_| format!("'{raw}' is not a number"))?,
        ),
        _ => toml::Value::String(raw.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_wins_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "data_dir = \"/from/file\"\n[import]\nencoding = \"utf-8\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&file), env(&[])).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from/file"));
        assert_eq!(c.import.encoding, "utf-8");
        let c = Config::load(
            Some(&file),
            env(&[
                ("DROPGATE_IMPORT_ENCODING", "windows-1252"),
                ("DROPGATE_IMPORT_STOCK_MAX_CLEAR_RATIO", "0.25"),
                ("DROPGATE_IMPORT_CLEAR_ITEMS_NOT_MODIFIED", "true"),
                ("DROPGATE_LOG_FORMAT", "json"),
                ("DROPGATE_SFTP_LISTEN", "127.0.0.1:0"),
                ("DROPGATE_AUTH_MAX_FAILURES", "3"),
                ("DROPGATE_SFTP_RSA_HOST_KEY", "false"),
                ("DROPGATE_CONFIG", "ignored"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(c.import.encoding, "windows-1252");
        assert_eq!(c.import.stock_max_clear_ratio, 0.25);
        assert!(c.import.clear_items_not_modified);
        assert_eq!(c.log.format, "json");
        assert_eq!(c.sftp.listen, "127.0.0.1:0");
        assert_eq!(c.auth.max_failures, 3);
        assert!(!c.sftp.rsa_host_key);
        assert_eq!(c.data_dir, PathBuf::from("/from/file"));
    }

    #[test]
    fn typos_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[import]\nencodng = \"utf-8\"\n").unwrap();
        let e = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(e.contains("encodng"), "{e}");
        let e = Config::load(None, env(&[("DROPGATE_IMPORT_ENCODNG", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("DROPGATE_IMPORT_ENCODNG"), "{e}");
        assert!(
            Config::load(
                None,
                env(&[("DROPGATE_IMPORT_CLEAR_ITEMS_NOT_MODIFIED", "maybe")])
            )
            .is_err()
        );
    }

    #[test]
    fn the_example_configuration_is_valid() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/etc/dropgate.toml");
        Config::load(Some(Path::new(example)), env(&[])).unwrap();
    }
}
