/**
 * The process manager of `--workers N`: the primary forks N workers
 * (`node:cluster`, so a listener on `node:net` is shared through the
 * primary), restarts those that die with an exponential backoff, gives up
 * when one cannot start, and stops them all on SIGINT or SIGTERM.
 *
 * Each worker re-runs the command with the same arguments and reports to
 * the primary: `ready` once its function returned a server, `failed` (with
 * one line, and whether a restart could help) when it cannot start. The
 * primary tells a worker to stop with SIGTERM rather than a message: a
 * signal reaches a worker that is still loading, before it could listen for
 * messages, and kills one that has not installed its handler yet, which is
 * what stopping means for it. Whatever is left after the shutdown timeout
 * (and KILL_GRACE_MS) is killed.
 *
 * With `--fd` or `--uds`, every worker inherits the one listening socket
 * (shared-listener.ts) instead of listening on a port of its own.
 *
 * A worker that exits 0 (its function finished without a server, or it was
 * stopped on its own) is not replaced; the primary exits once no worker is
 * left. A cluster worker exits when its primary dies: Node ends a worker
 * whose channel to the primary closes unexpectedly.
 */
import cluster, { type Worker } from 'node:cluster';
import type { StartReport } from './app.js';
import { type SharedListener, workerEnv, workerStdio } from './shared-listener.js';

/** The first restart's delay; each restart in a row doubles it, up to RESTART_DELAY_MAX_MS. */
export const RESTART_DELAY_MS = 100;
export const RESTART_DELAY_MAX_MS = 10_000;
/** A worker that served this long before it died is restarted after RESTART_DELAY_MS again. */
export const HEALTHY_AFTER_MS = 10_000;
/** Failed starts of one worker in a row after which the primary gives up (--max-failed-starts). */
export const MAX_FAILED_STARTS = 5;
/** How long after the shutdown timeout the primary kills (SIGKILL) the workers still running. */
export const KILL_GRACE_MS = 1000;

/** The environment variable that tells a worker its number. */
const WORKER_NUMBER = 'WASMLOOP_WORKER';

/** What a worker tells its primary. */
type WorkerMessage = { wasmloop: 'ready' } | { wasmloop: 'failed'; line: string; fatal: boolean; detail?: string };

export interface SuperviseOptions {
  workers: number;
  shutdownTimeoutMs: number;
  maxFailedStarts: number;
  /** --debug: the first failed start's stack follows its line. */
  debug: boolean;
  /** The listening socket every worker inherits (`--fd`, or `--uds` bound once), or null: each listens itself. */
  listener: SharedListener | null;
}

/** One worker's place: the process in it now, and its history. */
interface Slot {
  number: number;
  worker: Worker | null;
  pid: number;
  readyAt: number | null;
  failure: { line: string; fatal: boolean; detail?: string | undefined } | null;
  /** Failed starts in a row (a worker that served resets it). */
  failedStarts: number;
  /** Restarts since the worker last served HEALTHY_AFTER_MS: the backoff's exponent. */
  restarts: number;
  restartTimer: ReturnType<typeof setTimeout> | null;
}

/** This process's worker number (1..N) if it is a worker, else 0. */
export function workerNumber(): number {
  return cluster.isWorker ? Number(process.env[WORKER_NUMBER] ?? 0) : 0;
}

/** A worker's StartReport: sends each report to the primary (and waits until it is sent). */
export function reportToPrimary(): StartReport {
  const send = (message: WorkerMessage) =>
    new Promise<void>((resolve) => {
      if (process.send === undefined || !process.connected) return resolve();
      process.send(message, undefined, undefined, () => resolve());
    });
  return {
    ready: () => void send({ wasmloop: 'ready' }),
    failed: (line, fatal, detail) =>
      send({ wasmloop: 'failed', line, fatal, ...(detail === undefined ? {} : { detail }) }),
  };
}

