/**
 * EventLoop: BaseEventLoop (base-loop.ts) plus what depends on the backend:
 * virtual time driven by hand, process signals, and I/O. The I/O methods
 * check their arguments and hand them to the loop's I/O model
 * (io-model/), picked once from the backend; none of them asks which
 * model it is.
 */
import { READABLE, WRITABLE } from './backends/backend.js';
import {
  type ConnectOptions,
  type DatagramEndpointOptions,
  type ServerOptions,
  checkAddress,
  checkDatagramOptions,
  checkFd,
  checkLimit,
  checkProtocol,
  checkSignalName,
  checkTime,
  notAFunction,
} from './arguments.js';
import { type StartTlsOptions, checkStartTls } from './tls-options.js';
import { BaseEventLoop } from './base-loop.js';
import { ConnectionClosedError, LoopRunningError, NotSupportedError, describe } from './errors.js';
import { yieldToHost } from './host-tasks.js';
import type { DatagramProtocol, DatagramProtocolFactory, DatagramTransport } from './io/datagrams.js';
import { BaseTransport, type Protocol, type ProtocolFactory, type Transport } from './io/protocols.js';
import { handOverTransport } from './io/hand-over.js';
import { type Connection, type ConnectionHandler, type IoToken, type Server, checkSignal } from './io/streams.js';
import type { Callback, ExceptionContext } from './reporting.js';
import { SignalHandlers } from './signals.js';
import { loopFetch } from './http/client.js';
import { type HttpServer, type ServeOptions, serve } from './http/server.js';

export type { ConnectOptions, DatagramEndpointOptions, ServerOptions } from './arguments.js';
export type { LoopSettings, LoopStats } from './base-loop.js';
export type { ExceptionContext, Logger } from './reporting.js';

/** Called with the loop and what went wrong when a callback throws (asyncio's exception handler). */
export type ExceptionHandler = (loop: EventLoop, context: ExceptionContext) => void;

export class EventLoop extends BaseEventLoop {
  readonly #signals = new SignalHandlers(this);

  // ------------------------------------------------------ virtual time

  /**
   * Virtual time: runs everything that is ready now, without moving the
   * clock; returns the callbacks run. Throws LoopLimitError past `limit`
   * callbacks (an endless callSoon chain).
   */
  runUntilIdle(options: { limit?: number } = {}): number {
    this.#manual('runUntilIdle');
    return this._parts.driver.runUntilIdle('runUntilIdle', checkLimit('runUntilIdle', options));
  }

  /**
   * Virtual time: moves the clock forward by `ms`, running every callback
   * due on the way at its own time, in order; returns the callbacks run.
   */
  advance(ms: number, options: { limit?: number } = {}): number {
    this.#manual('advance');
    checkTime('advance', 'ms', ms);
    if (ms < 0 || ms === Infinity) {
      throw new RangeError(`advance: ms must be a finite number >= 0 (time only moves forward), got ${describe(ms)}`);
    }
    return this._parts.driver.advance('advance', Math.ceil(ms * 1e6), checkLimit('advance', options));
  }

  /**
   * Virtual time: runs until no callback or timer is left, jumping the clock
   * from deadline to deadline; returns the callbacks run. Throws
   * LoopLimitError naming the limit when more than `limit` (default 100,000)
   * callbacks run, as timers that keep re-arming would.
   */
  runAll(options: { limit?: number } = {}): number {
    this.#manual('runAll');
    return this._parts.driver.runAll('runAll', checkLimit('runAll', options));
  }

  /**
   * As `advance`, `runUntilIdle` and `runAll`, run from a host macrotask, so
   * that promise continuations each callback creates run before the next
   * callback even when called from async code. (A synchronous call made
   * while a microtask is running cannot drain the microtask queue: that is
   * what these are for, as sinon's tickAsync is.)
   */
  advanceAsync(ms: number, options: { limit?: number } = {}): Promise<number> {
    return inMacrotask(() => this.advance(ms, options));
  }

  runUntilIdleAsync(options: { limit?: number } = {}): Promise<number> {
    return inMacrotask(() => this.runUntilIdle(options));
  }

  runAllAsync(options: { limit?: number } = {}): Promise<number> {
    return inMacrotask(() => this.runAll(options));
  }

