//! The AdminServer: ZooKeeper 3.8's `/commands` over HTTP (`admin.serverPort`, 8080 unless
//! `admin.enableServer=false`), with its command names, aliases, JSON field names and
//! envelope, checked against Java ZooKeeper 3.8.0's Jetty AdminServer:
//! - `GET {commandURL}` lists the commands as HTML links; `GET {commandURL}/NAME` runs one.
//! - A command's data fields come first, then `"command"` (always the primary name), then
//!   `"error" : null`; a command that fails by itself puts `"error"` first. An unknown command
//!   is 200 with an error; a path outside the command URL is 404; other methods are 405.
//! - Commands that need a serving server answer "This ZooKeeper instance is not currently
//!   serving requests" while an ensemble member elects or syncs.
//! - JSON is printed as Jackson's default pretty printer prints it (`"key" : value`, two-space
//!   indent, arrays inline), so output compares byte for byte where the values agree.
//!
//! Where Ringkeeper has nothing to say that Java would compute from its JVM or its own
//! structures, it answers as a Java server with that feature off: `hash` is empty (ZooKeeper's
//! digest is off), buffer sizes are -1 (no samples), `observers` lists none in detail.

use crate::config::Config;
use crate::fourlw;
use crate::http::Answer;
use crate::shared::Shared;
use crate::stats::mode;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

/// ZooKeeper's default trace mask (`ZooTrace`): what `get_trace_mask` answers until set.
static TRACE_MASK: AtomicI64 = AtomicI64::new(306);

/// (primary name, aliases, answers only while serving), sorted by name as `/commands` lists them.
const COMMANDS: &[(&str, &[&str], bool)] = &[
    ("configuration", &["conf", "config"], true),
    ("connection_stat_reset", &["crst"], true),
    ("connections", &["cons"], true),
    ("dirs", &[], true),
    ("dump", &[], true),
    ("environment", &["env", "envi"], false),
    ("get_trace_mask", &["gtmk"], false),
    ("hash", &[], true),
    ("initial_configuration", &["icfg"], true),
    ("is_read_only", &["isro"], true),
    ("last_snapshot", &["lsnp"], true),
    ("leader", &["lead"], true),
    ("monitor", &["mntr"], false),
    ("observer_connection_stat_reset", &["orst"], true),
    ("observers", &["obsr"], true),
    ("ruok", &[], true),
    ("server_stats", &["srvr"], true),
    ("set_trace_mask", &["stmk"], false),
    ("snapshot", &["snap"], true),
    ("stat_reset", &["srst"], true),
    ("stats", &["stat"], true),
    ("system_properties", &["sysp"], false),
    ("voting_view", &[], true),
    ("watch_summary", &["wchs"], true),
    ("watches", &["wchc"], true),
    ("watches_by_path", &["wchp"], true),
    ("zabstate", &[], false),
];

const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

/// Answers one HTTP request.
pub fn handle(shared: &Shared, asked: &crate::http::Asked) -> Answer {
    let (method, url) = (asked.method, asked.url);
    let base = shared.cfg.admin_command_url.as_str();
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let Some(rest) = path.strip_prefix(base) else {
        return not_found(path);
    };
    if !rest.is_empty() && !rest.starts_with('/') {
        return not_found(path);
    }
    if !matches!(method, tiny_http::Method::Get | tiny_http::Method::Head) {
        return Answer::new(
            405,
            Some("text/html;charset=iso-8859-1"),
            error_page(405, "HTTP method not supported by this URL"),
        );
    }
    let name = percent_decode(rest.strip_prefix('/').unwrap_or(""));
    if name.is_empty() {
        return Answer::new(200, None, index(base));
    }
    if name == "snapshot" || name == "snap" {
        return futures_lite::future::block_on(snapshot(shared, asked, &name, query));
    }
    let body = futures_lite::future::block_on(run(shared, &name, query));
    Answer::new(200, Some("application/json"), to_jackson(&body))
}

fn json_answer(status: u16, body: &Map<String, Value>) -> Answer {
    Answer::new(status, Some("application/json"), to_jackson(body))
}

