//! Reads, answered on a front core from its current tree version (ZooKeeper's
//! `FinalRequestProcessor` for non-txn requests), registering watches in that core's table.

use crate::proto::event;
use crate::proto::{perms, Data, ErrorCode, Id, MultiResult, Request, Response, SetWatches, Stat};
use crate::tree::{acl, DataTree};
use crate::watch::{ConnId, WatchTable, WatcherType};

/// The caller of a read.
pub struct ReadContext<'a> {
    pub conn: ConnId,
    pub session_id: i64,
    pub auth: &'a [Id],
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
            let (children, _) = get_children(tree, watches, path, *watch, ctx)?;
            Ok(Response::Children(children))
        }
        Request::GetChildren2 { path, watch } => {
            let (children, stat) = get_children(tree, watches, path, *watch, ctx)?;
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
            let all = tree.ephemerals_of(ctx.session_id);
            let trimmed = prefix.trim();
            let list = if trimmed.is_empty() || trimmed == "/" {
                all
            } else {
                all.into_iter()
                    .filter(|p| p.starts_with(prefix.as_str()))
                    .collect()
            };
            Ok(Response::Ephemerals(list))
        }
        Request::GetAllChildrenNumber { path } => {
            valid(path)?;
            let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
            acl::check(&node.acl, perms::READ, ctx.auth)?;
            Ok(Response::Int(tree.descendant_count(path)))
        }
        Request::MultiRead(ops) => {
            if ops
                .iter()
                .any(|op| !matches!(op, Request::GetData { .. } | Request::GetChildren { .. }))
            {
                return Err(ErrorCode::MarshallingError);
            }
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
) -> Result<(Vec<String>, Stat), ErrorCode> {
    valid(path)?;
    let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
    acl::check(&node.acl, perms::READ, ctx.auth)?;
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
            get_children(tree, watches, path, *watch, ctx).map(|(c, _)| MultiResult::GetChildren(c))
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
}
