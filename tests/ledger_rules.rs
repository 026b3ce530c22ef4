//! SPEC §6–§7: field types through a real import, identities and upserts,
//! STOCK/DELTA, signs, contacts, users, dry runs and round trips.

mod common;
use common::*;
use dropgate::ledger::FileType;

fn item(client: &str, ty: &str, number: &str, issue: &str, amount: &str) -> String {
    format!("{client};{ty};{number};{issue};2026-01-31;{amount}")
}

fn items_file(lines: &[String]) -> String {
    let mut s = format!("{ITEM_HEADER}\n");
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s
}

fn with_clients() -> Ledger {
    let mut l = Ledger::new();
    assert_ok(&l.import("clients.csv", CLIENTS));
    l
}

#[test]
fn every_accepted_amount_format_is_stored_exactly() {
    let mut l = with_clients();
    let cases = [
        ("1200", "1200.00"),
        ("1 200,00", "1200.00"),
        ("1200.00123", "1200.00123"),
        ("1.200,50", "1200.50"),
        ("1,200.50", "1200.50"),
        ("1\u{a0}234,56", "1234.56"),
        ("1\u{202f}234,56", "1234.56"),
        ("1'234.56", "1234.56"),
        ("1.234.567", "1234567.00"),
        ("0,1", "0.10"),
    ];
    let lines: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, (raw, _))| {
            item(
                "C0001",
                "FAC",
                &format!("N{i}"),
                "2025-01-01",
                &format!("\"{raw}\""),
            )
        })
        .collect();
    let r = l.import("items.csv", items_file(&lines));
    assert_ok(&r);
    assert_eq!(r["nb_item_added"], cases.len() as u64, "{r:#}");
    for (i, (raw, stored)) in cases.iter().enumerate() {
        let got = l.cell(
            FileType::Items,
            "item_number",
            &format!("N{i}"),
            "item_amount_initial_inc_tax",
        );
        assert_eq!(&got, stored, "{raw}");
    }
    // Credits: a leading or trailing (SAP) minus on an ODI is kept.
    let r = l.import(
        "items.csv",
        items_file(&[
            item("C0001", "ODI", "M1", "2025-01-01", "-150,00"),
            item("C0001", "ODI", "M2", "2025-01-01", "150,00-"),
        ]),
    );
    assert_ok(&r);
    assert_eq!(
        l.cell(
            FileType::Items,
            "item_number",
            "M1",
            "item_amount_initial_inc_tax"
        ),
        "-150.00"
    );
    assert_eq!(
        l.cell(
            FileType::Items,
            "item_number",
            "M2",
            "item_amount_initial_inc_tax"
        ),
        "-150.00"
    );
}

#[test]
fn rejected_amounts_and_dates_name_column_and_value() {
    let mut l = with_clients();
    let r = l.import(
        "items.csv",
        items_file(&[
            item("C0001", "FAC", "1", "2025-01-01", "1.2.3,4"),
            item("C0001", "FAC", "2", "31/02/2025", "10"),
            item("C0001", "FAC", "3", "12/31/2025", "10"),
            item("C0001", "FAC", "4", "2025-01-01", ""),
            item("C0001", "FAC", "5", "2025-01-01", "12abc"),
        ]),
    );
    assert_ok(&r);
    assert_eq!(r["nb_item_added"], 0);
    assert_eq!(
        exceptions(&r),
        vec![
            (
                "line 2".into(),
                "Invalid amount in item_amount_initial_inc_tax: '1.2.3,4'".into()
            ),
            (
                "line 3".into(),
                "Invalid date in item_date_issue: '31/02/2025'".into()
            ),
            (
                "line 4".into(),
                "Invalid date in item_date_issue: '12/31/2025'".into()
            ),
            (
                "line 5".into(),
                "Required value missing: item_amount_initial_inc_tax".into()
            ),
            (
                "line 6".into(),
                "Invalid amount in item_amount_initial_inc_tax: '12abc'".into()
            ),
        ]
    );
}

#[test]
fn every_accepted_date_format_is_stored_iso() {
    let mut l = with_clients();
    let formats = [
        "2025-12-05",
        "2025/12/05",
        "05/12/2025",
        "05-12-2025",
        "05.12.2025",
        "20251205",
        "2025-12-05 13:45:00",
    ];
    let lines: Vec<String> = formats
        .iter()
        .enumerate()
        .map(|(i, d)| item("C0001", "FAC", &format!("D{i}"), d, "1"))
        .collect();
    assert_ok(&l.import("items.csv", items_file(&lines)));
    for i in 0..formats.len() {
        assert_eq!(
            l.cell(
                FileType::Items,
                "item_number",
                &format!("D{i}"),
                "item_date_issue"
            ),
            "2025-12-05"
        );
    }
}