/// When the `snapshot` command last streamed one (it is rate limited).
static SNAPSHOT_LAST: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);

/// ZooKeeper 3.9's `snapshot`: the committed tree and sessions streamed in Java ZooKeeper's
/// own snapshot format (a Java server loads it as a `snapshot.<zxid>` file; `ringkeeper
/// import` reads it too), with `last_zxid` and `snapshot_size` headers. As in 3.9 it needs
/// every permission on `/` for the credentials of the `Authorization` header (`digest
/// user:password`, or `ip`), can be turned off (`admin.snapshot.enabled=false`: 503), and is
/// rate limited (`admin.rateLimiterIntervalInMS`: 429). `streaming=false` answers the headers
/// with a JSON body. Unlike ZooKeeper it does not also write a snapshot into the dataDir (the
/// `snap` four-letter word does that).
async fn snapshot(
    shared: &Shared,
    asked: &crate::http::Asked<'_>,
    typed: &str,
    query: &str,
) -> Answer {
    if shared.stats.mode.load(Relaxed) == mode::NOT_SERVING {
        return json_answer(200, &envelope_error("snapshot", NOT_SERVING));
    }
    let report = fourlw::report(shared, true).await;
    let Some(tree) = report.tree else {
        return json_answer(500, &envelope_error("snapshot", "no tree to snapshot"));
    };
    // Credentials, checked against the ACL of `/` for each permission.
    let Some(auth) = asked.authorization.as_deref() else {
        return json_answer(
            401,
            &envelope_error(typed, "Auth info is missing for the command"),
        );
    };
    let mut parts = auth.splitn(2, ' ');
    let ids = match (parts.next().unwrap_or(""), parts.next()) {
        ("digest", Some(user_password)) => {
            let id = ringkeeper_engine::tree::acl::digest_id(user_password);
            let mut ids = vec![ringkeeper_engine::proto::Id::new("digest", &id)];
            if shared.cfg.super_digest.as_deref() == Some(id.as_str()) {
                ids.push(ringkeeper_engine::proto::Id::new("super", &id));
            }
            ids
        }
        ("ip", None) => match asked.remote {
            Some(a) => vec![ringkeeper_engine::proto::Id::new("ip", &a.ip().to_string())],
            None => Vec::new(),
        },
        _ => Vec::new(),
    };
    if ids.is_empty() {
        return json_answer(401, &envelope_error(typed, "Not authenticated"));
    }
    let root_acl = &tree.get("/").expect("the root always exists").acl;
    use ringkeeper_engine::proto::perms;
    for perm in [
        perms::READ,
        perms::WRITE,
        perms::CREATE,
        perms::DELETE,
        perms::ADMIN,
    ] {
        if ringkeeper_engine::tree::acl::check(root_acl, perm, &ids).is_err() {
            return json_answer(403, &envelope_error(typed, "Not authorized"));
        }
    }
    if !shared.cfg.admin_snapshot_enabled {
        return json_answer(503, &envelope_error("snapshot", "")).with_null_error();
    }
    {
        let mut last = SNAPSHOT_LAST.lock().expect("not poisoned");
        let interval = std::time::Duration::from_millis(shared.cfg.snap_interval_ms);
        if last.is_some_and(|t| t.elapsed() < interval) {
            return json_answer(429, &envelope_error("snapshot", "")).with_null_error();
        }
        *last = Some(std::time::Instant::now());
    }
    let zxid = tree.last_zxid();
    let bytes = ringkeeper_engine::javafiles::write_snapshot(&tree, &report.session_timeouts);
    let headers = vec![
        ("last_zxid", format!("0x{zxid:x}")),
        ("snapshot_size", bytes.len().to_string()),
    ];
    let streaming = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("streaming="))
        .is_none_or(|v| v.eq_ignore_ascii_case("true"));
    let mut answer = if streaming {
        Answer {
            status: 200,
            content_type: Some("application/octet-stream"),
            body: bytes,
            headers: Vec::new(),
        }
    } else {
        let mut m = Map::new();
        m.insert("command".into(), json!("snapshot"));
        m.insert("error".into(), Value::Null);
        json_answer(200, &m)
    };
    answer.headers = headers;
    answer
}

