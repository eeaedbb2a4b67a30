//! Arrow schemas of the `spans`, `logs`, `metrics` and `anomalies` tables (documented in
//! docs/schema.md).

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// The tables scry stores: three of telemetry and one of the anomalies found in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// One row per span.
    Spans,
    /// One row per log record.
    Logs,
    /// One row per metric data point.
    Metrics,
    /// One row per anomalous point of a derived series (written by the detectors).
    Anomalies,
}

impl Table {
    /// All tables, in a fixed order.
    pub const ALL: [Table; 4] = [Table::Spans, Table::Logs, Table::Metrics, Table::Anomalies];

    /// The SQL name of the table.
    pub fn name(self) -> &'static str {
        match self {
            Table::Spans => "spans",
            Table::Logs => "logs",
            Table::Metrics => "metrics",
            Table::Anomalies => "anomalies",
        }
    }

    /// Parses a table name as used in SQL and on disk.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    /// A one-byte tag used in the WAL.
    pub fn tag(self) -> u8 {
        self as u8
    }

    /// Inverse of [`Table::tag`].
    pub fn from_tag(tag: u8) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.tag() == tag)
    }

    /// The table's Arrow schema.
    pub fn schema(self) -> SchemaRef {
        match self {
            Table::Spans => SPANS.clone(),
            Table::Logs => LOGS.clone(),
            Table::Metrics => METRICS.clone(),
            Table::Anomalies => ANOMALIES.clone(),
        }
    }
}

/// Name of the time column every table has; files are partitioned and pruned on it.
pub const TIME_COLUMN: &str = "time";
/// Column of `logs` naming the body's template (filled by an [`Enricher`](crate::ingest::Enricher)).
pub const TEMPLATE_ID_COLUMN: &str = "template_id";
/// Column of `logs` holding the body's template text, variables as `<*>`.
pub const TEMPLATE_COLUMN: &str = "template";

/// Name of the service column every table has.
pub const SERVICE_COLUMN: &str = "service_name";

/// `Timestamp(Nanosecond, "UTC")`.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// The `Map<Utf8, Utf8>` type used for attributes, matching what `MapBuilder` produces.
pub fn attributes_type() -> DataType {
    let entries = Fields::from(vec![
        Field::new("keys", DataType::Utf8, false),
        Field::new("values", DataType::Utf8, true),
    ]);
    DataType::Map(
        Arc::new(Field::new("entries", DataType::Struct(entries), false)),
        false,
    )
}

fn ts(name: &str, nullable: bool) -> Field {
    Field::new(name, timestamp_type(), nullable)
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn attrs(name: &str) -> Field {
    Field::new(name, attributes_type(), true)
}

fn list_of(name: &str, item: DataType) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new_list_field(item, true))),
        true,
    )
}

/// Fields of one span event inside the `events` list.
pub fn event_fields() -> Fields {
    Fields::from(vec![
        ts("time", false),
        utf8("name", false),
        attrs("attributes"),
    ])
}

/// Fields of one span link inside the `links` list.
pub fn link_fields() -> Fields {
    Fields::from(vec![
        utf8("trace_id", false),
        utf8("span_id", false),
        utf8("trace_state", false),
        attrs("attributes"),
    ])
}

/// Fields of one summary quantile inside the `quantiles` list.
pub fn quantile_fields() -> Fields {
    Fields::from(vec![
        Field::new("quantile", DataType::Float64, false),
        Field::new("value", DataType::Float64, false),
    ])
}

fn resource_and_scope() -> Vec<Field> {
    vec![
        attrs("resource_attributes"),
        utf8("scope_name", false),
        utf8("scope_version", false),
        attrs("scope_attributes"),
    ]
}

