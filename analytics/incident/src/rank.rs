//! Root-cause ranking of one incident's services.
//!
//! Each service's own evidence is the sum, over its five strongest anomalous series families
//! (series that differ only in a quantile count once), of the family's best score times a weight
//! for how directly that kind of series points at a cause (its own error logs, new templates, log
//! statements per span, operation latency and errors: 1; its CPU and memory 0.7; other metrics and
//! the multivariate RED vector 0.5; traffic and raw log counts 0.3, since they follow the request
//! mix, and they are one family: a surge of work counts once however many ways it is counted
//! (spans, lines per severity, lines per template); in the ranking, not for opening incidents, also
//! severity groups per span, which count the lines of statements that count on their own). Evidence
//! counts with weight `exp(-age / 120 s)` from the incident's latest anomaly. Faults propagate to
//! callers, also through services that show nothing themselves, so a service is discounted by the
//! most anomalous service downstream of it (called directly or through others):
//! `S'(a) = S(a) - max over downstream b of S(b)`, floored at 0. The call gap of `a` (time its
//! callers waited outside its spans) is exempt: nothing downstream of `a` is in it, so it is added
//! back undiscounted. Ties go to the earlier onset, then the larger raw evidence. See docs/rca.md.

use std::collections::{BTreeMap, BTreeSet};

use super::Graph;
use scry_detect::Anomaly;
use scry_detect::signals::{Measure, Signal};

/// The ranking's two hand-set constants, a setting so that `scry eval rca --cv` can choose them
/// on some cases and score the others with them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankConfig {
    /// Series families counted per service.
    pub top_series: usize,
    /// Evidence counts with weight `exp(-age / recency_ns)`, its age taken from the incident's
    /// latest anomaly: a ranking says what is wrong now. A fault that persists keeps being
    /// flagged and keeps its weight; a blip from minutes ago, or the previous fault of a long
    /// incident, fades.
    pub recency_ns: f64,
}

impl Default for RankConfig {
    fn default() -> Self {
        Self {
            top_series: 5,
            recency_ns: 120e9,
        }
    }
}

/// One ranked root-cause candidate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Candidate {
    /// The service.
    pub service: String,
    /// Score after the graph discount.
    pub score: f64,
    /// The service's own evidence before the discount.
    pub raw: f64,
    /// First anomaly of the service, ns since the epoch.
    pub onset_ns: i64,
    /// Its strongest series, `series (score)`, strongest first.
    pub evidence: Vec<String>,
    /// Exemplar traces from its anomalies.
    pub trace_ids: Vec<String>,
    /// Log templates from its anomalies.
    pub template_ids: Vec<String>,
    /// How the fault reached the incident's other services: this service, then its callers.
    pub path: Vec<String>,
}

/// How directly an anomaly of this kind points at its own service as the cause.
pub(crate) fn weight(a: &Anomaly) -> f64 {
    match (a.key.signal, &a.key.measure) {
        (Signal::Traces, Measure::Requests) => 0.3,
        (Signal::Traces, Measure::Red) => 0.5,
        (Signal::Traces, _)
        | (Signal::Logs, Measure::NewTemplate | Measure::ErrorLogs | Measure::LogStatement) => 1.0,
        // Raw log counts (by severity, by template) follow the request mix like traffic does;
        // the per-span statement rates are their workload-independent form.
        (Signal::Logs, _) => 0.3,
        // The service's own CPU or memory points at the service itself; other metrics (latency
        // and traffic gauges) move with its callers and callees.
        (Signal::Metrics, m) if resource(m.as_str()).is_some() => 0.7,
        (Signal::Metrics, _) => 0.5,
    }
}

/// What an anomaly counts for in a ranking, beyond its [`weight`]: a severity group per span
/// (`op: level:ERROR`) counts the same lines as the statements in it, which count on their own,
/// so it counts 0.3. (It still opens an incident as the service's own errors.)
fn overlap(a: &Anomaly) -> f64 {
    let group = a.key.signal == Signal::Logs
        && a.key.measure == Measure::LogStatement
        && severity_group(&a.key.scope);
    if group { 0.3 } else { 1.0 }
}

