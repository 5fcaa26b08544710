//! Model-based property tests of the loop core: random sequences of
//! scheduling, cancellation (live, stale and forged handles), I/O tokens
//! (live, stale and forged) and iterations with the clock moving, checked
//! after every step against a simple reference model.
//!
//! Checked: every callback runs exactly once unless cancelled; a batch is
//! every callback queued by `call_soon` before it (their count: the host
//! runs them in order), then the due timers in (deadline, sequence) order,
//! then the reported watchers and completions; no timer runs early;
//! `call_soon` ids count up; `cancel` and `cancel_soon` answer as the model
//! does; the counters agree.
//!
//! `PROPTEST_CASES` sets the number of sequences (default 256 of up to 400
//! operations: at least 100,000 operations a run). `make proptest-long` runs
//! more.

use std::collections::HashMap;

use proptest::prelude::*;
use wasmloop_core::event_loop::{EventLoop, Stats};
use wasmloop_core::fake_host::FakeHost;
use wasmloop_core::handles::SLOT_BITS;
use wasmloop_core::time::{deadline_after, deadline_at, NEVER};

#[derive(Clone, Debug)]
enum Op {
    Soon,
    Later(f64),
    At(f64),
    Cancel(usize),
    CancelForged(u32, u32),
    /// `cancel_soon` with an id `call_soon` may or may not have returned.
    CancelSoonForged(f64),
    Run(u64),
    /// `jump_and_run_once`: virtual time moves to the next timer itself.
    Jump,
    Watch,
    Expect,
    Report(usize),
    ReportForged(u32),
}

fn delay() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => 0.0..2.0f64,
        4 => 0.0..120.0f64,
        2 => 0.0..20_000.0f64,
        // Hours: the wheel's levels 3 and 4.
        1 => 0.0..20_000_000.0f64,
        1 => Just(0.0),
        1 => Just(-5.0),
        1 => Just(f64::INFINITY),
        1 => Just(1e300),
        1 => (0u32..50).prop_map(|n| n as f64),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Soon),
        8 => delay().prop_map(Op::Later),
        2 => (0.0..30_000.0f64).prop_map(Op::At),
        5 => any::<usize>().prop_map(Op::Cancel),
        1 => (any::<u32>(), any::<u32>()).prop_map(|(s, g)| Op::CancelForged(s % 4096, g % 8)),
        1 => prop_oneof![
            (0u32..200).prop_map(|n| n as f64),
            Just(-1.0),
            Just(0.5),
            Just(f64::NAN),
        ]
        .prop_map(Op::CancelSoonForged),
        8 => prop_oneof![
            Just(0u64),
            0u64..3_000_000,
            0u64..200_000_000,
            0u64..30_000_000_000,
            0u64..20_000_000_000_000
        ]
        .prop_map(Op::Run),
        3 => Just(Op::Jump),
        1 => Just(Op::Watch),
        2 => Just(Op::Expect),
        4 => any::<usize>().prop_map(Op::Report),
        1 => any::<u32>().prop_map(|t| Op::ReportForged(t % 4096)),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Soon,
    Timer { deadline: u64, seq: u32 },
    Watcher,
    Completion,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    /// Waiting to run (queued, timer pending, parked, watching, awaiting).
    Pending,
    /// In the last batch (one-shot) or a watcher in it.
    InBatch,
    /// Ran, or cancelled and released: must never run again.
    Done,
}

struct Handle {
    id: f64,
    kind: Kind,
    life: Life,
    /// One-shot callbacks: how often they ran (must end at most 1).
    runs: u32,
    cancelled: bool,
}

/// The reference model.
#[derive(Default)]
struct Model {
    handles: Vec<Handle>,
    /// Slot handles by id (`call_soon` ids are sequence numbers: `soon`).
    by_id: HashMap<u64, usize>,
    /// Every `call_soon`, in order (indices into handles): its id is its
    /// index here.
    soon: Vec<usize>,
    /// Callbacks queued by `call_soon` for the next batch (indices into
    /// handles), cancelled ones included.
    ready: Vec<usize>,
    seq: u32,
    /// The core's notion of now (changes only in run_once).
    loop_now: u64,
    last_batch: Vec<usize>,
    /// Tokens (slots) the host has queued and the core has not taken yet.
    reported: Vec<u32>,
    completed: Vec<u32>,
}

