//! Reads, answered on a front core from its current tree version (ZooKeeper's
//! `FinalRequestProcessor` for non-txn requests), registering watches in that core's table.

use crate::proto::event;
use crate::proto::{perms, Data, ErrorCode, Id, MultiResult, Request, Response, SetWatches, Stat};
use crate::tree::{acl, DataTree, DescendantWalk};
use crate::watch::{ConnId, WatchTable, WatcherType};

/// The caller of a read.
pub struct ReadContext<'a> {
    pub conn: ConnId,
    pub session_id: i64,
    pub auth: &'a [Id],
    /// `jute.maxbuffer`: how long a frame clients accept (see [`list_bytes_max`] and
    /// [`multi_read_bytes_max`]).
    pub jute_max_buffer: usize,
}

/// The error a read gets when its reply would be larger than any client accepts.
pub const REPLY_TOO_LARGE: ErrorCode = ErrorCode::MarshallingError;

/// Bytes of a Stat on the wire.
const STAT_BYTES: usize = 68;
/// Bytes of a multi response's per-op header (type, done, err).
const MULTI_HEADER_BYTES: usize = 9;

/// Bytes of a reply header (xid, zxid, err).
const REPLY_HEADER_BYTES: usize = 16;

/// The largest body of a reply listing names (getChildren, getChildren2, getEphemerals): clients
/// refuse a frame of `jute.maxbuffer` bytes or more, so a longer list is refused (with
/// [`REPLY_TOO_LARGE`]) before it is built.
pub fn list_bytes_max(jute_max_buffer: usize) -> usize {
    jute_max_buffer.saturating_sub(REPLY_HEADER_BYTES + 1)
}

/// The largest body of a multiRead reply. It has slack over [`list_bytes_max`] so that any one
/// node's data goes through, as a getData of it does: a node holding as much data as a request
/// can carry gets a reply a little longer than that request (its header and Stat), which no
/// amount of pipelining turns into more.
pub fn multi_read_bytes_max(jute_max_buffer: usize) -> usize {
    jute_max_buffer + 1024
}

/// Counts a reply's bytes down before it is built.
struct ReplyBudget {
    left: usize,
}

impl ReplyBudget {
    fn new(bytes_max: usize) -> ReplyBudget {
        ReplyBudget { left: bytes_max }
    }

    fn take(&mut self, bytes: usize) -> Result<(), ErrorCode> {
        self.left = self.left.checked_sub(bytes).ok_or(REPLY_TOO_LARGE)?;
        Ok(())
    }

    /// A list of strings: its length, then each string.
    fn take_strings<'s>(&mut self, items: impl Iterator<Item = &'s str>) -> Result<(), ErrorCode> {
        self.take(4)?;
        for s in items {
            self.take(4 + s.len())?;
        }
        Ok(())
    }
}

/// Reads do no full path validation in ZooKeeper (a malformed path is simply not found); only a
/// NUL byte is refused.
fn valid(p: &str) -> Result<(), ErrorCode> {
    if p.contains('\0') {
        return Err(ErrorCode::BadArguments);
    }
    Ok(())
}

