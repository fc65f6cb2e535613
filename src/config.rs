//! Server configuration in ZooKeeper's `zoo.cfg` form (Java properties: `key=value`, `#` and `!`
//! comments). Known keys are parsed and checked; unknown keys are logged and ignored, as
//! ZooKeeper does. A bad value is an error that names the key.

pub mod ensemble;

use ensemble::{Ensemble, EnsembleKeys};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// The configuration `ringkeeper serve` uses when given no file.
pub const DEFAULT_CFG: &str = "\
# Ringkeeper's embedded default: a standalone server on loopback.
tickTime=2000
dataDir=./ringkeeper-data
clientPort=2181
clientPortAddress=127.0.0.1
maxClientCnxns=60
# Words that reveal no data, paths or session ids; ZooKeeper's own default enables only srvr.
4lw.commands.whitelist=ruok, srvr, mntr, conf, isro, dirs
# The AdminServer on loopback too (ZooKeeper's default address is every interface).
admin.serverAddress=127.0.0.1
";

/// Every four-letter word this server knows.
pub const ALL_4LW: &[&str] = &[
    "ruok", "srvr", "stat", "mntr", "conf", "cons", "crst", "srst", "envi", "wchs", "wchc", "wchp",
    "dump", "isro", "snap", "dirs",
];

#[derive(Debug, Clone)]
pub struct Config {
    pub tick_ms: i64,
    pub data_dir: PathBuf,
    pub data_log_dir: PathBuf,
    pub client_port: u16,
    pub client_port_address: IpAddr,
    pub max_client_cnxns: usize,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub four_letter_words: Vec<String>,
    pub jute_max_buffer: usize,
    pub extended_types: bool,
    pub super_digest: Option<String>,
    pub container_check_ms: i64,
    pub container_never_used_ms: i64,
    pub global_outstanding_limit: usize,
    pub server_id: i64,
    /// `preAllocSize`, in bytes (the key is in KiB, as ZooKeeper's).
    pub prealloc_bytes: u64,
    /// `forceSync`: fdatasync each log batch before acknowledging it.
    pub force_sync: bool,
    /// `fsync.warningthresholdms`.
    pub fsync_warn_ms: u64,
    /// `snapCount`: a snapshot after about this many txns (randomized between half and all of it).
    pub snap_count: u64,
    /// `autopurge.snapRetainCount` (at least 3, as in ZooKeeper).
    pub snap_retain_count: usize,
    /// `autopurge.purgeInterval`, in hours; 0 turns purging off.
    pub purge_interval_hours: u64,
    /// `nio.sessionlessCnxnTimeout` (ZooKeeper's): a new connection must finish its handshake
    /// (connect request, or a four-letter word and its answer) within this.
    pub connect_timeout_ms: u64,
    /// `ringkeeper.connectRequestMaxBytes`: largest connect request frame.
    pub connect_request_bytes_max: usize,
    /// `ringkeeper.clientOutputPauseBytes`: a connection reads no further request while it has
    /// more than this unsent.
    pub client_out_pause_bytes: usize,
    /// `ringkeeper.clientOutputMaxBytes`: a connection with more than this unsent is closed.
    pub client_out_bytes_max: usize,
    /// `ringkeeper.clientWriteStallMs`: a connection whose output makes no progress for this
    /// long is closed; 0 means its session timeout.
    pub client_write_stall_ms: u64,
    /// `ringkeeper.serverOutputBudgetBytes`: unsent bytes over all connections; past it, the
    /// connection holding the most is closed.
    pub server_out_budget_bytes: usize,
    /// `admin.rateLimiterIntervalInMS` (ZooKeeper's): least time between two `snap` words.
    pub snap_interval_ms: u64,
    /// The AdminServer's address (`admin.serverAddress`:`admin.serverPort`, 0.0.0.0:8080 as in
    /// ZooKeeper); `None` when `admin.enableServer=false`.
    pub admin_addr: Option<SocketAddr>,
    /// `admin.commandURL`: where the AdminServer's commands live.
    pub admin_command_url: String,
    /// `admin.snapshot.enabled` (ZooKeeper 3.9's, default true): the AdminServer's `snapshot`.
    pub admin_snapshot_enabled: bool,
    /// The Prometheus endpoint's address (`metricsProvider.httpHost`:`metricsProvider.httpPort`,
    /// 0.0.0.0:7000 as in ZooKeeper), when `metricsProvider.className` names ZooKeeper's
    /// Prometheus provider or `ringkeeper.metricsEnabled=true`; `None` otherwise.
    pub metrics_addr: Option<SocketAddr>,
    /// The config file's text as read (the AdminServer's `initial_configuration`).
    pub text: String,
    /// Where this configuration came from (a path, or "embedded default").
    pub source: String,
    /// The ensemble this server is a member of; `None` runs standalone.
    pub ensemble: Option<Ensemble>,
    /// The ensemble keys as written, resolved against `myid` by [`Config::load`].
    ensemble_keys: EnsembleKeys,
    /// Whether `clientPort` was given (a `server.N` line's client part must then agree).
    client_port_given: bool,
    /// `dynamicConfigFile`: where the `server.N` lines are (ZooKeeper 3.5's split config);
    /// [`Config::load`] reads it.
    dynamic_config_file: Option<PathBuf>,
}

