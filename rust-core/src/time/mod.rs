//! Time: nanosecond instants, the conversions from the host's milliseconds,
//! and the timer queue.
//!
//! The host API speaks milliseconds as f64 (JavaScript numbers); the core
//! keeps u64 nanoseconds so that ordering is exact and never depends on
//! float rounding. Conversions round delays *up*, so a timer never fires
//! before `time() + delay`, and saturate instead of overflowing.

pub mod lag;
pub mod wheel;

/// An instant or a duration in nanoseconds on the host clock's scale.
pub type Nanos = u64;

/// Deadline of a timer that never fires (`delay = +Infinity`). Such a timer
/// is never put in the queue and does not keep the loop alive.
pub const NEVER: Nanos = u64::MAX;

/// The latest finite deadline. Finite deadlines beyond it saturate here
/// (about 584 years of loop time), so they still keep the loop alive.
pub const LATEST: Nanos = u64::MAX - 1;

const NANOS_PER_MILLI: f64 = 1_000_000.0;

/// Converts a host delay in milliseconds to nanoseconds, rounding up.
/// Negative delays and NaN count as 0 (asyncio runs a negative delay at
/// once); `None` means +Infinity, a timer that never fires.
pub fn delay_nanos(delay_ms: f64) -> Option<Nanos> {
    if delay_ms == f64::INFINITY {
        return None;
    }
    if delay_ms.is_nan() || delay_ms <= 0.0 {
        return Some(0);
    }
    let (whole, fraction) = split_millis(delay_ms);
    Some(whole.saturating_add(fraction.ceil() as u64))
}

/// Splits a positive, finite `ms` into whole milliseconds in ns (exact, and
/// saturating) and the remainder in ns as f64. Scaling the parts apart keeps
/// whole milliseconds exact far beyond 2^53 ns (104 days): hosts whose clock
/// reads epoch time (workerd's `performance.now()` is about 1.8e12 ms) need
/// that, or `(t + 10) * 1e6` lands on the nearest multiple of 256 ns.
fn split_millis(ms: f64) -> (Nanos, f64) {
    let whole = ms.floor();
    // Saturates by comparing floats first: `saturating_mul` on a u64 is a
    // 128-bit multiply, which wasm32 has no instruction for (a libcall on
    // every timer scheduled).
    let nanos = if whole > MAX_WHOLE_MILLIS {
        Nanos::MAX
    } else {
        whole as u64 * NANOS_PER_MILLI_INT
    };
    (nanos, (ms - whole) * NANOS_PER_MILLI)
}

const NANOS_PER_MILLI_INT: u64 = 1_000_000;
/// The most whole milliseconds whose nanoseconds fit a u64 (exact in an f64).
const MAX_WHOLE_MILLIS: f64 = (u64::MAX / NANOS_PER_MILLI_INT) as f64;

/// The deadline `delay_ms` after `now`: saturating at [`LATEST`], or
/// [`NEVER`] for +Infinity.
pub fn deadline_after(now: Nanos, delay_ms: f64) -> Nanos {
    match delay_nanos(delay_ms) {
        None => NEVER,
        Some(delay) => now.saturating_add(delay).min(LATEST),
    }
}

/// The deadline at loop time `when_ms`: [`NEVER`] for +Infinity, 0 for NaN
/// and negative times (already due), saturating at [`LATEST`].
///
/// An instant rounds to the *nearest* ns, unlike a delay: `when_ms` is
/// usually `time() + d`, and [`to_millis`] already rounded `time()`, so
/// rounding up would make `call_at(time() + d)` fall a nanosecond after
/// `call_later(d)` and break their scheduling order. Half a nanosecond is
/// far below the resolution of any host clock.
pub fn deadline_at(when_ms: f64) -> Nanos {
    if when_ms == f64::INFINITY {
        return NEVER;
    }
    if when_ms.is_nan() || when_ms <= 0.0 {
        return 0;
    }
    let (whole, fraction) = split_millis(when_ms);
    whole.saturating_add(fraction.round() as u64).min(LATEST)
}

