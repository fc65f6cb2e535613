//! Prep: turns a write request into a decided [`TxnOp`] by checking it against the newest tree
//! (ZooKeeper's `PrepRequestProcessor`). Checks run in ZooKeeper's order so the first failing
//! check picks the same error code. A failed check yields `TxnOp::Error`; a multi that fails
//! anywhere yields `Error(Ok)` before the failure, the error at it and `RuntimeInconsistency`
//! after it.

use crate::proto::{opcode as op, perms, ErrorCode, Id, Request};
use crate::tree::{acl, path, DataTree, Outcome, Trigger};
use crate::txn::{NodeKind, Txn, TxnOp, CONTAINER_OWNER, TTL_MAX_MS};
use std::sync::Arc;

/// Settings prep depends on.
#[derive(Debug, Clone)]
pub struct PrepConfig {
    /// `zookeeper.extendedTypesEnabled`: allows TTL nodes.
    pub extended_types: bool,
}

/// Who is asking.
pub struct PrepContext<'a> {
    pub session_id: i64,
    pub auth: &'a [Id],
    pub zxid: i64,
    pub time_ms: i64,
}

/// The create modes of `CreateMode.fromFlag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CreateMode {
    ephemeral: bool,
    sequential: bool,
    ttl: bool,
}

fn create_mode(flags: i32) -> Option<CreateMode> {
    let m = |ephemeral, sequential, ttl| {
        Some(CreateMode {
            ephemeral,
            sequential,
            ttl,
        })
    };
    match flags {
        0 | 4 => m(false, false, false),
        1 => m(true, false, false),
        2 => m(false, true, false),
        3 => m(true, true, false),
        5 => m(false, false, true),
        6 => m(false, true, true),
        _ => None,
    }
}

type PrepResult = Result<TxnOp, ErrorCode>;

/// A multi that prepped cleanly has already been applied, op by op, to a scratch copy of the
/// tree (each op is checked against the ones before it). This is that copy, with what applying
/// the ops fired and returned, so the commit can take it instead of applying everything again.
pub struct Applied {
    pub tree: DataTree,
    pub triggers: Vec<Trigger>,
    pub outcomes: Vec<Outcome>,
}

/// Preps one write. The tree is not changed.
pub fn prep(tree: &DataTree, req: &Request, ctx: &PrepContext, cfg: &PrepConfig) -> TxnOp {
    prep_applying(tree, req, ctx, cfg).0
}

/// Like [`prep`], and for a multi that succeeds, the tree after it.
pub fn prep_applying(
    tree: &DataTree,
    req: &Request,
    ctx: &PrepContext,
    cfg: &PrepConfig,
) -> (TxnOp, Option<Applied>) {
    match req {
        Request::Multi(ops) => prep_multi(tree, ops, ctx, cfg),
        Request::CloseSession => (TxnOp::CloseSession, None),
        Request::CreateSession { timeout_ms } => (
            TxnOp::CreateSession {
                timeout_ms: *timeout_ms,
            },
            None,
        ),
        single => (
            prep_single(tree, single, ctx, cfg).unwrap_or_else(TxnOp::Error),
            None,
        ),
    }
}

fn prep_multi(
    tree: &DataTree,
    ops: &[Request],
    ctx: &PrepContext,
    cfg: &PrepConfig,
) -> (TxnOp, Option<Applied>) {
    let mut scratch = tree.clone();
    let mut out = Vec::with_capacity(ops.len());
    let mut outcomes = Vec::with_capacity(ops.len());
    let probe = Txn {
        zxid: ctx.zxid,
        time_ms: ctx.time_ms,
        session_id: ctx.session_id,
        cxid: 0,
        op: TxnOp::Check {
            path: String::new(),
            version: -1,
        },
    };
    let mut triggers: Vec<Trigger> = Vec::new();
    for (i, sub) in ops.iter().enumerate() {
        let prepped = match sub {
            Request::Create(_)
            | Request::Delete { .. }
            | Request::SetData { .. }
            | Request::Check { .. } => prep_single(&scratch, sub, ctx, cfg),
            _ => Err(ErrorCode::BadArguments),
        };
        match prepped {
            Ok(txn_op) => {
                outcomes.push(scratch.apply_in_multi(&probe, &txn_op, &mut triggers));
                out.push(txn_op);
            }
            Err(code) => {
                let mut failed: Vec<TxnOp> = (0..i).map(|_| TxnOp::Error(ErrorCode::Ok)).collect();
                failed.push(TxnOp::Error(code));
                failed.extend(
                    (i + 1..ops.len()).map(|_| TxnOp::Error(ErrorCode::RuntimeInconsistency)),
                );
                return (TxnOp::Multi(failed), None);
            }
        }
    }
    let applied = Applied {
        tree: scratch,
        triggers,
        outcomes,
    };
    (TxnOp::Multi(out), Some(applied))
}