#[test]
fn item_numbers_are_text_and_unique_per_calendar_year() {
    let mut l = with_clients();
    let r = l.import(
        "items.csv",
        items_file(&[
            item("C0001", "FAC", "00000123", "2025-12-05", "10"),
            item("C0001", "FAC", "00000123", "2026-01-05", "20"),
            item("C0002", "FAC", "00000123", "2025-03-01", "30"),
        ]),
    );
    assert_eq!(r["nb_item_added"], 2);
    assert_eq!(
        exceptions(&r),
        vec![("line 4".into(), "Duplicate of line 2 (same item)".into())]
    );
    assert_eq!(l.count(FileType::Items), 2);
    assert!(
        l.export(FileType::Items, false)
            .contains(";00000123;2025-12-05;"),
        "zeros kept"
    );
}

#[test]
fn item_unique_key_is_the_identity_when_given() {
    let mut l = with_clients();
    let header = format!("{ITEM_HEADER};item_unique_key");
    let r = l.import(
        "items.csv",
        csv(&[
            &header,
            "C0001;FAC;7;2025-01-01;2025-02-01;10;K1",
            "C0001;FAC;7;2025-01-01;2025-02-01;10;K2",
        ]),
    );
    assert_eq!(
        r["nb_item_added"], 2,
        "same number and year, different keys"
    );
    let r = l.import(
        "items.csv",
        csv(&[&header, "C0001;FAC;8;2025-01-01;2025-02-01;11;K1"]),
    );
    assert_eq!(r["nb_item_modified"], 1, "{r:#}");
    assert_eq!(
        l.cell(FileType::Items, "item_unique_key", "K1", "item_number"),
        "8"
    );
}

#[test]
fn credit_types_given_positive_are_stored_negative_and_negative_debits_are_rejected() {
    let mut l = with_clients();
    let header = format!("{ITEM_HEADER};item_amount_initial");
    let r = l.import(
        "items.csv",
        csv(&[
            &header,
            "C0001;AVO;A1;2025-01-01;2025-02-01;100;80",
            "C0001;RGL;R1;2025-01-01;2025-02-01;-50;",
            "C0001;FAC;F1;2025-01-01;2025-02-01;-150,00;",
            "C0001;TRT;T1;2025-01-01;2025-02-01;-1;",
            "C0001;DPA;P1;2025-01-01;2025-02-01;5;",
            "C0001;OD;O1;2025-01-01;2025-02-01;-5;",
            "C0001;XYZ;X1;2025-01-01;2025-02-01;5;",
        ]),
    );
    assert_eq!(r["nb_item_added"], 4, "{r:#}");
    let cell = |n: &str, c: &str| l.cell(FileType::Items, "item_number", n, c);
    assert_eq!(cell("A1", "item_amount_initial_inc_tax"), "-100.00");
    assert_eq!(cell("A1", "item_amount_initial"), "-80.00");
    assert_eq!(cell("A1", "item_amount_remaining_inc_tax"), "-100.00");
    assert_eq!(cell("R1", "item_amount_initial_inc_tax"), "-50.00");
    assert_eq!(cell("O1", "item_type"), "ODI", "OD is an alias of ODI");
    let e = exceptions(&r);
    assert_eq!(e[0].0, "line 4");
    assert!(
        e[0].1.starts_with(
            "Negative amount for item_type FAC in item_amount_initial_inc_tax: '-150,00'"
        ),
        "{}",
        e[0].1
    );
    assert_eq!(e[1].0, "line 5");
    assert_eq!(e[2].0, "line 8");
    assert!(e[2].1.starts_with("Invalid item_type: 'XYZ'"), "{}", e[2].1);
}

#[test]
fn account_item_type_mapping() {
    let mut l = with_clients();
    l.set(&["item_type_map.NF=FAC", "item_type_map.NCC=AVO"]);
    let r = l.import(
        "items.csv",
        items_file(&[
            item("C0001", "NF", "1", "2025-01-01", "10"),
            item("C0001", "ncc", "2", "2025-01-01", "10"),
        ]),
    );
    assert_ok(&r);
    assert_eq!(r["nb_item_added"], 2);
    assert_eq!(
        l.cell(FileType::Items, "item_number", "1", "item_type"),
        "FAC"
    );
    assert_eq!(
        l.cell(FileType::Items, "item_number", "2", "item_type"),
        "AVO"
    );
    assert_eq!(
        l.cell(
            FileType::Items,
            "item_number",
            "2",
            "item_amount_initial_inc_tax"
        ),
        "-10.00"
    );
}

