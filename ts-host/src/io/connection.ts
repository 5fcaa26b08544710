/**
 * A stream connection's model-independent half: the Connection interface,
 * the reads every model shares (the framed reads, web streams, async
 * iteration, one pending read at a time, cancelling by signal), built on
 * each model's `readChunk()`, and the connection's time limits: the idle
 * timeout, which each model's reads and writes refresh (`active()`), and
 * the read timeout of a read that waits.
 */
import { type ConnectionLimits, NO_LIMITS } from '../arguments.js';
import { type StartTlsOptions, checkStartTls } from '../tls-options.js';
import type { SocketAddress } from '../backends/backend.js';
import { CHUNK_BYTES } from '../net/slab.js';

export { CHUNK_BYTES };
import {
  ConnectionClosedError,
  IncompleteReadError,
  LimitOverrunError,
  TimeoutError,
  WasmloopError,
  WriteAfterEndError,
  describe,
} from '../errors.js';
import { handOverStream } from './hand-over.js';
import { type IoDeadline, type IoLoop, abortReason, checkSignal, idleDeadline, toBytes } from './io-common.js';
import type { TlsLoop } from './tls.js';
import type { TlsInfo } from './tls-info.js';

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
  /**
   * Keeps the connection open after its handler settles (the handler
   * handed it elsewhere): the program closes it. Without this, a server
   * closes a connection once the promise its handler returned settles.
   */
  keepOpen(): void;
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;
  /** What TLS negotiated (docs/tls.md); null on a plaintext connection. */
  readonly tls: TlsInfo | null;
  /**
   * Upgrades the connection to TLS in place (STARTTLS; asyncio's
   * `start_tls`; docs/tls.md): `{ serverSide: true, key, cert, ... }` on the
   * accepting side, the client's `tls` options (or none) on the other.
   * Resolves to a new TLS Connection once the handshake is done. From the
   * call on this object refuses reads and writes, and closing it closes
   * the TLS connection; bytes a framed read had buffered go to TLS.
   */
  startTls(options?: StartTlsOptions): Promise<Connection>;
  /**
   * True once closed: by `close()`, by its server, or after both directions
   * ended (what was read ahead can still be read).
   */
  readonly closed: boolean;
  /**
   * The most bytes this connection ever held in memory for reading: at most
   * HIGH_WATER_MARK (readiness: 0 until `end()`, after which it reads ahead
   * to see the peer's end of stream).
   */
  readonly maxBuffered: number;
}

/**
 * The most a completion-model connection buffers for reading: the host
 * stops reading once CHUNK_BYTES are buffered, and the chunk in flight
 * at that moment can add at most CHUNK_BYTES more.
 */
export const HIGH_WATER_MARK = 2 * CHUNK_BYTES;

/**
 * How long a lingering close waits for the peer's end of stream, in ms of
 * loop time. Closing a socket that has unread bytes makes the kernel send
 * a reset, which can destroy data still on its way to the peer (the reply
 * a handler just wrote). So a server closing a connection half-closes it,
 * reads and discards what the peer still sends until the peer's end of
 * stream, and closes then, or after LINGER_MS at the latest: nginx's
 * lingering close, whose lingering_timeout is also 5 s.
 */
export const LINGER_MS = 5000;

/**
 * What a write the kernel (or host) took at once returns: one settled
 * promise shared by all of them, as nothing can change a settled promise,
 * so the common write allocates none.
 */
export const WRITTEN: Promise<void> = Promise.resolve();

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
interface PendingRead {
  resolve(chunk: Uint8Array | null): void;
  reject(error: unknown): void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** What the model undoes when the read is given up (its watch or expected completion). */
  onCancel: () => void;
}

