//! OTLP/gRPC load generator for `scry bench ingest`: sends pre-encoded trace exports of realistic
//! spans so the client spends its CPU on sending, not on encoding, and records ack latencies.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::otlp::{self, int, text};

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// gRPC endpoint, e.g. `http://127.0.0.1:4317`.
    pub endpoint: String,
    /// Spans to send in all.
    pub total_spans: u64,
    /// Spans per export request.
    pub batch_size: usize,
    /// Concurrent senders, each on its own connection.
    pub concurrency: usize,
}

/// What was measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Spans acknowledged.
    pub spans: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Acknowledgement latencies, sorted.
    pub latencies: Vec<Duration>,
    /// Bytes of protobuf sent.
    pub bytes_sent: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
}

impl LoadReport {
    /// Spans acknowledged per second.
    pub fn spans_per_sec(&self) -> f64 {
        self.spans as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency at quantile `q` (0..1).
    pub fn latency(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[i]
    }
}

const SERVICES: [&str; 8] = [
    "frontend",
    "cart",
    "checkout",
    "payment",
    "inventory",
    "shipping",
    "auth",
    "search",
];
const ROUTES: [&str; 6] = [
    "/",
    "/cart",
    "/checkout",
    "/api/items/{id}",
    "/api/pay",
    "/login",
];

/// One export request of `n` spans in the shape real HTTP services produce.
pub fn make_request(n: usize, seed: u64) -> ExportTraceServiceRequest {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let service = SERVICES[(seed as usize) % SERVICES.len()];
    let spans = (0..n)
        .map(|i| {
            let r = rand();
            let trace = (u128::from(r) << 64 | u128::from(rand())).max(1);
            let route = ROUTES[(r % ROUTES.len() as u64) as usize];
            let status = if r % 50 == 0 { 500 } else { 200 };
            let start = now - 5_000_000_000 + (i as u64) * 1000;
            Span {
                trace_id: trace.to_be_bytes().to_vec(),
                span_id: rand().max(1).to_be_bytes().to_vec(),
                parent_span_id: if i % 3 == 0 {
                    Vec::new()
                } else {
                    rand().max(1).to_be_bytes().to_vec()
                },
                name: format!("GET {route}"),
                kind: 2,
                start_time_unix_nano: start,
                end_time_unix_nano: start + 100_000 + r % 50_000_000,
                attributes: vec![
                    text("http.request.method", "GET"),
                    text("http.route", route),
                    int("http.response.status_code", status),
                    text("server.address", "10.0.0.12"),
                    int("server.port", 8080),
                    text("url.scheme", "http"),
                    text("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
                    text("network.protocol.version", "1.1"),
                ],
                status: Some(Status {
                    code: if status == 500 { 2 } else { 0 },
                    message: String::new(),
                }),
                ..Default::default()
            }
        })
        .collect();
    let resource = otlp::service(
        service,
        [
            text("service.version", "1.4.2"),
            text("deployment.environment", "bench"),
            text("host.name", "bench-host-1"),
        ],
    );
    otlp::trace_request([(resource, spans)], None)
}

/// Sends pre-encoded bytes and ignores the response body (only the status matters here).
#[derive(Clone, Copy, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

const TRACE_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Runs the load and reports; connection failures are returned, request failures counted.
pub async fn run(config: &LoadConfig) -> Result<LoadReport, tonic::transport::Error> {
    let payloads: Arc<Vec<Bytes>> = Arc::new(
        (0..32)
            .map(|s| Bytes::from(make_request(config.batch_size, s).encode_to_vec()))
            .collect(),
    );
    let started = Instant::now();
    let requests = config.total_spans.div_ceil(config.batch_size as u64);
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..config.concurrency.max(1) {
        let channel = tonic::transport::Endpoint::from_shared(config.endpoint.clone())?
            .tcp_nodelay(true)
            .connect()
            .await?;
        let (payloads, next) = (Arc::clone(&payloads), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            let mut grpc = tonic::client::Grpc::new(channel);
            let mut stats = (Vec::new(), 0u64, 0u64, None::<String>);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let body = payloads[(i % payloads.len() as u64) as usize].clone();
                let len = body.len() as u64;
                let started = Instant::now();
                let sent = async {
                    grpc.ready()
                        .await
                        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                    let path = http::uri::PathAndQuery::from_static(TRACE_EXPORT);
                    grpc.unary::<Bytes, Bytes, _>(tonic::Request::new(body), path, RawCodec)
                        .await
                };
                match sent.await {
                    Ok(_) => {
                        stats.0.push(started.elapsed());
                        stats.2 += len;
                    }
                    Err(status) => {
                        stats.1 += 1;
                        stats.3.get_or_insert_with(|| status.to_string());
                    }
                }
            }
            stats
        }));
    }
    let mut report = LoadReport {
        spans: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        bytes_sent: 0,
        first_error: None,
    };
    for w in workers {
        let (lat, errors, bytes, first) = w.await.expect("load worker panicked");
        report.latencies.extend(lat);
        report.errors += errors;
        report.bytes_sent += bytes;
        report.first_error = report.first_error.or(first);
    }
    report.elapsed = started.elapsed();
    report.spans = (report.latencies.len() * config.batch_size) as u64;
    report.latencies.sort_unstable();
    Ok(report)
}
