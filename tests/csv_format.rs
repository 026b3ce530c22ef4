//! SPEC §4–§5: encodings, separators, quoting, line numbers, headers.

mod common;
use common::*;
use dropgate::ledger::FileType;

#[test]
fn seed_clients_example_imports() {
    let mut l = Ledger::new();
    let r = l.import(
        "clients.csv",
        "\"client_business_name\";\"client_code\";\"client_id\";\"client_address_country\"\n\
         \"My company\";\"C0001\";\"FR12345678\";\"France\"\n",
    );
    assert_ok(&r);
    assert_eq!(r["nb_client_added"], 1);
    assert_eq!(
        l.cell(FileType::Clients, "client_code", "C0001", "client_id"),
        "FR12345678"
    );
}

#[test]
fn seed_items_example_with_repeated_column_fails_naming_it_and_both_positions() {
    let mut l = Ledger::new();
    l.import("clients.csv", CLIENTS);
    let before = l.dump();
    let r = l.import(
        "items.csv",
        "\"item_type\";\"item_number\";\"client_code\";\"item_date_issue\";\"item_date_issue\";\"item_amount_initial_inc_tax\";\"item_currency\"\n\
         \"FAC\";\"00000123\";\"C0001\";\"2025-12-05\";\"2025-12-12\";\"6 580,10\";\"USD\"\n",
    );
    assert_eq!(r["success"], false);
    assert_eq!(r["error_code"], "CSV_BAD_SYNTAX");
    let d = r["error_description"].as_str().unwrap();
    assert!(
        d.contains("item_date_issue") && d.contains("columns 4 and 5"),
        "{d}"
    );
    assert_eq!(l.dump(), before, "a file-level error changes nothing");
}

#[test]
fn seed_items_example_corrected_imports_exactly() {
    let mut l = Ledger::new();
    l.import("clients.csv", CLIENTS);
    let r = l.import(
        "items.csv",
        "\"item_type\";\"item_number\";\"client_code\";\"item_date_issue\";\"item_date_due\";\"item_amount_initial_inc_tax\";\"item_currency\"\n\
         \"FAC\";\"00000123\";\"C0001\";\"2025-12-05\";\"2025-12-12\";\"6 580,10\";\"USD\"\n",
    );
    assert_ok(&r);
    assert_eq!(r["nb_item_added"], 1);
    let cell = |c| l.cell(FileType::Items, "item_number", "00000123", c);
    assert_eq!(cell("item_amount_initial_inc_tax"), "6580.10");
    assert_eq!(
        cell("item_amount_remaining_inc_tax"),
        "6580.10",
        "remaining defaults to initial"
    );
    assert_eq!(cell("item_currency"), "USD");
    assert_eq!(cell("item_date_due"), "2025-12-12");
}

#[test]
fn seed_contacts_and_users_examples_import() {
    let mut l = Ledger::new();
    l.import("clients.csv", CLIENTS);
    let r = l.import(
        "contacts.csv",
        "\"contact_firstname\";\"contact_lastname\";\"contact_role\";\"client_code\"\n\"Mike\";\"Jackson\";\"other\";\"C0001\"\n",
    );
    assert_ok(&r);
    assert_eq!(r["nb_contact_added"], 1);
    let r = l.import(
        "users.csv",
        "\"user_firstname\";\"user_lastname\";\"client_code\"\n\"John\";\"Roy\";\"C0001\"\n",
    );
    assert_ok(&r);
    assert_eq!(r["nb_user_added"], 1);
}

#[test]
fn windows_1252_is_detected_and_decoded() {
    let mut l = Ledger::new();
    let bytes = b"client_code;client_business_name;client_address_city\nC1;Soci\xe9t\xe9 G\xe9n\xe9rale;K\xf6ln \x80\n".to_vec();
    let r = l.import("clients.csv", bytes);
    assert_ok(&r);
    assert_eq!(r["encoding"], "windows-1252");
    assert_eq!(
        l.cell(
            FileType::Clients,
            "client_code",
            "C1",
            "client_business_name"
        ),
        "Société Générale"
    );
    assert_eq!(
        l.cell(
            FileType::Clients,
            "client_code",
            "C1",
            "client_address_city"
        ),
        "Köln €"
    );
}