/** Shared parts of both connection models. */
export abstract class BaseConnection implements Connection {
  protected pendingRead: PendingRead | null = null;
  /** close() ran (by the program, the server or the loop): every operation is refused. */
  protected isClosed = false;
  /** The descriptor or socket is gone: closed, or both directions ended (reads drain what was read ahead). */
  protected released = false;
  /** A graceful close is under way (the handler settled, or closeClients): no new reads or writes. */
  protected closing = false;
  protected ended = false;
  protected onClosed: Array<() => void> = [];
  /** keepOpen() was called: the handler's settling does not close the connection. */
  #kept = false;
  abstract readonly localAddress: SocketAddress;
  abstract readonly remoteAddress: SocketAddress;
  /** The transport's next chunk (what `read()` returns when nothing is buffered here). */
  protected abstract readChunk(options?: { signal?: AbortSignal }): Promise<Uint8Array | null>;
  abstract write(data: Uint8Array | string): Promise<void>;
  /** Bytes a framed read took beyond what it returned (or gave back when cancelled): read first. */
  #buffered: Uint8Array | null = null;
  /** A framed read (readExactly, readUntil, readLine) is in progress. */
  #framing = false;
  /** Set by `startLimits`: the loop the limits' deadlines run on. */
  #loop: IoLoop | null = null;
  /** idleTimeoutMs's deadline, refreshed by every read and write (`active()`); null without one. */
  #idle: IoDeadline | null = null;
  /** readTimeoutMs's deadline, refreshed when a read starts to wait; made by the first such read. */
  #readTimer: IoDeadline | null = null;
  #readTimeoutMs = Infinity;
  /** The limits startLimits was given (startTls hands them to the TLS connection). */
  #limits: ConnectionLimits = NO_LIMITS;

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
          // Split: the frame gets bytes of its own, so transferring it cannot detach what is kept.
          parts.push(take === chunk.length ? chunk : chunk.slice(0, take));
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

