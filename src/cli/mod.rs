//! The command line: argument parsing and one handler per subcommand. Only
//! this module (and `main.rs`) may use `anyhow`; the library's errors are
//! typed.

mod client;
mod db;
mod task;

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
    /// Run the service: the HTTP API (ORCH_HTTP_ADDR), workers, reaper and
    /// start-up recovery, until SIGINT or SIGTERM.
    Serve,
    /// A self-contained tour: two local repos, the scripted agent, three
    /// tasks through every stage; exits 0 when every expected end state is
    /// reached.
    Demo,
    /// Start, show, list or retry tasks.
    Task {
        #[command(subcommand)]
        command: task::TaskCommand,
    },
    /// Print the claim snapshot (serial gate, deps gate, job counts) as JSON.
    Queue,
    /// Offline maintenance of the store file.
    Db {
        #[command(subcommand)]
        command: db::DbCommand,
    },
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
    if let Command::AgentDemo(args) = &cli.command {
        // The scripted agent keeps its own output clean of orch's logging.
        return ExitCode::from(crate::agent::demo::run(args.grandchild));
    }
    init_tracing();
    let env = crate::config::process_env;
    let result = match cli.command {
        Command::Serve => serve(),
        Command::Demo => demo(),
        Command::Task { command } => settings().and_then(|s| task::run(command, &s)),
        Command::Queue => db::queue(&env),
        Command::Db { command } => db::run(command, &env),
        Command::AgentDemo(_) => Ok(()),
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

pub(crate) fn settings() -> Result<crate::config::Settings, Failure> {
    let env = crate::config::Env::from_process().map_err(|e| Failure::Usage(e.into()))?;
    crate::config::Settings::load(&env).map_err(|e| Failure::Usage(e.into()))
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn serve() -> Result<(), Failure> {
    let env = crate::config::Env::from_process().map_err(|e| Failure::Usage(e.into()))?;
    let settings = crate::config::Settings::load(&env).map_err(|e| Failure::Usage(e.into()))?;
    settings
        .require_agent_commands()
        .map_err(|e| Failure::Usage(e.into()))?;
    crate::http::check_bind(&settings).map_err(|e| Failure::Usage(e.into()))?;
    runtime()?.block_on(async {
        // Bound before the store is opened: a taken port changes nothing.
        let listener = crate::http::Listener::bind(&settings).await?;
        let rt = crate::runtime::Runtime::open(settings, env)?;
        crate::runtime::serve_with_http(rt, listener).await?;
        Ok(())
    })
}

fn demo() -> Result<(), Failure> {
    let ok = runtime()?.block_on(async { crate::runtime::demo(&mut std::io::stdout()).await })?;
    if ok {
        Ok(())
    } else {
        Err(Failure::Runtime(anyhow::anyhow!(
            "the demo missed an expected end state"
        )))
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
