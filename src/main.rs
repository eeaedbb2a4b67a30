//! The `scry` binary: command-line parsing and wiring of the crates; no business logic here.

mod config;
mod demo;
mod query_cmd;
mod serve;

use clap::{Parser, Subcommand};

/// scry: an AIOps observability and anomaly-detection daemon for OpenTelemetry data.
#[derive(Parser)]
#[command(name = "scry", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: OTLP receivers, storage, SQL API.
    Serve(Box<config::ServeArgs>),
    /// Run the daemon with a simulated microservice system and injected faults.
    Demo(Box<demo::DemoArgs>),
    /// Run a SQL query against a running daemon and print the result.
    Query(query_cmd::QueryArgs),
    /// Measure accuracy on public labelled data.
    #[command(subcommand)]
    Eval(scry_eval::EvalCommand),
    /// Measure scry's performance.
    #[command(subcommand)]
    Bench(scry_eval::bench::BenchCommand),
}

/// Logs to stderr at `SCRY_LOG`, else at `default` (evals and benches print their own report, so
/// the loop's per-incident lines are only warnings' noise there).
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SCRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(match cli.command {
        Command::Eval(_) | Command::Bench(_) => "warn",
        _ => "info",
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => {
            let settings = config::Settings::resolve(*args)?;
            runtime.block_on(serve::run(settings))
        }
        Command::Demo(args) => runtime.block_on(demo::run(*args)),
        Command::Query(args) => runtime.block_on(query_cmd::run(args)),
        Command::Bench(cmd) => runtime.block_on(scry_eval::bench::run(cmd)),
        Command::Eval(cmd) => scry_eval::run(cmd),
    }
}
