//! Errors of the collector crate.

use std::path::PathBuf;

/// Errors from storage (WAL, memtable, Parquet) and ingest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on a file of the data dir failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// Which file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Arrow encoding or decoding failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Parquet encoding or decoding failed.
    #[error("parquet {path}: {source}")]
    Parquet {
        /// Which file.
        path: PathBuf,
        /// The underlying error.
        source: parquet::errors::ParquetError,
    },
    /// A manifest could not be read or written.
    #[error("manifest {path}: {message}")]
    Manifest {
        /// Which manifest.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Too much data is buffered in memory; the client should retry later.
    #[error("overloaded: {buffered} bytes buffered, limit {limit}; retry later")]
    Overloaded {
        /// Bytes buffered now.
        buffered: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The store is shutting down or its writer stopped.
    #[error("storage is not accepting writes: {0}")]
    Unavailable(String),
}

impl Error {
    /// Wraps an I/O error with the operation and path it concerns.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

/// Result with the collector's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
