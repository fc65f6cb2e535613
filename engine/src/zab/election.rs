//! Fast leader election (ZooKeeper's `FastLeaderElection`) as a state machine: it takes
//! notifications and the time, and returns notifications to send, when it wants to be woken, and
//! its decision.
//!
//! The rules, as ZooKeeper has them:
//! - Votes are ordered by (epoch, zxid, server id): a server proposes itself, then adopts any
//!   better vote it hears of in its election epoch and tells every voter.
//! - A notification from a later election epoch moves this server to it: it forgets the votes
//!   of the old one and votes again (the better of the sender's vote and its own).
//! - Once a quorum of voters (itself included) agrees with its proposal, it waits `finalize_wait`
//!   for a better vote; if one comes it goes on, and any other notification restarts the wait.
//!   With none, it decides: LEADING if it proposed itself, else FOLLOWING (OBSERVING for an
//!   observer, which never votes).
//! - Servers that are already FOLLOWING or LEADING answer with their vote. A quorum of them naming
//!   one leader, which itself says LEADING, makes this server join that leader without a vote
//!   of its own.
//! - With nothing heard for a while it sends its vote again, waiting twice as long each time, up
//!   to `max_notification_interval`.
//!
//! Invariants ([`Election::check_invariants`]): the proposal is never worse than this server's
//! own vote; every vote counted is in this election epoch; once decided, nothing changes.

use crate::quorum::{state, Notification, NOTIFICATION_VERSION};
use bytes::Bytes;
use std::collections::BTreeMap;

/// A vote: who should lead, and what that server has (its last zxid and its epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vote {
    pub leader: i64,
    pub zxid: i64,
    pub peer_epoch: i64,
}

impl Vote {
    /// ZooKeeper's `totalOrderPredicate`: is `self` better than `other`?
    pub fn beats(&self, other: &Vote) -> bool {
        (self.peer_epoch, self.zxid, self.leader) > (other.peer_epoch, other.zxid, other.leader)
    }
}

#[derive(Debug, Clone)]
pub struct ElectionConfig {
    pub my_id: i64,
    /// The voting members (participants), this server included unless it is an observer. Votes
    /// go to them; observers only ask.
    pub voters: Vec<i64>,
    /// ZooKeeper's `finalizeWait`: 200 ms.
    pub finalize_wait_ms: i64,
    /// ZooKeeper's `maxNotificationInterval`: 60 s.
    pub max_notification_interval_ms: i64,
    /// The server's configuration text, sent with each notification (version 2).
    pub config: Bytes,
}

impl ElectionConfig {
    fn is_voter(&self, id: i64) -> bool {
        self.voters.binary_search(&id).is_ok()
    }

    fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }
}

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send {
        to: i64,
        note: Notification,
    },
    /// Wake [`Election::tick`] at this time.
    WakeAt(i64),
    /// The election is over: follow (or lead) `leader`, whose epoch and zxid are in `vote`.
    Decided {
        state: i32,
        vote: Vote,
        election_epoch: i64,
    },
}

/// One run of fast leader election.
#[derive(Debug)]
pub struct Election {
    cfg: ElectionConfig,
    own: Vote,
    proposal: Vote,
    /// ZooKeeper's `logicalclock`: the election epoch.
    election_epoch: i64,
    /// Votes of this election epoch, by sender, with the sender's state.
    votes: BTreeMap<i64, (Vote, i32)>,
    /// Votes of servers already out of an election (FOLLOWING or LEADING), by sender, with
    /// their state and election epoch.
    settled: BTreeMap<i64, (Vote, i32, i64)>,
    /// When the finalize wait ends, once a quorum agrees with the proposal.
    finalize_at: Option<i64>,
    /// When to send the vote again if nothing is heard.
    resend_at: i64,
    resend_every_ms: i64,
    decided: Option<Output>,
}

impl Election {
    /// Starts an election: this server's last zxid and current epoch, and the election epoch it
    /// last took part in. It proposes itself (an observer proposes nobody: it only listens).
    pub fn start(
        cfg: ElectionConfig,
        last_zxid: i64,
        current_epoch: i64,
        last_election_epoch: i64,
        now_ms: i64,
    ) -> (Election, Vec<Output>) {
        assert!(cfg.voters.windows(2).all(|w| w[0] < w[1]), "voters sorted");
        let own = if cfg.is_voter(cfg.my_id) {
            Vote {
                leader: cfg.my_id,
                zxid: last_zxid,
                peer_epoch: current_epoch,
            }
        } else {
            Vote {
                leader: i64::MIN,
                zxid: i64::MIN,
                peer_epoch: i64::MIN,
            }
        };
        let resend_every_ms = cfg.finalize_wait_ms;
        let mut e = Election {
            own,
            proposal: own,
            election_epoch: last_election_epoch + 1,
            votes: BTreeMap::new(),
            settled: BTreeMap::new(),
            finalize_at: None,
            resend_at: now_ms + resend_every_ms,
            resend_every_ms,
            decided: None,
            cfg,
        };
        if e.cfg.is_voter(e.cfg.my_id) {
            e.votes.insert(e.cfg.my_id, (own, state::LOOKING));
        }
        let mut out = e.broadcast();
        out.push(Output::WakeAt(e.resend_at));
        (e, out)
    }

