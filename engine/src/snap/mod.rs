//! Snapshots: a tree version, the live sessions and the last zxid, as a file of rkyv archives.
//! Byte layout and crash cases: `FORMAT.md` beside this file.
//!
//! Writing is streamed: [`Encoder`] walks the tree in preorder and yields framed chunks of at most
//! [`CHUNK_NODES_MAX`] nodes, so the snapshot core never holds more than one chunk of copies. The
//! ACL table and sessions go last, in the meta frame, and the header (written over the first
//! [`HEADER_BYTES`] once everything else is out) says where that frame is.
//!
//! Loading ([`load`]) takes the file as one [`Bytes`] (the runtime passes an mmap) and checks the
//! header CRC, every frame's CRC32C and every archive (bytecheck) before it trusts a byte. Node data
//! is never copied: each node's `data` is a slice of the file's `Bytes`, so restart cost is
//! building the maps, not moving data.
//!
//! Invariants of a valid file: frames tile the file from `HEADER_BYTES` to the header's
//! `file_bytes`; the node frames hold exactly `node_count` nodes in preorder, children in name
//! order, each followed by its `num_children` subtrees; the first node is `/`.

use crate::proto::{Acl, Id};
use crate::tree::{path, Children, DataTree, Node, Restorer, ROOT};
use crate::txn::NodeKind;
use bytes::Bytes;
use rkyv::rancor;
use std::collections::HashMap;
use std::sync::Arc;

/// The magic of the format written now. Version 2 added null data (`SnapNode::data` is an
/// `Option`); version 1 files are still read (their nodes all have data).
pub const MAGIC: &[u8; 8] = b"RKSNAPv2";
pub const MAGIC_V1: &[u8; 8] = b"RKSNAPv1";
pub const HEADER_BYTES: usize = 64;
/// Frames start at multiples of this, so archives are aligned for zero-copy access.
pub const FRAME_ALIGN: usize = 16;
pub const FRAME_HEADER_BYTES: usize = 16;
/// Most nodes in one node frame, and about the most bytes of paths and data (a chunk closes
/// once it passes this, so a tree of large nodes makes frames far below what a reader or SNAP
/// accepts).
pub const CHUNK_NODES_MAX: usize = 8192;
pub const CHUNK_BYTES_MAX: usize = 64 << 20;
/// Largest frame payload a reader accepts (a chunk of 8192 nodes of 1 MiB each stays under it).
pub const FRAME_BYTES_MAX: u64 = 16 << 30;

const KIND_NODES: u32 = 1;
const KIND_META: u32 = 2;

/// One znode as archived. `cversion` is the stored cversion (child creates), as in the tree.
#[derive(rkyv::Archive, rkyv::Serialize, Debug)]
pub struct SnapNode {
    /// The last path component; empty for `/`.
    pub name: String,
    /// `None` is null data.
    pub data: Option<Vec<u8>>,
    /// Index into the meta frame's ACL table.
    pub acl: u32,
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub ephemeral_owner: i64,
    pub pzxid: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub num_children: u32,
}

#[derive(rkyv::Archive, rkyv::Serialize, Debug)]
pub struct NodeChunk {
    pub nodes: Vec<SnapNode>,
}

/// A node as format version 1 archived it: data could not be null.
#[derive(rkyv::Archive, rkyv::Serialize, Debug)]
pub struct SnapNodeV1 {
    pub name: String,
    pub data: Vec<u8>,
    pub acl: u32,
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub ephemeral_owner: i64,
    pub pzxid: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub num_children: u32,
}

#[derive(rkyv::Archive, rkyv::Serialize, Debug)]
pub struct NodeChunkV1 {
    pub nodes: Vec<SnapNodeV1>,
}

/// One archived node's fields, whichever format version archived it.
struct NodeFields<'a> {
    name: &'a str,
    data: Option<&'a [u8]>,
    acl: u32,
    czxid: i64,
    mzxid: i64,
    ctime: i64,
    mtime: i64,
    ephemeral_owner: i64,
    pzxid: i64,
    version: i32,
    cversion: i32,
    aversion: i32,
    num_children: u32,
}

