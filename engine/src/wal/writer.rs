//! Appending to a WAL. Owned by the write path; one thread at a time (the
//! group-commit leader) holds it.

use std::path::Path;

use jkv_format::names::wal_path;
use jkv_format::record::append_record;
use jkv_format::{FileNumber, FileSystem, Result, WritableFile};

use super::RECORD_BATCH;

/// The WAL file is extended with zeros this many bytes at a time.
const PREALLOCATE_STEP: u64 = 1 << 20;

/// An open WAL being appended to.
pub(crate) struct WalWriter {
    file: Box<dyn WritableFile>,
    number: FileNumber,
    /// The file is extended with zeros up to here (see `PREALLOCATE_STEP`).
    allocated: u64,
    /// Reused frame buffer: a whole commit group becomes one `append`.
    buf: Vec<u8>,
}

impl WalWriter {
    /// Creates `dir/NNNNNN.wal` for database `db_id` and writes its header.
    /// The caller syncs the directory before the manifest names the file.
    pub fn create(fs: &dyn FileSystem, dir: &Path, number: FileNumber, db_id: u64) -> Result<Self> {
        let mut file = fs.create(&wal_path(dir, number))?;
        file.append(&super::encode_header(number, db_id))?;
        Ok(WalWriter {
            file,
            number,
            allocated: 0,
            buf: Vec::new(),
        })
    }

    /// The log's file number.
    pub fn number(&self) -> FileNumber {
        self.number
    }

    /// Appends one record per payload with a single write, then hands the
    /// bytes to the OS. Returns the bytes written.
    pub fn append_batches<'a>(&mut self, payloads: impl Iterator<Item = &'a [u8]>) -> Result<u64> {
        self.buf.clear();
        for payload in payloads {
            append_record(&mut self.buf, RECORD_BATCH, payload);
        }
        let end = self.file.len() + self.buf.len() as u64;
        if end > self.allocated {
            // Grow in steps, so that most synced appends do not change the
            // file's size (a zero tail reads as the end of the log).
            self.allocated = end.div_ceil(PREALLOCATE_STEP) * PREALLOCATE_STEP;
            self.file.preallocate(self.allocated)?;
        }
        self.file.append(&self.buf)?;
        self.file.flush()?;
        let written = self.buf.len() as u64;
        if self.buf.capacity() > (4 << 20) {
            // Do not keep a huge buffer alive after one large batch.
            self.buf = Vec::new();
        }
        Ok(written)
    }

    /// Makes every appended record durable.
    pub fn sync(&mut self) -> Result<()> {
        self.file.sync()
    }
}