/// Whether a statement series' scope (`operation: statement`) names a severity group.
fn severity_group(scope: &str) -> bool {
    let statement = scope.rsplit(": ").next().unwrap_or(scope);
    statement.starts_with(scry_detect::signals::statements::LEVEL_PREFIX)
}

/// The resource a metric measures, `cpu` or `memory`, if it is one of them
/// (`container.cpu.utilization`, `process.memory.usage`, `CpuUsageRate`).
fn resource(measure: &str) -> Option<&'static str> {
    let m = measure.to_ascii_lowercase();
    if m.contains("cpu") {
        Some("cpu")
    } else if m.contains("memory") {
        Some("memory")
    } else {
        None
    }
}

/// Series that differ only in a quantile (`latency_p95{op}` and `latency_p99{op}`,
/// `ClientLatencyP90` and `ClientLatencyP99`) measure one thing and count once; so do a
/// service's span series of one measure across its operations, and its metrics of one
/// resource in different units (`CpuUsage` in millicores and `CpuUsageRate` in percent).
fn family(a: &Anomaly) -> String {
    if is_volume(a) {
        return VOLUME_FAMILY.to_string();
    }
    let base = match &a.key.measure {
        Measure::Metric(m) => {
            if let Some(r) = resource(m).filter(|_| a.key.signal == Signal::Metrics) {
                return format!("{r}{{{}}}", a.key.scope);
            }
            without_quantile(m)
        }
        m if m.is_latency() => "latency",
        m if m.is_call_gap() => CALL_GAP_FAMILY,
        m => m.as_str(),
    };
    // Operations of one service nest (a handler around its queries), so a slow or failing
    // query shows in every operation above it: a service's span series count once per measure.
    if a.key.scope.is_empty() || a.key.signal == Signal::Traces {
        base.to_string()
    } else {
        format!("{base}{{{}}}", a.key.scope)
    }
}

/// A metric's name without its quantile suffix: `ClientLatencyP90` and `rpc_duration_p99` are
/// `ClientLatency` and `rpc_duration`.
fn without_quantile(m: &str) -> &str {
    let digits = m.trim_end_matches(|c: char| c.is_ascii_digit());
    if digits.len() == m.len() {
        return m;
    }
    digits
        .strip_suffix("_p")
        .or_else(|| digits.strip_suffix('P'))
        .unwrap_or(m)
}

/// A service's own evidence: the sum of its `top` strongest families, and the part of it that
/// its callees cannot explain (the call gap is time outside the callee's spans, so nothing
/// downstream of the callee is in it).
fn own_evidence(series: &BTreeMap<String, (f64, String)>, top: usize) -> (f64, f64) {
    let mut scores: Vec<(f64, bool)> = series
        .iter()
        .map(|(family, (s, _))| (*s, family == CALL_GAP_FAMILY))
        .collect();
    scores.sort_by(|a, b| b.0.total_cmp(&a.0));
    let top = &scores[..scores.len().min(top)];
    let local = top.iter().filter(|(_, gap)| *gap).map(|(s, _)| s).sum();
    (top.iter().map(|(s, _)| s).sum(), local)
}

/// The family of the call gap series.
const CALL_GAP_FAMILY: &str = "call_gap";

/// The family of the series that count the work arriving at a service.
const VOLUME_FAMILY: &str = "volume";

/// Whether `a` counts work arriving: spans, or log lines per severity or per template. These move
/// together with the request mix, so a retrying caller's surge shows in all of them at its
/// callee and the callee's callees; one surge is one piece of evidence.
fn is_volume(a: &Anomaly) -> bool {
    matches!(
        (a.key.signal, &a.key.measure),
        (Signal::Traces, Measure::Requests)
            | (Signal::Logs, Measure::Logs | Measure::TemplateCount)
    )
}

