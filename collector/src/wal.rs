//! Write-ahead log: append-only segment files of framed Arrow IPC records.
//!
//! A frame is `[len: u32 LE][crc32: u32 LE][table tag: u8][Arrow IPC stream]`, where `len` and the
//! CRC cover the tag and the IPC bytes. Segments are named by a growing id; a flush rotates to a new
//! segment and removes the old ones once their rows are in Parquet. A frame that is cut short or
//! fails its CRC ends the segment: replay truncates it there with a warning.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::schema::Table;

const HEADER: usize = 8;
const EXTENSION: &str = "wal";

/// One replayed record.
#[derive(Debug)]
pub struct WalEntry {
    /// Which table the rows belong to.
    pub table: Table,
    /// The rows.
    pub batch: RecordBatch,
}

/// Encodes a batch as one WAL frame.
pub fn encode_frame(table: Table, batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(HEADER + 1 + batch.get_array_memory_size() / 2);
    buf.extend_from_slice(&[0u8; HEADER]);
    buf.push(table.tag());
    {
        let mut writer = StreamWriter::try_new(&mut buf, batch.schema_ref())?;
        writer.write(batch)?;
        writer.finish()?;
    }
    let payload_len = u32::try_from(buf.len() - HEADER)
        .map_err(|_| Error::Unavailable("WAL record over 4 GiB".into()))?;
    let crc = crc32fast::hash(&buf[HEADER..]);
    buf[0..4].copy_from_slice(&payload_len.to_le_bytes());
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(buf)
}

