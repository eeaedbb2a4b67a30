//! Reads the Nezha TrainTicket corpus (layout in its README) and turns it into OTLP requests.
//!
//! Spans, logs and per-pod metrics become what an instrumented deployment would export: one
//! resource per pod (`service.name` is the pod name without its last two `-` parts, plus
//! `k8s.pod.name` and `k8s.node.name`), spans with their parent links, log records with their
//! trace and span ids, severity from the level word and the logback source location
//! (`t.s.TravelServiceImpl#372`) as `code.namespace` / `code.lineno` (what the OpenTelemetry
//! logback appender records), and every metric column as a gauge. Duplicate spans (overlapping
//! minute files) are dropped on (trace id, span id) and duplicate log lines on (time, pod, line).
//! The labels are read separately, only to score.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use scry_collector::opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use scry_collector::opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use scry_collector::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use scry_collector::opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use scry_collector::opentelemetry_proto::tonic::logs::v1::LogRecord;
use scry_collector::opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, metric, number_data_point,
};
use scry_collector::opentelemetry_proto::tonic::resource::v1::Resource;
use scry_collector::opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind};
use scry_workload::otlp::{int, logs_request, metrics_request, text, trace_request};

/// One labelled fault.
#[derive(Debug, Clone)]
pub struct Case {
    /// `<date>_<HHMM>`.
    pub id: String,
    /// Injection time, ns since the epoch.
    pub inject_ns: i64,
    /// The root-cause service.
    pub service: String,
    /// return, exception, cpu_contention, network_delay.
    pub fault_type: String,
}

/// One record of any signal, ready to send, with its pod.
pub enum Record {
    /// A span.
    Span(Span),
    /// A log line (with the node it ran on).
    Log(LogRecord, String),
    /// The metric columns of one sample.
    Metrics(Vec<Metric>),
}

/// The corpus as records in time order.
pub struct Corpus {
    /// (time ns, pod, record), sorted by time.
    pub records: Vec<(i64, String, Record)>,
}

/// The service of a pod: its name without the last two `-` parts.
pub fn service_of(pod: &str) -> &str {
    let mut cut = pod.len();
    for _ in 0..2 {
        match pod[..cut].rfind('-') {
            Some(i) => cut = i,
            None => return pod,
        }
    }
    &pod[..cut]
}

fn open_csv(path: &Path) -> anyhow::Result<csv::Reader<Box<dyn Read>>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    Ok(csv::ReaderBuilder::new().flexible(true).from_reader(reader))
}

