"""Incidents end to end: a fault in one service that its caller feels becomes one incident whose
top root cause is the broken service; it is kept in SQLite and survives a restart."""

from __future__ import annotations

import time

import requests
from opentelemetry.proto.trace.v1 import trace_pb2

from e2e_util import (
    HTTP_TIMEOUT,
    logs_request,
    make_log,
    make_span,
    new_span_id,
    new_trace_id,
    send_grpc,
    trace_request,
    unique,
)

BUCKET_NS = 10_000_000_000
SERVER = trace_pb2.Span.SPAN_KIND_SERVER
CLIENT = trace_pb2.Span.SPAN_KIND_CLIENT


def traces(web: str, cart: str, start_ns: int, n: int, cart_ms: float):
    """n traces web GET / -> web client GET cart -> cart GET /cart, spread over one bucket."""
    by_service = {web: [], cart: []}
    for i in range(n):
        tid, ids = new_trace_id(), [new_span_id() for _ in range(3)]
        t = start_ns + i * (BUCKET_NS // (n + 1))
        cart_ns = int(cart_ms * 1e6)
        by_service[web].append(make_span("GET /", trace_id=tid, span_id=ids[0], start_ns=t, duration_ns=cart_ns + 10_000_000, kind=SERVER))
        by_service[web].append(make_span("GET cart", trace_id=tid, span_id=ids[1], parent_span_id=ids[0], start_ns=t + 1000, duration_ns=cart_ns + 2_000_000, kind=CLIENT))
        by_service[cart].append(make_span("GET /cart", trace_id=tid, span_id=ids[2], parent_span_id=ids[1], start_ns=t + 2000, duration_ns=cart_ns, kind=SERVER))
    return by_service


def send(scry, by_service):
    for service, spans in by_service.items():
        assert send_grpc(scry, "traces", trace_request(service, spans)) == 0


def incidents(scry, **params) -> list[dict]:
    resp = requests.get(f"{scry.api_url}/api/v1/incidents", params=params, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    return resp.json()["incidents"]


def test_a_cascade_is_one_incident_with_the_broken_callee_on_top_and_survives_restart(scry_factory):
    scry = scry_factory()
    web, cart = unique("web"), unique("cart")
    now = time.time_ns()
    first = now - now % BUCKET_NS - 45 * BUCKET_NS
    for b in range(45):
        start = first + b * BUCKET_NS
        send(scry, traces(web, cart, start, 12, 40.0 + (b % 3)))
        logs = [make_log(f"served cart {b * 12 + i} items {i}", time_ns=start + i * 700_000_000) for i in range(12)]
        assert send_grpc(scry, "logs", logs_request(cart, logs)) == 0
    # The fault: cart gets slow and logs a new error, in the bucket after the history (sharing the
    # last history bucket, the slow calls would be half of it: p50 unmoved, and an operation's p95
    # needs 20 spans, so this one has no p95 model to judge it).
    spike_start = max(now - 1_000_000_000, first + 45 * BUCKET_NS)
    send(scry, traces(web, cart, spike_start - spike_start % BUCKET_NS, 12, 900.0))
    errors = [make_log(f"inventory lock wait timeout after {5000 + i} ms", time_ns=spike_start + i, severity=17) for i in range(20)]
    assert send_grpc(scry, "logs", logs_request(cart, errors)) == 0

    deadline = time.monotonic() + 45
    found = []
    while time.monotonic() < deadline and not found:
        found = [i for i in incidents(scry) if cart in i["services"]]
        time.sleep(0.5)
    assert found, f"no incident; anomalies: {requests.get(f'{scry.api_url}/api/v1/anomalies', params={'since': '2h'}, timeout=HTTP_TIMEOUT).text[:3000]}"
    assert len(found) == 1, found
    inc = found[0]
    assert set(inc["services"]) >= {cart}
    assert inc["top_root_cause"]["service"] == cart, inc
    detail = requests.get(f"{scry.api_url}/api/v1/incidents/{inc['id']}", timeout=HTTP_TIMEOUT).json()
    assert detail["ranking"][0]["service"] == cart
    assert detail["timeline"][0]["change"] == "opened"
    assert detail["anomalies"], detail
    assert any("latency" in e for e in detail["ranking"][0]["evidence"]), detail["ranking"][0]

    scry.restart()
    again = requests.get(f"{scry.api_url}/api/v1/incidents/{inc['id']}", timeout=HTTP_TIMEOUT)
    assert again.status_code == 200 and again.json()["top_root_cause"]["service"] == cart
    assert (scry.data_dir / "incidents.db").is_file()


def test_unknown_incident_and_bad_filters_are_clear_errors(scry_factory):
    scry = scry_factory()
    r = requests.get(f"{scry.api_url}/api/v1/incidents/424242", timeout=HTTP_TIMEOUT)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = requests.get(f"{scry.api_url}/api/v1/incidents/abc", timeout=HTTP_TIMEOUT)
    assert r.status_code == 400
    r = requests.get(f"{scry.api_url}/api/v1/incidents", params={"status": "maybe"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 400
    assert incidents(scry, status="open") == []
