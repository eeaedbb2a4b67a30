//! Incidents and their timelines in SQLite (`<data-dir>/incidents.db`), so they survive restarts.
//!
//! `incidents` holds one row per incident with its latest state as JSON; `incident_events` one row
//! per change (opened, updated, resolved) with the top candidate at that moment, which is the
//! incident's timeline.

use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use super::{Change, Incident};

/// Errors of the incident store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("incident store {what}: {source}")]
    Sqlite {
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: rusqlite::Error,
    },
    /// A stored incident could not be read back.
    #[error("incident {id} in the store is not valid JSON: {source}")]
    Corrupt {
        /// Its id.
        id: i64,
        /// The cause.
        source: serde_json::Error,
    },
}

fn sql(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { what, source }
}

/// The SQLite store of incidents.
pub struct IncidentStore {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY,
    opened_ns INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL,
    resolved_ns INTEGER,
    top_service TEXT,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS incident_events (
    incident_id INTEGER NOT NULL,
    time_ns INTEGER NOT NULL,
    change TEXT NOT NULL,
    top_service TEXT,
    top_score REAL,
    services TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incident_events_by_incident ON incident_events (incident_id, time_ns);
";

fn iso(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl IncidentStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(sql("open"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql("set WAL mode"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql("set synchronous"))?;
        conn.execute_batch(SCHEMA).map_err(sql("create tables"))?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// The highest incident id stored (0 when none).
    pub fn last_id(&self) -> Result<u64, StoreError> {
        let id: Option<i64> = self
            .conn
            .lock()
            .query_row("SELECT max(id) FROM incidents", [], |r| r.get(0))
            .map_err(sql("read the last id"))?;
        Ok(id.unwrap_or(0).max(0) as u64)
    }

    /// Incidents not resolved, to continue after a restart.
    pub fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn
            .prepare("SELECT id, body FROM incidents WHERE resolved_ns IS NULL ORDER BY id")
            .map_err(sql("list open incidents"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(sql("list open incidents"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, body) = row.map_err(sql("read an open incident"))?;
            out.push(
                serde_json::from_str(&body).map_err(|source| StoreError::Corrupt { id, source })?,
            );
        }
        Ok(out)
    }

    /// Records a change of `incident`: its new state and a timeline entry.
    pub fn record(&self, change: Change, incident: &Incident) -> Result<(), StoreError> {
        let body = serde_json::to_string(incident).expect("incidents serialize");
        let top = incident.top();
        let services = serde_json::to_string(&incident.services).expect("names serialize");
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(sql("begin"))?;
        tx.execute(
            "INSERT INTO incidents (id, opened_ns, updated_ns, resolved_ns, top_service, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(id) DO UPDATE SET opened_ns = ?2, updated_ns = ?3, resolved_ns = ?4,
               top_service = ?5, body = ?6",
            params![
                incident.id as i64,
                incident.opened_ns,
                incident.updated_ns,
                incident.resolved_ns,
                top.map(|c| c.service.clone()),
                body
            ],
        )
        .map_err(sql("write an incident"))?;
        let time = incident.resolved_ns.unwrap_or(incident.updated_ns);
        tx.execute(
            "INSERT INTO incident_events (incident_id, time_ns, change, top_service, top_score, services)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![incident.id as i64, time, change.as_str(), top.map(|c| c.service.clone()),
                top.map(|c| c.score), services],
        )
        .map_err(sql("write a timeline entry"))?;
        tx.commit().map_err(sql("commit"))
    }

    /// Summaries of the latest `limit` incidents, newest first; `open` filters by state.
    pub fn list(&self, open: Option<bool>, limit: usize) -> Result<Vec<Value>, StoreError> {
        let conn = self.conn.lock();
        let filter = match open {
            Some(true) => "WHERE resolved_ns IS NULL",
            Some(false) => "WHERE resolved_ns IS NOT NULL",
            None => "",
        };
        let mut stmt = conn
            .prepare(&format!(
                "SELECT id, body FROM incidents {filter} ORDER BY id DESC LIMIT ?1"
            ))
            .map_err(sql("list incidents"))?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(sql("list incidents"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, body) = row.map_err(sql("read an incident"))?;
            let inc: Incident =
                serde_json::from_str(&body).map_err(|source| StoreError::Corrupt { id, source })?;
            out.push(summary(&inc));
        }
        Ok(out)
    }

    /// One incident with its ranking, timeline and evidence; `None` when there is no such id.
    pub fn get(&self, id: u64) -> Result<Option<Value>, StoreError> {
        let conn = self.conn.lock();
        let body: Option<String> = conn
            .query_row(
                "SELECT body FROM incidents WHERE id = ?1",
                [id as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("read an incident"))?;
        let Some(body) = body else { return Ok(None) };
        let inc: Incident = serde_json::from_str(&body).map_err(|source| StoreError::Corrupt {
            id: id as i64,
            source,
        })?;
        let mut stmt = conn
            .prepare(
                "SELECT time_ns, change, top_service, top_score, services FROM incident_events
                      WHERE incident_id = ?1 ORDER BY time_ns, rowid",
            )
            .map_err(sql("read a timeline"))?;
        let timeline: Vec<Value> = stmt
            .query_map([id as i64], |r| {
                let services: String = r.get(4)?;
                Ok(json!({
                    "time": iso(r.get(0)?),
                    "change": r.get::<_, String>(1)?,
                    "top_service": r.get::<_, Option<String>>(2)?,
                    "top_score": r.get::<_, Option<f64>>(3)?,
                    "services": serde_json::from_str::<Value>(&services).unwrap_or(Value::Null),
                }))
            })
            .map_err(sql("read a timeline"))?
            .collect::<Result<_, _>>()
            .map_err(sql("read a timeline"))?;
        let mut out = summary(&inc);
        out["ranking"] = serde_json::to_value(&inc.ranking).expect("ranking serializes");
        out["timeline"] = Value::Array(timeline);
        out["anomalies"] = serde_json::to_value(&inc.anomalies).expect("anomalies serialize");
        Ok(Some(out))
    }
}

/// The list view of an incident.
fn summary(inc: &Incident) -> Value {
    json!({
        "id": inc.id,
        "status": if inc.resolved_ns.is_some() { "resolved" } else { "open" },
        "opened": iso(inc.opened_ns),
        "updated": iso(inc.updated_ns),
        "resolved": inc.resolved_ns.map(iso),
        "services": inc.services,
        "anomalies": inc.anomalies.len(),
        "top_root_cause": inc.top().map(|c| json!({"service": c.service, "score": c.score, "evidence": c.evidence})),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rank::tests::{anomaly, chain};
    use crate::{IncidentConfig, Tracker};
    use scry_detect::signals::Signal;

    #[test]
    fn incidents_and_timelines_survive_reopening_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("incidents.db");
        let store = IncidentStore::open(&path).unwrap();
        let mut t = Tracker::new(IncidentConfig::default(), store.last_id().unwrap());
        let s = 1_000_000_000;
        let changes = t.update(
            11 * s,
            vec![
                anomaly(
                    "payment",
                    Signal::Traces,
                    "latency_p99",
                    "POST /pay",
                    10 * s,
                    0.99,
                ),
                anomaly("payment", Signal::Logs, "error_logs", "", 10 * s, 0.9),
            ],
            &chain(),
        );
        for (c, inc) in &changes {
            store.record(*c, inc).unwrap();
        }
        drop(store);
        let store = IncidentStore::open(&path).unwrap();
        assert_eq!(store.last_id().unwrap(), 1);
        let open = store.open_incidents().unwrap();
        assert_eq!(open.len(), 1);
        let detail = store.get(1).unwrap().unwrap();
        assert_eq!(detail["top_root_cause"]["service"], "payment");
        assert_eq!(detail["timeline"][0]["change"], "opened");
        assert_eq!(store.list(Some(true), 10).unwrap().len(), 1);
        assert!(store.get(2).unwrap().is_none());
    }
}
