//! zkCli's commands: their flags (parsed as commons-cli parses them: options may come after
//! the path), output (data and listings on stdout; "Created", errors and usage on stderr) and
//! errors, as ZooKeeper 3.8's zkCli prints them.

use super::format::{self, cli_error, keeper_message, stat_block};
use super::Shell;
use crate::session::CallError;
use bytes::Bytes;
use ringkeeper_engine::proto::{opcode as op, Acl, CreateRequest, ErrorCode, Request, Response};

/// How a command ended when it did not succeed: the exit code a non-interactive run returns
/// (1 for a failed command, 127 for an unknown one).
#[derive(Debug)]
pub struct Failed(pub i32);

pub type Outcome = Result<(), Failed>;

/// Each command's usage line, as zkCli lists them (`cmd args`).
pub const USAGE: &[(&str, &str)] = &[
    ("addWatch", "[-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - default is PERSISTENT_RECURSIVE"),
    ("addauth", "scheme auth"),
    ("close", ""),
    ("config", "[-c] [-w] [-s]"),
    ("connect", "host:port"),
    ("create", "[-s] [-e] [-c] [-t ttl] path [data] [acl]"),
    ("delete", "[-v version] path"),
    ("deleteall", "path [-b batch size]"),
    ("delquota", "[-n|-b|-N|-B] path"),
    ("get", "[-s] [-w] path"),
    ("getAcl", "[-s] path"),
    ("getAllChildrenNumber", "path"),
    ("getEphemerals", "path"),
    ("history", ""),
    ("listquota", "path"),
    ("ls", "[-s] [-w] [-R] path"),
    ("printwatches", "on|off"),
    ("quit", ""),
    ("reconfig", "[-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]"),
    ("redo", "cmdno"),
    ("removewatches", "path [-c|-d|-a] [-l]"),
    ("set", "[-s] [-v version] path data"),
    ("setAcl", "[-s] [-v version] [-R] path acl"),
    ("setquota", "-n|-b|-N|-B val path"),
    ("stat", "[-w] path"),
    ("sync", "path"),
    ("version", ""),
    ("whoami", ""),
];

pub fn usage_line(cmd: &str) -> String {
    let args = USAGE.iter().find(|(c, _)| *c == cmd).map_or("", |(_, a)| a);
    format!("{cmd} {args}").trim_end().to_string()
}

/// What zkCli prints for an unknown command.
pub fn usage_all() -> String {
    let mut out =
        "ZooKeeper -server host:port -client-configuration properties-file cmd args\n".to_string();
    for (cmd, args) in USAGE {
        out.push_str(&format!("\t{cmd} {args}\n"));
    }
    out
}

/// A command line split into its options and arguments, commons-cli style.
struct Args {
    flags: Vec<char>,
    values: Vec<(char, String)>,
    args: Vec<String>,
}

impl Args {
    /// `with_value` names the options that take a value.
    fn parse(words: &[String], known: &str, with_value: &str) -> Result<Args, String> {
        let mut a = Args {
            flags: Vec::new(),
            values: Vec::new(),
            args: Vec::new(),
        };
        let mut i = 0;
        while i < words.len() {
            let w = &words[i];
            let is_option = w.len() > 1 && w.starts_with('-') && w.parse::<f64>().is_err();
            if !is_option {
                a.args.push(w.clone());
                i += 1;
                continue;
            }
            for (k, c) in w[1..].chars().enumerate() {
                if !known.contains(c) {
                    return Err(format!("org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: {w}"));
                }
                if with_value.contains(c) {
                    let rest = &w[1 + k + c.len_utf8()..];
                    let value = if !rest.is_empty() {
                        rest.to_string()
                    } else {
                        i += 1;
                        match words.get(i) {
                            Some(v) => v.clone(),
                            None => return Err(format!("org.apache.commons.cli.MissingArgumentException: Missing argument for option: {c}")),
                        }
                    };
                    a.values.push((c, value));
                    break;
                }
                a.flags.push(c);
            }
            i += 1;
        }
        Ok(a)
    }

    fn has(&self, c: char) -> bool {
        self.flags.contains(&c) || self.values.iter().any(|(k, _)| *k == c)
    }

