//! The mapping against the packets Java ZooKeeper's classes wrote (`quorum/golden`): where Java
//! fills a packet exactly as Ringkeeper does, the bytes are identical; every other golden packet
//! decodes to the message it stands for; every message survives encode and decode.

use super::*;
use crate::proto::{Acl, CreateRequest, ErrorCode, Id};
use crate::quorum::golden;
use crate::txn::{Txn, TxnOp};

fn sender() -> Sender {
    Sender {
        my_id: 3,
        config_version: 0x1_0000_0007,
        config: Bytes::from_static(b"server.1=a:2888:3888:participant;0.0.0.0:2181\nversion=0"),
    }
}

fn bytes_of(msg: &Msg) -> Vec<u8> {
    let mut out = Vec::new();
    encode(msg, &sender()).expect("encodes").encode(&mut out);
    out
}

fn decoded(name: &str) -> Decoded {
    decode(&QuorumPacket::decode(&golden(name)).expect("packet")).expect("message")
}

#[test]
fn packets_filled_as_java_fills_them_are_byte_identical() {
    let cases = [
        (
            "packet_ackepoch",
            Msg::AckEpoch {
                current_epoch: 2,
                last_zxid: 0x2_0000_0005,
            },
        ),
        (
            "packet_ack",
            Msg::Ack {
                zxid: 0x3_0000_0001,
            },
        ),
        (
            "packet_commit",
            Msg::Commit {
                zxid: 0x3_0000_0001,
            },
        ),
        (
            "packet_diff",
            Msg::Diff {
                zxid: 0x2_0000_0005,
            },
        ),
        (
            "packet_trunc",
            Msg::Trunc {
                zxid: 0x2_0000_0003,
            },
        ),
        ("packet_uptodate", Msg::UpToDate),
        (
            "packet_revalidate",
            Msg::Revalidate {
                session_id: 0x0200_0000_0000_0011,
                timeout_ms: 30000,
            },
        ),
        (
            "packet_revalidate_answer",
            Msg::Revalidated {
                session_id: 0x0200_0000_0000_0011,
                valid: true,
            },
        ),
        (
            "packet_newleader",
            Msg::NewLeader {
                zxid: 0x3_0000_0000,
            },
        ),
    ];
    for (name, msg) in cases {
        assert_eq!(bytes_of(&msg), golden(name), "{name}");
    }
}

fn forwarded_create() -> Forward {
    Forward {
        session_id: 0x0200_0000_0000_0011,
        cxid: 7,
        req: Request::Create(CreateRequest {
            opcode: opcode::CREATE,
            path: "/app/lock-".into(),
            data: Some(Bytes::from_static(b"v")),
            acl: Acl::open_unsafe(),
            flags: 3,
            ttl: -1,
        }),
        auth: vec![
            Id {
                scheme: "digest".into(),
                id: "u:hash=".into(),
            },
            Id {
                scheme: "ip".into(),
                id: "127.0.0.1".into(),
            },
        ],
    }
}

#[test]
fn forwarded_requests_are_laid_out_as_javas_learner_writes_them() {
    let fwd = forwarded_create();
    assert_eq!(
        bytes_of(&Msg::Request(fwd.clone())),
        golden("packet_request_create")
    );
    match decoded("packet_request_create").msg {
        Msg::Request(f) => assert_eq!(f, fwd),
        m => panic!("{m:?}"),
    }
    let session = Forward {
        session_id: 0x0200_0000_0000_0012,
        cxid: 0,
        req: Request::CreateSession { timeout_ms: 30000 },
        auth: Vec::new(),
    };
    assert_eq!(
        bytes_of(&Msg::Request(session.clone())),
        golden("packet_request_create_session")
    );
    match decoded("packet_request_create_session").msg {
        Msg::Request(f) => assert_eq!(f, session),
        m => panic!("{m:?}"),
    }
    let sync = Forward {
        session_id: 0x0200_0000_0000_0011,
        cxid: 8,
        req: Request::Sync {
            path: "/app".into(),
        },
        auth: Vec::new(),
    };
    assert_eq!(
        bytes_of(&Msg::SyncRequest(sync.clone())),
        golden("packet_request_sync")
    );
    match decoded("packet_request_sync").msg {
        Msg::SyncRequest(f) => assert_eq!(f, sync),
        m => panic!("{m:?}"),
    }
    // A read is never forwarded; a header cut short is not a request.
    let mut p = QuorumPacket::decode(&golden("packet_request_sync")).expect("packet");
    let mut d = p.data.clone().expect("data").to_vec();
    d[12..16].copy_from_slice(&opcode::GET_DATA.to_be_bytes());
    p.data = Some(Bytes::from(d));
    assert!(decode(&p).is_err());
    p.data = Some(Bytes::from_static(&[0; 15]));
    assert!(decode(&p).is_err());
}

