//! ZooKeeper's own txn encoding: a `TxnHeader` record, then the record of the txn's type
//! (`CreateTxn`, `SetDataTxn`, ... from `zookeeper.jute`), then, from 3.6, an optional
//! `TxnDigest`. PROPOSAL and INFORM packets carry it as their data, and Java ZooKeeper's
//! transaction logs hold it in each entry. Layout in `FORMAT.md`.
//!
//! How Ringkeeper's [`TxnOp`] maps onto it:
//! - an ephemeral create is `CreateTxn` with `ephemeral` true, its owner the header's session;
//!   a container is `CreateContainerTxn` and a TTL node `CreateTTLTxn`, their owners implied by
//!   the type; plain and `create2` creates keep their opcode as the type;
//! - `CloseSessionTxn` lists the session's ephemerals to delete. Ringkeeper's apply deletes all
//!   of them anyway (and so does Java's, after the listed ones), so it writes an empty list and
//!   ignores the list it reads;
//! - `deleteContainer` reads as a delete; Ringkeeper writes every delete as `delete`;
//! - a multi is `MultiTxn`: each op's type and its record as bytes; a failed multi is all
//!   `ErrorTxn`s, as ZooKeeper's prep makes it;
//! - the trailing digest is read past and not written (Java accepts entries without one).

use crate::proto::{opcode, Acl, DecodeError, ErrorCode, Reader, Writer};
use crate::txn::{NodeKind, Txn, TxnOp, CONTAINER_OWNER};
use crate::wal::codec::decode_acl_list;

/// Most ops a multi may hold when decoding (a bound far above any real multi).
const MULTI_OPS_MAX: usize = 1 << 20;

/// Encodes `txn` as ZooKeeper does: header, record, no digest.
pub fn encode(out: &mut Vec<u8>, txn: &Txn) {
    let mut w = Writer::new(out);
    w.long(txn.session_id)
        .int(txn.cxid)
        .long(txn.zxid)
        .long(txn.time_ms)
        .int(type_of(&txn.op));
    encode_body(&mut w, &txn.op);
}

/// The `type` a txn's header carries.
fn type_of(op: &TxnOp) -> i32 {
    match op {
        TxnOp::CreateSession { .. } => opcode::CREATE_SESSION,
        TxnOp::CloseSession => opcode::CLOSE_SESSION,
        TxnOp::Create {
            opcode: o,
            ephemeral_owner,
            ..
        } => match NodeKind::of_owner(*ephemeral_owner, true) {
            NodeKind::Container => opcode::CREATE_CONTAINER,
            NodeKind::Ttl(_) => opcode::CREATE_TTL,
            _ if *o == opcode::CREATE2 => opcode::CREATE2,
            _ => opcode::CREATE,
        },
        TxnOp::Delete { .. } => opcode::DELETE,
        TxnOp::SetData { .. } => opcode::SET_DATA,
        TxnOp::SetAcl { .. } => opcode::SET_ACL,
        TxnOp::Check { .. } => opcode::CHECK,
        TxnOp::Error(_) => opcode::ERROR,
        TxnOp::Multi(_) => opcode::MULTI,
    }
}

fn acls(w: &mut Writer<Vec<u8>>, acl: &[Acl]) {
    crate::proto::encode_acls(w, acl);
}

fn encode_body(w: &mut Writer<Vec<u8>>, op: &TxnOp) {
    match op {
        TxnOp::CreateSession { timeout_ms } => {
            w.int(*timeout_ms);
        }
        TxnOp::CloseSession => {
            w.int(0);
        }
        TxnOp::Create {
            path,
            data,
            acl,
            ephemeral_owner,
            parent_cversion,
            ..
        } => {
            w.ustring(path).buffer_opt(data.as_deref());
            acls(w, acl);
            match NodeKind::of_owner(*ephemeral_owner, true) {
                NodeKind::Container => {
                    w.int(*parent_cversion);
                }
                NodeKind::Ttl(ttl) => {
                    w.int(*parent_cversion).long(ttl);
                }
                kind => {
                    w.boolean(matches!(kind, NodeKind::Ephemeral(_)))
                        .int(*parent_cversion);
                }
            }
        }
        TxnOp::Delete { path } => {
            w.ustring(path);
        }
        TxnOp::SetData {
            path,
            data,
            version,
        } => {
            w.ustring(path).buffer_opt(data.as_deref()).int(*version);
        }
        TxnOp::SetAcl {
            path,
            acl,
            aversion,
        } => {
            w.ustring(path);
            acls(w, acl);
            w.int(*aversion);
        }
        TxnOp::Check { path, version } => {
            w.ustring(path).int(*version);
        }
        TxnOp::Error(code) => {
            w.int(code.code());
        }
        TxnOp::Multi(ops) => {
            w.int(ops.len() as i32);
            for op in ops {
                let mut body = Vec::new();
                encode_body(&mut Writer::new(&mut body), op);
                w.int(type_of(op)).buffer(&body);
            }
        }
    }
}

