//! The HTTP door's handlers: authentication, receiving a body into the
//! drop area, waiting for its import, and answering with its report.
//!
//! Status codes (SPEC §9): 200 imported (exception lines included), 400 a
//! file-level error (`CSV_*`, `ENCODING_INVALID`, `OPTION_INVALID`), 401
//! `ACCESS_DENIED` with `WWW-Authenticate`, 413 `FILE_TOO_LARGE`, 429
//! `ACCESS_DENIED` for an address banned after repeated failed logins, 500
//! `INTERNAL_ERROR`, 503 when the server stops before the import ran. The
//! body of an import answer is always a report with every documented key.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::StreamExt;
use serde_json::{Value as Json, json};

use super::{HttpDoor, Peer};
use crate::auth::AuthError;
use crate::drop_area::{AccountArea, AreaError, Completion, Upload};
use crate::engine::options::ImportOptions;
use crate::engine::report::{ErrorCode, Report};
use crate::engine::rfc3339;
use crate::ledger::FileType;
use crate::store::{AccountRecord, ImportRecord};

type Door = State<Arc<HttpDoor>>;

/// The OpenAPI document, kept in the repository beside the code it
/// describes.
const OPENAPI: &str = include_str!("../../../api/openapi.json");

/// Requests receive their body in blocks of this size before each write.
const BLOCK: usize = 256 << 10;

// ----------------------------------------------------------------------
// Answers

fn json_response(status: StatusCode, body: &Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string_pretty(body).expect("JSON values serialize"),
    )
        .into_response()
}

/// A report that failed before any import: for `file`, with `code`.
fn failed_report(file: &str, file_type: Option<FileType>, code: ErrorCode, why: String) -> Json {
    let mut report = Report::new(file, &rfc3339(chrono::Utc::now()));
    report.file_type = file_type.map(|t| t.as_str().to_string());
    report.fail(code, why);
    serde_json::to_value(&report).expect("a report serializes")
}

/// The answer of a route that is not an import: a small error object with
/// the same `success`, `error_code` and `error_description` keys.
fn error_answer(status: StatusCode, code: &str, why: impl Into<String>) -> Response {
    json_response(
        status,
        &json!({"success": false, "error_code": code, "error_description": why.into()}),
    )
}

/// The status of an answer carrying this report.
fn report_status(report: &Json) -> StatusCode {
    if report["success"] == Json::Bool(true) {
        return StatusCode::OK;
    }
    match report["error_code"].as_str().unwrap_or_default() {
        "ACCESS_DENIED" => StatusCode::UNAUTHORIZED,
        "FILE_TOO_LARGE" => StatusCode::PAYLOAD_TOO_LARGE,
        "INTERNAL_ERROR" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

// ----------------------------------------------------------------------
// Authentication

/// Why a request was not let in.
struct Denied {
    status: StatusCode,
    code: ErrorCode,
    why: String,
}

impl Denied {
    /// The answer: the route's error body, with `WWW-Authenticate` on a 401.
    fn into_response_with(self, body: Json) -> Response {
        let mut response = json_response(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            let headers = response.headers_mut();
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="dropgate", charset="UTF-8""#),
            );
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="dropgate""#),
            );
        }
        response
    }

    fn report(self, file: &str, file_type: Option<FileType>) -> Response {
        let body = failed_report(file, file_type, self.code, self.why.clone());
        self.into_response_with(body)
    }

    fn plain(self) -> Response {
        let body = json!({
            "success": false,
            "error_code": self.code.as_str(),
            "error_description": self.why,
        });
        self.into_response_with(body)
    }
}

