//! The ensemble member: exact outputs for scripted exchanges (how a learner is synced, the order
//! in which a learner makes things durable and acknowledges), and whole ensembles run by the
//! seeded simulator in `sim.rs`. A failing seed is printed and replays exactly with `ZAB_SEED`.

use super::*;
use crate::proto::ErrorCode;
use crate::quorum::NOTIFICATION_VERSION;
use crate::txn::TxnOp;

mod sim;

/// A 3-voter member's configuration for tests (100 ms ticks, ZooKeeper's other defaults).
pub(crate) fn cfg(my_id: i64) -> PeerConfig {
    PeerConfig {
        my_id,
        voters: vec![1, 2, 3],
        observers: vec![],
        tick_ms: 100,
        init_limit: 10,
        sync_limit: 5,
        diff_window: 500,
        diff_window_bytes: 1 << 30,
        diff_always: 500,
        snapshot_size_factor: 0.33,
        finalize_wait_ms: 200,
        max_notification_interval_ms: 60_000,
        config: Bytes::new(),
        leader_connect_retry_ms: 100,
        first_conn: 0,
    }
}

fn txn(zxid: i64) -> Txn {
    Txn {
        zxid,
        time_ms: 0,
        session_id: 1,
        cxid: 0,
        op: TxnOp::Error(ErrorCode::Ok),
    }
}

fn z(epoch: i64, counter: i64) -> i64 {
    make_zxid(epoch, counter)
}

/// Server 1 with these txns in its log, in epoch `epoch`, elected by server 2's vote and past
/// discovery with server 2 as its learner on connection 7 (LEADERINFO sent).
fn leader(log: &[i64], epoch: i64) -> Peer {
    leader_with(cfg(1), log, epoch)
}

/// [`leader`] with its own configuration.
fn leader_with(cfg: PeerConfig, log: &[i64], epoch: i64) -> Peer {
    leader_from(cfg, log, log.first().map_or(0, |z| z - 1), epoch)
}

/// [`leader_with`], its log in memory starting after `recent_base`.
fn leader_from(cfg: PeerConfig, log: &[i64], recent_base: i64, epoch: i64) -> Peer {
    let last = log.last().copied().unwrap_or(0);
    let disk = Persisted {
        accepted_epoch: epoch,
        current_epoch: epoch,
        last_zxid: last,
        recent: log.iter().map(|z| txn(*z)).collect(),
        recent_base,
        snapshot_zxid: 0,
    };
    let (mut p, _) = Peer::start(cfg, disk, 0);
    let vote = Notification {
        state: state::LOOKING,
        leader: 1,
        zxid: last,
        election_epoch: 1,
        peer_epoch: epoch,
        version: NOTIFICATION_VERSION,
        config: Some(Bytes::new()),
    };
    p.vote_received(2, &vote, 10);
    p.tick(300);
    assert!(matches!(p.role(), Role::Leading { .. }), "{:?}", p.role());
    let out = p.message(
        2,
        7,
        Msg::LearnerInfo {
            accepted_epoch: epoch,
            observer: false,
            leader_synced: false,
        },
        310,
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Send { msg: Msg::LeaderInfo { new_epoch }, .. } if *new_epoch == epoch + 1
    )));
    p
}

/// [`leader`] of a log holding (1,1), established in epoch 2 with learner 2 (ACKEPOCH at (1,1),
/// NEWLEADER acknowledged).
fn established_leader() -> Peer {
    let mut p = leader(&[z(1, 1)], 1);
    let ack_epoch = Msg::AckEpoch {
        current_epoch: 1,
        last_zxid: z(1, 1),
    };
    p.message(2, 7, ack_epoch, 320);
    p.message(2, 7, Msg::Ack { zxid: z(2, 0) }, 321);
    assert!(p.serving(), "{:?}", p.role());
    p
}

/// What the leader sends learner 2 to sync it, when its last zxid is `peer_last`, as short
/// names (the new epoch's NEWLEADER ends each).
fn sync_of(log: &[i64], peer_last: i64) -> Vec<String> {
    sync_of_late(log, peer_last, false)
}

/// As [`sync_of`]; with `late`, learner 3 acknowledges the epoch first, so learner 2's answer
/// comes after the epoch is settled.
fn sync_of_late(log: &[i64], peer_last: i64, late: bool) -> Vec<String> {
    let mut p = leader(log, 1);
    if late {
        let info = Msg::LearnerInfo {
            accepted_epoch: 1,
            observer: false,
            leader_synced: false,
        };
        p.message(3, 8, info, 311);
        let last_zxid = log.last().copied().unwrap_or(0);
        p.message(
            3,
            8,
            Msg::AckEpoch {
                current_epoch: 1,
                last_zxid,
            },
            312,
        );
    }
    let out = p.message(
        2,
        7,
        Msg::AckEpoch {
            current_epoch: 1,
            last_zxid: peer_last,
        },
        320,
    );
    to_learner_2(&out)
}

/// What `out` sends learner 2, as short names.
fn to_learner_2(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to: 2, msg, .. } => Some(match msg {
                Msg::Diff { zxid } => format!("DIFF {zxid:#x}"),
                Msg::Trunc { zxid } => format!("TRUNC {zxid:#x}"),
                Msg::Proposal(t) => format!("PROPOSAL {:#x}", t.zxid),
                Msg::Commit { zxid } => format!("COMMIT {zxid:#x}"),
                Msg::NewLeader { zxid } => format!("NEWLEADER {zxid:#x}"),
                Msg::FromLog { after, through } => format!("LOG {after:#x}..{through:#x}"),
                other => format!("{other:?}"),
            }),
            Output::SendSnap { to: 2, zxid, .. } => Some(format!("SNAP {zxid:#x}")),
            _ => None,
        })
        .collect()
}

