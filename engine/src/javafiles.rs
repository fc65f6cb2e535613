//! Java ZooKeeper's data files, read for `ringkeeper import` and `ringkeeper inspect`.
//!
//! Snapshot (`version-2/snapshot.<zxid>`), as `FileSnap` writes it:
//! - `FileHeader`: magic `ZKSN`, version 2, dbid;
//! - sessions: a count, then (id long, timeout int) each;
//! - the ACL cache: a count, then (index long, ACL vector) each; a node's `acl` is an index
//!   into it, -1 meaning `world:anyone` with every permission;
//! - nodes, parents before children: path (ustring; the root is ""), data (buffer, -1 null),
//!   acl index (long), `StatPersisted` (czxid, mzxid, ctime, mtime, version, cversion,
//!   aversion, ephemeralOwner, pzxid); ended by the path "/";
//! - a seal: the Adler-32 of every byte before it (long), then "/"; from 3.6 optionally a
//!   `ZxidDigest` (zxid long, digest version int, digest long) and a second seal.
//!
//! Transaction log (`version-2/log.<zxid of its first txn>`), as `FileTxnLog` writes it:
//! - `FileHeader`: magic `ZKLG`, version 2, dbid;
//! - entries: Adler-32 of the txn bytes (long), the txn bytes as a buffer (`quorum::txn`'s
//!   encoding), the byte `B`; the file is preallocated with zeros, so a zero length ends it.
//!
//! A snapshot is fuzzy: it is written while txns go on, so it can hold changes of txns after
//! the zxid it is named by, and replaying the log from that zxid meets some of them again.
//! [`replay`] does what ZooKeeper's `FileTxnSnapLog.processTransaction` does about that: an op
//! the tree already reflects is passed over.

use crate::proto::{Acl, DecodeError, Reader};
use crate::tree::{DataTree, Node, Restorer, Trigger};
use crate::txn::{Txn, TxnOp};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub const SNAPSHOT_MAGIC: i32 = 0x5a4b_534e; // "ZKSN"
pub const LOG_MAGIC: i32 = 0x5a4b_4c47; // "ZKLG"
const FILE_VERSION: i32 = 2;
const HEADER_BYTES: usize = 16;
/// The byte ending each log entry.
const END_OF_RECORD: u8 = b'B';
/// ZooKeeper's ACL index for `world:anyone` with every permission.
const OPEN_ACL_INDEX: i64 = -1;

/// Damage in a file, at a byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JavaFileError {
    pub offset: usize,
    pub message: String,
}

impl std::fmt::Display for JavaFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at offset {}: {}", self.offset, self.message)
    }
}

fn at(r: &Reader, e: DecodeError) -> JavaFileError {
    JavaFileError {
        offset: r.position(),
        message: e.to_string(),
    }
}

fn bad(offset: usize, message: impl Into<String>) -> JavaFileError {
    JavaFileError {
        offset,
        message: message.into(),
    }
}

/// What a Java snapshot holds.
pub struct JavaSnapshot {
    pub sessions: Vec<(i64, i32)>,
    pub tree: DataTree,
    pub node_count: usize,
    /// The zxid of the digest record, when the file has one.
    pub digest_zxid: Option<i64>,
}

fn check_header(r: &mut Reader, magic: i32, what: &str) -> Result<(), JavaFileError> {
    let m = r.int("magic").map_err(|e| at(r, e))?;
    if m != magic {
        return Err(bad(
            0,
            format!("not a Java ZooKeeper {what} (magic {m:#x})"),
        ));
    }
    let v = r.int("version").map_err(|e| at(r, e))?;
    if v != FILE_VERSION {
        return Err(bad(
            4,
            format!("{what} format version {v}, not {FILE_VERSION}"),
        ));
    }
    r.long("dbid").map_err(|e| at(r, e))?;
    Ok(())
}

/// One node as the snapshot lists it.
struct RawNode {
    path: String,
    node: Node,
}

