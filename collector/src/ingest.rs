//! The ingest path shared by every receiver: convert an export request, store its rows durably,
//! count what was accepted and rejected.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::error::{Error, Result};
use crate::otlp::{self, Converted};
use crate::schema::Table;
use crate::store::Store;
use crate::telemetry::{SignalLabel, Telemetry};

/// What happened to the items of one export request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportOutcome {
    /// Items stored.
    pub accepted: usize,
    /// Items rejected as invalid.
    pub rejected: i64,
    /// Why items were rejected; empty when none were.
    pub error_message: String,
}

/// Adds derived columns to a batch before it is stored (e.g. log templates). It lives outside
/// the collector (analytics implements it), so the hook keeps dependencies pointing one way.
pub trait Enricher: Send + Sync {
    /// Returns the batch with derived columns filled; must keep the table's schema.
    fn enrich(&self, table: Table, batch: RecordBatch) -> RecordBatch;

    /// Brings the derived columns of a stored batch of `table` up to date as a query reads it
    /// (e.g. a log template that has generalised since the row was stored). `batch` holds the
    /// columns the query asked for, by name, in any order; columns it lacks are left alone, and the
    /// schema must not change. By default rows read as stored.
    fn revise(&self, table: Table, batch: RecordBatch) -> RecordBatch {
        let _ = table;
        batch
    }

    /// The columns of `table` that [`Enricher::revise`] may change: their stored values must not
    /// be used to skip files or row groups.
    fn revised_columns(&self, table: Table) -> &'static [&'static str] {
        let _ = table;
        &[]
    }
}

/// Sees every batch once it is stored durably (e.g. to aggregate series for the detectors).
/// Called on the ingest path, so it must be quick; it runs after the write is acknowledged by
/// the WAL, so a retried export that failed to store is never counted twice.
pub trait Observer: Send + Sync {
    /// Looks at a stored batch of `table`.
    fn observe(&self, table: Table, batch: &RecordBatch);
}

/// Converts and stores export requests; shared by the gRPC and HTTP receivers.
#[derive(Clone)]
pub struct Ingest {
    store: Store,
    telemetry: Arc<Telemetry>,
    enricher: Option<Arc<dyn Enricher>>,
    observer: Option<Arc<dyn Observer>>,
}

impl Ingest {
    /// Ingest into `store`, counting into `telemetry`.
    pub fn new(store: Store, telemetry: Arc<Telemetry>) -> Self {
        Self {
            store,
            telemetry,
            enricher: None,
            observer: None,
        }
    }

    /// Derives columns with `enricher` before storing.
    pub fn with_enricher(mut self, enricher: Arc<dyn Enricher>) -> Self {
        self.enricher = Some(enricher);
        self
    }

    /// Shows every stored batch to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Stores the valid spans of a trace export.
    pub async fn traces(&self, req: &ExportTraceServiceRequest) -> Result<ExportOutcome> {
        self.ingest(Table::Spans, || otlp::traces::convert(req))
            .await
    }

    /// Stores the valid records of a logs export.
    pub async fn logs(&self, req: &ExportLogsServiceRequest) -> Result<ExportOutcome> {
        self.ingest(Table::Logs, || otlp::logs::convert(req)).await
    }

    /// Stores the valid data points of a metrics export.
    pub async fn metrics(&self, req: &ExportMetricsServiceRequest) -> Result<ExportOutcome> {
        self.ingest(Table::Metrics, || otlp::metrics::convert(req))
            .await
    }

    async fn ingest(
        &self,
        table: Table,
        convert: impl FnOnce() -> Converted,
    ) -> Result<ExportOutcome> {
        let signal = table.name();
        // Refuse before spending CPU on conversion when we would refuse the write anyway.
        if let Err(e) = self.store.check_capacity() {
            if matches!(e, Error::Overloaded { .. }) {
                let label = SignalLabel {
                    signal: signal.to_string(),
                };
                self.telemetry
                    .requests_throttled
                    .get_or_create(&label)
                    .inc();
            }
            return Err(e);
        }
        let converted = convert();
        let accepted = converted.accepted();
        if let Some(mut batch) = converted.batch {
            if let Some(enricher) = &self.enricher {
                batch = enricher.enrich(table, batch);
            }
            let observed = self.observer.as_ref().map(|o| (o, batch.clone()));
            self.store.write(table, batch).await?;
            if let Some((observer, batch)) = observed {
                observer.observe(table, &batch);
            }
        }
        self.telemetry.accepted(signal).inc_by(accepted as u64);
        if converted.rejected > 0 {
            self.telemetry
                .rejected(signal)
                .inc_by(converted.rejected as u64);
        }
        Ok(ExportOutcome {
            accepted,
            rejected: converted.rejected,
            error_message: converted.error_message,
        })
    }
}
