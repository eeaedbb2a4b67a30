//! `scry bench detect`: the cost of continuous detection over many series, in-process.
//!
//! Builds span batches for `services × operations` operations (each gives five series:
//! requests, error rate, latency p50/p95/p99, plus five per service), folds them into the
//! engine bucket by bucket in simulated time, and runs one detection cycle per bucket. Prints the
//! series count, the cycle time (median, p99, max) and the CPU the cycles used, and the
//! aggregation cost per span on the ingest path.

use std::time::{Duration, Instant};

use clap::Args;
use scry_collector::Table;
use scry_collector::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use scry_collector::opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use scry_collector::opentelemetry_proto::tonic::trace::v1::Span;
use scry_collector::otlp;
use scry_detect::{DetectionConfig, Engine};
use scry_workload::otlp as build;

/// Arguments of `scry bench detect`.
#[derive(Args, Debug)]
pub struct DetectArgs {
    /// Services.
    #[arg(long, default_value_t = 100)]
    pub services: usize,
    /// Operations per service.
    #[arg(long, default_value_t = 20)]
    pub operations: usize,
    /// Spans per operation and bucket.
    #[arg(long, default_value_t = 10)]
    pub spans: usize,
    /// Buckets (cycles) to run; the first 40 warm the models up and are not timed.
    #[arg(long, default_value_t = 100)]
    pub buckets: usize,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

const BUCKET_NS: i64 = 10_000_000_000;
const WARM_UP_BUCKETS: usize = 40;

fn service_request(
    service: usize,
    args: &DetectArgs,
    bucket_start: i64,
    seed: &mut u64,
) -> ExportTraceServiceRequest {
    let mut next = || {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    };
    let mut spans = Vec::with_capacity(args.operations * args.spans);
    for op in 0..args.operations {
        for i in 0..args.spans {
            let r = next();
            let start = bucket_start as u64 + (i as u64) * 900_000_000 + r % 1000;
            spans.push(Span {
                trace_id: (u128::from(r) << 64 | 1).to_be_bytes().to_vec(),
                span_id: (next() | 1).to_be_bytes().to_vec(),
                name: format!("GET /api/op{op}"),
                kind: 2,
                start_time_unix_nano: start,
                end_time_unix_nano: start + 20_000_000 + r % 10_000_000,
                ..Default::default()
            });
        }
    }
    let resource = build::service(&format!("svc-{service}"), []);
    build::trace_request([(resource, spans)], Some(InstrumentationScope::default()))
}

/// CPU time of this process (user + system), from /proc; `None` elsewhere.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// Runs the benchmark.
pub fn run(args: DetectArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.buckets > WARM_UP_BUCKETS,
        "--buckets must exceed {WARM_UP_BUCKETS}"
    );
    let engine = Engine::new(DetectionConfig::default());
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let first = (now / BUCKET_NS - args.buckets as i64 - 1) * BUCKET_NS;
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let (mut cycle_secs, mut observe, mut spans, mut anomalies, mut series) =
        (Vec::new(), Duration::ZERO, 0usize, 0usize, 0usize);
    let mut cpu = Duration::ZERO;
    for b in 0..args.buckets {
        let start = first + b as i64 * BUCKET_NS;
        for s in 0..args.services {
            let batch = otlp::traces::convert(&service_request(s, &args, start, &mut seed))
                .batch
                .expect("generated spans are valid");
            let t = Instant::now();
            engine.observe_at(Table::Spans, &batch, start + BUCKET_NS);
            if b >= WARM_UP_BUCKETS {
                observe += t.elapsed();
                spans += batch.num_rows();
            }
        }
        let cpu_before = process_cpu();
        let (rows, report) = engine.cycle(start + 2 * BUCKET_NS);
        if b >= WARM_UP_BUCKETS {
            if let (Some(a), Some(z)) = (cpu_before, process_cpu()) {
                cpu += z.saturating_sub(a);
            }
            cycle_secs.push(report.seconds);
            anomalies += rows.len();
            series = series.max(report.series);
        }
    }
    cycle_secs.sort_by(f64::total_cmp);
    let timed = cycle_secs.len();
    let p50 = quantile(&cycle_secs, 0.5);
    let p99 = quantile(&cycle_secs, 0.99);
    let max = cycle_secs.last().copied().unwrap_or(0.0);
    let cpu_per_cycle = cpu.as_secs_f64() / timed as f64;
    let ns_per_span = observe.as_nanos() as f64 / spans.max(1) as f64;
    println!("series with a model: {series}");
    println!("cycles timed: {timed} (after {WARM_UP_BUCKETS} warm-up buckets)");
    println!(
        "cycle time: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        p50 * 1e3,
        p99 * 1e3,
        max * 1e3
    );
    println!(
        "cycle CPU (process, 10 ms ticks): {:.1} ms per cycle",
        cpu_per_cycle * 1e3
    );
    println!("aggregation on ingest: {ns_per_span:.0} ns per span ({spans} spans)");
    println!("anomalies on steady synthetic traffic: {anomalies}");
    if args.json {
        let line = serde_json::json!({
            "series": series, "cycles": timed, "cycle_p50_ms": p50 * 1e3, "cycle_p99_ms": p99 * 1e3,
            "cycle_max_ms": max * 1e3, "cycle_cpu_ms": cpu_per_cycle * 1e3,
            "observe_ns_per_span": ns_per_span, "anomalies": anomalies,
        });
        println!("{line}");
    }
    Ok(())
}
