//! The session table: ids laid out as ZooKeeper's, passwords derived from a secret (standalone)
//! or as ZooKeeper derives them (ensembles, [`Passwords`]), timeouts
//! negotiated within bounds, and expiry driven by the `now_ms` the runtime passes in.
//!
//! Deadlines are rounded up to the next multiple of the tick, as ZooKeeper's `ExpiryQueue` does,
//! so a session expires at a tick boundary at or after `last_touch + timeout`.

use sha1::{Digest, Sha1};
use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: i64,
    pub timeout_ms: i32,
    pub deadline_ms: i64,
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub tick_ms: i64,
    pub min_timeout_ms: i32,
    pub max_timeout_ms: i32,
    pub server_id: i64,
}

/// How session passwords are derived from session ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passwords {
    /// SHA-1 of a secret and the id (a standalone server's secret is random, kept in its
    /// dataDir).
    Keyed(u64),
    /// ZooKeeper's own: `java.util.Random(id ^ 0xB3415C00).nextBytes(16)`
    /// (`ZooKeeperServer.generatePasswd`). An ensemble uses it, so that a session made on a
    /// Java member can be resumed on a Ringkeeper member and the other way round. It is no
    /// weaker than one key every member shares: either is known to whoever has the code.
    ZooKeeper,
}

/// `java.util.Random`'s linear congruential generator, as far as `nextBytes` needs it.
struct JavaRandom(u64);

impl JavaRandom {
    const MULTIPLIER: u64 = 0x5_DEEC_E66D;
    const MASK: u64 = (1 << 48) - 1;

    fn new(seed: i64) -> JavaRandom {
        JavaRandom((seed as u64 ^ Self::MULTIPLIER) & Self::MASK)
    }

    fn next_int(&mut self) -> i32 {
        self.0 = (self.0.wrapping_mul(Self::MULTIPLIER).wrapping_add(0xB)) & Self::MASK;
        (self.0 >> 16) as i32
    }

    /// Four bytes per `nextInt`, low byte first.
    fn next_bytes(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(4) {
            let mut r = self.next_int();
            for b in chunk {
                *b = r as u8;
                r >>= 8;
            }
        }
    }
}

/// ZooKeeper's `superSecret`.
const ZOOKEEPER_SUPER_SECRET: i64 = 0xB341_5C00;

/// All live sessions of this server.
#[derive(Debug)]
pub struct SessionTable {
    cfg: SessionConfig,
    secret: Passwords,
    next_id: i64,
    sessions: HashMap<i64, Session>,
    by_deadline: BTreeSet<(i64, i64)>,
}

