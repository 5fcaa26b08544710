/**
 * `serve(loop, { fetch })`: an HTTP/1.1 server on the loop's protocol API.
 *
 * ```text
 * fetch handler (Request -> Response)         the application
 * HttpProtocol (protocol.ts)                  requests, responses, deadlines
 * Http1Connection (connection.ts)             bytes in -> events out, no I/O
 * parser (parser.ts, a Wasm module)           httparse + RFC 9112 framing
 * loop.createProtocolServer                   one connection = one protocol
 * ```
 *
 * Every limit has a name, a default and the status it produces (see
 * docs/http.md); the options are checked here, once.
 */
import type { TlsServerOptions } from '../tls-options.js';
import type { EventLoop } from '../loop.js';
import type { Server } from '../io/streams.js';
import type { SocketAddress } from '../backends/backend.js';
import { describe } from '../errors.js';
import { checkOptions } from '../options.js';
import { installLightResponse, lightResponseHelps } from './light-response.js';
import { type HeadParser, loadParser } from './parser.js';
import { type ConnectionInfo, HttpProtocol, type RequestLine, type ServerContext } from './protocol.js';

export type { ConnectionInfo, RequestLine } from './protocol.js';

export interface ServeOptions {
  /** The application: a Request in, a Response (or a promise of one) out. */
  fetch: (request: Request, info: ConnectionInfo) => Response | PromiseLike<Response>;
  /** Port; 0 (the default) picks a free one (see `address()`). */
  port?: number;
  /** Address to listen on. Default '127.0.0.1'. */
  host?: string;
  /** A Unix domain socket path to listen on instead of TCP. */
  path?: string;
  /**
   * A listening socket this process inherited, to serve on instead of
   * binding one (createServer's `fd`): not with host, port, path or reusePort.
   */
  fd?: number;
  /** Share the port with other processes, the kernel spreading connections (SO_REUSEPORT; `--workers`). */
  reusePort?: boolean;
  /**
   * Serve HTTPS: the `tls` option of createServer (docs/tls.md: key, cert,
   * ...). Request URLs are then https:, and the handler's `info.secure` is
   * true. ALPN offers http/1.1 unless `alpnProtocols` says otherwise.
   */
  tls?: TlsServerOptions | false;
  /** Aborting it closes the server (gracefully, as `close()`). */
  signal?: AbortSignal;
  /**
   * Told of each error response the server makes itself, once it is
   * written, before the connection closes: a request that broke a rule or
   * a limit (400, 413, 431, 501, ...), a head or body that took too long
   * (408), a connection past `maxConnections` or arriving while the server
   * closes (503). `request` is the request's line if its head was read,
   * else null. A failing handler's 500 is not one of them (the handler's
   * own call). An access log (`wasmloop serve`'s) writes these too.
   */
  onRefused?: (status: number, request: RequestLine | null, info: ConnectionInfo) => void;
  /** Bytes of a request head (request line and fields) and of a trailer section. Default 16 KiB; over it: 431. */
  maxHeaderBytes?: number;
  /** Header fields in a request head. Default 100; over it: 431. */
  maxHeaders?: number;
  /** Bytes of a request body. Default 16 MiB; over it: 413. */
  maxBodyBytes?: number;
  /** Time for a request head to arrive once it began (ms). Default 30 000; over it: 408. */
  requestTimeoutMs?: number;
  /**
   * The longest wait for the next bytes of a request body while the handler
   * reads it (ms). Default 30 000; over it: 408 (or a closed connection once
   * the response began).
   */
  bodyTimeoutMs?: number;
  /** An idle keep-alive connection closes after this long (ms). Default 5000 (uvicorn's). */
  keepAliveTimeoutMs?: number;
  /** Open connections; one more is answered 503 and closed. Default 10 000. */
  maxConnections?: number;
  /** The parser's Wasm module, compiled by the host (workerd cannot compile bytes at run time). */
  parserModule?: WebAssembly.Module;
  /**
   * Installs a `Response` that builds the runtime's own only when something
   * needs it (light-response.ts) as `globalThis.Response`. Default: true on
   * Node, whose `new Response()` costs more than the rest of a request.
   */
  lightResponse?: boolean;
}

export interface HttpServer {
  /** Where the server listens. */
  address(): SocketAddress;
  /**
   * Closes gracefully: stops accepting, lets requests in flight finish
   * (their responses say `connection: close`), closes idle keep-alive
   * connections at once; resolves when every connection is closed. With
   * `timeoutMs`, connections still open then are aborted (their requests'
   * signals abort).
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
  /** Open connections. */
  readonly connections: number;
}

export const HTTP_DEFAULTS = {
  host: '127.0.0.1',
  port: 0,
  maxHeaderBytes: 16 * 1024,
  maxHeaders: 100,
  maxBodyBytes: 16 * 1024 * 1024,
  requestTimeoutMs: 30_000,
  bodyTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5000,
  maxConnections: 10_000,
} as const;

const SERVE_OPTIONS = [
  'fetch',
  'port',
  'host',
  'path',
  'fd',
  'reusePort',
  'tls',
  'signal',
  'onRefused',
  'maxHeaderBytes',
  'maxHeaders',
  'maxBodyBytes',
  'requestTimeoutMs',
  'bodyTimeoutMs',
  'keepAliveTimeoutMs',
  'maxConnections',
  'parserModule',
  'lightResponse',
] as const;

function whole(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const where = name.includes(':') ? name : `serve: ${name}`;
    throw new RangeError(`${where} must be a whole number from ${min} to ${max}, got ${describe(value)}`);
  }
  return value;
}

