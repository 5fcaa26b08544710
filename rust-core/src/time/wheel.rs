//! The timer queue: a hierarchical timing wheel with an exact near queue.
//!
//! ```text
//!  tick = deadline_ns >> 20            (1 tick = 2^20 ns = 1.048576 ms)
//!
//!  level 7  [ 64 buckets x 64^7 ticks ]  the last level covers every u64 deadline
//!   ...
//!  level 2  [ 64 buckets x 4096 ticks ]  ~4.3 s a bucket,  ~4.6 min a turn
//!  level 1  [ 64 buckets x   64 ticks ]  ~67 ms a bucket,  ~4.3 s a turn
//!  level 0  [ 64 buckets x    1 tick  ]  ~1 ms a bucket,   ~67 ms a turn
//!                  |
//!                  | a level-0 bucket whose tick has come is drained in
//!                  | (deadline, seq) order; the due part is emitted, the
//!                  v rest waits in the near queue
//!  near     [ sorted run + binary heap ]  exact order for ticks <= elapsed
//!
//!  staged   [ blocks, scheduling order ]  new timers, placed into the
//!                                         levels above by `next_deadline`
//!                                         and `expire`
//!
//!  bucket = blocks of 64 entries (the first from `head` on),
//!  entry  = { deadline u64, seq u32, slot u32 } (16 bytes)
//! ```
//!
//! `insert` appends to `staged`, not to a bucket: a burst of timers over
//! many deadlines is one sequential stream of writes, where writing straight
//! into the buckets is a stream per bucket (50 deadlines: 50 cache lines in
//! flight, which the CPU's prefetcher does not follow; 1M timers kept then
//! cancelled, 21-22 -> 15-16 ns per schedule through the Wasm export). A
//! timer cancelled before it is placed, in the turn that scheduled it, is
//! freed at placement (or by a compaction) and never reaches a bucket.
//!
//! A timer whose tick is after `elapsed` goes into the wheel at the level of
//! the highest six-bit group in which its tick differs from `elapsed` (as in
//! tokio's wheel): O(1), one entry appended to a bucket. When `elapsed`
//! reaches a bucket of a higher level, its timers cascade down; each timer
//! moves at most once per level. A timer whose tick is at or before
//! `elapsed` goes into the near queue, which keeps exact order.
//!
//! Buckets hold their entries in contiguous blocks rather than as a linked
//! list through the handle table: draining a bucket is a sequential scan
//! (the state checks it makes are independent loads the CPU overlaps), where
//! a list walk waits on one cache miss per timer.
//!
//! Ordering: timers fire in (deadline, sequence) order, the sequence being
//! the order in which they were scheduled, so equal deadlines fire in
//! scheduling order (libuv's `timer.c` does the same with its start id).
//! Sequences are u32 compared with wrapping arithmetic, which is exact as
//! long as two timers with the same deadline were scheduled fewer than 2^31
//! timers apart.
//!
//! Cancellation is O(1): the slot becomes a tombstone, and its entry stays
//! until the wheel reaches it or until tombstones outnumber live timers, when
//! they are all dropped (asyncio compacts its heap the same way). Timers
//! cancelled in the order they were scheduled leave their tombstones at the
//! fronts of the buckets, which are dropped by moving each bucket's start
//! (`head`) past them; only tombstones found anywhere else take a
//! sequential pass over every entry.
//!
//! Invariants (checked by `debug_assert!`): `staged` is empty whenever a
//! bucket is drained or cascaded; every bucket entry's tick is after
//! `elapsed`; every near entry's tick is at or before `elapsed`; level
//! `l` holds only ticks that share all bits above level `l` with `elapsed`.

use std::collections::VecDeque;

use super::lag::LagHistogram;
use super::{Nanos, NEVER};
use crate::handles::{Slots, State};

/// log2 of the tick length in nanoseconds.
pub const TICK_SHIFT: u32 = 20;
const LEVEL_BITS: u32 = 6;
const BUCKETS_PER_LEVEL: usize = 1 << LEVEL_BITS;
const SLOT_MASK: u64 = (1 << LEVEL_BITS) - 1;
/// Levels needed to cover every tick of a u64 nanosecond deadline (44 bits).
const LEVELS: usize = 8;
/// Entries per bucket block (1 KiB).
const BLOCK_LEN: usize = 64;
/// Compaction does not run for fewer tombstones than this: below it the
/// pass costs more than the memory it returns.
const MIN_COMPACTION: u32 = 1024;

#[inline]
fn tick_of(deadline: Nanos) -> u64 {
    deadline >> TICK_SHIFT
}

/// True if timer `a` fires before timer `b`.
#[inline]
pub fn fires_before(a_deadline: Nanos, a_seq: u32, b_deadline: Nanos, b_seq: u32) -> bool {
    a_deadline < b_deadline || (a_deadline == b_deadline && (a_seq.wrapping_sub(b_seq) as i32) < 0)
}

/// The level a tick belongs to, seen from `elapsed` (`tick > elapsed`).
#[inline]
fn level_for(elapsed: u64, tick: u64) -> usize {
    let masked = (elapsed ^ tick) | SLOT_MASK;
    let significant = 63 - masked.leading_zeros();
    (significant / LEVEL_BITS) as usize
}

