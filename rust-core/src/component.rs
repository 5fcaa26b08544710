//! The component bindings: the WIT world `core` (../wit) over [`EventLoop`].
//! No logic lives here.

use std::cell::RefCell;

use crate::event_loop::{Batch, EventLoop, Host};
use crate::time::Nanos;

wit_bindgen::generate!({
    path: "../wit",
    world: "core",
});

use exports::wasmloop::core::event_loop::{
    Batch as WitBatch, Guest, GuestEventLoop, Jumped, LoopStats,
};
use wasmloop::core::{clock, completion, readiness};

/// The host as the component sees it: the imported WIT interfaces.
struct ImportedHost;

impl Host for ImportedHost {
    #[inline]
    fn now(&mut self) -> Nanos {
        clock::now()
    }

    fn take_ready(&mut self, max: u32) -> Vec<u32> {
        readiness::take_ready(max)
    }

    fn take_completed(&mut self, max: u32) -> Vec<u32> {
        completion::take_completed(max)
    }
}

struct Component;

/// The `event-loop` resource. Calls never re-enter the loop, so the borrow
/// always succeeds; `RefCell` turns a host bug into a trap, not corruption.
struct LoopResource(RefCell<EventLoop<ImportedHost>>);

impl Guest for Component {
    type EventLoop = LoopResource;
}

impl GuestEventLoop for LoopResource {
    fn new() -> Self {
        LoopResource(RefCell::new(EventLoop::new(ImportedHost)))
    }

    fn time(&self) -> f64 {
        self.0.borrow().time_ms()
    }

    fn update_time(&self) -> f64 {
        self.0.borrow_mut().update_time()
    }

    fn call_soon(&self) -> f64 {
        self.0.borrow_mut().call_soon()
    }

    fn call_later(&self, delay: f64) -> f64 {
        self.0.borrow_mut().call_later(delay)
    }

    fn call_at(&self, when: f64) -> f64 {
        self.0.borrow_mut().call_at(when)
    }

    fn watch(&self) -> f64 {
        self.0.borrow_mut().watch()
    }

    fn expect(&self) -> f64 {
        self.0.borrow_mut().expect()
    }

    fn cancel(&self, slot: u32, generation: u32) -> bool {
        self.0.borrow_mut().cancel(slot, generation)
    }

    fn cancel_soon(&self, id: f64) -> bool {
        self.0.borrow_mut().cancel_soon(id)
    }

    fn run_once(&self) -> WitBatch {
        lift(self.0.borrow_mut().run_once())
    }

    fn jump_and_run_once(&self) -> Jumped {
        let mut core = self.0.borrow_mut();
        let batch = lift(core.jump_and_run_once());
        Jumped {
            time_ns: core.now(),
            batch,
        }
    }

    fn poll_timeout(&self) -> f64 {
        self.0.borrow_mut().poll_timeout_ms()
    }

    fn set_memory_limit(&self, bytes: u64) {
        crate::alloc::set_memory_limit(bytes);
    }

    fn stats(&self) -> LoopStats {
        let s = self.0.borrow().stats();
        LoopStats {
            iterations: s.iterations,
            timers_pending: s.timers_pending,
            ready_pending: s.ready_pending,
            timers_cancelled: s.timers_cancelled,
            watchers: s.watchers,
            completions_pending: s.completions_pending,
            slots_allocated: s.slots_allocated,
            table_bytes: s.table_bytes,
            lag_samples: s.lag_samples,
            lag_p50: s.lag_p50,
            lag_p99: s.lag_p99,
            lag_max: s.lag_max,
        }
    }
}

fn lift(batch: Batch) -> WitBatch {
    WitBatch {
        soon: batch.soon,
        slots: batch.slots.to_vec(),
    }
}

export!(Component);