impl Answer {
    /// ZooKeeper answers 503 and 429 with `"error" : null`.
    fn with_null_error(self) -> Answer {
        let mut m = Map::new();
        m.insert("command".into(), json!("snapshot"));
        m.insert("error".into(), Value::Null);
        json_answer(self.status, &m)
    }
}

fn not_found(path: &str) -> Answer {
    Answer::new(
        404,
        Some("text/html;charset=iso-8859-1"),
        error_page(404, &format!("Not Found: {path}")),
    )
}

fn error_page(code: u16, message: &str) -> String {
    format!("<html>\n<head><title>Error {code} {message}</title></head>\n<body><h2>HTTP ERROR {code} {message}</h2></body>\n</html>\n")
}

/// `/commands`: a link per command, as ZooKeeper lists them.
fn index(base: &str) -> String {
    let mut out = String::new();
    for (name, _, _) in COMMANDS {
        out.push_str(&format!("<a href=\"{base}/{name}\">{name}</a>\n<br/>\n"));
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs the command `name` (a primary name or an alias); the JSON object it answers.
pub async fn run(shared: &Shared, name: &str, query: &str) -> Map<String, Value> {
    let Some((primary, _, needs_serving)) = COMMANDS
        .iter()
        .find(|(p, aliases, _)| *p == name || aliases.contains(&name))
    else {
        return envelope_error(name, &format!("Unknown command: {name}"));
    };
    let serving = shared.stats.mode.load(Relaxed) != mode::NOT_SERVING;
    if *needs_serving && !serving {
        return envelope_error(primary, NOT_SERVING);
    }
    match data(shared, primary, query).await {
        Ok(mut data) => {
            data.insert("command".into(), json!(primary));
            data.insert("error".into(), Value::Null);
            data
        }
        // The command's own error: ZooKeeper puts it before "command".
        Err(message) => {
            let mut m = Map::new();
            m.insert("error".into(), json!(message));
            m.insert("command".into(), json!(primary));
            m
        }
    }
}

fn envelope_error(command: &str, error: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("command".into(), json!(command));
    m.insert("error".into(), json!(error));
    m
}

fn obj(pairs: Vec<(&str, Value)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// A command's data fields, or its own error.
async fn data(shared: &Shared, command: &str, query: &str) -> Result<Map<String, Value>, String> {
    let cfg = &shared.cfg;
    let s = &shared.stats;
    Ok(match command {
        "ruok" | "stat_reset" | "connection_stat_reset" | "observer_connection_stat_reset" => {
            match command {
                "stat_reset" => s.reset(),
                "connection_stat_reset" => fourlw::reset_conn_stats(shared).await,
                _ => {}
            }
            Map::new()
        }
        "configuration" => configuration(cfg),
        "connections" => {
            let conns: Vec<Value> = fourlw::conns(shared)
                .await
                .iter()
                .map(|c| connection(c, false))
                .collect();
            obj(vec![
                ("connections", Value::Array(conns)),
                ("secure_connections", json!([])),
            ])
        }
        "dirs" => obj(vec![
            (
                "datadir_size",
                json!(fourlw::dir_bytes(&crate::snapshot::snap_dir(&cfg.data_dir))),
            ),
            (
                "logdir_size",
                json!(fourlw::dir_bytes(&crate::log::log_dir(&cfg.data_log_dir))),
            ),
        ]),
        "dump" => {
            let r = fourlw::report(shared, true).await;
            let expiry: Map<String, Value> = r
                .sessions_by_deadline
                .iter()
                .map(|(d, ids)| (d.to_string(), json!(ids)))
                .collect();
            let ephemerals: Map<String, Value> = r
                .ephemerals_by_session
                .iter()
                .map(|(id, paths)| (id.to_string(), json!(paths)))
                .collect();
            obj(vec![
                ("expiry_time_to_session_ids", Value::Object(expiry)),
                ("session_id_to_ephemeral_paths", Value::Object(ephemerals)),
            ])
        }
        "environment" => fourlw::environment()
            .into_iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect(),
        "get_trace_mask" => obj(vec![("tracemask", json!(TRACE_MASK.load(Relaxed)))]),
        "set_trace_mask" => {
            let arg = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("traceMask="));
            let Some(arg) = arg else {
                return Err("setTraceMask requires long traceMask argument".into());
            };
            let mask: i64 = arg
                .parse()
                .map_err(|_| format!("setTraceMask requires long traceMask argument, got {arg}"))?;
            TRACE_MASK.store(mask, Relaxed);
            obj(vec![("tracemask", json!(mask))])
        }
        "hash" => obj(vec![("digests", json!([]))]),
        "initial_configuration" => {
            let text = if cfg.ensemble.is_some() {
                Value::Null
            } else {
                json!(cfg.text)
            };
            obj(vec![("initial_configuration", text)])
        }
        "is_read_only" => obj(vec![("read_only", json!(false))]),
        "last_snapshot" => last_snapshot(cfg),
        "leader" => leader(shared)?,
        "monitor" => {
            let mut m = Map::new();
            for (k, v) in fourlw::mntr_values(shared).await {
                m.insert(k.to_string(), number_or_string(k, &v));
            }
            m
        }
        "observers" => obj(vec![
            ("synced_observers", json!(s.synced_observers.load(Relaxed))),
            ("observers", json!([])),
        ]),
        "server_stats" | "stats" => {
            let conns = fourlw::conns(shared).await;
            let mut m = obj(vec![
                (
                    "version",
                    json!(format!("{}, built on unknown", fourlw::VERSION_LINE)),
                ),
                ("read_only", json!(false)),
                ("server_stats", Value::Object(server_stats(shared, &conns))),
                ("client_response", buffer_stats()),
            ]);
            if s.mode.load(Relaxed) == mode::LEADER {
                m.insert("proposal_stats".into(), buffer_stats());
            }
            m.insert("node_count".into(), json!(s.node_count.load(Relaxed)));
            if command == "stats" {
                let brief: Vec<Value> = conns.iter().map(|c| connection(c, true)).collect();
                m.insert("connections".into(), Value::Array(brief));
                m.insert("secure_connections".into(), json!([]));
            }
            m
        }
        "system_properties" => system_properties(cfg),
        "voting_view" => voting_view(cfg),
        "watch_summary" | "watches" | "watches_by_path" => {
            watch_data(command, fourlw::watches(shared).await)
        }
        "zabstate" => zabstate(shared),
        "snapshot" => return Err("the snapshot command streams; it is answered by handle".into()),
        other => unreachable!("{other} is in COMMANDS but has no data"),
    })
}

fn number_or_string(key: &str, v: &str) -> Value {
    if matches!(key, "version" | "server_state" | "peer_state") {
        return json!(v);
    }
    if let Ok(i) = v.parse::<i64>() {
        return json!(i);
    }
    if let Ok(f) = v.parse::<f64>() {
        return json!(f);
    }
    json!(v)
}

fn configuration(cfg: &Config) -> Map<String, Value> {
    obj(vec![
        ("client_port", json!(cfg.client_port)),
        ("data_dir", json!(cfg.data_dir.display().to_string())),
        (
            "data_log_dir",
            json!(cfg.data_log_dir.display().to_string()),
        ),
        ("tick_time", json!(cfg.tick_ms)),
        ("max_client_cnxns", json!(cfg.max_client_cnxns)),
        ("min_session_timeout", json!(cfg.min_session_timeout_ms)),
        ("max_session_timeout", json!(cfg.max_session_timeout_ms)),
        ("server_id", json!(cfg.server_id)),
        ("client_port_listen_backlog", json!(-1)),
    ])
}

fn connection(c: &crate::shared::ConnInfo, brief: bool) -> Value {
    let mut m = obj(vec![
        ("remote_socket_address", json!(c.peer)),
        // OP_READ: every connection reads.
        ("interest_ops", json!(1)),
        ("outstanding_requests", json!(c.queued)),
        ("packets_received", json!(c.received)),
        ("packets_sent", json!(c.sent)),
    ]);
    if !brief {
        for (k, v) in [
            ("session_id", json!(c.session_id)),
            ("last_operation", json!(c.last_op)),
            ("established", json!(c.established_ms)),
            ("session_timeout", json!(c.timeout_ms)),
            ("last_cxid", json!(c.last_cxid)),
            ("last_zxid", json!(c.last_zxid)),
            ("last_response_time", json!(c.last_response_ms)),
            ("last_latency", json!(c.last_latency_ms)),
            ("min_latency", json!(c.min_latency_ms)),
            ("avg_latency", json!(c.avg_latency_ms)),
            ("max_latency", json!(c.max_latency_ms)),
        ] {
            m.insert(k.into(), v);
        }
    }
    Value::Object(m)
}

/// ZooKeeper's response-size statistics; Ringkeeper keeps none (-1: no samples).
fn buffer_stats() -> Value {
    json!({"last_buffer_size": -1, "min_buffer_size": -1, "max_buffer_size": -1})
}

fn server_stats(shared: &Shared, conns: &[crate::shared::ConnInfo]) -> Map<String, Value> {
    let s = &shared.stats;
    let cfg = &shared.cfg;
    let (min, avg, max) = s.latency();
    let local = conns
        .iter()
        .filter(|c| {
            c.peer
                .parse::<std::net::SocketAddr>()
                .is_ok_and(|a| a.ip().is_loopback())
        })
        .count();
    obj(vec![
        ("packets_sent", json!(s.packets_sent.load(Relaxed))),
        ("packets_received", json!(s.packets_received.load(Relaxed))),
        (
            "fsync_threshold_exceed_count",
            json!(s.fsync_threshold_exceeded.load(Relaxed)),
        ),
        ("client_response_stats", buffer_stats()),
        (
            "data_dir_size",
            json!(fourlw::dir_bytes(&crate::snapshot::snap_dir(&cfg.data_dir))),
        ),
        (
            "log_dir_size",
            json!(fourlw::dir_bytes(&crate::log::log_dir(&cfg.data_log_dir))),
        ),
        ("provider_null", json!(false)),
        ("server_state", json!(mode::name(s.mode.load(Relaxed)))),
        ("last_processed_zxid", json!(s.last_zxid.load(Relaxed))),
        (
            "outstanding_requests",
            json!(s.outstanding.load(Relaxed).max(0)),
        ),
        ("avg_latency", json!(avg)),
        ("max_latency", json!(max)),
        ("min_latency", json!(min)),
        (
            "num_alive_client_connections",
            json!(s.alive_connections.load(Relaxed)),
        ),
        ("uptime", json!(shared.started.elapsed().as_millis() as u64)),
        ("auth_failed_count", json!(s.auth_failed.load(Relaxed))),
        ("non_mtlsremote_conn_count", json!(conns.len() - local)),
        ("non_mtlslocal_conn_count", json!(local)),
    ])
}

/// The newest snapshot file's zxid (hex, no 0x) and time (seconds), as `lsnp` reports them.
fn last_snapshot(cfg: &Config) -> Map<String, Value> {
    let dir = crate::snapshot::snap_dir(&cfg.data_dir);
    let newest = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let zxid = i64::from_str_radix(name.strip_prefix("snapshot.")?, 16).ok()?;
            let secs = e
                .metadata()
                .ok()?
                .modified()
                .ok()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_secs();
            Some((zxid, secs as i64))
        })
        .max();
    let (zxid, secs) = match newest {
        Some((z, t)) => (format!("{z:x}"), t),
        None => ("ffffffffffffffff".to_string(), -1),
    };
    obj(vec![("zxid", json!(zxid)), ("timestamp", json!(secs))])
}

