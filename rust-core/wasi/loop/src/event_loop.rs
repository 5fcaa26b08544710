//! The loop: the callback table and the driver over the core component.
//!
//! The core (the `event-loop` resource, composed in unchanged) orders work
//! and hands out slots; this module keeps what runs in them and decides how
//! long to wait, as ts-host/src/loop.ts does on JavaScript. `call_soon`
//! callbacks take no slot: they wait in a queue of their own, in the order
//! the core numbered them, and each batch says how many of them it takes.
//!
//! ```text
//!   run_forever / run_until_complete
//!     loop {
//!       batch = core.run-once()          phases 0-3: call_soon, timers, ready tokens
//!       run batch.soon queued callbacks,  phase 4, skipping those cancelled meanwhile
//!         then each slot's callback
//!       stop() called? -> return
//!       t = core.poll-timeout()           0 | ms | -1
//!       wait(t)                           sources.rs: wasi:io/poll over the watched
//!     }                                   pollables and a timer for t
//! ```
//!
//! Units: times and delays are milliseconds (f64) on the scale of `time()`,
//! as at the core's boundary; the clock under it counts nanoseconds.
//!
//! Semantics kept from the TypeScript host (docs/design.md):
//! - `time()` inside a batch is the iteration's time; outside, the clock is
//!   read once per turn (the code between two runs of the loop) and kept.
//!   `call_later` reads it first, so it schedules from a fresh reading.
//! - A callback cancelled while its batch runs does not run; a watcher
//!   (`watch`) cancelled from inside its own callback is dropped after it
//!   returns.
//! - `stop()` lets the current batch finish.
//! - With no timer pending and no source watched, nothing could ever wake
//!   the loop (a WASI command has no other thread and no signals), so a run
//!   ends with [`RunError::WouldWaitForever`] instead of hanging.
//!
//! Invariants: a slot's entry is `Running` only while its watcher runs; a
//! slot has a pollable in `sources` exactly while its entry is a watcher (or
//! the watcher running).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::mem;
use std::rc::{Rc, Weak};

use wasi::clocks::monotonic_clock;
use wasi::io::poll::Pollable;

use crate::bindings::wasmloop::core::event_loop::{EventLoop as Core, LoopStats};
use crate::bindings::wasmloop::wasi_host::{clock_control, ready_queue};
use crate::future::MainTask;
use crate::sources::Sources;

/// The core's counters (`loop-stats` in wit/event-loop.wit).
pub type Stats = LoopStats;

/// Handle ids are `generation * 2^26 + slot` (wit/event-loop.wit).
const SLOT_SPACE: f64 = (1u64 << 26) as f64;

/// Where the loop's time comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSource {
    /// `wasi:clocks/monotonic-clock`; waits sleep in `wasi:io/poll`.
    Real,
    /// A clock that starts at 0 and jumps to the next deadline instead of
    /// sleeping (the JS `virtual` backend's clock); sources are still polled,
    /// without waiting while a timer is pending.
    Virtual,
}

/// Why a run ended without its work done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunError {
    /// No timer is pending and no source is watched: nothing could ever
    /// become ready.
    WouldWaitForever,
    /// `run_until_complete`: the loop was stopped before the future finished
    /// (the JS host's `LoopStoppedError`).
    Stopped,
    /// The loop is already running (a run was started from a callback).
    AlreadyRunning,
    /// The loop was closed.
    Closed,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RunError::WouldWaitForever => {
                "the loop would wait forever: no timer is pending and no I/O can wake it"
            }
            RunError::Stopped => {
                "LoopStoppedError: runUntilComplete: the event loop stopped before the promise settled"
            }
            RunError::AlreadyRunning => "LoopRunningError: the event loop is already running",
            RunError::Closed => "LoopClosedError: the event loop is closed",
        })
    }
}

impl std::error::Error for RunError {}

/// A callback that runs once.
type OnceCallback = Box<dyn FnOnce()>;

