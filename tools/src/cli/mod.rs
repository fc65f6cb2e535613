//! `ringkeeper cli`: ZooKeeper's zkCli.sh, with its options, commands, flags and output, so
//! scripts written for zkCli keep working. `ringkeeper cli -server HOST:PORT CMD ARGS...` runs
//! one command and exits (0, 1 when it failed, 127 for an unknown command); without a command
//! it is interactive, with line editing, history and tab completion of commands and znode
//! paths (rustyline), and prints watch events as they arrive, as zkCli does.

mod commands;
mod format;

use crate::session::{Event, Session, State};
use commands::{Failed, Outcome, USAGE};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// What `version` reports.
pub const VERSION: &str = concat!(
    "3.9.0-ringkeeper-",
    env!("CARGO_PKG_VERSION"),
    ", built on unknown"
);

/// How many commands `history` shows (zkCli's last ten, and the `history` line itself).
const HISTORY_SHOWN: usize = 11;

struct Options {
    server: String,
    timeout_ms: i32,
    read_only: bool,
    wait_for_connection: bool,
    command: Vec<String>,
}

/// zkCli's options, as `ZooKeeperMain` reads them: `-server`, `-timeout`, `-r`,
/// `-waitforconnection`, `-client-configuration`; the first other word starts the command.
fn parse_options(args: &[String]) -> Options {
    let mut o = Options {
        server: "localhost:2181".to_string(),
        timeout_ms: 30_000,
        read_only: false,
        wait_for_connection: false,
        command: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let value = |i: usize| args.get(i + 1).cloned();
        match a {
            "-server" | "-timeout" | "-client-configuration" => match value(i) {
                Some(v) => {
                    if a == "-server" {
                        o.server = v;
                    } else if a == "-timeout" {
                        o.timeout_ms = v.parse().unwrap_or(o.timeout_ms);
                    }
                    i += 2;
                }
                None => {
                    eprintln!("Error: no argument found for option {a}");
                    i += 1;
                }
            },
            "-r" => {
                o.read_only = true;
                i += 1;
            }
            "-waitforconnection" => {
                o.wait_for_connection = true;
                i += 1;
            }
            _ => {
                o.command = args[i..].to_vec();
                break;
            }
        }
    }
    o
}

/// Splits an interactive line as zkCli does: double-quoted strings or runs of non-spaces.
pub fn split_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut word = String::new();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                word.push(c);
            }
            out.push(word);
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
            out.push(word);
        }
    }
    out
}

/// Where watch and state events are printed: straight to stdout, or above an interactive
/// prompt.
type Sink = Arc<Mutex<Box<dyn FnMut(String) + Send>>>;

pub struct Shell {
    session: Arc<Session>,
    /// The session the completer lists paths with (replaced by `connect`).
    current: Arc<Mutex<Arc<Session>>>,
    connect_string: String,
    timeout_ms: i32,
    read_only: bool,
    history: Vec<String>,
    print_watches: Arc<AtomicBool>,
    sink: Sink,
}

impl Shell {
    fn new(o: &Options, sink: Sink) -> Shell {
        let print_watches = Arc::new(AtomicBool::new(true));
        let (session, events) = Session::start(&o.server, o.timeout_ms, o.read_only);
        spawn_printer(events, print_watches.clone(), sink.clone());
        Shell {
            current: Arc::new(Mutex::new(session.clone())),
            session,
            connect_string: o.server.clone(),
            timeout_ms: o.timeout_ms,
            read_only: o.read_only,
            history: Vec::new(),
            print_watches,
            sink,
        }
    }

    /// Opens a new session to `server` (the `connect` command).
    fn open(&mut self, server: &str) {
        let (session, events) = Session::start(server, self.timeout_ms, self.read_only);
        spawn_printer(events, self.print_watches.clone(), self.sink.clone());
        self.session = session.clone();
        *self.current.lock().unwrap() = session;
        self.connect_string = server.to_string();
        self.session
            .wait_connected(Duration::from_millis(self.timeout_ms as u64));
    }

    fn print_event(&self, line: &str) {
        if self.print_watches.load(Relaxed) {
            (self.sink.lock().unwrap())(format!("\nWATCHER::\n\n{line}\n"));
        }
    }

    fn print_history(&self) {
        let n = self.history.len();
        for i in n.saturating_sub(HISTORY_SHOWN)..n {
            println!("{i} - {}", self.history[i]);
        }
    }

