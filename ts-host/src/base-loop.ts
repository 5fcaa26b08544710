/**
 * BaseEventLoop: what every loop does, whatever its backend: time,
 * scheduling, running, errors and state. EventLoop (loop.ts) adds virtual
 * time, signals and I/O on top, as asyncio's selector and proactor loops
 * add theirs to `BaseEventLoop`. Both are façades: they check arguments
 * (arguments.ts) and ask the parts that do the work.
 *
 *     callbacks.ts     the callback table: register with the core, store
 *                      by slot, run a batch (phase 4)
 *     driver.ts        the iteration (collect -> run -> wait) and when
 *                      the next one runs; time-modes.ts for wall time,
 *                      virtual time and replay
 *     loop-time.ts     the cached loop time new handles count from
 *     io-model/        the I/O model picked once from the backend:
 *                      readiness, completion or none
 *     reporting.ts     the exception handler and the logger
 *     live-core.ts     the core's instance while the loop is open
 *
 * The core (Rust, in Wasm, reached through core.ts and wit/) owns order:
 * the ready queue, the timer queue and the handle table. No method here
 * branches on the I/O model or the time mode.
 */
import type { Backend } from './backends/backend.js';
import { checkTime, notAFunction } from './arguments.js';
import { BackendFaults, backendFault } from './backend-faults.js';
import { CallbackTable } from './callbacks.js';
import { Deadline, type DeadlineHost, checkDeadlineMs } from './deadline.js';
import { type CoreModules, instantiateCore } from './core.js';
import { Driver } from './driver.js';
import { LoopCrashedError, LoopRunningError, NotSupportedError, describe } from './errors.js';
import { type Handle, type TimerHandle, generationOf, makeHandle, makeTimerHandle, slotOf } from './handles.js';
import type { IoModel } from './io-model/model.js';
import { ioModelFor } from './io-model/pick.js';
import { LiveCore } from './live-core.js';
import { LoopTime } from './loop-time.js';
import { type ExceptionContext, type Logger, Reporter } from './reporting.js';
import { timeModeFor } from './time-modes.js';
import { type LoopTimers, createTimers } from './timers.js';
import type { Trace, Tracer } from './trace.js';
import { type IoCounters, newIoCounters } from './io/io-common.js';
import { checkAwaitable, runUntilComplete, timedOut, waitFor } from './waiting.js';
import { clockImport } from './wit/clock-import.js';

export interface LoopStats {
  /** Iterations run. */
  iterations: number;
  /** Callbacks run (cancelled ones never count). */
  callbacksRun: number;
  /** Timers waiting, including those with an infinite delay. */
  timersPending: number;
  /** Callbacks queued for the next iteration. */
  readyPending: number;
  /** Cancelled timers whose memory is not reclaimed yet. */
  timersCancelled: number;
  /** I/O watchers registered (readers, writers, listening servers, connections waiting). */
  watchers: number;
  /** I/O operations submitted and not yet completed (completion backend). */
  completionsPending: number;
  /** Slots the handle table has handed out (its high-water mark). */
  slotsAllocated: number;
  /**
   * Bytes of Wasm linear memory the core holds: its high-water mark, since
   * Wasm memory never shrinks. A loop that took a closed loop's instance
   * (core.ts) starts where that memory stood.
   */
  wasmMemoryBytes: number;
  /** Wall time (ms) spent running batches of callbacks. */
  busyMs: number;
  /** Wall time (ms) between batches while running: waiting for timers and I/O, and host turns. */
  idleMs: number;
  /** Timers that have run. */
  lagSamples: number;
  /**
   * Loop lag: how late timers ran, in ms after their deadline (measured at
   * the start of the iteration that ran them): median, 99th percentile (each
   * at most 19% high) and maximum.
   */
  lagP50Ms: number;
  lagP99Ms: number;
  lagMaxMs: number;
  /** Connections servers accepted and closed at once: they had `maxConnections` open. */
  connectionsRefused: number;
  /** Connections closed because they were idle for their `idleTimeoutMs`. */
  connectionsTimedOut: number;
  /** Reads that rejected because no data came within `readTimeoutMs` (the connection stayed open). */
  readsTimedOut: number;
  /** Times a server stopped accepting for a while: an accept failed for lack of descriptors or memory. */
  acceptsPaused: number;
}

