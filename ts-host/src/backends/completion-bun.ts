/**
 * The `completion` backend on Bun's own sockets: `Bun.listen` and
 * `Bun.connect` (TCP, and Unix domain sockets with `unix: path`), which
 * `completion` picks on Bun (implementation 'bun'). Bun's `node:net` is a
 * compatibility layer over the same sockets; going to them directly saves
 * its streams and event emitters on every read and write
 * (bench/RESULTS.md, "Deno and Bun").
 *
 * Bun's socket API is callback-shaped, one set of handlers per listener or
 * connect: `open`, `data`, `drain`, `end` (the peer's FIN), `close`. How an
 * operation completes:
 * - read: Bun reads as data arrives and calls `data` with a fresh array;
 *   `setFlowing(false)` is `socket.pause()`, which stops reading from the
 *   kernel, so backpressure reaches the peer.
 * - write: `socket.write` writes what the kernel takes at once and returns
 *   how much (Bun keeps nothing back); a write taken whole is done in place,
 *   the rest waits for `drain`.
 * - end: `socket.shutdown()` (the write side only, as the sockets are
 *   half-open: `allowHalfOpen`), once the queued writes went out.
 * - a listening socket another process handed over (`fd`): `Bun.listen({
 *   fd })`, after what `node:fs` can check (backends/inherited-fd.ts).
 * - destroy: `socket.end()`, which closes at once (`terminate()` would
 *   send a reset).
 *
 * Bun calls the handlers from its own event loop, those of every socket
 * that became ready one after another; a completion wakes the loop with
 * `wake(false)`, so one iteration takes all that they completed. (Running
 * an iteration inside each handler, `wake(true)`, cost 0.6 us more CPU per
 * round trip at 50 connections and saved nothing at one.) UDP is
 * `node:dgram`'s (net/node-dgram.ts), which Bun implements on its own
 * `Bun.udpSocket`.
 */
import {
  refuseFixedBacklog,
  type BackendSink,
  type CompletionBackend,
  type CompletionListener,
  type CompletionSocket,
  type SocketAddress,
  type TcpOptions,
} from './backend.js';
import { TokenQueue } from './token-queue.js';
import { performanceClock } from './wall-clock.js';
import { faultError, inheritedListenerFault } from './inherited-fd.js';
import { unixAddress } from '../net/address.js';
import { unixSocketPath } from '../net/inherited-listener.js';
import { netAddress, nodeDatagram } from '../net/node-dgram.js';

/** The parts of Bun's socket API this backend uses (typed here: other hosts' type checks know no `Bun`). */
interface BunSocket {
  data: BunEndpoint | undefined;
  write(data: Uint8Array): number;
  shutdown(halfClose?: boolean): void;
  end(): void;
  pause(): void;
  resume(): void;
  setNoDelay?(noDelay?: boolean): boolean;
  setKeepAlive?(enable?: boolean, initialDelayMs?: number): boolean;
  readonly localAddress?: string;
  readonly localPort?: number;
  readonly localFamily?: string;
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  readonly remoteFamily?: string;
}
interface BunHandlers {
  /** 'uint8array': `data` gets a plain Uint8Array over an ArrayBuffer of its own, exactly its size. */
  binaryType: 'uint8array';
  open(socket: BunSocket): void;
  data(socket: BunSocket, data: Uint8Array): void;
  drain(socket: BunSocket): void;
  end(socket: BunSocket): void;
  close(socket: BunSocket, error?: Error): void;
  error(socket: BunSocket, error: Error): void;
  connectError?(socket: BunSocket, error: Error): void;
}
interface BunListener {
  stop(closeActiveConnections?: boolean): void;
  readonly hostname?: string;
  readonly port?: number;
  /** Fills `into` with the bound address (`family`, `address`, `port`); nothing for a Unix socket. */
  getsockname?(into: { family?: string; address?: string; port?: number }): void;
}
type BunTarget = { hostname: string; port: number; reusePort?: boolean } | { unix: string } | { fd: number };
interface BunNamespace {
  listen(options: BunTarget & { allowHalfOpen: boolean; reusePort?: boolean; socket: BunHandlers }): BunListener;
  connect(options: BunTarget & { allowHalfOpen: boolean; socket: BunHandlers }): Promise<BunSocket>;
}

