//! The handle table: one slot per scheduled callback, with generations.
//!
//! A handle is `(slot, generation)`. The host keeps its callback at index
//! `slot`; the core keeps the slot's state, its generation, and (for timers)
//! the timer-queue node. When a slot is freed its generation is bumped, so a
//! handle kept past that point is *stale*: it never matches the slot again
//! and can never cancel the newer callback that reuses it.
//!
//! ```text
//!  slot id:      0      1      2      3    ...   4095 | 4096 ...
//!               +------+------+------+------+-----+----+ +------
//!  chunk 0      | deadline u64 | seq u32 | next u32 | meta u32 |  (20 bytes a slot)
//!               +------+------+------+------+-----+----+ +------
//!  meta = generation << 3 | state
//! ```
//!
//! Storage grows one fixed chunk of 4096 slots (80 KiB) at a time and is
//! never copied: a `Vec` that doubles would leave the old copy behind in
//! linear memory (which never shrinks), and the loop's budget is 32 bytes per
//! pending timer, host tables included. Free slots form an intrusive list
//! through `next`, so the free list costs no memory of its own.

use std::alloc::{alloc_zeroed, handle_alloc_error, Layout};

/// Bits of a handle id that hold the slot; the rest hold the generation.
pub const SLOT_BITS: u32 = 26;
/// Most slots the table can hold (67,108,864).
pub const MAX_SLOTS: u32 = 1 << SLOT_BITS;
/// Generations run from 0 to `GENERATION_LIMIT - 1`, so that
/// `generation * 2^26 + slot` stays below 2^53 and is exact in an f64.
pub const GENERATION_LIMIT: u32 = 1 << 27;
/// "No slot": ends a list.
pub const NIL: u32 = u32::MAX;

const CHUNK_BITS: u32 = 12;
const CHUNK_LEN: usize = 1 << CHUNK_BITS;
const CHUNK_MASK: u32 = (1 << CHUNK_BITS) - 1;
const STATE_BITS: u32 = 3;
const STATE_MASK: u32 = (1 << STATE_BITS) - 1;

/// Where a slot's callback is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Not in use (on the free list, or retired).
    Free = 0,
    /// A timer in the timer queue.
    Timer = 1,
    /// A timer that never fires (`+Infinity`): in no queue.
    Parked = 2,
    /// A cancelled timer whose node is still linked in the timer queue; freed
    /// when the queue reaches it or compacts.
    Tombstone = 3,
    /// Queued in the ready queue for the next iteration.
    Ready = 4,
    /// Handed to the host in the current batch.
    Running = 5,
    /// Cancelled while ready or running; freed when the queue or batch that
    /// holds it is consumed.
    Cancelled = 6,
}

impl State {
    fn from_bits(bits: u32) -> State {
        match bits {
            0 => State::Free,
            1 => State::Timer,
            2 => State::Parked,
            3 => State::Tombstone,
            4 => State::Ready,
            5 => State::Running,
            _ => State::Cancelled,
        }
    }
}

#[repr(C)]
struct Chunk {
    deadline: [u64; CHUNK_LEN],
    seq: [u32; CHUNK_LEN],
    next: [u32; CHUNK_LEN],
    meta: [u32; CHUNK_LEN],
}

impl Chunk {
    /// A zeroed chunk (every slot free, generation 0), allocated directly on
    /// the heap: 80 KiB would not fit on a small Wasm stack.
    fn new_boxed() -> Box<Chunk> {
        let layout = Layout::new::<Chunk>();
        // SAFETY: Chunk is plain integers, for which all-zero bytes are a
        // valid value; the pointer comes from the global allocator with
        // Chunk's own layout, as Box requires.
        unsafe {
            let ptr = alloc_zeroed(layout) as *mut Chunk;
            if ptr.is_null() {
                handle_alloc_error(layout);
            }
            Box::from_raw(ptr)
        }
    }
}

/// The handle table.
pub struct Slots {
    chunks: Vec<Box<Chunk>>,
    /// Slots handed out so far (the high-water mark); `[len, capacity)` are
    /// zeroed and never used.
    len: u32,
    free_head: u32,
    free_count: u32,
    retired: u32,
}

impl Default for Slots {
    fn default() -> Self {
        Self::new()
    }
}

impl Slots {
    pub fn new() -> Slots {
        Slots { chunks: Vec::new(), len: 0, free_head: NIL, free_count: 0, retired: 0 }
    }

    #[inline]
    fn chunk(&self, slot: u32) -> &Chunk {
        &self.chunks[(slot >> CHUNK_BITS) as usize]
    }

    #[inline]
    fn chunk_mut(&mut self, slot: u32) -> &mut Chunk {
        &mut self.chunks[(slot >> CHUNK_BITS) as usize]
    }

    /// Takes a free slot (the most recently freed first, for locality) and
    /// puts it in `state`. Returns `None` when all 2^26 slots are in use.
    #[inline]
    pub fn alloc(&mut self, state: State) -> Option<u32> {
        let slot = if self.free_head != NIL {
            let slot = self.free_head;
            self.free_head = self.next(slot);
            self.free_count -= 1;
            slot
        } else {
            if self.len == MAX_SLOTS {
                return None;
            }
            let slot = self.len;
            if (slot as usize) >> CHUNK_BITS == self.chunks.len() {
                self.chunks.push(Chunk::new_boxed());
            }
            self.len += 1;
            slot
        };
        debug_assert_eq!(self.state(slot), State::Free, "slot {slot} on the free list is in use");
        self.set_state(slot, state);
        Some(slot)
    }

