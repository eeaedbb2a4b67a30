//! A plan node that passes every batch of its input through a function, so operators can be
//! checked for cancellation ([`crate::cancel`]) and scans have derived columns revised as they are
//! read ([`Enricher::revise`](scry_collector::Enricher::revise)) without a node type for each.

use std::fmt;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties,
    ReplaceChildrenOptions,
};
use futures::StreamExt;

/// What a [`MapExec`] does to each batch (or error) its input yields; must keep the schema.
pub type BatchFn = Arc<dyn Fn(Result<RecordBatch>) -> Result<RecordBatch> + Send + Sync>;

/// Applies a [`BatchFn`] to every batch of its input, partition by partition.
pub struct MapExec {
    name: &'static str,
    input: Arc<dyn ExecutionPlan>,
    f: BatchFn,
}

impl MapExec {
    /// Wraps `input`; `name` is what `EXPLAIN` shows.
    pub fn new(name: &'static str, input: Arc<dyn ExecutionPlan>, f: BatchFn) -> Self {
        Self { name, input, f }
    }
}

impl fmt::Debug for MapExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(self.name)
            .field("input", &self.input)
            .finish()
    }
}

impl DisplayAs for MapExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.name)
    }
}

impl ExecutionPlan for MapExec {
    fn name(&self) -> &str {
        self.name
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(MapExec::new(
            self.name,
            children.swap_remove(0),
            Arc::clone(&self.f),
        )))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let f = Arc::clone(&self.f);
        let mapped = input.map(move |batch| f(batch));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, mapped)))
    }
}
