//! One vector on one loop, with the semantics the JS hosts give it.
//!
//! The JS hosts run a vector with test/conformance/runner.mjs over the
//! `EventLoop` of ts-host/src/loop.ts. Here no JavaScript runs, so this module
//! is both: it performs the steps as runner.mjs does and drives the core as
//! loop.ts does. What must match, and how:
//!
//! - The callbacks live here, in a table indexed by the slot the core hands
//!   out; the core keeps only their order. `run-once` returns a batch of
//!   slots; each runs in order unless a successful `cancel` removed its
//!   callback meanwhile (loop.ts `#runBatch`).
//! - Promise continuations are a FIFO of [`Microtask`]s, drained after each
//!   callback and at the end of the synchronous program, as a JS host drains
//!   its microtask queue. `sleep` is a timer whose callback resolves a
//!   promise, so what follows the sleep runs as a microtask.
//! - Loop time as runner.mjs reads it (loop.ts `time()`): inside a batch, the
//!   iteration's time (`time`); outside, the clock is read once per
//!   synchronous turn (`update-time`, then cached). `callLater` reads it first.
//! - Between iterations, `poll-timeout`: 0 runs the next iteration at once; a
//!   positive wait sleeps on `wasi:io/poll` (backend "auto", the real clock)
//!   or jumps the virtual clock by that much (backend "virtual", the JS
//!   virtual backend's autojump); -1 means no timer is left, and with no I/O
//!   nothing could ever wake the loop, so the run fails instead of hanging.
//! - `stop()` lets the current batch finish; `runUntilComplete` stops when
//!   its sleep settles and fails with LoopStoppedError if stopped before.

use std::collections::{BTreeMap, VecDeque};

use crate::vector::{Program, Run, Step};
use crate::wasmloop::conformance::virtual_clock;
use crate::wasmloop::core::event_loop::EventLoop;
use wasi::clocks::monotonic_clock;

/// The backend a vector runs on, as the JS hosts name it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// What `auto` chooses under the plain CLI: the real clock, no I/O.
    Auto,
    /// Virtual time.
    Virtual,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Virtual => "virtual",
        }
    }
}

/// Handle ids are `generation * 2^26 + slot` (wit/event-loop.wit).
const SLOT_SPACE: f64 = (1u64 << 26) as f64;

/// A callback the loop will run, kept in the slot the core handed out.
#[derive(Clone, Copy)]
enum Callback<'v> {
    /// `soon`, `later`, `at`: logs the name, then performs `then`.
    Body(&'v str, &'v [Step]),
    /// `throw`: a callback that throws `message`.
    Throw(&'v str),
    /// A `sleep` timer: resolves the promise, whose continuation runs next.
    Resolve(Microtask<'v>),
    /// `runUntilComplete`'s first callback: starts the sleep of `ms` that
    /// completes the run.
    Main(f64),
}

/// A promise continuation.
#[derive(Clone, Copy)]
enum Microtask<'v> {
    /// Logs the name (`microtask`, and what follows a `sleep`).
    Log(&'v str),
    /// `runUntilComplete`'s promise settled: stop the loop.
    Settle,
}

/// A handle runner.mjs keeps by name, to cancel.
struct Handle {
    slot: u32,
    generation: u32,
    cancelled: bool,
}

impl Handle {
    fn from_id(id: f64) -> Handle {
        let slot = id % SLOT_SPACE;
        Handle {
            slot: slot as u32,
            generation: ((id - slot) / SLOT_SPACE) as u32,
            cancelled: false,
        }
    }
}

/// Runs `program` on a fresh loop on `backend`; returns its log, or the
/// runner error that ended it.
pub fn run_vector(program: &Program, backend: Backend) -> Result<Vec<String>, String> {
    match backend {
        Backend::Auto => virtual_clock::use_real_time(),
        Backend::Virtual => virtual_clock::use_virtual_time(),
    }
    let mut runner = Runner::new(backend);
    for step in &program.steps {
        runner.perform(step);
    }
    match program.run {
        Run::Forever => {
            runner.end_turn();
            runner.run()?;
            runner.log.push("stopped".to_owned());
        }
        Run::For(ms) => {
            let id = runner.core.call_soon();
            runner.store(id, Callback::Main(ms));
            runner.end_turn();
            runner.run()?;
            if !runner.settled {
                return Err("LoopStoppedError: runUntilComplete: the event loop stopped before the promise settled".into());
            }
        }
    }
    Ok(runner.log)
    // Dropping the runner drops the core's loop resource: `loop.close()`.
}

struct Runner<'v> {
    core: EventLoop,
    backend: Backend,
    /// The callbacks, by slot.
    callbacks: Vec<Option<Callback<'v>>>,
    microtasks: VecDeque<Microtask<'v>>,
    handles: BTreeMap<&'v str, Handle>,
    /// The deadline each `later`/`at` was given, for `time` steps.
    deadlines: BTreeMap<&'v str, f64>,
    log: Vec<String>,
    /// A batch is running (its microtasks included).
    in_batch: bool,
    /// Loop time read in this turn; `None` when it must be read again.
    epoch: Option<f64>,
    /// `stop()` was called: the run ends after the current batch.
    stopping: bool,
    /// `runUntilComplete`'s promise settled.
    settled: bool,
}

