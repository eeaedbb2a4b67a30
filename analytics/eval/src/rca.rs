//! `scry eval rca`: root-cause accuracy on the simulated system, in accelerated time.
//!
//! The demo's ten-service system runs in simulated time through the real ingest path (OTLP
//! requests into an in-process store with WAL, the template miner and the detection engine as
//! ingest hooks), detection cycles every 5 simulated seconds, and incident tracking with the
//! service graph read by SQL from the stored spans. After a 10-minute warm-up it injects
//! `scenarios` faults of every kind into random fitting services, each for 90 s with 6 minutes of
//! fault-free traffic before the next. The ranking never sees the faults; they are used only to
//! score: top-1/top-3 (the first incident that opens with, or takes in, the faulty service's
//! anomalies during the fault, ranked as of the fault's end), detection delay, time to a stable
//! top-1, and incidents opened outside any fault per hour of fault-free traffic.

pub mod cv;
pub mod nezha;
pub mod replay;

use std::time::{Duration, Instant};

use clap::Args;
use scry_incident::IncidentConfig;
use scry_workload::{Batch, Fault, FaultKind, System};

pub use target::{Change, Driver, Entry, Pipeline, Target, incident_changes};

mod target;

/// Arguments of `scry eval rca`.
#[derive(Args, Debug, Clone)]
pub struct RcaArgs {
    /// Faults of every kind to inject (so 9 × this many scenarios).
    #[arg(long, default_value_t = 13)]
    pub scenarios: usize,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
    /// Replay a labelled corpus (the Nezha TrainTicket layout) instead of simulating.
    #[arg(long, value_name = "DIR")]
    pub dataset: Option<std::path::PathBuf>,
    /// With `--dataset`: replay only this much of the corpus from its first record, e.g. `90m`
    /// (cases injected later are not scored).
    #[arg(long, value_name = "DURATION")]
    pub limit: Option<humantime::Duration>,
    /// Write every event of every cycle (anomalies, incident changes) as a JSON line to FILE.
    #[arg(long, value_name = "FILE")]
    pub events: Option<std::path::PathBuf>,
    /// Drive a running `scry serve --clock manual` instead of an in-process pipeline: its
    /// OTLP/gRPC endpoint, e.g. `http://127.0.0.1:4317` (needs `--api`).
    #[arg(long, value_name = "URL", requires = "api")]
    pub otlp: Option<String>,
    /// The API of the daemon given by `--otlp`, e.g. `http://127.0.0.1:8080`.
    #[arg(long, value_name = "URL", requires = "otlp")]
    pub api: Option<String>,
    /// With `--dataset`: cross-validate the ranking's settings. Replays once per setting of a
    /// small grid, then chooses a setting on all cases but one fault type (and on one half of
    /// the cases by time) and scores the cases left out with it.
    #[arg(long, requires = "dataset", conflicts_with_all = ["events", "otlp"])]
    pub cv: bool,
}

impl RcaArgs {
    /// Where telemetry goes — the daemon given by `--otlp`/`--api`, or a fresh in-process
    /// pipeline — with its clock at `start_ns` and its events going to `--events`.
    pub async fn driver(&self, start_ns: i64) -> anyhow::Result<Driver> {
        self.driver_with(start_ns, IncidentConfig::default()).await
    }

    /// [`driver`](Self::driver) with a local pipeline's incidents tracked and ranked by
    /// `incidents` (a running daemon keeps its own settings).
    pub async fn driver_with(
        &self,
        start_ns: i64,
        incidents: IncidentConfig,
    ) -> anyhow::Result<Driver> {
        let target = match (&self.otlp, &self.api) {
            (Some(otlp), Some(api)) => Target::remote(otlp, api).await?,
            _ => Target::Local(Box::new(Pipeline::new(start_ns, incidents)?)),
        };
        let events = self
            .events
            .as_ref()
            .map(|p| {
                std::fs::File::create(p)
                    .map(std::io::BufWriter::new)
                    .map_err(|e| anyhow::anyhow!("creating {}: {e}", p.display()))
            })
            .transpose()?;
        let mut driver = Driver::new(target, events);
        // A fresh daemon's manual clock reads 0: both kinds of target start with a cycle at
        // `start_ns`, so they see the same cycles.
        driver.cycle(start_ns).await?;
        Ok(driver)
    }
}

const SECOND: i64 = 1_000_000_000;
const WARM_UP: i64 = 600 * SECOND;
const FAULT: i64 = 90 * SECOND;
const GAP: i64 = 360 * SECOND;
const CYCLE: i64 = 5 * SECOND;