/// The account a request's `Authorization` names: Basic (login and
/// password) or Bearer (an API token). A failed attempt is counted
/// against the address and answered after the configured delay, as at
/// the other doors.
async fn authenticate(
    door: &HttpDoor,
    peer: IpAddr,
    headers: &HeaderMap,
) -> Result<AccountRecord, Denied> {
    let denied = |why: &str| Denied {
        status: StatusCode::UNAUTHORIZED,
        code: ErrorCode::AccessDenied,
        why: why.to_string(),
    };
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        if door.auth.is_banned(peer) {
            return Err(banned());
        }
        return Err(denied(
            "authentication required: Authorization: Basic (login and password) or Bearer (an API token)",
        ));
    };
    let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
    let auth = door.auth.clone();
    let credentials = credentials.trim().to_string();
    let checked = match scheme.to_ascii_lowercase().as_str() {
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(&credentials)
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            let Some((user, password)) = decoded
                .as_deref()
                .and_then(|d| d.split_once(':'))
                .map(|(u, p)| (u.to_string(), p.to_string()))
            else {
                return Err(denied("malformed Basic credentials"));
            };
            // argon2 is slow on purpose: the checks waiting for a turn wait
            // here, not on the blocking threads the imports need.
            let _turn = door.password_checks.acquire().await;
            tokio::task::spawn_blocking(move || auth.password(peer, &user, &password)).await
        }
        "bearer" => tokio::task::spawn_blocking(move || auth.token(peer, &credentials)).await,
        _ => {
            return Err(denied(
                "unsupported authorization scheme: use Basic or Bearer",
            ));
        }
    };
    match checked {
        Ok(Ok(account)) => Ok(account),
        Ok(Err(AuthError::Banned)) => Err(banned()),
        Ok(Err(AuthError::Denied)) => {
            tokio::time::sleep(std::time::Duration::from_millis(
                door.auth.config().failure_delay_ms,
            ))
            .await;
            Err(denied("access denied: wrong login, password or token"))
        }
        Ok(Err(AuthError::Store(e))) => Err(Denied {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: ErrorCode::InternalError,
            why: format!("the store failed: {e}"),
        }),
        Err(e) => Err(Denied {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: ErrorCode::InternalError,
            why: format!("the login check failed: {e}"),
        }),
    }
}

/// A banned address: refused like a failed login (SPEC §9: 401
/// `ACCESS_DENIED`), with a description that says why.
fn banned() -> Denied {
    Denied {
        status: StatusCode::UNAUTHORIZED,
        code: ErrorCode::AccessDenied,
        why: "too many failed logins from this address; try again later".into(),
    }
}

fn account_area(door: &HttpDoor, account: &AccountRecord) -> Result<AccountArea, AreaError> {
    door.area.account(account.id, &account.name)
}

fn internal(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "HTTP request failed");
    error_answer(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL_ERROR",
        format!("internal error: {e}"),
    )
}

// ----------------------------------------------------------------------
// Receiving a body

/// Why a body was not received in full.
enum ReceiveError {
    /// Over the configured limit: the rest was not read.
    TooLarge,
    /// The connection broke or the disk failed.
    Broken(String),
}

/// What a received body looked like.
struct Received {
    bytes: u64,
    /// Its first byte that is not white space (a JSON array or object?).
    first: Option<u8>,
}

/// Streams `body` into `upload`, block by block (a body is never held in
/// memory whole), refusing more than `max` bytes.
async fn receive(
    body: Body,
    upload: &mut Upload,
    max: u64,
    stall: std::time::Duration,
) -> Result<Received, ReceiveError> {
    let mut stream = body.into_data_stream();
    let mut block: Vec<u8> = Vec::with_capacity(BLOCK);
    let mut at = 0u64;
    let mut first = None;
    let mut flush = |block: &mut Vec<u8>, at: &mut u64| -> Result<(), ReceiveError> {
        // A write to the page cache, rarely slow: off the async worker's
        // books so other requests keep going if it is.
        tokio::task::block_in_place(|| upload.write_at(*at, block))
            .map_err(|e| ReceiveError::Broken(format!("cannot write the body: {e}")))?;
        *at += block.len() as u64;
        block.clear();
        Ok(())
    };
    loop {
        let Ok(next) = tokio::time::timeout(stall, stream.next()).await else {
            return Err(ReceiveError::Broken(format!(
                "the body stalled: nothing received for {} s",
                stall.as_secs()
            )));
        };
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| ReceiveError::Broken(format!("the body broke off: {e}")))?;
        if at + (block.len() + chunk.len()) as u64 > max {
            return Err(ReceiveError::TooLarge);
        }
        if first.is_none() {
            // White space and a UTF-8 byte order mark come before JSON's
            // first character.
            first = chunk
                .iter()
                .copied()
                .find(|b| !b.is_ascii_whitespace() && ![0xEF, 0xBB, 0xBF].contains(b));
        }
        block.extend_from_slice(&chunk);
        if block.len() >= BLOCK {
            flush(&mut block, &mut at)?;
        }
    }
    if !block.is_empty() {
        flush(&mut block, &mut at)?;
    }
    Ok(Received { bytes: at, first })
}

