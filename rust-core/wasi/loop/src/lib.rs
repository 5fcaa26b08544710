//! wasmloop on WASI 0.2: the loop's API for a program run by `wasmtime run`.
//!
//! A loop program is a WASI 0.2 command written in Rust with this crate and
//! composed (rust-core/wasi/compose.wac) with two other components:
//!
//! ```text
//!   wasmtime run -S inherit-network program.wasm
//!   ┌──────────────────────────────────────────────────────────────────────┐
//!   │ imports component ──clock, readiness──▶ core component ──event-loop─┐ │
//!   │   (wasmloop-wasi-imports)                (build/core.component.wasm)│ │
//!   │      ▲ clock-control, ready-queue                                   ▼ │
//!   │      └─────────────────────────────── program (your crate + this one)│
//!   │                                          callbacks, driver, sockets  │
//!   └──────────────────────────────────────────────────────────────────────┘
//!          WASI 0.2 from wasmtime: clocks, io/poll, sockets, cli
//! ```
//!
//! This crate is the host half that the TypeScript host (ts-host/src) is on
//! JavaScript runtimes, re-implemented for WASI:
//!
//! - the callback table (loop.ts): callbacks live here, in a table indexed
//!   by the slot the core hands out, and `call_soon`'s in a queue in the
//!   order the core numbered them; the core keeps only their order;
//! - the driver (loop.ts `#iterateSlice`): `run-once`, run the batch, ask
//!   `poll-timeout`, wait;
//! - a readiness backend (backends/selector.ts): sources are WASI pollables,
//!   waited on together with the next deadline in one `wasi:io/poll.poll`;
//!   the tokens of those that are ready go to the core through the imports
//!   component's `ready-queue`;
//! - TCP sockets on `wasi:sockets` (the selector's `SocketOps`): listen,
//!   accept, connect, non-blocking read and write, half-close;
//! - `run_until_complete` for one future, with `sleep`.
//!
//! It does not re-implement the rest of the TypeScript host: promise-based
//! streams, framed reads, web streams, asyncio protocols and transports, UDP,
//! Unix sockets, the completion model, the virtual network, signals, record
//! and replay, and statistics beyond the core's counters. Programs use the
//! readiness model directly, as asyncio's `add_reader` does: the loop says a
//! socket is readable or writable, the program reads or writes.
//!
//! One loop at a time: the imports component has one clock and one ready
//! queue for the whole composed instance.

mod bindings {
    wit_bindgen::generate!({
        path: ["../../../wit", "../wit"],
        // Bindings for the core's interfaces too, though they live in its package (../../../wit).
        generate_all,
        world: "wasmloop:wasi-host/program",
    });
}

mod event_loop;
mod future;
mod sources;
mod tcp;

pub use event_loop::{EventLoop, Handle, RunError, Stats, TimeSource};
pub use future::Sleep;
pub use tcp::{TcpListener, TcpStream};

/// The sha256 (hex) of the core component this program is composed with,
/// when its build said (`WASMLOOP_CORE_SHA256` in the environment of the
/// cargo build; `make` sets it from the very file it composes in). A
/// component cannot read its own bytes, so this is what the build knew; the
/// tests check that the composed file nests a component with this hash.
pub const CORE_SHA256: Option<&str> = option_env!("WASMLOOP_CORE_SHA256");

/// Writes `line` and a newline to the command's stdout (`wasi:cli/stdout`;
/// `println!` prints nothing on wasm32-unknown-unknown).
pub fn print_line(line: &str) {
    use std::io::Write;
    let mut stdout = wasi::cli::stdout::get_stdout();
    let _ = stdout
        .write_all(line.as_bytes())
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| Write::flush(&mut stdout));
}

/// Writes `line` and a newline to the command's stderr.
pub fn eprint_line(line: &str) {
    use std::io::Write;
    let mut stderr = wasi::cli::stderr::get_stderr();
    let _ = stderr
        .write_all(line.as_bytes())
        .and_then(|()| stderr.write_all(b"\n"))
        .and_then(|()| Write::flush(&mut stderr));
}

/// The command's arguments (`wasi:cli/environment`), the program's name first.
pub fn args() -> Vec<String> {
    wasi::cli::environment::get_arguments()
}
