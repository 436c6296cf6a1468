//! The command line: argument parsing and one handler per subcommand. Only
//! this module (and `main.rs`) may use `anyhow`; the library's errors are
//! typed.

mod db;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "orch",
    version,
    about = "Drives AI coding agents through a gated pipeline."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the claim snapshot (serial gate, deps gate, job counts) as JSON.
    Queue,
    /// Offline maintenance of the store file.
    Db {
        #[command(subcommand)]
        command: db::DbCommand,
    },
}

/// A failure at the binary's edge: usage/config errors exit 2, runtime
/// errors exit 1.
pub enum Failure {
    Usage(anyhow::Error),
    Runtime(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Runtime(e.into())
    }
}

/// Entry point of the binary. Exit codes: 0 ok, 1 runtime error, 2 usage or
/// configuration error.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing();
    let env = crate::config::process_env;
    let result = match cli.command {
        Command::Queue => db::queue(&env),
        Command::Db { command } => db::run(command, &env),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("orch: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("orch: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let json = std::env::var("ORCH_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}
