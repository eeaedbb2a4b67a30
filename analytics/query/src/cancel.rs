//! Query cancellation that works even while operators never yield.
//!
//! Dropping a DataFusion stream stops a query only at its next await point, and a plan over data
//! already in memory may compute for minutes without one: a join whose inputs are all read keeps
//! producing batches that the operator above consumes in the same poll. Checking at the scans is
//! not enough (they are long finished by then), so [`cancellable`] puts a check on the output of
//! every operator of the executed plan: once the query's [`CancelFlag`] is set, the next batch any
//! operator hands upward becomes an error, and the error ends every operator above it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::ExecutionPlan;

use crate::map_exec::{BatchFn, MapExec};

/// Set when a query must stop.
#[derive(Debug, Default)]
pub struct CancelFlag(AtomicBool);

impl CancelFlag {
    /// Asks every operator of the query to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the query was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Puts a check of `flag` above every operator of `plan`; done on the plan that is executed (not
/// the one `EXPLAIN` shows), after the optimizer has run.
pub fn cancellable(
    plan: Arc<dyn ExecutionPlan>,
    flag: &Arc<CancelFlag>,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| Ok(Transformed::yes(checked(node, Arc::clone(flag)))))
        .map(|t| t.data)
}

fn checked(input: Arc<dyn ExecutionPlan>, flag: Arc<CancelFlag>) -> Arc<dyn ExecutionPlan> {
    let check: BatchFn = Arc::new(move |batch| {
        if flag.is_cancelled() {
            Err(DataFusionError::Execution("query cancelled".into()))
        } else {
            batch
        }
    });
    Arc::new(MapExec::new("CancellableExec", input, check))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::SessionContext;

    async fn plan(ctx: &SessionContext, sql: &str) -> Arc<dyn ExecutionPlan> {
        ctx.sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn every_operator_is_checked_and_results_are_unchanged() {
        let ctx = SessionContext::new();
        let sql = "SELECT a.column1, count(*) FROM (VALUES (1), (2), (2)) a \
                   JOIN (VALUES (2), (3)) b ON a.column1 = b.column1 GROUP BY a.column1";
        let plain = plan(&ctx, sql).await;
        let mut operators = 0;
        plain
            .apply(|_| {
                operators += 1;
                Ok(TreeNodeRecursion::Continue)
            })
            .unwrap();
        let flag = Arc::new(CancelFlag::default());
        let wrapped = cancellable(Arc::clone(&plain), &flag).unwrap();
        let shown = displayable(wrapped.as_ref()).indent(false).to_string();
        assert_eq!(
            shown.matches("CancellableExec").count(),
            operators,
            "{shown}"
        );
        let got = collect(wrapped, ctx.task_ctx()).await.unwrap();
        let want = collect(plain, ctx.task_ctx()).await.unwrap();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_cancelled_query_fails_with_cancelled() {
        let ctx = SessionContext::new();
        let flag = Arc::new(CancelFlag::default());
        let wrapped = cancellable(plan(&ctx, "SELECT 1").await, &flag).unwrap();
        flag.cancel();
        let err = collect(wrapped, ctx.task_ctx()).await.unwrap_err();
        assert!(err.to_string().contains("query cancelled"), "{err}");
    }
}
