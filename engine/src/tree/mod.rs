//! The versioned znode tree.
//!
//! A [`DataTree`] is a value: cloning it is O(1) and the clone is an immutable version that front
//! cores read from while the pipeline goes on applying (the maps are structurally shared `imbl`
//! maps). Apply follows ZooKeeper's `DataTree`: the Stat rules, the ephemeral index, and the watch
//! [`Trigger`]s each change fires.
//!
//! Invariants (checked by [`DataTree::check_invariants`]): every node but `/` has its parent in the
//! map and is listed among its children; `numChildren` is the children set's size; every
//! ephemeral is indexed under its owner and nothing else is.

pub mod acl;
pub mod path;

use crate::proto::{data_len, Acl, Data, ErrorCode, Stat};
use crate::txn::{NodeKind, Txn, TxnOp, CONTAINER_OWNER};
use std::sync::Arc;

pub type ChildSet = imbl::OrdSet<Arc<str>>;

/// A node's children: a sorted set of names, boxed and absent when empty, since most znodes are
/// leaves. That keeps `Node` at 112 bytes (a 128-byte allocation with its `Arc`), which is most
/// of the memory a znode costs and most of what a restart spends its time allocating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Children(Option<Box<ChildSet>>);

impl Children {
    pub fn new() -> Children {
        Children(None)
    }

    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Names in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Arc<str>> {
        self.0.iter().flat_map(|s| s.iter())
    }

    /// Names after `after` (all of them for None), in order.
    pub fn iter_after<'a>(&'a self, after: Option<&'a str>) -> impl Iterator<Item = &'a Arc<str>> {
        use std::ops::Bound;
        let lower: Bound<&str> = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.0
            .iter()
            .flat_map(move |s| s.range::<_, str>((lower, Bound::Unbounded)))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.as_ref().is_some_and(|s| s.contains(name))
    }

    /// Adds `name`; returns it back if it was there already.
    pub fn insert(&mut self, name: Arc<str>) -> Option<Arc<str>> {
        self.0.get_or_insert_with(Default::default).insert(name)
    }

    /// Removes `name`; returns it if it was there.
    pub fn remove(&mut self, name: &str) -> Option<Arc<str>> {
        let set = self.0.as_mut()?;
        let removed = set.remove(name);
        if set.is_empty() {
            self.0 = None;
        }
        removed
    }
}

/// Path -> node. aHash instead of SipHash: every read and write hashes a path, and a restart
/// inserts every node. Keys are seeded per process, so paths cannot be chosen to collide.
type NodeMap = imbl::GenericHashMap<
    Arc<str>,
    Arc<Node>,
    ahash::RandomState,
    imbl::shared_ptr::DefaultSharedPtr,
>;

/// One znode. Sizes are derived (`dataLength`, `numChildren`), everything else is stored.
///
/// `cversion` is ZooKeeper's *stored* cversion: the number of child creates. Clients see
/// `2 * cversion - numChildren` (so creates and deletes each count once), and sequential suffixes
/// use the stored value.
#[derive(Debug, Clone)]
pub struct Node {
    /// `None` is null data (ZooKeeper keeps it apart from empty); `Option<Bytes>` is no larger
    /// than `Bytes`.
    pub data: Data,
    pub acl: Arc<Vec<Acl>>,
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub pzxid: i64,
    pub children: Children,
}

impl Node {
    fn empty(acl: Arc<Vec<Acl>>) -> Node {
        Node {
            data: Some(bytes::Bytes::new()),
            acl,
            czxid: 0,
            mzxid: 0,
            ctime: 0,
            mtime: 0,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 0,
            pzxid: 0,
            children: Children::new(),
        }
    }

    pub fn stat(&self) -> Stat {
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: self
                .cversion
                .wrapping_mul(2)
                .wrapping_sub(self.children.len() as i32),
            aversion: self.aversion,
            ephemeral_owner: match NodeKind::of_owner(self.ephemeral_owner, true) {
                NodeKind::Ephemeral(owner) => owner,
                _ => 0,
            },
            data_length: data_len(&self.data) as i32,
            num_children: self.children.len() as i32,
            pzxid: self.pzxid,
        }
    }
}

