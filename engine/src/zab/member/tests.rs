//! The member's own rules, by exact outputs over scripted exchanges: sessions created through
//! the leader and answered where the client is, writes forwarded and answered by the server
//! the client is connected to, session touches carried in pings, expiry only on the leader and
//! a fresh timeout for everyone under a new leader, and no service without a leader. Whole
//! ensembles of members run in the simulator (`zab/peer/tests/sim.rs`).

use super::*;
use crate::pipeline::test_config;
use crate::proto::{opcode, Acl, CreateRequest};
use crate::quorum::{state, Notification, NOTIFICATION_VERSION};
use crate::zab::make_zxid;
use crate::zab::peer::tests::cfg as peer_cfg;
use bytes::Bytes;

/// A member driven as the runtime drives it: each input here is a round of its own, and a
/// round ends with [`Member::flush`] (so the entries it made are in its outputs).
struct Rounds(Member);

impl std::ops::Deref for Rounds {
    type Target = Member;
    fn deref(&self) -> &Member {
        &self.0
    }
}

impl std::ops::DerefMut for Rounds {
    fn deref_mut(&mut self) -> &mut Member {
        &mut self.0
    }
}

impl Rounds {
    fn end(&mut self, mut out: Vec<Output>) -> Vec<Output> {
        out.extend(self.0.flush());
        out
    }
    fn input(&mut self, input: Input, now: i64) -> Vec<Output> {
        let out = self.0.input(input, now);
        self.end(out)
    }
    fn message(&mut self, from: i64, conn: u64, msg: Msg, now: i64) -> Vec<Output> {
        let out = self.0.message(from, conn, msg, now);
        self.end(out)
    }
    fn log_synced(&mut self, zxid: i64, now: i64) -> Vec<Output> {
        let out = self.0.log_synced(zxid, now);
        self.end(out)
    }
    fn tick(&mut self, now: i64) -> Vec<Output> {
        let out = self.0.tick(now);
        self.end(out)
    }
    fn closed(&mut self, from: i64, conn: u64, now: i64) -> Vec<Output> {
        let out = self.0.closed(from, conn, now);
        self.end(out)
    }
    fn vote_received(&mut self, from: i64, note: &Notification, now: i64) -> Vec<Output> {
        let out = self.0.vote_received(from, note, now);
        self.end(out)
    }
}

fn start(my_id: i64, sessions: &[SnapSession], now: i64) -> Rounds {
    let mut cfg = test_config();
    cfg.session.server_id = my_id;
    cfg.session.max_timeout_ms = 60_000;
    let (m, _) = Member::start(
        cfg,
        peer_cfg(my_id),
        Persisted::default(),
        DataTree::new(),
        sessions,
        crate::session::Passwords::ZooKeeper,
        (SNAP_COUNT, 11),
        now,
    );
    Rounds(m)
}

/// Snapshots in these tests come after about this many applied txns (at least half of it).
const SNAP_COUNT: u64 = 6;

fn vote_for(leader: i64) -> Notification {
    Notification {
        state: state::LOOKING,
        leader,
        zxid: 0,
        election_epoch: 1,
        peer_epoch: 0,
        version: NOTIFICATION_VERSION,
        config: Some(Bytes::new()),
    }
}

/// Server 1, elected with server 2's vote, established with server 2 as its follower on
/// connection 7, at time 330.
fn leader(sessions: &[SnapSession]) -> Rounds {
    let mut m = start(1, sessions, 0);
    m.vote_received(2, &vote_for(1), 10);
    m.tick(300);
    let info = Msg::LearnerInfo {
        accepted_epoch: 0,
        observer: false,
        leader_synced: false,
    };
    m.message(2, 7, info, 310);
    let ack = Msg::AckEpoch {
        current_epoch: 0,
        last_zxid: 0,
    };
    m.message(2, 7, ack, 320);
    m.message(
        2,
        7,
        Msg::Ack {
            zxid: make_zxid(1, 0),
        },
        330,
    );
    assert_eq!(
        m.peer().role(),
        Role::Leading {
            epoch: Some(1),
            established: true
        }
    );
    m
}

