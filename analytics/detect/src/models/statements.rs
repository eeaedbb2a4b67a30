//! Log statements per span against their baseline: a new or bursting warning or error
//! statement, or an informational statement that stopped being executed.
//!
//! For each (operation, statement) the baseline is the statement's lines per span of the
//! operation, `mu`, and the spread of that rate between one-minute chunks, `V` (weighted by spans,
//! floored at `mu·max(1 − mu, 0.1)`: a statement every span logs once is steadier than Poisson).
//! Each cycle tests the last minute and the last two minutes: with `n` spans of the operation and
//! `c` lines, `c` is compared with a count of mean `mu·n` and variance `V·n` — binomial below
//! `mu`, Poisson at it, negative binomial above — and the tail probability `P` becomes a signed
//! z-equivalent `sqrt(-2 ln P)`. A rise is judged with variance at least `mu` (never sharper than
//! Poisson). Informational statements are tested for a drop, the others for a rise. Chunks fold into the baseline once they leave
//! the windows, except for a service that was flagged recently (so a fault does not become
//! normal). Origin: docs/research/rca (Nezha TrainTicket), and docs/rca.md.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::signals::statements::{Operation, Statement, StatementCounts};

/// Settings of the statement model.
#[derive(Debug, Clone)]
pub struct StatementConfig {
    /// Window lengths tested, in buckets.
    pub windows: Vec<usize>,
    /// Buckets per baseline chunk.
    pub chunk_buckets: usize,
    /// Baseline spans an operation needs before it is judged...
    pub min_base_spans: f64,
    /// ... and baseline chunks (minutes with spans of it).
    pub min_base_chunks: f64,
    /// Expected lines of a statement never seen before in the window (makes a first error
    /// line mildly, and a few of them clearly, notable).
    pub unseen_mean: f64,
    /// Chunks of memory: older chunks fade with weight `1 - 1/memory` per chunk.
    pub memory_chunks: f64,
    /// Smallest spread of a statement's rate, as a fraction of its mean: a statement every span
    /// logs exactly once is nearly certain, not certain.
    pub min_dispersion: f64,
    /// Largest |z| reported.
    pub z_cap: f64,
    /// Smallest |z| reported (and held out of the baseline).
    pub flag_z: f64,
    /// A flagged service's chunks stay out of the baseline until it has been quiet for this
    /// many buckets...
    pub hold_buckets: i64,
    /// ... or this many of its chunks were held (then the change is taken as its new normal).
    pub max_held_chunks: u32,
}

impl Default for StatementConfig {
    fn default() -> Self {
        Self {
            windows: vec![6, 12],
            chunk_buckets: 6,
            min_base_spans: 5.0,
            min_base_chunks: 2.0,
            unseen_mean: 0.1,
            memory_chunks: 1440.0,
            min_dispersion: 0.1,
            z_cap: 10.0,
            flag_z: 5.0,
            hold_buckets: 30,
            max_held_chunks: 10,
        }
    }
}