/// Answers a read-only request. `Err` is the reply header's error code.
pub fn read(
    tree: &DataTree,
    watches: &mut WatchTable,
    req: &Request,
    ctx: &ReadContext,
) -> Result<Response, ErrorCode> {
    match req {
        Request::Exists { path, watch } => {
            valid(path)?;
            let node = tree.get(path);
            if let Some(n) = node {
                acl::check(&n.acl, perms::READ, ctx.auth)?;
            }
            if *watch {
                watches.add_data(path, ctx.conn);
            }
            node.map(|n| Response::Stat(n.stat()))
                .ok_or(ErrorCode::NoNode)
        }
        Request::GetData { path, watch } => {
            let (data, stat) = get_data(tree, watches, path, *watch, ctx)?;
            Ok(Response::GetData { data, stat })
        }
        Request::GetChildren { path, watch } => {
            let mut budget = ReplyBudget::new(list_bytes_max(ctx.jute_max_buffer));
            let (children, _) = get_children(tree, watches, path, *watch, ctx, &mut budget)?;
            Ok(Response::Children(children))
        }
        Request::GetChildren2 { path, watch } => {
            let mut budget = ReplyBudget::new(list_bytes_max(ctx.jute_max_buffer));
            budget.take(STAT_BYTES)?;
            let (children, stat) = get_children(tree, watches, path, *watch, ctx, &mut budget)?;
            Ok(Response::Children2 { children, stat })
        }
        Request::GetAcl { path } => {
            valid(path)?;
            let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
            acl::check(&node.acl, perms::READ | perms::ADMIN, ctx.auth)?;
            let mut list = node.acl.as_ref().clone();
            if acl::check(&node.acl, perms::ADMIN, ctx.auth).is_err() {
                // Without ADMIN the digest hashes are hidden, as ZooKeeper does.
                for a in list.iter_mut().filter(|a| a.id.scheme == "digest") {
                    let user = a.id.id.split(':').next().unwrap_or("").to_string();
                    a.id.id = format!("{user}:x");
                }
            }
            Ok(Response::GetAcl {
                acl: list,
                stat: node.stat(),
            })
        }
        Request::GetEphemerals { prefix } => {
            let trimmed = prefix.trim();
            let all = trimmed.is_empty() || trimmed == "/";
            let mine = || {
                tree.ephemerals_iter(ctx.session_id)
                    .filter(|p| all || p.starts_with(prefix.as_str()))
            };
            ReplyBudget::new(list_bytes_max(ctx.jute_max_buffer))
                .take_strings(mine().map(|p| &**p))?;
            Ok(Response::Ephemerals(
                mine().map(|p| p.to_string()).collect(),
            ))
        }
        Request::GetAllChildrenNumber { path } => {
            let mut walk = all_children_number(tree, path, ctx)?;
            let count = walk
                .step(tree, usize::MAX)
                .expect("an unbounded step finishes");
            Ok(Response::Int(count))
        }
        Request::MultiRead(ops) => {
            if ops
                .iter()
                .any(|op| !matches!(op, Request::GetData { .. } | Request::GetChildren { .. }))
            {
                return Err(ErrorCode::MarshallingError);
            }
            // Sized first, with no side effects (watches), so a refused reply changes nothing.
            let mut budget = ReplyBudget::new(multi_read_bytes_max(ctx.jute_max_buffer));
            for op in ops {
                multi_read_bytes(tree, op, ctx, &mut budget)?;
            }
            budget.take(MULTI_HEADER_BYTES)?;
            Ok(Response::Multi(
                ops.iter()
                    .map(|op| multi_read_one(tree, watches, op, ctx))
                    .collect(),
            ))
        }
        Request::AddWatch { path, mode } => {
            match mode {
                0 => watches.add_persistent(path, ctx.conn, false),
                1 => watches.add_persistent(path, ctx.conn, true),
                _ => return Err(ErrorCode::MarshallingError),
            }
            Ok(Response::Int(0))
        }
        Request::CheckWatches { path, kind } | Request::RemoveWatches { path, kind } => {
            let kind = WatcherType::from_i32(*kind).ok_or(ErrorCode::MarshallingError)?;
            let found = if matches!(req, Request::RemoveWatches { .. }) {
                watches.remove(path, ctx.conn, kind)
            } else {
                watches.contains(path, ctx.conn, kind)
            };
            if found {
                Ok(Response::Empty)
            } else {
                Err(ErrorCode::NoWatcher)
            }
        }
        Request::WhoAmI => Ok(Response::WhoAmI(ctx.auth.iter().map(who_am_i).collect())),
        Request::Ping => Ok(Response::Empty),
        _ => Err(ErrorCode::Unimplemented),
    }
}

/// getAllChildrenNumber's checks, then a walk that counts the nodes below `path` in steps (the
/// front runs it a slice at a time, so a large subtree never stalls other clients).
pub fn all_children_number(
    tree: &DataTree,
    path: &str,
    ctx: &ReadContext,
) -> Result<DescendantWalk, ErrorCode> {
    valid(path)?;
    let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
    acl::check(&node.acl, perms::READ, ctx.auth)?;
    Ok(DescendantWalk::new(tree, path))
}