/// Nanoseconds to the host's milliseconds. Whole milliseconds convert
/// exactly up to 2^53 ms, whatever the size of `ns`.
pub fn to_millis(ns: Nanos) -> f64 {
    (ns / NANOS_PER_MILLI_INT) as f64 + (ns % NANOS_PER_MILLI_INT) as f64 / NANOS_PER_MILLI
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_and_nan_delays_count_as_zero() {
        assert_eq!(delay_nanos(-5.0), Some(0));
        assert_eq!(delay_nanos(f64::NAN), Some(0));
        assert_eq!(delay_nanos(f64::NEG_INFINITY), Some(0));
        assert_eq!(delay_nanos(0.0), Some(0));
    }

    #[test]
    fn delays_round_up_to_whole_nanoseconds() {
        assert_eq!(delay_nanos(1.0), Some(1_000_000));
        assert_eq!(delay_nanos(0.0000001), Some(1));
        assert_eq!(delay_nanos(2.5), Some(2_500_000));
    }

    #[test]
    fn infinity_never_fires_and_huge_delays_saturate() {
        assert_eq!(deadline_after(10, f64::INFINITY), NEVER);
        assert_eq!(deadline_after(10, 1e300), LATEST);
        assert_eq!(deadline_after(LATEST - 1, 1.0), LATEST);
        assert_eq!(deadline_at(f64::MAX), LATEST);
        assert_eq!(deadline_at(-3.0), 0);
        assert_eq!(deadline_at(f64::INFINITY), NEVER);
    }

    #[test]
    fn whole_milliseconds_saturate_exactly_at_the_end_of_u64() {
        // The largest whole ms whose ns fit, and the next one.
        assert_eq!(
            delay_nanos(18_446_744_073_709.0),
            Some(18_446_744_073_709_000_000)
        );
        assert_eq!(
            delay_nanos(18_446_744_073_709.5),
            Some(18_446_744_073_709_500_000)
        );
        assert_eq!(delay_nanos(18_446_744_073_710.0), Some(u64::MAX));
        assert_eq!(delay_nanos(2f64.powi(64)), Some(u64::MAX));
        assert_eq!(
            deadline_at(18_446_744_073_709.0),
            18_446_744_073_709_000_000
        );
        assert_eq!(deadline_at(18_446_744_073_710.0), LATEST);
    }

    /// `call_at(time() + d)` must land exactly where `call_later(d)` does,
    /// or equal deadlines stop running in scheduling order.
    fn assert_at_matches_after(now: Nanos, delay_ms: f64) {
        let at = deadline_at(to_millis(now) + delay_ms);
        let after = deadline_after(now, delay_ms);
        assert_eq!(
            at, after,
            "now {now} ns, delay {delay_ms} ms: at {at} != after {after}"
        );
    }

    #[test]
    fn call_at_time_plus_delay_equals_call_later_on_a_process_clock() {
        // Node and Deno: ms since process start, with a fraction.
        let mut now: Nanos = 12_345;
        for _ in 0..10_000 {
            now = now
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407)
                % (1 << 50);
            for delay in [
                0.0,
                1.0,
                4.0,
                10.0,
                250.0,
                1000.0,
                60_000.0,
                2_147_483_647.0,
            ] {
                assert_at_matches_after(now, delay);
            }
        }
    }

    #[test]
    fn call_at_time_plus_delay_equals_call_later_on_an_epoch_clock() {
        // workerd: performance.now() is epoch ms, whole milliseconds.
        let mut ms: u64 = 1_795_636_166_567;
        for step in 0..10_000u64 {
            ms += step * 7919;
            for delay in [0.0, 1.0, 10.0, 1000.0, 86_400_000.0] {
                assert_at_matches_after(ms * 1_000_000, delay);
            }
        }
    }

    #[test]
    fn whole_milliseconds_convert_exactly_beyond_2_pow_53_ns() {
        let ns: Nanos = 1_795_636_166_577_000_000;
        assert_eq!(to_millis(ns), 1_795_636_166_577.0);
        assert_eq!(deadline_at(1_795_636_166_577.0), ns);
        assert_eq!(delay_nanos(1_795_636_166_577.0), Some(ns));
        assert_eq!(to_millis(1_500_000), 1.5);
    }
}
