//! The readiness backend on WASI 0.2: watched pollables and the wait.
//!
//! The TypeScript selector (ts-host/src/backends/selector.ts) watches
//! descriptors with epoll and queues the tokens of those that became ready.
//! WASI has no descriptors: each source is a `wasi:io/poll` pollable (a
//! socket's, for accept and connect; an input stream's, readable; an output
//! stream's, writable), and `poll` waits on a list of them. So:
//!
//! ```text
//!   token (the watcher's slot) ──▶ pollable          kept here, one per watcher
//!
//!   wait(t):  poll([pollable...] + [timer for t])    one call; t = 0 looks without waiting
//!             ready indices ──▶ tokens ──▶ ready-queue.push ──▶ the core's next
//!                                                              readiness.take-ready
//! ```
//!
//! Readiness is level-triggered: a pollable stays ready while its stream
//! has data (or its end, or an error) or room, so a token is reported again
//! in every wait until the program has read or written; that is always
//! correct (docs/backends.md, "edge" is only a hint). Units: waits in
//! nanoseconds.

use std::collections::BTreeMap;

use wasi::clocks::monotonic_clock;
use wasi::io::poll::{self, Pollable};

/// The watched pollables, by token.
#[derive(Default)]
pub(crate) struct Sources {
    by_token: BTreeMap<u32, Pollable>,
}

impl Sources {
    pub(crate) fn insert(&mut self, token: u32, pollable: Pollable) {
        let previous = self.by_token.insert(token, pollable);
        debug_assert!(previous.is_none(), "token {token} watched twice");
    }

    pub(crate) fn remove(&mut self, token: u32) -> Option<Pollable> {
        self.by_token.remove(&token)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    /// Waits until a source is ready or `wait_nanos` have passed (`None`:
    /// until a source is ready; `Some(0)`: not at all) and returns the tokens
    /// of the ready sources, in token order. Needs at least one source.
    pub(crate) fn poll(&self, wait_nanos: Option<u64>) -> Vec<u32> {
        debug_assert!(!self.is_empty());
        let timer = wait_nanos.map(monotonic_clock::subscribe_duration);
        let (tokens, mut list): (Vec<u32>, Vec<&Pollable>) = self
            .by_token
            .iter()
            .map(|(&token, pollable)| (token, pollable))
            .unzip();
        list.extend(timer.as_ref());
        poll::poll(&list)
            .into_iter()
            .filter_map(|index| tokens.get(index as usize).copied())
            .collect()
    }
}
