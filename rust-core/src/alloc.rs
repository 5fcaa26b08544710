//! The component's allocator: dlmalloc over linear memory that grows in
//! geometric steps, with one cached block per small size class in front.
//!
//! std's allocator for wasm32 grows memory by exactly what each request
//! needs, 64 KiB at a time. On V8 every `memory.grow` hands JavaScript a new
//! ArrayBuffer that is accounted as newly allocated external memory, and past
//! a few tens of MiB that accounting triggers a full garbage collection on
//! nearly every grow: 1M pending timers meant hundreds of full GCs. Growing
//! by an eighth of the current size keeps the number of grows logarithmic,
//! at the price of at most 12.5% unused memory.
//!
//! ```text
//!  request (size, align <= 8)
//!    size <= 256: class = ceil(size / 16)      (16 classes, 16..256 bytes)
//!      alloc:   cache[class] full?  take it    else dlmalloc(class * 16)
//!      dealloc: cache[class] empty? keep it    else dlmalloc free
//!    larger, or align > 8: dlmalloc as asked
//! ```
//!
//! Every iteration that hands the host a batch allocates the batch's list
//! and frees it when the host has read it (the canonical ABI's
//! post-return): a malloc and a free of the same small size, over and over.
//! The cache turns that pair into two loads and two stores. Small blocks
//! always come from dlmalloc at their class's full size, so a cached block
//! fits any request of its class. At most 16 blocks (2 KiB) sit unused.

use core::arch::wasm32;
use core::cell::{Cell, UnsafeCell};
use core::ptr;
use std::alloc::{GlobalAlloc, Layout};

use dlmalloc::{Allocator, Dlmalloc};

const PAGE: usize = 64 * 1024;
/// The smallest grow, in pages (256 KiB).
const MIN_GROW_PAGES: usize = 4;
/// Each grow adds at least `current / GROW_DIVISOR` pages.
const GROW_DIVISOR: usize = 8;

/// The most pages linear memory may grow to; 0 = no cap.
struct MemoryCap(Cell<usize>);

// SAFETY: one thread.
unsafe impl Sync for MemoryCap {}

static CAP: MemoryCap = MemoryCap(Cell::new(0));

/// Caps linear memory at `bytes` (0: no cap). Allocations that would grow
/// past it fail, and the core traps.
pub fn set_memory_limit(bytes: u64) {
    let pages = (bytes / PAGE as u64).min(usize::MAX as u64) as usize;
    CAP.0.set(if bytes == 0 { 0 } else { pages.max(1) });
}

struct GeometricPages;

// SAFETY: the regions returned come from `memory.grow`, are owned by no one
// else, and are never returned to the system.
unsafe impl Allocator for GeometricPages {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        let needed = size.div_ceil(PAGE);
        let current = wasm32::memory_size(0);
        let mut step = needed.max(current / GROW_DIVISOR).max(MIN_GROW_PAGES);
        let cap = CAP.0.get();
        if cap != 0 {
            if current + needed > cap {
                return (ptr::null_mut(), 0, 0);
            }
            step = step.min(cap - current);
        }
        let (prev, pages) = match wasm32::memory_grow(0, step) {
            usize::MAX if step > needed => (wasm32::memory_grow(0, needed), needed),
            prev => (prev, step),
        };
        if prev == usize::MAX {
            return (ptr::null_mut(), 0, 0);
        }
        ((prev * PAGE) as *mut u8, pages * PAGE, 0)
    }

    fn remap(&self, _ptr: *mut u8, _oldsize: usize, _newsize: usize, _can_move: bool) -> *mut u8 {
        ptr::null_mut()
    }

    fn free_part(&self, _ptr: *mut u8, _oldsize: usize, _newsize: usize) -> bool {
        false
    }

    fn free(&self, _ptr: *mut u8, _size: usize) -> bool {
        false
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        false
    }

    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        PAGE
    }
}

/// Requests up to this size (with an alignment dlmalloc gives anyway) are
/// served by size class.
const SMALL_MAX: usize = 256;
const CLASS_BYTES: usize = 16;
const CLASSES: usize = SMALL_MAX / CLASS_BYTES;
/// dlmalloc's own alignment on wasm32; small requests asking for more go
/// to dlmalloc as they are.
const SMALL_ALIGN: usize = 8;

/// The class of a small request (1-based; a zero-size request is class 1).
#[inline]
fn class_of(size: usize, align: usize) -> Option<usize> {
    if size <= SMALL_MAX && align <= SMALL_ALIGN {
        Some(size.div_ceil(CLASS_BYTES).max(1))
    } else {
        None
    }
}

struct Heap {
    dlmalloc: Dlmalloc<GeometricPages>,
    /// The last freed block of each class (index `class - 1`), or null.
    cached: [*mut u8; CLASSES],
}

impl Heap {
    /// The cached block of `class`, no longer cached; null if there was none.
    #[inline]
    fn take_cached(&mut self, class: usize) -> *mut u8 {
        core::mem::replace(&mut self.cached[class - 1], ptr::null_mut())
    }
}

struct SingleThreaded(UnsafeCell<Heap>);

// SAFETY: wasm32-unknown-unknown without the atomics feature has one thread.
unsafe impl Sync for SingleThreaded {}

// SAFETY: forwards to dlmalloc, which upholds GlobalAlloc's contract; there
// is never a concurrent call (one thread). A cached block was allocated by
// dlmalloc at its class's size with alignment 8, so it serves any request
// of that class; it is handed out at most once, since taking it empties
// the cache entry.
unsafe impl GlobalAlloc for SingleThreaded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let heap = &mut *self.0.get();
        match class_of(layout.size(), layout.align()) {
            Some(class) => match heap.take_cached(class) {
                cached if cached.is_null() => {
                    heap.dlmalloc.malloc(class * CLASS_BYTES, SMALL_ALIGN)
                }
                cached => cached,
            },
            None => heap.dlmalloc.malloc(layout.size(), layout.align()),
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let heap = &mut *self.0.get();
        match class_of(layout.size(), layout.align()) {
            Some(class) => match heap.take_cached(class) {
                cached if cached.is_null() => {
                    heap.dlmalloc.calloc(class * CLASS_BYTES, SMALL_ALIGN)
                }
                cached => {
                    ptr::write_bytes(cached, 0, class * CLASS_BYTES);
                    cached
                }
            },
            None => heap.dlmalloc.calloc(layout.size(), layout.align()),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let heap = &mut *self.0.get();
        match class_of(layout.size(), layout.align()) {
            Some(class) => {
                let slot = &mut heap.cached[class - 1];
                if slot.is_null() {
                    *slot = ptr;
                } else {
                    heap.dlmalloc.free(ptr, class * CLASS_BYTES, SMALL_ALIGN);
                }
            }
            None => heap.dlmalloc.free(ptr, layout.size(), layout.align()),
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let heap = &mut *self.0.get();
        // The block's real size, and the size the new layout's class needs.
        let (old_size, align) = match class_of(layout.size(), layout.align()) {
            Some(class) => (class * CLASS_BYTES, SMALL_ALIGN),
            None => (layout.size(), layout.align()),
        };
        let new_size = match class_of(new_size, layout.align()) {
            Some(class) => class * CLASS_BYTES,
            None => new_size,
        };
        heap.dlmalloc.realloc(ptr, old_size, align, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: SingleThreaded = SingleThreaded(UnsafeCell::new(Heap {
    dlmalloc: Dlmalloc::new_with_allocator(GeometricPages),
    cached: [ptr::null_mut(); CLASSES],
}));