/// A node's share of `zk_approximate_data_size`: its path and data bytes.
fn node_bytes(path: &str, node: &Node) -> u64 {
    (path.len() + data_len(&node.data)) as u64
}

/// What kind of change a trigger reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerKind {
    /// NodeCreated on the path.
    Created,
    /// NodeDeleted on the path (data and child watches, one event per watcher).
    Deleted,
    /// NodeDataChanged on the path.
    DataChanged,
    /// NodeChildrenChanged on the (parent) path.
    ChildrenChanged,
}

/// A watch trigger produced by apply, in the order ZooKeeper fires them. `acl` is the ACL a
/// watcher needs READ on for the event to be delivered (the parent's for ChildrenChanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub kind: TriggerKind,
    pub path: Arc<str>,
    pub acl: Arc<Vec<Acl>>,
}

/// What applying one op did, for building replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created {
        path: String,
        stat: Stat,
        opcode: i32,
    },
    Deleted,
    DataSet(Stat),
    AclSet(Stat),
    Checked,
    Error(ErrorCode),
    Multi(Vec<Outcome>),
    SessionCreated,
    SessionClosed,
}

/// The znode tree at one zxid.
#[derive(Debug, Clone)]
pub struct DataTree {
    nodes: NodeMap,
    ephemerals: imbl::HashMap<i64, ChildSet>,
    containers: ChildSet,
    ttls: ChildSet,
    last_zxid: i64,
    /// Sum of path and data bytes over all nodes, kept as nodes change (ZooKeeper's
    /// `nodeDataSize`), so `mntr` never walks the tree.
    data_bytes: u64,
}

pub const ROOT: &str = "/";
pub const ZOOKEEPER: &str = "/zookeeper";
pub const QUOTA: &str = "/zookeeper/quota";
pub const CONFIG: &str = "/zookeeper/config";

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

impl DataTree {
    /// A fresh tree: `/`, `/zookeeper`, `/zookeeper/quota`, `/zookeeper/config`, as ZooKeeper has.
    pub fn new() -> DataTree {
        let open = Arc::new(Acl::open_unsafe());
        let mut root = Node::empty(open.clone());
        root.children.insert(Arc::from("zookeeper"));
        let mut zk = Node::empty(open.clone());
        zk.children.insert(Arc::from("quota"));
        zk.children.insert(Arc::from("config"));
        let quota = Node::empty(open);
        let mut config = Node::empty(Arc::new(Acl::read_unsafe()));
        config.aversion = -1;
        let mut nodes = NodeMap::default();
        nodes.insert(Arc::from(ROOT), Arc::new(root));
        nodes.insert(Arc::from(ZOOKEEPER), Arc::new(zk));
        nodes.insert(Arc::from(QUOTA), Arc::new(quota));
        nodes.insert(Arc::from(CONFIG), Arc::new(config));
        DataTree {
            nodes,
            ephemerals: imbl::HashMap::new(),
            containers: ChildSet::new(),
            ttls: ChildSet::new(),
            last_zxid: 0,
            data_bytes: [ROOT, ZOOKEEPER, QUOTA, CONFIG]
                .iter()
                .map(|p| p.len() as u64)
                .sum(),
        }
    }

    pub fn get(&self, path: &str) -> Option<&Arc<Node>> {
        self.nodes.get(path)
    }

    /// Puts an ensemble's membership into `/zookeeper/config`, as ZooKeeper's
    /// `initConfigInZKDatabase` does at startup: the configuration text, version -1, mzxid
    /// unchanged (0 for a static configuration), mtime `now_ms`. No txn: every member does it
    /// for itself.
    pub fn set_config(&mut self, text: bytes::Bytes, now_ms: i64) {
        let node = self
            .nodes
            .get_mut(CONFIG)
            .expect("the config node always exists");
        let n = Arc::make_mut(node);
        let old = n.data.as_ref().map_or(0, |d| d.len()) as u64;
        self.data_bytes = self.data_bytes - old + text.len() as u64;
        n.data = Some(text);
        n.version = -1;
        n.mtime = now_ms;
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Paths of `session`'s ephemerals, sorted, without copying them.
    pub fn ephemerals_iter(&self, session: i64) -> impl Iterator<Item = &Arc<str>> {
        self.ephemerals
            .get(&session)
            .into_iter()
            .flat_map(|s| s.iter())
    }

    /// Paths of `session`'s ephemerals, sorted.
    pub fn ephemerals_of(&self, session: i64) -> Vec<String> {
        self.ephemerals
            .get(&session)
            .map(|s| s.iter().map(|p| p.to_string()).collect())
            .unwrap_or_default()
    }

    /// How many ephemerals there are, in time proportional to the sessions owning some.
    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(|set| set.len()).sum()
    }

