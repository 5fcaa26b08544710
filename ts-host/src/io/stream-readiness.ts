/**
 * Stream connections and servers on the readiness model (`selector`,
 * `virtual`, or a custom readiness backend): a connection owns a
 * non-blocking descriptor. `read()` reads when the descriptor is readable;
 * nothing is read ahead while the program may still read, so data waits in
 * the kernel until it asks. After `end()` the connection reads ahead (at
 * most HIGH_WATER_MARK) to see the peer's end of stream or reset, and then
 * releases its descriptor even if the program never reads again. `write()`
 * writes what the kernel takes and waits for writability for the rest.
 */
import type { ConnectionLimits } from '../arguments.js';
import type { ReadinessBackend, SocketAddress, SocketOps } from '../backends/backend.js';
import { READABLE, WRITABLE, acceptErrorIsTransient, acceptRetryDelay } from '../backends/backend.js';
import { parseAddress } from '../net/address.js';
import { EAGAIN } from '../errno.js';
import { BackendError, ConnectionClosedError } from '../errors.js';
import * as checked from './checked.js';
import { BaseConnection, type Connection, HIGH_WATER_MARK, LINGER_MS, WRITTEN } from './connection.js';
import { type IoLoop, type IoToken, abortReason, errnoName, ioError, toBytes } from './io-common.js';
import {
  type Accepted,
  BaseServer,
  type ConnectTarget,
  type ConnectionHandler,
  type ListenTarget,
  type Server,
  handling,
  listenError,
  pendingConnect,
  where,
} from './server.js';
import { CHUNK_BYTES, READ_BUFFER, takeRead } from '../net/slab.js';

/** A write the kernel has not taken all of yet: its bytes, how many went, and its caller's promise. */
interface QueuedWrite {
  bytes: Uint8Array;
  offset: number;
  resolve(): void;
  reject(error: unknown): void;
}

/** Nothing to do: the settle functions of an end() no caller waits for. */
const NO_CALLER = { resolve: () => undefined, reject: () => undefined };

class ReadinessConnection extends BaseConnection {
  readonly #loop: IoLoop;
  readonly #backend: ReadinessBackend;
  readonly #ops: SocketOps;
  readonly #fd: number;
  #readToken: IoToken | null = null;
  #writeToken: IoToken | null = null;
  #readWatched = false;
  #writeWatched = false;
  /** False after a read drained the socket: the next read waits for readiness instead of trying. */
  #mayHaveData = true;
  #eof = false;
  /** The error that ended reading while reading ahead (a reset): the next read's. */
  #readError: unknown = undefined;
  /** What was read ahead after end(), oldest first, and its size. */
  #ahead: Uint8Array[] = [];
  #aheadBytes = 0;
  #maxAhead = 0;
  #writes: QueuedWrite[] = [];
  #endAfterWrites: { resolve(): void; reject(e: unknown): void } | null = null;
  /** The lingering close's bound, once its writes are flushed. */
  #lingerTimer: { cancel(): void } | null = null;
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;

