//! Benchmarks. `scry bench detect` lives in [`detect`].
//!
//! `scry bench ingest`: starts a `scry serve` child on free ports (or targets `--endpoint`), drives
//! it with the OTLP/gRPC load generator and prints throughput, ack latency, the daemon's peak RSS
//! and bytes on disk.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use scry_workload::loadgen::{self, LoadConfig, LoadReport};

pub mod detect;

/// Benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// OTLP/gRPC trace ingest: spans/s durable, ack latency, RSS, bytes on disk.
    Ingest(IngestArgs),
    /// Continuous detection over many series: cycle time and CPU, aggregation cost per span.
    Detect(detect::DetectArgs),
}

/// Arguments of `scry bench ingest`.
#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Spans to send (after warm-up).
    #[arg(long, default_value_t = 2_000_000)]
    pub spans: u64,
    /// Spans per export request.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Concurrent senders.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Send to this OTLP/gRPC endpoint instead of starting a scry daemon (e.g. another collector).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Process id of the endpoint's server, to report its peak RSS.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Daemon {
    child: Child,
    endpoint: String,
    data_dir: tempfile::TempDir,
}

fn start_daemon() -> anyhow::Result<Daemon> {
    let data_dir = tempfile::tempdir()?;
    let (grpc, http, api) = (free_port()?, free_port()?, free_port()?);
    let child = Command::new(std::env::current_exe()?)
        .args(["serve", "--data-dir"])
        .arg(data_dir.path())
        .args(["--otlp-grpc-addr", &format!("127.0.0.1:{grpc}")])
        .args(["--otlp-http-addr", &format!("127.0.0.1:{http}")])
        .args(["--http-addr", &format!("127.0.0.1:{api}")])
        .env("SCRY_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .context("starting scry serve")?;
    let endpoint = format!("http://127.0.0.1:{grpc}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", api)).is_err() {
        if Instant::now() > deadline {
            bail!("scry serve did not start within 60s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Daemon {
        child,
        endpoint,
        data_dir,
    })
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn terminate(child: &mut Child) -> anyhow::Result<Duration> {
    let started = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let status = child.wait()?;
    if !status.success() {
        bail!("scry serve exited with {status}");
    }
    Ok(started.elapsed())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_report(report: &LoadReport, args: &IngestArgs, rss_kib: Option<u64>) {
    println!("spans acknowledged : {}", report.spans);
    println!(
        "failed requests    : {}{}",
        report.errors,
        report
            .first_error
            .as_ref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    println!("elapsed            : {:.2} s", report.elapsed.as_secs_f64());
    println!(
        "throughput         : {:.0} spans/s ({} spans/request, {} senders)",
        report.spans_per_sec(),
        args.batch,
        args.concurrency
    );
    println!(
        "protobuf sent      : {:.1} MB/s",
        report.bytes_sent as f64 / 1e6 / report.elapsed.as_secs_f64()
    );
    println!(
        "ack latency        : p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(report.latency(0.5)),
        ms(report.latency(0.99)),
        ms(report.latency(1.0))
    );
    if let Some(kib) = rss_kib {
        println!("server peak RSS    : {:.1} MiB", kib as f64 / 1024.0);
    }
}

/// Runs a benchmark.
pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    let args = match cmd {
        BenchCommand::Ingest(args) => args,
        BenchCommand::Detect(args) => return detect::run(args),
    };
    let mut daemon = match &args.endpoint {
        Some(_) => None,
        None => Some(start_daemon()?),
    };
    let endpoint = args
        .endpoint
        .clone()
        .unwrap_or_else(|| daemon.as_ref().expect("started").endpoint.clone());
    let pid = args.pid.or(daemon.as_ref().map(|d| d.child.id()));
    let warmup = LoadConfig {
        endpoint: endpoint.clone(),
        total_spans: (args.batch * 50) as u64,
        batch_size: args.batch,
        concurrency: args.concurrency,
    };
    loadgen::run(&warmup).await.context("warm-up")?;
    let config = LoadConfig {
        total_spans: args.spans,
        ..warmup
    };
    let report = loadgen::run(&config).await.context("load run")?;
    let rss = pid.and_then(peak_rss_kib);
    print_report(&report, &args, rss);
    let mut disk = serde_json::Value::Null;
    if let Some(d) = daemon.as_mut() {
        let wal = dir_bytes(&d.data_dir.path().join("wal"));
        let shutdown = terminate(&mut d.child)?;
        let parquet = dir_bytes(&d.data_dir.path().join("tables"));
        let total_spans = report.spans + warmup.total_spans;
        println!("WAL before shutdown: {:.1} MB", wal as f64 / 1e6);
        println!(
            "Parquet after flush: {:.1} MB ({:.1} bytes/span), shutdown flush took {:.2} s",
            parquet as f64 / 1e6,
            parquet as f64 / total_spans as f64,
            shutdown.as_secs_f64()
        );
        disk = serde_json::json!({"wal_bytes": wal, "parquet_bytes": parquet, "shutdown_s": shutdown.as_secs_f64()});
    }
    if args.json {
        let line = serde_json::json!({
            "spans": report.spans,
            "errors": report.errors,
            "spans_per_sec": report.spans_per_sec(),
            "p50_ms": ms(report.latency(0.5)),
            "p99_ms": ms(report.latency(0.99)),
            "peak_rss_mib": rss.map(|k| k as f64 / 1024.0),
            "disk": disk,
        });
        println!("{line}");
    }
    Ok(())
}
