//! The codec against golden bytes written by Java ZooKeeper 3.8's own classes
//! (`golden/GenGolden.java`, run by `golden/gen.sh`), and against damaged input.

use super::*;
use crate::quorum::golden;
use rand::{Rng, SeedableRng};

const MAX: usize = 1 << 20;

/// Decodes a golden packet, checks it re-encodes to the same bytes, and returns it.
fn packet(name: &str) -> QuorumPacket {
    let bytes = golden(name);
    assert_eq!(packet_len(&bytes, MAX), Ok(Some(bytes.len())), "{name}");
    let p = QuorumPacket::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut again = Vec::new();
    p.encode(&mut again);
    assert_eq!(again, bytes, "{name} re-encoded");
    p
}

#[test]
fn learner_info_matches_java() {
    let bytes = golden("learner_info");
    let info = LearnerInfo::decode(&bytes).unwrap();
    assert_eq!(
        info,
        LearnerInfo {
            server_id: 3,
            protocol_version: LEARNER_PROTOCOL_VERSION,
            config_version: 0x1_0000_0007,
        }
    );
    let mut again = Vec::new();
    info.encode(&mut again);
    assert_eq!(again, bytes);
}

#[test]
fn quorum_packets_match_java() {
    let p = packet("packet_followerinfo");
    assert_eq!((p.kind, p.zxid), (packet::FOLLOWERINFO, 0x2_0000_0000));
    assert_eq!(p.authinfo, Some(vec![]), "an empty list, not null");
    let info = LearnerInfo::decode(p.data.as_deref().unwrap()).unwrap();
    assert_eq!(info.server_id, 3);

    let p = packet("packet_leaderinfo");
    assert_eq!((p.kind, p.zxid), (packet::LEADERINFO, 0x3_0000_0000));
    assert_eq!(p.data.as_deref(), Some(&0x10000i32.to_be_bytes()[..]));
    assert_eq!(p.authinfo, None);

    let p = packet("packet_ackepoch");
    assert_eq!((p.kind, p.zxid), (packet::ACKEPOCH, 0x2_0000_0005));
    assert_eq!(p.data.as_deref(), Some(&2i32.to_be_bytes()[..]));

    let p = packet("packet_proposal");
    assert_eq!((p.kind, p.zxid), (packet::PROPOSAL, 0x3_0000_0001));
    assert_eq!(p.data.as_deref(), Some(&b"txn bytes"[..]));

    for (name, kind, zxid) in [
        ("packet_ack", packet::ACK, 0x3_0000_0001),
        ("packet_commit", packet::COMMIT, 0x3_0000_0001),
        ("packet_diff", packet::DIFF, 0x2_0000_0005),
        ("packet_trunc", packet::TRUNC, 0x2_0000_0003),
        ("packet_snap", packet::SNAP, 0x2_0000_0005),
        ("packet_uptodate", packet::UPTODATE, -1),
    ] {
        let p = packet(name);
        assert_eq!(
            p,
            QuorumPacket::new(kind, zxid, None),
            "{name}: no data, no authinfo"
        );
    }

    let p = packet("packet_inform");
    assert_eq!(
        (p.kind, p.data.as_deref()),
        (packet::INFORM, Some(&[1u8, 2, 3][..]))
    );

    let p = packet("packet_request");
    assert_eq!((p.kind, p.zxid), (packet::REQUEST, -1));
    assert_eq!(
        p.authinfo,
        Some(vec![
            Id::new("digest", "u:hash="),
            Id::new("ip", "127.0.0.1")
        ])
    );

    let p = packet("packet_ping");
    assert_eq!(p.data.as_deref(), Some(&b""[..]), "empty, not null");

    let p = packet("packet_newleader");
    assert_eq!(p.kind, packet::NEWLEADER);
    assert!(p.data.unwrap().starts_with(b"server.1=a:2888:3888"));
}

#[test]
fn a_stream_of_packets_splits_where_java_wrote_them() {
    let names = [
        "packet_leaderinfo",
        "packet_request",
        "packet_proposal",
        "packet_newleader",
        "packet_ping",
    ];
    let stream: Vec<u8> = names.iter().flat_map(|n| golden(n)).collect();
    let mut at = 0;
    for name in names {
        let want = golden(name);
        // Every cut before the packet's end asks for more bytes.
        for cut in at..at + want.len() {
            assert_eq!(
                packet_len(&stream[at..cut], MAX),
                Ok(None),
                "{name} cut at {cut}"
            );
        }
        let n = packet_len(&stream[at..], MAX).unwrap().unwrap();
        assert_eq!(&stream[at..at + n], &want[..], "{name}");
        QuorumPacket::decode(&stream[at..at + n]).unwrap();
        at += n;
    }
    assert_eq!(at, stream.len());
}