fn split(id: f64) -> (u32, u32) {
    let id = id as u64;
    (
        (id & ((1 << SLOT_BITS) - 1)) as u32,
        (id >> SLOT_BITS) as u32,
    )
}

impl Model {
    /// The handle that owns `slot` now (the newest one given it), if any.
    fn owner(&self, slot: u32) -> Option<usize> {
        self.by_id
            .iter()
            .filter(|(&id, _)| (id & ((1 << SLOT_BITS) - 1)) as u32 == slot)
            .max_by_key(|(&id, _)| id >> SLOT_BITS)
            .map(|(_, &i)| i)
    }

    fn add(&mut self, id: f64, kind: Kind) -> usize {
        let index = self.handles.len();
        if kind == Kind::Soon {
            assert_eq!(id, self.soon.len() as f64, "call_soon ids count up");
            self.soon.push(index);
        } else {
            // A reused slot makes the old handle with that slot stale; ids are unique.
            assert!(
                self.by_id.insert(id as u64, index).is_none(),
                "id {id} handed out twice"
            );
        }
        self.handles.push(Handle {
            id,
            kind,
            life: Life::Pending,
            runs: 0,
            cancelled: false,
        });
        index
    }

    /// What `cancel` must answer, and the model's new state.
    fn cancel(&mut self, index: usize) -> bool {
        let h = &mut self.handles[index];
        if h.kind == Kind::Soon {
            // Only a queued one; in its batch it is the host's to skip.
            if h.life != Life::Pending {
                return false;
            }
            h.cancelled = true;
            h.life = Life::Done;
            return true;
        }
        match h.life {
            Life::Done => false,
            Life::InBatch if h.kind == Kind::Watcher && h.cancelled => false,
            Life::InBatch if h.kind != Kind::Watcher && h.cancelled => false,
            Life::InBatch => {
                h.cancelled = true;
                true
            }
            Life::Pending => {
                h.cancelled = true;
                h.life = Life::Done;
                true
            }
        }
    }

    /// The batch `run_once` must return at `now`: the `call_soon`s it
    /// takes, and the handle ids of its slots.
    fn batch_ids(&mut self, now: u64) -> (u32, Vec<f64>) {
        let (soon, batch) = self.run_once(now);
        (
            soon,
            batch
                .into_iter()
                .filter(|&i| self.handles[i].kind != Kind::Soon)
                .map(|i| self.handles[i].id)
                .collect(),
        )
    }

    /// The handle ids of the core's batch `slots`.
    fn ids(&self, slots: &[u32]) -> Vec<f64> {
        slots
            .iter()
            .map(|&slot| self.handles[self.owner(slot).unwrap()].id)
            .collect()
    }

    /// The earliest deadline of a timer still waiting, if any.
    fn next_live_deadline(&self) -> Option<u64> {
        self.handles
            .iter()
            .filter(|h| h.life == Life::Pending)
            .filter_map(|h| match h.kind {
                Kind::Timer { deadline, .. } if deadline != NEVER => Some(deadline),
                _ => None,
            })
            .min()
    }

    /// True if a callback queued with `call_soon` is waiting.
    fn soon_pending(&self) -> bool {
        self.ready
            .iter()
            .any(|&i| self.handles[i].life == Life::Pending)
    }

