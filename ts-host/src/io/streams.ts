/**
 * TCP streams over the loop: `Server` and `Connection`, one implementation
 * per I/O model.
 *
 * - Readiness (`selector`): the connection owns a non-blocking descriptor.
 *   `read()` reads when the descriptor is readable; `write()` writes what
 *   the kernel takes and waits for writability for the rest. Nothing is read
 *   ahead: data waits in the kernel until the program asks for it.
 * - Completion (`completion`): the host performs reads and writes; a read
 *   completes with the next chunk the host received (at most one high-water
 *   mark of chunks is buffered, then the host stops reading), a write when
 *   the host has accepted all of it.
 *
 * Either way, every completion reaches the program as a callback the loop
 * core ordered: a watcher (readiness) or an expected completion (completion)
 * in the iteration's batch, after timers.
 */
import type {
  CompletionBackend,
  CompletionListener,
  CompletionSocket,
  ReadinessBackend,
  SocketAddress,
  SocketOps,
} from '../backends/backend.js';
import { ACCEPT_RETRY_MS, READABLE, WRITABLE, acceptErrorIsTransient } from '../backends/backend.js';
import { parseAddress } from '../net/address.js';
import { EAGAIN, errnoName } from '../errno.js';
import { CHUNK_BYTES, currentSlab, readRoom, slabOffset, takeRead } from '../net/slab.js';
import {
  AddressInUseError,
  ConnectionClosedError,
  ConnectionRefusedError,
  ConnectionResetError,
  IncompleteReadError,
  IoError,
  LimitOverrunError,
  LoopClosedError,
  WasmloopError,
  WriteAfterEndError,
  describe,
} from '../errors.js';

/** A TCP connection. */
export interface Connection extends AsyncIterable<Uint8Array> {
  /**
   * The next chunk of data, or `null` at the end of the stream. One read at
   * a time. `signal` cancels a pending read (it rejects with the signal's
   * reason; no data is lost).
   */
  read(options?: { signal?: AbortSignal }): Promise<Uint8Array | null>;
  /**
   * Exactly `n` bytes (asyncio's `readexactly`), across as many chunks as it
   * takes; what a chunk holds beyond them is kept for the next read.
   * IncompleteReadError if the stream ends first. A cancelled
   * `readExactly` loses nothing: what it had read is read again next.
   */
  readExactly(n: number, options?: { signal?: AbortSignal }): Promise<Uint8Array>;
  /**
   * The data up to and including `separator` (default `'\n'`; asyncio's
   * `readuntil`). IncompleteReadError if the stream ends first;
   * LimitOverrunError if `limit` bytes (default 65536) arrive without it, the
   * data then staying buffered.
   */
  readUntil(separator?: Uint8Array | string, options?: { limit?: number; signal?: AbortSignal }): Promise<Uint8Array>;
  /**
   * One line, with its `'\n'` (asyncio's `readline`): at the end of the
   * stream the last, unterminated part, then `null`.
   */
  readLine(options?: { limit?: number; signal?: AbortSignal }): Promise<Uint8Array | null>;
  /** Writes `data`; resolves when the system has accepted all of it (backpressure). */
  write(data: Uint8Array | string): Promise<void>;
  /**
   * The connection's incoming bytes as a WHATWG ReadableStream (for
   * `pipeTo`, `pipeThrough(new TextDecoderStream())`, `new Response(...)`):
   * it pulls with `read()`, so it takes the place of reading by hand;
   * cancelling it closes the connection.
   */
  readonly readable: ReadableStream<Uint8Array>;
  /**
   * A WritableStream over `write()`: closing it calls `end()` (the peer reads
   * the end of the stream), aborting it `close()`.
   */
  readonly writable: WritableStream<Uint8Array | string>;
  /** Half-closes after pending writes: the peer reads the end of the stream. */
  end(): Promise<void>;
  /** Closes now; pending reads and writes reject with ConnectionClosedError. Idempotent. */
  close(): void;
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;
  /** True once closed (by `close()`, or after both directions ended). */
  readonly closed: boolean;
  /** The most bytes this connection ever held in memory for reading: 0 for readiness, at most HIGH_WATER_MARK for completion. */
  readonly maxBuffered: number;
}

/** A listening TCP server. */
export interface Server {
  address(): SocketAddress;
  /** Stops accepting; resolves once every open connection has closed. */
  close(): Promise<void>;
  /** Connections accepted and still open. */
  readonly connections: number;
}

export type ConnectionHandler = (connection: Connection) => void | Promise<void>;

/** What the streams need from the loop. */
export interface IoLoop {
  /** A persistent callback for readiness; its token is `slot`. */
  _watch(callback: () => void): IoToken;
  /** A one-shot callback for a completion; its token is `slot`. */
  _expect(callback: () => void): IoToken;
  /** Cancels a token's callback. */
  _release(token: IoToken): void;
  /** Reports an error that has no caller to reject (the exception handler). */
  _report(message: string, error: unknown): void;
  /** Tracks an open resource, closed with the loop. */
  _track(resource: { close(): void }, open: boolean): void;
  /** A timer: `callback` after `delayMs` of loop time. */
  callLater(delayMs: number, callback: () => void): { cancel(): void };
  /** `callback` in the next iteration. */
  callSoon(callback: () => void): unknown;
  isClosed(): boolean;
}

