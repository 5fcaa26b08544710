/**
 * `loop.fetch(input, init)`: an HTTP/1.1 client on the loop, with the
 * standard fetch shape (a `Request` or URL and an init in, a `Response`
 * with a streaming body out), on every backend with a network, the
 * `virtual` one included, where a test's server and client talk over the
 * in-memory network in virtual time.
 *
 * ```text
 * HttpClient.fetch (this file)       arguments, redirects, one retry on a stale connection
 * ConnectionPool (client-pool.ts)    connections per origin: reuse, limit, idle timeout
 * ClientProtocol (client-protocol.ts) one connection: request out, Response in
 * ClientConnection (client-connection.ts) response bytes -> events, no I/O
 * parser.ts                          httparse + RFC 9112 section 6.3 (rust-core/http-parser)
 * ```
 *
 * Each loop has a client of its own for `loop.fetch`, made at the first
 * fetch and closed with the loop; `createHttpClient(loop, options)` makes
 * another, with other limits, TLS settings, or a connector of its own.
 */
import type { EventLoop } from '../loop.js';
import { LoopClosedError, describe } from '../errors.js';
import { checkOptions } from '../options.js';
import { type TlsClientOptions, checkTls } from '../tls-options.js';
import { type Connector, ConnectionPool, socketConnector } from './client-pool.js';
import { StaleConnectionError } from './client-protocol.js';
import { type OutgoingRequest, outgoingRequest } from './client-request.js';
import { loadParser } from './parser.js';

export type { Connector, ConnectTarget } from './client-pool.js';

export interface HttpClientOptions {
  /** Connections open at once to one origin (scheme, host, port); more requests wait in line. Default 6. */
  maxConnectionsPerOrigin?: number;
  /** An idle keep-alive connection closes after this long (ms of loop time). Default 4000. */
  idleTimeoutMs?: number;
  /** Bytes of a response head; a longer one fails the request. Default 16 KiB. */
  maxHeaderBytes?: number;
  /**
   * TLS settings for `https:` (docs/tls.md's client options: `ca`, `cert`,
   * `key`, `rejectUnauthorized`, `handshakeTimeoutMs`; `servername` defaults
   * to the URL's host and `alpnProtocols` to `['http/1.1']`).
   */
  tls?: TlsClientOptions;
  /** Opens connections; the default makes TCP connections on the loop, with TLS for `https:` (client-pool.ts). */
  connect?: Connector;
  /** The parser's Wasm module, compiled by the host (workerd cannot compile bytes at run time). */
  parserModule?: WebAssembly.Module;
}

export const CLIENT_DEFAULTS = {
  maxConnectionsPerOrigin: 6,
  idleTimeoutMs: 4000,
  maxHeaderBytes: 16 * 1024,
  /** Redirects followed before a request fails (fetch's limit). */
  maxRedirects: 20,
} as const;

const CLIENT_OPTIONS = [
  'maxConnectionsPerOrigin',
  'idleTimeoutMs',
  'maxHeaderBytes',
  'tls',
  'connect',
  'parserModule',
] as const;

/** Redirect response bodies up to this size are read to keep their connection; longer ones close it. */
const REDIRECT_DRAIN_BYTES = 64 * 1024;
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);
/** Fields that describe a body, dropped when a redirect turns the request into a GET. */
const BODY_FIELDS = ['content-type', 'content-encoding', 'content-language', 'content-location', 'content-length'];

/** The `tls` option, checked as createConnection checks it. */
function clientTls(tls: unknown): TlsClientOptions | null {
  if (tls === undefined) return null;
  if (typeof tls !== 'object' || tls === null) {
    throw new TypeError(`createHttpClient: tls must be an object of TLS client options, got ${describe(tls)}`);
  }
  checkTls('createHttpClient', tls, false);
  return tls as TlsClientOptions;
}

