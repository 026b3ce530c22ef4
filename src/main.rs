//! The `dropgate` binary: parses the command line and hands over to
//! [`dropgate::cli`].

use clap::Parser;

/// mimalloc: the import pipeline allocates cells on its reader thread and
/// frees them on the store thread, a pattern glibc's allocator handles
/// slowly (measured: 5-7% of an import spent in `free`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    dropgate::cli::run(dropgate::cli::Cli::parse())
}
