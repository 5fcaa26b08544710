//! TCP on `wasi:sockets`, in the readiness model.
//!
//! What the selector's `SocketOps` are to the TypeScript host (non-blocking
//! listen, accept, connect, read, write, half-close), over WASI 0.2 sockets:
//! the loop says a listener can accept, or a stream can be read or written
//! (a watcher on the socket's or stream's pollable, sources.rs), and the
//! program does it, with calls that never block:
//!
//! ```text
//!   TcpListener   tcp-socket (listening)          on_acceptable ─ socket.subscribe()
//!   TcpStream     tcp-socket ─┬─ input-stream     on_readable   ─ input.subscribe()
//!                             └─ output-stream    on_writable   ─ output.subscribe()
//!   connect_tcp   tcp-socket (connecting)         one watcher on socket.subscribe(),
//!                                                 finish-connect when it is ready
//! ```
//!
//! WASI traps when a resource goes before its children (pollables before
//! their streams and sockets, streams before their socket), so each type
//! cancels its watchers first and keeps its resources in child-first order.
//!
//! Units: sizes in bytes. Reads take at most [`READ_MAX`] at a time.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::rc::{Rc, Weak};

use wasi::io::streams::{InputStream, OutputStream, StreamError};
use wasi::sockets::instance_network::instance_network;
use wasi::sockets::network::{
    ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
};
use wasi::sockets::tcp::{ShutdownType, TcpSocket};
use wasi::sockets::tcp_create_socket::create_tcp_socket;

use crate::event_loop::{EventLoop, Handle, Shared};

/// The most bytes one `read` returns (the TypeScript host reads 64 KiB too).
pub const READ_MAX: usize = 64 * 1024;

impl EventLoop {
    /// A listening socket on `address` (port 0: one the system picks; see
    /// [`TcpListener::local_addr`]). Under `wasmtime run` the network must be
    /// granted (`-S inherit-network`), or this fails with `PermissionDenied`.
    pub fn listen_tcp(&self, address: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
        let socket = create_tcp_socket(family(&address)).map_err(socket_error)?;
        let network = instance_network();
        socket
            .start_bind(&network, to_wasi(address))
            .map_err(socket_error)?;
        finish(&socket, TcpSocket::finish_bind)?;
        socket
            .set_listen_backlog_size(u64::from(backlog.max(1)))
            .map_err(socket_error)?;
        socket.start_listen().map_err(socket_error)?;
        finish(&socket, TcpSocket::finish_listen)?;
        let local = from_wasi(socket.local_address().map_err(socket_error)?);
        Ok(TcpListener(Rc::new(ListenerInner {
            event_loop: self.downgrade(),
            watch: RefCell::new(None),
            socket: RefCell::new(Some(socket)),
            local,
        })))
    }

    /// Connects to `address`; `done` runs from a loop callback with the
    /// stream or the error. Cancelling the returned handle abandons the
    /// attempt (`done` never runs, the socket is closed).
    pub fn connect_tcp(
        &self,
        address: SocketAddr,
        done: impl FnOnce(io::Result<TcpStream>) + 'static,
    ) -> Handle {
        let started = create_tcp_socket(family(&address))
            .and_then(|socket| {
                socket.start_connect(&instance_network(), to_wasi(address))?;
                Ok(socket)
            })
            .map_err(socket_error);
        let socket = match started {
            Ok(socket) => socket,
            Err(error) => return self.call_soon(move || done(Err(error))),
        };
        let pollable = socket.subscribe();
        let pending = RefCell::new(Some((socket, done)));
        let own_handle: Rc<Cell<Option<Handle>>> = Rc::default();
        let watcher_handle = own_handle.clone();
        let event_loop = self.downgrade();
        let handle = self.watch(pollable, move || {
            let outcome = match pending.borrow().as_ref() {
                Some((socket, _)) => socket.finish_connect(),
                None => return,
            };
            if matches!(outcome, Err(ErrorCode::WouldBlock)) {
                return;
            }
            // Connected or failed: stop watching (this drops the pollable,
            // which must go before its socket), then hand the result over.
            if let Some(handle) = watcher_handle.take() {
                handle.cancel();
            }
            let Some((socket, done)) = pending.borrow_mut().take() else {
                return;
            };
            done(match outcome {
                Ok((input, output)) => {
                    Ok(TcpStream::new(event_loop.clone(), socket, input, output))
                }
                Err(code) => Err(socket_error(code)),
            });
        });
        own_handle.set(Some(handle.clone()));
        handle
    }
}

