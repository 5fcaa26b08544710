//! The fuzzing harness: turns arbitrary bytes into a sequence of calls a
//! host could make (schedules, cancels with live, stale and forged handles,
//! iterations with the clock moving, I/O tokens live, stale and forged) and
//! checks, as it goes, what must hold whatever the input:
//!
//! - nothing panics or traps (the core's own `debug_assert!`s included);
//! - no slot appears twice in a batch, and a one-shot callback runs once;
//! - no timer runs before its deadline;
//! - a cancelled callback never runs;
//! - `call_soon` hands out consecutive sequence numbers, and each batch takes
//!   every one queued before it, once; `cancel_soon` cancels exactly the
//!   queued, not yet cancelled ones.
//!
//! `fuzz/fuzz_targets/core_ops.rs` feeds it to libFuzzer (`make fuzz`), and
//! `tests/fuzz_corpus.rs` replays the kept corpus in every `cargo test`.

use std::collections::{HashMap, HashSet};

use crate::event_loop::EventLoop;
use crate::fake_host::FakeHost;
use crate::handles::SLOT_BITS;
use crate::time::{deadline_after, deadline_at};

/// A cursor over the fuzzer's bytes; past the end everything reads as 0.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u32(&mut self) -> u32 {
        let mut v = 0u32;
        for _ in 0..4 {
            v = (v << 8) | self.u8().unwrap_or(0) as u32;
        }
        v
    }
    fn f64(&mut self) -> f64 {
        match self.u8().unwrap_or(0) % 8 {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            3 => -(self.u32() as f64),
            4 => f64::from_bits(((self.u32() as u64) << 32) | self.u32() as u64),
            5 => self.u32() as f64 * 1e12,
            _ => (self.u32() % 100_000) as f64 / 100.0,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A `call_soon`: its id is its sequence number, not a slot.
    Soon,
    OneShot,
    Timer(u64),
    Watcher,
}

struct Issued {
    id: u64,
    kind: Kind,
    cancelled: bool,
    runs: u32,
}

/// Runs the harness on `data`. Panics when an invariant breaks.
pub fn run(data: &[u8]) {
    let mut bytes = Bytes(data);
    let mut core = EventLoop::new(FakeHost::at(1 << 30));
    let mut issued: Vec<Issued> = Vec::new();
    // The newest handle given each slot.
    let mut owner: HashMap<u32, usize> = HashMap::new();
    // Every `call_soon` in order (indices into `issued`), and how many of
    // them batches took.
    let mut soon: Vec<usize> = Vec::new();
    let mut soon_taken = 0usize;
    let issue =
        |core_id: f64, kind: Kind, issued: &mut Vec<Issued>, owner: &mut HashMap<u32, usize>| {
            let id = core_id as u64;
            let slot = (id & ((1 << SLOT_BITS) - 1)) as u32;
            owner.insert(slot, issued.len());
            issued.push(Issued {
                id,
                kind,
                cancelled: false,
                runs: 0,
            });
        };
    while let Some(op) = bytes.u8() {
        match op % 12 {
            0 => {
                let id = core.call_soon();
                assert_eq!(id, soon.len() as f64, "call_soon ids count up from 0");
                soon.push(issued.len());
                issued.push(Issued {
                    id: id as u64,
                    kind: Kind::Soon,
                    cancelled: false,
                    runs: 0,
                });
            }
            1 | 2 => {
                let delay = bytes.f64();
                let deadline = deadline_after(core.now(), delay);
                let id = core.call_later(delay);
                issue(id, Kind::Timer(deadline), &mut issued, &mut owner);
            }
            3 => {
                let when = bytes.f64();
                let id = core.call_at(when);
                issue(id, Kind::Timer(deadline_at(when)), &mut issued, &mut owner);
            }
            4 | 5 => {
                // A handle that was issued: live, fired or stale.
                if issued.is_empty() {
                    continue;
                }
                let i = bytes.u32() as usize % issued.len();
                let id = issued[i].id;
                if issued[i].kind == Kind::Soon {
                    let queued = id as usize >= soon_taken;
                    let cancelled = core.cancel_soon(id as f64);
                    assert_eq!(
                        cancelled,
                        queued && !issued[i].cancelled,
                        "cancel_soon({id}) queued {queued}"
                    );
                    issued[i].cancelled |= cancelled;
                    continue;
                }
                let cancelled = core.cancel(
                    (id & ((1 << SLOT_BITS) - 1)) as u32,
                    (id >> SLOT_BITS) as u32,
                );
                if cancelled && issued[i].runs == 0 {
                    issued[i].cancelled = true;
                }
            }
            6 => {
                // A forged handle, and a forged `call_soon` id.
                let forged_soon = bytes.f64();
                if core.cancel_soon(forged_soon) {
                    let i = soon
                        .get(forged_soon as usize)
                        .copied()
                        .filter(|&i| forged_soon as usize >= soon_taken && !issued[i].cancelled)
                        .unwrap_or_else(|| {
                            panic!("cancel_soon({forged_soon}) cancelled nothing queued")
                        });
                    issued[i].cancelled = true;
                }
                let (slot, generation) = (bytes.u32(), bytes.u32());
                let forged = ((generation as u64) << SLOT_BITS) | slot as u64;
                let cancelled = core.cancel(slot, generation);
                // A `call_soon` id is a sequence number, not a handle id: the
                // same number on a timer's handle names that handle only.
                if let Some(i) = issued
                    .iter()
                    .position(|h| h.kind != Kind::Soon && h.id == forged && slot < (1 << SLOT_BITS))
                {
                    if cancelled && issued[i].runs == 0 {
                        issued[i].cancelled = true;
                    }
                } else {
                    assert!(
                        !cancelled,
                        "a forged handle ({slot}, {generation}) cancelled something"
                    );
                }
            }
            7 => {
                let id = core.watch();
                issue(id, Kind::Watcher, &mut issued, &mut owner);
            }
            8 => {
                let id = core.expect();
                issue(id, Kind::OneShot, &mut issued, &mut owner);
            }
            9 => {
                let token = bytes.u32() % 8192;
                core.host_mut().ready.push(token);
            }
            10 => {
                let token = bytes.u32() % 8192;
                core.host_mut().completed.push(token);
            }
            _ => {
                let advance = match bytes.u8().unwrap_or(0) % 4 {
                    0 => 0,
                    1 => bytes.u32() as u64 % 2_000_000,
                    2 => bytes.u32() as u64 * 1000,
                    _ => (bytes.u32() as u64) << 20,
                };
                core.host_mut().now = core.host_mut().now.saturating_add(advance);
                let live = soon[soon_taken..]
                    .iter()
                    .filter(|&&i| !issued[i].cancelled)
                    .count();
                assert_eq!(
                    core.stats().ready_pending as usize,
                    live,
                    "queued call_soons"
                );
                let ran = core.run_once();
                let (taken, batch) = (ran.soon as usize, ran.slots.to_vec());
                assert_eq!(
                    taken,
                    soon.len() - soon_taken,
                    "a batch takes every call_soon queued before it"
                );
                for &i in &soon[soon_taken..] {
                    if !issued[i].cancelled {
                        issued[i].runs += 1;
                    }
                }
                soon_taken = soon.len();
                let now = core.now();
                let mut seen = HashSet::new();
                for slot in batch {
                    assert!(seen.insert(slot), "slot {slot} twice in one batch");
                    let i = *owner
                        .get(&slot)
                        .unwrap_or_else(|| panic!("slot {slot} in a batch was never issued"));
                    let h = &mut issued[i];
                    assert!(!h.cancelled, "cancelled callback (slot {slot}) ran");
                    h.runs += 1;
                    match h.kind {
                        Kind::Soon => unreachable!("a call_soon has no slot"),
                        Kind::OneShot => {
                            assert_eq!(h.runs, 1, "one-shot callback (slot {slot}) ran twice")
                        }
                        Kind::Timer(deadline) => {
                            assert_eq!(h.runs, 1, "timer (slot {slot}) ran twice");
                            assert!(
                                deadline <= now,
                                "timer (slot {slot}) due at {deadline} ran at {now}"
                            );
                        }
                        Kind::Watcher => {}
                    }
                }
            }
        }
    }
    let stats = core.stats();
    assert!(
        stats.slots_allocated as usize <= issued.len(),
        "more slots than callbacks"
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn arbitrary_bytes_keep_the_invariants() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..200 {
            let data: Vec<u8> = (0..600)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            super::run(&data);
        }
    }
}
