//! Workloads: named presets and weighted mixes, and the per-session request generator.
//!
//! Every key-based op picks a key uniformly among `--keys` znodes under `<root>/keys`, which is
//! also the wide parent `children` lists. `create-delete` alternates a create and the delete of
//! that node on the same session (pipelined: ZooKeeper answers a session in order, so the delete
//! always finds the node); `multi` sends create+delete of one node as one multi.

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use ringkeeper_engine::proto::{opcode as op, Acl, CreateRequest, Request};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    Get,
    Set,
    Exists,
    CreateDelete,
    Children,
    Multi,
    /// Ephemeral-sequential create then delete, on a parent of the session's own.
    EphemeralChurn,
}

impl OpKind {
    const ALL: [OpKind; 7] = [
        OpKind::Get,
        OpKind::Set,
        OpKind::Exists,
        OpKind::CreateDelete,
        OpKind::Children,
        OpKind::Multi,
        OpKind::EphemeralChurn,
    ];

    fn parse(name: &str) -> Result<OpKind, String> {
        OpKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = OpKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown operation '{name}' ({}; or alone: session-storm, lock, watch)",
                    names.join(", ")
                )
            })
    }

    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Get => "get",
            OpKind::Set => "set",
            OpKind::Exists => "exists",
            OpKind::CreateDelete => "create-delete",
            OpKind::Children => "children",
            OpKind::Multi => "multi",
            OpKind::EphemeralChurn => "ephemeral-churn",
        }
    }

    /// Whether this op writes (and so, on Java ZooKeeper, is fsync'd).
    pub fn writes(self) -> bool {
        matches!(
            self,
            OpKind::Set | OpKind::CreateDelete | OpKind::Multi | OpKind::EphemeralChurn
        )
    }
}

/// A weighted mix of operations.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    pub parts: Vec<(OpKind, u32)>,
}

impl Mix {
    /// A preset name (`get`, `mixed`, ...) or `op=weight,...`.
    pub fn parse(spec: &str) -> Result<Mix, String> {
        let spec = match spec {
            "mixed" => "get=90,set=10",
            "read" => "get",
            "write" => "set",
            other => other,
        };
        let mut parts = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, weight) = match item.split_once('=') {
                Some((n, w)) => (
                    n.trim(),
                    w.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("bad weight in '{item}'"))?,
                ),
                None => (item, 1),
            };
            if weight > 0 {
                parts.push((OpKind::parse(name)?, weight));
            }
        }
        if parts.is_empty() {
            return Err(format!("workload '{spec}' names no operation"));
        }
        Ok(Mix { parts })
    }

    pub fn pick(&self, rng: &mut SmallRng) -> OpKind {
        if self.parts.len() == 1 {
            return self.parts[0].0;
        }
        let total: u32 = self.parts.iter().map(|(_, w)| w).sum();
        let mut x = rng.gen_range(0..total);
        for (kind, w) in &self.parts {
            if x < *w {
                return *kind;
            }
            x -= w;
        }
        unreachable!("x < total")
    }

    pub fn has(&self, kind: OpKind) -> bool {
        self.parts.iter().any(|(k, _)| *k == kind)
    }
}

/// What a run drives: a stream of independent requests, or one of the sequential scenarios.
#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    Stream(Mix),
    SessionStorm,
    Lock,
    Watch,
}

impl Workload {
    pub fn parse(spec: &str) -> Result<Workload, String> {
        Ok(match spec {
            "session-storm" => Workload::SessionStorm,
            "lock" => Workload::Lock,
            "watch" => Workload::Watch,
            other => Workload::Stream(Mix::parse(other)?),
        })
    }
}

/// Paths every workload uses.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: String,
    pub keys: usize,
}

impl Layout {
    pub fn keys_parent(&self) -> String {
        format!("{}/keys", self.root)
    }

    pub fn key(&self, i: usize) -> String {
        format!("{}/keys/k{i}", self.root)
    }

