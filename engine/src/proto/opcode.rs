//! Opcodes (`ZooDefs.OpCode`) and the reserved xids of the client protocol.

pub const NOTIFICATION: i32 = 0;
pub const CREATE: i32 = 1;
pub const DELETE: i32 = 2;
pub const EXISTS: i32 = 3;
pub const GET_DATA: i32 = 4;
pub const SET_DATA: i32 = 5;
pub const GET_ACL: i32 = 6;
pub const SET_ACL: i32 = 7;
pub const GET_CHILDREN: i32 = 8;
pub const SYNC: i32 = 9;
pub const PING: i32 = 11;
pub const GET_CHILDREN2: i32 = 12;
pub const CHECK: i32 = 13;
pub const MULTI: i32 = 14;
pub const CREATE2: i32 = 15;
pub const RECONFIG: i32 = 16;
pub const CHECK_WATCHES: i32 = 17;
pub const REMOVE_WATCHES: i32 = 18;
pub const CREATE_CONTAINER: i32 = 19;
pub const DELETE_CONTAINER: i32 = 20;
pub const CREATE_TTL: i32 = 21;
pub const MULTI_READ: i32 = 22;
pub const AUTH: i32 = 100;
pub const SET_WATCHES: i32 = 101;
pub const SASL: i32 = 102;
pub const GET_EPHEMERALS: i32 = 103;
pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
pub const SET_WATCHES2: i32 = 105;
pub const ADD_WATCH: i32 = 106;
pub const WHO_AM_I: i32 = 107;
pub const CREATE_SESSION: i32 = -10;
pub const CLOSE_SESSION: i32 = -11;
pub const ERROR: i32 = -1;

/// xid of a watch notification sent by the server.
pub const XID_NOTIFICATION: i32 = -1;
/// xid of a ping.
pub const XID_PING: i32 = -2;
/// xid of an auth packet.
pub const XID_AUTH: i32 = -4;
/// xid of setWatches sent on reconnect.
pub const XID_SET_WATCHES: i32 = -8;

/// The name ZooKeeper's `Request.op2String` gives an opcode (its metrics' and logs' name).
pub fn name(op: i32) -> &'static str {
    match op {
        NOTIFICATION => "notification",
        CREATE => "create",
        DELETE => "delete",
        EXISTS => "exists",
        GET_DATA => "getData",
        SET_DATA => "setData",
        GET_ACL => "getACL",
        SET_ACL => "setACL",
        GET_CHILDREN => "getChildren",
        SYNC => "sync",
        PING => "ping",
        GET_CHILDREN2 => "getChildren2",
        CHECK => "check",
        MULTI => "multi",
        CREATE2 => "create2",
        RECONFIG => "reconfig",
        CHECK_WATCHES => "checkWatches",
        REMOVE_WATCHES => "removeWatches",
        CREATE_CONTAINER => "createContainer",
        DELETE_CONTAINER => "deleteContainer",
        CREATE_TTL => "createTtl",
        MULTI_READ => "multiRead",
        AUTH => "auth",
        SET_WATCHES => "setWatches",
        SASL => "sasl",
        GET_EPHEMERALS => "getEphemerals",
        GET_ALL_CHILDREN_NUMBER => "getAllChildrenNumber",
        SET_WATCHES2 => "setWatches2",
        ADD_WATCH => "addWatch",
        WHO_AM_I => "whoAmI",
        CREATE_SESSION => "createSession",
        CLOSE_SESSION => "closeSession",
        ERROR => "error",
        _ => "unknown",
    }
}

/// Whether a request changes the tree (ZooKeeper's `updatelatency`, not `readlatency`).
pub fn is_update(op: i32) -> bool {
    matches!(
        op,
        CREATE
            | DELETE
            | SET_DATA
            | SET_ACL
            | CHECK
            | MULTI
            | CREATE2
            | RECONFIG
            | CREATE_CONTAINER
            | DELETE_CONTAINER
            | CREATE_TTL
    )
}

/// The short name ZooKeeper's logs and `cons` use for an opcode.
pub fn short_name(op: i32) -> &'static str {
    match op {
        CREATE | CREATE2 | CREATE_CONTAINER | CREATE_TTL => "CREA",
        DELETE | DELETE_CONTAINER => "DELE",
        EXISTS => "EXIS",
        GET_DATA => "GETD",
        SET_DATA => "SETD",
        GET_ACL => "GETA",
        SET_ACL => "SETA",
        GET_CHILDREN => "GETC",
        GET_CHILDREN2 => "GETC",
        SYNC => "SYNC",
        PING => "PING",
        CHECK => "CHEC",
        MULTI => "MULT",
        MULTI_READ => "MLTR",
        SET_WATCHES | SET_WATCHES2 => "SETW",
        CHECK_WATCHES => "CHKW",
        REMOVE_WATCHES => "REMW",
        ADD_WATCH => "ADDW",
        GET_EPHEMERALS => "GETE",
        GET_ALL_CHILDREN_NUMBER => "GETACN",
        WHO_AM_I => "HOMI",
        AUTH => "AUTH",
        CREATE_SESSION => "SESS",
        CLOSE_SESSION => "CLOS",
        _ => "NA",
    }
}