fn prep_single(tree: &DataTree, req: &Request, ctx: &PrepContext, cfg: &PrepConfig) -> PrepResult {
    match req {
        Request::Create(c) => prep_create(tree, c, ctx, cfg),
        Request::Delete { path, version } => prep_delete(tree, path, *version, ctx),
        Request::SetData {
            path,
            data,
            version,
        } => {
            valid(path)?;
            let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
            acl::check(&node.acl, perms::WRITE, ctx.auth)?;
            let version = next_version(node.version, *version)?;
            Ok(TxnOp::SetData {
                path: path.clone(),
                data: data.clone(),
                version,
            })
        }
        Request::SetAcl {
            path,
            acl: new_acl,
            version,
        } => {
            valid(path)?;
            let fixed = acl::fixup(new_acl, ctx.auth)?;
            let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
            acl::check(&node.acl, perms::ADMIN, ctx.auth)?;
            let aversion = next_version(node.aversion, *version)?;
            Ok(TxnOp::SetAcl {
                path: path.clone(),
                acl: Arc::new(fixed),
                aversion,
            })
        }
        Request::Check { path, version } => {
            valid(path)?;
            let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
            acl::check(&node.acl, perms::READ, ctx.auth)?;
            let version = next_version(node.version, *version)?;
            Ok(TxnOp::Check {
                path: path.clone(),
                version,
            })
        }
        _ => Err(ErrorCode::BadArguments),
    }
}

fn valid(p: &str) -> Result<(), ErrorCode> {
    path::validate(p, false).map_err(|_| ErrorCode::BadArguments)
}

/// `checkAndIncVersion`: -1 matches any version.
fn next_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

fn is_special(p: &str) -> bool {
    matches!(
        p,
        "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config"
    )
}

fn prep_create(
    tree: &DataTree,
    c: &crate::proto::CreateRequest,
    ctx: &PrepContext,
    cfg: &PrepConfig,
) -> PrepResult {
    let mode = create_mode(c.flags).ok_or(ErrorCode::BadArguments)?;
    if mode.ttl && !cfg.extended_types {
        return Err(ErrorCode::Unimplemented);
    }
    if mode.ttl {
        if c.ttl <= 0 || c.ttl > TTL_MAX_MS {
            return Err(ErrorCode::BadArguments);
        }
    } else if c.ttl >= 0 {
        return Err(ErrorCode::BadArguments);
    }
    // As in ZooKeeper, the opcode (not the flag) makes a container: flag 4 on a plain create
    // stores a persistent node.
    let container = c.opcode == op::CREATE_CONTAINER;
    // validatePathForCreate
    let last_slash = c.path.rfind('/');
    if last_slash.is_none() || c.path.contains('\0') {
        return Err(ErrorCode::BadArguments);
    }
    let parent_path = path::parent(&c.path).to_string();
    let fixed = acl::fixup(&c.acl, ctx.auth)?;
    let parent = tree.get(&parent_path).ok_or(ErrorCode::NoNode)?;
    acl::check(&parent.acl, perms::CREATE, ctx.auth)?;
    let mut final_path = c.path.clone();
    if mode.sequential {
        final_path.push_str(&format!("{:010}", parent.cversion));
    }
    path::validate(&final_path, false).map_err(|_| ErrorCode::BadArguments)?;
    if tree.get(&final_path).is_some() {
        return Err(ErrorCode::NodeExists);
    }
    if let NodeKind::Ephemeral(_) = NodeKind::of_owner(parent.ephemeral_owner, cfg.extended_types) {
        return Err(ErrorCode::NoChildrenForEphemerals);
    }
    let ephemeral_owner = if container {
        CONTAINER_OWNER
    } else if mode.ttl {
        NodeKind::ttl_owner(c.ttl)
    } else if mode.ephemeral {
        ctx.session_id
    } else {
        0
    };
    Ok(TxnOp::Create {
        path: final_path,
        data: c.data.clone(),
        acl: Arc::new(fixed),
        ephemeral_owner,
        parent_cversion: parent.cversion.wrapping_add(1),
        opcode: c.opcode,
    })
}