    pub fn scratch(&self) -> String {
        format!("{}/scratch", self.root)
    }

    /// The lock every `lock` session contends for.
    pub fn lock_dir(&self) -> String {
        format!("{}/lock", self.root)
    }

    /// The znode `watch` writes and watches.
    pub fn watched(&self) -> String {
        format!("{}/watched", self.root)
    }

    /// Nodes to create before the run, parents first.
    pub fn setup_paths(&self) -> Vec<String> {
        let mut v = vec![
            self.root.clone(),
            self.keys_parent(),
            self.scratch(),
            self.lock_dir(),
            self.watched(),
        ];
        v.extend((0..self.keys).map(|i| self.key(i)));
        v
    }
}

fn create(path: String, data: Bytes) -> Request {
    Request::Create(CreateRequest {
        opcode: op::CREATE,
        path,
        data: Some(data),
        acl: Acl::open_unsafe(),
        flags: 0,
        ttl: -1,
    })
}

/// The request stream of one session.
pub struct SessionGen {
    mix: Mix,
    layout: Layout,
    value: Bytes,
    rng: SmallRng,
    session: usize,
    seq: u64,
    pending_delete: Option<String>,
    /// Tells this run's ephemeral-churn parents from earlier runs'.
    nonce: u64,
    /// Ephemeral-sequential nodes created so far under this session's parent (None: no parent yet).
    churned: Option<u64>,
}