#[test]
fn unknown_client_codes_are_line_errors() {
    let mut l = with_clients();
    let r = l.import(
        "items.csv",
        items_file(&[item("C0009", "FAC", "1", "2025-01-01", "10")]),
    );
    assert_eq!(
        exceptions(&r),
        vec![("line 2".into(), "Unknown client_code: 'C0009'".into())]
    );
}

#[test]
fn delta_mode_with_payment_date_clears_only_that_item() {
    let mut l = with_clients();
    l.import(
        "items.csv",
        items_file(&[
            item("C0001", "FAC", "1", "2025-01-01", "10"),
            item("C0001", "FAC", "2", "2025-01-01", "20"),
        ]),
    );
    let header = format!("{ITEM_HEADER};item_date_payment");
    let r = l.import(
        "items.csv",
        csv(&[&header, "C0001;FAC;1;2025-01-01;2026-01-31;10;2025-06-30"]),
    );
    assert_ok(&r);
    assert_eq!(r["nb_item_modified"], 1);
    assert_eq!(
        r["nb_item_cleared"], 0,
        "DELTA never clears what the file does not name"
    );
    assert_eq!(
        l.cell(
            FileType::Items,
            "item_number",
            "1",
            "item_amount_remaining_inc_tax"
        ),
        "0.00"
    );
    assert_eq!(
        l.cell(FileType::Items, "item_number", "1", "item_date_payment"),
        "2025-06-30"
    );
    assert_eq!(l.open_items(), 1);
}

fn stock_ledger(n: usize) -> Ledger {
    let mut l = with_clients();
    let lines: Vec<String> = (0..n)
        .map(|i| item("C0001", "FAC", &format!("S{i}"), "2025-01-01", "10"))
        .collect();
    assert_ok(&l.import("items.csv", items_file(&lines)));
    assert_eq!(l.open_items(), n);
    l
}

#[test]
fn stock_mode_clears_open_items_missing_from_the_file() {
    let mut l = stock_ledger(10);
    let lines: Vec<String> = (0..7)
        .map(|i| item("C0001", "FAC", &format!("S{i}"), "2025-01-01", "10"))
        .collect();
    let r = l.import("items@stock.csv", items_file(&lines));
    assert_ok(&r);
    assert_eq!(r["nb_item_cleared"], 3);
    assert_eq!(r["nb_item_unchanged"], 7);
    assert_eq!(r["options"]["clear_items_not_modified"], true);
    assert_eq!(l.open_items(), 7);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(
        l.cell(FileType::Items, "item_number", "S9", "item_date_payment"),
        today
    );
    assert_eq!(
        l.cell(
            FileType::Items,
            "item_number",
            "S9",
            "item_amount_remaining_inc_tax"
        ),
        "0.00"
    );
    // The same through the query-parameter style option.
    let r = l.import_with(
        "items.csv",
        items_file(&lines[..6]),
        &[("clear_items_not_modified", "true")],
    );
    assert_eq!(r["nb_item_cleared"], 1);
}

#[test]
fn stock_safety_a_rejected_line_with_a_readable_identity_counts_as_present() {
    let mut l = stock_ledger(5);
    let mut lines: Vec<String> = (0..4)
        .map(|i| item("C0001", "FAC", &format!("S{i}"), "2025-01-01", "10"))
        .collect();
    lines.push(item("C0001", "FAC", "S4", "2025-01-01", "not-an-amount"));
    let r = l.import("items@stock.csv", items_file(&lines));
    assert_eq!(r["nb_exception_lines"], 1);
    assert_eq!(
        r["nb_item_cleared"], 0,
        "S4 was in the file, only badly written"
    );
    assert_eq!(l.open_items(), 5);
}

#[test]
fn stock_safety_an_unidentifiable_rejected_line_clears_nothing() {
    let mut l = stock_ledger(5);
    let lines = vec![
        item("C0001", "FAC", "S0", "2025-01-01", "10"),
        item("C0001", "FAC", "", "2025-01-01", "10"),
        item("C0001", "FAC", "S1", "garbage", "10"),
    ];
    let r = l.import("items@stock.csv", items_file(&lines));
    assert_ok(&r);
    assert_eq!(r["nb_item_cleared"], 0);
    let w = r["warnings"][0].as_str().unwrap();
    assert!(
        w.contains("line 3") && w.contains("1 other line") && w.contains("no item was cleared"),
        "{w}"
    );
    assert_eq!(l.open_items(), 5);
}

