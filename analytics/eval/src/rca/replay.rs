//! `scry eval rca --dataset DIR`: replays a labelled corpus through the daemon's path at its
//! original timestamps and scores the incidents' root-cause rankings against the labels.
//!
//! Records go in, in time order, as OTLP requests every 5 simulated seconds, each followed by a
//! detection cycle and the incident tracker, exactly as in the daemon. Nothing from the labels
//! reaches that path. A case is scored on the incident an SRE would open first: of the incidents
//! that open or take in evidence from 60 s before its injection to 3 minutes after (the corpus
//! ships 3 minutes of data per case, and some cases are only 4 minutes apart), the one whose top
//! candidate scores highest, with its ranking as of its last change in that span. A case with no
//! such incident has no rank (it counts as missed, and as rank `services + 1` in the mean). Under
//! a case not ranked first the text output shows the evidence of the top candidate and of the
//! root cause.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use super::nezha::{self, Case, Requests};
use super::{Change, Entry, RcaArgs, incident_changes};

const SECOND: i64 = 1_000_000_000;
const CYCLE: i64 = 5 * SECOND;
/// Scoring span around an injection.
const BEFORE: i64 = 60 * SECOND;
const AFTER: i64 = 180 * SECOND;

/// An incident's ranking, best first.
type Ranking = [Entry];
/// (cycle time, change, the incident's ranking after it)
type Event = (i64, Change, Vec<Entry>);

struct Scored<'a> {
    case: &'a Case,
    rank: Option<usize>,
    /// The best rank of the root cause in any incident active in the span (a diagnostic: it
    /// shows what a less noisy choice of incident would give).
    best_rank: Option<usize>,
    delay_s: Option<f64>,
    top: Vec<(String, f64)>,
    /// For a case not ranked first: the evidence of the top candidate and of the root cause.
    why: Vec<String>,
}

/// A finished replay: the cases it can score and every incident change it made.
pub(crate) struct Replay {
    /// Labelled cases inside the replayed span.
    pub cases: Vec<Case>,
    events: Vec<Event>,
    /// Services that sent telemetry.
    pub services: usize,
    hours: f64,
    loaded: std::time::Duration,
}

impl Replay {
    /// Each case's rank of its root cause (`None`: no incident, or not ranked).
    pub fn ranks(&self) -> Vec<Option<usize>> {
        self.cases
            .iter()
            .map(|c| score(c, &self.events).rank)
            .collect()
    }
}

/// Replays `root` (up to `args.limit` of it) with incidents tracked by `incidents`.
pub(crate) async fn replay(
    root: &Path,
    args: &RcaArgs,
    incidents: scry_incident::IncidentConfig,
) -> anyhow::Result<Replay> {
    let started = Instant::now();
    let mut corpus = nezha::load(root)?;
    let mut cases = nezha::cases(root)?;
    if let (Some(limit), Some(first)) = (args.limit, corpus.records.first().map(|r| r.0)) {
        let end = first.saturating_add(i64::try_from(limit.as_nanos()).unwrap_or(i64::MAX));
        corpus.records.retain(|r| r.0 < end);
        cases.retain(|c| c.inject_ns + AFTER < end);
    }
    let services: BTreeSet<&str> = corpus
        .records
        .iter()
        .map(|(_, pod, _)| nezha::service_of(pod))
        .collect();
    let n_services = services.len();
    let loaded = started.elapsed();
    let Some(first) = corpus.records.first().map(|r| r.0) else {
        anyhow::bail!("{}: no records", root.display());
    };
    let last = corpus.records.last().map_or(first, |r| r.0);
    let mut t = first.div_euclid(CYCLE) * CYCLE + CYCLE;
    let mut driver = args.driver_with(t - CYCLE, incidents).await?;
    let mut events: Vec<Event> = Vec::new();
    let mut requests = Requests::default();
    let mut records = corpus.records.into_iter().peekable();
    let end = last + 600 * SECOND;
    while t <= end {
        while let Some((_, pod, record)) = records.next_if(|(at, _, _)| *at < t) {
            requests.push(&pod, record);
        }
        let cycle = driver
            .step(t, requests.traces(), requests.logs(), requests.metrics())
            .await?;
        events.extend(incident_changes(&cycle).map(|(change, ranking)| (t, change, ranking)));
        t += CYCLE;
    }
    driver.finish().await?;
    Ok(Replay {
        cases,
        events,
        services: n_services,
        hours: (last - first) as f64 / 3.6e12,
        loaded,
    })
}

/// Replays `root` (up to `args.limit` of it) and prints the scores.
pub async fn run(root: &Path, args: &RcaArgs) -> anyhow::Result<()> {
    if args.cv {
        return super::cv::run(root, args).await;
    }
    let started = Instant::now();
    let r = replay(root, args, scry_incident::IncidentConfig::default()).await?;
    let scored: Vec<Scored> = r.cases.iter().map(|c| score(c, &r.events)).collect();
    println!(
        "replayed {:.1} h of data ({} services) in {:.0} s (loading {:.0} s)",
        r.hours,
        r.services,
        started.elapsed().as_secs_f64(),
        r.loaded.as_secs_f64()
    );
    report(&scored, &r.events, r.services, args.json);
    Ok(())
}

