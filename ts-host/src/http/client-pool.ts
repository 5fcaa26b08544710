/**
 * The client's connections, pooled per origin (scheme, host and port):
 * a request takes the origin's most recently used idle connection, or
 * opens one while the origin has fewer than `maxConnectionsPerOrigin`, or
 * waits in line for the next one to be released. An idle connection
 * closes after `idleTimeoutMs` of loop time (one loop timer each, cancelled
 * when it is taken), when its server closes it, and when the pool closes.
 *
 * Connections are opened by a `Connector`: `socketConnector` makes TCP
 * connections on the loop for `http:`, with the loop's TLS over them for
 * `https:` (the loop's TLS transport encrypts; the client never asks what
 * is under its transport). A test, or a proxy, can bring its own.
 */
import type { EventLoop } from '../loop.js';
import type { Protocol } from '../io/protocols.js';
import type { TlsClientOptions } from '../tls-options.js';
import { LoopClosedError, NotSupportedError } from '../errors.js';
import { ClientProtocol, type ConnectionOwner } from './client-protocol.js';
import type { HeadParser } from './parser.js';

/** Where a connection goes. */
export interface ConnectTarget {
  /** `'http:'` or `'https:'`. */
  readonly protocol: string;
  /** A host name or an IP address (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
  /** Aborts the attempt. */
  readonly signal: AbortSignal | null;
}

/**
 * Opens a connection to `target` and makes `protocol` its protocol
 * (`connectionMade` called once it is open); resolves once it is.
 */
export type Connector = (loop: EventLoop, target: ConnectTarget, protocol: Protocol) => Promise<void>;

/**
 * The default connector: TCP on the loop for `http:`, and TLS over it for
 * `https:` (the host's TLS, docs/tls.md), offering only HTTP/1.1 by ALPN and
 * checking the certificate against the URL's host; `tls` adds the
 * application's settings (a private CA, a client certificate, ...). On a
 * host without TLS the loop refuses `https:` with a NotSupportedError.
 */
export function socketConnector(tls: TlsClientOptions | null): Connector {
  return async (loop, target, protocol) => {
    const address = {
      host: target.host,
      port: target.port,
      ...(target.signal === null ? {} : { signal: target.signal }),
    };
    if (target.protocol === 'http:') {
      await loop.createProtocolConnection(() => protocol, address);
    } else if (target.protocol === 'https:') {
      await loop.createProtocolConnection(() => protocol, { ...address, tls: { alpnProtocols: ['http/1.1'], ...tls } });
    } else {
      throw new NotSupportedError(`fetch: ${target.protocol} URLs are not supported (only http: and https:)`);
    }
  };
}

export interface PoolSettings {
  readonly maxConnectionsPerOrigin: number;
  readonly idleTimeoutMs: number;
  readonly maxHeaderBytes: number;
  readonly connect: Connector;
}

interface Waiter {
  readonly url: URL;
  readonly signal: AbortSignal | null;
  resolve(connection: ClientProtocol): void;
  reject(error: unknown): void;
  onAbort: (() => void) | null;
}

/** One origin's connections. */
class Origin {
  readonly key: string;
  /** Idle connections, the most recently used last. */
  readonly idle: ClientProtocol[] = [];
  readonly waiters: Waiter[] = [];
  /** Connections open or being opened. */
  open = 0;

  constructor(key: string) {
    this.key = key;
  }
}

export class ConnectionPool implements ConnectionOwner {
  readonly #loop: EventLoop;
  readonly #parser: HeadParser;
  readonly #settings: PoolSettings;
  readonly #origins = new Map<string, Origin>();
  readonly #originOf = new Map<ClientProtocol, Origin>();
  #closing = false;
  /** Connections open or being opened, over every origin. */
  #open = 0;
  #onEmpty: (() => void) | null = null;

  constructor(loop: EventLoop, parser: HeadParser, settings: PoolSettings) {
    this.#loop = loop;
    this.#parser = parser;
    this.#settings = settings;
  }

  /** Open connections, idle or busy, over every origin. */
  get size(): number {
    return this.#originOf.size;
  }