/// A statement whose count in a window is improbable under its baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementFinding {
    /// The operation whose spans were counted.
    pub operation: Operation,
    /// The statement.
    pub statement: Statement,
    /// Signed z-equivalent of the tail probability (negative: fewer lines than expected).
    pub z: f64,
    /// Lines seen in the window.
    pub observed: f64,
    /// Lines expected from the spans in the window.
    pub expected: f64,
    /// Spans of the operation in the window.
    pub spans: f64,
    /// Start of the window, ns since the epoch.
    pub window_start_ns: i64,
    /// Start of the window's last bucket.
    pub bucket_ns: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct KeyBaseline {
    /// Σ lines.
    lines: f64,
    /// Σ lines² / spans over chunks (for the spread).
    lines_sq_per_span: f64,
    /// Chunks in a row that were outliers and folded as their expected count.
    #[serde(default)]
    imputed: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct OpBaseline {
    spans: f64,
    chunks: f64,
    keys: Vec<(Statement, KeyBaseline)>,
}

impl OpBaseline {
    fn key_mut(&mut self, s: &Statement) -> &mut KeyBaseline {
        let i = match self.keys.iter().position(|(k, _)| k == s) {
            Some(i) => i,
            None => {
                self.keys.push((s.clone(), KeyBaseline::default()));
                self.keys.len() - 1
            }
        };
        &mut self.keys[i].1
    }

    fn key(&self, s: &Statement) -> Option<&KeyBaseline> {
        self.keys.iter().find(|(k, _)| k == s).map(|(_, b)| b)
    }

    /// The lines to fold for a chunk of `n` spans: a statement whose count is an outlier
    /// (|z| ≥ `flag_z`, both directions) is folded as its expected count, so a fault elsewhere
    /// that stopped a statement here for a while does not widen its normal spread. After
    /// `max_held_chunks` such chunks in a row the count is folded as it is: a new normal.
    fn robust_counts(
        &mut self,
        chunk: &[(&Statement, f64)],
        n: f64,
        config: &StatementConfig,
    ) -> Vec<(Statement, f64)> {
        let judged = self.judged(config);
        let count = |s: &Statement| chunk.iter().find(|(k, _)| *k == s).map(|(_, c)| *c);
        // Statements new to the baseline are folded as they are.
        let mut out: Vec<(Statement, f64)> = chunk
            .iter()
            .filter(|(s, _)| self.key(s).is_none())
            .map(|(s, c)| ((*s).clone(), *c))
            .collect();
        for i in 0..self.keys.len() {
            let s = &self.keys[i].0;
            let c = count(s).unwrap_or(0.0);
            let (mu, spread) = self.rate(s, config.min_dispersion);
            let (expected, var) = (mu * n, spread * n);
            let outlier = judged
                && mu > 0.0
                && (c - expected).abs() >= 2.0 * (var + 1.0).sqrt()
                && nb_tail_z(c, expected, var, config.z_cap).abs() >= config.flag_z;
            let (s, k) = &mut self.keys[i];
            let folded = if outlier && k.imputed < config.max_held_chunks {
                k.imputed += 1;
                expected
            } else {
                k.imputed = 0;
                c
            };
            out.push((s.clone(), folded));
        }
        out
    }

    /// Whether the baseline has seen enough spans, in enough chunks, to judge a window by.
    fn judged(&self, config: &StatementConfig) -> bool {
        self.spans >= config.min_base_spans && self.chunks >= config.min_base_chunks
    }

    /// Mean lines per span and the spread of that rate (per span). The spread is at least that
    /// of a line a span logs or not at random (`mu (1 - mu)`), and at least `floor · mu`.
    fn rate(&self, s: &Statement, floor: f64) -> (f64, f64) {
        let Some(b) = self.key(s) else {
            return (0.0, 0.0);
        };
        let mu = b.lines / self.spans;
        let spread = (b.lines_sq_per_span - b.lines * b.lines / self.spans).max(0.0)
            / (self.chunks - 1.0).max(1.0);
        (mu, spread.max(mu * (1.0 - mu).max(floor)))
    }
}

/// The baselines and the recent buckets.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct StatementModel {
    ops: Vec<(Operation, OpBaseline)>,
    /// (service, held until, chunks held)
    held: Vec<(String, i64, u32)>,
    #[serde(skip)]
    index: HashMap<Operation, usize>,
    #[serde(skip)]
    recent: VecDeque<StatementCounts>,
    #[serde(skip)]
    staged: Vec<StatementCounts>,
}

impl StatementModel {
    /// Adds closed buckets (in time order) and tests the windows ending at the last one.
    pub fn observe(
        &mut self,
        closed: Vec<StatementCounts>,
        config: &StatementConfig,
        width_ns: i64,
    ) -> Vec<StatementFinding> {
        if closed.is_empty() {
            return Vec::new();
        }
        if self.index.len() != self.ops.len() {
            self.reindex();
        }
        let longest = config.windows.iter().copied().max().unwrap_or(1);
        for counts in closed {
            self.recent.push_back(counts);
            while self.recent.len() > longest {
                let old = self.recent.pop_front().expect("longer than the window");
                self.staged.push(old);
                if self.staged.len() >= config.chunk_buckets {
                    self.fold_chunk(config);
                }
            }
        }
        let findings = self.test(config);
        self.hold(&findings, config, width_ns);
        findings
    }

    fn reindex(&mut self) {
        self.index = self
            .ops
            .iter()
            .enumerate()
            .map(|(i, (op, _))| (op.clone(), i))
            .collect();
    }

    /// Whether `service`'s chunk starting at `at` stays out of the baseline; counts it if so.
    fn hold_chunk(&mut self, service: &str, at: i64, config: &StatementConfig) -> bool {
        match self.held.iter_mut().find(|(s, _, _)| s == service) {
            Some((_, until, held)) if *until >= at && *held < config.max_held_chunks => {
                *held += 1;
                true
            }
            _ => false,
        }
    }

