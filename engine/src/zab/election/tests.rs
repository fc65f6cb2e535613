//! Fast leader election: exact outputs for scripted notifications, and whole elections run by a
//! seeded simulation (delays, reordering, drops, late and dead servers). A failing seed is
//! printed and replays exactly with `ELECTION_SEED`.

use super::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

fn cfg(my_id: i64, voters: &[i64]) -> ElectionConfig {
    ElectionConfig {
        my_id,
        voters: voters.to_vec(),
        finalize_wait_ms: 200,
        max_notification_interval_ms: 60_000,
        config: Bytes::from_static(b"version=0"),
    }
}

fn looking(leader: i64, zxid: i64, peer_epoch: i64, election_epoch: i64) -> Notification {
    Notification {
        state: state::LOOKING,
        leader,
        zxid,
        election_epoch,
        peer_epoch,
        version: NOTIFICATION_VERSION,
        config: Some(Bytes::from_static(b"version=0")),
    }
}

fn sends(out: &[Output]) -> Vec<(i64, i64)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to, note } => Some((*to, note.leader)),
            _ => None,
        })
        .collect()
}

#[test]
fn votes_are_ordered_by_epoch_then_zxid_then_id() {
    let v = |leader, zxid, peer_epoch| Vote {
        leader,
        zxid,
        peer_epoch,
    };
    assert!(v(1, 5, 2).beats(&v(3, 9, 1)), "epoch first");
    assert!(v(1, 9, 1).beats(&v(3, 5, 1)), "then zxid");
    assert!(v(3, 5, 1).beats(&v(1, 5, 1)), "then server id");
    assert!(!v(3, 5, 1).beats(&v(3, 5, 1)));
}

#[test]
fn a_server_proposes_itself_then_adopts_a_better_vote_and_decides_after_the_wait() {
    let (mut e, out) = Election::start(cfg(1, &[1, 2, 3]), 0x1_0000_0005, 1, 4, 0);
    assert_eq!(e.election_epoch(), 5);
    assert_eq!(sends(&out), vec![(2, 1), (3, 1)], "its own vote to both");
    assert!(out.contains(&Output::WakeAt(200)));
    // Server 3 has the same zxid and a higher id: a better vote, sent on to everyone.
    let out = e.receive(3, &looking(3, 0x1_0000_0005, 1, 5), 10);
    assert_eq!(sends(&out), vec![(2, 3), (3, 3)]);
    assert_eq!(
        out.last(),
        Some(&Output::WakeAt(210)),
        "1 and 3 for 3: a quorum of three, so the finalize wait starts"
    );
    assert_eq!(e.tick(100), vec![Output::WakeAt(210)], "not yet");
    let out = e.tick(210);
    assert_eq!(
        out,
        vec![Output::Decided {
            state: state::FOLLOWING,
            vote: Vote {
                leader: 3,
                zxid: 0x1_0000_0005,
                peer_epoch: 1
            },
            election_epoch: 5,
        }]
    );
    assert!(
        e.receive(2, &looking(2, 0x9_0000_0000, 9, 5), 300)
            .is_empty(),
        "decided"
    );
}

#[test]
fn a_better_vote_during_the_finalize_wait_starts_over() {
    let (mut e, _) = Election::start(cfg(3, &[1, 2, 3]), 5, 1, 0, 0);
    let out = e.receive(1, &looking(3, 5, 1, 1), 10);
    assert!(out.contains(&Output::WakeAt(210)));
    // Server 2 knows more (a later zxid): the wait is off and 3 now votes for 2.
    let out = e.receive(2, &looking(2, 9, 1, 1), 50);
    assert_eq!(sends(&out), vec![(1, 2), (2, 2)]);
    assert_eq!(e.tick(210).len(), 1, "no decision at the old deadline");
    assert_eq!(e.proposal().leader, 2);
}

