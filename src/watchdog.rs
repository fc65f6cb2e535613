//! A last resort against an executor that sleeps through a wake-up.
//!
//! glommio 0.9 can put an executor to sleep with woken tasks still queued (see
//! `server::keep_awake`, which keeps a timer pending at every moment to bound such a sleep).
//! Should an executor still sleep through its own timer, for that reason or another, this
//! wakes it.
//!
//! So each executor's timer task beats here, and the `rk-watchdog` thread looks every
//! [`PERIOD`]: an executor whose last beat is older than [`STALE`] while its thread is asleep
//! (state S in `/proc`: not running, not waiting for a core, not in disk I/O) has missed its own
//! timer, and gets a SIGURG. The signal's handler does nothing (`SA_RESTART`, so any other
//! blocking call on that thread just goes on); its only effect is to end the executor's wait.
//! A thread that is busy, or waiting for a core, is never signalled. Each signal is logged
//! (saying whether the timer task had been woken and left queued, or never woken) and counted
//! (`zk_rk_executor_wakeups_forced` in `mntr`).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

/// How often the watchdog looks.
pub const PERIOD: Duration = Duration::from_millis(20);
/// How long an executor may go without running its timer task while asleep.
pub const STALE: Duration = Duration::from_millis(60);

/// One watched thread: the executor's timer task beats on it.
#[derive(Debug)]
pub struct Beat {
    name: String,
    tid: libc::pid_t,
    /// Milliseconds since the watchdog's start at the last beat.
    last_ms: AtomicU64,
    /// ... and when the timer task was last woken (see [`Registration::noting`]); 0 before.
    woken_ms: AtomicU64,
}

/// A watched thread's registration; dropping it (on that thread) ends the watch.
pub struct Registration {
    beat: Arc<Beat>,
    dog: &'static Watchdog,
}

impl Registration {
    /// The thread is alive and running its tasks.
    pub fn beat(&self) {
        self.beat.last_ms.store(self.dog.now_ms(), Relaxed);
    }

    /// Awaits `fut`, noting when its waker is called. A task woken after its last beat but not
    /// run since was left queued by its executor; one not woken since waited for a wake-up
    /// that never came. The watchdog's warning says which.
    pub async fn noting<F: Future>(&self, fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        let (beat, dog) = (self.beat.clone(), self.dog);
        std::future::poll_fn(move |cx| {
            let noted = Waker::from(Arc::new(NotedWaker {
                inner: cx.waker().clone(),
                beat: beat.clone(),
                dog,
            }));
            fut.as_mut().poll(&mut Context::from_waker(&noted))
        })
        .await
    }
}

/// A waker that notes the time on the beat, then wakes the task.
struct NotedWaker {
    inner: Waker,
    beat: Arc<Beat>,
    dog: &'static Watchdog,
}

impl Wake for NotedWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.beat.woken_ms.store(self.dog.now_ms(), Relaxed);
        self.inner.wake_by_ref();
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut beats = self.dog.beats.lock().expect("not poisoned");
        beats.retain(|b| !Arc::ptr_eq(b, &self.beat));
    }
}

/// The watched threads, and the count of signals sent.
pub struct Watchdog {
    start: Instant,
    stale: Duration,
    beats: Mutex<Vec<Arc<Beat>>>,
    kicks: AtomicU64,
}

