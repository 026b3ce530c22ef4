//! The HTTP door against a real `dropgate serve`: curl and hyper's Rust
//! client, each endpoint's answers checked field by field and against the
//! OpenAPI document (`api/openapi.json`).

mod common;

use std::time::{Duration, Instant};

use common::DOCUMENTED_COUNTS;
use common::http::{Answer, OpenApi, request};
use common::server::{CLIENTS, ITEMS, PASSWORD, Server};
use serde_json::{Value as Json, json};

fn basic() -> String {
    use base64::Engine;
    let pair = format!("acme:{PASSWORD}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn post(server: &Server, path: &str, auth: &str, body: &str) -> Answer {
    request(
        "POST",
        &server.url(path),
        &[("Authorization", auth), ("Content-Type", "text/csv")],
        body.as_bytes().to_vec(),
    )
}

/// The documented keys with their JSON types (SPEC §8).
fn assert_documented_keys(report: &Json) {
    assert!(report["success"].is_boolean(), "{report:#}");
    for key in DOCUMENTED_COUNTS {
        assert!(report[key].is_u64(), "{key} in {report:#}");
    }
    if report["success"] == false {
        assert!(report["error_code"].is_string(), "{report:#}");
        assert!(report["error_description"].is_string(), "{report:#}");
    }
}

#[test]
fn a_synchronous_post_answers_with_its_report() {
    let server = Server::start();
    let spec = OpenApi::load();
    // curl, Basic authentication, options in the query as in the seed.
    let csv = server.file("clients.csv", CLIENTS);
    let (status, body) = server.curl(&[
        "-u",
        &format!("acme:{PASSWORD}"),
        "--data-binary",
        &format!("@{}", csv.display()),
        &server.url("/api/clients?encoding=UTF-8"),
    ]);
    assert_eq!(status, 200, "{body}");
    let report: Json = serde_json::from_str(&body).unwrap();
    assert_documented_keys(&report);
    assert_eq!(report["success"], true);
    assert_eq!(report["nb_client_added"], 2);
    assert_eq!(report["file_type"], "clients");
    assert_eq!(report["options"]["encoding"], "UTF-8");
    assert!(report["import_id"].is_i64());
    assert!(report.get("exception_lines").is_none());

    // The Rust client, STOCK items with a bad line: 200 with exception_lines.
    let items = format!("{ITEMS}C0001;FAC;F-9;not a date;2025-12-31;10\n");
    let answer = post(
        &server,
        "/api/items?clear_items_not_modified=true",
        &basic(),
        &items,
    );
    spec.check("POST", "/api/{file_type}", &answer);
    assert_eq!(answer.status, 200);
    let report = answer.json();
    assert_documented_keys(&report);
    assert_eq!(report["options"]["clear_items_not_modified"], true);
    assert_eq!(report["nb_exception_lines"], 1);
    let exceptions = report["exception_lines"].as_object().unwrap();
    let (line, why) = exceptions.iter().next().unwrap();
    assert!(line.starts_with("line "), "{line}");
    assert!(why.as_str().unwrap().contains("not a date"), "{why}");

    // The request's report is its answer: nothing is written into the
    // account's folder, and the history has it.
    assert!(
        std::fs::read_dir(server.drop_folder("acme"))
            .unwrap()
            .next()
            .is_none(),
        "a synchronous import left files in the folder"
    );
    assert!(
        server.history().contains("items.csv"),
        "{}",
        server.history()
    );
}

#[test]
fn file_level_errors_unknown_options_and_missing_credentials_are_refused() {
    let server = Server::start();
    let spec = OpenApi::load();

    // No credentials: 401, WWW-Authenticate offering both schemes, and a
    // report saying ACCESS_DENIED.
    let answer = request(
        "POST",
        &server.url("/api/clients"),
        &[],
        CLIENTS.as_bytes().to_vec(),
    );
    spec.check("POST", "/api/{file_type}", &answer);
    assert_eq!(answer.status, 401);
    let challenges = &answer.headers["www-authenticate"];
    assert!(
        challenges.iter().any(|c| c.starts_with("Basic realm=")),
        "{challenges:?}"
    );
    assert!(
        challenges.iter().any(|c| c.starts_with("Bearer realm=")),
        "{challenges:?}"
    );
    let report = answer.json();
    assert_documented_keys(&report);
    assert_eq!(report["error_code"], "ACCESS_DENIED");

    // A wrong password with curl: the same answer.
    let (status, body) = server.curl(&[
        "-u",
        "acme:wrong",
        "--data-binary",
        "x",
        &server.url("/api/clients"),
    ]);
    assert_eq!(status, 401);
    assert!(body.contains("ACCESS_DENIED"), "{body}");

    // An unknown query parameter: 400 OPTION_INVALID naming it.
    let answer = post(
        &server,
        "/api/items?clear_item_not_modified=true",
        &basic(),
        ITEMS,
    );
    spec.check("POST", "/api/{file_type}", &answer);
    assert_eq!(answer.status, 400);
    let report = answer.json();
    assert_documented_keys(&report);
    assert_eq!(report["error_code"], "OPTION_INVALID");
    assert!(
        report["error_description"]
            .as_str()
            .unwrap()
            .contains("clear_item_not_modified"),
        "{report:#}"
    );

    // The administrator's settings are not request options.
    let answer = post(
        &server,
        "/api/items?stock_max_clear_ratio=1",
        &basic(),
        ITEMS,
    );
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error_code"], "OPTION_INVALID");
    // A method an endpoint does not take.
    let answer = request("GET", &server.url("/api/items"), &[], vec![]);
    assert_eq!(answer.status, 405);
    assert_eq!(answer.json()["error_code"], "METHOD_NOT_ALLOWED");

    // The seed's items example, whose header has item_date_issue twice.
    post(&server, "/api/clients", &basic(), CLIENTS);
    let seed = "\"item_type\";\"item_number\";\"client_code\";\"item_date_issue\";\"item_date_issue\";\"item_amount_initial_inc_tax\";\"item_currency\"\n\
                \"FAC\";\"00000123\";\"C0001\";\"2025-12-05\";\"2025-12-12\";\"6 580,10\";\"USD\"\n";
    let answer = post(&server, "/api/items", &basic(), seed);
    spec.check("POST", "/api/{file_type}", &answer);
    assert_eq!(answer.status, 400);
    let report = answer.json();
    assert_documented_keys(&report);
    assert_eq!(report["success"], false);
    assert!(
        report["error_description"]
            .as_str()
            .unwrap()
            .contains("item_date_issue"),
        "{report:#}"
    );

    // An empty body is a file-level error too.
    let answer = post(&server, "/api/clients", &basic(), "");
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error_code"], "CSV_EMPTY");

    // Not a file type.
    let answer = post(&server, "/api/invoices", &basic(), CLIENTS);
    spec.check("POST", "/api/{file_type}", &answer);
    assert_eq!(answer.status, 404);
}

#[test]
fn a_body_over_the_limit_is_413_whether_announced_or_streamed() {
    let server = Server::start_with(&[("DROPGATE_HTTP_MAX_BODY_MB", "1")]);
    let spec = OpenApi::load();
    let mut big = String::from(CLIENTS);
    while big.len() < (3 << 20) / 2 {
        big.push_str("C9;filler filler filler filler filler filler filler\n");
    }
    // With Content-Length.
    let answer = post(&server, "/api/clients", &basic(), &big);
    spec.check("POST", "/api/{file_type}", &answer);
    assert_eq!(answer.status, 413);
    let report = answer.json();
    assert_documented_keys(&report);
    assert_eq!(report["error_code"], "FILE_TOO_LARGE");
    // Chunked (no length announced): counted while it streams in.
    let path = server.file("big.csv", &big);
    let (status, body) = server.curl(&[
        "-u",
        &format!("acme:{PASSWORD}"),
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &format!("@{}", path.display()),
        &server.url("/api/clients"),
    ]);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("FILE_TOO_LARGE"), "{body}");
    // Nothing was imported, nothing left in the spool.
    assert!(
        !server.history().contains("clients"),
        "{}",
        server.history()
    );
    let spool: Vec<_> = std::fs::read_dir(server.data().join("spool"))
        .unwrap()
        .collect();
    assert!(spool.is_empty(), "{spool:?}");
}