#[derive(Debug)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid config key '{}': {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        message: message.into(),
    }
}

/// Parses Java-properties text into key/value pairs, in file order. A repeated key keeps its
/// last value, as Java's `Properties` does, except a repeated `server.N`, which is an error:
/// ZooKeeper would silently drop one of the two servers.
pub fn properties(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let split = line.find(['=', ':']).unwrap_or(line.len());
        let key = line[..split].trim();
        let value = line.get(split + 1..).unwrap_or("").trim().to_string();
        match out.iter_mut().find(|(k, _)| k == key) {
            Some(_) if key.starts_with("server.") => return Err(err(key, "is given twice")),
            Some((_, v)) => *v = value,
            None => out.push((key.to_string(), value)),
        }
    }
    Ok(out)
}

fn num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value
        .parse::<T>()
        .map_err(|_| err(key, format!("'{value}' is not a valid number")))
}

fn positive(key: &str, value: &str) -> Result<u64, ConfigError> {
    match num::<u64>(key, value)? {
        0 => Err(err(key, "must be positive")),
        v => Ok(v),
    }
}

fn boolean(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" => Ok(true),
        "false" | "no" => Ok(false),
        _ => Err(err(key, format!("'{value}' is not true or false"))),
    }
}

impl Config {
    pub fn embedded_default() -> Config {
        Config::parse(DEFAULT_CFG, "embedded default", None)
            .expect("the embedded default config is valid")
    }