/**
 * Where serve() listens, as createProtocolServer takes it: an `fd` goes
 * with whatever else was given (host, port, path), which that refuses.
 */
function listenAddress(o: Pick<ServeOptions, 'host' | 'port' | 'path' | 'fd'>): {
  host?: string;
  port?: number;
  path?: string;
  fd?: number;
} {
  if (o.fd !== undefined) {
    return {
      fd: o.fd,
      ...(o.host === undefined ? {} : { host: o.host }),
      ...(o.port === undefined ? {} : { port: o.port }),
      ...(o.path === undefined ? {} : { path: o.path }),
    };
  }
  return o.path !== undefined
    ? { path: o.path }
    : { host: o.host ?? HTTP_DEFAULTS.host, port: o.port ?? HTTP_DEFAULTS.port };
}

/** Starts an HTTP/1.1 server on `loop`; resolves once it listens. */
export async function serve(loop: EventLoop, options: ServeOptions): Promise<HttpServer> {
  const o = checkOptions('serve', options, SERVE_OPTIONS, false);
  if (typeof o.fetch !== 'function') throw new TypeError(`serve: fetch must be a function, got ${describe(o.fetch)}`);
  const signal = o.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(`serve: signal must be an AbortSignal, got ${describe(signal)}`);
  }
  if (o.onRefused !== undefined && typeof o.onRefused !== 'function') {
    throw new TypeError(`serve: onRefused must be a function, got ${describe(o.onRefused)}`);
  }
  const light = o.lightResponse ?? lightResponseHelps();
  if (typeof light !== 'boolean') throw new TypeError(`serve: lightResponse must be a boolean, got ${describe(light)}`);
  const parser: HeadParser = await loadParser(o.parserModule);
  if (light) installLightResponse();
  const context: ServerContext = {
    loop,
    parser,
    fetch: o.fetch,
    maxHeaderBytes: whole('maxHeaderBytes', o.maxHeaderBytes, HTTP_DEFAULTS.maxHeaderBytes, 64, parser.capacity),
    maxHeaders: whole('maxHeaders', o.maxHeaders, HTTP_DEFAULTS.maxHeaders, 1, parser.maxHeaders),
    maxBodyBytes: whole('maxBodyBytes', o.maxBodyBytes, HTTP_DEFAULTS.maxBodyBytes, 0, Number.MAX_SAFE_INTEGER),
    requestTimeoutMs: whole('requestTimeoutMs', o.requestTimeoutMs, HTTP_DEFAULTS.requestTimeoutMs, 1, 2 ** 31 - 1),
    bodyTimeoutMs: whole('bodyTimeoutMs', o.bodyTimeoutMs, HTTP_DEFAULTS.bodyTimeoutMs, 1, 2 ** 31 - 1),
    keepAliveTimeoutMs: whole(
      'keepAliveTimeoutMs',
      o.keepAliveTimeoutMs,
      HTTP_DEFAULTS.keepAliveTimeoutMs,
      1,
      2 ** 31 - 1,
    ),
    maxConnections: whole('maxConnections', o.maxConnections, HTTP_DEFAULTS.maxConnections, 1, 2 ** 31 - 1),
    connections: new Set(),
    closing: false,
    defaultHost: '',
    secure: o.tls !== undefined && o.tls !== false,
    onEmpty: null,
    onRefused: o.onRefused ?? null,
  };
  if (signal?.aborted) throw signal.reason ?? new DOMException('serve: aborted', 'AbortError');
  const address = {
    ...listenAddress(o),
    ...(o.reusePort === undefined ? {} : { reusePort: o.reusePort }),
  };
  // HTTP/1.1 is what this server speaks: say so in ALPN (clients that offer h2 first then pick it).
  const listen = o.tls ? { ...address, tls: { alpnProtocols: ['http/1.1'], ...o.tls } } : address;
  const server: Server = await loop.createProtocolServer(() => new HttpProtocol(context), listen);
  const bound = server.address();
  context.defaultHost =
    bound.family === 'unix'
      ? 'localhost'
      : bound.family === 'IPv6'
        ? `[${bound.host}]:${bound.port}`
        : `${bound.host}:${bound.port}`;

  let closed: Promise<void> | null = null;
  let abortTimer: { cancel(): void } | null = null;
  const close = (options?: { timeoutMs?: number } | Event): Promise<void> => {
    const timeoutMs = options instanceof Event ? undefined : checkOptions('close', options, ['timeoutMs']).timeoutMs;
    if (timeoutMs !== undefined) whole('close: timeoutMs', timeoutMs, 0, 0, 2 ** 31 - 1);
    if (closed === null) {
      context.closing = true;
      signal?.removeEventListener('abort', close);
      // Resolved when the listener closed and the last connection was lost
      // (connectionLost runs a callback after the listener counts it closed).
      const drained = new Promise<void>((resolve) => {
        if (context.connections.size === 0) resolve();
        else context.onEmpty = resolve;
      });
      const done = server.close();
      for (const connection of [...context.connections]) connection.shutdown();
      closed = Promise.all([done, drained]).then(() => abortTimer?.cancel());
    }
    if (timeoutMs !== undefined && context.connections.size > 0 && !loop.isClosed()) {
      abortTimer?.cancel();
      abortTimer = loop.callLater(timeoutMs, () => {
        for (const connection of [...context.connections]) connection.abort();
      });
    }
    return closed;
  };
  signal?.addEventListener('abort', close, { once: true });
  return {
    address: () => server.address(),
    close: (options?: { timeoutMs?: number }) => {
      try {
        return close(options);
      } catch (error) {
        return Promise.reject(error);
      }
    },
    get connections() {
      return context.connections.size;
    },
  };
}
