//! One client connection's IO on a front core: reading frames under a size limit, the handshake
//! under a time and size limit, and the output queue with its limits.
//!
//! Limits (each a config key, listed in the README's "Bad input hurts no one else"):
//! - the handshake (the first four bytes, then the whole connect request, or a four-letter
//!   word's answer) must finish within `connect_timeout` (ZooKeeper's sessionlessCnxnTimeout),
//!   and a connect request may be at most `connect_request_bytes_max`;
//! - a connection reads no further request while it has more than `pause_bytes` of replies
//!   unsent (backpressure: a client that does not read stops being served, it does not make
//!   the server buffer for it);
//! - a connection is closed when it has more than `out_bytes_max` unsent (events can still pile
//!   up while its requests are paused), when its output makes no progress for `write_stall`,
//!   or when the front's unsent bytes exceed its share of the server-wide budget and it holds
//!   the most of them. Such a close drops the queued output at once.

use crate::config::Config;
use crate::stats::ServerStats;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use ringkeeper_engine::proto::frame;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// Bytes read from a socket at a time.
pub const READ_CHUNK: usize = 16 << 10;
/// Most bytes the writer hands the socket in one write (frames are coalesced up to this).
const WRITE_BATCH_BYTES_MAX: usize = 256 << 10;
/// What an abort for unread output says.
pub const OUTPUT_FULL: &str = "its client left more than ringkeeper.clientOutputMaxBytes unread";
/// Replies a connection may have being computed in steps before it stops reading requests.
const RESERVED_MAX: usize = 4;
/// A front closes the connection holding the most unsent bytes only if it holds at least this
/// much; below it the budget is simply smaller than the connections' ordinary queues.
const BUDGET_VICTIM_BYTES_MIN: usize = 64 << 10;

/// The output limits of one connection, from the config.
#[derive(Debug, Clone, Copy)]
pub struct OutLimits {
    pub pause_bytes: usize,
    pub out_bytes_max: usize,
    pub write_stall: Duration,
}