export interface LoopSettings {
  debug: boolean;
  /** Caps the core's linear memory (bytes); 0 = no cap. */
  memoryLimitBytes: number;
  slowCallbackMs: number;
  /** Records (or, with a trace to follow, replays) the callback order. */
  tracer: Tracer | null;
  /** Where warnings and default error reports go. */
  logger: Logger;
}

/** @internal The parts a loop is made of, for the EventLoop subclass. */
export interface LoopParts {
  readonly backend: Backend;
  readonly core: LiveCore;
  readonly callbacks: CallbackTable;
  readonly time: LoopTime;
  readonly driver: Driver;
  readonly io: IoModel;
  readonly reporter: Reporter;
  readonly tracer: Tracer | null;
  /** The loop runs on virtual time: the program may drive it by hand. */
  readonly virtualTime: boolean;
}

export class BaseEventLoop {
  /** The backend chosen when the loop was created. */
  readonly backend: string;

  /** @internal */
  protected readonly _parts: LoopParts;
  // The parts this class calls itself, on the hot path without `_parts`.
  readonly #core: LiveCore;
  readonly #callbacks: CallbackTable;
  readonly #time: LoopTime;
  readonly #driver: Driver;
  /** The clock and core timers every deadline of this loop shares. */
  readonly #deadlines: DeadlineHost;
  /** @internal What the connections' limits did (io/), for `stats()`. */
  readonly _ioCounters: IoCounters = newIoCounters();
  /** Open servers, connections and signal handlers, closed with the loop. */
  readonly #resources = new Set<{ close(): void }>();
  #timers: LoopTimers | null = null;

  /** @internal Use `createLoop()`. */
  constructor(modules: CoreModules, backend: Backend, settings: LoopSettings) {
    this.backend = backend.name;
    const tracer = settings.tracer;
    const reporter = new Reporter(this, settings.logger);
    const faults = new BackendFaults(backend.name, (error) => reporter.exception({ message: error.message, error }));
    // The I/O model is picked here, once; it supplies the token imports.
    const io = ioModelFor(backend, faults, tracer);
    const clock = clockImport(backend, faults);
    const instance = instantiateCore(
      modules,
      { clock, takeReady: io.takeReady, takeCompleted: io.takeCompleted },
      settings.memoryLimitBytes,
    );
    const core = (this.#core = new LiveCore(instance, (cause) => this.#crash(cause)));
    const mode = timeModeFor(backend, tracer);
    const callbacks = (this.#callbacks = new CallbackTable(core, reporter, settings));
    const time = (this.#time = new LoopTime(core, callbacks, callbacks.soonCanceller, faults, tracer, mode.virtual));
    callbacks.useTime(time);
    const driver = (this.#driver = new Driver({
      core,
      callbacks,
      time,
      mode,
      faults,
      clock,
      hostDelay: (ms) => hostDelay(backend, faults, ms),
      crash: (cause) => this.#crash(cause),
    }));
    io.attach({ callbacks, ioBacklog: () => driver.ioBacklog() });
    this._parts = { backend, core, callbacks, time, driver, io, reporter, tracer, virtualTime: mode.virtual !== null };
    this.#deadlines = {
      now: (operation) => time.epoch(operation).time,
      arm: (delayMs, fire) => {
        const id = callbacks.register('callLater', delayMs, fire, NO_ARGS);
        driver.scheduled();
        return id;
      },
      disarm: (id) => {
        const slot = slotOf(id);
        callbacks._cancel(slot, generationOf(id, slot));
      },
    };
    try {
      backend.attach({
        wake: (fromHostCallback) => driver.ioReady(fromHostCallback === true),
        schedule: (delayMs, fn) => {
          this.callLater(delayMs, fn);
        },
      });
    } catch (error) {
      // createLoop closes the backend; the loop never existed.
      callbacks.detach();
      core.drop(true);
      throw backendFault(backend.name, 'attach()', 'threw', error);
    }
    if (settings.memoryLimitBytes > 0) instance.loop.setMemoryLimit(BigInt(settings.memoryLimitBytes));
    if (tracer !== null) {
      if (tracer.replaying) {
        mode.virtual?.clock.advanceTo(tracer.startTime);
        instance.loop.updateTime();
      }
      tracer.started(time.nanos());
    }
  }

