//! `ringkeeper`: a ZooKeeper-compatible coordination server.

#![deny(unsafe_code)] // allowed only where a comment says why it is sound

mod admin;
mod clock;
mod config;
mod conn;
mod ensemble;
mod files;
mod fourlw;
mod front;
mod hist;
mod http;
mod import;
mod log;
mod metrics;
mod net;
mod pipeline_core;
mod server;
mod shared;
mod snapshot;
mod stats;
mod status;
mod stop;
mod watchdog;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ringkeeper",
    version,
    about = "A ZooKeeper-compatible coordination server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Inspect {
    /// Prints a transaction-log segment's records and verifies their CRCs (Ringkeeper's, or
    /// Java ZooKeeper's `log.*`).
    Log { file: PathBuf },
    /// Prints a snapshot's nodes, Stats and sessions and verifies its checksums (Ringkeeper's,
    /// or Java ZooKeeper's `snapshot.*`).
    Snapshot { file: PathBuf },
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server (standalone on 127.0.0.1:2181 with no --config).
    Serve {
        /// A ZooKeeper zoo.cfg.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Cores to use (default: all the CPUs this process may run on, split evenly between the
        /// ensemble members whose server lines put them on this machine).
        #[arg(long)]
        cores: Option<usize>,
        /// Do not pin executors to cores.
        #[arg(long)]
        no_pin: bool,
    },
    /// Reads Ringkeeper's data files.
    Inspect {
        #[command(subcommand)]
        what: Inspect,
    },
    /// Load generator for Ringkeeper or any ZooKeeper server.
    Bench(Box<ringkeeper_bench::args::BenchArgs>),
    /// Makes a Java ZooKeeper dataDir (its snapshots and logs) into a Ringkeeper dataDir.
    Import {
        /// Java ZooKeeper's dataDir (or its version-2 folder).
        #[arg(long)]
        from: PathBuf,
        /// Java ZooKeeper's dataLogDir, when the logs are kept apart.
        #[arg(long)]
        from_log_dir: Option<PathBuf>,
        /// The Ringkeeper dataDir to write (empty or new).
        #[arg(long)]
        to: PathBuf,
    },
    /// ZooKeeper's zkCli: `ringkeeper cli [-server host:port] [-timeout ms] [-r] [cmd args...]`.
    #[command(disable_help_flag = true)]
    Cli {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Prints what `zkServer.sh status` prints (client port, mode); exits 1 when the server
    /// does not answer.
    Status {
        /// The zoo.cfg the server runs with (default: the embedded default config).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// The key session passwords are derived from, kept in dataDir so sessions can be resumed
/// after a restart. Created (and fsync'd) on first start.
fn session_secret(data_dir: &std::path::Path) -> Result<u64, String> {
    let path = data_dir.join("rk-session-secret");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let secret = u64::from_str_radix(text.trim(), 16)
                .map_err(|_| format!("{} is not a hex number", path.display()))?;
            match files::restrict_secret(&path) {
                Ok(true) => tracing::warn!(path = %path.display(),
                    "the session-password key was readable by others; its mode is now 0600"),
                Ok(false) => {}
                Err(e) => {
                    return Err(format!(
                        "cannot restrict {} to mode 0600: {e}",
                        path.display()
                    ))
                }
            }
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            files::create_dirs(data_dir)
                .map_err(|e| format!("cannot create dataDir {}: {e}", data_dir.display()))?;
            let secret: u64 = rand::random();
            let tmp = data_dir.join("rk-session-secret.tmp");
            let write = || -> std::io::Result<()> {
                use std::io::Write;
                let mut f = files::create_file(&tmp, files::SECRET_FILE_MODE)?;
                writeln!(f, "{secret:016x}")?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(data_dir)?.sync_all()
            };
            write().map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(secret)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Startup recovery: the newest valid snapshot, then the log after it.
fn recover(cfg: &config::Config, secret: u64) -> Result<shared::Start, String> {
    let started = std::time::Instant::now();
    let snapshot = snapshot::load_newest(&snapshot::snap_dir(&cfg.data_dir))?;
    let after = snapshot.as_ref().map_or(0, |(_, s)| s.last_zxid);
    if let Some((path, s)) = &snapshot {
        tracing::info!(
            path = %path.display(), zxid = format_args!("{:#x}", s.last_zxid), nodes = s.tree.node_count(),
            sessions = s.sessions.len(), ms = started.elapsed().as_millis() as u64, "snapshot loaded"
        );
    }
    let log = log::recover(&log::log_dir(&cfg.data_log_dir), after)?;
    tracing::info!(
        txns = log.txns.len(),
        segments = log.segments,
        ms = started.elapsed().as_millis() as u64,
        "transaction log read"
    );
    Ok(shared::Start {
        secret,
        snapshot: snapshot.map(|(_, s)| s),
        txns: log.txns,
        log_tail: log.tail,
    })
}

/// Whether `path` starts as Java ZooKeeper's snapshots and logs do (`ZKSN`, `ZKLG`).
fn is_java_file(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && (&magic == b"ZKSN" || &magic == b"ZKLG")
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RINGKEEPER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // A panic is a bug. One core going down silently would leave a server that accepts
    // connections and never answers, so any panic ends the whole process, loudly.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        eprintln!("ringkeeper: fatal: a thread panicked; exiting");
        std::process::exit(70);
    }));
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect {
            what: Inspect::Log { file } | Inspect::Snapshot { file },
        } if is_java_file(&file) => {
            let bytes = std::fs::read(&file).unwrap_or_default();
            match import::inspect_java(&file, &bytes).expect("checked to be a Java file") {
                Ok(text) => print!("{text}"),
                Err(e) => {
                    eprintln!("ringkeeper inspect: {e}");
                    std::process::exit(1);
                }
            }
        }
        Command::Inspect {
            what: Inspect::Log { file },
        } => match log::inspect(&file) {
            Ok(text) => print!("{text}"),
            Err(e) => {
                eprintln!("ringkeeper inspect: {e}");
                std::process::exit(1);
            }
        },
        Command::Inspect {
            what: Inspect::Snapshot { file },
        } => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            if let Err(e) = snapshot::inspect(&file, &mut out) {
                eprintln!("ringkeeper inspect: {e}");
                std::process::exit(1);
            }
        }
        Command::Import {
            from,
            from_log_dir,
            to,
        } => match import::run(&from, from_log_dir.as_deref(), &to) {
            Ok(i) => println!(
                "imported {} and {} txns from {} log(s): {} znodes, {} sessions, last zxid {:#x}, in {} ms",
                i.snapshot.display(),
                i.txns,
                i.logs,
                i.nodes,
                i.sessions,
                i.last_zxid,
                i.ms
            ),
            Err(e) => {
                eprintln!("ringkeeper import: {e}");
                std::process::exit(1);
            }
        },
        Command::Cli { args } => std::process::exit(ringkeeper_tools::cli::main(&args)),
        Command::Status { config } => std::process::exit(status::run(config.as_deref())),
        Command::Bench(args) => {
            if let Err(e) = ringkeeper_bench::main(&args) {
                eprintln!("ringkeeper bench: {e}");
                std::process::exit(1);
            }
        }
        Command::Serve {
            config,
            cores,
            no_pin,
        } => {
            let cfg = match &config {
                Some(path) => config::Config::load(path),
                None => Ok(config::Config::embedded_default()),
            };
            let cfg = match cfg {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("ringkeeper: {e}");
                    std::process::exit(1);
                }
            };
            let addr = cfg.client_addr();
            // Bound before recovery, so a taken port fails fast. SO_REUSEADDR (as ZooKeeper sets
            // it) lets this succeed over the TIME_WAIT sockets of a server that just stopped.
            let listener = match net::bind_client_port(addr, net::BIND_RETRY_MAX) {
                Ok(l) => l,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    eprintln!("ringkeeper: cannot listen on {addr} (clientPortAddress/clientPort): another server is listening there");
                    std::process::exit(1);
                }
                Err(e) => {
                    eprintln!(
                        "ringkeeper: cannot listen on {addr} (clientPortAddress/clientPort): {e}"
                    );
                    std::process::exit(1);
                }
            };
            let allowed = server::allowed_cpus();
            let online = allowed.len();
            // Members that share a machine share its cores: each gets its part, so that three
            // members on two cores run one executor each rather than six executors waking one
            // another (measured: create-delete at 32 outstanding +40%, set +23%).
            let sharing = cfg
                .ensemble
                .as_ref()
                .map_or(1, |e| e.members_on_this_host());
            let cores = cores
                .unwrap_or((online / sharing).max(1))
                .clamp(1, online); // allowed_cpus() names at least one
            // ... and take different cores: the first member on the machine (by id) from the
            // first CPU it may use, the next from where the first one's cores end, wrapping round
            // (three members on two cores: 0, 1, 0). All on core 0 left the others idle.
            let rank = cfg.ensemble.as_ref().map_or(0, |e| e.rank_on_this_host());
            let pin = (!no_pin).then(|| server::Pinning {
                first: rank * cores % online,
                cpus: allowed,
            });
            tracing::info!(
                source = %cfg.source, %addr, tick_ms = cfg.tick_ms,
                min_session_timeout_ms = cfg.min_session_timeout_ms, max_session_timeout_ms = cfg.max_session_timeout_ms,
                cores, "starting ringkeeper {}", env!("CARGO_PKG_VERSION")
            );
            let secret = match session_secret(&cfg.data_dir) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("ringkeeper: {e}");
                    std::process::exit(1);
                }
            };
            let start = match recover(&cfg, secret) {
                Ok(start) => start,
                Err(e) => {
                    eprintln!("ringkeeper: {e}");
                    std::process::exit(1);
                }
            };
            if let Err(e) = server::run(cfg, cores, pin, start, listener) {
                eprintln!("ringkeeper: {e:#}");
                std::process::exit(1);
            }
        }
    }
}
