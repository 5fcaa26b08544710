/**
 * The application `wasmloop serve` runs: the handler a module exports,
 * served on the loop. It finds the handler (a fetch handler, or with
 * `--interface node` a `node:http` listener), starts the server with the
 * command's limits, logs each response (access-log.ts), the server's own
 * error responses included, and says where it serves. The server it returns is what app.ts closes gracefully on
 * SIGINT or SIGTERM.
 *
 * Where the handler is, as `deno serve`, Bun and workerd look for it:
 * `export default { fetch }` (a Hono app is such an object), or a named
 * export (`./app.mjs:api`) that is an object with `fetch` or a function,
 * taken as the fetch handler itself.
 */
import type { SocketAddress } from '../backends/backend.js';
import type { EventLoop } from '../loop.js';
import { type ConnectionInfo, type HttpServer, type RequestLine, serve } from '../http/server.js';
import { requestLineOf } from '../http/request.js';
import { SpecError, importModule } from '../module-loader.js';
import { AccessLog, clientAddress } from './access-log.js';
import type { AppFunction, AppOptions } from './app.js';

/** How the handler is called: `fetch` (Request in, Response out) or `node` (`(req, res)`, as node:http). */
export type HandlerInterface = 'fetch' | 'node';
export const INTERFACES: readonly HandlerInterface[] = ['fetch', 'node'];

/** What `wasmloop serve` passes on to the server. */
export interface ServeAppOptions {
  module: string;
  /** The export's name, or null for the default export. */
  exportName: string | null;
  interface: HandlerInterface;
  keepAliveTimeoutMs: number;
  requestTimeoutMs: number;
  maxConnections: number;
  accessLog: boolean;
}

type FetchHandler = (request: Request, info: ConnectionInfo) => Response | PromiseLike<Response>;
/** A `node:http` request listener (an Express app is one). */
export type NodeListener = (req: unknown, res: unknown) => void;

/** What the server started for the command is: closed gracefully by app.ts. */
export interface StartedServer {
  address(): SocketAddress;
  close(): Promise<void>;
}

/** Imports the module and finds its handler; SpecError (a usage error) if there is none. */
export async function loadServeApp(options: ServeAppOptions): Promise<AppFunction> {
  const { module, exportName } = options;
  const namespace = await importModule(module);
  const value = namespace[exportName ?? 'default'];
  const what = exportName === null ? `the default export of '${module}'` : `export '${exportName}' of '${module}'`;
  if (value === undefined) {
    throw new SpecError(
      exportName === null
        ? `module '${module}' has no default export: export default { fetch }, or name the export (${module}:<export>)`
        : `module '${module}' has no export '${exportName}'`,
    );
  }
  const log = options.accessLog ? new AccessLog() : null;
  if (log !== null) process.once('exit', () => log.flush());
  if (options.interface === 'node') {
    const listener = nodeListenerOf(value, what);
    const { serveNodeListener } = await import('./node-interface.js');
    return async (loop, appOptions) =>
      announce(
        loop,
        appOptions,
        await serveNodeListener(loop, listener, { ...serverOptions(options, appOptions), log }),
        log,
      );
  }
  const refused = new WeakSet<ConnectionInfo>();
  const handler = withAccessLog(fetchHandlerOf(value, what, exportName !== null), log, refused);
  const onRefused = log === null ? {} : { onRefused: refusalLog(log, refused) };
  return async (loop, appOptions) =>
    announce(
      loop,
      appOptions,
      await serve(loop, { fetch: handler, ...onRefused, ...serverOptions(options, appOptions) }),
      log,
    );
}

/** The limits and the address, as serve() and the node interface take them. */
function serverOptions(options: ServeAppOptions, appOptions: AppOptions) {
  return {
    ...appOptions.listen,
    keepAliveTimeoutMs: options.keepAliveTimeoutMs,
    requestTimeoutMs: options.requestTimeoutMs,
    maxConnections: options.maxConnections,
  };
}

/**
 * The fetch handler in `value`: its `fetch` method (called on it, so a
 * method using `this` works), or `value` itself if a named export is a
 * function. A default export that is a function is refused: it may as well
 * be a `(req, res)` listener, which would fail on every request.
 */