#[inline]
fn bucket_for(tick: u64, level: usize) -> usize {
    ((tick >> (level as u32 * LEVEL_BITS)) & SLOT_MASK) as usize
}

/// A queued timer: its key and its slot in the handle table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub deadline: Nanos,
    pub seq: u32,
    pub slot: u32,
}

impl Entry {
    #[inline]
    fn before(&self, other: &Entry) -> bool {
        fires_before(self.deadline, self.seq, other.deadline, other.seq)
    }
}

type Block = [Entry; BLOCK_LEN];

/// Blocks each in an allocation of its own: a bucket grows by adding one
/// (no reallocation moves the entries already there), and a drained
/// bucket's blocks move to the spare list as pointers, to be reused.
#[allow(clippy::vec_box)]
type Blocks = Vec<Box<Block>>;

/// The entries of one wheel bucket, in insertion order: `len` entries from
/// position `head` of the first block on. `head` is not 0 only after the
/// bucket's front was dropped (`drop_front`), which moves no entry.
///
/// Invariants: `head < BLOCK_LEN`; `blocks.len() == (head + len) /
/// BLOCK_LEN` rounded up; an empty bucket has no blocks and `head == 0`.
#[derive(Default)]
struct Bucket {
    blocks: Blocks,
    head: usize,
    len: usize,
}

impl Bucket {
    #[inline]
    fn push(&mut self, e: Entry, spare: &mut Blocks) {
        let offset = (self.head + self.len) % BLOCK_LEN;
        if offset == 0 {
            self.blocks.push(
                spare
                    .pop()
                    .unwrap_or_else(|| Box::new([Entry::default(); BLOCK_LEN])),
            );
        }
        let last = self.blocks.len() - 1;
        self.blocks[last][offset] = e;
        self.len += 1;
    }

    #[inline]
    fn get(&self, i: usize) -> Entry {
        let at = self.head + i;
        self.blocks[at / BLOCK_LEN][at % BLOCK_LEN]
    }

    #[inline]
    fn set(&mut self, i: usize, e: Entry) {
        let at = self.head + i;
        self.blocks[at / BLOCK_LEN][at % BLOCK_LEN] = e;
    }

    /// Keeps the first `len` entries; surplus blocks go to `spare`.
    fn truncate(&mut self, len: usize, spare: &mut Blocks) {
        self.len = len;
        if len == 0 {
            self.head = 0;
            spare.append(&mut self.blocks);
            return;
        }
        let keep = (self.head + len).div_ceil(BLOCK_LEN);
        spare.extend(self.blocks.drain(keep..));
        self.check();
    }

    /// Drops the first `n` entries without moving the rest: the blocks they
    /// filled go to `spare`, and `head` skips the rest of the way.
    fn drop_front(&mut self, n: usize, spare: &mut Blocks) {
        if n == self.len {
            self.truncate(0, spare);
            return;
        }
        let at = self.head + n;
        spare.extend(self.blocks.drain(..at / BLOCK_LEN));
        self.head = at % BLOCK_LEN;
        self.len -= n;
        self.check();
    }

    /// Frees the bucket's leading tombstones and drops them from its front
    /// (nothing moves); returns how many.
    fn drop_leading_tombstones(&mut self, slots: &mut Slots, spare: &mut Blocks) -> u32 {
        let mut lead = 0;
        while lead < self.len {
            let slot = self.get(lead).slot;
            if slots.state(slot) != State::Tombstone {
                break;
            }
            slots.free(slot);
            lead += 1;
        }
        self.drop_front(lead, spare);
        lead as u32
    }

    /// Frees every tombstone in the bucket and closes the gaps, keeping the
    /// order of the rest.
    fn drop_tombstones(&mut self, slots: &mut Slots, spare: &mut Blocks) {
        let mut kept = 0;
        for i in 0..self.len {
            let e = self.get(i);
            if slots.state(e.slot) == State::Tombstone {
                slots.free(e.slot);
            } else {
                if kept != i {
                    self.set(kept, e);
                }
                kept += 1;
            }
        }
        self.truncate(kept, spare);
    }

    #[inline]
    fn check(&self) {
        debug_assert!(
            self.head < BLOCK_LEN,
            "bucket head {} past a block",
            self.head
        );
        debug_assert_eq!(
            self.blocks.len(),
            (self.head + self.len).div_ceil(BLOCK_LEN),
            "bucket of {} entries from {} holds {} blocks",
            self.len,
            self.head,
            self.blocks.len()
        );
    }
}

/// Timers whose tick has come: a sorted run (entries mostly arrive in
/// order: a drained bucket, or `call_later(0)` bursts) plus a binary heap for
/// those that arrive out of order. The minimum is the smaller of the fronts.
#[derive(Default)]
struct NearQueue {
    run: VecDeque<Entry>,
    heap: Vec<Entry>,
}

impl NearQueue {
    fn len(&self) -> usize {
        self.run.len() + self.heap.len()
    }

    fn push(&mut self, e: Entry) {
        match self.run.back() {
            Some(last) if e.before(last) => self.heap_push(e),
            _ => self.run.push_back(e),
        }
    }