fn too_large_why(door: &HttpDoor) -> String {
    format!(
        "the body is larger than the {} MiB this server accepts ([http] max_body_mb)",
        door.max_body >> 20
    )
}

/// The 413 answer of an apiPutFiles upload.
fn too_large(door: &HttpDoor, file_name: &str) -> Response {
    let report = failed_report(
        file_name,
        None,
        ErrorCode::FileTooLarge,
        too_large_why(door),
    );
    json_response(StatusCode::PAYLOAD_TOO_LARGE, &report)
}

/// Whether the request says in advance that its body is too large.
fn announced_too_large(door: &HttpDoor, headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > door.max_body)
}

// ----------------------------------------------------------------------
// Options

/// The query's pairs (`a=1&b=2`), percent-decoded, in order.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` and `+` (a space); a `%` not followed by two hex digits
/// stays as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = || {
            bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        };
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if hex().is_some() => {
                out.push(hex().expect("checked"));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks the options a request gives with the same rules as every other
/// source of options ([`ImportOptions::set`]): an unknown or invalid one
/// refuses the request before its body is read.
fn check_options(pairs: &[(String, String)], allowed: &[&str]) -> Result<(), String> {
    let mut scratch = ImportOptions::default();
    for (key, value) in pairs {
        if !allowed.contains(&key.as_str()) {
            return Err(format!(
                "query parameter '{key}' is not an option of this request (options: {})",
                allowed.join(", ")
            ));
        }
        scratch
            .set(key, value)
            .map_err(|e| format!("query parameter '{key}': {e}"))?;
    }
    Ok(())
}

/// The options a CSV import request may give (SPEC §4, and `force` for the
/// STOCK safety rules). `stock_max_clear_ratio` and the item type map are
/// the administrator's account settings, not a sender's.
const CSV_OPTIONS: [&str; 5] = [
    "encoding",
    "clear_items_not_modified",
    "replace_users_association",
    "dry_run",
    "force",
];

/// The options of a JSON message request (JSON is always UTF-8).
const MESSAGE_OPTIONS: [&str; 1] = ["dry_run"];

// ----------------------------------------------------------------------
// Synchronous imports

/// What a synchronous import request answered with.
enum Imported {
    /// The import ended: its report (status from [`report_status`]).
    Report(Json, Received),
    /// Answered before or instead of an import.
    Answer(Response),
}

/// A request's body to import.
struct BodyImport<'a> {
    peer: IpAddr,
    account: &'a AccountRecord,
    /// The name it is imported as, which says its type.
    file_name: &'a str,
    file_type: FileType,
    options: &'a [(String, String)],
}

