"""Helpers shared by the scry end-to-end tests.

Fixtures live in conftest.py; this module holds plain functions: OTLP protobuf builders, the
protobuf -> OTLP/JSON conversion, raw HTTP and gRPC clients for inputs the normal clients refuse
to send, and small parsers (partial success, Prometheus text).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import socket
import threading
import time
import uuid
import zlib
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

import grpc
import requests
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

HTTP_TIMEOUT = 30  # seconds, for every HTTP request the tests make
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ARROW_STREAM = "application/vnd.apache.arrow.stream"

SIGNALS = ("traces", "logs", "metrics")
TABLE_OF = {"traces": "spans", "logs": "logs", "metrics": "metrics"}

# signal -> (request class, response class, proto field of the rejected count, its OTLP/JSON name)
OTLP = {
    "traces": (
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
        "rejected_spans",
        "rejectedSpans",
    ),
    "logs": (
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
        "rejected_log_records",
        "rejectedLogRecords",
    ),
    "metrics": (
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
        "rejected_data_points",
        "rejectedDataPoints",
    ),
}

GRPC_METHODS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
}

GRPC_STUBS = {
    "traces": trace_service_pb2_grpc.TraceServiceStub,
    "logs": logs_service_pb2_grpc.LogsServiceStub,
    "metrics": metrics_service_pb2_grpc.MetricsServiceStub,
}


# --------------------------------------------------------------------------------------------
# small things


def unique(prefix: str) -> str:
    """A name no other test uses: tests isolate their rows by service name or marker."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def sql_str(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def free_ports(n: int) -> list[int]:
    """n distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll predicate until it returns something truthy; return that, or raise AssertionError."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - reported below if we time out
            last_exc = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last_exc!r}")
        time.sleep(interval)


def floor_hour_ns(ns: int) -> int:
    hour = 3600 * 10**9
    return ns - ns % hour


def iso_utc(ns: int) -> str:
    """RFC 3339 text of a nanosecond timestamp (whole seconds only, which is all tests use)."""
    assert ns % 10**9 == 0, "iso_utc only formats whole seconds"
    return datetime.fromtimestamp(ns // 10**9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_map(value: Any) -> dict:
    """A map column's JSON value as a dict.

    The contract says map columns come out as JSON objects; this also accepts the other shapes an
    Arrow map may take (a list of {"key","value"} objects or [key, value] pairs, or pyarrow's list
    of tuples) so that value checks don't fail on shape alone (shape is asserted in test_query_api).
    """
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    out = {}
    for entry in value:
        if isinstance(entry, dict):
            out[entry["key"]] = entry.get("value")
        else:
            k, v = entry
            out[k] = v
    return out


def as_int(value: Any) -> int | None:
    return None if value is None else int(value)


# --------------------------------------------------------------------------------------------
# OTLP protobuf builders


def any_value(value: Any) -> common_pb2.AnyValue:
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    if isinstance(value, bytes):
        return common_pb2.AnyValue(bytes_value=value)
    if isinstance(value, (list, tuple)):
        return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, dict):
        return common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(values=kvs(value)))
    return common_pb2.AnyValue(string_value=str(value))


def kvs(attrs: dict | None) -> list[common_pb2.KeyValue]:
    return [common_pb2.KeyValue(key=k, value=any_value(v)) for k, v in (attrs or {}).items()]


def resource(service: str, **extra) -> resource_pb2.Resource:
    return resource_pb2.Resource(attributes=kvs({"service.name": service, **extra}))


def new_trace_id() -> bytes:
    return os.urandom(15) + b"\x01"  # never all-zero


def new_span_id() -> bytes:
    return os.urandom(7) + b"\x01"


def make_span(
    name: str,
    *,
    trace_id: bytes | None = None,
    span_id: bytes | None = None,
    parent_span_id: bytes = b"",
    start_ns: int | None = None,
    duration_ns: int = 1_000_000,
    kind: int = trace_pb2.Span.SPAN_KIND_INTERNAL,
    attrs: dict | None = None,
) -> trace_pb2.Span:
    start = time.time_ns() if start_ns is None else start_ns
    return trace_pb2.Span(
        trace_id=new_trace_id() if trace_id is None else trace_id,
        span_id=new_span_id() if span_id is None else span_id,
        parent_span_id=parent_span_id,
        name=name,
        kind=kind,
        start_time_unix_nano=start,
        end_time_unix_nano=start + duration_ns,
        attributes=kvs(attrs),
    )


def trace_request(service: str, spans: Iterable[trace_pb2.Span], scope: str = "e2e"):
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource(service),
                scope_spans=[
                    trace_pb2.ScopeSpans(scope=common_pb2.InstrumentationScope(name=scope), spans=list(spans))
                ],
            )
        ]
    )


def make_log(
    body: Any,
    *,
    time_ns: int | None = None,
    trace_id: bytes = b"",
    span_id: bytes = b"",
    severity: int = logs_pb2.SEVERITY_NUMBER_INFO,
    attrs: dict | None = None,
) -> logs_pb2.LogRecord:
    t = time.time_ns() if time_ns is None else time_ns
    return logs_pb2.LogRecord(
        time_unix_nano=t,
        observed_time_unix_nano=t,
        severity_number=severity,
        body=any_value(body),
        trace_id=trace_id,
        span_id=span_id,
        attributes=kvs(attrs),
    )


def logs_request(service: str, records: Iterable[logs_pb2.LogRecord], scope: str = "e2e"):
    return logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                resource=resource(service),
                scope_logs=[
                    logs_pb2.ScopeLogs(scope=common_pb2.InstrumentationScope(name=scope), log_records=list(records))
                ],
            )
        ]
    )


def gauge(name: str, points: Iterable[tuple[int, float, dict]]) -> metrics_pb2.Metric:
    """A gauge metric; points are (time_ns, value, attributes)."""
    return metrics_pb2.Metric(
        name=name,
        gauge=metrics_pb2.Gauge(
            data_points=[
                metrics_pb2.NumberDataPoint(time_unix_nano=t, as_double=v, attributes=kvs(a)) for t, v, a in points
            ]
        ),
    )


def metrics_request(service: str, metrics: Iterable[metrics_pb2.Metric], scope: str = "e2e"):
    return metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[
            metrics_pb2.ResourceMetrics(
                resource=resource(service),
                scope_metrics=[
                    metrics_pb2.ScopeMetrics(scope=common_pb2.InstrumentationScope(name=scope), metrics=list(metrics))
                ],
            )
        ]
    )


# --------------------------------------------------------------------------------------------
# OTLP/JSON

_ID_FIELDS = {"traceId", "spanId", "parentSpanId"}


def to_otlp_json(message) -> dict:
    """OTLP/JSON of a protobuf message, as the OTLP spec defines it.

    protobuf's canonical JSON mapping already gives lowerCamelCase names and 64-bit integers as
    strings; OTLP/JSON differs in two ways: enums are integers, and trace/span ids are hex, not
    base64.
    """
    data = json_format.MessageToDict(message, use_integers_for_enums=True)
    return _ids_to_hex(data)


def _ids_to_hex(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in _ID_FIELDS and isinstance(v, str):
                out[k] = base64.b64decode(v).hex()
            else:
                out[k] = _ids_to_hex(v)
        return out
    if isinstance(node, list):
        return [_ids_to_hex(v) for v in node]
    return node


# --------------------------------------------------------------------------------------------
# sending


def post_otlp(
    scry,
    signal: str,
    body: bytes,
    content_type: str | None = PROTOBUF,
    *,
    gzip_body: bool = False,
    headers: dict | None = None,
) -> requests.Response:
    """POST raw bytes to the daemon's OTLP/HTTP endpoint for a signal."""
    hdrs = dict(headers or {})
    if content_type is not None:
        hdrs["Content-Type"] = content_type
    if gzip_body:
        body = gzip.compress(body)
        hdrs["Content-Encoding"] = "gzip"
    return requests.post(f"{scry.otlp_http_url}/v1/{signal}", data=body, headers=hdrs, timeout=HTTP_TIMEOUT)


