/**
 * Protocols and transports: asyncio's callback API for TCP
 * (`loop.create_server(protocol_factory)`), beside the streams of
 * `streams.ts`. A protocol's methods are called as data arrives, with no
 * promise per read or write; a transport writes what the kernel takes at
 * once and buffers the rest, telling the protocol to pause when its buffer
 * passes the high-water mark.
 *
 * Every protocol call runs inside a loop callback the core ordered (the
 * accept or read watcher on the readiness model, an expected completion on
 * the completion model), so protocols see the same order on every backend.
 * `connectionLost` is scheduled with `callSoon`, as asyncio does. A
 * transport with an `idleTimeoutMs` is aborted once it has read and written
 * nothing for that long, and its protocol hears a TimeoutError.
 */
import type { ConnectionLimits } from '../arguments.js';
import type { CompletionBackend, CompletionSocket, ReadinessBackend, SocketAddress, SocketOps } from '../backends/backend.js';
import { READABLE, WRITABLE } from '../backends/backend.js';
import { parseAddress } from '../net/address.js';
import { EAGAIN, errnoName } from '../errno.js';
import { ConnectionClosedError, WriteAfterEndError } from '../errors.js';
import * as checked from './checked.js';
import { CHUNK_BYTES, READ_BUFFER, takeRead } from '../net/slab.js';
import { type IoDeadline, idleDeadline } from './io-common.js';
import {
  type Accepted,
  type IoLoop,
  type IoToken,
  fromHostError,
  ioError,
  toBytes,
  writeToHost,
} from './streams.js';

/** What a protocol may implement; every method is optional. */
export interface Protocol {
  /** The connection is open; `transport` writes to it. */
  connectionMade?(transport: Transport): void;
  /** Bytes arrived. The array is the protocol's to keep. */
  dataReceived?(data: Uint8Array): void;
  /**
   * The peer ended its side. Return true to keep the transport open (to
   * write the rest, then `close()`); otherwise it closes.
   */
  eofReceived?(): boolean | void;
  /** The connection is gone: `null` after `close()`/`abort()` or a clean end, the error otherwise. */
  connectionLost?(error: Error | null): void;
  /** The transport's write buffer passed its high-water mark: stop writing for now. */
  pauseWriting?(): void;
  /** The write buffer drained to its low-water mark: go on. */
  resumeWriting?(): void;
}

/** A connection as a protocol sees it. */
export interface Transport {
  /** Writes `data` now as far as the kernel takes it and buffers the rest; never blocks. */
  write(data: Uint8Array | string): void;
  /** Half-closes after the buffered data: the peer reads the end of the stream. */
  writeEof(): void;
  /** Closes once the buffered data is written; `connectionLost(null)` follows. Idempotent. */
  close(): void;
  /** Closes now, dropping buffered data; `connectionLost(null)` follows. Idempotent. */
  abort(): void;
  /** True once `close()` or `abort()` was called or the connection was lost. */
  isClosing(): boolean;
  /** Stops calling `dataReceived` until `resumeReading()`. */
  pauseReading(): void;
  resumeReading(): void;
  isReading(): boolean;
  /** Bytes written but not yet taken by the system. */
  writeBufferSize(): number;
  /** The marks that pause and resume the protocol's writing (bytes; default 64 KiB and a quarter of it). */
  setWriteBufferLimits(high?: number, low?: number): void;
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;
}

export type ProtocolFactory<P extends Protocol = Protocol> = () => P;

const DEFAULT_HIGH_WATER = 64 * 1024;

function checkLimit(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new RangeError(`setWriteBufferLimits: ${name} must be a non-negative integer, got ${String(value)}`);
  }
  return value;
}