/// Takes one multiRead result's bytes from `budget`, as the real pass would build it.
fn multi_read_bytes(
    tree: &DataTree,
    op: &Request,
    ctx: &ReadContext,
    budget: &mut ReplyBudget,
) -> Result<(), ErrorCode> {
    budget.take(MULTI_HEADER_BYTES)?;
    let (Request::GetData { path, .. } | Request::GetChildren { path, .. }) = op else {
        return budget.take(4);
    };
    let readable = tree
        .get(path)
        .filter(|n| valid(path).is_ok() && acl::check(&n.acl, perms::READ, ctx.auth).is_ok());
    match (op, readable) {
        (_, None) => budget.take(4),
        (Request::GetData { .. }, Some(n)) => {
            budget.take(4 + crate::proto::data_len(&n.data) + STAT_BYTES)
        }
        (_, Some(n)) => budget.take_strings(n.children.iter().map(|c| &**c)),
    }
}

/// (scheme, user) as ZooKeeper's providers name an identity: the user part of a digest id.
fn who_am_i(id: &Id) -> (String, String) {
    let user = match id.scheme.as_str() {
        "digest" => id.id.split(':').next().unwrap_or("").to_string(),
        _ => id.id.clone(),
    };
    (id.scheme.clone(), user)
}

fn get_data(
    tree: &DataTree,
    watches: &mut WatchTable,
    path: &str,
    watch: bool,
    ctx: &ReadContext,
) -> Result<(Data, Stat), ErrorCode> {
    valid(path)?;
    let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
    acl::check(&node.acl, perms::READ, ctx.auth)?;
    if watch {
        watches.add_data(path, ctx.conn);
    }
    Ok((node.data.clone(), node.stat()))
}

fn get_children(
    tree: &DataTree,
    watches: &mut WatchTable,
    path: &str,
    watch: bool,
    ctx: &ReadContext,
    budget: &mut ReplyBudget,
) -> Result<(Vec<String>, Stat), ErrorCode> {
    valid(path)?;
    let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
    acl::check(&node.acl, perms::READ, ctx.auth)?;
    // Sized before the watch is set and the list is built.
    budget.take_strings(node.children.iter().map(|c| &**c))?;
    if watch {
        watches.add_child(path, ctx.conn);
    }
    Ok((
        node.children.iter().map(|c| c.to_string()).collect(),
        node.stat(),
    ))
}

fn multi_read_one(
    tree: &DataTree,
    watches: &mut WatchTable,
    op: &Request,
    ctx: &ReadContext,
) -> MultiResult {
    let result = match op {
        Request::GetData { path, watch } => get_data(tree, watches, path, *watch, ctx)
            .map(|(data, stat)| MultiResult::GetData { data, stat }),
        Request::GetChildren { path, watch } => {
            // Sized as a whole by the caller.
            let mut unlimited = ReplyBudget::new(usize::MAX);
            get_children(tree, watches, path, *watch, ctx, &mut unlimited)
                .map(|(c, _)| MultiResult::GetChildren(c))
        }
        _ => Err(ErrorCode::BadArguments),
    };
    result.unwrap_or_else(MultiResult::Error)
}