    /// Every session owning ephemerals, with how many.
    pub fn ephemeral_counts(&self) -> Vec<(i64, usize)> {
        let mut v: Vec<_> = self
            .ephemerals
            .iter()
            .map(|(s, set)| (*s, set.len()))
            .collect();
        v.sort();
        v
    }

    pub fn containers(&self) -> impl Iterator<Item = &Arc<str>> {
        self.containers.iter()
    }

    pub fn ttl_nodes(&self) -> impl Iterator<Item = &Arc<str>> {
        self.ttls.iter()
    }

    /// Path and data bytes over all nodes (`mntr`'s zk_approximate_data_size), in O(1).
    pub fn approximate_data_size(&self) -> u64 {
        self.data_bytes
    }

    /// The same sum, walked: what [`approximate_data_size`](Self::approximate_data_size) must equal.
    fn walked_data_size(&self) -> u64 {
        self.nodes.iter().map(|(p, n)| node_bytes(p, n)).sum()
    }

    /// Applies a decided txn. Panics if the txn does not fit the tree: prep guarantees it does,
    /// so a misfit is a bug, not bad input.
    pub fn apply(&mut self, txn: &Txn, triggers: &mut Vec<Trigger>) -> Outcome {
        assert!(
            txn.zxid > self.last_zxid,
            "zxid {:#x} not after {:#x}",
            txn.zxid,
            self.last_zxid
        );
        let outcome = self.apply_op(txn, &txn.op, triggers);
        self.last_zxid = txn.zxid;
        outcome
    }

    /// Marks a scratch copy that prep already applied a whole multi to as being at that txn's
    /// zxid (see `prep::Applied`).
    pub(crate) fn applied_through(&mut self, zxid: i64) {
        assert!(
            zxid > self.last_zxid,
            "zxid {zxid:#x} not after {:#x}",
            self.last_zxid
        );
        self.last_zxid = zxid;
    }

    /// Applies one op of a multi being prepped, on a scratch copy of the tree.
    pub(crate) fn apply_in_multi(
        &mut self,
        txn: &Txn,
        op: &TxnOp,
        triggers: &mut Vec<Trigger>,
    ) -> Outcome {
        self.apply_op(txn, op, triggers)
    }

    fn apply_op(&mut self, txn: &Txn, op: &TxnOp, triggers: &mut Vec<Trigger>) -> Outcome {
        match op {
            TxnOp::CreateSession { .. } => Outcome::SessionCreated,
            TxnOp::CloseSession => {
                for path in self.ephemerals_of(txn.session_id) {
                    self.delete(&path, txn.zxid, triggers);
                }
                Outcome::SessionClosed
            }
            TxnOp::Create {
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
                opcode,
            } => {
                let stat = self.create(
                    path,
                    data.clone(),
                    acl.clone(),
                    *ephemeral_owner,
                    *parent_cversion,
                    txn,
                    triggers,
                );
                Outcome::Created {
                    path: path.clone(),
                    stat,
                    opcode: *opcode,
                }
            }
            TxnOp::Delete { path } => {
                self.delete(path, txn.zxid, triggers);
                Outcome::Deleted
            }
            TxnOp::SetData {
                path,
                data,
                version,
            } => {
                let node = self.node_mut(path);
                let before = data_len(&node.data) as u64;
                node.data = data.clone();
                node.version = *version;
                node.mzxid = txn.zxid;
                node.mtime = txn.time_ms;
                let stat = node.stat();
                let acl = node.acl.clone();
                self.data_bytes = self.data_bytes + data_len(data) as u64 - before;
                triggers.push(Trigger {
                    kind: TriggerKind::DataChanged,
                    path: Arc::from(path.as_str()),
                    acl,
                });
                Outcome::DataSet(stat)
            }
            TxnOp::SetAcl {
                path,
                acl,
                aversion,
            } => {
                let node = self.node_mut(path);
                node.acl = acl.clone();
                node.aversion = *aversion;
                Outcome::AclSet(node.stat())
            }
            TxnOp::Check { .. } => Outcome::Checked,
            TxnOp::Error(code) => Outcome::Error(*code),
            TxnOp::Multi(ops) => {
                let outcomes = ops
                    .iter()
                    .map(|op| self.apply_op(txn, op, triggers))
                    .collect();
                Outcome::Multi(outcomes)
            }
        }
    }