impl OutLimits {
    /// `session_timeout_ms` is the stall limit unless the config names one: a client that reads
    /// nothing for a whole session timeout has given up on the connection (its own read timeout,
    /// two thirds of the session timeout, fires first).
    pub fn new(cfg: &Config, session_timeout_ms: i32) -> OutLimits {
        let stall_ms = if cfg.client_write_stall_ms > 0 {
            cfg.client_write_stall_ms
        } else {
            session_timeout_ms.max(1) as u64
        };
        OutLimits {
            pause_bytes: cfg.client_out_pause_bytes,
            out_bytes_max: cfg.client_out_bytes_max,
            write_stall: Duration::from_millis(stall_ms),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutState {
    Open,
    /// Write what is queued, then close.
    Closing,
    /// Close now, dropping what is queued.
    Aborted,
}

/// A connection's unsent replies and events, shared by the front (which queues frames), the
/// writer task (which sends them) and the reader task (which waits for room).
pub struct Outbox {
    /// Frames in order; a reserved place (a reply still being computed) holds back the frames
    /// behind it until it is filled.
    frames: RefCell<VecDeque<Slot>>,
    /// Places reserved and not yet filled.
    reserved: Cell<usize>,
    next_ticket: Cell<u64>,
    /// Bytes queued or being written.
    unsent: Cell<usize>,
    /// The front's unsent bytes over all its connections.
    front_unsent: Rc<Cell<usize>>,
    state: Cell<OutState>,
    /// Why a limit aborted the connection, for the log and `mntr`.
    abort_reason: Cell<Option<&'static str>>,
    limits: OutLimits,
    /// Wakes the writer: a frame was queued, or the state changed.
    wake_writer: flume::Sender<()>,
    /// Wakes the reader: unsent bytes fell to `pause_bytes` or below, or the output closed.
    wake_reader: flume::Sender<()>,
}

/// A place reserved in an outbox for a reply computed later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

enum Slot {
    Frame(Vec<u8>),
    Reserved(Ticket),
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The connection is closing or closed.
    Closed,
    /// The frame would take the connection past `out_bytes_max`.
    Full,
}

impl Outbox {
    /// A new outbox, with the receivers its writer and reader wait on.
    pub fn new(
        limits: OutLimits,
        front_unsent: Rc<Cell<usize>>,
    ) -> (Rc<Outbox>, flume::Receiver<()>, flume::Receiver<()>) {
        let (wake_writer, writer_rx) = flume::bounded(1);
        let (wake_reader, reader_rx) = flume::bounded(1);
        let outbox = Rc::new(Outbox {
            frames: RefCell::new(VecDeque::new()),
            reserved: Cell::new(0),
            next_ticket: Cell::new(0),
            unsent: Cell::new(0),
            front_unsent,
            state: Cell::new(OutState::Open),
            abort_reason: Cell::new(None),
            limits,
            wake_writer,
            wake_reader,
        });
        (outbox, writer_rx, reader_rx)
    }

    pub fn unsent(&self) -> usize {
        self.unsent.get()
    }

    /// The limit that aborted the connection, if one did.
    pub fn abort_reason(&self) -> Option<&'static str> {
        self.abort_reason.get()
    }

    pub fn is_aborted(&self) -> bool {
        self.state.get() == OutState::Aborted
    }

    pub fn is_open(&self) -> bool {
        self.state.get() == OutState::Open
    }

    /// True while the reader should not take another request: too much unsent, or too many
    /// replies still being computed.
    pub fn paused(&self) -> bool {
        self.is_open()
            && (self.unsent.get() > self.limits.pause_bytes || self.reserved.get() >= RESERVED_MAX)
    }

    /// Queues a frame for sending.
    /// Queues a frame for sending. Past `out_bytes_max` the connection is aborted instead.
    pub fn push(&self, frame: Vec<u8>) -> Result<(), Refused> {
        if !self.is_open() {
            return Err(Refused::Closed);
        }
        let unsent = self.unsent.get() + frame.len();
        if unsent > self.limits.out_bytes_max {
            self.abort(Some(OUTPUT_FULL));
            return Err(Refused::Full);
        }
        self.unsent.set(unsent);
        self.front_unsent.set(self.front_unsent.get() + frame.len());
        self.frames.borrow_mut().push_back(Slot::Frame(frame));
        let _ = self.wake_writer.try_send(());
        Ok(())
    }

    /// Reserves the next place in the output for a reply that is computed later, in steps,
    /// while the connection's later output (events, replies) goes on being produced behind it.
    pub fn reserve(&self) -> Ticket {
        let ticket = Ticket(self.next_ticket.get());
        self.next_ticket.set(ticket.0 + 1);
        self.reserved.set(self.reserved.get() + 1);
        self.frames.borrow_mut().push_back(Slot::Reserved(ticket));
        ticket
    }

    /// Puts `frame` in its reserved place; the frames behind it may go out now.
    /// Works while the outbox is closing too (what was asked before a close is answered), not
    /// after an abort. Past `out_bytes_max` the connection is aborted instead.
    pub fn fill(&self, ticket: Ticket, frame: Vec<u8>) -> Result<(), Refused> {
        let at = self
            .frames
            .borrow()
            .iter()
            .position(|s| matches!(s, Slot::Reserved(t) if *t == ticket));
        let Some(at) = at else {
            return Err(Refused::Closed); // an abort dropped it
        };
        let unsent = self.unsent.get() + frame.len();
        if unsent > self.limits.out_bytes_max {
            self.abort(Some(OUTPUT_FULL));
            return Err(Refused::Full);
        }
        self.reserved.set(self.reserved.get() - 1);
        self.unsent.set(unsent);
        self.front_unsent.set(self.front_unsent.get() + frame.len());
        self.frames.borrow_mut()[at] = Slot::Frame(frame);
        let _ = self.wake_writer.try_send(());
        let _ = self.wake_reader.try_send(());
        Ok(())
    }

    /// Sends what is queued, then closes.
    pub fn close(&self) {
        if self.is_open() {
            self.state.set(OutState::Closing);
            let _ = self.wake_writer.try_send(());
            let _ = self.wake_reader.try_send(());
        }
    }

    /// Closes now and forgets what is queued. `reason` names the limit that did it (None when
    /// the socket failed).
    pub fn abort(&self, reason: Option<&'static str>) {
        if self.state.get() != OutState::Aborted {
            self.release(self.unsent.get());
            self.state.set(OutState::Aborted);
            self.abort_reason.set(reason);
            self.frames.borrow_mut().clear();
            self.reserved.set(0);
            let _ = self.wake_writer.try_send(());
            let _ = self.wake_reader.try_send(());
        }
    }

    /// `n` bytes left the queue (written, or dropped by an abort). After an abort nothing is
    /// counted any more: the abort released everything, the write in flight included.
    fn release(&self, n: usize) {
        if self.state.get() == OutState::Aborted {
            return;
        }
        let before = self.unsent.get();
        self.unsent.set(before - n);
        self.front_unsent.set(self.front_unsent.get() - n);
        let pause = self.limits.pause_bytes;
        if before > pause && before - n <= pause {
            let _ = self.wake_reader.try_send(());
        }
    }

    /// Takes queued frames into `batch`, up to [`WRITE_BATCH_BYTES_MAX`] (at least one frame),
    /// stopping at a reserved place. A frame that big on its own is handed over whole instead
    /// (returned), not copied.
    fn take_batch(&self, batch: &mut Vec<u8>) -> Option<Vec<u8>> {
        let mut frames = self.frames.borrow_mut();
        if batch.is_empty()
            && matches!(frames.front(), Some(Slot::Frame(f)) if f.len() >= WRITE_BATCH_BYTES_MAX)
        {
            let Some(Slot::Frame(f)) = frames.pop_front() else {
                unreachable!("checked")
            };
            return Some(f);
        }
        while let Some(Slot::Frame(f)) = frames.front() {
            if !batch.is_empty() && batch.len() + f.len() > WRITE_BATCH_BYTES_MAX {
                break;
            }
            let Some(Slot::Frame(f)) = frames.pop_front() else {
                unreachable!("checked")
            };
            batch.extend_from_slice(&f);
        }
        None
    }

    /// True when nothing is queued or reserved.
    fn is_empty(&self) -> bool {
        self.frames.borrow().is_empty()
    }
}

/// Why the writer stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterEnd {
    /// Everything was sent and the socket closed.
    Closed,
    /// The socket failed, or the client went away.
    Failed,
    /// The output made no progress for the stall limit.
    Stalled,
    /// The connection was aborted (queued output dropped).
    Aborted,
}

/// What a stalled connection's log line and abort say.
pub const STALLED: &str =
    "its output made no progress for ringkeeper.clientWriteStallMs (default: the session timeout)";

/// Sends an outbox's frames until it closes. Every write must make progress within the stall
/// limit; an abort ends it at once, even in the middle of a write. A stall or a failed socket
/// aborts the outbox, which wakes the connection's reader.
pub async fn write_loop<W: futures_lite::AsyncWrite + Unpin>(
    wr: W,
    outbox: Rc<Outbox>,
    wake: flume::Receiver<()>,
) -> WriterEnd {
    let end = write_all_of(wr, &outbox, wake).await;
    match end {
        WriterEnd::Stalled => outbox.abort(Some(STALLED)),
        WriterEnd::Failed => outbox.abort(None),
        WriterEnd::Closed | WriterEnd::Aborted => {}
    }
    end
}

async fn write_all_of<W: futures_lite::AsyncWrite + Unpin>(
    mut wr: W,
    outbox: &Outbox,
    wake: flume::Receiver<()>,
) -> WriterEnd {
    let mut batch: Vec<u8> = Vec::with_capacity(64 << 10);
    loop {
        match outbox.state.get() {
            OutState::Aborted => return WriterEnd::Aborted,
            OutState::Closing if outbox.is_empty() => {
                let _ = wr.flush().await;
                let _ = wr.close().await;
                return WriterEnd::Closed;
            }
            _ => {}
        }
        batch.clear();
        let whole = outbox.take_batch(&mut batch);
        let out: &[u8] = whole.as_deref().unwrap_or(&batch);
        if out.is_empty() {
            if wake.recv_async().await.is_err() {
                return WriterEnd::Failed;
            }
            continue;
        }
        let mut written = 0;
        while written < out.len() {
            let step =
                futures_lite::future::or(async { Some(wr.write(&out[written..]).await) }, async {
                    glommio::timer::sleep(outbox.limits.write_stall).await;
                    None
                });
            // An abort wakes the writer; any other wake-up is a frame queued meanwhile.
            let aborted = async {
                while outbox.state.get() != OutState::Aborted {
                    if wake.recv_async().await.is_err() {
                        break;
                    }
                }
                Some(Err(std::io::ErrorKind::ConnectionAborted.into()))
            };
            match futures_lite::future::or(step, aborted).await {
                Some(Ok(0)) | Some(Err(_)) if outbox.state.get() == OutState::Aborted => {
                    return WriterEnd::Aborted;
                }
                Some(Ok(0)) | Some(Err(_)) => return WriterEnd::Failed,
                // An abort meanwhile already let go of this batch (a write can still complete
                // after it): stop here.
                Some(Ok(_)) if outbox.state.get() == OutState::Aborted => {
                    return WriterEnd::Aborted;
                }
                Some(Ok(n)) => {
                    written += n;
                    outbox.release(n);
                }
                None => return WriterEnd::Stalled,
            }
        }
    }
}

/// Reads until `buf` holds at least `n` bytes; false on EOF, error or a close of the output.
pub async fn fill<R: futures_lite::AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut Vec<u8>,
    chunk: &mut [u8],
    n: usize,
    closed: &flume::Receiver<()>,
    outbox: Option<&Outbox>,
) -> bool {
    while buf.len() < n {
        if outbox.is_some_and(|o| !o.is_open()) {
            return false;
        }
        let read = futures_lite::future::or(async { Some(rd.read(chunk).await) }, async {
            let _ = closed.recv_async().await;
            None
        })
        .await;
        match read {
            Some(Ok(0)) | Some(Err(_)) => return false,
            Some(Ok(k)) => buf.extend_from_slice(&chunk[..k]),
            // A wake-up: the output closed, or room was made; check again.
            None if outbox.is_some() => continue,
            None => return false,
        }
    }
    true
}