/// LEADERINFO and LearnerInfo are Java's bytes with the mark after them; Java's own decode
/// without it, and ours with it.
#[test]
fn the_own_snapshot_mark_follows_what_java_reads() {
    let java = QuorumPacket::decode(&golden("packet_leaderinfo")).expect("packet");
    let ours = encode(&Msg::LeaderInfo { new_epoch: 3 }, &sender()).expect("encodes");
    assert_eq!((ours.kind, ours.zxid), (java.kind, java.zxid));
    let (j, o) = (java.data.clone().unwrap(), ours.data.clone().unwrap());
    assert_eq!(&o[..4], &j[..], "the protocol version Java reads");
    assert_eq!(&o[4..], &OWN_SNAP_MARK[..]);
    assert!(!decode(&java).unwrap().own_snap);
    assert!(decode(&ours).unwrap().own_snap);
    let java = QuorumPacket::decode(&golden("packet_followerinfo")).expect("packet");
    let info = Msg::LearnerInfo {
        accepted_epoch: 2,
        observer: false,
        leader_synced: false,
    };
    let ours = encode(&info, &sender()).expect("encodes");
    let (j, o) = (java.data.clone().unwrap(), ours.data.clone().unwrap());
    assert_eq!(j.len(), 20, "serverid, protocolVersion, configVersion");
    assert_eq!(&o[20..], &OWN_SNAP_MARK[..]);
    assert!(!decode(&java).unwrap().own_snap);
    let d = decode(&ours).unwrap();
    assert!(d.own_snap);
    assert_eq!(d.learner_id, Some(3));
    // Only the exact mark counts.
    let mut other = o.to_vec();
    other[23] ^= 1;
    let mut p = ours.clone();
    p.data = Some(Bytes::from(other));
    assert!(!decode(&p).unwrap().own_snap);
}

/// A learner that takes LeaderSynced sends its mark after the snapshot mark; one without it
/// (Java, or an older Ringkeeper) is never told, and the mark alone, out of place, counts for
/// nothing.
#[test]
fn the_leader_synced_mark_follows_the_snapshot_mark() {
    let info = |leader_synced| Msg::LearnerInfo {
        accepted_epoch: 2,
        observer: false,
        leader_synced,
    };
    let takes = |data: Vec<u8>| {
        let mut p = QuorumPacket::decode(&golden("packet_followerinfo")).expect("packet");
        p.data = Some(Bytes::from(data));
        let d = decode(&p).expect("decodes");
        match d.msg {
            Msg::LearnerInfo { leader_synced, .. } => (d.own_snap, leader_synced),
            m => panic!("{m:?}"),
        }
    };
    let ours = encode(&info(true), &sender())
        .expect("encodes")
        .data
        .unwrap();
    assert_eq!(&ours[20..28], &OWN_SNAP_MARK[..]);
    assert_eq!(&ours[28..], &LEADER_SYNCED_MARK[..]);
    assert_eq!(takes(ours.to_vec()), (true, true));
    let older = encode(&info(false), &sender())
        .expect("encodes")
        .data
        .unwrap();
    assert_eq!(takes(older.to_vec()), (true, false));
    let java = QuorumPacket::decode(&golden("packet_followerinfo"))
        .unwrap()
        .data
        .unwrap();
    assert_eq!(takes(java.to_vec()), (false, false));
    let mut alone = java.to_vec();
    alone.extend_from_slice(LEADER_SYNCED_MARK);
    assert_eq!(takes(alone), (false, false));
    let mut twice = ours.to_vec();
    twice.extend_from_slice(LEADER_SYNCED_MARK);
    assert_eq!(takes(twice), (false, false));
}

