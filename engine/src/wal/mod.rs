//! The transaction log's byte format and its recovery scan, over plain byte slices (no IO): the
//! runtime owns files, DMA and fdatasync; this module decides what bytes go down and what a
//! segment's bytes mean after a crash. Layout and crash cases: `FORMAT.md` beside this file.
//!
//! Invariants of a valid segment: the header checks out; records follow back to back from
//! `HEADER_BYTES`; every record's CRC matches and its zxid is greater than the one before.

pub mod codec;

use crate::txn::Txn;

pub const MAGIC: &[u8; 8] = b"RKTXNLOG";
pub const FORMAT_VERSION: u32 = 1;
/// The header takes one 4 KiB block so records start O_DIRECT-aligned.
pub const HEADER_BYTES: usize = 4096;
/// Record header: length, CRC32C, zxid.
pub const RECORD_HEADER_BYTES: usize = 16;
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

/// Appends one framed record for `txn` to `out`.
pub fn encode_record(out: &mut Vec<u8>, txn: &Txn) {
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
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
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
    /// Where the next record goes: the end of the last valid record.
    pub valid_end: usize,
    pub tail: Tail,
}

/// A record that checks out at `offset`: (zxid, payload range, end offset).
fn record_at(seg: &[u8], offset: usize) -> Option<(i64, std::ops::Range<usize>, usize)> {
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
    Some((zxid, offset + RECORD_HEADER_BYTES..end, end))
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

/// Like [`scan`], but records with a zxid up to `after` (already in a snapshot) are checked and
/// skipped, not decoded, so they are left out of `txns`.
pub fn scan_after(seg: &[u8], after: i64) -> Result<Scan, WalError> {
    let first_zxid = read_header(seg)?;
    let mut txns: Vec<Txn> = Vec::new();
    let mut offset = HEADER_BYTES;
    let mut last_zxid = i64::MIN;
    loop {
        let rest = &seg[offset.min(seg.len())..];
        if rest.len() < RECORD_HEADER_BYTES || all_zero(&rest[..RECORD_HEADER_BYTES]) {
            // The end, if nothing but zeros follows; otherwise a torn record.
            if all_zero(rest) {
                return Ok(Scan {
                    first_zxid,
                    txns,
                    valid_end: offset,
                    tail: Tail::Clean,
                });
            }
        }
        match record_at(seg, offset) {
            Some((zxid, payload, end)) if zxid > last_zxid => {
                if zxid > after {
                    let txn = codec::decode_txn(zxid, &seg[payload])
                        .map_err(|_| WalError::BadPayload { offset, zxid })?;
                    txns.push(txn);
                }
                last_zxid = zxid;
                offset = end;
            }
            found => {
                let reason = if found.is_some() {
                    "zxid does not increase"
                } else {
                    "length or CRC invalid"
                };
                if valid_record_after(seg, offset, last_zxid) {
                    return Err(WalError::Corrupt { offset, reason });
                }
                let dropped = seg.len() - offset - trailing_zeros(&seg[offset..]);
                return Ok(Scan {
                    first_zxid,
                    txns,
                    valid_end: offset,
                    tail: Tail::Torn { dropped },
                });
            }
        }
    }
}

fn trailing_zeros(b: &[u8]) -> usize {
    b.iter().rev().take_while(|x| **x == 0).count()
}

/// Is there any valid record after a bad one at `bad` (with a zxid above `last_zxid`)? First the
/// offset the bad record's own length implies, then every offset after it.
fn valid_record_after(seg: &[u8], bad: usize, last_zxid: i64) -> bool {
    // A cheap look at the zxid first (a later record's zxid is within one epoch's counter of the
    // last good one), so random offsets rarely cost a CRC.
    let plausible = |o: usize| {
        seg.get(o + 8..o + 16).is_some_and(|z| {
            let zxid = i64::from_be_bytes(z.try_into().expect("8 bytes"));
            zxid > last_zxid && (last_zxid == i64::MIN || zxid - last_zxid <= 1 << 32)
        })
    };
    let later =
        |o: usize| plausible(o) && record_at(seg, o).is_some_and(|(zxid, _, _)| zxid > last_zxid);
    if let Some(head) = seg.get(bad..bad + 4) {
        let n = u32::from_be_bytes(head.try_into().expect("4 bytes")) as usize;
        if n > 0 && n <= RECORD_PAYLOAD_BYTES_MAX && later(bad + RECORD_HEADER_BYTES + n) {
            return true;
        }
    }
    let end = seg.len() - trailing_zeros(&seg[bad..]);
    (bad + 1..end).any(later)
}

#[cfg(test)]
mod tests;
