"""Traces, logs and metrics from the real OpenTelemetry Python SDK, read back with SQL.

Every signal goes over every transport: OTLP/gRPC (plain and gzip) and OTLP/HTTP protobuf (plain
and gzip) through the SDK's own exporters, and OTLP/HTTP JSON (plain and gzip) built from the SDK's
own protobuf encoder. A hand-written OTLP/JSON request in the spec's style is checked as well.
"""

from __future__ import annotations

import json
import time

import grpc
import pytest
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.metrics import Observation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge as SdkGauge,
    Histogram as SdkHistogram,
    InMemoryMetricReader,
    Sum as SdkSum,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from e2e_util import JSON, as_int, as_map, post_otlp, rejected_in_http_response, sql_str, to_otlp_json, unique

TRANSPORTS = ["grpc", "grpc-gzip", "http-protobuf", "http-protobuf-gzip", "http-json", "http-json-gzip"]
ENCODERS = {"traces": encode_spans, "logs": encode_logs, "metrics": encode_metrics}


# ------------------------------------------------------------------------------------ sending


def make_exporter(signal: str, scry, transport: str):
    gz = transport.endswith("-gzip")
    if transport.startswith("grpc"):
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        cls = {"traces": OTLPSpanExporter, "logs": OTLPLogExporter, "metrics": OTLPMetricExporter}[signal]
        compression = grpc.Compression.Gzip if gz else grpc.Compression.NoCompression
        return cls(endpoint=scry.grpc_endpoint, insecure=True, compression=compression, timeout=15)
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    cls = {"traces": OTLPSpanExporter, "logs": OTLPLogExporter, "metrics": OTLPMetricExporter}[signal]
    compression = Compression.Gzip if gz else Compression.NoCompression
    return cls(endpoint=f"{scry.otlp_http_url}/v1/{signal}", compression=compression, timeout=15)


def send(signal: str, scry, transport: str, sdk_data):
    """Send what the SDK recorded: through its exporter, or as OTLP/JSON from its encoder."""
    if transport.startswith("http-json"):
        payload = to_otlp_json(ENCODERS[signal](sdk_data))
        resp = post_otlp(scry, signal, json.dumps(payload).encode(), JSON, gzip_body=transport.endswith("-gzip"))
        assert resp.status_code == 200, f"POST /v1/{signal} (JSON) -> {resp.status_code}: {resp.text[:1000]}"
        rejected, message = rejected_in_http_response(signal, resp, JSON)
        assert rejected == 0, f"{rejected} items rejected: {message}"
        return payload
    exporter = make_exporter(signal, scry, transport)
    try:
        result = exporter.export(sdk_data)
    finally:
        exporter.shutdown()
    assert result.name == "SUCCESS", f"{transport} {signal} exporter returned {result}"
    return None


# ------------------------------------------------------------------------------------ traces


