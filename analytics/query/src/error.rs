//! Errors of the query service.

use std::time::Duration;

/// Why a query produced no result.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The statement is not a query (DDL, DML, COPY, SET, ...).
    #[error("statement not allowed: {0}")]
    NotAllowed(String),
    /// The SQL does not parse or plan.
    #[error("invalid query: {0}")]
    Invalid(String),
    /// The query ran longer than the configured timeout.
    #[error("query exceeded the timeout of {0:?}; narrow the time range or add filters")]
    Timeout(Duration),
    /// The query needed more memory than the configured limit.
    #[error("query exceeded its memory limit: {0}")]
    ResourcesExhausted(String),
    /// The result has more rows than a response may carry.
    #[error("result has more than {0} rows; add a LIMIT or aggregate")]
    TooLarge(usize),
    /// Anything else that went wrong while executing.
    #[error("query failed: {0}")]
    Execution(String),
}

impl QueryError {
    /// A short machine-readable code for API errors.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::NotAllowed(_) => "statement_not_allowed",
            QueryError::Invalid(_) => "invalid_query",
            QueryError::Timeout(_) => "query_timeout",
            QueryError::ResourcesExhausted(_) => "resources_exhausted",
            QueryError::TooLarge(_) => "result_too_large",
            QueryError::Execution(_) => "query_failed",
        }
    }
}

impl From<datafusion::error::DataFusionError> for QueryError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as E;
        match e.find_root() {
            E::ResourcesExhausted(m) => QueryError::ResourcesExhausted(m.clone()),
            E::SQL(..) | E::Plan(_) | E::SchemaError(..) | E::NotImplemented(_) => {
                QueryError::Invalid(e.find_root().to_string())
            }
            _ => QueryError::Execution(e.to_string()),
        }
    }
}
