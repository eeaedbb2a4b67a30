//! `ExportTraceServiceRequest` → rows of the `spans` table.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int64Builder, ListArray, StringBuilder, StructArray, TimestampNanosecondBuilder,
    UInt32Builder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{Span, span::Event, span::Link};

use super::attributes::AttributesBuilder;
use super::origin::{Origin, OriginColumns, for_each_item};
use super::{Converted, Rejections, check_id, hex_id, nanos};
use crate::schema::{Table, event_fields, link_fields};

/// Converts a trace export request into one `spans` batch, rejecting invalid spans one by one.
pub fn convert(req: &ExportTraceServiceRequest) -> Converted {
    let capacity: usize = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    let mut rows = SpanRows::with_capacity(capacity);
    let mut rejections = Rejections::default();
    for_each_item(
        &req.resource_spans,
        |r| (r.resource.as_ref(), &r.scope_spans),
        |s| (s.scope.as_ref(), &s.spans),
        |origin, span| match validate(span) {
            Ok(()) => rows.push(span, origin),
            Err(reason) => rejections.reject(|| reason),
        },
    );
    let batch = (rows.len > 0).then(|| rows.finish());
    rejections.finish(batch)
}

fn validate(span: &Span) -> Result<(), String> {
    let id_hex = || hex::encode(&span.span_id);
    if let Some(why) = check_id(&span.trace_id, 16, false) {
        return Err(format!(
            "span {:?} ({}): trace_id {why}",
            span.name,
            id_hex()
        ));
    }
    if let Some(why) = check_id(&span.span_id, 8, false) {
        return Err(format!("span {:?}: span_id {why}", span.name));
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Err(format!(
            "span {:?} ({}): parent_span_id has {} bytes, expected 8 or none",
            span.name,
            id_hex(),
            span.parent_span_id.len()
        ));
    }
    Ok(())
}

fn kind_name(kind: i32) -> &'static str {
    match kind {
        1 => "INTERNAL",
        2 => "SERVER",
        3 => "CLIENT",
        4 => "PRODUCER",
        5 => "CONSUMER",
        _ => "UNSPECIFIED",
    }
}

fn status_name(code: i32) -> &'static str {
    match code {
        1 => "OK",
        2 => "ERROR",
        _ => "UNSET",
    }
}

/// Column builders for the `spans` table.
struct SpanRows {
    len: usize,
    time: TimestampNanosecondBuilder,
    end_time: TimestampNanosecondBuilder,
    duration: Int64Builder,
    origin: OriginColumns,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    parent_span_id: StringBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    name: StringBuilder,
    kind: StringBuilder,
    status_code: StringBuilder,
    status_message: StringBuilder,
    attributes: AttributesBuilder,
    events: EventsBuilder,
    links: LinksBuilder,
    dropped_attributes: UInt32Builder,
    dropped_events: UInt32Builder,
    dropped_links: UInt32Builder,
}

impl SpanRows {
    fn with_capacity(n: usize) -> Self {
        let ts = || TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
        let s = || StringBuilder::with_capacity(n, n * 16);
        Self {
            len: 0,
            time: ts(),
            end_time: ts(),
            duration: Int64Builder::with_capacity(n),
            origin: OriginColumns::with_capacity(n),
            trace_id: StringBuilder::with_capacity(n, n * 32),
            span_id: StringBuilder::with_capacity(n, n * 16),
            parent_span_id: StringBuilder::with_capacity(n, n * 16),
            trace_state: s(),
            flags: UInt32Builder::with_capacity(n),
            name: s(),
            kind: s(),
            status_code: s(),
            status_message: s(),
            attributes: AttributesBuilder::new(),
            events: EventsBuilder::default(),
            links: LinksBuilder::default(),
            dropped_attributes: UInt32Builder::with_capacity(n),
            dropped_events: UInt32Builder::with_capacity(n),
            dropped_links: UInt32Builder::with_capacity(n),
        }
    }

    fn push(&mut self, span: &Span, origin: &Origin) {
        let mut buf = [0u8; 32];
        let start = nanos(span.start_time_unix_nano);
        let end = nanos(span.end_time_unix_nano);
        self.time.append_value(start);
        self.end_time.append_value(end);
        self.duration.append_value(end.saturating_sub(start).max(0));
        self.origin.push(origin);
        self.trace_id.append_value(hex_id(&span.trace_id, &mut buf));
        self.span_id.append_value(hex_id(&span.span_id, &mut buf));
        if span.parent_span_id.is_empty() {
            self.parent_span_id.append_null();
        } else {
            self.parent_span_id
                .append_value(hex_id(&span.parent_span_id, &mut buf));
        }
        self.trace_state.append_value(&span.trace_state);
        self.flags.append_value(span.flags);
        self.name.append_value(&span.name);
        self.kind.append_value(kind_name(span.kind));
        let status = span.status.as_ref();
        self.status_code
            .append_value(status_name(status.map_or(0, |s| s.code)));
        self.status_message
            .append_value(status.map_or("", |s| s.message.as_str()));
        self.attributes.append_kvs(&span.attributes);
        self.events.push(&span.events);
        self.links.push(&span.links);
        self.dropped_attributes
            .append_value(span.dropped_attributes_count);
        self.dropped_events.append_value(span.dropped_events_count);
        self.dropped_links.append_value(span.dropped_links_count);
        self.len += 1;
    }

