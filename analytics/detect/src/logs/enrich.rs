//! Template mining on ingest: every stored log record gets the `template_id` and `template` of its
//! body, mined as records arrive (so `SELECT template, count(*) FROM logs GROUP BY template` works).
//!
//! A record is stored with the template its cluster had when it arrived; later records may
//! generalise the cluster (a number becomes `<*>`, a closed vocabulary outgrows itself). Queries
//! read rows through [`TemplateEnricher::revise`], which maps each stored id to its cluster's
//! template as it stands now, so every record of one cluster reads alike however early it came.
//! The id is a hash of the template text, so it is stable across restarts as long as the text is;
//! ids stored before a restart read as stored (the miner starts afresh).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListArray, StringArray, StringBuilder};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use parking_lot::Mutex;
use scry_collector::schema::{TEMPLATE_COLUMN, TEMPLATE_ID_COLUMN};
use scry_collector::{Enricher, Table};

use super::{Miner, MinerConfig, Token, tokenize};

/// Column of `anomalies` listing the template ids a log anomaly is about.
const ANOMALY_TEMPLATES_COLUMN: &str = "template_ids";

/// Fills the template columns of `logs` batches from one shared streaming miner, and revises them
/// as queries read them.
#[derive(Debug, Default)]
pub struct TemplateEnricher {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    miner: Miner,
    /// Every template id handed out, with its cluster and the tokens of its first record: enough to
    /// label that id's records as their cluster stands now (records sharing an id agree on every
    /// position the id's template did not mask).
    issued: HashMap<String, Issued>,
}

#[derive(Debug)]
struct Issued {
    cluster: usize,
    tokens: Vec<Token>,
}

/// A stored template id's current id and template text.
struct Current {
    id: String,
    template: String,
}

impl TemplateEnricher {
    /// An enricher with a fresh miner using `config`.
    pub fn new(config: MinerConfig) -> Self {
        Self {
            state: Mutex::new(State {
                miner: Miner::new(config),
                issued: HashMap::new(),
            }),
        }
    }

    /// The current id and template of each of `stored` ids whose cluster has changed since.
    fn changed<'a>(&self, stored: impl Iterator<Item = &'a str>) -> HashMap<String, Current> {
        let wanted: HashSet<&str> = stored.collect();
        let state = self.state.lock();
        wanted
            .into_iter()
            .filter_map(|id| {
                let issued = state.issued.get(id)?;
                let template = state.miner.label(issued.cluster, &issued.tokens).template;
                let now = stable_id(&template);
                (now != id).then(|| (id.to_string(), Current { id: now, template }))
            })
            .collect()
    }

    fn revise_logs(&self, batch: RecordBatch) -> RecordBatch {
        let schema = batch.schema();
        let column = |name| {
            let i = schema.index_of(name).ok()?;
            Some((i, batch.column(i).as_string::<i32>()))
        };
        let (ids, texts) = (column(TEMPLATE_ID_COLUMN), column(TEMPLATE_COLUMN));
        // A template's id is the hash of its text, so either column names the stored template.
        let text_ids: HashMap<&str, String> = texts
            .iter()
            .flat_map(|(_, c)| c.iter().flatten())
            .collect::<HashSet<_>>()
            .into_iter()
            .map(|t| (t, stable_id(t)))
            .collect();
        let stored = ids
            .iter()
            .flat_map(|(_, c)| c.iter().flatten())
            .chain(text_ids.values().map(String::as_str));
        let changed = self.changed(stored);
        if changed.is_empty() {
            return batch;
        }
        let mut columns = batch.columns().to_vec();
        if let Some((i, c)) = ids {
            columns[i] = Arc::new(map_strings(c, |id| changed.get(id).map(|n| n.id.as_str())));
        }
        if let Some((i, c)) = texts {
            columns[i] = Arc::new(map_strings(c, |text| {
                let now = changed.get(text_ids.get(text)?)?;
                Some(now.template.as_str())
            }));
        }
        RecordBatch::try_new(schema, columns).expect("same schema, same row count")
    }

    fn revise_anomalies(&self, batch: RecordBatch) -> RecordBatch {
        let schema = batch.schema();
        let Ok(i) = schema.index_of(ANOMALY_TEMPLATES_COLUMN) else {
            return batch;
        };
        let (Some(list), DataType::List(item)) = (
            batch.column(i).as_list_opt::<i32>(),
            schema.field(i).data_type(),
        ) else {
            return batch;
        };
        let Some(values) = list.values().as_string_opt::<i32>() else {
            return batch;
        };
        let changed = self.changed(values.iter().flatten());
        if changed.is_empty() {
            return batch;
        }
        let values = map_strings(values, |id| changed.get(id).map(|n| n.id.as_str()));
        let revised = ListArray::new(
            Arc::clone(item),
            list.offsets().clone(),
            Arc::new(values),
            list.nulls().cloned(),
        );
        let mut columns = batch.columns().to_vec();
        columns[i] = Arc::new(revised);
        RecordBatch::try_new(schema, columns).expect("same schema, same row count")
    }
}

