"""Flushing to Parquet: the files are real Parquet laid out as documented, queries see each row once
whether it sits in memory or on disk, and a graceful stop keeps everything."""

from __future__ import annotations

import re
import signal
import time
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from e2e_util import (
    floor_hour_ns,
    gauge,
    iso_utc,
    logs_request,
    make_log,
    make_span,
    metrics_request,
    send_http,
    sql_str,
    trace_request,
    unique,
)

MINUTE = 60 * 10**9
HOUR = 60 * MINUTE

SPANS_COLUMNS = [
    "time", "end_time", "duration_ns", "service_name", "trace_id", "span_id", "parent_span_id", "trace_state",
    "flags", "name", "kind", "status_code", "status_message", "resource_attributes", "scope_name", "scope_version",
    "scope_attributes", "attributes", "events", "links", "dropped_attributes_count", "dropped_events_count",
    "dropped_links_count",
]
LOGS_COLUMNS = [
    "time", "observed_time", "service_name", "severity_number", "severity_text", "body", "template_id", "template", "trace_id", "span_id",
    "flags", "event_name", "resource_attributes", "scope_name", "scope_version", "scope_attributes", "attributes",
    "dropped_attributes_count",
]
METRICS_COLUMNS = [
    "time", "start_time", "service_name", "metric_name", "metric_description", "metric_unit", "metric_type",
    "temporality", "is_monotonic", "value", "count", "sum", "min", "max", "bucket_counts", "explicit_bounds",
    "exp_scale", "exp_zero_count", "exp_positive_offset", "exp_positive_bucket_counts", "exp_negative_offset",
    "exp_negative_bucket_counts", "quantiles", "flags", "resource_attributes", "scope_name", "scope_version",
    "scope_attributes", "attributes",
]
COLUMNS = {"spans": SPANS_COLUMNS, "logs": LOGS_COLUMNS, "metrics": METRICS_COLUMNS}


def two_hours_of_times(count_per_hour: int = 6) -> list[int]:
    """Timestamps in the two whole hours before the current one (so in two hourly partitions)."""
    base = floor_hour_ns(time.time_ns()) - 2 * HOUR
    return [base + h * HOUR + 7 * MINUTE + k * 5 * MINUTE for h in range(2) for k in range(count_per_hour)]


def send_all_signals(scry, service: str, times: list[int]):
    send_http(scry, "traces", trace_request(service, [make_span(f"s{i}", start_ns=t) for i, t in enumerate(times)]))
    send_http(scry, "logs", logs_request(service, [make_log(f"l{i}", time_ns=t) for i, t in enumerate(times)]))
    send_http(
        scry, "metrics", metrics_request(service, [gauge("e2e.g", [(t, float(i), {}) for i, t in enumerate(times)])])
    )


def is_utc_ns(typ: pa.DataType) -> bool:
    return pa.types.is_timestamp(typ) and typ.unit == "ns" and typ.tz in ("UTC", "+00:00", "Etc/UTC")