/** The model-independent half of a transport: state, flow control, and calling the protocol (tls-transport.ts extends it too). */
export abstract class BaseTransport implements Transport, Accepted {
  protected readonly loop: IoLoop;
  protected readonly protocol: Protocol;
  /** close(), abort() or a failure happened: no more reads, no new writes. */
  protected closing = false;
  /** connectionLost has been scheduled. */
  protected finished = false;
  protected eofWritten = false;
  protected reading = true;
  protected buffered = 0;
  #writePaused = false;
  #high = DEFAULT_HIGH_WATER;
  #low = DEFAULT_HIGH_WATER / 4;
  #onClosed: Array<() => void> = [];
  /** What the loop closes when it closes: the transport, at once. */
  readonly #tracked = {
    close: () => {
      this.#loopClosing = true;
      this.abort();
    },
  };
  /** The loop is closing: connectionLost runs at once, as no later callback will. */
  #loopClosing = false;
  /** idleTimeoutMs's deadline, refreshed by every read and write (`active()`); null without one. */
  #idle: IoDeadline | null = null;
  abstract readonly localAddress: SocketAddress;
  abstract readonly remoteAddress: SocketAddress;

  constructor(loop: IoLoop, protocol: Protocol) {
    this.loop = loop;
    this.protocol = protocol;
  }

  abstract write(data: Uint8Array | string): void;
  abstract writeEof(): void;
  abstract close(): void;
  abstract abort(): void;
  abstract pauseReading(): void;
  abstract resumeReading(): void;

  isClosing(): boolean {
    return this.closing;
  }

  /** A server's closeClients(): close() (after the buffered writes). */
  closeGracefully(): void {
    this.close();
  }

  isReading(): boolean {
    return this.reading && !this.closing;
  }

  writeBufferSize(): number {
    return this.buffered;
  }

  setWriteBufferLimits(high?: number, low?: number): void {
    const h = high === undefined ? (low === undefined ? DEFAULT_HIGH_WATER : 4 * checkLimit('low', low)) : checkLimit('high', high);
    const l = low === undefined ? Math.floor(h / 4) : checkLimit('low', low);
    if (l > h) throw new RangeError(`setWriteBufferLimits: low (${l}) must not exceed high (${h})`);
    this.#high = h;
    this.#low = l;
    this.flowControl();
  }

  whenClosed(fn: () => void): void {
    if (this.finished) fn();
    else this.#onClosed.push(fn);
  }

  /** Checks a write may go ahead; returns its bytes. */
  protected checkWrite(data: Uint8Array | string): Uint8Array {
    if (this.eofWritten) throw new WriteAfterEndError('write: writeEof() was called on this transport');
    if (this.closing) throw new ConnectionClosedError('write: the transport is closing or closed');
    return toBytes('write', data);
  }

  /** Tells the protocol to pause or resume writing as the buffer crosses the marks. */
  protected flowControl(): void {
    if (!this.#writePaused && this.buffered > this.#high) {
      this.#writePaused = true;
      this.call('pauseWriting');
    } else if (this.#writePaused && this.buffered <= this.#low) {
      this.#writePaused = false;
      this.call('resumeWriting');
    }
  }

  /**
   * Calls a protocol method. One that throws has its transport aborted and
   * the error reported to the exception handler, as asyncio does.
   */
  protected call(method: 'connectionMade' | 'eofReceived' | 'pauseWriting' | 'resumeWriting', arg?: unknown): unknown {
    const fn = this.protocol[method] as ((arg?: unknown) => unknown) | undefined;
    if (typeof fn !== 'function') return undefined;
    try {
      return fn.call(this.protocol, arg);
    } catch (error) {
      this.loop._report(`protocol.${method}() failed; its transport was aborted`, error);
      this.teardown(error instanceof Error ? error : new Error(String(error)));
      return undefined;
    }
  }

  /** Hands `data` to the protocol (the hot path: no lookup by name). */
  protected received(data: Uint8Array): void {
    const protocol = this.protocol;
    if (protocol.dataReceived === undefined) return;
    try {
      protocol.dataReceived(data);
    } catch (error) {
      this.loop._report('protocol.dataReceived() failed; its transport was aborted', error);
      this.teardown(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** The peer ended its side: the protocol keeps the transport open or it closes. */
  protected eofArrived(): void {
    const keepOpen = this.call('eofReceived');
    if (keepOpen !== true && !this.closing) this.close();
  }

  /** Bytes were read or written: the idle timeout starts over (a field write). */
  protected active(): void {
    this.#idle?.refresh();
  }

  /** Releases the connection and schedules `connectionLost(error)` once. */
  protected teardown(error: Error | null): void {
    this.closing = true;
    if (this.finished) return;
    this.finished = true;
    this.#idle?.cancel();
    this.#idle = null;
    this.release();
    this.loop._track(this.#tracked, false);
    const protocol = this.protocol;
    if (typeof protocol.connectionLost === 'function' && !this.loop.isClosed()) {
      const lost = () => {
        try {
          protocol.connectionLost?.(error);
        } catch (thrown) {
          this.loop._report('protocol.connectionLost() failed', thrown);
        }
      };
      if (this.#loopClosing) lost();
      else this.loop.callSoon(lost);
    }
    const callbacks = this.#onClosed;
    this.#onClosed = [];
    for (const fn of callbacks) fn();
  }

  /** Frees the model's resources (descriptor, watches, tokens). */
  protected abstract release(): void;

  /** Starts: tracked by the loop, its idle timeout armed, `connectionMade` called (not after startTls, as asyncio). */
  protected begin(limits: ConnectionLimits, connectionMade = true): void {
    this.loop._track(this.#tracked, true);
    // Idle: abort, and tell the protocol why.
    this.#idle = idleDeadline(this.loop, limits, (error) => this.teardown(error));
    if (connectionMade) this.call('connectionMade', this);
  }
}

// ------------------------------------------------------------ readiness

class ReadinessTransport extends BaseTransport {
  readonly #backend: ReadinessBackend;
  readonly #ops: SocketOps;
  readonly #fd: number;
  readonly #readToken: IoToken;
  #writeToken: IoToken | null = null;
  #readWatched = false;
  #writeWatched = false;
  /** Unwritten data: each chunk with how much of it was written. */
  #pending: Array<{ bytes: Uint8Array; offset: number }> = [];
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;

  constructor(loop: IoLoop, backend: ReadinessBackend, fd: number, protocol: Protocol, limits: ConnectionLimits) {
    super(loop, protocol);
    this.#backend = backend;
    this.#ops = backend.sockets;
    this.#fd = fd;
    this.localAddress = parseAddress(this.#ops.address(fd, false));
    this.remoteAddress = parseAddress(this.#ops.address(fd, true));
    this.#readToken = loop._watch(this.#onReadable);
    if (limits.tcp !== null) this.#ops.setTcpOptions?.(fd, limits.tcp.noDelay, limits.tcp.keepAliveMs);
    this.begin(limits);
    if (!this.closing) this.#updateReadWatch();
  }

  readonly #onReadable = (): void => {
    while (this.reading && !this.closing) {
      const room = CHUNK_BYTES;
      let n: number;
      try {
        n = checked.read(this.#backend, this.#fd, READ_BUFFER, room);
      } catch (error) {
        this.teardown(error as Error);
        return;
      }
      if (n === -EAGAIN) return;
      if (n < 0) {
        this.teardown(ioError('read', errnoName(n)));
        return;
      }
      if (n === 0) {
        this.reading = false;
        this.#updateReadWatch();
        this.eofArrived();
        return;
      }
      this.active();
      this.received(takeRead(n));
      if (n < room) return;
    }
  };

  #updateReadWatch(): void {
    const want = this.reading && !this.closing;
    if (want === this.#readWatched) return;
    if (want) {
      // Edge-triggered will do: #onReadable reads until EAGAIN or a short
      // read, and pausing unwatches (watching again reports what waits).
      try {
        checked.mustWatch(this.#backend, this.#fd, READABLE, this.#readToken.slot, true);
      } catch (error) {
        this.teardown(error as Error);
        return;
      }
    } else {
      this.#backend.unwatch(this.#fd, READABLE);
    }
    this.#readWatched = want;
  }

  pauseReading(): void {
    if (this.closing) return;
    this.reading = false;
    this.#updateReadWatch();
  }

  resumeReading(): void {
    if (this.closing) return;
    this.reading = true;
    this.#updateReadWatch();
  }

  write(data: Uint8Array | string): void {
    const bytes = this.checkWrite(data);
    if (bytes.length === 0) return;
    this.active();
    let offset = 0;
    if (this.#pending.length === 0) {
      let n: number;
      try {
        n = checked.write(this.#backend, this.#fd, bytes, 0, bytes.length);
      } catch (error) {
        this.teardown(error as Error);
        return;
      }
      if (n === bytes.length) return;
      if (n < 0 && n !== -EAGAIN) {
        this.teardown(ioError('write', errnoName(n)));
        return;
      }
      offset = Math.max(n, 0);
    }
    // The caller may reuse its array once write() returns: keep a copy.
    this.#pending.push({ bytes: bytes.slice(offset), offset: 0 });
    this.buffered += bytes.length - offset;
    this.#watchWritable(true);
    this.flowControl();
  }

  readonly #onWritable = (): void => {
    const pending = this.#pending;
    while (pending.length > 0) {
      const w = pending[0] as { bytes: Uint8Array; offset: number };
      let n: number;
      try {
        n = checked.write(this.#backend, this.#fd, w.bytes, w.offset, w.bytes.length - w.offset);
      } catch (error) {
        this.teardown(error as Error);
        return;
      }
      if (n === -EAGAIN) break;
      if (n < 0) {
        this.teardown(ioError('write', errnoName(n)));
        return;
      }
      if (n > 0) this.active();
      w.offset += n;
      this.buffered -= n;
      if (w.offset < w.bytes.length) break;
      pending.shift();
    }
    this.flowControl();
    if (pending.length > 0 || this.finished) return;
    this.#watchWritable(false);
    if (this.eofWritten) this.#ops.shutdownWrite(this.#fd);
    if (this.closing) this.teardown(null);
  };

  #watchWritable(want: boolean): void {
    if (want === this.#writeWatched) return;
    if (want) {
      this.#writeToken ??= this.loop._watch(this.#onWritable);
      // Edge-triggered will do: #onWritable writes until EAGAIN or a short write.
      try {
        checked.mustWatch(this.#backend, this.#fd, WRITABLE, this.#writeToken.slot, true);
      } catch (error) {
        this.teardown(error as Error);
        return;
      }
    } else {
      this.#backend.unwatch(this.#fd, WRITABLE);
    }
    this.#writeWatched = want;
  }

  writeEof(): void {
    if (this.eofWritten || this.closing) return;
    this.eofWritten = true;
    if (this.#pending.length === 0) this.#ops.shutdownWrite(this.#fd);
  }

  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.#updateReadWatch();
    if (this.#pending.length === 0) this.teardown(null);
  }

  abort(): void {
    this.teardown(null);
  }

  protected release(): void {
    if (this.#readWatched) this.#backend.unwatch(this.#fd, READABLE);
    if (this.#writeWatched) this.#backend.unwatch(this.#fd, WRITABLE);
    this.#readWatched = this.#writeWatched = false;
    this.loop._release(this.#readToken);
    if (this.#writeToken !== null) this.loop._release(this.#writeToken);
    this.#pending = [];
    this.buffered = 0;
    this.#ops.close(this.#fd);
  }
}

export function readinessTransport(loop: IoLoop, backend: ReadinessBackend, fd: number, protocol: Protocol, limits: ConnectionLimits) {
  return new ReadinessTransport(loop, backend, fd, protocol, limits) as Transport & Accepted;
}

// ----------------------------------------------------------- completion

/** What the host delivered and the protocol has not seen yet. */
type Delivery = Uint8Array | 'eof' | Error;

class CompletionTransport extends BaseTransport {
  readonly #backend: CompletionBackend;
  readonly #socket: CompletionSocket;
  #inbox: Delivery[] = [];
  /** The expected completion that hands the inbox to the protocol. */
  #deliverToken: IoToken | null = null;
  /** Bytes of writes the host finished later (and their first error), waiting for the loop. */
  #writesDone = 0;
  #writeError: Error | null = null;
  #writesToken: IoToken | null = null;
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;

  constructor(loop: IoLoop, backend: CompletionBackend, socket: CompletionSocket, protocol: Protocol, limits: ConnectionLimits) {
    super(loop, protocol);
    this.#backend = backend;
    this.#socket = socket;
    this.localAddress = socket.localAddress;
    this.remoteAddress = socket.remoteAddress;
    socket.start(
      (chunk) => this.#arrived(chunk === null ? 'eof' : chunk),
      (error) => this.#arrived(error),
    );
    if (limits.tcp !== null) socket.setTcpOptions?.(limits.tcp);
    this.begin(limits);
    if (!this.closing) socket.setFlowing(this.reading);
  }

  /** The host delivered something: have the loop hand it over. */
  #arrived(item: Delivery): void {
    if (this.finished) return;
    if (item instanceof Uint8Array) this.active();
    if (item instanceof Error && !this.reading) {
      // Paused, but the connection is gone: do not wait for resumeReading().
      this.teardown(fromHostError('read', item));
      return;
    }
    this.#inbox.push(item);
    if (this.reading && this.#deliverToken === null) {
      this.#deliverToken = this.loop._expect(this.#deliver);
      this.#backend.complete(this.#deliverToken.slot);
    }
  }

  readonly #deliver = (): void => {
    this.#deliverToken = null;
    const inbox = this.#inbox;
    while (inbox.length > 0 && this.reading && !this.closing) {
      const item = inbox.shift() as Delivery;
      if (item === 'eof') {
        this.reading = false;
        this.eofArrived();
      } else if (item instanceof Uint8Array) {
        this.received(item);
      } else {
        this.teardown(fromHostError('read', item));
      }
    }
  };

  pauseReading(): void {
    if (this.closing) return;
    this.reading = false;
    this.#socket.setFlowing(false);
  }

  resumeReading(): void {
    if (this.closing || this.reading) return;
    this.reading = true;
    this.#socket.setFlowing(true);
    if (this.#inbox.length > 0 && this.#deliverToken === null) {
      this.#deliverToken = this.loop._expect(this.#deliver);
      this.#backend.complete(this.#deliverToken.slot);
    }
  }

  write(data: Uint8Array | string): void {
    const bytes = this.checkWrite(data);
    if (bytes.length === 0) return;
    this.active();
    this.buffered += bytes.length;
    const inPlace = writeToHost(this.#socket, bytes, (error) => {
      if (this.finished) return;
      // A write that finished later reaches the protocol through the loop.
      this.#writesDone += bytes.length;
      this.#writeError ??= error;
      if (this.#writesToken === null) {
        this.#writesToken = this.loop._expect(this.#onWritesDone);
        this.#backend.complete(this.#writesToken.slot);
      }
    });
    if (inPlace !== undefined) this.#writeFinished(bytes.length, inPlace);
    else this.flowControl();
  }

  readonly #onWritesDone = (): void => {
    this.#writesToken = null;
    const bytes = this.#writesDone;
    const error = this.#writeError;
    this.#writesDone = 0;
    this.#writeError = null;
    this.#writeFinished(bytes, error);
  };

  /** `bytes` more were taken by the host (one write, or several that finished later). */
  #writeFinished(bytes: number, error: Error | null): void {
    if (this.finished) return;
    if (error !== null) {
      this.teardown(fromHostError('write', error));
      return;
    }
    this.active();
    this.buffered -= bytes;
    this.flowControl();
    if (this.buffered === 0 && this.closing) this.teardown(null);
  }

  writeEof(): void {
    if (this.eofWritten || this.closing) return;
    this.eofWritten = true;
    // Both implementations end after the writes already given to them.
    this.#socket.end();
  }

  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.#socket.setFlowing(false);
    if (this.buffered === 0) this.teardown(null);
  }

  abort(): void {
    this.teardown(null);
  }

  protected release(): void {
    this.#socket.destroy();
    if (this.#deliverToken !== null) this.loop._release(this.#deliverToken);
    if (this.#writesToken !== null) this.loop._release(this.#writesToken);
    this.#deliverToken = this.#writesToken = null;
    this.#inbox = [];
    this.buffered = 0;
  }
}

export function completionTransport(loop: IoLoop, backend: CompletionBackend, socket: CompletionSocket, protocol: Protocol, limits: ConnectionLimits) {
  return new CompletionTransport(loop, backend, socket, protocol, limits) as Transport & Accepted;
}
