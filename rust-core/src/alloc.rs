//! The component's allocator: dlmalloc over linear memory that grows in
//! geometric steps.
//!
//! std's allocator for wasm32 grows memory by exactly what each request
//! needs, 64 KiB at a time. On V8 every `memory.grow` hands JavaScript a new
//! ArrayBuffer that is accounted as newly allocated external memory, and past
//! a few tens of MiB that accounting triggers a full garbage collection on
//! nearly every grow: 1M pending timers meant hundreds of full GCs. Growing
//! by an eighth of the current size keeps the number of grows logarithmic,
//! at the price of at most 12.5% unused memory.

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

struct SingleThreaded(UnsafeCell<Dlmalloc<GeometricPages>>);

// SAFETY: wasm32-unknown-unknown without the atomics feature has one thread.
unsafe impl Sync for SingleThreaded {}

// SAFETY: forwards to dlmalloc, which upholds GlobalAlloc's contract; there
// is never a concurrent call (one thread).
unsafe impl GlobalAlloc for SingleThreaded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        (*self.0.get()).malloc(layout.size(), layout.align())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        (*self.0.get()).calloc(layout.size(), layout.align())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        (*self.0.get()).free(ptr, layout.size(), layout.align())
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        (*self.0.get()).realloc(ptr, layout.size(), layout.align(), new_size)
    }
}

#[global_allocator]
static ALLOCATOR: SingleThreaded = SingleThreaded(UnsafeCell::new(Dlmalloc::new_with_allocator(
    GeometricPages,
)));