#[test]
fn stock_safety_ratio_refuses_a_mass_clear_unless_forced() {
    let mut l = stock_ledger(300);
    let lines: Vec<String> = (0..100)
        .map(|i| item("C0001", "FAC", &format!("S{i}"), "2025-01-01", "10"))
        .collect();
    let r = l.import("items@stock.csv", items_file(&lines));
    assert_ok(&r);
    assert_eq!(r["nb_item_cleared"], 0);
    assert_eq!(r["nb_item_unchanged"], 100, "the lines are still imported");
    let w = r["warnings"][0].as_str().unwrap();
    assert!(w.contains("200 of the 300") && w.contains("@force"), "{w}");
    assert_eq!(l.open_items(), 300);
    let r = l.import("items@stock@force.csv", items_file(&lines));
    assert_eq!(r["nb_item_cleared"], 200);
    assert_eq!(l.open_items(), 100);
}

#[test]
fn stock_safety_ratio_is_an_account_option_and_small_clears_always_pass() {
    let mut l = stock_ledger(150);
    l.set(&["stock_max_clear_ratio=0.9"]);
    let lines: Vec<String> = (0..30)
        .map(|i| item("C0001", "FAC", &format!("S{i}"), "2025-01-01", "10"))
        .collect();
    let r = l.import("items@stock.csv", items_file(&lines));
    assert_eq!(r["nb_item_cleared"], 120, "{r:#}");
    let mut l = stock_ledger(150);
    let lines: Vec<String> = (0..60)
        .map(|i| item("C0001", "FAC", &format!("S{i}"), "2025-01-01", "10"))
        .collect();
    let r = l.import("items@stock.csv", items_file(&lines));
    assert_eq!(
        r["nb_item_cleared"], 90,
        "90 > 75 but not more than 100 items"
    );
}

#[test]
fn a_file_level_error_in_stock_mode_clears_nothing_and_changes_nothing() {
    let mut l = stock_ledger(5);
    let before = l.dump();
    let r = l.import(
        "items@stock.csv",
        format!("{ITEM_HEADER}\nC0001;FAC;S0;2025-01-01;2026-01-31;\"10\n"),
    );
    assert_eq!(r["error_code"], "CSV_BAD_SYNTAX");
    assert_eq!(r["nb_item_cleared"], 0);
    assert_eq!(l.dump(), before);
}

#[test]
fn clients_upsert_only_writes_present_columns_and_empty_cells_clear() {
    let mut l = Ledger::new();
    l.import("clients.csv", "client_code;client_business_name;client_email;client_group;client_blocked\nC1;A;a@x.eu;g1, g2 ,;oui\n");
    assert_eq!(
        l.cell(FileType::Clients, "client_code", "C1", "client_group"),
        "g1,g2"
    );
    assert_eq!(
        l.cell(FileType::Clients, "client_code", "C1", "client_blocked"),
        "1"
    );
    let r = l.import("clients.csv", "client_code;client_business_name\nC1;A\n");
    assert_eq!(r["nb_client_unchanged"], 1);
    assert_eq!(
        l.cell(FileType::Clients, "client_code", "C1", "client_email"),
        "a@x.eu",
        "kept"
    );
    let r = l.import(
        "clients.csv",
        "client_code;client_business_name;client_email\nC1;B;\n",
    );
    assert_eq!(r["nb_client_modified"], 1);
    assert_eq!(
        l.cell(FileType::Clients, "client_code", "C1", "client_email"),
        "",
        "cleared"
    );
    assert_eq!(
        l.cell(
            FileType::Clients,
            "client_code",
            "C1",
            "client_business_name"
        ),
        "B"
    );
}

#[test]
fn client_field_types_and_custom_fields() {
    let mut l = Ledger::new();
    let r = l.import(
        "clients.csv",
        "client_code;client_business_name;client_credit_limit;client_blocked_date;client_guarantees_currency;client_field_perso12;client_blocked\n\
         C1;A;\"10 000,50\";31.12.2025;eur;custom;nee\n\
         C2;B;lots;2025-01-01;EUR;x;0\n\
         C3;C;1;2025-01-01;EURO;x;maybe\n",
    );
    assert_eq!(r["nb_client_added"], 1);
    let cell = |c| l.cell(FileType::Clients, "client_code", "C1", c);
    assert_eq!(cell("client_credit_limit"), "10000.50");
    assert_eq!(cell("client_blocked_date"), "2025-12-31");
    assert_eq!(cell("client_guarantees_currency"), "EUR");
    assert_eq!(cell("client_field_perso12"), "custom");
    assert_eq!(cell("client_blocked"), "0");
    let e = exceptions(&r);
    assert_eq!(
        e[0],
        (
            "line 3".into(),
            "Invalid amount in client_credit_limit: 'lots'".into()
        )
    );
    assert_eq!(
        e[1],
        ("line 4".into(), "Invalid currency in client_guarantees_currency: 'EURO'; Invalid boolean in client_blocked: 'maybe'".into())
    );
}

