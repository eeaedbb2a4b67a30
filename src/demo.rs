//! `scry demo`: the daemon and the simulated ten-service system ([`scry_workload::demo`]) in one
//! process; this module only parses the arguments and starts both.

use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::config::{ServeArgs, Settings};

/// Arguments of `scry demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// The daemon's settings, as for `scry serve` (the data dir defaults to a temporary one).
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Inject a fault this often.
    #[arg(long, default_value = "3m")]
    pub fault_every: String,
    /// How long each fault lasts.
    #[arg(long, default_value = "90s")]
    pub fault_for: String,
    /// Fault-free history sent at start, in minutes.
    #[arg(long, default_value_t = 8)]
    pub history_minutes: u64,
    /// Stop after this long instead of at Ctrl-C, e.g. `10m`.
    #[arg(long)]
    pub duration: Option<String>,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

fn parse(what: &str, text: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(text)
        .with_context(|| format!("{what}: {text:?} is not a duration like 90s or 3m"))
}

/// Runs the demo until Ctrl-C (or `--duration`).
pub async fn run(mut args: DemoArgs) -> anyhow::Result<()> {
    let every = parse("fault every", &args.fault_every)?;
    let lasting = parse("fault for", &args.fault_for)?;
    let stop_after = args
        .duration
        .as_deref()
        .map(|d| parse("duration", d))
        .transpose()?;
    let _temp;
    if args.serve.data_dir.is_none() {
        let dir = tempfile::Builder::new().prefix("scry-demo-").tempdir()?;
        args.serve.data_dir = Some(dir.path().to_path_buf());
        _temp = dir;
    }
    let settings = Settings::resolve(std::mem::take(&mut args.serve))?;
    let api = format!("http://{}", settings.http_addr);
    let grpc = settings.otlp_grpc_addr;
    println!(
        "scry demo: a simulated 10-service system sends OTLP to scry; a fault every {}.",
        args.fault_every
    );
    println!("  data dir:  {}", settings.store.data_dir.display());
    println!("  incidents: {api}/api/v1/incidents");
    println!("  anomalies: {api}/api/v1/anomalies?since=15m&min_score=0.8");
    println!("  services:  {api}/api/v1/service-graph?since=15m");
    println!("  SQL:       scry query \"SELECT service_name, count(*) FROM spans GROUP BY 1\"");
    let shutdown = async move {
        match stop_after {
            Some(d) => tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = crate::serve::termination() => {}
            },
            None => crate::serve::termination().await,
        }
    };
    let daemon = tokio::spawn(crate::serve::run_until(settings, shutdown));
    let simulation = scry_workload::demo::drive(scry_workload::demo::Plan {
        seed: args.seed,
        history_minutes: args.history_minutes,
        every,
        lasting,
        lasting_text: args.fault_for,
        grpc,
        api,
    });
    tokio::select! {
        r = daemon => r.context("daemon task")?,
        r = simulation => Ok(r?),
    }
}
