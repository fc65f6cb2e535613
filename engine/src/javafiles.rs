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
    /// The largest zxid a node's stat carries (czxid, mzxid or pzxid): of a fuzzy snapshot,
    /// taken while txns went on, no txn above it shows in the nodes' stats.
    pub stamped_zxid: i64,
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
    let mut body = BodyReader::new(HEADER_BYTES, false);
    let (used, whole) = body.take(&bytes[HEADER_BYTES..])?;
    if !whole {
        return Err(bad(
            HEADER_BYTES + used,
            "the snapshot ends inside a record",
        ));
    }
    r.skip(used, "body").map_err(|e| at(&r, e))?;
    check_seal(&mut r, bytes, "checksum")?;
    let mut digest_zxid = None;
    if r.remaining() > 0 {
        let z = r.long("zxid").map_err(|e| at(&r, e))?;
        r.int("digestVersion").map_err(|e| at(&r, e))?;
        r.long("digest").map_err(|e| at(&r, e))?;
        check_seal(&mut r, bytes, "digest seal")?;
        digest_zxid = Some(z);
    }
    let mut snapshot = body.finish(zxid)?;
    snapshot.digest_zxid = digest_zxid;
    Ok(snapshot)
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

/// What Java's learner checks after the snapshot that follows SNAP.
const SNAP_SIGNATURE: &str = "BenWasHere";

/// What [`BodyReader`] takes next.
#[derive(Clone, Copy)]
enum Expect {
    SessionCount,
    Sessions(u32),
    AclCount,
    Acls(u32),
    Node,
    Signature,
    Done,
}

/// Why a record was not taken.
enum Fault {
    /// The bytes so far end inside it.
    More,
    /// It is malformed: the message, at the record's start.
    Bad(String),
}

impl From<DecodeError> for Fault {
    fn from(e: DecodeError) -> Fault {
        match e {
            DecodeError::Truncated { .. } => Fault::More,
            // A length longer than what has arrived so far.
            DecodeError::BadLength { len, .. } if len >= 0 => Fault::More,
            e => Fault::Bad(e.to_string()),
        }
    }
}

/// Reads the body of a snapshot as its bytes arrive, a whole record at a time: the sessions,
/// the ACL cache, the nodes and the "/" that ends them, as Java's
/// `SerializeUtils.serializeSnapshot` writes them. A snapshot file has this body after its
/// header; after SNAP, Java's `LearnerHandler` sends just the body and then the string
/// "BenWasHere" on the quorum connection (`signed`).
pub struct BodyReader {
    expect: Expect,
    signed: bool,
    /// Where the next record starts, in the file or the stream.
    offset: usize,
    sessions: Vec<(i64, i32)>,
    acls: HashMap<i64, Arc<Vec<Acl>>>,
    raw: Vec<RawNode>,
    stamped_zxid: i64,
}

impl BodyReader {
    /// A reader of a body that starts at `offset` (for the offsets errors name).
    pub fn new(offset: usize, signed: bool) -> BodyReader {
        BodyReader {
            expect: Expect::SessionCount,
            signed,
            offset,
            sessions: Vec::new(),
            acls: HashMap::new(),
            raw: Vec::new(),
            stamped_zxid: 0,
        }
    }

    /// Takes the whole records at the front of `avail`: the bytes taken, and whether the body
    /// is complete. A malformed record is an error naming its offset.
    pub fn take(&mut self, avail: &[u8]) -> Result<(usize, bool), JavaFileError> {
        let mut pos = 0;
        while !matches!(self.expect, Expect::Done) {
            let mut r = Reader::new(&avail[pos..]);
            match self.record(&mut r) {
                Ok(()) => {
                    pos += r.position();
                    self.offset += r.position();
                }
                Err(Fault::More) => return Ok((pos, false)),
                Err(Fault::Bad(message)) => return Err(bad(self.offset, message)),
            }
        }
        Ok((pos, true))
    }

