//! `ringkeeper status`: what `zkServer.sh status` prints, for the server a config describes.
//!
//! zkServer.sh reads the client address from zoo.cfg, asks the server `srvr` and prints its
//! `Mode:` line (exit 0), or "Error contacting service. It is probably not running." (exit 1).
//! The address comes from the same config parser `serve` uses, so an ensemble member's
//! `server.N=...;clientPort` is found as the server itself finds it.

use crate::config::Config;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// How long `status` waits to connect and for the answer.
const ANSWER_WAIT: Duration = Duration::from_secs(5);

/// Prints the status and returns the exit code.
pub fn run(config: Option<&Path>) -> i32 {
    let cfg = match config {
        Some(path) => {
            eprintln!("Using config: {}", path.display());
            match Config::load(path) {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("ringkeeper status: {e}");
                    return 1;
                }
            }
        }
        None => Config::embedded_default(),
    };
    let addr = cfg.client_addr();
    // A server listening on every address is asked on loopback, as zkServer.sh asks `localhost`.
    let (ask, shown) = if addr.ip().is_unspecified() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        (SocketAddr::new(lo, addr.port()), "localhost".to_string())
    } else {
        (addr, addr.ip().to_string())
    };
    println!(
        "Client port found: {}. Client address: {shown}. Client SSL: false.",
        addr.port()
    );
    match srvr_mode(ask) {
        Some(mode) => {
            println!("{mode}");
            0
        }
        None => {
            println!("Error contacting service. It is probably not running.");
            1
        }
    }
}

/// The `Mode: ...` line of the server's `srvr` answer.
fn srvr_mode(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, ANSWER_WAIT).ok()?;
    s.set_read_timeout(Some(ANSWER_WAIT)).ok()?;
    s.write_all(b"srvr").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines()
        .find(|l| l.starts_with("Mode: "))
        .map(str::to_string)
}