impl ArchivedSnapNode {
    fn fields(&self) -> NodeFields<'_> {
        NodeFields {
            name: self.name.as_str(),
            data: self.data.as_ref().map(|d| d.as_slice()),
            acl: self.acl.to_native(),
            czxid: self.czxid.to_native(),
            mzxid: self.mzxid.to_native(),
            ctime: self.ctime.to_native(),
            mtime: self.mtime.to_native(),
            ephemeral_owner: self.ephemeral_owner.to_native(),
            pzxid: self.pzxid.to_native(),
            version: self.version.to_native(),
            cversion: self.cversion.to_native(),
            aversion: self.aversion.to_native(),
            num_children: self.num_children.to_native(),
        }
    }
}

impl ArchivedSnapNodeV1 {
    fn fields(&self) -> NodeFields<'_> {
        NodeFields {
            name: self.name.as_str(),
            data: Some(self.data.as_slice()),
            acl: self.acl.to_native(),
            czxid: self.czxid.to_native(),
            mzxid: self.mzxid.to_native(),
            ctime: self.ctime.to_native(),
            mtime: self.mtime.to_native(),
            ephemeral_owner: self.ephemeral_owner.to_native(),
            pzxid: self.pzxid.to_native(),
            version: self.version.to_native(),
            cversion: self.cversion.to_native(),
            aversion: self.aversion.to_native(),
            num_children: self.num_children.to_native(),
        }
    }
}

#[derive(rkyv::Archive, rkyv::Serialize, Debug)]
pub struct SnapAcl {
    pub perms: i32,
    pub scheme: String,
    pub id: String,
}

#[derive(rkyv::Archive, rkyv::Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapSession {
    pub id: i64,
    pub timeout_ms: i32,
}

#[derive(rkyv::Archive, rkyv::Serialize, Debug)]
pub struct Meta {
    pub last_zxid: i64,
    pub node_count: u64,
    pub sessions: Vec<SnapSession>,
    pub acls: Vec<Vec<SnapAcl>>,
}

/// The fixed header at offset 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version: 2 (written now) or 1.
    pub version: u8,
    pub last_zxid: i64,
    pub node_count: u64,
    pub chunk_count: u32,
    pub meta_offset: u64,
    pub file_bytes: u64,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        b[0..8].copy_from_slice(match self.version {
            1 => MAGIC_V1,
            _ => MAGIC,
        });
        b[8..16].copy_from_slice(&self.last_zxid.to_le_bytes());
        b[16..24].copy_from_slice(&self.node_count.to_le_bytes());
        b[24..28].copy_from_slice(&self.chunk_count.to_le_bytes());
        b[32..40].copy_from_slice(&self.meta_offset.to_le_bytes());
        b[40..48].copy_from_slice(&self.file_bytes.to_le_bytes());
        let crc = crc32c::crc32c(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<Header, SnapError> {
        if b.len() < HEADER_BYTES {
            return Err(SnapError::at(
                0,
                format!("{} bytes, shorter than the header", b.len()),
            ));
        }
        let version = match &b[0..8] {
            m if m == MAGIC => 2,
            m if m == MAGIC_V1 => 1,
            _ => return Err(SnapError::at(0, "not a Ringkeeper snapshot (bad magic)")),
        };
        let crc = u32::from_le_bytes(b[60..64].try_into().expect("4 bytes"));
        if crc != crc32c::crc32c(&b[..60]) {
            return Err(SnapError::at(0, "header checksum mismatch"));
        }
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        Ok(Header {
            version,
            last_zxid: u64_at(8) as i64,
            node_count: u64_at(16),
            chunk_count: u32::from_le_bytes(b[24..28].try_into().expect("4 bytes")),
            meta_offset: u64_at(32),
            file_bytes: u64_at(40),
        })
    }
}

/// A snapshot that cannot be trusted, with the file offset where the problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapError {
    pub offset: u64,
    pub what: String,
}

impl SnapError {
    fn at(offset: u64, what: impl Into<String>) -> SnapError {
        SnapError {
            offset,
            what: what.into(),
        }
    }
}

impl std::fmt::Display for SnapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad snapshot at offset {}: {}", self.offset, self.what)
    }
}

impl std::error::Error for SnapError {}

fn padded(len: usize) -> usize {
    len.div_ceil(FRAME_ALIGN) * FRAME_ALIGN
}

