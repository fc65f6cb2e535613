//! The client port's listening socket, bound once at startup and shared by every front core.
//!
//! It is bound with SO_REUSEADDR, as ZooKeeper binds it: the connections a previous server on
//! this port closed leave TIME_WAIT sockets behind for about a minute, and without the option
//! they block the bind, so an operator replacing a ZooKeeper server in place could not start
//! Ringkeeper on its port. SO_REUSEPORT is not set, so a bind still fails while another server
//! listens there; every front accepts from one shared socket (a `dup` of it) instead.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Pending connections the kernel queues before the fronts accept them.
const ACCEPT_BACKLOG: i32 = 1024;

/// How long a bind keeps retrying while the port is in use: a server that was just killed can
/// keep its listening socket for a moment (its io_uring ring is torn down after it exits).
pub const BIND_RETRY_MAX: Duration = Duration::from_secs(5);

/// The pause between binds of a port in use.
const BIND_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Binds and listens on `addr`, retrying for up to `retry_max` while the address is in use.
pub fn bind_client_port(
    addr: SocketAddr,
    retry_max: Duration,
) -> io::Result<std::net::TcpListener> {
    let deadline = Instant::now() + retry_max;
    loop {
        if let Some(bound) = bind_before(addr, deadline)? {
            return Ok(bound);
        }
        std::thread::sleep(BIND_RETRY_PAUSE);
    }
}

/// [`bind_client_port`] for a glommio executor: waits between tries on a timer, so the
/// executor's other tasks (a front on the same core, say) go on meanwhile.
pub async fn bind_retrying(
    addr: SocketAddr,
    retry_max: Duration,
) -> io::Result<std::net::TcpListener> {
    let deadline = Instant::now() + retry_max;
    loop {
        if let Some(bound) = bind_before(addr, deadline)? {
            return Ok(bound);
        }
        glommio::timer::sleep(BIND_RETRY_PAUSE).await;
    }
}

/// One bind: None when the address is in use and `deadline` has not passed (try again).
fn bind_before(addr: SocketAddr, deadline: Instant) -> io::Result<Option<std::net::TcpListener>> {
    match bind_once(addr) {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => Ok(None),
        other => other.map(Some),
    }
}

fn bind_once(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(ACCEPT_BACKLOG)?;
    Ok(socket.into())
}

/// Hands a bound, listening socket to the calling glommio executor.
pub fn into_glommio(listener: std::net::TcpListener) -> glommio::net::TcpListener {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let fd = listener.into_raw_fd();
    // SAFETY: `fd` is a bound, listening TCP socket that `into_raw_fd` has just given up, so the
    // glommio listener becomes its only owner and closes it exactly once.
    #[allow(unsafe_code)]
    unsafe {
        glommio::net::TcpListener::from_raw_fd(fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_over_time_wait_but_not_over_a_listener() {
        let first = bind_client_port("127.0.0.1:0".parse().unwrap(), Duration::ZERO).unwrap();
        let addr = first.local_addr().unwrap();
        // The server side closes first, so its end of the connection stays in TIME_WAIT.
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (accepted, _) = first.accept().unwrap();
        drop(accepted);
        std::thread::sleep(Duration::from_millis(50));
        drop(client);
        let busy = bind_client_port(addr, Duration::from_millis(100)).unwrap_err();
        assert_eq!(
            busy.kind(),
            io::ErrorKind::AddrInUse,
            "a live listener keeps the port"
        );
        drop(first);
        bind_client_port(addr, Duration::ZERO).expect("TIME_WAIT does not block the bind");
    }
}