/// What happened to one injected fault.
struct Outcome {
    fault: Fault,
    /// Simulated seconds from fault start to the incident opening.
    delay_s: Option<f64>,
    /// Rank of the faulty service in the incident's ranking at the fault's end (1-based).
    rank: Option<usize>,
    /// Simulated seconds from the incident opening to the last change of its top candidate.
    stable_s: Option<f64>,
}

struct Timeline {
    /// (sim time, change, top services in order)
    events: Vec<(i64, Change, Vec<String>)>,
    /// Per incident opened: when, and its top candidate with its evidence.
    opened: Vec<(i64, String)>,
}

fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() as f64 - 1.0) * q).round() as usize]
}

/// The fault is detected by the first incident change during it (or up to a minute after) that
/// involves the faulty service: an incident opening, or an open one taking in its anomalies.
fn score(fault: &Fault, t: &Timeline) -> Outcome {
    let window = fault.start_ns..=fault.end_ns + 60 * SECOND;
    let detected = t.events.iter().find_map(|(at, c, ranking)| {
        let involved = ranking.iter().any(|s| s == fault.service);
        (window.contains(at) && involved && !matches!(c, Change::Resolved(_)))
            .then_some((*at, c.id()))
    });
    let Some((detected_at, id)) = detected else {
        return Outcome {
            fault: fault.clone(),
            delay_s: None,
            rank: None,
            stable_s: None,
        };
    };
    let mine: Vec<&(i64, Change, Vec<String>)> = t
        .events
        .iter()
        .filter(|(at, c, _)| {
            c.id() == id && *at >= detected_at && *at <= fault.end_ns.max(detected_at)
        })
        .collect();
    let ranking = &mine.last().expect("the detecting change is one").2;
    let rank = ranking
        .iter()
        .position(|s| s == fault.service)
        .map(|p| p + 1);
    let final_top = ranking.first();
    let stable_at = mine
        .iter()
        .rev()
        .take_while(|(_, _, r)| r.first() == final_top)
        .last()
        .map_or(detected_at, |(at, _, _)| *at);
    Outcome {
        fault: fault.clone(),
        delay_s: Some((detected_at - fault.start_ns) as f64 / 1e9),
        rank,
        stable_s: Some((stable_at - detected_at) as f64 / 1e9),
    }
}

/// Runs the evaluation.
pub async fn run(args: RcaArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.dataset {
        return replay::run(dir, &args).await;
    }
    let started = Instant::now();
    let kinds = FaultKind::ALL.len();
    let total = args.scenarios * kinds;
    let span = WARM_UP + total as i64 * (GAP + FAULT) + GAP;
    // On a whole minute, so a seed gives the same run whenever it is started; each fault then
    // starts at its own second of a bucket (0, 3, 6, 9, 2, ...), as real faults fall anywhere in
    // one, so the detection delays cover every phase.
    let start = (chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) - span - 3600 * SECOND)
        .div_euclid(60 * SECOND)
        * (60 * SECOND);
    let mut system = System::new(args.seed, start);
    let mut driver = args.driver(start).await?;
    let mut faults: Vec<Fault> = Vec::new();
    for i in 0..total {
        let phase = (i as i64 * 3) % 10 * SECOND;
        let at = start + WARM_UP + i as i64 * (GAP + FAULT) + GAP + phase;
        faults.push(system.pick_fault(FaultKind::ALL[i % kinds], at, FAULT));
    }
    let mut timeline = Timeline {
        events: Vec::new(),
        opened: Vec::new(),
    };
    let mut batch = Batch::default();
    let mut t = start;
    while t < start + span {
        system.second(t, &faults, &mut batch);
        t += SECOND;
        if (t - start) % CYCLE != 0 {
            continue;
        }
        let events = driver
            .step(t, batch.traces(), batch.logs(), batch.metrics())
            .await?;
        for (change, ranking) in incident_changes(&events) {
            if let (Change::Opened(_), Some(top)) = (&change, ranking.first()) {
                let why = format!("{}: {}", top.service, top.evidence.join(", "));
                timeline.opened.push((t, why));
            }
            let ranking = ranking.into_iter().map(|e| e.service).collect();
            timeline.events.push((t, change, ranking));
        }
    }
    driver.finish().await?;
    let outcomes: Vec<Outcome> = faults.iter().map(|f| score(f, &timeline)).collect();
    report(
        &args,
        &outcomes,
        &timeline,
        &faults,
        span,
        started.elapsed(),
    )
}