#[test]
fn text_length_limits() {
    let mut l = Ledger::new();
    let long = "x".repeat(256);
    let comment = "y".repeat(4000);
    let r = l.import(
        "clients.csv",
        format!(
            "client_code;client_business_name;client_comments\nC1;{long};ok\nC2;ok;{comment}\n"
        ),
    );
    assert_eq!(r["nb_client_added"], 1);
    assert_eq!(
        exceptions(&r),
        vec![(
            "line 2".into(),
            "Value too long in client_business_name: 256 characters (at most 255)".into()
        )]
    );
}

#[test]
fn client_unique_key_must_be_unique() {
    let mut l = Ledger::new();
    let r = l.import(
        "clients.csv",
        "client_code;client_business_name;client_unique_key\nC1;A;U1\nC2;B;U1\nC1;A2;U1\n",
    );
    assert_eq!(r["nb_client_added"], 1);
    assert_eq!(
        exceptions(&r),
        vec![
            (
                "line 3".into(),
                "client_unique_key 'U1' is already used by client_code 'C1'".into()
            ),
            ("line 4".into(), "Duplicate of line 2 (same client)".into()),
        ]
    );
}

#[test]
fn contacts_are_insert_only_and_not_duplicated_on_reimport() {
    let mut l = with_clients();
    let file = "client_code;contact_lastname;contact_firstname;contact_email;contact_role;contact_collection\n\
                C0001;Jackson;Mike;mike@x.eu;buyer;1\n\
                C0001;Smith;Ann;;;0\n\
                C0001;JACKSON;mike;MIKE@x.eu;;\n\
                C0001;Doe;Jo;;chef;\n";
    let r = l.import("contacts.csv", file);
    assert_eq!(r["nb_contact_added"], 2);
    assert_eq!(
        exceptions(&r),
        vec![
            ("line 4".into(), "Duplicate of line 2 (same contact)".into()),
            ("line 5".into(), "Invalid value in contact_role: 'chef' (expected accounting, buyer, company, manager, other)".into()),
        ]
    );
    assert_eq!(
        l.cell(
            FileType::Contacts,
            "contact_lastname",
            "Smith",
            "contact_role"
        ),
        "other"
    );
    let r = l.import("contacts.csv", file.replace("buyer", "manager"));
    assert_eq!(r["nb_contact_added"], 0);
    assert_eq!(r["nb_contact_unchanged"], 2);
    assert_eq!(l.count(FileType::Contacts), 2);
    assert_eq!(
        l.cell(
            FileType::Contacts,
            "contact_lastname",
            "Jackson",
            "contact_role"
        ),
        "buyer",
        "never updated"
    );
}

#[test]
fn one_collection_contact_per_client() {
    let mut l = with_clients();
    l.import(
        "contacts.csv",
        "client_code;contact_lastname;contact_collection\nC0001;A;1\nC0001;B;0\n",
    );
    l.import(
        "contacts.csv",
        "client_code;contact_lastname;contact_collection\nC0001;C;1\n",
    );
    assert_eq!(
        l.cell(
            FileType::Contacts,
            "contact_lastname",
            "A",
            "contact_collection"
        ),
        "0"
    );
    assert_eq!(
        l.cell(
            FileType::Contacts,
            "contact_lastname",
            "C",
            "contact_collection"
        ),
        "1"
    );
}

#[test]
fn contact_unique_key_identity() {
    let mut l = with_clients();
    let r = l.import(
        "contacts.csv",
        "client_code;contact_lastname;contact_unique_key\nC0001;A;K1\nC0002;B;K1\n",
    );
    assert_eq!(r["nb_contact_added"], 1);
    assert_eq!(exceptions(&r)[0].1, "Duplicate of line 2 (same contact)");
}

