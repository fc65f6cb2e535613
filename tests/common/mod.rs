//! Starts the real `ringkeeper` binary on a free loopback port with a given zoo.cfg, and stops
//! it (by its own pid) when dropped.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

/// A free loopback port below the kernel's ephemeral range (32768 and up), so a listener cannot
/// collide with some client's ephemeral port.
pub fn free_port() -> u16 {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    for _ in 0..200 {
        let port = rng.gen_range(20000..32000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000..32000");
}

fn temp_dir(tag: &str) -> PathBuf {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("rk-test-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Server {
    /// Starts a server; `extra` is appended to a zoo.cfg that sets the port and allows every 4lw.
    pub fn start(extra: &str) -> Server {
        Server::start_with_args(extra, &[])
    }

    /// Like [`Server::start`], with extra command-line arguments for `serve`.
    pub fn start_with_args(extra: &str, args: &[&str]) -> Server {
        let port = free_port();
        let dir = temp_dir("srv");
        let cfg = format!(
            "tickTime=200\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\npreAllocSize=1024\nadmin.rateLimiterIntervalInMS=0\n{extra}\n",
            dir.display()
        );
        let cfg_path = dir.join("zoo.cfg");
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ringkeeper"))
            .args(["serve", "--config"])
            .arg(&cfg_path)
            .arg("--no-pin")
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start ringkeeper");
        let server = Server { child, port, dir };
        server.wait_ready();
        server
    }

    /// Kills the server with SIGKILL (no shutdown path runs) and starts it again on the same
    /// dataDir and port.
    pub fn kill_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("server.log"))
            .unwrap();
        self.child = Command::new(env!("CARGO_BIN_EXE_ringkeeper"))
            .args(["serve", "--config"])
            .arg(self.dir.join("zoo.cfg"))
            .arg("--no-pin")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("restart ringkeeper");
        self.wait_ready();
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(out) = four_letter(&self.addr(), "ruok") {
                if out == "imok" {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not answer ruok; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn four_letter(addr: &str, word: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(word.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Runs `ringkeeper serve --config` on a config text and returns (exit code, stderr); for
/// configs that must be refused.
pub fn run_with_config(text: &str) -> (Option<i32>, String) {
    run_with_files(text, &[])
}

/// Like [`run_with_config`], with `{dir}` in the text standing for a fresh directory that
/// holds `files` (relative path, content) as well.
pub fn run_with_files(text: &str, files: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = temp_dir("cfg");
    let path = dir.join("zoo.cfg");
    std::fs::write(&path, text.replace("{dir}", &dir.display().to_string())).unwrap();
    for (name, content) in files {
        let file = dir.join(name);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ringkeeper"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .expect("run ringkeeper");
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Ensemble members on loopback, each the real binary from a plain zoo.cfg with `server.N`
/// lines and a `myid` file; each member is stopped (by its own pid) when dropped.
pub struct Ensemble {
    pub members: Vec<Option<Child>>,
    /// Client, quorum and election ports, by member (index 0 is server.1).
    pub ports: Vec<(u16, u16, u16)>,
    pub dir: PathBuf,
}

impl Ensemble {
    /// Starts `n` voting members and waits until one leads and the rest follow.
    pub fn start(n: usize) -> Ensemble {
        let dir = temp_dir("ens");
        // Nine distinct ports (free_port can hand out one port twice).
        let mut seen = std::collections::HashSet::new();
        let mut distinct = || loop {
            let p = free_port();
            if seen.insert(p) {
                return p;
            }
        };
        let ports: Vec<(u16, u16, u16)> = (0..n)
            .map(|_| (distinct(), distinct(), distinct()))
            .collect();
        let lines: String = ports
            .iter()
            .enumerate()
            .map(|(i, (c, q, e))| format!("server.{}=127.0.0.1:{q}:{e};127.0.0.1:{c}\n", i + 1))
            .collect();
        for (i, (client, _, _)) in ports.iter().enumerate() {
            let d = dir.join(format!("m{}", i + 1));
            std::fs::create_dir_all(d.join("data")).unwrap();
            std::fs::write(d.join("data").join("myid"), format!("{}\n", i + 1)).unwrap();
            std::fs::write(
                d.join("zoo.cfg"),
                format!(
                    "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={client}\n\
                     clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\npreAllocSize=1024\n\
                     admin.enableServer=false\n{lines}",
                    d.join("data").display()
                ),
            )
            .unwrap();
        }
        let mut e = Ensemble {
            members: (0..n).map(|_| None).collect(),
            ports,
            dir,
        };
        for i in 1..=n {
            e.start_member(i);
        }
        e.wait_serving();
        e
    }

    /// Starts member `id` (1-based) on its dataDir.
    pub fn start_member(&mut self, id: usize) {
        let d = self.dir.join(format!("m{id}"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("server.log"))
            .unwrap();
        self.members[id - 1] = Some(
            Command::new(env!("CARGO_BIN_EXE_ringkeeper"))
                .args(["serve", "--config"])
                .arg(d.join("zoo.cfg"))
                .arg("--no-pin")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start ringkeeper"),
        );
    }

    /// Kills member `id` with SIGKILL.
    pub fn kill9(&mut self, id: usize) {
        if let Some(mut c) = self.members[id - 1].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn addr(&self, id: usize) -> String {
        format!("127.0.0.1:{}", self.ports[id - 1].0)
    }

    /// The whole connect string.
    pub fn hosts(&self) -> String {
        (1..=self.ports.len())
            .map(|i| self.addr(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `leader`, `follower`, `observer`, or None (down or not serving).
    pub fn mode(&self, id: usize) -> Option<String> {
        let out = four_letter(&self.addr(id), "srvr").ok()?;
        out.lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .map(str::to_string)
    }

    pub fn leader(&self) -> Option<usize> {
        (1..=self.ports.len()).find(|i| self.mode(*i).as_deref() == Some("leader"))
    }

    /// Waits until every running member serves, one of them as leader.
    pub fn wait_serving(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let running: Vec<usize> = (1..=self.members.len())
                .filter(|i| self.members[i - 1].is_some())
                .collect();
            let modes: Vec<Option<String>> = running.iter().map(|i| self.mode(*i)).collect();
            if modes.iter().all(Option::is_some) && modes.iter().flatten().any(|m| m == "leader") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("ensemble not serving; logs in {}", self.dir.display());
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for id in 1..=self.members.len() {
            self.kill9(id);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
