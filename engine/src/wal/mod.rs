//! The transaction log's byte format and its recovery scan, over plain byte slices (no IO): the
//! runtime owns files, DMA and fdatasync; this module decides what bytes go down and what a
//! segment's bytes mean after a crash. Layout and crash cases: `FORMAT.md` beside this file.
//!
//! Invariants of a valid segment: the header checks out; records follow back to back from
//! `HEADER_BYTES`; every record's CRC matches and its zxid is greater than the one before; each
//! record names the first zxid of the batch (one write, one fdatasync) it was written in.

pub mod codec;

use crate::txn::Txn;

pub const MAGIC: &[u8; 8] = b"RKTXNLOG";
pub const FORMAT_VERSION: u32 = 2;
/// The header takes one 4 KiB block so records start O_DIRECT-aligned.
pub const HEADER_BYTES: usize = 4096;
/// Record header: length, CRC32C, zxid, batch (the first zxid of its batch).
pub const RECORD_HEADER_BYTES: usize = 24;
/// Largest payload a record may carry.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 64 << 20;

/// Why a segment cannot be used. `offset` is in bytes from the start of the segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalError {
    /// The header is missing, has the wrong magic or version, or fails its CRC.
    BadHeader { reason: &'static str },
    /// An invalid record with valid records after it: corruption before the tail.
    Corrupt { offset: usize, reason: &'static str },
    /// A record's CRC matched but its payload is not a txn (a bug or a foreign writer).
    BadPayload { offset: usize, zxid: i64 },
}

impl std::fmt::Display for WalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalError::BadHeader { reason } => write!(f, "bad segment header: {reason}"),
            WalError::Corrupt { offset, reason } => {
                write!(
                    f,
                    "corrupt record at offset {offset} ({reason}) with valid records after it"
                )
            }
            WalError::BadPayload { offset, zxid } => {
                write!(
                    f,
                    "record at offset {offset} (zxid {zxid:#x}) does not decode as a txn"
                )
            }
        }
    }
}

impl std::error::Error for WalError {}

/// The segment header bytes for a segment starting at `first_zxid`.
pub fn header(first_zxid: i64) -> Vec<u8> {
    let mut h = vec![0u8; HEADER_BYTES];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
    h[16..24].copy_from_slice(&first_zxid.to_be_bytes());
    let crc = crc32c::crc32c(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_be_bytes());
    h
}

/// Checks a segment header; returns the segment's first zxid.
pub fn read_header(seg: &[u8]) -> Result<i64, WalError> {
    if seg.len() < HEADER_BYTES {
        return Err(WalError::BadHeader {
            reason: "shorter than a header",
        });
    }
    if &seg[0..8] != MAGIC {
        return Err(WalError::BadHeader {
            reason: "wrong magic",
        });
    }
    if u32::from_be_bytes(seg[8..12].try_into().expect("4 bytes")) != FORMAT_VERSION {
        return Err(WalError::BadHeader {
            reason: "unknown format version",
        });
    }
    let crc = u32::from_be_bytes(seg[24..28].try_into().expect("4 bytes"));
    if crc != crc32c::crc32c(&seg[0..24]) {
        return Err(WalError::BadHeader {
            reason: "header CRC mismatch",
        });
    }
    Ok(i64::from_be_bytes(seg[16..24].try_into().expect("8 bytes")))
}

/// Appends one framed record for `txn`, written in the batch whose first zxid is `batch`.
pub fn encode_record(out: &mut Vec<u8>, txn: &Txn, batch: i64) {
    assert!(
        batch <= txn.zxid,
        "batch {batch:#x} after zxid {:#x}",
        txn.zxid
    );
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEADER_BYTES]);
    codec::encode_txn(out, txn);
    let n = out.len() - start - RECORD_HEADER_BYTES;
    assert!(
        n > 0 && n <= RECORD_PAYLOAD_BYTES_MAX,
        "txn payload of {n} bytes"
    );
    out[start..start + 4].copy_from_slice(&(n as u32).to_be_bytes());
    out[start + 8..start + 16].copy_from_slice(&txn.zxid.to_be_bytes());
    out[start + 16..start + 24].copy_from_slice(&batch.to_be_bytes());
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// Appends the records of one batch (one write, one fdatasync).
pub fn encode_batch(out: &mut Vec<u8>, txns: &[Txn]) {
    let Some(first) = txns.first() else { return };
    for txn in txns {
        encode_record(out, txn, first.zxid);
    }
}

/// How a scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// Zeros after the last record: a clean end.
    Clean,
    /// An unacknowledged, partly written batch: `dropped` bytes from `valid_end` on were not
    /// records (up to the first all-zero block, or the file end).
    Torn { dropped: usize },
}

/// What a segment holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub first_zxid: i64,
    pub txns: Vec<Txn>,
    /// The batch of each txn in `txns`.
    pub batches: Vec<i64>,
    /// Where each txn's record in `txns` ends (a truncation after it zeroes from there).
    pub ends: Vec<usize>,
    /// Where the next record goes: the end of the last valid record.
    pub valid_end: usize,
    pub tail: Tail,
}

/// A record that checks out at `offset`.
struct Record {
    zxid: i64,
    batch: i64,
    payload: std::ops::Range<usize>,
    end: usize,
}