#[test]
fn a_learner_level_with_the_leader_gets_an_empty_diff() {
    let log = [z(1, 1), z(1, 2), z(1, 3)];
    assert_eq!(
        sync_of(&log, z(1, 3)),
        ["DIFF 0x100000003", "NEWLEADER 0x200000000"]
    );
}

#[test]
fn a_learner_behind_within_the_window_gets_the_txns_it_lacks() {
    let log = [z(1, 1), z(1, 2), z(1, 3)];
    assert_eq!(
        sync_of(&log, z(1, 1)),
        [
            "DIFF 0x100000003",
            "PROPOSAL 0x100000002",
            "COMMIT 0x100000002",
            "PROPOSAL 0x100000003",
            "COMMIT 0x100000003",
            "NEWLEADER 0x200000000"
        ]
    );
}

#[test]
fn a_voter_ahead_of_the_leader_during_the_epoch_handshake_makes_it_elect_again() {
    let log = [z(1, 1), z(1, 2)];
    let mut p = leader(&log, 1);
    let out = p.message(
        2,
        7,
        Msg::AckEpoch {
            current_epoch: 1,
            last_zxid: z(1, 4),
        },
        320,
    );
    assert_eq!(p.role(), Role::Looking);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Close { to: 2, conn: 7 })));
}

#[test]
fn a_learner_past_the_end_of_the_leaders_log_is_truncated() {
    // It joined after the epoch was settled, so it is synced, not refused.
    let log = [z(1, 1), z(1, 2)];
    assert_eq!(
        sync_of_late(&log, z(1, 4), true),
        ["TRUNC 0x100000002", "NEWLEADER 0x200000000"]
    );
}

#[test]
fn a_learner_with_a_txn_the_leader_lacks_is_truncated_within_an_epoch() {
    let log = [z(1, 1), z(1, 2), z(1, 4)];
    assert_eq!(
        sync_of(&log, z(1, 3)),
        [
            "TRUNC 0x100000002",
            "PROPOSAL 0x100000004",
            "COMMIT 0x100000004",
            "NEWLEADER 0x200000000"
        ]
    );
}

#[test]
fn a_learner_whose_extra_txns_are_in_an_older_epoch_gets_a_snapshot() {
    // Truncating would cross from epoch 1 into epoch 2: ZooKeeper sends a snapshot instead.
    let log = [z(1, 1), z(1, 2), z(2, 1)];
    assert_eq!(
        sync_of(&log, z(1, 3)),
        ["SNAP 0x200000001", "NEWLEADER 0x200000000"]
    );
}