export interface IoToken {
  readonly slot: number;
  readonly generation: number;
}

export { CHUNK_BYTES };

/**
 * The most a completion-model connection buffers for reading: the host
 * stops reading once CHUNK_BYTES are buffered, and the chunk in flight
 * at that moment can add at most CHUNK_BYTES more.
 */
export const HIGH_WATER_MARK = 2 * CHUNK_BYTES;

const encoder = new TextEncoder();

// --------------------------------------------------------------- errors

/**
 * What a write the kernel (or host) took at once returns: one settled
 * promise shared by all of them, as nothing can change a settled promise,
 * so the common write allocates none.
 */
const WRITTEN: Promise<void> = Promise.resolve();

export { errnoName };

/** The error for a failed `syscall` with `code` (`ECONNREFUSED`, ...). */
export function ioError(syscall: string, code: string, detail?: string, cause?: unknown): IoError {
  const options = cause === undefined ? undefined : { cause };
  switch (code) {
    case 'ECONNREFUSED':
      return new ConnectionRefusedError(syscall, code, detail, options);
    case 'EADDRINUSE':
      return new AddressInUseError(syscall, code, detail, options);
    case 'ECONNRESET':
    case 'EPIPE':
      return new ConnectionResetError(syscall, code, detail, options);
    default:
      return new IoError(syscall, code, detail, options);
  }
}

export function fromHostError(syscall: string, error: unknown, detail?: string): IoError {
  const code = (error as { code?: unknown }).code;
  return ioError(syscall, typeof code === 'string' ? code : 'EIO', detail ?? (error as Error).message, error);
}

export function toBytes(operation: string, data: unknown): Uint8Array {
  if (typeof data === 'string') return encoder.encode(data);
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError(`${operation}: data must be a Uint8Array or a string, got ${data === null ? 'null' : typeof data}`);
}

const NEWLINE = new Uint8Array([10]);

/** The default and largest `limit` of readUntil and readLine, in bytes. */
const DEFAULT_READ_LIMIT = 64 * 1024;

function checkLimit(operation: string, limit: unknown): number {
  if (limit === undefined) return DEFAULT_READ_LIMIT;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1) {
    throw new RangeError(`${operation}: limit must be an integer >= 1, got ${describe(limit)}`);
  }
  return limit;
}