/// Decodes one entry: header, record, and an optional digest, with nothing after.
pub fn decode(bytes: &[u8]) -> Result<Txn, DecodeError> {
    let mut r = Reader::new(bytes);
    let session_id = r.long("clientId")?;
    let cxid = r.int("cxid")?;
    let zxid = r.long("zxid")?;
    let time_ms = r.long("time")?;
    let kind = r.int("type")?;
    let op = decode_body(&mut r, kind, session_id, true)?;
    if r.remaining() > 0 {
        // TxnDigest: version, treeDigest.
        r.int("digest.version")?;
        r.long("digest.treeDigest")?;
    }
    r.expect_end("txn")?;
    Ok(Txn {
        zxid,
        time_ms,
        session_id,
        cxid,
        op,
    })
}

fn decode_body(
    r: &mut Reader,
    kind: i32,
    session_id: i64,
    top: bool,
) -> Result<TxnOp, DecodeError> {
    // The fields every create record starts with.
    let create = |r: &mut Reader| -> Result<(String, Option<bytes::Bytes>, _), DecodeError> {
        Ok((
            r.ustring("path")?,
            r.buffer_opt("data")?,
            decode_acl_list(r)?,
        ))
    };
    Ok(match kind {
        opcode::CREATE_SESSION => TxnOp::CreateSession {
            timeout_ms: r.int("timeOut")?,
        },
        opcode::CLOSE_SESSION => {
            // Before 3.6 the record was absent; from 3.6 it lists paths, which apply ignores.
            if r.remaining() > 0 && top {
                r.vector("paths2Delete", 4, |r| r.ustring("path"))?;
            }
            TxnOp::CloseSession
        }
        opcode::CREATE | opcode::CREATE2 => {
            let (path, data, acl) = create(r)?;
            let ephemeral = r.boolean("ephemeral")?;
            TxnOp::Create {
                path,
                data,
                acl,
                ephemeral_owner: if ephemeral { session_id } else { 0 },
                parent_cversion: r.int("parentCVersion")?,
                opcode: kind,
            }
        }
        opcode::CREATE_CONTAINER => {
            let (path, data, acl) = create(r)?;
            TxnOp::Create {
                path,
                data,
                acl,
                ephemeral_owner: CONTAINER_OWNER,
                parent_cversion: r.int("parentCVersion")?,
                opcode: kind,
            }
        }
        opcode::CREATE_TTL => {
            let (path, data, acl) = create(r)?;
            let parent_cversion = r.int("parentCVersion")?;
            let ttl = r.long("ttl")?;
            TxnOp::Create {
                path,
                data,
                acl,
                ephemeral_owner: NodeKind::ttl_owner(ttl),
                parent_cversion,
                opcode: kind,
            }
        }
        opcode::DELETE | opcode::DELETE_CONTAINER => TxnOp::Delete {
            path: r.ustring("path")?,
        },
        opcode::SET_DATA => TxnOp::SetData {
            path: r.ustring("path")?,
            data: r.buffer_opt("data")?,
            version: r.int("version")?,
        },
        opcode::SET_ACL => TxnOp::SetAcl {
            path: r.ustring("path")?,
            acl: decode_acl_list(r)?,
            aversion: r.int("version")?,
        },
        opcode::CHECK => TxnOp::Check {
            path: r.ustring("path")?,
            version: r.int("version")?,
        },
        opcode::ERROR => {
            let code = r.int("err")?;
            TxnOp::Error(ErrorCode::from_code(code).ok_or(DecodeError::BadValue {
                field: "err",
                value: code as i64,
            })?)
        }
        opcode::MULTI if top => {
            let ops = r.vector("txns", 8, |r| {
                let kind = r.int("type")?;
                let body = r.buffer("data")?;
                let mut sub = Reader::new(&body);
                let op = decode_body(&mut sub, kind, session_id, false)?;
                sub.expect_end("multi op")?;
                Ok(op)
            })?;
            if ops.len() > MULTI_OPS_MAX {
                return Err(DecodeError::BadLength {
                    field: "txns",
                    len: ops.len() as i32,
                });
            }
            TxnOp::Multi(ops)
        }
        other => {
            return Err(DecodeError::BadValue {
                field: "type",
                value: other as i64,
            })
        }
    })
}

#[cfg(test)]
mod tests;