/// setWatches on reconnect: re-registers watches, or fires at once what changed after
/// `relative_zxid` (ZooKeeper's `DataTree.setWatches`). Returns (event type, path) to send now.
pub fn set_watches(
    tree: &DataTree,
    watches: &mut WatchTable,
    sw: &SetWatches,
    conn: ConnId,
) -> Vec<(i32, String)> {
    let mut fire = Vec::new();
    let rel = sw.relative_zxid;
    for p in &sw.data {
        match tree.get(p) {
            None => fire.push((event::NODE_DELETED, p.clone())),
            Some(n) if n.mzxid > rel => fire.push((event::NODE_DATA_CHANGED, p.clone())),
            Some(_) => watches.add_data(p, conn),
        }
    }
    for p in &sw.exist {
        match tree.get(p) {
            Some(_) => fire.push((event::NODE_CREATED, p.clone())),
            None => watches.add_data(p, conn),
        }
    }
    for p in &sw.child {
        match tree.get(p) {
            None => fire.push((event::NODE_DELETED, p.clone())),
            Some(n) if n.pzxid > rel => fire.push((event::NODE_CHILDREN_CHANGED, p.clone())),
            Some(_) => watches.add_child(p, conn),
        }
    }
    for p in &sw.persistent {
        watches.add_persistent(p, conn, false);
    }
    for p in &sw.persistent_recursive {
        watches.add_persistent(p, conn, true);
    }
    fire
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{opcode as op, Acl};
    use crate::tree::acl::digest_id;
    use crate::txn::{Txn, TxnOp};
    use std::sync::Arc;

    fn apply(t: &mut DataTree, zxid: i64, op: TxnOp) {
        let txn = Txn {
            zxid,
            time_ms: 1,
            session_id: 1,
            cxid: 0,
            op,
        };
        t.apply(&txn, &mut Vec::new());
    }

    fn create_op(t: &DataTree, path: &str) -> TxnOp {
        let parent = t.get(crate::tree::path::parent(path)).unwrap().cversion;
        TxnOp::Create {
            path: path.into(),
            data: None,
            acl: Arc::new(Acl::open_unsafe()),
            ephemeral_owner: 0,
            parent_cversion: parent + 1,
            opcode: op::CREATE,
        }
    }

    fn tree_with(path: &str, acl: Vec<Acl>) -> DataTree {
        let mut t = DataTree::new();
        let op = TxnOp::Create {
            path: path.into(),
            data: Some(bytes::Bytes::from_static(b"d")),
            acl: Arc::new(acl),
            ephemeral_owner: 0,
            parent_cversion: 1,
            opcode: op::CREATE,
        };
        t.apply(
            &Txn {
                zxid: 5,
                time_ms: 1,
                session_id: 1,
                cxid: 0,
                op,
            },
            &mut Vec::new(),
        );
        t
    }

    #[test]
    fn get_acl_hides_digests_without_admin() {
        let id = digest_id("u:p");
        let t = tree_with(
            "/n",
            vec![
                Acl::new(perms::READ, "world", "anyone"),
                Acl::new(perms::ALL, "digest", &id),
            ],
        );
        let mut w = WatchTable::new();
        let anon = ReadContext {
            conn: 1,
            session_id: 1,
            auth: &[],
            jute_max_buffer: 0xfffff,
        };
        let Ok(Response::GetAcl { acl, .. }) =
            read(&t, &mut w, &Request::GetAcl { path: "/n".into() }, &anon)
        else {
            panic!()
        };
        assert_eq!(acl[1].id.id, "u:x");
        let owner_ids = [Id::new("digest", &id)];
        let owner = ReadContext {
            conn: 1,
            session_id: 1,
            auth: &owner_ids,
            jute_max_buffer: 0xfffff,
        };
        let Ok(Response::GetAcl { acl, .. }) =
            read(&t, &mut w, &Request::GetAcl { path: "/n".into() }, &owner)
        else {
            panic!()
        };
        assert_eq!(acl[1].id.id, id);
    }

    #[test]
    fn watches_are_set_only_where_zookeeper_sets_them() {
        let t = tree_with("/n", vec![Acl::new(perms::WRITE, "world", "anyone")]);
        let mut w = WatchTable::new();
        let ctx = ReadContext {
            conn: 3,
            session_id: 1,
            auth: &[],
            jute_max_buffer: 0xfffff,
        };
        assert_eq!(
            read(
                &t,
                &mut w,
                &Request::GetData {
                    path: "/missing".into(),
                    watch: true
                },
                &ctx
            ),
            Err(ErrorCode::NoNode)
        );
        assert_eq!(w.count(), 0, "no getData watch on a missing node");
        assert_eq!(
            read(
                &t,
                &mut w,
                &Request::Exists {
                    path: "/missing".into(),
                    watch: true
                },
                &ctx
            ),
            Err(ErrorCode::NoNode)
        );
        assert_eq!(w.count(), 1, "exists watches a missing node");
        assert_eq!(
            read(
                &t,
                &mut w,
                &Request::GetData {
                    path: "/n".into(),
                    watch: true
                },
                &ctx
            ),
            Err(ErrorCode::NoAuth)
        );
        assert_eq!(w.count(), 1, "no watch without READ");
    }

    #[test]
    fn multi_read_reports_errors_per_op() {
        let t = tree_with("/n", Acl::open_unsafe());
        let mut w = WatchTable::new();
        let ctx = ReadContext {
            conn: 3,
            session_id: 1,
            auth: &[],
            jute_max_buffer: 0xfffff,
        };
        let req = Request::MultiRead(vec![
            Request::GetData {
                path: "/n".into(),
                watch: false,
            },
            Request::GetChildren {
                path: "/nope".into(),
                watch: false,
            },
        ]);
        let Ok(Response::Multi(results)) = read(&t, &mut w, &req, &ctx) else {
            panic!()
        };
        assert!(matches!(results[0], MultiResult::GetData { .. }));
        assert_eq!(results[1], MultiResult::Error(ErrorCode::NoNode));
        let bad = Request::MultiRead(vec![Request::Sync { path: "/".into() }]);
        assert_eq!(
            read(&t, &mut w, &bad, &ctx),
            Err(ErrorCode::MarshallingError)
        );
    }

    #[test]
    fn a_reply_larger_than_jute_maxbuffer_is_refused_before_it_is_built() {
        let mut t = tree_with("/big", Acl::open_unsafe());
        let op = TxnOp::SetData {
            path: "/big".into(),
            data: Some(bytes::Bytes::from(vec![7u8; 600_000])),
            version: 1,
        };
        apply(&mut t, 6, op);
        let mut w = WatchTable::new();
        let ctx = ReadContext {
            conn: 3,
            session_id: 1,
            auth: &[],
            jute_max_buffer: 0xfffff,
        };
        let get = |watch| Request::GetData {
            path: "/big".into(),
            watch,
        };
        assert!(
            read(&t, &mut w, &get(false), &ctx).is_ok(),
            "one node's data fits"
        );
        let two = Request::MultiRead(vec![get(true), get(true)]);
        assert_eq!(read(&t, &mut w, &two, &ctx), Err(REPLY_TOO_LARGE));
        assert_eq!(w.count(), 0, "a refused multiRead sets no watch");
        let one = Request::MultiRead(vec![get(true)]);
        assert!(read(&t, &mut w, &one, &ctx).is_ok());
        assert_eq!(w.count(), 1);
    }

    #[test]
    fn a_children_list_larger_than_jute_maxbuffer_is_refused() {
        let mut t = tree_with("/p", Acl::open_unsafe());
        for i in 0..40 {
            let op = create_op(&t, &format!("/p/{i:0>60}"));
            apply(&mut t, 10 + i, op);
        }
        let mut w = WatchTable::new();
        let ctx = |max: usize| ReadContext {
            conn: 3,
            session_id: 1,
            auth: &[],
            // The frame (a 16-byte header and the body) must be shorter than jute.maxbuffer.
            jute_max_buffer: max + 17,
        };
        let req = Request::GetChildren2 {
            path: "/p".into(),
            watch: true,
        };
        // 40 names of 60 bytes, 4 more each, the count, and the Stat.
        let exact = 40 * 64 + 4 + STAT_BYTES;
        assert!(read(&t, &mut w, &req, &ctx(exact)).is_ok());
        assert_eq!(
            read(&t, &mut w, &req, &ctx(exact - 1)),
            Err(REPLY_TOO_LARGE)
        );
        assert_eq!(w.count(), 1, "only the answered read set its watch");
    }

    #[test]
    fn get_all_children_number_counts_in_bounded_steps() {
        let mut t = tree_with("/a", Acl::open_unsafe());
        let mut zxid = 10;
        let mut create = |t: &mut DataTree, path: &str| {
            zxid += 1;
            let op = create_op(t, path);
            apply(t, zxid, op);
        };
        for i in 0..9 {
            create(&mut t, &format!("/a/w{i}"));
        }
        for d in ["/a/w3/x", "/a/w3/x/y", "/a/w3/x/y/z", "/a/w3/x2", "/a/w8/q"] {
            create(&mut t, d);
        }
        let ctx = ReadContext {
            conn: 1,
            session_id: 1,
            auth: &[],
            jute_max_buffer: 0xfffff,
        };
        let brute = |p: &str| {
            t.nodes()
                .filter(|(k, _)| k.starts_with(&format!("{p}/")))
                .count() as i32
        };
        for path in ["/a", "/a/w3", "/a/w3/x", "/a/w0"] {
            for slice in [1, 2, 3, 5, usize::MAX] {
                let mut walk = all_children_number(&t, path, &ctx).unwrap();
                let mut steps = 1;
                let n = loop {
                    if let Some(n) = walk.step(&t, slice) {
                        break n;
                    }
                    steps += 1;
                };
                assert_eq!(n, brute(path), "{path} in slices of {slice}");
                if slice == 1 {
                    assert!(steps > n as usize, "{path}: one node per step");
                }
            }
        }
        let mut root = all_children_number(&t, "/", &ctx).unwrap();
        assert_eq!(
            root.step(&t, 0),
            Some(t.node_count() as i32 - 1),
            "root: no walk"
        );
    }
}
