//! Opening, growing and resolving incidents from a stream of anomalies.

use std::collections::{BTreeSet, HashMap};

use super::rank::weight;
use super::rank::{RankConfig, rank_with};
use super::{Candidate, Graph};
use scry_detect::Anomaly;
use scry_detect::signals::SeriesKey;

/// Settings of the [`Tracker`].
#[derive(Debug, Clone)]
pub struct IncidentConfig {
    /// An anomaly joins evidence at most this long after it, ns.
    pub merge_gap_ns: i64,
    /// An incident resolves after this long without new evidence, ns.
    pub resolve_after_ns: i64,
    /// An incident opens only with an anomaly whose score times its kind's weight (see
    /// [`rank`](mod@crate::rank)) is at least this — so traffic shifts or the multivariate model alone
    /// (weights 0.3, 0.5) never open one — ...
    pub open_score: f64,
    /// ... among at least this many distinct anomalous series.
    pub open_series: usize,
    /// Only anomalies at least this strong (score times weight) keep an incident open or link
    /// two incidents; weaker ones are kept as evidence of the incident they fall into. Without
    /// this, a steady trickle of weak metric or traffic anomalies keeps one incident open for
    /// hours and its ranking stops meaning anything.
    pub extend_score: f64,
    /// Anomalies kept per incident. Of each series it keeps three: the first (the onset), the
    /// strongest and the latest (what is wrong now); see `Incident::absorb`.
    pub max_evidence: usize,
    /// How incidents are ranked.
    pub rank: RankConfig,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        Self {
            merge_gap_ns: 120_000_000_000,
            resolve_after_ns: 300_000_000_000,
            open_score: 0.7,
            open_series: 2,
            extend_score: 0.6,
            max_evidence: 3000,
            rank: RankConfig::default(),
        }
    }
}

impl IncidentConfig {
    /// Whether `a` is strong enough to keep an incident open or link two ([`Self::extend_score`]).
    fn strong(&self, a: &Anomaly) -> bool {
        a.score * weight(a) >= self.extend_score
    }
}

/// One incident.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Incident {
    /// Sequential id.
    pub id: u64,
    /// First evidence, ns since the epoch.
    pub opened_ns: i64,
    /// Latest evidence.
    pub updated_ns: i64,
    /// When it resolved, if it did.
    pub resolved_ns: Option<i64>,
    /// Services with anomalies in it.
    pub services: BTreeSet<String>,
    /// Its anomalies (up to `max_evidence`): of each series the first, the strongest and the
    /// latest.
    pub anomalies: Vec<Anomaly>,
    /// Root-cause candidates, best first.
    pub ranking: Vec<Candidate>,
    /// Where each series' kept anomalies are in `anomalies` (rebuilt after a restore).
    #[serde(skip)]
    kept: HashMap<SeriesKey, Vec<usize>>,
}

impl Incident {
    /// The best candidate, if any.
    pub fn top(&self) -> Option<&Candidate> {
        self.ranking.first()
    }

    fn related(&self, a: &Anomaly, graph: &Graph, gap: i64, strong: bool) -> bool {
        let reach = if strong { gap } else { 0 };
        a.time_ns <= self.updated_ns + reach
            && a.time_ns + gap >= self.opened_ns
            && (self.services.contains(&a.key.service)
                || self
                    .services
                    .iter()
                    .any(|s| graph.adjacent(s, &a.key.service))
                || shares_trace(&self.anomalies, a))
    }

    /// Takes `a` in. Of its series the incident keeps the first anomaly, the strongest and the
    /// latest, so a long incident's evidence stays current and bounded by its series, not by
    /// its age; `a` is dropped when it is none of these, or when it starts a new series in an
    /// incident that already keeps `max` anomalies.
    fn absorb(&mut self, a: Anomaly, max: usize, strong: bool) {
        self.opened_ns = self.opened_ns.min(a.time_ns);
        if strong {
            self.updated_ns = self.updated_ns.max(a.time_ns);
        }
        self.services.insert(a.key.service.clone());
        if self.kept.is_empty() && !self.anomalies.is_empty() {
            self.reindex();
        }
        let members = self.kept.get(&a.key).cloned().unwrap_or_default();
        // Candidates: the kept ones (Some) and `a` (None); ties keep what is there, except
        // that the newer of two equally recent anomalies is the latest.
        let candidates: Vec<Option<usize>> =
            members.iter().copied().map(Some).chain([None]).collect();
        let of = |c: &Option<usize>| c.map_or(&a, |i| &self.anomalies[i]);
        let first = candidates.iter().min_by_key(|c| of(c).time_ns);
        let strongest = candidates
            .iter()
            .rev()
            .max_by(|x, y| of(x).score.total_cmp(&of(y).score));
        let latest = candidates.iter().max_by_key(|c| of(c).time_ns);
        let keep: Vec<Option<usize>> = [first, strongest, latest]
            .into_iter()
            .flatten()
            .copied()
            .collect();
        if !keep.contains(&None) {
            return;
        }
        let evicted: Vec<usize> = members
            .iter()
            .copied()
            .filter(|i| !keep.contains(&Some(*i)))
            .collect();
        let slots = self.kept.entry(a.key.clone()).or_default();
        slots.retain(|i| !evicted.contains(i));
        match evicted.first() {
            // A replaced anomaly's place is reused; a second one evicted stays as plain evidence.
            Some(&i) => {
                self.anomalies[i] = a;
                slots.push(i);
            }
            None if self.anomalies.len() < max => {
                slots.push(self.anomalies.len());
                self.anomalies.push(a);
            }
            None => {}
        }
    }

