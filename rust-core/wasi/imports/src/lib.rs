//! The imports component: what a JavaScript host gives the core, on WASI 0.2.
//!
//! The core component imports a clock and two I/O token queues
//! (`wasmloop:core/clock`, `readiness`, `completion`). Under `wasmtime run`
//! there is no JavaScript to supply them, so this component does, composed in
//! front of the core (see ../compose.wac):
//!
//! ```text
//!   imports ──clock, readiness, completion──▶ core ──event-loop──▶ program
//!      ▲                                                              │
//!      └──────────── clock-control, ready-queue ──────────────────────┘
//! ```
//!
//! - the clock is `wasi:clocks/monotonic-clock` (the JS backends'
//!   `performance.now()`), or a virtual clock that starts at 0 and moves only
//!   when the program says so (the JS `virtual` backend's), switched with
//!   `wasmloop:wasi-host/clock-control`;
//! - readiness tokens are those the program queued with
//!   `wasmloop:wasi-host/ready-queue` after polling its sources with
//!   `wasi:io/poll`: composition runs one way, so the program cannot be asked
//!   from here and the queue lives on this side;
//! - completion tokens never come: this host has the readiness model only.
//!
//! Units: instants are nanoseconds. Invariants: a token is in the ready
//! queue at most once (`queued[token]` says whether it is).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

wit_bindgen::generate!({
    path: ["../../../wit", "../wit"],
    // Bindings for the core's interfaces too, though they live in its package (../../../wit).
    generate_all,
    world: "wasmloop:wasi-host/imports",
});

use exports::wasmloop::core::{clock, completion, readiness};
use exports::wasmloop::wasi_host::{clock_control, ready_queue};
use wasi::clocks::monotonic_clock;

/// The clock the core reads.
#[derive(Clone, Copy)]
enum Clock {
    /// `wasi:clocks/monotonic-clock`, minus the origin (fixed at the first
    /// reading; `None` until then).
    Real { origin: Option<u64> },
    /// Virtual time: the current instant, in ns.
    Virtual(u64),
}

/// Tokens the program reported ready and the core has not taken yet.
#[derive(Default)]
struct ReadyQueue {
    /// Oldest first.
    order: VecDeque<u32>,
    /// Whether a token is in `order`, by token.
    queued: Vec<bool>,
}

impl ReadyQueue {
    fn push(&mut self, token: u32) {
        let index = token as usize;
        if self.queued.len() <= index {
            self.queued.resize(index + 1, false);
        }
        if !self.queued[index] {
            self.queued[index] = true;
            self.order.push_back(token);
        }
    }

    fn remove(&mut self, token: u32) {
        if self.queued.get(token as usize).copied().unwrap_or(false) {
            self.queued[token as usize] = false;
            self.order.retain(|&queued| queued != token);
        }
    }

    fn take(&mut self, max: u32) -> Vec<u32> {
        let count = self.order.len().min(max as usize);
        let taken: Vec<u32> = self.order.drain(..count).collect();
        for &token in &taken {
            self.queued[token as usize] = false;
        }
        debug_assert_eq!(
            self.order.len(),
            self.queued.iter().filter(|&&queued| queued).count()
        );
        taken
    }
}

thread_local! {
    static CLOCK: Cell<Clock> = const { Cell::new(Clock::Real { origin: None }) };
    static READY: RefCell<ReadyQueue> = RefCell::default();
}

struct Imports;

impl clock::Guest for Imports {
    fn now() -> clock::Instant {
        match CLOCK.get() {
            Clock::Virtual(now) => now,
            Clock::Real { origin } => {
                let now = monotonic_clock::now();
                let origin = origin.unwrap_or(now);
                CLOCK.set(Clock::Real {
                    origin: Some(origin),
                });
                now - origin
            }
        }
    }
}

impl readiness::Guest for Imports {
    fn take_ready(max: u32) -> Vec<readiness::Token> {
        READY.with_borrow_mut(|queue| queue.take(max))
    }
}

impl completion::Guest for Imports {
    fn take_completed(_max: u32) -> Vec<completion::Token> {
        Vec::new()
    }
}

impl clock_control::Guest for Imports {
    fn use_real_time() {
        CLOCK.set(Clock::Real { origin: None });
    }

    fn use_virtual_time() {
        CLOCK.set(Clock::Virtual(0));
    }

    fn advance(nanos: u64) {
        if let Clock::Virtual(now) = CLOCK.get() {
            CLOCK.set(Clock::Virtual(now.saturating_add(nanos)));
        }
    }
}

impl ready_queue::Guest for Imports {
    fn push(tokens: Vec<u32>) {
        READY.with_borrow_mut(|queue| tokens.into_iter().for_each(|token| queue.push(token)));
    }

    fn remove(token: u32) {
        READY.with_borrow_mut(|queue| queue.remove(token));
    }

    fn clear() {
        READY.with_borrow_mut(|queue| *queue = ReadyQueue::default());
    }
}

export!(Imports);