impl SessionGen {
    pub fn new(
        mix: Mix,
        layout: Layout,
        value_bytes: usize,
        seed: u64,
        session: usize,
        nonce: u64,
    ) -> SessionGen {
        SessionGen {
            mix,
            layout,
            value: Bytes::from(vec![b'x'; value_bytes]),
            rng: SmallRng::seed_from_u64(
                seed ^ (session as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ),
            session,
            seq: 0,
            pending_delete: None,
            nonce,
            churned: None,
        }
    }

    fn random_key(&mut self) -> String {
        let i = self.rng.gen_range(0..self.layout.keys.max(1));
        self.layout.key(i)
    }

    fn fresh_path(&mut self) -> String {
        self.seq += 1;
        format!("{}/s{}-{}", self.layout.scratch(), self.session, self.seq)
    }

    /// Ephemeral-sequential churn. The session's parent is fresh and only this session creates
    /// under it, so the k-th create gets suffix k (ZooKeeper's suffix is the parent's count of
    /// child creates) and its delete can be pipelined right behind it.
    fn churn(&mut self) -> Request {
        let parent = format!(
            "{}/e{:x}-s{}",
            self.layout.scratch(),
            self.nonce,
            self.session
        );
        let Some(k) = self.churned else {
            self.churned = Some(0);
            return create(parent, Bytes::new());
        };
        self.churned = Some(k + 1);
        self.pending_delete = Some(format!("{parent}/n-{k:010}"));
        Request::Create(CreateRequest {
            opcode: op::CREATE,
            path: format!("{parent}/n-"),
            data: Some(self.value.clone()),
            acl: Acl::open_unsafe(),
            flags: 3,
            ttl: -1,
        })
    }

    /// The next request and the kind it counts as.
    pub fn next_request(&mut self) -> (OpKind, Request) {
        if let Some(path) = self.pending_delete.take() {
            return (OpKind::CreateDelete, Request::Delete { path, version: -1 });
        }
        let kind = self.mix.pick(&mut self.rng);
        let req = match kind {
            OpKind::Get => Request::GetData {
                path: self.random_key(),
                watch: false,
            },
            OpKind::Exists => Request::Exists {
                path: self.random_key(),
                watch: false,
            },
            OpKind::Set => Request::SetData {
                path: self.random_key(),
                data: Some(self.value.clone()),
                version: -1,
            },
            OpKind::Children => Request::GetChildren {
                path: self.layout.keys_parent(),
                watch: false,
            },
            OpKind::CreateDelete => {
                let path = self.fresh_path();
                self.pending_delete = Some(path.clone());
                create(path, self.value.clone())
            }
            OpKind::Multi => {
                let path = self.fresh_path();
                Request::Multi(vec![
                    create(path.clone(), self.value.clone()),
                    Request::Delete { path, version: -1 },
                ])
            }
            OpKind::EphemeralChurn => self.churn(),
        };
        (kind, req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn presets_and_mixes_parse() {
        assert_eq!(
            Mix::parse("mixed").unwrap().parts,
            vec![(OpKind::Get, 90), (OpKind::Set, 10)]
        );
        assert_eq!(
            Mix::parse("exists").unwrap().parts,
            vec![(OpKind::Exists, 1)]
        );
        assert!(Mix::parse("get=x").is_err());
        assert!(Mix::parse("teleport").is_err());
        assert!(Mix::parse("get=0").is_err());
    }

    #[test]
    fn mix_proportions_follow_weights() {
        let mix = Mix::parse("get=70,set=20,exists=10").unwrap();
        let mut rng = SmallRng::seed_from_u64(3);
        let mut counts: HashMap<OpKind, u32> = HashMap::new();
        let n = 100_000;
        for _ in 0..n {
            *counts.entry(mix.pick(&mut rng)).or_default() += 1;
        }
        for (kind, weight) in [
            (OpKind::Get, 70.0),
            (OpKind::Set, 20.0),
            (OpKind::Exists, 10.0),
        ] {
            let share = counts[&kind] as f64 / n as f64 * 100.0;
            assert!(
                (share - weight).abs() < 1.0,
                "{kind:?}: {share:.2}% for weight {weight}"
            );
        }
    }

    #[test]
    fn create_delete_alternates_on_one_path() {
        let layout = Layout {
            root: "/b".into(),
            keys: 10,
        };
        let mut g = SessionGen::new(Mix::parse("create-delete").unwrap(), layout, 4, 1, 2, 0);
        let (_, first) = g.next_request();
        let (_, second) = g.next_request();
        let Request::Create(c) = first else {
            panic!("{first:?}")
        };
        assert_eq!(c.path, "/b/scratch/s2-1");
        assert_eq!(
            second,
            Request::Delete {
                path: c.path,
                version: -1
            }
        );
        let (_, third) = g.next_request();
        assert!(matches!(third, Request::Create(c) if c.path == "/b/scratch/s2-2"));
    }

    #[test]
    fn ephemeral_churn_predicts_sequence_names() {
        let layout = Layout {
            root: "/b".into(),
            keys: 1,
        };
        let mut g = SessionGen::new(
            Mix::parse("ephemeral-churn").unwrap(),
            layout,
            0,
            1,
            3,
            0xab,
        );
        let reqs: Vec<Request> = (0..5).map(|_| g.next_request().1).collect();
        assert!(
            matches!(&reqs[0], Request::Create(c) if c.path == "/b/scratch/eab-s3" && c.flags == 0)
        );
        assert!(
            matches!(&reqs[1], Request::Create(c) if c.path == "/b/scratch/eab-s3/n-" && c.flags == 3)
        );
        assert_eq!(
            reqs[2],
            Request::Delete {
                path: "/b/scratch/eab-s3/n-0000000000".into(),
                version: -1
            }
        );
        assert!(matches!(&reqs[3], Request::Create(c) if c.path == "/b/scratch/eab-s3/n-"));
        assert_eq!(
            reqs[4],
            Request::Delete {
                path: "/b/scratch/eab-s3/n-0000000001".into(),
                version: -1
            }
        );
    }

    #[test]
    fn keys_stay_in_range() {
        let layout = Layout {
            root: "/b".into(),
            keys: 3,
        };
        let mut g = SessionGen::new(Mix::parse("get").unwrap(), layout.clone(), 4, 9, 0, 0);
        for _ in 0..100 {
            let (_, Request::GetData { path, .. }) = g.next_request() else {
                panic!()
            };
            assert!((0..3).any(|i| path == layout.key(i)), "{path}");
        }
    }
}
