//! Settings of `scry serve`: defaults, then the TOML config file, then `SCRY_*` environment
//! variables, then flags (each overriding the one before).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use scry_collector::{ReceiverLimits, StoreConfig};
use scry_detect::DetectionConfig;
use scry_query::QueryConfig;
use serde::Deserialize;

/// Flags of `scry serve`; each also reads a `SCRY_*` environment variable.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML config file (see samples/scry.toml).
    #[arg(long, env = "SCRY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for everything scry persists [default: ./scry-data].
    #[arg(long, env = "SCRY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address [default: 127.0.0.1:4317].
    #[arg(long, env = "SCRY_OTLP_GRPC_ADDR")]
    pub otlp_grpc_addr: Option<SocketAddr>,
    /// OTLP/HTTP listen address [default: 127.0.0.1:4318].
    #[arg(long, env = "SCRY_OTLP_HTTP_ADDR")]
    pub otlp_http_addr: Option<SocketAddr>,
    /// API and UI listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "SCRY_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Flush memory to Parquet at least this often, e.g. `10m` [default: 10m].
    #[arg(long, env = "SCRY_FLUSH_INTERVAL")]
    pub flush_interval: Option<String>,
    /// Flush when this many bytes of Arrow data are in memory [default: 268435456].
    #[arg(long, env = "SCRY_FLUSH_BYTES")]
    pub flush_bytes: Option<u64>,
    /// Refuse exports (retryably) above this many buffered bytes [default: 2147483648].
    #[arg(long, env = "SCRY_MAX_BUFFERED_BYTES")]
    pub max_buffered_bytes: Option<u64>,
    /// Largest export request body, after decompression [default: 16777216].
    #[arg(long, env = "SCRY_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Delete data older than this, e.g. `7d`; `0` keeps everything [default: 7d].
    #[arg(long, env = "SCRY_RETENTION")]
    pub retention: Option<String>,
    /// Cancel SQL queries running longer than this [default: 30s].
    #[arg(long, env = "SCRY_QUERY_TIMEOUT")]
    pub query_timeout: Option<String>,
    /// Memory SQL queries may use, in bytes [default: 2147483648].
    #[arg(long, env = "SCRY_QUERY_MEMORY_LIMIT")]
    pub query_memory_limit: Option<usize>,
    /// How often anomaly detection runs, e.g. `5s` [default: 5s].
    #[arg(long, env = "SCRY_DETECTION_INTERVAL")]
    pub detection_interval: Option<String>,
    /// Width of the buckets of derived series, e.g. `10s` [default: 10s].
    #[arg(long, env = "SCRY_DETECTION_BUCKET")]
    pub detection_bucket: Option<String>,
    /// Anomalies scoring below this (0..1) are not recorded [default: 0.5].
    #[arg(long, env = "SCRY_DETECTION_MIN_SCORE")]
    pub detection_min_score: Option<f64>,
    /// `wall`, or `manual` to replay recorded telemetry: time stands still until a driver sets it
    /// with `POST /api/v1/admin/clock`, which runs one detection cycle there [default: wall].
    #[arg(long, env = "SCRY_CLOCK", value_enum)]
    pub clock: Option<ClockKind>,
}

/// Which clock the daemon's detection, incidents and retention read.
#[derive(clap::ValueEnum, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClockKind {
    /// The system clock.
    #[default]
    Wall,
    /// Set by a driver through the API (replays, tests).
    Manual,
}

