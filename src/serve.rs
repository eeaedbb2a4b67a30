//! `scry serve`: opens the store, starts the receivers, the API and the background flusher, and
//! shuts them down in order on SIGINT/SIGTERM (the final flush persists everything in memory).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use scry_collector::receiver::{grpc, http};
use scry_collector::{Ingest, ManualClock, SharedClock, Store, Telemetry};
use scry_detect::Engine;
use scry_detect::logs::TemplateEnricher;
use scry_incident::{IncidentConfig, IncidentStore};
use scry_pipeline::{DetectionLoop, LoopParts};
use scry_query::QueryService;
use scry_ui::ApiState;
use std::future::IntoFuture;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{ClockKind, Settings};

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {what} listener to {addr}"))
}

/// Waits until the stop flag turns true.
async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn termination() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Runs the daemon until a termination signal.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    run_until(settings, termination()).await
}

/// Runs the daemon until `shutdown` resolves, then drains and flushes.
pub async fn run_until(
    mut settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let dir = &settings.store.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
    settings.store.data_dir = dir
        .canonicalize()
        .with_context(|| format!("resolving data dir {}", dir.display()))?;

    let telemetry = Arc::new(Telemetry::new());
    let store =
        Store::open(settings.store.clone(), Arc::clone(&telemetry)).context("opening the store")?;
    // One miner: ingest stores each log record's template, queries read it as it stands now.
    let templates = Arc::new(TemplateEnricher::default());
    let query = Arc::new(
        QueryService::new(store.clone(), settings.query.clone(), &telemetry)?
            .revised_by(Arc::clone(&templates) as _)?,
    );
    let incident_store = Arc::new(
        IncidentStore::open(&settings.store.data_dir.join("incidents.db"))
            .context("opening the incident store")?,
    );
    let detect_dir = settings.store.data_dir.join("detect");
    std::fs::create_dir_all(&detect_dir)
        .with_context(|| format!("creating {}", detect_dir.display()))?;
    let state_path = detect_dir.join("state.json");
    let (clock, manual): (SharedClock, _) = match settings.clock {
        ClockKind::Wall => (scry_collector::clock::wall(), None),
        ClockKind::Manual => {
            let c = Arc::new(ManualClock::new(0));
            (Arc::clone(&c) as SharedClock, Some(c))
        }
    };
    let engine = Arc::new(
        Engine::open(settings.detection.clone(), &state_path).with_clock(Arc::clone(&clock)),
    );
    let ingest = Ingest::new(store.clone(), Arc::clone(&telemetry))
        .with_enricher(templates)
        .with_observer(Arc::clone(&engine) as _);
    let detection = DetectionLoop::open(LoopParts {
        engine,
        store: store.clone(),
        query: Arc::clone(&query),
        incidents: Arc::clone(&incident_store),
        incident_config: IncidentConfig::default(),
        clock: Arc::clone(&clock),
        state_path: Some(state_path),
    })
    .context("starting the detection loop")?;
    let (handle, requests) = detection.handle(manual);

    let grpc_listener = bind(settings.otlp_grpc_addr, "OTLP/gRPC").await?;
    let http_listener = bind(settings.otlp_http_addr, "OTLP/HTTP").await?;
    let api_listener = bind(settings.http_addr, "API").await?;
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);

    let grpc_task = tokio::spawn(grpc::serve(
        grpc_listener,
        ingest.clone(),
        settings.limits,
        stopped(stop_rx.clone()),
    ));
    let otlp_http = http::router(ingest.clone(), settings.limits);
    let http_task = tokio::spawn(
        axum::serve(http_listener, otlp_http)
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future(),
    );
    let api = scry_ui::router(ApiState {
        query: Arc::clone(&query),
        incidents: Arc::clone(&incident_store),
        store: store.clone(),
        telemetry: Arc::clone(&telemetry),
        ready: Arc::clone(&ready),
        detection: handle,
    });
    let api_task = tokio::spawn(
        axum::serve(api_listener, api)
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future(),
    );
    let background = {
        let store = store.clone();
        let rx = stop_rx.clone();
        tokio::spawn(async move { store.run_background(clock, rx).await })
    };
    let detection = tokio::spawn(detection.run(requests, stop_rx.clone()));

    ready.store(true, Ordering::Relaxed);
    tracing::info!(
        otlp_grpc = %settings.otlp_grpc_addr,
        otlp_http = %settings.otlp_http_addr,
        api = %settings.http_addr,
        data_dir = %settings.store.data_dir.display(),
        clock = ?settings.clock,
        "scry is serving"
    );

    tokio::select! {
        _ = shutdown => tracing::info!("shutting down"),
        r = grpc_task => anyhow::bail!("OTLP/gRPC server stopped: {r:?}"),
    }
    ready.store(false, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let drain = async {
        let _ = http_task.await;
        let _ = api_task.await;
        let _ = background.await;
        let _ = detection.await;
    };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        tracing::warn!("servers did not drain within 10s; flushing anyway");
    }
    store.shutdown().await.context("final flush")?;
    tracing::info!("stopped cleanly");
    Ok(())
}
