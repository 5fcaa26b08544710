/**
 * `wasmloop serve <module>[:<export>]`: serves a module's fetch handler
 * over HTTP/1.1 on a loop, as uvicorn serves an ASGI app: its flags, what
 * they must satisfy, and the handler's options. How it runs (one process,
 * or `--workers N` sharing the port) is launch.ts's; the application it
 * runs, serve-app.ts's.
 *
 * The flags come in groups, each read into its own part of the options:
 * where to listen, TLS (uvicorn's `--ssl-*`, tls-flags.ts: the server's
 * `tls` option, so it serves HTTPS), HTTP, the loop, the processes.
 */
import { HTTP_DEFAULTS } from '../http/server.js';
import { type Flag, type ParsedFlags, UsageError, integer } from './args.js';
import { type LaunchOptions, launch } from './launch.js';
import type { Command } from './main.js';
import { type HandlerInterface, INTERFACES, type ServeAppOptions, loadServeApp } from './serve-app.js';
import { backendSpec, checkWorkers, moduleAndExport } from './specs.js';
import { checkFdAlone, checkInheritedFd } from './shared-listener.js';
import { MAX_FAILED_STARTS } from './supervisor.js';
import { TLS_FLAGS, tlsFiles } from './tls-flags.js';

const text = (value: string) => value;
/** Seconds, as uvicorn's timeouts are given, up to what a loop timer takes in ms. */
const seconds = integer(1, Math.floor((2 ** 31 - 1) / 1000));

/** uvicorn's defaults where they differ from serve()'s. */
export const SERVE_DEFAULTS = {
  port: 8000,
  timeoutKeepAliveS: 5,
  timeoutRequestHeaderS: 10,
  shutdownTimeoutMs: 10_000,
} as const;

const LISTEN_FLAGS: readonly Flag[] = [
  { name: 'host', placeholder: '<host>', parse: text, help: 'address to listen on (default 127.0.0.1)' },
  {
    name: 'port',
    placeholder: '<port>',
    parse: integer(0, 65535),
    help: `port to listen on (default ${SERVE_DEFAULTS.port}; 0 picks a free one)`,
  },
  {
    name: 'uds',
    placeholder: '<path>',
    parse: text,
    help: 'listen on a Unix domain socket at <path> instead\n(with --workers the primary binds it once for all of them)',
  },
  {
    name: 'fd',
    placeholder: '<n>',
    parse: integer(0, 2 ** 31 - 1),
    help: 'serve on the listening socket inherited as descriptor <n>\n(systemd, a process manager); with --workers every worker\nserves it. Not with --host, --port, --uds',
  },
];

const HTTP_FLAGS: readonly Flag[] = [
  {
    name: 'interface',
    placeholder: '<kind>',
    parse: (value, flag) => {
      if (!(INTERFACES as readonly string[]).includes(value)) {
        throw new UsageError(`${flag} must be one of ${INTERFACES.join(', ')}, got '${value}'`);
      }
      return value;
    },
    help: 'fetch (default): the export is a fetch handler, Request in,\nResponse out; node: a (req, res) listener, as node:http calls one\n(an Express app)',
  },
  {
    name: 'timeout-keep-alive',
    placeholder: '<s>',
    parse: seconds,
    help: `close an idle keep-alive connection after <s> seconds (default ${SERVE_DEFAULTS.timeoutKeepAliveS})`,
  },
  {
    name: 'timeout-request-header',
    placeholder: '<s>',
    parse: seconds,
    help: `seconds a request's head has to arrive; 408 after it (default ${SERVE_DEFAULTS.timeoutRequestHeaderS})`,
  },
  {
    name: 'limit-concurrency',
    placeholder: '<n>',
    parse: integer(1, 2 ** 31 - 1),
    help: `open connections per process; one more is answered 503\n(default ${HTTP_DEFAULTS.maxConnections})`,
  },
  {
    name: 'access-log',
    off: 'no-access-log',
    help: "a line per response on stdout, in uvicorn's format (default: on)",
  },
];

const LOOP_FLAGS: readonly Flag[] = [
  {
    name: 'backend',
    aliases: ['loop'],
    placeholder: '<name>',
    parse: text,
    help: 'auto (default), selector, completion, virtual, or\n<module>:<function> for your own backend factory',
  },
  { name: 'debug', help: 'debug mode: report slow callbacks and unhandled\nrejections with where they were scheduled' },
  {
    name: 'slow-callback-ms',
    placeholder: '<ms>',
    parse: integer(0, 3_600_000),
    help: 'what debug mode calls slow (default 100)',
  },
  { name: 'stats', help: "print the loop's statistics as a table at exit" },
];

