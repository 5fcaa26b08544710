/**
 * `wasmloop run <module>:<function>`: its flags and what they must
 * satisfy. How it runs (in this process, or as the primary of `--workers
 * N`) is launch.ts's.
 */
import { INT32_MAX } from '../limits.js';
import { type Flag, type ParsedFlags, UsageError, integer } from './args.js';
import { type LaunchOptions, launch } from './launch.js';
import type { Command } from './main.js';
import { backendSpec, checkWorkers, moduleSpec } from './specs.js';
import { checkFdAlone, checkInheritedFd } from './shared-listener.js';
import { MAX_FAILED_STARTS } from './supervisor.js';
import { TLS_FLAGS, type TlsFiles, tlsFiles } from './tls-flags.js';

const text = (value: string) => value;

const FLAGS: readonly Flag[] = [
  {
    name: 'backend',
    aliases: ['loop'],
    placeholder: '<name>',
    parse: text,
    help: `auto (default), selector, completion, virtual, or\n<module>:<function> for your own backend factory`,
  },
  {
    name: 'workers',
    placeholder: '<n>',
    parse: integer(1, 256),
    help: 'run n worker processes sharing the listening port\n(default 1: no workers); one that dies is restarted',
  },
  {
    name: 'host',
    placeholder: '<host>',
    parse: text,
    help: 'host to listen on, passed to the function (default 127.0.0.1)',
  },
  {
    name: 'port',
    placeholder: '<port>',
    parse: integer(0, 65535),
    help: 'port to listen on, passed to the function (default 8000)',
  },
  {
    name: 'uds',
    placeholder: '<path>',
    parse: text,
    help: 'listen on a Unix domain socket at <path> instead (options.listen\nis then { path }; with --workers the primary binds it once\nand each worker gets { fd })',
  },
  {
    name: 'fd',
    placeholder: '<n>',
    parse: integer(0, INT32_MAX),
    help: 'serve on the listening socket inherited as descriptor <n>\n(systemd, a process manager): options.listen is { fd };\nwith --workers every worker serves it. Not with --host, --port, --uds',
  },
  {
    name: 'limit-concurrency',
    placeholder: '<n>',
    parse: integer(1, INT32_MAX),
    help: 'open connections per process; one more is accepted and\nclosed at once (options.listen.maxConnections; default: no limit)',
  },
  {
    name: 'timeout-keep-alive',
    placeholder: '<s>',
    parse: integer(1, Math.floor(INT32_MAX / 1000)),
    help: 'close a connection that read and wrote nothing for <s> seconds\n(options.listen.idleTimeoutMs; default: never)',
  },
  ...TLS_FLAGS,
  { name: 'debug', help: 'debug mode: report slow callbacks and unhandled\nrejections with where they were scheduled' },
  {
    name: 'slow-callback-ms',
    placeholder: '<ms>',
    parse: integer(0, 3_600_000),
    help: 'what debug mode calls slow (default 100)',
  },
  { name: 'stats', help: "print the loop's statistics as a table at exit" },
  {
    name: 'shutdown-timeout-ms',
    placeholder: '<ms>',
    parse: integer(0, 3_600_000),
    help: 'how long open connections get on shutdown (default 10000)',
  },
  {
    name: 'max-failed-starts',
    placeholder: '<n>',
    parse: integer(1, 1000),
    help: `with --workers: failed starts of one worker in a row\nbefore the command gives up (default ${MAX_FAILED_STARTS})`,
  },
];

const ABOUT = `Runs <function>(loop, options), exported by <module>, on a wasmloop event loop.
<module> is a path (relative to the working directory; a bare name such as
app.mjs is the file when it exists there), a file: URL or a package name; the
split is at the last ':'. The function gets the loop and
{ host, port, listen, workers, worker, debug } and returns a promise: the
command exits when it settles (1 if it rejects). If it resolves to a server
(an object with close()), the command serves until SIGINT or SIGTERM, then
shuts down gracefully and exits 0. Bad arguments, or a module, export or
backend that cannot be loaded: one line on stderr, exit 2.

In the function, listen with:
  await loop.createServer(handler, options.listen)   // { host, port, reusePort }, { path } or { fd },
                                                     // with maxConnections, idleTimeoutMs if given
With --ssl-keyfile and --ssl-certfile (uvicorn's flags) options.listen has
tls: { key, cert[, ca] }, so the same call serves TLS (docs/tls.md).`;

/** The `run` command's options, checked. */
export interface RunOptions extends LaunchOptions {
  /** --limit-concurrency: each server's maxConnections; null: no limit. */
  limitConcurrency: number | null;
  /** --timeout-keep-alive, in seconds: each connection's idleTimeoutMs; null: none. */
  timeoutKeepAliveS: number | null;
  /** The TLS a server of the app listens with (`options.listen.tls`), read from the --ssl-* files. */
  tls: TlsFiles | null;
}

export const runCommand: Command = {
  name: 'run',
  synopsis: 'run <module>:<function> [options]',
  summary: 'run an application function on a loop (and serve what it returns)',
  about: ABOUT,
  flags: FLAGS,
  execute: (parsed) => launch(parsed, runOptions),
};

/**
 * uvicorn's limits as `options.listen` options: `--limit-concurrency N` is
 * `maxConnections` (one connection more is accepted and closed at once; an
 * HTTP server, `wasmloop serve`, answers it 503 instead), `--timeout-keep-alive
 * S` is `idleTimeoutMs` (a connection quiet for S seconds is closed; for
 * HTTP, one idle between requests). Without the flags, no limit: an
 * application's connections may be long-lived, and uvicorn's defaults are
 * HTTP's.
 */
function listenLimits(options: RunOptions): { maxConnections?: number; idleTimeoutMs?: number } {
  return {
    ...(options.limitConcurrency !== null ? { maxConnections: options.limitConcurrency } : {}),
    ...(options.timeoutKeepAliveS !== null ? { idleTimeoutMs: options.timeoutKeepAliveS * 1000 } : {}),
  };
}

/** Checks the parsed flags and operands; UsageError for anything that does not fit. */
export async function runOptions(parsed: ParsedFlags): Promise<RunOptions> {
  const { values, operands } = parsed;
  if (operands.length === 0) throw new UsageError('missing <module>:<function> (see --help)');
  if (operands.length > 1) throw new UsageError(`unexpected argument '${operands[1]}' (one <module>:<function> only)`);
  const get = <T>(name: string, fallback: T): T => (values.has(name) ? (values.get(name) as T) : fallback);
  const options: RunOptions = {
    target: await moduleSpec(operands[0] as string, ''),
    backend: get('backend', 'auto'),
    workers: get('workers', 1),
    host: get('host', '127.0.0.1'),
    port: get('port', 8000),
    uds: get<string | null>('uds', null),
    fd: get<number | null>('fd', null),
    debug: get('debug', false),
    slowCallbackMs: get('slow-callback-ms', 100),
    stats: get('stats', false),
    shutdownTimeoutMs: get('shutdown-timeout-ms', 10_000),
    maxFailedStarts: get('max-failed-starts', MAX_FAILED_STARTS),
    limitConcurrency: get<number | null>('limit-concurrency', null),
    timeoutKeepAliveS: get<number | null>('timeout-keep-alive', null),
    tls: tlsFiles(values),
  };
  options.backend = await backendSpec(options.backend);
  checkWorkers(options.workers, options.backend);
  checkFdAlone(values);
  if (options.fd !== null) checkInheritedFd(options.fd);
  options.listenExtras = { ...listenLimits(options), ...(options.tls === null ? {} : { tls: options.tls }) };
  return options;
}
