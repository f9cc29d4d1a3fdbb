//! Appending to a WAL. Owned by the write path; one thread at a time (the
//! group-commit leader) holds it.

use std::path::Path;

use jkv_format::names::wal_path;
use jkv_format::record::{append_record, record_header, HEADER_LEN};
use jkv_format::{FileNumber, FileSystem, Result, WritableFile};

use super::RECORD_BATCH;

/// The WAL file is extended with zeros this many bytes at a time.
const PREALLOCATE_STEP: u64 = 1 << 20;

/// Payloads at least this long are appended from the batch's own bytes
/// rather than copied into the frame buffer: one copy fewer for large
/// values, while small records still go out together in one append.
pub(crate) const DIRECT_PAYLOAD_BYTES: usize = 4096;

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

    /// Appends one record per payload, then hands the bytes to the OS.
    /// Small records are framed into one buffer and appended together; a
    /// payload of at least [`DIRECT_PAYLOAD_BYTES`] is appended from where
    /// it lies, after its header, instead of being copied into the buffer
    /// first. Returns the bytes written.
    pub fn append_batches<'a>(&mut self, payloads: impl Iterator<Item = &'a [u8]>) -> Result<u64> {
        let payloads: Vec<&[u8]> = payloads.collect();
        let total: u64 = payloads.iter().map(|p| (HEADER_LEN + p.len()) as u64).sum();
        let end = self.file.len() + total;
        if end > self.allocated {
            // Grow in steps, so that most synced appends do not change the
            // file's size (a zero tail reads as the end of the log).
            self.allocated = end.div_ceil(PREALLOCATE_STEP) * PREALLOCATE_STEP;
            self.file.preallocate(self.allocated)?;
        }
        self.buf.clear();
        for payload in payloads {
            if payload.len() >= DIRECT_PAYLOAD_BYTES {
                self.buf
                    .extend_from_slice(&record_header(RECORD_BATCH, payload));
                self.file.append(&self.buf)?;
                self.buf.clear();
                self.file.append(payload)?;
            } else {
                append_record(&mut self.buf, RECORD_BATCH, payload);
            }
        }
        if !self.buf.is_empty() {
            self.file.append(&self.buf)?;
        }
        self.file.flush()?;
        if self.buf.capacity() > (4 << 20) {
            // Do not keep a huge buffer alive after one large batch.
            self.buf = Vec::new();
        }
        Ok(total)
    }

    /// Makes every appended record durable.
    pub fn sync(&mut self) -> Result<()> {
        self.file.sync()
    }
}