/// `strings` with each value `f` maps replaced (nulls and unmapped values kept).
fn map_strings<'m>(strings: &StringArray, f: impl Fn(&str) -> Option<&'m str>) -> StringArray {
    strings
        .iter()
        .map(|s| s.map(|s| f(s).unwrap_or(s)))
        .collect()
}

/// FNV-1a: a stable 64-bit hash (std's hasher may change between Rust releases).
fn stable_id(text: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

impl Enricher for TemplateEnricher {
    fn enrich(&self, table: Table, batch: RecordBatch) -> RecordBatch {
        if table != Table::Logs {
            return batch;
        }
        let schema = batch.schema();
        let (Ok(body_idx), Ok(id_idx), Ok(tpl_idx)) = (
            schema.index_of("body"),
            schema.index_of(TEMPLATE_ID_COLUMN),
            schema.index_of(TEMPLATE_COLUMN),
        ) else {
            return batch;
        };
        let bodies = batch.column(body_idx).as_string::<i32>();
        let mut ids = StringBuilder::with_capacity(bodies.len(), bodies.len() * 16);
        let mut templates = StringBuilder::with_capacity(bodies.len(), bodies.len() * 48);
        {
            let mut state = self.state.lock();
            for i in 0..bodies.len() {
                if bodies.is_null(i) {
                    ids.append_null();
                    templates.append_null();
                    continue;
                }
                let tokens = tokenize(bodies.value(i));
                let cluster = state.miner.add(&tokens);
                let label = state.miner.label(cluster, &tokens);
                let id = stable_id(&label.template);
                ids.append_value(&id);
                templates.append_value(&label.template);
                state.issued.entry(id).or_insert(Issued { cluster, tokens });
            }
        }
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns[id_idx] = Arc::new(ids.finish());
        columns[tpl_idx] = Arc::new(templates.finish());
        RecordBatch::try_new(schema, columns).expect("same schema, same row count")
    }

    fn revise(&self, table: Table, batch: RecordBatch) -> RecordBatch {
        match table {
            Table::Logs => self.revise_logs(batch),
            Table::Anomalies => self.revise_anomalies(batch),
            _ => batch,
        }
    }

    fn revised_columns(&self, table: Table) -> &'static [&'static str] {
        match table {
            Table::Logs => &[TEMPLATE_ID_COLUMN, TEMPLATE_COLUMN],
            Table::Anomalies => &[ANOMALY_TEMPLATES_COLUMN],
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;

    fn logs_batch(bodies: &[Option<&str>]) -> RecordBatch {
        let schema = Table::Logs.schema();
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                if f.name() == "body" {
                    Arc::new(StringArray::from(bodies.to_vec())) as ArrayRef
                } else {
                    arrow::array::new_null_array(f.data_type(), bodies.len())
                }
            })
            .collect();
        RecordBatch::try_new_with_options(
            Arc::new(arrow::datatypes::Schema::new(
                schema
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone().with_nullable(true))
                    .collect::<Vec<_>>(),
            )),
            columns,
            &Default::default(),
        )
        .unwrap()
    }

    #[test]
    fn bodies_get_templates() {
        let e = TemplateEnricher::default();
        let out = e.enrich(
            Table::Logs,
            logs_batch(&[
                Some("user 17 logged in from 10.0.0.1"),
                Some("user 42 logged in from 10.0.0.9"),
                None,
            ]),
        );
        let tpl = out
            .column_by_name(TEMPLATE_COLUMN)
            .unwrap()
            .as_string::<i32>();
        let ids = out
            .column_by_name(TEMPLATE_ID_COLUMN)
            .unwrap()
            .as_string::<i32>();
        assert_eq!(tpl.value(1), "user <*> logged in from <*>");
        assert_eq!(ids.value(1), stable_id("user <*> logged in from <*>"));
        assert!(tpl.is_null(2));
    }

    fn column<'a>(batch: &'a RecordBatch, name: &str) -> Vec<Option<&'a str>> {
        batch
            .column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .iter()
            .collect()
    }

    const WORDS: [&str; 10] = [
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    ];

    /// `format` with `{}` replaced by each of [`WORDS`] after the first.
    fn variants(format: &str) -> Vec<String> {
        WORDS[1..].iter().map(|w| format.replace("{}", w)).collect()
    }

    fn some(lines: &[String]) -> Vec<Option<&str>> {
        lines.iter().map(|l| Some(l.as_str())).collect()
    }

    /// Records that arrived before their cluster generalised read with its current template.
    #[test]
    fn stored_templates_are_revised_as_read() {
        let e = TemplateEnricher::default();
        let first = e.enrich(
            Table::Logs,
            logs_batch(&[Some("cache warmed for region alpha"), None]),
        );
        assert_eq!(
            column(&first, TEMPLATE_COLUMN)[0],
            Some("cache warmed for region alpha")
        );
        // A word in few variants is a closed vocabulary, part of the template; past
        // `max_closed` variants it becomes a variable.
        let more = variants("cache warmed for region {}");
        let second = e.enrich(Table::Logs, logs_batch(&some(&more[..2])));
        let third = e.enrich(Table::Logs, logs_batch(&some(&more[2..])));
        let now = "cache warmed for region <*>";
        assert_eq!(column(&third, TEMPLATE_COLUMN).last().unwrap(), &Some(now));
        assert_eq!(
            column(&second, TEMPLATE_COLUMN)[0],
            Some("cache warmed for region beta")
        );
        let now_id = stable_id(now);
        for batch in [first, second, third] {
            let read = e.revise(Table::Logs, batch.clone());
            assert_eq!(read.schema(), batch.schema());
            let ids = column(&read, TEMPLATE_ID_COLUMN);
            let texts = column(&read, TEMPLATE_COLUMN);
            let bodies = column(&read, "body");
            for ((id, text), body) in ids.iter().zip(&texts).zip(&bodies) {
                if body.is_none() {
                    assert_eq!((*id, *text), (None, None));
                } else {
                    assert_eq!((*id, *text), (Some(now_id.as_str()), Some(now)));
                }
            }
        }
    }

    /// A projection holding only one template column, or ids the miner never issued (stored before
    /// a restart), reads as it can.
    #[test]
    fn revision_takes_what_the_batch_has() {
        let e = TemplateEnricher::default();
        let early = e.enrich(Table::Logs, logs_batch(&[Some("job finished alpha")]));
        let _ = e.enrich(Table::Logs, logs_batch(&some(&variants("job finished {}"))));
        let texts_only = early.project(&[early.schema().index_of(TEMPLATE_COLUMN).unwrap()]);
        let read = e.revise(Table::Logs, texts_only.unwrap());
        assert_eq!(
            column(&read, TEMPLATE_COLUMN),
            vec![Some("job finished <*>")]
        );

        let unknown = StringArray::from(vec!["0123456789abcdef"]);
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new(TEMPLATE_ID_COLUMN, DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(unknown)]).unwrap();
        let read = e.revise(Table::Logs, batch);
        assert_eq!(
            column(&read, TEMPLATE_ID_COLUMN),
            vec![Some("0123456789abcdef")]
        );
    }

    /// The template ids an anomaly lists read like the log records they name.
    #[test]
    fn anomaly_template_lists_are_revised() {
        let e = TemplateEnricher::default();
        let early = e.enrich(
            Table::Logs,
            logs_batch(&[Some("retry failed on shard alpha")]),
        );
        let early_id = column(&early, TEMPLATE_ID_COLUMN)[0].unwrap().to_string();
        let _ = e.enrich(
            Table::Logs,
            logs_batch(&some(&variants("retry failed on shard {}"))),
        );
        let now_id = stable_id("retry failed on shard <*>");

        let mut list = arrow::array::ListBuilder::new(StringBuilder::new());
        list.values().append_value(&early_id);
        list.values().append_value("not-a-template");
        list.append(true);
        list.append(false);
        let list = list.finish();
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new(ANOMALY_TEMPLATES_COLUMN, list.data_type().clone(), true),
        ]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(list)]).unwrap();
        let read = e.revise(Table::Anomalies, batch);
        let read = read.column(0).as_list::<i32>();
        let first = read.value(0);
        let first: Vec<_> = first.as_string::<i32>().iter().collect();
        assert_eq!(first, vec![Some(now_id.as_str()), Some("not-a-template")]);
        assert!(read.is_null(1));
    }
}