def rejected_in_http_response(signal: str, resp: requests.Response, sent_as: str) -> tuple[int, str]:
    """(rejected count, error message) from an OTLP/HTTP success response in the request's encoding."""
    _, response_cls, field, json_field = OTLP[signal]
    if sent_as == JSON:
        assert resp.headers.get("Content-Type", "").startswith(JSON), (
            f"JSON request answered with Content-Type {resp.headers.get('Content-Type')!r}: {resp.content[:300]!r}"
        )
        body = resp.json() if resp.content.strip() else {}
        assert isinstance(body, dict), f"OTLP/JSON response is not an object: {body!r}"
        partial = body.get("partialSuccess") or {}
        rejected = partial.get(json_field, 0)
        # proto3 JSON puts int64 in strings; accept numbers too
        return int(rejected or 0), partial.get("errorMessage", "") or ""
    assert resp.headers.get("Content-Type", "").startswith(PROTOBUF), (
        f"protobuf request answered with Content-Type {resp.headers.get('Content-Type')!r}"
    )
    msg = response_cls()
    msg.ParseFromString(resp.content)
    return getattr(msg.partial_success, field), msg.partial_success.error_message


def send_http(scry, signal: str, request_msg, *, as_json: bool = False, gzip_body: bool = False) -> int:
    """Export a request over OTLP/HTTP; assert 200; return the rejected count."""
    if as_json:
        body, ctype = json.dumps(to_otlp_json(request_msg)).encode(), JSON
    else:
        body, ctype = request_msg.SerializeToString(), PROTOBUF
    resp = post_otlp(scry, signal, body, ctype, gzip_body=gzip_body)
    assert resp.status_code == 200, f"POST /v1/{signal} -> {resp.status_code}: {resp.text[:1000]}"
    return rejected_in_http_response(signal, resp, ctype)[0]


