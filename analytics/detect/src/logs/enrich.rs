//! Template mining on ingest: every stored log record gets the `template_id` and `template` of its
//! body, mined as records arrive (so `SELECT template, count(*) FROM logs GROUP BY template` works).
//!
//! A record keeps the template its cluster had when it arrived; later records may generalize the
//! cluster further. The id is a hash of the template text, so it is stable across restarts as long
//! as the text is.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::record_batch::RecordBatch;
use parking_lot::Mutex;
use scry_collector::schema::{TEMPLATE_COLUMN, TEMPLATE_ID_COLUMN};
use scry_collector::{Enricher, Table};

use super::{Miner, MinerConfig, tokenize};

/// Fills the template columns of `logs` batches from one shared streaming miner.
#[derive(Debug, Default)]
pub struct TemplateEnricher {
    miner: Mutex<Miner>,
}

impl TemplateEnricher {
    /// An enricher with a fresh miner using `config`.
    pub fn new(config: MinerConfig) -> Self {
        Self {
            miner: Mutex::new(Miner::new(config)),
        }
    }
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
            let mut miner = self.miner.lock();
            for i in 0..bodies.len() {
                if bodies.is_null(i) {
                    ids.append_null();
                    templates.append_null();
                    continue;
                }
                let tokens = tokenize(bodies.value(i));
                let cluster = miner.add(&tokens);
                let label = miner.label(cluster, &tokens);
                ids.append_value(stable_id(&label.template));
                templates.append_value(&label.template);
            }
        }
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns[id_idx] = Arc::new(ids.finish());
        columns[tpl_idx] = Arc::new(templates.finish());
        RecordBatch::try_new(schema, columns).expect("same schema, same row count")
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
}