#[test]
fn users_add_links_and_replace_sets_them_exactly() {
    let mut l = with_clients();
    let r = l.import(
        "users.csv",
        "client_code;user_lastname;user_firstname;user_email\nC0001;Roy;John;john@x.eu\nC0002;Roy;John;JOHN@x.eu\nC0001;Lee;Ann;\n",
    );
    assert_ok(&r);
    assert_eq!(r["nb_user_added"], 2, "John counts once");
    // Add mode: a new link for John, Ann untouched.
    let r = l.import(
        "users@add.csv",
        "client_code;user_lastname;user_email\nC0003;Roy;john@x.eu\n",
    );
    assert_eq!(r["nb_user_modified"], 1);
    assert_eq!(r["nb_user_added"], 0);
    let links = |l: &Ledger| l.export(FileType::Users, false).lines().count() - 1;
    assert_eq!(links(&l), 4);
    // Replace: C0001's users become exactly {Ann}; John loses C0001 only.
    let r = l.import_with(
        "users.csv",
        "client_code;user_lastname;user_firstname\nC0001;Lee;Ann\n",
        &[("replace_users_association", "1")],
    );
    assert_ok(&r);
    assert_eq!(r["nb_user_modified"], 1, "John lost a link: {r:#}");
    assert_eq!(r["nb_user_unchanged"], 1, "Ann");
    let export = l.export(FileType::Users, false);
    assert_eq!(links(&l), 3, "{export}");
    assert!(!export.contains("C0001;Roy"), "{export}");
    assert!(
        export.contains("C0002;Roy")
            && export.contains("C0003;Roy")
            && export.contains("C0001;Lee")
    );
    // Re-importing the same replace file changes nothing.
    let r = l.import(
        "users@replace.csv",
        "client_code;user_lastname;user_firstname\nC0001;Lee;Ann\n",
    );
    assert_eq!(
        (r["nb_user_modified"].as_u64(), r["nb_user_added"].as_u64()),
        (Some(0), Some(0))
    );
}

#[test]
fn users_identity_falls_back_to_matricule_then_names() {
    let mut l = with_clients();
    let r = l.import(
        "users.csv",
        "client_code;user_lastname;user_firstname;user_matricule\nC0001;Roy;John;M7\nC0002;Royce;Johnny;M7\nC0001;Lee;Ann;\nC0002;LEE;ann;\nC0002;Lee;Ann;\n",
    );
    assert_eq!(r["nb_user_added"], 2, "{r:#}");
    assert_eq!(
        exceptions(&r),
        vec![(
            "line 6".into(),
            "Duplicate of line 5 (same user and client)".into()
        )]
    );
    assert_eq!(
        l.cell(FileType::Users, "user_matricule", "M7", "user_lastname"),
        "Royce"
    );
}

#[test]
fn dry_run_changes_nothing_but_reports_the_same_counts() {
    let mut l = with_clients();
    l.import(
        "items.csv",
        items_file(&[
            item("C0001", "FAC", "1", "2025-01-01", "10"),
            item("C0001", "FAC", "2", "2025-01-01", "10"),
        ]),
    );
    let file = items_file(&[
        item("C0001", "FAC", "1", "2025-01-01", "11"),
        item("C0001", "FAC", "3", "2025-01-01", "10"),
        item("C0009", "FAC", "4", "2025-01-01", "10"),
    ]);
    let before = l.dump();
    let dry = l.import("items@stock@dryrun.csv", &file);
    assert_ok(&dry);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(l.dump(), before, "a dry run changes nothing");
    let real = l.import("items@stock.csv", &file);
    for k in [
        "nb_item_added",
        "nb_item_modified",
        "nb_item_unchanged",
        "nb_item_cleared",
        "nb_exception_lines",
        "lines_imported",
    ] {
        assert_eq!(dry[k], real[k], "{k}");
    }
    assert_eq!(real["nb_item_cleared"], 1);
    assert_ne!(l.dump(), before);
}

#[test]
fn reimporting_the_same_files_reports_everything_unchanged() {
    let mut l = with_clients();
    let items = items_file(&[
        item("C0001", "FAC", "1", "2025-01-01", "\"1 234,56\""),
        item("C0002", "AVO", "2", "2025-01-01", "10"),
    ]);
    l.import("items.csv", &items);
    l.import("contacts.csv", "client_code;contact_lastname\nC0001;A\n");
    l.import("users.csv", "client_code;user_lastname\nC0001;A\n");
    let before = l.dump();
    let r = l.import("clients.csv", CLIENTS);
    assert_eq!(
        (
            r["nb_client_unchanged"].as_u64(),
            r["nb_client_modified"].as_u64()
        ),
        (Some(3), Some(0))
    );
    let r = l.import("items.csv", &items);
    assert_eq!(
        (
            r["nb_item_unchanged"].as_u64(),
            r["nb_item_modified"].as_u64()
        ),
        (Some(2), Some(0))
    );
    let r = l.import("contacts.csv", "client_code;contact_lastname\nC0001;A\n");
    assert_eq!(r["nb_contact_unchanged"], 1);
    let r = l.import("users.csv", "client_code;user_lastname\nC0001;A\n");
    assert_eq!(r["nb_user_unchanged"], 1);
    assert_eq!(l.dump(), before);
}