#[test]
fn tokens_are_shown_once_listed_by_label_and_revocable() {
    let server = Server::start();
    let token = server.token("acme", "erp");
    assert!(token.starts_with("dg_") && token.len() > 40, "{token}");
    // Only a hash is stored.
    let db = std::fs::read(server.data().join("dropgate.db")).unwrap();
    assert!(
        !db.windows(token.len()).any(|w| w == token.as_bytes()),
        "the token is stored in clear"
    );
    let answer = post(&server, "/api/clients", &bearer(&token), CLIENTS);
    assert_eq!(answer.status, 200, "{}", answer.text());

    let list = common::server::dropgate(&server.data())
        .args(["account", "token", "list", "acme"])
        .output()
        .unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(list.starts_with("erp\t"), "{list}");
    assert!(!list.contains(&token));

    let revoked = common::server::dropgate(&server.data())
        .args(["account", "token", "revoke", "acme", "erp"])
        .status()
        .unwrap();
    assert!(revoked.success());
    let answer = post(&server, "/api/clients", &bearer(&token), CLIENTS);
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json()["error_code"], "ACCESS_DENIED");
}

#[test]
fn repeated_failures_ban_the_address_at_the_http_door_too() {
    let server = Server::start_with(&[("DROPGATE_AUTH_MAX_FAILURES", "3")]);
    let spec = OpenApi::load();
    for _ in 0..3 {
        let answer = post(&server, "/api/clients", "Bearer dg_wrong", CLIENTS);
        assert_eq!(answer.status, 401);
    }
    // Banned: even the right password is refused, as a failed login is,
    // with a description that says why.
    let answer = post(&server, "/api/clients", &basic(), CLIENTS);
    spec.check("POST", "/api/{file_type}", &answer);
    assert_eq!(answer.status, 401, "{}", answer.text());
    let report = answer.json();
    assert_eq!(report["error_code"], "ACCESS_DENIED");
    assert!(
        report["error_description"]
            .as_str()
            .unwrap()
            .contains("too many failed logins"),
        "{report:#}"
    );
    // And the SFTP door refuses the address as well.
    let out = server.sftp("acme", "ls\n");
    assert!(!out.status.success());
}

