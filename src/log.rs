//! The transaction-log writer: segment files in `dataLogDir`, preallocated and zero-filled,
//! appended to with O_DIRECT DMA writes (glommio/io_uring), each batch made durable by an
//! fdatasync or written on an O_DSYNC handle ([`Durability`]). Byte layout and crash cases:
//! `engine/src/wal/FORMAT.md`.
//!
//! O_DIRECT writes whole 4 KiB blocks, so the writer keeps the bytes of the last, partly filled
//! block in memory and rewrites that block with the next batch. A block already holding
//! acknowledged records is only ever rewritten with the same bytes plus new ones after them.
//!
//! The pipeline core appends every txn here and acknowledges nothing before its batch is synced
//! (`pipeline_core.rs`); `recover` reads the segments back at startup.

use glommio::io::DmaFile;
use ringkeeper_engine::txn::Txn;
use ringkeeper_engine::wal;
use std::io;
use std::path::{Path, PathBuf};

/// Segment file name for a segment whose first zxid is `zxid`.
pub fn segment_name(zxid: i64) -> String {
    format!("log.{zxid:016x}")
}

/// Bytes of zeros written per DMA write while preallocating.
const ZERO_CHUNK_BYTES: usize = 1 << 20;

pub struct LogWriter {
    dir: PathBuf,
    file: DmaFile,
    path: PathBuf,
    segment_bytes: u64,
    /// End of the last record written.
    end: u64,
    /// Block-aligned offset where `tail` starts; `tail` holds the bytes from there to `end`.
    tail_start: u64,
    tail: Vec<u8>,
    sync: Durability,
    /// The next segment, being zero-filled in the background once this one is half full, so a
    /// rollover only writes a header instead of the whole segment.
    spare: Option<glommio::Task<io::Result<DmaFile>>>,
    /// Segments started from a prepared spare (for tests and logs).
    pub spares_used: u64,
}

/// Name of the segment being prepared ahead (not a `log.<zxid>` name, so recovery ignores it).
const SPARE_NAME: &str = "log.next.tmp";

/// Creates `path` and writes zeros over `segment_bytes` (already aligned), then fdatasyncs: an
/// fdatasync into a growing file also writes metadata and costs an order of magnitude more, so
/// appends must never grow the file.
async fn zero_filled(path: &Path, segment_bytes: u64) -> io::Result<DmaFile> {
    let file = crate::files::create_dma_file(path).await?;
    let mut pos = 0u64;
    while pos < segment_bytes {
        let n = ZERO_CHUNK_BYTES.min((segment_bytes - pos) as usize);
        let mut buf = file.alloc_dma_buffer(n);
        buf.as_bytes_mut().fill(0);
        let written = file.write_at(buf, pos).await.map_err(io_err)?;
        // A short write (a filesystem filling up) is retried from where it stopped, so the
        // error that ends it is the real one (ENOSPC), not "short write".
        if written == 0 || written as u64 != file.align_down(written as u64) {
            return Err(io::Error::other(format!(
                "short write while preallocating {}: {written} of {n} bytes",
                path.display()
            )));
        }
        pos += written as u64;
    }
    file.fdatasync().await.map_err(io_err)?;
    Ok(file)
}

/// Writes the segment header and makes it durable.
async fn write_header(file: &DmaFile, first_zxid: i64) -> io::Result<()> {
    let header = wal::header(first_zxid);
    let mut buf = file.alloc_dma_buffer(header.len());
    buf.as_bytes_mut().copy_from_slice(&header);
    file.write_at(buf, 0).await.map_err(io_err)?;
    file.fdatasync().await.map_err(io_err)
}

/// How a batch is made durable before it counts as logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Not at all (`forceSync=no`): written, left to the kernel.
    Off,
    /// A write, then an fdatasync (two io_uring operations, one after the other).
    Fdatasync,
    /// One write on an O_DSYNC handle, complete once durable: one io_uring operation, and one
    /// completion for the reactor to wait for instead of two in a row. The segment's blocks
    /// are allocated and zeroed beforehand, so it syncs the data and nothing else. On this
    /// machine it makes ensemble writes 10-25% faster at 1 and 32 outstanding and a standalone
    /// server's single write about 13% slower (the kernel finishes an O_DSYNC io_uring write
    /// from a workqueue), so ensemble members use it and standalone does not.
    DsyncWrites,
}