fn score<'a>(case: &'a Case, events: &[Event]) -> Scored<'a> {
    let span = case.inject_ns - BEFORE..=case.inject_ns + AFTER;
    // Each incident active in the span, as of its last change in the span.
    let mut active: BTreeMap<u64, (i64, &Ranking)> = BTreeMap::new();
    for (at, change, ranking) in events.iter().filter(|(at, _, _)| span.contains(at)) {
        if !matches!(change, Change::Resolved(_)) {
            let first = active.get(&change.id()).map_or(*at, |(f, _)| *f);
            active.insert(change.id(), (first, ranking));
        }
    }
    let position = |r: &Ranking| {
        r.iter()
            .position(|e| e.service == case.service)
            .map(|p| p + 1)
    };
    let best_rank = active.values().filter_map(|(_, r)| position(r)).min();
    let severity = |r: &Ranking| r.first().map_or(0.0, |e| e.score);
    let chosen = active
        .values()
        .max_by(|a, b| severity(a.1).total_cmp(&severity(b.1)).then(b.0.cmp(&a.0)));
    let Some((at, ranking)) = chosen else {
        return Scored {
            case,
            rank: None,
            best_rank,
            delay_s: None,
            top: Vec::new(),
            why: Vec::new(),
        };
    };
    let rank = position(ranking);
    let evidence = |e: &Entry| format!("{} {:.2}: {}", e.service, e.score, e.evidence.join(", "));
    let why = match rank {
        Some(1) => Vec::new(),
        _ => ranking
            .iter()
            .take(1)
            .chain(ranking.iter().filter(|e| e.service == case.service))
            .map(evidence)
            .collect(),
    };
    Scored {
        case,
        rank,
        best_rank,
        delay_s: Some((at - case.inject_ns) as f64 / 1e9),
        top: ranking
            .iter()
            .take(3)
            .map(|e| (e.service.clone(), e.score))
            .collect(),
        why,
    }
}

/// top-1, top-3, top-5 and mean rank (a missing rank counts as `services + 1`).
fn summary(of: &[&Scored], services: usize) -> serde_json::Value {
    let n = of.len().max(1) as f64;
    let within = |k: usize| of.iter().filter(|s| s.rank.is_some_and(|r| r <= k)).count() as f64 / n;
    let mean_rank = of
        .iter()
        .map(|s| s.rank.unwrap_or(services + 1) as f64)
        .sum::<f64>()
        / n;
    serde_json::json!({
        "top1": within(1), "top3": within(3), "top5": within(5),
        "mean_rank": mean_rank, "cases": of.len(),
    })
}

fn report(scored: &[Scored], events: &[Event], services: usize, json: bool) {
    println!(
        "{:<16} {:<15} {:<30} {:>5} {:>7}  top-3",
        "case", "fault", "root cause", "rank", "delay s"
    );
    for s in scored {
        let top: Vec<String> = s
            .top
            .iter()
            .map(|(svc, score)| format!("{svc} {score:.2}"))
            .collect();
        println!(
            "{:<16} {:<15} {:<30} {:>5} {:>7}  {}",
            s.case.id,
            s.case.fault_type,
            s.case.service,
            s.rank.map_or("-".to_string(), |r| r.to_string()),
            s.delay_s.map_or("-".to_string(), |d| format!("{d:.0}")),
            top.join(", ")
        );
        for line in &s.why {
            println!("    {line}");
        }
    }
    let all: Vec<&Scored> = scored.iter().collect();
    let mut by_type: BTreeMap<&str, Vec<&Scored>> = BTreeMap::new();
    for s in scored {
        by_type.entry(&s.case.fault_type).or_default().push(s);
    }
    let by_fault_type: serde_json::Map<String, serde_json::Value> = by_type
        .iter()
        .map(|(k, v)| (k.to_string(), summary(v, services)))
        .collect();
    for (kind, v) in &by_fault_type {
        println!("{kind:<15} {v}");
    }
    let opened = events
        .iter()
        .filter(|(_, c, _)| matches!(c, Change::Opened(_)))
        .count();
    let detected = scored.iter().filter(|s| s.delay_s.is_some()).count();
    let best_top1 = scored.iter().filter(|s| s.best_rank == Some(1)).count();
    let mut total = summary(&all, services);
    println!(
        "cases {} (an incident for {detected}), incidents opened {opened}; top-1 {:.1} %, top-3 {:.1} %, top-5 {:.1} %, mean rank {:.2}",
        scored.len(),
        total["top1"].as_f64().unwrap_or(0.0) * 100.0,
        total["top3"].as_f64().unwrap_or(0.0) * 100.0,
        total["top5"].as_f64().unwrap_or(0.0) * 100.0,
        total["mean_rank"].as_f64().unwrap_or(0.0),
    );
    println!(
        "diagnostic: first in some incident active around the fault (not only the most severe one): {best_top1}/{}",
        scored.len()
    );
    if json {
        total["by_fault_type"] = serde_json::Value::Object(by_fault_type);
        println!("{total}");
    }
}