#[test]
fn a_later_election_epoch_resets_the_votes() {
    let (mut e, _) = Election::start(cfg(1, &[1, 2, 3]), 5, 1, 0, 0);
    assert!(
        sends(&e.receive(2, &looking(2, 3, 1, 1), 5)).is_empty(),
        "a worse vote"
    );
    let out = e.receive(3, &looking(1, 5, 1, 4), 6);
    assert_eq!(e.election_epoch(), 4);
    assert_eq!(
        sends(&out),
        vec![(2, 1), (3, 1)],
        "it votes again in epoch 4"
    );
    assert!(
        out.contains(&Output::WakeAt(206)),
        "1 and 3 for 1 in epoch 4"
    );
    let out = e.receive(2, &looking(2, 3, 1, 1), 7);
    assert_eq!(
        sends(&out),
        vec![(2, 1)],
        "epoch 1 is over: 2 is told of epoch 4 at once"
    );
    assert!(matches!(&out[0], Output::Send { note, .. } if note.election_epoch == 4));
    assert_eq!(e.proposal().leader, 1);
}

#[test]
fn a_better_vote_from_a_settled_server_ends_the_finalize_wait() {
    let (mut e, _) = Election::start(cfg(1, &[1, 2, 3]), 5, 1, 0, 0);
    assert!(e
        .receive(2, &looking(1, 5, 1, 1), 10)
        .contains(&Output::WakeAt(210)));
    // 3 already follows 3 (a better vote) in this election: the wait is off, no decision at
    // the old deadline.
    let better = Vote {
        leader: 3,
        zxid: 9,
        peer_epoch: 1,
    };
    let cfgb = Bytes::from_static(b"version=0");
    e.receive(3, &answer_looking(state::FOLLOWING, better, 1, &cfgb), 50);
    assert!(e
        .tick(210)
        .iter()
        .all(|o| !matches!(o, Output::Decided { .. })));
}

#[test]
fn a_leader_counts_only_once_it_says_leading_and_followers_zxids_may_differ() {
    let (mut e, _) = Election::start(cfg(3, &[1, 2, 3, 4, 5]), 1, 1, 6, 0);
    let cfgb = Bytes::from_static(b"version=0");
    let v = |zxid| Vote {
        leader: 1,
        zxid,
        peer_epoch: 2,
    };
    // Followers of 1 report different zxids: between settled servers only leader and epoch count.
    assert!(e
        .receive(2, &answer_looking(state::FOLLOWING, v(7), 7, &cfgb), 1)
        .is_empty());
    assert!(e
        .receive(4, &answer_looking(state::FOLLOWING, v(8), 7, &cfgb), 2)
        .is_empty());
    // 1 itself still looking: no decision without its LEADING.
    let out = e.receive(1, &looking(1, 8, 2, 7), 3);
    assert!(out.iter().all(|o| !matches!(o, Output::Decided { .. })));
    let out = e.receive(1, &answer_looking(state::LEADING, v(9), 7, &cfgb), 4);
    assert!(matches!(
        out[..],
        [Output::Decided {
            state: state::FOLLOWING,
            election_epoch: 7,
            ..
        }]
    ));
}

#[test]
fn votes_for_non_voters_and_unknown_states_are_dropped() {
    let (mut e, _) = Election::start(cfg(1, &[1, 2, 3]), 5, 1, 0, 0);
    assert!(
        e.receive(2, &looking(9, 99, 9, 1), 1).is_empty(),
        "9 cannot lead"
    );
    assert_eq!(e.proposal().leader, 1);
    let mut odd = looking(3, 99, 9, 1);
    odd.state = 7;
    assert!(e.receive(2, &odd, 2).is_empty());
    assert_eq!(e.proposal().leader, 1);
}

#[test]
fn a_voter_answers_an_observer_at_once_and_does_not_count_it() {
    let (mut e, _) = Election::start(cfg(1, &[1, 2, 3]), 5, 1, 0, 0);
    e.receive(3, &looking(3, 5, 1, 1), 4); // the proposal moves to 3 ...
    let out = e.receive(9, &looking(i64::MIN, i64::MIN, i64::MIN, 1), 5);
    // ... but an observer is told the vote this server started with, as ZooKeeper's current vote.
    assert_eq!(sends(&out), vec![(9, 1)]);
    assert_eq!(e.proposal().leader, 3);
}

