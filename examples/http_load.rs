//! Load generator for `scripts/bench-http.sh`: many small `POST
//! /api/items` from concurrent clients, each a fresh 100-line items file.
//!
//! Usage: http_load URL TOKEN REQUESTS CONCURRENCY LINES CLIENTS
//!
//! Each client keeps one HTTP/1.1 connection (hyper's pooled client) and
//! sends requests until REQUESTS have been sent in all; request `n` carries
//! items `R<n>-0 ..` for clients `C00001 .. C<CLIENTS>`, so every import
//! adds LINES new items. Prints one line of JSON: requests, errors
//! (answers other than 200, or any report with `success: false` or an
//! exception line), seconds, requests per second, and p50/p90/p99/max
//! latency in milliseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

fn body(n: u64, lines: u64, clients: u64) -> String {
    let mut s = String::from(
        "client_code;item_type;item_number;item_date_issue;item_date_due;item_amount_initial_inc_tax\n",
    );
    for j in 0..lines {
        let client = (n * lines + j) % clients + 1;
        s.push_str(&format!(
            "C{client:05};FAC;R{n}-{j};2025-11-01;2025-12-01;{}.{:02}\n",
            100 + j,
            n % 100
        ));
    }
    s
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!("usage: http_load URL TOKEN REQUESTS CONCURRENCY LINES CLIENTS");
        std::process::exit(2);
    }
    let url: hyper::Uri = args[1].parse().expect("a URL");
    let auth = format!("Bearer {}", args[2]);
    let total: u64 = args[3].parse().expect("REQUESTS");
    let concurrency: u64 = args[4].parse().expect("CONCURRENCY");
    let lines: u64 = args[5].parse().expect("LINES");
    let clients: u64 = args[6].parse().expect("CLIENTS");

    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency as usize)
        .build_http::<Full<bytes::Bytes>>();
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, url, auth) = (client.clone(), url.clone(), auth.clone());
        let (next, errors) = (next.clone(), errors.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return latencies;
                }
                let request = hyper::Request::post(url.clone())
                    .header("Authorization", &auth)
                    .header("Content-Type", "text/csv")
                    .body(Full::new(bytes::Bytes::from(body(n, lines, clients))))
                    .expect("a request");
                let sent = Instant::now();
                let ok = match client.request(request).await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let bytes = response.into_body().collect().await.map(|b| b.to_bytes());
                        status == 200
                            && bytes.is_ok_and(|b| {
                                serde_json::from_slice::<serde_json::Value>(&b).is_ok_and(|r| {
                                    r["success"] == true && r["nb_exception_lines"] == 0
                                })
                            })
                    }
                    Err(_) => false,
                };
                latencies.push(sent.elapsed());
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let mut latencies: Vec<Duration> = Vec::new();
    for w in workers {
        latencies.extend(w.await.expect("a worker"));
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    println!(
        "{}",
        serde_json::json!({
            "requests": latencies.len(),
            "errors": errors.load(Ordering::Relaxed),
            "seconds": (seconds * 100.0).round() / 100.0,
            "requests_per_second": (latencies.len() as f64 / seconds).round(),
            "p50_ms": (at(0.50) * 10.0).round() / 10.0,
            "p90_ms": (at(0.90) * 10.0).round() / 10.0,
            "p99_ms": (at(0.99) * 10.0).round() / 10.0,
            "max_ms": (at(1.0) * 10.0).round() / 10.0,
        })
    );
}