    /// Reads `path`, and `myid` from its dataDir when present; with `server.N` lines that make
    /// an ensemble, `myid` must name one of them.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("--config", format!("cannot read {}: {e}", path.display())))?;
        let mut cfg = Config::parse(&text, &path.display().to_string(), None)?;
        if let Some(dynamic) = cfg.dynamic_config_file.clone() {
            cfg.read_dynamic(&dynamic)?;
        }
        let myid_path = cfg.data_dir.join("myid");
        let mut myid = None;
        if let Ok(id) = std::fs::read_to_string(&myid_path) {
            // ZooKeeper reads the first line.
            let id = id.lines().next().unwrap_or("").trim();
            let id: i64 = id.parse().map_err(|_| {
                err(
                    "myid",
                    format!("{} holds '{id}', not a number", myid_path.display()),
                )
            })?;
            cfg.server_id = id;
            myid = Some(id);
        }
        if cfg.ensemble_keys.is_ensemble() {
            let ensemble = cfg.ensemble_keys.resolve(
                myid,
                &myid_path.display().to_string(),
                cfg.client_addr(),
                cfg.client_port_given,
            )?;
            if let Some(c) = ensemble.me().client {
                cfg.client_port_address = c.ip();
                cfg.client_port = c.port();
            }
            let mut ensemble = ensemble;
            // A learner's queue must hold the largest txn with room to spare, or every follower
            // would be cut off by each large write.
            let floor = 4 * cfg.jute_max_buffer as u64;
            if ensemble.learner_queue_bytes < floor {
                tracing::warn!(
                    key = "ringkeeper.learnerQueueBytes",
                    floor,
                    "below 4 x jute.maxbuffer; using that"
                );
                ensemble.learner_queue_bytes = floor;
            }
            cfg.ensemble = Some(ensemble);
        } else if let Some(c) =
            cfg.ensemble_keys
                .standalone_client(myid, cfg.client_addr(), cfg.client_port_given)?
        {
            // One server line, standalone: its client address is where ZooKeeper listens too.
            cfg.client_port_address = c.ip();
            cfg.client_port = c.port();
        }
        Ok(cfg)
    }

    pub fn parse(text: &str, source: &str, _unused: Option<()>) -> Result<Config, ConfigError> {
        let raw = properties(text)?;
        let mut c = Config {
            tick_ms: 2000,
            data_dir: PathBuf::from("./ringkeeper-data"),
            data_log_dir: PathBuf::new(),
            client_port: 2181,
            client_port_address: IpAddr::from([0, 0, 0, 0]),
            max_client_cnxns: 60,
            min_session_timeout_ms: -1,
            max_session_timeout_ms: -1,
            four_letter_words: vec!["srvr".to_string()],
            jute_max_buffer: 0xfffff,
            extended_types: false,
            super_digest: None,
            container_check_ms: 60_000,
            container_never_used_ms: 0,
            global_outstanding_limit: 1000,
            server_id: 0,
            prealloc_bytes: 64 << 20,
            force_sync: true,
            fsync_warn_ms: 1000,
            snap_count: 100_000,
            snap_retain_count: 3,
            purge_interval_hours: 0,
            connect_timeout_ms: 10_000,
            connect_request_bytes_max: 4096,
            client_out_pause_bytes: 256 << 10,
            client_out_bytes_max: 32 << 20,
            client_write_stall_ms: 0,
            server_out_budget_bytes: 256 << 20,
            snap_interval_ms: 300_000,
            admin_addr: None,
            admin_command_url: "/commands".to_string(),
            admin_snapshot_enabled: true,
            metrics_addr: None,
            text: text.to_string(),
            source: source.to_string(),
            ensemble: None,
            ensemble_keys: EnsembleKeys::new(),
            client_port_given: false,
            dynamic_config_file: None,
        };
        let mut data_log_dir = None;
        let mut admin = (true, IpAddr::from([0, 0, 0, 0]), 8080u16);
        let mut metrics = (false, IpAddr::from([0, 0, 0, 0]), 7000u16);
        let ip = |k: &str, value: &str| -> Result<IpAddr, ConfigError> {
            value
                .parse()
                .map_err(|_| err(k, format!("'{value}' is not an IP address")))
        };
        for (key, value) in &raw {
            let k = key.as_str();
            let stripped = k.strip_prefix("zookeeper.").unwrap_or(k);
            match stripped {
                "tickTime" => c.tick_ms = num(k, value)?,
                "dataDir" => c.data_dir = PathBuf::from(value),
                "dataLogDir" => data_log_dir = Some(PathBuf::from(value)),
                "clientPort" => {
                    c.client_port = num(k, value)?;
                    c.client_port_given = true;
                }
                "clientPortAddress" => {
                    c.client_port_address = value
                        .parse()
                        .map_err(|_| err(k, format!("'{value}' is not an IP address")))?
                }
                "maxClientCnxns" => c.max_client_cnxns = num(k, value)?,
                "minSessionTimeout" => c.min_session_timeout_ms = num(k, value)?,
                "maxSessionTimeout" => c.max_session_timeout_ms = num(k, value)?,
                "4lw.commands.whitelist" => {
                    let words: Vec<String> = value
                        .split(',')
                        .map(|w| w.trim().to_string())
                        .filter(|w| !w.is_empty())
                        .collect();
                    for w in &words {
                        if w != "*" && !ALL_4LW.contains(&w.as_str()) {
                            tracing::warn!(key = k, word = %w, "unknown four-letter word in whitelist, ignored");
                        }
                    }
                    c.four_letter_words = words;
                }
                "jute.maxbuffer" => {
                    let v: usize = parse_size(k, value)?;
                    if v == 0 {
                        return Err(err(k, "must be positive"));
                    }
                    c.jute_max_buffer = v;
                }
                "extendedTypesEnabled" => c.extended_types = boolean(k, value)?,
                "DigestAuthenticationProvider.superDigest" | "superDigest" => {
                    if !value.contains(':') {
                        return Err(err(k, "expected user:base64digest"));
                    }
                    c.super_digest = Some(value.clone());
                }
                "znode.container.checkIntervalMs" | "containerCheckIntervalMs" => {
                    c.container_check_ms = num(k, value)?
                }
                "znode.container.maxNeverUsedIntervalMs" => {
                    c.container_never_used_ms = num(k, value)?
                }
                "globalOutstandingLimit" => c.global_outstanding_limit = num(k, value)?,
                "preAllocSize" => {
                    let kib: u64 = num(k, value)?;
                    if kib < 64 {
                        return Err(err(k, "must be at least 64 (KiB)"));
                    }
                    c.prealloc_bytes = kib * 1024;
                }
                "forceSync" => c.force_sync = boolean(k, value)?,
                "fsync.warningthresholdms" => c.fsync_warn_ms = num(k, value)?,
                "snapCount" => {
                    c.snap_count = num(k, value)?;
                    if c.snap_count < 2 {
                        tracing::warn!(key = k, "snapCount below 2; using 2");
                        c.snap_count = 2;
                    }
                }
                "autopurge.snapRetainCount" => {
                    c.snap_retain_count = num(k, value)?;
                    if c.snap_retain_count < 3 {
                        tracing::warn!(
                            key = k,
                            "snapRetainCount below 3; using 3, as ZooKeeper does"
                        );
                        c.snap_retain_count = 3;
                    }
                }
                "autopurge.purgeInterval" => c.purge_interval_hours = num(k, value)?,
                "nio.sessionlessCnxnTimeout" => c.connect_timeout_ms = positive(k, value)?,
                "ringkeeper.connectRequestMaxBytes" => {
                    c.connect_request_bytes_max = positive(k, value)? as usize
                }
                "ringkeeper.clientOutputPauseBytes" => {
                    c.client_out_pause_bytes = positive(k, value)? as usize
                }
                "ringkeeper.clientOutputMaxBytes" => {
                    c.client_out_bytes_max = positive(k, value)? as usize
                }
                "ringkeeper.clientWriteStallMs" => c.client_write_stall_ms = num(k, value)?,
                "ringkeeper.serverOutputBudgetBytes" => {
                    c.server_out_budget_bytes = positive(k, value)? as usize
                }
                "admin.rateLimiterIntervalInMS" => c.snap_interval_ms = num(k, value)?,
                "dynamicConfigFile" => c.dynamic_config_file = Some(PathBuf::from(value)),
                _ if stripped.starts_with("group.") || stripped.starts_with("weight.") => {
                    // Ignoring them would change what a quorum is.
                    return Err(err(
                        k,
                        "hierarchical quorums (group/weight) are not supported",
                    ));
                }
                _ if c.ensemble_keys.take(stripped, value)? => {}
                "admin.enableServer" => admin.0 = boolean(k, value)?,
                "admin.serverAddress" => admin.1 = ip(k, value)?,
                "admin.serverPort" => admin.2 = num(k, value)?,
                "admin.commandURL" => {
                    if !value.starts_with('/') {
                        return Err(err(k, "must start with '/'"));
                    }
                    c.admin_command_url = value.trim_end_matches('/').to_string();
                }
                "admin.snapshot.enabled" => c.admin_snapshot_enabled = boolean(k, value)?,
                "admin.idleTimeout" => {
                    num::<u64>(k, value)?;
                }
                // ZooKeeper's Prometheus provider, by its class name; any other provider class
                // (ZooKeeper's default is a null provider) leaves the endpoint off.
                "metricsProvider.className" => {
                    metrics.0 = value.ends_with(".PrometheusMetricsProvider")
                }
                "ringkeeper.metricsEnabled" => metrics.0 = boolean(k, value)?,
                "metricsProvider.httpHost" => metrics.1 = ip(k, value)?,
                "metricsProvider.httpPort" => metrics.2 = num(k, value)?,
                "metricsProvider.exportJvmInfo" => {
                    boolean(k, value)?;
                }
                "reconfigEnabled" => {
                    tracing::info!(
                        key = k,
                        "config key accepted; it has no effect until its feature lands"
                    );
                }
                _ => tracing::warn!(key = k, "unknown config key, ignored"),
            }
        }
        if c.tick_ms <= 0 {
            return Err(err("tickTime", "must be positive"));
        }
        if c.min_session_timeout_ms == -1 {
            c.min_session_timeout_ms = (c.tick_ms * 2) as i32;
        }
        if c.max_session_timeout_ms == -1 {
            c.max_session_timeout_ms = (c.tick_ms * 20) as i32;
        }
        if c.min_session_timeout_ms > c.max_session_timeout_ms {
            return Err(err(
                "minSessionTimeout",
                "must not be greater than maxSessionTimeout",
            ));
        }
        if c.container_check_ms <= 0 {
            return Err(err("znode.container.checkIntervalMs", "must be positive"));
        }
        if c.global_outstanding_limit == 0 {
            return Err(err("globalOutstandingLimit", "must be positive"));
        }
        if c.client_out_pause_bytes > c.client_out_bytes_max {
            return Err(err(
                "ringkeeper.clientOutputPauseBytes",
                "must not be greater than ringkeeper.clientOutputMaxBytes",
            ));
        }
        if c.dynamic_config_file.is_none() {
            // Else the server lines are still to come: `read_dynamic` checks them.
            c.ensemble_keys.check(c.extended_types)?;
        }
        c.data_log_dir = data_log_dir.unwrap_or_else(|| c.data_dir.clone());
        c.admin_addr = admin.0.then(|| SocketAddr::new(admin.1, admin.2));
        c.metrics_addr = metrics.0.then(|| SocketAddr::new(metrics.1, metrics.2));
        Ok(c)
    }

    /// The `server.N` lines of a `dynamicConfigFile`, as ZooKeeper 3.5+ reads them: with one
    /// set, the static file may hold none, and the dynamic file nothing else (ZooKeeper 3.8
    /// refuses both, and a `version` inside the file too).
    fn read_dynamic(&mut self, path: &std::path::Path) -> Result<(), ConfigError> {
        if let Some(s) = self.ensemble_keys.servers.first() {
            return Err(err(
                &s.key,
                "must be in the separate dynamic config file (dynamicConfigFile is set)",
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            err(
                "dynamicConfigFile",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        for (key, value) in properties(&text)? {
            if key.starts_with("server.") {
                self.ensemble_keys.take(&key, &value)?;
            } else if key == "version" {
                // ZooKeeper keeps the version in the file's name, never inside.
                return Err(err(
                    &key,
                    "a dynamic config file must not hold the version (ZooKeeper refuses it too)",
                ));
            } else if key.starts_with("group.") || key.starts_with("weight.") {
                return Err(err(
                    &key,
                    "hierarchical quorums (group/weight) are not supported",
                ));
            } else {
                return Err(err(
                    &key,
                    format!(
                        "not a dynamic config key; {} may hold only server.N lines (ZooKeeper refuses others too)",
                        path.display()
                    ),
                ));
            }
        }
        self.ensemble_keys.check(self.extended_types)
    }

    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::new(self.client_port_address, self.client_port)
    }

    pub fn four_letter_allowed(&self, word: &str) -> bool {
        self.four_letter_words.iter().any(|w| w == "*" || w == word)
    }
}

/// ZooKeeper accepts plain byte counts for jute.maxbuffer; hex (0x...) is accepted as well.
fn parse_size(key: &str, value: &str) -> Result<usize, ConfigError> {
    if let Some(hex) = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        return usize::from_str_radix(hex, 16)
            .map_err(|_| err(key, format!("'{value}' is not a valid number")));
    }
    num(key, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_zookeeper() {
        let c = Config::parse("tickTime=3000\n", "t", None).unwrap();
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (6000, 60000)
        );
        assert_eq!(c.jute_max_buffer, 1048575);
        assert!(c.four_letter_allowed("srvr"));
        assert!(!c.four_letter_allowed("ruok"));
    }

    #[test]
    fn embedded_default_serves_loopback_2181() {
        let c = Config::embedded_default();
        assert_eq!(c.client_addr().to_string(), "127.0.0.1:2181");
        for safe in ["ruok", "srvr", "mntr", "conf", "isro", "dirs"] {
            assert!(c.four_letter_allowed(safe), "{safe}");
        }
        // Paths, session ids and client addresses, or disk writes on demand.
        for revealing in [
            "dump", "wchp", "wchc", "wchs", "cons", "stat", "envi", "snap", "crst",
        ] {
            assert!(!c.four_letter_allowed(revealing), "{revealing}");
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = Config::parse("clientPort=abc\n", "t", None).unwrap_err();
        assert_eq!(e.key, "clientPort");
        let e = Config::parse("minSessionTimeout=9000\nmaxSessionTimeout=100\n", "t", None)
            .unwrap_err();
        assert_eq!(e.key, "minSessionTimeout");
        let e = Config::parse("extendedTypesEnabled=maybe\n", "t", None).unwrap_err();
        assert_eq!(e.key, "extendedTypesEnabled");
    }

    #[test]
    fn a_server_line_given_twice_is_refused_other_keys_keep_the_last() {
        let e = Config::parse("server.1=a:1:2\nserver.1=b:1:2\n", "t", None).unwrap_err();
        assert_eq!(e.key, "server.1");
        assert!(e.message.contains("twice"), "{e}");
        let c = Config::parse("tickTime=1000\ntickTime=3000\n", "t", None).unwrap();
        assert_eq!(c.tick_ms, 3000);
    }

    #[test]
    fn zookeeper_prefixed_keys_are_understood() {
        let c = Config::parse(
            "zookeeper.extendedTypesEnabled=true\n# c\n! c\njute.maxbuffer=0x1000\n",
            "t",
            None,
        )
        .unwrap();
        assert!(c.extended_types);
        assert_eq!(c.jute_max_buffer, 4096);
    }

    /// Writes zoo.cfg (with `static_extra`), zoo.cfg.dynamic (`dynamic`) and myid 2 into a
    /// fresh directory, and loads the config.
    fn load_split(name: &str, static_extra: &str, dynamic: &str) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("rk-cfg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/myid"), "2\n").unwrap();
        std::fs::write(dir.join("zoo.cfg.dynamic"), dynamic).unwrap();
        let cfg = format!(
            "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={0}/data\n\
             dynamicConfigFile={0}/zoo.cfg.dynamic\n{static_extra}",
            dir.display()
        );
        std::fs::write(dir.join("zoo.cfg"), cfg).unwrap();
        let c = Config::load(&dir.join("zoo.cfg"));
        let _ = std::fs::remove_dir_all(&dir);
        c
    }

    const THREE: &str = "server.1=127.0.0.1:2888:3888;2181\nserver.2=127.0.0.1:2889:3889;2182\n\
                         server.3=127.0.0.1:2890:3890;2183\n";

    #[test]
    fn server_lines_come_from_the_dynamic_config_file() {
        let c = load_split("ok", "", THREE).unwrap();
        let e = c.ensemble.as_ref().expect("an ensemble");
        assert_eq!((e.my_id, e.servers.len()), (2, 3));
        assert_eq!(c.client_port, 2182, "the client port from server.2's line");
        // ZooKeeper's reconfig layout: standaloneEnabled=false with the lines elsewhere.
        let c = load_split("alone", "standaloneEnabled=false\n", THREE).unwrap();
        assert_eq!(c.ensemble.expect("an ensemble").servers.len(), 3);
    }

    #[test]
    fn one_server_line_runs_standalone_on_its_client_address() {
        // As Java ZooKeeper 3.8 does (checked: it binds the line's 21855, not 2181).
        let one = "server.2=127.0.0.1:2888:3888;127.0.0.1:21855\n";
        let c = load_split("one", "", one).unwrap();
        assert!(c.ensemble.is_none());
        assert_eq!(
            c.client_addr(),
            "127.0.0.1:21855".parse::<SocketAddr>().unwrap()
        );
        let clash = load_split("one-clash", "clientPort=2181\n", one);
        assert_eq!(clash.expect_err("2181 is not 21855").key, "clientPort");
    }

    #[test]
    fn a_learner_queue_holds_at_least_four_of_the_largest_txns() {
        let small = "ringkeeper.learnerQueueBytes=65536\n";
        let e = load_split("queue", small, THREE).unwrap().ensemble.unwrap();
        assert_eq!(e.learner_queue_bytes, 4 * 0xfffff);
        let e = load_split("queue2", "ringkeeper.learnerQueueBytes=8388608\n", THREE)
            .unwrap()
            .ensemble
            .unwrap();
        assert_eq!(e.learner_queue_bytes, 8 << 20);
    }

    #[test]
    fn a_split_config_is_refused_where_zookeeper_refuses_it() {
        let key = |r: Result<Config, ConfigError>| r.expect_err("refused").key;
        // A server line in the static file as well.
        assert_eq!(
            key(load_split("both", "server.1=127.0.0.1:2888:3888\n", THREE)),
            "server.1"
        );
        // A version inside the dynamic file, or any key but server.N.
        assert_eq!(
            key(load_split(
                "version",
                "",
                &format!("{THREE}version=100000000\n")
            )),
            "version"
        );
        assert_eq!(
            key(load_split(
                "other",
                "",
                &format!("{THREE}clientPort=2181\n")
            )),
            "clientPort"
        );
        // Hierarchical quorums, in either file.
        assert_eq!(
            key(load_split("group", "", &format!("{THREE}group.1=1:2:3\n"))),
            "group.1"
        );
        assert_eq!(key(load_split("weight", "weight.1=1\n", THREE)), "weight.1");
        // A dynamic file that is not there.
        let missing = Config::parse(
            "dynamicConfigFile=/nonexistent/zoo.cfg.dynamic\n",
            "t",
            None,
        )
        .unwrap()
        .read_dynamic(std::path::Path::new("/nonexistent/zoo.cfg.dynamic"));
        assert_eq!(missing.expect_err("no file").key, "dynamicConfigFile");
    }
}