    pub fn election_epoch(&self) -> i64 {
        self.election_epoch
    }

    pub fn proposal(&self) -> Vote {
        self.proposal
    }

    /// A notification from server `from`.
    pub fn receive(&mut self, from: i64, n: &Notification, now_ms: i64) -> Vec<Output> {
        if self.decided.is_some() {
            return Vec::new();
        }
        let vote = Vote {
            leader: n.leader,
            zxid: n.zxid,
            peer_epoch: n.peer_epoch,
        };
        let mut out = Vec::new();
        if !self.cfg.is_voter(from) {
            // A non-voter (an observer) is answered at once with this server's vote as it stood
            // when the election began (ZooKeeper's current vote); it counts for nothing and
            // touches no timer.
            if self.cfg.is_voter(self.cfg.my_id) {
                let mut note = self.notification(state::LOOKING);
                note.leader = self.own.leader;
                note.zxid = self.own.zxid;
                note.peer_epoch = self.own.peer_epoch;
                out.push(Output::Send { to: from, note });
            }
            return out;
        }
        if !(state::LOOKING..=state::OBSERVING).contains(&n.state) {
            return out; // a state ZooKeeper does not know: dropped, as it drops it
        }
        if n.state == state::LOOKING && n.election_epoch < self.election_epoch {
            // A voter behind: told this election's epoch and proposal at once.
            out.push(Output::Send {
                to: from,
                note: self.notification(state::LOOKING),
            });
        }
        // Something was heard: the resend timer starts again, at the same interval.
        self.resend_at = now_ms + self.resend_every_ms;
        if self.finalize_at.is_some() {
            if vote.beats(&self.proposal) {
                self.finalize_at = None; // a better vote ends the wait
            } else {
                // During the finalize wait ZooKeeper drops what is not better, and waits again.
                let at = now_ms + self.cfg.finalize_wait_ms;
                self.finalize_at = Some(at);
                out.push(Output::WakeAt(at));
                return out;
            }
        }
        if n.state == state::OBSERVING || !self.cfg.is_voter(vote.leader) {
            return out; // an observer's view, or a vote for a server that cannot lead
        }
        if n.state == state::LOOKING {
            self.looking(from, vote, n.election_epoch, now_ms, &mut out);
        } else {
            self.settled.insert(from, (vote, n.state, n.election_epoch));
            if n.election_epoch == self.election_epoch {
                self.votes.insert(from, (vote, n.state));
                if self.quorum_for(&self.votes, &vote, n.state)
                    && self.leader_is_up(&self.votes, &vote, n.election_epoch)
                {
                    self.decide(vote, n.election_epoch);
                }
            }
            if self.decided.is_none() {
                let settled: BTreeMap<i64, (Vote, i32)> = self
                    .settled
                    .iter()
                    .map(|(k, (v, st, _))| (*k, (*v, *st)))
                    .collect();
                if self.quorum_for(&settled, &vote, n.state)
                    && self.leader_is_up(&settled, &vote, n.election_epoch)
                {
                    self.election_epoch = n.election_epoch;
                    self.decide(vote, n.election_epoch);
                }
            }
            out.extend(self.decided.clone());
        }
        out
    }

    /// A LOOKING vote from a voter.
    fn looking(
        &mut self,
        from: i64,
        vote: Vote,
        election_epoch: i64,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) {
        if election_epoch > self.election_epoch {
            self.election_epoch = election_epoch;
            self.votes.clear();
            self.finalize_at = None;
            self.proposal = if vote.beats(&self.own) {
                vote
            } else {
                self.own
            };
            out.extend(self.broadcast());
        } else if election_epoch < self.election_epoch {
            return;
        } else if vote.beats(&self.proposal) {
            self.proposal = vote;
            out.extend(self.broadcast());
        }
        self.votes.insert(from, (vote, state::LOOKING));
        if self.cfg.is_voter(self.cfg.my_id) {
            self.votes
                .insert(self.cfg.my_id, (self.proposal, state::LOOKING));
        }
        if self.finalize_at.is_none()
            && self.quorum_for(&self.votes, &self.proposal, state::LOOKING)
        {
            let at = now_ms + self.cfg.finalize_wait_ms;
            self.finalize_at = Some(at);
            out.push(Output::WakeAt(at));
        }
    }