/// What a slot of the callback table holds.
enum Entry {
    Empty,
    /// `call_soon`, `call_later`, `call_at`: runs once.
    Once(Box<dyn FnOnce()>),
    /// `watch`: runs once per iteration in which its source was ready.
    Watcher(Box<dyn FnMut()>),
    /// A watcher whose callback is running (taken out of the table);
    /// `cancelled` if it was cancelled meanwhile.
    Running {
        cancelled: bool,
    },
}

thread_local! {
    /// Whether a loop exists: the imports component has one clock and one
    /// ready queue, so two loops at once would share them.
    static LOOP_EXISTS: Cell<bool> = const { Cell::new(false) };
}

pub(crate) struct Shared {
    // Fields drop in order: the pollables first, since WASI traps when a
    // stream or socket (which a callback may own) goes before its pollables.
    pub(crate) sources: RefCell<Sources>,
    callbacks: RefCell<Vec<Entry>>,
    /// `call_soon` callbacks not run yet, in order (`None`: cancelled).
    soon: RefCell<VecDeque<Option<OnceCallback>>>,
    /// The handle id (sequence number) of the front of `soon`.
    soon_head: Cell<u64>,
    core: Core,
    time_source: TimeSource,
    /// A batch is running.
    in_batch: Cell<bool>,
    /// Loop time read in this turn; `None` when it must be read again.
    epoch: Cell<Option<f64>>,
    running: Cell<bool>,
    closed: Cell<bool>,
    /// `stop()` was called: the run ends after the current batch.
    stopping: Cell<bool>,
    /// `run_until_complete`'s future, polled after the callback that woke it.
    pub(crate) main: RefCell<Option<Rc<dyn MainTask>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        ready_queue::clear();
        LOOP_EXISTS.set(false);
    }
}

/// An event loop over the core component. Clones share the loop.
#[derive(Clone)]
pub struct EventLoop {
    pub(crate) shared: Rc<Shared>,
}

/// A scheduled callback or a watcher; `cancel()` it. Holds the loop weakly.
#[derive(Clone, Debug)]
pub struct Handle {
    shared: Weak<Shared>,
    id: HandleId,
}

/// The core's two kinds of handle id (wit/event-loop.wit).
#[derive(Clone, Copy, Debug)]
enum HandleId {
    Slot {
        slot: u32,
        generation: u32,
    },
    /// A `call_soon`'s sequence number.
    Soon(u64),
}

impl Handle {
    /// Cancels the callback if it has not run yet (a watcher: stops watching
    /// its source). Returns true if this call cancelled it.
    pub fn cancel(&self) -> bool {
        self.shared.upgrade().is_some_and(|shared| match self.id {
            HandleId::Slot { slot, generation } => shared.cancel(slot, generation),
            HandleId::Soon(seq) => shared.cancel_soon(seq),
        })
    }

    /// The slot the core gave the callback (a watcher's readiness token);
    /// `None` for a `call_soon`, which takes none.
    pub fn slot(&self) -> Option<u32> {
        match self.id {
            HandleId::Slot { slot, .. } => Some(slot),
            HandleId::Soon(_) => None,
        }
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventLoop")
    }
}

impl Default for EventLoop {
    fn default() -> Self {
        EventLoop::new()
    }
}

impl EventLoop {
    /// A loop on the real clock.
    ///
    /// Panics if another loop exists (one loop per composed instance).
    pub fn new() -> EventLoop {
        EventLoop::with_time_source(TimeSource::Real)
    }

    /// A loop on `time_source`. Panics if another loop exists.
    pub fn with_time_source(time_source: TimeSource) -> EventLoop {
        install_panic_hook();
        assert!(
            !LOOP_EXISTS.replace(true),
            "wasmloop-wasi: one event loop at a time (drop the other one first)"
        );
        match time_source {
            TimeSource::Real => clock_control::use_real_time(),
            TimeSource::Virtual => clock_control::use_virtual_time(),
        }
        ready_queue::clear();
        EventLoop {
            shared: Rc::new(Shared {
                sources: RefCell::default(),
                callbacks: RefCell::default(),
                soon: RefCell::default(),
                soon_head: Cell::new(0),
                core: Core::new(),
                time_source,
                in_batch: Cell::new(false),
                epoch: Cell::new(None),
                running: Cell::new(false),
                closed: Cell::new(false),
                stopping: Cell::new(false),
                main: RefCell::new(None),
            }),
        }
    }