#[test]
fn explicit_encodings_by_tag_and_option() {
    let mut l = Ledger::new();
    let bytes = b"client_code;client_business_name\nC1;Caf\xe9\n".to_vec();
    let r = l.import("clients@iso-8859-1.txt", bytes.clone());
    assert_ok(&r);
    assert_eq!(
        r["options"]["encoding"], "windows-1252",
        "WHATWG maps ISO-8859-1 to windows-1252"
    );
    let r = l.import_with("clients.csv", bytes, &[("encoding", "ISO-8859-15")]);
    assert_ok(&r);
    assert_eq!(r["encoding"], "ISO-8859-15");
    assert_eq!(
        l.cell(
            FileType::Clients,
            "client_code",
            "C1",
            "client_business_name"
        ),
        "Café"
    );
}

#[test]
fn explicit_utf8_fails_on_invalid_bytes_naming_the_line() {
    let mut l = Ledger::new();
    let r = l.import_with(
        "clients.csv",
        b"client_code;client_business_name\nC1;ok\nC2;Caf\xe9\n",
        &[("encoding", "UTF-8")],
    );
    assert_eq!(r["success"], false);
    assert_eq!(r["error_code"], "ENCODING_INVALID");
    let d = r["error_description"].as_str().unwrap();
    assert!(d.starts_with("line 3:") && d.contains("0xE9"), "{d}");
    assert_eq!(l.count(FileType::Clients), 0);
}