  /** Idle connections over every origin. */
  get idle(): number {
    let n = 0;
    for (const origin of this.#origins.values()) n += origin.idle.length;
    return n;
  }

  /** A connection to `url`'s origin with no request on it. */
  acquire(url: URL, signal: AbortSignal | null): Promise<ClientProtocol> {
    if (this.#closing) return Promise.reject(new TypeError('fetch: the client is closed'));
    let origin = this.#origins.get(url.origin);
    if (origin === undefined) {
      origin = new Origin(url.origin);
      this.#origins.set(url.origin, origin);
    }
    for (let connection = origin.idle.pop(); connection !== undefined; connection = origin.idle.pop()) {
      connection.idleTimer?.cancel();
      connection.idleTimer = null;
      if (connection.available) return Promise.resolve(connection);
    }
    if (origin.open < this.#settings.maxConnectionsPerOrigin) return this.#connect(origin, url, signal);
    const queue = origin.waiters;
    return new Promise<ClientProtocol>((resolve, reject) => {
      const waiter: Waiter = { url, signal, resolve, reject, onAbort: null };
      if (signal !== null) {
        waiter.onAbort = () => {
          queue.splice(queue.indexOf(waiter), 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      queue.push(waiter);
    });
  }

  async #connect(origin: Origin, url: URL, signal: AbortSignal | null): Promise<ClientProtocol> {
    origin.open++;
    this.#open++;
    const connection = new ClientProtocol(this, this.#parser, this.#settings.maxHeaderBytes);
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
    try {
      await this.#settings.connect(this.#loop, { protocol: url.protocol, host, port, signal }, connection);
    } catch (error) {
      this.#closed(origin);
      // An abort, the loop closing and an unsupported scheme are themselves; the rest is a network error.
      const own =
        (signal?.aborted && error === signal.reason) ||
        error instanceof LoopClosedError ||
        error instanceof NotSupportedError;
      throw own ? error : new TypeError(`fetch: cannot connect to ${url.host}`, { cause: error });
    }
    if (connection.gone) {
      // Lost as it opened, before the pool knew it.
      this.#closed(origin);
      throw new TypeError(`fetch: the connection to ${url.host} closed as it opened`);
    }
    this.#originOf.set(connection, origin);
    if (!connection.available) throw new TypeError(`fetch: the connection to ${url.host} closed as it opened`);
    return connection;
  }

  /** Starts a connection for the next waiter, if there is room. */
  #next(origin: Origin): void {
    if (origin.open >= this.#settings.maxConnectionsPerOrigin) return;
    const waiter = origin.waiters.shift();
    if (waiter === undefined) {
      if (origin.open === 0 && origin.idle.length === 0) this.#origins.delete(origin.key);
      return;
    }
    this.#unwait(waiter);
    this.#connect(origin, waiter.url, waiter.signal).then(waiter.resolve, waiter.reject);
  }

  #unwait(waiter: Waiter): void {
    if (waiter.onAbort !== null) waiter.signal?.removeEventListener('abort', waiter.onAbort);
    waiter.onAbort = null;
  }

  // ---------------------------------------------------- ConnectionOwner

  released(connection: ClientProtocol, reusable: boolean): void {
    const origin = this.#originOf.get(connection);
    if (origin === undefined) return;
    if (!reusable) {
      connection.close();
      return;
    }
    const waiter = origin.waiters.shift();
    if (waiter !== undefined) {
      this.#unwait(waiter);
      waiter.resolve(connection);
      return;
    }
    if (this.#closing) {
      connection.close();
      return;
    }
    origin.idle.push(connection);
    connection.idleTimer = this.#loop.callLater(this.#settings.idleTimeoutMs, () => {
      connection.idleTimer = null;
      connection.close();
    });
  }

  lost(connection: ClientProtocol): void {
    connection.idleTimer?.cancel();
    connection.idleTimer = null;
    const origin = this.#originOf.get(connection);
    if (origin === undefined) return;
    this.#originOf.delete(connection);
    const at = origin.idle.indexOf(connection);
    if (at !== -1) origin.idle.splice(at, 1);
    this.#closed(origin);
  }

  /** A connection of `origin` closed, or never opened: room for the next waiter. */
  #closed(origin: Origin): void {
    origin.open--;
    this.#open--;
    this.#next(origin);
    if (this.#open === 0) this.#onEmpty?.();
  }

  // ------------------------------------------------------------ closing

  /**
   * Takes no new requests; idle connections close now, busy ones after
   * their exchange; requests waiting for a connection still get one.
   * Resolves when every connection is closed.
   */
  close(): Promise<void> {
    this.#closing = true;
    for (const origin of this.#origins.values()) {
      for (const connection of origin.idle.splice(0)) {
        connection.idleTimer?.cancel();
        connection.idleTimer = null;
        connection.close();
      }
    }
    if (this.#open === 0) return Promise.resolve();
    return new Promise((resolve) => (this.#onEmpty = resolve));
  }

  /** The loop is closing: every request fails with LoopClosedError, every connection closes now. */
  abortAll(): void {
    this.#closing = true;
    const error = new LoopClosedError('fetch');
    for (const origin of this.#origins.values()) {
      for (const waiter of origin.waiters.splice(0)) {
        this.#unwait(waiter);
        waiter.reject(error);
      }
    }
    for (const connection of [...this.#originOf.keys()]) connection.abort(error);
    this.#onEmpty?.();
  }
}
