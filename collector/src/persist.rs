//! Parquet persister: turns flushed memtable batches into zstd Parquet files, partitioned by table
//! and hour and sorted by service and time, and records each flush in a manifest.
//!
//! A flush is committed by its manifest (`manifests/<seq>.json`, written atomically after every
//! Parquet file of the flush is durable). Files no manifest lists are leftovers of a flush that did
//! not commit; their rows are still in the WAL, so they are deleted on start.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, UInt32Array};
use arrow::compute::{
    SortColumn, SortOptions, concat_batches, lexsort_to_indices, take_record_batch,
};
use arrow::datatypes::TimestampNanosecondType;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schema::{SERVICE_COLUMN, TIME_COLUMN, Table};

const HOUR_NS: i64 = 3_600_000_000_000;
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// One Parquet file scry has written and committed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ParquetFile {
    /// The table it belongs to (`spans`, `logs`, `metrics`).
    pub table: String,
    /// Path relative to the data dir.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Number of rows.
    pub rows: u64,
    /// Smallest `time` in the file (ns).
    pub min_time: i64,
    /// Largest `time` in the file (ns).
    pub max_time: i64,
}

/// The record of one committed flush.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Manifest {
    /// Flush sequence number.
    pub seq: u64,
    /// Every WAL segment up to and including this one is persisted.
    pub wal_segment: u64,
    /// The files of this flush still present (retention removes entries).
    pub files: Vec<ParquetFile>,
}

fn manifest_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("manifests")
}

fn manifest_path(data_dir: &Path, seq: u64) -> PathBuf {
    manifest_dir(data_dir).join(format!("{seq:020}.json"))
}