function whole(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `createHttpClient: ${name} must be a whole number from ${min} to ${max}, got ${describe(value)}`,
    );
  }
  return value;
}

export class HttpClient {
  readonly #loop: EventLoop;
  readonly #pool: Promise<ConnectionPool>;
  #closed: Promise<void> | null = null;
  /** What the loop closes when it closes: every connection, at once. */
  readonly #tracked = { close: () => this.#abortAll() };
  #ready: ConnectionPool | null = null;

  constructor(loop: EventLoop, options?: HttpClientOptions) {
    const o = checkOptions('createHttpClient', options, CLIENT_OPTIONS);
    const settings = {
      maxConnectionsPerOrigin: whole(
        'maxConnectionsPerOrigin',
        o.maxConnectionsPerOrigin,
        CLIENT_DEFAULTS.maxConnectionsPerOrigin,
        1,
        2 ** 31 - 1,
      ),
      idleTimeoutMs: whole('idleTimeoutMs', o.idleTimeoutMs, CLIENT_DEFAULTS.idleTimeoutMs, 0, 2 ** 31 - 1),
      maxHeaderBytes: whole('maxHeaderBytes', o.maxHeaderBytes, CLIENT_DEFAULTS.maxHeaderBytes, 64, 1 << 20),
      connect: o.connect ?? socketConnector(clientTls(o.tls)),
    };
    if (typeof settings.connect !== 'function') {
      throw new TypeError(`createHttpClient: connect must be a function, got ${describe(settings.connect)}`);
    }
    if (loop.isClosed()) throw new LoopClosedError('createHttpClient');
    this.#loop = loop;
    this.#pool = loadParser(o.parserModule).then((parser) => {
      this.#ready = new ConnectionPool(loop, parser, settings);
      return this.#ready;
    });
    // A failed load is reported by each fetch; nothing else waits on it.
    this.#pool.catch(() => undefined);
    loop._track(this.#tracked, true);
  }

  /** Open connections, idle or busy. */
  get connections(): number {
    return this.#ready?.size ?? 0;
  }

  /** Idle keep-alive connections. */
  get idleConnections(): number {
    return this.#ready?.idle ?? 0;
  }

  /** fetch on this client's connections. */
  async fetch(input: Request | string | URL, init?: RequestInit): Promise<Response> {
    if (this.#loop.isClosed()) throw new LoopClosedError('fetch');
    if (this.#closed !== null) throw new TypeError('fetch: the client is closed');
    const request = await outgoingRequest(input, init);
    const signal = request.signal;
    if (signal?.aborted) throw signal.reason;
    const pool = await this.#pool;
    let redirected = false;
    for (let redirects = 0; ; redirects++) {
      const response = await this.#send(pool, request);
      const location = isRedirect(response.status) ? response.headers.get('location') : null;
      if (location === null || request.redirect === 'manual') return stamped(response, request.url, redirected);
      if (request.redirect === 'error') {
        await response.body?.cancel();
        throw new TypeError(`fetch: the server redirected (${response.status} to ${location}) and redirect is 'error'`);
      }
      if (redirects === CLIENT_DEFAULTS.maxRedirects) {
        await response.body?.cancel();
        throw new TypeError(`fetch: more than ${CLIENT_DEFAULTS.maxRedirects} redirects`);
      }
      await drain(response);
      redirect(request, response.status, location);
      redirected = true;
    }
  }

  /** Sends `request` on a pooled connection; once more on a new one if a reused connection was stale. */
  async #send(pool: ConnectionPool, request: OutgoingRequest): Promise<Response> {
    const signal = request.signal;
    for (let attempt = 0; ; attempt++) {
      const connection = await pool.acquire(request.url, signal);
      if (signal?.aborted) {
        pool.released(connection, true);
        throw signal.reason;
      }
      try {
        return await connection.send(request);
      } catch (error) {
        const replayable = request.body.kind !== 'stream' && IDEMPOTENT.has(request.method);
        if (!(error instanceof StaleConnectionError) || attempt > 0 || !replayable) throw error;
      }
    }
  }

  /**
   * Takes no new requests; idle connections close now, busy ones once their
   * exchange is over. Resolves when every connection is closed.
   */
  close(): Promise<void> {
    this.#closed ??= this.#pool.then(
      async (pool) => {
        await pool.close();
        this.#loop._track(this.#tracked, false);
      },
      () => this.#loop._track(this.#tracked, false),
    );
    return this.#closed;
  }

  #abortAll(): void {
    this.#closed ??= Promise.resolve();
    this.#ready?.abortAll();
  }
}