/// The config file's shape.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    otlp_grpc_addr: Option<SocketAddr>,
    otlp_http_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    clock: Option<ClockKind>,
    #[serde(default)]
    storage: FileStorage,
    #[serde(default)]
    limits: FileLimits,
    #[serde(default)]
    query: FileQuery,
    #[serde(default)]
    detection: FileDetection,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileDetection {
    interval: Option<String>,
    bucket: Option<String>,
    lateness: Option<String>,
    min_score: Option<f64>,
    max_series: Option<usize>,
    warm_up_buckets: Option<u64>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileStorage {
    flush_interval: Option<String>,
    flush_bytes: Option<u64>,
    max_buffered_bytes: Option<u64>,
    retention: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_request_bytes: Option<usize>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileQuery {
    timeout: Option<String>,
    memory_limit: Option<usize>,
    max_result_rows: Option<usize>,
}

/// Everything `scry serve` needs, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub otlp_grpc_addr: SocketAddr,
    pub otlp_http_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub store: StoreConfig,
    pub limits: ReceiverLimits,
    pub query: QueryConfig,
    pub detection: DetectionConfig,
    pub clock: ClockKind,
}

fn duration(what: &str, text: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(text.trim())
        .with_context(|| format!("{what}: {text:?} is not a duration like 30s, 10m or 7d"))
}

impl Settings {
    /// Merges defaults, the config file, the environment and flags.
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Settings> {
        let detection_args = (
            args.detection_interval.clone(),
            args.detection_bucket.clone(),
            args.detection_min_score,
        );
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./scry-data"));
        let mut store = StoreConfig::new(data_dir);
        if let Some(t) = args.flush_interval.or(file.storage.flush_interval) {
            store.flush_interval = duration("flush interval", &t)?;
        }
        if let Some(b) = args.flush_bytes.or(file.storage.flush_bytes) {
            store.flush_bytes = b;
        }
        if let Some(b) = args.max_buffered_bytes.or(file.storage.max_buffered_bytes) {
            store.max_buffered_bytes = b;
        }
        if let Some(r) = args.retention.or(file.storage.retention) {
            let r = r.trim();
            store.retention = if r == "0" {
                None
            } else {
                Some(duration("retention", r)?)
            };
        }
        let mut limits = ReceiverLimits::default();
        if let Some(m) = args.max_request_bytes.or(file.limits.max_request_bytes) {
            if m == 0 {
                bail!("max request bytes must be positive");
            }
            limits.max_request_bytes = m;
        }
        let mut query = QueryConfig::default();
        if let Some(t) = args.query_timeout.or(file.query.timeout) {
            query.timeout = duration("query timeout", &t)?;
        }
        if let Some(m) = args.query_memory_limit.or(file.query.memory_limit) {
            query.memory_limit = m;
        }
        if let Some(m) = file.query.max_result_rows {
            query.max_result_rows = m;
        }
        let detection = detection(detection_args, file.detection)?;
        let clock = args.clock.or(file.clock).unwrap_or_default();
        let addr = |s: &str| s.parse::<SocketAddr>().expect("default address parses");
        Ok(Settings {
            otlp_grpc_addr: args
                .otlp_grpc_addr
                .or(file.otlp_grpc_addr)
                .unwrap_or_else(|| addr("127.0.0.1:4317")),
            otlp_http_addr: args
                .otlp_http_addr
                .or(file.otlp_http_addr)
                .unwrap_or_else(|| addr("127.0.0.1:4318")),
            http_addr: args
                .http_addr
                .or(file.http_addr)
                .unwrap_or_else(|| addr("127.0.0.1:8080")),
            store,
            limits,
            query,
            detection,
            clock,
        })
    }
}

/// Detection settings from (interval, bucket, min score) flags and the file.
fn detection(
    (interval, bucket, min_score): (Option<String>, Option<String>, Option<f64>),
    file: FileDetection,
) -> anyhow::Result<DetectionConfig> {
    let mut d = DetectionConfig::default();
    if let Some(t) = interval.or(file.interval) {
        d.interval = duration("detection interval", &t)?;
    }
    if let Some(t) = bucket.or(file.bucket) {
        d.signals.bucket = duration("detection bucket", &t)?;
    }
    if let Some(t) = file.lateness {
        d.signals.lateness = duration("detection lateness", &t)?;
    }
    if d.interval.is_zero() || d.signals.bucket.is_zero() {
        bail!("detection interval and bucket must be positive");
    }
    if let Some(m) = min_score.or(file.min_score) {
        if !(0.0..=1.0).contains(&m) {
            bail!("detection min score must be within 0..1, got {m}");
        }
        d.min_score = m;
    }
    if let Some(m) = file.max_series {
        d.signals.max_series = m;
    }
    if let Some(w) = file.warm_up_buckets {
        d.model.warm_up = w;
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scry.toml");
        std::fs::write(
            &path,
            "data_dir = \"/tmp/from-file\"\nhttp_addr = \"127.0.0.1:9000\"\n[storage]\nretention = \"2d\"\nflush_interval = \"1m\"\n[query]\ntimeout = \"5s\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            flush_interval: Some("30s".into()),
            ..Default::default()
        };
        let s = Settings::resolve(args).unwrap();
        assert_eq!(s.store.data_dir, PathBuf::from("/tmp/from-file"));
        assert_eq!(s.http_addr.port(), 9000);
        assert_eq!(s.otlp_grpc_addr.port(), 4317);
        assert_eq!(s.store.flush_interval, Duration::from_secs(30));
        assert_eq!(s.store.retention, Some(Duration::from_secs(2 * 86400)));
        assert_eq!(s.query.timeout, Duration::from_secs(5));
    }

    #[test]
    fn the_clock_comes_from_the_file_unless_a_flag_says_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scry.toml");
        std::fs::write(&path, "clock = \"manual\"\n").unwrap();
        let from_file = ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        assert_eq!(
            Settings::resolve(from_file).unwrap().clock,
            ClockKind::Manual
        );
        let flag = ServeArgs {
            config: Some(path),
            clock: Some(ClockKind::Wall),
            ..Default::default()
        };
        assert_eq!(Settings::resolve(flag).unwrap().clock, ClockKind::Wall);
        assert_eq!(
            Settings::resolve(ServeArgs::default()).unwrap().clock,
            ClockKind::Wall
        );
        std::fs::write(dir.path().join("bad.toml"), "clock = \"sundial\"\n").unwrap();
        let bad = ServeArgs {
            config: Some(dir.path().join("bad.toml")),
            ..Default::default()
        };
        assert!(Settings::resolve(bad).is_err());
    }

    #[test]
    fn detection_settings_come_from_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scry.toml");
        std::fs::write(
            &path,
            "[detection]\ninterval = \"2s\"\nbucket = \"1m\"\nmin_score = 0.7\nwarm_up_buckets = 12\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            detection_interval: Some("3s".into()),
            ..Default::default()
        };
        let d = Settings::resolve(args).unwrap().detection;
        assert_eq!(d.interval, Duration::from_secs(3));
        assert_eq!(d.signals.bucket, Duration::from_secs(60));
        assert_eq!(d.min_score, 0.7);
        assert_eq!(d.model.warm_up, 12);
        let args = ServeArgs {
            detection_min_score: Some(1.5),
            ..Default::default()
        };
        let err = Settings::resolve(args).unwrap_err().to_string();
        assert!(err.contains("min score"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let args = ServeArgs {
            retention: Some("soon".into()),
            ..Default::default()
        };
        let err = Settings::resolve(args).unwrap_err().to_string();
        assert!(err.contains("retention"), "{err}");
    }
}