    fn peek(&self) -> Option<&Entry> {
        match (self.run.front(), self.heap.first()) {
            (Some(r), Some(h)) => Some(if h.before(r) { h } else { r }),
            (r, h) => r.or(h),
        }
    }

    fn pop(&mut self) -> Option<Entry> {
        let from_heap = match (self.run.front(), self.heap.first()) {
            (Some(r), Some(h)) => h.before(r),
            (None, Some(_)) => true,
            _ => false,
        };
        if from_heap {
            self.heap_pop()
        } else {
            self.run.pop_front()
        }
    }

    fn heap_push(&mut self, e: Entry) {
        let mut i = self.heap.len();
        self.heap.push(e);
        while i > 0 {
            let parent = (i - 1) / 2;
            if !e.before(&self.heap[parent]) {
                break;
            }
            self.heap[i] = self.heap[parent];
            i = parent;
        }
        self.heap[i] = e;
    }

    fn heap_pop(&mut self) -> Option<Entry> {
        let last = self.heap.pop()?;
        if self.heap.is_empty() {
            return Some(last);
        }
        let top = self.heap[0];
        self.sift_down(0, last);
        Some(top)
    }

    fn sift_down(&mut self, mut i: usize, e: Entry) {
        let n = self.heap.len();
        loop {
            let left = 2 * i + 1;
            if left >= n {
                break;
            }
            let right = left + 1;
            let child = if right < n && self.heap[right].before(&self.heap[left]) {
                right
            } else {
                left
            };
            if !self.heap[child].before(&e) {
                break;
            }
            self.heap[i] = self.heap[child];
            i = child;
        }
        self.heap[i] = e;
    }

    /// Keeps the entries for which `keep` is true, in order.
    fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        self.run.retain(&mut keep);
        self.heap.retain(&mut keep);
        for i in (0..self.heap.len() / 2).rev() {
            let e = self.heap[i];
            self.sift_down(i, e);
        }
    }
}

/// The timer queue. A waiting timer costs one 16-byte entry here plus its
/// 4-byte slot in the handle table.
pub struct TimerWheel {
    /// The tick the wheel has advanced to.
    elapsed: u64,
    /// `LEVELS * BUCKETS_PER_LEVEL` buckets, level-major.
    buckets: Vec<Bucket>,
    /// Bit `i` of `occupied[l]`: bucket `i` of level `l` holds entries.
    occupied: [u64; LEVELS],
    /// For each bucket, the earliest deadline put in it since it was last
    /// drained: a lower bound (that timer may be cancelled) that lets the
    /// host sleep until the exact deadline rather than the bucket's start.
    earliest: Vec<Nanos>,
    near: NearQueue,
    /// Timers scheduled since the wheel last looked at its timers, in
    /// scheduling order: placed into buckets by `place_staged`, at the start
    /// of `next_deadline` and `expire` (`compact` drops their tombstones
    /// where they stand). One sequential stream of
    /// writes, where a bucket per deadline is a stream each; and a timer
    /// cancelled before it is placed (in the turn that scheduled it) never
    /// reaches a bucket.
    staged: Bucket,
    /// Emptied blocks, reused before new ones are allocated.
    spare: Blocks,
    /// Reused buffer for sorting a bucket that is out of order.
    scratch: Vec<Entry>,
    live: u32,
    tombstones: u32,
}

impl TimerWheel {
    /// An empty queue whose time starts at `now`.
    pub fn new(now: Nanos) -> TimerWheel {
        TimerWheel {
            elapsed: tick_of(now),
            buckets: (0..LEVELS * BUCKETS_PER_LEVEL)
                .map(|_| Bucket::default())
                .collect(),
            occupied: [0; LEVELS],
            earliest: vec![NEVER; LEVELS * BUCKETS_PER_LEVEL],
            near: NearQueue::default(),
            staged: Bucket::default(),
            spare: Vec::new(),
            scratch: Vec::new(),
            live: 0,
            tombstones: 0,
        }
    }

    /// Timers waiting (cancelled ones excluded).
    pub fn live(&self) -> u32 {
        self.live
    }

    /// Cancelled timers whose entries are not dropped yet.
    pub fn tombstones(&self) -> u32 {
        self.tombstones
    }

    /// Bytes the queue holds.
    pub fn bytes(&self) -> usize {
        let blocks: usize = self.buckets.iter().map(|b| b.blocks.len()).sum::<usize>()
            + self.staged.blocks.len()
            + self.spare.len();
        let pointers: usize = self
            .buckets
            .iter()
            .map(|b| b.blocks.capacity())
            .sum::<usize>()
            + self.staged.blocks.capacity()
            + self.spare.capacity();
        std::mem::size_of::<TimerWheel>()
            + blocks * std::mem::size_of::<Block>()
            + pointers * std::mem::size_of::<Box<Block>>()
            + self.buckets.capacity() * std::mem::size_of::<Bucket>()
            + self.earliest.capacity() * 8
            + (self.near.run.capacity() + self.near.heap.capacity() + self.scratch.capacity())
                * std::mem::size_of::<Entry>()
    }

