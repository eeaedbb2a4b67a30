//! The store: WAL, memtables and Parquet files of one data dir, tied together.
//!
//! Writes are framed on the caller's task, then handed to one writer thread that appends a whole
//! group of them to the WAL, fsyncs once (group commit), inserts their batches into the memtables
//! and only then acknowledges them. A flush asks the same thread to rotate the WAL and move the
//! memtables' batches aside in one step, so every row is in exactly one place a query looks at:
//! memory, or a committed Parquet file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::memtable::MemTable;
use crate::persist::{self, Manifest, ParquetFile};
use crate::schema::Table;
use crate::telemetry::{TableLabel, Telemetry};
use crate::wal::{self, Wal};

/// How the store persists and bounds its data.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Where everything lives.
    pub data_dir: PathBuf,
    /// Flush memory to Parquet at least this often (when there is anything to flush).
    pub flush_interval: Duration,
    /// Flush as soon as this many bytes of Arrow data are in memory.
    pub flush_bytes: u64,
    /// Refuse writes (retryably) while more than this many bytes are buffered.
    pub max_buffered_bytes: u64,
    /// Delete Parquet files whose newest row is older than this; `None` keeps everything.
    pub retention: Option<Duration>,
}

impl StoreConfig {
    /// Defaults for a data dir: flush every 10 minutes or 256 MiB, refuse writes over 2 GiB
    /// buffered, keep 7 days.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            flush_interval: Duration::from_secs(600),
            flush_bytes: 256 << 20,
            max_buffered_bytes: 2 << 30,
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

/// What a query sees of one table at one moment.
#[derive(Debug, Clone, Default)]
pub struct TableSnapshot {
    /// Rows still in memory.
    pub batches: Vec<RecordBatch>,
    /// Committed Parquet files (paths relative to the data dir).
    pub files: Vec<Arc<ParquetFile>>,
}

/// What one flush persisted.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FlushReport {
    /// Rows written, by table name.
    pub rows: std::collections::BTreeMap<String, u64>,
    /// Files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
}

struct Write {
    table: Table,
    batch: RecordBatch,
    frame: Vec<u8>,
    ack: oneshot::Sender<Result<(), String>>,
}

type Rotated = (u64, Vec<(Table, Vec<RecordBatch>)>);

enum Op {
    Write(Write),
    Rotate(oneshot::Sender<Result<Rotated, String>>),
}

#[derive(Default)]
struct TableState {
    mem: MemTable,
    files: Vec<Arc<ParquetFile>>,
}

struct FlushState {
    next_seq: u64,
    manifests: std::collections::BTreeMap<u64, Manifest>,
    last_flush: Instant,
}

struct Inner {
    config: StoreConfig,
    telemetry: Arc<Telemetry>,
    tables: [RwLock<TableState>; Table::ALL.len()],
    buffered: AtomicU64,
    tx: Mutex<Option<mpsc::Sender<Op>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    flush: tokio::sync::Mutex<FlushState>,
    closed: AtomicBool,
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// Largest group of writes one fsync commits.
const MAX_GROUP: usize = 4096;

impl Store {
    /// Opens the data dir: loads committed Parquet files, removes uncommitted ones, replays the
    /// WAL into memory and starts the writer thread.
    pub fn open(config: StoreConfig, telemetry: Arc<Telemetry>) -> Result<Store> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(Error::io("create data dir", dir))?;
        let manifests = persist::load_manifests(dir)?;
        persist::remove_orphans(dir, &manifests)?;
        let persisted_segment = manifests.iter().map(|m| m.wal_segment).max().unwrap_or(0);
        let (wal, replayed) = Wal::open(&dir.join("wal"), persisted_segment)?;
        let tables: [RwLock<TableState>; Table::ALL.len()] = Default::default();
        for m in &manifests {
            for f in &m.files {
                if let Some(t) = Table::from_name(&f.table) {
                    tables[t as usize].write().files.push(Arc::new(f.clone()));
                }
            }
        }
        let replayed_rows: usize = replayed.iter().map(|e| e.batch.num_rows()).sum();
        let mut buffered = 0;
        for entry in replayed {
            buffered += entry.batch.get_array_memory_size() as u64;
            tables[entry.table as usize].write().mem.push(entry.batch);
        }
        tracing::info!(
            data_dir = %dir.display(),
            parquet_files = manifests.iter().map(|m| m.files.len()).sum::<usize>(),
            replayed_rows,
            "store opened"
        );
        let (tx, rx) = mpsc::channel();
        let next_seq = manifests.last().map_or(1, |m| m.seq + 1);
        let inner = Arc::new(Inner {
            config,
            telemetry,
            tables,
            buffered: AtomicU64::new(buffered),
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(None),
            flush: tokio::sync::Mutex::new(FlushState {
                next_seq,
                manifests: manifests.into_iter().map(|m| (m.seq, m)).collect(),
                last_flush: Instant::now(),
            }),
            closed: AtomicBool::new(false),
        });
        inner.telemetry.buffered_bytes.set(buffered as i64);
        let thread_inner = Arc::clone(&inner);
        let handle = std::thread::Builder::new()
            .name("scry-wal".into())
            .spawn(move || writer_loop(wal, rx, &thread_inner))
            .map_err(Error::io("spawn WAL writer thread", PathBuf::new()))?;
        *inner.writer.lock() = Some(handle);
        Ok(Store { inner })
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        &self.inner.config.data_dir
    }

