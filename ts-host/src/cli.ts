#!/usr/bin/env node
/**
 * The `wasmloop` command: run an application function on a loop, as
 * uvicorn runs an ASGI app with `--loop`.
 *
 *   wasmloop run <module>:<function> [options]
 *
 * The function is called as `fn(loop, options)`; the command runs the loop
 * until the promise it returns settles, then closes the loop. A function
 * that resolves to a server (an object with `close()`) keeps running until
 * SIGINT or SIGTERM, then the server closes gracefully: it stops accepting,
 * open connections get `--shutdown-timeout-ms` to finish, and the process
 * exits 0. With `--workers N`, N processes each run the application on a
 * loop of their own and share the listening port.
 */
import cluster from 'node:cluster';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createLoop, type EventLoop, type LoopStats } from './index.js';

const USAGE = `Usage: wasmloop run <module>:<function> [options]

Runs <function>(loop, options), exported by <module>, on a wasmloop event loop.
<module> is a path (relative to the working directory) or a package name; the
split is at the last ':'. The function gets the loop and
{ host, port, listen, workers, worker, debug } and returns a promise: the
command exits when it settles (1 if it rejects). If it resolves to a server
(an object with close()), the command serves until SIGINT or SIGTERM, then
shuts down gracefully and exits 0.

Options:
  --backend <name>           auto (default), selector, completion, virtual, or
                             <module>:<function> for your own backend factory
  --workers <n>              run n worker processes sharing the listening port
                             (default 1: no workers); a worker that crashes is
                             restarted and logged
  --host <host>              host to listen on, passed to the function (default 127.0.0.1)
  --port <port>              port to listen on, passed to the function (default 8000)
  --uds <path>               listen on a Unix domain socket at <path> instead
                             (options.listen is then { path }; not with --workers)
  --debug                    debug mode: report slow callbacks and unhandled
                             rejections with where they were scheduled
  --slow-callback-ms <ms>    what debug mode calls slow (default 100)
  --stats                    print the loop's statistics as a table at exit
  --shutdown-timeout-ms <ms> how long open connections get on shutdown (default 10000)
  -h, --help                 show this help

In the function, listen with:
  await loop.createServer(handler, options.listen)   // { host, port, reusePort } or { path }
`;

export class UsageError extends Error {}

export interface RunOptions {
  target: string;
  backend: string;
  workers: number;
  host: string;
  port: number;
  /** A Unix domain socket path to listen on instead of host and port (uvicorn's --uds). */
  uds: string | null;
  debug: boolean;
  slowCallbackMs: number;
  stats: boolean;
  shutdownTimeoutMs: number;
}

function integer(flag: string, value: string | undefined, min: number, max: number): number {
  if (value === undefined || value.startsWith('--')) throw new UsageError(`${flag} needs a value`);
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`${flag} must be an integer from ${min} to ${max}, got '${value}'`);
  }
  return n;
}