/// `getParentPathAndValidate`: only the slash, NUL and special-path checks (no full validation,
/// so a malformed path usually ends as NoNode, as in ZooKeeper).
fn parent_for_delete(p: &str) -> Result<&str, ErrorCode> {
    let Some(slash) = p.rfind('/') else {
        return Err(ErrorCode::BadArguments);
    };
    if p.contains('\0') || is_special(p) {
        return Err(ErrorCode::BadArguments);
    }
    Ok(if slash == 0 { "/" } else { &p[..slash] })
}

fn prep_delete(tree: &DataTree, p: &str, version: i32, ctx: &PrepContext) -> PrepResult {
    let parent = tree.get(parent_for_delete(p)?).ok_or(ErrorCode::NoNode)?;
    acl::check(&parent.acl, perms::DELETE, ctx.auth)?;
    let node = tree.get(p).ok_or(ErrorCode::NoNode)?;
    next_version(node.version, version)?;
    if !node.children.is_empty() {
        return Err(ErrorCode::NotEmpty);
    }
    Ok(TxnOp::Delete {
        path: p.to_string(),
    })
}

/// Prep for the server's own `deleteContainer` (containers and expired TTL nodes).
pub fn prep_delete_container(tree: &DataTree, p: &str) -> Option<TxnOp> {
    let node = tree.get(p)?;
    if !node.children.is_empty() {
        return None;
    }
    Some(TxnOp::Delete {
        path: p.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Acl, CreateRequest};
    use bytes::Bytes;

    fn ctx(zxid: i64) -> PrepContext<'static> {
        PrepContext {
            session_id: 7,
            auth: &[],
            zxid,
            time_ms: 1000 + zxid,
        }
    }

    fn create(path: &str, flags: i32) -> Request {
        Request::Create(CreateRequest {
            opcode: op::CREATE,
            path: path.to_string(),
            data: Some(Bytes::from_static(b"d")),
            acl: Acl::open_unsafe(),
            flags,
            ttl: -1,
        })
    }

    fn run(tree: &mut DataTree, req: &Request, zxid: i64) -> TxnOp {
        let cfg = PrepConfig {
            extended_types: true,
        };
        let op = prep(tree, req, &ctx(zxid), &cfg);
        let txn = Txn {
            zxid,
            time_ms: 1000 + zxid,
            session_id: 7,
            cxid: 0,
            op: op.clone(),
        };
        tree.apply(&txn, &mut Vec::new());
        tree.check_invariants();
        op
    }

    #[test]
    fn sequential_suffix_is_parent_cversion() {
        let mut t = DataTree::new();
        run(&mut t, &create("/q", 0), 1);
        let TxnOp::Create { path, .. } = run(&mut t, &create("/q/n-", 2), 2) else {
            panic!()
        };
        assert_eq!(path, "/q/n-0000000000");
        run(
            &mut t,
            &Request::Delete {
                path: path.clone(),
                version: -1,
            },
            3,
        );
        let TxnOp::Create { path, .. } = run(&mut t, &create("/q/n-", 2), 4) else {
            panic!()
        };
        assert_eq!(path, "/q/n-0000000001", "the suffix counts creates only");
        assert_eq!(
            t.get("/q").unwrap().stat().cversion,
            3,
            "clients see creates and deletes"
        );
    }

    #[test]
    fn errors_come_in_zookeeper_order() {
        let mut t = DataTree::new();
        assert_eq!(
            run(&mut t, &create("/a/b", 0), 1),
            TxnOp::Error(ErrorCode::NoNode)
        );
        run(&mut t, &create("/a", 0), 2);
        assert_eq!(
            run(&mut t, &create("/a", 0), 3),
            TxnOp::Error(ErrorCode::NodeExists)
        );
        run(&mut t, &create("/e", 1), 4);
        assert_eq!(
            run(&mut t, &create("/e/c", 0), 5),
            TxnOp::Error(ErrorCode::NoChildrenForEphemerals)
        );
        run(&mut t, &create("/a/b", 0), 6);
        assert_eq!(
            run(
                &mut t,
                &Request::Delete {
                    path: "/a".into(),
                    version: -1
                },
                7
            ),
            TxnOp::Error(ErrorCode::NotEmpty)
        );
        assert_eq!(
            run(
                &mut t,
                &Request::Delete {
                    path: "/a/b".into(),
                    version: 3
                },
                8
            ),
            TxnOp::Error(ErrorCode::BadVersion)
        );
        assert_eq!(
            run(&mut t, &create("/x", 9), 9),
            TxnOp::Error(ErrorCode::BadArguments)
        );
        assert_eq!(
            run(
                &mut t,
                &Request::Delete {
                    path: "/zookeeper".into(),
                    version: -1
                },
                10
            ),
            TxnOp::Error(ErrorCode::BadArguments)
        );
    }

    #[test]
    fn failed_multi_marks_ok_error_and_inconsistency() {
        let mut t = DataTree::new();
        let multi = Request::Multi(vec![
            create("/m", 0),
            Request::Check {
                path: "/m".into(),
                version: 5,
            },
            create("/n", 0),
        ]);
        assert_eq!(
            run(&mut t, &multi, 1),
            TxnOp::Multi(vec![
                TxnOp::Error(ErrorCode::Ok),
                TxnOp::Error(ErrorCode::BadVersion),
                TxnOp::Error(ErrorCode::RuntimeInconsistency)
            ])
        );
        assert!(
            t.get("/m").is_none(),
            "nothing of a failed multi is applied"
        );
        let ok = Request::Multi(vec![
            create("/m", 0),
            Request::Check {
                path: "/m".into(),
                version: 0,
            },
            create("/m/c", 0),
        ]);
        assert!(matches!(run(&mut t, &ok, 2), TxnOp::Multi(ops) if ops.len() == 3));
        assert_eq!(t.get("/m").unwrap().stat().num_children, 1);
    }

    #[test]
    fn stat_rules_follow_zookeeper() {
        let mut t = DataTree::new();
        run(&mut t, &create("/p", 0), 1);
        run(&mut t, &create("/p/c", 0), 2);
        run(
            &mut t,
            &Request::SetData {
                path: "/p/c".into(),
                data: Some(Bytes::from_static(b"xyz")),
                version: 0,
            },
            3,
        );
        let c = t.get("/p/c").unwrap().stat();
        assert_eq!(
            (c.czxid, c.mzxid, c.pzxid, c.version, c.data_length),
            (2, 3, 2, 1, 3)
        );
        assert_eq!((c.ctime, c.mtime), (1002, 1003));
        run(
            &mut t,
            &Request::Delete {
                path: "/p/c".into(),
                version: 1,
            },
            4,
        );
        let p = t.get("/p").unwrap().stat();
        assert_eq!((p.cversion, p.pzxid, p.num_children, p.mzxid), (2, 4, 0, 1));
        assert_eq!(
            DataTree::new().get("/").unwrap().stat().cversion,
            -1,
            "as a fresh ZooKeeper shows"
        );
        run(
            &mut t,
            &Request::SetAcl {
                path: "/p".into(),
                acl: Acl::read_unsafe(),
                version: 0,
            },
            5,
        );
        assert_eq!(t.get("/p").unwrap().stat().aversion, 1);
        assert_eq!(
            run(&mut t, &create("/p/d", 0), 6),
            TxnOp::Error(ErrorCode::NoAuth)
        );
    }

    #[test]
    fn ttl_needs_extended_types() {
        let t = DataTree::new();
        let req = Request::Create(CreateRequest {
            opcode: op::CREATE_TTL,
            path: "/t".into(),
            data: Some(Bytes::new()),
            acl: Acl::open_unsafe(),
            flags: 5,
            ttl: 100,
        });
        let off = PrepConfig {
            extended_types: false,
        };
        assert_eq!(
            prep(&t, &req, &ctx(1), &off),
            TxnOp::Error(ErrorCode::Unimplemented)
        );
        let on = PrepConfig {
            extended_types: true,
        };
        let TxnOp::Create {
            ephemeral_owner, ..
        } = prep(&t, &req, &ctx(1), &on)
        else {
            panic!()
        };
        assert_eq!(
            NodeKind::of_owner(ephemeral_owner, true),
            NodeKind::Ttl(100)
        );
    }
}