/** Runs the primary until every worker is gone; resolves with its exit status. */
export function supervise(options: SuperviseOptions): Promise<number> {
  const log = (line: string) => console.error(`wasmloop: ${line}`);
  const slots: Slot[] = Array.from({ length: options.workers }, (_, i) => ({
    number: i + 1,
    worker: null,
    pid: 0,
    readyAt: null,
    failure: null,
    failedStarts: 0,
    restarts: 0,
    restartTimer: null,
  }));
  let stopping = false;
  let status = 0;
  let killTimer: ReturnType<typeof setTimeout> | null = null;
  /** With --debug, one stack is printed: the first failed start's, not every one's. */
  let stackShown = false;
  let done: (status: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => (done = resolve));
  const alive = () => slots.filter((s) => s.worker !== null);

  const onSignal = (signal: string) => {
    if (stopping) return;
    log(`${signal}: stopping ${alive().length} workers`);
    stop(0);
  };
  const onSigint = () => onSignal('SIGINT');
  const onSigterm = () => onSignal('SIGTERM');
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);
  const listener = options.listener;
  if (listener !== null) cluster.setupPrimary({ stdio: workerStdio(listener) });

  const endIfNoneLeft = () => {
    if (alive().length > 0 || slots.some((s) => s.restartTimer !== null)) return;
    if (killTimer !== null) clearTimeout(killTimer);
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigterm);
    done(status);
  };

  /** Stops every worker: SIGTERM now, SIGKILL for those left after the shutdown timeout. */
  const stop = (exitStatus: number) => {
    stopping = true;
    status = exitStatus;
    for (const slot of slots) {
      if (slot.restartTimer !== null) clearTimeout(slot.restartTimer);
      slot.restartTimer = null;
      if (slot.worker !== null) signal(slot.pid, 'SIGTERM');
    }
    killTimer = setTimeout(() => {
      for (const slot of alive()) {
        log(
          `worker ${slot.number} (pid ${slot.pid}) still running ${options.shutdownTimeoutMs + KILL_GRACE_MS} ms after it was told to stop: killing it`,
        );
        signal(slot.pid, 'SIGKILL');
      }
    }, options.shutdownTimeoutMs + KILL_GRACE_MS);
    endIfNoneLeft();
  };

  const start = (slot: Slot) => {
    slot.restartTimer = null;
    slot.readyAt = null;
    slot.failure = null;
    slot.pid = 0;
    let worker: Worker;
    try {
      worker = cluster.fork({
        [WORKER_NUMBER]: String(slot.number),
        ...(listener === null ? {} : workerEnv(listener)),
      });
    } catch (error) {
      // No process (EAGAIN, ENOMEM): a failed start like any other.
      slot.failure = { line: `cannot fork: ${(error as Error).message}`, fatal: false };
      onExit(slot, null, null);
      return;
    }
    slot.worker = worker;
    slot.pid = worker.process.pid ?? 0;
    worker.on('message', (message: WorkerMessage) => {
      if (message?.wasmloop === 'ready') {
        slot.readyAt = performance.now();
        slot.failedStarts = 0;
      } else if (message?.wasmloop === 'failed') {
        slot.failure = { line: message.line, fatal: message.fatal, detail: message.detail };
      }
    });
    // A worker whose process could not be spawned emits 'error' and then 'exit'.
    worker.on('error', () => undefined);
    worker.once('exit', (code, signalName) => onExit(slot, code, signalName));
  };

  const onExit = (slot: Slot, code: number | null, signalName: string | null) => {
    slot.worker = null;
    const pid = slot.pid;
    if (stopping) return endIfNoneLeft();
    const how = signalName !== null ? signalName : `code ${code}`;
    // Its function finished (or it was stopped on its own): not replaced.
    if (code === 0 && slot.failure === null) return endIfNoneLeft();
    const failure = slot.failure;
    if (failure?.fatal === true) {
      // It cannot be loaded: no restart will help, nor will the other workers start.
      log(failure.line);
      return stop(2);
    }
    let line: string;
    if (slot.readyAt === null) {
      slot.failedStarts++;
      const why = failure?.line ?? `exited (${how}) before it served`;
      if (slot.failedStarts >= options.maxFailedStarts) {
        log(`worker ${slot.number} (pid ${pid}) failed to start: ${why}`);
        log(`worker ${slot.number} failed to start ${slot.failedStarts} times in a row: giving up`);
        return stop(1);
      }
      line = `worker ${slot.number} (pid ${pid}) failed to start: ${why}`;
    } else {
      if (performance.now() - slot.readyAt >= HEALTHY_AFTER_MS) slot.restarts = 0;
      line = `worker ${slot.number} (pid ${pid}) exited (${how})`;
    }
    const delay = Math.min(RESTART_DELAY_MS * 2 ** slot.restarts, RESTART_DELAY_MAX_MS);
    slot.restarts++;
    const count = slot.readyAt === null ? ` (failed start ${slot.failedStarts} of ${options.maxFailedStarts})` : '';
    log(`${line}; restarting it in ${delay} ms${count}`);
    if (options.debug && failure?.detail !== undefined && !stackShown) {
      stackShown = true;
      console.error(failure.detail);
    }
    slot.restartTimer = setTimeout(() => start(slot), delay);
  };

  for (const slot of slots) start(slot);
  return finished;
}

/** Sends `name` to `pid`, which may have exited meanwhile. */
function signal(pid: number, name: NodeJS.Signals): void {
  // 0 would signal the whole process group, the primary included.
  if (pid <= 0) return;
  try {
    process.kill(pid, name);
  } catch {
    // Gone already: its exit event is on its way.
  }
}
