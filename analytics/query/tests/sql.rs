//! SQL behaviour of the query service, as sqllogictest files (`tests/slt/*.slt`, the format
//! DataFusion and GreptimeDB test their SQL with), over a fixed set of telemetry ingested through
//! the collector's OTLP conversion into a real store (WAL, memtable and, for half of it, Parquet).

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use scry_collector::opentelemetry_proto::tonic::common::v1::AnyValue;
use scry_collector::opentelemetry_proto::tonic::logs::v1::LogRecord;
use scry_collector::opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, metric, number_data_point,
};
use scry_collector::opentelemetry_proto::tonic::trace::v1::{Span, Status};
use scry_collector::{Store, StoreConfig, Table, Telemetry, otlp};
use scry_query::{QueryConfig, QueryError, QueryService};
use scry_workload::otlp::{int, metrics_request, service, service_logs, service_spans, text};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};

/// 2024-01-01T00:00:00Z.
const T0: u64 = 1_704_067_200_000_000_000;
const SECOND: u64 = 1_000_000_000;

/// The query service as a sqllogictest database: every value printed with Arrow's display
/// formatting, NULL as `NULL`.
struct Scry(Arc<QueryService>);

#[async_trait::async_trait]
impl AsyncDB for Scry {
    type Error = QueryError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, QueryError> {
        let out = self.0.query(sql).await?;
        let types = vec![DefaultColumnType::Any; out.schema.fields().len()];
        let mut rows = Vec::new();
        for batch in &out.batches {
            rows.extend(format_rows(batch));
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}
}

fn format_rows(batch: &RecordBatch) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("NULL");
    let formatters: Vec<ArrayFormatter> = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("displayable column"))
        .collect();
    (0..batch.num_rows())
        .map(|row| {
            formatters
                .iter()
                .map(|f| {
                    let v = f.value(row).to_string();
                    if v.is_empty() { "(empty)".into() } else { v }
                })
                .collect()
        })
        .collect()
}

fn span(id: u64, name: &str, start_s: u64, ms: u64, failed: bool, route: &str) -> Span {
    let start = T0 + start_s * SECOND;
    Span {
        trace_id: (u128::from(id) << 64 | 7).to_be_bytes().to_vec(),
        span_id: id.to_be_bytes().to_vec(),
        name: name.into(),
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: start + ms * 1_000_000,
        attributes: vec![
            text("http.route", route),
            int("http.response.status_code", if failed { 500 } else { 200 }),
        ],
        status: failed.then(|| Status {
            code: 2,
            message: "boom".into(),
        }),
        ..Default::default()
    }
}

fn log(at_s: u64, severity: i32, text_: &str, body: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: T0 + at_s * SECOND,
        severity_number: severity,
        severity_text: text_.into(),
        body: Some(AnyValue {
            value: Some(
                scry_collector::opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                    body.into(),
                ),
            ),
        }),
        ..Default::default()
    }
}

fn gauge(name: &str, unit: &str, points: &[(u64, f64)]) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: points
                .iter()
                .map(|(s, v)| NumberDataPoint {
                    time_unix_nano: T0 + s * SECOND,
                    value: Some(number_data_point::Value::AsDouble(*v)),
                    ..Default::default()
                })
                .collect(),
        })),
        ..Default::default()
    }
}

/// Writes the fixture: `cart` (3 spans, one failed) is flushed to Parquet, `checkout` (2 spans)
/// stays in memory, so every query reads both.
async fn load(store: &Store) {
    let write = |table, batch: Option<RecordBatch>| {
        let store = store.clone();
        async move {
            store
                .write(table, batch.expect("valid fixture"))
                .await
                .unwrap()
        }
    };
    let cart = service_spans(
        "cart",
        vec![
            span(1, "GET /cart", 0, 20, false, "/cart"),
            span(2, "GET /cart", 1, 40, false, "/cart"),
            span(3, "POST /cart", 2, 900, true, "/cart/items"),
        ],
    );
    write(Table::Spans, otlp::traces::convert(&cart).batch).await;
    let logs = service_logs(
        "cart",
        vec![
            log(0, 9, "INFO", "added item 42 to cart"),
            log(2, 17, "ERROR", "database timeout after 900 ms"),
        ],
    );
    write(Table::Logs, otlp::logs::convert(&logs).batch).await;
    store.flush().await.unwrap();
    let checkout = service_spans(
        "checkout",
        vec![
            span(4, "POST /checkout", 3, 100, false, "/checkout"),
            span(5, "POST /checkout", 4, 120, false, "/checkout"),
        ],
    );
    write(Table::Spans, otlp::traces::convert(&checkout).batch).await;
    let metrics = metrics_request(
        [(
            service("checkout", []),
            vec![gauge(
                "process.cpu.utilization",
                "1",
                &[(0, 0.25), (10, 0.75)],
            )],
        )],
        None,
    );
    write(Table::Metrics, otlp::metrics::convert(&metrics).batch).await;
}

#[test]
fn sql_logic_tests() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let telemetry = Arc::new(Telemetry::new());
    let store = runtime
        .block_on(async { Store::open(StoreConfig::new(dir.path()), Arc::clone(&telemetry)) })
        .unwrap();
    runtime.block_on(load(&store));
    let config = QueryConfig {
        max_result_rows: 100,
        ..QueryConfig::default()
    };
    let query = Arc::new(QueryService::new(store.clone(), config, &telemetry).unwrap());
    let mut files: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slt"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files");
    let mut failures = Vec::new();
    for file in &files {
        let q = Arc::clone(&query);
        let mut runner = Runner::new(move || {
            let q = Arc::clone(&q);
            async move { Ok::<_, QueryError>(Scry(q)) }
        });
        if let Err(e) = runtime.block_on(runner.run_file_async(file)) {
            failures.push(format!("{}: {e}", file.display()));
        }
    }
    runtime.block_on(store.shutdown()).unwrap();
    drop(query);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