    pub(crate) fn from_shared(shared: Rc<Shared>) -> EventLoop {
        EventLoop { shared }
    }

    pub(crate) fn downgrade(&self) -> Weak<Shared> {
        Rc::downgrade(&self.shared)
    }

    /// The loop's time in ms: the iteration's inside a callback; outside, a
    /// clock reading taken once per turn.
    pub fn time(&self) -> f64 {
        let shared = &self.shared;
        if let Some(now) = shared.epoch.get() {
            return now;
        }
        let now = if shared.in_batch.get() {
            shared.core.time()
        } else {
            shared.core.update_time()
        };
        shared.epoch.set(Some(now));
        now
    }

    pub fn time_source(&self) -> TimeSource {
        self.shared.time_source
    }

    /// Runs `callback` in the next iteration.
    pub fn call_soon(&self, callback: impl FnOnce() + 'static) -> Handle {
        let shared = &self.shared;
        let seq = shared.core.call_soon() as u64;
        let mut soon = shared.soon.borrow_mut();
        debug_assert_eq!(
            seq,
            shared.soon_head.get() + soon.len() as u64,
            "call_soon ids count up"
        );
        soon.push_back(Some(Box::new(callback)));
        Handle {
            shared: Rc::downgrade(shared),
            id: HandleId::Soon(seq),
        }
    }

    /// Runs `callback` `delay_ms` after the loop's time (never early; equal
    /// deadlines in scheduling order). Negative delays count as 0;
    /// `f64::INFINITY` never fires. Panics on NaN.
    pub fn call_later(&self, delay_ms: f64, callback: impl FnOnce() + 'static) -> Handle {
        assert!(!delay_ms.is_nan(), "call_later: delay_ms is NaN");
        self.time();
        let id = self.shared.core.call_later(delay_ms);
        self.store(id, Entry::Once(Box::new(callback))).0
    }

    /// Runs `callback` at loop time `when_ms`. Panics on NaN.
    pub fn call_at(&self, when_ms: f64, callback: impl FnOnce() + 'static) -> Handle {
        assert!(!when_ms.is_nan(), "call_at: when_ms is NaN");
        let id = self.shared.core.call_at(when_ms);
        self.store(id, Entry::Once(Box::new(callback))).0
    }

    /// Watches a WASI pollable: `callback` runs once in every iteration in
    /// which `pollable` is ready (level-triggered: as long as it stays ready,
    /// it is reported again), until the handle is cancelled. A watcher keeps
    /// the loop waiting for I/O. This is what TCP readiness is built on; any
    /// other pollable (stdin, a timer) works the same way.
    pub fn watch(&self, pollable: Pollable, callback: impl FnMut() + 'static) -> Handle {
        let id = self.shared.core.watch();
        let (handle, slot) = self.store(id, Entry::Watcher(Box::new(callback)));
        self.shared.sources.borrow_mut().insert(slot, pollable);
        handle
    }

    /// Ends the run after the current batch (before the next one, if called
    /// outside a run).
    pub fn stop(&self) {
        self.shared.stopping.set(true);
    }

    pub fn is_running(&self) -> bool {
        self.shared.running.get()
    }

    /// The core's counters.
    pub fn stats(&self) -> Stats {
        self.shared.core.stats()
    }