    /// Time passes: the finalize wait ends (a decision) or the vote is sent again.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Output> {
        let mut out = Vec::new();
        if self.decided.is_some() {
            return out;
        }
        if self.finalize_at.is_some_and(|at| now_ms >= at) {
            let vote = self.proposal;
            self.decide(vote, self.election_epoch);
            out.extend(self.decided.clone());
            return out;
        }
        if now_ms >= self.resend_at {
            self.resend_every_ms =
                (self.resend_every_ms * 2).min(self.cfg.max_notification_interval_ms);
            self.resend_at = now_ms + self.resend_every_ms;
            out.extend(self.broadcast());
        }
        out.push(Output::WakeAt(
            self.finalize_at
                .map_or(self.resend_at, |f| f.min(self.resend_at)),
        ));
        out
    }

    /// True when a quorum of voters holds `vote` in `votes` (each with its sender's state).
    fn quorum_for(&self, votes: &BTreeMap<i64, (Vote, i32)>, vote: &Vote, st: i32) -> bool {
        let agreeing = votes
            .iter()
            .filter(|(id, (v, s))| self.cfg.is_voter(**id) && same_vote(v, *s, vote, st))
            .count();
        agreeing >= self.cfg.quorum()
    }

    /// ZooKeeper's `checkLeader`: another leader must itself say, in `votes`, that it is
    /// LEADING; this server may only decide for itself in its own election epoch.
    fn leader_is_up(
        &self,
        votes: &BTreeMap<i64, (Vote, i32)>,
        vote: &Vote,
        election_epoch: i64,
    ) -> bool {
        if vote.leader == self.cfg.my_id {
            return election_epoch == self.election_epoch;
        }
        votes
            .get(&vote.leader)
            .is_some_and(|(_, st)| *st == state::LEADING)
    }

    fn decide(&mut self, vote: Vote, election_epoch: i64) {
        let state = if !self.cfg.is_voter(self.cfg.my_id) {
            state::OBSERVING
        } else if vote.leader == self.cfg.my_id {
            state::LEADING
        } else {
            state::FOLLOWING
        };
        self.proposal = vote;
        self.decided = Some(Output::Decided {
            state,
            vote,
            election_epoch,
        });
    }

    /// This server's vote to every other voter. An observer's "vote" names nobody: sending it
    /// asks the voters for theirs.
    fn broadcast(&self) -> Vec<Output> {
        let note = self.notification(state::LOOKING);
        self.cfg
            .voters
            .iter()
            .filter(|to| **to != self.cfg.my_id)
            .map(|to| Output::Send {
                to: *to,
                note: note.clone(),
            })
            .collect()
    }

    fn notification(&self, st: i32) -> Notification {
        Notification {
            state: st,
            leader: self.proposal.leader,
            zxid: self.proposal.zxid,
            election_epoch: self.election_epoch,
            peer_epoch: self.proposal.peer_epoch,
            version: NOTIFICATION_VERSION,
            config: Some(self.cfg.config.clone()),
        }
    }

    pub fn check_invariants(&self) {
        if self.cfg.is_voter(self.cfg.my_id) && self.decided.is_none() {
            assert!(
                !self.own.beats(&self.proposal),
                "proposal worse than own vote"
            );
        }
        if let Some(at) = self.finalize_at {
            assert!(at > 0);
            assert!(
                self.quorum_for(&self.votes, &self.proposal, state::LOOKING)
                    || self.decided.is_some()
            );
        }
    }
}

/// ZooKeeper's `Vote.equals` for counting: with a LOOKING side the whole vote must match; between
/// servers out of the election, the leader and its epoch (their zxids may have moved on).
fn same_vote(a: &Vote, a_state: i32, b: &Vote, b_state: i32) -> bool {
    if a_state == state::LOOKING || b_state == state::LOOKING {
        a == b
    } else {
        a.leader == b.leader && a.peer_epoch == b.peer_epoch
    }
}

/// How a server that is already FOLLOWING, LEADING or OBSERVING answers a LOOKING
/// notification: with its vote and state, so the asker can join.
pub fn answer_looking(st: i32, vote: Vote, election_epoch: i64, config: &Bytes) -> Notification {
    Notification {
        state: st,
        leader: vote.leader,
        zxid: vote.zxid,
        election_epoch,
        peer_epoch: vote.peer_epoch,
        version: NOTIFICATION_VERSION,
        config: Some(config.clone()),
    }
}

#[cfg(test)]
mod tests;