    fn value(&self, c: char) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| *k == c)
            .map(|(_, v)| v.as_str())
    }
}

/// A command's words parsed; a bad option is reported as commons-cli reports it.
fn args(words: &[String], known: &str, with_value: &str) -> Result<Args, Failed> {
    Args::parse(words, known, with_value).map_err(|m| {
        eprintln!("{m}");
        Failed(1)
    })
}

fn err(line: impl AsRef<str>) -> Outcome {
    eprintln!("{}", line.as_ref());
    Err(Failed(1))
}

fn usage(cmd: &str) -> Outcome {
    err(usage_line(cmd))
}

/// `-v version` (-1, any version, when absent).
fn version_flag(a: &Args) -> Result<i32, Failed> {
    a.value('v').map_or(Ok(-1), parse_version)
}

fn parse_version(v: &str) -> Result<i32, Failed> {
    v.parse::<i32>().map_err(|_| {
        eprintln!("java.lang.NumberFormatException: For input string: \"{v}\"");
        Failed(1)
    })
}

impl Shell {
    /// Sends one request; the server's answer, or the error line zkCli prints for it.
    fn request(&self, req: Request, path: &str) -> Result<Response, ErrorCode> {
        match self.session.call(&req) {
            Ok((_, Ok(resp))) => Ok(resp),
            Ok((_, Err(code))) => Err(code),
            Err(CallError::ConnectionLoss) => Err(ErrorCode::ConnectionLoss),
            Err(CallError::SessionGone) => {
                let _ = path;
                Err(ErrorCode::SessionExpired)
            }
        }
    }

    fn call(&self, req: Request, path: &str) -> Result<Response, Failed> {
        self.request(req, path).map_err(|code| {
            eprintln!("{}", cli_error(code, path));
            Failed(1)
        })
    }

    fn checked_path(path: &str, sequential: bool) -> Result<(), Failed> {
        format::validate_path(path, sequential).map_err(|m| {
            eprintln!("{m}");
            Failed(1)
        })
    }

    /// Runs one command (its name and words).
    pub fn command(&mut self, cmd: &str, words: &[String]) -> Outcome {
        match cmd {
            "ls" => self.ls(words),
            "get" => self.get(words),
            "set" => self.set(words),
            "create" => self.create(words),
            "delete" => self.delete(words),
            "deleteall" => self.deleteall(words),
            "stat" => self.stat(words),
            "getAcl" => self.get_acl(words),
            "setAcl" => self.set_acl(words),
            "addauth" => self.addauth(words),
            "whoami" => self.whoami(),
            "sync" => self.sync(words),
            "config" => self.config(words),
            "getEphemerals" => self.get_ephemerals(words),
            "getAllChildrenNumber" => self.get_all_children_number(words),
            "addWatch" => self.add_watch(words),
            "removewatches" => self.remove_watches(words),
            "printwatches" => self.printwatches(words),
            "version" => {
                if !words.is_empty() {
                    return usage("version");
                }
                println!("ZooKeeper CLI version: {}", super::VERSION);
                Ok(())
            }
            "history" => {
                self.print_history();
                Ok(())
            }
            "close" => {
                self.session.close();
                Ok(())
            }
            "connect" => self.connect(words),
            // zkCli lists these; Ringkeeper enforces no quotas and has no reconfig.
            "delquota" | "listquota" | "setquota" | "reconfig" => err(format!(
                "{cmd} is not supported by ringkeeper cli (Ringkeeper has no quotas or reconfig)"
            )),
            _ => {
                eprint!("{}", usage_all());
                eprintln!("Command not found: Command not found {cmd}");
                Err(Failed(127))
            }
        }
    }

    fn ls(&mut self, words: &[String]) -> Outcome {
        let a = args(words, "swR?", "")?;
        let (path, watch) = read_target("ls", &a, "ls [-w] path")?;
        if a.has('R') {
            return self.ls_recursive(path);
        }
        let resp = self.call(
            Request::GetChildren2 {
                path: path.clone(),
                watch,
            },
            path,
        )?;
        let Response::Children2 { mut children, stat } = resp else {
            return Err(Failed(1));
        };
        children.sort();
        println!("[{}]", children.join(", "));
        if a.has('s') {
            print!("{}", stat_block(&stat));
        }
        Ok(())
    }