/// Writes (or rewrites) a manifest atomically: temp file, fsync, rename, fsync dir.
pub fn write_manifest(data_dir: &Path, manifest: &Manifest) -> Result<()> {
    let dir = manifest_dir(data_dir);
    std::fs::create_dir_all(&dir).map_err(Error::io("create manifest dir", &dir))?;
    let path = manifest_path(data_dir, manifest.seq);
    let tmp = path.with_extension("json.tmp");
    let body = serde_json::to_vec_pretty(manifest).expect("manifest serializes");
    std::fs::write(&tmp, body).map_err(Error::io("write manifest", &tmp))?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(Error::io("fsync manifest", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(Error::io("commit manifest", &path))?;
    sync_dir(&dir);
    Ok(())
}

/// Removes a manifest whose files are all gone.
pub fn remove_manifest(data_dir: &Path, seq: u64) -> Result<()> {
    let path = manifest_path(data_dir, seq);
    std::fs::remove_file(&path).map_err(Error::io("remove manifest", &path))
}

/// Loads every committed manifest, ascending by sequence.
pub fn load_manifests(data_dir: &Path) -> Result<Vec<Manifest>> {
    let dir = manifest_dir(data_dir);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut manifests = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(Error::io("list manifests", &dir))? {
        let path = entry.map_err(Error::io("list manifests", &dir))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(Error::io("read manifest", &path))?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::Manifest {
            path: path.clone(),
            message: e.to_string(),
        })?;
        manifests.push(manifest);
    }
    manifests.sort_by_key(|m| m.seq);
    Ok(manifests)
}

/// Deletes Parquet files under `tables/` that no manifest lists (an uncommitted flush).
pub fn remove_orphans(data_dir: &Path, manifests: &[Manifest]) -> Result<usize> {
    let known: std::collections::HashSet<&str> = manifests
        .iter()
        .flat_map(|m| m.files.iter().map(|f| f.path.as_str()))
        .collect();
    let mut removed = 0;
    let root = data_dir.join("tables");
    if !root.exists() {
        return Ok(0);
    }
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(Error::io("list tables dir", &dir))? {
            let path = entry.map_err(Error::io("list tables dir", &dir))?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(data_dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .to_string();
            if !known.contains(rel.as_str()) {
                tracing::warn!(path = %path.display(), "removing Parquet file of an uncommitted flush");
                std::fs::remove_file(&path)
                    .map_err(Error::io("remove orphan Parquet file", &path))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes the batches of one table as one Parquet file per hour; `seq` names the files.
pub fn write_table(
    data_dir: &Path,
    table: Table,
    seq: u64,
    batches: &[RecordBatch],
) -> Result<Vec<ParquetFile>> {
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Ok(Vec::new());
    }
    let all = concat_batches(&table.schema(), batches)?;
    let mut files = Vec::new();
    for (hour, indices) in rows_by_hour(&all) {
        let part = take_record_batch(&all, &UInt32Array::from(indices))?;
        let sorted = sort_by_service_and_time(&part)?;
        files.push(write_file(data_dir, table, seq, hour, &sorted)?);
    }
    Ok(files)
}

fn time_values(batch: &RecordBatch) -> &[i64] {
    batch
        .column_by_name(TIME_COLUMN)
        .expect("every table has a time column")
        .as_primitive::<TimestampNanosecondType>()
        .values()
}

fn rows_by_hour(batch: &RecordBatch) -> BTreeMap<i64, Vec<u32>> {
    let mut hours: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
    for (i, t) in time_values(batch).iter().enumerate() {
        hours
            .entry(t.div_euclid(HOUR_NS))
            .or_default()
            .push(i as u32);
    }
    hours
}

fn sort_by_service_and_time(batch: &RecordBatch) -> Result<RecordBatch> {
    let column = |name| SortColumn {
        values: Arc::clone(batch.column_by_name(name).expect("column exists")),
        options: Some(SortOptions::default()),
    };
    let indices = lexsort_to_indices(&[column(SERVICE_COLUMN), column(TIME_COLUMN)], None)?;
    Ok(take_record_batch(batch, &indices)?)
}

fn hour_dir(table: Table, hour: i64) -> String {
    let dt = chrono::DateTime::from_timestamp(hour * 3600, 0).unwrap_or_default();
    format!("tables/{}/{}", table.name(), dt.format("%Y-%m-%d/%H"))
}

fn write_file(
    data_dir: &Path,
    table: Table,
    seq: u64,
    hour: i64,
    batch: &RecordBatch,
) -> Result<ParquetFile> {
    let rel_dir = hour_dir(table, hour);
    let dir = data_dir.join(&rel_dir);
    std::fs::create_dir_all(&dir).map_err(Error::io("create partition dir", &dir))?;
    let rel = format!("{rel_dir}/{seq:010}.parquet");
    let path = data_dir.join(&rel);
    let times = time_values(batch);
    let min_time = times.iter().copied().min().unwrap_or_default();
    let max_time = times.iter().copied().max().unwrap_or_default();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_key_value_metadata(Some(vec![
            KeyValue::new("scry.min_time_ns".into(), min_time.to_string()),
            KeyValue::new("scry.max_time_ns".into(), max_time.to_string()),
        ]))
        .build();
    let parquet_err = |source| Error::Parquet {
        path: path.clone(),
        source,
    };
    let file = File::create(&path).map_err(Error::io("create Parquet file", &path))?;
    let mut writer = ArrowWriter::try_new(file, Arc::clone(batch.schema_ref()), Some(props))
        .map_err(parquet_err)?;
    writer.write(batch).map_err(parquet_err)?;
    let file = writer.into_inner().map_err(parquet_err)?;
    file.sync_all()
        .map_err(Error::io("fsync Parquet file", &path))?;
    sync_dir(&dir);
    let size = file
        .metadata()
        .map_err(Error::io("stat Parquet file", &path))?
        .len();
    Ok(ParquetFile {
        table: table.name().to_string(),
        path: rel,
        size,
        rows: batch.num_rows() as u64,
        min_time,
        max_time,
    })
}

#[cfg(test)]
fn null_count(batch: &RecordBatch, name: &str) -> usize {
    use arrow::array::Array;
    batch.column_by_name(name).unwrap().null_count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::traces;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn files_are_split_by_hour_sorted_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let mut spans: Vec<_> = (1..=4).map(traces::tests::span).collect();
        spans[0].start_time_unix_nano += 2 * HOUR_NS as u64; // a later hour
        let batch = traces::convert(&traces::tests::request(spans))
            .batch
            .unwrap();
        let files = write_table(dir.path(), Table::Spans, 7, &[batch]).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 4);
        for f in &files {
            assert!(f.path.starts_with("tables/spans/"), "{}", f.path);
            let reader = ParquetRecordBatchReaderBuilder::try_new(
                File::open(dir.path().join(&f.path)).unwrap(),
            )
            .unwrap()
            .build()
            .unwrap();
            let rows: usize = reader
                .map(|b| b.unwrap())
                .map(|b| {
                    assert_eq!(null_count(&b, "trace_id"), 0);
                    let t = time_values(&b).to_vec();
                    assert!(t.windows(2).all(|w| w[0] <= w[1]));
                    b.num_rows()
                })
                .sum();
            assert_eq!(rows as u64, f.rows);
        }
        let manifest = Manifest {
            seq: 7,
            wal_segment: 3,
            files: files.clone(),
        };
        write_manifest(dir.path(), &manifest).unwrap();
        let loaded = load_manifests(dir.path()).unwrap();
        assert_eq!(loaded[0].files, files);
        std::fs::write(dir.path().join("tables/spans/orphan.parquet"), b"x").unwrap();
        assert_eq!(remove_orphans(dir.path(), &loaded).unwrap(), 1);
    }
}
