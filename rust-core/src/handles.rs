//! The handle table: one slot per scheduled callback, with generations.
//! (A `call_soon` takes none: the queue of them is two sequence numbers in
//! event_loop.rs.)
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
//! Storage grows one fixed chunk of 4096 slots (16 KiB of states, 512 bytes
//! of free bits) at a time and is never copied: a `Vec` that doubles would
//! leave the old copy behind in linear memory, which never shrinks. (Timers
//! keep their deadlines in the timer queue's buckets, not here.)
//!
//! Freed slots are handed out again *lowest first*, found through a bitmap
//! of free slots with a summary above it (one bit per slot, then one per
//! word, per chunk and per 64 chunks: four `trailing_zeros` from the top to
//! a free slot). The word holding the lowest free slot is remembered
//! (`lowest_word`), so consecutive allocations take the next bits of the
//! same word without walking down from the top again. The order slots come
//! back in is the order the timers that held them fired or were compacted
//! away, which is not the order they were scheduled in; a free *stack*
//! hands that order out again, so after a few million timers a loop's
//! consecutive `call_later`s land on slots strewn over its tables, here and
//! in the host's callback table (a cache miss per callback on each side,
//! where a new loop touches both tables sequentially). Lowest first keeps
//! consecutive allocations on consecutive slots for as long as the loop
//! lives, and keeps a loop with few callbacks on the same few, hot, slots.

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
/// Words of free bits per chunk (64 slots a word).
const CHUNK_WORDS: usize = CHUNK_LEN / 64;
/// Most chunks the table can hold, and the words of their summary bits.
const MAX_CHUNKS: usize = (MAX_SLOTS as usize) >> CHUNK_BITS;
const CHUNK_SUMMARY_WORDS: usize = MAX_CHUNKS / 64;
const TOP_WORDS: usize = CHUNK_SUMMARY_WORDS / 64;
const STATE_BITS: u32 = 4;
const STATE_MASK: u32 = (1 << STATE_BITS) - 1;
/// `lowest_word` when the word holding the lowest free slot is not known.
const NO_WORD: u32 = u32::MAX;

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
    /// Handed to the host in the current batch.
    Running = 4,
    /// Cancelled while in the current batch; freed when the batch is
    /// released.
    Cancelled = 5,
    /// An I/O watcher waiting for its token to be reported.
    Watching = 6,
    /// An I/O watcher in the current batch; back to `Watching` when the batch
    /// is released.
    WatchQueued = 7,
    /// A one-shot callback waiting for its I/O completion to be reported.
    Awaiting = 8,
}

impl State {
    #[inline]
    fn from_bits(bits: u32) -> State {
        match bits {
            0 => State::Free,
            1 => State::Timer,
            2 => State::Parked,
            3 => State::Tombstone,
            4 => State::Running,
            5 => State::Cancelled,
            6 => State::Watching,
            7 => State::WatchQueued,
            _ => State::Awaiting,
        }
    }
}

/// 4096 slots: their states and generations, and which of them are free.
#[repr(C)]
struct Chunk {
    /// By slot: `generation << 4 | state`.
    meta: [u32; CHUNK_LEN],
    /// Bit `i % 64` of word `i / 64`: slot `i` of the chunk is free.
    free: [u64; CHUNK_WORDS],
    /// Bit `w`: `free[w]` has a free slot.
    free_words: u64,
}

