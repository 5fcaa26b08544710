//! The handle table: one slot per scheduled callback, with generations.
//!
//! A handle is `(slot, generation)`. The host keeps its callback at index
//! `slot`; the core keeps the slot's state and generation in one `u32`:
//!
//! ```text
//!  slot:    0      1      2     ...   4095 | 4096 ...
//!         +------+------+------+-----+------+ +------
//!  chunk  | meta | meta | meta | ... | meta | | ...      meta = generation << 4 | state
//!         +------+------+------+-----+------+ +------    (4 bytes a slot)
//! ```
//!
//! Each time a slot is handed out its generation is bumped, so a handle kept
//! after its callback ran or was cancelled is *stale*: it never matches the
//! slot again and can never cancel the newer callback that reuses it.
//!
//! Storage grows one fixed chunk of 4096 slots (16 KiB) at a time and is
//! never copied: a `Vec` that doubles would leave the old copy behind in
//! linear memory, which never shrinks. (Timers keep their deadlines in the
//! timer queue's buckets, not here.)

use std::alloc::{alloc_zeroed, handle_alloc_error, Layout};

/// Bits of a handle id that hold the slot; the rest hold the generation.
pub const SLOT_BITS: u32 = 26;
/// Most slots the table can hold (67,108,864).
pub const MAX_SLOTS: u32 = 1 << SLOT_BITS;
/// Generations run from 0 to `GENERATION_LIMIT - 1`, so that
/// `generation * 2^26 + slot` stays below 2^53 and is exact in an f64.
pub const GENERATION_LIMIT: u32 = 1 << 27;

const CHUNK_BITS: u32 = 12;
const CHUNK_LEN: usize = 1 << CHUNK_BITS;
const CHUNK_MASK: u32 = (1 << CHUNK_BITS) - 1;
const STATE_BITS: u32 = 4;
const STATE_MASK: u32 = (1 << STATE_BITS) - 1;

/// Where a slot's callback is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Not in use: never handed out, or freed.
    Free = 0,
    /// A timer in the timer queue.
    Timer = 1,
    /// A timer that never fires (`+Infinity`): in no queue.
    Parked = 2,
    /// A cancelled timer whose entry is still in the timer queue; freed when
    /// the queue reaches it or compacts.
    Tombstone = 3,
    /// Queued in the ready queue for the next iteration.
    Ready = 4,
    /// Handed to the host in the current batch.
    Running = 5,
    /// Cancelled while ready or running; freed when the queue or batch that
    /// holds it is consumed.
    Cancelled = 6,
    /// An I/O watcher waiting for its token to be reported.
    Watching = 7,
    /// An I/O watcher in the current batch; back to `Watching` when the batch
    /// is released.
    WatchQueued = 8,
    /// A one-shot callback waiting for its I/O completion to be reported.
    Awaiting = 9,
}

impl State {
    #[inline]
    fn from_bits(bits: u32) -> State {
        match bits {
            0 => State::Free,
            1 => State::Timer,
            2 => State::Parked,
            3 => State::Tombstone,
            4 => State::Ready,
            5 => State::Running,
            6 => State::Cancelled,
            7 => State::Watching,
            8 => State::WatchQueued,
            _ => State::Awaiting,
        }
    }
}

type Chunk = [u32; CHUNK_LEN];

/// A zeroed chunk (every slot free at generation 0), allocated directly on
/// the heap rather than built on the small Wasm stack.
fn new_chunk() -> Box<Chunk> {
    let layout = Layout::new::<Chunk>();
    // SAFETY: all-zero bytes are a valid [u32; N]; the pointer comes from the
    // global allocator with Chunk's own layout, as Box requires.
    unsafe {
        let ptr = alloc_zeroed(layout) as *mut Chunk;
        if ptr.is_null() {
            handle_alloc_error(layout);
        }
        Box::from_raw(ptr)
    }
}

/// The handle table.
pub struct Slots {
    chunks: Vec<Box<Chunk>>,
    /// Slots handed out so far (the high-water mark).
    len: u32,
    /// Freed slots, most recently freed on top (reused first, for locality).
    free: Vec<u32>,
    retired: u32,
}

impl Default for Slots {
    fn default() -> Self {
        Self::new()
    }
}

impl Slots {
    pub fn new() -> Slots {
        Slots {
            chunks: Vec::new(),
            len: 0,
            free: Vec::new(),
            retired: 0,
        }
    }

    #[inline]
    fn meta(&self, slot: u32) -> u32 {
        debug_assert!(
            slot < self.len,
            "slot {slot} out of range (len {})",
            self.len
        );
        self.chunks[(slot >> CHUNK_BITS) as usize][(slot & CHUNK_MASK) as usize]
    }

    #[inline]
    fn meta_mut(&mut self, slot: u32) -> &mut u32 {
        debug_assert!(
            slot < self.len,
            "slot {slot} out of range (len {})",
            self.len
        );
        &mut self.chunks[(slot >> CHUNK_BITS) as usize][(slot & CHUNK_MASK) as usize]
    }