    fn hold(&mut self, findings: &[StatementFinding], config: &StatementConfig, width: i64) {
        for f in findings {
            let until = f.bucket_ns + config.hold_buckets * width;
            match self
                .held
                .iter_mut()
                .find(|(s, _, _)| *s == f.operation.service)
            {
                Some((_, u, _)) => *u = (*u).max(until),
                None => self.held.push((f.operation.service.clone(), until, 0)),
            }
        }
        let latest = self.recent.back().map_or(i64::MIN, |b| b.bucket_ns);
        self.held.retain(|(_, until, _)| *until >= latest);
    }

    fn fold_chunk(&mut self, config: &StatementConfig) {
        let chunk = std::mem::take(&mut self.staged);
        let start = chunk.first().map_or(0, |c| c.bucket_ns);
        let mut spans: HashMap<&Operation, f64> = HashMap::new();
        let mut lines: HashMap<&Operation, Vec<(&Statement, f64)>> = HashMap::new();
        for c in &chunk {
            for (op, n) in &c.spans {
                *spans.entry(op).or_default() += *n as f64;
            }
            for ((op, s), n) in &c.lines {
                let v = lines.entry(op).or_default();
                match v.iter_mut().find(|(k, _)| *k == s) {
                    Some((_, m)) => *m += *n as f64,
                    None => v.push((s, *n as f64)),
                }
            }
        }
        let keep = 1.0 - 1.0 / config.memory_chunks.max(1.0);
        let mut held: HashMap<&str, bool> = HashMap::new();
        for (op, n) in spans {
            let skip = match held.get(op.service.as_str()) {
                Some(h) => *h,
                None => {
                    let h = self.hold_chunk(&op.service, start, config);
                    held.insert(&op.service, h);
                    h
                }
            };
            if n <= 0.0 || skip {
                continue;
            }
            let i = match self.index.get(op) {
                Some(i) => *i,
                None => {
                    self.ops.push((op.clone(), OpBaseline::default()));
                    self.index.insert(op.clone(), self.ops.len() - 1);
                    self.ops.len() - 1
                }
            };
            let base = &mut self.ops[i].1;
            let chunk_lines = lines.get(op).map_or(&[][..], |v| &v[..]);
            let counts = base.robust_counts(chunk_lines, n, config);
            base.spans = base.spans * keep + n;
            base.chunks = base.chunks * keep + 1.0;
            for (_, k) in &mut base.keys {
                k.lines *= keep;
                k.lines_sq_per_span *= keep;
            }
            for (s, c) in counts {
                let k = base.key_mut(&s);
                k.lines += c;
                k.lines_sq_per_span += c * c / n;
            }
        }
    }

    /// Window totals of the last `w` buckets: spans per operation, lines per (operation, statement).
    fn window(&self, w: usize) -> WindowCounts<'_> {
        let mut out = WindowCounts::default();
        for c in self.recent.iter().rev().take(w) {
            out.start = c.bucket_ns;
            for (op, n) in &c.spans {
                *out.spans.entry(op).or_default() += *n as f64;
            }
            for ((op, s), n) in &c.lines {
                *out.lines.entry(op).or_default().entry(s).or_default() += *n as f64;
            }
        }
        out
    }

    fn test(&self, config: &StatementConfig) -> Vec<StatementFinding> {
        let Some(last) = self.recent.back().map(|b| b.bucket_ns) else {
            return Vec::new();
        };
        let mut best: HashMap<(&Operation, &Statement), StatementFinding> = HashMap::new();
        for &w in &config.windows {
            if self.recent.len() < w {
                continue;
            }
            let win = self.window(w);
            for (op, nw) in &win.spans {
                let Some(base) = self.index.get(*op).map(|i| &self.ops[*i].1) else {
                    continue;
                };
                if !base.judged(config) {
                    continue;
                }
                let lines = win.lines.get(op);
                let seen = base.keys.iter().map(|(s, _)| s);
                let new = lines
                    .into_iter()
                    .flat_map(|l| l.keys())
                    .filter(|s| base.key(s).is_none())
                    .copied();
                for s in seen.chain(new) {
                    let cw = lines.and_then(|l| l.get(s)).copied().unwrap_or(0.0);
                    let Some(z) = statement_z(base, s, *nw, cw, config) else {
                        continue;
                    };
                    let (mu, _) = base.rate(s, config.min_dispersion);
                    let finding = StatementFinding {
                        operation: (*op).clone(),
                        statement: s.clone(),
                        z,
                        observed: cw,
                        expected: mu * nw,
                        spans: *nw,
                        window_start_ns: win.start,
                        bucket_ns: last,
                    };
                    let slot = best.entry((op, s)).or_insert_with(|| finding.clone());
                    if z.abs() > slot.z.abs() {
                        *slot = finding;
                    }
                }
            }
        }
        let mut out: Vec<StatementFinding> = best
            .into_values()
            .filter(|f| f.z.abs() >= config.flag_z)
            .collect();
        // A stable order, so the same input groups into the same incidents.
        out.sort_by(|a, b| (&a.operation, &a.statement).cmp(&(&b.operation, &b.statement)));
        out
    }
}