    /// Bytes of Arrow data buffered in memory.
    pub fn buffered_bytes(&self) -> u64 {
        self.inner.buffered.load(Ordering::Relaxed)
    }

    /// Fails with [`Error::Overloaded`] when a write should be refused for now.
    pub fn check_capacity(&self) -> Result<()> {
        let buffered = self.buffered_bytes();
        let limit = self.inner.config.max_buffered_bytes;
        if buffered > limit {
            return Err(Error::Overloaded { buffered, limit });
        }
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(Error::Unavailable("shutting down".into()));
        }
        Ok(())
    }

    /// Durably appends a batch: returns once it is in the fsynced WAL and visible to queries.
    pub async fn write(&self, table: Table, batch: RecordBatch) -> Result<()> {
        self.check_capacity()?;
        let frame = wal::encode_frame(table, &batch)?;
        let (ack, done) = oneshot::channel();
        {
            let tx = self.inner.tx.lock();
            let tx = tx
                .as_ref()
                .ok_or_else(|| Error::Unavailable("store is closed".into()))?;
            tx.send(Op::Write(Write {
                table,
                batch,
                frame,
                ack,
            }))
            .map_err(|_| Error::Unavailable("WAL writer stopped".into()))?;
        }
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(Error::Unavailable(message)),
            Err(_) => Err(Error::Unavailable("WAL writer stopped".into())),
        }
    }

    /// What a query over `table` sees now.
    pub fn snapshot(&self, table: Table) -> TableSnapshot {
        let state = self.inner.tables[table as usize].read();
        TableSnapshot {
            batches: state.mem.batches(),
            files: state.files.clone(),
        }
    }

    /// Rows in memory and in Parquet, per table.
    pub fn row_counts(&self) -> Vec<(Table, usize, u64)> {
        Table::ALL
            .iter()
            .map(|t| {
                let s = self.inner.tables[*t as usize].read();
                (*t, s.mem.rows(), s.files.iter().map(|f| f.rows).sum())
            })
            .collect()
    }

    /// Persists everything in memory to Parquet now.
    pub async fn flush(&self) -> Result<FlushReport> {
        let mut state = self.inner.flush.lock().await;
        let started = Instant::now();
        let has_data = self.inner.tables.iter().any(|t| t.read().mem.bytes() > 0);
        if !has_data {
            state.last_flush = Instant::now();
            return Ok(FlushReport::default());
        }
        let (closed, batches) = self.rotate().await?;
        let seq = state.next_seq;
        let dir = self.inner.config.data_dir.clone();
        let written = tokio::task::spawn_blocking(move || -> Result<Vec<ParquetFile>> {
            let mut files = Vec::new();
            for (table, batches) in &batches {
                files.extend(persist::write_table(&dir, *table, seq, batches)?);
            }
            let manifest = Manifest {
                seq,
                wal_segment: closed,
                files: files.clone(),
            };
            persist::write_manifest(&dir, &manifest)?;
            Ok(files)
        })
        .await
        .map_err(|e| Error::Unavailable(format!("flush task failed: {e}")))??;
        let report = self.commit_flush(&written);
        wal::remove_segments_through(&self.inner.config.data_dir.join("wal"), closed)?;
        state.manifests.insert(
            seq,
            Manifest {
                seq,
                wal_segment: closed,
                files: written,
            },
        );
        state.next_seq += 1;
        state.last_flush = Instant::now();
        let elapsed = started.elapsed();
        self.inner
            .telemetry
            .flush_seconds
            .observe(elapsed.as_secs_f64());
        tracing::info!(
            seq,
            files = report.files,
            bytes = report.bytes,
            ?elapsed,
            "flushed to Parquet"
        );
        Ok(report)
    }

    async fn rotate(&self) -> Result<Rotated> {
        let (tx, rx) = oneshot::channel();
        {
            let guard = self.inner.tx.lock();
            let sender = guard
                .as_ref()
                .ok_or_else(|| Error::Unavailable("store is closed".into()))?;
            sender
                .send(Op::Rotate(tx))
                .map_err(|_| Error::Unavailable("WAL writer stopped".into()))?;
        }
        rx.await
            .map_err(|_| Error::Unavailable("WAL writer stopped".into()))?
            .map_err(Error::Unavailable)
    }

    /// Makes the new files visible and drops the flushed batches, table by table, atomically.
    fn commit_flush(&self, files: &[ParquetFile]) -> FlushReport {
        let mut report = FlushReport::default();
        for table in Table::ALL {
            let mut state = self.inner.tables[table as usize].write();
            let freed = state.mem.bytes() - state.mem.active_bytes();
            for f in files.iter().filter(|f| f.table == table.name()) {
                *report.rows.entry(f.table.clone()).or_default() += f.rows;
                report.files += 1;
                report.bytes += f.size;
                state.files.push(Arc::new(f.clone()));
                let label = TableLabel {
                    table: f.table.clone(),
                };
                self.inner
                    .telemetry
                    .rows_persisted
                    .get_or_create(&label)
                    .inc_by(f.rows);
                self.inner.telemetry.parquet_bytes.inc_by(f.size);
            }
            state.mem.end_flush();
            let left = self.inner.buffered.fetch_sub(freed, Ordering::Relaxed) - freed;
            self.inner.telemetry.buffered_bytes.set(left as i64);
        }
        report
    }

    /// Flushes when memory is over the size threshold or the interval has passed.
    pub async fn maybe_flush(&self) -> Result<()> {
        let active: u64 = self
            .inner
            .tables
            .iter()
            .map(|t| t.read().mem.active_bytes())
            .sum();
        let due = {
            let state = self.inner.flush.lock().await;
            state.last_flush.elapsed() >= self.inner.config.flush_interval
        };
        if active >= self.inner.config.flush_bytes || (due && active > 0) {
            self.flush().await?;
        }
        Ok(())
    }

    /// Deletes Parquet files whose rows are all older than `cutoff_ns`; returns how many.
    pub async fn apply_retention(&self, cutoff_ns: i64) -> Result<usize> {
        let mut state = self.inner.flush.lock().await;
        let mut dropped: Vec<Arc<ParquetFile>> = Vec::new();
        for t in &self.inner.tables {
            let mut t = t.write();
            let (old, keep): (Vec<_>, Vec<_>) =
                t.files.drain(..).partition(|f| f.max_time < cutoff_ns);
            t.files = keep;
            dropped.extend(old);
        }
        if dropped.is_empty() {
            return Ok(0);
        }
        let dir = self.inner.config.data_dir.clone();
        let gone: std::collections::HashSet<String> =
            dropped.iter().map(|f| f.path.clone()).collect();
        for f in &dropped {
            let path = dir.join(&f.path);
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove expired file");
            }
        }
        let seqs: Vec<u64> = state.manifests.keys().copied().collect();
        let newest = seqs.last().copied();
        for seq in seqs {
            let m = state.manifests.get_mut(&seq).expect("key listed above");
            let before = m.files.len();
            m.files.retain(|f| !gone.contains(&f.path));
            if m.files.len() == before {
                continue;
            }
            // The newest manifest stays, even empty: it records which WAL segments are persisted.
            if m.files.is_empty() && Some(seq) != newest {
                persist::remove_manifest(&dir, seq)?;
                state.manifests.remove(&seq);
            } else {
                persist::write_manifest(&dir, m)?;
            }
        }
        tracing::info!(
            files = dropped.len(),
            "retention removed expired Parquet files"
        );
        Ok(dropped.len())
    }

    /// Runs flushes and retention until `stop` turns true. Retention cuts at `clock`'s time (data
    /// time in a replay); flushes follow the wall, as they bound memory, not data age.
    pub async fn run_background(
        &self,
        clock: crate::SharedClock,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_retention = Instant::now() - Duration::from_secs(3600);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
            if let Err(e) = self.maybe_flush().await {
                tracing::error!(error = %e, "flush failed; rows stay in memory and the WAL");
            }
            if let Some(retention) = self.inner.config.retention
                && last_retention.elapsed() >= Duration::from_secs(60)
            {
                last_retention = Instant::now();
                let cutoff = clock.now_ns() - retention.as_nanos() as i64;
                if let Err(e) = self.apply_retention(cutoff).await {
                    tracing::error!(error = %e, "retention failed");
                }
            }
        }
    }

    /// Stops taking writes, flushes what is in memory and stops the writer thread.
    pub async fn shutdown(&self) -> Result<()> {
        self.inner.closed.store(true, Ordering::Relaxed);
        let result = self.flush().await;
        let tx = self.inner.tx.lock().take();
        drop(tx);
        let handle = self.inner.writer.lock().take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        result.map(|_| ())
    }
}