impl Durability {
    /// The mode for `forceSync` and the kind of server.
    pub fn of(force_sync: bool, ensemble: bool) -> Durability {
        match (force_sync, ensemble) {
            (false, _) => Durability::Off,
            (true, false) => Durability::Fdatasync,
            (true, true) => Durability::DsyncWrites,
        }
    }
}

/// A freshly prepared segment's handle, for appends: the same one, or for
/// [`Durability::DsyncWrites`] the segment reopened O_DSYNC.
async fn for_appends(file: DmaFile, path: &Path, sync: Durability) -> io::Result<DmaFile> {
    if sync != Durability::DsyncWrites {
        return Ok(file);
    }
    file.close().await.map_err(io_err)?;
    append_handle(path, sync).await
}

/// Opens a prepared segment for appends (O_DSYNC for [`Durability::DsyncWrites`]).
async fn append_handle(path: &Path, sync: Durability) -> io::Result<DmaFile> {
    glommio::io::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(if sync == Durability::DsyncWrites {
            libc::O_DSYNC
        } else {
            0
        })
        .dma_open(path)
        .await
        .map_err(io_err)
}

fn io_err(e: glommio::GlommioError<()>) -> io::Error {
    io::Error::other(e.to_string())
}

/// Makes a directory's entries (a create, rename or delete) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl LogWriter {
    /// Starts a new segment whose first record will have zxid `first_zxid`.
    pub async fn create(
        dir: &Path,
        first_zxid: i64,
        segment_bytes: u64,
        sync: Durability,
    ) -> io::Result<LogWriter> {
        assert!(
            segment_bytes as usize >= wal::HEADER_BYTES * 2,
            "segment of {segment_bytes} bytes"
        );
        crate::files::create_dirs(dir)?;
        let path = dir.join(segment_name(first_zxid));
        let file = crate::files::create_dma_file(&path).await?;
        let align = file.alignment() as usize;
        assert!(
            wal::HEADER_BYTES.is_multiple_of(align),
            "alignment {align} does not divide the header"
        );
        let segment_bytes = file.align_up(segment_bytes);
        file.close().await.map_err(io_err)?;
        let _ = std::fs::remove_file(dir.join(SPARE_NAME)); // left by an earlier run
        let file = zero_filled(&path, segment_bytes).await?;
        write_header(&file, first_zxid).await?;
        sync_dir(dir)?;
        let file = for_appends(file, &path, sync).await?;
        let end = wal::HEADER_BYTES as u64;
        Ok(LogWriter {
            dir: dir.to_path_buf(),
            file,
            path,
            segment_bytes,
            end,
            tail_start: end,
            tail: Vec::new(),
            sync,
            spare: None,
            spares_used: 0,
        })
    }

    /// Goes on appending to the newest segment recovery found, when it has room for more than a
    /// block: no new segment (and no zero-filling) at every startup.
    pub async fn resume(
        dir: &Path,
        seg: &TailSegment,
        sync: Durability,
    ) -> io::Result<Option<LogWriter>> {
        let file = append_handle(&seg.path, sync).await?;
        let segment_bytes = file.align_down(seg.file_bytes);
        if segment_bytes < seg.valid_end + file.alignment() * 2 {
            file.close().await.map_err(io_err)?;
            return Ok(None); // full: start a new segment
        }
        let tail_start = file.align_down(seg.valid_end);
        let mut tail = vec![0u8; (seg.valid_end - tail_start) as usize];
        std::os::unix::fs::FileExt::read_exact_at(
            &std::fs::File::open(&seg.path)?,
            &mut tail,
            tail_start,
        )?;
        let _ = std::fs::remove_file(dir.join(SPARE_NAME)); // left by an earlier run
        Ok(Some(LogWriter {
            dir: dir.to_path_buf(),
            file,
            path: seg.path.clone(),
            segment_bytes,
            end: seg.valid_end,
            tail_start,
            tail,
            sync,
            spare: None,
            spares_used: 0,
        }))
    }

    /// A writer for txns after `last_zxid`: it goes on in `tail` (the newest segment recovery
    /// found) when that has room, else starts a new segment.
    pub async fn open_after(
        dir: &Path,
        tail: Option<&TailSegment>,
        last_zxid: i64,
        segment_bytes: u64,
        sync: Durability,
    ) -> io::Result<LogWriter> {
        if let Some(seg) = tail {
            if let Some(w) = LogWriter::resume(dir, seg, sync).await? {
                return Ok(w);
            }
        }
        LogWriter::create(dir, last_zxid + 1, segment_bytes, sync).await
    }

    /// Starts the segment for a batch beginning at `first_zxid`: the spare prepared in the
    /// background when there is one (header, fdatasync, rename, directory fsync), a fresh one
    /// otherwise.
    async fn roll_over(&mut self, first_zxid: i64, batch_bytes: u64) -> io::Result<()> {
        let room = self.segment_bytes - wal::HEADER_BYTES as u64;
        let next = match self.spare.take() {
            Some(spare) if batch_bytes <= room => {
                let file = spare.await?;
                write_header(&file, first_zxid).await?;
                let path = self.dir.join(segment_name(first_zxid));
                file.rename(&path).await.map_err(io_err)?;
                sync_dir(&self.dir)?;
                let file = for_appends(file, &path, self.sync).await?;
                let end = wal::HEADER_BYTES as u64;
                LogWriter {
                    dir: self.dir.clone(),
                    file,
                    path,
                    segment_bytes: self.segment_bytes,
                    end,
                    tail_start: end,
                    tail: Vec::new(),
                    sync: self.sync,
                    spare: None,
                    spares_used: self.spares_used + 1,
                }
            }
            spare => {
                if let Some(spare) = spare {
                    let _ = spare.await; // a batch too big for it: finish and discard it
                }
                let bytes = self.segment_bytes.max(batch_bytes * 2);
                let mut fresh = LogWriter::create(&self.dir, first_zxid, bytes, self.sync).await?;
                fresh.spares_used = self.spares_used;
                fresh
            }
        };
        let old = std::mem::replace(self, next);
        let _ = old.file.close().await;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the segment (and drops a spare being prepared), for the log to be rewritten on
    /// disk (an ensemble member's truncation or snapshot install).
    pub async fn close(mut self) {
        if let Some(spare) = self.spare.take() {
            if let Ok(f) = spare.await {
                let _ = f.close().await;
            }
            let _ = std::fs::remove_file(self.dir.join(SPARE_NAME));
        }
        let _ = self.file.close().await;
    }

    /// Appends a batch and makes it durable (one fdatasync). On error nothing of this batch may
    /// be acknowledged, and the writer must not be used again: an fsync failure is final.
    pub async fn append(&mut self, txns: &[Txn]) -> io::Result<()> {
        if txns.is_empty() {
            return Ok(());
        }
        let mut records = Vec::new();
        wal::encode_batch(&mut records, txns);
        if self.end + records.len() as u64 > self.segment_bytes {
            self.roll_over(txns[0].zxid, records.len() as u64).await?;
        }
        self.tail.extend_from_slice(&records);
        let len = self.file.align_up(self.tail.len() as u64) as usize;
        let mut buf = self.file.alloc_dma_buffer(len);
        let bytes = buf.as_bytes_mut();
        bytes[..self.tail.len()].copy_from_slice(&self.tail);
        bytes[self.tail.len()..].fill(0);
        let written = self
            .file
            .write_at(buf, self.tail_start)
            .await
            .map_err(io_err)?;
        if written != len {
            return Err(io::Error::other(format!(
                "short write to {}",
                self.path.display()
            )));
        }
        if self.sync == Durability::Fdatasync {
            self.file.fdatasync().await.map_err(io_err)?;
        }
        self.end += records.len() as u64;
        if self.spare.is_none() && self.end > self.segment_bytes / 2 {
            let (path, bytes) = (self.dir.join(SPARE_NAME), self.segment_bytes);
            self.spare = Some(glommio::spawn_local(async move {
                zero_filled(&path, bytes).await
            }));
        }
        let new_tail_start = self.file.align_down(self.end);
        self.tail
            .drain(..(new_tail_start - self.tail_start) as usize);
        self.tail_start = new_tail_start;
        Ok(())
    }
}

