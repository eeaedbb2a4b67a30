//! `scry eval loghub --cv`: leave one system out. A small grid of the miner's settings is run on
//! every system; for each system, the setting with the best average grouping accuracy on the
//! other systems (a tie keeps the shipped setting) is the one it is scored with, so nothing
//! chosen by looking at a system is used to score it.

use std::path::Path;

use scry_detect::logs::MinerConfig;

use super::{Input, LoghubError, evaluate_input};
use crate::folds::{Fold, best_by, fit_outside, grid};

/// Similarity thresholds in the grid (shipped 0.6).
const SIMILARITY: [f64; 3] = [0.5, 0.6, 0.7];
/// Distinct values a position may have and stay in the template (shipped 6).
const MAX_CLOSED: [usize; 3] = [4, 6, 8];

fn settings() -> Vec<MinerConfig> {
    grid(&SIMILARITY, &MAX_CLOSED, |similarity, max_closed| {
        MinerConfig {
            similarity,
            max_closed,
            max_values: max_closed.max(MinerConfig::default().max_values),
            ..MinerConfig::default()
        }
    })
}

/// One system scored with the setting chosen on the others.
#[derive(Debug, Clone)]
pub struct Held {
    /// The system left out.
    pub system: String,
    /// Its grouping accuracy with the shipped setting.
    pub in_sample_ga: f64,
    /// Its grouping accuracy with the setting chosen on the other systems.
    pub ga: f64,
    /// Its parsing accuracy with that setting.
    pub pa: f64,
    /// The chosen setting.
    pub chosen: String,
}

fn describe(c: &MinerConfig) -> String {
    format!(
        "similarity {:.1}, max closed {}",
        c.similarity, c.max_closed
    )
}

/// Leave-one-system-out over `systems` under `dir`.
pub fn run(dir: &Path, systems: &[String], input: Input) -> Result<Vec<Held>, LoghubError> {
    let grid = settings();
    let shipped = grid
        .iter()
        .position(|c| {
            let d = MinerConfig::default();
            c.similarity == d.similarity && c.max_closed == d.max_closed
        })
        .unwrap_or(0);
    // scores[setting][system] = (GA, PA)
    let mut scores = Vec::new();
    for config in &grid {
        let row = systems
            .iter()
            .map(|s| evaluate_input(dir, s, config, input).map(|r| (r.ga, r.pa)))
            .collect::<Result<Vec<_>, _>>()?;
        scores.push(row);
    }
    let n = systems.len();
    let mean_ga = |s: usize, train: &[usize]| {
        train.iter().map(|&k| scores[s][k].0).sum::<f64>() / train.len().max(1) as f64
    };
    let folds: Vec<Fold> = (0..n).map(|k| Fold::new(&systems[k], vec![k])).collect();
    let (chosen, _) = fit_outside(&folds, n, |train| {
        best_by(grid.len(), shipped, |s| mean_ga(s, train))
    });
    let held = chosen
        .into_iter()
        .enumerate()
        .map(|(out, best)| Held {
            system: systems[out].clone(),
            in_sample_ga: scores[shipped][out].0,
            ga: scores[best][out].0,
            pa: scores[best][out].1,
            chosen: describe(&grid[best]),
        })
        .collect();
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_holds_the_shipped_setting() {
        let d = MinerConfig::default();
        assert!(settings().iter().any(|c| c.similarity == d.similarity
            && c.max_closed == d.max_closed
            && c.max_values == d.max_values));
    }
}
