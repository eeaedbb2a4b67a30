//! `scry eval nab --cv`: how well the detector's settings carry over to series they were not
//! chosen on.
//!
//! A small grid of the settings that were chosen by looking at NAB (the alert threshold and the
//! softness of the score) is run over every series. Per fold a setting is chosen on the other
//! series (highest NAB score of the profile there; a tie keeps the shipped setting) and the
//! fold's series are scored with it. Folds: the series in two halves (alternately by name), each
//! scored with the setting fitted on the other, and each NAB category left out in turn. The
//! pooled figure scores the whole corpus with every series' detections from the setting fitted
//! without it, normalised as NAB normalises the corpus.

use scry_detect::models::NovelExtremesConfig;

use super::{Corpus, PROFILES, Profile};
use crate::folds::{Fold, best_by, by_group, fit_outside, grid};

/// Alert thresholds in the grid (the shipped ones are 0.10 and 0.14).
const ALERTS: [f64; 6] = [0.05, 0.07, 0.10, 0.14, 0.20, 0.30];
/// Softness of the score in the grid (shipped 0.2).
const SOFTNESS: [f64; 3] = [0.1, 0.2, 0.4];

/// The settings of the grid.
fn settings() -> Vec<NovelExtremesConfig> {
    grid(&ALERTS, &SOFTNESS, |alert, softness| NovelExtremesConfig {
        alert,
        softness,
        ..Default::default()
    })
}

/// Per setting, each series' detections as 0 or 1.
pub struct Detections {
    grid: Vec<NovelExtremesConfig>,
    flags: Vec<Vec<Vec<f64>>>,
}

impl Detections {
    /// Runs every setting of the grid over `corpus`.
    pub fn run(corpus: &Corpus) -> Self {
        let grid = settings();
        let flags = grid
            .iter()
            .map(|c| {
                corpus
                    .detect_with(c)
                    .into_iter()
                    .map(|s| s.into_iter().map(|v| f64::from(v >= c.alert)).collect())
                    .collect()
            })
            .collect();
        Self { grid, flags }
    }

    fn shipped(&self, profile: &Profile) -> usize {
        self.grid
            .iter()
            .position(|c| {
                c.alert == profile.threshold
                    && c.softness == NovelExtremesConfig::default().softness
            })
            .unwrap_or(0)
    }

    /// NAB score of `series` of `corpus`, each with the detections of its setting.
    fn score(&self, corpus: &Corpus, profile: &Profile, series: &[(usize, usize)]) -> f64 {
        let idx: Vec<usize> = series.iter().map(|(i, _)| *i).collect();
        let sub = corpus.subset(&idx);
        let flags: Vec<Vec<f64>> = series
            .iter()
            .map(|&(i, s)| self.flags[s][i].clone())
            .collect();
        sub.score(profile, &flags, 0.5).score
    }

    /// The setting scoring `series` best under `profile`.
    fn fit(&self, corpus: &Corpus, profile: &Profile, series: &[usize]) -> usize {
        best_by(self.grid.len(), self.shipped(profile), |s| {
            let with: Vec<(usize, usize)> = series.iter().map(|&i| (i, s)).collect();
            self.score(corpus, profile, &with)
        })
    }
}

/// One fold's outcome: the setting chosen without it, and its held-out score when the fold has
/// windows to score on its own.
pub struct FoldScore {
    /// The fold's name.
    pub name: String,
    /// The chosen setting, described.
    pub chosen: String,
    /// NAB score of the fold's own series.
    pub held_out: Option<f64>,
}

/// Cross-validated figures of one profile.
pub struct Report {
    /// The profile.
    pub profile: &'static str,
    /// The shipped setting on every series.
    pub in_sample: f64,
    /// The best setting of the grid on every series.
    pub in_sample_best: f64,
    /// Halves: each fold, and the pooled score.
    pub halves: (Vec<FoldScore>, f64),
    /// Categories left out: each fold, and the pooled score.
    pub categories: (Vec<FoldScore>, f64),
}

fn describe(c: &NovelExtremesConfig) -> String {
    format!("alert {:.2}, softness {:.1}", c.alert, c.softness)
}

fn cross_validate(
    d: &Detections,
    corpus: &Corpus,
    profile: &Profile,
    folds: &[Fold],
) -> (Vec<FoldScore>, f64) {
    let n = corpus.len();
    let (chosen, per_series) = fit_outside(folds, n, |train| d.fit(corpus, profile, train));
    let out = folds
        .iter()
        .zip(chosen)
        .map(|(fold, s)| {
            let with: Vec<(usize, usize)> = fold.items.iter().map(|&i| (i, s)).collect();
            let has_windows = corpus.subset(&fold.items).windows > 0;
            FoldScore {
                name: fold.name.clone(),
                chosen: describe(&d.grid[s]),
                held_out: has_windows.then(|| d.score(corpus, profile, &with)),
            }
        })
        .collect();
    let pooled: Vec<(usize, usize)> = per_series.into_iter().enumerate().collect();
    (out, d.score(corpus, profile, &pooled))
}

/// The folds: alternate series by name in two halves, and each category.
fn folds(corpus: &Corpus) -> [Vec<Fold>; 2] {
    let n = corpus.len();
    let halves = vec![
        Fold::new("half A", (0..n).step_by(2).collect()),
        Fold::new("half B", (1..n).step_by(2).collect()),
    ];
    let categories = by_group(
        corpus
            .names()
            .map(|name| name.split('/').next().unwrap_or(name)),
    );
    [halves, categories]
}

/// In-sample and cross-validated figures for every profile.
pub fn run(corpus: &Corpus) -> Vec<Report> {
    let d = Detections::run(corpus);
    let [halves, categories] = folds(corpus);
    let all: Vec<usize> = (0..corpus.len()).collect();
    PROFILES
        .iter()
        .map(|profile| {
            let with = |s: usize| all.iter().map(|&i| (i, s)).collect::<Vec<_>>();
            let best = d.fit(corpus, profile, &all);
            Report {
                profile: profile.name,
                in_sample: d.score(corpus, profile, &with(d.shipped(profile))),
                in_sample_best: d.score(corpus, profile, &with(best)),
                halves: cross_validate(&d, corpus, profile, &halves),
                categories: cross_validate(&d, corpus, profile, &categories),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nab::Series;

    #[test]
    fn held_out_series_are_scored_with_a_setting_fitted_without_them() {
        // A level shift inside the window of each series, found early by any sane setting.
        let series: Vec<Series> = (0..4)
            .map(|k| {
                let mut values: Vec<f64> = (0..1200).map(|i| 10.0 + (i % 7) as f64).collect();
                for v in &mut values[800..] {
                    *v = 50.0 + k as f64;
                }
                Series {
                    name: format!("cat{}/s{k}.csv", k % 2),
                    values,
                    windows: vec![(790, 840)],
                }
            })
            .collect();
        let corpus = Corpus::new(series);
        let reports = run(&corpus);
        let standard = &reports[0];
        assert_eq!(reports.len(), 3);
        assert!(standard.in_sample > 50.0, "{}", standard.in_sample);
        assert!(standard.in_sample_best >= standard.in_sample - 1e-9);
        assert_eq!(standard.categories.0.len(), 2);
        assert!(standard.halves.0.iter().all(|f| f.held_out.is_some()));
        assert!(standard.halves.1 > 50.0, "{}", standard.halves.1);
    }
}
