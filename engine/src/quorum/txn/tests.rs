//! ZooKeeper's txn encoding against golden bytes Java ZooKeeper's own classes wrote
//! (`golden/GenGolden.java`): each decodes to the txn it stands for, and each of those Ringkeeper
//! can write encodes to the same bytes.

use super::*;
use crate::proto::Id;
use crate::quorum::golden;
use bytes::Bytes;
use std::sync::Arc;

const S: i64 = 0x1_0000_0abc;
const Z: i64 = 0x3_0000_0007;

fn txn(cxid: i32, op: TxnOp) -> Txn {
    Txn {
        zxid: Z,
        time_ms: 1_700_000_000_123,
        session_id: S,
        cxid,
        op,
    }
}

fn open() -> Arc<Vec<Acl>> {
    Arc::new(Acl::open_unsafe())
}

fn digest_acl() -> Arc<Vec<Acl>> {
    let id = |scheme: &str, id: &str| Id {
        scheme: scheme.into(),
        id: id.into(),
    };
    Arc::new(vec![
        Acl {
            perms: 1,
            id: id("digest", "u:hash="),
        },
        Acl {
            perms: 31,
            id: id("ip", "10.0.0.1"),
        },
    ])
}

fn data(s: &str) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(s.as_bytes()))
}

/// Golden name, the txn, and whether Ringkeeper writes exactly these bytes for it.
fn cases() -> Vec<(&'static str, Txn, bool)> {
    vec![
        (
            "txn_create_session",
            txn(0, TxnOp::CreateSession { timeout_ms: 30_000 }),
            true,
        ),
        ("txn_close_session", txn(9, TxnOp::CloseSession), true),
        // Java lists the ephemerals; they are read past (apply deletes them all).
        (
            "txn_close_session_paths",
            txn(9, TxnOp::CloseSession),
            false,
        ),
        // Before 3.6 a close had no record at all.
        (
            "txn_close_session_pre36",
            txn(9, TxnOp::CloseSession),
            false,
        ),
        (
            "txn_create_ephemeral",
            txn(
                1,
                TxnOp::Create {
                    path: "/e".into(),
                    data: data("hi"),
                    acl: open(),
                    ephemeral_owner: S,
                    parent_cversion: 3,
                    opcode: opcode::CREATE,
                },
            ),
            true,
        ),
        (
            "txn_create2_null_data",
            txn(
                2,
                TxnOp::Create {
                    path: "/p".into(),
                    data: None,
                    acl: digest_acl(),
                    ephemeral_owner: 0,
                    parent_cversion: 1,
                    opcode: opcode::CREATE2,
                },
            ),
            true,
        ),
        (
            "txn_create_container",
            txn(
                3,
                TxnOp::Create {
                    path: "/c".into(),
                    data: data(""),
                    acl: open(),
                    ephemeral_owner: CONTAINER_OWNER,
                    parent_cversion: 2,
                    opcode: opcode::CREATE_CONTAINER,
                },
            ),
            true,
        ),
        (
            "txn_create_ttl",
            txn(
                4,
                TxnOp::Create {
                    path: "/t".into(),
                    data: data("x"),
                    acl: open(),
                    ephemeral_owner: NodeKind::ttl_owner(5000),
                    parent_cversion: 4,
                    opcode: opcode::CREATE_TTL,
                },
            ),
            true,
        ),
        (
            "txn_delete",
            txn(5, TxnOp::Delete { path: "/p".into() }),
            true,
        ),
        (
            "txn_delete_container",
            Txn {
                session_id: 0,
                cxid: 0,
                ..txn(0, TxnOp::Delete { path: "/c".into() })
            },
            false,
        ),
        (
            "txn_set_data",
            txn(
                6,
                TxnOp::SetData {
                    path: "/p".into(),
                    data: data("v2"),
                    version: 3,
                },
            ),
            true,
        ),
        (
            "txn_set_acl",
            txn(
                7,
                TxnOp::SetAcl {
                    path: "/p".into(),
                    acl: digest_acl(),
                    aversion: 2,
                },
            ),
            true,
        ),
        ("txn_error", txn(8, TxnOp::Error(ErrorCode::NoNode)), true),
        (
            "txn_multi",
            txn(
                10,
                TxnOp::Multi(vec![
                    TxnOp::Create {
                        path: "/m".into(),
                        data: data("a"),
                        acl: open(),
                        ephemeral_owner: S,
                        parent_cversion: 1,
                        opcode: opcode::CREATE,
                    },
                    TxnOp::Check {
                        path: "/p".into(),
                        version: 4,
                    },
                    TxnOp::SetData {
                        path: "/p".into(),
                        data: data("b"),
                        version: 4,
                    },
                    TxnOp::Delete { path: "/m".into() },
                ]),
            ),
            true,
        ),
        (
            "txn_multi_failed",
            txn(
                11,
                TxnOp::Multi(vec![
                    TxnOp::Error(ErrorCode::Ok),
                    TxnOp::Error(ErrorCode::NoNode),
                    TxnOp::Error(ErrorCode::RuntimeInconsistency),
                ]),
            ),
            true,
        ),
        (
            "txn_set_data_digest",
            txn(
                6,
                TxnOp::SetData {
                    path: "/p".into(),
                    data: data("v2"),
                    version: 3,
                },
            ),
            false,
        ),
    ]
}

#[test]
fn java_txns_decode_to_what_they_stand_for() {
    for (name, want, _) in cases() {
        let got = decode(&golden(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn txns_encode_to_javas_bytes() {
    for (name, t, exact) in cases() {
        if !exact {
            continue;
        }
        let mut out = Vec::new();
        encode(&mut out, &t);
        assert_eq!(hex(&out), hex(&golden(name)), "{name}");
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn bad_bytes_are_errors_not_panics() {
    for (name, _, _) in cases() {
        let g = golden(name);
        for cut in 0..g.len() {
            let _ = decode(&g[..cut]);
        }
        let mut extra = g.clone();
        extra.push(0);
        assert!(
            decode(&extra).is_err(),
            "{name}: a trailing byte is refused"
        );
    }
    // An unknown type (the header's last field ends at byte 32).
    let mut g = golden("txn_delete");
    g[31] = 99;
    assert!(matches!(
        decode(&g),
        Err(DecodeError::BadValue { field: "type", .. })
    ));
}
