//! `scry eval ...`: accuracy on public labelled data, offline (no daemon needed).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use scry_analytics::eval::loghub;
use scry_analytics::logs::MinerConfig;

/// Evaluation harnesses.
#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Log template mining on Loghub 2k samples: grouping and parsing accuracy per system.
    Loghub(LoghubArgs),
}

/// Arguments of `scry eval loghub`.
#[derive(Args, Debug)]
pub struct LoghubArgs {
    /// Folder with one sub-folder per system (`<S>/<S>_2k.log` and its structured CSV).
    #[arg(long, default_value = "../shared/data/loghub")]
    pub data: PathBuf,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

/// Runs an evaluation and prints its scores.
pub fn run(cmd: EvalCommand) -> anyhow::Result<()> {
    let EvalCommand::Loghub(args) = cmd;
    let config = MinerConfig::default();
    let systems = loghub::systems(&args.data)?;
    println!(
        "{:<12} {:>6} {:>7} {:>7} {:>10} {:>12}",
        "system", "lines", "GA", "PA", "templates", "lines/s"
    );
    let mut scores = Vec::new();
    for system in &systems {
        let s = loghub::evaluate_system(&args.data, system, &config)
            .with_context(|| format!("evaluating {system}"))?;
        println!(
            "{:<12} {:>6} {:>7.4} {:>7.4} {:>4} / {:<4} {:>12.0}",
            s.system,
            s.lines,
            s.ga,
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
    let min_ga = scores.iter().map(|s| s.ga).fold(f64::INFINITY, f64::min);
    let lines: usize = scores.iter().map(|s| s.lines).sum();
    let secs: f64 = scores.iter().map(|s| s.mining_time.as_secs_f64()).sum();
    println!(
        "average      GA {avg_ga:.4} (min {min_ga:.4})  PA {avg_pa:.4}  {:.0} lines/s overall",
        lines as f64 / secs.max(1e-9)
    );
    if args.json {
        let systems: serde_json::Map<String, serde_json::Value> = scores
            .iter()
            .map(|s| {
                (
                    s.system.clone(),
                    serde_json::json!({"ga": s.ga, "pa": s.pa}),
                )
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"systems": systems, "avg_ga": avg_ga, "avg_pa": avg_pa})
        );
    }
    Ok(())
}
