//! A TCP echo client on wasmloop, run by the wasmtime CLI:
//!
//! ```text
//! wasmtime run -S inherit-network build/wasi/echo-client.wasm --port 8000 [--host 127.0.0.1] [--connections 4] [--bytes 1048576]
//! ```
//!
//! It opens `--connections` connections at once, sends `--bytes` bytes on
//! each (a pseudo-random pattern, different per connection), shuts down its
//! sending side, reads the echo to the end of the stream and compares it.
//! It prints one JSON line, `{"connections":4,"bytes":1048576,"intact":4}`,
//! and exits with an error unless every connection echoed intact.
//!
//! Sending and receiving go on together, each in the readiness model: write
//! while the socket takes bytes, read while it has some; a server that
//! echoes as it reads needs the client to read before it has sent it all.

use std::cell::{Cell, RefCell};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use wasmloop_wasi::{print_line, EventLoop, TcpStream};

struct Options {
    host: String,
    port: u16,
    connections: usize,
    bytes: usize,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        host: "127.0.0.1".into(),
        port: 8000,
        connections: 4,
        bytes: 1 << 20,
    };
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let value = rest.next().ok_or(format!("{arg} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|e| format!("{arg}: {e}"));
        match arg.as_str() {
            "--host" => options.host = value.clone(),
            "--port" => options.port = value.parse().map_err(|e| format!("--port: {e}"))?,
            "--connections" => options.connections = number()?,
            "--bytes" => options.bytes = number()?,
            _ => {
                return Err(format!(
                    "unknown argument {arg:?} (expected --host, --port, --connections, --bytes)"
                ))
            }
        }
    }
    Ok(options)
}

/// The bytes connection `index` sends: xorshift32, seeded by the index.
fn pattern(index: usize, length: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9u32 ^ (index as u32).wrapping_mul(0x85eb_ca6b) | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

/// How the run is going, shared by the connections.
struct Progress {
    event_loop: EventLoop,
    /// Connections not finished yet.
    open: Cell<usize>,
    intact: Cell<usize>,
    errors: RefCell<Vec<String>>,
}

impl Progress {
    fn finish(&self, outcome: Result<bool, String>) {
        match outcome {
            Ok(true) => self.intact.set(self.intact.get() + 1),
            Ok(false) => {}
            Err(error) => self.errors.borrow_mut().push(error),
        }
        self.open.set(self.open.get() - 1);
        if self.open.get() == 0 {
            self.event_loop.stop();
        }
    }
}

/// One connection: sends `sent`, collects the echo.
struct Connection {
    stream: TcpStream,
    sent: Vec<u8>,
    written: Cell<usize>,
    received: RefCell<Vec<u8>>,
    progress: Rc<Progress>,
}

impl Connection {
    fn start(stream: TcpStream, sent: Vec<u8>, progress: Rc<Progress>) {
        let connection = Rc::new(Connection {
            stream,
            sent,
            written: Cell::new(0),
            received: RefCell::default(),
            progress,
        });
        let writer = connection.clone();
        let reader = connection.clone();
        let watched = connection
            .stream
            .on_writable(move || writer.writable())
            .and_then(|()| connection.stream.on_readable(move || reader.readable()));
        if let Err(error) = watched {
            connection.fail(error.to_string());
        }
    }

    fn writable(&self) {
        while self.written.get() < self.sent.len() {
            match self.stream.write(&self.sent[self.written.get()..]) {
                Ok(count) => self.written.set(self.written.get() + count),
                Err(error) if error.kind() == ErrorKind::WouldBlock => return,
                Err(error) => return self.fail(format!("write: {error}")),
            }
        }
        if let Err(error) = self.stream.shutdown_write() {
            self.fail(format!("shutdown: {error}"));
        }
    }

    fn readable(&self) {
        loop {
            match self.stream.read(usize::MAX) {
                Ok(data) if data.is_empty() => {
                    let intact = *self.received.borrow() == self.sent;
                    self.stream.close();
                    return self.progress.finish(Ok(intact));
                }
                Ok(data) => self.received.borrow_mut().extend_from_slice(&data),
                Err(error) if error.kind() == ErrorKind::WouldBlock => return,
                Err(error) => return self.fail(format!("read: {error}")),
            }
        }
    }

    fn fail(&self, error: String) {
        if !self.stream.is_closed() {
            self.stream.close();
            self.progress.finish(Err(error));
        }
    }
}

fn run(options: &Options) -> Result<(), String> {
    // An IP address, v4 or v6 (`::1`, no brackets): names are not resolved.
    let ip: IpAddr = options
        .host
        .parse()
        .map_err(|e| format!("--host {}: {e} (an IP address)", options.host))?;
    let address = SocketAddr::new(ip, options.port);
    let event_loop = EventLoop::new();
    let progress = Rc::new(Progress {
        event_loop: event_loop.clone(),
        open: Cell::new(options.connections),
        intact: Cell::new(0),
        errors: RefCell::default(),
    });
    for index in 0..options.connections {
        let progress = progress.clone();
        let sent = pattern(index, options.bytes);
        event_loop.connect_tcp(address, move |connected| match connected {
            Ok(stream) => Connection::start(stream, sent, progress),
            Err(error) => progress.finish(Err(format!("connect to {address}: {error}"))),
        });
    }
    if options.connections > 0 {
        event_loop.run_forever().map_err(|e| e.to_string())?;
    }
    event_loop.close();
    print_line(&format!(
        "{{\"connections\":{},\"bytes\":{},\"intact\":{}}}",
        options.connections,
        options.bytes,
        progress.intact.get()
    ));
    let first_error = progress.errors.borrow().first().cloned();
    match first_error {
        Some(error) => Err(error),
        None if progress.intact.get() < options.connections => {
            Err("the echo differed from what was sent".into())
        }
        None => Ok(()),
    }
}

struct EchoClient;

impl wasi::exports::cli::run::Guest for EchoClient {
    fn run() -> Result<(), ()> {
        let outcome = parse(&wasmloop_wasi::args()).and_then(|options| run(&options));
        outcome.map_err(|error| wasmloop_wasi::eprint_line(&format!("echo-client: {error}")))
    }
}

wasi::cli::command::export!(EchoClient);