static SPANS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        ts(TIME_COLUMN, false),
        ts("end_time", false),
        Field::new("duration_ns", DataType::Int64, false),
        utf8(SERVICE_COLUMN, false),
        utf8("trace_id", false),
        utf8("span_id", false),
        utf8("parent_span_id", true),
        utf8("trace_state", false),
        Field::new("flags", DataType::UInt32, false),
        utf8("name", false),
        utf8("kind", false),
        utf8("status_code", false),
        utf8("status_message", false),
    ];
    fields.extend(resource_and_scope());
    fields.push(attrs("attributes"));
    fields.push(list_of("events", DataType::Struct(event_fields())));
    fields.push(list_of("links", DataType::Struct(link_fields())));
    fields.push(Field::new(
        "dropped_attributes_count",
        DataType::UInt32,
        false,
    ));
    fields.push(Field::new("dropped_events_count", DataType::UInt32, false));
    fields.push(Field::new("dropped_links_count", DataType::UInt32, false));
    Arc::new(Schema::new(fields))
});

static LOGS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        ts(TIME_COLUMN, false),
        ts("observed_time", true),
        utf8(SERVICE_COLUMN, false),
        Field::new("severity_number", DataType::Int32, false),
        utf8("severity_text", false),
        utf8("body", true),
        utf8(TEMPLATE_ID_COLUMN, true),
        utf8(TEMPLATE_COLUMN, true),
        utf8("trace_id", true),
        utf8("span_id", true),
        Field::new("flags", DataType::UInt32, false),
        utf8("event_name", false),
    ];
    fields.extend(resource_and_scope());
    fields.push(attrs("attributes"));
    fields.push(Field::new(
        "dropped_attributes_count",
        DataType::UInt32,
        false,
    ));
    Arc::new(Schema::new(fields))
});

static METRICS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        ts(TIME_COLUMN, false),
        ts("start_time", true),
        utf8(SERVICE_COLUMN, false),
        utf8("metric_name", false),
        utf8("metric_description", false),
        utf8("metric_unit", false),
        utf8("metric_type", false),
        utf8("temporality", true),
        Field::new("is_monotonic", DataType::Boolean, true),
        Field::new("value", DataType::Float64, true),
        Field::new("count", DataType::UInt64, true),
        Field::new("sum", DataType::Float64, true),
        Field::new("min", DataType::Float64, true),
        Field::new("max", DataType::Float64, true),
        list_of("bucket_counts", DataType::UInt64),
        list_of("explicit_bounds", DataType::Float64),
        Field::new("exp_scale", DataType::Int32, true),
        Field::new("exp_zero_count", DataType::UInt64, true),
        Field::new("exp_positive_offset", DataType::Int32, true),
        list_of("exp_positive_bucket_counts", DataType::UInt64),
        Field::new("exp_negative_offset", DataType::Int32, true),
        list_of("exp_negative_bucket_counts", DataType::UInt64),
        list_of("quantiles", DataType::Struct(quantile_fields())),
        Field::new("flags", DataType::UInt32, false),
    ];
    fields.extend(resource_and_scope());
    fields.push(attrs("attributes"));
    Arc::new(Schema::new(fields))
});

static ANOMALIES: LazyLock<SchemaRef> = LazyLock::new(|| {
    let f64 = |name: &str, nullable| Field::new(name, DataType::Float64, nullable);
    Arc::new(Schema::new(vec![
        ts(TIME_COLUMN, false),
        utf8(SERVICE_COLUMN, false),
        utf8("signal", false),
        utf8("measure", false),
        utf8("scope", false),
        utf8("series", false),
        f64("observed", false),
        f64("expected", true),
        f64("lower", true),
        f64("upper", true),
        f64("score", false),
        utf8("detector", false),
        Field::new("width_ns", DataType::Int64, false),
        list_of("trace_ids", DataType::Utf8),
        list_of("template_ids", DataType::Utf8),
        attrs("evidence"),
    ]))
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_time_and_service() {
        for t in Table::ALL {
            let s = t.schema();
            assert_eq!(
                s.field_with_name(TIME_COLUMN).unwrap().data_type(),
                &timestamp_type()
            );
            assert!(s.field_with_name(SERVICE_COLUMN).is_ok());
            assert_eq!(Table::from_tag(t.tag()), Some(t));
            assert_eq!(Table::from_name(t.name()), Some(t));
        }
    }
}
