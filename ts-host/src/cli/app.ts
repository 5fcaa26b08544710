/**
 * Running an application function in this process: the part of `wasmloop
 * run` that a single process and each worker share. It loads the function,
 * creates the loop, runs `fn(loop, options)`, and, when that returns a
 * server, serves until asked to stop, then closes gracefully.
 *
 * Shutdown is watched from the first moment, before the application is
 * loaded: a SIGINT or SIGTERM that arrives while the module loads, the
 * loop is created or the function is still starting is acted on, not lost.
 */
import { createLoop, type EventLoop, type LoopStats } from '../index.js';
import { SpecError, loadExport } from '../module-loader.js';

/** What `runApp` needs from the command line. */
export interface AppRunOptions {
  /** `<module>:<function>`, or what `loadApp` loads: named in messages. */
  target: string;
  /** Loads the application function; default: the function `target` names. SpecError if it cannot. */
  loadApp?: () => Promise<AppFunction>;
  backend: string;
  debug: boolean;
  slowCallbackMs: number;
  stats: boolean;
  shutdownTimeoutMs: number;
  /** The `options` the function is called with. */
  appOptions: AppOptions;
}

/** The second argument of the application function. */
export interface AppOptions {
  host: string;
  port: number;
  /**
   * Spread into `loop.createServer(handler, options.listen)`: TCP, `{ path }` with --uds, or `{ fd }`
   * with --fd (and in each worker of --workers with --uds: the socket its primary bound); with
   * --limit-concurrency and --timeout-keep-alive, `maxConnections` and `idleTimeoutMs` too.
   */
  listen: ({ host: string; port: number; reusePort: boolean } | { path: string } | { fd: number }) & {
    maxConnections?: number;
    idleTimeoutMs?: number;
    /** With --ssl-keyfile and --ssl-certfile. */
    tls?: { key: string; cert: string; ca?: string };
  };
  workers: number;
  /** This process's worker number (1..workers), or 0 without workers. */
  worker: number;
  debug: boolean;
}

/** How a process reports its start: printed by a single process, sent to the primary by a worker. */
export interface StartReport {
  /** The function returned a server: the process serves. */
  ready(): void;
  /**
   * The process could not start. `fatal`: it never will (the application or
   * the backend cannot be loaded), so restarting it is pointless. `detail`:
   * more than the line, such as a stack.
   */
  failed(line: string, fatal: boolean, detail?: string): Promise<void>;
}

/** A request to stop: from SIGINT or SIGTERM. */
export interface Shutdown {
  /** Resolves with the signal's name once one arrived. */
  readonly requested: Promise<string>;
  /** When the first signal arrived (`performance.now()`), or null. */
  readonly at: number | null;
}

/**
 * Starts watching SIGINT and SIGTERM. The handlers stay installed: a second
 * signal (Ctrl-C reaches a worker and its primary, which then signals the
 * worker too) is ignored instead of killing a process that is closing.
 */
export function watchShutdown(): Shutdown {
  let resolveRequest: (signal: string) => void = () => undefined;
  const shutdown = {
    requested: new Promise<string>((resolve) => (resolveRequest = resolve)),
    at: null as number | null,
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      shutdown.at ??= performance.now();
      resolveRequest(signal);
    });
  }
  return shutdown;
}

/** An application function. */
export type AppFunction = (loop: EventLoop, options: AppOptions) => unknown;

/** The work's value, or null if a shutdown was requested first. */
async function unlessShutdown<T>(work: Promise<T>, shutdown: Shutdown): Promise<{ value: T } | null> {
  return Promise.race([work.then((value) => ({ value })), shutdown.requested.then(() => null)]);
}