/// Frames an archive: length, CRC32C, kind, reserved, payload, zero padding.
fn frame(kind: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + padded(payload.len()));
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(payload);
    out.resize(FRAME_HEADER_BYTES + padded(payload.len()), 0);
    out
}

/// Streams a tree version out as framed chunks; see the module docs for the order of writing.
pub struct Encoder<'t> {
    tree: &'t DataTree,
    /// Paths still to visit, the next one on top (preorder).
    stack: Vec<String>,
    acl_by_ptr: HashMap<*const Vec<Acl>, u32>,
    acl_by_value: HashMap<Vec<Acl>, u32>,
    acls: Vec<Vec<SnapAcl>>,
    offset: u64,
    chunk_count: u32,
    node_count: u64,
}

impl<'t> Encoder<'t> {
    pub fn new(tree: &'t DataTree) -> Encoder<'t> {
        Encoder {
            tree,
            stack: vec![ROOT.to_string()],
            acl_by_ptr: HashMap::new(),
            acl_by_value: HashMap::new(),
            acls: Vec::new(),
            offset: HEADER_BYTES as u64,
            chunk_count: 0,
            node_count: 0,
        }
    }

    fn acl_index(&mut self, acl: &Arc<Vec<Acl>>) -> u32 {
        if let Some(i) = self.acl_by_ptr.get(&Arc::as_ptr(acl)) {
            return *i;
        }
        let next = self.acls.len() as u32;
        let i = *self.acl_by_value.entry((**acl).clone()).or_insert(next);
        if i == next {
            self.acls.push(
                acl.iter()
                    .map(|a| SnapAcl {
                        perms: a.perms,
                        scheme: a.id.scheme.clone(),
                        id: a.id.id.clone(),
                    })
                    .collect(),
            );
        }
        // The tree version is held for the whole walk, so the pointer cannot be reused.
        self.acl_by_ptr.insert(Arc::as_ptr(acl), i);
        i
    }

    /// The next node frame, or None once every node is out.
    pub fn next_chunk(&mut self) -> Option<Vec<u8>> {
        let mut nodes = Vec::new();
        let mut bytes = 0usize;
        while nodes.len() < CHUNK_NODES_MAX && bytes < CHUNK_BYTES_MAX {
            let Some(p) = self.stack.pop() else { break };
            let node = self
                .tree
                .get(&p)
                .unwrap_or_else(|| panic!("snapshot walk: {p} listed but missing"));
            for child in node.children.iter().rev() {
                self.stack.push(path::join(&p, child));
            }
            bytes += p.len() + node.data.as_ref().map_or(0, |d| d.len());
            nodes.push(SnapNode {
                name: if p == ROOT {
                    String::new()
                } else {
                    path::name(&p).to_string()
                },
                data: node.data.as_ref().map(|d| d.to_vec()),
                acl: self.acl_index(&node.acl),
                czxid: node.czxid,
                mzxid: node.mzxid,
                ctime: node.ctime,
                mtime: node.mtime,
                ephemeral_owner: node.ephemeral_owner,
                pzxid: node.pzxid,
                version: node.version,
                cversion: node.cversion,
                aversion: node.aversion,
                num_children: node.children.len() as u32,
            });
        }
        if nodes.is_empty() {
            return None;
        }
        self.node_count += nodes.len() as u64;
        self.chunk_count += 1;
        let archive =
            rkyv::to_bytes::<rancor::Error>(&NodeChunk { nodes }).expect("archiving a node chunk");
        let framed = frame(KIND_NODES, &archive);
        self.offset += framed.len() as u64;
        Some(framed)
    }

    /// The meta frame (to write after the last node frame) and the header (to write at offset 0).
    pub fn finish(mut self, sessions: &[SnapSession]) -> (Vec<u8>, [u8; HEADER_BYTES]) {
        assert!(
            self.next_chunk().is_none(),
            "finish before the last node chunk"
        );
        assert_eq!(
            self.node_count,
            self.tree.node_count() as u64,
            "walk reached every node once"
        );
        let meta = Meta {
            last_zxid: self.tree.last_zxid(),
            node_count: self.node_count,
            sessions: sessions.to_vec(),
            acls: std::mem::take(&mut self.acls),
        };
        let archive = rkyv::to_bytes::<rancor::Error>(&meta).expect("archiving the meta frame");
        let framed = frame(KIND_META, &archive);
        let header = Header {
            version: 2,
            last_zxid: meta.last_zxid,
            node_count: self.node_count,
            chunk_count: self.chunk_count,
            meta_offset: self.offset,
            file_bytes: self.offset + framed.len() as u64,
        };
        (framed, header.encode())
    }
}

/// A whole snapshot in memory (tests, fuzzing, small trees).
pub fn encode_to_vec(tree: &DataTree, sessions: &[SnapSession]) -> Vec<u8> {
    let mut enc = Encoder::new(tree);
    let mut out = vec![0u8; HEADER_BYTES];
    while let Some(chunk) = enc.next_chunk() {
        out.extend_from_slice(&chunk);
    }
    let (meta, header) = enc.finish(sessions);
    out.extend_from_slice(&meta);
    out[..HEADER_BYTES].copy_from_slice(&header);
    out
}

/// A snapshot file whose one node frame carries `payload` (with a correct CRC, so the archive
/// validation and the tree rebuilding see arbitrary bytes) and a valid meta frame: for fuzzing.
#[doc(hidden)]
pub fn file_with_node_payload(node_count: u64, payload: &[u8]) -> Vec<u8> {
    let nodes = frame(KIND_NODES, payload);
    let meta = Meta {
        last_zxid: 5,
        node_count,
        sessions: vec![SnapSession {
            id: 0x77,
            timeout_ms: 4000,
        }],
        // What a fresh tree's walk meets first: `/`'s open ACL, then /zookeeper/config's read-only one.
        acls: [Acl::open_unsafe(), Acl::read_unsafe()]
            .iter()
            .map(|list| {
                list.iter()
                    .map(|a| SnapAcl {
                        perms: a.perms,
                        scheme: a.id.scheme.clone(),
                        id: a.id.id.clone(),
                    })
                    .collect()
            })
            .collect(),
    };
    let meta = frame(
        KIND_META,
        &rkyv::to_bytes::<rancor::Error>(&meta).expect("archiving the meta frame"),
    );
    let meta_offset = (HEADER_BYTES + nodes.len()) as u64;
    let header = Header {
        version: 2,
        last_zxid: 5,
        node_count,
        chunk_count: 1,
        meta_offset,
        file_bytes: meta_offset + meta.len() as u64,
    };
    let mut out = header.encode().to_vec();
    out.extend_from_slice(&nodes);
    out.extend_from_slice(&meta);
    out
}

/// The node-frame payload of a valid snapshot of `tree` (its first chunk): a seed for fuzzing.
#[doc(hidden)]
pub fn first_node_payload(tree: &DataTree) -> Vec<u8> {
    let chunk = Encoder::new(tree).next_chunk().expect("a tree has a root");
    let len = u64::from_le_bytes(chunk[..8].try_into().expect("8 bytes")) as usize;
    chunk[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len].to_vec()
}

/// What a valid snapshot holds.
#[derive(Debug)]
pub struct Loaded {
    pub tree: DataTree,
    pub sessions: Vec<SnapSession>,
    pub last_zxid: i64,
}

/// Reads the frame at `offset`: its kind and payload (a zero-copy slice of `file`).
fn read_frame(file: &Bytes, offset: u64, end: u64) -> Result<(u32, Bytes, u64), SnapError> {
    let b = &file[..];
    if offset + FRAME_HEADER_BYTES as u64 > end {
        return Err(SnapError::at(offset, "frame header runs past the end"));
    }
    let o = offset as usize;
    let len = u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(b[o + 8..o + 12].try_into().expect("4 bytes"));
    let kind = u32::from_le_bytes(b[o + 12..o + 16].try_into().expect("4 bytes"));
    if len > FRAME_BYTES_MAX || offset + (FRAME_HEADER_BYTES + padded(len as usize)) as u64 > end {
        return Err(SnapError::at(
            offset,
            format!("frame of {len} bytes runs past the end"),
        ));
    }
    let start = o + FRAME_HEADER_BYTES;
    let payload = file.slice(start..start + len as usize);
    if crc32c::crc32c(&payload) != crc {
        return Err(SnapError::at(offset, "frame checksum mismatch"));
    }
    let next = offset + (FRAME_HEADER_BYTES + padded(len as usize)) as u64;
    Ok((kind, payload, next))
}

fn access<'a, T>(payload: &'a Bytes, offset: u64) -> Result<&'a T, SnapError>
where
    T: rkyv::Portable
        + for<'b> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'b, rancor::Error>>,
{
    rkyv::access::<T, rancor::Error>(payload)
        .map_err(|e| SnapError::at(offset, format!("invalid archive: {e}")))
}