def grpc_export(scry, signal: str, request_msg, *, compression=None, timeout: float = 15):
    """Export a request with the generated OTLP gRPC stub; return the response message."""
    with grpc.insecure_channel(scry.grpc_target) as channel:
        stub = GRPC_STUBS[signal](channel)
        return stub.Export(request_msg, timeout=timeout, compression=compression)


def send_grpc(scry, signal: str, request_msg, *, compression=None) -> int:
    """Export over gRPC; return the rejected count."""
    resp = grpc_export(scry, signal, request_msg, compression=compression)
    return getattr(resp.partial_success, OTLP[signal][2])


def grpc_raw(scry, signal: str, payload: bytes, *, compression=None, timeout: float = 15) -> bytes:
    """Call the Export method with arbitrary bytes as the request message."""
    with grpc.insecure_channel(scry.grpc_target) as channel:
        call = channel.unary_unary(
            GRPC_METHODS[signal], request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        return call(payload, timeout=timeout, compression=compression)


def grpc_error_code(fn: Callable[[], Any]) -> grpc.StatusCode:
    """Run fn, which must fail with a gRPC error, and return its status code."""
    try:
        fn()
    except grpc.RpcError as exc:
        return exc.code()
    raise AssertionError("gRPC call succeeded but an error status was expected")


class RawResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes, send_error: Exception | None):
        self.status_code = status
        self.headers = headers
        self.content = body
        self.send_error = send_error

    def json(self):
        return json.loads(self.content)

    def __repr__(self):
        return f"<RawResponse {self.status_code} {self.headers} {self.content[:200]!r}>"