/// Reads a whole snapshot. `zxid` is the one its file name gives: the tree is at that zxid.
pub fn read_snapshot(bytes: &[u8], zxid: i64) -> Result<JavaSnapshot, JavaFileError> {
    let mut r = Reader::new(bytes);
    check_header(&mut r, SNAPSHOT_MAGIC, "snapshot")?;
    let count = r.int("sessions").map_err(|e| at(&r, e))?;
    if count < 0 || count as usize > bytes.len() / 12 {
        return Err(bad(
            r.position() - 4,
            format!("session count {count} does not fit the file"),
        ));
    }
    let mut sessions = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let id = r.long("id").map_err(|e| at(&r, e))?;
        let timeout = r.int("timeout").map_err(|e| at(&r, e))?;
        sessions.push((id, timeout));
    }
    let acls = read_acl_cache(&mut r, bytes.len())?;
    let mut raw = Vec::new();
    loop {
        let offset = r.position();
        let path = r.ustring("path").map_err(|e| at(&r, e))?;
        if path == "/" {
            break;
        }
        let data = r.buffer_opt("data").map_err(|e| at(&r, e))?;
        let index = r.long("acl").map_err(|e| at(&r, e))?;
        let acl = if index == OPEN_ACL_INDEX {
            Arc::new(Acl::open_unsafe())
        } else {
            acls.get(&index).cloned().ok_or_else(|| {
                bad(
                    offset,
                    format!("node {path:?} names ACL {index}, which the ACL cache lacks"),
                )
            })?
        };
        let mut long = |f| r.long(f);
        let (czxid, mzxid, ctime, mtime) =
            (long("czxid"), long("mzxid"), long("ctime"), long("mtime"));
        let mut int = |f| r.int(f);
        let (version, cversion, aversion) = (int("version"), int("cversion"), int("aversion"));
        let (owner, pzxid) = (r.long("ephemeralOwner"), r.long("pzxid"));
        let fields = (|| {
            Ok::<_, DecodeError>(Node {
                data,
                acl,
                czxid: czxid?,
                mzxid: mzxid?,
                ctime: ctime?,
                mtime: mtime?,
                version: version?,
                cversion: cversion?,
                aversion: aversion?,
                ephemeral_owner: owner?,
                pzxid: pzxid?,
                children: Default::default(),
            })
        })();
        let node = fields.map_err(|e| at(&r, e))?;
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        raw.push(RawNode { path, node });
    }
    check_seal(&mut r, bytes, "checksum")?;
    let mut digest_zxid = None;
    if r.remaining() > 0 {
        let z = r.long("zxid").map_err(|e| at(&r, e))?;
        r.int("digestVersion").map_err(|e| at(&r, e))?;
        r.long("digest").map_err(|e| at(&r, e))?;
        check_seal(&mut r, bytes, "digest seal")?;
        digest_zxid = Some(z);
    }
    let node_count = raw.len();
    let tree = build_tree(raw, zxid)?;
    Ok(JavaSnapshot {
        sessions,
        tree,
        node_count,
        digest_zxid,
    })
}

/// A seal: the Adler-32 of every byte before it, then "/".
fn check_seal(r: &mut Reader, bytes: &[u8], what: &str) -> Result<(), JavaFileError> {
    let sealed_at = r.position();
    let want = adler(&bytes[..sealed_at]);
    let got = r.long("val").map_err(|e| at(r, e))?;
    r.ustring("path").map_err(|e| at(r, e))?;
    if got != want as i64 {
        return Err(bad(
            sealed_at,
            format!("{what} mismatch: the file says {got:#x}, its bytes give {want:#x}"),
        ));
    }
    Ok(())
}

fn read_acl_cache(
    r: &mut Reader,
    len: usize,
) -> Result<HashMap<i64, Arc<Vec<Acl>>>, JavaFileError> {
    let count = r.int("map").map_err(|e| at(r, e))?;
    if count < 0 || count as usize > len / 12 {
        return Err(bad(
            r.position() - 4,
            format!("ACL cache size {count} does not fit the file"),
        ));
    }
    let mut acls = HashMap::with_capacity(count as usize);
    for _ in 0..count {
        let index = r.long("long").map_err(|e| at(r, e))?;
        let list = r
            .vector("acls", 12, |r| {
                let perms = r.int("perms")?;
                let scheme = r.ustring("scheme")?;
                let id = r.ustring("id")?;
                Ok(Acl::new(perms, &scheme, &id))
            })
            .map_err(|e| at(r, e))?;
        acls.insert(index, Arc::new(list));
    }
    Ok(acls)
}

