//! The process's counters, served by the HTTP door at `GET /metrics` in the
//! Prometheus text format.
//!
//! One registry per process, like a logger: the places that count (the
//! doors' upload log line, the jobs, the authenticator, the session
//! guards) call the functions here, and nothing has to carry a handle to
//! it. Label values come from small fixed sets (door names, file types,
//! error codes), so the number of series stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Upper bounds of the import duration buckets, in seconds.
const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 120.0,
];

#[derive(Default)]
struct Histogram {
    /// Observations per bucket (not cumulative; summed when rendered).
    buckets: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Registry {
    /// (metric, rendered labels) → value.
    counters: BTreeMap<(&'static str, String), u64>,
    gauges: BTreeMap<(&'static str, String), i64>,
    durations: BTreeMap<String, Histogram>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// `{a="x",b="y"}`, values escaped as the text format requires.
fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let v = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = write!(out, "{k}=\"{v}\"");
    }
    out.push('}');
    out
}

fn add(metric: &'static str, pairs: &[(&str, &str)], n: u64) {
    *registry()
        .counters
        .entry((metric, labels(pairs)))
        .or_default() += n;
}

/// A completed upload (`outcome`: queued, kept) or one that ended
/// incomplete, by door.
pub fn upload(door: &str, outcome: &str) {
    add(
        "dropgate_uploads_total",
        &[("door", door), ("outcome", outcome)],
        1,
    );
}

/// An import that ended: `outcome` is `success` or its error code.
pub fn import(file_type: &str, outcome: &str, imported: u64, rejected: u64, took: Duration) {
    add(
        "dropgate_imports_total",
        &[("file_type", file_type), ("outcome", outcome)],
        1,
    );
    add(
        "dropgate_lines_imported_total",
        &[("file_type", file_type)],
        imported,
    );
    add(
        "dropgate_lines_rejected_total",
        &[("file_type", file_type)],
        rejected,
    );
    let mut r = registry();
    let h = r
        .durations
        .entry(labels(&[("file_type", file_type)]))
        .or_default();
    let seconds = took.as_secs_f64();
    if let Some(i) = DURATION_BUCKETS.iter().position(|b| seconds <= *b) {
        h.buckets[i] += 1;
    }
    h.count += 1;
    h.sum += seconds;
}

/// A failed login (`method`: password, publickey, token).
pub fn failed_login(method: &str) {
    add("dropgate_failed_logins_total", &[("method", method)], 1);
}

/// A logged-in session began (`+1`) or ended (`-1`) at a door.
pub fn session(door: &str, delta: i64) {
    *registry()
        .gauges
        .entry(("dropgate_sessions_active", labels(&[("door", door)])))
        .or_default() += delta;
}

/// An HTTP request answered, by route and status.
pub fn http_request(route: &str, status: u16) {
    add(
        "dropgate_http_requests_total",
        &[("route", route), ("status", &status.to_string())],
        1,
    );
}

const HELP: [(&str, &str, &str); 8] = [
    (
        "dropgate_uploads_total",
        "counter",
        "Uploads by door and outcome (queued, kept, incomplete).",
    ),
    (
        "dropgate_imports_total",
        "counter",
        "Imports by file type and outcome (success or the error code).",
    ),
    (
        "dropgate_lines_imported_total",
        "counter",
        "Lines (or messages) imported.",
    ),
    (
        "dropgate_lines_rejected_total",
        "counter",
        "Lines (or messages) rejected as exception lines.",
    ),
    (
        "dropgate_import_duration_seconds",
        "histogram",
        "Time an import took, from the start of reading to its commit.",
    ),
    (
        "dropgate_failed_logins_total",
        "counter",
        "Failed logins by method.",
    ),
    (
        "dropgate_sessions_active",
        "gauge",
        "Logged-in sessions by door.",
    ),
    (
        "dropgate_http_requests_total",
        "counter",
        "HTTP requests by route and status.",
    ),
];

/// Every metric in the Prometheus text exposition format (version 0.0.4).
pub fn render() -> String {
    let r = registry();
    let mut out = String::new();
    for (name, kind, help) in HELP {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        match kind {
            "counter" => {
                for ((metric, l), v) in &r.counters {
                    if *metric == name {
                        let _ = writeln!(out, "{name}{l} {v}");
                    }
                }
            }
            "gauge" => {
                for ((metric, l), v) in &r.gauges {
                    if *metric == name {
                        let _ = writeln!(out, "{name}{l} {v}");
                    }
                }
            }
            _ => {
                for (l, h) in &r.durations {
                    let inner = &l[1..l.len() - 1];
                    let mut cumulative = 0;
                    for (bound, n) in DURATION_BUCKETS.iter().zip(h.buckets) {
                        cumulative += n;
                        let _ =
                            writeln!(out, "{name}_bucket{{{inner},le=\"{bound}\"}} {cumulative}");
                    }
                    let _ = writeln!(out, "{name}_bucket{{{inner},le=\"+Inf\"}} {}", h.count);
                    let _ = writeln!(out, "{name}_sum{l} {}", h.sum);
                    let _ = writeln!(out, "{name}_count{l} {}", h.count);
                }
            }
        }
    }
    out
}
