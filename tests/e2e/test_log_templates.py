"""Log records stored through OTLP carry the template of their body, mined as they arrive."""

from __future__ import annotations

from e2e_util import logs_request, make_log, send_grpc, send_http, sql_str, unique


def test_templates_are_queryable(scry):
    service = unique("templates")
    # The first record of each shape arrives together with its variants, so every record sees the
    # generalized template (a record keeps the template its cluster had on arrival).
    logins = [make_log(f"user {i} logged in from 10.0.0.{i}") for i in range(1, 6)]
    failures = [make_log(f"Connection to db-{i} failed after {i * 10} ms") for i in range(1, 4)]
    assert send_http(scry, "logs", logs_request(service, logins)) == 0
    assert send_grpc(scry, "logs", logs_request(service, failures)) == 0
    assert send_http(scry, "logs", logs_request(service, [make_log({"structured": True})])) == 0
    scry.wait_count("logs", f"service_name = {sql_str(service)}", 9)
    rows = scry.query(
        f"SELECT template, count(*) AS n, count(DISTINCT template_id) AS ids FROM logs "
        f"WHERE service_name = {sql_str(service)} GROUP BY template ORDER BY n DESC"
    )
    got = {r["template"]: int(r["n"]) for r in rows}
    assert got["user <*> logged in from <*>"] == 5, got
    assert got["Connection to <*> failed after <*> ms"] == 3, got
    assert all(int(r["ids"]) == 1 for r in rows), rows
    assert sum(got.values()) == 9