/// The tree from the snapshot's nodes: children sets from the paths, and ZooKeeper's own
/// nodes (`/zookeeper`, its `quota` and `config`) where the snapshot has none.
fn build_tree(raw: Vec<RawNode>, zxid: i64) -> Result<DataTree, JavaFileError> {
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    for n in raw {
        if nodes.insert(n.path.clone(), n.node).is_some() {
            return Err(bad(0, format!("node {:?} is listed twice", n.path)));
        }
    }
    let defaults = DataTree::new();
    for p in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        if !nodes.contains_key(p) {
            let mut n = (**defaults.get(p).expect("a node every tree has")).clone();
            n.children = Default::default();
            nodes.insert(p.to_string(), n);
        }
    }
    let paths: Vec<String> = nodes.keys().cloned().collect();
    for p in &paths {
        if p == "/" {
            continue;
        }
        let (parent, name) = match p.rfind('/') {
            Some(0) => ("/", &p[1..]),
            Some(i) => (&p[..i], &p[i + 1..]),
            None => return Err(bad(0, format!("node path {p:?} does not start with '/'"))),
        };
        let Some(parent) = nodes.get_mut(parent) else {
            return Err(bad(0, format!("node {p:?} has no parent in the snapshot")));
        };
        parent.children.insert(Arc::from(name));
    }
    let mut restorer = Restorer::new();
    for (path, node) in nodes {
        restorer
            .insert(Arc::from(path.as_str()), Arc::new(node))
            .map_err(|p| bad(0, format!("node {p:?} is listed twice")))?;
    }
    Ok(restorer.finish(zxid))
}

/// Writes `tree` and `sessions` as Java ZooKeeper's `FileSnap` does (what its AdminServer's
/// `snapshot` command streams, and what a Java server loads from `snapshot.<zxid>`): header,
/// sessions, the ACL cache (each distinct ACL list once; `world:anyone` with every permission
/// is index -1), the nodes parents first from the root (""), the "/" end marker and the
/// Adler-32 seal. No digest record: Java reads a snapshot without one.
pub fn write_snapshot(tree: &DataTree, sessions: &[(i64, i32)]) -> Vec<u8> {
    use crate::proto::Writer;
    let mut out = Vec::with_capacity(64 + tree.approximate_data_size() as usize * 2);
    let open = Acl::open_unsafe();
    // Every node's path, parents first (a walk from the root).
    let mut paths: Vec<String> = Vec::with_capacity(tree.node_count());
    let mut todo = vec!["/".to_string()];
    while let Some(p) = todo.pop() {
        if let Some(n) = tree.get(&p) {
            for c in n.children.iter().rev() {
                todo.push(if p == "/" {
                    format!("/{c}")
                } else {
                    format!("{p}/{c}")
                });
            }
        }
        paths.push(p);
    }
    let mut index_of: Vec<(Arc<Vec<Acl>>, i64)> = Vec::new();
    let mut acl_index = |acl: &Arc<Vec<Acl>>| -> i64 {
        if **acl == open {
            return OPEN_ACL_INDEX;
        }
        if let Some((_, i)) = index_of.iter().find(|(a, _)| a == acl) {
            return *i;
        }
        let i = index_of.len() as i64 + 1;
        index_of.push((acl.clone(), i));
        i
    };
    let indexes: Vec<i64> = paths
        .iter()
        .map(|p| acl_index(&tree.get(p).expect("walked from the tree").acl))
        .collect();
    {
        let mut w = Writer::new(&mut out);
        w.int(SNAPSHOT_MAGIC).int(FILE_VERSION).long(-1);
        w.int(sessions.len() as i32);
        for (id, timeout) in sessions {
            w.long(*id).int(*timeout);
        }
        w.int(index_of.len() as i32);
        for (acl, i) in &index_of {
            w.long(*i);
            w.vector(acl, |w, a| {
                w.int(a.perms).ustring(&a.id.scheme).ustring(&a.id.id);
            });
        }
        for (p, acl) in paths.iter().zip(indexes) {
            let n = tree.get(p).expect("walked from the tree");
            w.ustring(if p == "/" { "" } else { p });
            w.buffer_opt(n.data.as_deref());
            w.long(acl);
            w.long(n.czxid).long(n.mzxid).long(n.ctime).long(n.mtime);
            w.int(n.version).int(n.cversion).int(n.aversion);
            w.long(n.ephemeral_owner).long(n.pzxid);
        }
        w.ustring("/");
    }
    let seal = adler(&out) as i64;
    Writer::new(&mut out).long(seal).ustring("/");
    out
}