    /// `ls -R`: the subtree breadth first, each path printed as it is found.
    fn ls_recursive(&mut self, root: &str) -> Outcome {
        let mut queue = std::collections::VecDeque::from([root.to_string()]);
        println!("{root}");
        while let Some(node) = queue.pop_front() {
            let resp = self.call(
                Request::GetChildren {
                    path: node.clone(),
                    watch: false,
                },
                &node,
            )?;
            let Response::Children(mut children) = resp else {
                return Err(Failed(1));
            };
            children.sort();
            for c in children {
                let p = child_path(&node, &c);
                println!("{p}");
                queue.push_back(p);
            }
        }
        Ok(())
    }

    fn get(&mut self, words: &[String]) -> Outcome {
        let a = args(words, "sw", "")?;
        let (path, watch) = read_target("get", &a, "get [-s] [-w] path")?;
        let resp = self.call(
            Request::GetData {
                path: path.clone(),
                watch,
            },
            path,
        )?;
        let Response::GetData { data, stat } = resp else {
            return Err(Failed(1));
        };
        println!("{}", format::data_text(&data));
        if a.has('s') {
            print!("{}", stat_block(&stat));
        }
        Ok(())
    }

    fn set(&mut self, words: &[String]) -> Outcome {
        let a = args(words, "sv", "v")?;
        if a.args.len() < 2 {
            return usage("set");
        }
        let (path, data) = (&a.args[0], &a.args[1]);
        let version = version_flag(&a)?;
        Self::checked_path(path, false)?;
        let req = Request::SetData {
            path: path.clone(),
            data: Some(Bytes::from(data.clone().into_bytes())),
            version,
        };
        let Response::Stat(stat) = self.call(req, path)? else {
            return Err(Failed(1));
        };
        if a.has('s') {
            print!("{}", stat_block(&stat));
        }
        Ok(())
    }

    fn create(&mut self, words: &[String]) -> Outcome {
        let a = args(words, "secto", "t")?;
        let (seq, eph, cont) = (a.has('s'), a.has('e'), a.has('c'));
        if cont && (seq || eph) {
            return err("-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.");
        }
        let ttl = match a.value('t') {
            Some(t) => match t.parse::<i64>() {
                Ok(t) => Some(t),
                Err(_) => return err("-t argument must be a long value"),
            },
            None => None,
        };
        if ttl.is_some() && eph {
            return err("TTLs cannot be used with Ephemeral znodes");
        }
        if ttl.is_some() && cont {
            return err("TTLs cannot be used with Container znodes");
        }
        let Some(path) = a.args.first() else {
            return usage("create");
        };
        let data = a.args.get(1).map(|d| Bytes::from(d.clone().into_bytes()));
        let acl = match a.args.get(2) {
            Some(text) => {
                let mut warnings = Vec::new();
                let acl = format::parse_acls(text, &mut warnings);
                for w in warnings {
                    eprintln!("{w}");
                }
                if acl.is_empty() {
                    eprintln!("{}", keeper_message(ErrorCode::InvalidAcl, None));
                    return err("Acl is not valid : null");
                }
                acl
            }
            None => Acl::open_unsafe(),
        };
        if let Some(t) = ttl {
            const TTL_MAX: i64 = 0xff_ffff_ffff;
            if t <= 0 || t > TTL_MAX {
                return err(format!(
                    "ttl must be positive and cannot be larger than: {TTL_MAX}"
                ));
            }
        }
        Self::checked_path(path, seq)?;
        let (opcode, flags) = match (ttl.is_some(), cont, eph, seq) {
            (true, _, _, false) => (op::CREATE_TTL, 5),
            (true, _, _, true) => (op::CREATE_TTL, 6),
            (false, true, _, _) => (op::CREATE_CONTAINER, 4),
            (false, false, e, s) => (op::CREATE, i32::from(e) | (i32::from(s) << 1)),
        };
        let req = Request::Create(CreateRequest {
            opcode,
            path: path.clone(),
            data,
            acl,
            flags,
            ttl: ttl.unwrap_or(-1),
        });
        match self.request(req, path) {
            Ok(Response::Create { path: created } | Response::Create2 { path: created, .. }) => {
                eprintln!("Created {created}");
                Ok(())
            }
            Ok(_) => Err(Failed(1)),
            Err(ErrorCode::InvalidAcl) => {
                eprintln!("{}", keeper_message(ErrorCode::InvalidAcl, Some(path)));
                err(format!("Acl is not valid : {path}"))
            }
            Err(code) => err(cli_error(code, path)),
        }
    }