/// A learner behind the window in memory: the leader surveys its log (ZooKeeper's
/// `txnLogSyncEnabled`) and sends a DIFF (or TRUNC) of what its log holds, to be streamed from
/// it, and then the window; SNAP when the log cannot give it (or it is too much).
#[test]
fn a_learner_behind_the_window_is_diffed_from_the_log_or_gets_a_snapshot() {
    let window: Vec<i64> = (10..20).map(|c| z(1, c)).collect();
    let on_disk = || (1..20).map(|c| txn(z(1, c)));
    let asked = |log: &[i64], peer_last: i64| {
        let mut p = leader(log, 1);
        let ack = Msg::AckEpoch {
            current_epoch: 1,
            last_zxid: peer_last,
        };
        let out = p.message(2, 7, ack, 320);
        assert!(
            to_learner_2(&out).is_empty(),
            "nothing before the log is read"
        );
        let read = out.iter().find_map(|o| match o {
            Output::ReadLog {
                to: 2,
                conn: 7,
                after,
                through,
                limits,
            } => Some((*after, *through, *limits)),
            _ => None,
        });
        (p, read.expect("a log read"))
    };
    let window_packets = || {
        (10..20).flat_map(|c| {
            [
                format!("PROPOSAL {:#x}", z(1, c)),
                format!("COMMIT {:#x}", z(1, c)),
            ]
        })
    };
    let (mut p, (after, through, limits)) = asked(&window, z(1, 5));
    assert_eq!((after, through), (z(1, 5), z(1, 9)));
    let span = log_range(on_disk(), after, through, limits).expect("the log has it");
    assert_eq!(
        span,
        LogSpan {
            base: z(1, 5),
            first: Some(z(1, 6)),
            end: z(1, 9),
            txns: 4,
            bytes: (6..10).map(|c| txn_cost(&txn(z(1, c)))).sum(),
        }
    );
    let mut want = vec![
        "DIFF 0x100000013".to_string(),
        "LOG 0x100000005..0x100000009".into(),
    ];
    want.extend(window_packets());
    want.push("NEWLEADER 0x200000000".into());
    assert_eq!(to_learner_2(&p.log_read(2, 7, Some(span), 330)), want);
    // What the stream takes from the log: the four txns after the base, nothing else.
    let mut stream = LogStream::new(z(1, 5), z(1, 9));
    let mut sent = Vec::new();
    for t in on_disk() {
        if stream.done() {
            break;
        }
        match stream.step(t.zxid) {
            LogStep::Skip => {}
            LogStep::Send => sent.push(t.zxid),
            LogStep::Broken => panic!("broken at {:#x}", t.zxid),
        }
    }
    assert_eq!(sent, (6..10).map(|c| z(1, c)).collect::<Vec<_>>());
    // A log that lost a txn of the span since the survey breaks the stream.
    let mut stream = LogStream::new(z(1, 5), z(1, 9));
    let steps: Vec<LogStep> = [4, 5, 6, 8].iter().map(|&c| stream.step(z(1, c))).collect();
    assert_eq!(
        steps,
        [LogStep::Skip, LogStep::Skip, LogStep::Send, LogStep::Broken]
    );
    assert!(!stream.done());
    // A learner whose last txn the log lacks (an old epoch's proposal nobody committed), the
    // next logged txn being in a later epoch: no TRUNC across an epoch boundary, SNAP.
    let mut p = leader(&(6..16).map(|c| z(2, c)).collect::<Vec<_>>(), 2);
    let ack = Msg::AckEpoch {
        current_epoch: 1,
        last_zxid: z(1, 5),
    };
    let out = p.message(2, 7, ack, 320);
    let (after, through, limits) = out
        .iter()
        .find_map(|o| match o {
            Output::ReadLog {
                after,
                through,
                limits,
                ..
            } => Some((*after, *through, *limits)),
            _ => None,
        })
        .expect("a log read");
    assert_eq!((after, through), (z(1, 5), z(2, 5)));
    let crossing_log = (1..5)
        .map(|c| txn(z(1, c)))
        .chain((1..16).map(|c| txn(z(2, c))));
    let span = log_range(crossing_log, after, through, limits).expect("the log has it");
    assert_eq!((span.base, span.first), (z(1, 4), Some(z(2, 1))));
    assert_eq!(
        to_learner_2(&p.log_read(2, 7, Some(span), 330)),
        ["SNAP 0x20000000f", "NEWLEADER 0x300000000"]
    );
    // The log cannot give it: SNAP.
    let (mut p, _) = asked(&window, z(1, 5));
    assert_eq!(
        to_learner_2(&p.log_read(2, 7, None, 330)),
        ["SNAP 0x100000013", "NEWLEADER 0x200000000"]
    );
    // A read for another connection, or one not asked for, changes nothing.
    assert!(p.log_read(2, 8, None, 331).is_empty());
    // A log that skips a zxid after the learner's gives no span; before it, it does not matter.
    let (mut p, (after, through, limits)) = asked(&window, z(1, 5));
    let holed = on_disk().filter(|t| t.zxid != z(1, 7));
    assert!(log_range(holed, after, through, limits).is_none());
    let early_hole = on_disk().filter(|t| t.zxid != z(1, 3));
    assert!(log_range(early_hole, after, through, limits).is_some());
    assert_eq!(
        to_learner_2(&p.log_read(2, 7, None, 332))
            .first()
            .map(String::as_str),
        Some("SNAP 0x100000013")
    );
    // Limits: past `count_free` txns and `bytes_max` bytes, none; either alone is fine.
    let tight = LogLimits {
        count_free: 3,
        bytes_max: 10,
    };
    assert!(log_range(on_disk(), after, through, tight).is_none());
    for loose in [
        LogLimits {
            count_free: 4,
            ..tight
        },
        LogLimits {
            bytes_max: 1 << 20,
            ..tight
        },
    ] {
        assert!(log_range(on_disk(), after, through, loose).is_some());
    }
    // The log starting after the learner's zxid: none.
    assert!(log_range((7..20).map(|c| txn(z(1, c))), after, through, limits).is_none());
}

#[test]
fn a_learner_acknowledges_newleader_only_once_its_log_is_durable_and_its_epoch_recorded() {
    let (mut p, _) = Peer::start(cfg(2), logged_through_1_1(), 0);
    let conn = dial_leader_1(&mut p, &[3], 10);
    let out = p.message(1, conn, Msg::LeaderInfo { new_epoch: 2 }, 20);
    assert!(matches!(out[0], Output::SaveAcceptedEpoch(2)));
    for (i, msg) in [
        Msg::Diff { zxid: z(1, 2) },
        Msg::Proposal(txn(z(1, 2))),
        Msg::Commit { zxid: z(1, 2) },
        Msg::NewLeader { zxid: z(2, 0) },
    ]
    .into_iter()
    .enumerate()
    {
        let out = p.message(1, conn, msg, 30 + i as i64);
        assert!(
            !out.iter().any(|o| matches!(
                o,
                Output::SaveCurrentEpoch(_)
                    | Output::Send {
                        msg: Msg::Ack { .. },
                        ..
                    }
            )),
            "nothing acknowledged before the log is durable: {out:?}"
        );
    }
    assert_eq!(p.current_epoch(), 1);
    let out = p.log_synced(z(1, 2), 40);
    let kinds: Vec<String> = out
        .iter()
        .map(|o| match o {
            Output::SaveCurrentEpoch(e) => format!("current epoch {e}"),
            Output::Send {
                msg: Msg::Ack { zxid },
                ..
            } => format!("ACK {zxid:#x}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["current epoch 2", "ACK 0x200000000"]);
    // UPTODATE: serving, and the extra ACK ZooKeeper's learners send.
    let out = p.message(1, conn, Msg::UpToDate, 50);
    assert!(p.serving());
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Send { msg: Msg::Ack { zxid }, .. } if *zxid == z(2, 0))));
    // A proposal of the new epoch is acknowledged once durable, not before.
    let out = p.message(1, conn, Msg::Proposal(txn(z(2, 1))), 60);
    assert!(!out.iter().any(|o| matches!(
        o,
        Output::Send {
            msg: Msg::Ack { .. },
            ..
        }
    )));
    let out = p.log_synced(z(2, 1), 61);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Send { msg: Msg::Ack { zxid }, .. } if *zxid == z(2, 1))));
}

/// A disk in epoch 1 whose log holds (1,1) only.
fn logged_through_1_1() -> Persisted {
    Persisted {
        accepted_epoch: 1,
        current_epoch: 1,
        last_zxid: z(1, 1),
        recent: vec![txn(z(1, 1))],
        recent_base: 0,
        snapshot_zxid: 0,
    }
}

