//! wasmloop's loop core: the scheduler and timer queue, compiled to one
//! WebAssembly component. This file holds the component bindings only; the
//! logic is in the modules, and `cargo test` runs it natively.

pub mod event_loop;
#[cfg(not(target_arch = "wasm32"))]
pub mod fake_host;
#[cfg(not(target_arch = "wasm32"))]
pub mod fuzzing;
pub mod handles;
pub mod time;

#[cfg(target_arch = "wasm32")]
mod alloc;
#[cfg(target_arch = "wasm32")]
mod component;
