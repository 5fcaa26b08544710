/**
 * Protocols and transports: asyncio's callback API for TCP
 * (`loop.create_server(protocol_factory)`), beside the streams of
 * `streams.ts`. A protocol's methods are called as data arrives, with no
 * promise per read or write; a transport writes what the kernel takes at
 * once and buffers the rest, telling the protocol to pause when its buffer
 * passes the high-water mark.
 *
 * This file holds the public Protocol and Transport types and what every
 * transport shares (`BaseTransport`). Each I/O model's transport has a file
 * of its own, as asyncio keeps selector_events.py and proactor_events.py
 * apart: `transport-readiness.ts` and `transport-completion.ts`;
 * `tls-transport.ts` extends the base over node:tls.
 *
 * Every protocol call runs inside a loop callback the core ordered, so
 * protocols see the same order on every backend. `connectionLost` is
 * scheduled with `callSoon`, as asyncio does. A transport with an
 * `idleTimeoutMs` is aborted once it has read and written nothing for that
 * long, and its protocol hears a TimeoutError.
 */
import { type ConnectionLimits, checkTcpOptions } from '../arguments.js';
import type { SocketAddress, TcpOptions } from '../backends/backend.js';
import { ConnectionClosedError, WriteAfterEndError } from '../errors.js';
import { type IoDeadline, idleDeadline } from './io-common.js';
import { type Accepted, type IoLoop, toBytes } from './streams.js';

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
  /**
   * Sets TCP options on the open connection, as createServer's and
   * createConnection's `noDelay` and `keepAlive` do when it opens (given
   * ones only). A bad value, or a Unix socket, is a TypeError or
   * RangeError; an option the backend cannot set is NotSupportedError; a
   * closing transport is ConnectionClosedError.
   */
  setTcpOptions(options: { noDelay?: boolean; keepAlive?: boolean | number }): void;
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

  setTcpOptions(options: { noDelay?: boolean; keepAlive?: boolean | number }): void {
    const operation = 'setTcpOptions';
    const tcp = checkTcpOptions(operation, options);
    if (this.localAddress.family === 'unix') {
      throw new TypeError(`${operation}: noDelay and keepAlive are TCP options, not for a Unix socket`);
    }
    if (this.closing) throw new ConnectionClosedError(`${operation}: the connection is closing or closed`);
    if (tcp !== null) this.applyTcpOptions(operation, tcp);
  }

  /** Sets checked TCP options on the connection (checkTcpSupport first, for the backend's own). */
  protected abstract applyTcpOptions(operation: string, tcp: TcpOptions): void;

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
    const h =
      high === undefined
        ? low === undefined
          ? DEFAULT_HIGH_WATER
          : 4 * checkLimit('low', low)
        : checkLimit('high', high);
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
    this.checkWritable();
    return toBytes('write', data);
  }

  /** Throws if a write may not go ahead (after writeEof(), or once closing). */
  protected checkWritable(): void {
    if (this.eofWritten) throw new WriteAfterEndError('write: writeEof() was called on this transport');
    if (this.closing) throw new ConnectionClosedError('write: the transport is closing or closed');
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
