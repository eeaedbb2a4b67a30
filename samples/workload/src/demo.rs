//! The driver of `scry demo`: the simulated system sends real OTLP over gRPC to a daemon, first a
//! few minutes of fault-free history (with past timestamps, so the detectors are warm at once),
//! then live traffic with a fault from the catalogue every so often. It prints where it injects
//! and, as incidents open, their top root cause, read from the daemon's API (which knows nothing
//! of the injected faults).

use std::collections::BTreeSet;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tonic::transport::Channel;

use crate::system::{Batch, Fault, FaultKind, System};

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The daemon's OTLP/gRPC port did not answer.
    #[error("connecting to the daemon's OTLP/gRPC port {0}: {1}")]
    Connect(std::net::SocketAddr, String),
    /// The daemon's API did not report ready.
    #[error("the daemon did not become ready within 60 s")]
    NotReady,
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Http(String),
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

fn clock() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

struct Clients {
    traces: TraceServiceClient<Channel>,
    logs: LogsServiceClient<Channel>,
    metrics: MetricsServiceClient<Channel>,
}

impl Clients {
    async fn connect(addr: std::net::SocketAddr) -> Result<Self, DemoError> {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .map_err(|e| DemoError::Connect(addr, e.to_string()))?
            .connect()
            .await
            .map_err(|e| DemoError::Connect(addr, e.to_string()))?;
        Ok(Self {
            traces: TraceServiceClient::new(channel.clone()),
            logs: LogsServiceClient::new(channel.clone()),
            metrics: MetricsServiceClient::new(channel),
        })
    }

    async fn send(&mut self, batch: &mut Batch) {
        let results = [
            self.traces.export(batch.traces()).await.err(),
            self.logs.export(batch.logs()).await.err(),
            self.metrics.export(batch.metrics()).await.err(),
        ];
        for e in results.into_iter().flatten() {
            tracing::warn!(error = %e, "demo export failed");
        }
    }
}

async fn wait_ready(http: &reqwest::Client, api: &str) -> Result<(), DemoError> {
    for _ in 0..600 {
        if http
            .get(format!("{api}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(DemoError::NotReady)
}

/// Prints incidents that opened since the last call.
async fn report_incidents(http: &reqwest::Client, api: &str, seen: &mut BTreeSet<u64>) {
    let Ok(resp) = http
        .get(format!("{api}/api/v1/incidents?limit=50"))
        .send()
        .await
    else {
        return;
    };
    let Ok(body) = resp.json::<serde_json::Value>().await else {
        return;
    };
    let Some(list) = body["incidents"].as_array() else {
        return;
    };
    for inc in list.iter().rev() {
        let Some(id) = inc["id"].as_u64() else {
            continue;
        };
        if !seen.insert(id) {
            continue;
        }
        let top = &inc["top_root_cause"];
        println!(
            "{}  incident #{id} opened: top root cause {} (score {:.2}); services {}; {api}/api/v1/incidents/{id}",
            clock(),
            top["service"].as_str().unwrap_or("?"),
            top["score"].as_f64().unwrap_or(0.0),
            inc["services"],
        );
    }
}

/// What the demo sends and where.
pub struct Plan {
    /// Seed of the simulation.
    pub seed: u64,
    /// Fault-free history sent first, in minutes.
    pub history_minutes: u64,
    /// A fault starts this often.
    pub every: Duration,
    /// Each fault lasts this long.
    pub lasting: Duration,
    /// `lasting` as the user wrote it, for the messages.
    pub lasting_text: String,
    /// The daemon's OTLP/gRPC address.
    pub grpc: std::net::SocketAddr,
    /// The daemon's API, e.g. `http://127.0.0.1:8080`.
    pub api: String,
}

/// Waits for the daemon, sends the history, then runs live until the task is dropped: a fault
/// every `every`, incidents printed as the daemon opens them.
pub async fn drive(plan: Plan) -> Result<(), DemoError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| DemoError::Http(e.to_string()))?;
    wait_ready(&http, &plan.api).await?;
    let mut clients = Clients::connect(plan.grpc).await?;
    let Plan {
        seed: _,
        history_minutes,
        every,
        lasting,
        lasting_text,
        grpc: _,
        api,
    } = &plan;
    let (every, lasting) = (*every, *lasting);
    let second = 1_000_000_000_i64;
    let now = now_ns() / second * second;
    let history = *history_minutes as i64 * 60 * second;
    let mut system = System::new(plan.seed, now - history);
    let mut batch = Batch::default();
    println!(
        "{}  sending {} minutes of fault-free history...",
        clock(),
        history_minutes
    );
    for t in (now - history..now).step_by(second as usize) {
        system.second(t, &[], &mut batch);
        if (t / second) % 10 == 9 {
            clients.send(&mut batch).await;
        }
    }
    clients.send(&mut batch).await;
    println!("{}  live traffic from now on", clock());
    let mut faults: Vec<Fault> = Vec::new();
    let mut next_fault = now + every.as_nanos() as i64;
    let mut kind = 0usize;
    let mut seen = BTreeSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut t = now;
    loop {
        tick.tick().await;
        let wall = now_ns();
        if wall >= next_fault {
            let fault = system.pick_fault(
                FaultKind::ALL[kind % FaultKind::ALL.len()],
                wall,
                lasting.as_nanos() as i64,
            );
            println!(
                "{}  injecting {} into {} for {}",
                clock(),
                fault.kind.name(),
                fault.service,
                lasting_text
            );
            faults.push(fault);
            kind += 1;
            next_fault = wall + every.as_nanos() as i64;
        }
        faults.retain(|f| f.end_ns > wall - 60 * second);
        while t + second <= wall {
            system.second(t, &faults, &mut batch);
            t += second;
        }
        clients.send(&mut batch).await;
        if (t / second) % 5 == 0 {
            report_incidents(&http, api, &mut seen).await;
        }
    }
}
