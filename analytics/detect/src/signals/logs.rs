//! Log series: per service, counts by severity and by template; error-level records as their
//! own series (bursts); a template a settled service never logged before is a novelty.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, Int32Array, StringArray};
use arrow::record_batch::RecordBatch;
use scry_collector::schema::{SERVICE_COLUMN, TEMPLATE_COLUMN, TEMPLATE_ID_COLUMN};

use super::{
    Direction, Evidence, Kind, Measure, Novelty, NoveltyContext, Point, SeriesKey, Signal,
};

/// Severity numbers from this one up are errors (OTel: ERROR is 17..=20, FATAL 21..=24).
const ERROR_SEVERITY: i32 = 17;
/// ... and from this one up warnings.
const WARN_SEVERITY: i32 = 13;
/// Templates tracked per service and bucket; more are folded into the service's counts only.
const MAX_TEMPLATES: usize = 200;
/// Longest sample line kept as evidence.
const SAMPLE_CHARS: usize = 300;

fn severity_group(number: i32) -> &'static str {
    match number {
        n if n >= 21 => "FATAL",
        n if n >= ERROR_SEVERITY => "ERROR",
        n if n >= WARN_SEVERITY => "WARN",
        n if n >= 9 => "INFO",
        n if n >= 5 => "DEBUG",
        n if n >= 1 => "TRACE",
        _ => "UNSPECIFIED",
    }
}

/// Score of a first template by its severity: a new error line matters more than a new info one.
fn new_template_score(severity: i32) -> f64 {
    match severity {
        n if n >= ERROR_SEVERITY => 0.9,
        n if n >= WARN_SEVERITY => 0.7,
        _ => 0.5,
    }
}

struct TemplateAgg {
    count: u64,
    template: String,
    sample: String,
    severity: i32,
}

#[derive(Default)]
struct ServiceLogs {
    by_severity: HashMap<&'static str, u64>,
    errors: u64,
    error_traces: Vec<String>,
    templates: HashMap<String, TemplateAgg>,
}

/// Log aggregates of one bucket, per service.
#[derive(Default)]
pub(crate) struct BucketLogs {
    services: HashMap<String, ServiceLogs>,
    templates: usize,
}

fn sample(body: &str) -> String {
    body.chars().take(SAMPLE_CHARS).collect()
}

impl BucketLogs {
    /// Whether no log record fell in the bucket.
    pub(crate) fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// Series this bucket would report.
    pub(crate) fn series(&self) -> usize {
        self.templates + self.services.len() * 4
    }

