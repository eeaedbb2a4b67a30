//! The SQL query service: one DataFusion [`SessionContext`] over scry's tables, read-only, with a
//! timeout and a memory limit, executed on its own runtime so heavy queries never stall ingest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use futures::StreamExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use scry_collector::telemetry::latency_histogram;
use scry_collector::{Enricher, Store, Table, Telemetry};

use crate::cancel::{CancelFlag, cancellable};
use crate::catalog::ScryTable;
use crate::error::QueryError;

/// Limits and parallelism of the query service.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// A query running longer than this is cancelled.
    pub timeout: Duration,
    /// Memory DataFusion operators may use, in bytes, over all running queries.
    pub memory_limit: usize,
    /// Most rows one result may carry.
    pub max_result_rows: usize,
    /// Threads of the query runtime (and DataFusion target partitions).
    pub threads: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            memory_limit: 2 << 30,
            max_result_rows: 1_000_000,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// A query's result.
#[derive(Debug, Clone)]
pub struct QueryOutput {
    /// Result schema.
    pub schema: SchemaRef,
    /// Result rows.
    pub batches: Vec<RecordBatch>,
}

impl QueryOutput {
    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

/// Runs read-only SQL over the store.
pub struct QueryService {
    ctx: SessionContext,
    store: Store,
    config: QueryConfig,
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
    latency: Histogram,
    queries: Family<OutcomeLabel, Counter>,
}

impl QueryService {
    /// A query service over `store`'s tables, registering its metrics with `telemetry`.
    pub fn new(
        store: Store,
        config: QueryConfig,
        telemetry: &Telemetry,
    ) -> Result<Self, QueryError> {
        let runtime_env = RuntimeEnvBuilder::new()
            .with_memory_limit(config.memory_limit, 1.0)
            .build_arc()?;
        let session = SessionConfig::new()
            .with_target_partitions(config.threads.max(1))
            .with_information_schema(true);
        let ctx = SessionContext::new_with_config_rt(session, runtime_env);
        for t in Table::ALL {
            ctx.register_table(t.name(), Arc::new(ScryTable::new(t, store.clone())))?;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads.max(1))
            .thread_name("scry-query")
            .enable_all()
            .build()
            .map_err(|e| {
                QueryError::Execution(format!("could not start the query runtime: {e}"))
            })?;
        let latency = latency_histogram();
        let queries = Family::<OutcomeLabel, Counter>::default();
        telemetry.with_registry(|r| {
            r.register("scry_query_seconds", "SQL query latency", latency.clone());
            r.register("scry_queries", "SQL queries by outcome", queries.clone());
        });
        Ok(Self {
            ctx,
            store,
            config,
            runtime: Some(runtime),
            latency,
            queries,
        })
    }

    /// Reads every table through `enricher`'s [`Enricher::revise`], so derived columns (log
    /// templates) show their current values, as ingest with the same enricher would give now.
    pub fn revised_by(self, enricher: Arc<dyn Enricher>) -> Result<Self, QueryError> {
        for t in Table::ALL {
            let table = ScryTable::new(t, self.store.clone()).revised_by(Arc::clone(&enricher));
            self.ctx.deregister_table(t.name())?;
            self.ctx.register_table(t.name(), Arc::new(table))?;
        }
        Ok(self)
    }

    /// Runs one read-only statement and collects its result.
    pub async fn query(&self, sql: &str) -> Result<QueryOutput, QueryError> {
        let started = Instant::now();
        let result = self.run(sql).await;
        self.latency.observe(started.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        self.queries
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
        result
    }

    async fn run(&self, sql: &str) -> Result<QueryOutput, QueryError> {
        check_read_only(sql)?;
        let flag = Arc::new(CancelFlag::default());
        let ctx = self.ctx.clone();
        let sql = sql.to_string();
        let max_rows = self.config.max_result_rows;
        let runtime = self
            .runtime
            .as_ref()
            .expect("runtime lives as long as the service");
        let checks = Arc::clone(&flag);
        let task = runtime.spawn(async move { execute(&ctx, &sql, &checks, max_rows).await });
        let abort = task.abort_handle();
        match tokio::time::timeout(self.config.timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(QueryError::Execution(format!("query task failed: {join}"))),
            Err(_) => {
                flag.cancel();
                abort.abort();
                Err(QueryError::Timeout(self.config.timeout))
            }
        }
    }
}

impl Drop for QueryService {
    fn drop(&mut self) {
        // A runtime may not be dropped inside another runtime's context; let it wind down apart.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn execute(
    ctx: &SessionContext,
    sql: &str,
    flag: &Arc<CancelFlag>,
    max_rows: usize,
) -> Result<QueryOutput, QueryError> {
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx.sql_with_options(sql, options).await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let task_ctx = Arc::new(df.task_ctx());
    let plan = cancellable(df.create_physical_plan().await?, flag)?;
    let mut stream = execute_stream(plan, task_ctx)?;
    let mut batches = Vec::new();
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows();
        if rows > max_rows {
            return Err(QueryError::TooLarge(max_rows));
        }
        batches.push(batch);
    }
    Ok(QueryOutput { schema, batches })
}

/// Refuses anything but one query (SELECT/WITH/VALUES, EXPLAIN of one, SHOW, DESCRIBE).
pub fn check_read_only(sql: &str) -> Result<(), QueryError> {
    let statements = DFParser::parse_sql(sql).map_err(|e| QueryError::Invalid(e.to_string()))?;
    if statements.len() != 1 {
        return Err(QueryError::NotAllowed(format!(
            "exactly one statement per request, got {}",
            statements.len()
        )));
    }
    let stmt = &statements[0];
    let allowed = match stmt {
        Statement::Statement(s) => is_query(s),
        Statement::Explain(e) => {
            matches!(e.statement.as_ref(), Statement::Statement(s) if is_query(s))
        }
        Statement::CreateExternalTable(_) | Statement::CopyTo(_) | Statement::Reset(_) => false,
    };
    if allowed {
        Ok(())
    } else {
        let kind = stmt
            .to_string()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        Err(QueryError::NotAllowed(format!(
            "only read-only queries run here (SELECT, WITH, EXPLAIN, SHOW, DESCRIBE); refused: {kind}..."
        )))
    }
}

fn is_query(s: &SqlStatement) -> bool {
    matches!(
        s,
        SqlStatement::Query(_)
            | SqlStatement::ShowTables { .. }
            | SqlStatement::ShowColumns { .. }
            | SqlStatement::ExplainTable { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_queries_pass() {
        for ok in [
            "SELECT 1",
            "WITH a AS (SELECT 1) SELECT * FROM a",
            "EXPLAIN SELECT 1",
            "SHOW TABLES",
            "DESCRIBE spans",
        ] {
            assert!(check_read_only(ok).is_ok(), "{ok}");
        }
        for bad in [
            "CREATE TABLE t (a INT)",
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/etc'",
            "INSERT INTO spans VALUES (1)",
            "COPY spans TO '/tmp/x.parquet'",
            "SET datafusion.execution.batch_size = 1",
            "DROP TABLE spans",
            "SELECT 1; DROP TABLE spans",
        ] {
            assert!(
                matches!(check_read_only(bad), Err(QueryError::NotAllowed(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            check_read_only("SELEC 1"),
            Err(QueryError::Invalid(_))
        ));
    }
}