/// Server 2 following server 3 in epoch 1, serving; returns the connection to the leader.
fn follower() -> (Rounds, u64) {
    let mut m = start(2, &[], 0);
    m.vote_received(3, &vote_for(3), 10);
    let out = m.tick(300);
    let conn = out
        .iter()
        .find_map(|o| match o {
            Output::Io(peer::Output::Send {
                to: 3,
                conn,
                msg: Msg::LearnerInfo { .. },
            }) => Some(*conn),
            _ => None,
        })
        .expect("FOLLOWERINFO to the leader");
    m.message(3, conn, Msg::LeaderInfo { new_epoch: 1 }, 310);
    m.message(3, conn, Msg::Diff { zxid: 0 }, 320);
    let out = m.message(
        3,
        conn,
        Msg::NewLeader {
            zxid: make_zxid(1, 0),
        },
        330,
    );
    if let Some(z) = appended(&out) {
        m.log_synced(z, 331);
    }
    m.message(3, conn, Msg::UpToDate, 340);
    assert!(m.peer().serving());
    (m, conn)
}

fn appended(out: &[Output]) -> Option<i64> {
    out.iter().find_map(|o| match o {
        Output::Io(peer::Output::Append(t)) => t.last().map(|t| t.zxid),
        _ => None,
    })
}

fn connect_req(session_id: i64, passwd: [u8; 16]) -> ConnectRequest {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 4000,
        session_id,
        passwd: Bytes::copy_from_slice(&passwd),
        read_only: None,
    }
}

fn create(path: &str) -> Request {
    Request::Create(CreateRequest {
        opcode: opcode::CREATE,
        path: path.into(),
        data: Some(Bytes::new()),
        acl: Acl::open_unsafe(),
        flags: 0,
        ttl: -1,
    })
}