    fn delete(&mut self, words: &[String]) -> Outcome {
        let a = args(words, "v", "v")?;
        let Some(path) = a.args.first() else {
            return usage("delete");
        };
        let mut version = version_flag(&a)?;
        if let Some(v) = a.args.get(1) {
            eprintln!("'delete path [version]' has been deprecated. Please use 'delete [-v version] path' instead.");
            version = parse_version(v)?;
        }
        Self::checked_path(path, false)?;
        if path == "/" {
            return err(cli_error(ErrorCode::BadArguments, path));
        }
        self.call(
            Request::Delete {
                path: path.clone(),
                version,
            },
            path,
        )?;
        Ok(())
    }

    fn deleteall(&mut self, words: &[String]) -> Outcome {
        let a = args(words, "b", "b")?;
        let Some(path) = a.args.first() else {
            return usage("deleteall");
        };
        if let Some(b) = a.value('b') {
            if b.parse::<u32>().map_or(true, |n| n == 0) {
                return err("batch size must be greater than 0");
            }
        }
        Self::checked_path(path, false)?;
        // The subtree breadth first, deleted deepest first (ZKUtil.deleteRecursive).
        let mut tree = vec![path.clone()];
        let mut i = 0;
        while i < tree.len() {
            let node = tree[i].clone();
            let resp = self.call(
                Request::GetChildren {
                    path: node.clone(),
                    watch: false,
                },
                &node,
            )?;
            if let Response::Children(children) = resp {
                tree.extend(children.iter().map(|c| child_path(&node, c)));
            }
            i += 1;
        }
        let mut failed = false;
        for node in tree.iter().rev() {
            if node == "/" || node == "/zookeeper" || node.starts_with("/zookeeper/") {
                continue;
            }
            match self.request(
                Request::Delete {
                    path: node.clone(),
                    version: -1,
                },
                node,
            ) {
                Ok(_) | Err(ErrorCode::NoNode) => {}
                Err(_) => failed = true,
            }
        }
        if failed {
            eprintln!("Failed to delete some node(s) in the subtree!");
        }
        Ok(())
    }

    fn stat(&mut self, words: &[String]) -> Outcome {
        let a = args(words, "w", "")?;
        let (path, watch) = read_target("stat", &a, "stat [-w] path")?;
        match self.request(
            Request::Exists {
                path: path.clone(),
                watch,
            },
            path,
        ) {
            Ok(Response::Stat(stat)) => {
                print!("{}", stat_block(&stat));
                Ok(())
            }
            Ok(_) => Err(Failed(1)),
            Err(code) => err(cli_error(code, path)),
        }
    }

    fn get_acl(&mut self, words: &[String]) -> Outcome {
        let a = args(words, "s", "")?;
        let Some(path) = a.args.first() else {
            return usage("getAcl");
        };
        Self::checked_path(path, false)?;
        let Response::GetAcl { acl, stat } =
            self.call(Request::GetAcl { path: path.clone() }, path)?
        else {
            return Err(Failed(1));
        };
        for entry in &acl {
            print!("{}", format::acl_lines(entry));
        }
        if a.has('s') {
            print!("{}", stat_block(&stat));
        }
        Ok(())
    }

