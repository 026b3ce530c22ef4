//! Import options (SPEC §4) and where they come from.
//!
//! Options are applied in layers, lowest precedence first: the server's
//! defaults (`[import]` in the configuration), the account's defaults, the
//! name tags of a dropped file, then the options given with the request
//! (`--option` on the command line, query parameters over HTTP). Every layer
//! goes through [`ImportOptions::set`] or [`ImportOptions::apply_tag`], so a
//! value is validated the same way wherever it comes from.

use std::collections::BTreeMap;
use std::fmt;

use encoding_rs::Encoding;
use serde::Serialize;

use crate::engine::fields::parse_bool;
use crate::ledger::ITEM_TYPES;

/// Which encoding to read a file with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodingChoice {
    /// BOM, else valid UTF-8, else windows-1252.
    Auto,
    /// This encoding, strictly for UTF-8.
    Fixed(&'static Encoding),
}

impl EncodingChoice {
    pub fn parse(label: &str) -> Option<EncodingChoice> {
        if label.eq_ignore_ascii_case("auto") {
            return Some(EncodingChoice::Auto);
        }
        Encoding::for_label_no_replacement(label.trim().as_bytes()).map(EncodingChoice::Fixed)
    }
}

impl fmt::Display for EncodingChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodingChoice::Auto => f.write_str("auto"),
            EncodingChoice::Fixed(e) => f.write_str(e.name()),
        }
    }
}

impl Serialize for EncodingChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The effective options of one import, as echoed in its report.
#[derive(Debug, Clone, Serialize)]
pub struct ImportOptions {
    pub encoding: EncodingChoice,
    pub clear_items_not_modified: bool,
    pub replace_users_association: bool,
    pub dry_run: bool,
    /// STOCK mode: clear even past `stock_max_clear_ratio`.
    pub force: bool,
    /// STOCK mode: the share of open items a file may clear without `force`.
    pub stock_max_clear_ratio: f64,
    /// The account's ERP item type codes → dropgate's (`NF` → `FAC`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub item_type_map: BTreeMap<String, String>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            encoding: EncodingChoice::Auto,
            clear_items_not_modified: false,
            replace_users_association: false,
            dry_run: false,
            force: false,
            stock_max_clear_ratio: 0.5,
            item_type_map: BTreeMap::new(),
        }
    }
}

/// A refused option: the report's `OPTION_INVALID` description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error("unknown option '{0}' (known: {KNOWN_KEYS})")]
    UnknownKey(String),
    #[error("invalid value for {key}: '{value}' ({expected})")]
    BadValue {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error(
        "unknown name tag '@{tag}' in '{file}' (known: @stock, @delta, @replace, @add, @dryrun, @force, or an encoding such as @utf-8, @iso-8859-1, @windows-1252)"
    )]
    UnknownTag { tag: String, file: String },
}

const KNOWN_KEYS: &str = "encoding, clear_items_not_modified, replace_users_association, \
    dry_run, force, stock_max_clear_ratio, item_type_map.<CODE>";

const BOOL_EXPECTED: &str = "true/false or 1/0";

