"""The query API (JSON and Arrow IPC), refused statements, health, /metrics, and `scry query`."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time

import pyarrow as pa
import pyarrow.ipc
import pytest
import requests

from e2e_util import ARROW_STREAM, make_span, prom_sum, send_http, sql_str, trace_request, unique

N_SPANS = 5
BASE_NS = (time.time_ns() // 10**9 - 3600) * 10**9  # an hour ago, whole seconds


@pytest.fixture(scope="module")
def seeded(scry):
    service = unique("qapi")
    spans = [
        make_span(f"op-{k}", start_ns=BASE_NS + k * 1_000_000_000, duration_ns=(k + 1) * 1000, attrs={"route": f"/r{k % 2}", "k": k})
        for k in range(N_SPANS)
    ]
    assert send_http(scry, "traces", trace_request(service, spans)) == 0
    scry.wait_count("spans", f"service_name = {sql_str(service)}", N_SPANS)
    return service


def seeded_sql(service: str) -> str:
    return (
        f"SELECT name, duration_ns, time, CAST(time AS BIGINT) AS t, attributes "
        f"FROM spans WHERE service_name = {sql_str(service)} ORDER BY name"
    )


def assert_error_response(resp, status: int | tuple = 400):
    statuses = status if isinstance(status, tuple) else (status,)
    assert resp.status_code in statuses, (resp.status_code, resp.text[:500])
    assert resp.headers.get("Content-Type", "").startswith("application/json"), resp.headers
    err = resp.json().get("error")
    assert isinstance(err, dict), resp.text
    assert isinstance(err.get("code"), str) and err["code"], resp.text
    assert isinstance(err.get("message"), str) and err["message"], resp.text


# ------------------------------------------------------------------------------------------ JSON


def test_query_json_format(scry, seeded):
    resp = scry.query_response(seeded_sql(seeded))
    assert resp.status_code == 200, resp.text[:1000]
    assert resp.headers.get("Content-Type", "").startswith("application/json")
    body = resp.json()
    assert [c["name"] for c in body["columns"]] == ["name", "duration_ns", "time", "t", "attributes"]
    assert all(isinstance(c["type"], str) and c["type"] for c in body["columns"]), body["columns"]
    assert body["row_count"] == N_SPANS == len(body["rows"])
    for k, row in enumerate(body["rows"]):
        assert row["name"] == f"op-{k}"
        assert row["duration_ns"] == (k + 1) * 1000
        assert isinstance(row["time"], str), row["time"]  # timestamps are text in JSON
        assert int(row["t"]) == BASE_NS + k * 1_000_000_000
        assert isinstance(row["attributes"], dict), row["attributes"]  # maps are JSON objects
        assert row["attributes"] == {"route": f"/r{k % 2}", "k": str(k)}


def test_query_aggregates(scry, seeded):
    rows = scry.query(
        f"""SELECT attributes['route'] AS route, COUNT(*) AS n, SUM(duration_ns) AS total
            FROM spans WHERE service_name = {sql_str(seeded)} GROUP BY attributes['route'] ORDER BY route"""
    )
    assert [(r["route"], int(r["n"]), int(r["total"])) for r in rows] == [("/r0", 3, 9000), ("/r1", 2, 6000)]


def test_query_empty_result(scry, seeded):
    body = scry.query_json(f"SELECT name FROM spans WHERE service_name = {sql_str(seeded + '-none')}")
    assert body["rows"] == [] and body["row_count"] == 0
    assert [c["name"] for c in body["columns"]] == ["name"]


# ----------------------------------------------------------------------------------------- Arrow


def test_query_arrow_ipc_format(scry, seeded):
    resp = scry.query_response(seeded_sql(seeded), accept=ARROW_STREAM)
    assert resp.status_code == 200, resp.text[:1000]
    assert resp.headers.get("Content-Type", "").startswith(ARROW_STREAM), resp.headers
    table = pyarrow.ipc.open_stream(resp.content).read_all()
    assert table.column_names == ["name", "duration_ns", "time", "t", "attributes"]
    assert table.num_rows == N_SPANS
    time_type = table.schema.field("time").type
    assert pa.types.is_timestamp(time_type) and time_type.unit == "ns" and time_type.tz in ("UTC", "+00:00"), time_type
    assert pa.types.is_int64(table.schema.field("duration_ns").type)
    assert pa.types.is_map(table.schema.field("attributes").type)
    assert table.column("name").to_pylist() == [f"op-{k}" for k in range(N_SPANS)]
    assert table.column("duration_ns").to_pylist() == [(k + 1) * 1000 for k in range(N_SPANS)]
    assert table.column("time").cast(pa.int64()).to_pylist() == table.column("t").to_pylist()
    assert [dict(m) for m in table.column("attributes").to_pylist()][1] == {"route": "/r1", "k": "1"}


def test_query_arrow_ipc_empty_result(scry, seeded):
    resp = scry.query_response(
        f"SELECT name FROM spans WHERE service_name = {sql_str(seeded + '-none')}", accept=ARROW_STREAM
    )
    assert resp.status_code == 200, resp.text[:1000]
    table = pyarrow.ipc.open_stream(resp.content).read_all()
    assert table.num_rows == 0 and table.column_names == ["name"]


# ------------------------------------------------------------------------------- refused and errors

REFUSED = {
    "create-table": "CREATE TABLE t (a INT)",
    "create-table-as": "CREATE TABLE t AS SELECT * FROM spans",
    "create-external-table": "CREATE EXTERNAL TABLE leak (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'",
    "insert": "INSERT INTO spans (name) VALUES ('x')",
    "copy": "COPY (SELECT 1 AS a) TO '{tmp}/copy-out.csv'",
    "set": "SET datafusion.execution.batch_size = 1",
    "drop": "DROP TABLE spans",
    "two-statements": "SELECT 1; DROP TABLE spans",
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_statements(scry, seeded, name, tmp_path):
    sql = REFUSED[name].format(tmp=tmp_path)
    assert_error_response(scry.query_response(sql), 400)
    # nothing happened
    assert not (tmp_path / "copy-out.csv").exists()
    assert scry.count("spans", f"service_name = {sql_str(seeded)}") == N_SPANS
    assert scry.query_response("SELECT * FROM leak").status_code >= 400
    assert scry.query_response("SELECT * FROM t").status_code >= 400


@pytest.mark.parametrize("sql", ["SELEC 1", "SELECT FROM WHERE", "SELECT * FROM spans WHERE", "SELECT (1"])
def test_syntax_error(scry, seeded, sql):
    assert_error_response(scry.query_response(sql), 400)


@pytest.mark.parametrize("sql", ["SELECT * FROM no_such_table", "SELECT no_such_column FROM spans"])
def test_planning_error(scry, seeded, sql):
    resp = scry.query_response(sql)
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text[:300])
    assert_error_response(resp, resp.status_code)


@pytest.mark.parametrize(
    "body,ctype", [(b"not json", "application/json"), (b"{}", "application/json"), (b'{"sql": 1}', "application/json")]
)
def test_bad_query_request(scry, seeded, body, ctype):
    resp = requests.post(scry.api_url + "/api/v1/query", data=body, headers={"Content-Type": ctype}, timeout=30)
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text[:300])


# ------------------------------------------------------------------------------- health and metrics


def test_health_endpoints(scry):
    assert scry.get("/healthz").status_code == 200
    assert scry.get("/readyz").status_code == 200


def test_prometheus_metrics(scry, seeded):
    before = scry.metrics_text()
    service = unique("qapi-metrics")
    request = trace_request(service, [make_span(f"m{i}") for i in range(3)] + [make_span("bad", trace_id=bytes(16))])
    assert send_http(scry, "traces", request) == 1
    scry.wait_count("spans", f"service_name = {sql_str(service)}", 3)
    resp = scry.get("/metrics")
    assert resp.status_code == 200
    text = resp.text
    assert 'scry_items_accepted_total{' in text and 'signal="spans"' in text, text[:2000]
    assert "scry_items_rejected_total{" in text, text[:2000]
    accepted = prom_sum(text, "scry_items_accepted_total", signal="spans")
    rejected = prom_sum(text, "scry_items_rejected_total", signal="spans")
    assert accepted >= N_SPANS + 3
    assert accepted - prom_sum(before, "scry_items_accepted_total", signal="spans") == 3
    assert rejected - prom_sum(before, "scry_items_rejected_total", signal="spans") == 1


# ------------------------------------------------------------------------------------------- CLI


def run_cli(scry, *args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(scry.binary), "query", *args, "--server", scry.api_url],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    if check:
        assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout[:2000]}\nstderr: {proc.stderr[:2000]}"
    return proc


def cli_sql(service: str) -> str:
    return f"SELECT name, duration_ns FROM spans WHERE service_name = {sql_str(service)} ORDER BY name"


def test_cli_table(scry, seeded):
    out = run_cli(scry, cli_sql(seeded)).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    assert any("name" in line and "duration_ns" in line for line in lines), out
    for k in range(N_SPANS):
        row = [line for line in lines if f"op-{k}" in line]
        assert len(row) == 1 and str((k + 1) * 1000) in row[0], out
    # the default format is the table
    assert run_cli(scry, cli_sql(seeded), "--format", "table").stdout == out


def parse_cli_json(text: str) -> list[dict]:
    """Rows from `--format json`: a JSON array of rows, an API-style object, or one object per line."""
    text = text.strip()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(doc, dict) and "rows" in doc:
        return doc["rows"]
    if isinstance(doc, dict):
        return [doc]
    return doc


def test_cli_json(scry, seeded):
    rows = parse_cli_json(run_cli(scry, cli_sql(seeded), "--format", "json").stdout)
    assert [(r["name"], int(r["duration_ns"])) for r in rows] == [(f"op-{k}", (k + 1) * 1000) for k in range(N_SPANS)]


def test_cli_csv(scry, seeded):
    out = run_cli(scry, cli_sql(seeded), "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["name"], int(r["duration_ns"])) for r in rows] == [(f"op-{k}", (k + 1) * 1000) for k in range(N_SPANS)]


def test_cli_error(scry, seeded):
    proc = run_cli(scry, "SELEC 1", check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip(), "no error message on stderr"