#[derive(Default)]
struct WindowCounts<'a> {
    start: i64,
    spans: HashMap<&'a Operation, f64>,
    /// Lines per operation, per statement.
    lines: HashMap<&'a Operation, HashMap<&'a Statement, f64>>,
}

/// The signed z of `cw` lines in `nw` spans, when it departs in the direction that matters
/// for the statement (down for informational, up otherwise); `None` otherwise.
fn statement_z(
    base: &OpBaseline,
    s: &Statement,
    nw: f64,
    cw: f64,
    config: &StatementConfig,
) -> Option<f64> {
    let (mu, spread) = base.rate(s, config.min_dispersion);
    let expected = mu * nw;
    let var = spread * nw;
    let rough = (cw - expected) / (var + 1.0).sqrt();
    let notable = if s.info { rough <= -1.0 } else { rough >= 1.0 };
    if !notable {
        return None;
    }
    let (mean, var) = if expected > 0.0 {
        (expected, var)
    } else {
        (config.unseen_mean, config.unseen_mean)
    };
    let z = nb_tail_z(cw, mean, var, config.z_cap);
    Some(z)
}

/// ln P(X = k) for a count with mean `m` and variance `var`: negative binomial when `var > m`,
/// Poisson when `var` ≈ `m`, and binomial (`m / p` trials of probability `p = 1 - var / m`)
/// when `var < m`, as for a statement that every span logs exactly once.
fn nb_ln_pmf(k: f64, m: f64, var: f64) -> f64 {
    if var < m * 0.9999 {
        let p = 1.0 - var / m;
        let n = m / p;
        if k > n {
            return f64::NEG_INFINITY;
        }
        return libm::lgamma(n + 1.0) - libm::lgamma(k + 1.0) - libm::lgamma(n - k + 1.0)
            + k * p.ln()
            + (n - k) * (1.0 - p).ln();
    }
    if var <= m * 1.0001 {
        return k * m.ln() - m - libm::lgamma(k + 1.0);
    }
    let p = m / var;
    let r = m * m / (var - m);
    libm::lgamma(k + r) - libm::lgamma(r) - libm::lgamma(k + 1.0) + r * p.ln() + k * (1.0 - p).ln()
}