    fn reindex(&mut self) {
        for (i, a) in self.anomalies.iter().enumerate() {
            self.kept.entry(a.key.clone()).or_default().push(i);
        }
    }
}

fn shares_trace(group: &[Anomaly], a: &Anomaly) -> bool {
    !a.evidence.trace_ids.is_empty()
        && group.iter().any(|g| {
            g.evidence
                .trace_ids
                .iter()
                .any(|t| a.evidence.trace_ids.contains(t))
        })
}

/// What happened to an incident in one update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// It opened.
    Opened(u64),
    /// It got new evidence.
    Updated(u64),
    /// It resolved.
    Resolved(u64),
}

impl Change {
    /// The incident it is about.
    pub fn id(self) -> u64 {
        match self {
            Change::Opened(id) | Change::Updated(id) | Change::Resolved(id) => id,
        }
    }

    /// `opened`, `updated` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Opened(_) => "opened",
            Change::Updated(_) => "updated",
            Change::Resolved(_) => "resolved",
        }
    }
}

/// Groups anomalies into incidents; see the module docs.
#[derive(Debug, Default)]
pub struct Tracker {
    config: IncidentConfig,
    open: Vec<Incident>,
    pending: Vec<Anomaly>,
    next_id: u64,
}

impl Tracker {
    /// A tracker with no incidents whose ids start after `last_id`.
    pub fn new(config: IncidentConfig, last_id: u64) -> Self {
        Self::restore(config, last_id, Vec::new())
    }

    /// A tracker continuing `open` incidents (e.g. read back after a restart).
    pub fn restore(config: IncidentConfig, last_id: u64, open: Vec<Incident>) -> Self {
        Self {
            config,
            open,
            pending: Vec::new(),
            next_id: last_id + 1,
        }
    }

    /// Whether an update can change anything without new anomalies (something to resolve or
    /// pending anomalies to expire).
    pub fn idle(&self) -> bool {
        self.open.is_empty() && self.pending.is_empty()
    }

    /// Open incidents.
    pub fn open(&self) -> &[Incident] {
        &self.open
    }

    /// Folds in a cycle's anomalies at `now_ns`; returns what changed and every incident that
    /// changed (resolved ones are no longer open afterwards).
    pub fn update(
        &mut self,
        now_ns: i64,
        anomalies: Vec<Anomaly>,
        graph: &Graph,
    ) -> Vec<(Change, Incident)> {
        let gap = self.config.merge_gap_ns;
        let mut touched: BTreeSet<u64> = BTreeSet::new();
        for a in anomalies {
            let strong = self.config.strong(&a);
            let homes: Vec<usize> = (0..self.open.len())
                .filter(|i| self.open[*i].related(&a, graph, gap, strong))
                .collect();
            match homes.split_first() {
                Some((first, rest)) => {
                    // One strong anomaly linking two incidents makes them one.
                    for i in rest.iter().rev().filter(|_| strong) {
                        let other = self.open.remove(*i);
                        for b in other.anomalies {
                            let s = self.config.strong(&b);
                            self.open[*first].absorb(b, self.config.max_evidence, s);
                        }
                    }
                    touched.insert(self.open[*first].id);
                    self.open[*first].absorb(a, self.config.max_evidence, strong);
                }
                None => self.pending.push(a),
            }
        }
        let mut changes = Vec::new();
        self.pending.retain(|a| a.time_ns + gap >= now_ns);
        for group in self.pending_groups(graph) {
            let opened = self.open_incident(group);
            changes.push(Change::Opened(opened));
            touched.remove(&opened);
        }
        for inc in &mut self.open {
            let opened = changes.contains(&Change::Opened(inc.id));
            if opened || touched.contains(&inc.id) {
                inc.ranking = rank_with(&inc.anomalies, graph, &self.config.rank);
            }
            if touched.contains(&inc.id) {
                changes.push(Change::Updated(inc.id));
            }
        }
        let mut out: Vec<(Change, Incident)> = changes
            .into_iter()
            .map(|c| {
                let inc = self
                    .open
                    .iter()
                    .find(|i| i.id == c.id())
                    .expect("open")
                    .clone();
                (c, inc)
            })
            .collect();
        let resolve_after = self.config.resolve_after_ns;
        let (done, still): (Vec<Incident>, Vec<Incident>) = self
            .open
            .drain(..)
            .partition(|i| now_ns - i.updated_ns >= resolve_after);
        self.open = still;
        for mut inc in done {
            inc.resolved_ns = Some(now_ns);
            out.push((Change::Resolved(inc.id), inc));
        }
        out
    }

