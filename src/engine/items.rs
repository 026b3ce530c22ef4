//! Items files (SPEC §7): open invoices, credit notes, payments.
//!
//! Identity: `item_unique_key` when given, else `item_number` with the
//! calendar year of `item_date_issue`. The state of an item (client, type,
//! number, dates, amounts, payment) is always written from the line: an
//! absent `item_amount_remaining_inc_tax` means "all of it", an absent
//! `item_date_payment` means "open". Descriptive columns are written only
//! when the file has them.
//!
//! Signs are stored debit-positive, credit-negative. In STOCK mode the open
//! items the file does not mention are cleared at the end, under the three
//! safety rules of SPEC §7.

use super::options::ImportOptions;
use super::{
    ClientCodes, Field, Handler, HeaderMap, Line, LineParser, Parsed, Upserted, duplicate_message,
    resolve_client, upsert,
};
use crate::engine::report::{Counts, Report};
use crate::ledger::{FileType, Value};
use crate::store::{LedgerTx, Seen, Shape, StoreError};

/// The columns every item row is written with, in shape order.
const STATE: [&str; 8] = [
    "client_code",
    "item_type",
    "item_number",
    "item_date_issue",
    "item_date_due",
    "item_amount_initial_inc_tax",
    "item_amount_remaining_inc_tax",
    "item_date_payment",
];
const CLIENT: usize = 0;
const TYPE: usize = 1;
const NUMBER: usize = 2;
const ISSUE: usize = 3;
const INITIAL: usize = 5;
const REMAINING: usize = 6;
const PAYMENT: usize = 7;

/// STOCK never refuses to clear this many items or fewer, whatever the ratio.
const STOCK_SAFE_CLEAR_COUNT: u64 = 100;

/// The columns an items file writes: the state columns, then the others it
/// has, in its order.
fn columns(header: &HeaderMap) -> Vec<Field> {
    let mut fields: Vec<Field> = STATE.iter().map(|n| header.field(n)).collect();
    fields.extend(header.present_fields(&STATE));
    fields
}

pub struct ItemParser {
    fields: Vec<Field>,
    /// Positions in `fields` of the amounts whose sign the type decides.
    amounts: Vec<usize>,
    /// Positions in `fields` of the ex-tax amounts, if present.
    remaining_ex_tax: Option<usize>,
    initial_ex_tax: Option<usize>,
    unique_key: Field,
    options: ImportOptions,
    clients: std::sync::Arc<ClientCodes>,
}

impl ItemParser {
    pub fn new(
        header: &HeaderMap,
        options: &ImportOptions,
        clients: std::sync::Arc<ClientCodes>,
    ) -> Self {
        let fields = columns(header);
        let position = |name: &str| fields.iter().position(|f| f.name() == name);
        let amounts = [
            "item_amount_initial_inc_tax",
            "item_amount_remaining_inc_tax",
            "item_amount_initial",
            "item_amount_remaining",
        ]
        .iter()
        .filter_map(|n| position(n))
        .collect();
        ItemParser {
            remaining_ex_tax: position("item_amount_remaining"),
            initial_ex_tax: position("item_amount_initial"),
            amounts,
            fields,
            unique_key: header.field("item_unique_key"),
            options: options.clone(),
            clients,
        }
    }

    /// The item's identity from the raw cells, readable even when other
    /// cells of the line are not.
    fn identity(&self, line: &Line<'_>) -> Option<String> {
        if let Some(key) = line.raw(&self.unique_key).filter(|k| !k.is_empty()) {
            return Some(format!("K:{key}"));
        }
        let number = line.raw(&self.fields[NUMBER]).filter(|n| !n.is_empty())?;
        let issue = super::fields::parse_date(line.raw(&self.fields[ISSUE])?)?;
        // `YYYY:number`; a key's identity starts with `K:`, never with a
        // digit, so the two cannot meet.
        Some(format!("{}:{number}", chrono::Datelike::year(&issue)))
    }
}

impl LineParser for ItemParser {
    fn parse(&self, line: &Line<'_>) -> Parsed {
        let mut p = Parsed::new(line.number);
        p.ident = self.identity(line);
        p.client_code = line.non_empty(&self.fields[CLIENT]);
        let mut values = line.values(&self.fields, &mut p.errors);
        self.clients.resolve(&mut p, false);
        let errors = &mut p.errors;

        let mut item_type = None;
        if let Some(raw) = line.raw(&self.fields[TYPE]).filter(|t| !t.is_empty()) {
            match self.options.item_type(raw) {
                Some(t) => {
                    item_type = Some(t);
                    values[TYPE] = Value::Text(t.to_string());
                }
                None => errors.push(format!(
                    "Invalid item_type: '{raw}' (expected FAC, AVO, RGL, ODI, TRT, DPA{})",
                    if self.options.item_type_map.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " or a mapped code: {}",
                            self.options
                                .item_type_map
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                )),
            }
        }
        if let Some(item_type) = item_type {
            for &i in &self.amounts {
                let Value::Int(amount) = values[i] else {
                    continue;
                };
                match item_type {
                    // Credits given positive are stored negative.
                    "AVO" | "RGL" if amount > 0 => values[i] = Value::Int(-amount),
                    "FAC" | "TRT" | "DPA" if amount < 0 => errors.push(format!(
                        "Negative amount for item_type {item_type} in {}: '{}' ({item_type} is a debit)",
                        self.fields[i].name(),
                        line.raw(&self.fields[i]).unwrap_or_default()
                    )),
                    _ => {}
                }
            }
        }
        if values[REMAINING].is_null() {
            values[REMAINING] = values[INITIAL].clone();
        }
        if !values[PAYMENT].is_null() {
            values[REMAINING] = Value::Int(0);
            // The ex-tax remainder is zeroed only where the line tracks
            // ex-tax amounts at all; an empty one stays empty.
            if let Some(i) = self.remaining_ex_tax {
                let tracked = !values[i].is_null()
                    || self.initial_ex_tax.is_some_and(|j| !values[j].is_null());
                if tracked {
                    values[i] = Value::Int(0);
                }
            }
        }
        p.values = values;
        p
    }
}

