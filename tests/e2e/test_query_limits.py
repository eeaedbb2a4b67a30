"""A runaway query ends with an error (timeout, memory limit) and the daemon keeps serving."""

from __future__ import annotations

import os
import time

from e2e_util import make_span, send_http, sql_str, trace_request, unique

SPANS = 2000


def load(scry, service: str):
    now = time.time_ns()
    for chunk in range(SPANS // 500):
        spans = [
            make_span(f"op{chunk}-{i}", start_ns=now + i, attrs={"payload": "x" * 200, "i": i}) for i in range(500)
        ]
        assert send_http(scry, "traces", trace_request(service, spans)) == 0
    scry.wait_count("spans", f"service_name = {sql_str(service)}", SPANS)


def still_serving(scry, service: str):
    assert scry.get("/healthz").status_code == 200
    assert int(scry.scalar(f"SELECT count(*) AS n FROM spans WHERE service_name = {sql_str(service)}")) == SPANS


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (its own, whatever else loads the machine)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_query_timeout_cancels_and_daemon_keeps_serving(scry_factory):
    scry = scry_factory(["--query-timeout", "1s"])
    service = unique("timeout")
    load(scry, service)
    started = time.monotonic()
    # 2000^3 = 8e9 joined rows: minutes of work, far beyond the 1 s timeout.
    resp = scry.query_response("SELECT count(*) FROM spans a, spans b, spans c WHERE a.name <> c.name")
    elapsed = time.monotonic() - started
    assert resp.status_code == 504, resp.text
    assert resp.json()["error"]["code"] == "query_timeout"
    assert elapsed < 15, f"timeout answered after {elapsed:.1f}s"
    # Cancelled means stopped: a join over data already read must not go on burning a core (it did
    # for minutes while only the scans checked for cancellation).
    time.sleep(0.5)
    before = cpu_seconds(scry.proc.pid)
    time.sleep(2)
    burnt = cpu_seconds(scry.proc.pid) - before
    assert burnt < 0.5, f"the daemon used {burnt:.2f} CPU seconds in the 2 s after the timeout"
    still_serving(scry, service)


def test_query_memory_limit_ends_query_and_daemon_keeps_serving(scry_factory):
    scry = scry_factory(["--query-memory-limit", "100000"])
    service = unique("memory")
    load(scry, service)
    # A hash join must hold its whole build side (2000 rows with their attribute maps) in memory.
    resp = scry.query_response(
        "SELECT count(*) FROM spans a JOIN spans b ON a.attributes['payload'] = b.attributes['payload'] "
        "AND a.name = b.name"
    )
    assert resp.status_code in (503, 500), resp.text
    body = resp.json()["error"]
    assert body["code"] in ("resources_exhausted", "query_failed"), body
    assert "memory" in body["message"].lower() or "resources" in body["message"].lower(), body
    still_serving(scry, service)