    /// Deletes a session's ephemerals without a txn, stamping `zxid` on their parents, as
    /// ZooKeeper's `DataTree.killSession` does for sessions a restored tree names but no
    /// session table holds.
    pub fn kill_session(&mut self, session_id: i64, zxid: i64) {
        let mut triggers = Vec::new();
        for path in self.ephemerals_of(session_id) {
            self.delete(&path, zxid, &mut triggers);
        }
    }

    /// ZooKeeper's `DataTree.setCversionPzxid`: raises a node's cversion (and moves its pzxid)
    /// when a replayed create finds its node already there.
    pub fn set_cversion_pzxid(&mut self, path: &str, cversion: i32, zxid: i64) {
        if self.nodes.get(path).is_none() {
            return;
        }
        let node = self.node_mut(path);
        let cversion = if cversion == -1 {
            node.cversion + 1
        } else {
            cversion
        };
        if cversion > node.cversion {
            node.cversion = cversion;
            node.pzxid = zxid;
        }
    }

    /// Every session that owns an ephemeral node.
    pub fn ephemeral_owners(&self) -> Vec<i64> {
        let mut owners: Vec<i64> = self.ephemerals.keys().copied().collect();
        owners.sort_unstable();
        owners
    }

    fn node_mut(&mut self, path: &str) -> &mut Node {
        let node = self
            .nodes
            .get_mut(path)
            .unwrap_or_else(|| panic!("apply: no node {path}"));
        Arc::make_mut(node)
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        path: &str,
        data: Data,
        acl: Arc<Vec<Acl>>,
        owner: i64,
        parent_cversion: i32,
        txn: &Txn,
        triggers: &mut Vec<Trigger>,
    ) -> Stat {
        let key: Arc<str> = Arc::from(path);
        let parent_path = path::parent(path);
        let name: Arc<str> = Arc::from(path::name(path));
        let parent = self.node_mut(parent_path);
        assert!(
            parent.children.insert(name).is_none(),
            "apply: create of existing {path}"
        );
        if parent_cversion > parent.cversion {
            parent.cversion = parent_cversion;
            parent.pzxid = txn.zxid;
        }
        let parent_acl = parent.acl.clone();
        let node_acl = acl.clone();
        let node = Node {
            data,
            acl,
            czxid: txn.zxid,
            mzxid: txn.zxid,
            ctime: txn.time_ms,
            mtime: txn.time_ms,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: owner,
            pzxid: txn.zxid,
            children: Children::new(),
        };
        let stat = node.stat();
        self.index(&key, owner);
        self.data_bytes += node_bytes(&key, &node);
        self.nodes.insert(key.clone(), Arc::new(node));
        triggers.push(Trigger {
            kind: TriggerKind::Created,
            path: key,
            acl: node_acl,
        });
        triggers.push(Trigger {
            kind: TriggerKind::ChildrenChanged,
            path: Arc::from(parent_path),
            acl: parent_acl,
        });
        stat
    }

    /// Adds a new node's path to the container, TTL or ephemeral index its owner puts it in.
    fn index(&mut self, path: &Arc<str>, owner: i64) {
        match NodeKind::of_owner(owner, true) {
            NodeKind::Persistent => {}
            NodeKind::Container => {
                self.containers.insert(path.clone());
            }
            NodeKind::Ttl(_) => {
                self.ttls.insert(path.clone());
            }
            NodeKind::Ephemeral(session) => {
                self.ephemerals
                    .entry(session)
                    .or_default()
                    .insert(path.clone());
            }
        }
    }