def test_flush_writes_documented_parquet(scry):
    service = unique("flush-files")
    times = two_hours_of_times()
    send_all_signals(scry, service, times)
    for table in ("spans", "logs", "metrics"):
        scry.wait_count(table, f"service_name = {sql_str(service)}", len(times))

    result = scry.flush()
    assert isinstance(result, dict)

    expected_partitions = {
        datetime.fromtimestamp(t // 10**9, tz=timezone.utc).strftime("%Y-%m-%d/%H") for t in times
    }
    assert len(expected_partitions) == 2
    for table in ("spans", "logs", "metrics"):
        files = scry.parquet_files(table)
        assert files, f"no Parquet files under {scry.data_dir / 'tables' / table}"
        ours = 0
        seen_partitions = set()
        for path in files:
            rel = path.relative_to(scry.data_dir / "tables" / table)
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}/\d{2}/[^/]+\.parquet", str(rel)), rel
            data = pq.read_table(path)
            missing = [c for c in COLUMNS[table] if c not in data.column_names]
            assert not missing, f"{path}: missing columns {missing}"
            assert is_utc_ns(data.schema.field("time").type), data.schema.field("time").type

            # every row lies in the file's hour partition
            t_ns = data.column("time").cast(pa.int64()).to_pylist()
            partition = str(rel.parent)
            for t in t_ns:
                assert datetime.fromtimestamp(t // 10**9, tz=timezone.utc).strftime("%Y-%m-%d/%H") == partition

            # zstd, sorted by (service_name, time), min/max time in the key/value metadata
            meta = pq.read_metadata(path)
            for rg in range(meta.num_row_groups):
                for col in range(meta.num_columns):
                    assert meta.row_group(rg).column(col).compression == "ZSTD", (path, rg, col)
            keys = list(zip(data.column("service_name").to_pylist(), t_ns))
            assert keys == sorted(keys), f"{path} is not sorted by (service_name, time)"
            kv = {k.decode(): v.decode("utf-8", "replace") for k, v in (meta.metadata or {}).items()}
            assert "scry.min_time_ns" in kv and "scry.max_time_ns" in kv, f"{path}: metadata keys {sorted(kv)}"
            if t_ns:
                assert int(kv["scry.min_time_ns"]) <= min(t_ns) and max(t_ns) <= int(kv["scry.max_time_ns"])

            mine = pc.equal(data.column("service_name"), service)
            n = pc.sum(mine.cast(pa.int64())).as_py() or 0
            if n:
                seen_partitions.add(partition)
            ours += n
        assert ours == len(times), f"{table}: {ours} of our rows in Parquet, expected {len(times)}"
        assert seen_partitions == expected_partitions, table

    # after the flush the same rows are still counted once
    for table in ("spans", "logs", "metrics"):
        assert scry.count(table, f"service_name = {sql_str(service)}") == len(times)
    rows = scry.query(
        f"SELECT name, CAST(time AS BIGINT) AS t FROM spans WHERE service_name = {sql_str(service)} ORDER BY time"
    )
    assert [int(r["t"]) for r in rows] == sorted(times)
    assert [r["name"] for r in rows] == [f"s{i}" for i in range(len(times))]


def test_count_spans_memory_and_parquet(scry):
    service = unique("flush-mixed")
    svc = sql_str(service)
    send_http(scry, "traces", trace_request(service, [make_span(f"a{i}", attrs={"phase": "before"}) for i in range(7)]))
    scry.wait_count("spans", f"service_name = {svc}", 7)
    scry.flush()
    send_http(scry, "traces", trace_request(service, [make_span(f"b{i}", attrs={"phase": "after"}) for i in range(5)]))
    scry.wait_count("spans", f"service_name = {svc}", 12)
    assert int(scry.scalar(f"SELECT COUNT(DISTINCT span_id) AS n FROM spans WHERE service_name = {svc}")) == 12
    groups = scry.query(
        f"SELECT attributes['phase'] AS phase, COUNT(*) AS n FROM spans WHERE service_name = {svc} GROUP BY 1"
    )
    assert {r["phase"]: int(r["n"]) for r in groups} == {"before": 7, "after": 5}
    scry.flush()
    assert scry.count("spans", f"service_name = {svc}") == 12
    scry.flush()  # a flush with nothing new is fine too
    assert scry.count("spans", f"service_name = {svc}") == 12


def test_time_range_query(scry):
    service = unique("flush-range")
    svc = sql_str(service)
    base = floor_hour_ns(time.time_ns()) - 2 * HOUR
    times = [base + k * 10 * MINUTE for k in range(12)]  # two hours, every 10 minutes
    spans = [make_span(f"k{k}", start_ns=t) for k, t in enumerate(times)]
    send_http(scry, "traces", trace_request(service, spans[:6]))
    scry.wait_count("spans", f"service_name = {svc}", 6)
    scry.flush()  # first hour on disk, second in memory
    send_http(scry, "traces", trace_request(service, spans[6:]))
    scry.wait_count("spans", f"service_name = {svc}", 12)

    def names(where: str) -> set[str]:
        return {r["name"] for r in scry.query(f"SELECT name FROM spans WHERE service_name = {svc} AND {where}")}

    lo, hi = times[3], times[9]  # bounds fall exactly on rows: >= includes, < excludes
    expected = {f"k{k}" for k in range(3, 9)}
    assert names(f"time >= '{iso_utc(lo)}' AND time < '{iso_utc(hi)}'") == expected
    assert names(f"CAST(time AS BIGINT) >= {lo} AND CAST(time AS BIGINT) < {hi}") == expected
    assert names(f"time > '{iso_utc(lo)}'") == {f"k{k}" for k in range(4, 12)}
    assert names(f"time >= '{iso_utc(base + HOUR)}'") == {f"k{k}" for k in range(6, 12)}
    assert names(f"time < '{iso_utc(base + HOUR)}'") == {f"k{k}" for k in range(0, 6)}
    assert names(f"time >= '{iso_utc(base + 5 * HOUR)}'") == set()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_stop_flushes_and_restart_keeps_rows(scry_factory, sig):
    scry = scry_factory()
    service = unique("flush-stop")
    svc = sql_str(service)
    times = two_hours_of_times(3)
    send_all_signals(scry, service, times)
    scry.wait_count("spans", f"service_name = {svc}", len(times))
    assert not scry.parquet_files("spans")  # flush interval is 1h: nothing on disk yet

    scry.stop(sig)  # asserts exit code 0

    files = scry.parquet_files("spans")
    assert files, "graceful shutdown wrote no Parquet file"
    on_disk = sum(
        pc.sum(pc.equal(pq.read_table(f, columns=["service_name"]).column(0), service).cast(pa.int64())).as_py() or 0
        for f in files
    )
    assert on_disk == len(times)

    scry.restart()
    for table in ("spans", "logs", "metrics"):
        scry.wait_count(table, f"service_name = {svc}", len(times))
    assert int(scry.scalar(f"SELECT COUNT(DISTINCT span_id) AS n FROM spans WHERE service_name = {svc}")) == len(times)
    scry.stop()