    /// Adds the timer in `slot` (state `Timer`), due at `deadline` (finite),
    /// ordered among equal deadlines by `seq`.
    #[inline]
    pub fn insert(&mut self, slot: u32, deadline: Nanos, seq: u32) {
        debug_assert_ne!(
            deadline, NEVER,
            "slot {slot}: a NEVER timer must not be queued"
        );
        self.staged.push(
            Entry {
                deadline,
                seq,
                slot,
            },
            &mut self.spare,
        );
        self.live += 1;
    }

    /// Places the staged timers into the wheel, in scheduling order, and
    /// frees the cancelled ones. Each staged block goes back to the spares
    /// as soon as it is read, so the buckets it fills reuse it while it is
    /// still in the cache, and a large batch never holds its entries twice.
    fn place_staged(&mut self, slots: &mut Slots) {
        if self.staged.len == 0 {
            return;
        }
        let mut staged = std::mem::take(&mut self.staged);
        let end = staged.head + staged.len;
        let mut at = staged.head;
        for block in staged.blocks.drain(..) {
            let stop = end.min((at / BLOCK_LEN + 1) * BLOCK_LEN);
            for &e in &block[at % BLOCK_LEN..=(stop - 1) % BLOCK_LEN] {
                self.relink(slots, e);
            }
            at = stop;
            self.spare.push(block);
        }
        staged.head = 0;
        staged.len = 0;
        staged.check();
        // Keeps the block list's allocation for the next turn.
        self.staged = staged;
    }

    #[inline]
    fn link(&mut self, e: Entry) {
        let tick = tick_of(e.deadline);
        if tick <= self.elapsed {
            self.near.push(e);
            return;
        }
        let level = level_for(self.elapsed, tick);
        let index = bucket_for(tick, level);
        let b = level * BUCKETS_PER_LEVEL + index;
        self.buckets[b].push(e, &mut self.spare);
        self.occupied[level] |= 1 << index;
        if e.deadline < self.earliest[b] {
            self.earliest[b] = e.deadline;
        }
    }

    /// Records that the timer in `slot` was cancelled (the caller has made it
    /// a tombstone). Compacts when tombstones outnumber live timers.
    pub fn cancelled(&mut self, slots: &mut Slots, slot: u32) {
        debug_assert_eq!(
            slots.state(slot),
            State::Tombstone,
            "slot {slot} cancelled but not a tombstone"
        );
        self.live -= 1;
        self.tombstones += 1;
        if self.tombstones >= MIN_COMPACTION && self.tombstones > self.live {
            self.compact(slots);
        }
    }

    /// Moves every timer due at `now` into `out` (state `Running`), in
    /// (deadline, sequence) order, freeing the tombstones it meets.
    pub fn expire(
        &mut self,
        slots: &mut Slots,
        now: Nanos,
        out: &mut Vec<u32>,
        lag: &mut LagHistogram,
    ) {
        self.place_staged(slots);
        let now_tick = tick_of(now);
        loop {
            // Near entries are all earlier than anything in the buckets.
            while let Some(e) = self.near.peek() {
                if e.deadline > now {
                    break;
                }
                let (slot, deadline) = (e.slot, e.deadline);
                self.near.pop();
                if slots.state(slot) == State::Tombstone {
                    slots.free(slot);
                    self.tombstones -= 1;
                } else {
                    debug_assert_eq!(
                        slots.state(slot),
                        State::Timer,
                        "slot {slot} in the near queue"
                    );
                    slots.set_state(slot, State::Running);
                    out.push(slot);
                    lag.record(now - deadline);
                    self.live -= 1;
                }
            }
            if self.near.len() > 0 {
                // The earliest remaining timer is not due; nor is any bucket.
                return;
            }
            let Some((level, index, start)) = self.next_occupied() else {
                break;
            };
            if start > now_tick {
                break;
            }
            debug_assert!(
                start >= self.elapsed,
                "wheel went back: start {start} < elapsed {}",
                self.elapsed
            );
            let b = level * BUCKETS_PER_LEVEL + index;
            let bucket = std::mem::take(&mut self.buckets[b]);
            self.occupied[level] &= !(1 << index);
            self.earliest[b] = NEVER;
            if level == 0 {
                self.elapsed = start;
                self.drain(slots, &bucket, now, out, lag);
            } else {
                // A small bucket relinks as seen from `now`, as far as the
                // bucket reaches, rather than from its first tick: what is
                // due goes straight to the near queue instead of down one
                // level at a time, and the rest lands as low as it can. No
                // bucket of a lower level is occupied (this one is the
                // earliest), and moving within this bucket's range changes
                // no bit above its level, so every other bucket stays valid.
                // A large one relinks from its first tick: its due timers
                // spread over level-0 buckets, whose drain emits them in
                // order, instead of entering the near queue's heap one
                // out-of-order entry at a time (1M timers due at once after
                // a late wakeup cost 200 ns each that way, against 11).
                let last = start + (1u64 << (level as u32 * LEVEL_BITS)) - 1;
                debug_assert!(
                    self.occupied[..level].iter().all(|&o| o == 0),
                    "cascading level {level} with a lower level occupied"
                );
                self.elapsed = if bucket.len <= BLOCK_LEN {
                    now_tick.min(last)
                } else {
                    start
                };
                self.cascade(slots, &bucket);
            }
            self.recycle(b, bucket);
        }
        if now_tick > self.elapsed {
            self.elapsed = now_tick;
        }
    }