function fetchHandlerOf(value: unknown, what: string, named: boolean): FetchHandler {
  const fetch = (value as { fetch?: unknown } | null)?.fetch;
  if ((typeof value === 'object' || typeof value === 'function') && value !== null && typeof fetch === 'function') {
    return (request, info) => (fetch as FetchHandler).call(value, request, info);
  }
  if (typeof value === 'function' && named) return value as FetchHandler;
  const hint =
    typeof value === 'function'
      ? ' (a fetch handler as a default export is an object: export default { fetch }; a (req, res) listener needs --interface node)'
      : '';
  throw new SpecError(
    `${what} is not a fetch handler: ${describeValue(value)}, not an object with fetch() or a named function${hint}`,
  );
}

/** The `(req, res)` listener in `value`: a function (an Express or Koa-callback app is one). */
function nodeListenerOf(value: unknown, what: string): NodeListener {
  if (typeof value === 'function') return value as NodeListener;
  const hint =
    typeof (value as { fetch?: unknown } | null)?.fetch === 'function'
      ? ' (a fetch handler: leave out --interface node)'
      : '';
  throw new SpecError(`${what} is not a (req, res) listener for --interface node: ${describeValue(value)}${hint}`);
}

function describeValue(value: unknown): string {
  if (value === null) return 'it is null';
  if (typeof value === 'object')
    return typeof (value as { fetch?: unknown }).fetch === 'function'
      ? 'it is an object with fetch()'
      : 'it is an object without fetch()';
  if (typeof value === 'function') return 'it is a function without fetch()';
  return `it is ${typeof value}`;
}

/**
 * serve()'s `onRefused`: a log line for each error response the server
 * made itself. The connection closes after it, so whatever its handler (if
 * one was running) returns later is never sent: `refused` keeps the
 * connection, and withAccessLog logs nothing more for it.
 */
function refusalLog(log: AccessLog, refused: WeakSet<ConnectionInfo>) {
  return (status: number, request: RequestLine | null, info: ConnectionInfo) => {
    refused.add(info);
    log.refused(clientAddress(info.remoteAddress), request, status);
  };
}

/** `handler`, with a log line for each response (500 for a handler that fails, as the client gets). */
function withAccessLog(handler: FetchHandler, log: AccessLog | null, refused: WeakSet<ConnectionInfo>): FetchHandler {
  if (log === null) return handler;
  const line = (request: Request, info: ConnectionInfo, status: number) => {
    // The server answered this connection's request itself (onRefused): this response never goes out.
    if (refused.has(info)) return;
    const head = requestLineOf(request);
    log.response(
      clientAddress(info.remoteAddress),
      request.method,
      head?.target ?? new URL(request.url).pathname,
      head?.version ?? '1.1',
      status,
    );
  };
  return (request, info) => {
    let result: Response | PromiseLike<Response>;
    try {
      result = handler(request, info);
    } catch (error) {
      line(request, info, 500);
      throw error;
    }
    if (result instanceof Response) {
      line(request, info, result.status);
      return result;
    }
    return Promise.resolve(result).then(
      (response) => {
        line(request, info, response instanceof Response ? response.status : 500);
        return response;
      },
      (error: unknown) => {
        line(request, info, 500);
        throw error;
      },
    );
  };
}

/** Says where the server listens (stderr, as uvicorn's "running on" line); returns what app.ts closes. */
function announce(
  loop: EventLoop,
  appOptions: AppOptions,
  server: HttpServer | StartedServer,
  log: AccessLog | null,
): StartedServer {
  const address = server.address();
  const url =
    address.family === 'unix'
      ? `unix:${address.path}`
      : `${appOptions.listen.tls === undefined ? 'http' : 'https'}://${address.family === 'IPv6' ? `[${address.host}]` : address.host}:${address.port}`;
  const worker = appOptions.worker > 0 ? `worker ${appOptions.worker}, ` : '';
  console.error(
    `wasmloop: serving on ${url} (${worker}pid ${process.pid}, backend ${loop.backend}; press Ctrl-C to stop)`,
  );
  return {
    address: () => server.address(),
    close: async () => {
      try {
        await server.close();
      } finally {
        log?.flush();
      }
    },
  };
}