#[test]
fn a_server_joins_a_leader_a_quorum_already_follows() {
    let (mut e, _) = Election::start(cfg(3, &[1, 2, 3]), 9, 2, 0, 0);
    let leader = Vote {
        leader: 1,
        zxid: 5,
        peer_epoch: 2,
    };
    let cfgb = Bytes::from_static(b"version=0");
    let out = e.receive(2, &answer_looking(state::FOLLOWING, leader, 7, &cfgb), 10);
    assert!(
        out.is_empty(),
        "one follower is not a quorum, and 1 has not said it leads"
    );
    let out = e.receive(1, &answer_looking(state::LEADING, leader, 7, &cfgb), 11);
    assert_eq!(
        out,
        vec![Output::Decided {
            state: state::FOLLOWING,
            vote: leader,
            election_epoch: 7,
        }]
    );
}

#[test]
fn an_observer_never_votes_and_follows_the_leader_it_is_told_of() {
    let (mut e, out) = Election::start(cfg(9, &[1, 2, 3]), 0, 0, 0, 0);
    assert_eq!(
        sends(&out),
        vec![(1, i64::MIN), (2, i64::MIN), (3, i64::MIN)],
        "an observer asks the voters, voting for nobody"
    );
    let leader = Vote {
        leader: 2,
        zxid: 4,
        peer_epoch: 1,
    };
    let cfgb = Bytes::from_static(b"version=0");
    e.receive(1, &answer_looking(state::FOLLOWING, leader, 3, &cfgb), 1);
    let out = e.receive(2, &answer_looking(state::LEADING, leader, 3, &cfgb), 2);
    assert!(matches!(
        out[..],
        [Output::Decided {
            state: state::OBSERVING,
            ..
        }]
    ));
}

#[test]
fn with_nothing_heard_the_vote_is_sent_again_less_and_less_often() {
    let (mut e, _) = Election::start(cfg(1, &[1, 2, 3]), 0, 0, 0, 0);
    let mut at = 200;
    let mut gaps = Vec::new();
    for _ in 0..12 {
        let out = e.tick(at);
        assert_eq!(sends(&out).len(), 2);
        let Some(Output::WakeAt(next)) = out.last() else {
            panic!()
        };
        gaps.push(next - at);
        at = *next;
    }
    assert_eq!(&gaps[..4], &[400, 800, 1600, 3200]);
    assert_eq!(
        *gaps.last().unwrap(),
        60_000,
        "capped at maxNotificationInterval"
    );
}

// ---- seeded simulation ----------------------------------------------------------------------
//
// Whole elections among simulated servers. The network delays (1-80 ms), reorders and drops
// messages; some voters never start. What follows an election is reduced to the one thing it
// needs from ZAB: a leader that does not gain a quorum of followers within ESTABLISH_MS (its
// learners cannot all agree on it, say) gives up, and it and its followers elect again, in a
// later election epoch, as ZooKeeper's leader does when discovery times out.

const ESTABLISH_MS: i64 = 2_000;

/// A server in the simulation: electing, or settled and answering LOOKING votes.
struct Server {
    id: i64,
    zxid: i64,
    /// Counts this server's elections, so a wake-up meant for an earlier one is ignored.
    generation: u64,
    /// The election epoch it last took part in before the simulation.
    last_election_epoch: i64,
    election: Option<Election>,
    settled: Option<(i32, Vote, i64)>,
    alive: bool,
}

#[derive(Debug)]
enum Event {
    Deliver {
        from: i64,
        to: i64,
        note: Notification,
    },
    Wake {
        id: i64,
        generation: u64,
    },
    Start {
        id: i64,
    },
    /// A server that settled checks its leader still leads with a quorum behind it.
    Establish {
        id: i64,
        election_epoch: i64,
    },
}

struct Sim {
    rng: SmallRng,
    now: i64,
    seq: u64,
    queue: BTreeMap<(i64, u64), Event>,
    servers: BTreeMap<i64, Server>,
    voters: Vec<i64>,
    drop_rate: f64,
}

