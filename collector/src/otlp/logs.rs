//! `ExportLogsServiceRequest` → rows of the `logs` table.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int32Builder, StringBuilder, TimestampNanosecondBuilder, UInt32Builder,
};
use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use super::attributes::{AttributesBuilder, body_to_text};
use super::origin::{Origin, OriginColumns, for_each_item};
use super::{Converted, Rejections, check_id, hex_id, nanos, now_nanos};
use crate::schema::Table;

/// Converts a logs export request into one `logs` batch, rejecting invalid records one by one.
pub fn convert(req: &ExportLogsServiceRequest) -> Converted {
    let capacity: usize = req
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    let mut rows = LogRows::with_capacity(capacity);
    let mut rejections = Rejections::default();
    let now = now_nanos();
    for_each_item(
        &req.resource_logs,
        |r| (r.resource.as_ref(), &r.scope_logs),
        |s| (s.scope.as_ref(), &s.log_records),
        |origin, record| match validate(record) {
            Ok(()) => rows.push(record, now, origin),
            Err(reason) => rejections.reject(|| reason),
        },
    );
    let batch = (rows.len > 0).then(|| rows.finish());
    rejections.finish(batch)
}

fn validate(record: &LogRecord) -> Result<(), String> {
    if let Some(why) = check_id(&record.trace_id, 16, true) {
        return Err(format!("log record: trace_id {why}"));
    }
    if let Some(why) = check_id(&record.span_id, 8, true) {
        return Err(format!("log record: span_id {why}"));
    }
    Ok(())
}

struct LogRows {
    len: usize,
    time: TimestampNanosecondBuilder,
    observed_time: TimestampNanosecondBuilder,
    origin: OriginColumns,
    severity_number: Int32Builder,
    severity_text: StringBuilder,
    body: StringBuilder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    flags: UInt32Builder,
    event_name: StringBuilder,
    attributes: AttributesBuilder,
    dropped_attributes: UInt32Builder,
}

impl LogRows {
    fn with_capacity(n: usize) -> Self {
        let ts = || TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
        let s = || StringBuilder::with_capacity(n, n * 16);
        Self {
            len: 0,
            time: ts(),
            observed_time: ts(),
            origin: OriginColumns::with_capacity(n),
            severity_number: Int32Builder::with_capacity(n),
            severity_text: s(),
            body: StringBuilder::with_capacity(n, n * 64),
            trace_id: StringBuilder::with_capacity(n, n * 32),
            span_id: s(),
            flags: UInt32Builder::with_capacity(n),
            event_name: s(),
            attributes: AttributesBuilder::new(),
            dropped_attributes: UInt32Builder::with_capacity(n),
        }
    }

    fn push(&mut self, r: &LogRecord, now: i64, origin: &Origin) {
        let mut buf = [0u8; 32];
        let time = match (r.time_unix_nano, r.observed_time_unix_nano) {
            (0, 0) => now,
            (0, observed) => nanos(observed),
            (t, _) => nanos(t),
        };
        self.time.append_value(time);
        match r.observed_time_unix_nano {
            0 => self.observed_time.append_null(),
            t => self.observed_time.append_value(nanos(t)),
        }
        self.origin.push(origin);
        self.severity_number.append_value(r.severity_number);
        self.severity_text.append_value(&r.severity_text);
        self.body.append_option(body_to_text(r.body.as_ref()));
        if r.trace_id.is_empty() {
            self.trace_id.append_null();
        } else {
            self.trace_id.append_value(hex_id(&r.trace_id, &mut buf));
        }
        if r.span_id.is_empty() {
            self.span_id.append_null();
        } else {
            self.span_id.append_value(hex_id(&r.span_id, &mut buf));
        }
        self.flags.append_value(r.flags);
        self.event_name.append_value(&r.event_name);
        self.attributes.append_kvs(&r.attributes);
        self.dropped_attributes
            .append_value(r.dropped_attributes_count);
        self.len += 1;
    }

    fn finish(mut self) -> RecordBatch {
        let o = self.origin.finish();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.observed_time.finish()),
            o.service,
            Arc::new(self.severity_number.finish()),
            Arc::new(self.severity_text.finish()),
            Arc::new(self.body.finish()),
            // Filled by the ingest enricher when one is configured.
            arrow::array::new_null_array(&arrow::datatypes::DataType::Utf8, self.len),
            arrow::array::new_null_array(&arrow::datatypes::DataType::Utf8, self.len),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.event_name.finish()),
            o.resource_attributes,
            o.scope_name,
            o.scope_version,
            o.scope_attributes,
            self.attributes.finish(),
            Arc::new(self.dropped_attributes.finish()),
        ];
        RecordBatch::try_new(Table::Logs.schema(), columns).expect("log columns match schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::traces::tests::kv;
    use arrow::array::{Array, AsArray};
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValueList, any_value::Value};

    fn request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
        scry_workload::otlp::service_logs("api", records)
    }

    #[test]
    fn records_and_structured_bodies() {
        let structured = AnyValue {
            value: Some(Value::KvlistValue(KeyValueList {
                values: vec![kv("user", "bob")],
            })),
        };
        let records = vec![
            LogRecord {
                time_unix_nano: 10,
                severity_number: 17,
                severity_text: "ERROR".into(),
                body: Some(AnyValue {
                    value: Some(Value::StringValue("failed".into())),
                }),
                trace_id: vec![7; 16],
                span_id: vec![8; 8],
                ..Default::default()
            },
            LogRecord {
                observed_time_unix_nano: 20,
                body: Some(structured),
                ..Default::default()
            },
            LogRecord {
                trace_id: vec![1; 3],
                ..Default::default()
            },
        ];
        let out = convert(&request(records));
        assert_eq!(out.rejected, 1);
        let b = out.batch.unwrap();
        assert_eq!(b.num_rows(), 2);
        let body = b.column_by_name("body").unwrap().as_string::<i32>();
        assert_eq!(body.value(0), "failed");
        assert_eq!(body.value(1), r#"{"user":"bob"}"#);
        let time = b
            .column_by_name("time")
            .unwrap()
            .as_primitive::<arrow::datatypes::TimestampNanosecondType>();
        assert_eq!(time.value(1), 20);
        assert!(b.column_by_name("trace_id").unwrap().is_null(1));
    }
}
