//! `ringkeeper import`: a Java ZooKeeper dataDir made into a Ringkeeper one.
//!
//! It reads the newest snapshot that is whole (falling back to an older one, as ZooKeeper
//! does, when the newest is damaged, and saying which and where), then every logged txn after
//! it, each checked against its checksum, and replays them as ZooKeeper's startup does
//! (`engine::javafiles`). Only when all of that succeeded does it write anything: one
//! Ringkeeper snapshot of the result (tree, ACLs, Stats, sessions, last zxid) into the target
//! dataDir, plus the ensemble epoch files when the source has them. A damaged log, a gap in
//! the txns, or no whole snapshot stops it with the file and offset named.

use crate::ensemble::disk;
use ringkeeper_engine::javafiles::{self, JavaSnapshot};
use ringkeeper_engine::snap::SnapSession;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What an import did.
pub struct Imported {
    pub snapshot: PathBuf,
    pub logs: usize,
    pub txns: usize,
    pub nodes: usize,
    pub sessions: usize,
    pub last_zxid: i64,
    pub ms: u128,
}

/// A Java `version-2` folder: the one named, or the one inside it.
fn version_dir(dir: &Path) -> PathBuf {
    let inner = dir.join("version-2");
    if inner.is_dir() {
        inner
    } else {
        dir.to_path_buf()
    }
}