/// Receives a request's body, queues it as `file_name` behind the
/// account's other uploads, and waits for its report.
async fn import_body(
    door: &HttpDoor,
    what: BodyImport<'_>,
    headers: &HeaderMap,
    body: Body,
) -> Imported {
    let BodyImport {
        peer,
        account,
        file_name,
        file_type,
        options,
    } = what;
    let fail = |code: ErrorCode, why: String, import_id: Option<i64>| {
        let mut report = failed_report(file_name, Some(file_type), code, why);
        report["import_id"] = json!(import_id);
        Imported::Answer(json_response(report_status(&report), &report))
    };
    let internal = |e: &dyn std::fmt::Display, import_id: Option<i64>| {
        tracing::error!(error = %e, import_id, "HTTP import request failed");
        fail(
            ErrorCode::InternalError,
            format!("internal error: {e}"),
            import_id,
        )
    };
    if announced_too_large(door, headers) {
        return fail(ErrorCode::FileTooLarge, too_large_why(door), None);
    }
    let area = match account_area(door, account) {
        Ok(a) => a,
        Err(e) => return internal(&e, None),
    };
    let mut pending = match area.create_request_upload() {
        Ok(upload) => Unfinished {
            area: area.clone(),
            upload: Some(upload),
            place: Place::Spool,
        },
        Err(e) => return internal(&e, None),
    };
    let upload = pending.upload.as_mut().expect("just made");
    let started = upload.started;
    let received = match receive(body, upload, door.max_body, door.body_stall).await {
        Ok(r) => r,
        Err(ReceiveError::TooLarge) => {
            return fail(ErrorCode::FileTooLarge, too_large_why(door), None);
        }
        Err(ReceiveError::Broken(why)) => {
            let bytes = upload.bytes;
            crate::doors::log_incomplete("http", peer, &account.name, file_name, bytes, &why);
            return fail(ErrorCode::UploadIncomplete, why, None);
        }
    };
    let upload = pending.upload.take().expect("received");
    let queued = {
        let (area, name, options) = (area.clone(), file_name.to_string(), options.to_vec());
        tokio::task::spawn_blocking(move || area.complete_request(upload, &name, &options)).await
    };
    let (import_id, ended) = match queued {
        Ok(Ok(q)) => q,
        Ok(Err(e)) => return internal(&e, None),
        Err(e) => return internal(&e, None),
    };
    crate::doors::log_upload(
        "http",
        peer,
        &account.name,
        file_name,
        received.bytes,
        started,
        &Completion::Queued(import_id),
    );
    if ended.await.is_err() {
        // Queued and durable: it runs at the next start. 503 and the id,
        // so that a client retries by asking for the report, not by
        // sending the file again.
        let mut report = failed_report(
            file_name,
            Some(file_type),
            ErrorCode::InternalError,
            format!(
                "the server is stopping: import {import_id} is kept and runs at the next start; \
                 its report will be at GET /api/imports/{import_id} (do not send the file again)"
            ),
        );
        report["import_id"] = json!(import_id);
        let mut response = json_response(StatusCode::SERVICE_UNAVAILABLE, &report);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        return Imported::Answer(response);
    }
    let record = {
        let area = area.clone();
        tokio::task::spawn_blocking(move || area.import(import_id)).await
    };
    match record {
        Ok(Ok(Some(ImportRecord {
            report: Some(report),
            ..
        }))) => match serde_json::from_str(&report) {
            Ok(report) => Imported::Report(report, received),
            Err(e) => internal(&e, Some(import_id)),
        },
        Ok(Ok(_)) => fail(
            ErrorCode::InternalError,
            format!(
                "import {import_id} failed inside the server (see its log); the upload is kept \
                 and is imported again at the next start (do not send the file again)"
            ),
            Some(import_id),
        ),
        Ok(Err(e)) => internal(&e, Some(import_id)),
        Err(e) => internal(&e, Some(import_id)),
    }
}

/// A body being received, and what happens to it if the request ends
/// before it is complete, however it ends (an error, a client that resets
/// an HTTP/2 stream, a server that stops: the handler is then dropped
/// mid-way).
struct Unfinished {
    area: AccountArea,
    upload: Option<Upload>,
    place: Place,
}

