//! The vocabularies that are contracts: what a series measures ([`Measure`]) and which detector
//! found an anomaly ([`DetectorName`]). The ranking weighs evidence by them and the `anomalies`
//! table stores their names, so they are enums: renaming one is a compile error wherever it is
//! matched, not a silent change of a weight.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a derived series measures.
///
/// Equality, hashing and order go by [`as_str`](Measure::as_str), the name stored in the
/// `anomalies` table and in saved state; a metric keeps its own name.
#[derive(Clone, Debug)]
pub enum Measure {
    /// Spans per bucket of an operation (or of the service).
    Requests,
    /// Share of spans with status ERROR.
    ErrorRate,
    /// Median span duration, ms.
    LatencyP50,
    /// 95th percentile span duration, ms.
    LatencyP95,
    /// 99th percentile span duration, ms.
    LatencyP99,
    /// A first error status of an operation (a novelty).
    NewErrorCode,
    /// Median time calls into the service spent outside its own spans, ms.
    CallGapP50,
    /// 95th percentile of the same, ms.
    CallGapP95,
    /// A service's RED vector judged at once (the multivariate model).
    Red,
    /// Log records per bucket of one severity group.
    Logs,
    /// Error-or-worse log records per bucket.
    ErrorLogs,
    /// Log records per bucket of one template.
    TemplateCount,
    /// A first log template (a novelty).
    NewTemplate,
    /// Lines of a log statement per span of an operation (or per line of the statement before).
    LogStatement,
    /// A metric, by its name (with a quantile suffix for histogram quantiles).
    Metric(String),
}

impl Measure {
    /// The latency quantiles of span series, with their quantile.
    pub const LATENCY: [(Measure, f64); 3] = [
        (Measure::LatencyP50, 0.50),
        (Measure::LatencyP95, 0.95),
        (Measure::LatencyP99, 0.99),
    ];

    /// The quantiles of the call gap (time a call spent outside its callee's span).
    pub const CALL_GAP: [(Measure, f64); 2] =
        [(Measure::CallGapP50, 0.50), (Measure::CallGapP95, 0.95)];

    /// The name stored in the `anomalies` table and in saved state.
    pub fn as_str(&self) -> &str {
        match self {
            Measure::Requests => "requests",
            Measure::ErrorRate => "error_rate",
            Measure::LatencyP50 => "latency_p50",
            Measure::LatencyP95 => "latency_p95",
            Measure::LatencyP99 => "latency_p99",
            Measure::NewErrorCode => "new_error_code",
            Measure::CallGapP50 => "call_gap_p50",
            Measure::CallGapP95 => "call_gap_p95",
            Measure::Red => "red",
            Measure::Logs => "logs",
            Measure::ErrorLogs => "error_logs",
            Measure::TemplateCount => "template_count",
            Measure::NewTemplate => "new_template",
            Measure::LogStatement => "log_statement",
            Measure::Metric(name) => name,
        }
    }

    /// The measure named `name`: one of scry's own, else a metric's.
    pub fn parse(name: &str) -> Measure {
        const OWN: [Measure; 14] = [
            Measure::Requests,
            Measure::ErrorRate,
            Measure::LatencyP50,
            Measure::LatencyP95,
            Measure::LatencyP99,
            Measure::NewErrorCode,
            Measure::CallGapP50,
            Measure::CallGapP95,
            Measure::Red,
            Measure::Logs,
            Measure::ErrorLogs,
            Measure::TemplateCount,
            Measure::NewTemplate,
            Measure::LogStatement,
        ];
        OWN.into_iter()
            .find(|m| m.as_str() == name)
            .unwrap_or_else(|| Measure::Metric(name.to_string()))
    }

    /// Whether it is a quantile of the call gap.
    pub fn is_call_gap(&self) -> bool {
        matches!(self, Measure::CallGapP50 | Measure::CallGapP95)
    }

    /// Whether it is a span latency quantile.
    pub fn is_latency(&self) -> bool {
        matches!(
            self,
            Measure::LatencyP50 | Measure::LatencyP95 | Measure::LatencyP99
        )
    }
}

impl PartialEq for Measure {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Measure {}

impl Hash for Measure {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for Measure {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Measure {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Measure {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Measure {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(Measure::parse(&name))
    }
}

/// Which detector found an anomaly (the `anomalies.detector` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorName {
    /// Exponentially weighted mean and spread.
    Ewma,
    /// A shift of the recent median against the longer history.
    LevelShift,
    /// The same time of the previous periods.
    Seasonal,
    /// A service's RED vector against its principal components.
    Pca,
    /// Something never seen before (a template, an error code).
    Novelty,
    /// Log statements per span against their binomial/negative-binomial expectation.
    Statements,
    /// A young series against the same measure of every other service.
    Peers,
}

impl DetectorName {
    /// The name stored in the `anomalies` table.
    pub fn as_str(self) -> &'static str {
        match self {
            DetectorName::Ewma => "ewma",
            DetectorName::LevelShift => "level_shift",
            DetectorName::Seasonal => "seasonal",
            DetectorName::Pca => "pca",
            DetectorName::Novelty => "novelty",
            DetectorName::Statements => "statements",
            DetectorName::Peers => "peers",
        }
    }
}

impl fmt::Display for DetectorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_metrics_keep_theirs() {
        for name in [
            "requests",
            "latency_p99",
            "log_statement",
            "red",
            "CpuUsageRate",
        ] {
            assert_eq!(Measure::parse(name).as_str(), name);
        }
        assert_eq!(Measure::parse("latency_p95"), Measure::LatencyP95);
        assert!(matches!(Measure::parse("CpuUsage"), Measure::Metric(_)));
        let json = serde_json::to_string(&Measure::ErrorLogs).unwrap();
        assert_eq!(json, "\"error_logs\"");
        assert_eq!(
            serde_json::from_str::<Measure>(&json).unwrap(),
            Measure::ErrorLogs
        );
    }

    #[test]
    fn order_is_the_order_of_names() {
        let mut v = [
            Measure::Requests,
            Measure::ErrorLogs,
            Measure::Metric("a".into()),
        ];
        v.sort();
        let names: Vec<&str> = v.iter().map(Measure::as_str).collect();
        assert_eq!(names, ["a", "error_logs", "requests"]);
    }

    #[test]
    fn detector_names_are_the_stored_ones() {
        let json = serde_json::to_string(&DetectorName::LevelShift).unwrap();
        assert_eq!(json, "\"level_shift\"");
        assert_eq!(DetectorName::LevelShift.as_str(), "level_shift");
    }
}
