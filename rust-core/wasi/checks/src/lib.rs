//! Checks of the `wasmloop-wasi` crate's own behaviour, beyond what the
//! conformance vectors (timers, order, cancellation) and the echo programs
//! (TCP) cover: run ends, watchers, virtual time, `close`, abandoned
//! connects, and resource drop order (WASI traps when a resource goes
//! before its children, so a wrong order ends the command).
//!
//! ```text
//! wasmtime run -S inherit-network build/wasi/checks.wasm            one JSON line: {"checks":[{name, pass, detail}]}
//! wasmtime run build/wasi/checks.wasm --two-loops                   panics: one loop at a time
//! ```
//!
//! test/conformance/wasmtime/wasi.check.mjs runs it and asserts each check.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;

use wasi::clocks::monotonic_clock;
use wasmloop_wasi::{print_line, EventLoop, Handle, RunError, TcpStream, TimeSource};

type Check = Result<(), String>;

fn expect<T: PartialEq + std::fmt::Debug>(what: &str, got: T, expected: T) -> Check {
    if got == expected {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, expected {expected:?}"))
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Nothing pending: the run ends instead of hanging (a cancelled timer
/// does not count).
fn would_wait_forever() -> Check {
    let event_loop = EventLoop::new();
    event_loop.call_later(10.0, || {}).cancel();
    expect(
        "run_forever",
        event_loop.run_forever(),
        Err(RunError::WouldWaitForever),
    )
}

/// `stop()` before the future finished: `Stopped`, as LoopStoppedError.
fn stopped_before_the_future() -> Check {
    let event_loop = EventLoop::new();
    let stopper = event_loop.clone();
    event_loop.call_soon(move || stopper.stop());
    let sleeper = event_loop.clone();
    let outcome = event_loop.run_until_complete(async move { sleeper.sleep(50.0).await });
    event_loop.close();
    expect("run_until_complete", outcome, Err(RunError::Stopped))
}

/// A pollable that stays ready runs its watcher in every iteration; the
/// watcher cancelled from inside its own callback runs no more, and the core
/// counts no watcher. The run ends two iterations after the cancel (in which
/// a watcher still registered would run again), however long they take on
/// a busy machine; a timer far off ends it only if the watcher stops
/// running before its third run.
fn level_triggered_watch() -> Check {
    let event_loop = EventLoop::new();
    // The iteration each run of the watcher was in.
    let runs: Rc<RefCell<Vec<u64>>> = Rc::default();
    let own: Rc<RefCell<Option<Handle>>> = Rc::default();
    let (seen, handle, looper) = (runs.clone(), own.clone(), event_loop.clone());
    let watch = event_loop.watch(monotonic_clock::subscribe_duration(0), move || {
        seen.borrow_mut().push(looper.stats().iterations);
        if seen.borrow().len() == 3 {
            handle.borrow_mut().take().map(|h| h.cancel());
            let (next, last) = (looper.clone(), looper.clone());
            looper.call_soon(move || {
                next.call_soon(move || last.stop());
            });
        }
    });
    *own.borrow_mut() = Some(watch);
    let stopper = event_loop.clone();
    let guard = event_loop.call_later(60_000.0, move || stopper.stop());
    event_loop.run_forever().map_err(|e| e.to_string())?;
    guard.cancel();
    let runs = runs.borrow().clone();
    expect("watcher runs", runs.len(), 3)?;
    expect(
        "the iterations it ran in, one after another",
        runs.windows(2).all(|w| w[1] == w[0] + 1),
        true,
    )
    .map_err(|e| format!("{e} ({runs:?})"))?;
    expect("watchers left", event_loop.stats().watchers, 0)
}

/// Virtual time: an hour's sleep ends at once, at loop time 3,600,000 ms.
fn virtual_time_jumps() -> Check {
    let event_loop = EventLoop::with_time_source(TimeSource::Virtual);
    let sleeper = event_loop.clone();
    let time = event_loop
        .run_until_complete(async move {
            sleeper.sleep(3_600_000.0).await;
            sleeper.time()
        })
        .map_err(|e| e.to_string())?;
    event_loop.close();
    expect("time after the sleep", time, 3_600_000.0)
}

/// `close()` drops pending callbacks (and what they own), and the loop
/// cannot run again.
fn close_drops_callbacks() -> Check {
    struct Guard(Rc<Cell<bool>>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let dropped = Rc::new(Cell::new(false));
    let event_loop = EventLoop::new();
    let guard = Guard(dropped.clone());
    event_loop.call_later(1000.0, move || drop(guard));
    event_loop.close();
    expect("callback dropped", dropped.get(), true)?;
    expect(
        "run after close",
        event_loop.run_forever(),
        Err(RunError::Closed),
    )
}

/// A connect abandoned by cancelling its handle never calls back.
fn connect_abandoned() -> Check {
    let event_loop = EventLoop::new();
    let listener = event_loop
        .listen_tcp(loopback(), 8)
        .map_err(|e| e.to_string())?;
    let called = Rc::new(Cell::new(false));
    let flag = called.clone();
    let connecting = event_loop.connect_tcp(listener.local_addr(), move |_| flag.set(true));
    expect("cancel", connecting.cancel(), true)?;
    let stopper = event_loop.clone();
    event_loop.call_later(30.0, move || stopper.stop());
    event_loop.run_forever().map_err(|e| e.to_string())?;
    event_loop.close();
    expect("done called", called.get(), false)
}

/// Streams, a listener and their watchers outlive the loop and are dropped
/// after it, in an order WASI would trap on if the crate did not drop
/// pollables before streams and streams before sockets.
fn drop_order() -> Check {
    let event_loop = EventLoop::new();
    let listener = event_loop
        .listen_tcp(loopback(), 8)
        .map_err(|e| e.to_string())?;
    // Both ends, once the connect and the accept have happened.
    let client: Rc<RefCell<Option<TcpStream>>> = Rc::default();
    let server_side: Rc<RefCell<Option<TcpStream>>> = Rc::default();
    let done = {
        let (client, server_side, event_loop) =
            (client.clone(), server_side.clone(), event_loop.clone());
        move || {
            if client.borrow().is_some() && server_side.borrow().is_some() {
                event_loop.stop();
            }
        }
    };
    let (accepting, accepted, on_accept) = (listener.clone(), server_side.clone(), done.clone());
    listener
        .on_acceptable(move || {
            if let Ok(stream) = accepting.accept() {
                let _ = stream.on_readable(|| {});
                *accepted.borrow_mut() = Some(stream);
                on_accept();
            }
        })
        .map_err(|e| e.to_string())?;
    let kept = client.clone();
    event_loop.connect_tcp(listener.local_addr(), move |connected| {
        if let Ok(stream) = connected {
            let _ = stream.on_readable(|| {});
            let _ = stream.on_writable(|| {});
            *kept.borrow_mut() = Some(stream);
        }
        done();
    });
    let stopper = event_loop.clone();
    event_loop.call_later(5000.0, move || stopper.stop());
    event_loop.run_forever().map_err(|e| e.to_string())?;
    let client = client
        .borrow_mut()
        .take()
        .ok_or("the connect did not call back with a stream")?;
    let server_side = server_side
        .borrow_mut()
        .take()
        .ok_or("no connection was accepted")?;
    expect(
        "client peer",
        client.peer_addr().ok(),
        Some(listener.local_addr()),
    )?;
    // The loop goes first, with every watcher registered (its callbacks
    // hold the listener and the loop: close() lets go of them); then the
    // listener and the streams.
    event_loop.close();
    drop(event_loop);
    drop(listener);
    drop(server_side);
    expect("client closed", client.is_closed(), false)?;
    drop(client);
    Ok(())
}

/// A check and the name the report gives it.
type NamedCheck = (&'static str, fn() -> Check);

const CHECKS: &[NamedCheck] = &[
    ("would-wait-forever", would_wait_forever),
    ("stopped-before-the-future", stopped_before_the_future),
    ("level-triggered-watch", level_triggered_watch),
    ("virtual-time-jumps", virtual_time_jumps),
    ("close-drops-callbacks", close_drops_callbacks),
    ("connect-abandoned", connect_abandoned),
    ("drop-order", drop_order),
];

fn json_string(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if (c as u32) < 0x20 => quoted.push_str(&format!("\\u{:04x}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted + "\""
}

struct Checks;

impl wasi::exports::cli::run::Guest for Checks {
    fn run() -> Result<(), ()> {
        if wasmloop_wasi::args().iter().any(|arg| arg == "--two-loops") {
            let _first = EventLoop::new();
            let _second = EventLoop::new();
            return Ok(());
        }
        let results: Vec<String> = CHECKS
            .iter()
            .map(|(name, check)| {
                let outcome = check();
                format!(
                    "{{\"name\":{},\"pass\":{},\"detail\":{}}}",
                    json_string(name),
                    outcome.is_ok(),
                    json_string(&outcome.err().unwrap_or_default())
                )
            })
            .collect();
        print_line(&format!("{{\"checks\":[{}]}}", results.join(",")));
        Ok(())
    }
}

wasi::cli::command::export!(Checks);
