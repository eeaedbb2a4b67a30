//! `ExportMetricsServiceRequest` → rows of the `metrics` table, one per data point.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, ListArray, ListBuilder, StringBuilder,
    StructArray, TimestampNanosecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint, SummaryDataPoint,
    metric::Data, number_data_point,
};

use super::attributes::AttributesBuilder;
use super::origin::{Origin, OriginColumns, for_each_item};
use super::{Converted, Rejections, nanos};
use crate::schema::{Table, quantile_fields};

/// Converts a metrics export request into one `metrics` batch, one row per data point;
/// invalid data points are rejected one by one.
pub fn convert(req: &ExportMetricsServiceRequest) -> Converted {
    let mut rows = MetricRows::default();
    let mut rejections = Rejections::default();
    for_each_item(
        &req.resource_metrics,
        |r| (r.resource.as_ref(), &r.scope_metrics),
        |s| (s.scope.as_ref(), &s.metrics),
        |origin, metric| rows.push_metric(&Context { origin, metric }, &mut rejections),
    );
    let batch = (rows.len > 0).then(|| rows.finish());
    rejections.finish(batch)
}

/// What every row of one metric shares.
struct Context<'a> {
    origin: &'a Origin<'a>,
    metric: &'a Metric,
}

/// The common fields of any OTLP data point type.
macro_rules! point_head {
    ($p:expr) => {
        PointHead {
            attributes: &$p.attributes,
            start: $p.start_time_unix_nano,
            time: $p.time_unix_nano,
            flags: $p.flags,
        }
    };
}

/// Common per-point fields.
struct PointHead<'a> {
    attributes: &'a [KeyValue],
    start: u64,
    time: u64,
    flags: u32,
}

/// Type-specific per-point values; absent ones become NULL.
#[derive(Default)]
struct PointBody<'a> {
    metric_type: &'static str,
    temporality: Option<&'static str>,
    is_monotonic: Option<bool>,
    value: Option<f64>,
    count: Option<u64>,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    buckets: Option<(&'a [u64], &'a [f64])>,
    exp: Option<&'a ExponentialHistogramDataPoint>,
    summary: Option<&'a SummaryDataPoint>,
}

fn temporality(t: i32) -> Option<&'static str> {
    match t {
        1 => Some("delta"),
        2 => Some("cumulative"),
        _ => None,
    }
}

fn number_value(p: &NumberDataPoint) -> Option<f64> {
    match p.value? {
        number_data_point::Value::AsDouble(d) => Some(d),
        number_data_point::Value::AsInt(i) => Some(i as f64),
    }
}

struct MetricRows {
    len: usize,
    time: TimestampNanosecondBuilder,
    start_time: TimestampNanosecondBuilder,
    origin: OriginColumns,
    name: StringBuilder,
    description: StringBuilder,
    unit: StringBuilder,
    metric_type: StringBuilder,
    temporality: StringBuilder,
    is_monotonic: BooleanBuilder,
    value: Float64Builder,
    count: UInt64Builder,
    sum: Float64Builder,
    min: Float64Builder,
    max: Float64Builder,
    bucket_counts: ListBuilder<UInt64Builder>,
    explicit_bounds: ListBuilder<Float64Builder>,
    exp_scale: Int32Builder,
    exp_zero_count: UInt64Builder,
    exp_pos_offset: Int32Builder,
    exp_pos_counts: ListBuilder<UInt64Builder>,
    exp_neg_offset: Int32Builder,
    exp_neg_counts: ListBuilder<UInt64Builder>,
    quantiles: QuantilesBuilder,
    flags: UInt32Builder,
    attributes: AttributesBuilder,
}