def raw_http_post(
    host: str,
    port: int,
    path: str,
    headers: dict[str, str],
    body: bytes | Iterable[bytes],
    *,
    chunked: bool = False,
    timeout: float = HTTP_TIMEOUT,
) -> RawResponse:
    """An HTTP/1.1 POST that reads the response while the body is still being sent.

    A server may answer 413 before it has read a large body and then close the connection; an
    ordinary client that writes the whole body first then fails with a broken pipe instead of
    seeing the status. Here a thread sends and the caller's thread reads.
    """
    sock = socket.create_connection((host, port), timeout=timeout)
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    if chunked:
        head.append("Transfer-Encoding: chunked")
    else:
        assert isinstance(body, (bytes, bytearray))
        head.append(f"Content-Length: {len(body)}")
    head_bytes = ("\r\n".join(head) + "\r\n\r\n").encode()
    send_error: list[Exception] = []

    def sender():
        try:
            sock.sendall(head_bytes)
            if chunked:
                for chunk in body:
                    if chunk:
                        sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
            else:
                view = memoryview(body)
                for i in range(0, len(view), 1 << 16):
                    sock.sendall(view[i : i + (1 << 16)])
        except OSError as exc:  # the server may close early; the response tells what happened
            send_error.append(exc)

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            try:
                chunk = sock.recv(1 << 16)
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
        if b"\r\n\r\n" not in buf:
            raise AssertionError(
                f"no HTTP response from 127.0.0.1:{port}{path} (got {buf[:200]!r}; send error {send_error!r})"
            )
        head_part, rest = buf.split(b"\r\n\r\n", 1)
        lines = head_part.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        resp_headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            resp_headers[k.strip().lower()] = v.strip()
        length = resp_headers.get("content-length")
        if length is not None:
            while len(rest) < int(length):
                try:
                    chunk = sock.recv(1 << 16)
                except (ConnectionResetError, socket.timeout):
                    break
                if not chunk:
                    break
                rest += chunk
            rest = rest[: int(length)]
        return RawResponse(status, resp_headers, rest, send_error[0] if send_error else None)
    finally:
        sock.close()
        thread.join(timeout=5)


def gzip_bomb(decompressed_size: int, fill: bytes = b"\0") -> bytes:
    """A small gzip member that inflates to decompressed_size bytes."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31 = gzip container
    block = fill * (1 << 20)
    out = []
    left = decompressed_size
    while left > 0:
        piece = block[: min(left, len(block))]
        out.append(comp.compress(piece))
        left -= len(piece)
    out.append(comp.flush())
    return b"".join(out)


# --------------------------------------------------------------------------------------------
# hand-encoded protobuf (for inputs the protobuf library will not build)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_len_field(field: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def nested_any_value(depth: int) -> bytes:
    """AnyValue bytes nested `depth` levels deep, alternating kvlist and array values."""
    value = pb_len_field(1, b"leaf")  # AnyValue.string_value
    for level in range(depth):
        if level % 2 == 0:
            # AnyValue.array_value(5) = ArrayValue{values(1) = value}
            value = pb_len_field(5, pb_len_field(1, value))
        else:
            # AnyValue.kvlist_value(6) = KeyValueList{values(1) = KeyValue{key(1), value(2)}}
            value = pb_len_field(6, pb_len_field(1, pb_len_field(1, b"k") + pb_len_field(2, value)))
    return value


def nested_any_value_json(depth: int) -> str:
    """The same nesting in OTLP/JSON."""
    prefix, suffix = [], []
    for level in reversed(range(depth)):
        if level % 2 == 0:
            prefix.append('{"arrayValue":{"values":[')
            suffix.append("]}}")
        else:
            prefix.append('{"kvlistValue":{"values":[{"key":"k","value":')
            suffix.append("}]}}")
    return "".join(prefix) + '{"stringValue":"leaf"}' + "".join(reversed(suffix))


def trace_request_with_raw_attribute(service: str, span: trace_pb2.Span, key: str, any_value_bytes: bytes) -> bytes:
    """A serialized ExportTraceServiceRequest whose one span carries an extra hand-encoded attribute."""
    span_bytes = span.SerializeToString() + pb_len_field(9, pb_len_field(1, key.encode()) + pb_len_field(2, any_value_bytes))
    scope_spans = pb_len_field(1, common_pb2.InstrumentationScope(name="e2e").SerializeToString()) + pb_len_field(
        2, span_bytes
    )
    resource_spans = pb_len_field(1, resource(service).SerializeToString()) + pb_len_field(2, scope_spans)
    return pb_len_field(1, resource_spans)


# --------------------------------------------------------------------------------------------
# Prometheus text

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def prom_samples(text: str, name: str) -> list[tuple[dict, float]]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        labels = dict(_LABEL.findall(m.group(3) or ""))
        out.append((labels, float(m.group(4))))
    return out


def prom_sum(text: str, name: str, **labels) -> float:
    """Sum of the samples of one metric whose labels include the given ones (0 when none)."""
    return sum(v for lbls, v in prom_samples(text, name) if all(lbls.get(k) == val for k, val in labels.items()))