fn leader(shared: &Shared) -> Result<Map<String, Value>, String> {
    let Some(e) = &shared.cfg.ensemble else {
        return Err("server is not initialized".into());
    };
    let id = shared.stats.leader_id.load(Relaxed);
    let ip = e
        .servers
        .iter()
        .find(|s| s.id == id)
        .map_or(String::new(), |s| s.host.clone());
    Ok(obj(vec![
        ("is_leader", json!(id == e.my_id)),
        ("leader_id", json!(id)),
        ("leader_ip", json!(ip)),
    ]))
}

fn system_properties(cfg: &Config) -> Map<String, Value> {
    let mut all: std::collections::BTreeMap<String, String> = fourlw::environment()
        .into_iter()
        .filter(|(_, v)| v != "<NA>")
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    // ZooKeeper sets each zoo.cfg key its QuorumPeerConfig does not parse itself as a
    // `zookeeper.` system property.
    for (k, v) in crate::config::properties(&cfg.text).unwrap_or_default() {
        if is_quorum_peer_config_key(&k) {
            continue;
        }
        let key = if k.starts_with("zookeeper.") {
            k
        } else {
            format!("zookeeper.{k}")
        };
        all.insert(key, v);
    }
    all.into_iter().map(|(k, v)| (k, json!(v))).collect()
}

