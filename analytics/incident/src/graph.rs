//! The service dependency graph: caller → callee edges between services.

use std::collections::{BTreeMap, BTreeSet};

/// How far before a child a parent span may start and still be joined (a long-running parent).
const PARENT_SLACK_NS: i64 = 300_000_000_000;

/// SQL of the service graph over spans starting at or after `since` (ns): rows of (caller,
/// callee, calls, errors, avg_ms, p99_ms). An edge is a parent span and its child span of the same
/// trace in different services; stats are the callee side's.
pub fn edges_sql(since: i64) -> String {
    let parents = since.saturating_sub(PARENT_SLACK_NS);
    format!(
        "SELECT p.service_name AS caller, c.service_name AS callee, count(*) AS calls, \
         sum(CASE WHEN c.status_code = 'ERROR' THEN 1 ELSE 0 END) AS errors, \
         avg(c.duration_ns) / 1e6 AS avg_ms, \
         approx_percentile_cont(c.duration_ns, 0.99) / 1e6 AS p99_ms \
         FROM spans c JOIN spans p ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id \
         WHERE c.time >= to_timestamp_nanos({since}) AND p.time >= to_timestamp_nanos({parents}) \
         AND c.service_name <> p.service_name \
         GROUP BY p.service_name, c.service_name ORDER BY calls DESC, caller, callee"
    )
}

/// One caller → callee edge with the callee side's stats.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// The calling service.
    pub caller: String,
    /// The called service.
    pub callee: String,
    /// Calls in the window.
    pub calls: f64,
    /// Failed calls in the window.
    pub errors: f64,
}

/// Adjacency of services, both ways.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    callees: BTreeMap<String, BTreeSet<String>>,
    callers: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    /// The graph of `edges` (self-calls are ignored).
    pub fn from_edges<'a>(edges: impl IntoIterator<Item = &'a Edge>) -> Self {
        let mut g = Graph::default();
        for e in edges.into_iter().filter(|e| e.caller != e.callee) {
            g.callees
                .entry(e.caller.clone())
                .or_default()
                .insert(e.callee.clone());
            g.callers
                .entry(e.callee.clone())
                .or_default()
                .insert(e.caller.clone());
        }
        g
    }

    /// Services `service` calls.
    pub fn callees(&self, service: &str) -> impl Iterator<Item = &String> {
        self.callees.get(service).into_iter().flatten()
    }

    /// Services that call `service`.
    pub fn callers(&self, service: &str) -> impl Iterator<Item = &String> {
        self.callers.get(service).into_iter().flatten()
    }

    /// Services `service` calls directly or through others (not `service` itself).
    pub fn downstream(&self, service: &str) -> BTreeSet<&String> {
        let mut seen: BTreeSet<&String> = BTreeSet::new();
        let mut stack: Vec<&String> = self.callees(service).collect();
        while let Some(s) = stack.pop() {
            if s != service && seen.insert(s) {
                stack.extend(self.callees(s));
            }
        }
        seen
    }

    /// Whether one of the two calls the other.
    pub fn adjacent(&self, a: &str, b: &str) -> bool {
        self.callees(a).any(|s| s == b) || self.callees(b).any(|s| s == a)
    }

    /// The longest chain of callers from `from` through services in `within` (`from` first):
    /// the way a fault at `from` travelled up to the services that noticed it.
    pub fn caller_chain(&self, from: &str, within: &BTreeSet<String>) -> Vec<String> {
        let mut previous: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([from.to_string()]);
        let mut seen = BTreeSet::from([from.to_string()]);
        let mut deepest = from.to_string();
        while let Some(s) = queue.pop_front() {
            deepest = s.clone();
            for c in self.callers(&s).filter(|c| within.contains(*c)) {
                if seen.insert(c.clone()) {
                    previous.insert(c.clone(), s.clone());
                    queue.push_back(c.clone());
                }
            }
        }
        let mut path = vec![deepest.clone()];
        while let Some(p) = previous.get(path.last().expect("non-empty")) {
            path.push(p.clone());
        }
        path.reverse();
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(caller: &str, callee: &str) -> Edge {
        Edge {
            caller: caller.into(),
            callee: callee.into(),
            calls: 10.0,
            errors: 0.0,
        }
    }

    #[test]
    fn adjacency_and_caller_paths() {
        let edges = [edge("web", "cart"), edge("cart", "db"), edge("web", "web")];
        let g = Graph::from_edges(&edges);
        assert!(g.adjacent("db", "cart") && !g.adjacent("web", "db"));
        assert_eq!(g.callees("web").count(), 1);
        let all = BTreeSet::from(["web".to_string(), "cart".to_string(), "db".to_string()]);
        assert_eq!(g.caller_chain("db", &all), ["db", "cart", "web"]);
        let without_cart = BTreeSet::from(["web".to_string(), "db".to_string()]);
        assert_eq!(g.caller_chain("db", &without_cart), ["db"]);
    }

    #[test]
    fn downstream_follows_calls_through_services_and_stops_at_cycles() {
        let edges = [
            edge("web", "cart"),
            edge("cart", "db"),
            edge("db", "cart"),
            edge("search", "index"),
        ];
        let g = Graph::from_edges(&edges);
        let names = |s: BTreeSet<&String>| s.into_iter().cloned().collect::<Vec<_>>();
        assert_eq!(names(g.downstream("web")), ["cart", "db"]);
        assert_eq!(names(g.downstream("cart")), ["db"]);
        assert!(g.downstream("index").is_empty());
    }
}