def record_spans(service: str):
    provider = TracerProvider(resource=Resource.create({"service.name": service, "deployment.environment": "e2e"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("e2e.tracer", "1.2.3")

    with tracer.start_as_current_span("enqueue", kind=SpanKind.PRODUCER) as producer:
        pass
    with tracer.start_as_current_span(
        "GET /cart",
        kind=SpanKind.SERVER,
        attributes={
            "http.route": "/cart",
            "http.response.status_code": 200,
            "cart.empty": False,
            "sample.ratio": 0.25,
            "tags": ["a", "b"],
        },
    ) as root:
        root.add_event("cache.miss", {"cache.key": "cart:42", "attempt": 2})
        with tracer.start_as_current_span(
            "SELECT carts",
            kind=SpanKind.CLIENT,
            links=[Link(producer.get_span_context(), {"link.kind": "follows"})],
        ) as child:
            time.sleep(0.003)
            child.set_attribute("db.system", "postgresql")
            child.set_status(Status(StatusCode.ERROR, "connection refused"))
        with tracer.start_as_current_span("render"):
            pass
        root.set_status(Status(StatusCode.OK))
    spans = list(memory.get_finished_spans())
    provider.shutdown()
    assert len(spans) == 4
    return spans


def assert_spans_stored(scry, service: str, spans):
    scry.wait_count("spans", f"service_name = {sql_str(service)}", len(spans))
    rows = scry.query(
        f"""SELECT name, trace_id, span_id, parent_span_id, kind, status_code, status_message, duration_ns,
                   CAST(time AS BIGINT) AS start_ns, CAST(end_time AS BIGINT) AS end_ns,
                   scope_name, scope_version, resource_attributes, attributes, events, links
            FROM spans WHERE service_name = {sql_str(service)} ORDER BY name"""
    )
    by_name = {r["name"]: r for r in rows}
    assert sorted(by_name) == sorted(s.name for s in spans)
    for s in spans:
        row = by_name[s.name]
        ctx = s.get_span_context()
        assert row["trace_id"] == f"{ctx.trace_id:032x}", s.name
        assert row["span_id"] == f"{ctx.span_id:016x}", s.name
        expected_parent = f"{s.parent.span_id:016x}" if s.parent is not None else None
        assert row.get("parent_span_id") == expected_parent, s.name
        assert row["kind"] == s.kind.name, s.name
        assert row["status_code"] == s.status.status_code.name, s.name
        assert (row.get("status_message") or "") == (s.status.description or ""), s.name
        assert as_int(row["start_ns"]) == s.start_time, s.name
        assert as_int(row["end_ns"]) == s.end_time, s.name
        assert as_int(row["duration_ns"]) == s.end_time - s.start_time, s.name
        assert row["scope_name"] == "e2e.tracer"
        assert row["scope_version"] == "1.2.3"
        assert as_map(row["resource_attributes"]).get("deployment.environment") == "e2e"

    root = by_name["GET /cart"]
    attrs = as_map(root["attributes"])
    assert attrs["http.route"] == "/cart"
    assert attrs["http.response.status_code"] == "200"
    assert attrs["cart.empty"] == "false"
    assert attrs["sample.ratio"] == "0.25"
    assert json.loads(attrs["tags"]) == ["a", "b"]
    events = root["events"]
    assert len(events) == 1, events
    assert events[0]["name"] == "cache.miss"
    assert as_map(events[0]["attributes"]) == {"cache.key": "cart:42", "attempt": "2"}
    assert not by_name["render"].get("events")

    child = by_name["SELECT carts"]
    assert child["status_code"] == "ERROR" and child["status_message"] == "connection refused"
    assert as_map(child["attributes"]) == {"db.system": "postgresql"}
    assert as_int(child["duration_ns"]) >= 3_000_000
    producer = by_name["enqueue"]
    links = child["links"]
    assert len(links) == 1, links
    assert links[0]["trace_id"] == producer["trace_id"]
    assert links[0]["span_id"] == producer["span_id"]
    assert as_map(links[0]["attributes"]) == {"link.kind": "follows"}

    # attribute access in SQL, as the schema promises
    svc = sql_str(service)
    assert scry.count("spans", f"service_name = {svc} AND attributes['http.route'] = '/cart'") == 1
    assert scry.count("spans", f"service_name = {svc} AND CAST(attributes['http.response.status_code'] AS INT) >= 200") == 1
    assert scry.count("spans", f"service_name = {svc} AND attributes['no.such.key'] IS NULL") == len(spans)
    assert scry.count("spans", f"service_name = {svc} AND parent_span_id IS NULL") == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_traces(scry, transport):
    service = unique(f"sdk-traces-{transport}")
    spans = record_spans(service)
    payload = send("traces", scry, transport, spans)
    if payload is not None:  # the OTLP/JSON we built carries hex ids, as the spec requires
        sent = payload["resourceSpans"][0]["scopeSpans"][0]["spans"]
        assert {s["traceId"] for s in sent} == {f"{s.get_span_context().trace_id:032x}" for s in spans}
    assert_spans_stored(scry, service, spans)


# -------------------------------------------------------------------------------------- logs


def record_logs(service: str):
    resource = Resource.create({"service.name": service})
    tracer_provider = TracerProvider(resource=resource)
    tracer = tracer_provider.get_tracer("e2e.tracer")
    provider = LoggerProvider(resource=resource)
    memory = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("e2e.logger", "0.4.0")

    explicit_ts = time.time_ns() - 5_000_000_000
    with tracer.start_as_current_span("checkout") as span:
        logger.emit(
            timestamp=explicit_ts,
            severity_number=SeverityNumber.ERROR,
            severity_text="ERROR",
            body="payment failed",
            attributes={"seq": 1, "order.id": "o-17", "amount": 42},
            context=trace.set_span_in_context(span),
        )
    # no span in context, no timestamp: time falls back to the observed time
    logger.emit(severity_number=SeverityNumber.INFO, severity_text="INFO", body="no trace here", attributes={"seq": 2})
    # a structured body
    logger.emit(
        severity_number=SeverityNumber.WARN,
        severity_text="WARN",
        body={"a": 1, "b": ["x", True]},
        attributes={"seq": 3},
    )
    records = list(memory.get_finished_logs())
    span_ctx = span.get_span_context()
    provider.shutdown()
    tracer_provider.shutdown()
    assert len(records) == 3
    return records, span_ctx


def assert_logs_stored(scry, service: str, records, span_ctx):
    scry.wait_count("logs", f"service_name = {sql_str(service)}", len(records))
    rows = scry.query(
        f"""SELECT CAST(time AS BIGINT) AS t, CAST(observed_time AS BIGINT) AS observed, severity_number,
                   severity_text, body, trace_id, span_id, scope_name, scope_version, attributes
            FROM logs WHERE service_name = {sql_str(service)} ORDER BY attributes['seq']"""
    )
    assert len(rows) == 3
    first, second, third = rows
    r1, r2, r3 = (rec.log_record for rec in records)

    assert as_int(first["t"]) == r1.timestamp
    assert as_int(first["observed"]) == r1.observed_timestamp
    assert first["severity_number"] == 17
    assert first["severity_text"] == "ERROR"
    assert first["body"] == "payment failed"
    assert first["trace_id"] == f"{span_ctx.trace_id:032x}"
    assert first["span_id"] == f"{span_ctx.span_id:016x}"
    assert as_map(first["attributes"]) == {"seq": "1", "order.id": "o-17", "amount": "42"}
    assert first["scope_name"] == "e2e.logger" and first["scope_version"] == "0.4.0"

    assert r2.timestamp is None
    assert as_int(second["t"]) == r2.observed_timestamp
    assert second["severity_number"] == 9
    assert second["body"] == "no trace here"
    assert second.get("trace_id") is None
    assert second.get("span_id") is None

    assert third["severity_number"] == 13
    assert json.loads(third["body"]) == {"a": 1, "b": ["x", True]}

    svc = sql_str(service)
    assert scry.count("logs", f"service_name = {svc} AND trace_id = '{span_ctx.trace_id:032x}'") == 1
    assert scry.count("logs", f"service_name = {svc} AND severity_number >= 13") == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_logs(scry, transport):
    service = unique(f"sdk-logs-{transport}")
    records, span_ctx = record_logs(service)
    send("logs", scry, transport, records)
    assert_logs_stored(scry, service, records, span_ctx)


# ----------------------------------------------------------------------------------- metrics


def record_metrics(service: str):
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        resource=Resource.create({"service.name": service}),
        metric_readers=[reader],
        views=[View(instrument_name="e2e.latency", aggregation=ExplicitBucketHistogramAggregation([10, 100, 1000]))],
    )
    meter = provider.get_meter("e2e.meter", "0.9")
    counter = meter.create_counter("e2e.requests", unit="{request}", description="Requests served")
    counter.add(3, {"route": "/a"})
    counter.add(4, {"route": "/a"})
    counter.add(5, {"route": "/b"})
    meter.create_observable_gauge(
        "e2e.temperature",
        callbacks=[lambda options: [Observation(21.5, {"room": "lab"}), Observation(-3.25, {"room": "roof"})]],
        unit="Cel",
        description="Room temperature",
    )
    histogram = meter.create_histogram("e2e.latency", unit="ms", description="Request latency")
    for v in (5, 7, 50, 500, 5000):
        histogram.record(v, {"route": "/a"})
    data = reader.get_metrics_data()
    provider.shutdown()
    return data


def expected_points(data):
    """(metric name, attrs) -> (metric, point) for every data point the SDK produced."""
    out = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    out[(metric.name, tuple(sorted(point.attributes.items())))] = (metric, point)
    return out


def assert_metrics_stored(scry, service: str, data):
    expected = expected_points(data)
    assert len(expected) == 5
    scry.wait_count("metrics", f"service_name = {sql_str(service)}", len(expected))
    rows = scry.query(
        f"""SELECT metric_name, metric_type, metric_unit, metric_description, temporality, is_monotonic,
                   value, count, sum, min, max, bucket_counts, explicit_bounds, attributes,
                   CAST(time AS BIGINT) AS t, CAST(start_time AS BIGINT) AS st, scope_name, scope_version
            FROM metrics WHERE service_name = {sql_str(service)}"""
    )
    assert len(rows) == len(expected)
    for row in rows:
        key = (row["metric_name"], tuple(sorted(as_map(row["attributes"]).items())))
        assert key in expected, f"unexpected row {row!r}"
        metric, point = expected.pop(key)
        assert row["metric_unit"] == metric.unit
        assert row["metric_description"] == metric.description
        assert row["scope_name"] == "e2e.meter" and row["scope_version"] == "0.9"
        assert as_int(row["t"]) == point.time_unix_nano
        assert as_int(row.get("st")) == (getattr(point, "start_time_unix_nano", 0) or None)
        if isinstance(metric.data, SdkSum):
            assert row["metric_type"] == "sum"
            assert row["temporality"] == "cumulative"
            assert row["is_monotonic"] is True
            assert row["value"] == float(point.value)
        elif isinstance(metric.data, SdkGauge):
            assert row["metric_type"] == "gauge"
            assert row["value"] == float(point.value)
            assert row.get("temporality") is None
            assert row.get("is_monotonic") is None
        else:
            assert isinstance(metric.data, SdkHistogram)
            assert row["metric_type"] == "histogram"
            assert row["temporality"] == "cumulative"
            assert as_int(row["count"]) == point.count == 5
            assert row["sum"] == point.sum == 5562
            assert row["min"] == 5 and row["max"] == 5000
            assert [as_int(c) for c in row["bucket_counts"]] == list(point.bucket_counts) == [2, 1, 1, 1]
            assert [float(b) for b in row["explicit_bounds"]] == [10.0, 100.0, 1000.0]
            assert row.get("value") is None
    assert not expected

    svc = sql_str(service)
    total = scry.scalar(f"SELECT SUM(value) AS s FROM metrics WHERE service_name = {svc} AND metric_name = 'e2e.requests'")
    assert total == 12.0
    lab = scry.scalar(
        f"SELECT value FROM metrics WHERE service_name = {svc} AND attributes['room'] = 'lab'"
    )
    assert lab == 21.5


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_metrics(scry, transport):
    service = unique(f"sdk-metrics-{transport}")
    data = record_metrics(service)
    send("metrics", scry, transport, data)
    assert_metrics_stored(scry, service, data)


# ---------------------------------------------------------------------- hand-written OTLP/JSON

SPEC_TRACE_ID = "5B8EFFF798038103D269B633813FC60C"  # upper case, as in the spec's example


def test_handwritten_otlp_json(scry):
    service = unique("json-spec")
    traces = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeSpans": [
                    {
                        "scope": {
                            "name": "my.library",
                            "version": "1.0.0",
                            "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}],
                        },
                        "spans": [
                            {
                                "traceId": SPEC_TRACE_ID,
                                "spanId": "EEE19B7EC3C1B174",
                                "parentSpanId": "EEE19B7EC3C1B173",
                                "name": "I'm a server span",
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": "1544712661000000000",
                                "kind": 2,
                                "attributes": [
                                    {"key": "my.span.attr", "value": {"stringValue": "some value"}},
                                    {"key": "count", "value": {"intValue": "42"}},
                                    {"key": "retries", "value": {"intValue": 3}},
                                    {"key": "ratio", "value": {"doubleValue": 0.5}},
                                    {"key": "ok", "value": {"boolValue": True}},
                                ],
                                "events": [
                                    {
                                        "timeUnixNano": "1544712660500000000",
                                        "name": "checkpoint",
                                        "attributes": [{"key": "step", "value": {"intValue": "1"}}],
                                    }
                                ],
                                "status": {"code": 2, "message": "boom"},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    logs = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeLogs": [
                    {
                        "scope": {"name": "my.library", "version": "1.0.0"},
                        "logRecords": [
                            {
                                "timeUnixNano": "1544712660300000000",
                                "observedTimeUnixNano": "1544712660300000000",
                                "severityNumber": 10,
                                "severityText": "Information",
                                "traceId": SPEC_TRACE_ID,
                                "spanId": "EEE19B7EC3C1B174",
                                "body": {"stringValue": "Example log record"},
                                "attributes": [
                                    {"key": "string.attribute", "value": {"stringValue": "some string"}},
                                    {"key": "boolean.attribute", "value": {"boolValue": True}},
                                    {"key": "int.attribute", "value": {"intValue": "10"}},
                                    {"key": "double.attribute", "value": {"doubleValue": 637.704}},
                                    {
                                        "key": "array.attribute",
                                        "value": {"arrayValue": {"values": [{"stringValue": "many"}, {"stringValue": "values"}]}},
                                    },
                                    {
                                        "key": "map.attribute",
                                        "value": {
                                            "kvlistValue": {
                                                "values": [{"key": "some.map.key", "value": {"stringValue": "some value"}}]
                                            }
                                        },
                                    },
                                ],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    metrics = {
        "resourceMetrics": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeMetrics": [
                    {
                        "scope": {"name": "my.library", "version": "1.0.0"},
                        "metrics": [
                            {
                                "name": "my.counter",
                                "unit": "1",
                                "description": "I am a Counter",
                                "sum": {
                                    "aggregationTemporality": 1,
                                    "isMonotonic": True,
                                    "dataPoints": [
                                        {
                                            "asDouble": 5,
                                            "startTimeUnixNano": "1544712660300000000",
                                            "timeUnixNano": "1544712660300000000",
                                            "attributes": [{"key": "my.counter.attr", "value": {"stringValue": "some value"}}],
                                        }
                                    ],
                                },
                            },
                            {
                                "name": "my.gauge",
                                "unit": "1",
                                "description": "I am a Gauge",
                                "gauge": {"dataPoints": [{"asInt": "10", "timeUnixNano": "1544712660300000000"}]},
                            },
                            {
                                "name": "my.histogram",
                                "unit": "1",
                                "description": "I am a Histogram",
                                "histogram": {
                                    "aggregationTemporality": 1,
                                    "dataPoints": [
                                        {
                                            "startTimeUnixNano": "1544712660300000000",
                                            "timeUnixNano": "1544712660300000000",
                                            "count": "2",
                                            "sum": 2,
                                            "bucketCounts": ["1", 1],
                                            "explicitBounds": [1],
                                            "min": 0,
                                            "max": 2,
                                        }
                                    ],
                                },
                            },
                        ],
                    }
                ],
            }
        ]
    }
    for signal, body in (("traces", traces), ("logs", logs), ("metrics", metrics)):
        resp = post_otlp(scry, signal, json.dumps(body).encode(), JSON)
        assert resp.status_code == 200, f"{signal}: {resp.status_code} {resp.text[:1000]}"
        rejected, message = rejected_in_http_response(signal, resp, JSON)
        assert rejected == 0, f"{signal}: {rejected} rejected: {message}"

    svc = sql_str(service)
    scry.wait_count("spans", f"service_name = {svc}", 1)
    span = scry.query(
        f"""SELECT trace_id, span_id, parent_span_id, name, kind, status_code, status_message, duration_ns,
                   CAST(time AS BIGINT) AS start_ns, CAST(end_time AS BIGINT) AS end_ns,
                   scope_name, scope_version, scope_attributes, attributes, events
            FROM spans WHERE service_name = {svc}"""
    )[0]
    assert span["trace_id"] == SPEC_TRACE_ID.lower()
    assert span["span_id"] == "eee19b7ec3c1b174"
    assert span["parent_span_id"] == "eee19b7ec3c1b173"
    assert span["name"] == "I'm a server span"
    assert span["kind"] == "SERVER"
    assert span["status_code"] == "ERROR" and span["status_message"] == "boom"
    assert as_int(span["start_ns"]) == 1544712660000000000
    assert as_int(span["end_ns"]) == 1544712661000000000
    assert as_int(span["duration_ns"]) == 1_000_000_000
    assert span["scope_name"] == "my.library" and span["scope_version"] == "1.0.0"
    assert as_map(span["scope_attributes"]) == {"my.scope.attribute": "some scope attribute"}
    assert as_map(span["attributes"]) == {
        "my.span.attr": "some value",
        "count": "42",
        "retries": "3",
        "ratio": "0.5",
        "ok": "true",
    }
    assert [e["name"] for e in span["events"]] == ["checkpoint"]
    assert as_map(span["events"][0]["attributes"]) == {"step": "1"}

    scry.wait_count("logs", f"service_name = {svc}", 1)
    log = scry.query(
        f"""SELECT CAST(time AS BIGINT) AS t, severity_number, severity_text, body, trace_id, span_id, attributes
            FROM logs WHERE service_name = {svc}"""
    )[0]
    assert as_int(log["t"]) == 1544712660300000000
    assert log["severity_number"] == 10 and log["severity_text"] == "Information"
    assert log["body"] == "Example log record"
    assert log["trace_id"] == SPEC_TRACE_ID.lower() and log["span_id"] == "eee19b7ec3c1b174"
    attrs = as_map(log["attributes"])
    assert attrs["string.attribute"] == "some string"
    assert attrs["boolean.attribute"] == "true"
    assert attrs["int.attribute"] == "10"
    assert float(attrs["double.attribute"]) == 637.704
    assert json.loads(attrs["array.attribute"]) == ["many", "values"]
    assert json.loads(attrs["map.attribute"]) == {"some.map.key": "some value"}

    scry.wait_count("metrics", f"service_name = {svc}", 3)
    rows = {
        r["metric_name"]: r
        for r in scry.query(
            f"""SELECT metric_name, metric_type, metric_description, temporality, is_monotonic, value, count, sum,
                       min, max, bucket_counts, explicit_bounds, CAST(time AS BIGINT) AS t, attributes
                FROM metrics WHERE service_name = {svc}"""
        )
    }
    counter, gauge_row, hist = rows["my.counter"], rows["my.gauge"], rows["my.histogram"]
    assert counter["metric_type"] == "sum" and counter["temporality"] == "delta" and counter["is_monotonic"] is True
    assert counter["value"] == 5.0 and counter["metric_description"] == "I am a Counter"
    assert as_map(counter["attributes"]) == {"my.counter.attr": "some value"}
    assert as_int(counter["t"]) == 1544712660300000000
    assert gauge_row["metric_type"] == "gauge" and gauge_row["value"] == 10.0
    assert hist["metric_type"] == "histogram" and hist["temporality"] == "delta"
    assert as_int(hist["count"]) == 2 and hist["sum"] == 2.0 and hist["min"] == 0.0 and hist["max"] == 2.0
    assert [as_int(c) for c in hist["bucket_counts"]] == [1, 1]
    assert [float(b) for b in hist["explicit_bounds"]] == [1.0]