/// Reads one frame of at most `frame_bytes_max`; None when the connection ended or sent a bad
/// length (logged).
pub async fn read_frame<R: futures_lite::AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut Vec<u8>,
    chunk: &mut [u8],
    frame_bytes_max: usize,
    closed: &flume::Receiver<()>,
    outbox: Option<&Outbox>,
    peer: &SocketAddr,
) -> Option<Vec<u8>> {
    loop {
        match frame::next_frame(buf, frame_bytes_max) {
            Ok(Some((start, end))) => {
                let payload = buf[start..end].to_vec();
                buf.drain(..end);
                return Some(payload);
            }
            Ok(None) => {
                let need = if buf.len() < 4 {
                    4
                } else {
                    4 + i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize
                };
                if !fill(rd, buf, chunk, need, closed, outbox).await {
                    return None;
                }
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "bad frame; closing the connection");
                return None;
            }
        }
    }
}

/// Waits until the connection may read its next request: its unsent output is at most the pause
/// bound. False if the output closed meanwhile.
pub async fn wait_for_output_room(outbox: &Outbox, room: &flume::Receiver<()>) -> bool {
    while outbox.paused() {
        if room.recv_async().await.is_err() {
            return false;
        }
    }
    outbox.is_open()
}

/// A connection's socket descriptor, kept to reset the connection when a limit aborts it. Valid
/// while the connection's stream is alive (the caller holds it).
pub struct SocketFd(pub std::os::fd::RawFd);