/// The positions of `names` among the file's columns; an error names the first one missing.
fn columns<const N: usize>(
    path: &Path,
    headers: &csv::StringRecord,
    names: [&str; N],
) -> anyhow::Result<[usize; N]> {
    let mut out = [0; N];
    for (slot, name) in out.iter_mut().zip(names) {
        *slot = headers.iter().position(|h| h == name).with_context(|| {
            format!("{}: no column {name} (columns {headers:?})", path.display())
        })?;
    }
    Ok(out)
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

/// The day folders (`YYYY-MM-DD`) of the corpus and of its fault-free part.
fn day_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for base in [root.to_path_buf(), root.join("fault_free")] {
        for p in files(&base, "") {
            let name = p.file_name().map(|n| n.to_string_lossy().to_string());
            if p.is_dir() && name.is_some_and(|n| n.len() == 10 && n.as_bytes()[4] == b'-') {
                out.push(p);
            }
        }
    }
    out
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Reads the corpus under `root`.
pub fn load(root: &Path) -> anyhow::Result<Corpus> {
    let days = day_dirs(root);
    if days.is_empty() {
        bail!("no day folders (YYYY-MM-DD) under {}", root.display());
    }
    let mut records = Vec::new();
    let mut seen_spans = HashSet::new();
    let mut seen_lines = HashSet::new();
    for day in &days {
        let mut spans = Vec::new();
        for path in files(&day.join("trace"), ".csv.gz") {
            read_spans(&path, &mut seen_spans, &mut spans)?;
        }
        mark_kinds(&mut spans);
        records.extend(spans);
        for path in files(&day.join("log"), ".csv.gz") {
            read_logs(&path, &mut seen_lines, &mut records)?;
        }
        for path in files(&day.join("metric"), "_metric.csv.gz") {
            read_metrics(&path, &mut records)?;
        }
    }
    records.sort_by_key(|(t, _, _)| *t);
    Ok(Corpus { records })
}

fn read_spans(
    path: &Path,
    seen: &mut HashSet<(Vec<u8>, Vec<u8>)>,
    out: &mut Vec<(i64, String, Record)>,
) -> anyhow::Result<()> {
    let mut reader = open_csv(path)?;
    let [trace, span, parent, pod, name, start, end] = columns(
        path,
        reader.headers()?,
        [
            "TraceID",
            "SpanID",
            "ParentID",
            "PodName",
            "OperationName",
            "StartTimeUnixNano",
            "EndTimeUnixNano",
        ],
    )?;
    for row in reader.records() {
        let row = row.with_context(|| format!("reading {}", path.display()))?;
        let (Some(trace_id), Some(span_id)) = (hex(&row[trace]), hex(&row[span])) else {
            continue;
        };
        if !seen.insert((trace_id.clone(), span_id.clone())) {
            continue;
        }
        let parse = |i: usize| row[i].parse::<i64>().ok();
        let (Some(start), Some(end)) = (parse(start), parse(end)) else {
            continue;
        };
        let span = Span {
            trace_id,
            span_id,
            parent_span_id: hex(&row[parent]).unwrap_or_default(),
            name: row[name].to_string(),
            start_time_unix_nano: start as u64,
            end_time_unix_nano: end.max(start) as u64,
            ..Default::default()
        };
        out.push((start, row[pod].to_string(), Record::Span(span)));
    }
    Ok(())
}

/// A span is a server span when its parent is in another pod (or it has none), else internal.
fn mark_kinds(spans: &mut [(i64, String, Record)]) {
    let pods: HashMap<(Vec<u8>, Vec<u8>), String> = spans
        .iter()
        .filter_map(|(_, pod, r)| match r {
            Record::Span(s) => Some(((s.trace_id.clone(), s.span_id.clone()), pod.clone())),
            _ => None,
        })
        .collect();
    for (_, pod, r) in spans.iter_mut() {
        if let Record::Span(s) = r {
            let parent = pods.get(&(s.trace_id.clone(), s.parent_span_id.clone()));
            s.kind = if parent.is_some_and(|p| p == pod) {
                SpanKind::Internal
            } else {
                SpanKind::Server
            } as i32;
        }
    }
}

/// The next whitespace-separated word of `s`, advancing `s` past it.
fn next<'a>(s: &mut &'a str) -> Option<&'a str> {
    let t = s.trim_start();
    let end = t.find(char::is_whitespace).unwrap_or(t.len());
    let (word, after) = t.split_at(end);
    *s = after;
    (!word.is_empty()).then_some(word)
}

/// The parts of a TrainTicket log message: `HH:MM:SS.mmm LEVEL  Class#line rest`.
struct Message<'a> {
    level: &'a str,
    location: Option<(&'a str, i64)>,
    body: &'a str,
}

fn parse_message(line: &str) -> Message<'_> {
    let line = line.trim_end();
    let mut rest = line;
    let mut probe = rest;
    let time = next(&mut probe);
    if time.is_some_and(|t| t.len() >= 8 && t.as_bytes()[2] == b':') {
        rest = probe;
    }
    let mut probe = rest;
    let level = match next(&mut probe) {
        Some(w @ ("TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR" | "FATAL")) => {
            rest = probe;
            w
        }
        _ => "INFO",
    };
    let mut probe = rest;
    let location = next(&mut probe).and_then(|w| {
        let (class, line) = w.rsplit_once('#')?;
        let line = line.parse::<i64>().ok()?;
        let ok = class
            .chars()
            .all(|c| c.is_alphanumeric() || "_$.[]".contains(c));
        (ok && !class.is_empty()).then_some((class, line))
    });
    if location.is_some() {
        rest = probe;
    }
    Message {
        level,
        location,
        body: rest.trim(),
    }
}

