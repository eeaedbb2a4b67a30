//! scry's own metrics, exposed in Prometheus text format at `/metrics`.

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label naming a telemetry signal (`spans`, `logs`, `metrics`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignalLabel {
    /// The signal.
    pub signal: String,
}

/// Label naming a table.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabel {
    /// The table.
    pub table: String,
}

/// Latency histogram buckets from 0.5 ms to about 33 s.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

/// Counters and histograms of the collector, plus the registry other crates add theirs to.
pub struct Telemetry {
    registry: Mutex<Registry>,
    /// Items stored, by signal.
    pub items_accepted: Family<SignalLabel, Counter>,
    /// Items rejected (invalid), by signal.
    pub items_rejected: Family<SignalLabel, Counter>,
    /// Requests refused because too much was buffered, by signal.
    pub requests_throttled: Family<SignalLabel, Counter>,
    /// Bytes appended to the WAL.
    pub wal_bytes: Counter,
    /// WAL fsyncs (each commits a group of writes).
    pub wal_syncs: Counter,
    /// WAL fsync latency.
    pub wal_sync_seconds: Histogram,
    /// Bytes of Arrow data in memory.
    pub buffered_bytes: Gauge,
    /// Flush latency.
    pub flush_seconds: Histogram,
    /// Rows written to Parquet, by table.
    pub rows_persisted: Family<TableLabel, Counter>,
    /// Bytes written to Parquet.
    pub parquet_bytes: Counter,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// A registry with the collector's metrics registered under `scry_`.
    pub fn new() -> Self {
        let t = Telemetry {
            registry: Mutex::new(Registry::default()),
            items_accepted: Family::default(),
            items_rejected: Family::default(),
            requests_throttled: Family::default(),
            wal_bytes: Counter::default(),
            wal_syncs: Counter::default(),
            wal_sync_seconds: latency_histogram(),
            buffered_bytes: Gauge::default(),
            flush_seconds: latency_histogram(),
            rows_persisted: Family::default(),
            parquet_bytes: Counter::default(),
        };
        {
            let mut r = t.registry.lock();
            r.register(
                "scry_items_accepted",
                "Items (spans, log records, metric points) stored",
                t.items_accepted.clone(),
            );
            r.register(
                "scry_items_rejected",
                "Items rejected as invalid",
                t.items_rejected.clone(),
            );
            r.register(
                "scry_requests_throttled",
                "Export requests refused while overloaded",
                t.requests_throttled.clone(),
            );
            r.register(
                "scry_wal_bytes",
                "Bytes appended to the write-ahead log",
                t.wal_bytes.clone(),
            );
            r.register(
                "scry_wal_syncs",
                "WAL fsyncs (group commits)",
                t.wal_syncs.clone(),
            );
            r.register(
                "scry_wal_sync_seconds",
                "WAL fsync latency",
                t.wal_sync_seconds.clone(),
            );
            r.register(
                "scry_buffered_bytes",
                "Bytes of Arrow data held in memory",
                t.buffered_bytes.clone(),
            );
            r.register(
                "scry_flush_seconds",
                "Time to persist memory to Parquet",
                t.flush_seconds.clone(),
            );
            r.register(
                "scry_rows_persisted",
                "Rows written to Parquet",
                t.rows_persisted.clone(),
            );
            r.register(
                "scry_parquet_bytes",
                "Bytes written to Parquet files",
                t.parquet_bytes.clone(),
            );
        }
        t
    }

    /// Lets another crate register its own metrics in the same registry.
    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        f(&mut self.registry.lock())
    }

    /// The Prometheus text exposition of every registered metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry.lock())
            .expect("writing to a String cannot fail");
        out
    }

    /// Counter of a signal's accepted items.
    pub fn accepted(&self, signal: &str) -> Counter {
        self.items_accepted
            .get_or_create(&SignalLabel {
                signal: signal.to_string(),
            })
            .clone()
    }

    /// Counter of a signal's rejected items.
    pub fn rejected(&self, signal: &str) -> Counter {
        self.items_rejected
            .get_or_create(&SignalLabel {
                signal: signal.to_string(),
            })
            .clone()
    }
}
