//! The command line: argument parsing and one handler per subcommand. Only
//! this module (and `main.rs`) may use `anyhow`; the library's errors are
//! typed.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

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
    /// Placeholder until the first real subcommand lands.
    Version,
    /// The built-in scripted agent, run when the agent command is `builtin`.
    ///
    /// Reads the prompt on stdin and ORCH_ROLE, ORCH_WORK_ITEM_ID,
    /// ORCH_DOCS_DIR and ORCH_ATTEMPT from its environment, writes the
    /// role's artefacts in the current worktree and commits them. Test
    /// switches: ORCH_DEMO_FAIL=1, ORCH_DEMO_FAIL_ROLE=<role>,
    /// ORCH_DEMO_SLEEP_MS=<n>, ORCH_DEMO_IGNORE_TERM=1,
    /// ORCH_DEMO_GRANDCHILD=1, ORCH_DEMO_REVIEW=changes_requested,
    /// ORCH_DEMO_TESTS_FAIL=1.
    AgentDemo(AgentDemoArgs),
}

#[derive(Args, Debug)]
pub struct AgentDemoArgs {
    /// Run as the grandchild the agent starts for stop tests.
    #[arg(long, hide = true)]
    pub grandchild: bool,
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
        Command::AgentDemo(args) => ExitCode::from(crate::agent::demo::run(args.grandchild)),
    }
}
