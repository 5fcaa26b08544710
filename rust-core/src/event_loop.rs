//! The loop core: scheduling, cancellation and `run_once`, the iteration.
//!
//! One iteration, as numbered in docs/design.md (libuv's `uv_run` and
//! asyncio's `_run_once` agree on this contract):
//!
//! 0. Release the slots of the previous batch: their callbacks have run
//!    (or were cancelled), so handles to them go stale now.
//! 1. Read the clock once; that `now` holds for the whole iteration.
//! 2. Take the callbacks queued before this iteration began (`call_soon`),
//!    then collect every timer due at `now`, in (deadline, sequence) order,
//!    before any callback runs: a callback that schedules a 0 ms timer lands
//!    in the next iteration, so it cannot spin this one.
//! 3. I/O: the tokens the host reports (readiness, then completions) join
//!    the batch as their watchers' and expected completions' callbacks. The
//!    host is asked only while watchers or expected completions exist.
//! 4. Return the batch. The host runs it in order, skipping callbacks
//!    cancelled meanwhile; whatever the batch schedules runs next time.
//!
//! The callbacks of `call_soon` take no slot. They run in the order they
//! were queued, all of them at the head of the next batch, so the queue is
//! a pair of sequence numbers: a `call_soon` handle is its sequence number,
//! and a batch says how many of them it takes ([`Batch::soon`]) before its
//! slots. The host keeps the callbacks in the same order. What the core
//! still keeps per queued callback is one bit, and only once something is
//! cancelled: which of them are, so that a cancelled callback neither keeps
//! the loop awake nor is counted.
//!
//! ```text
//!  sequence:  0 ... soon_taken ............. soon_next
//!             |  run, or in  |    queued     | next call_soon
//!             | the batch    | (soon_live    |
//!             |              |  of them not  |
//!             |              |  cancelled)   |
//! ```
//! The host decides how long to wait before the next iteration with
//! [`EventLoop::poll_timeout_ms`]: 0 if callbacks are ready, the time to the
//! earliest deadline otherwise, or -1 if nothing could ever become ready.

use crate::handles::{Slots, State, GENERATION_LIMIT, MAX_SLOTS};
use crate::time::lag::LagHistogram;
use crate::time::wheel::TimerWheel;
use crate::time::{deadline_after, deadline_at, to_millis, Nanos, NEVER};

/// What the core needs from its host.
pub trait Host {
    /// The monotonic clock, in nanoseconds (the `clock` WIT interface).
    fn now(&mut self) -> Nanos;
    /// Tokens of sources that became ready (the `readiness` WIT interface).
    fn take_ready(&mut self, max: u32) -> Vec<u32>;
    /// Tokens of operations that completed (the `completion` WIT interface).
    fn take_completed(&mut self, max: u32) -> Vec<u32>;
}

/// Most I/O tokens taken from the host per iteration and interface; the
/// rest wait for the next iteration, so a flood of I/O cannot starve timers.
pub const MAX_IO_EVENTS: u32 = 4096;

/// `call_soon` sequence numbers stay below this, so that a handle id is an
/// exact f64 (as slot handle ids are).
pub const SOON_LIMIT: u64 = 1 << 53;

/// What one iteration hands the host: first the next `soon` callbacks
/// queued by `call_soon`, in the order they were queued, then `slots`.
#[derive(Debug, PartialEq, Eq)]
pub struct Batch<'a> {
    /// How many `call_soon` callbacks the batch takes from the head of the
    /// queue (cancelled ones included: the host skips them).
    pub soon: u32,
    /// The slots of due timers, then of I/O callbacks, in order.
    pub slots: &'a [u32],
}

impl Batch<'_> {
    /// Callbacks in the batch: the `call_soon`s, then the slots.
    pub fn len(&self) -> usize {
        self.soon as usize + self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counters, as `loop-stats` in the WIT.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub iterations: u64,
    pub timers_pending: u32,
    pub ready_pending: u32,
    pub timers_cancelled: u32,
    pub watchers: u32,
    pub completions_pending: u32,
    pub slots_allocated: u32,
    pub table_bytes: u64,
    /// Timers that ran, and how late (ns after their deadline, at the start
    /// of the iteration that ran them): median, 99th percentile, maximum.
    pub lag_samples: u64,
    pub lag_p50: u64,
    pub lag_p99: u64,
    pub lag_max: u64,
}

