//! Snapshots on disk: written by a thread of their own from an immutable tree version, loaded by
//! mmap at startup, purged by retention. The byte layout is `engine/src/snap/FORMAT.md`.
//!
//! Writing: the pipeline hands over a [`Job`] (an O(1) clone of its newest tree and a copy of the
//! session table, both at the same zxid) and goes on; the write path never waits for a snapshot.
//! The thread streams the archive into `snapshot.<zxid>.tmp`, fdatasyncs it, waits until the log
//! has synced that zxid (so a snapshot never holds a txn the log could still lose), renames it to
//! `snapshot.<zxid>` and fsyncs the directory. A failed snapshot is logged and dropped: the log
//! still holds every txn, so nothing is lost and the next snapshot tries again.
//!
//! The thread is not pinned and runs at nice +10: on a small machine it takes spare cycles from
//! whichever core has them instead of owning one.

use crate::log::{self, sync_dir};
use crate::shared::{PipeMsg, Shared};
use bytes::Bytes;
use ringkeeper_engine::snap::{self, Encoder, Loaded, SnapSession};
use ringkeeper_engine::tree::{DataTree, Restorer};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where Ringkeeper keeps its snapshots inside `dataDir`.
pub fn snap_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("rk-snap")
}

pub fn snapshot_name(zxid: i64) -> String {
    format!("snapshot.{zxid:016x}")
}

/// A snapshot to write.
pub struct Job {
    pub tree: DataTree,
    pub sessions: Vec<SnapSession>,
    /// Who asked (the `snap` four-letter word), told the outcome.
    pub reply: Option<flume::Sender<String>>,
}

/// A snapshot on disk.
#[derive(Debug)]
pub struct Written {
    pub path: PathBuf,
    pub zxid: i64,
    pub bytes: u64,
    pub nodes: usize,
    pub ms: u64,
}

/// Every snapshot in `dir`, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<(i64, PathBuf)>> {
    log::files_by_zxid(dir, "snapshot.")
}