    /// The batch `run_once` must return at `now`: how many `call_soon`s it
    /// takes, and the callbacks that run, in order.
    fn run_once(&mut self, now: u64) -> (u32, Vec<usize>) {
        // 0. Release the last batch.
        for &i in &self.last_batch {
            let h = &mut self.handles[i];
            h.life = if h.kind == Kind::Watcher && !h.cancelled {
                Life::Pending
            } else {
                Life::Done
            };
        }
        // 1. Clock.
        if now > self.loop_now {
            self.loop_now = now;
        }
        let now = self.loop_now;
        // 2. Ready, then due timers by (deadline, seq).
        let taken = self.ready.len() as u32;
        let mut batch: Vec<usize> = std::mem::take(&mut self.ready)
            .into_iter()
            .filter(|&i| self.handles[i].life == Life::Pending)
            .collect();
        let mut due: Vec<usize> = (0..self.handles.len())
            .filter(|&i| {
                let h = &self.handles[i];
                h.life == Life::Pending
                    && matches!(h.kind, Kind::Timer { deadline, .. } if deadline != NEVER && deadline <= now)
            })
            .collect();
        due.sort_by_key(|&i| match self.handles[i].kind {
            Kind::Timer { deadline, seq } => (deadline, seq),
            _ => unreachable!(),
        });
        batch.extend(due);
        // 3. Reported watchers (once each), then completions; the core asks
        // the host only while watchers (completions) are pending, so tokens
        // otherwise stay queued, and a token is whatever its slot is now.
        let pending_kind = |m: &Model, kind: Kind| {
            m.handles
                .iter()
                .any(|h| h.kind == kind && h.life == Life::Pending)
        };
        if pending_kind(self, Kind::Watcher) {
            for slot in std::mem::take(&mut self.reported) {
                if let Some(i) = self.owner(slot) {
                    let h = &self.handles[i];
                    if h.kind == Kind::Watcher && h.life == Life::Pending && !batch.contains(&i) {
                        batch.push(i);
                    }
                }
            }
        }
        if pending_kind(self, Kind::Completion) {
            for slot in std::mem::take(&mut self.completed) {
                if let Some(i) = self.owner(slot) {
                    let h = &self.handles[i];
                    if h.kind == Kind::Completion && h.life == Life::Pending && !batch.contains(&i)
                    {
                        batch.push(i);
                    }
                }
            }
        }
        for &i in &batch {
            let h = &mut self.handles[i];
            h.life = Life::InBatch;
            h.runs += 1;
        }
        self.last_batch = batch.clone();
        (taken, batch)
    }

    fn stats(&self) -> (u32, u32, u32, u32) {
        let pending = |pred: &dyn Fn(&Handle) -> bool| {
            self.handles
                .iter()
                .filter(|h| h.life == Life::Pending && pred(h))
                .count() as u32
        };
        let watchers = self
            .handles
            .iter()
            .filter(|h| h.kind == Kind::Watcher && !h.cancelled && h.life != Life::Done)
            .count() as u32;
        (
            pending(&|h| matches!(h.kind, Kind::Timer { .. })),
            pending(&|h| h.kind == Kind::Soon),
            watchers,
            pending(&|h| h.kind == Kind::Completion),
        )
    }
}