/// The keys ZooKeeper 3.8's `QuorumPeerConfig.parseProperties` reads itself (the rest become
/// system properties).
fn is_quorum_peer_config_key(key: &str) -> bool {
    const KEYS: &[&str] = &[
        "dataDir",
        "dataLogDir",
        "clientPort",
        "localSessionsEnabled",
        "localSessionsUpgradingEnabled",
        "clientPortAddress",
        "secureClientPort",
        "secureClientPortAddress",
        "clientPortListenBacklog",
        "tickTime",
        "maxClientCnxns",
        "minSessionTimeout",
        "maxSessionTimeout",
        "initLimit",
        "syncLimit",
        "connectToLearnerMasterLimit",
        "electionAlg",
        "quorumListenOnAllIPs",
        "peerType",
        "syncEnabled",
        "dynamicConfigFile",
        "autopurge.snapRetainCount",
        "autopurge.purgeInterval",
        "standaloneEnabled",
        "reconfigEnabled",
        "sslQuorum",
        "portUnification",
        "sslQuorumReloadCertFiles",
        "quorum.cnxn.threads.size",
        "observer.masterPort",
        "multiAddress.enabled",
        "multiAddress.reachabilityCheckTimeoutMs",
        "multiAddress.reachabilityCheckEnabled",
        "oraclePath",
        "version",
    ];
    const PREFIXES: &[&str] = &[
        "server.",
        "group",
        "weight",
        "metricsProvider.",
        "quorum.auth.",
    ];
    KEYS.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p))
}