/** Runs the application in this process; resolves with the exit status. */
export async function runApp(options: AppRunOptions, shutdown: Shutdown, report: StartReport): Promise<number> {
  const { appOptions, shutdownTimeoutMs } = options;
  const loaded = await unlessShutdown(
    (options.loadApp?.() ?? loadExport(options.target)).then(
      (app) => ({ app: app as AppFunction, error: null }),
      (error: unknown) => ({ app: null, error }),
    ),
    shutdown,
  );
  // Asked to stop while the module loaded: nothing runs yet, nothing to close.
  if (loaded === null) return 0;
  const { app, error: loadError } = loaded.value;
  if (app === null) {
    await report.failed(
      loadError instanceof SpecError ? loadError.message : `${options.target}: ${describeError(loadError)}`,
      true,
    );
    return 2;
  }
  let loop: EventLoop;
  try {
    loop = await createLoop({ backend: options.backend, debug: options.debug, slowCallbackMs: options.slowCallbackMs });
  } catch (error) {
    await report.failed(error instanceof Error ? error.message : String(error), true);
    return 2;
  }
  const label = `${appOptions.worker > 0 ? `worker ${appOptions.worker}, ` : ''}pid ${process.pid}, backend ${loop.backend}`;
  const started = loop
    .runUntilComplete(() => app(loop, appOptions))
    .then(
      (value) => ({ value, error: null as unknown }),
      (error: unknown) => ({ value: undefined as unknown, error }),
    );
  let result = await unlessShutdown(started, shutdown);
  if (result === null) {
    // Asked to stop while the function was starting: it gets the shutdown
    // timeout to finish, so that a server it is about to return closes properly.
    result = await Promise.race([started.then((value) => ({ value })), after(shutdownTimeoutMs).then(() => null)]);
    if (result === null) {
      console.error(`wasmloop: ${label}: still starting ${shutdownTimeoutMs} ms after the signal: stopping`);
      loop.stop();
      await started;
      return finish(loop, options, label, 0);
    }
  }
  const { value, error } = result.value;
  const stopping = shutdown.at !== null;
  if (error !== null) {
    // Reported even when stopping (a primary that is stopping ignores it), but then not a failure to exit with.
    await report.failed(`${options.target} failed: ${describeError(error)}`, false, stackFrames(error));
    return finish(loop, options, label, stopping ? 0 : 1);
  }
  if (!isServer(value)) return finish(loop, options, label, 0);
  if (!stopping) report.ready();
  const serving = loop.runForever().then(
    () => ({ crash: null as unknown }),
    (crash: unknown) => ({ crash }),
  );
  // Serve until a signal, unless the loop stops first: the application
  // called loop.stop() (closing the loop closes its server), or the loop failed.
  const stoppedFirst = await Promise.race([serving, shutdown.requested.then(() => null)]);
  if (stoppedFirst !== null) {
    if (stoppedFirst.crash === null) return finish(loop, options, label, 0);
    console.error(`wasmloop: ${label}: the loop failed while serving: ${describeError(stoppedFirst.crash)}`);
    return finish(loop, options, label, 1);
  }
  const signal = await shutdown.requested;
  // The shutdown timeout counts from the signal, which may have come while the function started.
  const graceMs = Math.max(0, Math.round((shutdown.at ?? performance.now()) + shutdownTimeoutMs - performance.now()));
  console.error(`wasmloop: ${signal}: ${label}: closing, open connections get ${graceMs} ms`);
  const closing = value.close().then(
    () => true,
    (error: unknown) => {
      console.error(`wasmloop: ${label}: closing the server failed: ${describeError(error)}`);
      return true;
    },
  );
  const closed = await Promise.race([closing, after(graceMs).then(() => false)]);
  if (!closed) console.error(`wasmloop: ${label}: connections still open after ${graceMs} ms: closing them`);
  loop.stop();
  await serving;
  return finish(loop, options, label, 0);
}

/** `Name: message` of an error, or what was thrown. */
export function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** The stack of `error` without its first line (the name and message), or undefined. */
function stackFrames(error: unknown): string | undefined {
  if (!(error instanceof Error) || error.stack === undefined) return undefined;
  const head = `${error.name}: ${error.message}`;
  return error.stack.startsWith(head) ? error.stack.slice(head.length).replace(/^\n/, '') : error.stack;
}

/** Prints the statistics if asked, closes the loop, and passes `status` on. */
async function finish(loop: EventLoop, options: AppRunOptions, label: string, status: number): Promise<number> {
  if (options.stats && !loop.isClosed()) console.log(statsTable(loop.stats(), label));
  if (!loop.isRunning()) await loop.close();
  return status;
}

/** Resolves after `ms` of wall time without keeping the process alive for it. */
function after(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
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
    ['connections refused', String(stats.connectionsRefused)],
    ['connections timed out', String(stats.connectionsTimedOut)],
    ['reads timed out', String(stats.readsTimedOut)],
    ['accepts paused', String(stats.acceptsPaused)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return [`wasmloop stats (${label})`, ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`)].join('\n');
}
