/**
 * How a command that runs an application starts, whatever the application
 * is (`run`'s function, `serve`'s handler): in this process, as the primary
 * of `--workers N` (supervisor.ts), or as one of those workers (app.ts in
 * each). Shutdown is watched before the options are checked or anything is
 * loaded, so a signal from the first moment on is not lost.
 */
import {
  type AppFunction,
  type AppOptions,
  type AppRunOptions,
  type StartReport,
  runApp,
  watchShutdown,
} from './app.js';
import type { ParsedFlags } from './args.js';
import { reportToPrimary, supervise, workerNumber } from './supervisor.js';

/** What `options.listen` carries besides the address: limits, TLS. */
export type ListenExtras = Omit<AppOptions['listen'], 'host' | 'port' | 'reusePort' | 'path'>;

/** What every such command's checked options have. */
export interface LaunchOptions extends Omit<AppRunOptions, 'appOptions' | 'loadApp'> {
  workers: number;
  host: string;
  port: number;
  uds: string | null;
  maxFailedStarts: number;
  /** Spread into `options.listen` after the address. */
  listenExtras?: ListenExtras;
}

/**
 * Checks the flags (`check`: UsageError for bad input), then runs the
 * application in this process or supervises workers that each do.
 * `loadApp`: how the application function is loaded (default: the function
 * `target` names). Resolves with the exit status.
 */
export async function launch<O extends LaunchOptions>(
  parsed: ParsedFlags,
  check: (parsed: ParsedFlags) => Promise<O>,
  loadApp?: (options: O) => Promise<AppFunction>,
): Promise<number> {
  const worker = workerNumber();
  const primary = worker === 0 && Number(parsed.values.get('workers') ?? 1) > 1;
  const shutdown = primary ? null : watchShutdown();
  const options = await check(parsed);
  if (shutdown === null) {
    const { workers, shutdownTimeoutMs, maxFailedStarts, debug } = options;
    return supervise({ workers, shutdownTimeoutMs, maxFailedStarts, debug });
  }
  const report = worker > 0 ? reportToPrimary() : printReport;
  const listen = {
    ...(options.uds !== null
      ? { path: options.uds }
      : { host: options.host, port: options.port, reusePort: options.workers > 1 }),
    ...options.listenExtras,
  };
  return runApp(
    {
      ...options,
      ...(loadApp === undefined ? {} : { loadApp: () => loadApp(options) }),
      appOptions: {
        host: options.host,
        port: options.port,
        listen,
        workers: options.workers,
        worker,
        debug: options.debug,
      },
    },
    shutdown,
    report,
  );
}

/** A single process reports a failed start on stderr. */
const printReport: StartReport = {
  ready: () => undefined,
  failed: async (line, _fatal, detail) => {
    console.error(`wasmloop: ${line}`);
    if (detail !== undefined) console.error(detail);
  },
};