#[test]
fn utf8_bom_and_utf16_bom() {
    let mut l = Ledger::new();
    let r = l.import(
        "clients.csv",
        "\u{feff}client_code;client_business_name\nC1;Zoë\n",
    );
    assert_ok(&r);
    assert_eq!(
        r["ignored_columns"],
        serde_json::json!([]),
        "the BOM is not part of the first name"
    );
    let mut utf16 = vec![0xff, 0xfe];
    for u in "client_code;client_business_name\r\nC2;Ünïcödé\r\n".encode_utf16() {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    let r = l.import("clients.csv", utf16);
    assert_ok(&r);
    assert_eq!(r["encoding"], "UTF-16LE");
    assert_eq!(
        l.cell(
            FileType::Clients,
            "client_code",
            "C2",
            "client_business_name"
        ),
        "Ünïcödé"
    );
}

#[test]
fn crlf_line_ends_and_blank_lines() {
    let mut l = Ledger::new();
    let r = l.import(
        "clients.csv",
        "\r\nclient_code;client_business_name\r\nC1;A\r\n\r\nC2;B;extra\r\nC3;C\r\n",
    );
    assert_ok(&r);
    assert_eq!(r["lines_read"], 3);
    assert_eq!(r["nb_client_added"], 2);
    // Line 1 is blank, the header is line 2, C2 is on line 5.
    assert_eq!(
        exceptions(&r),
        vec![(
            "line 5".into(),
            "Column count doesn't match (defined=2, found=3)".into()
        )]
    );
    assert_eq!(
        l.cell(
            FileType::Clients,
            "client_code",
            "C3",
            "client_business_name"
        ),
        "C"
    );
}

#[test]
fn quoted_separators_quotes_and_line_breaks_keep_line_numbers_physical() {
    let mut l = Ledger::new();
    let file = "client_code;client_business_name;client_comments\n\
                \"C1\";\"Dupont; Fils & \"\"Cie\"\"\";\"first\nsecond\nthird\"\n\
                C2;Two;\"x\"\n\
                C3;Three\n\
                \"C4\";\"multi\nline\";bad;extra\n\
                C5;Five;ok\n";
    let r = l.import("clients.csv", file);
    assert_ok(&r);
    assert_eq!(r["nb_client_added"], 3);
    assert_eq!(
        exceptions(&r),
        vec![
            // C1 spans lines 2-4, C2 is line 5, C3 line 6, C4 starts on 7.
            (
                "line 6".into(),
                "Column count doesn't match (defined=3, found=2)".into()
            ),
            (
                "line 7".into(),
                "Column count doesn't match (defined=3, found=4)".into()
            ),
        ]
    );
    assert_eq!(
        l.cell(
            FileType::Clients,
            "client_code",
            "C1",
            "client_business_name"
        ),
        "Dupont; Fils & \"Cie\""
    );
    assert_eq!(
        l.cell(FileType::Clients, "client_code", "C1", "client_comments"),
        "first\nsecond\nthird"
    );
}

#[test]
fn eight_versus_ten_columns_uses_the_documented_wording() {
    let mut l = Ledger::new();
    l.import("clients.csv", CLIENTS);
    let header = "client_code;item_type;item_number;item_date_issue;item_date_due;item_amount_initial_inc_tax;item_currency;item_erp_type";
    let r = l.import(
        "items.csv",
        csv(&[
            header,
            "C0001;FAC;1;2025-01-01;2025-02-01;10;EUR;F",
            "C0001;FAC;2;2025-01-01;2025-02-01;10;EUR;F;x;y",
        ]),
    );
    assert_eq!(
        exceptions(&r),
        vec![(
            "line 3".into(),
            "Column count doesn't match (defined=8, found=10)".into()
        )]
    );
    assert_eq!(r["nb_item_added"], 1);
}

#[test]
fn unknown_columns_are_listed_and_missing_ones_fail() {
    let mut l = Ledger::new();
    let r = l.import(
        "clients.csv",
        "client_code;client_business_name;client_emial;Extra\nC1;A;x;y\n",
    );
    assert_ok(&r);
    assert_eq!(
        r["ignored_columns"],
        serde_json::json!(["client_emial", "extra"])
    );
    let before = l.dump();
    let r = l.import(
        "items.csv",
        "client_code;item_number;item_date_issue\nC1;1;2025-01-01\n",
    );
    assert_eq!(r["error_code"], "CSV_MISSING_COLUMN");
    let d = r["error_description"].as_str().unwrap();
    for c in ["item_type", "item_date_due", "item_amount_initial_inc_tax"] {
        assert!(d.contains(c), "{d} should name {c}");
    }
    assert!(!d.contains("item_number"), "{d}");
    assert_eq!(l.dump(), before);
}

#[test]
fn header_names_are_case_insensitive_and_trimmed() {
    let mut l = Ledger::new();
    let r = l.import(
        "clients.csv",
        "\" Client_Code \";CLIENT_BUSINESS_NAME\nC1;A\n",
    );
    assert_ok(&r);
    assert_eq!(r["nb_client_added"], 1);
}

#[test]
fn separators_are_sniffed_from_the_header() {
    let mut l = Ledger::new();
    let r = l.import(
        "clients.csv",
        "client_code\tclient_business_name\nC1\tTab, Inc\n",
    );
    assert_ok(&r);
    assert_eq!(r["separator"], "\t");
    let r = l.import(
        "clients.csv",
        "client_code,client_business_name\nC2,\"Comma; Ltd\"\n",
    );
    assert_ok(&r);
    assert_eq!(r["separator"], ",");
    assert_eq!(
        l.cell(
            FileType::Clients,
            "client_code",
            "C2",
            "client_business_name"
        ),
        "Comma; Ltd"
    );
}

#[test]
fn empty_files_fail_with_csv_empty() {
    let mut l = Ledger::new();
    for body in ["", "\n\n  \n"] {
        let r = l.import("clients.csv", body);
        assert_eq!(r["error_code"], "CSV_EMPTY", "{body:?}");
    }
    let r = l.import("clients.csv", "client_code;client_business_name\n");
    assert_ok(&r);
    assert_eq!(r["lines_read"], 0);
}

#[test]
fn unterminated_quote_is_a_file_level_error_with_its_line() {
    let mut l = Ledger::new();
    let r = l.import(
        "clients.csv",
        "client_code;client_business_name\nC1;A\nC2;\"never closed\nC3;B\nC4;C\n",
    );
    assert_eq!(r["error_code"], "CSV_BAD_SYNTAX");
    let d = r["error_description"].as_str().unwrap();
    assert!(
        d.starts_with("line 3:") && d.contains("unterminated"),
        "{d}"
    );
    assert_eq!(
        l.count(FileType::Clients),
        0,
        "nothing of the file is applied"
    );
    let r = l.import("clients.csv", "client_code;\"client_business_name\nC1;A\n");
    assert_eq!(r["error_code"], "CSV_BAD_SYNTAX");
}

#[test]
fn a_literal_quote_inside_an_unquoted_field_is_data() {
    let mut l = Ledger::new();
    let r = l.import(
        "clients.csv",
        "client_code;client_business_name\nC1;Screen 24\" Ltd\nC2;B\n",
    );
    assert_ok(&r);
    assert_eq!(r["nb_client_added"], 2);
    assert_eq!(
        l.cell(
            FileType::Clients,
            "client_code",
            "C1",
            "client_business_name"
        ),
        "Screen 24\" Ltd"
    );
}

#[test]
fn unrecognized_names_and_bad_tags() {
    let mut l = Ledger::new();
    let r = l.import("invoices.csv", CLIENTS);
    assert_eq!(r["error_code"], "FILE_TYPE_UNKNOWN");
    assert!(
        r["error_description"]
            .as_str()
            .unwrap()
            .contains("items*.csv")
    );
    let r = l.import("clients@sideways.csv", CLIENTS);
    assert_eq!(r["error_code"], "OPTION_INVALID");
    assert!(
        r["error_description"]
            .as_str()
            .unwrap()
            .contains("@sideways")
    );
    let r = l.import_with("clients.csv", CLIENTS, &[("colour", "blue")]);
    assert_eq!(r["error_code"], "OPTION_INVALID");
    assert_eq!(l.count(FileType::Clients), 0);
}

#[test]
fn report_has_every_documented_key_with_its_json_type() {
    let mut l = Ledger::new();
    let r = l.import(
        "clients.csv",
        "client_code;client_business_name\nC1;A\nC2\n",
    );
    let o = r.as_object().unwrap();
    assert!(o["success"].is_boolean());
    for k in DOCUMENTED_COUNTS.into_iter().chain([
        "lines_read",
        "lines_imported",
        "nb_item_cleared",
        "nb_client_unchanged",
        "nb_item_unchanged",
        "nb_contact_unchanged",
        "nb_exception_lines",
        "import_id",
    ]) {
        assert!(o[k].is_u64(), "{k}: {:?}", o.get(k));
    }
    for k in [
        "file",
        "file_type",
        "received_at",
        "processed_at",
        "encoding",
        "separator",
    ] {
        assert!(o[k].is_string(), "{k}");
    }
    assert!(
        o["options"].is_object() && o["ignored_columns"].is_array() && o["warnings"].is_array()
    );
    assert!(o["dry_run"].is_boolean());
    assert!(o["exception_lines"].is_object());
    assert!(!o.contains_key("error_code"), "no error keys on success");
    chrono::DateTime::parse_from_rfc3339(o["received_at"].as_str().unwrap()).unwrap();
    // The documented keys come first, in the documented order.
    let keys: Vec<&str> = o.keys().map(String::as_str).take(8).collect();
    let documented: Vec<&str> = std::iter::once("success")
        .chain(DOCUMENTED_COUNTS)
        .collect();
    assert_eq!(keys, documented);
    let r = l.import("clients.csv", CLIENTS);
    assert!(
        !r.as_object().unwrap().contains_key("exception_lines"),
        "absent when no line skipped"
    );
}

#[test]
fn exception_lines_are_capped_at_1000_with_the_total_counted() {
    let mut l = Ledger::new();
    let mut file = String::from("client_code;client_business_name\n");
    for i in 0..1500 {
        file.push_str(&format!("C{i}\n"));
    }
    let r = l.import("clients.csv", file);
    assert_eq!(r["nb_exception_lines"], 1500);
    assert_eq!(r["exception_lines"].as_object().unwrap().len(), 1000);
    let first = r["exception_lines"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    assert_eq!(first, "line 2", "in line order");
}

#[test]
fn a_record_over_one_mebibyte_fails_the_file_instead_of_being_buffered() {
    let mut l = Ledger::new();
    let huge = "x".repeat((1 << 20) + 10);
    let r = l.import(
        "clients.csv",
        format!("client_code;client_business_name\nC1;A\nC2;{huge}\nC3;B\n"),
    );
    assert_eq!(r["error_code"], "CSV_BAD_SYNTAX");
    let d = r["error_description"].as_str().unwrap();
    assert!(d.starts_with("line 3:") && d.contains("longer than"), "{d}");
    assert_eq!(l.count(FileType::Clients), 0);
}