impl Default for MetricRows {
    fn default() -> Self {
        let ts = || TimestampNanosecondBuilder::new().with_timezone("UTC");
        Self {
            len: 0,
            time: ts(),
            start_time: ts(),
            origin: OriginColumns::with_capacity(0),
            name: StringBuilder::new(),
            description: StringBuilder::new(),
            unit: StringBuilder::new(),
            metric_type: StringBuilder::new(),
            temporality: StringBuilder::new(),
            is_monotonic: BooleanBuilder::new(),
            value: Float64Builder::new(),
            count: UInt64Builder::new(),
            sum: Float64Builder::new(),
            min: Float64Builder::new(),
            max: Float64Builder::new(),
            bucket_counts: ListBuilder::new(UInt64Builder::new()),
            explicit_bounds: ListBuilder::new(Float64Builder::new()),
            exp_scale: Int32Builder::new(),
            exp_zero_count: UInt64Builder::new(),
            exp_pos_offset: Int32Builder::new(),
            exp_pos_counts: ListBuilder::new(UInt64Builder::new()),
            exp_neg_offset: Int32Builder::new(),
            exp_neg_counts: ListBuilder::new(UInt64Builder::new()),
            quantiles: QuantilesBuilder::default(),
            flags: UInt32Builder::new(),
            attributes: AttributesBuilder::new(),
        }
    }
}

fn append_list<B: arrow::array::ArrayBuilder, T: Copy>(
    list: &mut ListBuilder<B>,
    values: Option<&[T]>,
    push: impl Fn(&mut B, T),
) {
    match values {
        Some(vs) => {
            for v in vs {
                push(list.values(), *v);
            }
            list.append(true);
        }
        None => list.append(false),
    }
}

impl MetricRows {
    fn push_metric(&mut self, ctx: &Context, rejections: &mut Rejections) {
        let m = ctx.metric;
        let Some(data) = &m.data else {
            return; // a metric with no data carries no points to store or reject
        };
        if m.name.is_empty() {
            let points = point_count(data);
            for _ in 0..points {
                rejections.reject(|| "metric data point: metric has no name".to_string());
            }
            return;
        }
        match data {
            Data::Gauge(g) => {
                self.push_numbers(ctx, &g.data_points, "gauge", None, None, rejections)
            }
            Data::Sum(s) => self.push_numbers(
                ctx,
                &s.data_points,
                "sum",
                temporality(s.aggregation_temporality),
                Some(s.is_monotonic),
                rejections,
            ),
            Data::Histogram(h) => {
                let t = temporality(h.aggregation_temporality);
                for p in &h.data_points {
                    self.push_histogram(ctx, p, t, rejections);
                }
            }
            Data::ExponentialHistogram(h) => {
                let t = temporality(h.aggregation_temporality);
                for p in &h.data_points {
                    let head = point_head!(p);
                    let body = PointBody {
                        metric_type: "exponential_histogram",
                        temporality: t,
                        count: Some(p.count),
                        sum: p.sum,
                        min: p.min,
                        max: p.max,
                        exp: Some(p),
                        ..Default::default()
                    };
                    self.push_row(ctx, &head, &body);
                }
            }
            Data::Summary(s) => {
                for p in &s.data_points {
                    let head = point_head!(p);
                    let body = PointBody {
                        metric_type: "summary",
                        count: Some(p.count),
                        sum: Some(p.sum),
                        summary: Some(p),
                        ..Default::default()
                    };
                    self.push_row(ctx, &head, &body);
                }
            }
        }
    }

    fn push_numbers(
        &mut self,
        ctx: &Context,
        points: &[NumberDataPoint],
        metric_type: &'static str,
        temporality: Option<&'static str>,
        is_monotonic: Option<bool>,
        rejections: &mut Rejections,
    ) {
        for p in points {
            let Some(value) = number_value(p) else {
                rejections.reject(|| {
                    format!(
                        "metric {:?}: {metric_type} data point has no value",
                        ctx.metric.name
                    )
                });
                continue;
            };
            let head = point_head!(p);
            let body = PointBody {
                metric_type,
                temporality,
                is_monotonic,
                value: Some(value),
                ..Default::default()
            };
            self.push_row(ctx, &head, &body);
        }
    }