/// One log entry and where it starts.
#[derive(Debug)]
pub struct LogEntry {
    pub offset: usize,
    pub txn: Txn,
}

/// Reads a log's entries, checking each one's checksum. A zero length (the preallocated
/// tail) ends the file; so does an entry cut short at the very end (a write that a crash
/// stopped, which ZooKeeper passes over too). Anything else out of place is an error.
pub fn read_log(bytes: &[u8]) -> Result<Vec<LogEntry>, JavaFileError> {
    let mut r = Reader::new(bytes);
    check_header(&mut r, LOG_MAGIC, "transaction log")?;
    let mut out = Vec::new();
    let mut pos = HEADER_BYTES;
    while bytes.len() - pos >= 12 {
        let offset = pos;
        let crc = i64::from_be_bytes(bytes[pos..pos + 8].try_into().expect("8 bytes"));
        let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().expect("4 bytes"));
        if len == 0 {
            break;
        }
        if len < 0 {
            return Err(bad(offset + 8, format!("entry length {len}")));
        }
        let start = pos + 12;
        let end = start + len as usize;
        if end >= bytes.len() {
            // Cut short by a crash at the end of the file: never acknowledged.
            break;
        }
        // An entry without its closing 'B' is one a crash cut short: the log ends before it,
        // as ZooKeeper's `readTxnBytes` has it ("Last transaction was partial").
        if bytes[end] != END_OF_RECORD {
            break;
        }
        let body = &bytes[start..end];
        let want = adler(body);
        if crc != want as i64 {
            return Err(bad(
                offset,
                format!(
                    "entry checksum mismatch: the file says {crc:#x}, its bytes give {want:#x}"
                ),
            ));
        }
        let txn = crate::quorum::txn::decode(body)
            .map_err(|e| bad(start, format!("entry does not decode: {e}")))?;
        out.push(LogEntry { offset, txn });
        pos = end + 1;
    }
    Ok(out)
}

fn adler(bytes: &[u8]) -> u32 {
    let mut a = adler2::Adler32::new();
    a.write_slice(bytes);
    a.checksum()
}

/// Applies a logged txn to a tree restored from a fuzzy snapshot, passing over each op the
/// tree already reflects (a create of a node that is there, a change to one that is not), as
/// ZooKeeper does when it replays its log; `sessions` follows the session txns. Txns at or
/// below the tree's zxid are passed over whole.
pub fn replay(tree: &mut DataTree, sessions: &mut BTreeMap<i64, i32>, txn: &Txn) {
    if txn.zxid <= tree.last_zxid() {
        return;
    }
    match &txn.op {
        TxnOp::CreateSession { timeout_ms } => {
            sessions.insert(txn.session_id, *timeout_ms);
        }
        TxnOp::CloseSession => {
            sessions.remove(&txn.session_id);
        }
        _ => {}
    }
    // A create that finds its node there still raises the parent's cversion, as ZooKeeper's
    // replay does (ZOOKEEPER-1046).
    if let TxnOp::Create {
        path,
        parent_cversion,
        ..
    } = &txn.op
    {
        if tree.get(path).is_some() {
            let parent = match path.rfind('/') {
                Some(0) => "/",
                Some(i) => &path[..i],
                None => "/",
            };
            tree.set_cversion_pzxid(parent, *parent_cversion, txn.zxid);
        }
    }
    let op = fitting(tree, &txn.op);
    let applied = Txn {
        op: op.unwrap_or(TxnOp::Error(crate::proto::ErrorCode::Ok)),
        ..txn.clone()
    };
    let mut triggers: Vec<Trigger> = Vec::new();
    tree.apply(&applied, &mut triggers);
}

