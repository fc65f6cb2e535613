//! Txn <-> log payload bytes (layout in FORMAT.md). Decoding never trusts the bytes: anything
//! malformed is a typed error.

use crate::proto::{encode_acls, Acl, DecodeError, ErrorCode, Id, Reader, Writer};
use crate::txn::{Txn, TxnOp};
use std::sync::Arc;

const CREATE_SESSION: u8 = 1;
const CLOSE_SESSION: u8 = 2;
const CREATE: u8 = 3;
const DELETE: u8 = 4;
const SET_DATA: u8 = 5;
const SET_ACL: u8 = 6;
const CHECK: u8 = 7;
const ERROR: u8 = 8;
const MULTI: u8 = 9;
/// A check with its version (format 2 logs before it wrote `CHECK`, with the path only).
const CHECK_VERSION: u8 = 10;

/// Most ops a logged multi may hold (a bound for decoding, far above any real multi).
const MULTI_OPS_MAX: i32 = 1 << 20;

/// Appends the payload of `txn` (everything but its zxid, which the record header carries).
pub fn encode_txn(out: &mut Vec<u8>, txn: &Txn) {
    let mut w = Writer::new(out);
    w.long(txn.time_ms).long(txn.session_id).int(txn.cxid);
    encode_op(&mut w, &txn.op);
}

fn encode_op(w: &mut Writer<Vec<u8>>, op: &TxnOp) {
    match op {
        TxnOp::CreateSession { timeout_ms } => {
            tag(w, CREATE_SESSION);
            w.int(*timeout_ms);
        }
        TxnOp::CloseSession => tag(w, CLOSE_SESSION),
        TxnOp::Create {
            path,
            data,
            acl,
            ephemeral_owner,
            parent_cversion,
            opcode,
        } => {
            tag(w, CREATE);
            w.ustring(path).buffer_opt(data.as_deref());
            encode_acls(w, acl);
            w.long(*ephemeral_owner).int(*parent_cversion).int(*opcode);
        }
        TxnOp::Delete { path } => {
            tag(w, DELETE);
            w.ustring(path);
        }
        TxnOp::SetData {
            path,
            data,
            version,
        } => {
            tag(w, SET_DATA);
            w.ustring(path).buffer_opt(data.as_deref()).int(*version);
        }
        TxnOp::SetAcl {
            path,
            acl,
            aversion,
        } => {
            tag(w, SET_ACL);
            w.ustring(path);
            encode_acls(w, acl);
            w.int(*aversion);
        }
        TxnOp::Check { path, version } => {
            tag(w, CHECK_VERSION);
            w.ustring(path).int(*version);
        }
        TxnOp::Error(code) => {
            tag(w, ERROR);
            w.int(code.code());
        }
        TxnOp::Multi(ops) => {
            tag(w, MULTI);
            w.int(ops.len() as i32);
            for op in ops {
                encode_op(w, op);
            }
        }
    }
}

fn tag(w: &mut Writer<Vec<u8>>, t: u8) {
    w.byte(t);
}

/// Decodes a payload written by [`encode_txn`], giving it `zxid`.
pub fn decode_txn(zxid: i64, payload: &[u8]) -> Result<Txn, DecodeError> {
    let mut r = Reader::new(payload);
    let time_ms = r.long("time")?;
    let session_id = r.long("sessionId")?;
    let cxid = r.int("cxid")?;
    let op = decode_op(&mut r, 0)?;
    r.expect_end("txn")?;
    Ok(Txn {
        zxid,
        time_ms,
        session_id,
        cxid,
        op,
    })
}

/// A jute `vector<ACL>` (the log and ZooKeeper's txn records share it).
pub(crate) fn decode_acl_list(r: &mut Reader) -> Result<Arc<Vec<Acl>>, DecodeError> {
    let acl = r.vector("acl", 12, |r| {
        let perms = r.int("perms")?;
        Ok(Acl {
            perms,
            id: Id {
                scheme: r.ustring("scheme")?,
                id: r.ustring("id")?,
            },
        })
    })?;
    Ok(Arc::new(acl))
}

fn decode_op(r: &mut Reader, depth: u32) -> Result<TxnOp, DecodeError> {
    let t = r.int8("op")?;
    Ok(match t {
        CREATE_SESSION => TxnOp::CreateSession {
            timeout_ms: r.int("timeout")?,
        },
        CLOSE_SESSION => TxnOp::CloseSession,
        CREATE => TxnOp::Create {
            path: r.ustring("path")?,
            data: r.buffer_opt("data")?,
            acl: decode_acl_list(r)?,
            ephemeral_owner: r.long("ephemeralOwner")?,
            parent_cversion: r.int("parentCVersion")?,
            opcode: r.int("opcode")?,
        },
        DELETE => TxnOp::Delete {
            path: r.ustring("path")?,
        },
        SET_DATA => TxnOp::SetData {
            path: r.ustring("path")?,
            data: r.buffer_opt("data")?,
            version: r.int("version")?,
        },
        SET_ACL => TxnOp::SetAcl {
            path: r.ustring("path")?,
            acl: decode_acl_list(r)?,
            aversion: r.int("aversion")?,
        },
        CHECK => TxnOp::Check {
            path: r.ustring("path")?,
            version: -1,
        },
        CHECK_VERSION => TxnOp::Check {
            path: r.ustring("path")?,
            version: r.int("version")?,
        },
        ERROR => {
            let code = r.int("err")?;
            TxnOp::Error(ErrorCode::from_code(code).ok_or(DecodeError::BadValue {
                field: "err",
                value: code as i64,
            })?)
        }
        MULTI if depth == 0 => {
            let n = r.int("count")?;
            if !(0..=MULTI_OPS_MAX).contains(&n) || n as usize > r.remaining() {
                return Err(DecodeError::BadLength {
                    field: "multi",
                    len: n,
                });
            }
            let mut ops = Vec::with_capacity(n as usize);
            for _ in 0..n {
                ops.push(decode_op(r, depth + 1)?);
            }
            TxnOp::Multi(ops)
        }
        other => {
            return Err(DecodeError::BadValue {
                field: "op",
                value: other as i64,
            })
        }
    })
}