/// Returned by [`EventLoop::poll_timeout_ms`] when no timer or callback
/// could ever become ready: wait only for outside wakeups.
pub const WAIT_FOREVER: f64 = -1.0;

/// Where an iteration's time comes from (phase 1).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TimeStep {
    /// The host's clock, read once: [`EventLoop::run_once`].
    ReadClock,
    /// The earliest timer's deadline when nothing is ready, no clock read:
    /// [`EventLoop::jump_and_run_once`].
    JumpToNextTimer,
}

/// One event loop's scheduler state.
pub struct EventLoop<H: Host> {
    host: H,
    /// The loop's time: the clock reading of the current iteration.
    now: Nanos,
    slots: Slots,
    timers: TimerWheel,
    /// Scheduling order of timers; ties on deadline fire in this order.
    next_seq: u32,
    /// The sequence number the next `call_soon` gets.
    soon_next: u64,
    /// `call_soon`s below this are in a batch already (run, or running).
    soon_taken: u64,
    /// Queued `call_soon`s (`soon_taken..soon_next`) not cancelled.
    soon_live: u32,
    /// Which queued `call_soon`s are cancelled: bit `seq - soon_taken` of
    /// word 0 onwards, counted from `soon_taken` rounded down to 64. Grows
    /// only when something is cancelled; emptied as the queue is taken.
    soon_cancelled: Vec<u64>,
    /// The batch handed to the host by the last `run_once`.
    batch: Vec<u32>,
    /// Timers with an infinite delay: scheduled, cancellable, never queued.
    parked: u32,
    /// I/O watchers (`Watching` or `WatchQueued`).
    watchers: u32,
    /// Expected I/O completions not yet reported (`Awaiting`).
    awaiting: u32,
    iterations: u64,
    lag: LagHistogram,
}

impl<H: Host> EventLoop<H> {
    /// A new, empty loop; reads the clock once.
    pub fn new(mut host: H) -> EventLoop<H> {
        let now = host.now();
        EventLoop {
            host,
            now,
            slots: Slots::new(),
            timers: TimerWheel::new(now),
            next_seq: 0,
            soon_next: 0,
            soon_taken: 0,
            soon_live: 0,
            soon_cancelled: Vec::new(),
            batch: Vec::new(),
            parked: 0,
            watchers: 0,
            awaiting: 0,
            iterations: 0,
            lag: LagHistogram::default(),
        }
    }

    /// The host, for tests and hosts that keep state in it.
    pub fn host_mut(&mut self) -> &mut H {
        &mut self.host
    }

    /// The loop's time in ms.
    pub fn time_ms(&self) -> f64 {
        to_millis(self.now)
    }

    /// The loop's time in ns.
    pub fn now(&self) -> Nanos {
        self.now
    }

    /// Reads the clock and makes it the loop's time. A clock that went back
    /// is ignored: loop time never decreases.
    pub fn update_time(&mut self) -> f64 {
        let now = self.host.now();
        if now > self.now {
            self.now = now;
        }
        self.time_ms()
    }

    fn alloc(&mut self, state: State) -> u32 {
        match self.slots.alloc(state) {
            Some(slot) => slot,
            // The host bounds its own tables long before this; reaching it
            // means a host bug, and a trap is the only safe answer.
            None => panic!("handle table full: {MAX_SLOTS} callbacks pending"),
        }
    }

    /// Queues a callback for the next iteration; returns its handle id, its
    /// sequence number (0 for the loop's first `call_soon`, then counting).
    pub fn call_soon(&mut self) -> f64 {
        let seq = self.soon_next;
        // Both limits are out of reach (2^32 callbacks queued in one
        // iteration; 2^53 over the loop's life); a host that gets there has
        // a bug, and a trap is the only safe answer.
        assert!(
            seq - self.soon_taken < u64::from(u32::MAX) && seq < SOON_LIMIT,
            "call_soon queue full"
        );
        self.soon_next = seq + 1;
        self.soon_live += 1;
        seq as f64
    }