fn check(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let start = 1_000_000_000;
    let mut core = EventLoop::new(FakeHost::at(start));
    let mut model = Model {
        loop_now: start,
        ..Model::default()
    };
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Soon => {
                let id = core.call_soon();
                let i = model.add(id, Kind::Soon);
                model.ready.push(i);
            }
            Op::Later(ms) => {
                let deadline = deadline_after(model.loop_now, ms);
                let seq = model.seq;
                model.seq = model.seq.wrapping_add(1);
                let id = core.call_later(ms);
                model.add(id, Kind::Timer { deadline, seq });
            }
            Op::At(ms) => {
                let deadline = deadline_at(ms);
                let seq = model.seq;
                model.seq = model.seq.wrapping_add(1);
                let id = core.call_at(ms);
                model.add(id, Kind::Timer { deadline, seq });
            }
            Op::Watch => {
                let id = core.watch();
                model.add(id, Kind::Watcher);
            }
            Op::Expect => {
                let id = core.expect();
                model.add(id, Kind::Completion);
            }
            Op::Cancel(pick) => {
                if model.handles.is_empty() {
                    continue;
                }
                let i = pick % model.handles.len();
                let id = model.handles[i].id;
                let expected = model.cancel(i);
                if model.handles[i].kind == Kind::Soon {
                    prop_assert_eq!(
                        core.cancel_soon(id),
                        expected,
                        "step {}: cancel_soon handle {}",
                        step,
                        i
                    );
                    continue;
                }
                let (slot, generation) = split(id);
                prop_assert_eq!(
                    core.cancel(slot, generation),
                    expected,
                    "step {}: cancel handle {}",
                    step,
                    i
                );
            }
            Op::CancelForged(slot, generation) => {
                let id = (generation as u64) << SLOT_BITS | slot as u64;
                let expected = match model.by_id.get(&id) {
                    Some(&i) => model.cancel(i),
                    None => false,
                };
                prop_assert_eq!(
                    core.cancel(slot, generation),
                    expected,
                    "step {}: forged cancel",
                    step
                );
            }
            Op::CancelSoonForged(id) => {
                let issued = (id >= 0.0 && id.fract() == 0.0)
                    .then(|| model.soon.get(id as usize).copied())
                    .flatten();
                let expected = match issued {
                    Some(i) => model.cancel(i),
                    None => false,
                };
                prop_assert_eq!(
                    core.cancel_soon(id),
                    expected,
                    "step {}: forged cancel_soon({})",
                    step,
                    id
                );
            }
            Op::Report(pick) => {
                if model.handles.is_empty() {
                    continue;
                }
                let picked = &model.handles[pick % model.handles.len()];
                if picked.kind == Kind::Soon {
                    continue;
                }
                let (slot, _) = split(picked.id);
                // The host reports the token as readiness or completion as
                // the slot's owner is; stale and wrong-kind tokens are the
                // core's to ignore.
                if pick % 2 == 0 {
                    core.host_mut().ready.push(slot);
                    model.reported.push(slot);
                } else {
                    core.host_mut().completed.push(slot);
                    model.completed.push(slot);
                }
            }
            Op::ReportForged(token) => {
                core.host_mut().ready.push(token);
                model.reported.push(token);
                core.host_mut().completed.push(token);
                model.completed.push(token);
            }
            Op::Jump => {
                let before = core.now();
                prop_assert_eq!(
                    before,
                    model.loop_now,
                    "step {}: loop time before a jump",
                    step
                );
                let limit = match (model.soon_pending(), model.next_live_deadline()) {
                    (false, Some(next)) => next.max(before),
                    _ => before,
                };
                let ran = core.jump_and_run_once();
                let batch = (ran.soon, ran.slots.to_vec());
                let now = core.now();
                // Never back, and never past the earliest waiting timer (nor
                // anywhere while a callback is ready): nothing is skipped.
                prop_assert!(
                    before <= now && now <= limit,
                    "step {}: jumped from {} to {}, limit {}",
                    step,
                    before,
                    now,
                    limit
                );
                let expected = model.batch_ids(now);
                let got = (batch.0, model.ids(&batch.1));
                prop_assert_eq!(
                    &got,
                    &expected,
                    "step {}: batch after a jump to {}",
                    step,
                    now
                );
            }
            Op::Run(advance) => {
                core.host_mut().now += advance;
                let now = core.host_mut().now;
                let expected = model.batch_ids(now);
                let ran = core.run_once();
                let got = (ran.soon, model.ids(ran.slots));
                prop_assert_eq!(&got, &expected, "step {}: batch at now {}", step, now);
                let got = got.1;
                // The loop's time: the host clock's, or later if a jump took
                // it past the host clock (loop time never goes back).
                let now = model.loop_now;
                prop_assert_eq!(core.now(), now, "step {}: loop time", step);
                for &id in &got {
                    let h = &model.handles[model.by_id[&(id as u64)]];
                    if let Kind::Timer { deadline, .. } = h.kind {
                        prop_assert!(
                            deadline <= now,
                            "step {}: timer due {} ran early at {}",
                            step,
                            deadline,
                            now
                        );
                    }
                }
                let s: Stats = core.stats();
                let (timers, ready, watchers, completions) = model.stats();
                prop_assert_eq!(s.timers_pending, timers, "step {}: timers pending", step);
                prop_assert_eq!(s.ready_pending, ready, "step {}: ready pending", step);
                prop_assert_eq!(s.watchers, watchers, "step {}: watchers", step);
                prop_assert_eq!(
                    s.completions_pending,
                    completions,
                    "step {}: completions pending",
                    step
                );
            }
        }
    }
    for h in &model.handles {
        if h.kind != Kind::Watcher {
            prop_assert!(h.runs <= 1, "a one-shot callback ran {} times", h.runs);
        }
        if h.cancelled && h.life == Life::Done {
            // Cancelled before it ran: it never ran.
        }
    }
    Ok(())
}

#[test]
fn the_core_agrees_with_the_reference_model() {
    use proptest::test_runner::{Config, TestRunner};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    let operations = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 10_000,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(op(), 400..500), |ops| {
            operations.fetch_add(ops.len(), Ordering::Relaxed);
            check(ops)
        })
        .unwrap();
    let total = operations.load(Ordering::Relaxed);
    eprintln!("model-based test: {cases} sequences, {total} operations checked against the reference model");
    assert!(
        cases < 256 || total >= 100_000,
        "only {total} operations checked"
    );
}