fn severity(level: &str) -> i32 {
    match level {
        "TRACE" => 1,
        "DEBUG" => 5,
        "WARN" => 13,
        "ERROR" => 17,
        "FATAL" => 21,
        _ => 9,
    }
}

fn log_time(unix_nano: &str, timestamp: &str) -> Option<i64> {
    match unix_nano.parse::<i64>() {
        Ok(t) if t > 0 => Some(t),
        _ => {
            let ts = timestamp.trim_end_matches('Z');
            chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()?
                .and_utc()
                .timestamp_nanos_opt()
        }
    }
}

fn read_logs(
    path: &Path,
    seen: &mut HashSet<(i64, String, u64)>,
    out: &mut Vec<(i64, String, Record)>,
) -> anyhow::Result<()> {
    let mut reader = open_csv(path)?;
    let [ts, nanos, node, pod, trace, span, log] = columns(
        path,
        reader.headers()?,
        [
            "Timestamp",
            "TimeUnixNano",
            "Node",
            "PodName",
            "TraceID",
            "SpanID",
            "Log",
        ],
    )?;
    for row in reader.records() {
        let row = row.with_context(|| format!("reading {}", path.display()))?;
        let Some(time) = log_time(&row[nanos], &row[ts]) else {
            continue;
        };
        let line = serde_json::from_str::<serde_json::Value>(&row[log])
            .ok()
            .and_then(|v| v.get("log").and_then(|l| l.as_str()).map(str::to_string))
            .unwrap_or_else(|| row[log].to_string());
        let digest = {
            use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
            BuildHasherDefault::<DefaultHasher>::default().hash_one(&line)
        };
        if !seen.insert((time, row[pod].to_string(), digest)) {
            continue;
        }
        let m = parse_message(&line);
        let mut attributes = Vec::new();
        if let Some((class, line)) = m.location {
            attributes.push(text("code.namespace", class));
            attributes.push(int("code.lineno", line));
        }
        let record = LogRecord {
            time_unix_nano: time as u64,
            observed_time_unix_nano: time as u64,
            severity_number: severity(m.level),
            severity_text: m.level.to_string(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(m.body.to_string())),
            }),
            attributes,
            trace_id: hex(&row[trace]).unwrap_or_default(),
            span_id: hex(&row[span]).unwrap_or_default(),
            ..Default::default()
        };
        out.push((
            time,
            row[pod].to_string(),
            Record::Log(record, row[node].to_string()),
        ));
    }
    Ok(())
}

/// `CpuUsageRate(%)` → (`CpuUsageRate`, `%`).
fn metric_name(column: &str) -> (&str, &str) {
    match column.split_once('(') {
        Some((name, unit)) => (name, unit.trim_end_matches(')')),
        None => (column, ""),
    }
}

fn read_metrics(path: &Path, out: &mut Vec<(i64, String, Record)>) -> anyhow::Result<()> {
    let mut reader = open_csv(path)?;
    let headers = reader.headers()?.clone();
    let [stamp, pod] = columns(path, &headers, ["TimeStamp", "PodName"])?;
    for row in reader.records() {
        let row = row.with_context(|| format!("reading {}", path.display()))?;
        let Ok(seconds) = row[stamp].trim().parse::<f64>() else {
            continue;
        };
        let time = (seconds * 1e9) as i64;
        let metrics: Vec<Metric> = headers
            .iter()
            .enumerate()
            // Node columns describe the node, which the row does not name; they are left out.
            .filter(|(i, h)| *i != stamp && *i != pod && *h != "Time" && !h.starts_with("Node"))
            .filter_map(|(i, h)| {
                let value = row.get(i)?.trim().parse::<f64>().ok()?;
                value.is_finite().then(|| gauge(h, time, value))
            })
            .collect();
        if !metrics.is_empty() {
            out.push((time, row[pod].trim().to_string(), Record::Metrics(metrics)));
        }
    }
    Ok(())
}