    pub(crate) fn observe(
        &mut self,
        batch: &RecordBatch,
        rows: &[usize],
        room: usize,
        novelty: &mut NoveltyContext<'_>,
    ) {
        let s = |n: &str| {
            batch
                .column_by_name(n)
                .and_then(|c| c.as_string_opt::<i32>())
        };
        let (Some(service), Some(ids), Some(templates), Some(bodies), Some(traces)) = (
            s(SERVICE_COLUMN),
            s(TEMPLATE_ID_COLUMN),
            s(TEMPLATE_COLUMN),
            s("body"),
            s("trace_id"),
        ) else {
            return;
        };
        let Some(severity) = batch
            .column_by_name("severity_number")
            .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int32Type>())
        else {
            return;
        };
        let times = batch
            .column_by_name("time")
            .and_then(|c| c.as_primitive_opt::<arrow::datatypes::TimestampNanosecondType>());
        let Some(times) = times else { return };
        let room = room.saturating_sub(self.series());
        for &row in rows {
            let cols = Row {
                service,
                ids,
                templates,
                bodies,
                traces,
                severity,
                row,
            };
            self.observe_row(&cols, times.value(row), room, novelty);
        }
    }

    fn observe_row(
        &mut self,
        r: &Row<'_>,
        time: i64,
        room: usize,
        novelty: &mut NoveltyContext<'_>,
    ) {
        let service = r.service.value(r.row);
        let severity = r.severity.value(r.row);
        if !self.services.contains_key(service) {
            self.services
                .insert(service.to_string(), ServiceLogs::default());
        }
        let logs = self.services.get_mut(service).expect("inserted above");
        *logs
            .by_severity
            .entry(severity_group(severity))
            .or_default() += 1;
        if severity >= ERROR_SEVERITY {
            logs.errors += 1;
            if logs.error_traces.len() < 3 && r.traces.is_valid(r.row) {
                logs.error_traces.push(r.traces.value(r.row).to_string());
            }
        }
        let settled = novelty.settled(service, time);
        if r.ids.is_null(r.row) {
            return;
        }
        let id = r.ids.value(r.row);
        if let Some(t) = logs.templates.get_mut(id) {
            t.count += 1;
            t.severity = t.severity.max(severity);
        } else if logs.templates.len() < MAX_TEMPLATES && self.templates < room {
            self.templates += 1;
            logs.templates.insert(
                id.to_string(),
                TemplateAgg {
                    count: 1,
                    template: r.templates.value(r.row).to_string(),
                    sample: sample(r.bodies.value(r.row)),
                    severity,
                },
            );
        }
        if novelty.first_template(service, id) && settled {
            let trace = r.traces.is_valid(r.row).then(|| r.traces.value(r.row));
            novelty.report(new_template(r, service, id, severity, trace, time));
        }
    }

    /// Emits the bucket's points.
    pub(crate) fn close(self, start: i64, points: &mut Vec<Point>) {
        for (service, logs) in self.services {
            let key = |measure: Measure, scope: &str| SeriesKey {
                service: service.clone(),
                signal: Signal::Logs,
                measure,
                scope: scope.to_string(),
            };
            let count = |key, direction, value: u64, evidence| Point {
                key,
                kind: Kind::Count,
                direction,
                bucket_ns: start,
                value: value as f64,
                weight: 1.0,
                evidence,
            };
            let mut error_templates: Vec<(&String, &TemplateAgg)> = logs
                .templates
                .iter()
                .filter(|(_, t)| t.severity >= ERROR_SEVERITY)
                .collect();
            error_templates.sort_by_key(|t| std::cmp::Reverse(t.1.count));
            let evidence = Evidence {
                trace_ids: logs.error_traces.clone(),
                template_ids: error_templates
                    .iter()
                    .take(3)
                    .map(|(id, _)| (*id).clone())
                    .collect(),
                attributes: error_templates
                    .first()
                    .map(|(_, t)| {
                        vec![
                            ("template".into(), t.template.clone()),
                            ("sample".into(), t.sample.clone()),
                        ]
                    })
                    .unwrap_or_default(),
            };
            points.push(count(
                key(Measure::ErrorLogs, ""),
                Direction::Up,
                logs.errors,
                evidence,
            ));
            for (group, n) in &logs.by_severity {
                points.push(count(
                    key(Measure::Logs, group),
                    Direction::Both,
                    *n,
                    Evidence::default(),
                ));
            }
            for (id, t) in &logs.templates {
                let evidence = Evidence {
                    trace_ids: Vec::new(),
                    template_ids: vec![id.clone()],
                    attributes: vec![
                        ("template".into(), t.template.clone()),
                        ("sample".into(), t.sample.clone()),
                    ],
                };
                points.push(count(
                    key(Measure::TemplateCount, id),
                    Direction::Both,
                    t.count,
                    evidence,
                ));
            }
        }
    }
}

struct Row<'a> {
    service: &'a StringArray,
    ids: &'a StringArray,
    templates: &'a StringArray,
    bodies: &'a StringArray,
    traces: &'a StringArray,
    severity: &'a Int32Array,
    row: usize,
}

fn new_template(
    r: &Row<'_>,
    service: &str,
    id: &str,
    severity: i32,
    trace: Option<&str>,
    time: i64,
) -> Novelty {
    let body = if r.bodies.is_valid(r.row) {
        sample(r.bodies.value(r.row))
    } else {
        String::new()
    };
    Novelty {
        key: SeriesKey {
            service: service.to_string(),
            signal: Signal::Logs,
            measure: Measure::NewTemplate,
            scope: id.to_string(),
        },
        time_ns: time,
        score: new_template_score(severity),
        evidence: Evidence {
            trace_ids: trace.map(str::to_string).into_iter().collect(),
            template_ids: vec![id.to_string()],
            attributes: vec![
                ("template".into(), r.templates.value(r.row).to_string()),
                ("sample".into(), body),
                ("severity".into(), severity_group(severity).to_string()),
            ],
        },
    }
}
