"""The service graph and service list, built from hand-made traces sent over OTLP.

Each trace is frontend (server) -> frontend client span -> cart (server) -> cart client span ->
db (server), plus a span inside cart that calls nobody. Edges must be exactly frontend -> cart and
cart -> db, with the callee side's call and error counts.
"""

from __future__ import annotations

import time

import requests
from opentelemetry.proto.trace.v1 import trace_pb2

from e2e_util import HTTP_TIMEOUT, make_span, new_span_id, new_trace_id, send_grpc, trace_request, unique

SERVER = trace_pb2.Span.SPAN_KIND_SERVER
CLIENT = trace_pb2.Span.SPAN_KIND_CLIENT


def send_traces(scry, names: dict, n: int, failing_db: int):
    now = time.time_ns()
    by_service = {k: [] for k in names.values()}
    for i in range(n):
        tid = new_trace_id()
        ids = [new_span_id() for _ in range(6)]
        t = now - 60_000_000_000 + i * 1_000_000
        spans = [
            (names["fe"], make_span("GET /", trace_id=tid, span_id=ids[0], start_ns=t, duration_ns=30_000_000, kind=SERVER)),
            (names["fe"], make_span("GET cart", trace_id=tid, span_id=ids[1], parent_span_id=ids[0], start_ns=t + 1, duration_ns=25_000_000, kind=CLIENT)),
            (names["cart"], make_span("GET /cart", trace_id=tid, span_id=ids[2], parent_span_id=ids[1], start_ns=t + 2, duration_ns=20_000_000, kind=SERVER)),
            (names["cart"], make_span("render", trace_id=tid, span_id=ids[3], parent_span_id=ids[2], start_ns=t + 3, duration_ns=1_000_000)),
            (names["cart"], make_span("SELECT", trace_id=tid, span_id=ids[4], parent_span_id=ids[2], start_ns=t + 4, duration_ns=5_000_000, kind=CLIENT)),
            (names["db"], make_span("SELECT items", trace_id=tid, span_id=ids[5], parent_span_id=ids[4], start_ns=t + 5, duration_ns=4_000_000, kind=SERVER)),
        ]
        if i < failing_db:
            spans[-1][1].status.code = trace_pb2.Status.STATUS_CODE_ERROR
        for service, span in spans:
            by_service[service].append(span)
    for service, spans in by_service.items():
        assert send_grpc(scry, "traces", trace_request(service, spans)) == 0


def get_rows(scry, path: str, **params) -> list[dict]:
    resp = requests.get(f"{scry.api_url}{path}", params=params, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    return resp.json()["rows"]


def test_edges_are_caller_callee_pairs_across_services(scry):
    names = {k: unique(k) for k in ("fe", "cart", "db")}
    send_traces(scry, names, n=20, failing_db=3)
    mine = set(names.values())
    edges = {
        (r["caller"], r["callee"]): r
        for r in get_rows(scry, "/api/v1/service-graph", since="5m")
        if r["caller"] in mine or r["callee"] in mine
    }
    assert set(edges) == {(names["fe"], names["cart"]), (names["cart"], names["db"])}, edges
    to_cart, to_db = edges[(names["fe"], names["cart"])], edges[(names["cart"], names["db"])]
    assert to_cart["calls"] == 20 and to_cart["errors"] == 0
    assert to_db["calls"] == 20 and to_db["errors"] == 3
    assert abs(to_db["avg_ms"] - 4.0) < 0.01 and abs(to_cart["avg_ms"] - 20.0) < 0.01


def test_service_list_covers_every_table(scry):
    names = {k: unique(k) for k in ("fe", "cart", "db")}
    send_traces(scry, names, n=5, failing_db=1)
    rows = {r["service_name"]: r for r in get_rows(scry, "/api/v1/services", since="5m")}
    for service in names.values():
        assert service in rows, rows.keys()
    assert rows[names["db"]]["spans"] == 5 and rows[names["db"]]["errors"] == 1
    assert rows[names["fe"]]["spans"] == 10


def test_bad_window_is_a_clear_error(scry):
    resp = requests.get(f"{scry.api_url}/api/v1/service-graph", params={"since": "last tuesday"}, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_filter"