    fn delete(&mut self, path: &str, zxid: i64, triggers: &mut Vec<Trigger>) {
        let key: Arc<str> = Arc::from(path);
        let node = self
            .nodes
            .remove(path)
            .unwrap_or_else(|| panic!("apply: delete of missing {path}"));
        assert!(
            node.children.is_empty(),
            "apply: delete of non-empty {path}"
        );
        self.data_bytes -= node_bytes(path, &node);
        let parent_path = path::parent(path);
        let parent = self.node_mut(parent_path);
        assert!(
            parent.children.remove(path::name(path)).is_some(),
            "apply: {path} not listed in its parent"
        );
        if zxid > parent.pzxid {
            parent.pzxid = zxid;
        }
        let parent_acl = parent.acl.clone();
        let owner = node.ephemeral_owner;
        if owner == CONTAINER_OWNER {
            self.containers.remove(path);
        } else if let NodeKind::Ttl(_) = NodeKind::of_owner(owner, true) {
            self.ttls.remove(path);
        } else if owner != 0 {
            if let Some(set) = self.ephemerals.get_mut(&owner) {
                set.remove(path);
                if set.is_empty() {
                    self.ephemerals.remove(&owner);
                }
            }
        }
        triggers.push(Trigger {
            kind: TriggerKind::Deleted,
            path: key,
            acl: node.acl.clone(),
        });
        triggers.push(Trigger {
            kind: TriggerKind::ChildrenChanged,
            path: Arc::from(parent_path),
            acl: parent_acl,
        });
    }

    /// Iterates every node (in no particular order).
    pub fn nodes(&self) -> impl Iterator<Item = (&Arc<str>, &Arc<Node>)> {
        self.nodes.iter()
    }

