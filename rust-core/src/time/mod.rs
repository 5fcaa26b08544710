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
    if !(delay_ms > 0.0) {
        return Some(0);
    }
    // `as` saturates: anything at or above 2^64 becomes u64::MAX.
    Some((delay_ms * NANOS_PER_MILLI).ceil() as u64)
}

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
pub fn deadline_at(when_ms: f64) -> Nanos {
    match delay_nanos(when_ms) {
        None => NEVER,
        Some(at) => at.min(LATEST),
    }
}

/// Nanoseconds to the host's milliseconds.
pub fn to_millis(ns: Nanos) -> f64 {
    ns as f64 / NANOS_PER_MILLI
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
    }
}