/** Bun's namespace, or null on any other host. */
export function bunNamespace(): BunNamespace | null {
  const bun = (globalThis as { Bun?: Partial<BunNamespace> }).Bun;
  return typeof bun?.listen === 'function' && typeof bun.connect === 'function' ? (bun as BunNamespace) : null;
}

/**
 * The queue length Bun.listen asks listen(2) for, on TCP and Unix sockets
 * alike: it takes no backlog (Bun 1.4.5).
 */
const BUN_BACKLOG = 512;

interface QueuedWrite {
  bytes: Uint8Array;
  offset: number;
  done: (error?: Error | null) => void;
}

/** What a write after the socket closed fails with. */
function closedError(syscall: string, code = 'EPIPE'): Error {
  return Object.assign(new Error(`${syscall} failed: ${code}`), { code, syscall });
}

/** One connection: its Bun socket and what the loop asked of it. The socket's `data` points here. */
class BunEndpoint implements CompletionSocket {
  readonly #socket: BunSocket;
  readonly #onClose: (endpoint: BunEndpoint) => void;
  #onData: ((chunk: Uint8Array | null) => void) | null = null;
  #onError: ((error: Error) => void) | null = null;
  /** What arrived before `start` (Bun may deliver in the same turn as `open`). */
  #early: Array<Uint8Array | null | Error> = [];
  #eof = false;
  #closed = false;
  #destroyed = false;
  #writes: QueuedWrite[] = [];
  #endRequested = false;
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;

  constructor(
    socket: BunSocket,
    onClose: (endpoint: BunEndpoint) => void,
    unixEnds?: { local: string; remote: string },
  ) {
    this.#socket = socket;
    this.#onClose = onClose;
    socket.data = this;
    // Nothing is read until the connection starts and asks for it.
    socket.pause();
    if (unixEnds !== undefined) {
      this.localAddress = unixAddress(unixEnds.local);
      this.remoteAddress = unixAddress(unixEnds.remote);
    } else {
      socket.setNoDelay?.(true);
      this.localAddress = netAddress(socket.localAddress, socket.localPort, socket.localFamily);
      this.remoteAddress = netAddress(socket.remoteAddress, socket.remotePort, socket.remoteFamily);
    }
  }

  start(onData: (chunk: Uint8Array | null) => void, onError: (error: Error) => void): void {
    this.#onData = onData;
    this.#onError = onError;
    const early = this.#early;
    this.#early = [];
    for (const event of early) {
      if (event instanceof Error) onError(event);
      else onData(event);
    }
  }