    /// A digest of every node's path, data, ACL and Stat fields, independent of iteration
    /// order: trees with the same content have the same digest, whatever their history. Replicas
    /// that applied the same txns compare it. O(nodes).
    pub fn digest(&self) -> u64 {
        fn mix(h: &mut u64, bytes: &[u8]) {
            // FNV-1a, then a length marker so adjacent fields cannot run into each other.
            for b in bytes {
                *h ^= u64::from(*b);
                *h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            *h ^= bytes.len() as u64;
            *h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let mut sum = 0u64;
        for (path, n) in self.nodes.iter() {
            let mut h = 0xcbf2_9ce4_8422_2325u64;
            mix(&mut h, path.as_bytes());
            match &n.data {
                Some(d) => mix(&mut h, d),
                None => mix(&mut h, b"\xffnull"),
            }
            for a in n.acl.iter() {
                mix(&mut h, &a.perms.to_le_bytes());
                mix(&mut h, a.id.scheme.as_bytes());
                mix(&mut h, a.id.id.as_bytes());
            }
            for v in [
                n.czxid,
                n.mzxid,
                n.ctime,
                n.mtime,
                n.ephemeral_owner,
                n.pzxid,
            ] {
                mix(&mut h, &v.to_le_bytes());
            }
            for v in [n.version, n.cversion, n.aversion] {
                mix(&mut h, &v.to_le_bytes());
            }
            sum = sum.wrapping_add(h);
        }
        sum
    }

    /// Checks the tree's structural invariants; panics on the first that fails.
    pub fn check_invariants(&self) {
        for (path, node) in self.nodes.iter() {
            if &**path != ROOT {
                let parent = self
                    .get(path::parent(path))
                    .unwrap_or_else(|| panic!("{path} has no parent"));
                assert!(
                    parent.children.contains(path::name(path)),
                    "{path} not in parent's children"
                );
            }
            for child in node.children.iter() {
                assert!(
                    self.get(&path::join(path, child)).is_some(),
                    "{path} lists missing child {child}"
                );
            }
            match NodeKind::of_owner(node.ephemeral_owner, true) {
                NodeKind::Ephemeral(s) => {
                    assert!(
                        self.ephemerals
                            .get(&s)
                            .is_some_and(|set| set.contains(path)),
                        "{path} not indexed"
                    );
                    assert!(node.children.is_empty(), "ephemeral {path} has children");
                }
                NodeKind::Container => assert!(self.containers.contains(path)),
                NodeKind::Ttl(_) => assert!(self.ttls.contains(path)),
                NodeKind::Persistent => {}
            }
        }
        assert_eq!(
            self.data_bytes,
            self.walked_data_size(),
            "running data size"
        );
        for (_, set) in self.ephemerals.iter() {
            assert!(!set.is_empty(), "empty ephemeral set kept");
            for p in set.iter() {
                assert!(self.get(p).is_some(), "indexed ephemeral {p} missing");
            }
        }
    }
}

/// Counts the nodes below a path (getAllChildrenNumber) a bounded number at a time, so a caller
/// serving other work can stop between steps. Every step must be given the same tree version.
/// The root is answered from the node count at once (as ZooKeeper does), with no walk.
#[derive(Debug)]
pub struct DescendantWalk {
    /// Nodes whose children are still to be counted: path, node, and the last child counted
    /// when a step stopped in the middle of its children.
    stack: Vec<(String, Arc<Node>, Option<Arc<str>>)>,
    count: usize,
}

impl DescendantWalk {
    pub fn new(tree: &DataTree, path: &str) -> DescendantWalk {
        if path == ROOT {
            return DescendantWalk {
                stack: Vec::new(),
                count: tree.node_count() - 1,
            };
        }
        DescendantWalk {
            stack: tree
                .get(path)
                .map(|n| (path.to_string(), n.clone(), None))
                .into_iter()
                .collect(),
            count: 0,
        }
    }

    /// Visits up to `nodes_max` more nodes; the count once every node below the path is counted.
    pub fn step(&mut self, tree: &DataTree, nodes_max: usize) -> Option<i32> {
        let mut visited = 0;
        // Each child's path is built in one reused buffer; only nodes with children keep theirs.
        let mut child_path = String::new();
        while let Some((p, n, after)) = self.stack.pop() {
            let mut last = None;
            child_path.clear();
            child_path.push_str(if p == ROOT { "" } else { &p });
            child_path.push('/');
            let base = child_path.len();
            for child in n.children.iter_after(after.as_deref()) {
                if visited == nodes_max {
                    break;
                }
                self.count += 1;
                visited += 1;
                last = Some(child);
                child_path.truncate(base);
                child_path.push_str(child);
                let cn = tree
                    .get(&child_path)
                    .unwrap_or_else(|| panic!("{p} lists missing child {child}"));
                if !cn.children.is_empty() {
                    self.stack.push((child_path.clone(), cn.clone(), None));
                }
            }
            let last = last.cloned();
            if visited == nodes_max {
                // Resume this node after its last counted child, if any are left. (The order
                // nodes are visited in does not matter for a count.)
                let resume = last.or(after);
                if n.children.iter_after(resume.as_deref()).next().is_some() {
                    self.stack.push((p, n, resume));
                }
                return None;
            }
        }
        Some(i32::try_from(self.count).unwrap_or(i32::MAX))
    }
}

/// Builds a tree from nodes read back from a snapshot, keeping the ephemeral, container and TTL
/// indexes as nodes arrive. The caller gives every node with its full children set; `finish`
/// checks (in debug builds) that the result is a well-formed tree.
pub struct Restorer {
    tree: DataTree,
}

impl Default for Restorer {
    fn default() -> Self {
        Self::new()
    }
}

impl Restorer {
    pub fn new() -> Restorer {
        Restorer {
            tree: DataTree {
                nodes: NodeMap::default(),
                ephemerals: imbl::HashMap::new(),
                containers: ChildSet::new(),
                ttls: ChildSet::new(),
                last_zxid: 0,
                data_bytes: 0,
            },
        }
    }

    /// Adds one node; gives the path back if it was already there.
    pub fn insert(&mut self, path: Arc<str>, node: Arc<Node>) -> Result<(), Arc<str>> {
        let t = &mut self.tree;
        t.index(&path, node.ephemeral_owner);
        t.data_bytes += node_bytes(&path, &node);
        match t.nodes.insert(path.clone(), node) {
            None => Ok(()),
            Some(_) => Err(path),
        }
    }

    pub fn len(&self) -> usize {
        self.tree.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.nodes.is_empty()
    }

    pub fn finish(mut self, last_zxid: i64) -> DataTree {
        self.tree.last_zxid = last_zxid;
        if cfg!(debug_assertions) {
            self.tree.check_invariants();
        }
        self.tree
    }
}
