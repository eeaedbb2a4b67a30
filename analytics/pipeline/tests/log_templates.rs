//! Log templates as queries see them: records stored before their cluster generalised read with
//! the cluster's current template and id, from memory and from Parquet alike, and a filter on the
//! current id finds them in flushed files (file statistics hold the stored ids, so they must not
//! prune on it).

use std::sync::Arc;

use arrow::array::AsArray;
use scry_collector::opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use scry_collector::opentelemetry_proto::tonic::logs::v1::LogRecord;
use scry_collector::{Ingest, Store, StoreConfig, Telemetry};
use scry_detect::logs::TemplateEnricher;
use scry_query::{QueryConfig, QueryService};
use scry_workload::otlp::service_logs;

const T0: u64 = 1_700_000_000_000_000_000;

fn record(i: u64, body: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: T0 + i * 1_000_000_000,
        severity_number: 9,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body.into())),
        }),
        ..Default::default()
    }
}

/// `(template, template_id, rows)` per template of `service`'s records.
async fn templates(query: &QueryService, filter: &str) -> Vec<(String, String, i64)> {
    let out = query
        .query(&format!(
            "SELECT template, template_id, count(*) AS n FROM logs WHERE {filter} \
             GROUP BY template, template_id ORDER BY n DESC"
        ))
        .await
        .unwrap();
    let mut rows = Vec::new();
    for b in &out.batches {
        let (t, id) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_string::<i32>(),
        );
        let n = b.column(2).as_primitive::<arrow::datatypes::Int64Type>();
        for i in 0..b.num_rows() {
            rows.push((t.value(i).to_string(), id.value(i).to_string(), n.value(i)));
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_records_read_with_the_current_template() {
    let dir = tempfile::tempdir().unwrap();
    let telemetry = Arc::new(Telemetry::new());
    let store = Store::open(StoreConfig::new(dir.path()), Arc::clone(&telemetry)).unwrap();
    let miner = Arc::new(TemplateEnricher::default());
    let query = QueryService::new(store.clone(), QueryConfig::default(), &telemetry)
        .unwrap()
        .revised_by(Arc::clone(&miner) as _)
        .unwrap();
    let ingest = Ingest::new(store.clone(), telemetry).with_enricher(miner);

    // One record per request, the first flushed to Parquet before the rest arrive: each is stored
    // with the template its cluster had then (a word in few variants is part of the template).
    let regions = [
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
    ];
    for (i, region) in regions.iter().enumerate() {
        let body = format!("cache warmed for region {region}");
        let req = service_logs("cache", vec![record(i as u64, &body)]);
        assert_eq!(ingest.logs(&req).await.unwrap().accepted, 1);
        if i == 0 {
            store.flush().await.unwrap();
        }
    }
    let expect = "cache warmed for region <*>";
    let rows = templates(&query, "service_name = 'cache'").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].2), (expect, 9));

    store.flush().await.unwrap();
    let id = &rows[0].1;
    let by_id = templates(&query, &format!("template_id = '{id}'")).await;
    assert_eq!(
        by_id, rows,
        "a filter on the current id finds every flushed record"
    );
    let by_text = templates(&query, &format!("template = '{expect}'")).await;
    assert_eq!(by_text, rows);
    store.shutdown().await.unwrap();
}