/// Incidents that opened outside every fault (from 30 s before its start to 5 minutes after its
/// end), each with its time since the run's start and its top candidate, and their number per
/// hour of the fault-free time outside those windows (warm-up excluded).
fn false_incidents(
    timeline: &Timeline,
    faults: &[Fault],
    span_end: i64,
    first_fault: i64,
) -> (Vec<(i64, String)>, f64) {
    let inside = |at: i64| {
        faults
            .iter()
            .any(|f| at >= f.start_ns - 30 * SECOND && at <= f.end_ns + 300 * SECOND)
    };
    let false_opens: Vec<(i64, String)> = timeline
        .opened
        .iter()
        .filter(|(at, _)| *at >= first_fault - GAP && !inside(*at))
        .map(|(at, why)| (at - (first_fault - GAP - WARM_UP), why.clone()))
        .collect();
    let covered: i64 = faults
        .iter()
        .map(|f| f.end_ns + 300 * SECOND - (f.start_ns - 30 * SECOND))
        .sum();
    let free_hours = ((span_end - (first_fault - GAP)) - covered).max(1) as f64 / 3.6e12;
    let rate = false_opens.len() as f64 / free_hours;
    (false_opens, rate)
}

fn report(
    args: &RcaArgs,
    outcomes: &[Outcome],
    timeline: &Timeline,
    faults: &[Fault],
    span: i64,
    took: Duration,
) -> anyhow::Result<()> {
    let n = outcomes.len().max(1) as f64;
    let top1 = outcomes.iter().filter(|o| o.rank == Some(1)).count() as f64 / n;
    let top3 = outcomes
        .iter()
        .filter(|o| o.rank.is_some_and(|r| r <= 3))
        .count() as f64
        / n;
    let mut delays: Vec<f64> = outcomes.iter().filter_map(|o| o.delay_s).collect();
    let mut stable: Vec<f64> = outcomes.iter().filter_map(|o| o.stable_s).collect();
    let detected = delays.len();
    let first_fault = faults.first().map_or(0, |f| f.start_ns);
    let span_end = faults.first().map_or(0, |f| f.start_ns - GAP - WARM_UP) + span;
    let (false_opens, false_rate) = false_incidents(timeline, faults, span_end, first_fault);
    println!(
        "{:<22} {:<11} {:>6} {:>8} {:>9}",
        "fault", "service", "rank", "delay s", "stable s"
    );
    for o in outcomes {
        let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
        println!(
            "{:<22} {:<11} {:>6} {:>8} {:>9}",
            o.fault.kind.name(),
            o.fault.service,
            o.rank.map_or("-".to_string(), |r| r.to_string()),
            show(o.delay_s),
            show(o.stable_s)
        );
    }
    for kind in FaultKind::ALL {
        let of: Vec<&Outcome> = outcomes.iter().filter(|o| o.fault.kind == kind).collect();
        let hits = of.iter().filter(|o| o.rank == Some(1)).count();
        println!("{:<22} top-1 {hits}/{}", kind.name(), of.len());
    }
    let p50 = quantile(&mut delays, 0.5);
    let p95 = quantile(&mut delays, 0.95);
    let stable_p50 = quantile(&mut stable, 0.5);
    println!(
        "scenarios {} (detected {detected}), top-1 {:.1} %, top-3 {:.1} %",
        outcomes.len(),
        top1 * 100.0,
        top3 * 100.0
    );
    println!(
        "detection delay: median {p50:.0} s, p95 {p95:.0} s (simulated); time to stable top-1: median {stable_p50:.0} s"
    );
    println!(
        "false incidents: {} ({false_rate:.2} per fault-free hour)",
        false_opens.len()
    );
    for (at, why) in &false_opens {
        println!("    at {:.0} s: {why}", *at as f64 / 1e9);
    }
    println!(
        "simulated {:.1} h in {:.0} s",
        span as f64 / 3.6e12,
        took.as_secs_f64()
    );
    if args.json {
        let num = |v: f64| {
            if v.is_finite() {
                serde_json::json!(v)
            } else {
                serde_json::Value::Null
            }
        };
        println!(
            "{}",
            serde_json::json!({
                "top1": top1, "top3": top3, "mttd_p50_s": num(p50), "mttd_p95_s": num(p95),
                "false_per_hour": false_rate, "scenarios": outcomes.len(),
            })
        );
    }
    Ok(())
}