fn voting_view(cfg: &Config) -> Map<String, Value> {
    let mut view = Map::new();
    if let Some(e) = &cfg.ensemble {
        for s in &e.servers {
            let client = match s.client {
                Some(_) if s.id == e.my_id => cfg.client_addr().to_string(),
                Some(c) => c.to_string(),
                None if s.id == e.my_id => cfg.client_addr().to_string(),
                None => String::new(),
            };
            view.insert(
                s.id.to_string(),
                json!({
                    "server_addresses": [format!("{}:{}", s.host, s.quorum_port)],
                    "election_addresses": [format!("{}:{}", s.host, s.election_port)],
                    "client_address": client,
                    "learner_type": if s.observer { "observer" } else { "participant" },
                }),
            );
        }
    }
    obj(vec![("current_config", Value::Object(view))])
}

fn watch_data(command: &str, pairs: Vec<(String, i64)>) -> Map<String, Value> {
    use std::collections::{BTreeMap, BTreeSet};
    match command {
        "watch_summary" => {
            let sessions: BTreeSet<i64> = pairs.iter().map(|(_, s)| *s).collect();
            let paths: BTreeSet<&str> = pairs.iter().map(|(p, _)| p.as_str()).collect();
            obj(vec![
                ("num_connections", json!(sessions.len())),
                ("num_paths", json!(paths.len())),
                ("num_total_watches", json!(pairs.len())),
            ])
        }
        "watches" => {
            let mut by: BTreeMap<i64, Vec<String>> = BTreeMap::new();
            for (p, s) in pairs {
                by.entry(s).or_default().push(p);
            }
            let m: Map<String, Value> = by
                .into_iter()
                .map(|(s, p)| (s.to_string(), json!(p)))
                .collect();
            obj(vec![("session_id_to_watched_paths", Value::Object(m))])
        }
        _ => {
            let mut by: BTreeMap<String, Vec<i64>> = BTreeMap::new();
            for (p, s) in pairs {
                by.entry(p).or_default().push(s);
            }
            let m: Map<String, Value> = by.into_iter().map(|(p, s)| (p, json!(s))).collect();
            obj(vec![("path_to_session_ids", Value::Object(m))])
        }
    }
}

