//! OTLP export requests built from plain parts: attributes, and requests with a resource (and a
//! scope) per group of spans, log records or metrics. One builder for the simulator, the corpus
//! replay, the load generator and the tests of every crate.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

/// A string value.
pub fn string(value: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(value.into())),
    })
}

/// A resource naming `service` (`service.name`), with `more` attributes.
pub fn service(service: &str, more: impl IntoIterator<Item = KeyValue>) -> Option<Resource> {
    let mut attributes = vec![text("service.name", service)];
    attributes.extend(more);
    Some(Resource {
        attributes,
        ..Default::default()
    })
}

/// The spans of one service as one request (no scope).
pub fn service_spans(name: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    trace_request([(service(name, []), spans)], None)
}

/// The log records of one service as one request (no scope).
pub fn service_logs(name: &str, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    logs_request([(service(name, []), records)], None)
}

/// A string attribute.
pub fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// An integer attribute.
pub fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// One trace export request with a resource (and `scope`) per group of spans.
pub fn trace_request(
    groups: impl IntoIterator<Item = (Option<Resource>, Vec<Span>)>,
    scope: Option<InstrumentationScope>,
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: groups
            .into_iter()
            .map(|(resource, spans)| ResourceSpans {
                resource,
                scope_spans: vec![ScopeSpans {
                    scope: scope.clone(),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

/// One log export request with a resource (and `scope`) per group of records.
pub fn logs_request(
    groups: impl IntoIterator<Item = (Option<Resource>, Vec<LogRecord>)>,
    scope: Option<InstrumentationScope>,
) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: groups
            .into_iter()
            .map(|(resource, log_records)| ResourceLogs {
                resource,
                scope_logs: vec![ScopeLogs {
                    scope: scope.clone(),
                    log_records,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

/// One metric export request with a resource (and `scope`) per group of metrics.
pub fn metrics_request(
    groups: impl IntoIterator<Item = (Option<Resource>, Vec<Metric>)>,
    scope: Option<InstrumentationScope>,
) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: groups
            .into_iter()
            .map(|(resource, metrics)| ResourceMetrics {
                resource,
                scope_metrics: vec![ScopeMetrics {
                    scope: scope.clone(),
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}
