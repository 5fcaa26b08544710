/**
 * `wasmloop serve --interface node`: a `node:http` request listener
 * (`(req, res)`, an Express app) on the loop's connections. Node's own
 * `http.Server` parses and writes HTTP, unlistened: each connection the
 * loop accepts becomes a Duplex (io/transport-duplex.ts) handed to it with
 * `emit('connection')`, so the listener gets the IncomingMessage and
 * ServerResponse it was written for, and the bytes move on the loop.
 *
 * What `serve()` does itself is done here around Node's server: the limit
 * on connections (503 past it), graceful closing (idle connections close
 * at once, busy ones after their response, which says `connection:
 * close`), the access log (a line when the head is written, and one for
 * the 503 of a connection past the limit). Node's
 * timeouts apply: `keepAliveTimeout`, and `headersTimeout` checked every
 * second by Node's own timer (not the loop's: virtual time does not move it).
 */
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { SocketAddress } from '../backends/backend.js';
import type { EventLoop } from '../loop.js';
import { type TransportDuplex, duplexProtocol } from '../io/transport-duplex.js';
import type { TlsServerOptions } from '../tls-options.js';
import { type AccessLog, clientAddress } from './access-log.js';
import type { NodeListener, StartedServer } from './serve-app.js';

export interface NodeServeOptions {
  host?: string;
  port?: number;
  path?: string;
  /** A listening socket inherited (`--fd`, or a primary's for its workers). */
  fd?: number;
  reusePort?: boolean;
  /** HTTPS (`--ssl-*`): the server's `tls` option. */
  tls?: TlsServerOptions;
  keepAliveTimeoutMs: number;
  requestTimeoutMs: number;
  maxConnections: number;
  log: AccessLog | null;
}

/** How long a refused connection reads and drops what the client still sends before it closes (ms). */
const LINGER_MS = 2000;
/** How often Node's server checks its connections' head timeouts (its default is 30 s). */
const CHECK_INTERVAL_MS = 1000;
/** Node's default for a whole request; raised if the head's own timeout is longer. */
const NODE_REQUEST_TIMEOUT_MS = 300_000;

const SERVICE_UNAVAILABLE =
  'HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 20\r\nconnection: close\r\n\r\nService Unavailable\n';

/** What node:http keeps on a socket: the response it is writing, if any. */
type HttpSocket = TransportDuplex & { _httpMessage?: ServerResponse | null };

/** Serves `listener` on the loop; resolves once it listens. */
export async function serveNodeListener(
  loop: EventLoop,
  listener: NodeListener,
  options: NodeServeOptions,
): Promise<StartedServer> {
  const { log, maxConnections } = options;
  const duplexes = new Set<HttpSocket>();
  let closing = false;

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    if (closing) res.shouldKeepAlive = false;
    if (log !== null) logWhenHeadWritten(log, req, res);
    listener(req, res);
  };
  const http = createServer(
    {
      keepAliveTimeout: options.keepAliveTimeoutMs,
      headersTimeout: options.requestTimeoutMs,
      requestTimeout: Math.max(NODE_REQUEST_TIMEOUT_MS, options.requestTimeoutMs),
      connectionsCheckingInterval: CHECK_INTERVAL_MS,
    },
    onRequest,
  );
  // What listen() would do: starts Node's tracking of connections (the head timeout).
  http.emit('listening');

  const onConnection = (duplex: HttpSocket) => {
    duplexes.add(duplex);
    duplex.once('close', () => duplexes.delete(duplex));
    if (duplexes.size > maxConnections || closing) refuse(loop, duplex, log);
    else http.emit('connection', duplex);
  };
  const { host, port, path, fd, reusePort, tls } = options;
  const listen = {
    ...(fd !== undefined
      ? { fd }
      : path !== undefined
        ? { path }
        : { host: host ?? '127.0.0.1', port: port ?? 0, ...(reusePort === undefined ? {} : { reusePort }) }),
    // node:http speaks HTTP/1.1: ALPN says so.
    ...(tls === undefined ? {} : { tls: { alpnProtocols: ['http/1.1'], ...tls } }),
  };
  // Half-open, as the sockets of node:http's own listener: it decides what a client's end means.
  const server = await loop.createProtocolServer(
    () => duplexProtocol(loop, onConnection, { allowHalfOpen: true }),
    listen,
  );

  let closed: Promise<void> | null = null;
  return {
    address: (): SocketAddress => server.address(),
    close: () => {
      if (closed === null) {
        closing = true;
        closed = server.close();
        for (const duplex of duplexes) closeWhenIdle(duplex);
        http.close(() => undefined);
      }
      return closed;
    },
  };
}

/** Closes a connection once it has no response in flight; a response not yet begun says `connection: close`. */
function closeWhenIdle(duplex: HttpSocket): void {
  if (duplex.destroyed) return;
  const response = duplex._httpMessage;
  if (response === null || response === undefined) {
    duplex.destroy();
    return;
  }
  if (!response.headersSent) response.shouldKeepAlive = false;
  // After node:http's own 'finish' handling, which may start a pipelined response.
  response.once('finish', () => setImmediate(() => closeWhenIdle(duplex)));
}

/** A 503 and a lingering close for a connection past the limit (or arriving while closing); logged as serve()'s. */
function refuse(loop: EventLoop, duplex: TransportDuplex, log: AccessLog | null): void {
  duplex.on('data', () => undefined);
  duplex.on('error', () => undefined);
  duplex.end(SERVICE_UNAVAILABLE);
  log?.refused(clientAddress(duplex.transport.remoteAddress), null, 503);
  const timer = loop.callLater(LINGER_MS, () => duplex.destroy());
  duplex.once('close', () => timer.cancel());
}

/** Logs the response when its head is written (node:http writes it through writeHead, implicitly too). */
function logWhenHeadWritten(log: AccessLog, req: IncomingMessage, res: ServerResponse): void {
  const writeHead = res.writeHead;
  res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    const result = (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
    const socket = req.socket;
    const client =
      socket.remoteAddress === undefined || socket.remotePort === undefined
        ? ''
        : `${socket.remoteAddress}:${socket.remotePort}`;
    log.response(client, req.method ?? '', req.url ?? '', req.httpVersion, this.statusCode);
    return result;
  } as typeof res.writeHead;
}