/// What startup recovery read back.
pub struct Recovered {
    pub txns: Vec<Txn>,
    pub segments: usize,
    /// The newest segment, where appends can go on.
    pub tail: Option<TailSegment>,
}

/// The newest segment as recovery left it: records end at `valid_end`, zeros after.
#[derive(Debug, Clone)]
pub struct TailSegment {
    pub path: PathBuf,
    pub valid_end: u64,
    pub file_bytes: u64,
}

/// Maps a segment for reading.
#[allow(unsafe_code)]
fn map_segment(path: &Path) -> io::Result<memmap2::Mmap> {
    let file = std::fs::File::open(path)?;
    // SAFETY: recovery runs before any writer starts, and nothing truncates a segment; the map
    // is dropped before the torn-tail repair writes to the file.
    unsafe { memmap2::Mmap::map(&file) }
}

/// Where Ringkeeper keeps its log inside `dataLogDir`.
pub fn log_dir(data_log_dir: &Path) -> PathBuf {
    data_log_dir.join("rk-log")
}

/// Every segment in `dir` (`log.<first zxid>`), in zxid order.
pub fn list_segments(dir: &Path) -> io::Result<Vec<(i64, PathBuf)>> {
    files_by_zxid(dir, "log.")
}

/// The files in `dir` named `<prefix><zxid as 16 hex digits>`, in zxid order (none if `dir` does
/// not exist). Log segments and snapshots are both named this way.
pub fn files_by_zxid(dir: &Path, prefix: &str) -> io::Result<Vec<(i64, PathBuf)>> {
    let mut out: Vec<(i64, PathBuf)> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| {
                let e = e.ok()?;
                let name = e.file_name().into_string().ok()?;
                let hex = name.strip_prefix(prefix)?;
                if hex.len() != 16 {
                    return None;
                }
                let zxid = u64::from_str_radix(hex, 16).ok()? as i64;
                Some((zxid, e.path()))
            })
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    out.sort();
    Ok(out)
}