#[test]
fn api_put_files_makes_the_report_an_sftp_upload_makes() {
    let server = Server::start();
    let spec = OpenApi::load();
    let token = server.token("other", "put");
    let clients = format!("{CLIENTS}C0009;\n");

    // acme by SFTP, other by apiPutFiles: the same bytes, the same name.
    server.file("clients_0412@iso-8859-1.csv", &clients);
    let out = server.sftp("acme", "put clients_0412@iso-8859-1.csv\n");
    assert!(out.status.success());
    let answer = request(
        "PUT",
        &server.url("/apiPutFiles/clients_0412@iso-8859-1.csv"),
        &[("Authorization", &bearer(&token))],
        clients.clone().into_bytes(),
    );
    spec.check("PUT", "/apiPutFiles/{file_name}", &answer);
    assert_eq!(answer.status, 202, "{}", answer.text());
    let queued = answer.json();
    assert_eq!(queued["status"], "queued");
    let import_id = queued["import_id"].as_i64().unwrap();

    let report_name = "clients_0412@iso-8859-1.csv.report.json";
    let by_sftp = server.report(report_name);
    let folder = server.drop_folder("other").join(report_name);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !folder.exists() {
        assert!(Instant::now() < deadline, "no report for apiPutFiles");
        std::thread::sleep(Duration::from_millis(50));
    }
    let by_http: Json = serde_json::from_slice(&std::fs::read(&folder).unwrap()).unwrap();
    assert_eq!(by_http["import_id"], import_id);
    let strip = |mut r: Json| {
        for key in ["import_id", "received_at", "processed_at"] {
            r.as_object_mut().unwrap().remove(key);
        }
        r
    };
    assert_eq!(strip(by_sftp), strip(by_http.clone()));
    assert_eq!(by_http["nb_client_added"], 2);
    // WHATWG: the label ISO-8859-1 means windows-1252.
    assert_eq!(by_http["options"]["encoding"], "windows-1252");

    // The same report at GET /api/imports/{id}.
    let answer = request(
        "GET",
        &server.url(&format!("/api/imports/{import_id}")),
        &[("Authorization", &bearer(&token))],
        vec![],
    );
    spec.check("GET", "/api/imports/{import_id}", &answer);
    let entry = answer.json();
    assert_eq!(entry["status"], "done");
    assert_eq!(entry["origin"], "drop");
    assert_eq!(entry["report"], by_http);

    // POST works too; a temporary name is kept (201) and a report name
    // refused (403); another account's import is not found.
    let answer = request(
        "POST",
        &server.url("/apiPutFiles/items.csv.filepart"),
        &[("Authorization", &bearer(&token))],
        ITEMS.as_bytes().to_vec(),
    );
    spec.check("POST", "/apiPutFiles/{file_name}", &answer);
    assert_eq!(answer.status, 201);
    assert_eq!(answer.json()["status"], "kept");
    assert!(
        server
            .drop_folder("other")
            .join("items.csv.filepart")
            .exists()
    );
    let answer = request(
        "PUT",
        &server.url("/apiPutFiles/x.csv.report.json"),
        &[("Authorization", &bearer(&token))],
        b"{}".to_vec(),
    );
    spec.check("PUT", "/apiPutFiles/{file_name}", &answer);
    assert_eq!(answer.status, 403);
    let answer = request(
        "GET",
        &server.url(&format!("/api/imports/{import_id}")),
        &[("Authorization", &basic())],
        vec![],
    );
    spec.check("GET", "/api/imports/{import_id}", &answer);
    assert_eq!(answer.status, 404);
}