/// A listening TCP socket. Clones share it; it closes when the last one
/// goes, or on `close()`.
#[derive(Clone)]
pub struct TcpListener(Rc<ListenerInner>);

struct ListenerInner {
    event_loop: Weak<Shared>,
    /// The acceptable-watcher (its pollable is the socket's child).
    watch: RefCell<Option<Handle>>,
    socket: RefCell<Option<TcpSocket>>,
    local: SocketAddr,
}

impl TcpListener {
    /// The address it listens on, with the port the system picked.
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local
    }

    /// Accepts a waiting connection; `WouldBlock` when none is waiting.
    pub fn accept(&self) -> io::Result<TcpStream> {
        let socket = self.0.socket.borrow();
        let socket = socket.as_ref().ok_or_else(closed)?;
        let (connection, input, output) = socket.accept().map_err(socket_error)?;
        Ok(TcpStream::new(
            self.0.event_loop.clone(),
            connection,
            input,
            output,
        ))
    }

    /// Runs `callback` in each iteration in which a connection is waiting to
    /// be accepted (it should `accept` until `WouldBlock`). Replaces the
    /// previous callback.
    pub fn on_acceptable(&self, callback: impl FnMut() + 'static) -> io::Result<()> {
        let pollable = self
            .0
            .socket
            .borrow()
            .as_ref()
            .ok_or_else(closed)?
            .subscribe();
        set_watch(&self.0.event_loop, &self.0.watch, pollable, callback)
    }

    /// Stops accepting and closes the socket (connections already accepted
    /// stay open). Idempotent.
    pub fn close(&self) {
        self.0.close();
    }
}

impl ListenerInner {
    fn close(&self) {
        if let Some(watch) = self.watch.take() {
            watch.cancel();
        }
        drop(self.socket.take());
    }
}

impl Drop for ListenerInner {
    fn drop(&mut self) {
        self.close();
    }
}

/// A TCP connection. Clones share it; it closes when the last one goes, or
/// on `close()`.
#[derive(Clone)]
pub struct TcpStream(Rc<StreamInner>);

struct StreamInner {
    event_loop: Weak<Shared>,
    readable: RefCell<Option<Handle>>,
    writable: RefCell<Option<Handle>>,
    // Child-first: the streams go before their socket.
    input: RefCell<Option<InputStream>>,
    output: RefCell<Option<OutputStream>>,
    socket: RefCell<Option<TcpSocket>>,
    /// `shutdown_write` was called.
    write_shut: Cell<bool>,
}

impl TcpStream {
    fn new(
        event_loop: Weak<Shared>,
        socket: TcpSocket,
        input: InputStream,
        output: OutputStream,
    ) -> TcpStream {
        TcpStream(Rc::new(StreamInner {
            event_loop,
            readable: RefCell::new(None),
            writable: RefCell::new(None),
            input: RefCell::new(Some(input)),
            output: RefCell::new(Some(output)),
            socket: RefCell::new(Some(socket)),
            write_shut: Cell::new(false),
        }))
    }

