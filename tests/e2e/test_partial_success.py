"""Requests mixing valid and invalid items: the valid ones are stored, the invalid ones are counted
in partial_success, over OTLP/HTTP protobuf, OTLP/HTTP JSON and OTLP/gRPC."""

from __future__ import annotations

import os
import time

import pytest
from opentelemetry.proto.metrics.v1 import metrics_pb2

from e2e_util import (
    gauge,
    logs_request,
    make_log,
    make_span,
    metrics_request,
    new_span_id,
    new_trace_id,
    prom_sum,
    send_grpc,
    send_http,
    sql_str,
    trace_request,
    unique,
)

MODES = ["http-protobuf", "http-json", "grpc"]


def send(scry, mode: str, signal: str, request) -> int:
    if mode == "grpc":
        return send_grpc(scry, signal, request)
    return send_http(scry, signal, request, as_json=(mode == "http-json"))


def mixed_spans(service: str):
    valid = [make_span(f"valid-{i}") for i in range(3)]
    invalid = [
        make_span("bad-short-trace-id", trace_id=os.urandom(7) + b"\x01"),
        make_span("bad-zero-trace-id", trace_id=bytes(16)),
        make_span("bad-short-span-id", span_id=b"\x01\x02\x03\x04"),
        make_span("bad-empty-span-id", span_id=b""),
    ]
    spans = [valid[0], invalid[0], invalid[1], valid[1], invalid[2], valid[2], invalid[3]]
    return trace_request(service, spans), {s.name for s in valid}, len(invalid)


@pytest.mark.parametrize("mode", MODES)
def test_spans_partial_success(scry, mode):
    service = unique(f"partial-spans-{mode}")
    request, valid_names, n_invalid = mixed_spans(service)
    assert send(scry, mode, "traces", request) == n_invalid
    scry.wait_count("spans", f"service_name = {sql_str(service)}", len(valid_names))
    rows = scry.query(f"SELECT name FROM spans WHERE service_name = {sql_str(service)}")
    assert {r["name"] for r in rows} == valid_names


@pytest.mark.parametrize("mode", MODES)
def test_logs_partial_success(scry, mode):
    service = unique(f"partial-logs-{mode}")
    records = [
        make_log("valid without trace", attrs={"ok": True}),
        make_log("bad 5-byte trace id", trace_id=os.urandom(4) + b"\x01"),
        make_log("valid with trace", trace_id=new_trace_id(), span_id=new_span_id(), attrs={"ok": True}),
        make_log("bad 20-byte trace id", trace_id=os.urandom(19) + b"\x01"),
    ]
    assert send(scry, mode, "logs", logs_request(service, records)) == 2
    scry.wait_count("logs", f"service_name = {sql_str(service)}", 2)
    rows = scry.query(f"SELECT body, trace_id FROM logs WHERE service_name = {sql_str(service)} ORDER BY body")
    assert [r["body"] for r in rows] == ["valid with trace", "valid without trace"]
    assert len(rows[0]["trace_id"]) == 32
    assert rows[1].get("trace_id") is None


@pytest.mark.parametrize("mode", MODES)
def test_metrics_partial_success(scry, mode):
    service = unique(f"partial-metrics-{mode}")
    now = time.time_ns()
    good = gauge("e2e.valid", [(now, 1.5, {"i": 1}), (now, 2.5, {"i": 2})])
    nameless = gauge("", [(now, 9.0, {"i": 3}), (now, 9.0, {"i": 4}), (now, 9.0, {"i": 5})])
    request = metrics_request(service, [nameless, good])
    assert send(scry, mode, "metrics", request) == 3
    scry.wait_count("metrics", f"service_name = {sql_str(service)}", 2)
    rows = scry.query(
        f"SELECT metric_name, value FROM metrics WHERE service_name = {sql_str(service)} ORDER BY value"
    )
    assert [(r["metric_name"], r["value"]) for r in rows] == [("e2e.valid", 1.5), ("e2e.valid", 2.5)]


def test_all_valid_request_has_no_rejections(scry):
    service = unique("partial-none")
    for mode in MODES:
        request = trace_request(service, [make_span(f"{mode}-1"), make_span(f"{mode}-2")])
        assert send(scry, mode, "traces", request) == 0, mode
    scry.wait_count("spans", f"service_name = {sql_str(service)}", 2 * len(MODES))


def test_counters_follow_partial_success(scry):
    before = scry.metrics_text()
    service = unique("partial-counters")
    request, valid_names, n_invalid = mixed_spans(service)
    assert send(scry, "http-protobuf", "traces", request) == n_invalid
    scry.wait_count("spans", f"service_name = {sql_str(service)}", len(valid_names))
    after = scry.metrics_text()
    accepted = prom_sum(after, "scry_items_accepted_total", signal="spans") - prom_sum(
        before, "scry_items_accepted_total", signal="spans"
    )
    rejected = prom_sum(after, "scry_items_rejected_total", signal="spans") - prom_sum(
        before, "scry_items_rejected_total", signal="spans"
    )
    assert accepted == len(valid_names), after
    assert rejected == n_invalid, after


def test_metric_without_any_points_is_harmless(scry):
    """A metric with a name but no data points contributes nothing and rejects nothing."""
    service = unique("partial-empty-metric")
    request = metrics_request(service, [metrics_pb2.Metric(name="e2e.empty", gauge=metrics_pb2.Gauge())])
    assert send(scry, "http-protobuf", "metrics", request) == 0
    assert scry.count("metrics", f"service_name = {sql_str(service)}") == 0
