"""`scry eval rca` on the simulated system: a short fixed-seed run through the real ingest path
must find the injected faults' services with accuracy above a floor and print the JSON summary."""

from __future__ import annotations

import json
import subprocess


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