    /// Reads what has arrived, at most `max` bytes (and [`READ_MAX`]), never
    /// waiting: `WouldBlock` when nothing has, an empty vector at the end of
    /// the stream (the peer shut down its side).
    pub fn read(&self, max: usize) -> io::Result<Vec<u8>> {
        debug_assert!(max > 0, "read: max is 0");
        let input = self.0.input.borrow();
        let input = input.as_ref().ok_or_else(closed)?;
        match input.read(max.min(READ_MAX) as u64) {
            Ok(bytes) if bytes.is_empty() => Err(io::ErrorKind::WouldBlock.into()),
            Ok(bytes) => Ok(bytes),
            Err(StreamError::Closed) => Ok(Vec::new()),
            Err(StreamError::LastOperationFailed(error)) => {
                Err(io::Error::other(error.to_debug_string()))
            }
        }
    }

    /// Writes as much of `data` as the host takes now and returns how much
    /// that was; `WouldBlock` when it takes nothing (wait for writability).
    /// What it took is sent in the background, in order.
    pub fn write(&self, data: &[u8]) -> io::Result<usize> {
        if self.0.write_shut.get() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after shutdown_write",
            ));
        }
        let output = self.0.output.borrow();
        let output = output.as_ref().ok_or_else(closed)?;
        let permitted = output.check_write().map_err(write_error)?;
        if permitted == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let taken = data.len().min(permitted as usize);
        output.write(&data[..taken]).map_err(write_error)?;
        // WASI may hold written bytes until a flush is asked for (wasmtime
        // sends them at once); the output is writable again once it is done.
        output.flush().map_err(write_error)?;
        Ok(taken)
    }

    /// Shuts down the sending side: the peer reads the end of the stream
    /// once what `write` took has been sent. Reading goes on.
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.0.write_shut.set(true);
        if let Some(watch) = self.0.writable.take() {
            watch.cancel();
        }
        let socket = self.0.socket.borrow();
        let socket = socket.as_ref().ok_or_else(closed)?;
        socket.shutdown(ShutdownType::Send).map_err(socket_error)
    }

    /// Runs `callback` in each iteration in which the stream has data, its
    /// end, or an error to read. Replaces the previous callback.
    pub fn on_readable(&self, callback: impl FnMut() + 'static) -> io::Result<()> {
        let pollable = self
            .0
            .input
            .borrow()
            .as_ref()
            .ok_or_else(closed)?
            .subscribe();
        set_watch(&self.0.event_loop, &self.0.readable, pollable, callback)
    }

    /// Runs `callback` in each iteration in which `write` would take bytes.
    /// Replaces the previous callback.
    pub fn on_writable(&self, callback: impl FnMut() + 'static) -> io::Result<()> {
        let pollable = self
            .0
            .output
            .borrow()
            .as_ref()
            .ok_or_else(closed)?
            .subscribe();
        set_watch(&self.0.event_loop, &self.0.writable, pollable, callback)
    }

    /// Stops the `on_readable` callback.
    pub fn clear_readable(&self) {
        if let Some(watch) = self.0.readable.take() {
            watch.cancel();
        }
    }

    /// Stops the `on_writable` callback.
    pub fn clear_writable(&self) {
        if let Some(watch) = self.0.writable.take() {
            watch.cancel();
        }
    }

    pub fn is_reading(&self) -> bool {
        self.0.readable.borrow().is_some()
    }

    pub fn is_closed(&self) -> bool {
        self.0.socket.borrow().is_none()
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let socket = self.0.socket.borrow();
        let socket = socket.as_ref().ok_or_else(closed)?;
        socket.local_address().map(from_wasi).map_err(socket_error)
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        let socket = self.0.socket.borrow();
        let socket = socket.as_ref().ok_or_else(closed)?;
        socket.remote_address().map(from_wasi).map_err(socket_error)
    }

    /// Stops both watchers and closes the connection; what `write` took is
    /// still sent first (the host finishes it when the stream goes).
    /// Idempotent.
    pub fn close(&self) {
        self.0.close();
    }
}

impl StreamInner {
    fn close(&self) {
        for watch in [self.readable.take(), self.writable.take()]
            .into_iter()
            .flatten()
        {
            watch.cancel();
        }
        drop(self.input.take());
        drop(self.output.take());
        drop(self.socket.take());
    }
}

impl Drop for StreamInner {
    fn drop(&mut self) {
        self.close();
    }
}