fn decode_payload(payload: &[u8]) -> Result<Vec<WalEntry>, String> {
    let table =
        Table::from_tag(payload[0]).ok_or_else(|| format!("unknown table tag {}", payload[0]))?;
    let reader = StreamReader::try_new(&payload[1..], None).map_err(|e| e.to_string())?;
    reader
        .map(|b| {
            b.map(|batch| WalEntry { table, batch })
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// The write-ahead log of one data dir.
pub struct Wal {
    dir: PathBuf,
    file: File,
    segment: u64,
    segment_bytes: u64,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.{EXTENSION}"))
}

/// Segment ids present in `dir`, ascending.
fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io("list WAL dir", dir))? {
        let entry = entry.map_err(Error::io("list WAL dir", dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(id) = name
            .strip_suffix(".wal")
            .and_then(|s| s.parse::<u64>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

impl Wal {
    /// Opens the WAL in `dir`, replaying every segment with an id above `skip_through`
    /// (segments already persisted to Parquet are deleted), and starts a fresh segment.
    pub fn open(dir: &Path, skip_through: u64) -> Result<(Wal, Vec<WalEntry>)> {
        std::fs::create_dir_all(dir).map_err(Error::io("create WAL dir", dir))?;
        let mut entries = Vec::new();
        let mut last = skip_through;
        for id in list_segments(dir)? {
            let path = segment_path(dir, id);
            if id <= skip_through {
                std::fs::remove_file(&path)
                    .map_err(Error::io("remove persisted WAL segment", &path))?;
                continue;
            }
            entries.extend(replay_segment(&path)?);
            last = last.max(id);
        }
        let segment = last + 1;
        let (file, _) = create_segment(dir, segment)?;
        Ok((
            Wal {
                dir: dir.to_path_buf(),
                file,
                segment,
                segment_bytes: 0,
            },
            entries,
        ))
    }

    /// Appends already-framed bytes (one or more frames). Not durable until [`Wal::sync`].
    ///
    /// A failed append is cut off again, so later frames never follow a partial one.
    pub fn append(&mut self, frames: &[u8]) -> Result<()> {
        if let Err(e) = self.file.write_all(frames) {
            let _ = self.file.set_len(self.segment_bytes);
            return Err(Error::io(
                "append to WAL",
                segment_path(&self.dir, self.segment),
            )(e));
        }
        self.segment_bytes += frames.len() as u64;
        Ok(())
    }

    /// Makes everything appended so far durable.
    pub fn sync(&mut self) -> Result<()> {
        self.file.sync_data().map_err(Error::io(
            "fsync WAL",
            segment_path(&self.dir, self.segment),
        ))
    }

    /// Closes the current segment and starts the next; returns the id of the closed one.
    pub fn rotate(&mut self) -> Result<u64> {
        self.sync()?;
        let closed = self.segment;
        let (file, _) = create_segment(&self.dir, closed + 1)?;
        self.file = file;
        self.segment = closed + 1;
        self.segment_bytes = 0;
        Ok(closed)
    }

    /// Id of the segment being written.
    pub fn segment(&self) -> u64 {
        self.segment
    }
}

/// Deletes every segment in `dir` with an id up to and including `through` (a closed segment:
/// the writer has moved past it).
pub fn remove_segments_through(dir: &Path, through: u64) -> Result<()> {
    for id in list_segments(dir)? {
        if id <= through {
            let path = segment_path(dir, id);
            std::fs::remove_file(&path).map_err(Error::io("remove WAL segment", &path))?;
        }
    }
    Ok(())
}

fn create_segment(dir: &Path, id: u64) -> Result<(File, PathBuf)> {
    let path = segment_path(dir, id);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(Error::io("create WAL segment", &path))?;
    // The new name must survive a crash too, or replay would miss the segment.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok((file, path))
}

/// Reads every whole frame of a segment; a torn or corrupt tail is cut off with a warning.
fn replay_segment(path: &Path) -> Result<Vec<WalEntry>> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(Error::io("read WAL segment", path))?;
    let mut entries = Vec::new();
    let mut offset = 0usize;
    while offset < data.len() {
        match next_frame(&data[offset..]) {
            Ok((payload, used)) => match decode_payload(payload) {
                Ok(decoded) => {
                    entries.extend(decoded);
                    offset += used;
                }
                Err(why) => {
                    truncate(path, offset, &why)?;
                    break;
                }
            },
            Err(why) => {
                truncate(path, offset, why)?;
                break;
            }
        }
    }
    Ok(entries)
}

fn next_frame(data: &[u8]) -> Result<(&[u8], usize), &'static str> {
    if data.len() < HEADER + 1 {
        return Err("frame header cut short");
    }
    let len = u32::from_le_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(data[4..8].try_into().expect("4 bytes"));
    if len == 0 || data.len() < HEADER + len {
        return Err("frame cut short");
    }
    let payload = &data[HEADER..HEADER + len];
    if crc32fast::hash(payload) != crc {
        return Err("frame checksum mismatch");
    }
    Ok((payload, HEADER + len))
}

fn truncate(path: &Path, offset: usize, why: &str) -> Result<()> {
    tracing::warn!(path = %path.display(), offset, reason = why, "truncating torn WAL tail");
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(Error::io("open WAL segment", path))?;
    file.set_len(offset as u64)
        .map_err(Error::io("truncate WAL segment", path))?;
    file.sync_all()
        .map_err(Error::io("fsync WAL segment", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::traces;

    fn batch(n: u8) -> RecordBatch {
        let spans = (1..=n).map(traces::tests::span).collect();
        traces::convert(&traces::tests::request(spans))
            .batch
            .unwrap()
    }

    #[test]
    fn frames_replay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, replayed) = Wal::open(dir.path(), 0).unwrap();
        assert!(replayed.is_empty());
        wal.append(&encode_frame(Table::Spans, &batch(2)).unwrap())
            .unwrap();
        wal.append(&encode_frame(Table::Spans, &batch(3)).unwrap())
            .unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_wal, replayed) = Wal::open(dir.path(), 0).unwrap();
        let rows: Vec<usize> = replayed.iter().map(|e| e.batch.num_rows()).collect();
        assert_eq!(rows, vec![2, 3]);
    }

    #[test]
    fn torn_tail_is_truncated_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 0).unwrap();
        let frame = encode_frame(Table::Spans, &batch(2)).unwrap();
        wal.append(&frame).unwrap();
        wal.append(&frame[..frame.len() / 2]).unwrap();
        wal.sync().unwrap();
        let seg = segment_path(dir.path(), wal.segment());
        drop(wal);
        let (_wal, replayed) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(replayed.len(), 1);
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), frame.len() as u64);
    }

    #[test]
    fn corrupt_frame_ends_replay() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 0).unwrap();
        let mut frame = encode_frame(Table::Spans, &batch(1)).unwrap();
        wal.append(&frame).unwrap();
        let last = frame.len() - 1;
        frame[last] ^= 0xff;
        wal.append(&frame).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_wal, replayed) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(replayed.len(), 1);
    }

    #[test]
    fn rotation_and_skip() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 0).unwrap();
        wal.append(&encode_frame(Table::Spans, &batch(1)).unwrap())
            .unwrap();
        let closed = wal.rotate().unwrap();
        wal.append(&encode_frame(Table::Spans, &batch(2)).unwrap())
            .unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (wal, replayed) = Wal::open(dir.path(), closed).unwrap();
        assert_eq!(replayed.len(), 1);
        assert_eq!(replayed[0].batch.num_rows(), 2);
        assert!(wal.segment() > closed + 1);
    }
}