#[test]
fn java_packets_decode_to_their_messages() {
    let d = decoded("packet_followerinfo");
    assert_eq!(d.learner_id, Some(3));
    assert!(matches!(
        d.msg,
        Msg::LearnerInfo {
            accepted_epoch: 2,
            observer: false,
            leader_synced: false
        }
    ));
    assert!(matches!(decoded("packet_ping").msg, Msg::Ping { touches } if touches.is_empty()));
    match decoded("packet_ping_touches").msg {
        Msg::Ping { touches } => assert_eq!(
            touches,
            vec![
                (0x0100_0000_0000_0001, 30000),
                (0x0300_0177_0000_0002, 4000)
            ]
        ),
        m => panic!("{m:?}"),
    }
    // A proposal carrying a txn Java serialized.
    let p = QuorumPacket::new(
        packet::PROPOSAL,
        0x3_0000_0007,
        Some(golden("txn_set_data").into()),
    );
    match decode(&p).expect("proposal").msg {
        Msg::Proposal(t) => assert_eq!(
            t.op,
            TxnOp::SetData {
                path: "/p".into(),
                data: Some(Bytes::from_static(b"v2")),
                version: 3
            }
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_message_survives_encode_and_decode() {
    let t = Txn {
        zxid: 0x5_0000_0002,
        time_ms: 7,
        session_id: 0x55,
        cxid: 3,
        op: TxnOp::Error(ErrorCode::BadVersion),
    };
    let msgs = [
        Msg::LearnerInfo {
            accepted_epoch: 4,
            observer: true,
            leader_synced: false,
        },
        Msg::LearnerInfo {
            accepted_epoch: 4,
            observer: false,
            leader_synced: true,
        },
        Msg::LeaderSynced {
            zxid: 0x5_0000_0003,
        },
        Msg::LeaderInfo { new_epoch: 5 },
        Msg::AckEpoch {
            current_epoch: -1,
            last_zxid: 0x4_0000_0009,
        },
        Msg::Diff { zxid: 1 },
        Msg::Trunc { zxid: 2 },
        Msg::Proposal(t.clone()),
        Msg::Commit { zxid: t.zxid },
        Msg::Inform(t),
        Msg::NewLeader {
            zxid: 0x5_0000_0000,
        },
        Msg::Ack { zxid: 9 },
        Msg::UpToDate,
        Msg::Ping {
            touches: vec![(1 << 56 | 7, 4000), (-1, 0)],
        },
        Msg::Sync,
        Msg::Revalidate {
            session_id: -5,
            timeout_ms: 1,
        },
        Msg::Revalidated {
            session_id: 3,
            valid: false,
        },
    ];
    for m in msgs {
        let mut bytes = Vec::new();
        encode(&m, &sender()).expect("encodes").encode(&mut bytes);
        let back = decode(&QuorumPacket::decode(&bytes).expect("packet")).expect("message");
        assert_eq!(format!("{:?}", back.msg), format!("{m:?}"));
    }
}

#[test]
fn bad_data_is_an_error() {
    // ACKEPOCH needs its 4-byte epoch; a proposal's txn must carry the packet's zxid.
    let p = QuorumPacket::new(packet::ACKEPOCH, 5, Some(Bytes::from_static(&[0, 1])));
    assert_eq!(
        decode(&p).err(),
        Some(WireError::BadData {
            kind: packet::ACKEPOCH
        })
    );
    let p = QuorumPacket::new(packet::PROPOSAL, 1, Some(golden("txn_set_data").into()));
    assert!(decode(&p).is_err());
    // REVALIDATE is 12 bytes one way and 9 the other; nothing else.
    for len in [0, 8, 10, 13] {
        let p = QuorumPacket::new(packet::REVALIDATE, -1, Some(Bytes::from(vec![0u8; len])));
        assert!(decode(&p).is_err(), "{len}");
    }
    let p = QuorumPacket::new(99, 1, None);
    assert!(decode(&p).is_err());
    // A touch table is whole entries of 12 bytes.
    let p = QuorumPacket::new(packet::PING, 0, Some(Bytes::from_static(&[0; 13])));
    assert!(decode(&p).is_err());
}
