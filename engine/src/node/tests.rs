//! The node's rules, shown by feeding inputs and asserting the outputs.

use super::*;
use crate::proto::{opcode as op, Acl, CreateRequest};
use bytes::Bytes;

const NOW: i64 = 10_000;

fn node(snap_count: u64, pending_txns_max: usize) -> Node {
    let n = Node::new(
        Pipeline::new(crate::pipeline::test_config(), NOW, 99),
        NodeConfig {
            snap_count,
            pending_txns_max,
        },
        7,
    );
    n.check_invariants();
    n
}

fn connect_req(session_id: i64, passwd: [u8; 16]) -> ConnectRequest {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 2000,
        session_id,
        passwd: Bytes::copy_from_slice(&passwd),
        read_only: None,
    }
}

fn write(conn: ConnId, xid: i32, session_id: i64, path: &str, reads_waiting: bool) -> Input {
    Input::Write {
        origin: Origin {
            conn,
            xid,
            opcode: op::CREATE,
        },
        session_id,
        req: Request::Create(CreateRequest {
            opcode: op::CREATE,
            path: path.into(),
            data: Some(Bytes::new()),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        }),
        auth: Vec::new(),
        reads_waiting,
    }
}

/// A session created and made durable; returns its id.
fn session(n: &mut Node) -> i64 {
    n.handle(
        Input::Connect {
            conn: 1,
            req: connect_req(0, [0; 16]),
        },
        NOW,
    );
    let out = n.end_round();
    let zxid = n.pipeline().last_zxid();
    n.log_synced(zxid);
    let out2 = n.end_round();
    let Some(Output::Publish { entries, .. }) = out2.into_iter().next() else {
        panic!("connect not published after its sync: {out:?}")
    };
    entries
        .iter()
        .find_map(|e| match e {
            Entry::ConnectReply {
                outcome: ConnectOutcome::Accepted { session_id, .. },
                ..
            } => Some(*session_id),
            _ => None,
        })
        .expect("a connect reply")
}

/// (appended zxids, published entries as short names) of a list of outputs.
fn summary(out: &[Output]) -> (Vec<Vec<i64>>, Vec<Vec<String>>) {
    let mut logs = Vec::new();
    let mut pubs = Vec::new();
    for o in out {
        match o {
            Output::AppendLog(txns) => logs.push(txns.iter().map(|t| t.zxid).collect()),
            Output::Publish { entries, version } => pubs.push(
                entries
                    .iter()
                    .map(|e| match e {
                        Entry::Commit(c) => format!("commit {}", c.txn.zxid),
                        Entry::SyncDone { zxid, .. } => format!("sync {zxid}"),
                        Entry::ConnectReply { conn, .. } => format!("connect {conn}"),
                        Entry::Resumed { conn, .. } => format!("resumed {conn}"),
                        Entry::Flush(v) => format!("flush {}", v.last_zxid()),
                        Entry::MovedAway { session_id } => format!("moved {session_id}"),
                    })
                    .chain([format!("version {}", version.last_zxid())])
                    .collect(),
            ),
            other => panic!("unexpected output {other:?}"),
        }
    }
    (logs, pubs)
}

#[test]
fn start_publishes_the_recovered_version() {
    let mut n = node(1000, 100);
    let (logs, pubs) = summary(&n.start(0));
    assert!(logs.is_empty());
    assert_eq!(pubs, vec![vec!["version 0".to_string()]]);
}

#[test]
fn nothing_is_published_before_its_txn_is_durable() {
    let mut n = node(1000, 100);
    let s = session(&mut n);
    n.handle(write(2, 1, s, "/a", false), NOW);
    let (logs, pubs) = summary(&n.end_round());
    assert_eq!(logs, vec![vec![2]], "the write goes to the log");
    assert!(pubs.is_empty(), "and is not published before it is synced");
    n.check_invariants();
    n.log_synced(2);
    let (logs, pubs) = summary(&n.end_round());
    assert!(logs.is_empty());
    assert_eq!(pubs, vec![vec!["commit 2", "flush 2", "version 2"]]);
    n.check_invariants();
}

#[test]
fn writes_during_a_log_write_go_down_together_as_the_next_one() {
    let mut n = node(1000, 100);
    let s = session(&mut n);
    n.handle(write(2, 1, s, "/a", false), NOW);
    assert_eq!(summary(&n.end_round()).0, vec![vec![2]]);
    // Two more rounds while /a's write and fdatasync are in flight.
    n.handle(write(2, 2, s, "/b", false), NOW);
    assert_eq!(summary(&n.end_round()), (vec![], vec![]));
    n.handle(write(3, 1, s, "/c", false), NOW);
    assert_eq!(summary(&n.end_round()), (vec![], vec![]));
    n.check_invariants();
    n.log_synced(2);
    let (logs, pubs) = summary(&n.end_round());
    assert_eq!(logs, vec![vec![3, 4]], "group commit: one write for both");
    assert_eq!(pubs, vec![vec!["commit 2", "flush 2", "version 2"]]);
    n.log_synced(4);
    let (logs, pubs) = summary(&n.end_round());
    assert!(logs.is_empty());
    assert_eq!(
        pubs,
        vec![vec!["commit 3", "commit 4", "flush 4", "version 4"]]
    );
    n.check_invariants();
}