  setFlowing(flowing: boolean): void {
    if (this.#closed) return;
    if (flowing) this.#socket.resume();
    else this.#socket.pause();
  }

  // ------------------------------------------------ Bun's handlers, routed here

  received(data: Uint8Array | null): void {
    if (data === null) {
      if (this.#eof) return;
      this.#eof = true;
    }
    if (this.#onData === null) this.#early.push(data);
    else this.#onData(data);
  }

  failed(error: Error): void {
    this.#eof = true;
    if (this.#onError === null) this.#early.push(error);
    else this.#onError(error);
  }

  /** The socket closed: by us, by a reset (`error`), or after both ends finished. */
  closed(error: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#destroyed) {
      if (error !== undefined) this.failed(error);
      else this.received(null);
      const writes = this.#writes;
      this.#writes = [];
      for (const w of writes) w.done(error ?? closedError('write'));
    }
    this.#onClose(this);
  }

  // ------------------------------------------------ writes

  /** What this socket keeps of a write is a copy: the rest Bun did not take. */
  readonly copiesWrites = true;

  write(data: Uint8Array, done: (error?: Error | null) => void): void {
    if (this.#closed) {
      done(closedError('write', this.#destroyed ? 'EBADF' : 'EPIPE'));
      return;
    }
    // What is kept past this call is a copy, so that a protocol's caller may reuse its array once write() returns.
    if (this.#writes.length > 0) {
      this.#writes.push({ bytes: data.slice(), offset: 0, done });
      return;
    }
    const n = this.#socket.write(data);
    if (n === data.length) {
      // Taken whole: done in place (IOCP's skip on success), as the native implementation does.
      done(null);
      return;
    }
    if (n < 0) {
      done(closedError('write'));
      return;
    }
    this.#writes.push({ bytes: data.slice(n), offset: 0, done });
  }

  /** Bun's `drain`: the kernel takes more. */
  flush(): void {
    const writes = this.#writes;
    while (writes.length > 0 && !this.#closed) {
      const w = writes[0] as QueuedWrite;
      const n = this.#socket.write(w.offset === 0 ? w.bytes : w.bytes.subarray(w.offset));
      if (n < 0) return; // the close handler fails them
      w.offset += n;
      if (w.offset < w.bytes.length) return;
      writes.shift();
      w.done(null);
    }
    if (writes.length === 0 && this.#endRequested && !this.#closed) this.#socket.shutdown();
  }

  end(): void {
    if (this.#endRequested || this.#closed) return;
    this.#endRequested = true;
    if (this.#writes.length === 0) this.#socket.shutdown();
  }

  setTcpOptions({ noDelay, keepAliveMs }: TcpOptions): void {
    if (noDelay !== null) this.#socket.setNoDelay?.(noDelay);
    if (keepAliveMs !== null) this.#socket.setKeepAlive?.(keepAliveMs >= 0, Math.max(0, keepAliveMs));
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#writes = [];
    this.#onData = null;
    // Bun calls `close` from within end(): `closed` finds #destroyed set.
    if (!this.#closed) this.#socket.end();
    if (!this.#closed) {
      this.#closed = true;
      this.#onClose(this);
    }
  }
}

/**
 * The handlers of one listener or connect. `opened` makes the endpoint of a
 * socket that opened, or returns null to close it (a connect abandoned, or
 * the backend closed).
 *
 * Bun hands `data` a fresh array of exactly the bytes read: with
 * `binaryType: 'uint8array'` a plain Uint8Array, which is the chunk as the
 * loop hands it on (its own ArrayBuffer, exactly its size). The default, a
 * Buffer, would need `new Uint8Array(data.buffer, ...)`, and reading a
 * small Buffer's `.buffer` makes JavaScriptCore move its bytes off the
 * heap: about 0.6 us of CPU per 64-byte echo round trip.
 */
function handlers(
  opened: (socket: BunSocket) => BunEndpoint | null,
  connectFailed?: (error: Error) => void,
): BunHandlers {
  return {
    binaryType: 'uint8array',
    open(socket) {
      if (opened(socket) === null) socket.end();
    },
    data(socket, data) {
      socket.data?.received(data);
    },
    drain(socket) {
      socket.data?.flush();
    },
    end(socket) {
      socket.data?.received(null);
    },
    close(socket, error) {
      socket.data?.closed(error);
    },
    error(socket, error) {
      // A handler of ours threw: that connection cannot go on.
      socket.data?.failed(error);
    },
    ...(connectFailed === undefined
      ? {}
      : { connectError: (_socket: BunSocket, error: Error) => connectFailed(error) }),
  };
}

/** The `completion` backend on `Bun.listen`/`Bun.connect`. Throws on any host but Bun. */
export function createBunCompletionBackend(): CompletionBackend {
  const bun = bunNamespace();
  if (bun === null) throw new Error('the Bun completion backend needs Bun.listen and Bun.connect (Bun only)');
  const now = performanceClock();
  const queue = new TokenQueue();
  let sink: BackendSink | null = null;
  let closed = false;
  const endpoints = new Set<BunEndpoint>();
  const listeners = new Set<BunListener>();
  const connecting = new Set<() => void>();
  const forget = (endpoint: BunEndpoint) => endpoints.delete(endpoint);
  const adopt = (socket: BunSocket, unixEnds?: { local: string; remote: string }): BunEndpoint => {
    const endpoint = new BunEndpoint(socket, forget, unixEnds);
    endpoints.add(endpoint);
    return endpoint;
  };
  const refused = (syscall: string) => Object.assign(new Error(`${syscall} failed: EBADF`), { code: 'EBADF', syscall });
  const datagram = nodeDatagram();

  /** Listens on `target`; `path`: the Unix socket's (an adopted one's is looked up once it listens). */
  const listenOn = (
    target: BunTarget,
    path: string | undefined,
    onSocket: (socket: CompletionSocket) => void,
    done: (error: Error | null, listener?: CompletionListener) => void,
  ): void => {
    let ends = path === undefined ? undefined : { local: path, remote: '' };
    let listener: BunListener;
    try {
      listener = bun.listen({
        ...target,
        allowHalfOpen: true,
        socket: handlers((socket) => {
          if (closed) return null;
          const endpoint = adopt(socket, ends);
          onSocket(endpoint);
          return endpoint;
        }),
      });
    } catch (error) {
      done(error as Error);
      return;
    }
    listeners.add(listener);
    let address: SocketAddress;
    if ('fd' in target) {
      // Bun reports no address for an adopted socket but what getsockname gives a TCP one.
      const bound: { family?: string; address?: string; port?: number } = {};
      listener.getsockname?.(bound);
      if (bound.address !== undefined) address = netAddress(bound.address, bound.port, bound.family);
      else {
        ends = { local: unixSocketPath(target.fd), remote: '' };
        address = unixAddress(ends.local);
      }
    } else {
      address =
        path === undefined
          ? netAddress(listener.hostname, listener.port, (listener.hostname ?? '').includes(':') ? 'IPv6' : 'IPv4')
          : unixAddress(path);
    }
    done(null, {
      address: () => ({ ...address }),
      close(closedDone) {
        // Stops accepting (and closes the socket); the connections it accepted stay (the loop closes them).
        if (listeners.delete(listener)) listener.stop(false);
        closedDone();
      },
    } satisfies CompletionListener);
  };

  return {
    name: 'completion',
    model: 'completion',
    implementation: 'bun',
    now,
    // Bun's sockets have setNoDelay and setKeepAlive(enable, initialDelayMs).
    checkTcpOptions: () => null,
    attach(s) {
      sink = s;
    },
    takeCompleted(max) {
      return queue.take(max);
    },
    complete(token) {
      queue.push(token);
      // One iteration for every completion of a host turn: Bun runs the
      // handlers of all the sockets that became ready, then the loop's
      // iteration takes what they completed, in a macrotask of its own.
      sink?.wake(false);
    },
    listen({ host, port, backlog, path, reusePort, fd }, onSocket, done) {
      refuseFixedBacklog(backlog, BUN_BACKLOG, "the 'completion' backend on Bun", 'Bun.listen');
      if (closed) {
        done(refused('listen'));
        return;
      }
      if (fd !== undefined) {
        // Bun.listen({ fd }) adopts it; what cannot listen fails there (EINVAL), the rest is checked first.
        const fault = inheritedListenerFault(fd);
        if (fault !== null) done(faultError(fault));
        else listenOn({ fd }, undefined, onSocket, done);
        return;
      }
      // SO_REUSEPORT, as the selector sets it.
      const tcp = { hostname: host, port, ...(reusePort === true ? { reusePort: true } : {}) };
      listenOn(path === undefined ? tcp : { unix: path }, path, onSocket, done);
    },
    connect({ host, port, path }, done) {
      if (closed) {
        done(refused('connect'));
        return;
      }
      // Bun cannot abandon a connect in flight: an abandoned one is closed as it opens.
      let abandoned = false;
      let settled = false;
      const cancel = () => {
        if (!connecting.delete(cancel)) return;
        abandoned = true;
      };
      connecting.add(cancel);
      const fail = (error: Error) => {
        if (settled) return;
        settled = true;
        connecting.delete(cancel);
        if (!abandoned) done(error);
      };
      bun
        .connect({
          ...(path === undefined ? { hostname: host, port } : { unix: path }),
          allowHalfOpen: true,
          socket: handlers((socket) => {
            if (settled) return null;
            settled = true;
            connecting.delete(cancel);
            if (abandoned || closed) return null;
            const endpoint = adopt(socket, path === undefined ? undefined : { local: '', remote: path });
            done(null, endpoint);
            return endpoint;
          }, fail),
        })
        .catch(fail);
      return cancel;
    },
    ...(datagram === null ? {} : { datagram }),
    close() {
      closed = true;
      for (const cancel of [...connecting]) cancel();
      for (const endpoint of [...endpoints]) endpoint.destroy();
      for (const listener of listeners) listener.stop(false);
      listeners.clear();
      sink = null;
    },
  };
}