#[derive(Default)]
struct Evidence {
    /// Per family: its strongest weighted score and that series' name.
    series: BTreeMap<String, (f64, String)>,
    onset: Option<i64>,
    traces: BTreeSet<String>,
    templates: BTreeSet<String>,
}

/// Ranks the services of `anomalies` as root causes, best first, with the default settings.
pub fn rank(anomalies: &[Anomaly], graph: &Graph) -> Vec<Candidate> {
    rank_with(anomalies, graph, &RankConfig::default())
}

/// Ranks the services of `anomalies` as root causes, best first.
pub fn rank_with(anomalies: &[Anomaly], graph: &Graph, config: &RankConfig) -> Vec<Candidate> {
    let mut by_service: BTreeMap<&str, Evidence> = BTreeMap::new();
    let latest = anomalies.iter().map(|a| a.time_ns).max().unwrap_or(0);
    for a in anomalies {
        let e = by_service.entry(&a.key.service).or_default();
        // The family's strongest series stands for it.
        let age = (latest - a.time_ns) as f64;
        let strength = a.score * weight(a) * overlap(a) * (-age / config.recency_ns).exp();
        let s = e
            .series
            .entry(family(a))
            .or_insert_with(|| (0.0, a.key.name()));
        if strength > s.0 {
            *s = (strength, a.key.name());
        }
        e.onset = Some(e.onset.map_or(a.time_ns, |o| o.min(a.time_ns)));
        e.traces
            .extend(a.evidence.trace_ids.iter().take(3).cloned());
        e.templates.extend(a.evidence.template_ids.iter().cloned());
    }
    let raw: BTreeMap<&str, (f64, f64)> = by_service
        .iter()
        .map(|(s, e)| (*s, own_evidence(&e.series, config.top_series)))
        .collect();
    let services: BTreeSet<String> = by_service.keys().map(|s| s.to_string()).collect();
    let mut out: Vec<Candidate> = by_service
        .into_iter()
        .map(|(service, e)| {
            let (own, local) = raw[service];
            let worst_below = graph
                .downstream(service)
                .into_iter()
                .filter_map(|c| raw.get(c.as_str()).map(|r| r.0))
                .fold(0.0_f64, f64::max);
            let spread = own - local;
            let score = (spread - worst_below).max(0.0).min(spread) + local;
            let mut series: Vec<(String, f64)> =
                e.series.into_values().map(|(s, n)| (n, s)).collect();
            series.sort_by(|a, b| b.1.total_cmp(&a.1));
            Candidate {
                service: service.to_string(),
                score,
                raw: own,
                onset_ns: e.onset.unwrap_or(0),
                evidence: series
                    .iter()
                    .take(config.top_series)
                    .map(|(n, s)| format!("{n} ({s:.2})"))
                    .collect(),
                trace_ids: e.traces.into_iter().take(5).collect(),
                template_ids: e.templates.into_iter().take(5).collect(),
                path: graph.caller_chain(service, &services),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.onset_ns.cmp(&b.onset_ns))
            .then(b.raw.total_cmp(&a.raw))
            .then(a.service.cmp(&b.service))
    });
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::graph::Edge;
    use scry_detect::signals::{DetectorName, Evidence as Exemplars, SeriesKey};

    const STATEMENT: &str = "log_statement";

    pub(crate) fn anomaly(
        service: &str,
        signal: Signal,
        measure: &str,
        scope: &str,
        t: i64,
        score: f64,
    ) -> Anomaly {
        Anomaly {
            time_ns: t,
            width_ns: 10,
            key: SeriesKey {
                service: service.into(),
                signal,
                measure: Measure::parse(measure),
                scope: scope.into(),
            },
            observed: 1.0,
            expected: Some(0.0),
            lower: None,
            upper: None,
            score,
            detector: DetectorName::Ewma,
            evidence: Exemplars::default(),
        }
    }

    pub(crate) fn chain() -> Graph {
        let e = |a: &str, b: &str| Edge {
            caller: a.into(),
            callee: b.into(),
            calls: 1.0,
            errors: 0.0,
        };
        Graph::from_edges(&[
            e("web", "checkout"),
            e("checkout", "payment"),
            e("checkout", "cart"),
        ])
    }

    #[test]
    fn the_callee_that_broke_outranks_the_callers_that_waited_on_it() {
        // payment is slow and logs errors; checkout and web see the latency through their calls.
        let anomalies = vec![
            anomaly(
                "payment",
                Signal::Traces,
                "latency_p99",
                "POST /pay",
                20,
                0.99,
            ),
            anomaly("payment", Signal::Logs, "error_logs", "", 20, 0.95),
            anomaly(
                "checkout",
                Signal::Traces,
                "latency_p99",
                "POST /checkout",
                30,
                0.99,
            ),
            anomaly(
                "checkout",
                Signal::Traces,
                "latency_p95",
                "POST /checkout",
                30,
                0.97,
            ),
            anomaly(
                "checkout",
                Signal::Traces,
                "latency_p50",
                "POST /checkout",
                30,
                0.9,
            ),
            anomaly("web", Signal::Traces, "latency_p99", "GET /", 30, 0.98),
            anomaly("web", Signal::Traces, "requests", "GET /", 30, 0.9),
        ];
        let ranked = rank(&anomalies, &chain());
        assert_eq!(ranked[0].service, "payment", "{ranked:#?}");
        assert_eq!(ranked[0].path, ["payment", "checkout", "web"]);
        assert!(ranked[0].evidence[0].starts_with("latency_p99{POST /pay}"));
    }

    #[test]
    fn a_caller_two_hops_up_is_discounted_by_the_broken_service() {
        // web → checkout → payment; checkout passes payment's failure on without a sign of its
        // own, web logs errors and skips statements.
        let anomalies = vec![
            anomaly(
                "payment",
                Signal::Logs,
                STATEMENT,
                "POST /pay: P#10 → P#12",
                20,
                0.9,
            ),
            anomaly("payment", Signal::Logs, "error_logs", "", 20, 0.9),
            anomaly("web", Signal::Logs, STATEMENT, "GET /: W#5", 30, 0.9),
            anomaly("web", Signal::Logs, STATEMENT, "GET /: W#7", 30, 0.9),
        ];
        let ranked = rank(&anomalies, &chain());
        assert_eq!(ranked[0].service, "payment", "{ranked:#?}");
        let web = ranked.iter().find(|c| c.service == "web").unwrap();
        assert!(web.raw > 1.7 && web.score < 0.1, "{web:#?}");
    }

    #[test]
    fn a_severity_group_counts_less_than_the_statements_in_it() {
        let group = anomaly("web", Signal::Logs, STATEMENT, "GET /: level:ERROR", 0, 0.9);
        let statement = anomaly("web", Signal::Logs, STATEMENT, "GET /: W#175", 0, 0.9);
        assert_eq!(
            weight(&group),
            1.0,
            "it opens an incident as any error statement does"
        );
        assert!((weight(&group) * overlap(&group) - 0.3).abs() < 1e-9);
        assert_eq!(weight(&statement) * overlap(&statement), 1.0);
    }

    #[test]
    fn what_is_wrong_now_outranks_what_was_wrong_minutes_ago() {
        // An incident that lived through two faults: `cart` broke first and recovered, then
        // `search` broke and still is.
        let minute = 60_000_000_000;
        let mut anomalies = vec![
            anomaly("cart", Signal::Logs, "error_logs", "", 0, 0.95),
            anomaly("cart", Signal::Logs, "new_template", "t1", 0, 0.95),
            anomaly("cart", Signal::Traces, "error_rate", "POST /cart", 0, 0.95),
        ];
        for t in 6..10 {
            anomalies.push(anomaly(
                "search",
                Signal::Logs,
                "error_logs",
                "",
                t * minute,
                0.8,
            ));
            anomalies.push(anomaly(
                "search",
                Signal::Traces,
                "latency_p99",
                "GET /q",
                t * minute,
                0.8,
            ));
        }
        let ranked = rank(&anomalies, &Graph::default());
        assert_eq!(ranked[0].service, "search", "{ranked:#?}");
        assert!((ranked[0].raw - 1.6).abs() < 1e-9, "{ranked:#?}");
        assert!(ranked[1].raw < 0.05, "{ranked:#?}");
    }

    #[test]
    fn quantiles_nested_operations_and_units_of_one_measure_count_once() {
        // A slow query shows in every operation above it and in every quantile; three
        // different kinds of evidence in another service weigh more.
        let mut anomalies: Vec<Anomaly> = ["GET /orders", "SELECT orders", "OrderRepo.find"]
            .iter()
            .flat_map(|op| {
                ["latency_p50", "latency_p95", "latency_p99"]
                    .map(|m| anomaly("order", Signal::Traces, m, op, 20, 0.99))
            })
            .collect();
        anomalies.push(anomaly("food", Signal::Logs, "error_logs", "", 20, 0.9));
        anomalies.push(anomaly("food", Signal::Logs, "new_template", "t1", 20, 0.9));
        anomalies.push(anomaly(
            "food",
            Signal::Logs,
            "log_statement",
            "GET /food: F#245",
            20,
            0.9,
        ));
        // One CPU change in two units counts once.
        for m in ["CpuUsage", "CpuUsageRate"] {
            anomalies.push(anomaly("cart", Signal::Metrics, m, "", 20, 0.9));
        }
        let ranked = rank(&anomalies, &Graph::default());
        assert_eq!(ranked[0].service, "food", "{ranked:#?}");
        let cart = ranked.iter().find(|c| c.service == "cart").unwrap();
        assert!((cart.raw - 0.9 * 0.7).abs() < 1e-9, "{cart:#?}");
        let order = ranked.iter().find(|c| c.service == "order").unwrap();
        assert!((order.raw - 0.99).abs() < 1e-9, "{order:#?}");
        assert!(order.evidence[0].starts_with("latency_p"), "{order:#?}");
    }

    #[test]
    fn a_surge_of_work_counts_once_however_it_is_counted() {
        // checkout retries a slow payment: payment shows the latency and more requests; email,
        // which payment calls on every request, shows the surge three ways (spans, lines per
        // severity, lines per template) and nothing else.
        let graph = Graph::from_edges(&[
            Edge {
                caller: "checkout".into(),
                callee: "payment".into(),
                calls: 1.0,
                errors: 0.0,
            },
            Edge {
                caller: "payment".into(),
                callee: "email".into(),
                calls: 1.0,
                errors: 0.0,
            },
        ]);
        let mut anomalies = vec![
            anomaly(
                "payment",
                Signal::Traces,
                "latency_p50",
                "POST /charge",
                20,
                0.99,
            ),
            anomaly("payment", Signal::Traces, "requests", "", 20, 0.9),
        ];
        for (signal, measure, scope) in [
            (Signal::Traces, "requests", ""),
            (Signal::Logs, "logs", "INFO"),
            (Signal::Logs, "template_count", "d1390cc1af45b46a"),
        ] {
            anomalies.push(anomaly("email", signal, measure, scope, 20, 0.9));
        }
        let ranked = rank_with(&anomalies, &graph, &RankConfig::default());
        assert_eq!(ranked[0].service, "payment", "{ranked:#?}");
        let email = ranked.iter().find(|c| c.service == "email").unwrap();
        assert!((email.raw - 0.9 * 0.3).abs() < 1e-9, "{email:#?}");
    }
}