/// Server 1 says it leads (epoch 1) and `followers` that they follow it, from `now` on: `p`,
/// electing, follows and dials it. Returns the connection, its LearnerInfo asking for
/// LeaderSynced as every Ringkeeper learner's does.
fn dial_leader_1(p: &mut Peer, followers: &[i64], now: i64) -> u64 {
    let leading = Notification {
        state: state::LEADING,
        leader: 1,
        zxid: z(1, 2),
        election_epoch: 1,
        peer_epoch: 1,
        version: NOTIFICATION_VERSION,
        config: Some(Bytes::new()),
    };
    p.vote_received(1, &leading, now);
    let mut conn = None;
    for (k, from) in (1..).zip(followers) {
        let following = Notification {
            state: state::FOLLOWING,
            ..leading.clone()
        };
        for o in p.vote_received(*from, &following, now + k) {
            if let Output::Send {
                to: 1,
                conn: c,
                msg: Msg::LearnerInfo { leader_synced, .. },
            } = o
            {
                assert!(leader_synced, "a Ringkeeper learner asks for LeaderSynced");
                conn = Some(c);
            }
        }
    }
    conn.expect("learner info sent")
}

/// Server 2, its newest snapshot at `snapshot` and its log at `last`, joins leader 1 (which
/// says LEADING); returns it with the connection it dialed, LEADERINFO answered.
fn learner_joining(
    last: i64,
    snapshot: i64,
    now: i64,
    p: Option<Peer>,
) -> (Peer, u64, Vec<Output>) {
    let mut p = p.unwrap_or_else(|| {
        let disk = Persisted {
            accepted_epoch: 1,
            current_epoch: 1,
            last_zxid: last,
            recent: vec![],
            recent_base: last,
            snapshot_zxid: snapshot,
        };
        Peer::start(cfg(2), disk, 0).0
    });
    let conn = dial_leader_1(&mut p, &[3], now);
    let out = p.message(1, conn, Msg::LeaderInfo { new_epoch: 2 }, now + 2);
    (p, conn, out)
}

fn acked_zxid(out: &[Output]) -> Option<i64> {
    out.iter().find_map(|o| match o {
        Output::Send {
            msg: Msg::AckEpoch { last_zxid, .. },
            ..
        } => Some(*last_zxid),
        _ => None,
    })
}

#[test]
fn a_trunc_below_the_newest_snapshot_makes_the_learner_ask_for_a_whole_image() {
    // Its snapshot came from a leader's SNAP and holds txns (1,5]..(1,9] the next leader lacks.
    let (mut p, conn, out) = learner_joining(z(1, 9), z(1, 9), 10, None);
    assert_eq!(acked_zxid(&out), Some(z(1, 9)));
    let out = p.message(1, conn, Msg::Trunc { zxid: z(1, 5) }, 20);
    assert!(
        !out.iter().any(|o| matches!(o, Output::Truncate(_))),
        "no truncation below the snapshot: {out:?}"
    );
    assert_eq!(p.role(), Role::Looking);
    assert_eq!(p.last_logged(), z(1, 9), "it keeps what it has meanwhile");
    // Back with the leader: it reports zxid 0, so only a SNAP or a diff from 0 answers.
    let (mut p, conn, out) = learner_joining(0, 0, 30, Some(p));
    assert_eq!(acked_zxid(&out), Some(0));
    let out = p.message(1, conn, Msg::Diff { zxid: z(1, 5) }, 40);
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Install { zxid: 0, image } if image.tree.node_count() == crate::tree::DataTree::new().node_count()
        )),
        "a diff from 0 starts from the empty tree: {out:?}"
    );
    assert_eq!(p.last_logged(), 0);
    p.message(1, conn, Msg::Proposal(txn(z(1, 1))), 41);
    assert_eq!(
        p.last_logged(),
        z(1, 1),
        "the diff's txns are logged after it"
    );
    p.check_invariants();
}

#[test]
fn a_leader_past_discovery_steps_down_for_a_learner_whose_accepted_epoch_it_cannot_exceed() {
    // Epoch 2 is fixed (learner 2 connected); learner 3 already accepted epoch 3 in a
    // discovery that never finished, so it would refuse LEADERINFO 2 for as long as this
    // leader lasts. Epochs 1 and 2 are fine (2 is this very epoch, accepted already).
    let mut p = leader(&[z(1, 1)], 1);
    let info = |accepted_epoch| Msg::LearnerInfo {
        accepted_epoch,
        observer: false,
        leader_synced: false,
    };
    for (conn, accepted) in [(8, 1), (9, 2)] {
        let out = p.message(3, conn, info(accepted), 311);
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Send {
                to: 3,
                msg: Msg::LeaderInfo { new_epoch: 2 },
                ..
            }
        )));
        assert!(matches!(p.role(), Role::Leading { .. }));
    }
    let out = p.message(3, 10, info(3), 312);
    assert_eq!(p.role(), Role::Looking, "{out:?}");
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Close { to: 3, conn: 10 })));
    p.check_invariants();
}

#[test]
fn a_trunc_above_the_newest_snapshot_truncates() {
    let (mut p, conn, _) = learner_joining(z(1, 9), z(1, 3), 10, None);
    let out = p.message(1, conn, Msg::Trunc { zxid: z(1, 5) }, 20);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Truncate(t) if *t == z(1, 5))));
}

