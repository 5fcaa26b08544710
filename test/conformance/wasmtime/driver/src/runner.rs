//! One vector on one loop, with the semantics the JS hosts give it.
//!
//! The JS hosts run a vector with test/conformance/runner.mjs over the
//! `EventLoop` of ts-host/src/loop.ts. Here the loop is the `wasmloop-wasi`
//! crate's (rust-core/wasi/loop), the same one a user's program runs on:
//! its callback table, driver and clock handling are what the vectors check.
//! This module only performs the steps as runner.mjs does:
//!
//! - Promise continuations are a FIFO of names, drained after each callback
//!   and at the end of the synchronous program, as a JS host drains its
//!   microtask queue. `sleep` is a timer whose callback queues its
//!   continuation, so what follows the sleep runs as a microtask.
//! - `runUntilComplete(() => loop.sleep(ms))` is `run_until_complete` of a
//!   future that sleeps: first polled from a `call_soon` callback, it stops
//!   the loop when the sleep is over, or fails with LoopStoppedError if the
//!   loop was stopped before. As there, the run goes on past the sleep
//!   (1 ms sleeps, up to SETTLE_LIMIT_MS) until every callback the program
//!   scheduled with a finite delay has run or been cancelled: one scheduled
//!   from a callback counts from when that callback ran, which a loop
//!   stalled on a busy machine may reach after the sleep.
//! - Backend "auto" is the real clock (`wasi:clocks/monotonic-clock`,
//!   waiting in `wasi:io/poll`); "virtual" the imports component's virtual
//!   clock, which jumps to the next deadline instead of waiting.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

use wasmloop_wasi::{EventLoop, Handle, TimeSource};

use crate::vector::{Program, Run, Step};

/// The backend a vector runs on, as the JS hosts name it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// What `auto` is under wasmtime: wasmloop-wasi's readiness backend
    /// (`wasi-poll`), on the real clock.
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

/// How long past `run` a run waits for the callbacks still to come, in ms of loop time.
const SETTLE_LIMIT_MS: f64 = 10_000.0;

/// Runs `program` on a fresh loop on `backend`; returns its log, or the
/// runner error that ended it.
pub fn run_vector(program: &'static Program, backend: Backend) -> Result<Vec<String>, String> {
    let event_loop = EventLoop::with_time_source(match backend {
        Backend::Auto => TimeSource::Real,
        Backend::Virtual => TimeSource::Virtual,
    });
    let runner = Rc::new(Runner {
        event_loop: event_loop.clone(),
        state: RefCell::default(),
    });
    for step in &program.steps {
        runner.perform(step);
    }
    runner.drain_microtasks();
    let outcome = match program.run {
        Run::Forever => event_loop.run_forever().map(|()| {
            runner.log("stopped".to_owned());
        }),
        Run::For(ms) => {
            let (sleeper, waiting) = (event_loop.clone(), runner.clone());
            event_loop.run_until_complete(async move {
                sleeper.sleep(ms).await;
                // What is still to come is due already: a limit against a hang only.
                let give_up_at = sleeper.time() + SETTLE_LIMIT_MS;
                while !waiting.state.borrow().outstanding.is_empty() && sleeper.time() < give_up_at
                {
                    sleeper.sleep(1.0).await;
                }
            })
        }
    };
    // `loop.close()`: the callbacks still pending hold the runner, which holds the loop.
    event_loop.close();
    outcome.map_err(|error| error.to_string())?;
    let log = std::mem::take(&mut runner.state.borrow_mut().log);
    Ok(log)
}

struct Runner {
    event_loop: EventLoop,
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    microtasks: VecDeque<&'static str>,
    /// Handles runner.mjs keeps by name, to cancel, and whether they were.
    handles: BTreeMap<&'static str, (Handle, bool)>,
    /// The deadline each `later`/`at` was given, for `time` steps.
    deadlines: BTreeMap<&'static str, f64>,
    /// The callbacks scheduled with a finite deadline that have neither run
    /// nor been cancelled, each by a token of its own; `tokens`: those of
    /// `handles`.
    outstanding: BTreeSet<u64>,
    tokens: BTreeMap<&'static str, u64>,
    next_token: u64,
    log: Vec<String>,
}

impl Runner {
    fn log(&self, line: String) {
        self.state.borrow_mut().log.push(line);
    }