/// Writes `job` into `dir`. `synced` reports the log's synced zxid; the snapshot only gets its
/// final name once the log holds every txn in it.
pub fn write(dir: &Path, job: &Job, synced: impl Fn() -> i64) -> io::Result<Written> {
    let started = Instant::now();
    let zxid = job.tree.last_zxid();
    crate::files::create_dirs(dir)?;
    let path = dir.join(snapshot_name(zxid));
    let tmp = dir.join(format!("{}.tmp", snapshot_name(zxid)));
    let result = (|| {
        let file = crate::files::create_file(&tmp, crate::files::DATA_FILE_MODE)?;
        let mut out = io::BufWriter::with_capacity(4 << 20, &file);
        out.write_all(&[0u8; snap::HEADER_BYTES])?;
        let mut enc = Encoder::new(&job.tree);
        while let Some(chunk) = enc.next_chunk() {
            out.write_all(&chunk)?;
        }
        let (meta, header) = enc.finish(&job.sessions);
        out.write_all(&meta)?;
        out.flush()?;
        drop(out);
        std::os::unix::fs::FileExt::write_all_at(&file, &header, 0)?;
        file.sync_data()?;
        let bytes = file.metadata()?.len();
        while synced() < zxid {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::fs::rename(&tmp, &path)?;
        sync_dir(dir)?;
        Ok(bytes)
    })();
    match result {
        Ok(bytes) => Ok(Written {
            path,
            zxid,
            bytes,
            nodes: job.tree.node_count(),
            ms: started.elapsed().as_millis() as u64,
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Maps a snapshot file and loads it; node data stays in the map.
#[allow(unsafe_code)]
pub fn load(path: &Path) -> Result<Loaded, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: a snapshot file is written once under a temporary name and never modified after
    // its rename; Ringkeeper only ever deletes it, which leaves the mapping intact.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }
        .map_err(|e| format!("cannot map {}: {e}", path.display()))?;
    let bytes = Bytes::from_owner(map);
    load_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Loading in two halves on two threads (startup has every core to itself): this thread checks
/// frames and builds nodes, a helper inserts them into the path map, the larger share of the
/// work. Batches are bounded, so at most a few frames' nodes wait between the two.
fn load_bytes(bytes: &Bytes) -> Result<Loaded, snap::SnapError> {
    let (mut reader, info) = snap::NodeReader::open(bytes)?;
    let (tx, rx) = flume::bounded::<snap::NodeBatch>(4);
    let builder = std::thread::Builder::new()
        .name("rk-snap-load".into())
        .spawn(move || {
            let mut restorer = Restorer::new();
            for batch in rx {
                snap::insert_batch(&mut restorer, batch)?;
            }
            Ok(restorer)
        })
        .expect("spawning the snapshot loader");
    let mut read = Ok(());
    loop {
        match reader.next_batch() {
            Ok(Some(batch)) => {
                if tx.send(batch).is_err() {
                    break; // the builder stopped on an error; it reports it
                }
            }
            Ok(None) => break,
            Err(e) => {
                read = Err(e);
                break;
            }
        }
    }
    drop(tx);
    let restorer = builder.join().expect("the snapshot loader panicked")?;
    read?;
    reader.finish()?;
    Ok(Loaded {
        tree: restorer.finish(info.last_zxid),
        sessions: info.sessions,
        last_zxid: info.last_zxid,
    })
}

/// Loads the newest snapshot that is valid, skipping (and logging) corrupt ones: the log after an
/// older snapshot still has everything, and recovery refuses to start if it does not.
pub fn load_newest(dir: &Path) -> Result<Option<(PathBuf, Loaded)>, String> {
    let snaps = list(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for (_, path) in snaps.into_iter().rev() {
        match load(&path) {
            Ok(loaded) => return Ok(Some((path, loaded))),
            Err(e) => tracing::error!(error = %e, "snapshot is unusable; trying an older one"),
        }
    }
    Ok(None)
}

/// What a purge deleted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub snapshots: Vec<PathBuf>,
    pub segments: Vec<PathBuf>,
}

/// Keeps the newest `retain` snapshots and the log segments they need (every segment holding a
/// txn after the oldest kept snapshot); deletes the rest. Never deletes the newest segment.
pub fn purge(snap_dir: &Path, log_dir: &Path, retain: usize) -> io::Result<Purged> {
    assert!(retain >= 1, "retain at least one snapshot");
    let snaps = list(snap_dir)?;
    let mut out = Purged::default();
    if snaps.len() <= retain {
        return Ok(out);
    }
    let (old, kept) = snaps.split_at(snaps.len() - retain);
    let oldest_kept = kept[0].0;
    let segments = log::list_segments(log_dir)?;
    // A segment's txns run from its first zxid to just before the next segment's.
    for pair in segments.windows(2) {
        let ((_, path), (next_first, _)) = (&pair[0], &pair[1]);
        if *next_first <= oldest_kept + 1 {
            std::fs::remove_file(path)?;
            out.segments.push(path.clone());
        }
    }
    for (_, path) in old {
        std::fs::remove_file(path)?;
        out.snapshots.push(path.clone());
    }
    sync_dir(snap_dir)?;
    if log_dir.exists() {
        sync_dir(log_dir)?;
    }
    Ok(out)
}

#[allow(unsafe_code)]
fn lower_priority() {
    // SAFETY: plain syscalls on this thread's own id; no memory is shared with the kernel.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

fn run_purge(shared: &Shared) {
    let cfg = &shared.cfg;
    match purge(
        &snap_dir(&cfg.data_dir),
        &log::log_dir(&cfg.data_log_dir),
        cfg.snap_retain_count,
    ) {
        Ok(p) if p.snapshots.is_empty() && p.segments.is_empty() => {}
        Ok(p) => tracing::info!(
            snapshots = p.snapshots.len(),
            segments = p.segments.len(),
            retain = cfg.snap_retain_count,
            "purged old snapshots and the log segments only they needed"
        ),
        Err(e) => tracing::error!(error = %e, "purge failed; will try again next interval"),
    }
}

/// Starts the snapshot thread; jobs go in through the returned sender (room for one: the
/// pipeline skips a snapshot while one is being written, as ZooKeeper does).
pub fn spawn(shared: Arc<Shared>) -> flume::Sender<Job> {
    let (tx, rx) = flume::bounded::<Job>(1);
    let dir = snap_dir(&shared.cfg.data_dir);
    // Temporary files of a snapshot a crash interrupted.
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    std::thread::Builder::new()
        .name("rk-snap".into())
        .spawn(move || {
            lower_priority();
            let interval = shared.cfg.purge_interval_hours;
            let every = Duration::from_secs(interval.max(1) * 3600);
            let mut next_purge = Instant::now();
            loop {
                if interval > 0 && Instant::now() >= next_purge {
                    run_purge(&shared);
                    next_purge = Instant::now() + every;
                }
                let job = if interval > 0 {
                    match rx.recv_timeout(next_purge.saturating_duration_since(Instant::now())) {
                        Ok(job) => job,
                        Err(flume::RecvTimeoutError::Timeout) => continue,
                        Err(flume::RecvTimeoutError::Disconnected) => return,
                    }
                } else {
                    match rx.recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    }
                };
                let stats = &shared.stats;
                let outcome = write(&dir, &job, || stats.log_synced_zxid.load(SeqCst));
                let answer = match outcome {
                    Ok(w) => {
                        tracing::info!(path = %w.path.display(), zxid = format_args!("{:#x}", w.zxid),
                            bytes = w.bytes, nodes = w.nodes, ms = w.ms, "snapshot written");
                        stats.snapshots_written.fetch_add(1, Relaxed);
                        stats.snapshot_last_zxid.store(w.zxid, Relaxed);
                        stats.snapshot_last_ms.store(w.ms, Relaxed);
                        stats.snapshot_ms.lock().expect("not poisoned").record(w.ms);
                        stats.snapshot_last_bytes.store(w.bytes, Relaxed);
                        format!(
                            "snapshot {}\nzxid 0x{:x}\nnodes {}\nbytes {}\nms {}\n",
                            w.path.display(),
                            w.zxid,
                            w.nodes,
                            w.bytes,
                            w.ms
                        )
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "snapshot failed; the log still holds every txn");
                        stats.snapshot_failures.fetch_add(1, Relaxed);
                        format!("snapshot failed: {e}\n")
                    }
                };
                if let Some(reply) = job.reply {
                    let _ = reply.send(answer);
                }
                // The node asks for the next snapshot only after this.
                if shared.to_pipeline.send(PipeMsg::SnapshotWritten).is_err() {
                    return;
                }
            }
        })
        .expect("spawning the snapshot thread");
    tx
}

/// `ringkeeper inspect snapshot FILE`: the header, every node in preorder with its Stat and data
/// size (as ZooKeeper's SnapshotFormatter prints them, plus `data = null` for null data), and the
/// sessions, after checking every
/// checksum. Output is streamed, so a large snapshot can be piped through `head` (a reader that
/// goes away ends the listing quietly).
pub fn inspect(path: &Path, out: &mut dyn Write) -> Result<(), String> {
    let loaded = load(path)?;
    match list_nodes(&loaded, path, out) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(format!("writing the listing: {e}")),
        _ => Ok(()),
    }
}

fn list_nodes(loaded: &Loaded, path: &Path, out: &mut dyn Write) -> io::Result<()> {
    let tree = &loaded.tree;
    writeln!(
        out,
        "snapshot {}: last zxid 0x{:x}, {} nodes, {} sessions (checksums verified)",
        path.display(),
        loaded.last_zxid,
        tree.node_count(),
        loaded.sessions.len()
    )?;
    let mut stack = vec![ringkeeper_engine::tree::ROOT.to_string()];
    while let Some(p) = stack.pop() {
        let node = tree.get(&p).expect("listed nodes exist");
        let s = node.stat();
        writeln!(
            out,
            "{p}\n  cZxid = 0x{:x}\n  ctime = {}\n  mZxid = 0x{:x}\n  mtime = {}\n  pZxid = 0x{:x}\n  cversion = {}\n  dataVersion = {}\n  aclVersion = {}\n  ephemeralOwner = 0x{:x}\n  dataLength = {}\n  numChildren = {}",
            s.czxid, s.ctime, s.mzxid, s.mtime, s.pzxid, s.cversion, s.version, s.aversion,
            node.ephemeral_owner, s.data_length, s.num_children
        )?;
        if node.data.is_none() {
            // ZooKeeper keeps null data apart from empty; Stat shows both as length 0.
            writeln!(out, "  data = null")?;
        }
        for child in node.children.iter().rev() {
            stack.push(ringkeeper_engine::tree::path::join(&p, child));
        }
    }
    writeln!(out, "Sessions ({}):", loaded.sessions.len())?;
    for s in &loaded.sessions {
        writeln!(out, "0x{:x} timeout {} ms", s.id, s.timeout_ms)?;
    }
    out.flush()
}
