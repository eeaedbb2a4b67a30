//! `scry eval rca --dataset DIR --cv`: how well the ranking's settings carry over to cases they
//! were not chosen on.
//!
//! The corpus is replayed once per setting of a small grid of the ranking's two hand-set
//! constants ([`RankConfig`]: series families counted per service, recency of evidence). Each
//! replay ranks every case. Then, per fold, a setting is chosen on the other cases (most first
//! places, then most in the top 3 and top 5, then the lowest rank sum; a tie keeps the shipped
//! setting) and the fold's cases are scored with it. Two kinds of folds: each fault type left
//! out in turn, and the cases split by injection time into an earlier and a later half. The
//! pooled held-out figures sit beside the in-sample ones (the shipped setting on every case, and
//! the best setting chosen on every case): a method whose two figures differ by more than a few
//! points is fitted to its cases.

use std::path::Path;
use std::sync::Arc;

use scry_incident::{IncidentConfig, RankConfig};
use tokio::sync::Semaphore;

use super::RcaArgs;
use super::nezha::Case;
use super::replay::{Replay, replay};
use crate::folds::{Fold, best_by, by_group, fit_outside, grid};

/// Series families counted per service, in the grid.
const TOP_SERIES: [usize; 3] = [3, 5, 8];
/// Recency of evidence in seconds, in the grid.
const RECENCY_S: [f64; 3] = [60.0, 120.0, 300.0];

/// The settings replayed, the shipped one among them.
fn settings() -> Vec<RankConfig> {
    grid(&TOP_SERIES, &RECENCY_S, |top_series, s| RankConfig {
        top_series,
        recency_ns: s * 1e9,
    })
}

/// Top-1, top-3 and top-5 counts and mean rank of some cases (no rank counts as `missing`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Figures {
    cases: usize,
    top1: usize,
    top3: usize,
    top5: usize,
    mean_rank: f64,
}

fn figures(ranks: &[Option<usize>], missing: usize) -> Figures {
    let within = |k: usize| ranks.iter().filter(|r| r.is_some_and(|r| r <= k)).count();
    let sum: usize = ranks.iter().map(|r| r.unwrap_or(missing)).sum();
    Figures {
        cases: ranks.len(),
        top1: within(1),
        top3: within(3),
        top5: within(5),
        mean_rank: sum as f64 / ranks.len().max(1) as f64,
    }
}

impl Figures {
    fn json(&self) -> serde_json::Value {
        let share = |k: usize| k as f64 / self.cases.max(1) as f64;
        serde_json::json!({
            "cases": self.cases, "top1": share(self.top1), "top3": share(self.top3),
            "top5": share(self.top5), "mean_rank": self.mean_rank,
        })
    }

    fn line(&self) -> String {
        let pct = |k: usize| 100.0 * k as f64 / self.cases.max(1) as f64;
        format!(
            "top-1 {:5.1} %  top-3 {:5.1} %  top-5 {:5.1} %  mean rank {:5.2}  ({} cases)",
            pct(self.top1),
            pct(self.top3),
            pct(self.top5),
            self.mean_rank,
            self.cases
        )
    }
}

/// Per setting, each case's rank.
struct Runs {
    grid: Vec<RankConfig>,
    ranks: Vec<Vec<Option<usize>>>,
    missing: usize,
    shipped: usize,
}

impl Runs {
    fn select(&self, setting: usize, cases: &[usize]) -> Vec<Option<usize>> {
        cases.iter().map(|&c| self.ranks[setting][c]).collect()
    }

    /// The setting that ranks `cases` best (see the module docs).
    fn fit(&self, cases: &[usize]) -> usize {
        best_by(self.grid.len(), self.shipped, |s| {
            let f = figures(&self.select(s, cases), self.missing);
            (f.top1, f.top3, f.top5, -(f.mean_rank * 1e6).round() as i64)
        })
    }

    /// Each fold's cases scored with the setting fitted on the other cases: per fold its chosen
    /// setting and held-out figures, and every case's held-out rank.
    fn cross_validate(
        &self,
        folds: &[Fold],
        n: usize,
    ) -> (Vec<(usize, Figures)>, Vec<Option<usize>>) {
        let (chosen, per_case) = fit_outside(folds, n, |train| self.fit(train));
        let per_fold = folds
            .iter()
            .zip(chosen)
            .map(|(fold, s)| (s, figures(&self.select(s, &fold.items), self.missing)))
            .collect();
        let pooled = per_case
            .iter()
            .enumerate()
            .map(|(c, &s)| self.ranks[s][c])
            .collect();
        (per_fold, pooled)
    }
}

fn describe(c: &RankConfig) -> String {
    format!(
        "top {} families, recency {:.0} s",
        c.top_series,
        c.recency_ns / 1e9
    )
}

fn fault_type_folds(cases: &[Case]) -> Vec<Fold> {
    let mut folds = by_group(cases.iter().map(|c| c.fault_type.as_str()));
    folds.sort_by(|a, b| a.name.cmp(&b.name));
    folds
}

