//! `scry eval ...`: accuracy on public labelled data, offline (no daemon needed).

use std::path::PathBuf;

use crate::{loghub, nab};
use anyhow::Context;
use clap::{Args, Subcommand};
use scry_detect::logs::MinerConfig;

/// Evaluation harnesses.
#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Log template mining on Loghub 2k samples: grouping and parsing accuracy per system.
    Loghub(LoghubArgs),
    /// Anomaly detection on NAB series: the NAB score under its three profiles.
    Nab(NabArgs),
    /// Root-cause ranking on the simulated system with injected faults, in accelerated time.
    Rca(crate::rca::RcaArgs),
}

/// Arguments of `scry eval nab`.
#[derive(Args, Debug)]
pub struct NabArgs {
    /// Folder in the NAB layout (`data/*/*.csv`, `labels/combined_windows.json`).
    #[arg(long, default_value = "../shared/data/nab")]
    pub data: PathBuf,
    /// Also re-tune the threshold per profile on this data (NAB's sweeper), reported separately.
    #[arg(long)]
    pub optimize: bool,
    /// Cross-validate the detector's settings: fit on half the series and score the other
    /// half, both ways, and leave each NAB category out in turn (see `nab::cv`).
    #[arg(long)]
    pub cv: bool,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

fn json_key(profile: &str) -> &'static str {
    match profile {
        "reward_low_FP_rate" => "reward_low_fp",
        "reward_low_FN_rate" => "reward_low_fn",
        _ => "standard",
    }
}

fn run_nab(args: NabArgs) -> anyhow::Result<()> {
    let corpus = nab::Corpus::new(nab::load(&args.data)?);
    if args.cv {
        return run_nab_cv(&corpus, args.json);
    }
    println!("{} series", corpus.len());
    println!(
        "{:<20} {:>9} {:>8} {:>8} {:>6}",
        "profile", "threshold", "score", "windows", "FP"
    );
    let mut shipped = serde_json::Map::new();
    let mut tuned = serde_json::Map::new();
    for profile in &nab::PROFILES {
        let scores = corpus.detect(profile.threshold);
        let s = corpus.score(profile, &scores, profile.threshold);
        let row = |label: &str, s: &nab::ProfileScore| {
            println!(
                "{:<26} {:>9.4} {:>8.2} {:>4}/{:<3} {:>6}",
                label, s.threshold, s.score, s.windows_found, s.windows, s.false_positives
            )
        };
        row(profile.name, &s);
        shipped.insert(json_key(profile.name).into(), s.score.into());
        if args.optimize {
            let o = corpus.optimize(profile, &scores);
            row(&format!("{} (optimized)", json_key(profile.name)), &o);
            tuned.insert(
                json_key(profile.name).into(),
                serde_json::json!({"score": o.score, "threshold": o.threshold}),
            );
        }
    }
    if args.json {
        shipped.insert("series".into(), corpus.len().into());
        if args.optimize {
            shipped.insert("optimized".into(), tuned.into());
        }
        println!("{}", serde_json::Value::Object(shipped));
    }
    Ok(())
}

fn run_nab_cv(corpus: &nab::Corpus, json: bool) -> anyhow::Result<()> {
    println!(
        "{} series; held-out scores per fold, then pooled",
        corpus.len()
    );
    let mut out = serde_json::Map::new();
    for r in nab::cv::run(corpus) {
        println!(
            "{:<20} in-sample {:6.2} (best setting of the grid {:6.2})",
            r.profile, r.in_sample, r.in_sample_best
        );
        let mut profile = serde_json::json!({
            "in_sample": r.in_sample, "in_sample_best": r.in_sample_best,
        });
        for (scheme, (folds, pooled)) in [("halves", &r.halves), ("categories", &r.categories)] {
            for f in folds {
                let held = f
                    .held_out
                    .map_or("   -  ".to_string(), |s| format!("{s:6.2}"));
                println!(
                    "  {scheme:<10} {:<24} held out {held}  chosen: {}",
                    f.name, f.chosen
                );
            }
            println!("  {scheme:<10} cross-validated (pooled) {pooled:6.2}");
            let per_fold: serde_json::Map<String, serde_json::Value> = folds
                .iter()
                .map(|f| (f.name.clone(), f.held_out.into()))
                .collect();
            profile[scheme] = serde_json::json!({"pooled": pooled, "folds": per_fold});
        }
        out.insert(json_key(r.profile).into(), profile);
    }
    if json {
        println!("{}", serde_json::Value::Object(out));
    }
    Ok(())
}