/// The segments in `dir` from the one that holds `after` on, each read when the iterator gets
/// to it, as its txns; None if no segment reaches back to `after` (purged, say). The log is
/// being appended to meanwhile, so the files are read (no map) and an unfinished record at
/// the end is the end.
fn segments_from(
    dir: &Path,
    after: i64,
) -> Result<Option<impl Iterator<Item = Result<Vec<Txn>, String>>>, String> {
    let segments = list_segments(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    // Segments before the last one that starts at or below `after` end before it.
    let Some(start) = segments.iter().rposition(|(first, _)| *first <= after) else {
        return Ok(None);
    };
    Ok(Some(segments.into_iter().skip(start).map(|(_, path)| {
        let bytes =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let scan = wal::scan(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(scan.txns)
    })))
}

/// For a learner behind the leader's DIFF window: what `peer::log_range` finds in the segments
/// in `dir` (the newest zxid at or below `after`, then every txn through `through`), reading
/// no segment past the one holding `through`. `Ok(None)`: the log does not hold that range (purged, say) or it
/// is too big to be worth a DIFF.
pub fn read_range(
    dir: &Path,
    after: i64,
    through: i64,
    limits: ringkeeper_engine::zab::peer::LogLimits,
) -> Result<Option<ringkeeper_engine::zab::peer::LogSpan>, String> {
    let Some(segments) = segments_from(dir, after)? else {
        return Ok(None);
    };
    let mut failed = None;
    let txns = segments
        .map_while(|read| match read {
            Ok(txns) => Some(txns),
            Err(e) => {
                failed = Some(e);
                None
            }
        })
        .flatten();
    let span = ringkeeper_engine::zab::peer::log_range(txns, after, through, limits);
    match (span, failed) {
        (Some(s), _) => Ok(Some(s)),
        (None, Some(e)) => Err(e),
        (None, None) => Ok(None),
    }
}

/// Hands `send` every txn the segments in `dir` hold after `after` through `through`, in order
/// (a DIFF's txns read again as the learner's connection drains, `peer::Msg::FromLog`); the
/// count sent. An error if the log no longer holds them all, or `send` says stop (false).
pub fn stream_range(
    dir: &Path,
    after: i64,
    through: i64,
    mut send: impl FnMut(Txn) -> bool,
) -> Result<u64, String> {
    use ringkeeper_engine::zab::peer::{LogStep, LogStream};
    let Some(segments) = segments_from(dir, after)? else {
        return Err(format!(
            "no segment in {} reaches back to {after:#x}",
            dir.display()
        ));
    };
    let mut stream = LogStream::new(after, through);
    let mut sent = 0;
    for txns in segments {
        for t in txns? {
            if stream.done() {
                return Ok(sent);
            }
            match stream.step(t.zxid) {
                LogStep::Skip => {}
                LogStep::Send => {
                    if !send(t) {
                        return Err("stopped by the sender (its connection is gone)".into());
                    }
                    sent += 1;
                }
                LogStep::Broken => {
                    return Err(format!(
                        "the log in {} has {:#x} where the next txn of the DIFF was due",
                        dir.display(),
                        t.zxid
                    ))
                }
            }
        }
        if stream.done() {
            return Ok(sent);
        }
    }
    Err(format!(
        "the log in {} ends before {through:#x}",
        dir.display()
    ))
}

/// Reads the txns after zxid `after` (the loaded snapshot's, or 0) from the segments in `dir`, in
/// zxid order, skipping segments that hold nothing after it. A torn tail (an unacknowledged write
/// cut short by a crash) is zeroed on disk and logged; a corrupt record before the tail, or a gap
/// in the zxids, stops startup with an error naming the file (and offset).
pub fn recover(dir: &Path, after: i64) -> Result<Recovered, String> {
    let segments = list_segments(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut txns: Vec<Txn> = Vec::new();
    let mut read = 0;
    let mut prev = after;
    let mut tail = None;
    for (i, (_, path)) in segments.iter().enumerate() {
        if segments
            .get(i + 1)
            .is_some_and(|(next_first, _)| *next_first <= after + 1)
        {
            continue; // every txn in it is in the snapshot
        }
        read += 1;
        let map = map_segment(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let scan = wal::scan_after(&map, after)
            .map_err(|e| format!("{}: {e}; refusing to start", path.display()))?;
        let file_bytes = map.len() as u64;
        drop(map);
        if let wal::Tail::Torn { dropped } = scan.tail {
            tracing::warn!(file = %path.display(), offset = scan.valid_end, dropped,
                "torn tail: dropping the bytes of a write that was never acknowledged");
            zero_from(path, scan.valid_end as u64, dropped)
                .map_err(|e| format!("cannot repair {}: {e}", path.display()))?;
        }
        tail = Some(TailSegment {
            path: path.clone(),
            valid_end: scan.valid_end as u64,
            file_bytes,
        });
        for txn in scan.txns {
            if txn.zxid <= after {
                continue;
            }
            if !wal::follows(prev, txn.zxid) {
                return Err(format!(
                    "{}: zxid {:#x} does not follow {:#x}: txns are missing; refusing to start",
                    path.display(),
                    txn.zxid,
                    prev
                ));
            }
            prev = txn.zxid;
            txns.push(txn);
        }
    }
    Ok(Recovered {
        txns,
        segments: read,
        tail,
    })
}

fn zero_from(path: &Path, offset: u64, len: usize) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all_at(&vec![0u8; len], offset)?;
    f.sync_data()
}

/// `ringkeeper inspect log FILE`: prints a segment's records and how it ends; Err names the
/// offset of a corrupt record.
pub fn inspect(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let scan = wal::scan(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = format!(
        "segment {}: first zxid {:#x}, {} records\n",
        path.display(),
        scan.first_zxid,
        scan.txns.len()
    );
    for t in &scan.txns {
        out.push_str(&format!(
            "zxid {:#x} time {} session {:#x} cxid {:#x} {:?}\n",
            t.zxid, t.time_ms, t.session_id, t.cxid, t.op
        ));
    }
    out.push_str(&match scan.tail {
        wal::Tail::Clean => format!("end at offset {} (clean; CRCs verified)\n", scan.valid_end),
        wal::Tail::Torn { dropped } => {
            format!("torn tail at offset {}: {dropped} bytes of an unacknowledged write would be dropped\n", scan.valid_end)
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkeeper_engine::txn::TxnOp;

    fn temp_dir(tag: &str) -> PathBuf {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        std::env::temp_dir().join(format!("rk-log-{tag}-{}-{n}", std::process::id()))
    }

    fn txn(zxid: i64, size: usize) -> Txn {
        Txn {
            zxid,
            time_ms: zxid * 10,
            session_id: 7,
            cxid: zxid as i32,
            op: TxnOp::SetData {
                path: format!("/k{zxid}"),
                data: Some(vec![b'v'; size].into()),
                version: 1,
            },
        }
    }

    fn run<F: std::future::Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn batches_survive_reopen_and_roll_over_into_new_segments() {
        batches_roll_over(Durability::Fdatasync, "roll");
    }

    #[test]
    fn batches_on_an_o_dsync_handle_survive_reopen_and_roll_over_too() {
        batches_roll_over(Durability::DsyncWrites, "roll-dsync");
    }

    fn batches_roll_over(sync: Durability, name: &str) {
        let dir = temp_dir(name);
        let d = dir.clone();
        run(move || async move {
            let mut w = LogWriter::create(&d, 1, 64 << 10, sync).await.unwrap();
            let mut zxid = 0;
            // Rollovers after the first segment use the spare prepared in the background.
            for batch in 0..120 {
                let txns: Vec<Txn> = (0..(batch % 7 + 1))
                    .map(|_| {
                        zxid += 1;
                        txn(zxid, (zxid as usize * 37) % 700)
                    })
                    .collect();
                w.append(&txns).await.unwrap();
            }
            assert!(
                w.spares_used >= 1,
                "rollovers use the spare segment prepared in the background"
            );
        });
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != SPARE_NAME)
            .collect();
        names.sort();
        assert!(names.len() > 1, "small segments must roll over: {names:?}");
        let mut all = Vec::new();
        for name in &names {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            assert_eq!(
                bytes.len(),
                64 << 10,
                "segments are preallocated to their full size"
            );
            let scan = wal::scan(&bytes).unwrap();
            assert_eq!(scan.tail, wal::Tail::Clean);
            assert_eq!(segment_name(scan.first_zxid), *name);
            all.extend(scan.txns);
        }
        let zxids: Vec<i64> = all.iter().map(|t| t.zxid).collect();
        assert_eq!(
            zxids,
            (1..=zxids.len() as i64).collect::<Vec<_>>(),
            "every txn, once, in order"
        );
        assert_eq!(all.len(), (0..120).map(|b| b % 7 + 1).sum::<usize>());
        assert_eq!(all[10], txn(11, 11 * 37));
        assert!(inspect(&dir.join(&names[0]))
            .unwrap()
            .contains("clean; CRCs verified"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_restart_resumes_the_newest_segment_after_its_last_record() {
        let dir = temp_dir("resume");
        let d = dir.clone();
        run(move || async move {
            let mut w = LogWriter::create(&d, 1, 64 << 10, Durability::Fdatasync)
                .await
                .unwrap();
            for z in 1..=5 {
                w.append(&[txn(z, 300 + z as usize)]).await.unwrap();
            }
        });
        let first = recover(&dir, 0).unwrap();
        assert_eq!(first.txns.len(), 5);
        let seg = first.tail.expect("a newest segment");
        let d = dir.clone();
        run(move || async move {
            let mut w = LogWriter::resume(&d, &seg, Durability::DsyncWrites)
                .await
                .unwrap()
                .expect("room left");
            assert_eq!(w.path(), seg.path);
            for z in 6..=9 {
                w.append(&[txn(z, 100)]).await.unwrap();
            }
        });
        let again = recover(&dir, 0).unwrap();
        assert_eq!(again.segments, 1, "no new segment at restart");
        let zxids: Vec<i64> = again.txns.iter().map(|t| t.zxid).collect();
        assert_eq!(zxids, (1..=9).collect::<Vec<_>>());
        assert_eq!(
            again.txns[2],
            txn(3, 303),
            "records before the restart are intact"
        );
        let after = recover(&dir, 4).unwrap();
        assert_eq!(
            after.txns.first().map(|t| t.zxid),
            Some(5),
            "only txns after the snapshot"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn inspect_names_the_offset_of_a_corrupt_record() {
        let dir = logged("corrupt", 10, 50);
        let path = dir.join(segment_name(1));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[wal::HEADER_BYTES + 100] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let err = inspect(&path).unwrap_err();
        assert!(
            err.contains(&path.display().to_string()) && err.contains("corrupt record at offset"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A log in a new directory of 32 KiB segments: txns 1 to `count`, each with `size`
    /// bytes of data, one batch each.
    fn logged(tag: &str, count: i64, size: usize) -> PathBuf {
        let dir = temp_dir(tag);
        let d = dir.clone();
        run(move || async move {
            let mut w = LogWriter::create(&d, 1, 32 << 10, Durability::DsyncWrites)
                .await
                .unwrap();
            for z in 1..=count {
                w.append(&[txn(z, size)]).await.unwrap();
            }
        });
        dir
    }

    /// A DIFF from the log: surveyed across segments, then streamed again exactly (the txns
    /// after the base through the end, nothing else); a segment gone since the survey breaks
    /// the stream, as does a log that no longer reaches back.
    #[test]
    fn a_diff_range_is_surveyed_then_streamed_across_segments() {
        use ringkeeper_engine::zab::peer::LogLimits;
        let dir = logged("range", 400, 200);
        let segments = list_segments(&dir).unwrap();
        assert!(segments.len() >= 4, "{segments:?}");
        let free = LogLimits {
            count_free: usize::MAX,
            bytes_max: 0,
        };
        let span = read_range(&dir, 50, 350, free)
            .unwrap()
            .expect("the log has it");
        assert_eq!(
            (span.base, span.first, span.end, span.txns),
            (50, Some(51), 350, 300)
        );
        let tight = LogLimits {
            count_free: 299,
            bytes_max: span.bytes - 1,
        };
        assert_eq!(read_range(&dir, 50, 350, tight).unwrap(), None, "too big");
        let mut sent = Vec::new();
        let n = stream_range(&dir, 50, 350, |t| {
            sent.push(t);
            true
        })
        .unwrap();
        assert_eq!(n, 300);
        assert_eq!(sent.first(), Some(&txn(51, 200)));
        assert_eq!(
            sent.iter().map(|t| t.zxid).collect::<Vec<_>>(),
            (51..=350).collect::<Vec<_>>()
        );
        // A connection that goes away stops the stream.
        assert!(stream_range(&dir, 50, 350, |_| false).is_err());
        // A segment in the middle gone: the survey finds the gap, and the stream stops there.
        let middle = &segments[segments.len() / 2];
        assert!(middle.0 > 51 && middle.0 < 350, "{middle:?}");
        std::fs::remove_file(&middle.1).unwrap();
        assert_eq!(read_range(&dir, 50, 350, free).unwrap(), None);
        let mut got = 0;
        let err = stream_range(&dir, 50, 350, |_| {
            got += 1;
            true
        })
        .unwrap_err();
        assert!(
            err.contains("where the next txn of the DIFF was due"),
            "{err}"
        );
        assert_eq!(got, middle.0 - 51, "every txn before the gap, none after");
        // The first segment gone: the log no longer reaches back.
        std::fs::remove_file(&segments[0].1).unwrap();
        assert_eq!(read_range(&dir, 5, 350, free).unwrap(), None);
        let err = stream_range(&dir, 5, 350, |_| true).unwrap_err();
        assert!(err.contains("reaches back"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