/// A node being rebuilt: its full path, the node, and how many children are still to come.
struct Open {
    path: Arc<str>,
    node: Node,
    children_left: u32,
}

/// Completed nodes from one node frame, for a [`Restorer`] (possibly on another thread).
pub struct NodeBatch {
    /// File offset of the frame they came from, for errors found while inserting them.
    pub offset: u64,
    /// Already in their `Arc`, so the thread that builds nodes also does their allocation.
    pub nodes: Vec<(Arc<str>, Arc<Node>)>,
}

/// The first half of loading: validates the header, the meta frame and each node frame in turn,
/// and turns each node frame into completed nodes. The second half, inserting them into a
/// [`Restorer`], can run on another thread (see [`insert_batch`]); [`load`] does both in one.
pub struct NodeReader<'f> {
    file: &'f Bytes,
    header: Header,
    acls: Vec<Arc<Vec<Acl>>>,
    /// Offset of the next node frame.
    offset: u64,
    frames_read: u32,
    open: Vec<Open>,
    seen: u64,
    path_buf: String,
}

/// What the meta frame says, besides the ACL table.
pub struct MetaInfo {
    pub last_zxid: i64,
    pub node_count: u64,
    pub sessions: Vec<SnapSession>,
}

impl<'f> NodeReader<'f> {
    pub fn open(file: &'f Bytes) -> Result<(NodeReader<'f>, MetaInfo), SnapError> {
        let header = Header::decode(file)?;
        if header.file_bytes > file.len() as u64 {
            return Err(SnapError::at(
                file.len() as u64,
                format!(
                    "file ends before the {} bytes its header names",
                    header.file_bytes
                ),
            ));
        }
        let end = header.file_bytes;
        let (kind, meta_bytes, meta_end) = read_frame(file, header.meta_offset, end)?;
        if kind != KIND_META || meta_end != end {
            return Err(SnapError::at(
                header.meta_offset,
                "no meta frame where the header says",
            ));
        }
        let meta = access::<ArchivedMeta>(&meta_bytes, header.meta_offset)?;
        if meta.last_zxid.to_native() != header.last_zxid
            || meta.node_count.to_native() != header.node_count
        {
            return Err(SnapError::at(
                header.meta_offset,
                "meta frame disagrees with the header",
            ));
        }
        let acls = meta
            .acls
            .iter()
            .map(|list| {
                Arc::new(
                    list.iter()
                        .map(|a| Acl {
                            perms: a.perms.to_native(),
                            id: Id::new(a.scheme.as_str(), a.id.as_str()),
                        })
                        .collect(),
                )
            })
            .collect();
        let info = MetaInfo {
            last_zxid: header.last_zxid,
            node_count: header.node_count,
            sessions: meta
                .sessions
                .iter()
                .map(|s| SnapSession {
                    id: s.id.to_native(),
                    timeout_ms: s.timeout_ms.to_native(),
                })
                .collect(),
        };
        let reader = NodeReader {
            file,
            header,
            acls,
            offset: HEADER_BYTES as u64,
            frames_read: 0,
            open: Vec::new(),
            seen: 0,
            path_buf: String::new(),
        };
        Ok((reader, info))
    }