fn zabstate(shared: &Shared) -> Map<String, Value> {
    let s = &shared.stats;
    let m = s.mode.load(Relaxed);
    let (Some(e), true) = (&shared.cfg.ensemble, m != mode::NOT_SERVING) else {
        return obj(vec![("voting", json!(false)), ("zabstate", json!(""))]);
    };
    let me = e.me();
    let address = |port: u16| {
        json!({
            "empty": false,
            "all_addresses": [format!("{}:{}", me.host, port)],
            "one": format!("{}:{}", me.host, port),
            "wildcard_addresses": [format!("0.0.0.0:{port}")],
            "all_ports": [port],
            "all_host_strings": [me.host],
        })
    };
    let zxid = s.last_zxid.load(Relaxed);
    obj(vec![
        ("myid", json!(e.my_id)),
        ("is_leader", json!(m == mode::LEADER)),
        ("quorum_address", address(me.quorum_port)),
        ("election_address", address(me.election_port)),
        (
            "client_address",
            json!(shared.cfg.client_addr().to_string()),
        ),
        ("voting", json!(!me.observer)),
        ("last_zxid", json!(format!("0x{zxid:x}"))),
        ("zab_epoch", json!(zxid >> 32)),
        ("zab_counter", json!(zxid & 0xffff_ffff)),
        ("zabstate", json!("broadcast")),
    ])
}

/// JSON as Jackson's default pretty printer writes it: objects one field per line with two
/// spaces per level and `"key" : value`, arrays inline (`[ a, b ]`), `{ }` and `[ ]` when empty,
/// no newline at the end.
pub fn to_jackson(m: &Map<String, Value>) -> String {
    let mut out = String::new();
    write_object(&mut out, m, 0);
    out
}

fn write_value(out: &mut String, v: &Value, depth: usize) {
    match v {
        Value::Object(m) => write_object(out, m, depth),
        Value::Array(a) if a.is_empty() => out.push_str("[ ]"),
        Value::Array(a) => {
            out.push_str("[ ");
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, e, depth);
            }
            out.push_str(" ]");
        }
        Value::Number(n) if n.is_f64() => {
            out.push_str(&fourlw::java_double(n.as_f64().unwrap_or(0.0)))
        }
        other => out.push_str(&other.to_string()),
    }
}

fn write_object(out: &mut String, m: &Map<String, Value>, depth: usize) {
    if m.is_empty() {
        out.push_str("{ }");
        return;
    }
    out.push('{');
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('\n');
        out.push_str(&"  ".repeat(depth + 1));
        out.push_str(&Value::String(k.clone()).to_string());
        out.push_str(" : ");
        write_value(out, v, depth + 1);
    }
    out.push('\n');
    out.push_str(&"  ".repeat(depth));
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_prints_as_jackson_prints_it() {
        let m = obj(vec![
            ("a", json!([1, 2])),
            ("b", json!({})),
            ("c", json!([{"x": 1.0}, {"y": "z"}])),
            ("d", json!([])),
            ("e", Value::Null),
        ]);
        let want = "{\n  \"a\" : [ 1, 2 ],\n  \"b\" : { },\n  \"c\" : [ {\n    \"x\" : 1.0\n  }, {\n    \"y\" : \"z\"\n  } ],\n  \"d\" : [ ],\n  \"e\" : null\n}";
        assert_eq!(to_jackson(&m), want);
    }

    #[test]
    fn percent_escapes_decode() {
        assert_eq!(percent_decode("r%75ok"), "ruok");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