  #manual(operation: string): void {
    this._parts.core.get(operation);
    if (!this._parts.virtualTime) {
      throw new NotSupportedError(
        `${operation}: only a loop on the 'virtual' backend can be driven by hand (this one is on '${this.backend}')`,
      );
    }
    if (this._parts.driver.running) throw new LoopRunningError(operation);
  }

  // -------------------------------------------------------------- signals

  /**
   * Runs `callback(...args)` as a loop callback each time the process
   * receives `signal` (a name such as `'SIGINT'` or `'SIGTERM'`), until
   * `removeSignalHandler` or `close()` (asyncio's `add_signal_handler`). A
   * second handler for the same signal replaces the first. While a handler
   * is set, the host's default action (ending the process, for most
   * signals) does not happen. Needs a host with process signals (Node,
   * Deno, Bun); elsewhere NotSupportedError.
   */
  addSignalHandler<A extends unknown[]>(signal: string, callback: (...args: A) => unknown, ...args: A): void {
    const operation = 'addSignalHandler';
    const name = checkSignalName(operation, signal);
    if (typeof callback !== 'function') throw notAFunction(operation, callback);
    this._parts.core.get(operation);
    this.#signals.add(operation, name, callback as Callback, args);
  }

  /** Removes the handler of `signal`; true if there was one. */
  removeSignalHandler(signal: string): boolean {
    const name = checkSignalName('removeSignalHandler', signal);
    this._parts.core.get('removeSignalHandler');
    return this.#signals.remove(name);
  }

  // ------------------------------------------------------------------ I/O

  /**
   * Calls `callback(...args)` whenever `fd` is readable, until removeReader.
   * A second addReader for the same fd replaces the callback. Selector only.
   */
  addReader<A extends unknown[]>(fd: number, callback: (...args: A) => unknown, ...args: A): void {
    this.#addFdWatch('addReader', fd, READABLE, callback as Callback, args);
  }

  /** Stops watching `fd` for reading; true if it was watched. */
  removeReader(fd: number): boolean {
    return this.#removeFdWatch('removeReader', fd, READABLE);
  }

  /** Calls `callback(...args)` whenever `fd` is writable, until removeWriter. Selector only. */
  addWriter<A extends unknown[]>(fd: number, callback: (...args: A) => unknown, ...args: A): void {
    this.#addFdWatch('addWriter', fd, WRITABLE, callback as Callback, args);
  }

  /** Stops watching `fd` for writing; true if it was watched. */
  removeWriter(fd: number): boolean {
    return this.#removeFdWatch('removeWriter', fd, WRITABLE);
  }

  #addFdWatch(operation: string, fd: number, direction: 1 | 2, callback: Callback, args: unknown[]): void {
    checkFd(operation, fd);
    if (typeof callback !== 'function') throw notAFunction(operation, callback);
    this._parts.core.get(operation);
    this._parts.io.addFdWatch(operation, fd, direction, callback, args);
  }

  #removeFdWatch(operation: string, fd: number, direction: 1 | 2): boolean {
    checkFd(operation, fd);
    this._parts.core.get(operation);
    return this._parts.io.removeFdWatch(operation, fd, direction);
  }

  /**
   * Listens for TCP connections; `onConnection(connection)` runs for each,
   * as a loop callback. A handler that throws or rejects has its connection
   * closed and the error reported to the exception handler.
   */
  async createServer(onConnection: ConnectionHandler, options: ServerOptions): Promise<Server> {
    const operation = 'createServer';
    if (typeof onConnection !== 'function') throw notAFunction(operation, onConnection);
    const address = checkAddress(operation, options, true);
    this._parts.core.get(operation);
    return this._parts.io.createServer(this, operation, onConnection, address);
  }

  /** Opens a TCP connection. */
  async createConnection(options: ConnectOptions): Promise<Connection> {
    const operation = 'createConnection';
    const address = checkAddress(operation, options, false);
    const signal = checkSignal(operation, options.signal);
    this._parts.core.get(operation);
    return this._parts.io.createConnection(this, operation, address, signal);
  }

  /**
   * Listens for TCP connections with asyncio's protocol API: for each
   * connection `protocolFactory()` makes a protocol, whose methods the loop
   * calls as things happen (`connectionMade(transport)`, `dataReceived(data)`,
   * `eofReceived()`, `connectionLost(error)`, `pauseWriting()`,
   * `resumeWriting()`). No promise per read or write: the fastest way to
   * serve. A factory or method that throws is reported to the exception
   * handler and its connection aborted.
   */
  async createProtocolServer(protocolFactory: ProtocolFactory, options: ServerOptions): Promise<Server> {
    const operation = 'createProtocolServer';
    if (typeof protocolFactory !== 'function') throw notAFunction(operation, protocolFactory, 'protocolFactory');
    const address = checkAddress(operation, options, true, false);
    this._parts.core.get(operation);
    return this._parts.io.createProtocolServer(this, operation, protocolFactory, address);
  }

  /**
   * Opens a TCP connection with asyncio's protocol API; resolves once it is
   * open and `connectionMade` has run.
   */
  async createProtocolConnection<P extends Protocol>(
    protocolFactory: ProtocolFactory<P>,
    options: ConnectOptions,
  ): Promise<{ transport: Transport; protocol: P }> {
    const operation = 'createProtocolConnection';
    if (typeof protocolFactory !== 'function') throw notAFunction(operation, protocolFactory, 'protocolFactory');
    const address = checkAddress(operation, options, false, false);
    const signal = checkSignal(operation, options.signal);
    this._parts.core.get(operation);
    return this._parts.io.createProtocolConnection(this, operation, protocolFactory, address, signal);
  }

  /**
   * Upgrades a protocol connection to TLS in place (STARTTLS; asyncio's
   * `loop.start_tls`; docs/tls.md): `{ serverSide: true, key, cert, ... }`
   * on the accepting side, the client's `tls` options (or none) on the
   * other. Resolves to the TLS transport once the handshake is done; from
   * then on `protocol` hears the decrypted data (its `connectionMade` is
   * not called again). The old transport refuses writes from the call on;
   * closing it closes the TLS transport.
   */
  startTls(transport: Transport, protocol: Protocol, options?: StartTlsOptions): Promise<Transport> {
    const operation = 'startTls';
    try {
      if (!(transport instanceof BaseTransport)) {
        throw new TypeError(
          `${operation}: transport must be a transport of this loop's protocol API, got ${describe(transport)}`,
        );
      }
      checkProtocol(operation, protocol);
      const config = checkStartTls(operation, options);
      this._parts.core.get(operation);
      if (transport.isClosing()) throw new ConnectionClosedError(`${operation}: the transport is closing or closed`);
      const { raw, succession, attach } = handOverTransport(transport);
      return import('./io/tls-upgrade.js').then((m) =>
        m.upgradeTransport(this, raw, succession, attach, protocol, config),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Opens a UDP endpoint with asyncio's datagram protocol API
   * (`create_datagram_endpoint`): `localAddress` to bind (default: any
   * address of the remote's family, a free port), `remoteAddress` to connect
   * it to (then it sends there and receives only from there). Resolves once
   * `connectionMade` has run.
   */
  async createDatagramEndpoint<P extends DatagramProtocol>(
    protocolFactory: DatagramProtocolFactory<P>,
    options: DatagramEndpointOptions,
  ): Promise<{ transport: DatagramTransport; protocol: P }> {
    const operation = 'createDatagramEndpoint';
    if (typeof protocolFactory !== 'function') throw notAFunction(operation, protocolFactory, 'protocolFactory');
    const { local, remote } = checkDatagramOptions(operation, options);
    this._parts.core.get(operation);
    return this._parts.io.createDatagramEndpoint(this, operation, protocolFactory, local, remote);
  }

  // ----------------------------------------------------------------- HTTP

  /**
   * HTTP/1.1 `fetch` on this loop's connections (docs/http.md): a Request
   * or URL and an init in, a Response with a streaming body out. Keep-alive
   * connections are pooled per origin and closed with the loop. `https:`
   * goes over the loop's TLS (docs/tls.md), where the host has it.
   */
  fetch(input: Request | string | URL, init?: RequestInit): Promise<Response> {
    return loopFetch(this, input, init);
  }

  /**
   * An HTTP/1.1 server with a fetch handler on this loop: `serve(loop,
   * options)` (docs/http.md). Resolves once it listens.
   */
  serve(options: ServeOptions): Promise<HttpServer> {
    return serve(this, options);
  }

  // ----------------------------------------------------------- exceptions

  /**
   * Sets the function called with `(loop, context)` when a callback throws;
   * `null` restores the default, which logs with the logger's `error`
   * (`console.error` unless `createLoop({ logger })` says otherwise).
   */
  setExceptionHandler(handler: ExceptionHandler | null): void {
    if (handler !== null && typeof handler !== 'function') {
      throw new TypeError(`setExceptionHandler: handler must be a function or null, got ${describe(handler)}`);
    }
    this._parts.reporter.handler = handler;
  }

  getExceptionHandler(): ExceptionHandler | null {
    return this._parts.reporter.handler;
  }

  /** @internal A persistent callback run whenever the backend reports its token. */
  _watch(callback: () => void): IoToken {
    return this._parts.callbacks.registerIo('watch', callback);
  }

  /** @internal A one-shot callback run when the backend reports its token completed. */
  _expect(callback: () => void): IoToken {
    return this._parts.callbacks.registerIo('expect', callback);
  }

  /** @internal Cancels a watcher or an expected completion. */
  _release(token: IoToken): void {
    this._parts.callbacks.release(token);
  }

  /**
   * @internal Host work in flight that the next callbacks depend on: on
   * virtual time the loop neither iterates nor jumps its clock until the
   * returned release runs (driver.ts, `hold()`). Null on wall time, where
   * nothing waits for it.
   */
  _holdClock(): (() => void) | null {
    return this._parts.virtualTime ? this._parts.driver.hold() : null;
  }

  /** @internal Reports an error no caller can receive. */
  _report(message: string, error: unknown): void {
    this._parts.reporter.exception({ message, error });
  }
}

function inMacrotask<T>(fn: () => T): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    yieldToHost(() => {
      try {
        resolve(fn());
      } catch (error) {
        reject(error);
      }
    });
  });
}
