//! An ensemble member's disk beyond the standalone log and snapshots: ZooKeeper's
//! `acceptedEpoch` and `currentEpoch` files, rebuilding the tree from disk, truncating the log
//! (TRUNC) and installing a leader's snapshot (SNAP).
//!
//! The epoch files hold a decimal number and a newline, as ZooKeeper writes them, in the
//! dataDir. Each is replaced atomically (write a temporary file, fsync, rename, fsync the
//! directory), so a crash leaves the old or the new value. A missing file is taken as the
//! epoch of the last logged zxid, as ZooKeeper does on its first start after an upgrade.

use crate::log::{self, list_segments, log_dir, sync_dir};
use crate::snapshot;
use ringkeeper_engine::pipeline::{Pipeline, PipelineConfig};
use ringkeeper_engine::snap::SnapSession;
use ringkeeper_engine::tree::DataTree;
use ringkeeper_engine::txn::Txn;
use ringkeeper_engine::wal;
use std::io;
use std::path::Path;

pub const ACCEPTED_EPOCH: &str = "acceptedEpoch";
pub const CURRENT_EPOCH: &str = "currentEpoch";

/// Reads an epoch file; `None` when it does not exist.
pub fn read_epoch(data_dir: &Path, name: &str) -> Result<Option<i64>, String> {
    let path = data_dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{} holds '{}', not an epoch", path.display(), text.trim())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Replaces an epoch file durably.
pub fn write_epoch(data_dir: &Path, name: &str, epoch: i64) -> io::Result<()> {
    use std::io::Write;
    crate::files::create_dirs(data_dir)?;
    let tmp = data_dir.join(format!("{name}.tmp"));
    let mut f = crate::files::create_file(&tmp, crate::files::DATA_FILE_MODE)?;
    writeln!(f, "{epoch}")?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, data_dir.join(name))?;
    sync_dir(data_dir)
}

/// The tree and sessions on disk: the newest snapshot at or below `through`, then the log
/// through `through`.
pub fn rebuild(
    data_dir: &Path,
    data_log_dir: &Path,
    cfg: &PipelineConfig,
    through: i64,
    now: i64,
) -> Result<(DataTree, Vec<SnapSession>), String> {
    let snap_dir = snapshot::snap_dir(data_dir);
    let mut pipeline = Pipeline::new(cfg.clone(), now, 0);
    let snaps = snapshot::list(&snap_dir).map_err(|e| format!("{}: {e}", snap_dir.display()))?;
    if let Some((_, path)) = snaps.iter().rev().find(|(z, _)| *z <= through) {
        pipeline.restore(snapshot::load(path)?, now);
    }
    let after = pipeline.last_zxid();
    let recovered = log::recover(&log_dir(data_log_dir), after)?;
    let txns: Vec<Txn> = recovered
        .txns
        .into_iter()
        .filter(|t| t.zxid <= through)
        .collect();
    // A snapshot installed from a Java leader is fuzzy (`Image::fuzzy_through`): the log after
    // it may hold txns it already shows. They are replayed as ZooKeeper replays them.
    for t in txns {
        pipeline.replay_fitting(t, now);
    }
    let sessions = pipeline.sessions().snap_sessions();
    Ok((pipeline.version(), sessions))
}

/// Drops every logged txn after `zxid`: later segments are deleted, and the segment holding
/// `zxid` is zeroed from the end of its record on (segments are preallocated with zeros, so
/// the zeroed tail reads as free space). Snapshots above `zxid` are deleted too, as ZooKeeper
/// deletes them on TRUNC: a restart must not load txns the leader's history lacks. The writer
/// must be closed.
pub fn truncate_log(data_dir: &Path, data_log_dir: &Path, zxid: i64) -> Result<(), String> {
    let snap_dir = snapshot::snap_dir(data_dir);
    let snaps = snapshot::list(&snap_dir).map_err(|e| format!("{}: {e}", snap_dir.display()))?;
    for (z, path) in snaps {
        if z > zxid {
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            sync_dir(&snap_dir).map_err(|e| format!("{}: {e}", snap_dir.display()))?;
        }
    }
    let dir = log_dir(data_log_dir);
    let segments = list_segments(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (first, path) in segments.iter().rev() {
        if *first > zxid {
            std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
            continue;
        }
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let scan = wal::scan(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let keep_end = scan
            .txns
            .iter()
            .zip(&scan.ends)
            .take_while(|(t, _)| t.zxid <= zxid)
            .last()
            .map_or(wal::HEADER_BYTES, |(_, end)| *end);
        if keep_end < scan.valid_end {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            f.write_all_at(&vec![0u8; scan.valid_end - keep_end], keep_end as u64)
                .and_then(|_| f.sync_data())
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        break;
    }
    sync_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Makes a leader's snapshot this server's state: writes it as `snapshot.<zxid>`, then
/// deletes every log segment (the snapshot holds all the history they could add to) and every
/// snapshot above it (they may hold txns the leader's history does not). The writer must be closed; a new segment starts after `zxid`.
pub fn install(
    data_dir: &Path,
    data_log_dir: &Path,
    tree: DataTree,
    sessions: Vec<SnapSession>,
) -> Result<snapshot::Written, String> {
    let zxid = tree.last_zxid();
    let snap_dir = snapshot::snap_dir(data_dir);
    let job = snapshot::Job {
        tree,
        sessions,
        reply: None,
    };
    let written = snapshot::write(&snap_dir, &job, || i64::MAX)
        .map_err(|e| format!("cannot write a snapshot in {}: {e}", snap_dir.display()))?;
    let dir = log_dir(data_log_dir);
    for (_, path) in list_segments(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let snaps = snapshot::list(&snap_dir).map_err(|e| format!("{}: {e}", snap_dir.display()))?;
    for (z, path) in snaps {
        if z > zxid {
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    sync_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    sync_dir(&snap_dir).map_err(|e| format!("{}: {e}", snap_dir.display()))?;
    Ok(written)
}
