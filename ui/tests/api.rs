//! The HTTP API in process: requests go through the axum router with `tower::ServiceExt::oneshot`
//! against a real store, query service, incident store and detection loop handle. Wire
//! compatibility with real clients is left to the end-to-end suite (tests/e2e).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use scry_collector::{ManualClock, Store, StoreConfig, Telemetry};
use scry_incident::IncidentStore;
use scry_pipeline::LoopHandle;
use scry_query::{QueryConfig, QueryService};
use scry_ui::{ApiState, router};
use serde_json::Value;
use tokio::sync::broadcast;
use tower::ServiceExt;

struct Api {
    _dir: tempfile::TempDir,
    state: ApiState,
}

fn api(clock: Option<Arc<ManualClock>>) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let telemetry = Arc::new(Telemetry::new());
    let store = Store::open(StoreConfig::new(dir.path()), Arc::clone(&telemetry)).unwrap();
    let query = QueryService::new(store.clone(), QueryConfig::default(), &telemetry).unwrap();
    let incidents = IncidentStore::open(&dir.path().join("incidents.db")).unwrap();
    let (events, _) = broadcast::channel(8);
    // No loop reads the requests: a manual handle's advance would wait; these tests only drive
    // a wall-clock handle.
    let (detection, _requests) = LoopHandle::new(events, clock);
    let state = ApiState {
        query: Arc::new(query),
        incidents: Arc::new(incidents),
        store,
        telemetry,
        ready: Arc::new(AtomicBool::new(true)),
        detection,
    };
    Api { _dir: dir, state }
}

async fn call(a: &Api, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = router(a.state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, json)
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an API error: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_answer_json_and_refuse_what_is_not_a_read() {
    let a = api(None);
    let (status, body) = call(&a, "POST", "/api/v1/query", r#"{"sql": "SELECT 1 AS one"}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["columns"][0]["name"], "one");
    assert_eq!(body["rows"][0]["one"], 1);

    let (status, body) = call(
        &a,
        "POST",
        "/api/v1/query",
        r#"{"sql": "DROP TABLE spans"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "statement_not_allowed");

    let (status, body) = call(&a, "POST", "/api/v1/query", "not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "invalid_request");

    let (status, body) = call(
        &a,
        "POST",
        "/api/v1/query",
        r#"{"sql": "SELECT * FROM nowhere"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_things_are_404_with_the_error_shape() {
    let a = api(None);
    let (status, body) = call(&a, "GET", "/api/v1/nothing-here", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
    let (status, body) = call(&a, "GET", "/api/v1/incidents/4242", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("4242"),
        "{body}"
    );
    let (status, body) = call(&a, "GET", "/api/v1/incidents", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["incidents"], Value::Array(vec![]));
    let (status, body) = call(&a, "GET", "/api/v1/anomalies?since=yesterday-ish", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "invalid_filter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_flag() {
    let a = api(None);
    let (status, _) = call(&a, "GET", "/readyz", "").await;
    assert_eq!(status, StatusCode::OK);
    a.state.ready.store(false, Ordering::Relaxed);
    let (status, body) = call(&a, "GET", "/readyz", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&body), "not_ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_is_driven_only_when_manual_and_only_forward() {
    let wall = api(None);
    let (status, body) = call(&wall, "POST", "/api/v1/admin/clock", r#"{"now_ns": 5}"#).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&body), "clock_not_manual");

    let manual = api(Some(Arc::new(ManualClock::new(100))));
    let (status, body) = call(&manual, "POST", "/api/v1/admin/clock", r#"{"now_ns": 50}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "clock_backwards");
    let (status, body) = call(&manual, "POST", "/api/v1/admin/clock", r#"{"when": 50}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "invalid_request");
}
