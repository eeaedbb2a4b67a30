"""Acknowledged means durable: whatever got a success answer survives kill -9, exactly once.

Each batch is three requests (5 spans, 1 log record, 1 gauge point), sent over OTLP/HTTP protobuf
or OTLP/gRPC by turns. After a crash and restart the daemon must hold every acknowledged row, once,
whether the row was in memory (WAL replay) or already in Parquet.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from e2e_util import gauge, logs_request, make_log, make_span, metrics_request, send_grpc, send_http, sql_str, trace_request, unique

SPANS_PER_BATCH = 5


def send_batch(scry, service: str, i: int):
    now = time.time_ns()
    spans = trace_request(
        service, [make_span(f"b{i}-s{j}", start_ns=now + j, attrs={"batch": i}) for j in range(SPANS_PER_BATCH)]
    )
    logs = logs_request(service, [make_log(f"batch {i}", time_ns=now, attrs={"batch": i})])
    points = metrics_request(service, [gauge("e2e.batch", [(now, float(i), {"batch": i})])])
    for signal, request in (("traces", spans), ("logs", logs), ("metrics", points)):
        if i % 2 == 0:
            rejected = send_http(scry, signal, request)
        else:
            rejected = send_grpc(scry, signal, request)
        assert rejected == 0, f"batch {i} {signal}: {rejected} rejected"


def assert_exact(scry, service: str, batches: int):
    """Every batch's rows present exactly once."""
    svc = sql_str(service)
    scry.wait_count("spans", f"service_name = {svc}", batches * SPANS_PER_BATCH)
    scry.wait_count("logs", f"service_name = {svc}", batches)
    scry.wait_count("metrics", f"service_name = {svc}", batches)
    assert int(scry.scalar(f"SELECT COUNT(DISTINCT span_id) AS n FROM spans WHERE service_name = {svc}")) == (
        batches * SPANS_PER_BATCH
    )
    per_batch = scry.query(
        f"""SELECT attributes['batch'] AS b, COUNT(*) AS n FROM spans WHERE service_name = {svc}
            GROUP BY attributes['batch']"""
    )
    assert {int(r["b"]): int(r["n"]) for r in per_batch} == {i: SPANS_PER_BATCH for i in range(batches)}
    values = scry.query(f"SELECT value FROM metrics WHERE service_name = {svc} ORDER BY value")
    assert [r["value"] for r in values] == [float(i) for i in range(batches)]
    bodies = scry.query(f"SELECT body FROM logs WHERE service_name = {svc}")
    assert sorted(r["body"] for r in bodies) == sorted(f"batch {i}" for i in range(batches))


def test_kill9_after_acknowledged_batches(scry_factory):
    scry = scry_factory()
    service = unique("durable")
    n = 20
    for i in range(n):
        send_batch(scry, service, i)
    scry.kill9()  # immediately: nothing may depend on a later background flush
    scry.restart()
    assert_exact(scry, service, n)
    # a second crash right after the replay must not replay anything twice
    scry.kill9()
    scry.restart()
    assert_exact(scry, service, n)


def test_kill9_with_rows_in_parquet_and_wal(scry_factory):
    scry = scry_factory()
    service = unique("durable-mixed")
    for i in range(10):
        send_batch(scry, service, i)
    scry.flush()
    assert scry.parquet_files("spans"), "flush wrote no Parquet file for spans"
    for i in range(10, 20):
        send_batch(scry, service, i)
    assert_exact(scry, service, 20)
    scry.kill9()
    scry.restart()
    assert_exact(scry, service, 20)  # Parquet + WAL replay, no double counting

    scry.kill9()
    scry.restart()
    assert_exact(scry, service, 20)

    # flush what was replayed, crash again: still exact
    scry.flush()
    scry.kill9()
    scry.restart()
    assert_exact(scry, service, 20)

    # and more data after all that
    for i in range(20, 23):
        send_batch(scry, service, i)
    scry.kill9()
    scry.restart()
    assert_exact(scry, service, 23)
    scry.stop()


def newest_wal_file(data_dir: Path) -> Path:
    wal_dir = data_dir / "wal"
    files = [p for p in wal_dir.iterdir() if p.is_file() and p.stat().st_size > 0] if wal_dir.is_dir() else []
    listing = sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*"))
    assert files, f"no non-empty WAL file in {wal_dir}; data dir holds: {listing}"
    segments = [p for p in files if p.suffix == ".wal"] or files
    # segments are named by sequence number, zero-padded: the newest sorts last
    return max(segments, key=lambda p: (p.name, p.stat().st_mtime))


@pytest.mark.parametrize("garbage", ["random", "zeros", "copy-of-head"])
def test_torn_wal_tail(scry_factory, garbage):
    scry = scry_factory()
    service = unique(f"torn-{garbage}")
    for i in range(8):
        send_batch(scry, service, i)
    scry.kill9()

    wal = newest_wal_file(scry.data_dir)
    if garbage == "random":
        tail = os.urandom(333)
    elif garbage == "zeros":
        tail = bytes(64)
    else:  # the start of the segment again, cut short (no record is this small): a header, then the end
        tail = wal.read_bytes()[:24]
    with open(wal, "ab") as f:
        f.write(tail)

    scry.restart()
    assert_exact(scry, service, 8)

    # the daemon keeps working on that WAL: more data, another crash, all there
    for i in range(8, 12):
        send_batch(scry, service, i)
    scry.kill9()
    scry.restart()
    assert_exact(scry, service, 12)