impl Sim {
    fn push(&mut self, at: i64, ev: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    fn run_outputs(&mut self, id: i64, out: Vec<Output>) {
        let generation = self.servers[&id].generation;
        for o in out {
            match o {
                Output::Send { to, note } => self.send(id, to, note),
                Output::WakeAt(at) => self.push(at, Event::Wake { id, generation }),
                Output::Decided {
                    state,
                    vote,
                    election_epoch,
                } => {
                    let s = self.servers.get_mut(&id).expect("server");
                    s.settled = Some((state, vote, election_epoch));
                    s.election = None;
                    let at = self.now + ESTABLISH_MS;
                    self.push(at, Event::Establish { id, election_epoch });
                }
            }
        }
    }

    fn send(&mut self, from: i64, to: i64, note: Notification) {
        if self.rng.gen_bool(self.drop_rate) {
            return;
        }
        let delay = self.rng.gen_range(1..80);
        self.push(self.now + delay, Event::Deliver { from, to, note });
    }

    /// Starts (or restarts) server `id`'s election after `last_election_epoch`.
    fn elect(&mut self, id: i64, last_election_epoch: i64) {
        let now = self.now;
        let c = cfg(id, &self.voters);
        let s = self.servers.get_mut(&id).expect("server");
        let (e, out) = Election::start(c, s.zxid, s.zxid >> 32, last_election_epoch, now);
        s.alive = true;
        s.settled = None;
        s.generation += 1;
        s.election = Some(e);
        self.run_outputs(id, out);
    }

    /// Does `leader` lead, in `election_epoch`, with a quorum of voters following it?
    fn established(&self, leader: i64, election_epoch: i64) -> bool {
        let leads = self.servers.get(&leader).is_some_and(|s| {
            matches!(s.settled, Some((st, v, ep)) if st == state::LEADING && v.leader == leader && ep == election_epoch)
        });
        let behind = self
            .voters
            .iter()
            .filter(|v| {
                self.servers.get(v).is_some_and(
                    |s| matches!(s.settled, Some((_, vote, _)) if vote.leader == leader),
                )
            })
            .count();
        leads && behind >= self.quorum()
    }

    fn step(&mut self) -> bool {
        let Some(((at, _), ev)) = self.queue.pop_first() else {
            return false;
        };
        self.now = at;
        let now = self.now;
        if let Ok(watch) = std::env::var("ELECTION_TRACE") {
            let w: i64 = watch.parse().unwrap_or(0);
            let involved = match &ev {
                Event::Deliver { from, to, .. } => *from == w || *to == w,
                Event::Wake { id, .. } | Event::Start { id } | Event::Establish { id, .. } => {
                    *id == w
                }
            };
            if involved {
                eprintln!("{now} {ev:?}");
            }
        }
        match ev {
            Event::Start { id } => {
                let last = self.servers[&id].last_election_epoch;
                self.elect(id, last)
            }
            Event::Wake { id, generation } => {
                let s = self.servers.get_mut(&id).expect("server");
                if s.generation != generation {
                    return true;
                }
                if let Some(e) = s.election.as_mut() {
                    let out = e.tick(now);
                    e.check_invariants();
                    self.run_outputs(id, out);
                }
            }
            Event::Deliver { from, to, note } => {
                let s = self.servers.get_mut(&to).expect("server");
                if !s.alive {
                    return true;
                }
                if let Some((st, vote, epoch)) = s.settled {
                    if note.state == state::LOOKING {
                        let answer = answer_looking(st, vote, epoch, &Bytes::new());
                        self.send(to, from, answer);
                    }
                    return true;
                }
                if let Some(e) = s.election.as_mut() {
                    let out = e.receive(from, &note, now);
                    e.check_invariants();
                    self.run_outputs(to, out);
                }
            }
            Event::Establish { id, election_epoch } => {
                let Some((_, vote, epoch)) = self.servers[&id].settled else {
                    return true;
                };
                if epoch == election_epoch && !self.established(vote.leader, election_epoch) {
                    self.elect(id, election_epoch);
                } else if epoch == election_epoch {
                    let at = now + ESTABLISH_MS;
                    self.push(at, Event::Establish { id, election_epoch });
                }
            }
        }
        true
    }
}

/// Runs elections for `sim_ms` of simulated time; returns the live servers' settlements.
fn simulate(
    seed: u64,
    voters: usize,
    observers: usize,
    dead: usize,
) -> BTreeMap<i64, Option<(i32, Vote, i64)>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let voter_ids: Vec<i64> = (1..=voters as i64).collect();
    let observer_ids: Vec<i64> = (100..100 + observers as i64).collect();
    let drop_rate = if rng.gen_bool(0.5) {
        0.0
    } else {
        rng.gen_range(0.0..0.2)
    };
    let mut sim = Sim {
        rng,
        now: 0,
        seq: 0,
        queue: BTreeMap::new(),
        servers: BTreeMap::new(),
        voters: voter_ids.clone(),
        drop_rate,
    };
    for id in voter_ids.iter().chain(&observer_ids) {
        let zxid = sim.rng.gen_range(0..4i64) << 32 | sim.rng.gen_range(0..20i64);
        sim.servers.insert(
            *id,
            Server {
                id: *id,
                zxid,
                generation: 0,
                last_election_epoch: 0,
                election: None,
                settled: None,
                alive: false,
            },
        );
    }
    // Fewer than half the voters never start (dead); the others start at scattered times.
    let mut starting: Vec<i64> = voter_ids.iter().chain(&observer_ids).copied().collect();
    for _ in 0..dead {
        let i = sim.rng.gen_range(0..voter_ids.len());
        starting.retain(|p| *p != voter_ids[i]);
    }
    for id in starting {
        let at = sim.rng.gen_range(0..500);
        sim.push(at, Event::Start { id });
    }
    // Servers come with the election epochs of their past: some behind, some ahead.
    for s in sim.servers.values_mut() {
        s.last_election_epoch = sim.rng.gen_range(0..4);
    }
    let mut steps = 0;
    while sim.now < 600_000 && steps < 500_000 && sim.step() {
        steps += 1;
    }
    if std::env::var("ELECTION_DEBUG").is_ok() {
        for s in sim.servers.values() {
            eprintln!(
                "server {} zxid {:#x} alive {} settled {:?} proposal {:?} now {} steps {steps}",
                s.id,
                s.zxid,
                s.alive,
                s.settled,
                s.election.as_ref().map(|e| e.proposal()),
                sim.now
            );
        }
    }
    sim.servers
        .values()
        .filter(|s| s.alive)
        .map(|s| (s.id, s.settled))
        .collect()
}

