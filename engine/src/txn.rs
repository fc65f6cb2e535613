//! Transactions: the decided, deterministic form of a write. Prep turns a request into a [`Txn`]
//! (with its zxid, time, sequence suffix and ephemeral owner fixed); apply replays it on any tree
//! with the same result. Failed writes become [`TxnOp::Error`] and still consume a zxid.

use crate::proto::{Acl, Data, ErrorCode};
use std::sync::Arc;

/// `ephemeralOwner` of a container node (ZooKeeper's `EphemeralType.CONTAINER`).
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// High byte marking an extended (TTL) `ephemeralOwner`.
pub const EXTENDED_MASK: i64 = 0xff00_0000_0000_0000u64 as i64;
/// The largest TTL an `ephemeralOwner` can carry (40 bits of milliseconds).
pub const TTL_MAX_MS: i64 = 0x0000_00ff_ffff_ffff;

/// What kind of node an `ephemeralOwner` value denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Persistent,
    Ephemeral(i64),
    Container,
    Ttl(i64),
}

impl NodeKind {
    /// Decodes an `ephemeralOwner`; TTL values are only recognized with extended types on.
    pub fn of_owner(owner: i64, extended_types: bool) -> NodeKind {
        if owner == 0 {
            NodeKind::Persistent
        } else if owner == CONTAINER_OWNER {
            NodeKind::Container
        } else if extended_types && owner & EXTENDED_MASK == EXTENDED_MASK {
            NodeKind::Ttl(owner & TTL_MAX_MS)
        } else {
            NodeKind::Ephemeral(owner)
        }
    }

    pub fn ttl_owner(ttl_ms: i64) -> i64 {
        EXTENDED_MASK | (ttl_ms & TTL_MAX_MS)
    }
}

/// One decided change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    CreateSession {
        timeout_ms: i32,
    },
    /// Closes (or expires) the session and deletes its ephemerals.
    CloseSession,
    Create {
        /// The final path, sequence suffix included.
        path: String,
        /// `None` is null data, kept apart from empty.
        data: Data,
        acl: Arc<Vec<Acl>>,
        ephemeral_owner: i64,
        /// The parent's cversion after this create.
        parent_cversion: i32,
        /// The opcode that asked for it (create, create2, createContainer, createTTL).
        opcode: i32,
    },
    Delete {
        path: String,
    },
    SetData {
        path: String,
        data: Data,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Arc<Vec<Acl>>,
        aversion: i32,
    },
    /// A version check inside a multi: changes nothing. `version` is the node's version plus
    /// one, as ZooKeeper's `CheckVersionTxn` carries it (-1 in logs written before it was kept).
    Check {
        path: String,
        version: i32,
    },
    Error(ErrorCode),
    Multi(Vec<TxnOp>),
}

/// A transaction with its header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub zxid: i64,
    pub time_ms: i64,
    pub session_id: i64,
    pub cxid: i32,
    pub op: TxnOp,
}