  readUntil(
    separator: Uint8Array | string = '\n',
    options?: { limit?: number; signal?: AbortSignal },
  ): Promise<Uint8Array> {
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

  async #readUntil(
    operation: string,
    sep: Uint8Array,
    limit: number,
    signal: AbortSignal | undefined,
  ): Promise<Uint8Array> {
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
        if (end === data.length) return data;
        // Split: the frame gets bytes of its own, so transferring it cannot detach what is kept.
        this.#unread(data.subarray(end));
        return data.slice(0, end);
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

  /** Closes now; pending reads and writes reject with ConnectionClosedError. Idempotent. */
  close(): void {
    this.closeWith(new ConnectionClosedError('the connection was closed'));
  }

  /** Closes now; pending reads and writes reject with `error`. Idempotent. */
  protected abstract closeWith(error: Error): void;

  startTls(options?: StartTlsOptions): Promise<Connection> {
    const operation = 'startTls';
    let config: ReturnType<typeof checkStartTls>;
    try {
      config = checkStartTls(operation, options);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.isClosed || this.closing || this.released)
      return Promise.reject(new ConnectionClosedError(`${operation}: the connection is closed`));
    if (this.ended)
      return Promise.reject(new WriteAfterEndError(`${operation}: the connection was ended (end() was called)`));
    if (this.#framing || this.pendingRead !== null) {
      return Promise.reject(new WasmloopError(`${operation}: a read is pending on this connection`));
    }
    // The TLS connection keeps the time limits: a read of this one always waits under it.
    const limits = this.#limits;
    this.#idle?.cancel();
    this.#readTimer?.cancel();
    this.#idle = this.#readTimer = null;
    this.#readTimeoutMs = Infinity;
    const { raw, succession } = handOverStream(this);
    const addresses = { localAddress: this.localAddress, remoteAddress: this.remoteAddress };
    const loop = this.#loop as TlsLoop;
    return import('./tls-upgrade.js').then((m) =>
      m.upgradeConnection(loop, raw, succession, config, limits, addresses),
    );
  }

  /** Starts the connection's time limits; each model's constructor calls it once the connection is open. */
  protected startLimits(loop: IoLoop, limits: ConnectionLimits): void {
    this.#loop = loop;
    this.#limits = limits;
    this.#readTimeoutMs = limits.readTimeoutMs;
    // Idle: close, failing what waits with the TimeoutError (a lingering close was closing anyway).
    this.#idle = idleDeadline(loop, limits, (error) => this.closeWith(error));
  }

  /** Bytes were read from or written to the socket: the idle timeout starts over (a field write). */
  protected active(): void {
    this.#idle?.refresh();
  }

  /** readTimeoutMs passed while a read waited: that read rejects; the connection stays open. */
  readonly #onReadTimeout = (): void => {
    const pending = this.pendingRead;
    if (pending === null) return;
    this.pendingRead = null;
    if (pending.signal !== undefined && pending.onAbort !== undefined) {
      pending.signal.removeEventListener('abort', pending.onAbort);
    }
    pending.onCancel();
    (this.#loop as IoLoop)._ioCounters.readsTimedOut++;
    const ms = this.#readTimeoutMs;
    pending.reject(new TimeoutError(`read: no data arrived within readTimeoutMs (${ms} ms)`, ms));
  };
  /**
   * Writes what is queued, half-closes, then waits a bounded time
   * (LINGER_MS) for the peer's end of stream, discarding what arrives,
   * and closes: the lingering close (see `LINGER_MS`).
   */
  abstract closeGracefully(): void;

  keepOpen(): void {
    this.#kept = true;
  }

  /** The handler's promise settled: close gracefully, unless it kept the connection. */
  handlerSettled(): void {
    if (!this.#kept) this.closeGracefully();
  }

  /** Closes now (a server's abortClients). */
  abort(): void {
    this.close();
  }

  get closed(): boolean {
    return this.isClosed || this.released;
  }

  get maxBuffered(): number {
    return 0;
  }

  get tls(): TlsInfo | null {
    return null;
  }

  /** Calls `fn` once the connection closes. */
  whenClosed(fn: () => void): void {
    if (this.released) fn();
    else this.onClosed.push(fn);
  }

  protected markClosed(): void {
    this.isClosed = true;
    this.markReleased();
  }

  /** The descriptor or socket is gone: whoever waits for it (the server) is told, once; the limits stop. */
  protected markReleased(): void {
    if (this.released) return;
    this.released = true;
    this.#idle?.cancel();
    this.#readTimer?.cancel();
    this.#idle = this.#readTimer = null;
    const callbacks = this.onClosed;
    this.onClosed = [];
    for (const fn of callbacks) fn();
  }

  /** Checks a write (or end) may start; returns a rejection if not. */
  protected refuseWrite(operation: 'write' | 'end'): Promise<never> | null {
    if (this.isClosed || this.closing)
      return Promise.reject(new ConnectionClosedError(`${operation}: the connection is closed`));
    if (this.ended) {
      const why =
        operation === 'end'
          ? 'end: the connection was already ended'
          : 'write: the connection was ended (end() was called)';
      return Promise.reject(new WriteAfterEndError(why));
    }
    return null;
  }

  /** Checks a new read may start; returns a rejection if not. */
  protected refuseRead(signal: AbortSignal | undefined): Promise<never> | null {
    try {
      checkSignal('read', signal);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.isClosed || this.closing)
      return Promise.reject(new ConnectionClosedError('read: the connection is closed'));
    if (this.pendingRead !== null)
      return Promise.reject(new WasmloopError('read: another read is pending on this connection'));
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return null;
  }

  protected startPendingRead(signal: AbortSignal | undefined, onCancel: () => void): Promise<Uint8Array | null> {
    if (this.#readTimeoutMs !== Infinity && !this.released) {
      // A field write while armed: the deadline is due readTimeoutMs after the latest read began to wait.
      if (this.#readTimer === null)
        this.#readTimer = (this.#loop as IoLoop).deadline(this.#readTimeoutMs, this.#onReadTimeout);
      else this.#readTimer.refresh();
    }
    return new Promise((resolve, reject) => {
      const pending: PendingRead = { resolve, reject, signal, onAbort: undefined, onCancel };
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
