//! The ensemble half of `zoo.cfg`: `server.N` lines, `myid`, `peerType`, `initLimit`,
//! `syncLimit` and `standaloneEnabled`, checked as ZooKeeper's `QuorumPeerConfig` checks them,
//! and more strictly where ZooKeeper would start and then misbehave (two lines for one id, two
//! servers on one port, an id that cannot go into a session id).
//!
//! A line is `server.N=host:quorumPort:electionPort[:participant|:observer][;[clientAddr:]clientPort]`;
//! an IPv6 host is written in brackets. ZooKeeper's multi-address form (`a:1:2|b:1:2`) is off by
//! default in ZooKeeper too, and refused here.
//!
//! Which mode: no `server.N` line is standalone; one voting member with `standaloneEnabled`
//! (the default) is standalone too, as in ZooKeeper (which logs "only one server specified");
//! anything else is an ensemble, which needs `initLimit`, `syncLimit` and a `myid` naming one
//! of the lines.

use super::{err, num, ConfigError};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Largest server id: it goes into the top byte of the session ids the server creates, and
/// ZooKeeper's documentation asks for 1 to 255 (254 with extended types, whose TTL session ids
/// use 0xff).
const SERVER_ID_MAX: i64 = 255;

/// One `server.N` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLine {
    pub id: i64,
    /// The key as written (`server.1`), for messages.
    pub key: String,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub observer: bool,
    /// `;[clientAddr:]clientPort`, when the line has it (the address defaults to 0.0.0.0).
    pub client: Option<SocketAddr>,
}

/// An ensemble this server is a member of.
#[derive(Debug, Clone, PartialEq)]
pub struct Ensemble {
    pub my_id: i64,
    /// Every member, by id.
    pub servers: Vec<ServerLine>,
    /// `initLimit` and `syncLimit`, in ticks.
    pub init_limit: i64,
    pub sync_limit: i64,
    /// `ringkeeper.electionFinalizeWaitMs`: how long an election waits for a
    /// better vote once a quorum agrees. ZooKeeper's `finalizeWait` is a fixed 200 ms.
    pub finalize_wait_ms: i64,
    /// `ringkeeper.learnerQueueBytes`: about how many bytes of txns the leader queues for one
    /// learner (and a learner for its leader) before it cuts that connection off; the learner
    /// then syncs again. ZooKeeper's queue has no bound.
    pub learner_queue_bytes: u64,
    /// `quorumListenOnAllIPs`: the quorum and election ports listen on every address (the
    /// wildcard of the server line's address family), not just the one its line names.
    pub listen_on_all_ips: bool,
    /// `leaderServes`: the leader takes client connections. With `no` it refuses them and
    /// its four-letter words that need a serving server say it is not serving, as
    /// ZooKeeper's leader does; its clients go to the other members.
    pub leader_serves: bool,
    /// `commitLogCount` (at least 500) and `snapshotSizeFactor` (at most 1; negative turns
    /// DIFFs from the log off), read as ZooKeeper reads them: a DIFF of up to
    /// `commit_log_count` txns is always sent; a longer one while its txns come to at most
    /// `snapshot_size_factor` of the tree.
    pub commit_log_count: usize,
    pub snapshot_size_factor: f64,
}

/// ZooKeeper's `commitLogCount` and `snapshotSizeFactor` defaults (`ZKDatabase`).
pub const COMMIT_LOG_COUNT_DEFAULT: usize = 500;
pub const SNAPSHOT_SIZE_FACTOR_DEFAULT: f64 = 0.33;

/// The learner queue's bound unless `ringkeeper.learnerQueueBytes` says otherwise.
pub const LEARNER_QUEUE_BYTES_DEFAULT: u64 = 256 << 20;

/// The election's settling wait unless `ringkeeper.electionFinalizeWaitMs` says otherwise. Safety does not
/// rest on it (any quorum that agrees elects a member holding every committed txn); it only
/// lets a better vote that is on its way arrive, and election links are standing TCP
/// connections, on which a live voter's notification takes well under a millisecond on a LAN.
pub const FINALIZE_WAIT_MS_DEFAULT: i64 = 50;

impl Ensemble {
    pub fn me(&self) -> &ServerLine {
        self.servers
            .iter()
            .find(|s| s.id == self.my_id)
            .expect("my_id is checked to be a member")
    }

