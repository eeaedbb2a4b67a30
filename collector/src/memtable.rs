//! In-memory Arrow rows of one table, waiting to be persisted.

use arrow::record_batch::RecordBatch;

/// Batches of one table that are in memory, split into those still being written to and those a
/// running flush is persisting. Both are visible to queries until the flush registers its files.
#[derive(Debug, Default)]
pub struct MemTable {
    active: Vec<RecordBatch>,
    flushing: Vec<RecordBatch>,
    active_bytes: u64,
    flushing_bytes: u64,
    rows: usize,
}

impl MemTable {
    /// Adds a batch of rows.
    pub fn push(&mut self, batch: RecordBatch) {
        self.active_bytes += batch.get_array_memory_size() as u64;
        self.rows += batch.num_rows();
        self.active.push(batch);
    }

    /// Moves the active batches to the flushing set and returns them.
    ///
    /// Batches a failed earlier flush left in the flushing set go first, so they are retried.
    pub fn begin_flush(&mut self) -> Vec<RecordBatch> {
        let active = std::mem::take(&mut self.active);
        self.flushing_bytes += std::mem::take(&mut self.active_bytes);
        self.flushing.extend(active);
        self.flushing.clone()
    }

    /// Forgets the flushing batches once their Parquet files are visible.
    pub fn end_flush(&mut self) {
        self.rows -= self.flushing.iter().map(|b| b.num_rows()).sum::<usize>();
        self.flushing.clear();
        self.flushing_bytes = 0;
    }

    /// Every batch a query should see.
    pub fn batches(&self) -> Vec<RecordBatch> {
        self.flushing.iter().chain(&self.active).cloned().collect()
    }

    /// Bytes held by active and flushing batches.
    pub fn bytes(&self) -> u64 {
        self.active_bytes + self.flushing_bytes
    }

    /// Bytes held by active batches only.
    pub fn active_bytes(&self) -> u64 {
        self.active_bytes
    }

    /// Rows held in memory.
    pub fn rows(&self) -> usize {
        self.rows
    }
}