const PROCESS_FLAGS: readonly Flag[] = [
  {
    name: 'workers',
    placeholder: '<n>',
    parse: integer(1, 256),
    help: 'run n worker processes sharing the port\n(default 1: no workers); one that dies is restarted',
  },
  {
    name: 'shutdown-timeout-ms',
    placeholder: '<ms>',
    parse: integer(0, 3_600_000),
    help: `how long requests in flight get on shutdown (default ${SERVE_DEFAULTS.shutdownTimeoutMs})`,
  },
  {
    name: 'max-failed-starts',
    placeholder: '<n>',
    parse: integer(1, 1000),
    help: `with --workers: failed starts of one worker in a row\nbefore the command gives up (default ${MAX_FAILED_STARTS})`,
  },
];

const FLAGS: readonly Flag[] = [...LISTEN_FLAGS, ...TLS_FLAGS, ...HTTP_FLAGS, ...LOOP_FLAGS, ...PROCESS_FLAGS];

const ABOUT = `Serves the fetch handler <module> exports over HTTP/1.1 on a wasmloop
event loop: its default export's fetch (export default { fetch }, as a Hono
app is), or the export named after ':', an object with fetch or a function.
<module> is a path (app.mjs is ./app.mjs when that file exists), a file: URL
or a package name. Serves until SIGINT or SIGTERM, then stops accepting,
lets requests in flight finish (up to --shutdown-timeout-ms), closes idle
connections and exits 0. With --ssl-keyfile and --ssl-certfile (uvicorn's
flags) it serves HTTPS. Bad arguments, or a module without a handler: one
line on stderr, exit 2.

  // app.mjs
  export default { fetch: (request) => new Response('Hello!') };`;

/** `wasmloop serve`'s options, checked. */
export interface ServeCommandOptions extends LaunchOptions {
  app: ServeAppOptions;
}

export const serveCommand: Command = {
  name: 'serve',
  synopsis: 'serve <module>[:<export>] [options]',
  summary: "serve a module's fetch handler over HTTP (export default { fetch })",
  about: ABOUT,
  flags: FLAGS,
  execute: (parsed) => launch(parsed, serveOptions, (options) => loadServeApp(options.app)),
};

/** Checks the parsed flags and operands; UsageError for anything that does not fit. */
export async function serveOptions(parsed: ParsedFlags): Promise<ServeCommandOptions> {
  const { values, operands } = parsed;
  if (operands.length === 0) throw new UsageError('missing <module>[:<export>] (see --help)');
  if (operands.length > 1) throw new UsageError(`unexpected argument '${operands[1]}' (one <module>[:<export>] only)`);
  const get = <T>(name: string, fallback: T): T => (values.has(name) ? (values.get(name) as T) : fallback);
  const { module, exportName } = await moduleAndExport(operands[0] as string);
  const options: ServeCommandOptions = {
    target: exportName === null ? module : `${module}:${exportName}`,
    backend: await backendSpec(get('backend', 'auto')),
    workers: get('workers', 1),
    host: get('host', HTTP_DEFAULTS.host),
    port: get('port', SERVE_DEFAULTS.port),
    uds: get<string | null>('uds', null),
    fd: get<number | null>('fd', null),
    debug: get('debug', false),
    slowCallbackMs: get('slow-callback-ms', 100),
    stats: get('stats', false),
    shutdownTimeoutMs: get('shutdown-timeout-ms', SERVE_DEFAULTS.shutdownTimeoutMs),
    maxFailedStarts: get('max-failed-starts', MAX_FAILED_STARTS),
    app: {
      module,
      exportName,
      interface: get<HandlerInterface>('interface', 'fetch'),
      keepAliveTimeoutMs: get('timeout-keep-alive', SERVE_DEFAULTS.timeoutKeepAliveS) * 1000,
      requestTimeoutMs: get('timeout-request-header', SERVE_DEFAULTS.timeoutRequestHeaderS) * 1000,
      maxConnections: get('limit-concurrency', HTTP_DEFAULTS.maxConnections),
      accessLog: get('access-log', true),
    },
  };
  if (values.has('host') && options.uds !== null)
    throw new UsageError('--host and --uds: give one place to listen, not both');
  if (values.has('port') && options.uds !== null)
    throw new UsageError('--port and --uds: give one place to listen, not both');
  checkWorkers(options.workers, options.backend);
  checkFdAlone(values);
  if (options.fd !== null) checkInheritedFd(options.fd);
  const tls = tlsFiles(values);
  if (tls !== null) options.listenExtras = { tls };
  return options;
}