    fn set_acl(&mut self, words: &[String]) -> Outcome {
        let a = args(words, "svR", "v")?;
        if a.args.len() < 2 {
            return usage("setAcl");
        }
        let (path, text) = (&a.args[0], &a.args[1]);
        let version = version_flag(&a)?;
        let mut warnings = Vec::new();
        let acl = format::parse_acls(text, &mut warnings);
        for w in warnings {
            eprintln!("{w}");
        }
        if acl.is_empty() {
            return err("Acl is not valid : null");
        }
        Self::checked_path(path, false)?;
        if a.has('R') {
            // Every node of the subtree, each on its own; a node that refuses is reported and
            // the rest go on, as zkCli does.
            let mut queue = std::collections::VecDeque::from([path.clone()]);
            while let Some(node) = queue.pop_front() {
                match self.request(
                    Request::SetAcl {
                        path: node.clone(),
                        acl: acl.clone(),
                        version,
                    },
                    &node,
                ) {
                    Ok(_) => {}
                    Err(code) => println!("{}", keeper_message(code, Some(&node))),
                }
                if let Ok(Response::Children(mut children)) = self.request(
                    Request::GetChildren {
                        path: node.clone(),
                        watch: false,
                    },
                    &node,
                ) {
                    children.sort();
                    queue.extend(children.iter().map(|c| child_path(&node, c)));
                }
            }
            return Ok(());
        }
        let Response::Stat(stat) = self.call(
            Request::SetAcl {
                path: path.clone(),
                acl,
                version,
            },
            path,
        )?
        else {
            return Err(Failed(1));
        };
        if a.has('s') {
            print!("{}", stat_block(&stat));
        }
        Ok(())
    }

    fn addauth(&mut self, words: &[String]) -> Outcome {
        let Some(scheme) = words.first() else {
            return usage("addauth");
        };
        let auth = words
            .get(1)
            .map_or_else(Bytes::new, |a| Bytes::from(a.clone().into_bytes()));
        // zkCli does not wait for the answer: a refused auth closes the session, which its
        // event reports.
        let _ = self.request(
            Request::Auth {
                kind: 0,
                scheme: scheme.clone(),
                auth,
            },
            "",
        );
        Ok(())
    }

    fn whoami(&mut self) -> Outcome {
        let Response::WhoAmI(ids) = self.call(Request::WhoAmI, "")? else {
            return Err(Failed(1));
        };
        println!("Auth scheme: User");
        for (scheme, user) in ids {
            println!("{scheme}: {user}");
        }
        Ok(())
    }

    fn sync(&mut self, words: &[String]) -> Outcome {
        let Some(path) = words.first() else {
            return usage("sync");
        };
        Self::checked_path(path, false)?;
        match self.request(Request::Sync { path: path.clone() }, path) {
            Ok(_) => {
                println!("Sync is OK");
                Ok(())
            }
            Err(code) => err(format!("Sync returned {}", code.code())),
        }
    }

    fn config(&mut self, words: &[String]) -> Outcome {
        let a = args(words, "cws", "")?;
        let path = "/zookeeper/config";
        let watch = a.has('w');
        let Response::GetData { data, stat } = self.call(
            Request::GetData {
                path: path.into(),
                watch,
            },
            path,
        )?
        else {
            return Err(Failed(1));
        };
        let text = data
            .as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        if a.has('c') {
            println!("{}", client_config(&text));
        } else {
            println!("{}", text.trim_end_matches('\n'));
        }
        if a.has('s') {
            print!("{}", stat_block(&stat));
        }
        Ok(())
    }

    fn get_ephemerals(&mut self, words: &[String]) -> Outcome {
        let prefix = words.first().cloned().unwrap_or_else(|| "/".to_string());
        let Response::Ephemerals(paths) = self.call(
            Request::GetEphemerals {
                prefix: prefix.clone(),
            },
            &prefix,
        )?
        else {
            return Err(Failed(1));
        };
        println!("[{}]", paths.join(", "));
        Ok(())
    }

    fn get_all_children_number(&mut self, words: &[String]) -> Outcome {
        let Some(path) = words.first() else {
            return usage("getAllChildrenNumber");
        };
        Self::checked_path(path, false)?;
        let Response::Int(n) =
            self.call(Request::GetAllChildrenNumber { path: path.clone() }, path)?
        else {
            return Err(Failed(1));
        };
        println!("{n}");
        Ok(())
    }

