//! A TCP echo server on wasmloop, run by the wasmtime CLI:
//!
//! ```text
//! wasmtime run -S inherit-network build/wasi/echo-server.wasm [--host 127.0.0.1] [--port 8000] [--stop-on-stdin-eof]
//! ```
//!
//! It prints one JSON line when it listens
//! (`{"listening":"127.0.0.1:8000","core":"<sha256 of the core component>"}`)
//! and one when it stops (`{"stopped":true,"connections":…,"bytes":…}`).
//! With `--stop-on-stdin-eof` it stops when its standard input ends (the
//! test closes it), closing the listener and every connection; otherwise it
//! runs until killed.
//!
//! Each connection echoes what it reads, in the readiness model: when the
//! socket is readable it reads until nothing is left, and writes what it can;
//! what the socket does not take waits in a buffer until it is writable.
//! Past [`HIGH_WATER`] buffered bytes it stops reading until the buffer has
//! drained (backpressure), so a client that does not read cannot make it
//! buffer without bound. At the end of the client's stream it sends the rest
//! and shuts down its side.

use std::cell::{Cell, RefCell};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use wasmloop_wasi::{print_line, EventLoop, TcpListener, TcpStream};

/// Buffered bytes past which a connection stops reading.
const HIGH_WATER: usize = 1024 * 1024;
/// Reads per readable callback at most, so one busy connection cannot hold
/// up the others for long.
const READS_PER_CALLBACK: usize = 16;

struct Options {
    host: String,
    port: u16,
    stop_on_stdin_eof: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        host: "127.0.0.1".into(),
        port: 8000,
        stop_on_stdin_eof: false,
    };
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let mut value = || rest.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--host" => options.host = value()?.clone(),
            "--port" => options.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--stop-on-stdin-eof" => options.stop_on_stdin_eof = true,
            _ => {
                return Err(format!(
                    "unknown argument {arg:?} (expected --host, --port, --stop-on-stdin-eof)"
                ))
            }
        }
    }
    Ok(options)
}

/// Totals, for the last line.
#[derive(Default)]
struct Counters {
    connections: Cell<u64>,
    bytes: Cell<u64>,
}

/// One client.
struct Connection {
    stream: TcpStream,
    /// Read, not yet written: `pending[written..]`.
    pending: RefCell<Vec<u8>>,
    written: Cell<usize>,
    /// The client's end of stream was read.
    ended: Cell<bool>,
    counters: Rc<Counters>,
}

impl Connection {
    fn start(stream: TcpStream, counters: Rc<Counters>) {
        let connection = Rc::new(Connection {
            stream,
            pending: RefCell::default(),
            written: Cell::new(0),
            ended: Cell::new(false),
            counters,
        });
        connection.resume_reading();
    }

    fn resume_reading(self: &Rc<Self>) {
        let this = self.clone();
        if self.stream.on_readable(move || this.readable()).is_err() {
            self.stream.close();
        }
    }

    fn readable(self: &Rc<Self>) {
        for _ in 0..READS_PER_CALLBACK {
            match self.stream.read(usize::MAX) {
                Ok(data) if data.is_empty() => {
                    self.ended.set(true);
                    self.stream.clear_readable();
                    break;
                }
                Ok(data) => {
                    self.counters
                        .bytes
                        .set(self.counters.bytes.get() + data.len() as u64);
                    let mut pending = self.pending.borrow_mut();
                    pending.extend_from_slice(&data);
                    if pending.len() - self.written.get() >= HIGH_WATER {
                        self.stream.clear_readable();
                        break;
                    }
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return self.stream.close(),
            }
        }
        self.send();
    }

    /// Writes what is pending; waits for writability if the socket is full;
    /// once all is written, reads again, or ends the connection after the
    /// client's end of stream.
    fn send(self: &Rc<Self>) {
        loop {
            let written = {
                let pending = self.pending.borrow();
                if self.written.get() == pending.len() {
                    break;
                }
                self.stream.write(&pending[self.written.get()..])
            };
            match written {
                Ok(count) => self.written.set(self.written.get() + count),
                Err(error) if error.kind() == ErrorKind::WouldBlock => {
                    let this = self.clone();
                    if self.stream.on_writable(move || this.send()).is_err() {
                        self.stream.close();
                    }
                    return;
                }
                Err(_) => return self.stream.close(),
            }
        }
        self.pending.borrow_mut().clear();
        self.written.set(0);
        self.stream.clear_writable();
        if self.ended.get() {
            let _ = self.stream.shutdown_write();
            self.stream.close();
        } else if !self.stream.is_reading() {
            self.resume_reading();
        }
    }
}

fn serve(options: &Options) -> Result<(), String> {
    let event_loop = EventLoop::new();
    // An IP address, v4 or v6 (`::1`, no brackets): names are not resolved.
    let ip: IpAddr = options
        .host
        .parse()
        .map_err(|e| format!("--host {}: {e} (an IP address)", options.host))?;
    let address = SocketAddr::new(ip, options.port);
    let listener = event_loop
        .listen_tcp(address, 128)
        .map_err(|e| format!("listen on {address}: {e}"))?;
    let counters = Rc::new(Counters::default());
    let accepting = listener.clone();
    let accepted = counters.clone();
    listener
        .on_acceptable(move || accept_all(&accepting, &accepted))
        .map_err(|e| e.to_string())?;
    if options.stop_on_stdin_eof {
        stop_on_stdin_eof(&event_loop, listener.clone());
    }
    print_line(&format!(
        "{{\"listening\":\"{}\",\"core\":\"{}\"}}",
        listener.local_addr(),
        wasmloop_wasi::CORE_SHA256.unwrap_or("unknown")
    ));
    event_loop.run_forever().map_err(|e| e.to_string())?;
    listener.close();
    print_line(&format!(
        "{{\"stopped\":true,\"connections\":{},\"bytes\":{}}}",
        counters.connections.get(),
        counters.bytes.get()
    ));
    // Dropping the loop closes the connections still open.
    Ok(())
}

fn accept_all(listener: &TcpListener, counters: &Rc<Counters>) {
    loop {
        match listener.accept() {
            Ok(stream) => {
                counters.connections.set(counters.connections.get() + 1);
                Connection::start(stream, counters.clone());
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => return,
            // One connection's failure (reset before it was accepted).
            Err(_) => return,
        }
    }
}

/// Watches stdin: at its end, stop.
fn stop_on_stdin_eof(event_loop: &EventLoop, listener: TcpListener) {
    let stdin = wasi::cli::stdin::get_stdin();
    let pollable = stdin.subscribe();
    let stopping = event_loop.clone();
    let watch: Rc<Cell<Option<wasmloop_wasi::Handle>>> = Rc::default();
    let own = watch.clone();
    // The stream lives in the callback; the handle is cancelled (dropping
    // the pollable) before the callback and so the stream go.
    let handle = event_loop.watch(pollable, move || loop {
        match stdin.read(4096) {
            Ok(bytes) if !bytes.is_empty() => continue,
            Ok(_) => return,
            Err(_) => {
                listener.close();
                if let Some(handle) = own.take() {
                    handle.cancel();
                }
                stopping.stop();
                return;
            }
        }
    });
    watch.set(Some(handle));
}

struct EchoServer;

impl wasi::exports::cli::run::Guest for EchoServer {
    fn run() -> Result<(), ()> {
        let outcome = parse(&wasmloop_wasi::args()).and_then(|options| serve(&options));
        outcome.map_err(|error| wasmloop_wasi::eprint_line(&format!("echo-server: {error}")))
    }
}

wasi::cli::command::export!(EchoServer);
