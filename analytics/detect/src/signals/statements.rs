//! Log statements per request: how many lines of each log statement each operation's spans
//! emit, per bucket.
//!
//! A log record that carries a span id is attributed to the operation of that span (through a
//! short-lived index of recent span ids), and counted under two keys: its severity group and
//! its statement. The statement is the source location when the record has one (OpenTelemetry
//! `code.*` attributes: namespace or file, and line number), else its template id. Counting per
//! span of the operation, rather than per second, is what makes a changed request mix look
//! normal and a statement that stopped being executed look abnormal (see docs/rca.md).
//!
//! Each statement line is also counted as a transition from the statement its span logged
//! before it: the lines of `A` in an operation are the units of `Operation { after: Some(A) }`
//! and the lines that follow them are its statements. What a span logs after `A` does not
//! depend on how many spans reached `A`, so an exception between `A` and `B` shows as a drop of
//! `A → B` however the request mix or the failures before `A` vary.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, MapArray, StringArray};
use arrow::datatypes::Int32Type;
use arrow::record_batch::RecordBatch;
use scry_collector::schema::{SERVICE_COLUMN, TEMPLATE_ID_COLUMN};
use serde::{Deserialize, Serialize};

use super::map_value;
use super::recent::{RecentSpans, span_key};

/// Operations and statements tracked at most; further ones are not counted.
const MAX_NAMES: usize = 200_000;
/// What severity-group statements are named with.
pub const LEVEL_PREFIX: &str = "level:";
/// Severity numbers below this are informational (OTel: WARN starts at 13).
const WARN_SEVERITY: i32 = 13;

/// What statements are counted per: the spans of an operation of a service, or the lines of
/// one statement in them (then the counted statements are the ones that came next).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Operation {
    /// The service.
    pub service: String,
    /// The span name.
    pub name: String,
    /// The statement whose lines are the units; `None` for the spans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// What a log line is counted under.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Statement {
    /// `level:INFO`, a source location such as `t.s.TravelServiceImpl#372`, or a template id.
    pub name: String,
    /// Informational (below WARN): only a drop is notable. Otherwise only a rise is.
    pub info: bool,
}

/// The closed counts of one bucket.
#[derive(Debug, Clone, Default)]
pub struct StatementCounts {
    /// Start of the bucket, ns since the epoch.
    pub bucket_ns: i64,
    /// Spans started in the bucket, per operation.
    pub spans: HashMap<Operation, u64>,
    /// Log lines in the bucket, per operation of their span and statement.
    pub lines: HashMap<(Operation, Statement), u64>,
}

impl Statement {
    /// Whether this is a severity group (`level:INFO`), not one statement.
    pub fn is_level(&self) -> bool {
        self.name.starts_with(LEVEL_PREFIX)
    }
}

/// Statement ids, looked up by borrowed name (informational and other statements apart), so a
/// known statement costs no allocation per log line.
#[derive(Default)]
struct StatementIds {
    /// [other, informational]: name → id.
    ids: [HashMap<String, u32>; 2],
    names: Vec<Statement>,
}

impl StatementIds {
    fn id(&mut self, name: &str, info: bool) -> Option<u32> {
        if let Some(id) = self.ids[usize::from(info)].get(name) {
            return Some(*id);
        }
        if self.names.len() >= MAX_NAMES {
            return None;
        }
        let id = self.names.len() as u32;
        self.ids[usize::from(info)].insert(name.to_string(), id);
        self.names.push(Statement {
            name: name.to_string(),
            info,
        });
        Some(id)
    }
}

/// Operation ids, looked up by borrowed names so a known operation costs no allocation.
#[derive(Default)]
struct OperationIds {
    ids: HashMap<String, HashMap<String, u32>>,
    names: Vec<Operation>,
}

impl OperationIds {
    fn id(&mut self, service: &str, name: &str) -> Option<u32> {
        if let Some(id) = self.ids.get(service).and_then(|ops| ops.get(name)) {
            return Some(*id);
        }
        if self.names.len() >= MAX_NAMES {
            return None;
        }
        let id = self.names.len() as u32;
        self.ids
            .entry(service.to_string())
            .or_default()
            .insert(name.to_string(), id);
        self.names.push(Operation {
            service: service.to_string(),
            name: name.to_string(),
            after: None,
        });
        Some(id)
    }
}

/// Recent span ids with their operations and last statements, plus the name tables; shared by
/// all buckets.
#[derive(Default)]
pub(crate) struct StatementIndex {
    operations: OperationIds,
    statements: StatementIds,
    /// Reused to spell a record's source location.
    location: String,
    spans: RecentSpans<u32>,
    /// The statement each recent span logged last.
    last_statement: RecentSpans<u32>,
    /// Lines whose span was never seen, since start.
    pub unattributed: u64,
}

impl StatementIndex {
    fn operation_of(&self, span: u64) -> Option<u32> {
        self.spans.get(span)
    }

    fn remember(&mut self, span: u64, op: u32, time: i64) {
        self.spans.insert(span, op, time);
    }
}

/// Writes the source location of a record from its `code.*` attributes (e.g. `c.s.Foo#37`)
/// into `out`; false when it has none.
fn location(attributes: &MapArray, row: usize, out: &mut String) -> bool {
    use std::fmt::Write;
    let attr = |k| map_value(attributes, row, k);
    let Some(line) = attr("code.line.number").or_else(|| attr("code.lineno")) else {
        return false;
    };
    let Some(place) = attr("code.namespace")
        .or_else(|| attr("code.file.path"))
        .or_else(|| attr("code.filepath"))
        .or_else(|| attr("code.function.name"))
    else {
        return false;
    };
    out.clear();
    write!(out, "{place}#{line}").is_ok()
}