impl<'v> Runner<'v> {
    fn new(backend: Backend) -> Self {
        Runner {
            core: EventLoop::new(),
            backend,
            callbacks: Vec::new(),
            microtasks: VecDeque::new(),
            handles: BTreeMap::new(),
            deadlines: BTreeMap::new(),
            log: Vec::new(),
            in_batch: false,
            epoch: None,
            stopping: false,
            settled: false,
        }
    }

    /// `loop.time()`.
    fn time(&mut self) -> f64 {
        let (core, in_batch) = (&self.core, self.in_batch);
        *self.epoch.get_or_insert_with(|| {
            if in_batch {
                core.time()
            } else {
                core.update_time()
            }
        })
    }

    /// `loop.callLater(ms)`: reads loop time first, so that outside an
    /// iteration the core schedules from a fresh clock reading.
    fn call_later(&mut self, ms: f64) -> f64 {
        self.time();
        self.core.call_later(ms)
    }

    /// Keeps `callback` in the slot of handle `id`.
    fn store(&mut self, id: f64, callback: Callback<'v>) -> Handle {
        let handle = Handle::from_id(id);
        let slot = handle.slot as usize;
        if self.callbacks.len() <= slot {
            self.callbacks.resize(slot + 1, None);
        }
        self.callbacks[slot] = Some(callback);
        handle
    }

    /// One step of the program, as runner.mjs `perform` does it.
    fn perform(&mut self, step: &'v Step) {
        match step {
            Step::Soon { name, then } => {
                let id = self.core.call_soon();
                let handle = self.store(id, Callback::Body(name, then));
                self.handles.insert(name, handle);
            }
            Step::Later { name, ms, then } => {
                let deadline = self.time() + ms.max(0.0);
                self.deadlines.insert(name, deadline);
                let id = self.call_later(*ms);
                let handle = self.store(id, Callback::Body(name, then));
                self.handles.insert(name, handle);
            }
            Step::At { name, ms, then } => {
                let when = self.time() + ms;
                self.deadlines.insert(name, when);
                let id = self.core.call_at(when);
                let handle = self.store(id, Callback::Body(name, then));
                self.handles.insert(name, handle);
            }
            Step::Cancel(name) => {
                // Handle.cancel(): once per handle; a cancel that succeeds
                // drops the callback (loop.ts `_cancel`).
                if let Some(handle) = self.handles.get_mut(name.as_str()) {
                    if !handle.cancelled {
                        handle.cancelled = true;
                        if self.core.cancel(handle.slot, handle.generation) {
                            self.callbacks[handle.slot as usize] = None;
                        }
                    }
                }
            }
            Step::Throw { message, ms } => {
                let id = self.call_later(*ms);
                self.store(id, Callback::Throw(message));
            }
            Step::Microtask(name) => self.microtasks.push_back(Microtask::Log(name)),
            Step::Sleep { name, ms } => {
                let id = self.call_later(*ms);
                self.store(id, Callback::Resolve(Microtask::Log(name)));
            }
            Step::Time(name) => {
                let now = self.time();
                let line = match self.deadlines.get(name.as_str()) {
                    Some(&deadline) if now >= deadline => format!("{name} on time"),
                    deadline => format!(
                        "{name} early: time {} < deadline {}",
                        js_number(now),
                        deadline.map_or("undefined".to_owned(), |d| js_number(*d))
                    ),
                };
                self.log.push(line);
            }
            Step::Stop => self.stopping = true,
        }
    }