#[test]
fn the_import_list_shows_pending_imports_and_reports_newest_first() {
    let server = Server::start();
    let spec = OpenApi::load();
    let token = server.token("acme", "list");
    let auth = [("Authorization", bearer(&token))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    post(&server, "/api/clients", &basic(), CLIENTS);
    // A large items file first, then a small one: the account's imports
    // run in order, so the second waits while the first is imported.
    let mut big = String::from(ITEMS.lines().next().unwrap());
    big.push('\n');
    for i in 0..150_000 {
        big.push_str(&format!("C0001;FAC;B-{i};2025-01-01;2025-02-01;10\n"));
    }
    let first = request(
        "PUT",
        &server.url("/apiPutFiles/items_big.csv"),
        &auth,
        big.into_bytes(),
    );
    assert_eq!(first.status, 202);
    let second = request(
        "PUT",
        &server.url("/apiPutFiles/items_small.csv"),
        &auth,
        ITEMS.as_bytes().to_vec(),
    );
    assert_eq!(second.status, 202);
    let second_id = second.json()["import_id"].as_i64().unwrap();

    let answer = request(
        "GET",
        &server.url(&format!("/api/imports/{second_id}")),
        &auth,
        vec![],
    );
    spec.check("GET", "/api/imports/{import_id}", &answer);
    let entry = answer.json();
    assert_eq!(entry["status"], "pending", "{entry:#}");
    assert_eq!(entry["report"], Json::Null);
    assert_eq!(entry["success"], Json::Null);

    // Poll until both are done, then list.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let answer = request("GET", &server.url("/api/imports?limit=2"), &auth, vec![]);
        spec.check("GET", "/api/imports", &answer);
        let list = answer.json();
        let imports = list["imports"].as_array().unwrap();
        assert_eq!(imports.len(), 2);
        if imports.iter().all(|i| i["status"] == "done") {
            assert_eq!(imports[0]["import_id"], second_id, "newest first");
            assert_eq!(imports[0]["file"], "items_small.csv");
            assert_eq!(imports[1]["file"], "items_big.csv");
            assert_eq!(imports[1]["report"]["nb_item_added"], 150_000);
            break;
        }
        assert!(Instant::now() < deadline, "imports not done: {list:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A bad limit.
    let answer = request("GET", &server.url("/api/imports?limit=0"), &auth, vec![]);
    spec.check("GET", "/api/imports", &answer);
    assert_eq!(answer.status, 400);
    // Unauthenticated.
    let answer = request("GET", &server.url("/api/imports"), &[], vec![]);
    spec.check("GET", "/api/imports", &answer);
    assert_eq!(answer.status, 401);
}

/// Clients with unique keys, for the messages to point at.
const KEYED_CLIENTS: &str = "client_code;client_business_name;client_unique_key\n\
    C0001;My company;8a1c3b52-0000-4000-8000-000000000001\n\
    C0002;Other company;8a1c3b52-0000-4000-8000-000000000002\n";

fn message(id: &str, system_id: &str, company: &str, email: &str) -> Json {
    json!({
        "Header": {"Contains": "ContactPerson", "Date": "2026-11-22", "MessageID": id, "Sender": "4PS"},
        "Data": {
            "systemId": system_id,
            "no": format!("Person {system_id}"),
            "crmCompanyId": company,
            "crmPersonId": "11111111-2222-4333-8444-555555555555",
            "jobTitle": "Buyer",
            "phoneNo": "+31 20 1234567",
            "eMail": email,
            "blocked": false
        }
    })
}

const COMPANY_1: &str = "8a1c3b52-0000-4000-8000-000000000001";
const COMPANY_2: &str = "8a1c3b52-0000-4000-8000-000000000002";

#[test]
fn contact_messages_in_three_framings_upsert_by_system_id() {
    let server = Server::start();
    let spec = OpenApi::load();
    let path = "/api/4PSBC/ImportContactpersoon";
    assert_eq!(
        post(&server, "/api/clients", &basic(), KEYED_CLIENTS).status,
        200
    );
    let send = |body: Vec<u8>, content_type: &str, query: &str| {
        let auth = basic();
        let answer = request(
            "POST",
            &server.url(&format!("{path}{query}")),
            &[("Authorization", &auth), ("Content-Type", content_type)],
            body,
        );
        spec.check("POST", path, &answer);
        answer
    };

    // One message: one response object, its Header echoed.
    let one = message("m-1", "sys-1", COMPANY_1, "a@example.com");
    let answer = send(serde_json::to_vec(&one).unwrap(), "application/json", "");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let response = answer.json();
    assert_eq!(response["Header"], one["Header"]);
    assert_eq!(response["Response"]["Status"], "Ok");
    assert_eq!(response["Response"]["Errors"], "");
    let contact_id = response["Response"]["DigiOfficeContactPersonID"].clone();
    let guid = response["Response"]["DigiOfficeGlobalID"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(guid.len(), 36);
    assert_ne!(guid, "00000000-0000-0000-0000-000000000000");

    // An array mixing good and bad messages: one response each, in order;
    // the bad ones say why and carry the zero GUID; the same systemId gets
    // the same ids back.
    let batch = json!([
        message("m-2", "sys-2", COMPANY_2, "b@example.com"),
        message("m-3", "sys-3", "no-such-company", "c@example.com"),
        {"Header": {"MessageID": "m-4"}, "Data": {"no": "Keyless", "crmCompanyId": COMPANY_1}},
        message("m-5", "sys-1", COMPANY_1, "a.new@example.com"),
        "not an object",
    ]);
    let answer = send(serde_json::to_vec(&batch).unwrap(), "application/json", "");
    assert_eq!(answer.status, 200);
    let responses = answer.json();
    let responses = responses.as_array().unwrap();
    assert_eq!(responses.len(), 5);
    let status: Vec<&str> = responses
        .iter()
        .map(|r| r["Response"]["Status"].as_str().unwrap())
        .collect();
    assert_eq!(status, ["Ok", "Error", "Error", "Ok", "Error"]);
    assert_eq!(responses[0]["Header"]["MessageID"], "m-2");
    assert!(
        responses[1]["Response"]["Errors"]
            .as_str()
            .unwrap()
            .contains("no-such-company")
    );
    assert!(
        responses[2]["Response"]["Errors"]
            .as_str()
            .unwrap()
            .contains("systemId")
    );
    assert_eq!(
        responses[1]["Response"]["DigiOfficeGlobalID"],
        "00000000-0000-0000-0000-000000000000"
    );
    assert_eq!(
        responses[3]["Response"]["DigiOfficeContactPersonID"],
        contact_id
    );
    assert_eq!(
        responses[3]["Response"]["DigiOfficeGlobalID"],
        guid.as_str()
    );

    // JSON Lines, by content type and by ?format=jsonl: same answers, one
    // per line; sending the same message again changes nothing.
    let lines = format!(
        "{}\n{}\n",
        serde_json::to_string(&message("m-6", "sys-1", COMPANY_1, "a.new@example.com")).unwrap(),
        serde_json::to_string(&message("m-7", "sys-2", COMPANY_2, "b@example.com")).unwrap()
    );
    for (content_type, query) in [("application/jsonl", ""), ("text/plain", "?format=jsonl")] {
        let answer = send(lines.clone().into_bytes(), content_type, query);
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("content-type"), Some("application/jsonl"));
        let got: Vec<Json> = answer
            .text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["Header"]["MessageID"], "m-6");
        assert_eq!(got[0]["Response"]["DigiOfficeGlobalID"], guid.as_str());
        assert_eq!(got[1]["Response"]["Status"], "Ok");
    }

    // The history holds the reports, with the counts of the upserts.
    let answer = request(
        "GET",
        &server.url("/api/imports?limit=3"),
        &[("Authorization", &basic())],
        vec![],
    );
    let list = answer.json();
    let last = &list["imports"][0]["report"];
    assert_eq!(last["nb_contact_unchanged"], 2, "{last:#}");
    let batch_report = &list["imports"][2]["report"];
    assert_eq!(batch_report["nb_contact_added"], 1, "{batch_report:#}");
    assert_eq!(batch_report["nb_contact_modified"], 1, "{batch_report:#}");
    assert_eq!(batch_report["nb_exception_lines"], 3, "{batch_report:#}");

    // Not JSON at all: 400 with the report.
    let answer = send(b"{\"Header\": ".to_vec(), "application/json", "");
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error_code"], "CSV_BAD_SYNTAX");
    // Unauthenticated.
    let answer = request("POST", &server.url(path), &[], b"{}".to_vec());
    spec.check("POST", path, &answer);
    assert_eq!(answer.status, 401);
}

#[test]
fn contact_message_files_dropped_by_sftp_are_answered_in_their_report() {
    let server = Server::start();
    assert_eq!(
        post(&server, "/api/clients", &basic(), KEYED_CLIENTS).status,
        200
    );
    let lines = format!(
        "{}\n{}\n",
        serde_json::to_string(&message("f-1", "sys-9", COMPANY_1, "z@example.com")).unwrap(),
        serde_json::to_string(&message("f-2", "sys-8", "nobody", "y@example.com")).unwrap()
    );
    server.file("contacts_4ps.jsonl", &lines);
    let array = serde_json::to_string(&json!([message(
        "f-3",
        "sys-9",
        COMPANY_1,
        "z@example.com"
    )]))
    .unwrap();
    server.file("contacts_4ps.json", &array);
    let out = server.sftp("acme", "put contacts_4ps.jsonl\nput contacts_4ps.json\n");
    assert!(out.status.success());

    let report = server.report("contacts_4ps.jsonl.report.json");
    assert_eq!(report["success"], true);
    assert_eq!(report["nb_contact_added"], 1);
    assert_eq!(report["nb_exception_lines"], 1);
    assert!(
        report["exception_lines"]["line 2"]
            .as_str()
            .unwrap()
            .contains("nobody")
    );
    let responses = report["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 2);
    assert_eq!(responses[0]["Response"]["Status"], "Ok");
    assert_eq!(responses[1]["Response"]["Status"], "Error");
    let guid = responses[0]["Response"]["DigiOfficeGlobalID"].clone();

    let report = server.report("contacts_4ps.json.report.json");
    assert_eq!(report["nb_contact_unchanged"], 1, "{report:#}");
    assert_eq!(
        report["responses"][0]["Response"]["DigiOfficeGlobalID"],
        guid
    );
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

#[test]
fn health_metrics_and_the_openapi_document_are_served() {
    let server = Server::start();
    let spec = OpenApi::load();

    let answer = request("GET", &server.url("/healthz"), &[], vec![]);
    spec.check("GET", "/healthz", &answer);
    assert_eq!(answer.json()["status"], "ok");

    let answer = request("GET", &server.url("/api/openapi.json"), &[], vec![]);
    spec.check("GET", "/api/openapi.json", &answer);
    assert_eq!(
        &answer.json(),
        spec.doc(),
        "the served document is the repository's"
    );

    let before = request("GET", &server.url("/metrics"), &[], vec![]);
    spec.check("GET", "/metrics", &before);
    let before = before.text();
    assert!(before.contains("# TYPE dropgate_import_duration_seconds histogram"));

    let bad = format!("{CLIENTS}C0004;\n");
    assert_eq!(post(&server, "/api/clients", &basic(), &bad).status, 200);
    assert_eq!(
        post(&server, "/api/clients", "Bearer dg_nope", CLIENTS).status,
        401
    );
    server.file("items_m.csv", ITEMS);
    assert!(server.sftp("acme", "put items_m.csv\n").status.success());
    server.report("items_m.csv.report.json");

    let after = request("GET", &server.url("/metrics"), &[], vec![]).text();
    let moved = |series: &str, by: u64| {
        assert_eq!(
            metric(&after, series),
            metric(&before, series) + by,
            "{series}\n{after}"
        );
    };
    moved(
        "dropgate_uploads_total{door=\"http\",outcome=\"queued\"}",
        1,
    );
    moved(
        "dropgate_uploads_total{door=\"sftp\",outcome=\"queued\"}",
        1,
    );
    moved(
        "dropgate_imports_total{file_type=\"clients\",outcome=\"success\"}",
        1,
    );
    moved(
        "dropgate_imports_total{file_type=\"items\",outcome=\"success\"}",
        1,
    );
    moved("dropgate_lines_imported_total{file_type=\"clients\"}", 2);
    moved("dropgate_lines_rejected_total{file_type=\"clients\"}", 1);
    moved(
        "dropgate_import_duration_seconds_count{file_type=\"clients\"}",
        1,
    );
    moved("dropgate_failed_logins_total{method=\"token\"}", 1);
    moved(
        "dropgate_http_requests_total{route=\"/api/{file_type}\",status=\"401\"}",
        1,
    );
    // The SFTP sessions have ended: once the server has seen them go, no
    // session is counted any more.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = request("GET", &server.url("/metrics"), &[], vec![]).text();
        assert!(
            now.contains("dropgate_sessions_active{door=\"sftp\"}"),
            "{now}"
        );
        if metric(&now, "dropgate_sessions_active{door=\"sftp\"}") == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "sessions still counted: {now}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn https_serves_the_api_when_a_certificate_is_configured() {
    let dir = Server::prepare();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let server = Server::run_with(
        dir,
        &[
            ("DROPGATE_HTTP_TLS_CERT", cert_path.to_str().unwrap()),
            ("DROPGATE_HTTP_TLS_KEY", key_path.to_str().unwrap()),
        ],
    );
    let port = server.ports["https"];
    let (status, body) = server.curl(&[
        "--cacert",
        cert_path.to_str().unwrap(),
        "--resolve",
        &format!("localhost:{port}:127.0.0.1"),
        "-u",
        &format!("acme:{PASSWORD}"),
        "--data-binary",
        CLIENTS,
        &format!("https://localhost:{port}/api/clients"),
    ]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"nb_client_added\": 2"), "{body}");
    // Plain HTTP on the TLS port gets no answer.
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            &format!("http://127.0.0.1:{port}/healthz"),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn a_request_cut_off_by_a_crash_is_imported_once_at_restart() {
    for failpoint in ["before-commit", "after-commit"] {
        let server = Server::start_with(&[("DROPGATE_FAILPOINT", failpoint)]);
        let url = server.url("/api/clients");
        // The server dies during the import: the client gets no answer.
        let out = std::process::Command::new("curl")
            .args(["-s", "--max-time", "60", "-u", &format!("acme:{PASSWORD}")])
            .args(["--data-binary", CLIENTS, &url])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{failpoint}: the request was answered"
        );
        let mut s = server;
        let deadline = Instant::now() + Duration::from_secs(60);
        while s.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "{failpoint} was not hit");
            std::thread::sleep(Duration::from_millis(50));
        }
        let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
        drop(s);

        // At restart the import is finished: recorded once, applied once,
        // and its report is in the history, not in the folder.
        let server = Server::run(dir);
        let deadline = Instant::now() + Duration::from_secs(60);
        let imports = loop {
            let answer = request(
                "GET",
                &server.url("/api/imports"),
                &[("Authorization", &basic())],
                vec![],
            );
            let list = answer.json();
            let imports = list["imports"].as_array().unwrap().clone();
            if imports.iter().all(|i| i["status"] == "done") && !imports.is_empty() {
                break imports;
            }
            assert!(
                Instant::now() < deadline,
                "{failpoint}: not finished: {list:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(imports.len(), 1, "{failpoint}: {imports:#?}");
        assert_eq!(imports[0]["origin"], "request");
        assert_eq!(imports[0]["report"]["nb_client_added"], 2, "{failpoint}");
        assert!(
            std::fs::read_dir(server.drop_folder("acme"))
                .unwrap()
                .next()
                .is_none(),
            "{failpoint}: a request's report was written into the folder"
        );
        // Sending it again now finds both clients there.
        let answer = post(&server, "/api/clients", &basic(), CLIENTS);
        assert_eq!(answer.json()["nb_client_unchanged"], 2, "{failpoint}");
    }
}

/// Sends headers announcing a body, then part of it, then nothing; returns
/// what the server answered (read until it closes or 30 s pass).
fn stalled_request(server: &Server, method: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", server.ports["http"])).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        socket,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 100000\r\n\r\n{}",
        basic(),
        &ITEMS[..40]
    )
    .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = socket.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn a_stalled_body_is_given_up_as_incomplete() {
    let server = Server::start_with(&[("DROPGATE_HTTP_BODY_STALL_SECS", "1")]);
    let answer = stalled_request(&server, "POST", "/api/items");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("UPLOAD_INCOMPLETE"), "{answer}");
    let spool: Vec<_> = std::fs::read_dir(server.data().join("spool"))
        .unwrap()
        .collect();
    assert!(spool.is_empty(), "{spool:?}");

    // apiPutFiles: like an SFTP session that ends mid-upload, the partial
    // file is removed and answered for in the folder.
    let answer = stalled_request(&server, "PUT", "/apiPutFiles/items_stalled.csv");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let report = server.report("items_stalled.csv.report.json");
    assert_eq!(report["error_code"], "UPLOAD_INCOMPLETE");
    assert!(
        !server
            .drop_folder("acme")
            .join("items_stalled.csv")
            .exists()
    );
    assert!(!server.history().contains("\"success\":true"));
}

#[test]
fn contact_messages_write_only_what_they_carry_and_dry_runs_keep_nothing() {
    let server = Server::start();
    let path = "/api/4PSBC/ImportContactpersoon";
    assert_eq!(
        post(&server, "/api/clients", &basic(), KEYED_CLIENTS).status,
        200
    );
    // A CSV contact with a first name and an email, keyed sys-1.
    let contacts = "client_code;contact_lastname;contact_firstname;contact_email;contact_unique_key\n\
                    C0001;Person sys-1;John;john@example.com;sys-1\n";
    assert_eq!(
        post(&server, "/api/contacts", &basic(), contacts).status,
        200
    );
    let send = |body: &Json, query: &str| {
        request(
            "POST",
            &server.url(&format!("{path}{query}")),
            &[
                ("Authorization", &basic()),
                ("Content-Type", "application/json"),
            ],
            serde_json::to_vec(body).unwrap(),
        )
    };
    // A message with only a phone: the first name and email stay.
    let update = json!({"Data": {"systemId": "sys-1", "no": "Person sys-1",
        "crmCompanyId": COMPANY_1, "phoneNo": "+31 1"}});
    let answer = send(&update, "");
    assert_eq!(
        answer.json()["Response"]["Status"],
        "Ok",
        "{}",
        answer.text()
    );
    let export = common::server::dropgate(&server.data())
        .args(["export", "--account", "acme", "contacts"])
        .output()
        .unwrap();
    let export = String::from_utf8(export.stdout).unwrap();
    let row = export.lines().find(|l| l.contains("sys-1")).unwrap();
    assert!(
        row.contains("John") && row.contains("john@example.com"),
        "{export}"
    );
    assert!(row.contains("+31 1"), "{export}");

    // A dry run of a new contact answers the zero GUID; of a known one, its
    // GUID; and keeps nothing.
    let known = send(&update, "").json()["Response"]["DigiOfficeGlobalID"].clone();
    let fresh = json!([
        {"Data": {"systemId": "sys-new", "no": "New", "crmCompanyId": COMPANY_2}},
        update
    ]);
    let answer = send(&fresh, "?dry_run=true");
    let responses = answer.json();
    assert_eq!(
        responses[0]["Response"]["DigiOfficeGlobalID"], "00000000-0000-0000-0000-000000000000",
        "{responses:#}"
    );
    assert_eq!(responses[1]["Response"]["DigiOfficeGlobalID"], known);
    let export = common::server::dropgate(&server.data())
        .args(["export", "--account", "acme", "contacts"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8(export.stdout)
            .unwrap()
            .contains("sys-new")
    );

    // A byte order mark before an array: still answered with an array.
    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend(serde_json::to_vec(&json!([update, update])).unwrap());
    let answer = request(
        "POST",
        &server.url(path),
        &[
            ("Authorization", &basic()),
            ("Content-Type", "application/json"),
        ],
        body,
    );
    assert_eq!(
        answer.json().as_array().map(Vec::len),
        Some(2),
        "{}",
        answer.text()
    );

    // More than 10,000 messages in one request: refused as a whole.
    let many = "{}\n".repeat(10_001);
    let answer = request(
        "POST",
        &server.url(&format!("{path}?format=jsonl")),
        &[("Authorization", &basic())],
        many.into_bytes(),
    );
    assert_eq!(answer.status, 413, "{}", answer.text());
    assert_eq!(answer.json()["error_code"], "FILE_TOO_LARGE");
}

#[test]
fn connections_over_the_per_address_limit_are_closed() {
    use std::io::Read;
    let server = Server::start_with(&[("DROPGATE_HTTP_MAX_CONNECTIONS_PER_ADDRESS", "2")]);
    let port = server.ports["http"];
    let _first = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _second = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut third = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 16];
    // Closed by the server without a byte (EOF or reset), not left waiting.
    assert!(matches!(third.read(&mut buf), Ok(0) | Err(_)));
    drop(_first);
    // Once one closes, a new connection is served again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = server.curl(&["--max-time", "5", &server.url("/healthz")]);
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no connection served again");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn concurrent_puts_of_one_name_are_two_uploads() {
    let server = Server::start();
    assert_eq!(post(&server, "/api/clients", &basic(), CLIENTS).status, 200);
    let header = ITEMS.lines().next().unwrap();
    // Two bodies under one name, sent at once, each large enough to be
    // still arriving while the other one does.
    let bodies: Vec<String> = ["A", "B"]
        .iter()
        .map(|tag| {
            let mut b = format!("{header}\n");
            for i in 0..20_000 {
                b.push_str(&format!("C0001;FAC;{tag}-{i};2025-01-01;2025-02-01;10\n"));
            }
            b
        })
        .collect();
    let url = server.url("/apiPutFiles/items_same.csv");
    let answers: Vec<Answer> = std::thread::scope(|scope| {
        let sent: Vec<_> = bodies
            .iter()
            .map(|body| {
                let url = url.clone();
                scope.spawn(move || {
                    request(
                        "PUT",
                        &url,
                        &[("Authorization", &basic())],
                        body.clone().into_bytes(),
                    )
                })
            })
            .collect();
        sent.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ids = Vec::new();
    for answer in &answers {
        assert_eq!(answer.status, 202, "{}", answer.text());
        ids.push(answer.json()["import_id"].as_i64().unwrap());
    }
    assert_ne!(ids[0], ids[1]);
    // Each is imported whole, as sent.
    for id in ids {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let entry = request(
                "GET",
                &server.url(&format!("/api/imports/{id}")),
                &[("Authorization", &basic())],
                vec![],
            )
            .json();
            if entry["status"] == "done" {
                assert_eq!(entry["report"]["success"], true, "{entry:#}");
                assert_eq!(entry["report"]["nb_item_added"], 20_000, "{entry:#}");
                break;
            }
            assert!(Instant::now() < deadline, "import {id} not done");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