    /// Connected groups of pending anomalies that are enough to open an incident; removes them.
    fn pending_groups(&mut self, graph: &Graph) -> Vec<Vec<Anomaly>> {
        let gap = self.config.merge_gap_ns;
        let mut groups: Vec<Vec<Anomaly>> = Vec::new();
        for a in std::mem::take(&mut self.pending) {
            let linked = |g: &Vec<Anomaly>| {
                g.iter().any(|b| {
                    (a.time_ns - b.time_ns).abs() <= gap
                        && (b.key.service == a.key.service
                            || graph.adjacent(&b.key.service, &a.key.service)
                            || shares_trace(std::slice::from_ref(b), &a))
                })
            };
            let homes: Vec<usize> = (0..groups.len()).filter(|i| linked(&groups[*i])).collect();
            match homes.split_first() {
                Some((first, rest)) => {
                    for i in rest.iter().rev() {
                        let other = groups.remove(*i);
                        groups[*first].extend(other);
                    }
                    groups[*first].push(a);
                }
                None => groups.push(vec![a]),
            }
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = groups.into_iter().partition(|g| {
            let series: BTreeSet<(&str, String)> = g
                .iter()
                .map(|a| (a.key.service.as_str(), a.key.name()))
                .collect();
            series.len() >= self.config.open_series
                && g.iter()
                    .any(|a| a.score * weight(a) >= self.config.open_score)
        });
        self.pending = waiting.into_iter().flatten().collect();
        ready
    }

    fn open_incident(&mut self, mut group: Vec<Anomaly>) -> u64 {
        group.sort_by_key(|a| a.time_ns);
        let id = self.next_id;
        self.next_id += 1;
        let first = group[0].time_ns;
        let mut inc = Incident {
            id,
            opened_ns: first,
            updated_ns: first,
            resolved_ns: None,
            services: BTreeSet::new(),
            anomalies: Vec::new(),
            ranking: Vec::new(),
            kept: HashMap::new(),
        };
        for a in group {
            let strong = self.config.strong(&a);
            inc.absorb(a, self.config.max_evidence, strong);
        }
        self.open.push(inc);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Edge;
    use crate::rank::tests::{anomaly, chain};
    use scry_detect::signals::Signal;

    const S: i64 = 1_000_000_000;

    #[test]
    fn an_incident_keeps_the_first_strongest_and_latest_anomaly_of_each_series() {
        let mut t = Tracker::new(IncidentConfig::default(), 0);
        let g = Graph::default();
        let scores = [0.8, 0.95, 0.7, 0.75, 0.72, 0.71];
        let at = |i: usize| (100 + 5 * i as i64) * S;
        let mut cycle = |i: usize| {
            let a = anomaly("pay", Signal::Logs, "error_logs", "", at(i), scores[i]);
            let b = anomaly("pay", Signal::Traces, "error_rate", "POST /pay", at(i), 0.9);
            t.update(at(i), vec![a, b], &g)
        };
        for i in 0..scores.len() {
            cycle(i);
        }
        let inc = &t.open()[0];
        let mut errors: Vec<(i64, f64)> = inc
            .anomalies
            .iter()
            .filter(|a| a.key.measure == scry_detect::Measure::ErrorLogs)
            .map(|a| (a.time_ns, a.score))
            .collect();
        errors.sort_by_key(|e| e.0);
        assert_eq!(errors, [(at(0), 0.8), (at(1), 0.95), (at(5), 0.71)]);
        // The steady series' first anomaly is also its strongest: two kept.
        assert_eq!(inc.anomalies.len(), 5);
    }

    #[test]
    fn a_cascade_is_one_incident_and_unrelated_faults_are_two() {
        let mut t = Tracker::new(IncidentConfig::default(), 0);
        let mut edges = vec![];
        for (a, b) in [
            ("web", "checkout"),
            ("checkout", "payment"),
            ("search", "index"),
        ] {
            edges.push(Edge {
                caller: a.into(),
                callee: b.into(),
                calls: 1.0,
                errors: 0.0,
            });
        }
        let g = Graph::from_edges(&edges);
        let first = vec![
            anomaly(
                "payment",
                Signal::Traces,
                "latency_p99",
                "POST /pay",
                100 * S,
                0.99,
            ),
            anomaly("payment", Signal::Logs, "error_logs", "", 100 * S, 0.9),
            anomaly(
                "index",
                Signal::Traces,
                "error_rate",
                "GET /q",
                105 * S,
                0.95,
            ),
            anomaly("index", Signal::Logs, "new_template", "abc", 105 * S, 0.9),
        ];
        let changes = t.update(110 * S, first, &g);
        let opened: Vec<_> = changes
            .iter()
            .filter(|(c, _)| matches!(c, Change::Opened(_)))
            .collect();
        assert_eq!(opened.len(), 2, "{changes:#?}");
        // The fault spreads to callers: same incident, updated, payment still on top.
        let later = vec![
            anomaly(
                "checkout",
                Signal::Traces,
                "latency_p99",
                "POST /checkout",
                120 * S,
                0.99,
            ),
            anomaly("web", Signal::Traces, "latency_p99", "GET /", 130 * S, 0.99),
        ];
        let changes = t.update(135 * S, later, &g);
        assert_eq!(changes.len(), 1, "{changes:#?}");
        let (change, inc) = &changes[0];
        assert!(matches!(change, Change::Updated(_)));
        assert_eq!(inc.services.len(), 3);
        assert_eq!(inc.top().unwrap().service, "payment");
        assert_eq!(t.open().len(), 2);
        // Quiet for longer than resolve_after: both resolve.
        let changes = t.update(
            135 * S + IncidentConfig::default().resolve_after_ns,
            vec![],
            &g,
        );
        assert_eq!(
            changes
                .iter()
                .filter(|(c, _)| matches!(c, Change::Resolved(_)))
                .count(),
            2
        );
        assert!(t.open().is_empty());
    }

    #[test]
    fn traffic_shifts_alone_do_not_open_an_incident() {
        let mut t = Tracker::new(IncidentConfig::default(), 0);
        let traffic = vec![
            anomaly("web", Signal::Traces, "requests", "GET /", 10 * S, 0.99),
            anomaly("web", Signal::Traces, "requests", "", 10 * S, 0.99),
            anomaly("checkout", Signal::Traces, "requests", "", 10 * S, 0.99),
            anomaly("checkout", Signal::Traces, "red", "", 10 * S, 0.99),
        ];
        assert!(t.update(11 * S, traffic, &chain()).is_empty());
    }

    #[test]
    fn one_odd_value_does_not_open_an_incident() {
        let mut t = Tracker::new(IncidentConfig::default(), 0);
        let lone = vec![anomaly(
            "cart",
            Signal::Traces,
            "latency_p99",
            "GET /cart",
            10 * S,
            0.99,
        )];
        assert!(t.update(11 * S, lone, &chain()).is_empty());
        assert!(t.open().is_empty());
    }

    #[test]
    fn weak_anomalies_do_not_keep_an_incident_open() {
        let mut t = Tracker::new(IncidentConfig::default(), 0);
        let fault = vec![
            anomaly(
                "cart",
                Signal::Traces,
                "latency_p99",
                "GET /cart",
                10 * S,
                0.99,
            ),
            anomaly("cart", Signal::Logs, "error_logs", "", 10 * S, 0.9),
        ];
        assert_eq!(t.update(15 * S, fault, &chain()).len(), 1);
        // A metric wobble every minute (score x weight 0.5) for ten minutes...
        let mut resolved = false;
        for minute in 1..=10 {
            let at = 10 * S + minute * 60 * S;
            let wobble = vec![anomaly(
                "cart",
                Signal::Metrics,
                "queue_depth",
                "",
                at,
                0.99,
            )];
            resolved |= t
                .update(at + 5 * S, wobble, &chain())
                .iter()
                .any(|(c, _)| matches!(c, Change::Resolved(_)));
        }
        // ... does not hold the incident open past 5 quiet minutes after the fault.
        assert!(resolved);
        assert!(t.open().is_empty());
    }
}