fn writer_loop(mut wal: Wal, rx: mpsc::Receiver<Op>, inner: &Inner) {
    while let Ok(first) = rx.recv() {
        let mut writes = Vec::new();
        let mut rotates = Vec::new();
        let mut next = Some(first);
        while let Some(op) = next {
            match op {
                Op::Write(w) => writes.push(w),
                Op::Rotate(r) => rotates.push(r),
            }
            next = if writes.len() < MAX_GROUP {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if !writes.is_empty() {
            commit_group(&mut wal, writes, inner);
        }
        for reply in rotates {
            let result = wal.rotate().map_err(|e| e.to_string()).map(|closed| {
                let batches = Table::ALL
                    .iter()
                    .map(|t| (*t, inner.tables[*t as usize].write().mem.begin_flush()))
                    .collect();
                (closed, batches)
            });
            let _ = reply.send(result);
        }
    }
    if let Err(e) = wal.sync() {
        tracing::error!(error = %e, "final WAL sync failed");
    }
}

fn commit_group(wal: &mut Wal, writes: Vec<Write>, inner: &Inner) {
    let started = Instant::now();
    let mut bytes = 0u64;
    let mut result = Ok(());
    for w in &writes {
        if let Err(e) = wal.append(&w.frame) {
            result = Err(e);
            break;
        }
        bytes += w.frame.len() as u64;
    }
    let result = result.and_then(|_| wal.sync());
    let t = &inner.telemetry;
    t.wal_syncs.inc();
    t.wal_sync_seconds.observe(started.elapsed().as_secs_f64());
    if let Err(e) = result {
        tracing::error!(error = %e, "WAL write failed; refusing the group");
        for w in writes {
            let _ = w.ack.send(Err(e.to_string()));
        }
        return;
    }
    t.wal_bytes.inc_by(bytes);
    let mut added = 0u64;
    let mut acks = Vec::with_capacity(writes.len());
    for w in writes {
        added += w.batch.get_array_memory_size() as u64;
        inner.tables[w.table as usize].write().mem.push(w.batch);
        acks.push(w.ack);
    }
    let now = inner.buffered.fetch_add(added, Ordering::Relaxed) + added;
    t.buffered_bytes.set(now as i64);
    for ack in acks {
        let _ = ack.send(Ok(()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::traces;

    fn batch(n: u8) -> RecordBatch {
        traces::convert(&traces::tests::request(
            (1..=n).map(traces::tests::span).collect(),
        ))
        .batch
        .unwrap()
    }

    fn rows(store: &Store) -> (usize, u64) {
        let (_, mem, files) = store.row_counts()[0];
        (mem, files)
    }

    #[tokio::test]
    async fn write_flush_reopen_counts_each_row_once() {
        let dir = tempfile::tempdir().unwrap();
        let telemetry = Arc::new(Telemetry::new());
        let store = Store::open(StoreConfig::new(dir.path()), Arc::clone(&telemetry)).unwrap();
        store.write(Table::Spans, batch(3)).await.unwrap();
        store.flush().await.unwrap();
        store.write(Table::Spans, batch(2)).await.unwrap();
        assert_eq!(rows(&store), (2, 3));
        let snap = store.snapshot(Table::Spans);
        assert_eq!(snap.batches.len(), 1);
        assert_eq!(snap.files.len(), 1);
        // No shutdown: simulates a crash after the second write was acknowledged.
        drop(store);
        let store = Store::open(StoreConfig::new(dir.path()), telemetry).unwrap();
        assert_eq!(rows(&store), (2, 3));
        store.shutdown().await.unwrap();
        let store = Store::open(StoreConfig::new(dir.path()), Arc::new(Telemetry::new())).unwrap();
        assert_eq!(rows(&store), (0, 5));
    }

    #[tokio::test]
    async fn overload_is_refused_and_retention_removes_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::new(dir.path());
        config.max_buffered_bytes = 1;
        let store = Store::open(config, Arc::new(Telemetry::new())).unwrap();
        store.write(Table::Spans, batch(1)).await.unwrap();
        assert!(matches!(
            store.write(Table::Spans, batch(1)).await,
            Err(Error::Overloaded { .. })
        ));
        store.flush().await.unwrap();
        store.write(Table::Spans, batch(1)).await.unwrap();
        store.flush().await.unwrap();
        assert_eq!(store.apply_retention(i64::MAX).await.unwrap(), 2);
        assert_eq!(rows(&store), (0, 0));
        drop(store);
        let store = Store::open(StoreConfig::new(dir.path()), Arc::new(Telemetry::new())).unwrap();
        assert_eq!(rows(&store), (0, 0));
    }
}
