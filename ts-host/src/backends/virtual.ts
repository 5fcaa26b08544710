/**
 * The `virtual` backend: a virtual clock and an in-memory network, for
 * deterministic tests. Because the loop's clock is a host import, virtual
 * time is a real backend here, not a mock of the timer functions.
 *
 * The clock starts at 0 and moves only when told: while a loop on this
 * backend runs, it *jumps* to the next deadline whenever no callback is
 * ready (trio's autojump clock), so an hour of sleeping takes no wall time;
 * `loop.advance(ms)`, `runUntilIdle()` and `runAll()` drive it by hand.
 *
 * The network is the readiness model, as the `selector` backend's, over
 * in-memory descriptors: sockets, listeners and pipes, level-triggered like
 * epoll. Data written reaches the peer after `latencyMs` of virtual time (at
 * once by default), delivered by a loop timer. The streams API and
 * `addReader`/`addWriter` work on it unchanged, and a program recorded on
 * the `selector` backend replays here with its readiness events where the
 * recording had them.
 *
 * TCP options are kept per connection and read back by `tcpOptions(fd)`.
 * Their effects need no code: with no latency nothing is ever
 * unacknowledged, so Nagle's algorithm (noDelay: false) would hold nothing
 * back, and a closed virtual socket always tells its peer, so keep-alive
 * probes would find nothing; with a latency, noDelay: false is refused
 * (Nagle's algorithm is not modelled).
 */
import type { BackendSink, Direction, ReadinessBackend, SocketOps } from './backend.js';
import { READABLE, WRITABLE } from './backend.js';
import { ERRNO } from '../errno.js';

export interface VirtualOptions {
  /** One-way latency of the in-memory network, in virtual ms. Default 0. */
  latencyMs?: number;
}

/**
 * The virtual clock, in whole ns. A class, not closures over each backend's
 * state: the driver calls it on every virtual-time step, and V8's optimized
 * code embeds a call's target, so a target made per loop is thrown away
 * with its loop (core.ts `releaseCore` says what that cost).
 */
export class VirtualClock {
  // A one-element array rather than a number field: a double field is a
  // heap number allocated again on every store, and runAll moves the clock
  // once per timer.
  readonly #ns = new Float64Array(1);

  now(): number {
    return this.#ns[0] as number;
  }

  /** Moves the clock forward by `ms` (rounded up to whole ns; never back). */
  advance(ms: number): void {
    if (ms > 0) this.#ns[0] = (this.#ns[0] as number) + Math.ceil(ms * 1e6);
  }

