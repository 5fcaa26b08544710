/**
 * The `completion` backend's native implementation on Node.js: the host
 * performs each read and write itself and reports when it finished (the
 * proactor model), doing the I/O with the native selector's addon
 * (`ts-host/native/`: its poller, an epoll set of its own watched by one
 * libuv `uv_poll` on Linux or a `uv_poll` per descriptor elsewhere, and
 * non-blocking system calls, `sockets.c`) instead of `net.Socket`. libuv
 * does the same for its streams: a completion interface over readiness.
 *
 * How an operation completes:
 * - read: while a socket is flowing its descriptor stays watched for
 *   readability; each readiness reads up to CHUNK_BYTES at a time into a
 *   slab and hands the chunks over (`onData`) until the socket would block
 *   or the connection pauses it (`setFlowing(false)` at its high-water mark).
 * - write: written at once as far as the kernel takes it; the rest is queued
 *   and written as the descriptor becomes writable; `done` when all of it is.
 * - accept and connect: on readability of the listener, on writability of
 *   the connecting socket.
 *
 * Readiness arrives once per libuv iteration (the addon's check callback), so
 * every completion of a burst reaches the loop in one iteration: the backend
 * wakes the loop once, at the end of the burst.
 */
import {
  type BackendSink,
  type CompletionBackend,
  type CompletionDatagram,
  type CompletionSocket,
  type Direction,
  READABLE,
  type SocketAddress,
  type SocketOps,
  type TcpOptions,
  WRITABLE,
} from './backend.js';
import { TokenQueue } from './token-queue.js';
import { DATAGRAMS_PER_READINESS, datagramScratch } from '../net/datagram-buffer.js';
import { parseAddress } from '../net/address.js';
import { performanceClock } from './wall-clock.js';
import { type Endpoint, EndpointPoller } from './endpoint-poller.js';
import { NativeListener, systemError } from './native-listener.js';
import { loadSelectorAddon } from './selector.js';
import { EAGAIN, ERRNO } from '../errno.js';
import { CHUNK_BYTES, READ_BUFFER, TEXT_SCRATCH, TEXT_SCRATCH_CHARS, encodeToScratch, takeRead } from '../net/slab.js';

const encoder = new TextEncoder();

interface QueuedWrite {
  bytes: Uint8Array;
  offset: number;
  done: (error?: Error | null) => void;
}

class NativeSocket implements CompletionSocket, Endpoint {
  readonly #ops: SocketOps;
  readonly #watcher: EndpointPoller;
  readonly #fd: number;
  readonly #id: number;
  readonly #onClose: (socket: NativeSocket) => void;
  #onData: ((chunk: Uint8Array | null) => void) | null = null;
  #onError: ((error: Error) => void) | null = null;
  #flowing = false;
  #readWatched = false;
  #writeWatched = false;
  #eof = false;
  #writes: QueuedWrite[] = [];
  #endRequested = false;
  #destroyed = false;
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;

  constructor(ops: SocketOps, watcher: EndpointPoller, fd: number, onClose: (socket: NativeSocket) => void) {
    this.#ops = ops;
    this.#watcher = watcher;
    this.#fd = fd;
    this.#onClose = onClose;
    this.#id = watcher.register(this);
    this.localAddress = parseAddress(ops.address(fd, false));
    this.remoteAddress = parseAddress(ops.address(fd, true));
  }

  start(onData: (chunk: Uint8Array | null) => void, onError: (error: Error) => void): void {
    this.#onData = onData;
    this.#onError = onError;
    this.#updateReadWatch();
  }

  setFlowing(flowing: boolean): void {
    this.#flowing = flowing;
    this.#updateReadWatch();
  }

