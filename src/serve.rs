//! `dropgate serve`: the doors, the drop area and the jobs, together.
//!
//! Start-up order matters: the store is migrated, the drop area opened,
//! unfinished work from the last run queued again (`jobs::recover`), the
//! scheduler started, and only then do the doors open, so nothing a client
//! does can race the recovery. On SIGINT or SIGTERM the doors stop
//! accepting and close their sessions, imports under way finish, and what
//! is still queued stays recorded for the next start.

use std::io::Write;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::doors::sessions::SessionCounts;
use crate::doors::{ftp, http, sftp};
use crate::drop_area::DropArea;
use crate::jobs;
use crate::store::SqliteStore;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let data = config.data_dir.clone();
    std::fs::create_dir_all(&data)?;
    SqliteStore::open(&data)?;
    let import_defaults = config
        .import_defaults()
        .map_err(|e| anyhow::anyhow!("[import]: {e}"))?;

    let (queue, receiver) = jobs::queue();
    let area = DropArea::open(&data, queue.clone())?;
    jobs::recover(&area, &data, &queue)?;
    let shutdown = CancellationToken::new();
    let scheduler = tokio::spawn(jobs::run(
        receiver,
        area.clone(),
        jobs::Settings {
            data_dir: data.clone(),
            workers: config.jobs.workers,
            import_defaults,
        },
        shutdown.clone(),
    ));

    let auth = Arc::new(Authenticator::open(&data, config.auth.clone())?);
    let mut doors = Vec::new();

    let keys = sftp::host_keys(&data, config.sftp.rsa_host_key)?;
    let listener = listen("sftp", &config.sftp.listen).await?;
    let context = Arc::new(sftp::DoorContext {
        area: area.clone(),
        auth: auth.clone(),
        limits: config.sftp.clone(),
        sessions: SessionCounts::new("sftp"),
    });
    doors.push((
        "sftp",
        tokio::spawn(sftp::serve(
            listener,
            sftp::ssh_config(&config.sftp, &context.auth, keys),
            context,
            shutdown.clone(),
        )),
    ));

    if config.ftp.enabled {
        let settings = ftp::FtpSettings::from_config(&config.ftp)?;
        let door = Arc::new(ftp::FtpDoor {
            area: area.clone(),
            auth: auth.clone(),
            settings,
            sessions: SessionCounts::new("ftp"),
        });
        let listener = listen("ftp", &config.ftp.listen).await?;
        doors.push((
            "ftp",
            tokio::spawn(ftp::serve(listener, door.clone(), false, shutdown.clone())),
        ));
        if !config.ftp.implicit_tls_listen.is_empty() {
            let listener = listen("ftps", &config.ftp.implicit_tls_listen).await?;
            doors.push((
                "ftps",
                tokio::spawn(ftp::serve(listener, door, true, shutdown.clone())),
            ));
        }
    }

    if config.http.enabled {
        let door = Arc::new(http::HttpDoor::new(
            area.clone(),
            auth.clone(),
            &config.http,
        )?);
        let name = if door.is_tls() { "https" } else { "http" };
        let listener = listen(name, &config.http.listen).await?;
        doors.push((
            name,
            tokio::spawn(http::serve(listener, door, shutdown.clone())),
        ));
    }

    say("dropgate ready");

    // Retention: at start, then every hour.
    let cleaner = {
        let (area, retention, stop) = (area.clone(), config.retention, shutdown.clone());
        tokio::spawn(async move {
            let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                tokio::select! {
                    _ = every_hour.tick() => {}
                    _ = stop.cancelled() => return,
                }
                let area = area.clone();
                let cleaned = tokio::task::spawn_blocking(move || {
                    area.clean_up(retention, std::time::SystemTime::now())
                })
                .await;
                match cleaned {
                    Ok(Ok(n)) if n > 0 => {
                        tracing::info!(files = n, "retention: old archives and reports removed")
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "retention clean-up failed"),
                    _ => {}
                }
            }
        })
    };

    stop_signal().await;
    tracing::info!("stopping: closing the doors, finishing the imports under way");
    shutdown.cancel();
    for (name, door) in doors {
        if let Ok(Err(e)) = door.await {
            tracing::error!(error = %e, door = name, "door failed");
        }
    }
    let _ = scheduler.await;
    let _ = cleaner.await;
    Ok(())
}

/// Binds a door's listener and says where it listens: in the log, and on
/// standard output as `<door> listening on <address>` for scripts and tests
/// that asked for port 0.
async fn listen(door: &str, address: &str) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("{door} door: cannot listen on {address}: {e}"))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, door, "listening");
    say(&format!("{door} listening on {address}"));
    Ok(listener)
}

/// A line on standard output, for whoever started the server; nobody may
/// be reading any more, which is not an error.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
