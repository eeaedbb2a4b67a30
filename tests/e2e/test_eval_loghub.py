"""`scry eval loghub` on a slice of the Loghub samples laid out in a temporary folder: the command
works on any directory in the layout and prints the documented JSON line."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

LOGHUB = Path(__file__).resolve().parents[3] / "shared" / "data" / "loghub"
LINES = 400


def make_slice(dst: Path, system: str):
    src = LOGHUB / system
    out = dst / system
    out.mkdir(parents=True)
    raw = (src / f"{system}_2k.log").read_bytes().decode("utf-8").split("\r\n")[:LINES]
    (out / f"{system}_2k.log").write_text("\r\n".join(raw), encoding="utf-8")
    with open(src / f"{system}_2k.log_structured_corrected.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    with open(out / f"{system}_2k.log_structured_corrected.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows[: LINES + 1])


def test_eval_loghub_json_on_a_slice(scry_bin, tmp_path):
    assert LOGHUB.is_dir(), f"Loghub samples expected at {LOGHUB}"
    for system in ("Apache", "Zookeeper"):
        make_slice(tmp_path, system)
    out = subprocess.run(
        [str(scry_bin), "eval", "loghub", "--data", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    last = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(last["systems"]) == {"Apache", "Zookeeper"}
    # The mining is deterministic: the figures measured at this commit, to within one line.
    measured = {"Apache": (1.0, 0.585), "Zookeeper": (1.0, 0.8125)}
    for name, score in last["systems"].items():
        ga, pa = measured[name]
        assert abs(score["ga"] - ga) <= 1 / LINES, (name, score)
        assert abs(score["pa"] - pa) <= 1 / LINES, (name, score)
    assert abs(last["avg_ga"] - sum(s["ga"] for s in last["systems"].values()) / 2) < 1e-9


def test_eval_loghub_reports_a_bad_layout(scry_bin, tmp_path):
    out = subprocess.run(
        [str(scry_bin), "eval", "loghub", "--data", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0
    assert "no <System>/<System>_2k.log files" in out.stderr


def test_eval_loghub_leave_one_system_out_and_bodies_alone(scry_bin):
    """`--cv` scores each system with the miner setting chosen on the other seven; `--input body`
    mines the message alone, as an OTLP log body arrives, with no header to strip. Deterministic:
    the figures measured at this commit (docs/analytics.md), to within one line per system."""
    cv = subprocess.run(
        [str(scry_bin), "eval", "loghub", "--data", str(LOGHUB), "--cv", "--json"],
        capture_output=True, text=True, timeout=600,
    )
    assert cv.returncode == 0, cv.stderr
    last = json.loads(cv.stdout.strip().splitlines()[-1])
    assert len(last["systems"]) == 8
    one_line = 1 / 2000
    assert abs(last["in_sample_ga"] - 0.99175) <= one_line, last
    assert abs(last["cv_ga"] - 0.99175) <= one_line, last
    assert abs(last["cv_min_ga"] - 0.9395) <= one_line, last
    body = subprocess.run(
        [str(scry_bin), "eval", "loghub", "--data", str(LOGHUB), "--input", "body", "--json"],
        capture_output=True, text=True, timeout=600,
    )
    assert body.returncode == 0, body.stderr
    last = json.loads(body.stdout.strip().splitlines()[-1])
    assert abs(last["avg_ga"] - 0.99175) <= one_line, last
    assert abs(last["avg_pa"] - 0.80344) <= one_line, last
    # What a query over the daemon's `logs` returns: each line is stored with the id its template
    # had on arrival and read with its cluster's current one, so it groups as the miner does.
    assert abs(last["avg_ga_stored"] - 0.99175) <= one_line, last
    for system, got in last["ga_stored"].items():
        assert abs(got - last["systems"][system]["ga"]) <= one_line, (system, last)