    /// Hands out a slot in `state` with a new generation: a freed one (the
    /// most recently freed first) or a new one. `None` when all 2^26 slots
    /// are in use.
    #[inline]
    pub fn alloc(&mut self, state: State) -> Option<u32> {
        while let Some(slot) = self.free.pop() {
            let meta = self.meta_mut(slot);
            debug_assert_eq!(
                *meta & STATE_MASK,
                State::Free as u32,
                "slot {slot} on the free stack is in use"
            );
            let generation = (*meta >> STATE_BITS) + 1;
            if generation == GENERATION_LIMIT {
                // Retired for good: its last handle keeps the last generation
                // and the slot is never handed out again (4 bytes lost per
                // 134 million callbacks scheduled on one slot).
                self.retired += 1;
                continue;
            }
            *meta = (generation << STATE_BITS) | state as u32;
            return Some(slot);
        }
        if self.len == MAX_SLOTS {
            return None;
        }
        let slot = self.len;
        if (slot as usize) >> CHUNK_BITS == self.chunks.len() {
            self.chunks.push(new_chunk());
        }
        self.len += 1;
        *self.meta_mut(slot) = state as u32;
        Some(slot)
    }

    /// Frees `slot`. Its handles go stale when it is handed out again; until
    /// then they see it `Free`.
    #[inline]
    pub fn free(&mut self, slot: u32) {
        self.set_state(slot, State::Free);
        self.free.push(slot);
    }

    /// Whether `slot` has ever been handed out.
    #[inline]
    pub fn contains(&self, slot: u32) -> bool {
        slot < self.len
    }

    #[inline]
    pub fn state(&self, slot: u32) -> State {
        State::from_bits(self.meta(slot) & STATE_MASK)
    }

    #[inline]
    pub fn set_state(&mut self, slot: u32, state: State) {
        let meta = self.meta_mut(slot);
        *meta = (*meta & !STATE_MASK) | state as u32;
    }

    #[inline]
    pub fn generation(&self, slot: u32) -> u32 {
        self.meta(slot) >> STATE_BITS
    }

    /// The handle id of `slot` as the host sees it: `generation * 2^26 + slot`.
    #[inline]
    pub fn id(&self, slot: u32) -> f64 {
        (self.generation(slot) as f64) * (MAX_SLOTS as f64) + slot as f64
    }

    /// Slots handed out so far, live or free.
    pub fn allocated(&self) -> u32 {
        self.len
    }

    /// Slots waiting on the free stack.
    pub fn free_count(&self) -> u32 {
        self.free.len() as u32
    }

    /// Slots retired because their generation ran out.
    pub fn retired(&self) -> u32 {
        self.retired
    }

    /// Bytes of memory the table holds.
    pub fn bytes(&self) -> usize {
        self.chunks.len() * std::mem::size_of::<Chunk>()
            + self.chunks.capacity() * std::mem::size_of::<Box<Chunk>>()
            + self.free.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_slot_is_reused_with_a_new_generation() {
        let mut s = Slots::new();
        let a = s.alloc(State::Ready).unwrap();
        assert_eq!(s.generation(a), 0);
        s.free(a);
        assert_eq!(s.state(a), State::Free);
        let b = s.alloc(State::Timer).unwrap();
        assert_eq!(a, b);
        assert_eq!(s.generation(b), 1);
        assert_eq!(s.state(b), State::Timer);
    }

    #[test]
    fn ids_pack_generation_above_the_slot_bits() {
        let mut s = Slots::new();
        let a = s.alloc(State::Ready).unwrap();
        let b = s.alloc(State::Ready).unwrap();
        s.free(a);
        let a2 = s.alloc(State::Ready).unwrap();
        assert_eq!(s.id(b), 1.0);
        assert_eq!(s.id(a2), (1u64 << SLOT_BITS) as f64);
    }

    #[test]
    fn storage_grows_by_chunks_without_moving_slots() {
        let mut s = Slots::new();
        for _ in 0..(CHUNK_LEN * 2 + 1) {
            s.alloc(State::Timer).unwrap();
        }
        assert_eq!(s.chunks.len(), 3);
        assert_eq!(s.state(2 * CHUNK_LEN as u32), State::Timer);
    }

    #[test]
    fn a_slot_whose_generations_run_out_is_retired_not_reused() {
        let mut s = Slots::new();
        let a = s.alloc(State::Ready).unwrap();
        *s.meta_mut(a) = ((GENERATION_LIMIT - 1) << STATE_BITS) | State::Ready as u32;
        s.free(a);
        let b = s.alloc(State::Ready).unwrap();
        assert_ne!(a, b, "a retired slot must never be handed out again");
        assert_eq!(s.retired(), 1);
        assert_eq!(s.free_count(), 0);
        assert_eq!(s.generation(a), GENERATION_LIMIT - 1);
    }
}