    /// Frees `slot`: bumps its generation so every handle to it goes stale,
    /// and puts it on the free list, or retires it for good when its
    /// generation is exhausted (after 2^27 uses: 20 bytes lost per 134
    /// million callbacks scheduled on one slot).
    #[inline]
    pub fn free(&mut self, slot: u32) {
        debug_assert_ne!(self.state(slot), State::Free, "double free of slot {slot}");
        let generation = self.generation(slot) + 1;
        let free_head = self.free_head;
        let c = self.chunk_mut(slot);
        let i = (slot & CHUNK_MASK) as usize;
        if generation == GENERATION_LIMIT {
            // Retired: state Free but never on the free list, and its
            // generation stays at the last one handed out, which no live
            // handle can hold once this slot's callback is done.
            c.meta[i] = ((GENERATION_LIMIT - 1) << STATE_BITS) | State::Free as u32;
            self.retired += 1;
            return;
        }
        c.meta[i] = (generation << STATE_BITS) | State::Free as u32;
        c.next[i] = free_head;
        self.free_head = slot;
        self.free_count += 1;
    }

    /// Whether `slot` has ever been handed out.
    #[inline]
    pub fn contains(&self, slot: u32) -> bool {
        slot < self.len
    }

    #[inline]
    pub fn state(&self, slot: u32) -> State {
        State::from_bits(self.chunk(slot).meta[(slot & CHUNK_MASK) as usize] & STATE_MASK)
    }

    #[inline]
    pub fn set_state(&mut self, slot: u32, state: State) {
        let m = &mut self.chunk_mut(slot).meta[(slot & CHUNK_MASK) as usize];
        *m = (*m & !STATE_MASK) | state as u32;
    }

    #[inline]
    pub fn generation(&self, slot: u32) -> u32 {
        self.chunk(slot).meta[(slot & CHUNK_MASK) as usize] >> STATE_BITS
    }

    /// The handle id of `slot` as the host sees it: `generation * 2^26 + slot`.
    #[inline]
    pub fn id(&self, slot: u32) -> f64 {
        (self.generation(slot) as f64) * (MAX_SLOTS as f64) + slot as f64
    }

    #[inline]
    pub fn deadline(&self, slot: u32) -> u64 {
        self.chunk(slot).deadline[(slot & CHUNK_MASK) as usize]
    }

    #[inline]
    pub fn seq(&self, slot: u32) -> u32 {
        self.chunk(slot).seq[(slot & CHUNK_MASK) as usize]
    }

    #[inline]
    pub fn set_timer(&mut self, slot: u32, deadline: u64, seq: u32) {
        let c = self.chunk_mut(slot);
        let i = (slot & CHUNK_MASK) as usize;
        c.deadline[i] = deadline;
        c.seq[i] = seq;
    }

    #[inline]
    pub fn next(&self, slot: u32) -> u32 {
        self.chunk(slot).next[(slot & CHUNK_MASK) as usize]
    }

    #[inline]
    pub fn set_next(&mut self, slot: u32, next: u32) {
        self.chunk_mut(slot).next[(slot & CHUNK_MASK) as usize] = next;
    }

    /// Slots handed out so far, live or free.
    pub fn allocated(&self) -> u32 {
        self.len
    }

    /// Slots waiting on the free list.
    pub fn free_count(&self) -> u32 {
        self.free_count
    }

    /// Slots retired because their generation ran out.
    pub fn retired(&self) -> u32 {
        self.retired
    }

    /// Bytes of memory the table holds.
    pub fn bytes(&self) -> usize {
        self.chunks.len() * std::mem::size_of::<Chunk>()
            + self.chunks.capacity() * std::mem::size_of::<Box<Chunk>>()
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
        for i in 0..(CHUNK_LEN as u32 * 2 + 1) {
            let slot = s.alloc(State::Timer).unwrap();
            s.set_timer(slot, i as u64, i);
        }
        assert_eq!(s.chunks.len(), 3);
        assert_eq!(s.deadline(CHUNK_LEN as u32), CHUNK_LEN as u64);
        assert_eq!(s.seq(2 * CHUNK_LEN as u32), 2 * CHUNK_LEN as u32);
    }

    #[test]
    fn a_slot_whose_generations_run_out_is_retired_not_reused() {
        let mut s = Slots::new();
        let a = s.alloc(State::Ready).unwrap();
        let i = (a & CHUNK_MASK) as usize;
        s.chunks[0].meta[i] = ((GENERATION_LIMIT - 1) << STATE_BITS) | State::Ready as u32;
        s.free(a);
        assert_eq!(s.retired(), 1);
        assert_eq!(s.free_count(), 0);
        assert_eq!(s.generation(a), GENERATION_LIMIT - 1);
        let b = s.alloc(State::Ready).unwrap();
        assert_ne!(a, b, "a retired slot must never be handed out again");
    }
}
