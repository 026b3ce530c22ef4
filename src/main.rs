//! The `dropgate` binary: parses the command line and hands over to
//! [`dropgate::cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    dropgate::cli::run(dropgate::cli::Cli::parse())
}