/// The part of `op` the tree does not reflect yet (`None`: nothing).
fn fitting(tree: &DataTree, op: &TxnOp) -> Option<TxnOp> {
    let mut overlay: HashMap<String, bool> = HashMap::new();
    let fits = |op: &TxnOp, overlay: &mut HashMap<String, bool>| -> bool {
        let exists = |p: &str, overlay: &HashMap<String, bool>| {
            overlay
                .get(p)
                .copied()
                .unwrap_or_else(|| tree.get(p).is_some())
        };
        match op {
            TxnOp::Create { path, .. } => {
                let parent = match path.rfind('/') {
                    Some(0) => "/",
                    Some(i) => &path[..i],
                    None => return false,
                };
                let ok = !exists(path, overlay) && exists(parent, overlay);
                if ok {
                    overlay.insert(path.clone(), true);
                }
                ok
            }
            TxnOp::Delete { path } => {
                let ok = exists(path, overlay) && !has_children(tree, path, overlay);
                if ok {
                    overlay.insert(path.clone(), false);
                }
                ok
            }
            TxnOp::SetData { path, .. } | TxnOp::SetAcl { path, .. } => exists(path, overlay),
            TxnOp::Check { .. } | TxnOp::Error(_) => false,
            TxnOp::CreateSession { .. } | TxnOp::CloseSession => true,
            TxnOp::Multi(_) => false,
        }
    };
    match op {
        TxnOp::Multi(ops) => {
            let kept: Vec<TxnOp> = ops
                .iter()
                .filter(|o| fits(o, &mut overlay))
                .cloned()
                .collect();
            (!kept.is_empty()).then_some(TxnOp::Multi(kept))
        }
        other => fits(other, &mut overlay).then(|| other.clone()),
    }
}