#[test]
fn a_resumed_sessions_connect_reply_waits_behind_unsynced_writes() {
    let mut n = node(1000, 100);
    let s = session(&mut n);
    let passwd = n.pipeline().sessions().password(s);
    n.handle(write(2, 1, s, "/a", false), NOW);
    n.handle(
        Input::Connect {
            conn: 5,
            req: connect_req(s, passwd),
        },
        NOW,
    );
    assert_eq!(summary(&n.end_round()).1, Vec::<Vec<String>>::new());
    n.log_synced(2);
    let (_, pubs) = summary(&n.end_round());
    assert_eq!(
        pubs,
        vec![vec![
            "commit 2",
            "resumed 5",
            "connect 5",
            "flush 2",
            "version 2"
        ]]
    );
}

#[test]
fn a_second_write_of_a_connection_with_reads_waiting_keeps_the_version_before_it() {
    let mut n = node(1000, 100);
    let s = session(&mut n);
    n.handle(write(2, 1, s, "/a", false), NOW);
    n.handle(write(2, 2, s, "/b", true), NOW); // reads queued behind /a
    n.handle(write(3, 1, s, "/c", true), NOW); // another connection: its first in the span
    n.end_round();
    n.log_synced(4);
    let Some(Output::Publish { entries, .. }) = n.end_round().into_iter().next() else {
        panic!()
    };
    let befores: Vec<Option<i64>> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Commit(c) => Some(c.version_before.as_ref().map(|v| v.last_zxid())),
            _ => None,
        })
        .collect();
    assert_eq!(befores, vec![None, Some(2), None]);
    // After the flush point the span starts again.
    n.handle(write(2, 3, s, "/d", true), NOW);
    n.end_round();
    n.log_synced(5);
    let Some(Output::Publish { entries, .. }) = n.end_round().into_iter().next() else {
        panic!()
    };
    assert!(matches!(&entries[0], Entry::Commit(c) if c.version_before.is_none()));
}

#[test]
fn a_sync_is_answered_once_everything_before_it_is_durable() {
    let mut n = node(1000, 100);
    let s = session(&mut n);
    n.handle(write(2, 1, s, "/a", false), NOW);
    let sync = Input::Sync {
        origin: Origin {
            conn: 3,
            xid: 1,
            opcode: op::SYNC,
        },
        session_id: s,
        path: "/".into(),
        reads_waiting: false,
    };
    n.handle(sync, NOW);
    n.end_round();
    n.log_synced(2);
    let (_, pubs) = summary(&n.end_round());
    assert_eq!(
        pubs,
        vec![vec!["commit 2", "sync 2", "flush 2", "version 2"]]
    );
}

#[test]
fn past_the_pending_limit_the_node_stops_accepting_until_the_log_catches_up() {
    let mut n = node(1000, 3);
    let s = session(&mut n);
    n.handle(write(2, 1, s, "/a", false), NOW);
    n.end_round(); // in flight: zxid 2
    for (i, p) in ["/b", "/c", "/d"].iter().enumerate() {
        assert!(n.accepting());
        n.handle(write(2, 2 + i as i32, s, p, false), NOW);
        n.end_round();
    }
    assert!(!n.accepting(), "three txns wait for the log");
    n.log_synced(2);
    let (logs, _) = summary(&n.end_round());
    assert_eq!(logs, vec![vec![3, 4, 5]]);
    assert!(n.accepting());
}

#[test]
fn snapshots_come_after_about_snap_count_txns_and_one_at_a_time() {
    let mut n = node(10, 1000);
    let s = session(&mut n);
    let mut asked = 0;
    let mut skipped = 0;
    for i in 0..40 {
        n.handle(write(2, i, s, &format!("/n{i}"), false), NOW);
        for o in n.end_round() {
            match o {
                Output::WriteSnapshot { tree, token, .. } => {
                    asked += 1;
                    assert_eq!(token, None);
                    assert_eq!(tree.last_zxid(), n.pipeline().last_zxid());
                }
                Output::SnapshotSkipped => skipped += 1,
                _ => {}
            }
        }
        let z = n.pipeline().last_zxid();
        n.log_synced(z);
        n.end_round();
    }
    // Thresholds fall between 5 and 9 txns: 40 txns make 4 to 8 snapshots, and none is written
    // back yet, so all but the first are skipped.
    assert_eq!(asked, 1);
    assert!((4..=8).contains(&(asked + skipped)), "{asked} + {skipped}");
    // The `snap` word meanwhile is told the writer is busy; once written, it gets one.
    assert!(matches!(
        n.handle(Input::SnapshotAsked { token: 9 }, NOW)[..],
        [Output::SnapshotBusy { token: 9 }]
    ));
    n.snapshot_written();
    assert!(matches!(
        n.handle(Input::SnapshotAsked { token: 9 }, NOW)[..],
        [Output::WriteSnapshot { token: Some(9), .. }]
    ));
}

#[test]
fn the_same_seed_rolls_the_same_snapshot_thresholds() {
    let thresholds = |seed| {
        let mut t = SnapTrigger::new(100_000, seed);
        (0..5)
            .map(|_| {
                t.roll();
                t.threshold
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(thresholds(3), thresholds(3));
    assert_ne!(thresholds(3), thresholds(4));
    assert!(thresholds(3).iter().all(|t| (50_000..100_000).contains(t)));
}

#[test]
fn a_long_replayed_tail_is_snapshotted_at_start() {
    let mut n = node(10, 100);
    let out = n.start(6);
    assert!(matches!(
        out[..],
        [Output::Publish { .. }, Output::WriteSnapshot { .. }]
    ));
    let mut n = node(10, 100);
    assert!(matches!(n.start(5)[..], [Output::Publish { .. }]));
}