    /// Drops every pending callback and watcher (pollables first), which
    /// also drops what they hold: callbacks that keep a clone of the loop
    /// keep it alive until then. A run in progress ends after its batch;
    /// the loop cannot run again.
    pub fn close(&self) {
        let shared = &self.shared;
        shared.closed.set(true);
        shared.stopping.set(true);
        let sources = mem::take(&mut *shared.sources.borrow_mut());
        ready_queue::clear();
        let callbacks = mem::take(&mut *shared.callbacks.borrow_mut());
        let soon = mem::take(&mut *shared.soon.borrow_mut());
        shared
            .soon_head
            .set(shared.soon_head.get() + soon.len() as u64);
        let main = shared.main.borrow_mut().take();
        drop(sources);
        drop(callbacks);
        drop(soon);
        drop(main);
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.get()
    }

    /// Runs iterations until `stop()` is called.
    pub fn run_forever(&self) -> Result<(), RunError> {
        let shared = &self.shared;
        if shared.closed.get() {
            return Err(RunError::Closed);
        }
        if shared.running.replace(true) {
            return Err(RunError::AlreadyRunning);
        }
        let outcome = self.drive();
        shared.running.set(false);
        shared.epoch.set(None);
        outcome
    }

    fn drive(&self) -> Result<(), RunError> {
        let shared = &self.shared;
        loop {
            let batch = shared.core.run_once();
            shared.epoch.set(None);
            self.run_batch(batch.soon, &batch.slots);
            if shared.stopping.replace(false) {
                return Ok(());
            }
            let timeout_ms = shared.core.poll_timeout();
            self.wait(timeout_ms)?;
        }
    }

    /// Phase 4: runs a batch in order, skipping callbacks cancelled meanwhile:
    /// `soon` callbacks from the front of the queue, then `slots`.
    fn run_batch(&self, soon: u32, slots: &[u32]) {
        let shared = &self.shared;
        shared.in_batch.set(true);
        for _ in 0..soon {
            // (None, and an empty queue: the loop was closed meanwhile.)
            let next = shared.soon.borrow_mut().pop_front();
            shared.soon_head.set(shared.soon_head.get() + 1);
            if let Some(Some(callback)) = next {
                callback();
                self.after_callback();
            }
        }
        for &slot in slots {
            let entry = {
                let mut callbacks = shared.callbacks.borrow_mut();
                match callbacks.get_mut(slot as usize) {
                    Some(entry @ Entry::Watcher(_)) => {
                        mem::replace(entry, Entry::Running { cancelled: false })
                    }
                    Some(entry @ Entry::Once(_)) => mem::replace(entry, Entry::Empty),
                    _ => continue,
                }
            };
            match entry {
                Entry::Once(callback) => callback(),
                Entry::Watcher(mut callback) => {
                    callback();
                    let finished = {
                        let mut callbacks = shared.callbacks.borrow_mut();
                        // (None: the loop was closed meanwhile.)
                        match callbacks.get_mut(slot as usize) {
                            Some(entry @ Entry::Running { cancelled: false }) => {
                                *entry = Entry::Watcher(callback);
                                None
                            }
                            Some(entry) => {
                                debug_assert!(matches!(entry, Entry::Running { .. }));
                                *entry = Entry::Empty;
                                Some(callback)
                            }
                            None => Some(callback),
                        }
                    };
                    // Dropped outside the borrow: it may own streams whose drop cancels watchers.
                    drop(finished);
                }
                Entry::Empty | Entry::Running { .. } => unreachable!(),
            }
            self.after_callback();
        }
        shared.in_batch.set(false);
        shared.epoch.set(None);
    }

    /// What runs between two callbacks: the future of `run_until_complete`,
    /// if a callback woke it (as a JS host drains promise continuations).
    fn after_callback(&self) {
        let main = self.shared.main.borrow().clone();
        if let Some(main) = main {
            if main.take_woken() {
                main.poll(self);
            }
        }
    }