  constructor(loop: IoLoop, backend: ReadinessBackend, fd: number, limits: ConnectionLimits) {
    super();
    this.#loop = loop;
    this.#backend = backend;
    this.#ops = backend.sockets;
    this.#fd = fd;
    this.localAddress = parseAddress(this.#ops.address(fd, false));
    this.remoteAddress = parseAddress(this.#ops.address(fd, true));
    loop._track(this, true);
    this.startLimits(loop, limits);
    // A failure means the connection is gone already: its next read or write says so.
    if (limits.tcp !== null) this.#ops.setTcpOptions?.(fd, limits.tcp.noDelay, limits.tcp.keepAliveMs);
  }

  override get maxBuffered(): number {
    return this.#maxAhead;
  }

  /** Reads once: a chunk, null at end of stream, or undefined if it would block. */
  #tryRead(): Uint8Array | null | undefined {
    const room = CHUNK_BYTES;
    const n = checked.read(this.#backend, this.#fd, READ_BUFFER, room);
    if (n > 0) {
      if (n < room) this.#mayHaveData = false;
      this.active();
      return takeRead(n);
    }
    if (n === 0) {
      this.#eof = true;
      this.#stopReading();
      return null;
    }
    if (n === -EAGAIN) {
      this.#mayHaveData = false;
      return undefined;
    }
    throw ioError('read', errnoName(n));
  }

  protected readChunk(options?: { signal?: AbortSignal }): Promise<Uint8Array | null> {
    const signal = options?.signal;
    const refused = this.refuseRead(signal);
    if (refused !== null) return refused;
    const ahead = this.#ahead.shift();
    if (ahead !== undefined) {
      this.#aheadBytes -= ahead.length;
      this.#readAhead();
      return Promise.resolve(ahead);
    }
    if (this.#readError !== undefined) return Promise.reject(this.#readError);
    if (this.#eof) return Promise.resolve(null);
    if (this.#mayHaveData) {
      try {
        const chunk = this.#tryRead();
        if (chunk !== undefined) {
          if (chunk === null) this.#closeIfDone();
          return Promise.resolve(chunk);
        }
      } catch (error) {
        this.#failedBy(error);
        return Promise.reject(error);
      }
    }
    const waiting = this.startPendingRead(signal, this.#stopReadingNow);
    this.#watchReadable();
    return waiting;
  }

  /** The loop ran the read watcher: the descriptor is readable. */
  readonly #onReadable = (): void => {
    this.#mayHaveData = true;
    if (this.pendingRead === null) {
      if (this.ended) this.#drain();
      // Level-triggered: stop watching until someone reads.
      else this.#stopReading();
      return;
    }
    let chunk: Uint8Array | null | undefined;
    try {
      chunk = this.#tryRead();
    } catch (error) {
      this.#stopReading();
      this.settleRead(null, error);
      this.#failedBy(error);
      return;
    }
    if (chunk !== undefined) this.settleRead(chunk);
    if (chunk === null) this.#closeIfDone();
  };

  /**
   * After end() (no read pending): reads what arrived, to see the peer's
   * end of stream or reset. Kept for the program's reads, at most
   * HIGH_WATER_MARK of it; discarded during a lingering close.
   */
  #drain(): void {
    const discard = this.closing;
    while (discard || this.#aheadBytes < HIGH_WATER_MARK) {
      let chunk: Uint8Array | null | undefined;
      try {
        chunk = this.#tryRead();
      } catch (error) {
        this.#readError = error;
        this.#stopReading();
        if (error instanceof BackendError) {
          this.close();
          return;
        }
        break;
      }
      if (chunk === undefined) return;
      if (chunk === null) break;
      if (!discard) {
        this.#ahead.push(chunk);
        this.#aheadBytes += chunk.length;
        if (this.#aheadBytes > this.#maxAhead) this.#maxAhead = this.#aheadBytes;
      }
      // A short read emptied the socket: the watch reports what comes next.
      if (!this.#mayHaveData) return;
    }
    if (this.#eof || this.#readError !== undefined) this.#closeIfDone();
    // Full: what else arrives waits in the kernel until the program reads.
    else this.#stopReading();
  }

  /** Starts reading ahead once the connection is ended (and no read is pending). */
  #readAhead(): void {
    if (!this.ended || this.released || this.#eof || this.#readError !== undefined || this.pendingRead !== null) return;
    if (this.#endAfterWrites !== null || this.#writes.length > 0) return;
    if (this.#mayHaveData) this.#drain();
    if (this.released || this.#eof || this.#readError !== undefined) return;
    if (this.closing || this.#aheadBytes < HIGH_WATER_MARK) this.#watchReadable();
  }

  /**
   * Both directions are done (the end of stream or a reset seen, our end
   * flushed): release the descriptor; what was read ahead stays readable.
   * A lingering close is over then.
   */
  #closeIfDone(): void {
    if (this.#eof === false && this.#readError === undefined) return;
    if (!this.ended || this.#writes.length > 0 || this.#endAfterWrites !== null) return;
    if (this.closing) this.close();
    else this.#release();
  }

  #watchReadable(): void {
    if (this.#readWatched) return;
    this.#readToken ??= this.#loop._watch(this.#onReadable);
    // Edge-triggered will do: a read that comes back short or with EAGAIN
    // (#mayHaveData false) is the only thing that makes the next one wait.
    try {
      checked.mustWatch(this.#backend, this.#fd, READABLE, this.#readToken.slot, true);
    } catch (error) {
      this.settleRead(null, error);
      this.#failedBy(error);
      return;
    }
    this.#readWatched = true;
  }

  /** A misbehaving backend (a BackendError) fails the whole connection, not just the operation. */
  #failedBy(error: unknown): void {
    if (error instanceof BackendError) this.close();
  }

  /** What a cancelled read undoes (one function per connection, not one per read). */
  readonly #stopReadingNow = (): void => this.#stopReading();

  #stopReading(): void {
    if (!this.#readWatched) return;
    this.#backend.unwatch(this.#fd, READABLE);
    this.#readWatched = false;
  }

  write(data: Uint8Array | string): Promise<void> {
    const refused = this.refuseWrite('write');
    if (refused !== null) return refused;
    let bytes: Uint8Array;
    try {
      bytes = toBytes('write', data);
    } catch (error) {
      return Promise.reject(error);
    }
    this.active();
    let offset = 0;
    if (this.#writes.length === 0) {
      let n: number;
      try {
        n = bytes.length === 0 ? 0 : checked.write(this.#backend, this.#fd, bytes, 0, bytes.length);
      } catch (error) {
        this.#failedBy(error);
        return Promise.reject(error);
      }
      if (n === bytes.length) return WRITTEN;
      if (n < 0 && n !== -EAGAIN) return Promise.reject(ioError('write', errnoName(n)));
      offset = Math.max(n, 0);
    }
    return new Promise((resolve, reject) => {
      this.#writes.push({ bytes, offset, resolve, reject });
      this.#watchWritable();
    });
  }

  /** The loop ran the write watcher: the descriptor is writable. */
  readonly #onWritable = (): void => {
    const writes = this.#writes;
    while (writes.length > 0) {
      const w = writes[0] as QueuedWrite;
      let n: number;
      try {
        n = checked.write(this.#backend, this.#fd, w.bytes, w.offset, w.bytes.length - w.offset);
      } catch (error) {
        this.#failWrites(error);
        this.#failedBy(error);
        return;
      }
      if (n === -EAGAIN) return;
      if (n < 0) {
        this.#failWrites(ioError('write', errnoName(n)));
        return;
      }
      if (n > 0) this.active();
      w.offset += n;
      if (w.offset < w.bytes.length) return;
      writes.shift();
      w.resolve();
    }
    this.#stopWriting();
    if (this.#endAfterWrites !== null) this.#shutdown();
  };

  #watchWritable(): void {
    if (this.#writeWatched) return;
    this.#writeToken ??= this.#loop._watch(this.#onWritable);
    // Edge-triggered will do: #onWritable writes until EAGAIN or a short write.
    try {
      checked.mustWatch(this.#backend, this.#fd, WRITABLE, this.#writeToken.slot, true);
    } catch (error) {
      this.#failWrites(error);
      this.#failedBy(error);
      return;
    }
    this.#writeWatched = true;
  }

  #stopWriting(): void {
    if (!this.#writeWatched) return;
    this.#backend.unwatch(this.#fd, WRITABLE);
    this.#writeWatched = false;
  }

  #failWrites(error: unknown): void {
    const writes = this.#writes;
    this.#writes = [];
    this.#stopWriting();
    for (const w of writes) w.reject(error);
    const end = this.#endAfterWrites;
    this.#endAfterWrites = null;
    end?.reject(error);
    // A lingering close whose writes failed has nothing left to wait for.
    if (this.closing) this.close();
  }

  end(): Promise<void> {
    const refused = this.refuseWrite('end');
    if (refused !== null) return refused;
    this.ended = true;
    return new Promise((resolve, reject) => {
      this.#endAfterWrites = { resolve, reject };
      if (this.#writes.length === 0) this.#shutdown();
    });
  }

  #shutdown(): void {
    const end = this.#endAfterWrites;
    this.#endAfterWrites = null;
    const rc = this.#ops.shutdownWrite(this.#fd);
    if (rc < 0 && errnoName(rc) !== 'ENOTCONN') end?.reject(ioError('shutdown', errnoName(rc)));
    else end?.resolve();
    this.#closeIfDone();
    if (this.released) return;
    if (this.closing) this.#startLinger();
    this.#readAhead();
  }

  closeGracefully(): void {
    if (this.isClosed || this.closing) return;
    this.closing = true;
    this.settleRead(null, new ConnectionClosedError('read: the connection was closed by its server'));
    if (this.released) {
      this.close();
      return;
    }
    if (!this.ended) {
      // As end(), with no caller to tell: after the queued writes.
      this.ended = true;
      this.#endAfterWrites = NO_CALLER;
      if (this.#writes.length === 0) this.#shutdown();
      return;
    }
    if (this.#endAfterWrites !== null) return; // #shutdown lingers once the writes are out
    this.#ahead = [];
    this.#aheadBytes = 0;
    this.#closeIfDone();
    if (this.isClosed) return;
    this.#startLinger();
    this.#readAhead();
  }

  /** Half-closed and flushed: wait at most LINGER_MS for the peer's end of stream. */
  #startLinger(): void {
    this.#lingerTimer ??= this.#loop.callLater(LINGER_MS, () => {
      this.#lingerTimer = null;
      this.close();
    });
  }

  /** Frees the descriptor, its watches and tokens, once. */
  #release(): void {
    if (this.released) return;
    this.#stopReading();
    this.#stopWriting();
    if (this.#readToken !== null) this.#loop._release(this.#readToken);
    if (this.#writeToken !== null) this.#loop._release(this.#writeToken);
    this.#readToken = this.#writeToken = null;
    this.#ops.close(this.#fd);
    this.#loop._track(this, false);
    this.markReleased();
  }

  protected closeWith(closedError: Error): void {
    if (this.isClosed) return;
    this.#lingerTimer?.cancel();
    this.#lingerTimer = null;
    this.#release();
    this.isClosed = true;
    this.settleRead(null, closedError);
    this.#failWrites(closedError);
    this.#ahead = [];
    this.#aheadBytes = 0;
    this.markClosed();
  }
}

class ReadinessServer extends BaseServer {
  readonly #backend: ReadinessBackend;
  readonly #fd: number;
  readonly #open: (fd: number) => Accepted;
  readonly #address: SocketAddress;
  #token: IoToken | null;
  /** A Unix listener's socket file is removed with it: false for an adopted one, whose binder owns the file. */
  readonly #ownsPath: boolean;
  /** The timer that resumes accepting after a failed accept. */
  #retry: { cancel(): void } | null = null;
  /** Accepts in a row that failed for lack of resources: the back-off's count. */
  #failures = 0;

  constructor(
    loop: IoLoop,
    backend: ReadinessBackend,
    fd: number,
    open: (fd: number) => Accepted,
    maxConnections: number,
    ownsPath: boolean,
  ) {
    super(loop, maxConnections);
    this.#backend = backend;
    this.#fd = fd;
    this.#open = open;
    this.#ownsPath = ownsPath;
    this.#address = parseAddress(backend.sockets.address(fd, false));
    this.#token = loop._watch(this.#onAcceptable);
    try {
      checked.mustWatch(backend, fd, READABLE, this.#token.slot);
    } catch (error) {
      loop._release(this.#token);
      backend.sockets.close(fd);
      throw error;
    }
    loop._track(this, true);
  }

  address(): SocketAddress {
    return { ...this.#address };
  }

  readonly #onAcceptable = (): void => {
    // Bounded, so one busy listener cannot monopolise an iteration; the
    // level-triggered watch reports the rest next time.
    for (let i = 0; i < 64 && this.#token !== null; i++) {
      const fd = this.#backend.sockets.accept(this.#fd);
      if (fd === -EAGAIN) return;
      if (fd < 0) {
        const code = errnoName(fd);
        if (acceptErrorIsTransient(code)) continue;
        this.#pauseAccepting(ioError('accept', code));
        return;
      }
      this.#failures = 0;
      this.accepted();
      if (this.full()) this.#backend.sockets.close(fd);
      else this.adopt(this.#open(fd));
    }
  };

  /**
   * An accept failed (out of descriptors, say): the listener stays readable,
   * so watching it on would spin. Stop, report (once per episode), try
   * again after the back-off.
   */
  #pauseAccepting(error: Error): void {
    this.#backend.unwatch(this.#fd, READABLE);
    this.acceptFailed(error);
    this.#retry = this.loop.callLater(acceptRetryDelay(++this.#failures), () => {
      this.#retry = null;
      if (this.#token === null) return;
      try {
        checked.mustWatch(this.#backend, this.#fd, READABLE, this.#token.slot);
      } catch (error) {
        this.#pauseAccepting(error as Error);
      }
    });
  }

  protected stopListening(): void {
    this.#retry?.cancel();
    this.#retry = null;
    if (this.#token === null) return;
    this.#backend.unwatch(this.#fd, READABLE);
    this.loop._release(this.#token);
    this.#token = null;
    this.#backend.sockets.close(this.#fd);
    // A Unix listener's socket file goes with it (as Node and libuv do), unless it was adopted.
    const { family, path } = this.#address;
    if (family === 'unix' && path && this.#ownsPath) this.#backend.sockets.unlink?.(path);
  }
}

/** Listens; `open(fd)` makes what each accepted connection becomes. */
export function listenReadinessWith(
  loop: IoLoop,
  backend: ReadinessBackend,
  open: (fd: number) => Accepted,
  options: ListenTarget,
): Server {
  const { sockets } = backend;
  const fd =
    options.fd !== undefined
      ? (sockets.adoptListener as (fd: number) => number)(options.fd)
      : options.path !== undefined
        ? (sockets.listenUnix as (path: string, backlog: number) => number)(options.path, options.backlog)
        : sockets.listen(options.host, options.port, options.backlog, options.reusePort);
  if (fd < 0) throw listenError(errnoName(fd), options);
  return new ReadinessServer(loop, backend, fd, open, options.maxConnections, options.fd === undefined);
}

export function listenReadiness(
  loop: IoLoop,
  backend: ReadinessBackend,
  onConnection: ConnectionHandler,
  options: ListenTarget,
): Server {
  const open = (fd: number) => new ReadinessConnection(loop, backend, fd, options.limits);
  return listenReadinessWith(loop, backend, handling(loop, onConnection, open), options);
}

export function connectReadiness(loop: IoLoop, backend: ReadinessBackend, options: ConnectTarget): Promise<Connection> {
  return connectReadinessWith(
    loop,
    backend,
    options,
    (fd) => new ReadinessConnection(loop, backend, fd, options.limits),
  );
}

/**
 * Connects; `open(fd)` makes what the connected descriptor becomes. If
 * `options.signal` aborts first, the attempt is abandoned (its descriptor
 * closed) and the promise rejects with the signal's reason.
 */
export function connectReadinessWith<T>(
  loop: IoLoop,
  backend: ReadinessBackend,
  options: ConnectTarget,
  open: (fd: number) => T,
): Promise<T> {
  const at = where(options);
  const signal = options.signal;
  if (signal?.aborted) return Promise.reject(abortReason(signal, 'connect'));
  const { sockets } = backend;
  const fd =
    options.path !== undefined
      ? (sockets.connectUnix as (path: string) => number)(options.path)
      : sockets.connect(options.host, options.port);
  if (fd < 0) return Promise.reject(ioError('connect', errnoName(fd), at));
  return new Promise((resolve, reject) => {
    const attempt = pendingConnect(loop, signal, reject, () => {
      backend.unwatch(fd, WRITABLE);
      loop._release(token);
      backend.sockets.close(fd);
    });
    const token = loop._watch(() => {
      if (!attempt.settle()) return;
      backend.unwatch(fd, WRITABLE);
      loop._release(token);
      const rc = backend.sockets.connectError(fd);
      if (rc < 0) {
        backend.sockets.close(fd);
        reject(ioError('connect', errnoName(rc), at));
        return;
      }
      try {
        resolve(open(fd));
      } catch (error) {
        reject(error);
      }
    });
    try {
      checked.mustWatch(backend, fd, WRITABLE, token.slot, undefined, at);
    } catch (error) {
      attempt.settle();
      loop._release(token);
      backend.sockets.close(fd);
      reject(error);
    }
  });
}
