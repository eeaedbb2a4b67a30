"""One detection loop: the TrainTicket replay through `scry eval rca` (an in-process pipeline on a
manual clock) and through `scry serve --clock manual` fed the same OTLP over its gRPC port, with
the clock advanced by `POST /api/v1/admin/clock`, must announce exactly the same anomalies and
incident changes, cycle by cycle, and leave the same incidents behind."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import requests

TRAINTICKET = Path(__file__).resolve().parents[3] / "shared" / "data" / "rca" / "nezha_trainticket"
# The first two hours hold the corpus' first cases: enough for incidents to open and resolve.
LIMIT = "2h"


def replay(scry_bin, events: Path, *extra: str) -> dict:
    out = subprocess.run(
        [str(scry_bin), "eval", "rca", "--dataset", str(TRAINTICKET), "--limit", LIMIT,
         "--events", str(events), "--json", *extra],
        capture_output=True, text=True, timeout=1800,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_eval_and_the_daemon_run_the_same_loop(scry_bin, scry_factory, tmp_path):
    local_events = tmp_path / "local.jsonl"
    local = replay(scry_bin, local_events)

    scry = scry_factory(["--clock", "manual"])
    remote_events = tmp_path / "remote.jsonl"
    remote = replay(scry_bin, remote_events, "--otlp", scry.grpc_endpoint, "--api", scry.api_url)

    a = local_events.read_text().splitlines()
    b = remote_events.read_text().splitlines()
    changes = [json.loads(line) for line in a if '"event":"incident"' in line]
    assert any(c["change"] == "opened" for c in changes), "the window opens no incident"
    assert any(c["change"] == "resolved" for c in changes), "the window resolves no incident"
    assert local["cases"] >= 2, local
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert x == y, f"event {i} differs:\n eval:   {x[:600]}\n daemon: {y[:600]}"
    assert local == remote

    # What the daemon kept: every incident with the eval's final ranking.
    last = {}
    for c in changes:
        last[c["id"]] = c
    listed = scry.get("/api/v1/incidents?limit=1000").json()["incidents"]
    assert sorted(i["id"] for i in listed) == sorted(last)
    for inc in listed:
        want = last[inc["id"]]
        assert inc["top_root_cause"]["service"] == want["ranking"][0]["service"]
        assert (inc["status"] == "resolved") == (want["change"] == "resolved"), (inc, want["change"])
    scry.assert_healthy()


def test_a_wall_clock_daemon_refuses_to_be_driven(scry_factory):
    scry = scry_factory()
    resp = requests.post(f"{scry.api_url}/api/v1/admin/clock", json={"now_ns": 1}, timeout=30)
    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "clock_not_manual"


def test_a_manual_clock_does_not_go_back(scry_factory):
    scry = scry_factory(["--clock", "manual"])
    url = f"{scry.api_url}/api/v1/admin/clock"
    ok = requests.post(url, json={"now_ns": 2_000_000_000_000_000_000}, timeout=30)
    assert ok.status_code == 200, ok.text
    assert ok.json()["now_ns"] == 2_000_000_000_000_000_000
    back = requests.post(url, json={"now_ns": 1_000_000_000_000_000_000}, timeout=30)
    assert back.status_code == 400
    assert back.json()["error"]["code"] == "clock_backwards"
    bad = requests.post(url, data="{}", timeout=30)
    assert bad.status_code == 400
    scry.assert_healthy()