    fn add_watch(&mut self, words: &[String]) -> Outcome {
        let a = args(words, "m", "m")?;
        let Some(path) = a.args.first() else {
            return usage("addWatch");
        };
        let recursive = match a.value('m').map(str::to_ascii_uppercase).as_deref() {
            None | Some("PERSISTENT_RECURSIVE") => true,
            Some("PERSISTENT") => false,
            Some(_) => return usage("addWatch"),
        };
        Self::checked_path(path, false)?;
        self.call(
            Request::AddWatch {
                path: path.clone(),
                mode: i32::from(recursive),
            },
            path,
        )?;
        Ok(())
    }

    fn remove_watches(&mut self, words: &[String]) -> Outcome {
        let a = args(words, "cdal", "")?;
        let Some(path) = a.args.first() else {
            return usage("removewatches");
        };
        // ZooKeeper's WatcherType: Children 1, Data 2, Any 3.
        let kind = if a.has('c') {
            1
        } else if a.has('d') {
            2
        } else {
            3
        };
        Self::checked_path(path, false)?;
        let held = {
            let w = self.session.watches.lock().unwrap();
            let data = w.data.contains(path) || w.exist.contains(path);
            let child = w.child.contains(path);
            let persistent = w.persistent.contains(path) || w.persistent_recursive.contains(path);
            match kind {
                1 => child,
                2 => data,
                _ => data || child || persistent,
            }
        };
        if !held {
            return err(keeper_message(ErrorCode::NoWatcher, Some(path)));
        }
        if !a.has('l') {
            self.call(
                Request::RemoveWatches {
                    path: path.clone(),
                    kind,
                },
                path,
            )?;
        }
        let mut w = self.session.watches.lock().unwrap();
        let mut removed = Vec::new();
        if kind != 1 && (w.data.remove(path) | w.exist.remove(path)) {
            removed.push("DataWatchRemoved");
        }
        if kind != 2 && w.child.remove(path) {
            removed.push("ChildWatchRemoved");
        }
        if kind == 3 && (w.persistent.remove(path) | w.persistent_recursive.remove(path)) {
            removed.push("PersistentWatchRemoved");
        }
        drop(w);
        for kind in removed {
            self.print_event(&format!(
                "WatchedEvent state:SyncConnected type:{kind} path:{path}"
            ));
        }
        Ok(())
    }

    fn printwatches(&mut self, words: &[String]) -> Outcome {
        use std::sync::atomic::Ordering::Relaxed;
        match words.first().map(String::as_str) {
            None => println!(
                "printwatches is {}",
                if self.print_watches.load(Relaxed) {
                    "on"
                } else {
                    "off"
                }
            ),
            Some("on") => self.print_watches.store(true, Relaxed),
            Some(_) => self.print_watches.store(false, Relaxed),
        }
        Ok(())
    }

    fn connect(&mut self, words: &[String]) -> Outcome {
        let server = words
            .first()
            .cloned()
            .unwrap_or_else(|| self.connect_string.clone());
        self.session.close();
        self.open(&server);
        Ok(())
    }
}

/// The path a reading command names and whether it sets a watch: `-w`, or zkCli's old
/// trailing `watch` word, which still works and is warned about.
fn read_target<'a>(cmd: &str, a: &'a Args, now: &str) -> Result<(&'a String, bool), Failed> {
    let Some(path) = a.args.first() else {
        eprintln!("{}", usage_line(cmd));
        return Err(Failed(1));
    };
    let old_form = a.args.get(1).is_some_and(|w| w == "watch");
    if old_form {
        eprintln!("'{cmd} path [watch]' has been deprecated. Please use '{now}' instead.");
    }
    Shell::checked_path(path, false)?;
    Ok((path, a.has('w') || old_form))
}

fn child_path(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// `config -c`: the config's version and its members' client addresses (ZooKeeper's
/// `ConfigUtils.getClientConfigStr`).
fn client_config(text: &str) -> String {
    let mut version = String::new();
    let mut clients = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("version=") {
            version = v.to_string();
        } else if line.starts_with("server.") {
            if let Some((_, client)) = line.split_once(';') {
                let client = if client.contains(':') {
                    client.to_string()
                } else {
                    format!("0.0.0.0:{client}")
                };
                clients.push(client);
            }
        }
    }
    format!("{version} {}", clients.join(","))
}