#[test]
fn lengths_past_the_maximum_or_negative_are_refused_before_any_allocation() {
    let mut bytes = golden("packet_proposal");
    // data's length field sits at offset 12.
    bytes[12..16].copy_from_slice(&(-2i32).to_be_bytes());
    assert!(packet_len(&bytes, MAX).is_err());
    bytes[12..16].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(packet_len(&bytes, MAX).is_err(), "2 GiB of data announced");
    assert!(QuorumPacket::decode(&bytes).is_err());
    let small = golden("packet_proposal");
    assert!(packet_len(&small, 20).is_err(), "over the packet maximum");
    let mut many = golden("packet_request");
    // authinfo's count sits after 16 bytes of head and 8 of data.
    many[24..28].copy_from_slice(&(1i32 << 30).to_be_bytes());
    assert!(packet_len(&many, MAX).is_err());
    assert!(QuorumPacket::decode(&many).is_err());
}

#[test]
fn damaged_packets_never_panic() {
    let originals: Vec<Vec<u8>> = ["packet_request", "packet_followerinfo", "packet_newleader"]
        .iter()
        .map(|n| golden(n))
        .collect();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(8);
    for round in 0..20_000 {
        let mut b = originals[round % originals.len()].clone();
        for _ in 0..rng.gen_range(1..4) {
            let i = rng.gen_range(0..b.len());
            b[i] = rng.gen();
        }
        b.truncate(rng.gen_range(0..=b.len()));
        if let Ok(Some(n)) = packet_len(&b, MAX) {
            let _ = QuorumPacket::decode(&b[..n]);
        }
        let _ = QuorumPacket::decode(&b);
        let _ = Notification::decode(&b);
        let _ = ElectionOpening::decode(&b, 4096);
    }
}

#[test]
fn notifications_match_java_in_the_current_and_the_40_byte_form() {
    let bytes = golden("notification_v2");
    let n = Notification::decode(&bytes).unwrap();
    assert_eq!(
        (
            n.state,
            n.leader,
            n.zxid,
            n.election_epoch,
            n.peer_epoch,
            n.version
        ),
        (state::LOOKING, 2, 0x1_0000_0005, 7, 1, NOTIFICATION_VERSION)
    );
    assert_eq!(
        n.config.as_deref(),
        Some(&b"server.1=127.0.0.1:2888:3888:participant\nversion=100000000"[..])
    );
    assert_eq!(n.encode(), bytes);

    let bytes = golden("notification_v1");
    let n = Notification::decode(&bytes).unwrap();
    assert_eq!(
        (
            n.state,
            n.leader,
            n.zxid,
            n.election_epoch,
            n.peer_epoch,
            n.version
        ),
        (state::FOLLOWING, 3, 0x2_0000_0001, 9, 2, 0),
        "40 bytes: Java reads no version"
    );
    assert_eq!(n.config, None);
    assert_eq!(n.encode(), bytes);

    // The 28-byte form: the peer epoch is the zxid's.
    let n = Notification::decode(&bytes[..28]).unwrap();
    assert_eq!(n.peer_epoch, 2);
    assert!(Notification::decode(&bytes[..27]).is_err());
    let mut bad = golden("notification_v2");
    bad[40..44].copy_from_slice(&1000i32.to_be_bytes());
    assert!(
        Notification::decode(&bad).is_err(),
        "config longer than the message"
    );
    bad[40..44].copy_from_slice(&(-1i32).to_be_bytes());
    assert!(Notification::decode(&bad).is_err(), "a null config");
}

#[test]
fn the_election_opening_matches_java() {
    let bytes = golden("election_opening_v2");
    assert_eq!(ElectionOpening::decode(&bytes[..19], 4096), Ok(None));
    assert_eq!(
        ElectionOpening::decode(&bytes[..bytes.len() - 1], 4096),
        Ok(None)
    );
    let (opening, n) = ElectionOpening::decode(&bytes, 4096).unwrap().unwrap();
    assert_eq!(n, bytes.len());
    assert_eq!(
        opening,
        ElectionOpening::Current {
            protocol_version: ELECTION_PROTOCOL_V2,
            sid: 2,
            addresses: "127.0.0.1:3888|127.0.0.2:3889".into(),
        }
    );
    let mut again = Vec::new();
    opening.encode(&mut again);
    assert_eq!(again, bytes);
    assert!(
        ElectionOpening::decode(&bytes, 10).is_err(),
        "addresses over the limit"
    );
    let old = 5i64.to_be_bytes();
    assert_eq!(
        ElectionOpening::decode(&old, 4096),
        Ok(Some((ElectionOpening::Old { sid: 5 }, 8)))
    );
    let unknown = (-7i64).to_be_bytes();
    assert!(ElectionOpening::decode(&unknown, 4096).is_err());
}