fn gauge(column: &str, time: i64, value: f64) -> Metric {
    let (name, unit) = metric_name(column);
    Metric {
        name: name.to_string(),
        unit: unit.to_string(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                time_unix_nano: time as u64,
                value: Some(number_data_point::Value::AsDouble(value)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    }
}

/// Reads `labels/cases.csv` (for scoring only).
pub fn cases(root: &Path) -> anyhow::Result<Vec<Case>> {
    let path = root.join("labels").join("cases.csv");
    let mut reader = open_csv(&path)?;
    let [id, inject, service, kind] = columns(
        &path,
        reader.headers()?,
        [
            "case_id",
            "inject_unix_utc",
            "root_cause_service",
            "fault_type",
        ],
    )?;
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row?;
        let seconds: i64 = row[inject].parse().with_context(|| {
            format!("{}: bad inject_unix_utc {:?}", path.display(), &row[inject])
        })?;
        out.push(Case {
            id: row[id].to_string(),
            inject_ns: seconds * 1_000_000_000,
            service: row[service].to_string(),
            fault_type: row[kind].to_string(),
        });
    }
    out.sort_by_key(|c| c.inject_ns);
    Ok(out)
}

fn resource(pod: &str, node: Option<&str>) -> Option<Resource> {
    let mut attributes = vec![
        text("service.name", service_of(pod)),
        text("k8s.pod.name", pod),
    ];
    if let Some(node) = node {
        attributes.push(text("k8s.node.name", node));
    }
    Some(Resource {
        attributes,
        ..Default::default()
    })
}

/// Export requests for a run of records, one resource per pod (in pod order, so a replay is
/// the same on every run).
#[derive(Default)]
pub struct Requests {
    spans: BTreeMap<String, Vec<Span>>,
    logs: BTreeMap<(String, String), Vec<LogRecord>>,
    metrics: BTreeMap<String, Vec<Metric>>,
}

impl Requests {
    /// Adds one record.
    pub fn push(&mut self, pod: &str, record: Record) {
        match record {
            Record::Span(s) => self.spans.entry(pod.to_string()).or_default().push(s),
            Record::Log(l, node) => self
                .logs
                .entry((pod.to_string(), node))
                .or_default()
                .push(l),
            Record::Metrics(m) => self.metrics.entry(pod.to_string()).or_default().extend(m),
        }
    }

    /// The spans as one request.
    pub fn traces(&mut self) -> ExportTraceServiceRequest {
        let groups = std::mem::take(&mut self.spans).into_iter();
        trace_request(
            groups.map(|(pod, spans)| (resource(&pod, None), spans)),
            None,
        )
    }

    /// The log records as one request.
    pub fn logs(&mut self) -> ExportLogsServiceRequest {
        let groups = std::mem::take(&mut self.logs).into_iter();
        let groups = groups.map(|((pod, node), logs)| (resource(&pod, Some(&node)), logs));
        logs_request(groups, None)
    }

    /// The metric samples as one request.
    pub fn metrics(&mut self) -> ExportMetricsServiceRequest {
        let groups = std::mem::take(&mut self.metrics).into_iter();
        metrics_request(
            groups.map(|(pod, metrics)| (resource(&pod, None), metrics)),
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_name_loses_its_last_two_parts() {
        assert_eq!(
            service_of("ts-travel-service-64469b5b48-25zj6"),
            "ts-travel-service"
        );
        assert_eq!(service_of("standalone"), "standalone");
    }

    #[test]
    fn a_logback_line_splits_into_level_location_and_message() {
        let m = parse_message(
            "18:25:44.525 INFO  t.s.TravelServiceImpl#532 TraceID: 43 SpanID: 10 [getRoute]\n",
        );
        assert_eq!(m.level, "INFO");
        assert_eq!(m.location, Some(("t.s.TravelServiceImpl", 532)));
        assert_eq!(m.body, "TraceID: 43 SpanID: 10 [getRoute]");
        let plain = parse_message("something else entirely");
        assert_eq!((plain.level, plain.location), ("INFO", None));
        assert_eq!(plain.body, "something else entirely");
    }

    #[test]
    fn an_unset_nanosecond_time_falls_back_to_the_timestamp() {
        assert_eq!(log_time("5", "x"), Some(5));
        assert_eq!(
            log_time("-6795364578871345152", "2023-01-29T09:21:03.120"),
            Some(1_674_984_063_120_000_000)
        );
    }
}