#[test]
fn export_then_import_is_all_unchanged() {
    let mut l = Ledger::new();
    l.import(
        "clients.csv",
        "client_code;client_business_name;client_group;client_credit_limit;client_blocked;client_comments;client_unique_key\n\
         C0001;\"Dupont; Fils\";a,b;\"1 000,5\";1;\"two\nlines\";U1\nC0002;B;;;;;\n",
    );
    let header = format!(
        "{ITEM_HEADER};item_amount_initial;item_date_payment;item_currency;item_unique_key"
    );
    l.import(
        "items.csv",
        csv(&[
            &header,
            "C0001;FAC;00012;2025-01-01;2025-02-01;\"6 580,10\";5000;;usd;",
            "C0002;AVO;A1;2025-01-01;2025-02-01;100;;2025-03-01;EUR;K9",
            "C0001;ODI;O1;2025-01-01;2025-02-01;0.000001;;;;",
        ]),
    );
    l.import(
        "contacts.csv",
        "client_code;contact_lastname;contact_email;contact_collection\nC0001;A;a@x.eu;1\n",
    );
    l.import(
        "users.csv",
        "client_code;user_lastname;user_email\nC0001;A;u@x.eu\nC0002;A;u@x.eu\n",
    );
    let before = l.dump();
    for (t, key) in [
        (FileType::Clients, "nb_client_unchanged"),
        (FileType::Items, "nb_item_unchanged"),
        (FileType::Contacts, "nb_contact_unchanged"),
        (FileType::Users, "nb_user_unchanged"),
    ] {
        let csv = l.export(t, false);
        let rows = csv.lines().count() as u64;
        let r = l.import(&format!("{}.csv", t.as_str()), &csv);
        assert_ok(&r);
        assert_eq!(r["nb_exception_lines"], 0, "{t}: {r:#}");
        assert!(
            r[key].as_u64().unwrap() > 0 && r[key].as_u64().unwrap() < rows,
            "{t}: {r:#}"
        );
        for k in [
            "nb_client_added",
            "nb_client_modified",
            "nb_item_added",
            "nb_item_modified",
            "nb_contact_added",
            "nb_user_added",
            "nb_user_modified",
        ] {
            assert_eq!(r[k], 0, "{t} {k}");
        }
    }
    assert_eq!(l.dump(), before);
    let open = l.export(FileType::Items, true);
    assert!(open.contains("00012") && !open.contains("A1"), "{open}");
}

#[test]
fn an_item_cleared_by_stock_reopens_when_it_comes_back() {
    let mut l = stock_ledger(3);
    let all: Vec<String> = (0..3)
        .map(|i| item("C0001", "FAC", &format!("S{i}"), "2025-01-01", "10"))
        .collect();
    let r = l.import("items@stock.csv", items_file(&all[..2]));
    assert_eq!(r["nb_item_cleared"], 1);
    // The very line that was imported before the clearing: not "unchanged".
    let r = l.import("items.csv", items_file(&all[2..]));
    assert_eq!(r["nb_item_modified"], 1, "{r:#}");
    assert_eq!(
        l.cell(FileType::Items, "item_number", "S2", "item_date_payment"),
        ""
    );
    assert_eq!(
        l.cell(
            FileType::Items,
            "item_number",
            "S2",
            "item_amount_remaining_inc_tax"
        ),
        "10.00"
    );
    assert_eq!(l.open_items(), 3);
}

#[test]
fn a_file_with_fewer_columns_compares_only_what_it_has() {
    let mut l = Ledger::new();
    l.import(
        "clients.csv",
        "client_code;client_business_name;client_email\nC1;A;a@x.eu\n",
    );
    // Another shape: digest differs, values are compared for real.
    let r = l.import("clients.csv", "client_code;client_business_name\nC1;A\n");
    assert_eq!(r["nb_client_unchanged"], 1);
    let r = l.import(
        "clients.csv",
        "client_code;client_email;client_business_name\nC1;a@x.eu;A\n",
    );
    assert_eq!(r["nb_client_unchanged"], 1, "column order does not matter");
    let r = l.import("clients.csv", "client_code;client_business_name\nC1;B\n");
    assert_eq!(r["nb_client_modified"], 1);
}

