//! The `spans`, `logs` and `metrics` tables as DataFusion [`TableProvider`]s: rows in memory and in
//! committed Parquet files, read from one consistent store snapshot so none is counted twice.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{SchemaRef, TimestampNanosecondType};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;
use object_store::ObjectMeta;
use scry_collector::persist::ParquetFile;
use scry_collector::schema::TIME_COLUMN;
use scry_collector::{Enricher, Store, Table};

use crate::map_exec::{BatchFn, MapExec};

/// One stored table as DataFusion sees it.
#[derive(Clone)]
pub struct ScryTable {
    table: Table,
    store: Store,
    reviser: Option<Arc<dyn Enricher>>,
}

impl std::fmt::Debug for ScryTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScryTable")
            .field("table", &self.table.name())
            .finish()
    }
}

impl ScryTable {
    /// `table` of `store`.
    pub fn new(table: Table, store: Store) -> Self {
        Self {
            table,
            store,
            reviser: None,
        }
    }

    /// Rows are read through `enricher`'s [`Enricher::revise`], so derived columns show their
    /// current values rather than those they were stored with.
    pub fn revised_by(mut self, enricher: Arc<dyn Enricher>) -> Self {
        self.reviser = Some(enricher);
        self
    }

    fn revised_columns(&self) -> &'static [&'static str] {
        self.reviser
            .as_ref()
            .map_or(&[], |r| r.revised_columns(self.table))
    }

    /// Wraps `plan` so its batches are revised, when it reads a column the reviser may change.
    fn revise(&self, plan: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
        let Some(reviser) = &self.reviser else {
            return plan;
        };
        let schema = plan.schema();
        let revised = self.revised_columns();
        if !revised.iter().any(|c| schema.index_of(c).is_ok()) {
            return plan;
        }
        let (table, reviser) = (self.table, Arc::clone(reviser));
        let f: BatchFn = Arc::new(move |batch| batch.map(|b| reviser.revise(table, b)));
        Arc::new(MapExec::new("ReviseExec", plan, f))
    }

    /// The filters whose columns are stored as read, so file and row-group statistics may prune
    /// with them (a revised column's stored values differ from what the filter sees).
    fn prunable(&self, filters: &[Expr]) -> Vec<Expr> {
        let revised = self.revised_columns();
        filters
            .iter()
            .filter(|f| {
                f.column_refs()
                    .iter()
                    .all(|c| !revised.contains(&c.name.as_str()))
            })
            .cloned()
            .collect()
    }
}

/// Inclusive bounds on `time` implied by a query's filters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeRange {
    /// Smallest time a matching row can have.
    pub min: i64,
    /// Largest time a matching row can have.
    pub max: i64,
}

impl TimeRange {
    const ALL: TimeRange = TimeRange {
        min: i64::MIN,
        max: i64::MAX,
    };

    /// Narrows the range with every `time <op> literal` conjunct among `filters`.
    pub fn from_filters(filters: &[Expr]) -> TimeRange {
        let mut range = TimeRange::ALL;
        for f in filters {
            range.narrow(f);
        }
        range
    }

    fn narrow(&mut self, expr: &Expr) {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
            return;
        };
        if *op == Operator::And {
            self.narrow(left);
            self.narrow(right);
            return;
        }
        let (op, value) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) if c.name == TIME_COLUMN => (*op, v),
            (Expr::Literal(v, _), Expr::Column(c)) if c.name == TIME_COLUMN => match op.swap() {
                Some(op) => (op, v),
                None => return,
            },
            _ => return,
        };
        let Some(ns) = timestamp_nanos(value) else {
            return;
        };
        match op {
            Operator::Gt | Operator::GtEq => self.min = self.min.max(ns),
            Operator::Lt | Operator::LtEq => self.max = self.max.min(ns),
            Operator::Eq => {
                self.min = self.min.max(ns);
                self.max = self.max.min(ns);
            }
            _ => {}
        }
    }

    fn overlaps(&self, min: i64, max: i64) -> bool {
        max >= self.min && min <= self.max
    }
}