/// Signed z-equivalent `sqrt(-2 ln P)` of the tail of `k` (upper when above the mean, lower
/// otherwise), capped at `cap`.
///
/// Under-dispersion (`var < m`) sharpens only the lower tail: a span that logs a statement
/// once as a rule may still log it twice, so a rise is judged at least as loosely as Poisson.
pub fn nb_tail_z(k: f64, m: f64, var: f64, cap: f64) -> f64 {
    let k = k.round().max(0.0);
    let upper = k > m;
    let var = if upper { var.max(m) } else { var };
    let mut terms = Vec::new();
    if upper {
        // The pmf falls beyond the mode; stop once terms are negligible.
        let mut j = k;
        loop {
            let t = nb_ln_pmf(j, m, var);
            terms.push(t);
            let peak = terms.iter().copied().fold(f64::MIN, f64::max);
            if t < peak - 40.0 || j > k + 10_000.0 {
                break;
            }
            j += 1.0;
        }
    } else {
        let mut j = 0.0;
        while j <= k {
            terms.push(nb_ln_pmf(j, m, var));
            j += 1.0;
        }
    }
    let peak = terms.iter().copied().fold(f64::MIN, f64::max);
    let ln_p = (peak + terms.iter().map(|t| (t - peak).exp()).sum::<f64>().ln()).min(0.0);
    let z = (-2.0 * ln_p).max(0.0).sqrt().min(cap);
    if upper { z } else { -z }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op() -> Operation {
        Operation {
            service: "route".into(),
            name: "queryByIds".into(),
            after: None,
        }
    }

    fn stmt(name: &str, info: bool) -> Statement {
        Statement {
            name: name.into(),
            info,
        }
    }

    /// A bucket of `spans` spans with `per_span` lines of `s` each.
    fn bucket(t: i64, spans: u64, lines: &[(Statement, u64)]) -> StatementCounts {
        StatementCounts {
            bucket_ns: t,
            spans: HashMap::from([(op(), spans)]),
            lines: lines.iter().map(|(s, n)| ((op(), s.clone()), *n)).collect(),
        }
    }

    fn run(
        model: &mut StatementModel,
        from: i64,
        to: i64,
        f: impl Fn(i64) -> StatementCounts,
    ) -> Vec<StatementFinding> {
        let config = StatementConfig::default();
        let mut out = Vec::new();
        for t in from..to {
            out = model.observe(vec![f(t)], &config, 1);
        }
        out
    }

    #[test]
    fn the_tail_is_symmetric_in_meaning() {
        assert!(nb_tail_z(30.0, 10.0, 10.0, 10.0) > 4.0);
        assert!(nb_tail_z(0.0, 10.0, 10.0, 10.0) < -4.0);
        assert!(nb_tail_z(11.0, 10.0, 10.0, 10.0).abs() < 1.5);
        // Over-dispersion makes the same count less surprising...
        assert!(nb_tail_z(30.0, 10.0, 100.0, 10.0) < nb_tail_z(30.0, 10.0, 10.0, 10.0));
        // ... and under-dispersion (a statement every span logs once) more.
        assert!(nb_tail_z(0.0, 15.0, 1.5, 10.0) < -8.0);
        assert!(nb_tail_z(0.0, 15.0, 15.0, 10.0) > -6.0);
        assert!(nb_tail_z(14.0, 15.0, 1.5, 10.0).abs() < 2.0);
        assert_eq!(
            nb_tail_z(20.0, 15.0, 1.5, 10.0),
            nb_tail_z(20.0, 15.0, 15.0, 10.0)
        );
    }

    #[test]
    fn a_statement_that_stops_is_found_and_a_steady_one_is_not() {
        let info = stmt("RouteController#53", true);
        let mut model = StatementModel::default();
        let steady = run(&mut model, 0, 200, |t| {
            bucket(
                t,
                10 + (t % 3) as u64,
                &[(info.clone(), 7 + (t % 3) as u64)],
            )
        });
        assert!(steady.is_empty(), "{steady:?}");
        let stopped = run(&mut model, 200, 212, |t| bucket(t, 10, &[]));
        let f = stopped
            .iter()
            .find(|f| f.statement == info)
            .expect("a drop");
        assert!(f.z <= -5.0, "{f:?}");
    }

    #[test]
    fn an_outlier_chunk_is_folded_as_expected_until_it_lasts() {
        let info = stmt("TravelServiceImpl#372", true);
        let config = StatementConfig::default();
        let mut base = OpBaseline {
            spans: 600.0,
            chunks: 10.0,
            ..OpBaseline::default()
        };
        base.key_mut(&info).lines = 600.0;
        base.key_mut(&info).lines_sq_per_span = 600.0;
        // A normal chunk is folded as it is.
        assert_eq!(
            base.robust_counts(&[(&info, 58.0)], 60.0, &config),
            vec![(info.clone(), 58.0)]
        );
        // A chunk where the statement stopped is folded as the expected 60 lines...
        for _ in 0..config.max_held_chunks {
            assert_eq!(
                base.robust_counts(&[], 60.0, &config),
                vec![(info.clone(), 60.0)]
            );
        }
        // ... until the stop has lasted long enough to be the new normal.
        assert_eq!(
            base.robust_counts(&[], 60.0, &config),
            vec![(info.clone(), 0.0)]
        );
    }

    #[test]
    fn a_traffic_change_alone_is_not_a_finding() {
        let info = stmt("RouteController#53", true);
        let mut model = StatementModel::default();
        run(&mut model, 0, 200, |t| bucket(t, 10, &[(info.clone(), 10)]));
        let busier = run(&mut model, 200, 212, |t| {
            bucket(t, 40, &[(info.clone(), 40)])
        });
        assert!(busier.is_empty(), "{busier:?}");
    }

    #[test]
    fn a_new_error_statement_is_found_and_the_fault_is_not_learned() {
        let info = stmt("level:INFO", true);
        let error = stmt("FoodServiceImpl#245", false);
        let mut model = StatementModel::default();
        run(&mut model, 0, 200, |t| bucket(t, 10, &[(info.clone(), 10)]));
        let faulty = |t| bucket(t, 10, &[(info.clone(), 10), (error.clone(), 5)]);
        let first = run(&mut model, 200, 212, faulty);
        assert!(
            first.iter().any(|f| f.statement == error && f.z >= 5.0),
            "{first:?}"
        );
        // Still anomalous minutes later: the flagged service's chunks stay out of the baseline.
        let later = run(&mut model, 212, 240, faulty);
        assert!(
            later.iter().any(|f| f.statement == error && f.z >= 5.0),
            "{later:?}"
        );
    }
}
