//! The two clocks the server keeps, as ZooKeeper does: an elapsed-time clock for session
//! deadlines and timers ([`now_ms`], which never jumps) and wall time for znode stamps and
//! what is printed ([`wall_ms`]). Also ZooKeeper's way of printing a time.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Wall time: milliseconds since the Unix epoch (0 if the clock is before it).
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The engine's clock: wall time when the process started plus the monotonic time since. It
/// reads like wall time but a step of the wall clock (an NTP correction, an operator's `date`)
/// does not move it, so a session's deadline or a peer's sync limit never passes early or late
/// because of one.
pub fn now_ms() -> i64 {
    static START: OnceLock<(Instant, i64)> = OnceLock::new();
    let (at, wall) = START.get_or_init(|| (Instant::now(), wall_ms()));
    wall + at.elapsed().as_millis() as i64
}

/// What to add to [`now_ms`] to get wall time now (the engine's stamps take it).
pub fn wall_offset_ms() -> i64 {
    let now = now_ms();
    wall_ms() - now
}

/// `Wed Nov 25 01:40:00 UTC 2026`, as Java's `Date.toString` prints in UTC.
pub fn format_time_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!("{weekday} {mon} {day:02} {h:02}:{m:02}:{s:02} UTC {year}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_print_like_java() {
        assert_eq!(format_time_ms(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(
            format_time_ms(1_795_570_800_000),
            "Wed Nov 25 01:40:00 UTC 2026"
        );
    }
}