    /// A token for a callback due at `when`, outstanding unless `when` is infinite.
    fn scheduled(&self, when: f64) -> u64 {
        let mut state = self.state.borrow_mut();
        state.next_token += 1;
        let token = state.next_token;
        if when != f64::INFINITY {
            state.outstanding.insert(token);
        }
        token
    }

    fn settled(&self, token: u64) {
        self.state.borrow_mut().outstanding.remove(&token);
    }

    /// A callback that logs `name`, performs `then`, and drains the
    /// microtasks they queued.
    fn body(
        self: &Rc<Self>,
        name: &'static str,
        then: &'static [Step],
        token: u64,
    ) -> impl FnOnce() + 'static {
        let runner = self.clone();
        move || {
            runner.settled(token);
            runner.log(name.to_owned());
            for step in then {
                runner.perform(step);
            }
            runner.drain_microtasks();
        }
    }

    /// One step of the program, as runner.mjs `perform` does it.
    fn perform(self: &Rc<Self>, step: &'static Step) {
        let event_loop = &self.event_loop;
        match step {
            Step::Soon { name, then } => {
                let token = self.scheduled(0.0);
                self.state.borrow_mut().tokens.insert(name, token);
                let handle = event_loop.call_soon(self.body(name, then, token));
                self.state
                    .borrow_mut()
                    .handles
                    .insert(name, (handle, false));
            }
            Step::Later { name, ms, then } => {
                let deadline = event_loop.time() + ms.max(0.0);
                self.state.borrow_mut().deadlines.insert(name, deadline);
                let token = self.scheduled(*ms);
                self.state.borrow_mut().tokens.insert(name, token);
                let handle = event_loop.call_later(*ms, self.body(name, then, token));
                self.state
                    .borrow_mut()
                    .handles
                    .insert(name, (handle, false));
            }
            Step::At { name, ms, then } => {
                let when = event_loop.time() + ms;
                self.state.borrow_mut().deadlines.insert(name, when);
                let token = self.scheduled(when);
                self.state.borrow_mut().tokens.insert(name, token);
                let handle = event_loop.call_at(when, self.body(name, then, token));
                self.state
                    .borrow_mut()
                    .handles
                    .insert(name, (handle, false));
            }
            Step::Cancel(name) => {
                // Handle.cancel(): once per handle.
                let handle = match self.state.borrow_mut().handles.get_mut(name.as_str()) {
                    Some((handle, cancelled)) if !*cancelled => {
                        *cancelled = true;
                        Some(handle.clone())
                    }
                    _ => None,
                };
                if let Some(handle) = handle {
                    handle.cancel();
                }
                let token = self.state.borrow().tokens.get(name.as_str()).copied();
                if let Some(token) = token {
                    self.settled(token);
                }
            }
            Step::Throw { message, ms } => {
                // What the exception handler runner.mjs installs logs.
                let (runner, token) = (self.clone(), self.scheduled(*ms));
                event_loop.call_later(*ms, move || {
                    runner.settled(token);
                    runner.log(format!("error:{message}"));
                    runner.drain_microtasks();
                });
            }
            Step::Microtask(name) => self.state.borrow_mut().microtasks.push_back(name),
            Step::Sleep { name, ms } => {
                // The sleep's promise resolves; its continuation is a microtask.
                let (runner, token) = (self.clone(), self.scheduled(*ms));
                event_loop.call_later(*ms, move || {
                    runner.settled(token);
                    runner.state.borrow_mut().microtasks.push_back(name);
                    runner.drain_microtasks();
                });
            }
            Step::Time(name) => {
                let now = event_loop.time();
                let deadline = self.state.borrow().deadlines.get(name.as_str()).copied();
                let line = match deadline {
                    Some(deadline) if now >= deadline => format!("{name} on time"),
                    deadline => format!(
                        "{name} early: time {} < deadline {}",
                        js_number(now),
                        deadline.map_or("undefined".to_owned(), js_number)
                    ),
                };
                self.log(line);
            }
            Step::Stop => event_loop.stop(),
        }
    }

    fn drain_microtasks(&self) {
        loop {
            let Some(name) = self.state.borrow_mut().microtasks.pop_front() else {
                return;
            };
            self.log(name.to_owned());
        }
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