impl SessionTable {
    /// `now_ms` seeds the id counter (ZooKeeper's `initializeNextSessionId`); `secret` says how
    /// passwords are derived.
    pub fn new(cfg: SessionConfig, now_ms: i64, secret: Passwords) -> SessionTable {
        assert!(cfg.tick_ms > 0);
        assert!(cfg.min_timeout_ms <= cfg.max_timeout_ms);
        let base = ((now_ms as u64) << 24 >> 8) as i64;
        let next_id = base | (cfg.server_id << 56);
        SessionTable {
            cfg,
            secret,
            next_id,
            sessions: HashMap::new(),
            by_deadline: BTreeSet::new(),
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    pub fn negotiate(&self, requested_ms: i32) -> i32 {
        requested_ms.clamp(self.cfg.min_timeout_ms, self.cfg.max_timeout_ms)
    }

    /// The password a client must present to resume `id`.
    pub fn password(&self, id: i64) -> [u8; 16] {
        let mut out = [0u8; 16];
        match self.secret {
            Passwords::Keyed(secret) => {
                let mut h = Sha1::new();
                h.update(secret.to_be_bytes());
                h.update(id.to_be_bytes());
                out.copy_from_slice(&h.finalize()[..16]);
            }
            Passwords::ZooKeeper => {
                JavaRandom::new(id ^ ZOOKEEPER_SUPER_SECRET).next_bytes(&mut out);
            }
        }
        out
    }

    /// Makes sure ids handed out from now on are above `id` (one seen in the log).
    pub fn ensure_next_above(&mut self, id: i64) {
        if id >= self.next_id && id >> 56 == self.next_id >> 56 {
            self.next_id = id + 1;
        }
    }

    /// Reserves the next session id.
    pub fn next_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn deadline(&self, now_ms: i64, timeout_ms: i32) -> i64 {
        let t = now_ms + timeout_ms as i64;
        (t / self.cfg.tick_ms + 1) * self.cfg.tick_ms
    }

    /// Adds a session (applying its createSession txn).
    pub fn add(&mut self, id: i64, timeout_ms: i32, now_ms: i64) {
        let deadline_ms = self.deadline(now_ms, timeout_ms);
        self.by_deadline.insert((deadline_ms, id));
        let old = self.sessions.insert(
            id,
            Session {
                id,
                timeout_ms,
                deadline_ms,
            },
        );
        assert!(old.is_none(), "session {id:#x} added twice");
    }

    pub fn get(&self, id: i64) -> Option<&Session> {
        self.sessions.get(&id)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// Every session as a snapshot keeps it (id and timeout), by id: the same table always makes
    /// the same file.
    pub fn snap_sessions(&self) -> Vec<crate::snap::SnapSession> {
        let mut out: Vec<crate::snap::SnapSession> = self
            .sessions
            .values()
            .map(|s| crate::snap::SnapSession {
                id: s.id,
                timeout_ms: s.timeout_ms,
            })
            .collect();
        out.sort_by_key(|s| s.id);
        out
    }

    /// Pushes a live session's deadline out; false if the session is gone.
    pub fn touch(&mut self, id: i64, now_ms: i64) -> bool {
        let Some(s) = self.sessions.get(&id) else {
            return false;
        };
        let deadline_ms = self.deadline(now_ms, s.timeout_ms);
        if deadline_ms > s.deadline_ms {
            self.by_deadline.remove(&(s.deadline_ms, id));
            self.by_deadline.insert((deadline_ms, id));
            self.sessions.get_mut(&id).expect("present").deadline_ms = deadline_ms;
        }
        true
    }

    /// Sets a resumed session's newly negotiated timeout and touches it.
    pub fn set_timeout(&mut self, id: i64, timeout_ms: i32, now_ms: i64) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.timeout_ms = timeout_ms;
        }
        self.touch(id, now_ms);
    }

    pub fn remove(&mut self, id: i64) -> Option<Session> {
        let s = self.sessions.remove(&id)?;
        self.by_deadline.remove(&(s.deadline_ms, id));
        Some(s)
    }

    /// Sessions whose deadline has passed, oldest first. They stay until removed.
    pub fn expired(&self, now_ms: i64) -> Vec<i64> {
        self.by_deadline
            .iter()
            .take_while(|(d, _)| *d <= now_ms)
            .map(|(_, id)| *id)
            .collect()
    }

    pub fn check_invariants(&self) {
        assert_eq!(self.sessions.len(), self.by_deadline.len());
        for s in self.sessions.values() {
            assert!(self.by_deadline.contains(&(s.deadline_ms, s.id)));
            assert_eq!(s.deadline_ms % self.cfg.tick_ms, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> SessionTable {
        let cfg = SessionConfig {
            tick_ms: 2000,
            min_timeout_ms: 4000,
            max_timeout_ms: 40000,
            server_id: 1,
        };
        SessionTable::new(cfg, 1_700_000_000_000, Passwords::Keyed(42))
    }

    #[test]
    fn ids_carry_the_server_id_in_the_high_byte() {
        let mut t = table();
        let a = t.next_id();
        assert_eq!(a >> 56, 1);
        assert_eq!(t.next_id(), a + 1);
    }

    #[test]
    fn timeouts_are_clamped() {
        let t = table();
        assert_eq!(t.negotiate(100), 4000);
        assert_eq!(t.negotiate(10000), 10000);
        assert_eq!(t.negotiate(1_000_000), 40000);
    }

    #[test]
    fn expiry_follows_touches_at_tick_boundaries() {
        let mut t = table();
        t.add(5, 4000, 1000);
        assert_eq!(t.get(5).unwrap().deadline_ms, 6000);
        assert!(t.expired(5999).is_empty());
        assert!(t.touch(5, 3000));
        assert_eq!(t.expired(6000), Vec::<i64>::new());
        assert_eq!(t.expired(8000), vec![5]);
        t.check_invariants();
        t.remove(5);
        assert!(!t.touch(5, 9000));
        t.check_invariants();
    }

    #[test]
    fn passwords_depend_on_id_and_secret() {
        let t = table();
        assert_ne!(t.password(1), t.password(2));
        let other = SessionTable::new(t.config().clone(), 0, Passwords::Keyed(43));
        assert_ne!(t.password(1), other.password(1));
    }

    #[test]
    fn zookeepers_passwords_are_javas_random_bytes() {
        // Printed by Java 17's `new java.util.Random(id ^ 0xB3415C00L).nextBytes(new byte[16])`,
        // ZooKeeperServer.generatePasswd's derivation (tests/py/test_ensemble.py also resumes a
        // Java member's session on a Ringkeeper member).
        let t = SessionTable::new(table().config().clone(), 0, Passwords::ZooKeeper);
        for (id, want) in JAVA_PASSWORDS {
            assert_eq!(hex(&t.password(*id)), *want, "session {id:#x}");
        }
    }

    /// (session id, password) as Java printed them. Java's seed keeps only the low 48 bits, so
    /// the server id in the top byte does not change the password (ids 1 and 1 | 1 << 56).
    const JAVA_PASSWORDS: &[(i64, &str)] = &[
        (0, "f22acd4a97e69d6d20a49bb638eadb38"),
        (1, "054cc74a37327db215e702e20c73f005"),
        (0x0100_0000_0000_0001, "054cc74a37327db215e702e20c73f005"),
        (0x0200_0193_a1b2_c3d4, "4fd5c80138419792fb157f4ed39accd3"),
        (-1, "20f62cb5648dc2d771471c8a2486a9ee"),
        (i64::MAX, "20f62cb5648dc2d771471c8a2486a9ee"),
        (0xB341_5C00, "60b420bb3851d9d47acb933dbe70399b"),
    ];

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