    fn push_histogram(
        &mut self,
        ctx: &Context,
        p: &HistogramDataPoint,
        temporality: Option<&'static str>,
        rejections: &mut Rejections,
    ) {
        if !p.bucket_counts.is_empty() && p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
            rejections.reject(|| {
                format!(
                    "metric {:?}: histogram has {} bucket counts for {} bounds (expected {})",
                    ctx.metric.name,
                    p.bucket_counts.len(),
                    p.explicit_bounds.len(),
                    p.explicit_bounds.len() + 1
                )
            });
            return;
        }
        let head = point_head!(p);
        let body = PointBody {
            metric_type: "histogram",
            temporality,
            count: Some(p.count),
            sum: p.sum,
            min: p.min,
            max: p.max,
            buckets: Some((&p.bucket_counts, &p.explicit_bounds)),
            ..Default::default()
        };
        self.push_row(ctx, &head, &body);
    }

    fn push_row(&mut self, ctx: &Context, head: &PointHead, body: &PointBody) {
        let m = ctx.metric;
        self.time.append_value(nanos(head.time));
        match head.start {
            0 => self.start_time.append_null(),
            s => self.start_time.append_value(nanos(s)),
        }
        self.origin.push(ctx.origin);
        self.name.append_value(&m.name);
        self.description.append_value(&m.description);
        self.unit.append_value(&m.unit);
        self.metric_type.append_value(body.metric_type);
        self.temporality.append_option(body.temporality);
        self.is_monotonic.append_option(body.is_monotonic);
        self.value.append_option(body.value);
        self.count.append_option(body.count);
        self.sum.append_option(body.sum);
        self.min.append_option(body.min);
        self.max.append_option(body.max);
        append_list(
            &mut self.bucket_counts,
            body.buckets.map(|b| b.0),
            |b, v| b.append_value(v),
        );
        append_list(
            &mut self.explicit_bounds,
            body.buckets.map(|b| b.1),
            |b, v| b.append_value(v),
        );
        self.push_exp(body.exp);
        self.quantiles.push(body.summary);
        self.flags.append_value(head.flags);
        self.attributes.append_kvs(head.attributes);
        self.len += 1;
    }

    fn push_exp(&mut self, exp: Option<&ExponentialHistogramDataPoint>) {
        self.exp_scale.append_option(exp.map(|e| e.scale));
        self.exp_zero_count.append_option(exp.map(|e| e.zero_count));
        let pos = exp.map(|e| e.positive.clone().unwrap_or_default());
        let neg = exp.map(|e| e.negative.clone().unwrap_or_default());
        self.exp_pos_offset
            .append_option(pos.as_ref().map(|b| b.offset));
        self.exp_neg_offset
            .append_option(neg.as_ref().map(|b| b.offset));
        append_list(
            &mut self.exp_pos_counts,
            pos.as_ref().map(|b| b.bucket_counts.as_slice()),
            |b, v| b.append_value(v),
        );
        append_list(
            &mut self.exp_neg_counts,
            neg.as_ref().map(|b| b.bucket_counts.as_slice()),
            |b, v| b.append_value(v),
        );
    }

    fn finish(mut self) -> RecordBatch {
        let o = self.origin.finish();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.start_time.finish()),
            o.service,
            Arc::new(self.name.finish()),
            Arc::new(self.description.finish()),
            Arc::new(self.unit.finish()),
            Arc::new(self.metric_type.finish()),
            Arc::new(self.temporality.finish()),
            Arc::new(self.is_monotonic.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.count.finish()),
            Arc::new(self.sum.finish()),
            Arc::new(self.min.finish()),
            Arc::new(self.max.finish()),
            Arc::new(self.bucket_counts.finish()),
            Arc::new(self.explicit_bounds.finish()),
            Arc::new(self.exp_scale.finish()),
            Arc::new(self.exp_zero_count.finish()),
            Arc::new(self.exp_pos_offset.finish()),
            Arc::new(self.exp_pos_counts.finish()),
            Arc::new(self.exp_neg_offset.finish()),
            Arc::new(self.exp_neg_counts.finish()),
            self.quantiles.finish(),
            Arc::new(self.flags.finish()),
            o.resource_attributes,
            o.scope_name,
            o.scope_version,
            o.scope_attributes,
            self.attributes.finish(),
        ];
        RecordBatch::try_new(Table::Metrics.schema(), columns).expect("metric columns match schema")
    }
}

fn point_count(data: &Data) -> usize {
    match data {
        Data::Gauge(g) => g.data_points.len(),
        Data::Sum(s) => s.data_points.len(),
        Data::Histogram(h) => h.data_points.len(),
        Data::ExponentialHistogram(h) => h.data_points.len(),
        Data::Summary(s) => s.data_points.len(),
    }
}

/// Builder of the nullable `quantiles` list column.
struct QuantilesBuilder {
    offsets: Vec<i32>,
    valid: Vec<bool>,
    quantile: Float64Builder,
    value: Float64Builder,
}