/// Installs a watcher on `pollable` in `watch`, cancelling the one it held.
fn set_watch(
    event_loop: &Weak<Shared>,
    watch: &RefCell<Option<Handle>>,
    pollable: wasi::io::poll::Pollable,
    callback: impl FnMut() + 'static,
) -> io::Result<()> {
    let shared = event_loop
        .upgrade()
        .ok_or_else(|| io::Error::other("the event loop is gone"))?;
    let handle = EventLoop::from_shared(shared).watch(pollable, callback);
    if let Some(previous) = watch.replace(Some(handle)) {
        previous.cancel();
    }
    Ok(())
}

/// Finishes a two-step socket operation (bind, listen); wasmtime finishes
/// them at once, other hosts may need the socket to become ready first.
fn finish(
    socket: &TcpSocket,
    step: impl Fn(&TcpSocket) -> Result<(), ErrorCode>,
) -> io::Result<()> {
    loop {
        match step(socket) {
            Err(ErrorCode::WouldBlock) => socket.subscribe().block(),
            outcome => return outcome.map_err(socket_error),
        }
    }
}

fn family(address: &SocketAddr) -> IpAddressFamily {
    match address {
        SocketAddr::V4(_) => IpAddressFamily::Ipv4,
        SocketAddr::V6(_) => IpAddressFamily::Ipv6,
    }
}

fn to_wasi(address: SocketAddr) -> IpSocketAddress {
    match address {
        SocketAddr::V4(v4) => {
            let [a, b, c, d] = v4.ip().octets();
            IpSocketAddress::Ipv4(Ipv4SocketAddress {
                port: v4.port(),
                address: (a, b, c, d),
            })
        }
        SocketAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h] = v6.ip().segments();
            IpSocketAddress::Ipv6(Ipv6SocketAddress {
                port: v6.port(),
                flow_info: v6.flowinfo(),
                address: (a, b, c, d, e, f, g, h),
                scope_id: v6.scope_id(),
            })
        }
    }
}

fn from_wasi(address: IpSocketAddress) -> SocketAddr {
    match address {
        IpSocketAddress::Ipv4(v4) => {
            let (a, b, c, d) = v4.address;
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), v4.port))
        }
        IpSocketAddress::Ipv6(v6) => {
            let (a, b, c, d, e, f, g, h) = v6.address;
            SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::new(a, b, c, d, e, f, g, h),
                v6.port,
                v6.flow_info,
                v6.scope_id,
            ))
        }
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the socket is closed")
}

/// A `wasi:sockets` error code as an `io::Error` of the matching kind.
fn socket_error(code: ErrorCode) -> io::Error {
    use io::ErrorKind as Kind;
    let kind = match code {
        ErrorCode::WouldBlock => Kind::WouldBlock,
        ErrorCode::AccessDenied => Kind::PermissionDenied,
        ErrorCode::NotSupported => Kind::Unsupported,
        ErrorCode::InvalidArgument => Kind::InvalidInput,
        ErrorCode::OutOfMemory => Kind::OutOfMemory,
        ErrorCode::Timeout => Kind::TimedOut,
        ErrorCode::AddressInUse => Kind::AddrInUse,
        ErrorCode::AddressNotBindable => Kind::AddrNotAvailable,
        ErrorCode::ConnectionRefused => Kind::ConnectionRefused,
        ErrorCode::ConnectionReset => Kind::ConnectionReset,
        ErrorCode::ConnectionAborted => Kind::ConnectionAborted,
        ErrorCode::RemoteUnreachable => Kind::HostUnreachable,
        _ => Kind::Other,
    };
    io::Error::new(kind, format!("wasi:sockets: {}", code.name()))
}

fn write_error(error: StreamError) -> io::Error {
    match error {
        StreamError::Closed => io::Error::new(io::ErrorKind::BrokenPipe, "the stream is closed"),
        StreamError::LastOperationFailed(error) => io::Error::other(error.to_debug_string()),
    }
}