    /// Reads one record; the state changes only once the whole record was read.
    fn record(&mut self, r: &mut Reader) -> Result<(), Fault> {
        let count = |r: &mut Reader, what: &str| -> Result<u32, Fault> {
            let n = r.int("count")?;
            u32::try_from(n).map_err(|_| Fault::Bad(format!("{what} count {n}")))
        };
        self.expect = match self.expect {
            Expect::SessionCount => match count(r, "session")? {
                0 => Expect::AclCount,
                n => {
                    self.sessions.reserve(n.min(1 << 16) as usize);
                    Expect::Sessions(n)
                }
            },
            Expect::Sessions(left) => {
                let id = r.long("id")?;
                let timeout = r.int("timeout")?;
                self.sessions.push((id, timeout));
                match left {
                    1 => Expect::AclCount,
                    n => Expect::Sessions(n - 1),
                }
            }
            Expect::AclCount => match count(r, "ACL cache")? {
                0 => Expect::Node,
                n => Expect::Acls(n),
            },
            Expect::Acls(left) => {
                let index = r.long("long")?;
                let list = r.vector("acls", 12, |r| {
                    let perms = r.int("perms")?;
                    let scheme = r.ustring("scheme")?;
                    let id = r.ustring("id")?;
                    Ok(Acl::new(perms, &scheme, &id))
                })?;
                self.acls.insert(index, Arc::new(list));
                match left {
                    1 => Expect::Node,
                    n => Expect::Acls(n - 1),
                }
            }
            Expect::Node => match self.node(r)? {
                Some(n) => {
                    self.raw.push(n);
                    Expect::Node
                }
                None if self.signed => Expect::Signature,
                None => Expect::Done,
            },
            Expect::Signature => {
                let s = r.ustring("signature")?;
                if s != SNAP_SIGNATURE {
                    return Err(Fault::Bad(format!(
                        "the snapshot ends with {s:?}, not the signature {SNAP_SIGNATURE:?}"
                    )));
                }
                Expect::Done
            }
            Expect::Done => Expect::Done,
        };
        Ok(())
    }

    /// A node, or None for the "/" that ends them.
    fn node(&mut self, r: &mut Reader) -> Result<Option<RawNode>, Fault> {
        let path = r.ustring("path")?;
        if path == "/" {
            return Ok(None);
        }
        let data = r.buffer_opt("data")?;
        let index = r.long("acl")?;
        let (czxid, mzxid) = (r.long("czxid")?, r.long("mzxid")?);
        let (ctime, mtime) = (r.long("ctime")?, r.long("mtime")?);
        let (version, cversion) = (r.int("version")?, r.int("cversion")?);
        let aversion = r.int("aversion")?;
        let (ephemeral_owner, pzxid) = (r.long("ephemeralOwner")?, r.long("pzxid")?);
        let acl = if index == OPEN_ACL_INDEX {
            Arc::new(Acl::open_unsafe())
        } else {
            self.acls.get(&index).cloned().ok_or_else(|| {
                Fault::Bad(format!(
                    "node {path:?} names ACL {index}, which the ACL cache lacks"
                ))
            })?
        };
        self.stamped_zxid = self.stamped_zxid.max(czxid).max(mzxid).max(pzxid);
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        Ok(Some(RawNode {
            path,
            node: Node {
                data,
                acl,
                czxid,
                mzxid,
                ctime,
                mtime,
                version,
                cversion,
                aversion,
                ephemeral_owner,
                pzxid,
                children: Default::default(),
            },
        }))
    }