/** `parts` joined into one new array. */
function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array;
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Where `needle` first occurs in `haystack` at or after `from`, or -1. */
function indexOfBytes(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  const first = needle[0] as number;
  const last = haystack.length - needle.length;
  for (let i = haystack.indexOf(first, from); i !== -1 && i <= last; i = haystack.indexOf(first, i + 1)) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

function abortReason(signal: AbortSignal, what = 'read'): unknown {
  return signal.reason ?? new DOMException(`The ${what} was aborted`, 'AbortError');
}

/** `signal` as an operation's option: undefined, or an AbortSignal (TypeError otherwise). */
export function checkSignal(operation: string, signal: unknown): AbortSignal | undefined {
  if (signal === undefined) return undefined;
  const s = signal as Partial<AbortSignal> | null;
  if (typeof s !== 'object' || s === null || typeof s.aborted !== 'boolean' || typeof s.addEventListener !== 'function') {
    throw new TypeError(`${operation}: signal must be an AbortSignal, got ${describe(signal)}`);
  }
  return signal as AbortSignal;
}

/** `promise`, unless `signal` aborts first: then its reason. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(abortReason(signal, 'connect'));
  return new Promise<T>((resolve, reject) => {
    const stop = onAbortOf(signal, () => reject(abortReason(signal, 'connect')));
    promise.then(
      (value) => {
        stop();
        resolve(value);
      },
      (error: unknown) => {
        stop();
        reject(error);
      },
    );
  });
}

/**
 * Calls `onAbort` once if `signal` aborts; returns the function that stops
 * listening (call it once the operation finished either way).
 */
function onAbortOf(signal: AbortSignal | undefined, onAbort: () => void): () => void {
  if (signal === undefined) return () => undefined;
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

interface PendingRead {
  resolve(chunk: Uint8Array | null): void;
  reject(error: unknown): void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

interface QueuedWrite {
  bytes: Uint8Array;
  offset: number;
  resolve(): void;
  reject(error: unknown): void;
}

/** Shared parts of both connection models. */
abstract class BaseConnection implements Connection {
  protected pendingRead: PendingRead | null = null;
  protected isClosed = false;
  protected ended = false;
  protected onClosed: Array<() => void> = [];
  abstract readonly localAddress: SocketAddress;
  abstract readonly remoteAddress: SocketAddress;
  /** The transport's next chunk (what `read()` returns when nothing is buffered here). */
  protected abstract readChunk(options?: { signal?: AbortSignal }): Promise<Uint8Array | null>;
  abstract write(data: Uint8Array | string): Promise<void>;
  /** Bytes a framed read took beyond what it returned (or gave back when cancelled): read first. */
  #buffered: Uint8Array | null = null;
  /** A framed read (readExactly, readUntil, readLine) is in progress. */
  #framing = false;

  read(options?: { signal?: AbortSignal }): Promise<Uint8Array | null> {
    if (this.#framing) return Promise.reject(new WasmloopError('read: another read is pending on this connection'));
    return this.#next(options);
  }

  #readable: ReadableStream<Uint8Array> | null = null;
  #writable: WritableStream<Uint8Array | string> | null = null;

  get readable(): ReadableStream<Uint8Array> {
    this.#readable ??= new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          const chunk = await this.read();
          if (chunk === null) controller.close();
          else controller.enqueue(chunk);
        },
        cancel: () => this.close(),
      },
      // Read only when the consumer asks: data waits in the kernel, not here.
      { highWaterMark: 0 },
    );
    return this.#readable;
  }

  get writable(): WritableStream<Uint8Array | string> {
    this.#writable ??= new WritableStream<Uint8Array | string>({
      write: (chunk) => this.write(chunk),
      close: () => this.end(),
      abort: () => this.close(),
    });
    return this.#writable;
  }

  /** What a framed read left over, else the transport's next chunk. */
  #next(options?: { signal?: AbortSignal }): Promise<Uint8Array | null> {
    const buffered = this.#buffered;
    if (buffered === null) return this.readChunk(options);
    const refused = this.refuseRead(options?.signal);
    if (refused !== null) return refused;
    this.#buffered = null;
    return Promise.resolve(buffered);
  }

  /** Puts `bytes` back in front of what is buffered. */
  #unread(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.#buffered = this.#buffered === null ? bytes : concatBytes([bytes, this.#buffered]);
  }

  /** Runs a framed read: one at a time, and not beside a plain read. */
  async #framed<T>(operation: string, body: () => Promise<T>): Promise<T> {
    if (this.#framing || this.pendingRead !== null) {
      throw new WasmloopError(`${operation}: another read is pending on this connection`);
    }
    this.#framing = true;
    try {
      return await body();
    } finally {
      this.#framing = false;
    }
  }

  readExactly(n: number, options?: { signal?: AbortSignal }): Promise<Uint8Array> {
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
      return Promise.reject(
        typeof n === 'number'
          ? new RangeError(`readExactly: n must be an integer >= 0, got ${describe(n)}`)
          : new TypeError(`readExactly: n must be a number of bytes, got ${describe(n)}`),
      );
    }
    return this.#framed('readExactly', async () => {
      const parts: Uint8Array[] = [];
      let have = 0;
      try {
        while (have < n) {
          const chunk = await this.#next(options);
          if (chunk === null) {
            const partial = concatBytes(parts);
            parts.length = 0;
            throw new IncompleteReadError('readExactly', partial, n);
          }
          const take = Math.min(chunk.length, n - have);
          parts.push(take === chunk.length ? chunk : chunk.subarray(0, take));
          have += take;
          if (take < chunk.length) this.#unread(chunk.subarray(take));
        }
      } catch (error) {
        // Cancelled or failed: what was read is read again next time.
        this.#unread(concatBytes(parts));
        throw error;
      }
      return parts.length === 1 ? (parts[0] as Uint8Array) : concatBytes(parts);
    });
  }

  readUntil(separator: Uint8Array | string = '\n', options?: { limit?: number; signal?: AbortSignal }): Promise<Uint8Array> {
    let sep: Uint8Array;
    let limit: number;
    try {
      sep = toBytes('readUntil', separator);
      if (sep.length === 0) throw new TypeError('readUntil: separator must not be empty');
      limit = checkLimit('readUntil', options?.limit);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#framed('readUntil', () => this.#readUntil('readUntil', sep, limit, options?.signal));
  }

  readLine(options?: { limit?: number; signal?: AbortSignal }): Promise<Uint8Array | null> {
    let limit: number;
    try {
      limit = checkLimit('readLine', options?.limit);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#framed('readLine', async () => {
      try {
        return await this.#readUntil('readLine', NEWLINE, limit, options?.signal);
      } catch (error) {
        // The last line may lack its newline; after it, the end of the stream.
        if (error instanceof IncompleteReadError) return error.partial.length > 0 ? error.partial : null;
        throw error;
      }
    });
  }

  async #readUntil(operation: string, sep: Uint8Array, limit: number, signal: AbortSignal | undefined): Promise<Uint8Array> {
    let data: Uint8Array = new Uint8Array(0);
    let from = 0;
    for (;;) {
      const at = indexOfBytes(data, sep, from);
      if (at >= 0) {
        const end = at + sep.length;
        if (end > limit) {
          this.#unread(data);
          throw new LimitOverrunError(operation, limit, data.length);
        }
        this.#unread(data.subarray(end));
        return data.subarray(0, end);
      }
      if (data.length > limit) {
        this.#unread(data);
        throw new LimitOverrunError(operation, limit, data.length);
      }
      from = Math.max(0, data.length - sep.length + 1);
      let chunk: Uint8Array | null;
      try {
        chunk = await this.#next(signal === undefined ? undefined : { signal });
      } catch (error) {
        this.#unread(data);
        throw error;
      }
      if (chunk === null) throw new IncompleteReadError(operation, data, null);
      data = data.length === 0 ? chunk : concatBytes([data, chunk]);
    }
  }
  abstract end(): Promise<void>;
  abstract close(): void;

  get closed(): boolean {
    return this.isClosed;
  }

  get maxBuffered(): number {
    return 0;
  }

  /** Calls `fn` once the connection closes. */
  whenClosed(fn: () => void): void {
    if (this.isClosed) fn();
    else this.onClosed.push(fn);
  }

  protected markClosed(): void {
    this.isClosed = true;
    const callbacks = this.onClosed;
    this.onClosed = [];
    for (const fn of callbacks) fn();
  }

  /** Checks a new read may start; returns a rejection if not. */
  protected refuseRead(signal: AbortSignal | undefined): Promise<never> | null {
    try {
      checkSignal('read', signal);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.isClosed) return Promise.reject(new ConnectionClosedError('read: the connection is closed'));
    if (this.pendingRead !== null) return Promise.reject(new WasmloopError('read: another read is pending on this connection'));
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return null;
  }

  protected startPendingRead(signal: AbortSignal | undefined, onCancel: () => void): Promise<Uint8Array | null> {
    return new Promise((resolve, reject) => {
      const pending: PendingRead = { resolve, reject, signal, onAbort: undefined };
      if (signal !== undefined) {
        pending.onAbort = () => {
          if (this.pendingRead !== pending) return;
          this.pendingRead = null;
          onCancel();
          reject(abortReason(signal));
        };
        signal.addEventListener('abort', pending.onAbort, { once: true });
      }
      this.pendingRead = pending;
    });
  }

  /** Ends the pending read with `chunk` or `error`. */
  protected settleRead(chunk: Uint8Array | null, error?: unknown): void {
    const pending = this.pendingRead;
    if (pending === null) return;
    this.pendingRead = null;
    if (pending.signal !== undefined && pending.onAbort !== undefined) {
      pending.signal.removeEventListener('abort', pending.onAbort);
    }
    if (error !== undefined) pending.reject(error);
    else pending.resolve(chunk);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      const chunk = await this.read();
      if (chunk === null) return;
      yield chunk;
    }
  }
}