    /// Cancels a callback queued by `call_soon`, by its handle id. True if
    /// it was queued and is cancelled now; false once it is in a batch
    /// (which callbacks of its batch have run is the host's to know, and the
    /// host skips the rest), if cancelled already, or for an id no
    /// `call_soon` returned.
    pub fn cancel_soon(&mut self, id: f64) -> bool {
        // Not a whole number in range: never issued (NaN fails both tests).
        if !(id >= self.soon_taken as f64 && id < self.soon_next as f64) || id.fract() != 0.0 {
            return false;
        }
        let offset = id as u64 - (self.soon_taken & !63);
        let (word, bit) = ((offset / 64) as usize, 1u64 << (offset % 64));
        if word >= self.soon_cancelled.len() {
            self.soon_cancelled.resize(word + 1, 0);
        }
        if self.soon_cancelled[word] & bit != 0 {
            return false;
        }
        self.soon_cancelled[word] |= bit;
        self.soon_live -= 1;
        true
    }

    /// A timer `delay_ms` after the loop's time; returns its handle id.
    pub fn call_later(&mut self, delay_ms: f64) -> f64 {
        let deadline = deadline_after(self.now, delay_ms);
        self.schedule(deadline)
    }

    /// A timer at loop time `when_ms`; returns its handle id.
    pub fn call_at(&mut self, when_ms: f64) -> f64 {
        self.schedule(deadline_at(when_ms))
    }

    fn schedule(&mut self, deadline: Nanos) -> f64 {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        if deadline == NEVER {
            let slot = self.alloc(State::Parked);
            self.parked += 1;
            return self.slots.id(slot);
        }
        let slot = self.alloc(State::Timer);
        self.timers.insert(slot, deadline, seq);
        self.slots.id(slot)
    }

    /// A persistent I/O watcher; its slot is its readiness token.
    pub fn watch(&mut self) -> f64 {
        let slot = self.alloc(State::Watching);
        self.watchers += 1;
        self.slots.id(slot)
    }

    /// A one-shot callback for an I/O completion; its slot is its token.
    pub fn expect(&mut self) -> f64 {
        let slot = self.alloc(State::Awaiting);
        self.awaiting += 1;
        self.slots.id(slot)
    }

    /// The slot of a live handle, or `None` for a stale or forged one.
    fn lookup(&self, slot: u32, generation: u32) -> Option<State> {
        if generation >= GENERATION_LIMIT
            || !self.slots.contains(slot)
            || self.slots.generation(slot) != generation
        {
            return None;
        }
        Some(self.slots.state(slot))
    }

    /// Cancels a handle. True if the callback was still to run (the host may
    /// drop it); false for stale, forged, already cancelled or already run
    /// handles. A callback in the current batch counts as still to run: only
    /// the host knows whether it has reached it yet.
    pub fn cancel(&mut self, slot: u32, generation: u32) -> bool {
        match self.lookup(slot, generation) {
            Some(State::Timer) => {
                self.slots.set_state(slot, State::Tombstone);
                self.timers.cancelled(&mut self.slots, slot);
                true
            }
            Some(State::Parked) => {
                self.parked -= 1;
                self.slots.free(slot);
                true
            }
            Some(State::Running) => {
                self.slots.set_state(slot, State::Cancelled);
                true
            }
            Some(State::Watching) => {
                self.watchers -= 1;
                self.slots.free(slot);
                true
            }
            Some(State::WatchQueued) => {
                // In the current batch: freed when the batch is released.
                self.watchers -= 1;
                self.slots.set_state(slot, State::Cancelled);
                true
            }
            Some(State::Awaiting) => {
                self.awaiting -= 1;
                self.slots.free(slot);
                true
            }
            _ => false,
        }
    }