impl ImportOptions {
    /// Sets one option from its textual form.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), OptionError> {
        let value = value.trim();
        let bad = |expected| OptionError::BadValue {
            key: key.to_string(),
            value: value.to_string(),
            expected,
        };
        let flag = || parse_bool(value).ok_or_else(|| bad(BOOL_EXPECTED));
        match key.trim().to_ascii_lowercase().as_str() {
            "encoding" => self.encoding = EncodingChoice::parse(value).ok_or_else(|| {
                bad("auto or an encoding label such as UTF-8, ISO-8859-1, windows-1252, UTF-16LE")
            })?,
            "clear_items_not_modified" => self.clear_items_not_modified = flag()?,
            "replace_users_association" => self.replace_users_association = flag()?,
            "dry_run" => self.dry_run = flag()?,
            "force" => self.force = flag()?,
            "stock_max_clear_ratio" => {
                self.stock_max_clear_ratio = value
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| bad("a number from 0 to 1"))?
            }
            other => {
                if !other.starts_with("item_type_map.") {
                    return Err(OptionError::UnknownKey(key.to_string()));
                }
                // The code keeps its case as given; lookups ignore case.
                let code = key.trim()["item_type_map.".len()..].to_string();
                if code.is_empty() {
                    return Err(OptionError::UnknownKey(key.to_string()));
                }
                if value.is_empty() {
                    self.item_type_map.remove(&code);
                } else {
                    let target = value.to_ascii_uppercase();
                    if !ITEM_TYPES.contains(&target.as_str()) {
                        return Err(bad("one of FAC, AVO, RGL, ODI, TRT, DPA"));
                    }
                    self.item_type_map.insert(code, target);
                }
            }
        }
        Ok(())
    }

    /// Applies one `@tag` of a dropped file's name.
    pub fn apply_tag(&mut self, tag: &str, file: &str) -> Result<(), OptionError> {
        match tag.to_ascii_lowercase().as_str() {
            "stock" => self.clear_items_not_modified = true,
            "delta" => self.clear_items_not_modified = false,
            "replace" => self.replace_users_association = true,
            "add" => self.replace_users_association = false,
            "dryrun" | "dry-run" | "dry_run" => self.dry_run = true,
            "force" => self.force = true,
            _ => {
                self.encoding =
                    EncodingChoice::parse(tag).ok_or_else(|| OptionError::UnknownTag {
                        tag: tag.to_string(),
                        file: file.to_string(),
                    })?
            }
        }
        Ok(())
    }

    /// Maps an item type as written in a file to one of [`ITEM_TYPES`]:
    /// the account's mapping first, then the types themselves and the `OD`
    /// alias of `ODI`.
    pub fn item_type(&self, raw: &str) -> Option<&'static str> {
        let mapped = self
            .item_type_map
            .iter()
            .find(|(code, _)| code.eq_ignore_ascii_case(raw))
            .map(|(_, t)| t.as_str())
            .unwrap_or(raw);
        if mapped.eq_ignore_ascii_case("OD") {
            return Some("ODI");
        }
        ITEM_TYPES
            .iter()
            .copied()
            .find(|t| t.eq_ignore_ascii_case(mapped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_and_tags() {
        let mut o = ImportOptions::default();
        o.set("encoding", "iso-8859-15").unwrap();
        assert_eq!(o.encoding.to_string(), "ISO-8859-15");
        o.apply_tag("stock", "items@stock.csv").unwrap();
        assert!(o.clear_items_not_modified);
        o.set("clear_items_not_modified", "false").unwrap();
        assert!(!o.clear_items_not_modified);
        o.apply_tag("windows-1252", "x").unwrap();
        assert_eq!(o.encoding.to_string(), "windows-1252");
        o.set("replace_users_association", "1").unwrap();
        assert!(o.replace_users_association);
        assert!(matches!(
            o.apply_tag("nope", "items@nope.csv"),
            Err(OptionError::UnknownTag { .. })
        ));
        assert!(matches!(
            o.set("colour", "red"),
            Err(OptionError::UnknownKey(_))
        ));
        assert!(o.set("dry_run", "perhaps").is_err());
        assert!(o.set("stock_max_clear_ratio", "1.5").is_err());
    }

    #[test]
    fn item_type_mapping() {
        let mut o = ImportOptions::default();
        o.set("item_type_map.NF", "fac").unwrap();
        o.set("item_type_map.NCC", "AVO").unwrap();
        assert_eq!(o.item_type("nf"), Some("FAC"));
        assert_eq!(o.item_type("NCC"), Some("AVO"));
        assert_eq!(o.item_type("od"), Some("ODI"));
        assert_eq!(o.item_type("rgl"), Some("RGL"));
        assert_eq!(o.item_type("XX"), None);
        assert!(o.set("item_type_map.ZZ", "INV").is_err());
    }
}
