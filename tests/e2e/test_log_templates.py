"""Log records stored through OTLP carry the template of their body, mined as they arrive."""

from __future__ import annotations

from e2e_util import logs_request, make_log, send_grpc, send_http, sql_str, unique


def test_templates_are_queryable(scry):
    service = unique("templates")
    # The first record of each shape arrives together with its variants, so every record is stored
    # with the generalized template (the next test covers records stored before it generalized).
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


def test_early_records_read_with_the_current_template(scry):
    """A record keeps the template its cluster had when it arrived, and queries read it as the
    cluster stands now: one template and one id for records sent one by one while the cluster
    generalised, the first of them already in a Parquet file."""
    service = unique("generalise")
    regions = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"]
    where = f"service_name = {sql_str(service)}"
    for i, region in enumerate(regions):
        body = f"shard rebalanced for region {region}"
        assert send_http(scry, "logs", logs_request(service, [make_log(body)])) == 0
        if i == 0:
            scry.wait_count("logs", where, 1)
            first = scry.query(f"SELECT template FROM logs WHERE {where}")
            assert first == [{"template": "shard rebalanced for region alpha"}], first
            scry.flush()
    scry.wait_count("logs", where, len(regions))
    rows = scry.query(
        f"SELECT template, template_id, count(*) AS n FROM logs WHERE {where} "
        "GROUP BY template, template_id"
    )
    assert len(rows) == 1, rows
    assert rows[0]["template"] == "shard rebalanced for region <*>", rows
    assert int(rows[0]["n"]) == len(regions), rows
    # Flushed files hold the ids the rows were stored with; a filter on the current id must still
    # find every row rather than skip files by their statistics.
    scry.flush()
    found = scry.query(
        f"SELECT count(*) AS n FROM logs WHERE template_id = {sql_str(rows[0]['template_id'])}"
    )
    assert int(found[0]["n"]) == len(regions), found