/** Parses `argv` (after the node binary and script); null means --help. */
export function parseArgs(argv: string[]): RunOptions | null {
  const args = [...argv];
  if (args.length === 0 || args.includes('-h') || args.includes('--help')) return null;
  const command = args.shift();
  if (command !== 'run') throw new UsageError(`unknown command '${command}' (the command is 'run'; see --help)`);
  const options: RunOptions = {
    target: '',
    backend: 'auto',
    workers: 1,
    host: '127.0.0.1',
    port: 8000,
    uds: null,
    debug: false,
    slowCallbackMs: 100,
    stats: false,
    shutdownTimeoutMs: 10_000,
  };
  while (args.length > 0) {
    const arg = args.shift() as string;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => {
      const v = inline ?? args.shift();
      if (v === undefined || (inline === undefined && v.startsWith('--'))) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--backend':
        options.backend = value();
        break;
      case '--workers':
        options.workers = integer(flag, value(), 1, 256);
        break;
      case '--host':
        options.host = value();
        break;
      case '--port':
        options.port = integer(flag, value(), 0, 65535);
        break;
      case '--uds':
        options.uds = value();
        break;
      case '--debug':
        options.debug = true;
        break;
      case '--slow-callback-ms':
        options.slowCallbackMs = integer(flag, value(), 0, 3_600_000);
        break;
      case '--stats':
        options.stats = true;
        break;
      case '--shutdown-timeout-ms':
        options.shutdownTimeoutMs = integer(flag, value(), 0, 3_600_000);
        break;
      default:
        if (flag.startsWith('-')) throw new UsageError(`unknown option '${flag}' (see --help)`);
        if (options.target !== '') throw new UsageError(`unexpected argument '${arg}' (one <module>:<function> only)`);
        options.target = arg;
    }
  }
  if (options.target === '') throw new UsageError('missing <module>:<function> (see --help)');
  const colon = options.target.lastIndexOf(':');
  if (colon <= 0 || colon === options.target.length - 1) {
    throw new UsageError(`'${options.target}' is not <module>:<function>`);
  }
  if (options.workers > 1 && options.uds !== null) {
    throw new UsageError('--uds cannot be shared by --workers: each process would need the path to itself');
  }
  if (options.workers > 1 && options.backend === 'virtual') {
    throw new UsageError('--workers needs a real backend: the virtual network does not span processes');
  }
  return options;
}

type AppFunction = (loop: EventLoop, options: AppOptions) => unknown;

export interface AppOptions {
  host: string;
  port: number;
  /** Spread into `loop.createServer(handler, options.listen)`: TCP, or `{ path }` with --uds. */
  listen: { host: string; port: number; reusePort: boolean } | { path: string };
  workers: number;
  /** This process's worker number (1..workers), or 0 without workers. */
  worker: number;
  debug: boolean;
}

async function loadApp(target: string): Promise<AppFunction> {
  const colon = target.lastIndexOf(':');
  const modulePart = target.slice(0, colon);
  const name = target.slice(colon + 1);
  const specifier =
    modulePart.startsWith('.') || modulePart.startsWith('/') ? pathToFileURL(resolve(process.cwd(), modulePart)).href : modulePart;
  let module: Record<string, unknown>;
  try {
    module = (await import(specifier)) as Record<string, unknown>;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new UsageError(`cannot find module '${modulePart}'`);
    }
    throw new UsageError(`module '${modulePart}' failed to load: ${(error as Error).message}`);
  }
  const fn = module[name];
  if (fn === undefined) throw new UsageError(`module '${modulePart}' has no export '${name}'`);
  if (typeof fn !== 'function') throw new UsageError(`export '${name}' of '${modulePart}' is ${typeof fn}, not a function`);
  return fn as AppFunction;
}

function isServer(value: unknown): value is { close(): Promise<void> } {
  return typeof value === 'object' && value !== null && typeof (value as { close?: unknown }).close === 'function';
}

