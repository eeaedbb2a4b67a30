//! `scry demo`: the daemon and a simulated ten-service system in one process. The system sends
//! real OTLP over gRPC to the daemon, starts with a few minutes of fault-free history (sent with
//! past timestamps so the detectors are warm at once), then runs live and injects a fault from the
//! catalogue every `--fault-every`. It prints where to look and, as incidents open, their top root
//! cause (read from the daemon's API, which knows nothing of the injected faults).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use scry_collector::opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use scry_collector::opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use scry_collector::opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tonic::transport::Channel;

use crate::config::{ServeArgs, Settings};
use scry_workload::{Batch, Fault, FaultKind, System};

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

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

fn clock() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

struct Clients {
    traces: TraceServiceClient<Channel>,
    logs: LogsServiceClient<Channel>,
    metrics: MetricsServiceClient<Channel>,
}

impl Clients {
    async fn connect(addr: std::net::SocketAddr) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(format!("http://{addr}"))?
            .connect()
            .await
            .with_context(|| format!("connecting to the daemon's OTLP/gRPC port {addr}"))?;
        Ok(Self {
            traces: TraceServiceClient::new(channel.clone()),
            logs: LogsServiceClient::new(channel.clone()),
            metrics: MetricsServiceClient::new(channel),
        })
    }

    async fn send(&mut self, batch: &mut Batch) {
        let results = [
            self.traces.export(batch.traces()).await.err(),
            self.logs.export(batch.logs()).await.err(),
            self.metrics.export(batch.metrics()).await.err(),
        ];
        for e in results.into_iter().flatten() {
            tracing::warn!(error = %e, "demo export failed");
        }
    }
}

async fn wait_ready(http: &reqwest::Client, api: &str) -> anyhow::Result<()> {
    for _ in 0..600 {
        if http
            .get(format!("{api}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the daemon did not become ready within 60 s")
}

/// Prints incidents that opened since the last call.
async fn report_incidents(http: &reqwest::Client, api: &str, seen: &mut BTreeSet<u64>) {
    let Ok(resp) = http
        .get(format!("{api}/api/v1/incidents?limit=50"))
        .send()
        .await
    else {
        return;
    };
    let Ok(body) = resp.json::<serde_json::Value>().await else {
        return;
    };
    let Some(list) = body["incidents"].as_array() else {
        return;
    };
    for inc in list.iter().rev() {
        let Some(id) = inc["id"].as_u64() else {
            continue;
        };
        if !seen.insert(id) {
            continue;
        }
        let top = &inc["top_root_cause"];
        println!(
            "{}  incident #{id} opened: top root cause {} (score {:.2}); services {}; {api}/api/v1/incidents/{id}",
            clock(),
            top["service"].as_str().unwrap_or("?"),
            top["score"].as_f64().unwrap_or(0.0),
            inc["services"],
        );
    }
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
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    wait_ready(&http, &api).await?;
    let simulation = simulate(args, every, lasting, grpc, http, api);
    tokio::select! {
        r = daemon => r.context("daemon task")?,
        r = simulation => r,
    }
}

async fn simulate(
    args: DemoArgs,
    every: Duration,
    lasting: Duration,
    grpc: std::net::SocketAddr,
    http: reqwest::Client,
    api: String,
) -> anyhow::Result<()> {
    let mut clients = Clients::connect(grpc).await?;
    let second = 1_000_000_000_i64;
    let now = now_ns() / second * second;
    let history = args.history_minutes as i64 * 60 * second;
    let mut system = System::new(args.seed, now - history);
    let mut batch = Batch::default();
    println!(
        "{}  sending {} minutes of fault-free history...",
        clock(),
        args.history_minutes
    );
    for t in (now - history..now).step_by(second as usize) {
        system.second(t, &[], &mut batch);
        if (t / second) % 10 == 9 {
            clients.send(&mut batch).await;
        }
    }
    clients.send(&mut batch).await;
    println!("{}  live traffic from now on", clock());
    let mut faults: Vec<Fault> = Vec::new();
    let mut next_fault = now + every.as_nanos() as i64;
    let mut kind = 0usize;
    let mut seen = BTreeSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut t = now;
    loop {
        tick.tick().await;
        let wall = now_ns();
        if wall >= next_fault {
            let fault = system.pick_fault(
                FaultKind::ALL[kind % FaultKind::ALL.len()],
                wall,
                lasting.as_nanos() as i64,
            );
            println!(
                "{}  injecting {} into {} for {}",
                clock(),
                fault.kind.name(),
                fault.service,
                args.fault_for
            );
            faults.push(fault);
            kind += 1;
            next_fault = wall + every.as_nanos() as i64;
        }
        faults.retain(|f| f.end_ns > wall - 60 * second);
        while t + second <= wall {
            system.second(t, &faults, &mut batch);
            t += second;
        }
        clients.send(&mut batch).await;
        if (t / second) % 5 == 0 {
            report_incidents(&http, &api, &mut seen).await;
        }
    }
}