    /// Waits as `poll-timeout` allows: `timeout_ms` is 0 (look at the
    /// sources without waiting), a positive wait, or -1 (only I/O can wake
    /// the loop).
    fn wait(&self, timeout_ms: f64) -> Result<(), RunError> {
        let shared = &self.shared;
        let nanos = (timeout_ms >= 0.0).then(|| (timeout_ms * 1e6).ceil() as u64);
        let sources = shared.sources.borrow();
        if sources.is_empty() {
            match (nanos, shared.time_source) {
                (None, _) => return Err(RunError::WouldWaitForever),
                (Some(0), _) => {}
                (Some(nanos), TimeSource::Real) => {
                    monotonic_clock::subscribe_duration(nanos).block()
                }
                (Some(nanos), TimeSource::Virtual) => clock_control::advance(nanos),
            }
            return Ok(());
        }
        // A virtual clock never sleeps while a timer is pending: it looks at
        // the sources, and jumps to the deadline if none is ready.
        let poll_nanos = match shared.time_source {
            TimeSource::Real => nanos,
            TimeSource::Virtual => nanos.map(|_| 0),
        };
        let ready = sources.poll(poll_nanos);
        drop(sources);
        if !ready.is_empty() {
            ready_queue::push(&ready);
        } else if let (TimeSource::Virtual, Some(nanos)) = (shared.time_source, nanos) {
            clock_control::advance(nanos);
        }
        Ok(())
    }

    /// Keeps `entry` in the slot of handle `id`; the handle and its slot.
    fn store(&self, id: f64, entry: Entry) -> (Handle, u32) {
        let slot = id % SLOT_SPACE;
        let generation = ((id - slot) / SLOT_SPACE) as u32;
        let slot = slot as u32;
        let handle = Handle {
            shared: Rc::downgrade(&self.shared),
            id: HandleId::Slot { slot, generation },
        };
        let mut callbacks = self.shared.callbacks.borrow_mut();
        let index = slot as usize;
        if callbacks.len() <= index {
            callbacks.resize_with(index + 1, || Entry::Empty);
        }
        debug_assert!(matches!(callbacks[index], Entry::Empty));
        callbacks[index] = entry;
        (handle, slot)
    }
}

impl Shared {
    /// `Handle::cancel` of a `call_soon`: queued, the core forgets it; in
    /// the running batch, only this queue knows whether it has run.
    fn cancel_soon(&self, seq: u64) -> bool {
        let callback = {
            let mut soon = self.soon.borrow_mut();
            let Some(index) = seq.checked_sub(self.soon_head.get()) else {
                return false;
            };
            match soon.get_mut(index as usize) {
                Some(entry @ Some(_)) => entry.take(),
                _ => return false,
            }
        };
        // Queued (not in the batch): the core stops counting it.
        self.core.cancel_soon(seq as f64);
        // Outside the borrow: dropping a callback may cancel others.
        drop(callback);
        true
    }

    /// `Handle::cancel`: the core says whether the handle was live; if it
    /// was, its callback and its pollable go.
    fn cancel(&self, slot: u32, generation: u32) -> bool {
        if !self.core.cancel(slot, generation) {
            return false;
        }
        let callback = {
            let mut callbacks = self.callbacks.borrow_mut();
            match callbacks.get_mut(slot as usize) {
                Some(Entry::Running { cancelled }) => {
                    *cancelled = true;
                    None
                }
                Some(entry) => Some(mem::replace(entry, Entry::Empty)),
                None => None,
            }
        };
        let pollable = self.sources.borrow_mut().remove(slot);
        if pollable.is_some() {
            // Its slot may be reused: the core must not be handed the token.
            ready_queue::remove(slot);
        }
        // The pollable before the callback, which may own its stream; both
        // outside the borrows, since dropping a callback may cancel others.
        drop(pollable);
        drop(callback);
        true
    }
}

/// Panic messages to stderr: on wasm32-unknown-unknown std prints them
/// nowhere, and the program would end in a bare `unreachable` trap.
fn install_panic_hook() {
    thread_local! {
        static INSTALLED: Cell<bool> = const { Cell::new(false) };
    }
    if !INSTALLED.replace(true) {
        std::panic::set_hook(Box::new(|info| {
            crate::eprint_line(&format!("panic: {info}"))
        }));
    }
}
