/**
 * What the stream and protocol servers of both I/O models share: the
 * accepted connections a server answers for, how it closes (stop accepting,
 * then wait for its connections, or close or abort them:
 * `closeClients()`/`abortClients()`, asyncio's `close_clients` and
 * `abort_clients`), `maxConnections` (a connection accepted beyond it is
 * closed at once), running a connection handler (the connection is closed
 * when its handler settles, unless the handler kept it), and a connect in
 * progress that a signal or the loop's closing abandons.
 */
import type { ConnectionLimits } from '../arguments.js';
import { ACCEPT_RETRY_FIRST_MS, ACCEPT_RETRY_MS, type SocketAddress } from '../backends/backend.js';
import { ConnectionClosedError, type IoError, LoopClosedError, TimeoutError } from '../errors.js';
import { listenerFault } from '../net/inherited-listener.js';
import type { Connection } from './connection.js';
import { type IoLoop, abortReason, ioError, onAbortOf } from './io-common.js';

/** A listening TCP or Unix-socket server. */
export interface Server {
  address(): SocketAddress;
  /** Stops accepting; resolves once every open connection has closed. */
  close(): Promise<void>;
  /**
   * Closes every open connection gracefully (asyncio's `close_clients`):
   * each writes what it has buffered, then closes (a stream connection
   * half-closes and lingers for its peer's end of stream, as after its
   * handler). Pending reads reject with ConnectionClosedError.
   */
  closeClients(): void;
  /** Closes every open connection now (asyncio's `abort_clients`): unwritten data is dropped. */
  abortClients(): void;
  /** Connections accepted and still open. */
  readonly connections: number;
}

/**
 * Handles one accepted connection. A handler that returns a promise owns
 * its connection until the promise settles; the server then closes it
 * (after its writes, with a lingering close) unless the handler called
 * `connection.keepOpen()`. A handler that returns anything else has handed
 * the connection on (callback style): the program closes it.
 */
export type ConnectionHandler = (connection: Connection) => void | Promise<void>;

/** What a server opens for each accepted connection: a stream or a protocol's transport. */
export interface Accepted {
  /** Calls `fn` once it has closed (at once if it has). */
  whenClosed(fn: () => void): void;
  /** Writes what is buffered, then closes (closeClients); absent: nothing is open. */
  closeGracefully?(): void;
  /** Closes now, dropping unwritten data (abortClients); absent: nothing is open. */
  abort?(): void;
}

/** A stream connection as a server drives it. */
export interface HandledConnection extends Connection, Required<Accepted> {
  /** The handler's promise settled: close gracefully, unless the handler kept the connection. */
  handlerSettled(): void;
}

/**
 * The connections a server accepted, and its closing: `close()` stops
 * accepting (the model's `stopListening()`) and resolves once every
 * connection has closed.
 */
export abstract class BaseServer implements Server {
  protected readonly loop: IoLoop;
  readonly #connections = new Set<Accepted>();
  readonly #maxConnections: number;
  /** An episode of accepts failing for lack of resources is under way (acceptFailed). */
  #acceptFailing = false;
  #closing: Promise<void> | null = null;
  #allClosed: (() => void) | null = null;

  constructor(loop: IoLoop, maxConnections: number) {
    this.loop = loop;
    this.#maxConnections = maxConnections;
  }

  abstract address(): SocketAddress;
  /** Stops accepting and releases the listener (idempotent); a promise if the host lets go of it later. */
  protected abstract stopListening(): Promise<void> | void;

  get connections(): number {
    return this.#connections.size;
  }

  /** True once close() was called. */
  protected get isClosing(): boolean {
    return this.#closing !== null;
  }