fn level(severity: i32) -> &'static str {
    match severity {
        n if n >= 21 => "level:FATAL",
        n if n >= 17 => "level:ERROR",
        n if n >= WARN_SEVERITY => "level:WARN",
        _ => "level:INFO",
    }
}

/// One log line by id: its severity group, its statement, and the statement its span logged
/// before it.
#[derive(Clone, Copy)]
struct Line {
    level: u32,
    statement: u32,
    after: Option<u32>,
}

/// Counts of one open bucket, by id.
#[derive(Default)]
pub(crate) struct BucketStatements {
    spans: HashMap<u32, u64>,
    /// Per (operation, statement).
    lines: HashMap<(u32, u32), u64>,
    /// Per (operation, statement before, statement).
    transitions: HashMap<(u32, u32, u32), u64>,
    /// Lines whose span was not known yet.
    pending: Vec<(u64, Line)>,
}

impl BucketStatements {
    pub(crate) fn observe_spans(
        &mut self,
        batch: &RecordBatch,
        rows: &[usize],
        index: &mut StatementIndex,
        time: &[i64],
    ) {
        let s = |n: &str| batch.column_by_name(n)?.as_string_opt::<i32>();
        let (Some(service), Some(name), Some(span)) = (s(SERVICE_COLUMN), s("name"), s("span_id"))
        else {
            return;
        };
        for &row in rows {
            let Some(op) = index.operations.id(service.value(row), name.value(row)) else {
                continue;
            };
            *self.spans.entry(op).or_default() += 1;
            index.remember(span_key(span.value(row)), op, time[row]);
        }
    }

    /// Counts log lines; they must come in the order their spans logged them.
    pub(crate) fn observe_logs(
        &mut self,
        batch: &RecordBatch,
        rows: &[usize],
        index: &mut StatementIndex,
        time: &[i64],
    ) {
        let s = |n: &str| batch.column_by_name(n)?.as_string_opt::<i32>();
        let (Some(span), Some(severity)) = (
            s("span_id"),
            batch
                .column_by_name("severity_number")
                .and_then(|c| c.as_primitive_opt::<Int32Type>()),
        ) else {
            return;
        };
        let templates = s(TEMPLATE_ID_COLUMN);
        let attributes = batch
            .column_by_name("attributes")
            .and_then(|c| c.as_map_opt());
        for &row in rows {
            if span.is_null(row) || span.value(row).is_empty() {
                continue;
            }
            let severity = severity.value(row);
            let Some([level, statement]) =
                statement_ids(index, severity, attributes, templates, row)
            else {
                continue;
            };
            let key = span_key(span.value(row));
            let after = index.last_statement.insert(key, statement, time[row]);
            let line = Line {
                level,
                statement,
                after,
            };
            match index.operation_of(key) {
                Some(op) => self.count(op, line),
                None => self.pending.push((key, line)),
            }
        }
    }

    fn count(&mut self, op: u32, line: Line) {
        for id in [line.level, line.statement] {
            *self.lines.entry((op, id)).or_default() += 1;
        }
        if let Some(after) = line.after {
            *self
                .transitions
                .entry((op, after, line.statement))
                .or_default() += 1;
        }
    }

    /// The bucket's counts by name; lines whose span is still unknown are dropped.
    pub(crate) fn close(mut self, start: i64, index: &mut StatementIndex) -> StatementCounts {
        for (key, line) in std::mem::take(&mut self.pending) {
            match index.operation_of(key) {
                Some(op) => self.count(op, line),
                None => index.unattributed += 1,
            }
        }
        let op = |id: u32| index.operations.names[id as usize].clone();
        let statement = |id: u32| &index.statements.names[id as usize];
        let after = |o: u32, a: u32| Operation {
            after: Some(statement(a).name.clone()),
            ..op(o)
        };
        let mut spans: HashMap<Operation, u64> =
            self.spans.iter().map(|(id, n)| (op(*id), *n)).collect();
        // A statement's lines are the units its successors are counted per.
        spans.extend(
            self.lines
                .iter()
                .filter(|((_, s), _)| !statement(*s).is_level())
                .map(|((o, s), n)| (after(*o, *s), *n)),
        );
        let lines = self
            .lines
            .iter()
            .map(|((o, s), n)| ((op(*o), statement(*s).clone()), *n));
        let transitions = self
            .transitions
            .iter()
            .map(|((o, a, s), n)| ((after(*o, *a), statement(*s).clone()), *n));
        StatementCounts {
            bucket_ns: start,
            spans,
            lines: lines.chain(transitions).collect(),
        }
    }
}

/// The ids of a record's severity group and statement.
fn statement_ids(
    index: &mut StatementIndex,
    severity: i32,
    attributes: Option<&MapArray>,
    templates: Option<&StringArray>,
    row: usize,
) -> Option<[u32; 2]> {
    let info = severity < WARN_SEVERITY;
    let mut buffer = std::mem::take(&mut index.location);
    let name = match attributes.is_some_and(|a| location(a, row, &mut buffer)) {
        true => Some(buffer.as_str()),
        false => templates.filter(|t| t.is_valid(row)).map(|t| t.value(row)),
    };
    let ids = name.and_then(|name| {
        let level = index.statements.id(level(severity), info)?;
        Some([level, index.statements.id(name, info)?])
    });
    index.location = buffer;
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_span_index_keeps_two_generations() {
        let mut index = StatementIndex::default();
        index.remember(1, 0, 0);
        index.remember(2, 0, crate::signals::recent::GENERATION_NS + 1);
        assert_eq!(index.operation_of(1), Some(0), "previous generation");
        index.remember(3, 0, 2 * crate::signals::recent::GENERATION_NS + 2);
        assert_eq!(index.operation_of(1), None, "two generations back");
        assert_eq!(index.operation_of(2), Some(0));
    }
}