pub struct Items {
    shape: Shape,
    options: ImportOptions,
    /// The clearing date of STOCK mode, in stored form.
    today: i64,
    stock: Option<Stock>,
}

/// What STOCK mode tracks while the file is read.
struct Stock {
    open_before: u64,
    /// A rejected line whose item could not be identified, and how many.
    unidentified: Option<(u64, u64)>,
}

impl Items {
    pub fn new(
        header: &HeaderMap,
        options: &ImportOptions,
        today: i64,
        tx: &mut dyn LedgerTx,
    ) -> Result<Self, StoreError> {
        let names: Vec<&'static str> = columns(header).iter().map(Field::name).collect();
        let stock = if options.clear_items_not_modified {
            Some(Stock {
                open_before: tx.count_open_items()?,
                unidentified: None,
            })
        } else {
            None
        };
        Ok(Items {
            shape: tx.shape(FileType::Items, &names)?,
            options: options.clone(),
            today,
            stock,
        })
    }
}

impl Handler for Items {
    fn apply(
        &mut self,
        tx: &mut dyn LedgerTx,
        line: &mut Parsed,
        counts: &mut Counts,
    ) -> Result<Result<(), String>, StoreError> {
        if let Some(id) = resolve_client(tx, line, false)? {
            line.values[CLIENT] = Value::Int(id);
        }
        if !line.errors.is_empty() {
            // STOCK: a rejected line still says its item is there.
            if let Some(stock) = &mut self.stock {
                match &line.ident {
                    Some(ident) => {
                        if let Some(id) = tx.find_id(self.shape, ident)? {
                            tx.mark_seen(Seen::Item, id, 0, line.number)?;
                        }
                    }
                    None => {
                        let (first, n) = stock.unidentified.unwrap_or((line.number, 0));
                        stock.unidentified = Some((first, n + 1));
                    }
                }
            }
            return Ok(Err(line.errors.join("; ")));
        }
        let ident = line
            .ident
            .as_deref()
            .expect("a valid line has a number and an issue date");
        match upsert(tx, self.shape, Seen::Item, ident, &line.values, line.number)? {
            Upserted::Added(_) => counts.nb_item_added += 1,
            Upserted::Modified(_) => counts.nb_item_modified += 1,
            Upserted::Unchanged(_) => counts.nb_item_unchanged += 1,
            Upserted::Duplicate(earlier) => return Ok(Err(duplicate_message(earlier, "item"))),
        }
        Ok(Ok(()))
    }

    fn finish(
        &mut self,
        tx: &mut dyn LedgerTx,
        counts: &mut Counts,
        report: &mut Report,
    ) -> Result<(), StoreError> {
        let Some(stock) = &self.stock else {
            return Ok(());
        };
        if let Some((first, n)) = stock.unidentified {
            let others = if n > 1 {
                format!(
                    " (and {} other line{})",
                    n - 1,
                    if n > 2 { "s" } else { "" }
                )
            } else {
                String::new()
            };
            report.warnings.push(format!(
                "STOCK mode: no item was cleared, because line {first}{others} was rejected and \
                 its item could not be identified (item_number and item_date_issue, or \
                 item_unique_key, are unreadable): it might be an open item that must not be \
                 cleared. Fix the line and import the file again."
            ));
            return Ok(());
        }
        let to_clear = tx.count_unseen_open_items()?;
        let ratio = self.options.stock_max_clear_ratio;
        let limit = (stock.open_before as f64 * ratio).floor() as u64;
        if to_clear > STOCK_SAFE_CLEAR_COUNT && to_clear > limit && !self.options.force {
            report.warnings.push(format!(
                "STOCK mode: no item was cleared, because this file would clear {to_clear} of the \
                 {} open items, more than stock_max_clear_ratio ({}%) allows. The lines were \
                 imported. If the file really is complete, import it again with the name tag \
                 @force (e.g. items@stock@force.csv) or the option force=true.",
                stock.open_before,
                (ratio * 100.0).round()
            ));
            return Ok(());
        }
        counts.nb_item_cleared = tx.clear_unseen_open_items(self.today)?;
        Ok(())
    }
}