    fn prompt(&self) -> String {
        let state = match self.session.state() {
            State::Connected => "CONNECTED",
            State::Disconnected => "CONNECTING",
            State::AuthFailed => "AUTH_FAILED",
            State::Closed | State::Expired => "CLOSED",
        };
        format!(
            "[zk: {}({state}) {}] ",
            self.connect_string,
            self.history.len()
        )
    }

    /// Runs one line; `Err` carries the exit code for a non-interactive run. `quit` ends the
    /// process from here.
    fn run_line(&mut self, words: Vec<String>, line: String) -> Outcome {
        let Some(cmd) = words.first().cloned() else {
            return Ok(());
        };
        let rest = &words[1..];
        match cmd.as_str() {
            // The command run again takes the redo's place in the history; a redo that names
            // none stays there as typed.
            "redo" => {
                let Some(arg) = rest.first() else {
                    self.history.push(line);
                    return Ok(());
                };
                match arg
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| self.history.get(n).cloned())
                {
                    Some(again) => self.run_line(split_line(&again), again),
                    None => {
                        self.history.push(line);
                        eprintln!("Command index out of range");
                        Err(Failed(1))
                    }
                }
            }
            "quit" => {
                self.session.close();
                std::thread::sleep(Duration::from_millis(50)); // the Closed event's line
                std::process::exit(0);
            }
            _ => {
                self.history.push(line);
                let closed = matches!(self.session.state(), State::Closed | State::Expired);
                if closed && !needs_no_connection(&cmd) && USAGE.iter().any(|(c, _)| *c == cmd) {
                    println!("Not connected");
                    return Err(Failed(1));
                }
                self.command(&cmd, rest)
            }
        }
    }
}

/// Prints the session's events as zkCli's default watcher does.
fn spawn_printer(events: mpsc::Receiver<Event>, on: Arc<AtomicBool>, sink: Sink) {
    std::thread::spawn(move || {
        for e in events {
            let line = match &e {
                Event::State(s) => format!(
                    "WatchedEvent state:{} type:None path:null",
                    s.keeper_state()
                ),
                Event::Watch { kind, path, .. } => {
                    format!(
                        "WatchedEvent state:SyncConnected type:{} path:{path}",
                        event_type(*kind)
                    )
                }
            };
            if matches!(e, Event::State(State::Disconnected)) && !on.load(Relaxed) {
                continue;
            }
            if on.load(Relaxed) {
                (sink.lock().unwrap())(format!("\nWATCHER::\n\n{line}\n"));
            }
        }
    });
}

fn event_type(kind: i32) -> &'static str {
    match kind {
        1 => "NodeCreated",
        2 => "NodeDeleted",
        3 => "NodeDataChanged",
        4 => "NodeChildrenChanged",
        5 => "DataWatchRemoved",
        6 => "ChildWatchRemoved",
        7 => "PersistentWatchRemoved",
        _ => "None",
    }
}

/// Commands zkCli runs without waiting for a connection.
fn needs_no_connection(cmd: &str) -> bool {
    matches!(
        cmd,
        "version" | "history" | "printwatches" | "redo" | "quit" | "close" | "connect"
    )
}

/// `ringkeeper cli ARGS...`; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let o = parse_options(args);
    println!("Connecting to {}", o.server);
    if o.command.is_empty() {
        return interactive(o);
    }
    let sink: Sink = Arc::new(Mutex::new(Box::new(|s: String| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(s.as_bytes());
        let _ = out.flush();
    })));
    let mut shell = Shell::new(&o, sink);
    let known = USAGE.iter().any(|(c, _)| *c == o.command[0]) || o.command[0] == "redo";
    if known && !needs_no_connection(&o.command[0]) {
        let connected = shell
            .session
            .wait_connected(Duration::from_millis(o.timeout_ms as u64));
        if !connected && o.wait_for_connection {
            eprintln!(
                "{}",
                format::keeper_message(ringkeeper_engine::proto::ErrorCode::ConnectionLoss, None)
            );
            return 1;
        }
        std::thread::sleep(Duration::from_millis(20)); // the connected event's lines first
    }
    let line = o.command.join(" ");
    let code = match shell.run_line(o.command.clone(), line) {
        Ok(()) => 0,
        Err(Failed(code)) => code,
    };
    // zkCli leaves without closing its session: what it created as ephemeral lasts until the
    // session times out. The same here, so scripts see what they saw.
    code
}