fn timestamp_nanos(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampNanosecond(Some(n), _) => Some(*n),
        ScalarValue::TimestampMicrosecond(Some(n), _) => n.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(n), _) => n.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(n), _) => n.checked_mul(1_000_000_000),
        _ => None,
    }
}

fn batch_time_bounds(batch: &RecordBatch) -> Option<(i64, i64)> {
    let times = batch
        .column_by_name(TIME_COLUMN)?
        .as_primitive::<TimestampNanosecondType>();
    Some((arrow::compute::min(times)?, arrow::compute::max(times)?))
}

fn partitioned_file(data_dir: &Path, f: &ParquetFile) -> Result<PartitionedFile> {
    let abs = std::path::absolute(data_dir.join(&f.path))?;
    let location = object_store::path::Path::from_absolute_path(&abs)
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    Ok(PartitionedFile::new_from_meta(ObjectMeta {
        location,
        last_modified: chrono::Utc::now(),
        size: f.size,
        e_tag: None,
        version: None,
    }))
}

#[async_trait]
impl TableProvider for ScryTable {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Used to prune files and row groups; DataFusion still applies every filter exactly.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = self.table.schema();
        let snapshot = self.store.snapshot(self.table);
        let range = TimeRange::from_filters(filters);
        let partitions = state.config().target_partitions().max(1);

        let mut mem_parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions];
        let wanted = snapshot
            .batches
            .into_iter()
            // Finding a batch's time bounds reads its whole time column: only worth it when pruning.
            .filter(|b| {
                range == TimeRange::ALL
                    || batch_time_bounds(b).is_some_and(|(lo, hi)| range.overlaps(lo, hi))
            });
        for (i, batch) in wanted.enumerate() {
            mem_parts[i % partitions].push(batch);
        }
        let mut plans: Vec<Arc<dyn ExecutionPlan>> = vec![MemorySourceConfig::try_new_exec(
            &mem_parts,
            Arc::clone(&schema),
            projection.cloned(),
        )?];

        let files: Vec<_> = snapshot
            .files
            .iter()
            .filter(|f| range.overlaps(f.min_time, f.max_time))
            .collect();
        if !files.is_empty() {
            let mut source = ParquetSource::new(Arc::clone(&schema));
            if let Some(predicate) = conjunction(self.prunable(filters)) {
                let df_schema = DFSchema::try_from(Arc::clone(&schema))?;
                source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
            }
            let data_dir = self.store.data_dir();
            let mut groups: Vec<Vec<PartitionedFile>> =
                vec![Vec::new(); partitions.min(files.len())];
            for (i, f) in files.iter().enumerate() {
                let n = groups.len();
                groups[i % n].push(partitioned_file(data_dir, f)?);
            }
            let config =
                FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(source))
                    .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
                    .with_projection_indices(projection.cloned())?
                    .with_limit(limit)
                    .build();
            plans.push(DataSourceExec::from_data_source(config));
        }
        Ok(self.revise(UnionExec::try_new(plans)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};

    fn ts(n: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(
            Some(n),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn time_range_from_filters() {
        let filters = vec![
            col("time").gt_eq(ts(100)).and(col("time").lt(ts(200))),
            col("name").eq(lit("x")),
        ];
        let r = TimeRange::from_filters(&filters);
        assert_eq!(r, TimeRange { min: 100, max: 200 });
        assert!(r.overlaps(150, 300));
        assert!(!r.overlaps(201, 300));
        let swapped = vec![Expr::BinaryExpr(BinaryExpr::new(
            Box::new(ts(50)),
            Operator::Lt,
            Box::new(col("time")),
        ))];
        assert_eq!(TimeRange::from_filters(&swapped).min, 50);
        let or = vec![col("time").gt(ts(100)).or(col("time").lt(ts(5)))];
        assert_eq!(TimeRange::from_filters(&or), TimeRange::ALL);
    }
}