#[test]
fn client_codes_resolve_through_the_store_when_the_map_cannot_hold_them() {
    // A code too long for the in-memory map makes every line ask the store:
    // the same answers either way.
    let mut l = Ledger::new();
    let long = "CLIENT-WITH-A-VERY-LONG-CODE-0001";
    l.import(
        "clients.csv",
        format!("client_code;client_business_name\nC1;A\n{long};B\n"),
    );
    let r = l.import(
        "items.csv",
        items_file(&[
            item("C1", "FAC", "1", "2025-01-01", "10"),
            item(long, "FAC", "2", "2025-01-01", "10"),
            item("C9", "FAC", "3", "2025-01-01", "10"),
        ]),
    );
    assert_eq!(r["nb_item_added"], 2, "{r:#}");
    assert_eq!(
        exceptions(&r),
        vec![("line 4".into(), "Unknown client_code: 'C9'".into())]
    );
    let r = l.import(
        "users.csv",
        format!("client_code;user_lastname\n{long};Roy\nC9;Lee\n"),
    );
    assert_eq!(r["nb_user_added"], 1);
    assert_eq!(exceptions(&r)[0].1, "Unknown client_code: 'C9'");
    let r = l.import(
        "contacts.csv",
        format!("client_code;contact_lastname\n{long};Roy\n"),
    );
    assert_eq!(r["nb_contact_added"], 1);
}

#[test]
fn descriptive_item_columns_are_kept_and_only_those_in_the_file_written() {
    let mut l = with_clients();
    let header = format!("{ITEM_HEADER};item_erp_type;item_field_perso12;item_date_order");
    let file = csv(&[
        &header,
        "C0001;FAC;1;2025-01-01;2025-02-01;10;NF;custom;31/12/2024",
    ]);
    assert_eq!(l.import("items.csv", &file)["nb_item_added"], 1);
    let cell = |l: &Ledger, c: &str| l.cell(FileType::Items, "item_number", "1", c);
    assert_eq!(cell(&l, "item_erp_type"), "NF");
    assert_eq!(cell(&l, "item_field_perso12"), "custom");
    assert_eq!(cell(&l, "item_date_order"), "2024-12-31");
    assert_eq!(l.import("items.csv", &file)["nb_item_unchanged"], 1);
    // A file without them leaves them alone; one with one of them changes it.
    let r = l.import(
        "items.csv",
        csv(&[ITEM_HEADER, "C0001;FAC;1;2025-01-01;2025-02-01;10"]),
    );
    assert_eq!(r["nb_item_unchanged"], 1, "{r:#}");
    let header2 = format!("{ITEM_HEADER};item_erp_type");
    let r = l.import(
        "items.csv",
        csv(&[&header2, "C0001;FAC;1;2025-01-01;2025-02-01;10;INV"]),
    );
    assert_eq!(r["nb_item_modified"], 1);
    assert_eq!(cell(&l, "item_erp_type"), "INV");
    assert_eq!(cell(&l, "item_field_perso12"), "custom");
    // And the export carries them back unchanged.
    let export = l.export(FileType::Items, false);
    let r = l.import("items.csv", &export);
    assert_eq!(r["nb_item_unchanged"], 1, "{r:#}");
}

/// Small files resolve client codes one by one in the store, large ones
/// through a map loaded first (engine::SMALL_FILE): both say the same.
#[test]
fn unknown_client_codes_read_the_same_in_small_and_large_files() {
    let bad = [
        item("C0001", "FAC", "1", "2025-12-05", "10"),
        item("NOPE", "FAC", "2", "2025-12-05", "10"),
        "C0002;FAC;3;2025-12-05;2025-12-12;10;extra".to_string(),
        item("", "FAC", "4", "2025-12-05", "10"),
    ];
    let mut small = with_clients();
    let small_report = small.import("items.csv", items_file(&bad));
    let mut large_lines = bad.to_vec();
    for i in 0..2000 {
        large_lines.push(item(
            "C0002",
            "FAC",
            &format!("pad-{i:05}"),
            "2025-12-05",
            "10",
        ));
    }
    let large_file = items_file(&large_lines);
    assert!(
        large_file.len() > 64 << 10,
        "the large file must use the map"
    );
    let mut large = with_clients();
    let large_report = large.import("items.csv", large_file);
    assert_eq!(exceptions(&small_report), exceptions(&large_report));
    assert!(
        exceptions(&small_report)
            .iter()
            .any(|(_, why)| why.contains("Unknown client_code: 'NOPE'")),
        "{small_report:#}"
    );
}