fn interactive(o: Options) -> i32 {
    use rustyline::error::ReadlineError;
    let config = rustyline::Config::builder()
        .completion_type(rustyline::CompletionType::List)
        .auto_add_history(false)
        .build();
    let mut rl =
        match rustyline::Editor::<Completer, rustyline::history::DefaultHistory>::with_config(
            config,
        ) {
            Ok(rl) => rl,
            Err(e) => {
                eprintln!("ringkeeper cli: cannot start line editing: {e}");
                return 1;
            }
        };
    // Events are printed when they come, over whatever the prompt shows, as zkCli prints
    // them. (rustyline's external printer would redraw the prompt below them, but with it a
    // burst of keys, as a paste sends, waits for the next key before it is handled.)
    let sink: Sink = Arc::new(Mutex::new(Box::new(|s: String| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(s.as_bytes());
        let _ = out.flush();
    })));
    println!("Welcome to ZooKeeper!");
    let mut shell = Shell::new(&o, sink);
    rl.set_helper(Some(Completer {
        session: shell.current.clone(),
    }));
    shell
        .session
        .wait_connected(Duration::from_millis(o.timeout_ms.min(5_000) as u64));
    std::thread::sleep(Duration::from_millis(50)); // the connected event's lines
    loop {
        match rl.readline(&shell.prompt()) {
            Ok(line) => {
                let words = split_line(&line);
                if words.is_empty() {
                    continue;
                }
                let _ = rl.add_history_entry(line.as_str());
                let _ = shell.run_line(words, line);
            }
            Err(ReadlineError::Interrupted) | Err(ReadlineError::Eof) => {
                shell.session.close();
                return 0;
            }
            Err(e) => {
                eprintln!("ringkeeper cli: {e}");
                return 1;
            }
        }
    }
}

/// Tab completion: command names first, then znode paths (the children of the typed
/// path's parent, listed on the server).
struct Completer {
    session: Arc<Mutex<Arc<Session>>>,
}

impl rustyline::completion::Completer for Completer {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let head = &line[..pos];
        let start = head.rfind(' ').map_or(0, |i| i + 1);
        let word = &head[start..];
        if start == 0 {
            let mut names: Vec<String> = USAGE
                .iter()
                .map(|(c, _)| c.to_string())
                .filter(|c| c.starts_with(word))
                .collect();
            names.sort();
            return Ok((0, names.into_iter().map(|c| c + " ").collect()));
        }
        if !word.starts_with('/') {
            return Ok((pos, Vec::new()));
        }
        let (parent, prefix) = match word.rfind('/') {
            Some(0) => ("/", &word[1..]),
            Some(i) => (&word[..i], &word[i + 1..]),
            None => return Ok((pos, Vec::new())),
        };
        let session = self.session.lock().unwrap().clone();
        let req = ringkeeper_engine::proto::Request::GetChildren {
            path: parent.to_string(),
            watch: false,
        };
        let Ok((_, Ok(ringkeeper_engine::proto::Response::Children(mut children)))) =
            session.call(&req)
        else {
            return Ok((pos, Vec::new()));
        };
        children.sort();
        let base = if parent == "/" {
            String::new()
        } else {
            parent.to_string()
        };
        let candidates = children
            .into_iter()
            .filter(|c| c.starts_with(prefix))
            .map(|c| format!("{base}/{c}"))
            .collect();
        Ok((start, candidates))
    }
}

impl rustyline::hint::Hinter for Completer {
    type Hint = String;
}
impl rustyline::highlight::Highlighter for Completer {}
impl rustyline::validate::Validator for Completer {}
impl rustyline::Helper for Completer {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_as_zkcli_splits_them() {
        assert_eq!(
            split_line(r#"create /a "hello world" world:anyone:r"#),
            ["create", "/a", "hello world", "world:anyone:r"]
        );
        assert_eq!(split_line("  ls   / "), ["ls", "/"]);
    }

    #[test]
    fn options_before_the_command_are_zkclis() {
        let args: Vec<String> = [
            "-timeout", "3000", "-server", "h:1", "-r", "get", "-s", "/a",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let o = parse_options(&args);
        assert_eq!(
            (o.server.as_str(), o.timeout_ms, o.read_only),
            ("h:1", 3000, true)
        );
        assert_eq!(o.command, ["get", "-s", "/a"]);
    }
}