/// Arguments of `scry eval loghub`.
#[derive(Args, Debug)]
pub struct LoghubArgs {
    /// Folder with one sub-folder per system (`<S>/<S>_2k.log` and its structured CSV).
    #[arg(long, default_value = "../shared/data/loghub")]
    pub data: PathBuf,
    /// Leave one system out: score each system with the miner setting chosen on the others.
    #[arg(long)]
    pub cv: bool,
    /// What the miner is given: the raw line (header found by shape) or the message alone, as
    /// an OTLP log body arrives.
    #[arg(long, value_enum, default_value_t = loghub::Input::Raw)]
    pub input: loghub::Input,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

/// Runs an evaluation and prints its scores.
pub fn run(cmd: EvalCommand) -> anyhow::Result<()> {
    match cmd {
        EvalCommand::Loghub(args) => run_loghub(args),
        EvalCommand::Nab(args) => run_nab(args),
        EvalCommand::Rca(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(crate::rca::run(args)),
    }
}

/// `{"<system>": {"ga": …, "pa": …}}` for the JSON line.
fn per_system<'a>(
    rows: impl Iterator<Item = (&'a String, f64, f64)>,
) -> serde_json::Map<String, serde_json::Value> {
    rows.map(|(system, ga, pa)| (system.clone(), serde_json::json!({"ga": ga, "pa": pa})))
        .collect()
}

fn run_loghub_cv(args: &LoghubArgs, systems: &[String]) -> anyhow::Result<()> {
    let held = loghub::cv::run(&args.data, systems, args.input)?;
    println!(
        "{:<12} {:>12} {:>9} {:>9}  chosen on the other systems",
        "system", "GA in-sample", "GA held", "PA held"
    );
    for h in &held {
        println!(
            "{:<12} {:>12.4} {:>9.4} {:>9.4}  {}",
            h.system, h.in_sample_ga, h.ga, h.pa, h.chosen
        );
    }
    let n = held.len().max(1) as f64;
    let avg = |f: fn(&loghub::cv::Held) -> f64| held.iter().map(f).sum::<f64>() / n;
    let min_ga = held.iter().map(|h| h.ga).fold(f64::INFINITY, f64::min);
    let (in_sample, ga, pa) = (avg(|h| h.in_sample_ga), avg(|h| h.ga), avg(|h| h.pa));
    println!(
        "average      in-sample GA {in_sample:.4}; leave-one-system-out GA {ga:.4} (min {min_ga:.4}), PA {pa:.4}"
    );
    if args.json {
        let systems = per_system(held.iter().map(|h| (&h.system, h.ga, h.pa)));
        println!(
            "{}",
            serde_json::json!({"in_sample_ga": in_sample, "cv_ga": ga, "cv_min_ga": min_ga,
                "cv_pa": pa, "systems": systems})
        );
    }
    Ok(())
}

fn run_loghub(args: LoghubArgs) -> anyhow::Result<()> {
    let config = MinerConfig::default();
    let systems = loghub::systems(&args.data)?;
    if args.cv {
        return run_loghub_cv(&args, &systems);
    }
    println!(
        "{:<12} {:>6} {:>7} {:>9} {:>7} {:>10} {:>12}",
        "system", "lines", "GA", "GA stored", "PA", "templates", "lines/s"
    );
    let mut scores = Vec::new();
    for system in &systems {
        let s = loghub::evaluate_input(&args.data, system, &config, args.input)
            .with_context(|| format!("evaluating {system}"))?;
        println!(
            "{:<12} {:>6} {:>7.4} {:>9.4} {:>7.4} {:>4} / {:<4} {:>12.0}",
            s.system,
            s.lines,
            s.ga,
            s.ga_stored,
            s.pa,
            s.templates,
            s.truth_templates,
            s.lines as f64 / s.mining_time.as_secs_f64().max(1e-9)
        );
        scores.push(s);
    }
    let n = scores.len() as f64;
    let avg_ga = scores.iter().map(|s| s.ga).sum::<f64>() / n;
    let avg_pa = scores.iter().map(|s| s.pa).sum::<f64>() / n;
    let avg_stored = scores.iter().map(|s| s.ga_stored).sum::<f64>() / n;
    let min_ga = scores.iter().map(|s| s.ga).fold(f64::INFINITY, f64::min);
    let lines: usize = scores.iter().map(|s| s.lines).sum();
    let secs: f64 = scores.iter().map(|s| s.mining_time.as_secs_f64()).sum();
    println!(
        "average      GA {avg_ga:.4} (min {min_ga:.4})  GA stored {avg_stored:.4}  PA {avg_pa:.4}  {:.0} lines/s overall",
        lines as f64 / secs.max(1e-9)
    );
    if args.json {
        let systems = per_system(scores.iter().map(|s| (&s.system, s.ga, s.pa)));
        let stored: serde_json::Map<_, _> = scores
            .iter()
            .map(|s| (s.system.clone(), s.ga_stored.into()))
            .collect();
        println!(
            "{}",
            serde_json::json!({"systems": systems, "avg_ga": avg_ga, "avg_pa": avg_pa,
                "avg_ga_stored": avg_stored, "ga_stored": stored})
        );
    }
    Ok(())
}