  /**
   * True when `maxConnections` are open: the model closes the connection it
   * just accepted, at once (its client reads the end of the stream instead
   * of waiting in the backlog, where it would look accepted to the kernel
   * anyway), and it is counted in `loop.stats().connectionsRefused`.
   */
  protected full(): boolean {
    if (this.#connections.size < this.#maxConnections) return false;
    this.loop._ioCounters.connectionsRefused++;
    return true;
  }

  /**
   * An accept failed for lack of resources (EMFILE, ENFILE, ...): the model
   * stopped accepting and retries after a back-off (acceptRetryDelay); the
   * connections already open are served as ever. Reported once per
   * episode, which an accept that succeeds ends (`accepted()`), however
   * many retries fail before it.
   */
  protected acceptFailed(error: Error): void {
    if (this.#acceptFailing) return;
    this.#acceptFailing = true;
    this.loop._ioCounters.acceptsPaused++;
    const code = (error as { code?: string }).code ?? error.message;
    this.loop._report(
      `accept failed (${code}): the server serves its open connections and retries accepting, ` +
        `${ACCEPT_RETRY_FIRST_MS} ms to ${ACCEPT_RETRY_MS} ms apart, until an accept succeeds`,
      error,
    );
  }

  /** An accept succeeded: an episode of failed accepts (acceptFailed) is over. */
  protected accepted(): void {
    this.#acceptFailing = false;
  }

  /** Counts `connection` until it closes. */
  protected adopt(connection: Accepted): void {
    this.#connections.add(connection);
    connection.whenClosed(() => {
      this.#connections.delete(connection);
      if (this.#connections.size === 0) this.#allClosed?.();
    });
  }

  close(): Promise<void> {
    if (this.#closing !== null) return this.#closing;
    this.#closing = new Promise<void>((resolve) => {
      this.#allClosed = () => {
        this.#allClosed = null;
        this.loop._track(this, false);
        resolve();
      };
    });
    const released = this.stopListening();
    if (this.#connections.size === 0) this.#allClosed?.();
    if (released !== undefined) this.#closing = Promise.all([this.#closing, released]).then(() => undefined);
    return this.#closing;
  }

  closeClients(): void {
    for (const connection of [...this.#connections]) connection.closeGracefully?.();
  }

  abortClients(): void {
    for (const connection of [...this.#connections]) connection.abort?.();
  }
}

/** What a stream server makes of each accepted socket: `open(raw)`'s connection, handed to `onConnection`. */
export function handling<R>(
  loop: IoLoop,
  onConnection: ConnectionHandler,
  open: (raw: R) => HandledConnection,
): (raw: R) => Accepted {
  return (raw) => {
    const connection = open(raw);
    runHandler(loop, onConnection, connection);
    return connection;
  };
}

/**
 * Calls the connection handler. When the promise it returns settles (or it
 * throws), the connection is closed gracefully unless the handler kept it;
 * a handler that throws or rejects is reported, unless the error is only
 * that the connection was closed under it (by the loop closing, say).
 */
export function runHandler(loop: IoLoop, handler: ConnectionHandler, connection: HandledConnection): void {
  const settled = () => connection.handlerSettled();
  const failed = (error: unknown) => {
    // The connection was closed under the handler (the loop closing, its idle timeout): nothing to report.
    if (!((error instanceof ConnectionClosedError || error instanceof TimeoutError) && connection.closed)) {
      loop._report('the connection handler failed; its connection was closed', error);
    }
    settled();
  };
  let result: unknown;
  try {
    result = handler(connection);
  } catch (error) {
    failed(error);
    return;
  }
  if (typeof result === 'object' && result !== null && typeof (result as PromiseLike<void>).then === 'function') {
    Promise.resolve(result).then(settled, failed);
  }
}

/** What to listen on: a TCP host and port, a Unix domain socket's path, or a listening socket to adopt. */
export interface ListenTarget {
  host: string;
  port: number;
  backlog: number;
  reusePort: boolean;
  path?: string | undefined;
  /** A listening socket another process handed over (host and port unused). */
  fd?: number | undefined;
  /** The most connections open at once (Infinity: no limit). */
  maxConnections: number;
  /** Each accepted connection's limits. */
  limits: ConnectionLimits;
}

/** An address as error messages name it. */
export function where(target: Pick<ListenTarget, 'host' | 'port' | 'path' | 'fd'>): string {
  if (target.fd !== undefined) return `fd ${target.fd}`;
  return target.path ?? `${target.host}:${target.port}`;
}

/**
 * The error of a listen that failed: for an adopted descriptor, what is
 * wrong with it ("fd 3 is not a socket") when the code says.
 */
export function listenError(code: string, target: ListenTarget, cause?: unknown): IoError {
  const fault = target.fd === undefined ? null : listenerFault(target.fd, code);
  return ioError('listen', code, fault ?? where(target), cause);
}

/**
 * A connect in progress: settled once, by its own outcome, by the caller's
 * signal, or by the loop closing (a resource the loop closes like its
 * connections). `abandon(reason)` runs `cleanUp` (close what was opened)
 * and rejects; `settle()` just stops listening.
 */
export function pendingConnect(
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
  limits: ConnectionLimits;
}