    /// One iteration: phases 0 to 4 of the module doc. Returns the
    /// callbacks the host should run, in order.
    pub fn run_once(&mut self) -> Batch<'_> {
        self.iterate(TimeStep::ReadClock)
    }

    /// Virtual time in one crossing: [`Self::run_once`], except that phase
    /// 1 reads no clock; with no callback ready, the loop's time moves to
    /// the earliest pending timer's deadline instead (trio's autojump, done
    /// where the deadlines are). The host's virtual clock follows `time()`.
    pub fn jump_and_run_once(&mut self) -> Batch<'_> {
        self.iterate(TimeStep::JumpToNextTimer)
    }

    fn iterate(&mut self, step: TimeStep) -> Batch<'_> {
        // 0. Release the previous batch (watchers stay registered).
        for &slot in &self.batch {
            match self.slots.state(slot) {
                State::WatchQueued => self.slots.set_state(slot, State::Watching),
                state => {
                    debug_assert!(
                        matches!(state, State::Running | State::Cancelled),
                        "slot {slot} of the last batch is {state:?}"
                    );
                    self.slots.free(slot);
                }
            }
        }
        self.batch.clear();

        // 1. Read the clock once (or, on virtual time, jump to the next timer).
        match step {
            TimeStep::ReadClock => {
                self.update_time();
            }
            TimeStep::JumpToNextTimer => {
                if self.soon_live == 0 {
                    if let Some(deadline) = self.timers.next_deadline(&mut self.slots) {
                        self.now = self.now.max(deadline);
                    }
                }
            }
        }

        // 2. Callbacks queued before this iteration, then due timers.
        let soon = (self.soon_next - self.soon_taken) as u32;
        self.soon_taken = self.soon_next;
        self.soon_live = 0;
        self.soon_cancelled.clear();
        self.timers
            .expire(&mut self.slots, self.now, &mut self.batch, &mut self.lag);

        // 3. I/O tokens, readiness then completions.
        if self.watchers > 0 {
            for token in self.host.take_ready(MAX_IO_EVENTS) {
                if self.slots.contains(token) && self.slots.state(token) == State::Watching {
                    self.slots.set_state(token, State::WatchQueued);
                    self.batch.push(token);
                }
            }
        }
        if self.awaiting > 0 {
            for token in self.host.take_completed(MAX_IO_EVENTS) {
                if self.slots.contains(token) && self.slots.state(token) == State::Awaiting {
                    self.slots.set_state(token, State::Running);
                    self.awaiting -= 1;
                    self.batch.push(token);
                }
            }
        }

        self.iterations += 1;
        Batch {
            soon,
            slots: &self.batch,
        }
    }

    /// How long the host may wait before the next `run_once`, in ms: 0 when
    /// callbacks are ready, the time until the earliest timer (reading the
    /// clock), or [`WAIT_FOREVER`].
    pub fn poll_timeout_ms(&mut self) -> f64 {
        if self.soon_live > 0 {
            return 0.0;
        }
        match self.timers.next_deadline(&mut self.slots) {
            None => WAIT_FOREVER,
            Some(deadline) => {
                let now = self.host.now().max(self.now);
                if deadline <= now {
                    0.0
                } else {
                    to_millis(deadline - now)
                }
            }
        }
    }

    /// Whether anything scheduled can still run: a ready callback, a timer
    /// with a finite deadline, or awaited I/O.
    pub fn alive(&self) -> bool {
        self.soon_live > 0 || self.timers.live() > 0 || self.watchers > 0 || self.awaiting > 0
    }

    pub fn stats(&self) -> Stats {
        Stats {
            iterations: self.iterations,
            timers_pending: self.timers.live() + self.parked,
            ready_pending: self.soon_live,
            timers_cancelled: self.timers.tombstones(),
            watchers: self.watchers,
            completions_pending: self.awaiting,
            slots_allocated: self.slots.allocated(),
            table_bytes: (self.slots.bytes()
                + self.timers.bytes()
                + self.batch.capacity() * 4
                + self.soon_cancelled.capacity() * 8) as u64,
            lag_samples: self.lag.samples(),
            lag_p50: self.lag.percentile(0.5),
            lag_p99: self.lag.percentile(0.99),
            lag_max: self.lag.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_host::FakeHost;
    use crate::handles::SLOT_BITS;

    const MS: u64 = 1_000_000;

    fn new_loop() -> EventLoop<FakeHost> {
        EventLoop::new(FakeHost::at(1_000 * MS))
    }

    /// A batch as (soon callbacks taken, slots).
    fn ran(batch: Batch) -> (u32, Vec<u32>) {
        (batch.soon, batch.slots.to_vec())
    }

    fn split(id: f64) -> (u32, u32) {
        let slot = (id as u64 & ((1 << SLOT_BITS) - 1)) as u32;
        (slot, (id as u64 >> SLOT_BITS) as u32)
    }

    fn advance(l: &mut EventLoop<FakeHost>, ms: u64) {
        l.host_mut().now += ms * MS;
    }

    #[test]
    fn reads_the_clock_once_per_iteration() {
        let mut l = new_loop();
        advance(&mut l, 5);
        assert_eq!(
            l.time_ms(),
            1000.0,
            "time only moves when an iteration begins"
        );
        l.run_once();
        assert_eq!(l.time_ms(), 1005.0);
    }

    #[test]
    fn jump_and_run_once_moves_to_each_deadline_in_turn_without_the_clock() {
        let mut l = new_loop();
        let (c, _) = split(l.call_later(30.0));
        let (a, _) = split(l.call_later(10.0));
        let (b1, _) = split(l.call_later(20.0));
        let (b2, _) = split(l.call_at(1020.0));
        // The clock never moves: every step comes from the deadlines.
        assert_eq!(l.jump_and_run_once().slots, &[a]);
        assert_eq!(l.time_ms(), 1010.0);
        assert_eq!(
            l.jump_and_run_once().slots,
            &[b1, b2],
            "equal deadlines, in scheduling order"
        );
        assert_eq!(l.time_ms(), 1020.0);
        assert_eq!(l.jump_and_run_once().slots, &[c]);
        assert_eq!(l.time_ms(), 1030.0);
        assert_eq!(l.jump_and_run_once().slots, &[] as &[u32]);
        assert_eq!(l.time_ms(), 1030.0, "nothing pending: time stays");
        assert_eq!(l.poll_timeout_ms(), WAIT_FOREVER);
    }

    #[test]
    fn jump_and_run_once_does_not_jump_past_ready_callbacks_or_back_in_time() {
        let mut l = new_loop();
        let (t, _) = split(l.call_later(50.0));
        l.call_soon();
        assert_eq!(
            ran(l.jump_and_run_once()),
            (1, vec![]),
            "a ready callback runs first, at the same time"
        );
        assert_eq!(l.time_ms(), 1000.0);
        // A clock read past the deadline: the deadline is not a step back.
        advance(&mut l, 80);
        l.update_time();
        assert_eq!(l.jump_and_run_once().slots, &[t]);
        assert_eq!(l.time_ms(), 1080.0);
        // A cancelled earliest timer may still be stepped to, as poll-timeout
        // may wake for it (one spare, empty step; never a late one).
        let (x, gx) = split(l.call_later(5.0));
        let (y, _) = split(l.call_later(9.0));
        assert!(l.cancel(x, gx));
        let spare = l.jump_and_run_once().slots.len();
        if spare == 0 {
            assert_eq!(l.time_ms(), 1085.0);
            assert_eq!(l.jump_and_run_once().slots, &[y]);
        }
        assert_eq!(l.time_ms(), 1089.0);
    }

    #[test]
    fn ready_callbacks_run_before_timers_expired_in_the_same_iteration() {
        let mut l = new_loop();
        let (t, _) = split(l.call_later(1.0));
        l.call_soon();
        advance(&mut l, 1);
        assert_eq!(ran(l.run_once()), (1, vec![t]));
    }

    #[test]
    fn a_zero_delay_timer_scheduled_by_a_callback_runs_next_iteration() {
        let mut l = new_loop();
        let (a, _) = split(l.call_later(0.0));
        assert_eq!(l.run_once().slots, &[a]);
        // "a's callback" schedules another 0 ms timer while the batch runs.
        let (b, _) = split(l.call_later(0.0));
        assert_eq!(l.poll_timeout_ms(), 0.0);
        assert_eq!(l.run_once().slots, &[b]);
        assert_eq!(l.run_once().slots, &[] as &[u32]);
    }

    #[test]
    fn callbacks_queued_during_a_batch_wait_for_the_next_iteration() {
        let mut l = new_loop();
        assert_eq!(l.call_soon(), 0.0);
        assert_eq!(ran(l.run_once()), (1, vec![]));
        assert_eq!(l.poll_timeout_ms(), WAIT_FOREVER);
        // "a's callback" queues another.
        assert_eq!(l.call_soon(), 1.0, "sequence numbers count on");
        assert_eq!(l.poll_timeout_ms(), 0.0);
        assert_eq!(ran(l.run_once()), (1, vec![]));
        assert_eq!(ran(l.run_once()), (0, vec![]));
    }

    #[test]
    fn cancel_is_a_no_op_for_stale_fired_and_forged_handles() {
        let mut l = new_loop();
        let (a, ga) = split(l.call_later(0.0));
        assert!(l.cancel(a, ga));
        assert!(!l.cancel(a, ga), "cancel twice");
        assert_eq!(ran(l.run_once()), (0, vec![]));
        // `a` is free now; the next callback reuses the slot.
        let (b, gb) = split(l.call_later(0.0));
        assert_eq!(a, b);
        assert_ne!(ga, gb);
        assert!(
            !l.cancel(a, ga),
            "a stale handle must not cancel the slot's new callback"
        );
        assert_eq!(ran(l.run_once()), (0, vec![b]));
        l.run_once();
        assert!(!l.cancel(b, gb), "cancel after it ran");
        assert!(!l.cancel(9999, 0), "slot out of range");
        assert!(!l.cancel(b, GENERATION_LIMIT + 5), "forged generation");
    }

    #[test]
    fn a_cancelled_call_soon_neither_runs_nor_keeps_the_loop_awake() {
        let mut l = new_loop();
        let a = l.call_soon();
        let b = l.call_soon();
        assert!(l.cancel_soon(b));
        assert!(!l.cancel_soon(b), "cancel twice");
        assert_eq!(l.stats().ready_pending, 1);
        assert!(l.cancel_soon(a));
        assert_eq!(l.stats().ready_pending, 0);
        assert!(!l.alive());
        assert_eq!(l.poll_timeout_ms(), WAIT_FOREVER, "nothing to run");
        // Both are still taken, in order: the host skips them.
        assert_eq!(ran(l.run_once()), (2, vec![]));
        assert!(!l.cancel_soon(a), "in the batch: the host's to skip");
        l.run_once();
        assert!(!l.cancel_soon(a), "after its batch");
    }

    #[test]
    fn cancel_soon_ignores_ids_no_call_soon_returned() {
        let mut l = new_loop();
        let a = l.call_soon();
        for forged in [a + 1.0, a + 0.5, -1.0, f64::NAN, f64::INFINITY, 1e300] {
            assert!(!l.cancel_soon(forged), "{forged}");
        }
        assert_eq!(l.stats().ready_pending, 1);
        // `cancel` is for slot handles only: no (slot, generation) reaches
        // the queue.
        assert!(!l.cancel(0, 0));
        assert_eq!(l.stats().ready_pending, 1);
    }

    #[test]
    fn cancelled_bits_span_words_and_reset_with_each_batch() {
        let mut l = new_loop();
        // Start the queue mid-word, so the bits are not aligned to it.
        for _ in 0..37 {
            l.call_soon();
        }
        l.run_once();
        let ids: Vec<f64> = (0..200).map(|_| l.call_soon()).collect();
        for &id in ids.iter().step_by(3) {
            assert!(l.cancel_soon(id));
        }
        for &id in ids.iter().step_by(3) {
            assert!(!l.cancel_soon(id), "{id} twice");
        }
        assert_eq!(l.stats().ready_pending, 200 - 67);
        assert_eq!(ran(l.run_once()), (200, vec![]));
        let next = l.call_soon();
        assert_eq!(next, 237.0);
        assert_eq!(l.stats().ready_pending, 1, "no bit of the last batch stays");
        assert!(l.cancel_soon(next));
    }

    #[test]
    fn infinite_timers_never_fire_and_do_not_keep_the_loop_alive() {
        let mut l = new_loop();
        let (a, ga) = split(l.call_later(f64::INFINITY));
        assert!(!l.alive());
        assert_eq!(l.poll_timeout_ms(), WAIT_FOREVER);
        assert_eq!(l.stats().timers_pending, 1);
        assert!(l.cancel(a, ga));
        assert_eq!(l.stats().timers_pending, 0);
    }

    #[test]
    fn huge_delays_saturate_and_keep_the_loop_alive() {
        let mut l = new_loop();
        l.call_later(1e300);
        assert!(l.alive());
        let wait = l.poll_timeout_ms();
        assert_eq!(wait, to_millis(crate::time::LATEST - 1_000 * MS));
    }

    #[test]
    fn poll_timeout_counts_from_the_clock_not_the_iteration_start() {
        let mut l = new_loop();
        l.call_later(10.0);
        advance(&mut l, 4);
        assert_eq!(l.poll_timeout_ms(), 6.0);
        advance(&mut l, 10);
        assert_eq!(l.poll_timeout_ms(), 0.0);
    }

    #[test]
    fn slots_of_a_batch_are_not_reused_until_the_next_iteration() {
        let mut l = new_loop();
        let (a, ga) = split(l.call_later(0.0));
        let (b, gb) = split(l.call_later(0.0));
        assert_eq!(ran(l.run_once()), (0, vec![a, b]));
        // While the batch runs: cancel b, schedule more.
        assert!(l.cancel(b, gb));
        let (c, _) = split(l.call_later(0.0));
        assert!(c != a && c != b);
        assert!(l.cancel(a, ga), "a is still in the running batch");
        assert_eq!(ran(l.run_once()), (0, vec![c]));
    }

    #[test]
    fn stats_count_pending_work() {
        let mut l = new_loop();
        l.call_soon();
        let (t, g) = split(l.call_later(5.0));
        l.call_later(6.0);
        l.cancel(t, g);
        let s = l.stats();
        assert_eq!(
            (s.ready_pending, s.timers_pending, s.timers_cancelled),
            (1, 1, 1)
        );
        l.run_once();
        assert_eq!(l.stats().iterations, 1);
        assert_eq!(l.stats().ready_pending, 0);
    }

    #[test]
    fn a_watcher_runs_once_per_iteration_its_token_is_reported_until_cancelled() {
        let mut l = new_loop();
        let (w, gw) = split(l.watch());
        assert!(l.alive());
        assert_eq!(
            l.poll_timeout_ms(),
            WAIT_FOREVER,
            "no timer: wait for I/O only"
        );
        l.host_mut().ready = vec![w, w];
        assert_eq!(l.run_once().slots, &[w], "a token reported twice runs once");
        assert_eq!(l.run_once().slots, &[] as &[u32]);
        l.host_mut().ready = vec![w];
        assert_eq!(l.run_once().slots, &[w]);
        assert!(l.cancel(w, gw));
        l.host_mut().ready = vec![w];
        assert_eq!(
            l.run_once().slots,
            &[] as &[u32],
            "a cancelled watcher's token is ignored"
        );
        assert!(!l.alive());
        assert_eq!(l.stats().watchers, 0);
    }

    #[test]
    fn io_callbacks_run_after_ready_callbacks_and_timers() {
        let mut l = new_loop();
        let (w, _) = split(l.watch());
        let (c, _) = split(l.expect());
        let (t, _) = split(l.call_later(0.0));
        l.call_soon();
        l.host_mut().ready = vec![w];
        l.host_mut().completed = vec![c];
        assert_eq!(ran(l.run_once()), (1, vec![t, w, c]));
        assert_eq!(l.stats().completions_pending, 0);
    }

    #[test]
    fn an_expected_completion_runs_once_and_then_its_handle_is_stale() {
        let mut l = new_loop();
        let (c, gc) = split(l.expect());
        assert_eq!(l.stats().completions_pending, 1);
        l.host_mut().completed = vec![c, c];
        assert_eq!(l.run_once().slots, &[c]);
        l.run_once();
        assert!(!l.cancel(c, gc));
        l.host_mut().completed = vec![c];
        assert_eq!(l.run_once().slots, &[] as &[u32]);
    }

    #[test]
    fn stale_and_forged_tokens_are_ignored() {
        let mut l = new_loop();
        let (t, _) = split(l.call_later(50.0));
        let (s, _) = split(l.call_later(0.0));
        l.watch();
        l.expect();
        l.host_mut().ready = vec![t, s, 12345, u32::MAX];
        l.host_mut().completed = vec![t, s, 999, u32::MAX - 1];
        assert_eq!(ran(l.run_once()), (0, vec![s]), "only the due timer runs");
        assert_eq!(l.stats().timers_pending, 1);
    }

    #[test]
    fn a_watcher_cancelled_during_its_batch_is_freed_with_the_batch() {
        let mut l = new_loop();
        let (w, gw) = split(l.watch());
        l.host_mut().ready = vec![w];
        assert_eq!(l.run_once().slots, &[w]);
        assert!(l.cancel(w, gw));
        assert!(!l.cancel(w, gw));
        l.run_once();
        let (again, _) = split(l.call_later(1.0));
        assert_eq!(again, w, "the slot was freed and reused");
    }

    #[test]
    fn lag_is_how_late_timers_run() {
        let mut l = new_loop();
        l.call_later(10.0);
        l.call_later(10.0);
        advance(&mut l, 13);
        l.run_once();
        let s = l.stats();
        assert_eq!(s.lag_samples, 2);
        assert_eq!(s.lag_max, 3 * MS);
        assert!(
            s.lag_p50 >= 3 * MS - MS / 4 && s.lag_p50 <= 3 * MS,
            "p50 {}",
            s.lag_p50
        );
    }
}