fn sent_to(out: &[Output], to_id: i64) -> Vec<Msg> {
    out.iter()
        .filter_map(|o| match o {
            Output::Io(peer::Output::Send { to, msg, .. }) if *to == to_id => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

fn published(out: &[Output]) -> Vec<&Entry> {
    out.iter()
        .flat_map(|o| match o {
            Output::Publish { entries, .. } => entries.iter().collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// A txn as the leader would propose it.
fn txn(counter: i64, session_id: i64, cxid: i32, op: TxnOp) -> Txn {
    Txn {
        zxid: make_zxid(1, counter),
        time_ms: 400,
        session_id,
        cxid,
        op,
    }
}

/// The follower gets `t` proposed and committed; returns the commit's outputs.
fn commit_at(m: &mut Rounds, conn: u64, t: Txn, now: i64) -> Vec<Output> {
    let z = t.zxid;
    let out = m.message(3, conn, Msg::Proposal(t), now);
    assert_eq!(appended(&out), Some(z));
    let out = m.log_synced(z, now);
    assert!(matches!(&sent_to(&out, 3)[..], [Msg::Ack { zxid }] if *zxid == z));
    m.message(3, conn, Msg::Commit { zxid: z }, now)
}

#[test]
fn a_learner_creates_a_session_through_the_leader_and_answers_its_client_once_applied() {
    let (mut m, conn) = follower();
    let out = m.input(
        Input::Connect {
            conn: 5,
            req: connect_req(0, [0; 16]),
        },
        400,
    );
    let sent = sent_to(&out, 3);
    let [Msg::Request(fwd)] = &sent[..] else {
        panic!("{out:?}")
    };
    let sid = fwd.session_id;
    assert_eq!(sid >> 56, 2, "the creating server's id is in the top byte");
    assert_eq!(fwd.req, Request::CreateSession { timeout_ms: 4000 });
    assert!(
        published(&out).is_empty(),
        "no answer before the txn applies"
    );

    let t = txn(1, sid, 0, TxnOp::CreateSession { timeout_ms: 4000 });
    let out = commit_at(&mut m, conn, t, 410);
    let e = published(&out);
    assert!(matches!(e[0], Entry::Commit(c) if c.origin.is_none()));
    let Entry::ConnectReply {
        conn: 5,
        outcome:
            ConnectOutcome::Accepted {
                session_id,
                timeout_ms: 4000,
                passwd,
            },
    } = e[1]
    else {
        panic!("{e:?}")
    };
    assert_eq!(*session_id, sid);
    assert!(matches!(e[2], Entry::Flush(t) if t.last_zxid() == make_zxid(1, 1)));
    assert!(m.sessions().get(sid).is_some());

    // Resuming it here asks the leader (REVALIDATE) and answers once the leader says it is
    // live; a wrong password is refused at once.
    let passwd = *passwd;
    let out = m.input(
        Input::Connect {
            conn: 6,
            req: connect_req(sid, passwd),
        },
        420,
    );
    assert!(published(&out).is_empty(), "{out:?}");
    assert!(matches!(
        &sent_to(&out, 3)[..],
        [Msg::Revalidate { session_id, timeout_ms: 4000 }] if *session_id == sid
    ));
    let answer = Msg::Revalidated {
        session_id: sid,
        valid: true,
    };
    let out = m.message(3, conn, answer, 421);
    assert!(matches!(
        published(&out)[0],
        Entry::ConnectReply {
            conn: 6,
            outcome: ConnectOutcome::Accepted { .. }
        }
    ));
    // One the leader does not know (expired meanwhile, say) is refused.
    m.input(
        Input::Connect {
            conn: 7,
            req: connect_req(sid, passwd),
        },
        422,
    );
    let answer = Msg::Revalidated {
        session_id: sid,
        valid: false,
    };
    let out = m.message(3, conn, answer, 423);
    assert!(matches!(
        published(&out)[0],
        Entry::ConnectReply {
            conn: 7,
            outcome: ConnectOutcome::Invalid
        }
    ));
    let out = m.input(
        Input::Connect {
            conn: 8,
            req: connect_req(sid, [1; 16]),
        },
        420,
    );
    assert!(matches!(
        published(&out)[0],
        Entry::ConnectReply {
            conn: 8,
            outcome: ConnectOutcome::Invalid
        }
    ));
}

#[test]
fn a_learner_forwards_writes_answers_them_when_applied_and_reports_touches_in_pings() {
    let (mut m, conn) = follower();
    let sid = (2 << 56) | 9;
    let t = txn(1, sid, 0, TxnOp::CreateSession { timeout_ms: 4000 });
    commit_at(&mut m, conn, t, 400);

    let origin = Origin {
        conn: 5,
        xid: 1,
        opcode: opcode::CREATE,
    };
    let write = Input::Write {
        origin,
        session_id: sid,
        req: create("/a"),
        auth: Vec::new(),
        reads_waiting: true,
    };
    let out = m.input(write, 410);
    let sent = sent_to(&out, 3);
    assert!(
        matches!(&sent[..], [Msg::Request(f)] if f.session_id == sid && f.cxid == 1 && f.req == create("/a")),
        "{sent:?}"
    );
    // Another server's client's txn applies here with no answer; ours is answered, with the
    // tree before it for the reads queued behind it.
    let other = txn(2, (3 << 56) | 1, 1, TxnOp::Error(ErrorCode::NoNode));
    let out = commit_at(&mut m, conn, other, 420);
    assert!(matches!(published(&out)[0], Entry::Commit(c) if c.origin.is_none()));
    let mine = txn(
        3,
        sid,
        1,
        TxnOp::Create {
            path: "/a".into(),
            data: Some(Bytes::new()),
            acl: std::sync::Arc::new(Acl::open_unsafe()),
            ephemeral_owner: 0,
            parent_cversion: 1,
            opcode: opcode::CREATE,
        },
    );
    let out = commit_at(&mut m, conn, mine, 430);
    let Entry::Commit(c) = published(&out)[0] else {
        panic!()
    };
    assert_eq!(c.origin, Some(origin));
    let before = c.version_before.as_ref().expect("version before");
    assert!(before.get("/a").is_none() && m.tree().get("/a").is_some());

    // Reads and pings on this server touch the session; the leader hears of it with the
    // answer to its next ping, once.
    m.input(
        Input::Touch {
            sessions: vec![sid],
        },
        440,
    );
    let out = m.message(3, conn, Msg::Ping { touches: vec![] }, 450);
    assert!(
        matches!(&sent_to(&out, 3)[..], [Msg::Ping { touches }] if touches == &[(sid, 4000)]),
        "{out:?}"
    );
    let out = m.message(3, conn, Msg::Ping { touches: vec![] }, 460);
    assert!(matches!(&sent_to(&out, 3)[..], [Msg::Ping { touches }] if touches.is_empty()));
}

fn proposals_to_2(out: &[Output]) -> Vec<Txn> {
    sent_to(out, 2)
        .into_iter()
        .filter_map(|m| match m {
            Msg::Proposal(t) => Some(t),
            _ => None,
        })
        .collect()
}

#[test]
fn only_the_leader_expires_sessions_touches_from_learners_keep_them_and_a_new_leader_starts_all_afresh(
) {
    let sid = (2 << 56) | 1;
    // Loaded at time 0 with a 2 s timeout: left alone it would expire at 2 s. The leader
    // established at 330 gives it a fresh full timeout instead.
    let mut m = leader(&[SnapSession {
        id: sid,
        timeout_ms: 2000,
    }]);
    // Server 2 keeps answering pings, so the leader keeps its quorum.
    let until = |m: &mut Rounds, from: i64, to: i64| {
        let mut proposed = Vec::new();
        for t in (from..=to).step_by(100) {
            m.message(2, 7, Msg::Ping { touches: vec![] }, t);
            proposed.extend(proposals_to_2(&m.tick(t)));
        }
        proposed
    };
    assert!(until(&mut m, 400, 2200).is_empty(), "fresh timeout");
    // Server 2's client touched it: it lives another 2 s from now.
    let out = m.message(
        2,
        7,
        Msg::Ping {
            touches: vec![(sid, 2000)],
        },
        2250,
    );
    assert!(out.is_empty(), "{out:?}");
    assert!(until(&mut m, 2300, 4200).is_empty(), "touched at 2250");
    let p = until(&mut m, 4300, 4400);
    assert!(
        matches!(&p[..], [t] if t.session_id == sid && t.op == TxnOp::CloseSession),
        "{p:?}"
    );
    // Expired once only, and a write of the closing session is refused.
    assert!(until(&mut m, 4500, 4500).is_empty());
    let fwd = Forward {
        session_id: sid,
        cxid: 5,
        req: create("/x"),
        auth: Vec::new(),
    };
    let p = proposals_to_2(&m.message(2, 7, Msg::Request(fwd), 4510));
    assert!(
        matches!(&p[..], [t] if t.op == TxnOp::Error(ErrorCode::SessionExpired)),
        "{p:?}"
    );
}

#[test]
fn a_session_belongs_to_the_server_it_last_connected_to_and_writes_from_elsewhere_get_sessionmoved()
{
    // Server 2's session; the new leader has no owner for it yet.
    let sid = (2 << 56) | 1;
    let mut m = leader(&[SnapSession {
        id: sid,
        timeout_ms: 6000,
    }]);
    let write = |m: &mut Rounds, path: &str, cxid: i32, at: i64| {
        let fwd = Forward {
            session_id: sid,
            cxid,
            req: create(path),
            auth: Vec::new(),
        };
        proposals_to_2(&m.message(2, 7, Msg::Request(fwd), at))
    };
    // Its first write (through server 2) makes server 2 the owner.
    let p = write(&mut m, "/a", 1, 400);
    assert!(
        matches!(&p[..], [t] if matches!(t.op, TxnOp::Create { .. })),
        "{p:?}"
    );
    // The client reconnects to the leader itself: the leader owns it now, and server 2's
    // writes of it (from its old connection) get SESSIONMOVED.
    let passwd = m.sessions().password(sid);
    let out = m.input(
        Input::Connect {
            conn: 9,
            req: connect_req(sid, passwd),
        },
        410,
    );
    assert!(matches!(
        published(&out)[0],
        Entry::ConnectReply {
            conn: 9,
            outcome: ConnectOutcome::Accepted { .. }
        }
    ));
    let p = write(&mut m, "/b", 2, 420);
    assert!(
        matches!(&p[..], [t] if t.op == TxnOp::Error(ErrorCode::SessionMoved)),
        "{p:?}"
    );
    // Server 2 revalidates it (its client came back there): server 2 owns it again.
    let reval = Msg::Revalidate {
        session_id: sid,
        timeout_ms: 6000,
    };
    let out = m.message(2, 7, reval, 430);
    assert!(matches!(
        &sent_to(&out, 2)[..],
        [Msg::Revalidated { session_id, valid: true }] if *session_id == sid
    ));
    let p = write(&mut m, "/c", 3, 440);
    assert!(
        matches!(&p[..], [t] if matches!(t.op, TxnOp::Create { .. })),
        "{p:?}"
    );
    // A session the leader does not know is not valid.
    let reval = Msg::Revalidate {
        session_id: sid + 1,
        timeout_ms: 6000,
    };
    let out = m.message(2, 7, reval, 450);
    assert!(matches!(
        &sent_to(&out, 2)[..],
        [Msg::Revalidated { valid: false, .. }]
    ));
}

#[test]
fn a_server_without_a_leader_refuses_clients_and_a_follower_expires_nobody() {
    let mut m = start(2, &[], 0);
    let out = m.input(
        Input::Connect {
            conn: 5,
            req: connect_req(0, [0; 16]),
        },
        10,
    );
    assert!(matches!(
        published(&out)[..],
        [
            Entry::ConnectReply {
                conn: 5,
                outcome: ConnectOutcome::NotServing
            },
            Entry::Flush(_)
        ]
    ));
    // A follower's session past its deadline is the leader's business, not the follower's.
    let (mut f, conn) = follower();
    let sid = (2 << 56) | 9;
    let t = txn(1, sid, 0, TxnOp::CreateSession { timeout_ms: 200 });
    commit_at(&mut f, conn, t, 400);
    let out = f.tick(800);
    assert!(sent_to(&out, 3).is_empty(), "{out:?}");
    assert!(f.sessions().get(sid).is_some());
}

#[test]
fn a_leader_told_leader_serves_no_refuses_clients_and_its_followers_take_them() {
    let connect = |m: &mut Rounds| {
        m.input(
            Input::Connect {
                conn: 5,
                req: connect_req(0, [0; 16]),
            },
            400,
        )
    };
    let mut m = leader(&[]);
    m.set_leader_serves(false);
    let out = connect(&mut m);
    assert!(
        matches!(
            published(&out)[..],
            [
                Entry::ConnectReply {
                    conn: 5,
                    outcome: ConnectOutcome::NotServing
                },
                Entry::Flush(_)
            ]
        ),
        "{out:?}"
    );
    assert!(proposals_to_2(&out).is_empty(), "no session is created");
    // It still leads: a follower's client's session is created through it.
    let fwd = Forward {
        session_id: (2 << 56) | 1,
        cxid: 0,
        req: Request::CreateSession { timeout_ms: 4000 },
        auth: Vec::new(),
    };
    assert_eq!(
        proposals_to_2(&m.message(2, 7, Msg::Request(fwd), 410)).len(),
        1
    );
    // By default a leader takes clients (a new session is proposed), as do followers told no.
    let mut m = leader(&[]);
    assert_eq!(proposals_to_2(&connect(&mut m)).len(), 1);
    let (mut f, _) = follower();
    f.set_leader_serves(false);
    assert_eq!(
        sent_to(&connect(&mut f), 3).len(),
        1,
        "forwarded to the leader"
    );
}

#[test]
fn a_serving_member_snapshots_its_committed_tree_after_about_snap_count_txns_one_at_a_time() {
    let (mut m, conn) = follower();
    let mut snaps = Vec::new();
    for c in 1..=12 {
        let t = txn(c, (3 << 56) | 1, c as i32, TxnOp::Error(ErrorCode::NoNode));
        for o in commit_at(&mut m, conn, t, 400 + c) {
            if let Output::WriteSnapshot { tree, token, .. } = o {
                snaps.push((c, tree.last_zxid(), token));
            }
        }
    }
    // One, after more than half of snapCount and at most all of it; no second one while the
    // first is being written.
    let [(c, zxid, None)] = snaps[..] else {
        panic!("{snaps:?}")
    };
    assert!((4..=6).contains(&c), "{c}");
    assert_eq!(zxid, make_zxid(1, c), "the committed tree, at its last txn");
    let out = m.input(Input::SnapshotAsked { token: 9 }, 500);
    assert!(
        matches!(out[..], [Output::SnapshotBusy { token: 9 }]),
        "{out:?}"
    );
    m.snapshot_written();
    let out = m.input(Input::SnapshotAsked { token: 9 }, 501);
    assert!(
        matches!(&out[..], [Output::WriteSnapshot { token: Some(9), tree, .. }] if tree.last_zxid() == make_zxid(1, 12)),
        "{out:?}"
    );
    // A member that does not serve writes none.
    let mut idle = start(2, &[], 0);
    let out = idle.input(Input::SnapshotAsked { token: 3 }, 10);
    assert!(
        matches!(out[..], [Output::SnapshotBusy { token: 3 }]),
        "{out:?}"
    );
}

#[test]
fn txns_applied_while_not_serving_reach_no_client() {
    let (mut m, conn) = follower();
    // A proposal logged here and never committed; then the leader is gone.
    let t = txn(
        1,
        (3 << 56) | 1,
        1,
        TxnOp::Create {
            path: "/ff".into(),
            data: Some(Bytes::new()),
            acl: std::sync::Arc::new(Acl::open_unsafe()),
            ephemeral_owner: 0,
            parent_cversion: 1,
            opcode: opcode::CREATE,
        },
    );
    m.message(3, conn, Msg::Proposal(t), 400);
    m.log_synced(make_zxid(1, 1), 401);
    let out = m.closed(3, conn, 402);
    let role = out
        .iter()
        .position(|o| matches!(o, Output::Role(Role::Looking)))
        .expect("looking");
    let (at, entries, version) = out
        .iter()
        .enumerate()
        .find_map(|(i, o)| match o {
            Output::Publish { entries, version } => Some((i, entries, version)),
            _ => None,
        })
        .expect("the fast-forward is published");
    assert!(role < at, "the role change first");
    // The tree has the txn (it votes with its log), but the fronts get no trigger for it and
    // keep the tree they had.
    assert!(m.tree().get("/ff").is_some());
    let Entry::Commit(c) = &entries[0] else {
        panic!("{entries:?}")
    };
    assert!(c.triggers.is_empty() && c.origin.is_none());
    assert!(version.get("/ff").is_none());
}

#[test]
fn a_rounds_commits_reach_the_fronts_as_one_publish_and_a_role_change_hands_them_over_first() {
    let (mut r, conn) = follower();
    // Driven without the wrapper: the round ends only when `flush` says so.
    let m = &mut r.0;
    let session = (3 << 56) | 1;
    let commit = |m: &mut Member, counter: i64| {
        let t = txn(
            counter,
            session,
            counter as i32,
            TxnOp::Error(ErrorCode::NoNode),
        );
        let z = t.zxid;
        m.message(3, conn, Msg::Proposal(t), 400);
        m.log_synced(z, 400);
        m.message(3, conn, Msg::Commit { zxid: z }, 400)
    };
    for c in 1..=2 {
        let out = commit(m, c);
        assert!(
            published(&out).is_empty(),
            "nothing before the round ends: {out:?}"
        );
    }
    let out: Vec<Output> = m.flush().into_iter().collect();
    assert!(
        matches!(
            published(&out)[..],
            [Entry::Commit(a), Entry::Commit(b), Entry::Flush(v)]
                if a.txn.zxid == make_zxid(1, 1)
                    && b.txn.zxid == make_zxid(1, 2)
                    && v.last_zxid() == make_zxid(1, 2)
        ),
        "{out:?}"
    );
    assert!(m.flush().is_none(), "handed over once");
    // A commit left in the round, then the leader goes: the commit's entries go out with a
    // flush point at the committed tree, before the role change.
    commit(m, 3);
    let out = m.closed(3, conn, 402);
    let role = out
        .iter()
        .position(|o| matches!(o, Output::Role(Role::Looking)))
        .expect("looking");
    let Some((at, Output::Publish { entries, version })) = out
        .iter()
        .enumerate()
        .find(|(_, o)| matches!(o, Output::Publish { .. }))
    else {
        panic!("{out:?}")
    };
    assert!(at < role, "handed over before the role change: {out:?}");
    assert!(matches!(&entries[0], Entry::Commit(c) if c.txn.zxid == make_zxid(1, 3)));
    assert_eq!(version.last_zxid(), make_zxid(1, 3));
}