  /** Sets the clock to `ns` if that is later than now. */
  advanceTo(ns: number): void {
    if (ns > (this.#ns[0] as number)) this.#ns[0] = ns;
  }
}

export interface VirtualBackend extends ReadinessBackend {
  readonly virtual: true;
  /** The clock `now` reads; the driver moves it. */
  readonly clock: VirtualClock;
  /**
   * The network's open descriptors (sockets, listeners, pipe ends, UDP
   * endpoints): what /proc/self/fd counts for a real backend, so tests
   * can check that nothing leaks.
   */
  openDescriptors(): number;
}

const E = ERRNO as Record<string, number> & {
  EADDRINUSE: number;
  EAGAIN: number;
  EBADF: number;
  ECONNREFUSED: number;
  ECONNRESET: number;
  EINVAL: number;
  ENOENT: number;
  ENOTCONN: number;
  EPIPE: number;
  EAFNOSUPPORT?: number;
};
/** Linux's numbers, where the host's table lacks them. */
const EAFNOSUPPORT = ERRNO.EAFNOSUPPORT ?? 97;
const EOPNOTSUPP = ERRNO.EOPNOTSUPP ?? 95;
const LOCALHOST = '127.0.0.1';
const FIRST_EPHEMERAL_PORT = 49152;
const FIRST_FD = 1000;
/** Bytes a connection's receiving end holds before writes to it block (a kernel's socket buffers). */
export const VIRTUAL_BUFFER_BYTES = 4 * 1024 * 1024;

/** An in-memory descriptor. */
interface Listener {
  kind: 'listener';
  port: number;
  /** A Unix domain socket listener's path (its port is then 0). */
  path?: string;
  pending: number[];
}

interface Stream {
  kind: 'stream';
  localPort: number;
  remotePort: number;
  /** The descriptor at the other end; null for a pipe's write end reading, or once gone. */
  peer: number | null;
  chunks: Uint8Array[];
  /** Bytes written to this end and not yet read (delivered or in flight). */
  buffered: number;
  /** No more data will arrive (peer shut down or closed). */
  eof: boolean;
  /** The peer closed with data it had not read: reads and writes fail (a TCP reset). */
  reset: boolean;
  /** This end shut down writing. */
  shut: boolean;
  /** A pipe end: no addresses, one direction. */
  pipe: boolean;
  /** The paths of a Unix domain socket connection's ends ('' for the unnamed client end). */
  unix?: { local: string; remote: string };
  /** TCP options set on this end (TcpOptions; absent: noDelay on, keep-alive off). */
  tcp?: { noDelay: boolean; keepAliveMs: number };
}

/** A UDP endpoint on the virtual network (loopback only). */
interface Datagram {
  kind: 'datagram';
  /** The address it is bound to (a wildcard, '0.0.0.0' or '::', takes any of its family). */
  host: string;
  port: number;
  /** The connected peer, or null. */
  remote: UdpAddress | null;
  queue: Array<{ data: Uint8Array; from: UdpAddress }>;
}

interface UdpAddress {
  host: string;
  port: number;
}

const isIpv6 = (host: string) => host.includes(':');
/** The address `host:port` as SocketOps.address() formats it. */
const formatted = ({ host, port }: UdpAddress) => `${isIpv6(host) ? 6 : 4} ${host} ${port}`;
/** Where a datagram from an endpoint bound to `host` comes from: a wildcard sends from loopback. */
const sourceHost = (host: string) => (host === '0.0.0.0' ? LOCALHOST : host === '::' ? '::1' : host);
/** True if an endpoint bound to `bound` receives datagrams sent to `to`. */
const receives = (bound: string, to: string) =>
  bound === to || (isIpv6(bound) === isIpv6(to) && (bound === '0.0.0.0' || bound === '::'));

type Descriptor = Listener | Stream | Datagram;

export function createVirtualBackend(options: VirtualOptions = {}): VirtualBackend {
  const latency = options.latencyMs ?? 0;
  if (typeof latency !== 'number' || !(latency >= 0) || !Number.isFinite(latency)) {
    throw new RangeError(`virtual backend: latencyMs must be a finite number >= 0, got ${String(latency)}`);
  }
  const clock = new VirtualClock();
  let sink: BackendSink | null = null;
  const fds = new Map<number, Descriptor>();
  const ports = new Map<number, number>(); // port -> listener fd
  const paths = new Map<string, number>(); // Unix socket path -> listener fd
  const udpPorts = new Map<number, number>(); // UDP port -> datagram fd
  let lastSender: UdpAddress = { host: LOCALHOST, port: 0 };
  /** Watched descriptors: fd * 4 + direction -> token. */
  const watches = new Map<number, number>();
  let nextFd = FIRST_FD;
  let nextPort = FIRST_EPHEMERAL_PORT;
  /** The next ephemeral port not in `taken` (TCP listeners by default). */
  const freePort = (taken: Map<number, number> = ports) => {
    while (taken.has(nextPort)) nextPort++;
    return nextPort++;
  };
  const stream = (fd: number): Stream | null => {
    const d = fds.get(fd);
    return d?.kind === 'stream' ? d : null;
  };
  /** Runs `fn` after the network latency: at once, or as a loop timer. */
  const deliver = (fn: () => void) => {
    if (latency === 0) {
      fn();
      sink?.wake();
      return;
    }
    if (sink === null) return;
    sink.schedule(latency, () => {
      fn();
      sink?.wake();
    });
  };
  const newStream = (localPort: number, remotePort: number, pipe: boolean): number => {
    const fd = nextFd++;
    fds.set(fd, {
      kind: 'stream',
      localPort,
      remotePort,
      peer: null,
      chunks: [],
      buffered: 0,
      eof: false,
      reset: false,
      shut: false,
      pipe,
    });
    return fd;
  };

  const sockets: SocketOps = {
    listen(_host, port, _backlog) {
      const chosen = port === 0 ? freePort() : port;
      if (ports.has(chosen)) return -E.EADDRINUSE;
      const fd = nextFd++;
      fds.set(fd, { kind: 'listener', port: chosen, pending: [] });
      ports.set(chosen, fd);
      return fd;
    },
    accept(fd) {
      const d = fds.get(fd);
      if (d === undefined) return -E.EBADF;
      if (d.kind !== 'listener') return -E.EINVAL;
      return d.pending.shift() ?? -E.EAGAIN;
    },
    connect(_host, port) {
      const listenerFd = ports.get(port);
      const listener = listenerFd === undefined ? undefined : fds.get(listenerFd);
      if (listener === undefined || listener.kind !== 'listener') return -E.ECONNREFUSED;
      const localPort = freePort();
      const client = newStream(localPort, port, false);
      const server = newStream(port, localPort, false);
      (fds.get(client) as Stream).peer = server;
      (fds.get(server) as Stream).peer = client;
      listener.pending.push(server);
      sink?.wake();
      return client;
    },
    listenUnix(path, _backlog) {
      if (paths.has(path)) return -E.EADDRINUSE;
      const fd = nextFd++;
      fds.set(fd, { kind: 'listener', port: 0, path, pending: [] });
      paths.set(path, fd);
      return fd;
    },
    connectUnix(path) {
      const listenerFd = paths.get(path);
      const listener = listenerFd === undefined ? undefined : fds.get(listenerFd);
      if (listener === undefined || listener.kind !== 'listener') return -E.ENOENT;
      const client = newStream(0, 0, false);
      const server = newStream(0, 0, false);
      const c = fds.get(client) as Stream;
      const sv = fds.get(server) as Stream;
      c.peer = server;
      sv.peer = client;
      c.unix = { local: '', remote: path };
      sv.unix = { local: path, remote: '' };
      listener.pending.push(server);
      sink?.wake();
      return client;
    },
    udpBind(host, port) {
      const chosen = port === 0 ? freePort(udpPorts) : port;
      if (udpPorts.has(chosen)) return -E.EADDRINUSE;
      const fd = nextFd++;
      fds.set(fd, { kind: 'datagram', host, port: chosen, remote: null, queue: [] });
      udpPorts.set(chosen, fd);
      return fd;
    },
    udpConnect(fd, host, port) {
      const d = fds.get(fd);
      if (d === undefined) return -E.EBADF;
      if (d.kind !== 'datagram') return -E.EINVAL;
      if (isIpv6(host) !== isIpv6(d.host)) return -EAFNOSUPPORT;
      d.remote = { host, port };
      return 0;
    },
    sendTo(fd, bytes, offset, length, host, port) {
      const d = fds.get(fd);
      if (d === undefined) return -E.EBADF;
      if (d.kind !== 'datagram') return -E.EINVAL;
      const to = host === null ? d.remote : { host, port };
      if (to === null) return -E.EINVAL;
      // An IPv4 endpoint cannot send to an IPv6 address, nor the reverse (as a real socket).
      if (isIpv6(to.host) !== isIpv6(d.host)) return -EAFNOSUPPORT;
      const data = bytes.slice(offset, offset + length);
      const from = { host: sourceHost(d.host), port: d.port };
      // Datagrams to an address nobody bound, or that a connected endpoint does not take, are lost.
      deliver(() => {
        const targetFd = udpPorts.get(to.port);
        const target = targetFd === undefined ? undefined : fds.get(targetFd);
        if (target?.kind !== 'datagram' || !receives(target.host, to.host)) return;
        if (target.remote === null || (target.remote.port === from.port && receives(target.remote.host, from.host))) {
          target.queue.push({ data, from });
        }
      });
      return length;
    },
    recvFrom(fd, bytes, offset, length) {
      const d = fds.get(fd);
      if (d === undefined) return -E.EBADF;
      if (d.kind !== 'datagram') return -E.EINVAL;
      const next = d.queue.shift();
      if (next === undefined) return -E.EAGAIN;
      bytes.set(next.data.subarray(0, length), offset);
      lastSender = next.from;
      return next.data.length;
    },
    recvAddress() {
      return formatted(lastSender);
    },
    unlink(_path) {
      // A virtual listener's path goes when the listener closes: nothing is left to remove.
      return 0;
    },
    connectError(fd) {
      return fds.has(fd) ? 0 : -E.EBADF;
    },
    read(fd, bytes, offset, length) {
      const s = stream(fd);
      if (s === null) return fds.has(fd) ? -E.EINVAL : -E.EBADF;
      if (s.reset) return -E.ECONNRESET;
      let n = 0;
      while (n < length && s.chunks.length > 0) {
        const chunk = s.chunks[0] as Uint8Array;
        const take = Math.min(chunk.length, length - n);
        bytes.set(chunk.subarray(0, take), offset + n);
        n += take;
        if (take === chunk.length) s.chunks.shift();
        else s.chunks[0] = chunk.subarray(take);
      }
      if (n > 0) {
        s.buffered -= n;
        return n;
      }
      return s.eof ? 0 : -E.EAGAIN;
    },
    write(fd, bytes, offset, length) {
      const s = stream(fd);
      if (s === null) return fds.has(fd) ? -E.EINVAL : -E.EBADF;
      if (s.shut) return -E.EPIPE;
      if (s.reset) return -E.ECONNRESET;
      const peerFd = s.peer;
      const peer = peerFd === null ? null : stream(peerFd);
      if (peer === null) return -E.EPIPE;
      const room = VIRTUAL_BUFFER_BYTES - peer.buffered;
      if (room <= 0) return -E.EAGAIN;
      const n = Math.min(length, room);
      peer.buffered += n;
      const copy = bytes.slice(offset, offset + n);
      deliver(() => {
        const target = stream(peerFd as number);
        if (target !== null && !target.eof) target.chunks.push(copy);
      });
      return n;
    },
    shutdownWrite(fd) {
      const s = stream(fd);
      if (s === null) return -E.EBADF;
      if (s.shut) return 0;
      s.shut = true;
      const peerFd = s.peer;
      deliver(() => {
        const target = peerFd === null ? null : stream(peerFd);
        if (target !== null) target.eof = true;
      });
      return 0;
    },
    close(fd) {
      const d = fds.get(fd);
      if (d === undefined) return -E.EBADF;
      fds.delete(fd);
      for (const direction of [READABLE, WRITABLE]) watches.delete(fd * 4 + direction);
      if (d.kind === 'datagram') {
        udpPorts.delete(d.port);
        return 0;
      }
      if (d.kind === 'listener') {
        if (d.path !== undefined) paths.delete(d.path);
        else ports.delete(d.port);
        for (const pending of d.pending) fds.delete(pending);
        return 0;
      }
      const peerFd = d.peer;
      // Closing with unread data resets the connection, as TCP does.
      const reset = d.buffered > 0;
      if (peerFd !== null) {
        deliver(() => {
          const target = stream(peerFd);
          if (target !== null) {
            target.eof = true;
            target.peer = null;
            if (reset) target.reset = true;
          }
        });
      }
      return 0;
    },
    address(fd, peer) {
      const d = fds.get(fd);
      if (d === undefined) return -E.EBADF;
      if (d.kind === 'datagram') {
        if (peer) return d.remote === null ? -E.ENOTCONN : formatted(d.remote);
        return formatted(d);
      }
      if (d.kind === 'listener') {
        if (peer) return -E.ENOTCONN;
        return d.path !== undefined ? `unix ${d.path}` : `4 ${LOCALHOST} ${d.port}`;
      }
      if (d.unix !== undefined) return `unix ${peer ? d.unix.remote : d.unix.local}`;
      return `4 ${LOCALHOST} ${peer ? d.remotePort : d.localPort}`;
    },
    setTcpOptions(fd, noDelay, keepAliveMs) {
      const d = fds.get(fd);
      if (d === undefined) return -E.EBADF;
      if (d.kind !== 'stream' || d.pipe || d.unix !== undefined) return -EOPNOTSUPP;
      const tcp = (d.tcp ??= { noDelay: true, keepAliveMs: -1 });
      if (noDelay !== null) tcp.noDelay = noDelay;
      if (keepAliveMs !== null) tcp.keepAliveMs = keepAliveMs;
      return 0;
    },
    tcpOptions(fd) {
      const d = fds.get(fd);
      if (d === undefined) return -E.EBADF;
      if (d.kind !== 'stream' || d.pipe || d.unix !== undefined) return -EOPNOTSUPP;
      const { noDelay, keepAliveMs } = d.tcp ?? { noDelay: true, keepAliveMs: -1 };
      // As Linux reports them: the idle time in whole seconds, 2 h by default.
      return [
        noDelay ? 1 : 0,
        keepAliveMs >= 0 ? 1 : 0,
        keepAliveMs > 0 ? Math.min(32767, Math.ceil(keepAliveMs / 1000)) : 7200,
      ];
    },
    pipe() {
      const r = newStream(0, 0, true);
      const w = newStream(0, 0, true);
      (fds.get(w) as Stream).peer = r;
      return [r, w];
    },
  };

  /** Level-triggered readiness of a watched descriptor. */
  const ready = (fd: number, direction: Direction): boolean => {
    const d = fds.get(fd);
    if (d === undefined) return false;
    if (d.kind === 'listener') return direction === READABLE && d.pending.length > 0;
    if (d.kind === 'datagram') return direction === WRITABLE || d.queue.length > 0;
    if (direction === READABLE) return d.chunks.length > 0 || d.eof;
    if (d.shut) return false;
    const peer = d.peer === null ? null : stream(d.peer);
    return peer === null || d.reset || peer.buffered < VIRTUAL_BUFFER_BYTES;
  };

  return {
    name: 'virtual',
    model: 'readiness',
    virtual: true,
    sockets,
    clock,
    now: () => clock.now(),
    checkTcpOptions: ({ noDelay }) =>
      noDelay === false && latency > 0
        ? `the virtual network does not model Nagle's algorithm (noDelay: false) with a latencyMs (${latency})`
        : null,
    openDescriptors() {
      return fds.size;
    },
    attach(s) {
      sink = s;
    },
    watch(fd, direction, token) {
      if (!fds.has(fd)) return -E.EBADF;
      watches.set(fd * 4 + direction, token);
      if (ready(fd, direction)) sink?.wake();
      return 0;
    },
    unwatch(fd, direction) {
      watches.delete(fd * 4 + direction);
    },
    takeReady(max) {
      const out: number[] = [];
      for (const [key, token] of watches) {
        if (out.length === max) break;
        if (ready(Math.floor(key / 4), (key % 4) as Direction)) out.push(token);
      }
      // Level-triggered, as epoll: while anything is ready, look again next
      // iteration (what the program did may or may not have consumed it).
      if (out.length > 0) sink?.wake();
      return Uint32Array.from(out);
    },
    close() {
      fds.clear();
      ports.clear();
      paths.clear();
      udpPorts.clear();
      watches.clear();
      sink = null;
    },
  };
}

/** True for a backend made by createVirtualBackend. */
export function isVirtual(backend: { readonly name: string }): backend is VirtualBackend {
  return (backend as Partial<VirtualBackend>).virtual === true;
}