    /// Returns a drained bucket's blocks to the spares, and its emptied
    /// block list to bucket `b` (draining never refills the same bucket).
    fn recycle(&mut self, b: usize, mut bucket: Bucket) {
        bucket.truncate(0, &mut self.spare);
        debug_assert_eq!(self.buckets[b].len, 0, "bucket {b} refilled while draining");
        self.buckets[b] = bucket;
    }

    /// A level-0 bucket whose tick has come: emit what is due in (deadline,
    /// sequence) order; the rest waits in the near queue.
    fn drain(
        &mut self,
        slots: &mut Slots,
        bucket: &Bucket,
        now: Nanos,
        out: &mut Vec<u32>,
        lag: &mut LagHistogram,
    ) {
        debug_assert_eq!(self.staged.len, 0, "draining with timers staged");
        // Fast path, one scan: a bucket already in order and all due (direct
        // inserts arrive in sequence order) is emitted as it is scanned.
        let mark = out.len();
        let mut last = Entry::default();
        let mut i = 0;
        while i < bucket.len {
            let e = bucket.get(i);
            if slots.state(e.slot) == State::Tombstone {
                slots.free(e.slot);
                self.tombstones -= 1;
            } else {
                if e.deadline > now || (out.len() > mark && e.before(&last)) {
                    break;
                }
                last = e;
                slots.set_state(e.slot, State::Running);
                out.push(e.slot);
                self.live -= 1;
            }
            i += 1;
        }
        if i == bucket.len {
            for j in 0..bucket.len {
                let e = bucket.get(j);
                if slots.state(e.slot) == State::Running {
                    lag.record(now - e.deadline);
                }
            }
            return;
        }
        // Out of order or not all due: undo the emitted part and sort.
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        for slot in out.drain(mark..) {
            slots.set_state(slot, State::Timer);
            self.live += 1;
        }
        for j in 0..bucket.len {
            let e = bucket.get(j);
            match slots.state(e.slot) {
                // Freed by the fast path above.
                State::Free => {}
                State::Tombstone => {
                    slots.free(e.slot);
                    self.tombstones -= 1;
                }
                _ => scratch.push(e),
            }
        }
        scratch.sort_unstable_by(|a, b| {
            if a.before(b) {
                std::cmp::Ordering::Less
            } else if b.before(a) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
        for e in &scratch {
            if e.deadline <= now {
                slots.set_state(e.slot, State::Running);
                out.push(e.slot);
                lag.record(now - e.deadline);
                self.live -= 1;
            } else {
                self.near.push(*e);
            }
        }
        self.scratch = scratch;
    }

    /// A higher-level bucket whose time has come: relink its timers,
    /// relative to the new `elapsed`, into lower levels (or the near queue).
    fn cascade(&mut self, slots: &mut Slots, bucket: &Bucket) {
        debug_assert_eq!(self.staged.len, 0, "cascading with timers staged");
        for i in 0..bucket.len {
            self.relink(slots, bucket.get(i));
        }
    }

    /// Links a queued timer again from where the wheel stands now, or frees
    /// it if it was cancelled (placing staged timers, cascading a bucket).
    #[inline]
    fn relink(&mut self, slots: &mut Slots, e: Entry) {
        if slots.state(e.slot) == State::Tombstone {
            slots.free(e.slot);
            self.tombstones -= 1;
        } else {
            self.link(e);
        }
    }

    /// Runs `f` on every occupied bucket (with the spare blocks); a bucket it
    /// leaves empty is marked unoccupied and its earliest deadline reset.
    fn each_occupied(&mut self, mut f: impl FnMut(&mut Bucket, &mut Blocks)) {
        for level in 0..LEVELS {
            let mut occupied = self.occupied[level];
            while occupied != 0 {
                let index = occupied.trailing_zeros() as usize;
                occupied &= occupied - 1;
                let b = level * BUCKETS_PER_LEVEL + index;
                f(&mut self.buckets[b], &mut self.spare);
                if self.buckets[b].len == 0 {
                    self.occupied[level] &= !(1 << index);
                    self.earliest[b] = NEVER;
                }
            }
        }
    }

    /// The earliest occupied bucket: `(level, index, first tick)`. The lowest
    /// occupied level always holds it, since a higher level only holds ticks
    /// past the end of the current turn of the levels below.
    fn next_occupied(&self) -> Option<(usize, usize, u64)> {
        for (level, &occupied) in self.occupied.iter().enumerate() {
            if occupied == 0 {
                continue;
            }
            let shift = level as u32 * LEVEL_BITS;
            let now_index = ((self.elapsed >> shift) & SLOT_MASK) as u32;
            let index = (occupied.rotate_right(now_index).trailing_zeros() + now_index) as usize
                % BUCKETS_PER_LEVEL;
            debug_assert!(
                index as u32 > now_index || (level > 0 && index as u32 == now_index),
                "level {level}: occupied bucket {index} is behind elapsed bucket {now_index} (elapsed {}, occupied {:#x})",
                self.elapsed,
                occupied
            );
            let bucket_ticks = 1u64 << shift;
            let level_ticks = bucket_ticks << LEVEL_BITS;
            let level_start = self.elapsed & !(level_ticks - 1);
            return Some((level, index, level_start + index as u64 * bucket_ticks));
        }
        None
    }

    /// The earliest deadline the host should wake for, or `None` when no live
    /// timer waits. Exact unless the earliest timer was cancelled, in which
    /// case it is early (one spare wakeup); never late.
    pub fn next_deadline(&mut self, slots: &mut Slots) -> Option<Nanos> {
        if self.live == 0 {
            return None;
        }
        self.place_staged(slots);
        // Drop cancelled timers from the front so they do not cause wakeups.
        while let Some(e) = self.near.peek() {
            if slots.state(e.slot) != State::Tombstone {
                return Some(e.deadline);
            }
            let slot = e.slot;
            self.near.pop();
            slots.free(slot);
            self.tombstones -= 1;
        }
        let (level, index, _) = self.next_occupied()?;
        Some(self.earliest[level * BUCKETS_PER_LEVEL + index])
    }

    /// Drops every tombstone. Timers cancelled in the order they were
    /// scheduled (timeouts of requests that finish in order) leave their
    /// tombstones at the front of each bucket: a first pass frees those and
    /// drops the buckets' fronts, touching only the tombstones and moving no
    /// entry. Tombstones left anywhere else take a second, sequential pass
    /// over every queued entry.
    pub fn compact(&mut self, slots: &mut Slots) {
        let mut freed = self.staged.drop_leading_tombstones(slots, &mut self.spare);
        self.each_occupied(|bucket, spare| freed += bucket.drop_leading_tombstones(slots, spare));
        self.tombstones -= freed;
        if self.tombstones == 0 {
            return;
        }
        self.staged.drop_tombstones(slots, &mut self.spare);
        self.each_occupied(|bucket, spare| bucket.drop_tombstones(slots, spare));
        self.near.retain(|e| {
            if slots.state(e.slot) == State::Tombstone {
                slots.free(e.slot);
                false
            } else {
                true
            }
        });
        self.tombstones = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    struct Fixture {
        slots: Slots,
        wheel: TimerWheel,
        seq: u32,
    }

    impl Fixture {
        fn new(now: Nanos) -> Fixture {
            Fixture {
                slots: Slots::new(),
                wheel: TimerWheel::new(now),
                seq: 0,
            }
        }
        fn add(&mut self, deadline: Nanos) -> u32 {
            let slot = self.slots.alloc(State::Timer).unwrap();
            self.wheel.insert(slot, deadline, self.seq);
            self.seq = self.seq.wrapping_add(1);
            slot
        }
        fn cancel(&mut self, slot: u32) {
            self.slots.set_state(slot, State::Tombstone);
            self.wheel.cancelled(&mut self.slots, slot);
        }
        /// Places the staged timers into the wheel's buckets.
        fn place(&mut self) {
            self.wheel.place_staged(&mut self.slots);
            assert_eq!(self.wheel.staged.len, 0);
        }
        fn occupied_buckets(&self) -> u32 {
            self.wheel.occupied.iter().map(|o| o.count_ones()).sum()
        }
        fn expire(&mut self, now: Nanos) -> Vec<u32> {
            let mut out = Vec::new();
            self.wheel
                .expire(&mut self.slots, now, &mut out, &mut LagHistogram::default());
            for &s in &out {
                self.slots.free(s);
            }
            out
        }
    }

    #[test]
    fn level_is_the_highest_differing_six_bit_group() {
        assert_eq!(level_for(0, 1), 0);
        assert_eq!(level_for(0, 63), 0);
        assert_eq!(level_for(0, 64), 1);
        assert_eq!(level_for(60, 70), 1);
        assert_eq!(level_for(0, 1 << 43), 7);
    }

    #[test]
    fn timers_fire_in_deadline_order_not_insertion_order() {
        let mut f = Fixture::new(0);
        let c = f.add(30 * MS);
        let a = f.add(10 * MS);
        let b = f.add(20 * MS);
        assert_eq!(f.expire(5 * MS), vec![]);
        assert_eq!(f.expire(25 * MS), vec![a, b]);
        assert_eq!(f.expire(100 * MS), vec![c]);
    }

    #[test]
    fn equal_deadlines_fire_in_scheduling_order_across_levels() {
        // The first timer is linked at a high level, the second (scheduled
        // later, when elapsed is closer) at level 0: order must still follow
        // scheduling order.
        let mut f = Fixture::new(0);
        let deadline = 5000 * MS;
        let first = f.add(deadline);
        assert_eq!(f.expire(4990 * MS), vec![]);
        let second = f.add(deadline);
        let third = f.add(deadline - 1);
        assert_eq!(f.expire(deadline), vec![third, first, second]);
    }

    #[test]
    fn a_timer_never_fires_early_within_its_tick() {
        let mut f = Fixture::new(0);
        let t = f.add(10 * MS + 500);
        assert_eq!(f.expire(10 * MS + 499), vec![]);
        assert_eq!(f.wheel.next_deadline(&mut f.slots), Some(10 * MS + 500));
        assert_eq!(f.expire(10 * MS + 500), vec![t]);
    }

    #[test]
    fn cancelled_timers_are_skipped_and_freed() {
        let mut f = Fixture::new(0);
        let a = f.add(MS);
        let b = f.add(MS);
        f.cancel(a);
        assert_eq!(f.wheel.live(), 1);
        assert_eq!(f.expire(2 * MS), vec![b]);
        assert_eq!(f.wheel.tombstones(), 0);
        assert_eq!(
            f.slots.free_count(),
            2,
            "the tombstone, and b once the fixture released it"
        );
    }

    #[test]
    fn tombstones_are_compacted_when_they_outnumber_live_timers() {
        let mut f = Fixture::new(0);
        let n = 4 * MIN_COMPACTION as u64;
        let ids: Vec<u32> = (0..n).map(|i| f.add((1 + i % 5000) * MS)).collect();
        for &id in &ids[..(n as usize / 2)] {
            f.cancel(id);
        }
        assert_eq!(f.wheel.tombstones(), n as u32 / 2);
        f.cancel(ids[n as usize / 2]);
        assert_eq!(f.wheel.tombstones(), 0, "compaction ran");
        assert_eq!(f.slots.free_count(), n as u32 / 2 + 1);
        let fired = f.expire(u64::MAX - 1);
        assert_eq!(fired.len(), n as usize / 2 - 1);
        assert!(fired
            .iter()
            .all(|s| ids[(n as usize / 2 + 1)..].contains(s)));
    }

    /// Schedules `n` timers over 50 level-0 buckets (several blocks each),
    /// placed into the buckets or left staged, cancels those `cancel` picks
    /// (by index, in index order), and returns the live ones in the order
    /// they must fire.
    fn cancel_some(
        f: &mut Fixture,
        n: u64,
        placed: bool,
        cancel: impl Fn(usize) -> bool,
    ) -> Vec<u32> {
        let timers: Vec<(Nanos, u32)> = (0..n)
            .map(|i| {
                let deadline = (1 + i % 50) * MS;
                (deadline, f.add(deadline))
            })
            .collect();
        if placed {
            f.place();
        }
        for (i, &(_, slot)) in timers.iter().enumerate() {
            if cancel(i) {
                f.cancel(slot);
            }
        }
        let mut live: Vec<(Nanos, u32)> = timers
            .iter()
            .enumerate()
            .filter(|&(i, _)| !cancel(i))
            .map(|(_, &t)| t)
            .collect();
        // Equal deadlines fire in scheduling order, which is slot order here.
        live.sort();
        live.into_iter().map(|(_, slot)| slot).collect()
    }

    #[test]
    fn timers_cancelled_in_scheduling_order_are_dropped_from_the_buckets_fronts() {
        for placed in [true, false] {
            cancelled_in_scheduling_order(placed);
        }
    }

    fn cancelled_in_scheduling_order(placed: bool) {
        let mut f = Fixture::new(0);
        let n = 20 * MIN_COMPACTION as u64;
        // The first half and one more: the compaction runs at that cancel.
        let expected = cancel_some(&mut f, n, placed, |i| i <= n as usize / 2);
        assert_eq!(f.wheel.tombstones(), 0, "compaction ran");
        assert_eq!(f.slots.free_count(), n as u32 / 2 + 1);
        // Buckets now start part-way into a block; more timers append behind.
        let later: Vec<u32> = (0..100).map(|_| f.add(60 * MS)).collect();
        assert_eq!(f.expire(50 * MS), expected);
        assert_eq!(f.expire(60 * MS), later);
        assert_eq!(f.wheel.live(), 0);
    }

    #[test]
    fn tombstones_behind_the_buckets_fronts_take_the_full_pass() {
        for placed in [true, false] {
            tombstones_behind_the_fronts(placed);
        }
    }

    fn tombstones_behind_the_fronts(placed: bool) {
        let mut f = Fixture::new(0);
        let n = 20 * MIN_COMPACTION as u64;
        // The first quarter in order (and a round more), then every other
        // round of 50 (one timer per bucket a round): compaction drops the
        // fronts, then compacts what is left of each bucket.
        let quarter = n as usize / 4;
        let expected = cancel_some(&mut f, n, placed, |i| {
            i < quarter + 50 || ((i / 50) % 2 == 0 && i < 3 * quarter)
        });
        assert!(
            f.wheel.tombstones() < f.wheel.live(),
            "a compaction ran: {} tombstones, {} live",
            f.wheel.tombstones(),
            f.wheel.live()
        );
        let later: Vec<u32> = (0..100).map(|_| f.add(60 * MS)).collect();
        assert_eq!(f.expire(50 * MS), expected);
        assert_eq!(f.expire(60 * MS), later);
        assert_eq!(f.wheel.tombstones(), 0);
        assert_eq!(f.wheel.live(), 0);
    }

    #[test]
    fn timers_cancelled_before_they_are_placed_never_reach_a_bucket() {
        let mut f = Fixture::new(0);
        let slots: Vec<u32> = (0..300).map(|i| f.add((1 + i % 50) * MS)).collect();
        let kept = f.add(70 * MS);
        for &slot in &slots {
            f.cancel(slot);
        }
        assert_eq!(f.occupied_buckets(), 0, "nothing placed yet");
        assert_eq!(
            f.wheel.tombstones(),
            300,
            "fewer than MIN_COMPACTION: no compaction"
        );
        // The turn ends: placing frees the tombstones instead of queueing them.
        assert_eq!(f.wheel.next_deadline(&mut f.slots), Some(70 * MS));
        assert_eq!(f.wheel.tombstones(), 0);
        assert_eq!(f.occupied_buckets(), 1, "only the kept timer's bucket");
        assert_eq!(f.slots.free_count(), 300);
        assert_eq!(f.expire(70 * MS), vec![kept]);
    }

    #[test]
    fn next_deadline_skips_a_staged_timer_cancelled_in_its_turn() {
        // Placed, the earliest timer's cancel would leave its bucket's
        // earliest deadline behind: one early wakeup. Staged, it is dropped.
        let mut f = Fixture::new(0);
        let a = f.add(5 * MS);
        f.add(10 * MS);
        f.cancel(a);
        assert_eq!(f.wheel.next_deadline(&mut f.slots), Some(10 * MS));
    }

    #[test]
    fn placing_reuses_the_staged_blocks() {
        // 10 blocks' worth into one bucket: the staged blocks go back to the
        // spares one by one as they are read, so the bucket takes them over
        // and no block is allocated twice over.
        let mut f = Fixture::new(0);
        for _ in 0..10 * BLOCK_LEN {
            f.add(3 * MS);
        }
        assert_eq!(f.wheel.staged.blocks.len(), 10);
        f.place();
        let in_bucket: usize = f.wheel.buckets.iter().map(|b| b.blocks.len()).sum();
        assert_eq!(in_bucket, 10);
        assert!(
            f.wheel.spare.len() <= 1,
            "{} spare blocks",
            f.wheel.spare.len()
        );
        assert_eq!(f.expire(3 * MS).len(), 10 * BLOCK_LEN);
    }

    #[test]
    fn next_deadline_is_exact_at_every_level() {
        let mut f = Fixture::new(0);
        assert_eq!(f.wheel.next_deadline(&mut f.slots), None);
        f.add(40 * MS + 7);
        assert_eq!(f.wheel.next_deadline(&mut f.slots), Some(40 * MS + 7));
        let mut g = Fixture::new(0);
        g.add(100_000 * MS + 3);
        g.add(100_001 * MS);
        assert_eq!(g.wheel.next_deadline(&mut g.slots), Some(100_000 * MS + 3));
    }

    #[test]
    fn deadlines_near_the_end_of_time_fire() {
        let mut f = Fixture::new(0);
        let t = f.add(crate::time::LATEST);
        assert_eq!(f.expire(crate::time::LATEST - 1), vec![]);
        assert_eq!(f.expire(crate::time::LATEST), vec![t]);
    }

    #[test]
    fn sequence_numbers_compare_across_wraparound() {
        assert!(fires_before(5, u32::MAX, 5, 0));
        assert!(!fires_before(5, 0, 5, u32::MAX));
        assert!(fires_before(4, 0, 5, u32::MAX));
    }

    /// Against a sorted reference: many timers, random deadlines, random
    /// cancellations, time moving in random steps.
    #[test]
    fn matches_a_sorted_reference_under_random_load() {
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..20 {
            let mut now = next() % (1 << 40);
            let mut f = Fixture::new(now);
            let mut reference: Vec<(u64, u32, u32)> = Vec::new();
            let mut fired = Vec::new();
            let mut expected = Vec::new();
            for _ in 0..3000 {
                match next() % 10 {
                    0..=5 => {
                        let scale = [10u64, 1 << 20, 1 << 26, 1 << 34][(next() % 4) as usize];
                        let deadline = now + next() % scale;
                        let seq = f.seq;
                        let slot = f.add(deadline);
                        reference.push((deadline, seq, slot));
                    }
                    6 => {
                        if !reference.is_empty() {
                            let i = (next() as usize) % reference.len();
                            let (_, _, slot) = reference.swap_remove(i);
                            f.cancel(slot);
                        }
                    }
                    _ => {
                        now += next() % [100u64, 1 << 21, 1 << 30][(next() % 3) as usize];
                        fired.extend(f.expire(now));
                        reference.sort_by_key(|a| (a.0, a.1));
                        let due = reference.iter().take_while(|e| e.0 <= now).count();
                        expected.extend(reference.drain(..due).map(|e| e.2));
                        assert_eq!(fired, expected, "round {round} at now {now}");
                        if let Some(wake) = f.wheel.next_deadline(&mut f.slots) {
                            assert!(
                                wake <= reference[0].0,
                                "wake {wake} after earliest {}",
                                reference[0].0
                            );
                        } else {
                            assert!(reference.is_empty());
                        }
                    }
                }
            }
        }
    }
}