impl Watchdog {
    fn new(stale: Duration) -> Watchdog {
        Watchdog {
            start: Instant::now(),
            stale,
            beats: Mutex::new(Vec::new()),
            kicks: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Watches the calling thread from now on, under `name`.
    pub fn register(&'static self, name: &str) -> Registration {
        // SAFETY: gettid takes no arguments and cannot fail.
        #[allow(unsafe_code)]
        let tid = unsafe { libc::gettid() };
        let beat = Arc::new(Beat {
            name: name.to_string(),
            tid,
            last_ms: AtomicU64::new(self.now_ms()),
            woken_ms: AtomicU64::new(0),
        });
        self.beats.lock().expect("not poisoned").push(beat.clone());
        Registration { beat, dog: self }
    }

    /// Signals sent so far.
    pub fn kicks(&self) -> u64 {
        self.kicks.load(Relaxed)
    }

    /// One look: signals every watched thread that is asleep with a stale beat. The lock is
    /// held while signalling, so a thread that has dropped its registration is never signalled.
    fn look(&self) {
        let now = self.now_ms();
        let beats = self.beats.lock().expect("not poisoned");
        for b in beats.iter() {
            let last = b.last_ms.load(Relaxed);
            let idle = now.saturating_sub(last);
            if idle < self.stale.as_millis() as u64 || thread_state(b.tid) != Some('S') {
                continue;
            }
            // Where it sleeps (io_cqring_wait for glommio's wait), for whoever looks into it.
            let wchan = std::fs::read_to_string(format!("/proc/self/task/{}/wchan", b.tid))
                .unwrap_or_default();
            // Woken since its last run: the executor left the task queued and went to sleep.
            let woken = b.woken_ms.load(Relaxed);
            let woken_ms_ago = (woken > last).then(|| now.saturating_sub(woken));
            if kick(b.tid) {
                self.kicks.fetch_add(1, Relaxed);
                tracing::warn!(
                    executor = %b.name, tid = b.tid, idle_ms = idle, wchan = wchan.trim(), ?woken_ms_ago,
                    "an executor asleep in the kernel has not run its 10 ms timer; woke it with a signal"
                );
                // Once per stale stretch: the next kick waits for another full STALE.
                b.last_ms.store(now, Relaxed);
            }
        }
    }

    fn run(&'static self) {
        loop {
            std::thread::sleep(PERIOD);
            self.look();
        }
    }
}

/// The thread's scheduler state letter from `/proc/self/task/<tid>/stat` (None when gone).
fn thread_state(tid: libc::pid_t) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // The name in parentheses may hold spaces; the state follows the last ')'.
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Sends SIGURG to one thread of this process; false when it is gone.
fn kick(tid: libc::pid_t) -> bool {
    // SAFETY: tgkill takes plain integers and touches no memory of ours; with our own pid as the
    // thread group it can reach only a thread of this process, and SIGURG's handler is a no-op.
    #[allow(unsafe_code)]
    let r = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGURG) };
    r == 0
}

static DOG: OnceLock<&'static Watchdog> = OnceLock::new();

/// The process's watchdog, started on first use: the SIGURG handler installed and the
/// `rk-watchdog` thread running.
pub fn global() -> &'static Watchdog {
    DOG.get_or_init(|| start(STALE))
}