fn record_at(seg: &[u8], offset: usize) -> Option<Record> {
    let head = seg.get(offset..offset + RECORD_HEADER_BYTES)?;
    let n = u32::from_be_bytes(head[0..4].try_into().expect("4 bytes")) as usize;
    if n == 0 || n > RECORD_PAYLOAD_BYTES_MAX {
        return None;
    }
    let end = offset.checked_add(RECORD_HEADER_BYTES + n)?;
    if end > seg.len() {
        return None;
    }
    let crc = u32::from_be_bytes(head[4..8].try_into().expect("4 bytes"));
    if crc != crc32c::crc32c(&seg[offset + 8..end]) {
        return None;
    }
    let zxid = i64::from_be_bytes(head[8..16].try_into().expect("8 bytes"));
    let batch = i64::from_be_bytes(head[16..24].try_into().expect("8 bytes"));
    Some(Record {
        zxid,
        batch,
        payload: offset + RECORD_HEADER_BYTES..end,
        end,
    })
}

/// True when `next` may directly follow `prev` in the log: the next counter in the same epoch, or
/// a later epoch.
pub fn follows(prev: i64, next: i64) -> bool {
    next == prev + 1 || (next > prev && next >> 32 > prev >> 32)
}

/// Reads a whole segment as recovery does (see FORMAT.md).
pub fn scan(seg: &[u8]) -> Result<Scan, WalError> {
    scan_after(seg, i64::MIN)
}

/// True if every byte is zero (word at a time: recovery checks megabytes of preallocated tail).
fn all_zero(b: &[u8]) -> bool {
    let mut words = b.chunks_exact(8);
    words.all(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")) == 0)
        && words.remainder().iter().all(|x| *x == 0)
}

/// The last good record before a bad one: its zxid and batch.
#[derive(Clone, Copy)]
struct Last {
    zxid: i64,
    batch: i64,
}

/// Like [`scan`], but records with a zxid up to `after` (already in a snapshot) are checked and
/// skipped, not decoded, so they are left out of `txns`.
pub fn scan_after(seg: &[u8], after: i64) -> Result<Scan, WalError> {
    let first_zxid = read_header(seg)?;
    let mut out = Scan {
        first_zxid,
        txns: Vec::new(),
        batches: Vec::new(),
        ends: Vec::new(),
        valid_end: HEADER_BYTES,
        tail: Tail::Clean,
    };
    let mut offset = HEADER_BYTES;
    let mut last: Option<Last> = None;
    loop {
        let rest = &seg[offset.min(seg.len())..];
        if (rest.len() < RECORD_HEADER_BYTES || all_zero(&rest[..RECORD_HEADER_BYTES]))
            && all_zero(rest)
        {
            // Nothing but zeros follows: the end.
            out.valid_end = offset;
            return Ok(out);
        }
        let record = record_at(seg, offset);
        let fits = record.as_ref().and_then(|r| {
            let ok = match last {
                None => r.batch == r.zxid, // a segment starts with a batch
                Some(l) => {
                    r.zxid > l.zxid
                        && r.batch <= r.zxid
                        && (r.batch == l.batch || r.batch == r.zxid && r.batch > l.zxid)
                }
            };
            ok.then_some(r)
        });
        match fits {
            Some(r) => {
                if r.zxid > after {
                    let txn = codec::decode_txn(r.zxid, &seg[r.payload.clone()]).map_err(|_| {
                        WalError::BadPayload {
                            offset,
                            zxid: r.zxid,
                        }
                    })?;
                    out.txns.push(txn);
                    out.batches.push(r.batch);
                    out.ends.push(r.end);
                }
                last = Some(Last {
                    zxid: r.zxid,
                    batch: r.batch,
                });
                offset = r.end;
            }
            None => {
                let reason = if record.is_some() {
                    "zxid or batch out of order"
                } else {
                    "length or CRC invalid"
                };
                if !torn_at(seg, offset, last) {
                    return Err(WalError::Corrupt { offset, reason });
                }
                out.valid_end = offset;
                out.tail = Tail::Torn {
                    dropped: seg.len() - offset - trailing_zeros(&seg[offset..]),
                };
                return Ok(out);
            }
        }
    }
}

fn trailing_zeros(b: &[u8]) -> usize {
    b.iter().rev().take_while(|x| **x == 0).count()
}

/// Is the bad record at `bad` part of a torn last batch, rather than corruption of synced data?
///
/// A batch is written only after the one before it is synced, so only the last batch can be
/// damaged by a crash or a failed sync, and a disk may persist any subset of its blocks. Valid
/// records after `bad` are therefore harmless only if they all belong to one batch, and that
/// batch is the one `bad` lies in: the batch of the last good record (the hole is inside it) or
/// a batch starting right after it (the hole is its start). Anything else (records of a second
/// batch, or of a batch that does not fit there) means synced bytes were lost: corruption.
fn torn_at(seg: &[u8], bad: usize, last: Option<Last>) -> bool {
    let end = seg.len() - trailing_zeros(&seg[bad..]);
    let mut seen_batch: Option<i64> = None;
    let mut o = bad + 1;
    while o < end {
        let Some(r) = plausible_record(seg, o, last) else {
            o += 1;
            continue;
        };
        let fits = match last {
            Some(l) => r.batch == l.batch || (r.batch > l.zxid && follows(l.zxid, r.batch)),
            None => true, // the first batch of the segment
        };
        if !fits || seen_batch.is_some_and(|b| b != r.batch) {
            return false;
        }
        seen_batch = Some(r.batch);
        o = r.end;
    }
    true
}

/// A valid record at `o` whose zxid could come after `last` (a cheap look at the zxid first, so
/// random offsets rarely cost a CRC).
fn plausible_record(seg: &[u8], o: usize, last: Option<Last>) -> Option<Record> {
    let z = seg.get(o + 8..o + 16)?;
    let zxid = i64::from_be_bytes(z.try_into().expect("8 bytes"));
    let plausible = match last {
        None => zxid > 0,
        Some(l) => zxid > l.zxid && zxid - l.zxid <= 1 << 32,
    };
    if !plausible {
        return None;
    }
    record_at(seg, o).filter(|r| r.batch <= r.zxid)
}

#[cfg(test)]
mod tests;