    /// The completed nodes of the next node frame; None after the last frame.
    pub fn next_batch(&mut self) -> Result<Option<NodeBatch>, SnapError> {
        if self.frames_read == self.header.chunk_count {
            return Ok(None);
        }
        let offset = self.offset;
        let (kind, payload, next) = read_frame(self.file, offset, self.header.meta_offset)?;
        if kind != KIND_NODES {
            return Err(SnapError::at(
                offset,
                format!("frame kind {kind}, expected nodes"),
            ));
        }
        let mut done = Vec::new();
        if self.header.version == 1 {
            let chunk = access::<ArchivedNodeChunkV1>(&payload, offset)?;
            done.reserve(chunk.nodes.len());
            for n in chunk.nodes.iter() {
                self.node(n.fields(), offset, &mut done)?;
            }
        } else {
            let chunk = access::<ArchivedNodeChunk>(&payload, offset)?;
            done.reserve(chunk.nodes.len());
            for n in chunk.nodes.iter() {
                self.node(n.fields(), offset, &mut done)?;
            }
        }
        self.offset = next;
        self.frames_read += 1;
        Ok(Some(NodeBatch {
            offset,
            nodes: done,
        }))
    }

    fn node(
        &mut self,
        n: NodeFields<'_>,
        offset: u64,
        done: &mut Vec<(Arc<str>, Arc<Node>)>,
    ) -> Result<(), SnapError> {
        let name = n.name;
        let path: Arc<str> = match self.open.last_mut() {
            None if self.seen == 0 && name.is_empty() => Arc::from(ROOT),
            None => return Err(SnapError::at(offset, "node outside the tree")),
            Some(parent) => {
                if name.is_empty() || name.contains('/') {
                    return Err(SnapError::at(offset, format!("bad node name {name:?}")));
                }
                parent.children_left -= 1;
                if parent.node.children.insert(Arc::from(name)).is_some() {
                    return Err(SnapError::at(offset, format!("{name} listed twice")));
                }
                self.path_buf.clear();
                if &*parent.path != ROOT {
                    self.path_buf.push_str(&parent.path);
                }
                self.path_buf.push('/');
                self.path_buf.push_str(name);
                Arc::from(self.path_buf.as_str())
            }
        };
        let owner = n.ephemeral_owner;
        if n.num_children > 0 && matches!(NodeKind::of_owner(owner, true), NodeKind::Ephemeral(_)) {
            return Err(SnapError::at(
                offset,
                format!("ephemeral {path} has children"),
            ));
        }
        let acl = self
            .acls
            .get(n.acl as usize)
            .ok_or_else(|| SnapError::at(offset, format!("{path}: no ACL {}", n.acl)))?
            .clone();
        self.open.push(Open {
            path,
            node: Node {
                data: n.data.map(|d| self.file.slice_ref(d)),
                acl,
                czxid: n.czxid,
                mzxid: n.mzxid,
                ctime: n.ctime,
                mtime: n.mtime,
                version: n.version,
                cversion: n.cversion,
                aversion: n.aversion,
                ephemeral_owner: owner,
                pzxid: n.pzxid,
                children: Children::new(),
            },
            children_left: n.num_children,
        });
        self.seen += 1;
        while self.open.last().is_some_and(|o| o.children_left == 0) {
            let o = self.open.pop().expect("checked");
            done.push((o.path, Arc::new(o.node)));
        }
        Ok(())
    }

