//! The command line: argument parsing and one handler per subcommand. Only
//! this module (and `main.rs`) may use `anyhow`; the library's errors are
//! typed.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "orch", version, about = "Drives AI coding agents through a gated pipeline.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Placeholder until the first real subcommand lands.
    Version,
}

/// Entry point of the binary. Exit codes: 0 ok, 1 runtime error, 2 usage.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Version => {
            println!("orch {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}