    /// The snapshot read, its tree at `zxid`. The body must be complete.
    pub fn finish(self, zxid: i64) -> Result<JavaSnapshot, JavaFileError> {
        assert!(matches!(self.expect, Expect::Done), "a complete body");
        let node_count = self.raw.len();
        let tree = build_tree(self.raw, zxid)?;
        Ok(JavaSnapshot {
            sessions: self.sessions,
            tree,
            node_count,
            digest_zxid: None,
            stamped_zxid: self.stamped_zxid,
        })
    }
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

/// Bytes of a snapshot's body [`write_body`] gathers before it offers them.
pub const BODY_PIECE_BYTES: usize = 1 << 20;

/// Visits every node of `tree`, parents before children (Java's `DataTree.deserialize` needs
/// a node's parent before it), until `visit` says stop; false if it did.
fn walk_parents_first(tree: &DataTree, mut visit: impl FnMut(&str, &Node) -> bool) -> bool {
    let mut todo = vec!["/".to_string()];
    while let Some(p) = todo.pop() {
        let Some(n) = tree.get(&p) else { continue };
        for c in n.children.iter().rev() {
            todo.push(if p == "/" {
                format!("/{c}")
            } else {
                format!("{p}/{c}")
            });
        }
        if !visit(&p, n) {
            return false;
        }
    }
    true
}

/// Writes the body of a snapshot of `tree` and `sessions` into `out`, as Java's
/// `SerializeUtils.serializeSnapshot` writes it: the sessions, the ACL cache (each distinct ACL
/// list once; `world:anyone` with every permission is index -1), the nodes parents first from
/// the root (""), and the "/" end marker. Each time `out` holds [`BODY_PIECE_BYTES`] or more,
/// `full` is offered it (and may take the bytes); false, and the walk stops, when it says so.
pub fn write_body(
    tree: &DataTree,
    sessions: &[(i64, i32)],
    out: &mut Vec<u8>,
    mut full: impl FnMut(&mut Vec<u8>) -> bool,
) -> bool {
    use crate::proto::Writer;
    let open = Acl::open_unsafe();
    // The ACL cache must precede the nodes: a first walk numbers the distinct lists.
    let mut index: HashMap<Arc<Vec<Acl>>, i64> = HashMap::new();
    let mut lists: Vec<Arc<Vec<Acl>>> = Vec::new();
    walk_parents_first(tree, |_, n| {
        if *n.acl != open && !index.contains_key(&n.acl) {
            lists.push(n.acl.clone());
            index.insert(n.acl.clone(), lists.len() as i64);
        }
        true
    });
    {
        let mut w = Writer::new(&mut *out);
        w.int(sessions.len() as i32);
        for (id, timeout) in sessions {
            w.long(*id).int(*timeout);
        }
        w.int(lists.len() as i32);
        for (i, acl) in lists.iter().enumerate() {
            w.long(i as i64 + 1);
            w.vector(acl, |w, a| {
                w.int(a.perms).ustring(&a.id.scheme).ustring(&a.id.id);
            });
        }
    }
    let walked = walk_parents_first(tree, |p, n| {
        let acl = if *n.acl == open {
            OPEN_ACL_INDEX
        } else {
            index[&n.acl]
        };
        let mut w = Writer::new(&mut *out);
        w.ustring(if p == "/" { "" } else { p });
        w.buffer_opt(n.data.as_deref());
        w.long(acl);
        w.long(n.czxid).long(n.mzxid).long(n.ctime).long(n.mtime);
        w.int(n.version).int(n.cversion).int(n.aversion);
        w.long(n.ephemeral_owner).long(n.pzxid);
        out.len() < BODY_PIECE_BYTES || full(out)
    });
    if !walked {
        return false;
    }
    Writer::new(&mut *out).ustring("/");
    true
}

/// What a leader sends after SNAP, as Java's `LearnerHandler` sends it: the body of a snapshot
/// of `tree` and `sessions`, then the string "BenWasHere", handed to `send` in pieces of about
/// [`BODY_PIECE_BYTES`]; false when `send` says stop.
pub fn write_for_snap(
    tree: &DataTree,
    sessions: &[(i64, i32)],
    mut send: impl FnMut(Vec<u8>) -> bool,
) -> bool {
    let mut out = Vec::with_capacity(BODY_PIECE_BYTES + 4096);
    let whole = write_body(tree, sessions, &mut out, |out| {
        send(std::mem::replace(
            out,
            Vec::with_capacity(BODY_PIECE_BYTES + 4096),
        ))
    });
    if !whole {
        return false;
    }
    crate::proto::Writer::new(&mut out).ustring(SNAP_SIGNATURE);
    send(out)
}

/// Writes `tree` and `sessions` as Java ZooKeeper's `FileSnap` does (what its AdminServer's
/// `snapshot` command streams, and what a Java server loads from `snapshot.<zxid>`): header,
/// the body ([`write_body`]) and the Adler-32 seal. No digest record: Java reads a snapshot
/// without one.
pub fn write_snapshot(tree: &DataTree, sessions: &[(i64, i32)]) -> Vec<u8> {
    use crate::proto::Writer;
    let mut out = Vec::with_capacity(64 + tree.approximate_data_size() as usize * 2);
    Writer::new(&mut out)
        .int(SNAPSHOT_MAGIC)
        .int(FILE_VERSION)
        .long(-1);
    write_body(tree, sessions, &mut out, |_| true);
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
    let fitted = fit(tree, txn);
    let mut triggers: Vec<Trigger> = Vec::new();
    tree.apply(fitted.as_ref().unwrap_or(txn), &mut triggers);
}

/// A txn (after the tree's zxid) as it applies to a tree that may already reflect it, such as
/// one restored from a fuzzy snapshot: None when it applies as it is, else the txn cut to
/// the ops the tree does not reflect yet (an op-less txn if none). A create that finds its
/// node there still raises the parent's cversion, here, as ZooKeeper's replay does
/// (ZOOKEEPER-1046).
pub fn fit(tree: &mut DataTree, txn: &Txn) -> Option<Txn> {
    let op = match fitting(tree, &txn.op) {
        Fitting::Whole => return None,
        Fitting::Part(op) => op,
        Fitting::Nothing => TxnOp::Error(crate::proto::ErrorCode::Ok),
    };
    if let TxnOp::Create {
        path,
        parent_cversion,
        ..
    } = &txn.op
    {
        if tree.get(path).is_some() {
            let parent = match path.rfind('/') {
                Some(0) | None => "/",
                Some(i) => &path[..i],
            };
            tree.set_cversion_pzxid(parent, *parent_cversion, txn.zxid);
        }
    }
    Some(Txn { op, ..txn.clone() })
}

/// How much of an op a tree does not reflect yet.
enum Fitting {
    Whole,
    Part(TxnOp),
    Nothing,
}

/// Whether `op` applies to the tree with `overlay`'s creates (true) and deletes (false) on it.
fn op_fits(tree: &DataTree, op: &TxnOp, overlay: &HashMap<String, bool>) -> bool {
    let exists = |p: &str| {
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
            !exists(path) && exists(parent)
        }
        TxnOp::Delete { path } => exists(path) && !has_children(tree, path, overlay),
        TxnOp::SetData { path, .. } | TxnOp::SetAcl { path, .. } => exists(path),
        // No change to the tree: they apply anywhere.
        TxnOp::Check { .. } | TxnOp::Error(_) => true,
        TxnOp::CreateSession { .. } | TxnOp::CloseSession => true,
        TxnOp::Multi(_) => false,
    }
}