// ------------------------------------------------------------ readiness

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
  #writes: QueuedWrite[] = [];
  #endAfterWrites: { resolve(): void; reject(e: unknown): void } | null = null;
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;

  constructor(loop: IoLoop, backend: ReadinessBackend, fd: number) {
    super();
    this.#loop = loop;
    this.#backend = backend;
    this.#ops = backend.sockets;
    this.#fd = fd;
    this.localAddress = parseAddress(this.#ops.address(fd, false));
    this.remoteAddress = parseAddress(this.#ops.address(fd, true));
    loop._track(this, true);
  }

  /** Reads once: a chunk, null at end of stream, or undefined if it would block. */
  #tryRead(): Uint8Array | null | undefined {
    const room = readRoom();
    const n = this.#ops.read(this.#fd, currentSlab(), slabOffset(), room);
    if (n > 0) {
      if (n < room) this.#mayHaveData = false;
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
    if (this.#eof) return Promise.resolve(null);
    if (this.#mayHaveData) {
      try {
        const chunk = this.#tryRead();
        if (chunk !== undefined) {
          if (chunk === null) this.#closeIfDone();
          return Promise.resolve(chunk);
        }
      } catch (error) {
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
      // Level-triggered: stop watching until someone reads.
      this.#stopReading();
      return;
    }
    let chunk: Uint8Array | null | undefined;
    try {
      chunk = this.#tryRead();
    } catch (error) {
      this.#stopReading();
      this.settleRead(null, error);
      return;
    }
    if (chunk !== undefined) this.settleRead(chunk);
    if (chunk === null) this.#closeIfDone();
  };

  /** Both directions are done (end of stream read, our end flushed): release the descriptor. */
  #closeIfDone(): void {
    if (this.#eof && this.ended && this.#writes.length === 0 && this.#endAfterWrites === null) this.close();
  }

  #watchReadable(): void {
    if (this.#readWatched) return;
    this.#readToken ??= this.#loop._watch(this.#onReadable);
    // Edge-triggered will do: a read that comes back short or with EAGAIN
    // (#mayHaveData false) is the only thing that makes the next one wait.
    const rc = this.#backend.watch(this.#fd, READABLE, this.#readToken.slot, true);
    if (rc < 0) {
      this.settleRead(null, ioError('watch', errnoName(rc)));
      return;
    }
    this.#readWatched = true;
  }

  /** What a cancelled read undoes (one function per connection, not one per read). */
  readonly #stopReadingNow = (): void => this.#stopReading();

  #stopReading(): void {
    if (!this.#readWatched) return;
    this.#backend.unwatch(this.#fd, READABLE);
    this.#readWatched = false;
  }

  write(data: Uint8Array | string): Promise<void> {
    if (this.isClosed) return Promise.reject(new ConnectionClosedError('write: the connection is closed'));
    if (this.ended) return Promise.reject(new WriteAfterEndError('write: the connection was ended (end() was called)'));
    let bytes: Uint8Array;
    try {
      bytes = toBytes('write', data);
    } catch (error) {
      return Promise.reject(error);
    }
    let offset = 0;
    if (this.#writes.length === 0) {
      const n = bytes.length === 0 ? 0 : this.#ops.write(this.#fd, bytes, 0, bytes.length);
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
      const n = this.#ops.write(this.#fd, w.bytes, w.offset, w.bytes.length - w.offset);
      if (n === -EAGAIN) return;
      if (n < 0) {
        this.#failWrites(ioError('write', errnoName(n)));
        return;
      }
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
    const rc = this.#backend.watch(this.#fd, WRITABLE, this.#writeToken.slot, true);
    if (rc < 0) {
      this.#failWrites(ioError('watch', errnoName(rc)));
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
  }

  end(): Promise<void> {
    if (this.isClosed) return Promise.reject(new ConnectionClosedError('end: the connection is closed'));
    if (this.ended) return Promise.reject(new WriteAfterEndError('end: the connection was already ended'));
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
  }

  close(): void {
    if (this.isClosed) return;
    this.#stopReading();
    this.#stopWriting();
    if (this.#readToken !== null) this.#loop._release(this.#readToken);
    if (this.#writeToken !== null) this.#loop._release(this.#writeToken);
    this.#readToken = this.#writeToken = null;
    this.#ops.close(this.#fd);
    this.#loop._track(this, false);
    const closedError = new ConnectionClosedError('the connection was closed');
    this.settleRead(null, closedError);
    this.#failWrites(closedError);
    this.markClosed();
  }
}

/** What a server opens for each accepted connection: a stream or a protocol's transport. */
export interface Accepted {
  /** Calls `fn` once it has closed (at once if it has). */
  whenClosed(fn: () => void): void;
}

class ReadinessServer implements Server {
  readonly #loop: IoLoop;
  readonly #backend: ReadinessBackend;
  readonly #fd: number;
  readonly #open: (fd: number) => Accepted;
  readonly #connections = new Set<Accepted>();
  readonly #address: SocketAddress;
  #token: IoToken | null;
  /** The timer that resumes accepting after a failed accept. */
  #retry: { cancel(): void } | null = null;
  #closing: Promise<void> | null = null;
  #allClosed: (() => void) | null = null;

  constructor(loop: IoLoop, backend: ReadinessBackend, fd: number, open: (fd: number) => Accepted) {
    this.#loop = loop;
    this.#backend = backend;
    this.#fd = fd;
    this.#open = open;
    this.#address = parseAddress(backend.sockets.address(fd, false));
    this.#token = loop._watch(this.#onAcceptable);
    const rc = backend.watch(fd, READABLE, this.#token.slot);
    if (rc < 0) {
      loop._release(this.#token);
      backend.sockets.close(fd);
      throw ioError('watch', errnoName(rc));
    }
    loop._track(this, true);
  }

  get connections(): number {
    return this.#connections.size;
  }

  address(): SocketAddress {
    return { ...this.#address };
  }

  readonly #onAcceptable = (): void => {
    // Bounded, so one busy listener cannot monopolise an iteration; the
    // level-triggered watch reports the rest next time.
    for (let i = 0; i < 64; i++) {
      const fd = this.#backend.sockets.accept(this.#fd);
      if (fd === -EAGAIN) return;
      if (fd < 0) {
        const code = errnoName(fd);
        if (acceptErrorIsTransient(code)) continue;
        this.#pauseAccepting(ioError('accept', code));
        return;
      }
      this.#adopt(this.#open(fd));
    }
  };

  /**
   * An accept failed (out of descriptors, say): the listener stays readable,
   * so watching it on would spin. Stop, report once, try again later.
   */
  #pauseAccepting(error: IoError): void {
    this.#backend.unwatch(this.#fd, READABLE);
    this.#loop._report(`accept failed; the server stops accepting for ${ACCEPT_RETRY_MS} ms`, error);
    this.#retry = this.#loop.callLater(ACCEPT_RETRY_MS, () => {
      this.#retry = null;
      if (this.#token === null) return;
      const rc = this.#backend.watch(this.#fd, READABLE, this.#token.slot);
      if (rc < 0) this.#pauseAccepting(ioError('watch', errnoName(rc)));
    });
  }

  #adopt(connection: Accepted): void {
    this.#connections.add(connection);
    connection.whenClosed(() => {
      this.#connections.delete(connection);
      if (this.#connections.size === 0) this.#allClosed?.();
    });
  }

  close(): Promise<void> {
    if (this.#closing !== null) return this.#closing;
    this.#retry?.cancel();
    this.#retry = null;
    if (this.#token !== null) {
      this.#backend.unwatch(this.#fd, READABLE);
      this.#loop._release(this.#token);
      this.#token = null;
      this.#backend.sockets.close(this.#fd);
      // A Unix listener's socket file goes with it (as Node and libuv do).
      const { family, path } = this.#address;
      if (family === 'unix' && path) this.#backend.sockets.unlink?.(path);
    }
    this.#closing = new Promise<void>((resolve) => {
      this.#allClosed = () => {
        this.#loop._track(this, false);
        resolve();
      };
      if (this.#connections.size === 0) this.#allClosed();
    });
    return this.#closing;
  }
}

/**
 * Calls the connection handler; a handler that throws or rejects has its
 * connection closed and the error reported, unless the error is only that
 * the connection was closed under it (by the loop closing, say).
 */
function runHandler(loop: IoLoop, handler: ConnectionHandler, connection: Connection): void {
  const failed = (error: unknown) => {
    if (error instanceof ConnectionClosedError && connection.closed) return;
    loop._report('the connection handler failed; its connection was closed', error);
    connection.close();
  };
  try {
    const result = handler(connection);
    if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
      (result as Promise<void>).then(undefined, failed);
    }
  } catch (error) {
    failed(error);
  }
}

/** Listens; `open(fd)` makes what each accepted connection becomes. */
/** What to listen on: a TCP host and port, or a Unix domain socket's path. */
export interface ListenTarget {
  host: string;
  port: number;
  backlog: number;
  reusePort: boolean;
  path?: string | undefined;
}

/** An address as error messages name it. */
function where(target: { host: string; port: number; path?: string | undefined }): string {
  return target.path ?? `${target.host}:${target.port}`;
}

export function listenReadinessWith(
  loop: IoLoop,
  backend: ReadinessBackend,
  open: (fd: number) => Accepted,
  options: ListenTarget,
): Server {
  const { sockets } = backend;
  const fd =
    options.path !== undefined
      ? (sockets.listenUnix as (path: string, backlog: number) => number)(options.path, options.backlog)
      : sockets.listen(options.host, options.port, options.backlog, options.reusePort);
  if (fd < 0) throw ioError('listen', errnoName(fd), where(options));
  return new ReadinessServer(loop, backend, fd, open);
}

export function listenReadiness(
  loop: IoLoop,
  backend: ReadinessBackend,
  onConnection: ConnectionHandler,
  options: ListenTarget,
): Server {
  return listenReadinessWith(
    loop,
    backend,
    (fd) => {
      const connection = new ReadinessConnection(loop, backend, fd);
      runHandler(loop, onConnection, connection);
      return connection;
    },
    options,
  );
}

/**
 * A connect in progress: settled once, by its own outcome, by the caller's
 * signal, or by the loop closing (a resource the loop closes like its
 * connections). `abandon(reason)` runs `cleanUp` (close what was opened)
 * and rejects; `settle()` just stops listening.
 */
function pendingConnect(
  loop: IoLoop,
  signal: AbortSignal | undefined,
  reject: (reason: unknown) => void,
  cleanUp: () => void,
): { settle(): boolean; abandon(reason: unknown): void } {
  let settled = false;
  const attempt = {
    settle(): boolean {
      if (settled) return false;
      settled = true;
      stopListening();
      loop._track(resource, false);
      return true;
    },
    abandon(reason: unknown): void {
      if (!attempt.settle()) return;
      cleanUp();
      reject(reason);
    },
  };
  const resource = { close: () => attempt.abandon(new LoopClosedError('connect')) };
  const stopListening = onAbortOf(signal, () => attempt.abandon(abortReason(signal as AbortSignal, 'connect')));
  loop._track(resource, true);
  return attempt;
}

/** Where to connect, and the signal that may abandon the attempt. */
export interface ConnectTarget {
  host: string;
  port: number;
  path?: string | undefined;
  signal?: AbortSignal | undefined;
}

export function connectReadiness(loop: IoLoop, backend: ReadinessBackend, options: ConnectTarget): Promise<Connection> {
  return connectReadinessWith(loop, backend, options, (fd) => new ReadinessConnection(loop, backend, fd));
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
    const rc = backend.watch(fd, WRITABLE, token.slot);
    if (rc < 0) {
      attempt.settle();
      loop._release(token);
      backend.sockets.close(fd);
      reject(ioError('watch', errnoName(rc), at));
    }
  });
}

// ----------------------------------------------------------- completion

/**
 * Hands `bytes` to a completion socket. A write the host finished in place
 * (IOCP's "skip completion port on success") returns its outcome: null, or
 * the error. Otherwise it returns undefined and `later(outcome)` runs when
 * the host finishes, from a host callback.
 */
export function writeToHost(
  socket: CompletionSocket,
  bytes: Uint8Array,
  later: (error: Error | null) => void,
): Error | null | undefined {
  let inPlace = true;
  let outcome: Error | null | undefined;
  socket.write(bytes, (error) => {
    if (inPlace) outcome = error ?? null;
    else later(error ?? null);
  });
  inPlace = false;
  return outcome;
}

class CompletionConnection extends BaseConnection {
  readonly #loop: IoLoop;
  readonly #backend: CompletionBackend;
  readonly #socket: CompletionSocket;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #maxBuffered = 0;
  #flowing = true;
  #eof = false;
  #error: unknown = undefined;
  /** The socket's own error (a reset), which explains later write failures. */
  #hostError: Error | null = null;
  /** The expected completion that wakes the pending read. */
  #readToken: IoToken | null = null;
  #writesInFlight = new Set<IoToken>();
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;

  constructor(loop: IoLoop, backend: CompletionBackend, socket: CompletionSocket) {
    super();
    this.#loop = loop;
    this.#backend = backend;
    this.#socket = socket;
    this.localAddress = socket.localAddress;
    this.remoteAddress = socket.remoteAddress;
    loop._track(this, true);
    socket.start(
      (chunk) => {
        if (chunk === null) this.#eof = true;
        else {
          this.#chunks.push(chunk);
          this.#buffered += chunk.length;
          if (this.#buffered > this.#maxBuffered) this.#maxBuffered = this.#buffered;
          if (this.#buffered >= CHUNK_BYTES && this.#flowing) {
            this.#flowing = false;
            socket.setFlowing(false);
          }
        }
        this.#completeRead();
      },
      (error) => {
        this.#hostError = error;
        this.#error = fromHostError('read', error);
        this.#completeRead();
      },
    );
    socket.setFlowing(true);
  }

  override get maxBuffered(): number {
    return this.#maxBuffered;
  }

  /** The host finished a read: report the pending read's token. */
  #completeRead(): void {
    if (this.#readToken !== null) this.#backend.complete(this.#readToken.slot);
  }

  #take(): Uint8Array | null | undefined {
    const chunk = this.#chunks.shift();
    if (chunk !== undefined) {
      this.#buffered -= chunk.length;
      if (!this.#flowing && this.#buffered < CHUNK_BYTES && !this.isClosed) {
        this.#flowing = true;
        this.#socket.setFlowing(true);
      }
      return chunk;
    }
    if (this.#error !== undefined) throw this.#error;
    if (this.#eof) return null;
    return undefined;
  }

  protected readChunk(options?: { signal?: AbortSignal }): Promise<Uint8Array | null> {
    const signal = options?.signal;
    const refused = this.refuseRead(signal);
    if (refused !== null) return refused;
    try {
      const chunk = this.#take();
      if (chunk !== undefined) {
        if (chunk === null) this.#closeIfDone();
        return Promise.resolve(chunk);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    const waiting = this.startPendingRead(signal, this.#dropReadTokenNow);
    this.#readToken = this.#loop._expect(this.#onReadCompleted);
    return waiting;
  }

  readonly #onReadCompleted = (): void => {
    this.#readToken = null;
    let chunk: Uint8Array | null | undefined;
    try {
      chunk = this.#take();
    } catch (error) {
      this.settleRead(null, error);
      return;
    }
    if (chunk !== undefined) this.settleRead(chunk);
    else if (this.pendingRead !== null) this.#readToken = this.#loop._expect(this.#onReadCompleted);
    if (chunk === null) this.#closeIfDone();
  };

  /** Both directions are done: release the socket. */
  #closeIfDone(): void {
    if (this.#eof && this.#chunks.length === 0 && this.ended && this.#writesInFlight.size === 0) this.close();
  }

  /** What a cancelled read undoes (one function per connection, not one per read). */
  readonly #dropReadTokenNow = (): void => this.#dropReadToken();

  #dropReadToken(): void {
    if (this.#readToken !== null) this.#loop._release(this.#readToken);
    this.#readToken = null;
  }

  write(data: Uint8Array | string): Promise<void> {
    if (this.isClosed) return Promise.reject(new ConnectionClosedError('write: the connection is closed'));
    if (this.ended) return Promise.reject(new WriteAfterEndError('write: the connection was ended (end() was called)'));
    let bytes: Uint8Array;
    try {
      bytes = toBytes('write', data);
    } catch (error) {
      return Promise.reject(error);
    }
    // A write the host completes in place (the kernel took all of it at
    // once) resolves at once, as on the readiness model; only a write that
    // has to wait is a completion the loop orders.
    let failure: Error | null = null;
    let token: IoToken | null = null;
    const inPlace = writeToHost(this.#socket, bytes, (error) => {
      failure = error;
      if (token !== null && this.#writesInFlight.has(token)) this.#backend.complete(token.slot);
    });
    if (inPlace !== undefined) {
      // A write the host abandoned because the socket failed reports why it failed.
      return inPlace !== null ? Promise.reject(fromHostError('write', this.#hostError ?? inPlace)) : WRITTEN;
    }
    return new Promise((resolve, reject) => {
      const expected: IoToken = this.#loop._expect(() => {
        this.#writesInFlight.delete(expected);
        if (failure) reject(fromHostError('write', this.#hostError ?? failure));
        else resolve();
        this.#closeIfDone();
      });
      token = expected;
      this.#writesInFlight.add(expected);
    });
  }

  end(): Promise<void> {
    if (this.isClosed) return Promise.reject(new ConnectionClosedError('end: the connection is closed'));
    if (this.ended) return Promise.reject(new WriteAfterEndError('end: the connection was already ended'));
    this.ended = true;
    this.#socket.end();
    this.#closeIfDone();
    return Promise.resolve();
  }

  close(): void {
    if (this.isClosed) return;
    this.#socket.destroy();
    this.#dropReadToken();
    const closedError = new ConnectionClosedError('the connection was closed');
    for (const token of this.#writesInFlight) this.#loop._release(token);
    this.#writesInFlight.clear();
    this.settleRead(null, closedError);
    this.#chunks = [];
    this.#loop._track(this, false);
    this.markClosed();
  }
}

class CompletionServer implements Server {
  readonly #loop: IoLoop;
  readonly #backend: CompletionBackend;
  readonly #open: (socket: CompletionSocket) => Accepted;
  readonly #connections = new Set<Accepted>();
  #listener: CompletionListener | null = null;
  #address: SocketAddress | null = null;
  #accepted: CompletionSocket[] = [];
  #acceptToken: IoToken | null = null;
  #closing: Promise<void> | null = null;
  #allClosed: (() => void) | null = null;

  constructor(loop: IoLoop, backend: CompletionBackend, open: (socket: CompletionSocket) => Accepted) {
    this.#loop = loop;
    this.#backend = backend;
    this.#open = open;
  }

  listen(options: ListenTarget): Promise<Server> {
    return new Promise((resolve, reject) => {
      this.#backend.listen(
        options,
        (socket) => {
          if (this.#closing !== null) {
            socket.destroy();
            return;
          }
          // The host completed an accept: queue the socket, report once.
          this.#accepted.push(socket);
          if (this.#acceptToken === null) {
            this.#acceptToken = this.#loop._expect(this.#onAccepted);
            this.#backend.complete(this.#acceptToken.slot);
          }
        },
        (error, listener) => {
          if (error !== null || listener === undefined) {
            reject(fromHostError('listen', error, where(options)));
            return;
          }
          if (this.#loop.isClosed()) {
            // The loop closed while the host was listening: nobody will close it later.
            listener.close(() => undefined);
            reject(new LoopClosedError('listen'));
            return;
          }
          this.#listener = listener;
          this.#address = listener.address();
          this.#loop._track(this, true);
          resolve(this);
        },
        (error) => {
          if (this.#closing !== null) return;
          this.#loop._report(
            `accept failed; the server stops accepting for ${ACCEPT_RETRY_MS} ms`,
            fromHostError('accept', error),
          );
        },
      );
    });
  }

  readonly #onAccepted = (): void => {
    this.#acceptToken = null;
    const sockets = this.#accepted;
    this.#accepted = [];
    for (const socket of sockets) {
      const connection = this.#open(socket);
      this.#connections.add(connection);
      connection.whenClosed(() => {
        this.#connections.delete(connection);
        if (this.#connections.size === 0) this.#allClosed?.();
      });
    }
  };

  get connections(): number {
    return this.#connections.size;
  }

  address(): SocketAddress {
    return { ...(this.#address as SocketAddress) };
  }

  close(): Promise<void> {
    if (this.#closing !== null) return this.#closing;
    if (this.#acceptToken !== null) this.#loop._release(this.#acceptToken);
    for (const socket of this.#accepted) socket.destroy();
    this.#accepted = [];
    this.#closing = new Promise<void>((resolve) => {
      let listenerClosed = false;
      const maybeDone = () => {
        if (listenerClosed && this.#connections.size === 0) {
          this.#loop._track(this, false);
          resolve();
        }
      };
      this.#allClosed = maybeDone;
      const listener = this.#listener;
      if (listener === null) {
        listenerClosed = true;
        maybeDone();
        return;
      }
      // Node's server.close() waits for connections itself; ours are tracked
      // here, so stop listening and count.
      listener.close(() => undefined);
      listenerClosed = true;
      maybeDone();
    });
    return this.#closing;
  }
}

/** Listens; `open(socket)` makes what each accepted connection becomes. */
export function listenCompletionWith(
  loop: IoLoop,
  backend: CompletionBackend,
  open: (socket: CompletionSocket) => Accepted,
  options: ListenTarget,
): Promise<Server> {
  return new CompletionServer(loop, backend, open).listen(options);
}

export function listenCompletion(
  loop: IoLoop,
  backend: CompletionBackend,
  onConnection: ConnectionHandler,
  options: ListenTarget,
): Promise<Server> {
  return listenCompletionWith(
    loop,
    backend,
    (socket) => {
      const connection = new CompletionConnection(loop, backend, socket);
      runHandler(loop, onConnection, connection);
      return connection;
    },
    options,
  );
}

export function connectCompletion(loop: IoLoop, backend: CompletionBackend, options: ConnectTarget): Promise<Connection> {
  return connectCompletionWith(loop, backend, options, (socket) => new CompletionConnection(loop, backend, socket));
}

/**
 * Connects; `open(socket)` makes what the connected socket becomes. If
 * `options.signal` aborts first, the attempt is abandoned: the backend's
 * cancel function runs if it returned one, a socket it still delivers is
 * destroyed, and the promise rejects with the signal's reason.
 */
export function connectCompletionWith<T>(
  loop: IoLoop,
  backend: CompletionBackend,
  options: ConnectTarget,
  open: (socket: CompletionSocket) => T,
): Promise<T> {
  const at = where(options);
  const signal = options.signal;
  if (signal?.aborted) return Promise.reject(abortReason(signal, 'connect'));
  return new Promise((resolve, reject) => {
    let outcome: { error: Error | null; socket?: CompletionSocket } | null = null;
    let abandoned = false;
    let cancel: void | (() => void);
    const attempt = pendingConnect(loop, signal, reject, () => {
      abandoned = true;
      loop._release(token);
      // Connected already, its completion not yet run: that socket is ours to close.
      if (outcome?.socket !== undefined) outcome.socket.destroy();
      else if (typeof cancel === 'function') cancel();
    });
    const token = loop._expect(() => {
      if (!attempt.settle()) return;
      const o = outcome as { error: Error | null; socket?: CompletionSocket };
      if (o.error !== null || o.socket === undefined) reject(fromHostError('connect', o.error, at));
      else {
        try {
          resolve(open(o.socket));
        } catch (error) {
          reject(error);
        }
      }
    });
    const target = options.path === undefined ? { host: options.host, port: options.port } : { host: '', port: options.port, path: options.path };
    cancel = backend.connect(target, (error, socket) => {
      if (abandoned) {
        socket?.destroy();
        return;
      }
      outcome = { error, socket };
      backend.complete(token.slot);
    });
  });
}