  ready(direction: Direction): void {
    if (this.#destroyed) return;
    if (direction === READABLE) this.#readAvailable();
    else this.#flushWrites();
  }

  /** Reads while flowing until the socket would block, ends or fails. */
  #readAvailable(): void {
    while (this.#flowing && !this.#eof && !this.#destroyed && this.#onData !== null) {
      const room = CHUNK_BYTES;
      const n = this.#ops.read(this.#fd, READ_BUFFER, 0, room);
      if (n === -EAGAIN) return;
      if (n < 0) {
        this.#eof = true;
        this.#updateReadWatch();
        (this.#onError as (error: Error) => void)(systemError('read', n));
        return;
      }
      if (n === 0) {
        this.#eof = true;
        this.#updateReadWatch();
        this.#onData(null);
        return;
      }
      this.#onData(takeRead(n));
      // A short read emptied the socket: wait for the next readiness
      // instead of asking the kernel again.
      if (n < room) return;
    }
  }

  #updateReadWatch(): void {
    const want = this.#flowing && !this.#eof && !this.#destroyed && this.#onData !== null;
    if (want === this.#readWatched) return;
    if (want) {
      // Edge-triggered will do: #readAvailable reads until EAGAIN, a short
      // read or a pause, and pausing unwatches.
      const rc = this.#watcher.watch(this.#fd, READABLE, this.#id, true);
      if (rc < 0) {
        this.#eof = true;
        (this.#onError as (error: Error) => void)(systemError('watch', rc));
        return;
      }
    } else {
      this.#watcher.unwatch(this.#fd, READABLE);
    }
    this.#readWatched = want;
  }

  /** What this socket keeps of a write is a copy (`#write`). */
  readonly copiesWrites = true;

  write(data: Uint8Array, done: (error?: Error | null) => void): void {
    this.#write(data, data.length, done);
  }

  writeText(text: string, done: (error?: Error | null) => void): void {
    // Text too long for the shared scratch gets an array of its own.
    if (text.length > TEXT_SCRATCH_CHARS) this.#write(encoder.encode(text), -1, done);
    else this.#write(TEXT_SCRATCH, encodeToScratch(text), done);
  }

  /**
   * Writes the first `length` bytes of `bytes` (all of them, and that
   * array kept as it is, if `length` is -1: an array of the socket's own).
   * What the kernel does not take at once is copied and queued, so the
   * caller may reuse `bytes` once this returns.
   */
  #write(bytes: Uint8Array, length: number, done: (error?: Error | null) => void): void {
    if (this.#destroyed) {
      done(systemError('write', -(ERRNO.EBADF as number)));
      return;
    }
    const owned = length === -1;
    const size = owned ? bytes.length : length;
    let offset = 0;
    if (this.#writes.length === 0) {
      const n = size === 0 ? 0 : this.#ops.write(this.#fd, bytes, 0, size);
      if (n === size) {
        done(null);
        return;
      }
      if (n < 0 && n !== -EAGAIN) {
        done(systemError('write', n));
        return;
      }
      offset = Math.max(n, 0);
    }
    const rest = owned ? (offset === 0 ? bytes : bytes.subarray(offset)) : bytes.slice(offset, size);
    this.#writes.push({ bytes: rest, offset: 0, done });
    this.#watchWritable(true);
  }

  /** Writes what the kernel takes; completes each write once all of it is written. */
  #flushWrites(): void {
    const writes = this.#writes;
    while (writes.length > 0) {
      const w = writes[0] as QueuedWrite;
      const length = w.bytes.length - w.offset;
      const n = length === 0 ? 0 : this.#ops.write(this.#fd, w.bytes, w.offset, length);
      if (n === -EAGAIN) {
        this.#watchWritable(true);
        return;
      }
      if (n < 0) {
        this.#failWrites(systemError('write', n));
        return;
      }
      w.offset += n;
      if (w.offset < w.bytes.length) {
        this.#watchWritable(true);
        return;
      }
      writes.shift();
      w.done(null);
      if (this.#destroyed) return;
    }
    this.#watchWritable(false);
    if (this.#endRequested) this.#shutdown();
  }

  #watchWritable(want: boolean): void {
    if (want === this.#writeWatched || this.#destroyed) return;
    if (want) {
      // Edge-triggered will do: #flushWrites writes until EAGAIN or a short write.
      const rc = this.#watcher.watch(this.#fd, WRITABLE, this.#id, true);
      if (rc < 0) {
        this.#failWrites(systemError('watch', rc));
        return;
      }
    } else {
      this.#watcher.unwatch(this.#fd, WRITABLE);
    }
    this.#writeWatched = want;
  }

  #failWrites(error: Error): void {
    const writes = this.#writes;
    this.#writes = [];
    this.#watchWritable(false);
    for (const w of writes) w.done(error);
  }

  end(): void {
    if (this.#endRequested || this.#destroyed) return;
    this.#endRequested = true;
    if (this.#writes.length === 0) this.#shutdown();
  }

  #shutdown(): void {
    this.#endRequested = false;
    // ENOTCONN: the peer is gone already; there is nothing left to end.
    this.#ops.shutdownWrite(this.#fd);
  }

  setTcpOptions(options: TcpOptions): void {
    // A failure means the connection is gone already: its next read or write says so.
    this.#ops.setTcpOptions?.(this.#fd, options.noDelay, options.keepAliveMs);
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    if (this.#readWatched) this.#watcher.unwatch(this.#fd, READABLE);
    if (this.#writeWatched) this.#watcher.unwatch(this.#fd, WRITABLE);
    this.#readWatched = this.#writeWatched = false;
    this.#watcher.unregister(this.#id);
    // Unwatched first: the poller lets go of the descriptor before it closes.
    this.#ops.close(this.#fd);
    this.#writes = [];
    this.#onData = null;
    this.#onClose(this);
  }
}

interface QueuedDatagram {
  bytes: Uint8Array;
  host: string | null;
  port: number;
  done: (error: Error | null) => void;
}

/** A UDP endpoint: receives as datagrams arrive, sends at once, queues what would block. */
class NativeDatagram implements CompletionDatagram, Endpoint {
  readonly #native: ReturnType<typeof loadSelectorAddon>;
  readonly #watcher: EndpointPoller;
  readonly #fd: number;
  readonly #id: number;
  readonly #onDatagram: (data: Uint8Array, from: SocketAddress) => void;
  readonly #onError: (error: Error) => void;
  readonly #onClose: (endpoint: NativeDatagram) => void;
  #queue: QueuedDatagram[] = [];
  #writeWatched = false;
  #closed = false;
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress | null;

  constructor(
    native: ReturnType<typeof loadSelectorAddon>,
    watcher: EndpointPoller,
    fd: number,
    connected: boolean,
    onDatagram: (data: Uint8Array, from: SocketAddress) => void,
    onError: (error: Error) => void,
    onClose: (endpoint: NativeDatagram) => void,
  ) {
    this.#native = native;
    this.#watcher = watcher;
    this.#fd = fd;
    this.#onDatagram = onDatagram;
    this.#onError = onError;
    this.#onClose = onClose;
    this.localAddress = parseAddress(native.address(fd, false));
    this.remoteAddress = connected ? parseAddress(native.address(fd, true)) : null;
    this.#id = watcher.register(this);
  }

  /** Starts receiving: 0, or -errno. */
  start(): number {
    return this.#watcher.watch(this.#fd, READABLE, this.#id);
  }

  ready(direction: Direction): void {
    if (direction === WRITABLE) {
      this.#flush();
      return;
    }
    for (let i = 0; i < DATAGRAMS_PER_READINESS && !this.#closed; i++) {
      const n = this.#native.recvFrom(this.#fd, datagramScratch, 0, datagramScratch.length);
      if (n === -EAGAIN) return;
      if (n < 0) {
        this.#onError(systemError('recvfrom', n));
        continue;
      }
      const data = datagramScratch.slice(0, Math.min(n, datagramScratch.length));
      this.#onDatagram(data, parseAddress(this.#native.recvAddress()));
    }
  }

  /** What this endpoint queues is a copy. */
  readonly copiesSends = true;

  send(data: Uint8Array, host: string | null, port: number, done: (error: Error | null) => void): void {
    if (this.#closed) {
      done(systemError('sendto', -(ERRNO.EBADF as number)));
      return;
    }
    if (this.#queue.length > 0) {
      this.#queue.push({ bytes: data.slice(), host, port, done });
      return;
    }
    const n = this.#native.sendTo(this.#fd, data, 0, data.length, host, port);
    if (n === -EAGAIN) {
      this.#queue.push({ bytes: data.slice(), host, port, done });
      if (!this.#writeWatched) {
        this.#writeWatched = true;
        this.#watcher.watch(this.#fd, WRITABLE, this.#id);
      }
      return;
    }
    done(n < 0 ? systemError('sendto', n) : null);
  }

  #flush(): void {
    const queue = this.#queue;
    while (queue.length > 0 && !this.#closed) {
      const d = queue[0] as QueuedDatagram;
      const n = this.#native.sendTo(this.#fd, d.bytes, 0, d.bytes.length, d.host, d.port);
      if (n === -EAGAIN) return;
      queue.shift();
      d.done(n < 0 ? systemError('sendto', n) : null);
    }
    if (this.#writeWatched) {
      this.#writeWatched = false;
      this.#watcher.unwatch(this.#fd, WRITABLE);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
    this.#watcher.unwatch(this.#fd, READABLE);
    if (this.#writeWatched) this.#watcher.unwatch(this.#fd, WRITABLE);
    this.#watcher.unregister(this.#id);
    this.#native.close(this.#fd);
    this.#onClose(this);
  }
}

/**
 * The native `completion` backend. Throws where the addon cannot load
 * (Deno, Bun, workerd, Windows, browsers); `createCompletionBackend` then
 * uses `node:net`.
 */
export function createNativeCompletionBackend(): CompletionBackend {
  const native = loadSelectorAddon();
  const ops: SocketOps = native;
  const now = performanceClock();
  const queue = new TokenQueue();
  let sink: BackendSink | null = null;
  let completedInBurst = false;
  const watcher = new EndpointPoller(native, () => {
    // One wake for the whole burst, from the host callback itself.
    if (completedInBurst) {
      completedInBurst = false;
      sink?.wake(true);
    }
  });
  const sockets = new Set<NativeSocket>();
  const listeners = new Set<NativeListener>();
  const datagrams = new Set<NativeDatagram>();
  /** Descriptors of connections still being made. */
  const pending = new Set<number>();
  const forget = (socket: NativeSocket) => sockets.delete(socket);
  const adopt = (fd: number): NativeSocket => {
    const socket = new NativeSocket(ops, watcher, fd, forget);
    sockets.add(socket);
    return socket;
  };
  let closed = false;

  return {
    name: 'completion',
    model: 'completion',
    implementation: 'native',
    now,
    // The addon's setsockopt takes every option.
    checkTcpOptions: () => null,
    attach(s) {
      sink = s;
    },
    takeCompleted(max) {
      return queue.take(max);
    },
    complete(token) {
      queue.push(token);
      if (watcher.dispatching) completedInBurst = true;
      // Outside a burst: a write that completed in place, in a loop
      // callback, or a listen that completed at once.
      else sink?.wake(false);
    },
    listen({ host, port, backlog, path, reusePort, fd: inherited }, onSocket, done, onAcceptError) {
      if (closed) {
        done(systemError('listen', -(ERRNO.EBADF as number)));
        return;
      }
      const fd =
        inherited !== undefined
          ? native.adoptListener(inherited)
          : path !== undefined
            ? native.listenUnix(path, backlog)
            : ops.listen(host, port, backlog, reusePort);
      if (fd < 0) {
        done(systemError('listen', fd));
        return;
      }
      const listener: NativeListener = new NativeListener(
        ops,
        watcher,
        fd,
        (conn) => onSocket(adopt(conn)),
        (error) => onAcceptError?.(error),
        (delayMs, fn) => sink?.schedule(delayMs, fn),
        inherited === undefined,
      );
      const rc = listener.start();
      if (rc < 0) {
        listener.close(() => undefined);
        done(systemError('watch', rc));
        return;
      }
      listeners.add(listener);
      done(null, {
        address: () => listener.address(),
        close(closedDone) {
          listeners.delete(listener);
          listener.close(closedDone);
        },
      });
    },
    connect({ host, port, path }, done) {
      if (closed) {
        done(systemError('connect', -(ERRNO.EBADF as number)));
        return;
      }
      const fd = path !== undefined ? native.connectUnix(path) : ops.connect(host, port);
      if (fd < 0) {
        done(systemError('connect', fd));
        return;
      }
      // The connection is made (or refused) when the descriptor becomes writable.
      const connector: Endpoint = {
        ready() {
          watcher.unwatch(fd, WRITABLE);
          watcher.unregister(id);
          pending.delete(fd);
          const rc = ops.connectError(fd);
          if (rc < 0) {
            ops.close(fd);
            done(systemError('connect', rc));
            return;
          }
          done(null, adopt(fd));
        },
      };
      const id = watcher.register(connector);
      const rc = watcher.watch(fd, WRITABLE, id);
      if (rc < 0) {
        watcher.unregister(id);
        ops.close(fd);
        done(systemError('watch', rc));
        return;
      }
      pending.add(fd);
      return () => {
        if (!pending.delete(fd)) return;
        watcher.unwatch(fd, WRITABLE);
        watcher.unregister(id);
        ops.close(fd);
      };
    },
    datagram({ local, remote }, onDatagram, onError, done) {
      if (closed) {
        done(systemError('bind', -(ERRNO.EBADF as number)));
        return;
      }
      const fd = native.udpBind(local.host, local.port);
      if (fd < 0) {
        done(systemError('bind', fd));
        return;
      }
      if (remote !== null) {
        const rc = native.udpConnect(fd, remote.host, remote.port);
        if (rc < 0) {
          native.close(fd);
          done(systemError('connect', rc));
          return;
        }
      }
      const endpoint = new NativeDatagram(native, watcher, fd, remote !== null, onDatagram, onError, (e) =>
        datagrams.delete(e),
      );
      const rc = endpoint.start();
      if (rc < 0) {
        endpoint.close();
        done(systemError('watch', rc));
        return;
      }
      datagrams.add(endpoint);
      done(null, endpoint);
    },
    close() {
      closed = true;
      for (const endpoint of [...datagrams]) endpoint.close();
      for (const socket of [...sockets]) socket.destroy();
      for (const listener of [...listeners]) listener.close(() => undefined);
      for (const fd of pending) {
        watcher.unwatch(fd, WRITABLE);
        ops.close(fd);
      }
      sockets.clear();
      listeners.clear();
      pending.clear();
      watcher.close();
      sink = null;
    },
  };
}
