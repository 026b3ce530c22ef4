//! The `dropgate` command line: administration and local imports.
//!
//! Exit codes: 0 success; 1 an import reported `success: false`; 2 a usage
//! error (bad arguments, unknown account, unreadable file) or a failure
//! before any work was done.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::accounts::{self, AccountSettings};
use crate::config::Config;
use crate::engine::{self, ImportRequest, report::ErrorCode};
use crate::ledger::FileType;
use crate::store::{AccountRecord, SqliteStore, Store};

#[derive(Debug, Parser)]
#[command(
    name = "dropgate",
    version,
    about = "File-drop gateway for ERP receivables data"
)]
pub struct Cli {
    /// Data folder: database, drop areas, archive [default: ./data]
    #[arg(long, global = true, env = "DROPGATE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Configuration file (TOML; see etc/dropgate.toml)
    #[arg(long, global = true, env = "DROPGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format: human or json
    #[arg(long, global = true, value_parser = ["human", "json"])]
    pub log_format: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: the SFTP, FTP and HTTP doors, the drop areas and the import jobs
    Serve,
    /// Manage accounts
    #[command(subcommand)]
    Account(AccountCommand),
    /// Import files into an account's ledger, printing one JSON report per file
    Import(ImportArgs),
    /// Write an account's ledger as CSV in the import format
    Export(ExportArgs),
    /// Show an account's recent imports
    History(HistoryArgs),
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account (without --password-stdin it can log in only with a key)
    Add {
        name: String,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts
    List,
    /// Remove an account and all its data
    Remove { name: String },
    /// Set an account's password, read from standard input
    Passwd {
        name: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Manage an account's SSH public keys
    #[command(subcommand)]
    Key(KeyCommand),
    /// Manage an account's API tokens (HTTP `Authorization: Bearer`)
    #[command(subcommand)]
    Token(TokenCommand),
    /// Set import defaults: encoding, clear_items_not_modified,
    /// replace_users_association, dry_run, stock_max_clear_ratio,
    /// item_type_map.CODE=TYPE (an empty value removes a setting)
    Set {
        name: String,
        #[arg(required = true, value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
    /// Show an account's settings and keys
    Show { name: String },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Add the keys of an OpenSSH authorized_keys file ("-" for stdin)
    Add { name: String, file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (once: only its hash is kept)
    Add {
        name: String,
        /// What the token is for, to list and revoke it by
        #[arg(default_value = "default")]
        label: String,
    },
    /// List an account's tokens (their labels, never the tokens)
    List { name: String },
    /// Revoke a token by its label
    Revoke { name: String, label: String },
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[arg(long)]
    pub account: String,
    /// An import option, winning over account defaults and name tags
    #[arg(long = "option", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
    /// Pretty-print the reports (default: one JSON object per line)
    #[arg(long)]
    pub pretty: bool,
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long)]
    pub account: String,
    /// clients, items, contacts or users
    #[arg(value_parser = parse_file_type)]
    pub file_type: FileType,
    /// Items: only the open ones
    #[arg(long)]
    pub open_only: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[arg(long)]
    pub account: String,
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

fn parse_file_type(s: &str) -> Result<FileType, String> {
    FileType::from_keyword(s).ok_or_else(|| "expected clients, items, contacts or users".into())
}

/// A usage error: message on stderr, exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn run(cli: Cli) -> ExitCode {
    let mut config = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dropgate: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(format) = &cli.log_format {
        config.log.format = format.clone();
    }
    crate::logging::init(&config.log);
    match execute(&config, cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dropgate: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn open_store(config: &Config) -> anyhow::Result<SqliteStore> {
    Ok(SqliteStore::open(&config.data_dir)?)
}

fn find_account(store: &dyn Store, name: &str) -> anyhow::Result<AccountRecord> {
    store
        .account(name)?
        .ok_or_else(|| UsageError(format!("no account named '{name}'")).into())
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn execute(config: &Config, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve => {
            // Blocking work (upload completion with its fsyncs, imports,
            // password checks) runs on a bounded pool: a thread per upload
            // in flight would cost memory (allocator heaps, stacks) for
            // nothing on a 2-core machine; excess work waits its turn.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .max_blocking_threads(32)
                .build()?;
            runtime.block_on(crate::serve::run(config.clone()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Account(cmd) => account(config, cmd).map(|()| ExitCode::SUCCESS),
        Command::Import(args) => import(config, args),
        Command::Export(args) => {
            let store = open_store(config)?;
            let account = find_account(&store, &args.account)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            engine::export::export(&store, account.id, args.file_type, args.open_only, &mut out)?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::History(args) => {
            let store = open_store(config)?;
            let account = find_account(&store, &args.account)?;
            for rec in store.imports(account.id, args.limit)? {
                let outcome = match rec.success {
                    Some(true) => "ok",
                    Some(false) => "failed",
                    None => "pending",
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    rec.id,
                    rec.received_at,
                    outcome,
                    rec.file_type.as_deref().unwrap_or("-"),
                    rec.file_name
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn account(config: &Config, cmd: AccountCommand) -> anyhow::Result<()> {
    let mut store = open_store(config)?;
    match cmd {
        AccountCommand::Add {
            name,
            password_stdin,
        } => {
            accounts::validate_name(&name).map_err(|e| UsageError(e.to_string()))?;
            if store.account(&name)?.is_some() {
                bail!(UsageError(format!(
                    "an account named '{name}' already exists"
                )));
            }
            let hash = if password_stdin {
                Some(accounts::hash_password(&read_password()?)?)
            } else {
                None
            };
            store.create_account(&name, hash.as_deref())?;
            tracing::info!(account = %name, with_password = password_stdin, "account created");
            if !password_stdin {
                eprintln!(
                    "account '{name}' created without a password: set one with \
                     `dropgate account passwd {name} --password-stdin` or add a key"
                );
            }
        }
        AccountCommand::List => {
            for a in store.accounts()? {
                let keys = store.keys(a.id)?.len();
                println!(
                    "{}\tpassword={}\tkeys={}\tcreated={}",
                    a.name,
                    if a.password_hash.is_some() {
                        "yes"
                    } else {
                        "no"
                    },
                    keys,
                    a.created_at
                );
            }
        }
        AccountCommand::Remove { name } => {
            if !store.remove_account(&name)? {
                bail!(UsageError(format!("no account named '{name}'")));
            }
            tracing::info!(account = %name, "account removed");
        }
        AccountCommand::Passwd { name, .. } => {
            let a = find_account(&store, &name)?;
            let hash = accounts::hash_password(&read_password()?)?;
            store.set_password_hash(a.id, &hash)?;
            tracing::info!(account = %name, "password changed");
        }
        AccountCommand::Key(KeyCommand::Add { name, file }) => {
            let a = find_account(&store, &name)?;
            let text = if file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            let keys = accounts::parse_authorized_keys(&text)
                .with_context(|| format!("{}", file.display()))?;
            if keys.is_empty() {
                bail!(UsageError(format!("{}: no key found", file.display())));
            }
            for k in &keys {
                let added = store.add_key(a.id, k)?;
                eprintln!(
                    "{} {} {}",
                    if added { "added" } else { "already present" },
                    k.algorithm,
                    k.comment
                );
            }
        }
        AccountCommand::Token(TokenCommand::Add { name, label }) => {
            let a = find_account(&store, &name)?;
            let token = accounts::new_api_token();
            if !store.add_token(a.id, &label, &accounts::token_digest(&token))? {
                bail!(UsageError(format!(
                    "account '{name}' already has a token labelled '{label}'; revoke it or \
                     choose another label"
                )));
            }
            println!("{token}");
            eprintln!(
                "token '{label}' created for '{name}': use it as 'Authorization: Bearer <token>'; \
                 it is not shown again"
            );
        }
        AccountCommand::Token(TokenCommand::List { name }) => {
            let a = find_account(&store, &name)?;
            for t in store.tokens(a.id)? {
                println!("{}\tcreated {}", t.name, t.created_at);
            }
        }
        AccountCommand::Token(TokenCommand::Revoke { name, label }) => {
            let a = find_account(&store, &name)?;
            if !store.revoke_token(a.id, &label)? {
                bail!(UsageError(format!(
                    "account '{name}' has no token labelled '{label}'"
                )));
            }
            eprintln!("token '{label}' of '{name}' revoked");
        }
        AccountCommand::Set { name, settings } => {
            let a = find_account(&store, &name)?;
            let mut s = AccountSettings::from_json(&a.settings);
            s.assign(&settings).map_err(|e| UsageError(e.to_string()))?;
            store.set_settings(a.id, &s.to_json())?;
        }
        AccountCommand::Show { name } => {
            let a = find_account(&store, &name)?;
            let settings = AccountSettings::from_json(&a.settings);
            let keys: Vec<String> = store
                .keys(a.id)?
                .into_iter()
                .map(|k| {
                    format!("{} {} {}", k.algorithm, k.key_base64, k.comment)
                        .trim_end()
                        .to_string()
                })
                .collect();
            let shown = serde_json::json!({
                "name": a.name,
                "created_at": a.created_at,
                "password": a.password_hash.is_some(),
                "settings": settings,
                "keys": keys,
            });
            println!("{}", serde_json::to_string_pretty(&shown)?);
        }
    }
    Ok(())
}

fn import(config: &Config, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let mut store = open_store(config)?;
    let account = find_account(&store, &args.account)?;
    let explicit: Vec<(String, String)> = args
        .options
        .iter()
        .map(|o| {
            o.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| UsageError(format!("--option '{o}' is not KEY=VALUE")))
        })
        .collect::<Result<_, _>>()?;
    // Every file must be readable before the first is imported, so a typo in
    // the last name does not leave the first files half the job.
    for f in &args.files {
        let meta = std::fs::metadata(f).with_context(|| format!("cannot read {}", f.display()))?;
        if !meta.is_file() {
            bail!(UsageError(format!("{} is not a file", f.display())));
        }
        std::fs::File::open(f).with_context(|| format!("cannot read {}", f.display()))?;
    }
    let server = config
        .import_defaults()
        .map_err(|e| UsageError(format!("[import]: {e}")))?;
    let defaults = AccountSettings::from_json(&account.settings)
        .apply(&server)
        .map_err(|e| UsageError(format!("account '{}' settings: {e}", account.name)))?;

    let stdout = std::io::stdout();
    let mut all_ok = true;
    for path in &args.files {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let bar = progress_bar(&file_name, size);
        let started = Instant::now();
        let request = ImportRequest {
            path,
            file_name: &file_name,
            account_id: account.id,
            import_id: None,
            defaults: defaults.clone(),
            explicit: &explicit,
            received_at: chrono::Utc::now(),
            progress: bar
                .clone()
                .map(|b| Box::new(move |n| b.set_position(n)) as Box<dyn Fn(u64) + Send>),
        };
        let report = match engine::import_file(&mut store, request) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "import failed internally");
                let mut r =
                    engine::report::Report::new(&file_name, &engine::rfc3339(chrono::Utc::now()));
                r.fail(ErrorCode::InternalError, format!("internal error: {e}"));
                r
            }
        };
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        tracing::info!(
            account = %account.name,
            file = %file_name,
            import_id = report.import_id,
            success = report.success,
            error_code = report.error_code.map(ErrorCode::as_str),
            lines_read = report.lines_read,
            lines_imported = report.lines_imported,
            exceptions = report.nb_exception_lines,
            duration_ms = started.elapsed().as_millis() as u64,
            "import"
        );
        all_ok &= report.success;
        let json = if args.pretty {
            report.to_json_pretty()
        } else {
            report.to_json()
        };
        let mut out = stdout.lock();
        writeln!(out, "{json}")?;
        out.flush()?;
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A progress bar for files over 1 MiB, only when a person watches stderr.
fn progress_bar(name: &str, size: u64) -> Option<indicatif::ProgressBar> {
    if size < (1 << 20) || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(name.to_string());
    Some(bar)
}