enum Place {
    /// A synchronous request's body in the spool: removed; its client was
    /// not answered and knows.
    Spool,
    /// An apiPutFiles upload of this name, private in the folder:
    /// abandoned as an SFTP upload whose session ended is (removed,
    /// answered with `UPLOAD_INCOMPLETE`).
    Folder(String),
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let Some(upload) = self.upload.take() else {
            return;
        };
        match &self.place {
            Place::Spool => self.area.discard_request(upload),
            Place::Folder(name) => {
                let (area, name) = (self.area.clone(), name.clone());
                let abandon = move || {
                    if let Err(e) = area.abandon_private(upload, &name) {
                        tracing::error!(error = %e, "could not answer for an incomplete upload");
                    }
                };
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => drop(runtime.spawn_blocking(abandon)),
                    Err(_) => abandon(),
                }
            }
        }
    }
}

/// `POST /api/{clients|items|contacts|users}`: the body is a CSV file of
/// that type; the answer is its report.
pub async fn import(
    State(door): Door,
    Extension(Peer(peer)): Extension<Peer>,
    file_type: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(file_type) = file_type
        .ok()
        .and_then(|Path(t)| FileType::from_keyword(&t))
    else {
        return not_found().await;
    };
    let file_name = format!("{}.csv", file_type.as_str());
    let account = match authenticate(&door, peer, &headers).await {
        Ok(a) => a,
        Err(denied) => return denied.report(&file_name, Some(file_type)),
    };
    let options = query_pairs(query.as_deref());
    if let Err(why) = check_options(&options, &CSV_OPTIONS) {
        let report = failed_report(&file_name, Some(file_type), ErrorCode::OptionInvalid, why);
        return json_response(StatusCode::BAD_REQUEST, &report);
    }
    let what = BodyImport {
        peer,
        account: &account,
        file_name: &file_name,
        file_type,
        options: &options,
    };
    match import_body(&door, what, &headers, body).await {
        Imported::Report(report, _) => json_response(report_status(&report), &report),
        Imported::Answer(response) => response,
    }
}

/// `POST /api/4PSBC/ImportContactpersoon`: JSON contact-person messages
/// (one object, an array, or JSON Lines), answered with one `{Header,
/// Response}` per message in the same framing.
pub async fn contact_messages(
    State(door): Door,
    Extension(Peer(peer)): Extension<Peer>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut options = query_pairs(query.as_deref());
    let format = options
        .iter()
        .position(|(k, _)| k == "format")
        .map(|i| options.remove(i).1);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let lines = match format.as_deref() {
        Some("jsonl") => true,
        Some("json") => false,
        Some(other) => {
            let report = failed_report(
                "contacts.json",
                Some(FileType::Contacts),
                ErrorCode::OptionInvalid,
                format!("query parameter 'format': '{other}' is not json or jsonl"),
            );
            return json_response(StatusCode::BAD_REQUEST, &report);
        }
        None => matches!(
            content_type.as_str(),
            "application/jsonl" | "text/jsonl" | "application/x-ndjson" | "application/x-jsonlines"
        ),
    };
    let file_name = if lines {
        "contacts.jsonl"
    } else {
        "contacts.json"
    };
    let account = match authenticate(&door, peer, &headers).await {
        Ok(a) => a,
        Err(denied) => return denied.report(file_name, Some(FileType::Contacts)),
    };
    if let Err(why) = check_options(&options, &MESSAGE_OPTIONS) {
        let report = failed_report(
            file_name,
            Some(FileType::Contacts),
            ErrorCode::OptionInvalid,
            why,
        );
        return json_response(StatusCode::BAD_REQUEST, &report);
    }
    let what = BodyImport {
        peer,
        account: &account,
        file_name,
        file_type: FileType::Contacts,
        options: &options,
    };
    let (report, received) = match import_body(&door, what, &headers, body).await {
        Imported::Report(report, received) => (report, received),
        Imported::Answer(response) => return response,
    };
    let Some(responses) = report["responses"]
        .as_array()
        .filter(|_| report["success"] == true)
    else {
        return json_response(report_status(&report), &report);
    };
    if lines {
        let mut text = String::new();
        for r in responses {
            text.push_str(&serde_json::to_string(r).expect("JSON values serialize"));
            text.push('\n');
        }
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/jsonl")],
            text,
        )
            .into_response();
    }
    if received.first == Some(b'[') {
        json_response(StatusCode::OK, &Json::Array(responses.clone()))
    } else {
        json_response(StatusCode::OK, &responses[0])
    }
}

