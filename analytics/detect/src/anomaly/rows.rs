//! Anomalies as rows of the `anomalies` table.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, ListBuilder, StringBuilder, TimestampNanosecondBuilder,
};
use arrow::record_batch::RecordBatch;
use scry_collector::Table;
use scry_collector::otlp::attributes::AttributesBuilder;

use crate::signals::{DetectorName, Evidence, SeriesKey};

/// One finding: a series that was anomalous in one bucket, or something seen for the first time.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Anomaly {
    /// Start of the bucket (or the time of a first occurrence), ns since the epoch.
    pub time_ns: i64,
    /// Width of the bucket in ns (0 for a first occurrence).
    pub width_ns: i64,
    /// The series.
    pub key: SeriesKey,
    /// What was compared with the forecast.
    pub observed: f64,
    /// The forecast.
    pub expected: Option<f64>,
    /// Lower end of the normal band.
    pub lower: Option<f64>,
    /// Upper end.
    pub upper: Option<f64>,
    /// Score in 0..1.
    pub score: f64,
    /// Which detector found it.
    pub detector: DetectorName,
    /// Exemplars.
    pub evidence: Evidence,
}

/// The rows as a batch of the `anomalies` table.
pub fn to_batch(rows: &[Anomaly]) -> RecordBatch {
    let n = rows.len();
    let mut time = TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
    let text = || StringBuilder::with_capacity(n, n * 16);
    let (mut service, mut signal, mut measure, mut scope, mut series, mut detector) =
        (text(), text(), text(), text(), text(), text());
    let float = || Float64Builder::with_capacity(n);
    let (mut observed, mut expected, mut lower, mut upper, mut score) =
        (float(), float(), float(), float(), float());
    let mut width = Int64Builder::with_capacity(n);
    let mut traces = ListBuilder::new(StringBuilder::new());
    let mut templates = ListBuilder::new(StringBuilder::new());
    let mut evidence = AttributesBuilder::new();
    for r in rows {
        time.append_value(r.time_ns);
        service.append_value(&r.key.service);
        signal.append_value(r.key.signal.as_str());
        measure.append_value(r.key.measure.as_str());
        scope.append_value(&r.key.scope);
        series.append_value(r.key.name());
        observed.append_value(r.observed);
        expected.append_option(r.expected);
        lower.append_option(r.lower);
        upper.append_option(r.upper);
        score.append_value(r.score);
        detector.append_value(r.detector.as_str());
        width.append_value(r.width_ns);
        for t in &r.evidence.trace_ids {
            traces.values().append_value(t);
        }
        traces.append(true);
        for t in &r.evidence.template_ids {
            templates.values().append_value(t);
        }
        templates.append(true);
        let pairs: Vec<(String, Option<String>)> = r
            .evidence
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        evidence.append_flat(&pairs);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(time.finish()),
        Arc::new(service.finish()),
        Arc::new(signal.finish()),
        Arc::new(measure.finish()),
        Arc::new(scope.finish()),
        Arc::new(series.finish()),
        Arc::new(observed.finish()),
        Arc::new(expected.finish()),
        Arc::new(lower.finish()),
        Arc::new(upper.finish()),
        Arc::new(score.finish()),
        Arc::new(detector.finish()),
        Arc::new(width.finish()),
        Arc::new(traces.finish()),
        Arc::new(templates.finish()),
        evidence.finish(),
    ];
    RecordBatch::try_new(Table::Anomalies.schema(), columns)
        .expect("anomaly columns match the anomalies schema")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::{Measure, Signal};

    #[test]
    fn rows_fit_the_table_schema() {
        let row = Anomaly {
            time_ns: 1,
            width_ns: 10,
            key: SeriesKey {
                service: "cart".into(),
                signal: Signal::Traces,
                measure: Measure::LatencyP99,
                scope: "GET /cart".into(),
            },
            observed: 900.0,
            expected: Some(100.0),
            lower: Some(50.0),
            upper: Some(150.0),
            score: 0.99,
            detector: DetectorName::Ewma,
            evidence: Evidence {
                trace_ids: vec!["abc".into()],
                template_ids: vec![],
                attributes: vec![("k".into(), "v".into())],
            },
        };
        let batch = to_batch(&[row.clone(), row]);
        assert_eq!(batch.num_rows(), 2);
    }
}