/// Files named `PREFIX.<hex zxid>` (ZooKeeper does not pad the hex), by zxid.
fn by_zxid(dir: &Path, prefix: &str) -> Result<Vec<(i64, PathBuf)>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(hex) = name.strip_prefix(prefix) else {
            continue;
        };
        if let Ok(z) = u64::from_str_radix(hex, 16) {
            out.push((z as i64, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

pub fn run(from: &Path, from_log: Option<&Path>, to: &Path) -> Result<Imported, String> {
    let started = Instant::now();
    let snap_dir = version_dir(from);
    let log_dir = version_dir(from_log.unwrap_or(from));
    refuse_ringkeeper_data(to)?;
    let snapshots = by_zxid(&snap_dir, "snapshot.")?;
    let logs = by_zxid(&log_dir, "log.")?;
    // The newest whole snapshot.
    let mut chosen: Option<(PathBuf, JavaSnapshot)> = None;
    for (zxid, path) in snapshots.iter().rev() {
        match javafiles::read_snapshot(&read(path)?, *zxid) {
            Ok(s) => {
                chosen = Some((path.clone(), s));
                break;
            }
            Err(e) => tracing::warn!("{}: {e}; trying an older snapshot", path.display()),
        }
    }
    let Some((snap_path, snap)) = chosen else {
        return Err(match snapshots.last() {
            Some((_, p)) => {
                let e = javafiles::read_snapshot(&read(p)?, 0)
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                format!(
                    "no whole snapshot in {}: the newest, {}, is damaged {e}",
                    snap_dir.display(),
                    p.display()
                )
            }
            None => format!("no snapshot.* file in {}", snap_dir.display()),
        });
    };
    let snap_zxid = snap.tree.last_zxid();
    let mut tree = snap.tree;
    let mut sessions: BTreeMap<i64, i32> = snap.sessions.iter().copied().collect();
    // The logs that can hold txns after the snapshot: the last one starting at or below its
    // zxid, and every later one.
    let first = logs.iter().rposition(|(z, _)| *z <= snap_zxid).unwrap_or(0);
    let mut last = snap_zxid;
    let mut txns = 0;
    let mut used = 0;
    for (_, path) in &logs[first.min(logs.len())..] {
        let entries =
            javafiles::read_log(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))?;
        used += 1;
        for entry in entries {
            let z = entry.txn.zxid;
            if z <= last {
                continue;
            }
            let same_epoch = z >> 32 == last >> 32;
            if same_epoch && z != last + 1 && last != 0 {
                return Err(format!(
                    "{} at offset {}: txn {z:#x} follows {last:#x}: the txns between are missing",
                    path.display(),
                    entry.offset
                ));
            }
            javafiles::replay(&mut tree, &mut sessions, &entry.txn);
            last = z;
            txns += 1;
        }
    }
    // Ephemerals of sessions the data no longer holds go, as ZooKeeper's `loadData` kills
    // such sessions at startup (stamped with the last zxid, no txn of their own).
    for owner in tree.ephemeral_owners() {
        if !sessions.contains_key(&owner) {
            tree.kill_session(owner, last);
        }
    }
    let sessions: Vec<SnapSession> = sessions
        .into_iter()
        .map(|(id, timeout_ms)| SnapSession { id, timeout_ms })
        .collect();
    let nodes = tree.node_count();
    let session_count = sessions.len();
    write(to, tree, sessions, &snap_dir)?;
    Ok(Imported {
        snapshot: snap_path,
        logs: used,
        txns,
        nodes,
        sessions: session_count,
        last_zxid: last,
        ms: started.elapsed().as_millis(),
    })
}

/// An import never writes over Ringkeeper data.
fn refuse_ringkeeper_data(to: &Path) -> Result<(), String> {
    for dir in [crate::snapshot::snap_dir(to), crate::log::log_dir(to)] {
        let has_files = std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if has_files {
            return Err(format!(
                "{} already holds Ringkeeper data; import into an empty dataDir",
                dir.display()
            ));
        }
    }
    Ok(())
}

fn write(
    to: &Path,
    tree: ringkeeper_engine::tree::DataTree,
    sessions: Vec<SnapSession>,
    java: &Path,
) -> Result<(), String> {
    let log_dir = crate::log::log_dir(to);
    crate::files::create_dirs(&log_dir)
        .map_err(|e| format!("cannot create {}: {e}", log_dir.display()))?;
    disk::install(to, to, tree, sessions)?;
    // An ensemble member's epochs come along, so it rejoins in the epoch it left.
    for name in [disk::ACCEPTED_EPOCH, disk::CURRENT_EPOCH] {
        if let Some(epoch) = disk::read_epoch(java, name)? {
            disk::write_epoch(to, name, epoch)
                .map_err(|e| format!("cannot write {name} in {}: {e}", to.display()))?;
        }
    }
    Ok(())
}

/// `ringkeeper inspect` on Java ZooKeeper's files: `None` when `bytes` is not one of them.
pub fn inspect_java(path: &Path, bytes: &[u8]) -> Option<Result<String, String>> {
    let magic = i32::from_be_bytes(bytes.get(..4)?.try_into().ok()?);
    let zxid_of_name = || {
        let name = path.file_name()?.to_str()?;
        let hex = name.rsplit('.').next()?;
        u64::from_str_radix(hex, 16).ok().map(|z| z as i64)
    };
    let fail = |e: javafiles::JavaFileError| format!("{}: {e}", path.display());
    match magic {
        javafiles::LOG_MAGIC => Some(javafiles::read_log(bytes).map_err(fail).map(|entries| {
            let mut out = format!(
                "Java ZooKeeper transaction log {}: {} txns\n",
                path.display(),
                entries.len()
            );
            for e in &entries {
                let t = &e.txn;
                out.push_str(&format!(
                    "offset {} zxid {:#x} time {} session {:#x} cxid {:#x} {:?}\n",
                    e.offset, t.zxid, t.time_ms, t.session_id, t.cxid, t.op
                ));
            }
            out.push_str("checksums verified\n");
            out
        })),
        javafiles::SNAPSHOT_MAGIC => {
            let zxid = zxid_of_name().unwrap_or(0);
            Some(javafiles::read_snapshot(bytes, zxid).map_err(fail).map(|s| {
                let mut out = format!(
                    "Java ZooKeeper snapshot {}: zxid {:#x}, {} nodes, {} sessions{}\n",
                    path.display(),
                    zxid,
                    s.node_count,
                    s.sessions.len(),
                    s.digest_zxid.map_or(String::new(), |z| format!(", digest at zxid {z:#x}"))
                );
                for (id, timeout) in &s.sessions {
                    out.push_str(&format!("session {id:#x} timeout {timeout}\n"));
                }
                let mut paths: Vec<String> = Vec::new();
                let mut todo = vec!["/".to_string()];
                while let Some(p) = todo.pop() {
                    if let Some(n) = s.tree.get(&p) {
                        for c in n.children.iter() {
                            todo.push(if p == "/" { format!("/{c}") } else { format!("{p}/{c}") });
                        }
                    }
                    paths.push(p);
                }
                paths.sort();
                for p in paths {
                    let n = s.tree.get(&p).expect("listed from the tree");
                    out.push_str(&format!(
                        "{p} czxid {:#x} mzxid {:#x} pzxid {:#x} version {} cversion {} aversion {} owner {:#x} data {} bytes acl {:?}\n",
                        n.czxid,
                        n.mzxid,
                        n.pzxid,
                        n.version,
                        n.cversion,
                        n.aversion,
                        n.ephemeral_owner,
                        n.data.as_ref().map_or(0, |d| d.len()),
                        n.acl.iter().map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms)).collect::<Vec<_>>()
                    ));
                }
                out.push_str("checksums verified\n");
                out
            }))
        }
        _ => None,
    }
}