/// A zeroed chunk (every slot at generation 0, none free yet: slots past the
/// high-water mark are handed out from `len`), allocated directly on the
/// heap rather than built on the small Wasm stack.
fn new_chunk() -> Box<Chunk> {
    let layout = Layout::new::<Chunk>();
    // SAFETY: all-zero bytes are a valid Chunk (integers only); the pointer
    // comes from the global allocator with Chunk's own layout, as Box requires.
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
    /// Bit `c % 64` of word `c / 64`: chunk `c` has a free slot. Allocated
    /// with the first free (2 KiB).
    chunks_free: Option<Box<[u64; CHUNK_SUMMARY_WORDS]>>,
    /// Bit `w`: `chunks_free[w]` is not zero.
    top: [u64; TOP_WORDS],
    free_count: u32,
    retired: u32,
    /// The word (`slot / 64`, counted across chunks) that holds the lowest
    /// free slot, or `NO_WORD` when that is not known and the summaries
    /// must find it. Invariant: no word below it has a free slot.
    lowest_word: u32,
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
            chunks_free: None,
            top: [0; TOP_WORDS],
            free_count: 0,
            retired: 0,
            lowest_word: NO_WORD,
        }
    }

    #[inline]
    fn meta(&self, slot: u32) -> u32 {
        debug_assert!(
            slot < self.len,
            "slot {slot} out of range (len {})",
            self.len
        );
        self.chunks[(slot >> CHUNK_BITS) as usize].meta[(slot & CHUNK_MASK) as usize]
    }

    #[inline]
    fn meta_mut(&mut self, slot: u32) -> &mut u32 {
        debug_assert!(
            slot < self.len,
            "slot {slot} out of range (len {})",
            self.len
        );
        &mut self.chunks[(slot >> CHUNK_BITS) as usize].meta[(slot & CHUNK_MASK) as usize]
    }

    /// Hands out a slot in `state` with a new generation: the lowest free
    /// one, or a new one. `None` when all 2^26 slots are in use.
    #[inline]
    pub fn alloc(&mut self, state: State) -> Option<u32> {
        while let Some(slot) = self.take_lowest_free() {
            let meta = self.meta_mut(slot);
            debug_assert_eq!(
                *meta & STATE_MASK,
                State::Free as u32,
                "slot {slot} marked free is in use"
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

    /// The lowest free slot, no longer marked free; `None` when none is.
    #[inline]
    fn take_lowest_free(&mut self) -> Option<u32> {
        if self.free_count == 0 {
            return None;
        }
        let word = if self.lowest_word != NO_WORD {
            debug_assert_eq!(
                Some(self.lowest_word),
                self.find_lowest_word(),
                "remembered word is not the lowest with a free slot"
            );
            self.lowest_word
        } else {
            self.find_lowest_word()?
        };
        let c = (word / CHUNK_WORDS as u32) as usize;
        let w = (word % CHUNK_WORDS as u32) as usize;
        let chunk = &mut self.chunks[c];
        let bits = chunk.free[w];
        debug_assert_ne!(bits, 0, "word {word} has no free slot");
        // Clear the bit, then each summary bit whose word just emptied.
        chunk.free[w] = bits & (bits - 1);
        if chunk.free[w] == 0 {
            self.lowest_word = NO_WORD;
            chunk.free_words &= !(1u64 << w);
            if chunk.free_words == 0 {
                // The summary exists from the first free (`free`).
                debug_assert!(self.chunks_free.is_some(), "a free slot with no summary");
                if let Some(summary) = self.chunks_free.as_mut() {
                    let s = c / 64;
                    summary[s] &= !(1u64 << (c % 64));
                    if summary[s] == 0 {
                        self.top[s / 64] &= !(1u64 << (s % 64));
                    }
                }
            }
        } else {
            self.lowest_word = word;
        }
        self.free_count -= 1;
        Some(word * 64 + bits.trailing_zeros())
    }

    /// The word holding the lowest free slot, found through the summaries.
    fn find_lowest_word(&self) -> Option<u32> {
        let t = self.top.iter().position(|&w| w != 0)?;
        let s = t * 64 + self.top[t].trailing_zeros() as usize;
        let summary = self.chunks_free.as_ref()?;
        let c = s * 64 + summary[s].trailing_zeros() as usize;
        let w = self.chunks[c].free_words.trailing_zeros() as usize;
        Some((c * CHUNK_WORDS + w) as u32)
    }

    /// Frees `slot`. Its handles go stale when it is handed out again; until
    /// then they see it `Free`.
    #[inline]
    pub fn free(&mut self, slot: u32) {
        self.set_state(slot, State::Free);
        let c = (slot >> CHUNK_BITS) as usize;
        let w = ((slot & CHUNK_MASK) >> 6) as usize;
        let chunk = &mut self.chunks[c];
        debug_assert_eq!(
            chunk.free[w] & (1u64 << (slot & 63)),
            0,
            "slot {slot} freed twice"
        );
        let was_empty = chunk.free[w] == 0;
        chunk.free[w] |= 1u64 << (slot & 63);
        // The only free slot, or one below the remembered word, is the lowest.
        let word = slot / 64;
        if self.free_count == 0 || (self.lowest_word != NO_WORD && word < self.lowest_word) {
            self.lowest_word = word;
        }
        self.free_count += 1;
        if was_empty {
            // The summaries above only change when a word gains its first free slot.
            let chunk_was_full = chunk.free_words == 0;
            chunk.free_words |= 1u64 << w;
            if chunk_was_full {
                let summary = self
                    .chunks_free
                    .get_or_insert_with(|| Box::new([0; CHUNK_SUMMARY_WORDS]));
                summary[c / 64] |= 1u64 << (c % 64);
                self.top[c / 4096] |= 1u64 << ((c / 64) % 64);
            }
        }
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

    /// Slots freed and not handed out again.
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
            + self
                .chunks_free
                .as_ref()
                .map_or(0, |_| CHUNK_SUMMARY_WORDS * 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_slot_is_reused_with_a_new_generation() {
        let mut s = Slots::new();
        let a = s.alloc(State::Timer).unwrap();
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
        let a = s.alloc(State::Timer).unwrap();
        let b = s.alloc(State::Timer).unwrap();
        s.free(a);
        let a2 = s.alloc(State::Timer).unwrap();
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
        assert_eq!(
            std::mem::size_of::<Chunk>(),
            CHUNK_LEN * 4 + CHUNK_WORDS * 8 + 8
        );
        assert_eq!(s.state(2 * CHUNK_LEN as u32), State::Timer);
    }

    #[test]
    fn freed_slots_come_back_lowest_first_whatever_order_they_were_freed_in() {
        let mut s = Slots::new();
        let n = 3 * CHUNK_LEN as u32 + 100;
        for _ in 0..n {
            s.alloc(State::Timer).unwrap();
        }
        // Freed in a scattered order (a stride through every chunk).
        let mut freed: Vec<u32> = (0..n)
            .map(|i| (i * 7919) % n)
            .filter(|slot| slot % 3 != 0)
            .collect();
        freed.sort_unstable();
        freed.dedup();
        let mut order: Vec<u32> = freed.clone();
        order.sort_by_key(|slot| (slot * 7919) % n);
        for &slot in &order {
            s.free(slot);
        }
        assert_eq!(s.free_count(), freed.len() as u32);
        for &expected in &freed {
            assert_eq!(s.alloc(State::Timer), Some(expected));
        }
        assert_eq!(s.free_count(), 0);
        // Then new slots from the high-water mark.
        assert_eq!(s.alloc(State::Timer), Some(n));
    }

    #[test]
    fn a_slot_freed_while_others_are_free_is_taken_in_its_turn() {
        let mut s = Slots::new();
        for _ in 0..200 {
            s.alloc(State::Timer).unwrap();
        }
        s.free(150);
        s.free(70);
        assert_eq!(s.alloc(State::Timer), Some(70));
        s.free(3);
        s.free(199);
        assert_eq!(s.alloc(State::Timer), Some(3));
        assert_eq!(s.alloc(State::Timer), Some(150));
        assert_eq!(s.alloc(State::Timer), Some(199));
        assert_eq!(s.alloc(State::Timer), Some(200));
    }

    #[test]
    fn a_slot_whose_generations_run_out_is_retired_not_reused() {
        let mut s = Slots::new();
        let a = s.alloc(State::Timer).unwrap();
        *s.meta_mut(a) = ((GENERATION_LIMIT - 1) << STATE_BITS) | State::Timer as u32;
        s.free(a);
        let b = s.alloc(State::Timer).unwrap();
        assert_ne!(a, b, "a retired slot must never be handed out again");
        assert_eq!(s.retired(), 1);
        assert_eq!(s.free_count(), 0);
        assert_eq!(s.generation(a), GENERATION_LIMIT - 1);
    }
}
