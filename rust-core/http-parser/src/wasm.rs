//! The Wasm module's exports: the input and output areas and one function
//! per parse. No imports, no allocator: the module is a pure function of
//! the bytes the host writes into its input area.
//!
//! ```text
//! host                                   module (linear memory)
//! ----                                   ----------------------
//! copy bytes to input() ---------------> INPUT  [u8; INPUT_CAPACITY]
//! parse_request(len, max_headers) -----> parse_request_head(INPUT[..len])
//! read offsets from output() <---------- OUTPUT [u32; OUTPUT_WORDS]
//! ```
//!
//! One call per request or response head; the host decodes strings from its own copy
//! of the bytes, at the offsets the module wrote.
use core::cell::UnsafeCell;

/// The largest head (or chunk line, or trailer section) one call parses:
/// the ceiling of the server's `maxHeaderBytes`.
pub const INPUT_CAPACITY: usize = 1 << 20;

/// A static the single-threaded module hands out by address.
struct Area<T>(UnsafeCell<T>);
// SAFETY: a wasm32-unknown-unknown module runs on one thread.
unsafe impl<T> Sync for Area<T> {}

static INPUT: Area<[u8; INPUT_CAPACITY]> = Area(UnsafeCell::new([0; INPUT_CAPACITY]));
static OUTPUT: Area<[u32; crate::OUTPUT_WORDS]> = Area(UnsafeCell::new([0; crate::OUTPUT_WORDS]));

fn input(len: u32) -> &'static mut [u8] {
    // SAFETY: one thread, and no reference outlives the export that made it.
    unsafe { &mut (&mut *INPUT.0.get())[..(len as usize).min(INPUT_CAPACITY)] }
}

fn output() -> &'static mut [u32; crate::OUTPUT_WORDS] {
    // SAFETY: as for input().
    unsafe { &mut *OUTPUT.0.get() }
}

/// Address of the input area.
#[no_mangle]
pub extern "C" fn input_area() -> *mut u8 {
    INPUT.0.get() as *mut u8
}

#[no_mangle]
pub extern "C" fn input_capacity() -> u32 {
    INPUT_CAPACITY as u32
}

/// Address of the output area (`OUTPUT_WORDS` u32 words).
#[no_mangle]
pub extern "C" fn output_area() -> *mut u32 {
    OUTPUT.0.get() as *mut u32
}

#[no_mangle]
pub extern "C" fn max_headers() -> u32 {
    crate::MAX_HEADERS as u32
}

/// Parses the request head in `input[..len]`; see `parse_request_head`.
#[no_mangle]
pub extern "C" fn parse_request(len: u32, max_headers: u32) -> i32 {
    crate::parse_request_head(input(len), max_headers as usize, output())
}

/// Parses the response head in `input[..len]`; `to_head` is 1 when the
/// request was HEAD. See `parse_response_head`.
#[no_mangle]
pub extern "C" fn parse_response(len: u32, max_headers: u32, to_head: u32) -> i32 {
    crate::parse_response_head(input(len), max_headers as usize, to_head != 0, output())
}

/// Parses the chunk-size line at the start of `input[..len]`; see `parse_chunk_line`.
#[no_mangle]
pub extern "C" fn parse_chunk_size(len: u32) -> i32 {
    crate::parse_chunk_line(input(len), output())
}

/// Parses the trailer section in `input[..len]`; see `parse_trailer_section`.
#[no_mangle]
pub extern "C" fn parse_trailers(len: u32, max_headers: u32) -> i32 {
    crate::parse_trailer_section(input(len), max_headers as usize, output())
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