#[test]
fn a_learner_in_step_is_reported_with_how_it_was_synced() {
    let mut p = leader(&[z(1, 1), z(1, 2), z(1, 3)], 1);
    let ack_epoch = Msg::AckEpoch {
        current_epoch: 1,
        last_zxid: z(1, 1),
    };
    p.message(2, 7, ack_epoch, 320);
    let mut out = p.message(2, 7, Msg::Ack { zxid: z(2, 0) }, 345);
    out.extend(p.log_synced(z(1, 3), 346));
    let synced: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::LearnerSynced {
                learner,
                how,
                txns,
                ms,
            } => Some((*learner, *how, *txns, *ms)),
            _ => None,
        })
        .collect();
    assert_eq!(synced, [(2, SyncKind::Diff, 2, 35)], "{out:?}");
}

/// What learner 2, at `peer_last`, gets from a leader with 100 txns whose tree is about
/// `tree_bytes` and which always diffs up to 10 txns.
fn long_sync(peer_last: i64, tree_bytes: u64) -> Vec<&'static str> {
    long_sync_with(peer_last, tree_bytes, 0.33)
}

/// [`long_sync`] with ZooKeeper's `snapshotSizeFactor` at `factor`.
fn long_sync_with(peer_last: i64, tree_bytes: u64, factor: f64) -> Vec<&'static str> {
    let mut c = cfg(1);
    c.diff_window = 1000;
    c.diff_always = 10;
    c.snapshot_size_factor = factor;
    let log: Vec<i64> = (1..=100).map(|n| z(1, n)).collect();
    let mut p = leader_with(c, &log, 1);
    p.set_tree_bytes(tree_bytes);
    let ack = Msg::AckEpoch {
        current_epoch: 1,
        last_zxid: peer_last,
    };
    p.message(2, 7, ack, 320)
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                to: 2,
                msg: Msg::Diff { .. },
                ..
            } => Some("DIFF"),
            Output::SendSnap { to: 2, .. } => Some("SNAP"),
            _ => None,
        })
        .collect()
}

#[test]
fn a_learner_with_nothing_gets_snap_not_a_diff_from_zero() {
    // The history reaches back to 0, so a DIFF could be built; ZooKeeper sends SNAP, and so
    // must this leader: a learner that gave up its log (`force_snap`) reports 0 too, and a DIFF
    // from 0 would have it discard its disk before the data arrived.
    let out = sync_of(&[z(1, 1), z(1, 2)], 0);
    assert_eq!(
        out.first().map(String::as_str),
        Some("SNAP 0x100000002"),
        "{out:?}"
    );
    // With nothing committed there is nothing to send.
    let out = sync_of(&[], 0);
    assert_eq!(out.first().map(String::as_str), Some("DIFF 0x0"), "{out:?}");
}

#[test]
fn a_long_diff_is_sent_only_while_its_txns_are_under_a_third_of_the_tree() {
    // 50 txns of 36 bytes: 1,800 bytes, and 0.33 (ZooKeeper's factor) of 5,455 is 1,800.15.
    let cost = txn_cost(&txn(z(1, 1)));
    assert_eq!(cost, 36);
    assert_eq!(long_sync(z(1, 50), 5455), ["DIFF"]);
    assert_eq!(long_sync(z(1, 50), 5454), ["SNAP"]);
    // Within `diff_always`, a DIFF whatever the tree.
    assert_eq!(long_sync(z(1, 95), 0), ["DIFF"]);
    // `snapshotSizeFactor` sets the share: half the tree, or none past `diff_always`.
    assert_eq!(long_sync_with(z(1, 50), 2 * 1800, 0.5), ["DIFF"]);
    assert_eq!(long_sync_with(z(1, 50), 2 * 1800 - 3, 0.5), ["SNAP"]);
    assert_eq!(long_sync_with(z(1, 50), 1 << 30, -1.0), ["SNAP"]);
    assert_eq!(long_sync_with(z(1, 95), 1 << 30, -1.0), ["DIFF"]);
}

/// A leader whose txns in memory start with an epoch's first: the txn before them is the
/// older epoch's last (`recent_base`), so a learner at it gets a DIFF, and one further behind
/// has the log read up to it (not up to a zxid no log holds, which would make it SNAP).
#[test]
fn a_window_starting_an_epoch_diffs_a_learner_at_the_older_epochs_last_txn() {
    let window: Vec<i64> = (1..10).map(|c| z(2, c)).collect();
    let mut p = leader_from(cfg(1), &window, z(1, 7), 2);
    let ack = |last_zxid| Msg::AckEpoch {
        current_epoch: 1,
        last_zxid,
    };
    let out = p.message(2, 7, ack(z(1, 7)), 320);
    assert_eq!(
        to_learner_2(&out).first().map(String::as_str),
        Some("DIFF 0x200000009"),
        "{out:?}"
    );
    let mut p = leader_from(cfg(1), &window, z(1, 7), 2);
    let out = p.message(2, 7, ack(z(1, 5)), 320);
    let read = out.iter().find_map(|o| match o {
        Output::ReadLog { after, through, .. } => Some((*after, *through)),
        _ => None,
    });
    assert_eq!(read, Some((z(1, 5), z(1, 7))));
}

/// A negative `snapshotSizeFactor` turns DIFFs from the log off, as in ZooKeeper: a learner
/// behind the window gets SNAP without the log being read.
#[test]
fn a_negative_snapshot_size_factor_means_no_diff_from_the_log() {
    let mut c = cfg(1);
    c.snapshot_size_factor = -1.0;
    let window: Vec<i64> = (10..20).map(|c| z(1, c)).collect();
    let mut p = leader_with(c, &window, 1);
    let ack = Msg::AckEpoch {
        current_epoch: 1,
        last_zxid: z(1, 5),
    };
    let out = p.message(2, 7, ack, 320);
    assert!(
        !out.iter().any(|o| matches!(o, Output::ReadLog { .. })),
        "{out:?}"
    );
    assert_eq!(
        to_learner_2(&out),
        ["SNAP 0x100000013", "NEWLEADER 0x200000000"]
    );
}