/// After ten minutes of elections every live server follows one leader, which leads: with the
/// network delivering what it does not drop and a quorum alive, elections must converge.
fn check(seed: u64, decisions: &BTreeMap<i64, Option<(i32, Vote, i64)>>) {
    let settled: BTreeMap<i64, (i32, Vote, i64)> = decisions
        .iter()
        .map(|(id, d)| {
            (
                *id,
                d.unwrap_or_else(|| {
                    panic!("seed {seed}: server {id} still looking: {decisions:?}")
                }),
            )
        })
        .collect();
    let leader = settled.values().next().expect("servers").1.leader;
    for (id, (st, vote, _)) in &settled {
        assert_eq!(
            vote.leader, leader,
            "seed {seed}: different leaders {settled:?}"
        );
        let want = if *id == leader {
            state::LEADING
        } else if *id >= 100 {
            state::OBSERVING
        } else {
            state::FOLLOWING
        };
        assert_eq!(*st, want, "seed {seed}: server {id} {settled:?}");
    }
}

#[test]
fn seeded_elections_converge_on_one_leader() {
    let seeds: Vec<u64> = match std::env::var("ELECTION_SEED") {
        Ok(s) => vec![s.parse().expect("ELECTION_SEED is a number")],
        Err(_) => {
            (0..std::env::var("ELECTION_SEEDS").map_or(2000, |n| n.parse().unwrap())).collect()
        }
    };
    for seed in seeds {
        let (voters, observers, dead) = match seed % 4 {
            0 => (3, 0, 0),
            1 => (3, 1, 1),
            2 => (5, 0, 2),
            _ => (5, 2, 1),
        };
        let decisions = simulate(seed, voters, observers, dead);
        check(seed, &decisions);
    }
}