  // ---------------------------------------------------------------- time

  /**
   * The loop's time in ms, on a monotonic scale. While the loop runs
   * callbacks it is the time the current iteration began (libuv's
   * `uv_now`); outside an iteration the clock is read once per synchronous
   * turn of host code.
   */
  time(): number {
    return this.#time.epoch('time').time;
  }

  // ---------------------------------------------------------- scheduling

  /** Runs `callback(...args)` in the next iteration. */
  callSoon<A extends unknown[]>(callback: (...args: A) => unknown, ...args: A): Handle {
    if (typeof callback !== 'function') throw notAFunction('callSoon', callback);
    const id = this.#callbacks.registerSoon(callback, args);
    this.#driver.scheduled();
    const slot = slotOf(id);
    return makeHandle(this.#time.soon, slot, generationOf(id, slot));
  }

  /**
   * Runs `callback(...args)` once `delayMs` ms of loop time have passed.
   * Negative delays count as 0; `Infinity` never fires (and does not keep
   * the loop alive); huge delays saturate. NaN or a non-number is a
   * TypeError.
   */
  callLater<A extends unknown[]>(delayMs: number, callback: (...args: A) => unknown, ...args: A): TimerHandle {
    if (typeof delayMs !== 'number' || delayMs !== delayMs) checkTime('callLater', 'delayMs', delayMs);
    if (typeof callback !== 'function') throw notAFunction('callLater', callback);
    const epoch = this.#time.epoch('callLater');
    const id = this.#callbacks.register('callLater', delayMs, callback, args);
    this.#driver.scheduled();
    const slot = slotOf(id);
    // biome-ignore lint/complexity/useMathMinMax: every timer passes here; kept as the compare it was measured with.
    return makeTimerHandle(epoch, slot, generationOf(id, slot), delayMs > 0 ? delayMs : 0);
  }

  /** Runs `callback(...args)` at loop time `whenMs` (the `loop.time()` scale). */
  callAt<A extends unknown[]>(whenMs: number, callback: (...args: A) => unknown, ...args: A): TimerHandle {
    if (typeof whenMs !== 'number' || whenMs !== whenMs) checkTime('callAt', 'whenMs', whenMs);
    if (typeof callback !== 'function') throw notAFunction('callAt', callback);
    const id = this.#callbacks.register('callAt', whenMs, callback, args);
    this.#driver.scheduled();
    const slot = slotOf(id);
    return makeTimerHandle(this.#time.absolute, slot, generationOf(id, slot), whenMs);
  }

  /**
   * A timer that activity pushes back (deadline.ts): `callback(...args)`
   * runs once `ms` ms of loop time pass without a `refresh()`. Made armed.
   * `refresh()` (one field write while armed) makes it due `ms` from now,
   * and arms it again after it ran or was cancelled; `refresh(ms)` changes
   * the period; `cancel()` disarms it. For per-connection timeouts that
   * every read or write refreshes.
   */
  deadline<A extends unknown[]>(ms: number, callback: (...args: A) => unknown, ...args: A): Deadline {
    checkDeadlineMs('deadline', ms);
    if (typeof callback !== 'function') throw notAFunction('deadline', callback);
    this.#core.get('deadline');
    return new Deadline(this.#deadlines, ms, callback as (...args: unknown[]) => unknown, args);
  }

  /** A promise that resolves with `value` after `ms` ms of loop time. */
  sleep<T = undefined>(ms: number, value?: T): Promise<T> {
    checkTime('sleep', 'ms', ms);
    this.#core.get('sleep');
    return new Promise<T>((resolve) => {
      this.callLater(ms, resolve as (v: T) => void, value as T);
    });
  }

  /**
   * An AbortSignal that aborts once `ms` ms of loop time have passed, with a
   * `TimeoutError` DOMException as its reason: `AbortSignal.timeout(ms)` on
   * the loop's clock (so virtual time drives it too). For a connect or read
   * timeout: `loop.createConnection({ port, signal: loop.timeoutSignal(5000) })`.
   * `ms` follows `callLater`'s rules (`Infinity` never aborts).
   */
  timeoutSignal(ms: number): AbortSignal {
    checkTime('timeoutSignal', 'ms', ms);
    this.#core.get('timeoutSignal');
    const controller = new AbortController();
    this.callLater(ms, () => controller.abort(timedOut('timeoutSignal', ms)));
    return controller.signal;
  }

  /**
   * Waits for `work` at most `timeoutMs` ms of loop time (asyncio's
   * `wait_for`): resolves or rejects as `work` does, or rejects with a
   * `TimeoutError` DOMException once the time is up. A function is called
   * at once with an AbortSignal that aborts at the timeout, so the work it
   * starts can be abandoned too: `loop.waitFor((signal) => conn.read({ signal }), 1000)`.
   * The timer is cancelled as soon as `work` settles. If the loop closes
   * first, it rejects with LoopClosedError (and aborts the signal).
   */
  waitFor<T>(
    work: PromiseLike<T> | ((signal: AbortSignal) => T | PromiseLike<T>),
    timeoutMs: number,
  ): Promise<Awaited<T>> {
    checkTime('waitFor', 'timeoutMs', timeoutMs);
    if (typeof work !== 'function' && typeof (work as PromiseLike<T> | null)?.then !== 'function') {
      throw new TypeError(`waitFor: work must be a promise or a function, got ${describe(work)}`);
    }
    this.#core.get('waitFor');
    return waitFor(this, work, timeoutMs);
  }

  // -------------------------------------------------------------- running

  /**
   * Runs the loop until `promiseOrAsyncFn` settles and returns its value (or
   * rejects with its error). A function is called as the loop's first
   * callback and its result awaited.
   */
  async runUntilComplete<T>(promiseOrAsyncFn: PromiseLike<T> | (() => T | PromiseLike<T>)): Promise<Awaited<T>> {
    checkAwaitable('runUntilComplete', promiseOrAsyncFn);
    this.#checkCanRun('runUntilComplete');
    return runUntilComplete(this, () => this.#driver.run(), promiseOrAsyncFn);
  }

  /** Runs the loop until `stop()` is called. */
  async runForever(): Promise<void> {
    this.#checkCanRun('runForever');
    await this.#driver.run();
  }

  /**
   * Stops the loop after the current batch of callbacks (as asyncio's
   * `stop`). Called while the loop is not running, the next run does one
   * iteration and returns.
   */
  stop(): void {
    this.#core.get('stop');
    this.#driver.stop();
  }

  isRunning(): boolean {
    return this.#driver.running;
  }

  #checkCanRun(operation: string): void {
    this.#core.get(operation);
    if (this.#driver.running) throw new LoopRunningError(operation);
  }

  /**
   * The callback order recorded so far (`createLoop({ record: true })`, or a
   * replaying loop): a JSON-serialisable object; `JSON.stringify` it to save.
   */
  trace(): Trace {
    this.#core.get('trace');
    if (this._parts.tracer === null) {
      throw new NotSupportedError('trace: this loop does not record (createLoop({ record: true }))');
    }
    return this._parts.tracer.trace();
  }

  /**
   * Node's timer functions bound to this loop (`setTimeout`, `clearTimeout`,
   * `setInterval`, `clearInterval`, `setImmediate`, `clearImmediate`), with
   * Node's argument handling. See `timers.ts` for the one difference.
   */
  get timers(): LoopTimers {
    this.#core.get('timers');
    this.#timers ??= createTimers(this);
    return this.#timers;
  }

  /** @internal Tracks an open server or connection, so close() closes it. */
  _track(resource: { close(): void }, open: boolean): void {
    if (open) this.#resources.add(resource);
    else this.#resources.delete(resource);
  }

  // ----------------------------------------------------------- exceptions

  /** Reports `context` to the exception handler; never throws. */
  callExceptionHandler(context: ExceptionContext): void {
    this._parts.reporter.exception(context);
  }

  // ---------------------------------------------------------------- state

  /** Counters; see {@link LoopStats}. */
  stats(): LoopStats {
    const core = this.#core.get('stats');
    let s: ReturnType<typeof core.stats>;
    try {
      s = core.stats();
    } catch (error) {
      this.#core.failed(error);
    }
    return {
      iterations: Number(s.iterations),
      callbacksRun: this.#callbacks.callbacksRun,
      timersPending: s.timersPending,
      readyPending: s.readyPending,
      timersCancelled: s.timersCancelled,
      watchers: s.watchers,
      completionsPending: s.completionsPending,
      slotsAllocated: s.slotsAllocated,
      wasmMemoryBytes: (this.#core.instance as NonNullable<LiveCore['instance']>).memory.buffer.byteLength,
      busyMs: this.#driver.busyMs,
      idleMs: this.#driver.idleMs,
      lagSamples: Number(s.lagSamples),
      lagP50Ms: Number(s.lagP50) / 1e6,
      lagP99Ms: Number(s.lagP99) / 1e6,
      lagMaxMs: Number(s.lagMax) / 1e6,
      ...this._ioCounters,
    };
  }

  /**
   * Closes the loop: pending callbacks are dropped and the core's memory is
   * released, or, up to 8 MiB of it, kept for the next loop this process
   * makes (core.ts `releaseCore`). Idempotent. A running loop cannot be
   * closed (stop it first), nor one inside `runUntilIdle`, `advance` or
   * `runAll` (from its own callbacks).
   */
  async close(): Promise<void> {
    if (this.#core.loop === null) return;
    if (this.#driver.running || this.#driver.driving) throw new LoopRunningError('close');
    for (const resource of [...this.#resources]) resource.close();
    this._parts.io.close();
    this.#callbacks.detach();
    this.#core.drop(true);
    this.#time.invalidate();
    this._parts.backend.close();
  }

  isClosed(): boolean {
    return this.#core.loop === null;
  }

  /**
   * The core trapped (a Wasm RuntimeError: out of memory, a broken
   * invariant), or the driver failed: the instance is unusable. Closes the
   * loop without touching the core again, fails the run in progress, and
   * returns the LoopCrashedError to throw. Other loops have their own
   * instances and are unaffected.
   */
  #crash(cause: unknown): LoopCrashedError {
    const error = cause instanceof LoopCrashedError ? cause : new LoopCrashedError(cause);
    if (this.#core.loop === null) return error;
    this.#core.drop(false);
    this.#callbacks.detach();
    this.#time.invalidate();
    for (const resource of [...this.#resources]) {
      try {
        resource.close();
      } catch {
        // Closing what is left must not hide the crash.
      }
    }
    this.#resources.clear();
    this._parts.io.close();
    this._parts.backend.close();
    this.#driver.fail(error);
    return error;
  }
}

const NO_ARGS: readonly unknown[] = [];

/**
 * The host-timer delay for `loopMs` of the backend's clock: its hostDelay
 * if it has one and it answers with a delay, else the same ms (a clock at
 * wall speed). A hostDelay that fails is reported once and not trusted.
 */
function hostDelay(backend: Backend, faults: BackendFaults, loopMs: number): number {
  if (backend.hostDelay === undefined) return loopMs;
  let delay: unknown;
  try {
    delay = backend.hostDelay(loopMs);
  } catch (error) {
    faults.absorbed('hostDelay()', 'threw', error);
    return loopMs;
  }
  if (typeof delay === 'number' && delay >= 0) return delay;
  faults.absorbed('hostDelay()', `returned ${describe(delay)}, not a delay in ms`);
  return loopMs;
}
