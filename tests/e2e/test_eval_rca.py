"""`scry eval rca` on the simulated system: a short fixed-seed run through the real ingest path
must find the injected faults' services with accuracy above a floor and print the JSON summary."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def test_short_simulated_rca_run_ranks_injected_faults(scry_bin):
    out = subprocess.run(
        [str(scry_bin), "eval", "rca", "--scenarios", "1", "--seed", "1", "--json"],
        capture_output=True, text=True, timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["scenarios"] == 8  # one fault of each of the eight kinds
    assert summary["top1"] >= 0.6 and summary["top3"] >= 0.75, out.stdout
    assert summary["mttd_p50_s"] is not None and summary["mttd_p50_s"] <= 30, out.stdout
    assert summary["false_per_hour"] <= 10, out.stdout
    for kind in ("added latency", "dependency outage", "retry storm"):
        assert kind in out.stdout


TRAINTICKET = Path(__file__).resolve().parents[3] / "shared" / "data" / "rca" / "nezha_trainticket"


def test_trainticket_replay_scores_every_labelled_case(scry_bin):
    """`--dataset` replays the Nezha TrainTicket dev split (logs, traces, metrics) through the
    ingest path at its original timestamps and scores the rankings against labels/cases.csv. The
    floor is set well under the measured figures (docs/rca.md), far under the issue's target."""
    out = subprocess.run(
        [str(scry_bin), "eval", "rca", "--dataset", str(TRAINTICKET), "--json"],
        capture_output=True, text=True, timeout=1800,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["cases"] == 21
    assert set(summary["by_fault_type"]) == {"return", "exception", "cpu_contention"}
    assert sum(v["cases"] for v in summary["by_fault_type"].values()) == 21
    assert summary["top1"] <= summary["top3"] <= summary["top5"]
    assert summary["top1"] >= 0.4 and summary["top3"] >= 0.5, out.stdout
    assert 1.0 <= summary["mean_rank"] <= 47
    # Every case is listed with its root cause.
    assert out.stdout.count("2023-01-29_") == 21


def test_a_missing_dataset_is_a_clear_error(scry_bin, tmp_path):
    out = subprocess.run(
        [str(scry_bin), "eval", "rca", "--dataset", str(tmp_path / "nowhere")],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode != 0
    assert "no day folders" in out.stderr
