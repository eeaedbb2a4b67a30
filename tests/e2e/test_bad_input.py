"""Bad input of every kind: the right status, and afterwards the daemon still serves and the data it
had is intact."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import requests

from e2e_util import (
    HTTP_TIMEOUT,
    JSON,
    OTLP,
    PROTOBUF,
    SIGNALS,
    TABLE_OF,
    grpc_error_code,
    grpc_export,
    grpc_raw,
    gzip_bomb,
    logs_request,
    make_log,
    make_span,
    nested_any_value,
    nested_any_value_json,
    post_otlp,
    raw_http_post,
    rejected_in_http_response,
    send_grpc,
    send_http,
    sql_str,
    to_otlp_json,
    trace_request,
    trace_request_with_raw_attribute,
    unique,
    gauge,
    metrics_request,
)

MIB = 1 << 20
REQUEST_LIMIT = 4 * MIB  # the module's daemon runs with --max-request-bytes 4 MiB
RESOURCE_KEY = {"traces": "resourceSpans", "logs": "resourceLogs", "metrics": "resourceMetrics"}


@pytest.fixture(scope="module")
def scry(module_scry_factory):
    return module_scry_factory(["--max-request-bytes", str(REQUEST_LIMIT)])


@pytest.fixture(scope="module")
def baseline(scry):
    """Rows stored before any bad input; every test checks they are still there afterwards."""
    service = unique("baseline")
    now = time.time_ns()
    send_http(scry, "traces", trace_request(service, [make_span(f"base-{i}") for i in range(3)]))
    send_http(scry, "logs", logs_request(service, [make_log("base log 1"), make_log("base log 2")]))
    send_http(scry, "metrics", metrics_request(service, [gauge("e2e.base", [(now, 1.0, {})])]))
    expected = {"spans": 3, "logs": 2, "metrics": 1}
    for table, n in expected.items():
        scry.wait_count(table, f"service_name = {sql_str(service)}", n)
    return service, expected


@pytest.fixture
def intact(scry, baseline):
    """Run the test, then assert the daemon still serves and the baseline rows are all there."""
    yield
    service, expected = baseline
    scry.assert_healthy()
    for table, n in expected.items():
        assert scry.count(table, f"service_name = {sql_str(service)}") == n, table
    # and it still ingests
    probe = unique("probe")
    assert send_http(scry, "traces", trace_request(probe, [make_span("probe")])) == 0
    scry.wait_count("spans", f"service_name = {sql_str(probe)}", 1)


def assert_json_error(resp):
    assert resp.headers.get("Content-Type", "").startswith(JSON), resp.headers
    body = resp.json()
    err = body.get("error")
    assert isinstance(err, dict), body
    assert isinstance(err.get("code"), str) and err["code"], body
    assert isinstance(err.get("message"), str) and err["message"], body


def table_total(scry, signal: str) -> int:
    return scry.count(TABLE_OF[signal])


# ------------------------------------------------------------------------------ malformed bodies

MALFORMED_PROTOBUF = {
    "invalid-wire-type": b"\xff" * 64,
    "truncated-field": b"\x0a\x64abc",  # field 1, length 100, 3 bytes follow
    "bad-varint": b"\x0a" + b"\xff" * 11,  # a length varint that never ends
}


@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize("payload", list(MALFORMED_PROTOBUF), ids=list(MALFORMED_PROTOBUF))
def test_malformed_protobuf_http(scry, intact, signal, payload):
    resp = post_otlp(scry, signal, MALFORMED_PROTOBUF[payload], PROTOBUF)
    assert resp.status_code == 400, resp.text[:500]


@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize(
    "payload",
    ["truncated", "not-json", "wrong-type", "top-level-array", "bad-enum-type"],
)
def test_malformed_json_http(scry, intact, signal, payload):
    key = RESOURCE_KEY[signal]
    body = {
        "truncated": '{"%s": [' % key,
        "not-json": "this is not json",
        "wrong-type": json.dumps({key: "nope"}),
        "top-level-array": "[1, 2, 3]",
        "bad-enum-type": json.dumps({key: [{"scopeSpans": [{"spans": [{"kind": {"x": 1}}]}]}]})
        if signal == "traces"
        else json.dumps({key: [{"resource": {"attributes": "x"}}]}),
    }[payload]
    resp = post_otlp(scry, signal, body.encode(), JSON)
    assert resp.status_code == 400, resp.text[:500]
    assert_json_error(resp)


def test_invalid_hex_id_json(scry, intact):
    """A trace id that is not hex is a decoding error (400) or a rejected span; never stored."""
    service = unique("bad-hex")
    body = to_otlp_json(trace_request(service, [make_span("not-hex")]))
    body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = "zz" * 16
    resp = post_otlp(scry, "traces", json.dumps(body).encode(), JSON)
    if resp.status_code == 200:
        assert rejected_in_http_response("traces", resp, JSON)[0] == 1
    else:
        assert resp.status_code == 400, resp.text[:500]
        assert_json_error(resp)
    assert scry.count("spans", f"service_name = {sql_str(service)}") == 0


@pytest.mark.parametrize("signal", SIGNALS)
def test_malformed_protobuf_grpc(scry, intact, signal):
    for payload in MALFORMED_PROTOBUF.values():
        code = grpc_error_code(lambda: grpc_raw(scry, signal, payload))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, code


# --------------------------------------------------------------------------- content type / encoding


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None], ids=["text", "xml", "missing"])
def test_wrong_content_type(scry, intact, content_type):
    service = unique("bad-ctype")
    body = trace_request(service, [make_span("x")]).SerializeToString()
    resp = post_otlp(scry, "traces", body, content_type)
    assert resp.status_code == 415, resp.text[:500]
    assert scry.count("spans", f"service_name = {sql_str(service)}") == 0


def test_content_encoding_gzip_with_garbage(scry, intact):
    resp = requests.post(
        f"{scry.otlp_http_url}/v1/traces",
        data=b"this is not gzip at all",
        headers={"Content-Type": PROTOBUF, "Content-Encoding": "gzip"},
        timeout=HTTP_TIMEOUT,
    )
    assert resp.status_code == 400, resp.text[:500]


# ------------------------------------------------------------------------------------- size limits


def big_trace_request(service: str, size: int) -> bytes:
    return trace_request(service, [make_span("big", attrs={"big": "a" * size})]).SerializeToString()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_limit_http(scry, intact, chunked):
    service = unique("too-big")
    body = big_trace_request(service, REQUEST_LIMIT + MIB)
    if chunked:  # no Content-Length: the limit has to be enforced while reading
        payload = (body[i : i + 256 * 1024] for i in range(0, len(body), 256 * 1024))
    else:
        payload = body
    resp = raw_http_post(
        "127.0.0.1", scry.otlp_http_port, "/v1/traces", {"Content-Type": PROTOBUF}, payload, chunked=chunked
    )
    assert resp.status_code == 413, resp
    assert scry.count("spans", f"service_name = {sql_str(service)}") == 0


@pytest.mark.parametrize("content_type", [PROTOBUF, JSON])
def test_gzip_bomb_http(scry, intact, content_type):
    bomb = gzip_bomb(64 * MIB)  # ~64 KiB on the wire, 64 MiB inflated
    assert len(bomb) < REQUEST_LIMIT
    resp = raw_http_post(
        "127.0.0.1",
        scry.otlp_http_port,
        "/v1/logs",
        {"Content-Type": content_type, "Content-Encoding": "gzip"},
        bomb,
    )
    assert resp.status_code == 413, resp


def test_body_over_limit_grpc(scry, intact):
    service = unique("too-big-grpc")
    request = trace_request(service, [make_span("big", attrs={"big": "a" * (REQUEST_LIMIT + MIB)})])
    code = grpc_error_code(lambda: grpc_export(scry, "traces", request))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, code
    assert scry.count("spans", f"service_name = {sql_str(service)}") == 0


def test_gzip_bomb_grpc(scry, intact):
    service = unique("bomb-grpc")
    # compresses to a few KiB, inflates past the limit
    request = trace_request(service, [make_span("bomb", attrs={"big": "a" * (2 * REQUEST_LIMIT)})])
    code = grpc_error_code(lambda: grpc_export(scry, "traces", request, compression=grpc.Compression.Gzip))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, code
    assert scry.count("spans", f"service_name = {sql_str(service)}") == 0


# ----------------------------------------------------------------------------------- empty requests


@pytest.mark.parametrize("signal", SIGNALS)
def test_empty_request(scry, intact, signal):
    before = table_total(scry, signal)
    # protobuf: zero bytes is a valid, empty Export*ServiceRequest
    resp = post_otlp(scry, signal, b"", PROTOBUF)
    assert resp.status_code == 200, resp.text[:500]
    assert rejected_in_http_response(signal, resp, PROTOBUF)[0] == 0
    # JSON: an empty object
    resp = post_otlp(scry, signal, b"{}", JSON)
    assert resp.status_code == 200, resp.text[:500]
    assert rejected_in_http_response(signal, resp, JSON)[0] == 0
    # a resource with no scopes, and gRPC with an empty message
    resp = post_otlp(scry, signal, json.dumps({RESOURCE_KEY[signal]: [{}]}).encode(), JSON)
    assert resp.status_code == 200, resp.text[:500]
    request_cls = OTLP[signal][0]
    assert getattr(grpc_export(scry, signal, request_cls()).partial_success, OTLP[signal][2]) == 0
    time.sleep(0.2)
    assert table_total(scry, signal) == before


# ----------------------------------------------------------------------------------- invalid UTF-8


def invalid_utf8_request(service: str) -> bytes:
    marker = b"UTF8-MARKER-0123"
    body = trace_request(service, [make_span(marker.decode())]).SerializeToString()
    assert body.count(marker) == 1
    return body.replace(marker, b"\xff\xfe\xfd\xc3\x28" + b"x" * (len(marker) - 5))


def test_invalid_utf8_http(scry, intact):
    service = unique("bad-utf8")
    resp = post_otlp(scry, "traces", invalid_utf8_request(service), PROTOBUF)
    assert resp.status_code == 400, resp.text[:500]
    assert scry.count("spans", f"service_name = {sql_str(service)}") == 0


def test_invalid_utf8_grpc(scry, intact):
    service = unique("bad-utf8-grpc")
    code = grpc_error_code(lambda: grpc_raw(scry, "traces", invalid_utf8_request(service)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, code
    assert scry.count("spans", f"service_name = {sql_str(service)}") == 0


# ------------------------------------------------------------------------------ deeply nested values


@pytest.mark.parametrize("depth", [200, 3000])
@pytest.mark.parametrize("mode", ["http-protobuf", "http-json", "grpc"])
def test_deeply_nested_anyvalue(scry, intact, mode, depth):
    service = unique(f"deep-{mode}-{depth}")
    span = make_span("deep")
    if mode == "http-json":
        doc = to_otlp_json(trace_request(service, [span]))
        placeholder = "@@DEEP@@"
        doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"] = [
            {"key": "deep", "value": {"stringValue": placeholder}}
        ]
        text = json.dumps(doc).replace(json.dumps({"stringValue": placeholder}), nested_any_value_json(depth))
        resp = post_otlp(scry, "traces", text.encode(), JSON)
        assert resp.status_code in (200, 400), resp.text[:500]
        stored_ok = resp.status_code == 200 and rejected_in_http_response("traces", resp, JSON)[0] == 0
    else:
        body = trace_request_with_raw_attribute(service, span, "deep", nested_any_value(depth))
        if mode == "grpc":
            try:
                resp = grpc_raw(scry, "traces", body)
                stored_ok = True
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc
                stored_ok = False
        else:
            resp = post_otlp(scry, "traces", body, PROTOBUF)
            assert resp.status_code in (200, 400), resp.text[:500]
            stored_ok = resp.status_code == 200 and rejected_in_http_response("traces", resp, PROTOBUF)[0] == 0
    expected = 1 if stored_ok else 0
    if expected:
        scry.wait_count("spans", f"service_name = {sql_str(service)}", 1)
        # the flattened value can be read back
        assert scry.scalar(
            f"SELECT length(attributes['deep']) > 0 AS ok FROM spans WHERE service_name = {sql_str(service)}"
        ) is True
    else:
        assert scry.count("spans", f"service_name = {sql_str(service)}") == 0


# ------------------------------------------------------------------------------ one big attribute


@pytest.mark.parametrize("mode", ["http-protobuf", "http-json", "grpc"])
def test_one_mib_attribute(scry, intact, mode):
    service = unique(f"mib-{mode}")
    request = trace_request(service, [make_span("big-attr", attrs={"big": "v" * MIB, "small": "s"})])
    if mode == "grpc":
        assert send_grpc(scry, "traces", request) == 0
    else:
        assert send_http(scry, "traces", request, as_json=(mode == "http-json")) == 0
    scry.wait_count("spans", f"service_name = {sql_str(service)}", 1)
    assert int(scry.scalar(f"SELECT length(attributes['big']) AS n FROM spans WHERE service_name = {sql_str(service)}")) == MIB
    assert scry.scalar(f"SELECT attributes['small'] AS s FROM spans WHERE service_name = {sql_str(service)}") == "s"


def test_one_mib_log_body(scry, intact):
    service = unique("mib-log")
    assert send_http(scry, "logs", logs_request(service, [make_log("b" * MIB)])) == 0
    scry.wait_count("logs", f"service_name = {sql_str(service)}", 1)
    assert int(scry.scalar(f"SELECT length(body) AS n FROM logs WHERE service_name = {sql_str(service)}")) == MIB


# ----------------------------------------------------------------------------------------- overload


def test_overload_is_refused_with_retry_after(scry_factory):
    scry = scry_factory(["--max-buffered-bytes", "1000"])
    service = unique("overload")
    spans_per_request = 10

    def one_http(i: int):
        request = trace_request(
            service, [make_span(f"h{i}-{j}", attrs={"pad": "p" * 500}) for j in range(spans_per_request)]
        )
        return post_otlp(scry, "traces", request.SerializeToString(), PROTOBUF)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(one_http, range(40)))
    accepted = 0
    refused = 0
    for resp in responses:
        if resp.status_code == 200:
            assert rejected_in_http_response("traces", resp, PROTOBUF)[0] == 0
            accepted += 1
        else:
            assert resp.status_code in (429, 503), (resp.status_code, resp.text[:300])
            assert resp.headers.get("Retry-After", "").strip(), f"{resp.status_code} without Retry-After"
            refused += 1
    assert refused >= 1, "no request was refused with a 1000-byte buffer"

    def one_grpc(i: int):
        request = trace_request(
            service, [make_span(f"g{i}-{j}", attrs={"pad": "p" * 500}) for j in range(spans_per_request)]
        )
        try:
            grpc_export(scry, "traces", request)
            return None
        except grpc.RpcError as exc:
            return exc.code()

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(one_grpc, range(40)))
    assert all(c in (None, grpc.StatusCode.UNAVAILABLE) for c in codes), codes
    assert grpc.StatusCode.UNAVAILABLE in codes, "no gRPC request was refused with UNAVAILABLE"
    accepted += codes.count(None)

    # refused requests stored nothing, accepted ones everything
    scry.assert_healthy()
    scry.wait_count("spans", f"service_name = {sql_str(service)}", accepted * spans_per_request)
    scry.flush()
    assert scry.count("spans", f"service_name = {sql_str(service)}") == accepted * spans_per_request