fn fitting(tree: &DataTree, op: &TxnOp) -> Fitting {
    let TxnOp::Multi(ops) = op else {
        return if op_fits(tree, op, &HashMap::new()) {
            Fitting::Whole
        } else {
            Fitting::Nothing
        };
    };
    let mut overlay: HashMap<String, bool> = HashMap::new();
    let mut kept = Vec::with_capacity(ops.len());
    for o in ops {
        if op_fits(tree, o, &overlay) {
            match o {
                TxnOp::Create { path, .. } => {
                    overlay.insert(path.clone(), true);
                }
                TxnOp::Delete { path } => {
                    overlay.insert(path.clone(), false);
                }
                _ => {}
            }
            kept.push(o.clone());
        }
    }
    if kept.len() == ops.len() {
        Fitting::Whole
    } else if kept.is_empty() {
        Fitting::Nothing
    } else {
        Fitting::Part(TxnOp::Multi(kept))
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

    /// Over a tree that already shows part of a txn, `fit` keeps only the rest; over an exact
    /// tree it changes nothing.
    #[test]
    fn fit_keeps_what_the_tree_does_not_show_yet() {
        let mut tree = DataTree::new();
        let mut triggers = Vec::new();
        tree.apply(&create(1, "/a"), &mut triggers);
        // Exact: a create, a set and a multi with a check all apply as they are.
        assert!(fit(&mut tree, &create(2, "/b")).is_none());
        let set = Txn {
            op: TxnOp::SetData {
                path: "/a".into(),
                data: None,
                version: 1,
            },
            ..create(2, "/x")
        };
        assert!(fit(&mut tree, &set).is_none());
        let checked = Txn {
            op: TxnOp::Multi(vec![
                TxnOp::Check {
                    path: "/a".into(),
                    version: 0,
                },
                create(2, "/a/c").op,
            ]),
            ..create(2, "/x")
        };
        assert!(fit(&mut tree, &checked).is_none());
        // Fuzzy: /a is there already, so its create is nothing but the parent's cversion.
        let cversion = tree.get("/").unwrap().cversion;
        let again = Txn {
            op: match create(2, "/a").op {
                TxnOp::Create {
                    parent_cversion: _,
                    path,
                    data,
                    acl,
                    ephemeral_owner,
                    opcode,
                } => TxnOp::Create {
                    parent_cversion: cversion + 1,
                    path,
                    data,
                    acl,
                    ephemeral_owner,
                    opcode,
                },
                _ => unreachable!(),
            },
            ..create(2, "/a")
        };
        let f = fit(&mut tree, &again).expect("cut");
        assert_eq!(f.op, TxnOp::Error(crate::proto::ErrorCode::Ok));
        assert_eq!(tree.get("/").unwrap().cversion, cversion + 1);
        // A multi that created /a (shown) and /a/d (not): only /a/d is left.
        let multi = Txn {
            op: TxnOp::Multi(vec![create(2, "/a").op, create(2, "/a/d").op]),
            ..create(2, "/x")
        };
        let f = fit(&mut tree, &multi).expect("cut");
        assert_eq!(f.op, TxnOp::Multi(vec![create(2, "/a/d").op]));
        // A delete of a node already gone, and a set on it: nothing.
        let gone = Txn {
            op: TxnOp::Delete {
                path: "/gone".into(),
            },
            ..create(2, "/x")
        };
        assert_eq!(
            fit(&mut tree, &gone).unwrap().op,
            TxnOp::Error(crate::proto::ErrorCode::Ok)
        );
        tree.apply(&f, &mut triggers);
        assert!(tree.get("/a/d").is_some());
    }

    /// The body SNAP carries, read back through a stream cut anywhere, with its signature.
    #[test]
    fn a_snap_body_reads_back_through_any_cut() {
        let mut tree = DataTree::new();
        let mut triggers = Vec::new();
        for (z, p) in [(1, "/a"), (2, "/a/b"), (3, "/c")] {
            tree.apply(&create(z, p), &mut triggers);
        }
        let mut wire = Vec::new();
        assert!(write_for_snap(&tree, &[(9, 4000)], |piece| {
            wire.extend_from_slice(&piece);
            true
        }));
        for cut in 0..wire.len() {
            let mut r = BodyReader::new(0, true);
            let (used, whole) = r.take(&wire[..cut]).unwrap();
            assert!(!whole, "not whole at {cut}");
            let (rest, whole) = r.take(&wire[used..]).unwrap();
            assert!(whole && used + rest == wire.len());
            let s = r.finish(3).unwrap();
            assert_eq!(s.sessions, vec![(9, 4000)]);
            assert_eq!(s.tree.digest(), tree.digest());
            assert_eq!(s.stamped_zxid, 3);
        }
        // The file's body is the same bytes, between its header and its seal.
        let file = write_snapshot(&tree, &[(9, 4000)]);
        let signature = 4 + SNAP_SIGNATURE.len();
        assert_eq!(
            &file[HEADER_BYTES..HEADER_BYTES + wire.len() - signature],
            &wire[..wire.len() - signature]
        );
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
