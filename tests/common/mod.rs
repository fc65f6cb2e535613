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
