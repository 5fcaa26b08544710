/**
 * How a command that runs an application starts, whatever the application
 * is (`run`'s function, `serve`'s handler): in this process, as the primary
 * of `--workers N` (supervisor.ts), or as one of those workers (app.ts in
 * each). Shutdown is watched before the options are checked or anything is
 * loaded, so a signal from the first moment on is not lost.
 *
 * Where the application listens (`options.listen`): the host and port
 * (shared with SO_REUSEPORT by workers), `--uds`'s path, or a socket the
 * process inherited, `{ fd }`: `--fd`'s, or in a worker the one its primary
 * handed over (shared-listener.ts: `--fd`'s again, or `--uds`'s bound once).
 */
import {
  type AppFunction,
  type AppOptions,
  type AppRunOptions,
  type StartReport,
  runApp,
  watchShutdown,
} from './app.js';
import { type ParsedFlags, UsageError } from './args.js';
import { type SharedListener, bindUnixOnce, handedOverFd, sharedFd } from './shared-listener.js';
import { reportToPrimary, supervise, workerNumber } from './supervisor.js';

/** What `options.listen` carries besides the address: limits, TLS. */
export type ListenExtras = Omit<AppOptions['listen'], 'host' | 'port' | 'reusePort' | 'path' | 'fd'>;

/** What every such command's checked options have. */
export interface LaunchOptions extends Omit<AppRunOptions, 'appOptions' | 'loadApp'> {
  workers: number;
  host: string;
  port: number;
  uds: string | null;
  /** --fd: a listening socket this process inherited, checked. */
  fd: number | null;
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
  if (shutdown === null) return runPrimary(options);
  const report = worker > 0 ? reportToPrimary() : printReport;
  const inherited = worker > 0 ? (handedOverFd() ?? options.fd) : options.fd;
  const listen = {
    ...(inherited !== null
      ? { fd: inherited }
      : options.uds !== null
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

/**
 * The primary of `--workers`: supervises them, sharing `--fd`'s socket or
 * `--uds`'s (bound here once, removed when the primary is done) with each.
 */
async function runPrimary(options: LaunchOptions): Promise<number> {
  const { workers, shutdownTimeoutMs, maxFailedStarts, debug } = options;
  let listener: SharedListener | null = null;
  if (options.fd !== null) listener = sharedFd(options.fd);
  else if (options.uds !== null) {
    try {
      listener = await bindUnixOnce(options.uds);
    } catch (error) {
      if (error instanceof UsageError) throw error;
      console.error(`wasmloop: ${(error as Error).message}`);
      return 1;
    }
  }
  try {
    return await supervise({ workers, shutdownTimeoutMs, maxFailedStarts, debug, listener });
  } finally {
    listener?.close();
  }
}

/** A single process reports a failed start on stderr. */
const printReport: StartReport = {
  ready: () => undefined,
  failed: async (line, _fatal, detail) => {
    console.error(`wasmloop: ${line}`);
    if (detail !== undefined) console.error(detail);
  },
};
