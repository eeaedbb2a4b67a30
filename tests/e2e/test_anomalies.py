"""Continuous anomaly detection, end to end: telemetry in over OTLP, anomaly rows out of the API.

Spans are made with the real OpenTelemetry SDK (explicit start and end times, so a test can send
minutes of normal history at once) and exported with its OTLP/gRPC exporter in one request. The
daemon aggregates them into 10 s buckets, scores closed buckets every 5 s and writes findings to
the `anomalies` table, which `GET /api/v1/anomalies` reads. Rows for a bucket the daemon has
already closed are dropped as late, so tests that backfill history use a daemon whose clock of
closed buckets has not passed that history yet.
"""

from __future__ import annotations

import random
import time

import pytest
import requests
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from e2e_util import HTTP_TIMEOUT, logs_request, make_log, send_grpc, unique

BUCKET_NS = 10_000_000_000
HISTORY_BUCKETS = 45  # more than the 30-bucket warm-up of the per-series models
DETECTION_DEADLINE = 30  # seconds, from sending the spike to seeing its row through the API


def bucket_start(ns: int) -> int:
    return ns - ns % BUCKET_NS


def make_spans(service: str, plan: list[tuple[int, str, float]]):
    """Finished SDK spans of `service`; plan items are (start_ns, operation, duration_ms)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("e2e-anomalies")
    for start, op, ms in plan:
        span = tracer.start_span(op, start_time=start)
        span.end(end_time=start + int(ms * 1e6))
    provider.shutdown()
    return memory.get_finished_spans()


def export(scry, spans):
    exporter = OTLPSpanExporter(endpoint=scry.grpc_endpoint, insecure=True, timeout=15)
    try:
        assert exporter.export(spans).name == "SUCCESS"
    finally:
        exporter.shutdown()


def history_plan(end_bucket: int, ops: list[str], rng: random.Random):
    """Normal traffic for the buckets before `end_bucket`: 12 calls per op per bucket, ~50 ms."""
    plan = []
    for b in range(HISTORY_BUCKETS, 0, -1):
        start = end_bucket - b * BUCKET_NS
        for op in ops:
            for i in range(12):
                plan.append((start + i * 700_000_000, op, rng.gauss(50.0, 3.0)))
    return plan


def anomalies(scry, **params) -> list[dict]:
    resp = requests.get(f"{scry.api_url}/api/v1/anomalies", params=params, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    return resp.json()["rows"]


def wait_for_anomaly(scry, service: str, predicate, timeout: float = DETECTION_DEADLINE) -> tuple[dict, float]:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        rows = [r for r in anomalies(scry, service=service, since="2h") if predicate(r)]
        if rows:
            return rows[0], time.monotonic() - started
        time.sleep(0.5)
    all_rows = anomalies(scry, service=service, since="2h")
    raise AssertionError(f"no matching anomaly within {timeout}s; rows for {service}: {all_rows}\n{scry.log_excerpt()}")


def is_latency(op: str):
    return lambda r: r["signal"] == "traces" and r["measure"].startswith("latency_p") and r["scope"] == op


def send_spike(scry, service: str, ms: float, history_end: int):
    """Twelve slow and twelve normal calls, all after the history: a spike that shared the last
    history bucket would be a minority there (p50 normal) and its p95 a series with no model yet
    (an operation's p95 needs 20 spans), so nothing would be found for the operation."""
    start = max(time.time_ns() - 2_000_000_000, history_end + 100_000_000)
    spike = [(start + i * 100_000_000, "GET /cart", ms) for i in range(12)]
    spike += [(start + i * 100_000_000, "GET /home", 50.0) for i in range(12)]
    export(scry, make_spans(service, spike))


def test_latency_spike_of_one_operation_becomes_an_anomaly_row_within_30s(scry):
    service = unique("shop")
    rng = random.Random(7)
    end = bucket_start(time.time_ns())
    export(scry, make_spans(service, history_plan(end, ["GET /cart", "GET /home"], rng)))
    sent = time.monotonic()
    send_spike(scry, service, 900.0, end)
    row, _ = wait_for_anomaly(scry, service, is_latency("GET /cart"))
    elapsed = time.monotonic() - sent
    assert elapsed < DETECTION_DEADLINE
    assert row["observed"] > 500 and row["expected"] < 100, row
    assert row["upper"] < row["observed"] and row["score"] >= 0.5, row
    assert row["trace_ids"], "a slow exemplar trace is attached"
    trace_id = row["trace_ids"][0]
    slow = scry.scalar(f"SELECT max(duration_ns) FROM spans WHERE trace_id = '{trace_id}'")
    assert slow >= 800_000_000, "the exemplar is one of the slow spans"
    # The operation that stayed normal has no latency anomaly.
    assert not [r for r in anomalies(scry, service=service, since="2h") if is_latency("GET /home")(r)]
    # The same rows through SQL.
    n = scry.scalar(
        f"SELECT count(*) FROM anomalies WHERE service_name = '{service}' AND scope = 'GET /cart' "
        "AND measure LIKE 'latency_p%'"
    )
    assert n >= 1


def test_filters_of_the_anomalies_api(scry):
    rows = anomalies(scry, since="2h", min_score=1.01)
    assert rows == []
    resp = requests.get(f"{scry.api_url}/api/v1/anomalies", params={"since": "yesterday-ish"}, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_filter", resp.text
    # Quotes in a service name are data, not SQL.
    assert anomalies(scry, service="x' OR '1'='1") == []
    resp = requests.get(f"{scry.api_url}/api/v1/anomalies", params={"min_score": "high"}, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 400, resp.text


def test_new_error_template_and_error_burst_from_logs(scry_factory):
    # Its own daemon: backfilled history is only scored while its buckets are still open, and
    # the shared daemon has already closed the buckets of the last minutes.
    scry = scry_factory()
    service = unique("billing")
    now = time.time_ns()
    start = bucket_start(now) - HISTORY_BUCKETS * BUCKET_NS
    normal = []
    for b in range(HISTORY_BUCKETS):
        for i in range(5):
            t = start + b * BUCKET_NS + i * 1_000_000_000
            normal.append(make_log(f"charged order {b * 10 + i} amount {i * 7}.50 EUR", time_ns=t))
    assert send_grpc(scry, "logs", logs_request(service, normal)) == 0
    burst = [
        make_log(f"payment gateway timeout after {3000 + i} ms for order {i}", time_ns=now - 1_000_000_000 + i,
                 severity=17)
        for i in range(30)
    ]
    assert send_grpc(scry, "logs", logs_request(service, burst)) == 0
    row, _ = wait_for_anomaly(scry, service, lambda r: r["measure"] == "new_template")
    evidence = dict(row["evidence"]) if isinstance(row["evidence"], dict) else {e["keys"]: e["values"] for e in row["evidence"]}
    assert "gateway timeout" in evidence["template"], row
    assert evidence["severity"] == "ERROR" and row["score"] >= 0.9, row
    assert row["template_ids"], row
    burst_row, _ = wait_for_anomaly(scry, service, lambda r: r["measure"] == "error_logs")
    assert burst_row["observed"] >= 30 and burst_row["expected"] < 1, burst_row


def test_model_history_survives_a_restart(scry_factory):
    scry = scry_factory()
    service = unique("survivor")
    rng = random.Random(11)
    end = bucket_start(time.time_ns())
    export(scry, make_spans(service, history_plan(end, ["GET /cart", "GET /home"], rng)))
    # Let the history buckets close and be learnt, then stop (which saves the models).
    time.sleep(6)
    scry.restart()
    assert (scry.data_dir / "detect" / "state.json").is_file()
    # No new history after the restart: only restored models can judge the spike.
    send_spike(scry, service, 900.0, end)
    wait_for_anomaly(scry, service, is_latency("GET /cart"))