impl Default for QuantilesBuilder {
    fn default() -> Self {
        Self {
            offsets: vec![0],
            valid: Vec::new(),
            quantile: Float64Builder::new(),
            value: Float64Builder::new(),
        }
    }
}

impl QuantilesBuilder {
    fn push(&mut self, summary: Option<&SummaryDataPoint>) {
        let values = summary.map(|s| s.quantile_values.as_slice()).unwrap_or(&[]);
        for q in values {
            self.quantile.append_value(q.quantile);
            self.value.append_value(q.value);
        }
        let last = *self.offsets.last().expect("offsets start with 0");
        self.offsets.push(last + values.len() as i32);
        self.valid.push(summary.is_some());
    }

    fn finish(mut self) -> ArrayRef {
        let fields = quantile_fields();
        let children: Vec<ArrayRef> = vec![
            Arc::new(self.quantile.finish()),
            Arc::new(self.value.finish()),
        ];
        let structs = StructArray::new(fields.clone(), children, None);
        let item = Arc::new(Field::new_list_field(DataType::Struct(fields), true));
        let nulls = NullBuffer::from(self.valid);
        Arc::new(ListArray::new(
            item,
            OffsetBuffer::new(self.offsets.into()),
            Arc::new(structs),
            Some(nulls),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::traces::tests::kv;
    use arrow::array::{Array, AsArray};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Histogram, Sum, Summary, summary_data_point::ValueAtQuantile,
    };

    fn metric(name: &str, data: Data) -> Metric {
        Metric {
            name: name.into(),
            data: Some(data),
            ..Default::default()
        }
    }

    fn number(v: f64) -> NumberDataPoint {
        NumberDataPoint {
            time_unix_nano: 100,
            value: Some(number_data_point::Value::AsDouble(v)),
            attributes: vec![kv("host", "a")],
            ..Default::default()
        }
    }

    #[test]
    fn every_metric_type_becomes_rows() {
        let metrics = vec![
            metric(
                "g",
                Data::Gauge(Gauge {
                    data_points: vec![number(1.5), NumberDataPoint::default()],
                }),
            ),
            metric(
                "s",
                Data::Sum(Sum {
                    data_points: vec![number(3.0)],
                    aggregation_temporality: 2,
                    is_monotonic: true,
                }),
            ),
            metric(
                "h",
                Data::Histogram(Histogram {
                    data_points: vec![
                        HistogramDataPoint {
                            count: 3,
                            bucket_counts: vec![1, 2],
                            explicit_bounds: vec![10.0],
                            sum: Some(12.0),
                            ..Default::default()
                        },
                        HistogramDataPoint {
                            bucket_counts: vec![1, 2, 3],
                            explicit_bounds: vec![10.0],
                            ..Default::default()
                        },
                    ],
                    aggregation_temporality: 1,
                }),
            ),
            metric(
                "q",
                Data::Summary(Summary {
                    data_points: vec![SummaryDataPoint {
                        count: 2,
                        sum: 4.0,
                        quantile_values: vec![ValueAtQuantile {
                            quantile: 0.5,
                            value: 2.0,
                        }],
                        ..Default::default()
                    }],
                }),
            ),
            metric(
                "",
                Data::Gauge(Gauge {
                    data_points: vec![number(1.0)],
                }),
            ),
        ];
        let req = scry_workload::otlp::metrics_request([(None, metrics)], None);
        let out = convert(&req);
        assert_eq!(out.rejected, 3, "{}", out.error_message);
        let b = out.batch.unwrap();
        assert_eq!(b.num_rows(), 4);
        let types = b.column_by_name("metric_type").unwrap().as_string::<i32>();
        assert_eq!(types.value(2), "histogram");
        let bounds = b
            .column_by_name("explicit_bounds")
            .unwrap()
            .as_list::<i32>();
        assert!(bounds.is_null(0));
        assert_eq!(bounds.value(2).len(), 1);
        let q = b.column_by_name("quantiles").unwrap().as_list::<i32>();
        assert!(q.is_null(0));
        assert_eq!(q.value(3).len(), 1);
        let temporality = b.column_by_name("temporality").unwrap().as_string::<i32>();
        assert_eq!(temporality.value(1), "cumulative");
    }
}