    /// The end of a synchronous host turn: continuations run, and the next
    /// turn reads the clock afresh.
    fn end_turn(&mut self) {
        self.drain_microtasks();
        self.epoch = None;
    }

    fn drain_microtasks(&mut self) {
        while let Some(microtask) = self.microtasks.pop_front() {
            match microtask {
                Microtask::Log(name) => self.log.push(name.to_owned()),
                Microtask::Settle => {
                    self.settled = true;
                    self.stopping = true;
                }
            }
        }
    }

    /// The driver (loop.ts `#iterateSlice`): iterations until stopped.
    fn run(&mut self) -> Result<(), String> {
        loop {
            let batch = self.core.run_once();
            self.epoch = None;
            self.run_batch(&batch);
            if self.stopping {
                self.stopping = false;
                return Ok(());
            }
            let timeout = self.core.poll_timeout();
            if timeout < 0.0 {
                return Err(
                    "the loop would wait forever: no timer is pending and no I/O can wake it"
                        .into(),
                );
            }
            if timeout > 0.0 {
                let nanos = (timeout * 1e6).ceil() as u64;
                match self.backend {
                    Backend::Auto => monotonic_clock::subscribe_duration(nanos).block(),
                    Backend::Virtual => virtual_clock::advance(nanos),
                }
            }
        }
    }

    /// Phase 4: runs a batch in order, skipping callbacks cancelled meanwhile.
    fn run_batch(&mut self, batch: &[u32]) {
        self.in_batch = true;
        for &slot in batch {
            let Some(callback) = self.callbacks.get_mut(slot as usize).and_then(Option::take)
            else {
                continue;
            };
            match callback {
                Callback::Body(name, then) => {
                    self.log.push(name.to_owned());
                    for step in then {
                        self.perform(step);
                    }
                }
                // What the exception handler runner.mjs installs logs.
                Callback::Throw(message) => self.log.push(format!("error:{message}")),
                Callback::Resolve(continuation) => self.microtasks.push_back(continuation),
                Callback::Main(ms) => {
                    let id = self.call_later(ms);
                    self.store(id, Callback::Resolve(Microtask::Settle));
                }
            }
            self.drain_microtasks();
        }
        self.in_batch = false;
        self.epoch = None;
    }
}

/// `String(x)` in JavaScript, for the messages of failing `time` steps.
fn js_number(x: f64) -> String {
    if x == 0.0 {
        return "0".to_owned(); // -0 too
    }
    if x.is_nan() || x.is_infinite() {
        return format!("{x}").replace("inf", "Infinity");
    }
    if (1e-6..1e21).contains(&x.abs()) {
        return format!("{x}");
    }
    let exponential = format!("{x:e}");
    match exponential.split_once('e') {
        Some((mantissa, exponent)) if !exponent.starts_with('-') => {
            format!("{mantissa}e+{exponent}")
        }
        _ => exponential,
    }
}