#[test]
fn a_leader_commits_only_on_a_quorum_of_durable_copies_and_in_order() {
    let mut p = leader(&[z(1, 1)], 1);
    p.message(
        2,
        7,
        Msg::AckEpoch {
            current_epoch: 1,
            last_zxid: z(1, 1),
        },
        320,
    );
    let out = p.message(2, 7, Msg::Ack { zxid: z(2, 0) }, 330);
    assert!(p.serving(), "{:?}", p.role());
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Send {
            to: 2,
            msg: Msg::UpToDate,
            ..
        }
    )));
    assert_eq!(p.next_zxid(), Some(z(2, 1)));
    let out = p.propose(txn(z(2, 1)), 340);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Send {
            to: 2,
            msg: Msg::Proposal(_),
            ..
        }
    )));
    p.propose(txn(z(2, 2)), 341);
    // The follower's ACK alone is not a quorum of durable copies: the leader's log is not synced.
    assert!(applied_zxids(&p.message(2, 7, Msg::Ack { zxid: z(2, 2) }, 342)).is_empty());
    // The leader's own write completing makes two of three for both, committed in order.
    let out = p.log_synced(z(2, 2), 343);
    assert_eq!(applied_zxids(&out), [z(2, 1), z(2, 2)]);
    let commits: Vec<i64> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                to: 2,
                msg: Msg::Commit { zxid },
                ..
            } => Some(*zxid),
            _ => None,
        })
        .collect();
    assert_eq!(commits, [z(2, 1), z(2, 2)]);
}

/// A server that is still electing when a learner dials it: `vote` from server 2 decides it
/// (leading when it names server 1); the learner dialed first, on connection 7.
fn learner_dials_during_election(vote_for: i64, vote_zxid: i64) -> (Vec<Output>, Vec<Output>) {
    let disk = Persisted {
        accepted_epoch: 1,
        current_epoch: 1,
        last_zxid: z(1, 5),
        recent: vec![],
        recent_base: z(1, 5),
        snapshot_zxid: 0,
    };
    let (mut p, _) = Peer::start(cfg(1), disk, 0);
    let early = p.message(
        2,
        7,
        Msg::LearnerInfo {
            accepted_epoch: 1,
            observer: false,
            leader_synced: false,
        },
        5,
    );
    let vote = Notification {
        state: state::LOOKING,
        leader: vote_for,
        zxid: vote_zxid,
        election_epoch: 1,
        peer_epoch: 1,
        version: NOTIFICATION_VERSION,
        config: Some(Bytes::new()),
    };
    let mut decided = p.vote_received(2, &vote, 10);
    decided.extend(p.tick(300));
    p.check_invariants();
    (early, decided)
}

#[test]
fn a_learner_that_dials_before_the_leader_has_decided_is_held_and_taken_on_leading() {
    let (early, decided) = learner_dials_during_election(1, z(1, 5));
    assert!(
        !early.iter().any(|o| matches!(o, Output::Close { .. })),
        "held, not refused: {early:?}"
    );
    assert!(
        decided.iter().any(|o| matches!(
            o,
            Output::Send {
                to: 2,
                conn: 7,
                msg: Msg::LeaderInfo { new_epoch: 2 }
            }
        )),
        "the held learner gets LEADERINFO on its connection: {decided:?}"
    );
}

#[test]
fn a_learner_held_during_election_is_closed_when_this_server_follows() {
    // Server 2 has more history: server 1 follows it and lets the held connection go.
    let (_, decided) = learner_dials_during_election(2, z(1, 9));
    assert!(
        decided
            .iter()
            .any(|o| matches!(o, Output::Close { to: 2, conn: 7 })),
        "{decided:?}"
    );
    assert!(!decided
        .iter()
        .any(|o| matches!(o, Output::Send { conn: 7, .. })));
}

fn seeds(default: u64) -> std::ops::Range<u64> {
    if let Ok(s) = std::env::var("ZAB_SEED") {
        let s: u64 = s.parse().expect("ZAB_SEED");
        return s..s + 1;
    }
    // `ZAB_SEEDS=n` runs 0..n; `ZAB_SEEDS=a..b` runs a..b, to go on from an earlier long run.
    match std::env::var("ZAB_SEEDS") {
        Ok(v) => match v.split_once("..") {
            Some((a, b)) => a.parse().expect("ZAB_SEEDS=a..b")..b.parse().expect("ZAB_SEEDS=a..b"),
            None => 0..v.parse().expect("ZAB_SEEDS"),
        },
        Err(_) => 0..default,
    }
}

#[test]
fn zab_sim_three_voters() {
    let mut total = sim::Stats::default();
    for seed in seeds(100) {
        let st = sim::Sim::new(seed, 3, 0).simulate(20_000);
        total.add(&st);
    }
    eprintln!("{total:?}");
    // Every client created its session through the leader in every run.
    assert!(total.sessions >= 3 * seeds(100).count() as u64, "{total:?}");
    // Some learners were synced from txns read back from the leader's log.
    if seeds(100).count() >= 50 {
        assert!(total.log_reads > 0, "{total:?}");
        assert!(total.log_streams > 0, "{total:?}");
    }
}

#[test]
fn zab_sim_five_voters_and_observers() {
    let mut total = sim::Stats::default();
    for seed in seeds(40) {
        let observers = (seed % 3) as usize;
        let st = sim::Sim::new(seed, 5, observers).simulate(20_000);
        total.add(&st);
    }
    eprintln!("{total:?}");
    assert!(total.sessions >= 3 * seeds(40).count() as u64, "{total:?}");
}