fn time_folds(cases: &[Case]) -> Vec<Fold> {
    let mut order: Vec<usize> = (0..cases.len()).collect();
    order.sort_by_key(|&i| cases[i].inject_ns);
    let half = order.len().div_ceil(2);
    vec![
        Fold::new("earlier half", order[..half].to_vec()),
        Fold::new("later half", order[half..].to_vec()),
    ]
}

/// Replays the corpus once per setting of `grid`, as many at a time as there are cores: each
/// replay is its own in-process pipeline (one core's worth of work), and they share nothing but
/// the corpus files. Results come in the grid's order.
async fn replay_grid(
    root: &Path,
    args: &RcaArgs,
    grid: &[RankConfig],
) -> anyhow::Result<Vec<Replay>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let slots = Arc::new(Semaphore::new(cores));
    let replays: Vec<_> = grid
        .iter()
        .map(|setting| {
            let (root, args, slots) = (root.to_path_buf(), args.clone(), Arc::clone(&slots));
            let config = IncidentConfig {
                rank: *setting,
                ..IncidentConfig::default()
            };
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await?;
                replay(&root, &args, config).await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(replays.len());
    for r in replays {
        out.push(r.await??);
    }
    Ok(out)
}

/// Replays once per setting and prints in-sample and cross-validated figures.
pub async fn run(root: &Path, args: &RcaArgs) -> anyhow::Result<()> {
    let grid = settings();
    let shipped = grid
        .iter()
        .position(|c| *c == RankConfig::default())
        .expect("the grid holds the shipped setting");
    let mut ranks = Vec::new();
    let mut cases = Vec::new();
    let mut missing = 0;
    let replays = replay_grid(root, args, &grid).await?;
    for (i, (setting, r)) in grid.iter().zip(replays).enumerate() {
        let run = r.ranks();
        missing = r.services + 1;
        println!(
            "setting {i}: {:<32} {}",
            describe(setting),
            figures(&run, missing).line()
        );
        ranks.push(run);
        cases = r.cases;
    }
    let runs = Runs {
        grid,
        ranks,
        missing,
        shipped,
    };
    let n = cases.len();
    let all: Vec<usize> = (0..n).collect();
    let in_sample = figures(&runs.ranks[shipped], missing);
    let best = runs.fit(&all);
    let fitted = figures(&runs.ranks[best], missing);
    println!("in-sample, shipped setting:        {}", in_sample.line());
    println!(
        "in-sample, best setting ({}): {}",
        describe(&runs.grid[best]),
        fitted.line()
    );
    let mut json = serde_json::json!({
        "in_sample": in_sample.json(),
        "in_sample_best": fitted.json(),
    });
    for (scheme, folds) in [
        ("fault_type", fault_type_folds(&cases)),
        ("time", time_folds(&cases)),
    ] {
        let (per_fold, pooled) = runs.cross_validate(&folds, n);
        for (fold, (chosen, f)) in folds.iter().zip(&per_fold) {
            println!(
                "  {scheme} fold {:<15} chosen: {:<32} held out: {}",
                fold.name,
                describe(&runs.grid[*chosen]),
                f.line()
            );
        }
        let pooled = figures(&pooled, missing);
        println!("cross-validated ({scheme}):   {}", pooled.line());
        let folds: serde_json::Map<String, serde_json::Value> = folds
            .iter()
            .zip(&per_fold)
            .map(|(fold, (_, f))| (fold.name.clone(), f.json()))
            .collect();
        json[scheme] = serde_json::json!({"pooled": pooled.json(), "folds": folds});
    }
    if args.json {
        println!("{json}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(ranks: Vec<Vec<Option<usize>>>) -> Runs {
        let grid = settings().into_iter().take(ranks.len()).collect();
        Runs {
            grid,
            ranks,
            missing: 10,
            shipped: 0,
        }
    }

    #[test]
    fn a_fold_is_scored_with_the_setting_chosen_without_it() {
        // Setting 1 wins on cases 0 and 1 only; case 2 is best with setting 0.
        let r = runs(vec![
            vec![Some(2), Some(2), Some(1)],
            vec![Some(1), Some(1), Some(4)],
        ]);
        let folds = vec![Fold::new("a", vec![2]), Fold::new("b", vec![0, 1])];
        let (per_fold, pooled) = r.cross_validate(&folds, 3);
        assert_eq!(per_fold[0].0, 1, "fitted on cases 0 and 1");
        assert_eq!(pooled, vec![Some(2), Some(2), Some(4)]);
        assert_eq!(figures(&pooled, 10).top1, 0);
        // In sample the best setting gets two firsts.
        assert_eq!(figures(&r.ranks[r.fit(&[0, 1, 2])], 10).top1, 2);
    }

    #[test]
    fn a_tie_keeps_the_shipped_setting_and_a_missing_rank_counts_as_missing() {
        let r = runs(vec![vec![Some(1), None], vec![Some(1), None]]);
        assert_eq!(r.fit(&[0, 1]), 0);
        assert_eq!(figures(&r.ranks[0], 10).mean_rank, 5.5);
    }

    #[test]
    fn the_grid_holds_the_shipped_setting() {
        assert!(settings().contains(&RankConfig::default()));
    }
}