    fn finish(mut self) -> RecordBatch {
        let o = self.origin.finish();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.end_time.finish()),
            Arc::new(self.duration.finish()),
            o.service,
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent_span_id.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_message.finish()),
            o.resource_attributes,
            o.scope_name,
            o.scope_version,
            o.scope_attributes,
            self.attributes.finish(),
            self.events.finish(),
            self.links.finish(),
            Arc::new(self.dropped_attributes.finish()),
            Arc::new(self.dropped_events.finish()),
            Arc::new(self.dropped_links.finish()),
        ];
        RecordBatch::try_new(Table::Spans.schema(), columns).expect("span columns match schema")
    }
}

/// Wraps struct children into a `List<Struct>` column given per-row end offsets.
pub(crate) fn list_of_structs(
    fields: arrow::datatypes::Fields,
    children: Vec<ArrayRef>,
    offsets: Vec<i32>,
) -> ArrayRef {
    let structs = StructArray::new(fields.clone(), children, None);
    let item = Arc::new(Field::new_list_field(DataType::Struct(fields), true));
    Arc::new(ListArray::new(
        item,
        OffsetBuffer::new(offsets.into()),
        Arc::new(structs),
        None,
    ))
}

/// Builder of the `events` column.
struct EventsBuilder {
    offsets: Vec<i32>,
    time: TimestampNanosecondBuilder,
    name: StringBuilder,
    attributes: AttributesBuilder,
}

impl Default for EventsBuilder {
    fn default() -> Self {
        Self {
            offsets: vec![0],
            time: TimestampNanosecondBuilder::new().with_timezone("UTC"),
            name: StringBuilder::new(),
            attributes: AttributesBuilder::new(),
        }
    }
}

impl EventsBuilder {
    fn push(&mut self, events: &[Event]) {
        for e in events {
            self.time.append_value(nanos(e.time_unix_nano));
            self.name.append_value(&e.name);
            self.attributes.append_kvs(&e.attributes);
        }
        let last = *self.offsets.last().expect("offsets start with 0");
        self.offsets.push(last + events.len() as i32);
    }

    fn finish(mut self) -> ArrayRef {
        let children: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.name.finish()),
            self.attributes.finish(),
        ];
        list_of_structs(event_fields(), children, self.offsets)
    }
}

/// Builder of the `links` column.
struct LinksBuilder {
    offsets: Vec<i32>,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    trace_state: StringBuilder,
    attributes: AttributesBuilder,
}

impl Default for LinksBuilder {
    fn default() -> Self {
        Self {
            offsets: vec![0],
            trace_id: StringBuilder::new(),
            span_id: StringBuilder::new(),
            trace_state: StringBuilder::new(),
            attributes: AttributesBuilder::new(),
        }
    }
}

impl LinksBuilder {
    fn push(&mut self, links: &[Link]) {
        let mut buf = [0u8; 32];
        for l in links {
            self.trace_id.append_value(hex_id(&l.trace_id, &mut buf));
            self.span_id.append_value(hex_id(&l.span_id, &mut buf));
            self.trace_state.append_value(&l.trace_state);
            self.attributes.append_kvs(&l.attributes);
        }
        let last = *self.offsets.last().expect("offsets start with 0");
        self.offsets.push(last + links.len() as i32);
    }

    fn finish(mut self) -> ArrayRef {
        let children: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.trace_state.finish()),
            self.attributes.finish(),
        ];
        list_of_structs(link_fields(), children, self.offsets)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use opentelemetry_proto::tonic::trace::v1::Status;

    pub(crate) use scry_workload::otlp::text as kv;

    pub(crate) fn span(i: u8) -> Span {
        Span {
            trace_id: vec![i.max(1); 16],
            span_id: vec![i.max(1); 8],
            name: format!("op{i}"),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
            end_time_unix_nano: 1_700_000_000_000_500_000 + i as u64,
            attributes: vec![kv("http.route", "/cart")],
            status: Some(Status {
                code: 2,
                message: "boom".into(),
            }),
            events: vec![Event {
                name: "ev".into(),
                time_unix_nano: 5,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// Spans of the service `cart`, as one request.
    pub(crate) fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        scry_workload::otlp::service_spans("cart", spans)
    }

    #[test]
    fn valid_spans_become_rows() {
        let out = convert(&request(vec![span(1), span(2)]));
        assert_eq!(out.rejected, 0);
        let b = out.batch.unwrap();
        assert_eq!(b.num_rows(), 2);
        let dur = b
            .column_by_name("duration_ns")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(dur.value(0), 500_000);
        let tid = b.column_by_name("trace_id").unwrap().as_string::<i32>();
        assert_eq!(tid.value(0), "01".repeat(16));
        assert!(b.column_by_name("parent_span_id").unwrap().is_null(0));
        assert_eq!(
            b.column_by_name("kind")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "SERVER"
        );
        assert_eq!(
            b.column_by_name("status_code")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "ERROR"
        );
        assert_eq!(
            b.column_by_name("service_name")
                .unwrap()
                .as_string::<i32>()
                .value(1),
            "cart"
        );
        let events = b.column_by_name("events").unwrap().as_list::<i32>();
        assert_eq!(events.value(0).len(), 1);
    }

    #[test]
    fn invalid_spans_are_rejected_one_by_one() {
        let mut bad = span(3);
        bad.trace_id = vec![1; 15];
        let mut zero = span(4);
        zero.span_id = vec![0; 8];
        let out = convert(&request(vec![span(1), bad, zero]));
        assert_eq!(out.rejected, 2);
        assert_eq!(out.accepted(), 1);
        assert!(
            out.error_message.contains("trace_id has 15 bytes"),
            "{}",
            out.error_message
        );
    }

    #[test]
    fn empty_request_has_no_batch() {
        let out = convert(&ExportTraceServiceRequest::default());
        assert!(out.batch.is_none());
        assert_eq!(out.rejected, 0);
    }
}
