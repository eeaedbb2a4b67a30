//! The service graph the detection loop hands to incident tracking, read by SQL from the stored
//! spans.

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;

use scry_incident::{Edge, Graph, edges_sql};
use scry_query::QueryService;

/// The service graph of spans since `since_ns`, read with [`edges_sql`]; empty if the query
/// fails (grouping then falls back to same-service and shared-trace links).
pub async fn load_graph(query: &QueryService, since_ns: i64) -> Graph {
    match query.query(&edges_sql(since_ns)).await {
        Ok(out) => {
            let mut edges = Vec::new();
            for b in &out.batches {
                let (Some(caller), Some(callee)) = (
                    b.column(0).as_string_opt::<i32>(),
                    b.column(1).as_string_opt::<i32>(),
                ) else {
                    continue;
                };
                let calls = b.column(2).as_primitive_opt::<Int64Type>();
                let errors = b.column(3).as_primitive_opt::<Int64Type>();
                let n = |c: Option<&arrow::array::Int64Array>, i: usize| {
                    c.filter(|c| c.is_valid(i))
                        .map_or(0.0, |c| c.value(i) as f64)
                };
                for i in 0..b.num_rows() {
                    edges.push(Edge {
                        caller: caller.value(i).to_string(),
                        callee: callee.value(i).to_string(),
                        calls: n(calls, i),
                        errors: n(errors, i),
                    });
                }
            }
            Graph::from_edges(&edges)
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read the service graph");
            Graph::default()
        }
    }
}

/// How far back the graph is read when anomalies arrive, ns.
pub const GRAPH_WINDOW_NS: i64 = 15 * 60 * 1_000_000_000;