#[test]
fn history_after_agrees_with_a_search_of_the_whole_window() {
    // Zxids with gaps across epochs, every length up to 70, every probe in and around them.
    for len in 0..70usize {
        let history: VecDeque<Txn> = (0..len)
            .map(|i| txn(z(1 + i as i64 / 20, 1 + 3 * i as i64)))
            .collect();
        let mut probes = vec![-1, 0, i64::MAX];
        for t in &history {
            probes.extend([t.zxid - 1, t.zxid, t.zxid + 1]);
        }
        for p in probes {
            let want = history.partition_point(|t| t.zxid <= p);
            assert_eq!(history_after(&history, p), want, "len {len}, zxid {p:#x}");
        }
    }
}

/// An established leader syncing a learner while a proposal is outstanding sends NEWLEADER only
/// after that proposal's COMMIT (ZooKeeper 3.8.0's learner fails on a COMMIT between NEWLEADER
/// and UPTODATE), or once half a tick has passed without a commit.
#[test]
fn newleader_waits_for_the_commits_of_the_proposals_sent_before_it() {
    let established = || {
        let mut p = established_leader();
        p.propose(txn(z(2, 1)), 340);
        let info = Msg::LearnerInfo {
            accepted_epoch: 2,
            observer: false,
            leader_synced: false,
        };
        p.message(3, 8, info, 341);
        let ack_epoch = Msg::AckEpoch {
            current_epoch: 2,
            last_zxid: z(1, 1),
        };
        let out = p.message(3, 8, ack_epoch, 342);
        (p, out)
    };
    let to_3 = |out: &[Output]| -> Vec<String> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send { to: 3, msg, .. } => match msg {
                    Msg::Diff { zxid } => Some(format!("DIFF {zxid:#x}")),
                    Msg::Proposal(t) => Some(format!("PROPOSAL {:#x}", t.zxid)),
                    Msg::Commit { zxid } => Some(format!("COMMIT {zxid:#x}")),
                    Msg::NewLeader { zxid } => Some(format!("NEWLEADER {zxid:#x}")),
                    Msg::Ping { .. } => None,
                    other => Some(format!("{other:?}")),
                },
                _ => None,
            })
            .collect()
    };
    let (mut p, out) = established();
    assert_eq!(to_3(&out), ["DIFF 0x100000001", "PROPOSAL 0x200000001"]);
    p.message(2, 7, Msg::Ack { zxid: z(2, 1) }, 343);
    let out = p.log_synced(z(2, 1), 344);
    assert_eq!(to_3(&out), ["COMMIT 0x200000001", "NEWLEADER 0x200000000"]);
    // Nothing commits (the quorum would need learner 3): NEWLEADER goes at half a tick.
    let (mut p, _) = established();
    let half_tick = cfg(1).tick_ms / 2;
    assert!(to_3(&p.tick(342 + half_tick - 1)).is_empty());
    assert_eq!(to_3(&p.tick(342 + half_tick)), ["NEWLEADER 0x200000000"]);
}

/// A leader pings only learners whose sync has begun: ZooKeeper's learner exits on a PING
/// where it waits for LEADERINFO or for DIFF, TRUNC or SNAP.
#[test]
fn a_leader_pings_no_learner_before_its_sync() {
    let mut p = leader(&[z(1, 1)], 1);
    let pings = |out: &[Output]| {
        out.iter()
            .filter(|o| {
                matches!(
                    o,
                    Output::Send {
                        to: 2,
                        msg: Msg::Ping { .. },
                        ..
                    }
                )
            })
            .count()
    };
    // LEADERINFO sent, no ACKEPOCH yet: ticks send it nothing.
    for t in (350..1200).step_by(50) {
        assert_eq!(pings(&p.tick(t)), 0, "at {t}");
    }
    let ack = Msg::AckEpoch {
        current_epoch: 1,
        last_zxid: z(1, 1),
    };
    p.message(2, 7, ack, 1200);
    let pinged: usize = (1250..1500).step_by(50).map(|t| pings(&p.tick(t))).sum();
    assert!(pinged > 0, "{:?}", p.role());
}

/// Server 2 (configured by `cfg`) following leader 1 in epoch 2 and serving, its log at
/// (1,1) durable; returns it with its connection to the leader.
fn serving_follower(cfg: PeerConfig) -> (Peer, u64) {
    let (mut p, _) = Peer::start(cfg, logged_through_1_1(), 0);
    let conn = dial_leader_1(&mut p, &[3, 4], 10);
    p.message(1, conn, Msg::LeaderInfo { new_epoch: 2 }, 20);
    p.message(1, conn, Msg::Diff { zxid: z(1, 1) }, 21);
    p.message(1, conn, Msg::NewLeader { zxid: z(2, 0) }, 22);
    p.log_synced(z(1, 1), 23);
    p.message(1, conn, Msg::UpToDate, 24);
    assert!(p.serving(), "{:?}", p.role());
    (p, conn)
}