// ----------------------------------------------------------------------
// apiPutFiles

/// `PUT` or `POST /apiPutFiles/{file_name}`: the body becomes a file in the
/// account's folder exactly as an SFTP upload of it would: same naming
/// rules and tags, same queue, same report file. Answers 202 with the
/// import id (201 for a temporary name, kept until renamed). It is
/// received under a private name and appears under its own when complete,
/// so concurrent requests for one name never share a file.
pub async fn put_file(
    State(door): Door,
    Extension(Peer(peer)): Extension<Peer>,
    file_name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(Path(file_name)) = file_name else {
        return error_answer(
            StatusCode::BAD_REQUEST,
            "NAME_REFUSED",
            "the file name is not valid UTF-8 once decoded",
        );
    };
    let account = match authenticate(&door, peer, &headers).await {
        Ok(a) => a,
        Err(denied) => return denied.plain(),
    };
    if announced_too_large(&door, &headers) {
        return too_large(&door, &file_name);
    }
    let area = match account_area(&door, &account) {
        Ok(a) => a,
        Err(e) => return internal(&e),
    };
    let upload = match area.create_private_upload(&file_name) {
        Ok(u) => u,
        Err(e) if e.is_refusal() => {
            let status = match e {
                AreaError::ReportName(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            };
            return error_answer(status, "NAME_REFUSED", e.to_string());
        }
        Err(e) => return internal(&e),
    };
    let mut pending = Unfinished {
        area: area.clone(),
        upload: Some(upload),
        place: Place::Folder(file_name.clone()),
    };
    let upload = pending.upload.as_mut().expect("just made");
    let received = match receive(body, upload, door.max_body, door.body_stall).await {
        Ok(r) => r,
        Err(ReceiveError::TooLarge) => {
            // Refused, not cut off: the client is told, and nothing is
            // left in the folder.
            if let Some(upload) = pending.upload.take() {
                let _ = area.discard_private(upload);
            }
            return too_large(&door, &file_name);
        }
        Err(ReceiveError::Broken(why)) => {
            crate::doors::log_incomplete(
                "http",
                peer,
                &account.name,
                &file_name,
                upload.bytes,
                &why,
            );
            // Dropping `pending` abandons the upload.
            return error_answer(StatusCode::BAD_REQUEST, "UPLOAD_INCOMPLETE", why);
        }
    };
    let upload = pending.upload.take().expect("received");
    let started = upload.started;
    let completed = {
        let area = area.clone();
        let name = file_name.clone();
        tokio::task::spawn_blocking(move || area.complete_private(upload, &name)).await
    };
    let completion = match completed {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return internal(&e),
        Err(e) => return internal(&e),
    };
    crate::doors::log_upload(
        "http",
        peer,
        &account.name,
        &file_name,
        received.bytes,
        started,
        &completion,
    );
    match completion {
        Completion::Queued(id) => json_response(
            StatusCode::ACCEPTED,
            &json!({
                "import_id": id,
                "file": file_name,
                "status": "queued",
                "report": format!("/api/imports/{id}"),
            }),
        ),
        Completion::Kept => json_response(
            StatusCode::CREATED,
            &json!({
                "import_id": null,
                "file": file_name,
                "status": "kept",
                "report": null,
            }),
        ),
    }
}

// ----------------------------------------------------------------------
// History

/// An import as the API lists it: pending ones say so and have no report.
fn import_entry(record: ImportRecord) -> Json {
    let report = record
        .report
        .as_deref()
        .and_then(|r| serde_json::from_str::<Json>(r).ok())
        .unwrap_or(Json::Null);
    json!({
        "import_id": record.id,
        "file": record.file_name,
        "file_type": record.file_type,
        "origin": record.origin.as_str(),
        "status": if record.status == "done" { "done" } else { "pending" },
        "success": record.success,
        "received_at": record.received_at,
        "processed_at": record.processed_at,
        "report": report,
    })
}

/// The most an import list returns.
const MAX_LIST: usize = 1000;

/// `GET /api/imports?limit=N`: the account's most recent imports, newest
/// first (default 20, at most 1000).
pub async fn imports(
    State(door): Door,
    Extension(Peer(peer)): Extension<Peer>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let account = match authenticate(&door, peer, &headers).await {
        Ok(a) => a,
        Err(denied) => return denied.plain(),
    };
    let pairs = query_pairs(query.as_deref());
    let bad_limit = pairs.iter().any(|(k, _)| k != "limit") || pairs.len() > 1;
    let limit = match pairs.first().map(|(_, v)| v.parse::<usize>()) {
        _ if bad_limit => None,
        None => Some(20),
        Some(Ok(n)) if (1..=MAX_LIST).contains(&n) => Some(n),
        Some(_) => None,
    };
    let limit = match limit {
        Some(n) => n,
        None => {
            return error_answer(
                StatusCode::BAD_REQUEST,
                "OPTION_INVALID",
                format!("the only query parameter is limit, a number from 1 to {MAX_LIST}"),
            );
        }
    };
    let area = match account_area(&door, &account) {
        Ok(a) => a,
        Err(e) => return internal(&e),
    };
    match tokio::task::spawn_blocking(move || area.imports(limit)).await {
        Ok(Ok(list)) => json_response(
            StatusCode::OK,
            &json!({"imports": list.into_iter().map(import_entry).collect::<Vec<_>>()}),
        ),
        Ok(Err(e)) => internal(&e),
        Err(e) => internal(&e),
    }
}

/// `GET /api/imports/{id}`: one import of the account.
pub async fn one_import(
    State(door): Door,
    Extension(Peer(peer)): Extension<Peer>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let account = match authenticate(&door, peer, &headers).await {
        Ok(a) => a,
        Err(denied) => return denied.plain(),
    };
    let not_found = || {
        error_answer(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "this account has no such import".to_string(),
        )
    };
    let Some(import_id) = id.ok().and_then(|Path(id)| id.parse::<i64>().ok()) else {
        return not_found();
    };
    let area = match account_area(&door, &account) {
        Ok(a) => a,
        Err(e) => return internal(&e),
    };
    match tokio::task::spawn_blocking(move || area.import(import_id)).await {
        Ok(Ok(Some(record))) => json_response(StatusCode::OK, &import_entry(record)),
        Ok(Ok(None)) => not_found(),
        Ok(Err(e)) => internal(&e),
        Err(e) => internal(&e),
    }
}

// ----------------------------------------------------------------------
// Operations

pub async fn openapi() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

/// How long `/healthz` waits for the store: a monitor wants an answer,
/// not the store's own minute of patience with a lock.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `GET /healthz`: 200 when the store answers within [`HEALTH_TIMEOUT`].
pub async fn healthz(State(door): Door) -> Response {
    let area = door.area.clone();
    let check = tokio::task::spawn_blocking(move || area.store_reachable());
    let why = match tokio::time::timeout(HEALTH_TIMEOUT, check).await {
        Ok(Ok(Ok(()))) => return json_response(StatusCode::OK, &json!({"status": "ok"})),
        Ok(Ok(Err(e))) => e.to_string(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!(
            "the store did not answer within {} s",
            HEALTH_TIMEOUT.as_secs()
        ),
    };
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"status": "unavailable", "error": why}),
    )
}

/// `GET /metrics`: the Prometheus text format.
pub async fn metrics() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
        .into_response()
}

pub async fn method_not_allowed() -> Response {
    error_answer(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "this endpoint does not take that method; see /api/openapi.json",
    )
}

pub async fn not_found() -> Response {
    error_answer(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "no such endpoint; see /api/openapi.json",
    )
}