/** Makes an HTTP client on `loop` with limits (or a connector) of its own. */
export function createHttpClient(loop: EventLoop, options?: HttpClientOptions): HttpClient {
  return new HttpClient(loop, options);
}

const loopClients = new WeakMap<EventLoop, HttpClient>();

/** `loop.fetch`: the loop's own client, made at the first fetch. */
export function loopFetch(loop: EventLoop, input: Request | string | URL, init?: RequestInit): Promise<Response> {
  if (loop.isClosed()) return Promise.reject(new LoopClosedError('fetch'));
  return loopClient(loop).fetch(input, init);
}

/** The loop's own client (made if it has none yet). */
export function loopClient(loop: EventLoop): HttpClient {
  let client = loopClients.get(loop);
  if (client === undefined) {
    client = new HttpClient(loop);
    loopClients.set(loop, client);
  }
  return client;
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

/** The response as fetch returns it: its final URL (no fragment), and whether a redirect led there. */
function stamped(response: Response, url: URL, redirected: boolean): Response {
  const href = url.hash === '' ? url.href : url.href.slice(0, url.href.indexOf('#'));
  Object.defineProperty(response, 'url', { value: href, enumerable: true });
  Object.defineProperty(response, 'redirected', { value: redirected, enumerable: true });
  return response;
}

/** Reads and drops a redirect's body (to keep its connection), or cancels it if it is long. */
async function drain(response: Response): Promise<void> {
  const body = response.body;
  if (body === null) return;
  const reader = body.getReader();
  let bytes = 0;
  for (;;) {
    const next = await reader.read();
    if (next.done) return;
    bytes += (next.value as Uint8Array).length;
    if (bytes > REDIRECT_DRAIN_BYTES) {
      await reader.cancel();
      return;
    }
  }
}

/** Turns `request` into the one a redirect asks for (fetch's "HTTP-redirect fetch"). */
function redirect(request: OutgoingRequest, status: number, location: string): void {
  let next: URL;
  try {
    next = new URL(location, request.url);
  } catch (error) {
    throw new TypeError(`fetch: the server redirected to ${describe(location)}, which is not a URL`, { cause: error });
  }
  if (next.protocol !== 'http:' && next.protocol !== 'https:') {
    throw new TypeError(`fetch: the server redirected to a ${next.protocol} URL`);
  }
  if (next.username !== '' || next.password !== '')
    throw new TypeError('fetch: the server redirected to a URL with credentials');
  const toGet =
    ((status === 301 || status === 302) && request.method === 'POST') ||
    (status === 303 && request.method !== 'GET' && request.method !== 'HEAD');
  if (toGet) {
    request.method = 'GET';
    request.body = { kind: 'none' };
    for (const name of BODY_FIELDS) request.headers.delete(name);
  } else if (request.body.kind === 'stream') {
    throw new TypeError(`fetch: cannot follow a ${status} redirect with a stream body (a stream cannot be sent twice)`);
  }
  if (next.origin !== request.url.origin) {
    // Credentials for one origin are not handed to another.
    for (const name of ['authorization', 'proxy-authorization', 'cookie', 'host']) request.headers.delete(name);
  }
  if (next.hash === '' && request.url.hash !== '') next.hash = request.url.hash;
  request.url = next;
}