fn applied_zxids(out: &[Output]) -> Vec<i64> {
    out.iter()
        .filter_map(|o| match o {
            Output::Apply(t) => Some(t.iter().map(|t| t.zxid)),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn a_follower_commits_what_it_and_the_leader_have_durable_without_waiting_for_the_commit() {
    let (mut p, conn) = serving_follower(cfg(2));
    for c in 1..=3 {
        p.message(1, conn, Msg::Proposal(txn(z(2, c))), 30 + c);
    }
    // The leader's log is durable through (2,2); this one's through nothing new yet.
    let out = p.message(1, conn, Msg::LeaderSynced { zxid: z(2, 2) }, 40);
    assert!(applied_zxids(&out).is_empty(), "{out:?}");
    let out = p.log_synced(z(2, 1), 41);
    assert_eq!(applied_zxids(&out), [z(2, 1)]);
    // Its own log durable through (2,3) commits only what the leader has too.
    let out = p.log_synced(z(2, 3), 42);
    assert_eq!(applied_zxids(&out), [z(2, 2)]);
    assert_eq!(p.applied(), z(2, 2));
    // The leader's COMMITs of what it already applied change nothing; the next one goes on.
    let out = p.message(1, conn, Msg::Commit { zxid: z(2, 2) }, 43);
    assert!(applied_zxids(&out).is_empty(), "{out:?}");
    let out = p.message(1, conn, Msg::Commit { zxid: z(2, 3) }, 44);
    assert_eq!(applied_zxids(&out), [z(2, 3)]);
    assert!(p.serving());
    p.check_invariants();
}

#[test]
fn a_follower_that_makes_no_quorum_with_the_leader_waits_for_the_commit() {
    let mut five = cfg(2);
    five.voters = vec![1, 2, 3, 4, 5];
    let (mut p, conn) = serving_follower(five);
    p.message(1, conn, Msg::Proposal(txn(z(2, 1))), 30);
    p.message(1, conn, Msg::LeaderSynced { zxid: z(2, 1) }, 31);
    let out = p.log_synced(z(2, 1), 32);
    assert!(applied_zxids(&out).is_empty(), "two of five: {out:?}");
    let out = p.message(1, conn, Msg::Commit { zxid: z(2, 1) }, 33);
    assert_eq!(applied_zxids(&out), [z(2, 1)]);
}

#[test]
fn a_leader_tells_only_followers_that_take_it_how_far_its_log_is_durable() {
    let mut three = cfg(1);
    three.observers = vec![4];
    let mut p = leader_with(three, &[z(1, 1)], 1);
    // Learner 2 dials again asking for LeaderSynced; 3 is a Java server; 4 an observer that
    // asks for it.
    for (id, conn, observer, leader_synced) in [
        (2, 8, false, true),
        (3, 9, false, false),
        (4, 10, true, true),
    ] {
        let info = Msg::LearnerInfo {
            accepted_epoch: 1,
            observer,
            leader_synced,
        };
        p.message(id, conn, info, 320);
        let ack = Msg::AckEpoch {
            current_epoch: 1,
            last_zxid: z(1, 1),
        };
        p.message(id, conn, ack, 321);
        p.message(id, conn, Msg::Ack { zxid: z(2, 0) }, 322);
    }
    assert!(p.serving(), "{:?}", p.role());
    let told = |out: &[Output]| -> Vec<(i64, i64)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send {
                    to,
                    msg: Msg::LeaderSynced { zxid },
                    ..
                } => Some((*to, *zxid)),
                _ => None,
            })
            .collect()
    };
    p.propose(txn(z(2, 1)), 330);
    p.propose(txn(z(2, 2)), 331);
    let out = p.log_synced(z(2, 2), 332);
    assert_eq!(told(&out), [(2, z(2, 2))]);
    // Said once; an ACK then commits both, and what is committed is not told again.
    assert!(told(&p.log_synced(z(2, 2), 333)).is_empty());
    let out = p.message(3, 9, Msg::Ack { zxid: z(2, 2) }, 334);
    assert_eq!(applied_zxids(&out), [z(2, 1), z(2, 2)]);
    p.propose(txn(z(2, 3)), 335);
    p.message(2, 8, Msg::Ack { zxid: z(2, 3) }, 336);
    let out = p.log_synced(z(2, 3), 337);
    assert_eq!(applied_zxids(&out), [z(2, 3)]);
    assert!(told(&out).is_empty(), "committed already: {out:?}");
}

/// Learner 2, in step with leader 1 in epoch 2, has logged (2,1) of the leader's (2,1) and (2,2)
/// (neither committed) and dials again; what its sync sends it, when it does or does not take
/// LeaderSynced.
fn resync_ahead_of_the_commit_point(leader_synced: bool) -> Vec<String> {
    let mut p = established_leader();
    p.propose(txn(z(2, 1)), 330);
    p.propose(txn(z(2, 2)), 331);
    p.log_synced(z(2, 2), 332);
    assert_eq!(p.applied(), z(1, 1), "nothing committed without an ACK");
    let info = Msg::LearnerInfo {
        accepted_epoch: 2,
        observer: false,
        leader_synced,
    };
    p.message(2, 8, info, 340);
    let ack = Msg::AckEpoch {
        current_epoch: -1,
        last_zxid: z(2, 1),
    };
    to_learner_2(&p.message(2, 8, ack, 341))
}

#[test]
fn a_learner_ahead_of_the_commit_point_in_the_leaders_epoch_keeps_what_it_may_have_committed() {
    // ZooKeeper's rule, for a learner that does not take LeaderSynced (a Java server): back to
    // the commit point, then the outstanding proposals again.
    assert_eq!(
        resync_ahead_of_the_commit_point(false),
        [
            "TRUNC 0x100000001",
            "PROPOSAL 0x200000001",
            "PROPOSAL 0x200000002"
        ]
    );
    // One that does may have committed (2,1) on LeaderSynced (and snapshotted it): its log is a
    // prefix of the leader's, so it is diffed from where it is.
    assert_eq!(
        resync_ahead_of_the_commit_point(true),
        ["DIFF 0x200000001", "PROPOSAL 0x200000002"]
    );
}