/** The statistics as a table, one `name  value` row each. */
export function statsTable(stats: LoopStats, label: string): string {
  const ms = (x: number) => `${x.toFixed(3)} ms`;
  const rows: Array<[string, string]> = [
    ['iterations', String(stats.iterations)],
    ['callbacks run', String(stats.callbacksRun)],
    ['timers pending', String(stats.timersPending)],
    ['callbacks ready', String(stats.readyPending)],
    ['I/O watchers', String(stats.watchers)],
    ['time running callbacks', ms(stats.busyMs)],
    ['time waiting', ms(stats.idleMs)],
    ['timers run', String(stats.lagSamples)],
    ['timer lag p50', ms(stats.lagP50Ms)],
    ['timer lag p99', ms(stats.lagP99Ms)],
    ['timer lag max', ms(stats.lagMaxMs)],
    ['Wasm memory', `${(stats.wasmMemoryBytes / 2 ** 20).toFixed(1)} MiB`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return [`wasmloop stats (${label})`, ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`)].join('\n');
}

async function runApp(options: RunOptions, worker: number): Promise<number> {
  const app = await loadApp(options.target);
  const loop = await createLoop({ backend: options.backend, debug: options.debug, slowCallbackMs: options.slowCallbackMs });
  const label = worker > 0 ? `worker ${worker}, pid ${process.pid}, backend ${loop.backend}` : `pid ${process.pid}, backend ${loop.backend}`;
  const appOptions: AppOptions = {
    host: options.host,
    port: options.port,
    listen:
      options.uds !== null
        ? { path: options.uds }
        : { host: options.host, port: options.port, reusePort: options.workers > 1 },
    workers: options.workers,
    worker,
    debug: options.debug,
  };
  let status = 0;
  let result: unknown;
  try {
    result = await loop.runUntilComplete(() => app(loop, appOptions));
  } catch (error) {
    console.error(`wasmloop: ${options.target} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    status = 1;
  }
  if (status === 0 && isServer(result)) {
    const server = result;
    // Serve until a signal, then close gracefully.
    const signalled = new Promise<string>((resolveSignal) => {
      for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolveSignal(signal));
      process.on('message', (m) => m === 'wasmloop:shutdown' && resolveSignal('shutdown'));
    });
    const serving = loop.runForever();
    const signal = await signalled;
    console.error(`wasmloop: ${signal}: ${label}: closing, open connections get ${options.shutdownTimeoutMs} ms`);
    const closed = server.close();
    const timedOut = new Promise<'timeout'>((r) => {
      const t = setTimeout(() => r('timeout'), options.shutdownTimeoutMs);
      t.unref();
    });
    const outcome = await Promise.race([closed.then(() => 'closed' as const), timedOut]);
    if (outcome === 'timeout') console.error(`wasmloop: ${label}: connections still open after ${options.shutdownTimeoutMs} ms: closing them`);
    loop.stop();
    await serving;
  }
  if (options.stats && !loop.isClosed()) console.log(statsTable(loop.stats(), label));
  if (!loop.isRunning()) await loop.close();
  return status;
}

/** The primary of `--workers N`: forks, restarts crashed workers, shuts all down on a signal. */
async function supervise(options: RunOptions): Promise<number> {
  cluster.setupPrimary({ silent: false });
  let stopping = false;
  const workerNumbers = new Map<number, number>();
  const start = (n: number) => {
    const worker = cluster.fork({ WASMLOOP_WORKER: String(n) });
    workerNumbers.set(worker.id, n);
  };
  for (let n = 1; n <= options.workers; n++) start(n);
  cluster.on('exit', (worker, code, signal) => {
    const n = workerNumbers.get(worker.id) ?? 0;
    workerNumbers.delete(worker.id);
    if (stopping) return;
    console.error(`wasmloop: worker ${n} (pid ${worker.process.pid}) exited (${signal ?? `code ${code}`}); restarting it`);
    start(n);
  });
  const signal = await new Promise<string>((r) => {
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => r(s));
  });
  stopping = true;
  console.error(`wasmloop: ${signal}: stopping ${options.workers} workers`);
  const exits = Object.values(cluster.workers ?? {}).map(
    (w) => new Promise<void>((r) => (w === undefined || w.isDead() ? r() : w.once('exit', () => r()))),
  );
  for (const w of Object.values(cluster.workers ?? {})) w?.send('wasmloop:shutdown');
  await Promise.all(exits);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  let options: RunOptions | null;
  try {
    options = parseArgs(argv);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`wasmloop: ${error.message}`);
      return 2;
    }
    throw error;
  }
  if (options === null) {
    console.log(USAGE);
    return 0;
  }
  try {
    if (options.workers > 1 && cluster.isPrimary) return await supervise(options);
    const status = await runApp(options, options.workers > 1 ? Number(process.env.WASMLOOP_WORKER ?? 0) : 0);
    // A worker's channel to the primary would keep it alive.
    if (cluster.isWorker) cluster.worker?.disconnect();
    return status;
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`wasmloop: ${error.message}`);
      return 2;
    }
    console.error(`wasmloop: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
