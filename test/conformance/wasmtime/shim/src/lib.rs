//! The shim: what a JavaScript host gives the core, for the plain wasmtime CLI.
//!
//! The core component imports a clock and two I/O token queues
//! (`wasmloop:core/clock`, `readiness`, `completion`). A JavaScript host
//! supplies them from its backend; under `wasmtime run` there is no
//! JavaScript, so this component supplies them and is composed in front of
//! the core (see ../compose.wac):
//!
//! - the clock is `wasi:clocks/monotonic-clock` (the JS `clock` backend's
//!   `performance.now()`), or a virtual clock that starts at 0 and moves only
//!   when the driver says so (the JS `virtual` backend's), switched with
//!   `wasmloop:conformance/virtual-clock`;
//! - the I/O queues are always empty: the plain CLI gives the core no
//!   sockets, as the JS `clock` backend gives it none.

use std::cell::Cell;

wit_bindgen::generate!({
    path: ["../../../../wit", "../wit"],
    // Bindings for the core's interfaces too, though they live in its package (../../../../wit).
    generate_all,
    world: "wasmloop:conformance/shim",
});

use exports::wasmloop::conformance::virtual_clock;
use exports::wasmloop::core::{clock, completion, readiness};
use wasi::clocks::monotonic_clock;

/// The clock the core reads.
#[derive(Clone, Copy)]
enum Clock {
    /// `wasi:clocks/monotonic-clock`, minus [`ORIGIN`].
    Real,
    /// Virtual time: the current instant, in ns.
    Virtual(u64),
}

thread_local! {
    static CLOCK: Cell<Clock> = const { Cell::new(Clock::Real) };
    /// The monotonic reading real time counts from, fixed at the first real
    /// reading, so instants stay small (as `performance.now()` is).
    static ORIGIN: Cell<Option<u64>> = const { Cell::new(None) };
}

struct Shim;

impl clock::Guest for Shim {
    fn now() -> clock::Instant {
        match CLOCK.get() {
            Clock::Virtual(now) => now,
            Clock::Real => {
                let now = monotonic_clock::now();
                let origin = ORIGIN.get().unwrap_or(now);
                ORIGIN.set(Some(origin));
                now - origin
            }
        }
    }
}

impl readiness::Guest for Shim {
    fn take_ready(_max: u32) -> Vec<readiness::Token> {
        Vec::new()
    }
}

impl completion::Guest for Shim {
    fn take_completed(_max: u32) -> Vec<completion::Token> {
        Vec::new()
    }
}

impl virtual_clock::Guest for Shim {
    fn use_real_time() {
        CLOCK.set(Clock::Real);
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

export!(Shim);