fn has_children(tree: &DataTree, path: &str, overlay: &HashMap<String, bool>) -> bool {
    let prefix = format!("{path}/");
    let in_tree = tree.get(path).is_some_and(|n| {
        n.children.iter().any(|c| {
            overlay
                .get(&format!("{prefix}{c}"))
                .copied()
                .unwrap_or(true)
        })
    });
    in_tree
        || overlay
            .iter()
            .any(|(p, live)| *live && p.starts_with(&prefix) && !p[prefix.len()..].contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Acl;

    fn create(zxid: i64, path: &str) -> Txn {
        Txn {
            zxid,
            time_ms: zxid,
            session_id: 1,
            cxid: 1,
            op: TxnOp::Create {
                path: path.into(),
                data: Some(bytes::Bytes::from_static(b"d")),
                acl: Arc::new(Acl::open_unsafe()),
                ephemeral_owner: 0,
                parent_cversion: 1,
                opcode: crate::proto::opcode::CREATE,
            },
        }
    }

    fn log_file(txns: &[Txn]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&LOG_MAGIC.to_be_bytes());
        out.extend_from_slice(&FILE_VERSION.to_be_bytes());
        out.extend_from_slice(&0i64.to_be_bytes());
        for t in txns {
            let mut body = Vec::new();
            crate::quorum::txn::encode(&mut body, t);
            out.extend_from_slice(&(adler(&body) as i64).to_be_bytes());
            out.extend_from_slice(&(body.len() as i32).to_be_bytes());
            out.extend_from_slice(&body);
            out.push(END_OF_RECORD);
        }
        out.extend_from_slice(&[0u8; 64]); // the preallocated tail
        out
    }

    #[test]
    fn log_entries_are_read_and_damage_is_placed() {
        let txns = [create(1, "/a"), create(2, "/b")];
        let file = log_file(&txns);
        let read = read_log(&file).unwrap();
        assert_eq!(read.iter().map(|e| e.txn.zxid).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(read[0].offset, HEADER_BYTES);
        let second = read[1].offset;
        let mut bad = file.clone();
        bad[second + 20] ^= 0x40;
        let e = read_log(&bad).unwrap_err();
        assert_eq!(e.offset, second);
        assert!(e.message.contains("checksum"), "{e}");
        // A write cut short at the end is no damage: it was never acknowledged.
        let cut = &file[..second + 15];
        assert_eq!(read_log(cut).unwrap().len(), 1);
        // Nor is one whose closing 'B' never reached the disk (a preallocated, zeroed file).
        let mut torn = file.clone();
        let len1 = i32::from_be_bytes(file[second + 8..second + 12].try_into().unwrap());
        let b_at = second + 12 + len1 as usize;
        assert_eq!(torn[b_at], END_OF_RECORD);
        torn[b_at] = 0;
        torn[b_at - 1] = 0;
        assert_eq!(read_log(&torn).unwrap().len(), 1);
        let mut not_log = file.clone();
        not_log[0] = b'X';
        assert!(read_log(&not_log)
            .unwrap_err()
            .message
            .contains("not a Java ZooKeeper"));
    }

    #[test]
    fn snapshots_written_read_back_the_same() {
        let mut tree = DataTree::new();
        let mut triggers = Vec::new();
        tree.apply(&create(1, "/a"), &mut triggers);
        tree.apply(&create(2, "/a/b"), &mut triggers);
        let mut secret = create(3, "/s");
        if let TxnOp::Create { acl, data, .. } = &mut secret.op {
            *acl = Arc::new(vec![
                Acl::new(31, "digest", "u:x="),
                Acl::new(1, "world", "anyone"),
            ]);
            *data = None;
        }
        tree.apply(&secret, &mut triggers);
        let bytes = write_snapshot(&tree, &[(7, 3000)]);
        let back = read_snapshot(&bytes, tree.last_zxid()).unwrap();
        assert_eq!(back.sessions, vec![(7, 3000)]);
        for p in [
            "/",
            "/a",
            "/a/b",
            "/s",
            "/zookeeper",
            "/zookeeper/quota",
            "/zookeeper/config",
        ] {
            let (a, b) = (back.tree.get(p).unwrap(), tree.get(p).unwrap());
            assert_eq!(
                (&a.data, &a.acl, a.stat()),
                (&b.data, &b.acl, b.stat()),
                "{p}"
            );
            assert!(a.children.iter().eq(b.children.iter()), "{p}");
        }
        assert_eq!(back.tree.node_count(), tree.node_count());
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 20] ^= 1;
        assert!(read_snapshot(&bad, 3).is_err());
    }

    #[test]
    fn replay_passes_over_what_a_fuzzy_snapshot_already_holds() {
        let mut tree = DataTree::new();
        let mut triggers = Vec::new();
        tree.apply(&create(1, "/a"), &mut triggers);
        // The snapshot was named at zxid 1 but already holds /b, created at zxid 2.
        tree.apply(&create(2, "/b"), &mut triggers);
        let mut fuzzy = tree.clone();
        let mut sessions = BTreeMap::new();
        // Replaying from zxid 2 on a tree that says it is at 2: passed over.
        replay(&mut fuzzy, &mut sessions, &create(2, "/b"));
        assert_eq!(fuzzy.last_zxid(), 2);
        // A tree at zxid 1 that holds /b meets its create again: passed over, zxid moves on.
        let mut restorer_tree = DataTree::new();
        restorer_tree.apply(&create(1, "/a"), &mut triggers);
        restorer_tree.apply(&create(2, "/c"), &mut triggers);
        let mut t = restorer_tree.clone();
        replay(&mut t, &mut sessions, &create(3, "/c"));
        assert_eq!(t.last_zxid(), 3);
        assert_eq!(
            t.get("/c").unwrap().czxid,
            2,
            "the node the snapshot held is kept"
        );
        let delete_missing = Txn {
            op: TxnOp::Delete {
                path: "/gone".into(),
            },
            ..create(4, "/x")
        };
        replay(&mut t, &mut sessions, &delete_missing);
        assert_eq!(t.last_zxid(), 4);
        let multi = Txn {
            op: TxnOp::Multi(vec![
                TxnOp::Delete {
                    path: "/gone".into(),
                },
                create(5, "/d").op,
            ]),
            ..create(5, "/x")
        };
        replay(&mut t, &mut sessions, &multi);
        assert!(t.get("/d").is_some(), "the multi's op that fits is applied");
        let session = Txn {
            op: TxnOp::CreateSession { timeout_ms: 3000 },
            session_id: 77,
            ..create(6, "/x")
        };
        replay(&mut t, &mut sessions, &session);
        assert_eq!(sessions.get(&77), Some(&3000));
    }
}