fn start(stale: Duration) -> &'static Watchdog {
    // A handler that only sets a flag nobody reads: what matters is that the signal interrupts
    // the executor's wait instead of being ignored, as SIGURG is by default.
    if let Err(e) = signal_hook::flag::register(libc::SIGURG, Arc::new(AtomicBool::new(false))) {
        tracing::warn!(error = %e, "cannot install the SIGURG handler; the executor watchdog is off");
        return Box::leak(Box::new(Watchdog::new(stale)));
    }
    let dog: &'static Watchdog = Box::leak(Box::new(Watchdog::new(stale)));
    if let Err(e) = std::thread::Builder::new()
        .name("rk-watchdog".into())
        .spawn(move || dog.run())
    {
        tracing::warn!(error = %e, "cannot start the executor watchdog");
    }
    dog
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A thread asleep in poll(2) (interruptible, never restarted after a signal) with no beat
    /// is woken by the watchdog; a thread that keeps beating is left alone.
    #[test]
    fn an_asleep_thread_with_a_stale_beat_is_woken_and_a_beating_one_is_not() {
        let dog = start(Duration::from_millis(100));
        let (tx, rx) = mpsc::channel();
        let sleeper = std::thread::spawn(move || {
            let _reg = dog.register("sleeper");
            // SAFETY: poll with no descriptors only sleeps; it returns on timeout or a signal.
            #[allow(unsafe_code)]
            let r = unsafe { libc::poll(std::ptr::null_mut(), 0, 60_000) };
            let err = std::io::Error::last_os_error().kind();
            tx.send((r, err)).unwrap();
        });
        let (btx, brx) = mpsc::channel::<()>();
        let beater = std::thread::spawn(move || {
            let reg = dog.register("beater");
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until {
                reg.beat();
                // SAFETY: as above.
                #[allow(unsafe_code)]
                let r = unsafe { libc::poll(std::ptr::null_mut(), 0, 20) };
                if r < 0 {
                    btx.send(()).unwrap(); // interrupted: it was signalled
                }
            }
        });
        let (r, err) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the sleeping thread was never woken");
        assert_eq!((r, err), (-1, std::io::ErrorKind::Interrupted));
        sleeper.join().unwrap();
        beater.join().unwrap();
        assert!(
            brx.try_recv().is_err(),
            "a thread that kept beating was signalled"
        );
        assert!(dog.kicks() >= 1);
        // Both registrations are gone with their threads.
        assert!(dog.beats.lock().unwrap().is_empty());
    }

    /// A thread that is running (state R) is not signalled, however stale its beat.
    #[test]
    fn a_busy_thread_is_not_signalled() {
        let dog = start(Duration::from_millis(100));
        let busy = std::thread::spawn(move || {
            let _reg = dog.register("busy");
            let until = Instant::now() + Duration::from_millis(800);
            let mut x = 0u64;
            while Instant::now() < until {
                x = x.wrapping_add(1);
            }
            x
        });
        busy.join().unwrap();
        assert_eq!(dog.kicks(), 0);
    }

    /// A glommio executor asleep waiting for a channel takes the signals as wake-ups and goes
    /// on: it is signalled while it waits (it never beats), then still gets its message.
    #[test]
    fn a_glommio_executor_survives_being_signalled_while_asleep() {
        let dog = start(Duration::from_millis(100));
        let (tx, rx) = flume::bounded::<u32>(1);
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .name("rk-test-dog")
            .spawn(move || async move {
                let _reg = dog.register("rk-test-dog");
                rx.recv_async().await.ok()
            })
            .unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        while dog.kicks() < 2 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(dog.kicks() >= 2, "the asleep executor was not signalled");
        tx.send(7).unwrap();
        assert_eq!(ex.join().unwrap(), Some(7));
    }

    /// `noting` records when the awaited future's waker was called, before the task runs.
    #[test]
    fn noting_records_the_wake_up_of_the_awaited_future() {
        let dog = start(Duration::from_secs(3600));
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(move || async move {
                let reg = dog.register("rk-test-noting");
                reg.beat();
                let before = reg.beat.woken_ms.load(Relaxed);
                glommio::timer::sleep(Duration::from_millis(30)).await;
                reg.noting(glommio::timer::sleep(Duration::from_millis(30)))
                    .await;
                let woken = reg.beat.woken_ms.load(Relaxed);
                (before, woken, reg.beat.last_ms.load(Relaxed), dog.now_ms())
            })
            .unwrap();
        let (before, woken, last_beat, now) = ex.join().unwrap();
        assert_eq!(before, 0);
        // Woken after the beat that came before the first 30 ms sleep, and not in the future.
        assert!(
            woken >= last_beat + 30 && woken <= now,
            "{woken} {last_beat} {now}"
        );
    }

    #[test]
    fn thread_state_reads_this_thread_as_running() {
        // SAFETY: as in `register`.
        #[allow(unsafe_code)]
        let tid = unsafe { libc::gettid() };
        assert_eq!(thread_state(tid), Some('R'));
        assert_eq!(thread_state(-1), None);
    }
}