    /// How many members (this one included) run on this server's machine, as far as the
    /// server lines tell: those whose host is written as this one's is, or, when this one's
    /// is a loopback address, every member on loopback.
    pub fn members_on_this_host(&self) -> usize {
        self.servers
            .iter()
            .filter(|s| self.shares_host(&s.host))
            .count()
    }

    /// This member's place among the members on its machine, in id order (0 for the lowest),
    /// so that members sharing a machine can take different cores.
    pub fn rank_on_this_host(&self) -> usize {
        self.servers
            .iter()
            .filter(|s| s.id < self.my_id && self.shares_host(&s.host))
            .count()
    }

    fn shares_host(&self, host: &str) -> bool {
        let mine = self.me().host.as_str();
        host == mine || (is_loopback(mine) && is_loopback(host))
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What `zoo.cfg`'s text says about an ensemble, before `myid` is read.
#[derive(Debug, Clone, Default)]
pub struct EnsembleKeys {
    pub servers: Vec<ServerLine>,
    pub init_limit: Option<i64>,
    pub sync_limit: Option<i64>,
    pub finalize_wait_ms: Option<i64>,
    pub learner_queue_bytes: Option<u64>,
    pub commit_log_count: Option<usize>,
    pub snapshot_size_factor: Option<f64>,
    pub listen_on_all_ips: bool,
    pub leader_serves: bool,
    pub standalone_enabled: bool,
    /// `peerType=observer`.
    pub peer_type_observer: Option<bool>,
}

impl EnsembleKeys {
    pub fn new() -> EnsembleKeys {
        EnsembleKeys {
            standalone_enabled: true,
            leader_serves: true,
            ..EnsembleKeys::default()
        }
    }

    /// Takes one key if it belongs to the ensemble; false if it does not.
    pub fn take(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "initLimit" => self.init_limit = Some(limit(key, value)?),
            "syncLimit" => self.sync_limit = Some(limit(key, value)?),
            "ringkeeper.electionFinalizeWaitMs" => {
                let v: i64 = num(key, value)?;
                if !(0..=60_000).contains(&v) {
                    return Err(err(key, "must be 0 to 60000 (milliseconds)"));
                }
                self.finalize_wait_ms = Some(v);
            }
            "ringkeeper.learnerQueueBytes" => {
                let v: u64 = num(key, value)?;
                if !((1 << 16)..=(1 << 40)).contains(&v) {
                    return Err(err(key, "must be 65536 to 1099511627776 (bytes)"));
                }
                self.learner_queue_bytes = Some(v);
            }
            // ZooKeeper passes both on as `zookeeper.*` properties, and a bad value gets its
            // default with a message, not a refusal to start.
            "commitLogCount" => {
                let v = value.trim().parse::<i32>();
                self.commit_log_count = Some(match v {
                    Ok(n) if n >= COMMIT_LOG_COUNT_DEFAULT as i32 => n as usize,
                    _ => {
                        tracing::warn!(
                            key,
                            value,
                            "not a number of at least 500; using 500, as ZooKeeper does"
                        );
                        COMMIT_LOG_COUNT_DEFAULT
                    }
                });
            }
            "snapshotSizeFactor" => {
                self.snapshot_size_factor = Some(match java_double(value) {
                    // Java keeps NaN (which then turns DIFFs from the log off).
                    Some(f) if f <= 1.0 || f.is_nan() => f,
                    _ => {
                        tracing::warn!(
                            key,
                            value,
                            "not a number of at most 1; using 0.33, as ZooKeeper does"
                        );
                        SNAPSHOT_SIZE_FACTOR_DEFAULT
                    }
                });
            }
            "standaloneEnabled" => self.standalone_enabled = super::boolean(key, value)?,
            "quorumListenOnAllIPs" => self.listen_on_all_ips = super::boolean(key, value)?,
            "leaderServes" => {
                // ZooKeeper's test is `equals("no")`: every other value leaves it on.
                if value != "yes" && value != "no" {
                    tracing::warn!(
                        key,
                        value,
                        "not yes or no; the leader serves clients, as in ZooKeeper"
                    );
                }
                self.leader_serves = value != "no";
            }
            "peerType" => self.peer_type_observer = Some(learner_type(key, value)?),
            _ if key.starts_with("server.") => {
                let line = server_line(key, value)?;
                if let Some(old) = self.servers.iter().find(|s| s.id == line.id) {
                    return Err(err(
                        key,
                        format!("server id {} is already used by {}", line.id, old.key),
                    ));
                }
                self.servers.push(line);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Whether these keys make an ensemble (rather than a standalone server).
    pub fn is_ensemble(&self) -> bool {
        let voters = self.servers.iter().filter(|s| !s.observer).count();
        voters > 1 || (!self.standalone_enabled && !self.servers.is_empty())
    }

    /// Checks the lines against each other and the ensemble's shape; `extended_types` lowers
    /// the largest id to 254.
    pub fn check(&mut self, extended_types: bool) -> Result<(), ConfigError> {
        self.servers.sort_by_key(|s| s.id);
        let voters = self.servers.iter().filter(|s| !s.observer).count();
        let observers = self.servers.len() - voters;
        if voters == 0 && observers > 0 {
            return Err(err(
                &self.servers[0].key,
                "observers without participants is an invalid configuration",
            ));
        }
        if voters == 0 && !self.standalone_enabled {
            return Err(err(
                "standaloneEnabled",
                "is false, so at least one server.N line must be a participant",
            ));
        }
        if voters == 1 && self.standalone_enabled && observers > 0 {
            return Err(err(
                &self.servers[0].key,
                "observers without a quorum is an invalid configuration",
            ));
        }
        if voters == 1 && self.standalone_enabled {
            tracing::warn!(
                "only one server.N line: running standalone, as ZooKeeper does (standaloneEnabled=false makes it a one-member ensemble)"
            );
        }
        let max = if extended_types {
            SERVER_ID_MAX - 1
        } else {
            SERVER_ID_MAX
        };
        for s in &self.servers {
            if !(1..=max).contains(&s.id) {
                return Err(err(
                    &s.key,
                    format!("server ids must be 1 to {max} (they go into session ids)"),
                ));
            }
        }
        self.check_ports()
    }

    /// No two members listen on one address: every quorum, election and (given) client
    /// address must differ from every other, hosts compared as written.
    fn check_ports(&self) -> Result<(), ConfigError> {
        let mut seen: Vec<(String, u16, String)> = Vec::new();
        for s in &self.servers {
            let mut mine = vec![
                (s.host.to_ascii_lowercase(), s.quorum_port, "quorum port"),
                (
                    s.host.to_ascii_lowercase(),
                    s.election_port,
                    "election port",
                ),
            ];
            if let Some(c) = s.client {
                // A client port on every interface is on that member's host.
                let host = if c.ip().is_unspecified() {
                    s.host.to_ascii_lowercase()
                } else {
                    c.ip().to_string()
                };
                mine.push((host, c.port(), "client port"));
            }
            for (host, port, what) in mine {
                let clash = seen.iter().find(|(h, p, _)| *p == port && *h == host);
                if let Some((_, _, other)) = clash {
                    return Err(err(
                        &s.key,
                        format!("{what} {host}:{port} is already taken by {other}"),
                    ));
                }
                seen.push((host, port, format!("{}'s {what}", s.key)));
            }
        }
        Ok(())
    }

    /// The ensemble this server belongs to, given its `myid` (`None`: no file). `client` is the
    /// client address from `clientPortAddress`/`clientPort`, which a line's client part must
    /// agree with (ZooKeeper's `setupClientPort`).
    /// Standalone with `server.N` lines (one voter, say): the client address `myid`'s line
    /// gives, which ZooKeeper listens on then too.
    pub fn standalone_client(
        &self,
        myid: Option<i64>,
        client: SocketAddr,
        client_port_given: bool,
    ) -> Result<Option<SocketAddr>, ConfigError> {
        let Some(me) = myid.and_then(|id| self.servers.iter().find(|s| s.id == id)) else {
            return Ok(None);
        };
        client_agrees(me, client, client_port_given)?;
        Ok(me.client)
    }

    pub fn resolve(
        &self,
        myid: Option<i64>,
        myid_path: &str,
        client: SocketAddr,
        client_port_given: bool,
    ) -> Result<Ensemble, ConfigError> {
        let init_limit = self
            .init_limit
            .ok_or_else(|| err("initLimit", "is not set (an ensemble needs it)"))?;
        let sync_limit = self
            .sync_limit
            .ok_or_else(|| err("syncLimit", "is not set (an ensemble needs it)"))?;
        let my_id = myid.ok_or_else(|| {
            err(
                "myid",
                format!("{myid_path} is missing (each member of an ensemble needs its id there)"),
            )
        })?;
        let me = self.servers.iter().find(|s| s.id == my_id).ok_or_else(|| {
            let ids: Vec<String> = self.servers.iter().map(|s| s.id.to_string()).collect();
            err(
                "myid",
                format!(
                    "{myid_path} says {my_id}, which is not in the server list ({})",
                    ids.join(", ")
                ),
            )
        })?;
        client_agrees(me, client, client_port_given)?;
        if let Some(observer) = self.peer_type_observer {
            if observer != me.observer {
                tracing::warn!(
                    "peerType does not match {}'s type; using {}'s, as ZooKeeper does",
                    me.key,
                    me.key
                );
            }
        }
        Ok(Ensemble {
            my_id,
            servers: self.servers.clone(),
            init_limit,
            sync_limit,
            finalize_wait_ms: self.finalize_wait_ms.unwrap_or(FINALIZE_WAIT_MS_DEFAULT),
            learner_queue_bytes: self
                .learner_queue_bytes
                .unwrap_or(LEARNER_QUEUE_BYTES_DEFAULT),
            listen_on_all_ips: self.listen_on_all_ips,
            leader_serves: self.leader_serves,
            commit_log_count: self.commit_log_count.unwrap_or(COMMIT_LOG_COUNT_DEFAULT),
            snapshot_size_factor: self
                .snapshot_size_factor
                .unwrap_or(SNAPSHOT_SIZE_FACTOR_DEFAULT),
        })
    }
}

/// `value` as Java's `Double.parseDouble` reads it (decimal forms, `NaN`, `Infinity`, an `f`
/// or `d` suffix; not hexadecimal ones), or None where Java would throw.
fn java_double(value: &str) -> Option<f64> {
    let t = value.trim();
    let unsigned = t.strip_prefix(['+', '-']).unwrap_or(t);
    let negative = t.starts_with('-');
    match unsigned {
        "NaN" => return Some(f64::NAN),
        "Infinity" if negative => return Some(f64::NEG_INFINITY),
        "Infinity" => return Some(f64::INFINITY),
        _ => {}
    }
    let t = t.strip_suffix(['f', 'F', 'd', 'D']).unwrap_or(t);
    let plain = |c: char| c.is_ascii_digit() || "+-.eE".contains(c);
    if t.is_empty() || !t.chars().all(plain) {
        return None; // Rust's own `inf`, `nan` and the like are not Java's
    }
    t.parse().ok()
}

/// A `clientPort` that is given must agree with the server line's client address.
fn client_agrees(
    me: &ServerLine,
    client: SocketAddr,
    client_port_given: bool,
) -> Result<(), ConfigError> {
    if let (Some(c), true) = (me.client, client_port_given) {
        let differs = if client.ip().is_unspecified() {
            client.port() != c.port()
        } else {
            client != c
        };
        if differs {
            return Err(err(
                "clientPort",
                format!("{client} differs from {}'s client address {c}", me.key),
            ));
        }
    }
    Ok(())
}

fn limit(key: &str, value: &str) -> Result<i64, ConfigError> {
    let v: i64 = num(key, value)?;
    if v <= 0 {
        return Err(err(key, "must be positive"));
    }
    Ok(v)
}

fn learner_type(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "observer" => Ok(true),
        "participant" => Ok(false),
        _ => Err(err(
            key,
            format!("'{value}' is not participant or observer"),
        )),
    }
}

const LINE_FORM: &str =
    "expected host:quorumPort:electionPort[:participant|:observer][;[clientAddr:]clientPort]";

/// Splits `host:rest` where host may be `[ipv6]`.
fn host_and_rest(s: &str) -> Option<(&str, &str)> {
    if let Some(inner) = s.strip_prefix('[') {
        let close = inner.find(']')?;
        let rest = &inner[close + 1..];
        return Some((&inner[..close], rest.strip_prefix(':').unwrap_or(rest)));
    }
    match s.find(':') {
        Some(i) => Some((&s[..i], &s[i + 1..])),
        None => Some(("", s)),
    }
}

fn port(key: &str, what: &str, s: &str) -> Result<u16, ConfigError> {
    match s.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(err(key, format!("{what} '{s}' is not a port number"))),
    }
}

fn server_line(key: &str, value: &str) -> Result<ServerLine, ConfigError> {
    let id: i64 = key["server.".len()..].parse().map_err(|_| {
        err(
            key,
            "the part after 'server.' must be a number (the server id)",
        )
    })?;
    let (server_part, client_part) = match value.split_once(';') {
        Some((s, c)) => (s.trim(), Some(c.trim())),
        None => (value.trim(), None),
    };
    if server_part.contains('|') {
        return Err(err(
            key,
            "multiple addresses per server are not supported (ZooKeeper turns them off by default too)",
        ));
    }
    let (host, rest) = host_and_rest(server_part).ok_or_else(|| err(key, LINE_FORM))?;
    let parts: Vec<&str> = rest.split(':').collect();
    if host.is_empty() || !(2..=3).contains(&parts.len()) {
        return Err(err(key, format!("'{value}': {LINE_FORM}")));
    }
    let quorum_port = port(key, "quorum port", parts[0])?;
    let election_port = port(key, "election port", parts[1])?;
    if quorum_port == election_port {
        return Err(err(
            key,
            "the quorum port and the election port must be different",
        ));
    }
    let observer = match parts.get(2) {
        Some(t) => learner_type(key, t)?,
        None => false,
    };
    let client = match client_part.filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(client_addr(key, c)?),
    };
    Ok(ServerLine {
        id,
        key: key.to_string(),
        host: host.to_string(),
        quorum_port,
        election_port,
        observer,
        client,
    })
}

/// `[clientAddr:]clientPort`; the address may be a host name, resolved now.
fn client_addr(key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    let (host, p) = match host_and_rest(s) {
        Some((h, p)) if !h.is_empty() => (h, p),
        _ => ("0.0.0.0", s),
    };
    let p = port(key, "client port", p)?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, p));
    }
    (host, p)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| err(key, format!("client address '{host}' does not resolve")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(lines: &[(&str, &str)]) -> Result<EnsembleKeys, ConfigError> {
        let mut k = EnsembleKeys::new();
        for (key, value) in lines {
            assert!(k.take(key, value)?, "{key} is an ensemble key");
        }
        k.check(false)?;
        Ok(k)
    }

    fn three() -> Vec<(&'static str, &'static str)> {
        vec![
            ("initLimit", "5"),
            ("syncLimit", "2"),
            ("server.1", "127.0.0.1:2888:3888"),
            ("server.2", "127.0.0.1:2889:3889;2182"),
            ("server.3", "[::1]:2890:3890:observer;127.0.0.3:2183"),
        ]
    }

    #[test]
    fn lines_parse_as_zookeeper_writes_them() {
        let k = keys(&three()).unwrap();
        assert!(k.is_ensemble());
        let s = &k.servers;
        assert_eq!(
            (s[0].host.as_str(), s[0].quorum_port, s[0].election_port),
            ("127.0.0.1", 2888, 3888)
        );
        assert_eq!(s[1].client, Some("0.0.0.0:2182".parse().unwrap()));
        assert_eq!(s[2].host, "::1");
        assert!(s[2].observer && !s[1].observer);
        assert_eq!(s[2].client, Some("127.0.0.3:2183".parse().unwrap()));
        let e = k
            .resolve(Some(2), "d/myid", "0.0.0.0:2182".parse().unwrap(), true)
            .unwrap();
        let observers: Vec<i64> = e
            .servers
            .iter()
            .filter(|s| s.observer)
            .map(|s| s.id)
            .collect();
        assert_eq!(observers, vec![3]);
        assert_eq!((e.me().id, e.init_limit, e.sync_limit), (2, 5, 2));
        assert_eq!(e.finalize_wait_ms, FINALIZE_WAIT_MS_DEFAULT);
        let slow = keys(&[three(), vec![("ringkeeper.electionFinalizeWaitMs", "200")]].concat());
        let client = "0.0.0.0:2182".parse().unwrap();
        let e = slow.unwrap().resolve(Some(2), "m", client, true).unwrap();
        assert_eq!(e.finalize_wait_ms, 200);
        assert_eq!(e.learner_queue_bytes, LEARNER_QUEUE_BYTES_DEFAULT);
        assert!(!e.listen_on_all_ips);
        let all = keys(&[three(), vec![("quorumListenOnAllIPs", "true")]].concat());
        assert!(
            all.unwrap()
                .resolve(Some(2), "m", client, true)
                .unwrap()
                .listen_on_all_ips
        );
        assert!(e.leader_serves);
        // As ZooKeeper's `equals("no")`: only "no" turns it off.
        for (v, serves) in [("no", false), ("yes", true), ("false", true), ("No", true)] {
            let k = keys(&[three(), vec![("leaderServes", v)]].concat());
            let e = k.unwrap().resolve(Some(2), "m", client, true).unwrap();
            assert_eq!(e.leader_serves, serves, "leaderServes={v}");
        }
        let bad = keys(&[three(), vec![("quorumListenOnAllIPs", "yes please")]].concat());
        assert!(bad
            .expect_err("not a boolean")
            .to_string()
            .contains("quorumListenOnAllIPs"));
        let small = keys(&[three(), vec![("ringkeeper.learnerQueueBytes", "1048576")]].concat());
        let e = small.unwrap().resolve(Some(2), "m", client, true).unwrap();
        assert_eq!(e.learner_queue_bytes, 1 << 20);
        for bad in ["1000", "-1", "x", "2000000000000"] {
            let k = keys(&[three(), vec![("ringkeeper.learnerQueueBytes", bad)]].concat());
            let e = k.expect_err(bad).to_string();
            assert!(e.contains("ringkeeper.learnerQueueBytes"), "{e}");
        }
    }

    /// As ZooKeeper's `ZKDatabase` reads them: out of range or not a number gets the default.
    #[test]
    fn commit_log_count_and_snapshot_size_factor_are_read_as_zookeeper_reads_them() {
        let client = "0.0.0.0:2182".parse().unwrap();
        let with = |key: &str, v: &str| {
            let k = keys(&[three(), vec![(key, v)]].concat()).unwrap();
            let e = k.resolve(Some(2), "m", client, true).unwrap();
            (e.commit_log_count, e.snapshot_size_factor)
        };
        let e = keys(&three())
            .unwrap()
            .resolve(Some(2), "m", client, true)
            .unwrap();
        assert_eq!((e.commit_log_count, e.snapshot_size_factor), (500, 0.33));
        for (v, want) in [("2000", 2000), ("499", 500), ("-1", 500), ("many", 500)] {
            assert_eq!(with("commitLogCount", v).0, want, "commitLogCount={v}");
        }
        for (v, want) in [
            ("0.5", 0.5),
            ("-1", -1.0),
            ("1", 1.0),
            ("0", 0.0),
            ("0.5d", 0.5),
            ("-Infinity", f64::NEG_INFINITY),
            ("1.5", 0.33),
            ("Infinity", 0.33),
            ("-inf", 0.33),
            ("x", 0.33),
            ("", 0.33),
        ] {
            assert_eq!(
                with("snapshotSizeFactor", v).1,
                want,
                "snapshotSizeFactor={v}"
            );
        }
        assert!(
            with("snapshotSizeFactor", "NaN").1.is_nan(),
            "Java keeps NaN"
        );
    }

    #[test]
    fn members_on_this_host_count_loopback_as_one_machine() {
        let client = "0.0.0.0:2182".parse().unwrap();
        let on_loopback = keys(&three()).unwrap();
        let e = on_loopback
            .clone()
            .resolve(Some(1), "m", client, true)
            .unwrap();
        assert_eq!(e.members_on_this_host(), 3, "127.0.0.1, 127.0.0.1 and ::1");
        let spread = keys(&[
            ("initLimit", "5"),
            ("syncLimit", "2"),
            ("server.1", "zk1.example:2888:3888"),
            ("server.2", "zk2.example:2888:3888"),
            ("server.3", "zk1.example:2889:3889"),
            ("server.4", "127.0.0.1:2890:3890"),
        ])
        .unwrap();
        let e = spread.clone().resolve(Some(1), "m", client, true).unwrap();
        assert_eq!(e.members_on_this_host(), 2, "zk1.example twice");
        let e = spread.clone().resolve(Some(2), "m", client, true);
        assert_eq!(e.unwrap().members_on_this_host(), 1);
        // Each takes its place among the members on its machine, in id order.
        let rank = |k: &EnsembleKeys, id| {
            let e = k.clone().resolve(Some(id), "m", client, true).unwrap();
            e.rank_on_this_host()
        };
        assert_eq!([1, 2, 3, 4].map(|id| rank(&spread, id)), [0, 0, 1, 0]);
        assert_eq!([1, 2].map(|id| rank(&on_loopback, id)), [0, 1]);
    }

    #[test]
    fn one_voter_is_standalone_unless_told_otherwise() {
        let k = keys(&[("server.1", "h:1:2")]).unwrap();
        assert!(!k.is_ensemble());
        let k = keys(&[("server.1", "h:1:2"), ("standaloneEnabled", "false")]).unwrap();
        assert!(k.is_ensemble());
        let e = keys(&[("server.1", "h:1:2"), ("server.2", "h:3:4:observer")]).unwrap_err();
        assert_eq!(e.key, "server.1");
    }

    #[test]
    fn bad_lines_name_their_key() {
        for (key, value, says) in [
            ("server.x", "h:1:2", "server id"),
            ("server.1", "h:1", "expected host"),
            ("server.1", "h:1:2:3:4", "expected host"),
            ("server.1", "h:1:1", "must be different"),
            ("server.1", "h:1:2:voter", "participant or observer"),
            ("server.1", "h:1:70000", "election port"),
            ("server.1", "a:1:2|b:1:2", "multiple addresses"),
            ("server.1", "h:1:2;x:y", "client port"),
            ("server.0", "h:1:2", "1 to 255"),
            ("server.256", "h:1:2", "1 to 255"),
        ] {
            let e = keys(&[(key, value), ("server.9", "h:7:8")]).unwrap_err();
            assert_eq!(e.key, key, "{value}");
            assert!(e.message.contains(says), "{value}: {}", e.message);
        }
        let e = keys(&[("initLimit", "0")]).unwrap_err();
        assert_eq!(e.key, "initLimit");
        for bad in ["-1", "60001", "x"] {
            let e = keys(&[("ringkeeper.electionFinalizeWaitMs", bad)]).unwrap_err();
            assert_eq!(e.key, "ringkeeper.electionFinalizeWaitMs", "{bad}");
        }
    }

    #[test]
    fn one_id_twice_or_one_port_twice_is_refused() {
        let e = keys(&[("server.1", "h:1:2"), ("server.01", "g:1:2")]).unwrap_err();
        assert_eq!(e.key, "server.01");
        assert!(e.message.contains("already used by server.1"), "{e}");
        let e = keys(&[("server.1", "h:1:2"), ("server.2", "h:3:1")]).unwrap_err();
        assert_eq!(e.key, "server.2");
        assert!(e.message.contains("server.1's quorum port"), "{e}");
        let e = keys(&[("server.1", "h:1:2;5"), ("server.2", "h:3:4;0.0.0.0:5")]).unwrap_err();
        assert_eq!(e.key, "server.2");
        // The same ports on different hosts are how real ensembles are written.
        keys(&[("server.1", "a:1:2;5"), ("server.2", "b:1:2;5")]).unwrap();
    }

    #[test]
    fn an_ensemble_needs_limits_and_a_myid_in_the_list() {
        let client: SocketAddr = "0.0.0.0:2181".parse().unwrap();
        let k = keys(&three()[2..]).unwrap();
        assert_eq!(
            k.resolve(Some(1), "m", client, false).unwrap_err().key,
            "initLimit"
        );
        let k = keys(&three()).unwrap();
        let e = k.resolve(None, "/d/myid", client, false).unwrap_err();
        assert_eq!(e.key, "myid");
        assert!(e.message.contains("/d/myid is missing"), "{e}");
        let e = k.resolve(Some(7), "/d/myid", client, false).unwrap_err();
        assert!(
            e.message.contains("not in the server list (1, 2, 3)"),
            "{e}"
        );
        // server.2 says its clients come to port 2182.
        let e = k.resolve(Some(2), "m", client, true).unwrap_err();
        assert_eq!(e.key, "clientPort");
    }
}