impl std::os::fd::AsRawFd for SocketFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0
    }
}

/// Makes the coming close of an aborted connection a reset (SO_LINGER 0). A plain close would
/// queue its FIN behind the unsent bytes of a client that does not read, so that client would
/// never learn of it, and the kernel would keep those bytes until it gave up retransmitting.
pub fn reset_on_close(fd: &SocketFd) {
    let _ = socket2::SockRef::from(fd).set_linger(Some(Duration::ZERO));
}

/// Runs `fut` with a deadline; None when the deadline passed first.
pub async fn within<T>(limit: Duration, fut: impl std::future::Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        glommio::timer::sleep(limit).await;
        None
    })
    .await
}

/// Connections per client address, across all fronts, against `maxClientCnxns` (0: no limit).
#[derive(Debug, Default)]
pub struct IpCounts {
    counts: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    max: usize,
}

impl IpCounts {
    pub fn new(max: usize) -> IpCounts {
        IpCounts {
            counts: Default::default(),
            max,
        }
    }
}

/// A connection's place in its client address's `maxClientCnxns` count, given back on drop.
pub struct IpSlot {
    counts: Arc<IpCounts>,
    ip: std::net::IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.counts.lock().expect("ip count lock");
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Takes a slot for `ip`, or None when it already has `maxClientCnxns` connections.
pub fn take_ip_slot(ip_counts: &Arc<IpCounts>, ip: std::net::IpAddr) -> Option<IpSlot> {
    let mut counts = ip_counts.counts.lock().expect("ip count lock");
    let n = counts.entry(ip).or_insert(0);
    if ip_counts.max > 0 && *n >= ip_counts.max {
        return None;
    }
    *n += 1;
    Some(IpSlot {
        counts: ip_counts.clone(),
        ip,
    })
}

/// The front's share of the server-wide budget for unsent bytes.
pub fn front_budget_bytes(cfg: &Config, fronts: usize) -> usize {
    cfg.server_out_budget_bytes / fronts.max(1)
}

/// Picks the connection to close when a front is over its budget: the one holding the most
/// unsent bytes, if it holds at least [`BUDGET_VICTIM_BYTES_MIN`].
pub fn budget_victim<K: Copy>(unsent: impl Iterator<Item = (K, usize)>) -> Option<K> {
    unsent
        .filter(|(_, n)| *n >= BUDGET_VICTIM_BYTES_MIN)
        .max_by_key(|(_, n)| *n)
        .map(|(k, _)| k)
}

/// Counts a connection closed by one of these limits.
pub fn count_limit_close(stats: &ServerStats) {
    stats.connections_closed_by_limits.fetch_add(1, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> OutLimits {
        OutLimits {
            pause_bytes: 10,
            out_bytes_max: 30,
            write_stall: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_outbox_pauses_refuses_and_accounts_for_the_front() {
        let front = Rc::new(Cell::new(0));
        let (o, _w, _r) = Outbox::new(limits(), front.clone());
        o.push(vec![0; 8]).unwrap();
        assert!(!o.paused(), "8 bytes is within the pause bound");
        o.push(vec![0; 8]).unwrap();
        assert!(o.paused(), "16 bytes is past it");
        let mut batch = Vec::new();
        assert_eq!(o.take_batch(&mut batch), None);
        assert_eq!(batch.len(), 16, "frames are coalesced");
        o.release(16);
        assert!(!o.paused());
        assert_eq!(front.get(), 0);
        o.push(vec![0; 5]).unwrap();
        o.abort(Some("test"));
        assert_eq!(
            (o.unsent(), front.get()),
            (0, 0),
            "an abort drops the queue"
        );
        o.release(5); // the write in flight completing after the abort counts nothing
        assert_eq!((o.unsent(), front.get()), (0, 0));
        assert_eq!(o.push(vec![0; 1]), Err(Refused::Closed));
        assert_eq!(o.abort_reason(), Some("test"));
    }

    #[test]
    fn passing_the_hard_bound_aborts() {
        let front = Rc::new(Cell::new(0));
        let (o, _w, _r) = Outbox::new(limits(), front.clone());
        o.push(vec![0; 16]).unwrap();
        assert_eq!(o.push(vec![0; 20]), Err(Refused::Full));
        assert_eq!(o.abort_reason(), Some(OUTPUT_FULL));
        assert_eq!((o.unsent(), front.get()), (0, 0));
        let (o, _w, _r) = Outbox::new(limits(), front.clone());
        let t = o.reserve();
        o.push(vec![0; 16]).unwrap();
        assert_eq!(o.fill(t, vec![0; 20]), Err(Refused::Full));
        assert!(!o.is_open());
        assert_eq!((o.unsent(), front.get(), o.reserved.get()), (0, 0, 0));
    }

    #[test]
    fn a_closing_outbox_still_takes_the_replies_it_reserved_for() {
        let (o, _w, _r) = Outbox::new(limits(), Rc::new(Cell::new(0)));
        let t = o.reserve();
        o.push(vec![9]).unwrap();
        o.close();
        assert!(!o.is_empty());
        o.fill(t, vec![8]).unwrap();
        let mut batch = Vec::new();
        o.take_batch(&mut batch);
        assert_eq!(batch, [8, 9]);
        assert!(o.is_empty());
    }

    #[test]
    fn a_reserved_place_holds_back_the_frames_behind_it() {
        let (o, _w, _r) = Outbox::new(limits(), Rc::new(Cell::new(0)));
        o.push(vec![1; 2]).unwrap();
        let t = o.reserve();
        o.push(vec![3; 2]).unwrap();
        let mut batch = Vec::new();
        o.take_batch(&mut batch);
        assert_eq!(batch, [1, 1], "stops at the reserved place");
        batch.clear();
        o.take_batch(&mut batch);
        assert!(batch.is_empty());
        o.fill(t, vec![2; 2]).unwrap();
        o.take_batch(&mut batch);
        assert_eq!(
            batch,
            [2, 2, 3, 3],
            "the filled reply, then what waited behind it"
        );
        let reserved: Vec<_> = (0..RESERVED_MAX).map(|_| o.reserve()).collect();
        assert!(o.paused(), "too many replies being computed");
        o.fill(reserved[0], vec![0]).unwrap();
        assert!(!o.paused());
    }

    #[test]
    fn a_frame_as_big_as_a_batch_is_handed_over_not_copied() {
        let limits = OutLimits {
            pause_bytes: 1 << 20,
            out_bytes_max: 8 << 20,
            write_stall: Duration::from_secs(1),
        };
        let (o, _w, _r) = Outbox::new(limits, Rc::new(Cell::new(0)));
        o.push(vec![1; 3]).unwrap();
        o.push(vec![2; WRITE_BATCH_BYTES_MAX]).unwrap();
        let mut batch = Vec::new();
        assert_eq!(o.take_batch(&mut batch), None);
        assert_eq!(
            batch,
            [1, 1, 1],
            "the big frame does not fit behind the small one"
        );
        batch.clear();
        let whole = o.take_batch(&mut batch).expect("handed over");
        assert_eq!(whole.len(), WRITE_BATCH_BYTES_MAX);
        assert!(batch.is_empty());
    }

    #[test]
    fn the_budget_victim_is_the_biggest_queue_above_the_floor() {
        let small = BUDGET_VICTIM_BYTES_MIN - 1;
        assert_eq!(budget_victim([(1, small), (2, small)].into_iter()), None);
        assert_eq!(
            budget_victim([(1, small), (2, 1 << 20), (3, 2 << 20)].into_iter()),
            Some(3)
        );
    }
}