    /// Checks that the node frames held exactly the tree the header announced.
    pub fn finish(self) -> Result<(), SnapError> {
        if self.offset != self.header.meta_offset
            || !self.open.is_empty()
            || self.seen != self.header.node_count
        {
            return Err(SnapError::at(
                self.offset,
                format!(
                    "node frames end with {} of {} nodes and {} unfinished",
                    self.seen,
                    self.header.node_count,
                    self.open.len()
                ),
            ));
        }
        Ok(())
    }
}

/// The second half of loading: inserts a batch; an error names the frame of a repeated path.
pub fn insert_batch(restorer: &mut Restorer, batch: NodeBatch) -> Result<(), SnapError> {
    for (path, node) in batch.nodes {
        restorer
            .insert(path, node)
            .map_err(|path| SnapError::at(batch.offset, format!("{path} appears twice")))?;
    }
    Ok(())
}

/// Loads and validates a snapshot file on this thread. Node data borrows `file`.
pub fn load(file: &Bytes) -> Result<Loaded, SnapError> {
    let (mut reader, info) = NodeReader::open(file)?;
    let mut restorer = Restorer::new();
    while let Some(batch) = reader.next_batch()? {
        insert_batch(&mut restorer, batch)?;
    }
    reader.finish()?;
    Ok(Loaded {
        tree: restorer.finish(info.last_zxid),
        sessions: info.sessions,
        last_zxid: info.last_zxid,
    })
}

#[cfg(test)]
mod tests;
