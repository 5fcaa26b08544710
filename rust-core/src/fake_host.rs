//! The fake host the core's tests drive: a clock the test moves by hand and
//! I/O tokens it reports by hand. One definition for the unit tests, the
//! model-based tests (tests/model.rs) and the fuzzing harness (fuzzing.rs,
//! run by libFuzzer and by tests/fuzz_corpus.rs), so they all exercise the
//! core through the same host. Not built into the component.

use crate::event_loop::Host;
use crate::time::Nanos;

#[derive(Debug, Default)]
pub struct FakeHost {
    /// What the clock reads, in ns; moves only when the test sets it.
    pub now: Nanos,
    /// Readiness tokens reported and not yet taken by the core.
    pub ready: Vec<u32>,
    /// Completion tokens reported and not yet taken by the core.
    pub completed: Vec<u32>,
}

impl FakeHost {
    /// A host whose clock reads `now`, with nothing reported.
    pub fn at(now: Nanos) -> FakeHost {
        FakeHost {
            now,
            ..FakeHost::default()
        }
    }
}

impl Host for FakeHost {
    fn now(&mut self) -> Nanos {
        self.now
    }
    // Everything reported is handed over at once, whatever `max` says: no
    // test reports anywhere near MAX_IO_EVENTS tokens in one iteration.
    fn take_ready(&mut self, _max: u32) -> Vec<u32> {
        std::mem::take(&mut self.ready)
    }
    fn take_completed(&mut self, _max: u32) -> Vec<u32> {
        std::mem::take(&mut self.completed)
    }
}
