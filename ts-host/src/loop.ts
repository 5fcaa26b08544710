/**
 * EventLoop: the public API over the loop core.
 *
 * The core (Rust, in Wasm) owns order: the ready queue, the timer queue and
 * the handle table. This class owns the callbacks, in a table indexed by the
 * slot the core hands out, and drives iterations on the host: one
 * `runOnce()` call returns the whole batch of slots to run, so the hot path
 * crosses into Wasm once per iteration, not once per callback (plus one call
 * per scheduling operation, which returns the handle id).
 *
 * docs/design.md numbers the phases of an iteration; `iterate` below follows
 * them.
 */
import {
  type Backend,
  type Direction,
  READABLE,
  type CompletionBackend,
  type ReadinessBackend as ReadinessBackendType,
  WRITABLE,
} from './backends/backend.js';
import { performanceOriginOf } from './backends/wall-clock.js';
import { isIpLiteral } from './net/address.js';
import { INT32_MAX } from './limits.js';
import type { CoreInstance, CoreLoop, HostImports } from './core.js';
import { armTimer, cancelYield, disarmTimer, microtaskDrain, nextMacrotask, yieldToHost } from './driver.js';
import { type VirtualBackend, isVirtual } from './backends/virtual.js';
import { type LoopTimers, createTimers } from './timers.js';
import { ReplayDivergenceError, type Trace, Tracer } from './trace.js';
import {
  IoError,
  LoopClosedError,
  LoopLimitError,
  LoopCrashedError,
  LoopRunningError,
  LoopStoppedError,
  NotSupportedError,
  describe,
} from './errors.js';
import { type Epoch, type Handle, type TimerHandle, makeHandle, makeTimerHandle } from './handles.js';
import {
  type Connection,
  type ConnectionHandler,
  type IoLoop,
  type IoToken,
  type Server,
  abortable,
  checkSignal,
  connectCompletion,
  connectCompletionWith,
  connectReadiness,
  connectReadinessWith,
  errnoName,
  ioError,
  listenCompletion,
  listenCompletionWith,
  listenReadiness,
  listenReadinessWith,
} from './io/streams.js';
import { type Protocol, type ProtocolFactory, type Transport, completionTransport, readinessTransport } from './io/protocols.js';
import {
  type DatagramProtocol,
  type DatagramProtocolFactory,
  type DatagramTransport,
  completionDatagramEndpoint,
  readinessDatagramEndpoint,
} from './io/datagrams.js';

/** A backend that does I/O, in either model. */
type IoBackend = ReadinessBackendType | CompletionBackend;

/** A callback as the loop stores it: the function itself when it takes no arguments. */
type Callback = (...args: any[]) => unknown;

/** A callback with arguments, an I/O watcher, or any callback in debug mode. */
class CallRecord {
  constructor(
    readonly fn: Callback,
    readonly args: readonly unknown[],
    /** Where it was scheduled (debug mode). */
    readonly stack: string | undefined,
    /** An I/O watcher: runs each time its token is reported, so it stays in the table. */
    readonly persistent = false,
  ) {}
}

const NO_ARGS: readonly unknown[] = [];
const EMPTY_TOKENS = new Uint32Array(0);

/** A reader or writer registered with addReader/addWriter. */
interface FdWatch {
  token: IoToken;
  record: CallRecord;
}

type Entry = Callback | CallRecord;

/** The callback table grows in chunks of this many slots, as the core's table does. */
const CHUNK_BITS = 12;
const CHUNK_SIZE = 1 << CHUNK_BITS;
const CHUNK_MASK = CHUNK_SIZE - 1;
/** Handle ids are `generation * 2^26 + slot` (see wit/event-loop.wit). */
const SLOT_MASK = (1 << 26) - 1;
const SLOT_SPACE = 2 ** 26;
/** A generation no handle can have (the core's limit): a handle that is inert. */
const NO_GENERATION = 2 ** 27;

/**
 * Longest stretch (ms) the driver runs back-to-back iterations before it
 * yields to the host, so the host's own I/O and timers never starve.
 */
const SLICE_MS = 2;

/** Where the driver is. */
const enum Driver {
  /** Not running. */
  Idle,
  /** Inside `iterate`. */
  Iterating,
  /** A host macrotask will call `iterate`. */
  Scheduled,
  /** Waiting on a host timer for the earliest deadline, or for a wakeup. */
  Sleeping,
}

/** What the exception handler receives (asyncio's context dict). */
export interface ExceptionContext {
  /** What went wrong, for humans. */
  message: string;
  /** What was thrown. */
  error: unknown;
  /** The handle of the callback that threw, when there is one. */
  handle?: Handle;
  /** The callback that threw. */
  callback?: Callback;
  /** Where the callback was scheduled (debug mode). */
  scheduledAt?: string;
}

export type ExceptionHandler = (loop: EventLoop, context: ExceptionContext) => void;

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
  /** Bytes of Wasm linear memory the core holds. */
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
}

export interface LoopSettings {
  debug: boolean;
  /** Caps the core's linear memory (bytes); 0 = no cap. */
  memoryLimitBytes: number;
  slowCallbackMs: number;
  /** Records (or, with a trace to follow, replays) the callback order. */
  tracer: Tracer | null;
}

export interface ServerOptions {
  /** Numeric IPv4/IPv6 address or host name to listen on. Default '127.0.0.1'. */
  host?: string;
  /** Port; 0 picks a free one (see `server.address()`). Not with `path`. */
  port?: number;
  /**
   * Listen on a Unix domain socket at this file path instead of TCP
   * (asyncio's `create_unix_server`). The path must not exist yet
   * (AddressInUseError); closing the server removes it.
   */
  path?: string;
  /** Pending-connection queue length. Default 511. */
  backlog?: number;
  /**
   * Let other processes listen on the same port, the kernel balancing
   * connections between them (SO_REUSEPORT; `wasmloop run --workers`).
   * Selector backend; the completion backend shares ports through Node's
   * cluster instead.
   */
  reusePort?: boolean;
}

export interface DatagramEndpointOptions {
  /** Where to bind: host default '127.0.0.1', port default 0 (a free one). */
  localAddress?: { host?: string; port?: number };
  /** The peer to connect to: sendto() without an address goes there, and only its datagrams arrive. */
  remoteAddress?: { host?: string; port: number };
}

export interface ConnectOptions {
  /** Numeric address or host name. Default '127.0.0.1'. */
  host?: string;
  /** Not with `path`. */
  port?: number;
  /** Connect to the Unix domain socket at this path instead of TCP. */
  path?: string;
  /**
   * Abandons the attempt when it aborts (`loop.timeoutSignal(ms)` for a
   * connect timeout on the loop's clock): whatever was opened is closed and
   * the promise rejects with the signal's reason. It covers the connect
   * only; aborting it later does nothing to the connection.
   */
  signal?: AbortSignal;
}

export class EventLoop {
  /** The backend chosen when the loop was created. */
  readonly backend: string;

  #instance: CoreInstance | null;
  #core: CoreLoop | null;
  #backendImpl: Backend;
  #chunks: Array<Array<Entry | undefined>> = [];
  #debug: boolean;
  #slowCallbackMs: number;
  #exceptionHandler: ExceptionHandler | null = null;

  /** True while a batch runs (phase 4), microtask checkpoints included. */
  #inBatch = false;
  /** Loop time for new handles; null when it must be read again. */
  #epoch: Epoch | null = null;
  /** Shared by `callSoon` handles, which have no time. */
  readonly #soonEpoch: Epoch;
  /** Shared by `callAt` handles, whose `when` is absolute. */
  readonly #absoluteEpoch: Epoch;
  readonly #expireEpoch = (): void => {
    this.#epoch = null;
  };

  #driver = Driver.Idle;
  #stopping = false;
  #hostTimer: unknown = null;
  #hostYield: unknown = null;
  #onStopped: ((error?: unknown) => void) | null = null;
  #callbacksRun = 0;
  #busyMs = 0;
  #idleMs = 0;
  /** Wall time the last batch ended, while running; -1 when not running. */
  #lastBatchEnd = -1;
  /**
   * Where the backend's clock counts from on the `performance.now()` scale,
   * when it is the built-in wall clock: then the iteration's own clock
   * reading tells when its batch started. Null otherwise.
   */
  readonly #wallOrigin: number | null;
  /** Debug mode: the callback running now, for reports of unhandled rejections. */
  #current: Entry | null = null;
  readonly #onUnhandledRejection = (reason: unknown): void => {
    const entry = this.#current;
    if (entry === null) return;
    const fn = typeof entry === 'function' ? entry : entry.fn;
    const context: ExceptionContext = {
      message: `Unhandled promise rejection in callback ${callbackName(fn)}`,
      error: reason,
      callback: fn,
    };
    if (typeof entry !== 'function' && entry.stack !== undefined) context.scheduledAt = entry.stack;
    this.callExceptionHandler(context);
  };
  /** The backend queued I/O tokens the core has not taken yet. */
  #ioPending = false;
  /** addReader/addWriter registrations, by fd * 4 + direction. */
  readonly #fdWatches = new Map<number, FdWatch>();
  /** Open servers and connections, closed with the loop. */
  readonly #resources = new Set<{ close(): void }>();
  /** addSignalHandler's registrations by signal name (each also in #resources). */
  readonly #signalHandlers = new Map<string, { close(): void }>();
  /** The backend, when it is the virtual one (its clock jumps). */
  readonly #virtual: VirtualBackend | null;
  #timers: LoopTimers | null = null;
  readonly #tracer: Tracer | null;

  /**
   * The WIT imports for a loop on `backend`: its clock and I/O token queues.
   * `onOverflow` learns when the core took a full batch (more may be queued).
   * @internal
   */
  static hostImports(backend: Backend, clockNow: () => number, loop: () => EventLoop | null): HostImports {
    const fullCheck = (tokens: Uint32Array, max: number) => {
      if (tokens.length === max) loop()?._ioBacklog();
      return tokens;
    };
    return {
      clock: { now: clockNow },
      takeReady:
        backend.model === 'readiness'
          ? (max) => fullCheck(loop()?._takeReady(max) ?? backend.takeReady(max), max)
          : () => EMPTY_TOKENS,
      takeCompleted:
        backend.model === 'completion' ? (max) => fullCheck(backend.takeCompleted(max), max) : () => EMPTY_TOKENS,
    };
  }

  /** @internal Readiness tokens: the backend's, or the recording's when replaying. */
  _takeReady(max: number): Uint32Array {
    const tracer = this.#tracer;
    if (tracer !== null && tracer.replaying && tracer.nextTime() !== null) return tracer.recordedReady();
    return (this.#backendImpl as ReadinessBackendType).takeReady(max);
  }

  /** @internal Use `createLoop()`. */
  constructor(instance: CoreInstance, backend: Backend, settings: LoopSettings) {
    this.#instance = instance;
    this.#core = instance.loop;
    this.#backendImpl = backend;
    this.#virtual = isVirtual(backend) ? backend : null;
    this.#wallOrigin = performanceOriginOf(backend.now);
    backend.attach({
      wake: (fromHostCallback) => this.#ioWake(fromHostCallback === true),
      schedule: (delayMs, fn) => {
        this.callLater(delayMs, fn);
      },
    });
    this.backend = backend.name;
    this.#debug = settings.debug;
    this.#slowCallbackMs = settings.slowCallbackMs;
    if (settings.debug && typeof process !== 'undefined' && typeof process.on === 'function') {
      process.on('unhandledRejection', this.#onUnhandledRejection);
    }
    this.#tracer = settings.tracer;
    if (settings.memoryLimitBytes > 0) instance.loop.setMemoryLimit(BigInt(settings.memoryLimitBytes));
    if (this.#tracer !== null) {
      if (this.#tracer.replaying) {
        (this.#virtual as VirtualBackend).advanceClockTo(this.#tracer.startTime);
        instance.loop.updateTime();
      }
      this.#tracer.started(this.#loopNanos());
    }
    this.#soonEpoch = { loop: this, time: NaN };
    this.#absoluteEpoch = { loop: this, time: 0 };
  }

  // ---------------------------------------------------------------- time

  /**
   * The loop's time in ms, on a monotonic scale. While the loop runs
   * callbacks it is the time the current iteration began (libuv's
   * `uv_now`); outside an iteration the clock is read once per synchronous
   * turn of host code.
   */
  time(): number {
    return this.#currentEpoch('time').time;
  }

  #currentEpoch(operation: string): Epoch {
    let epoch = this.#epoch;
    if (epoch === null) {
      const core = this.#core;
      if (core === null) throw new LoopClosedError(operation);
      try {
        epoch = this.#readEpoch(core);
      } catch (error) {
        this.#coreFailed(error);
      }
      this.#epoch = epoch;
    }
    return epoch;
  }

  #readEpoch(core: CoreLoop): Epoch {
    let epoch: Epoch;
    {
      if (this.#inBatch) {
        epoch = { loop: this, time: core.time() };
      } else {
        const tracer = this.#tracer;
        if (tracer !== null) {
          // A clock read outside an iteration is an input of the program:
          // recorded, and replayed from the recording.
          const recorded = tracer.nextRead();
          if (recorded !== null && tracer.replaying) (this.#virtual as VirtualBackend).advanceClockTo(recorded);
          epoch = { loop: this, time: core.updateTime() };
          tracer.read(this.#loopNanos());
        } else {
          epoch = { loop: this, time: core.updateTime() };
        }
        queueMicrotask(this.#expireEpoch);
      }
    }
    return epoch;
  }

  // ---------------------------------------------------------- scheduling

  /** Runs `callback(...args)` in the next iteration. */
  callSoon<A extends unknown[]>(callback: (...args: A) => unknown, ...args: A): Handle {
    if (typeof callback !== 'function') throw notAFunction('callSoon', callback);
    const core = this.#core;
    if (core === null) throw new LoopClosedError('callSoon');
    let id: number;
    try {
      id = core.callSoon();
    } catch (error) {
      this.#coreFailed(error);
    }
    const slot = id & SLOT_MASK;
    this.#store(slot, args.length === 0 && !this.#debug ? callback : this.#record(callback, args));
    if (this.#tracer !== null) this.#tracer.scheduled(slot, 'callSoon', callback);
    if (this.#driver === Driver.Sleeping) this.#wake();
    return makeHandle(this.#soonEpoch, slot, (id - slot) / SLOT_SPACE);
  }

  /**
   * Runs `callback(...args)` once `delayMs` ms of loop time have passed.
   * Negative delays count as 0; `Infinity` never fires (and does not keep
   * the loop alive); huge delays saturate. NaN or a non-number is a
   * TypeError.
   */
  callLater<A extends unknown[]>(delayMs: number, callback: (...args: A) => unknown, ...args: A): TimerHandle {
    if (typeof delayMs !== 'number' || delayMs !== delayMs) throw badTime('callLater', 'delayMs', delayMs);
    if (typeof callback !== 'function') throw notAFunction('callLater', callback);
    const epoch = this.#currentEpoch('callLater');
    let id: number;
    try {
      id = (this.#core as CoreLoop).callLater(delayMs);
    } catch (error) {
      this.#coreFailed(error);
    }
    const slot = id & SLOT_MASK;
    this.#store(slot, args.length === 0 && !this.#debug ? callback : this.#record(callback, args));
    if (this.#tracer !== null) this.#tracer.scheduled(slot, 'callLater', callback);
    if (this.#driver === Driver.Sleeping) this.#wake();
    return makeTimerHandle(epoch, slot, (id - slot) / SLOT_SPACE, delayMs > 0 ? delayMs : 0);
  }

  /** Runs `callback(...args)` at loop time `whenMs` (the `loop.time()` scale). */
  callAt<A extends unknown[]>(whenMs: number, callback: (...args: A) => unknown, ...args: A): TimerHandle {
    if (typeof whenMs !== 'number' || whenMs !== whenMs) throw badTime('callAt', 'whenMs', whenMs);
    if (typeof callback !== 'function') throw notAFunction('callAt', callback);
    const core = this.#core;
    if (core === null) throw new LoopClosedError('callAt');
    let id: number;
    try {
      id = core.callAt(whenMs);
    } catch (error) {
      this.#coreFailed(error);
    }
    const slot = id & SLOT_MASK;
    this.#store(slot, args.length === 0 && !this.#debug ? callback : this.#record(callback, args));
    if (this.#tracer !== null) this.#tracer.scheduled(slot, 'callAt', callback);
    if (this.#driver === Driver.Sleeping) this.#wake();
    return makeTimerHandle(this.#absoluteEpoch, slot, (id - slot) / SLOT_SPACE, whenMs);
  }

  /** A promise that resolves with `value` after `ms` ms of loop time. */
  sleep<T = undefined>(ms: number, value?: T): Promise<T> {
    if (typeof ms !== 'number' || ms !== ms) throw badTime('sleep', 'ms', ms);
    if (this.#core === null) throw new LoopClosedError('sleep');
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
    if (typeof ms !== 'number' || ms !== ms) throw badTime('timeoutSignal', 'ms', ms);
    if (this.#core === null) throw new LoopClosedError('timeoutSignal');
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
  waitFor<T>(work: PromiseLike<T> | ((signal: AbortSignal) => T | PromiseLike<T>), timeoutMs: number): Promise<Awaited<T>> {
    if (typeof timeoutMs !== 'number' || timeoutMs !== timeoutMs) throw badTime('waitFor', 'timeoutMs', timeoutMs);
    const isFunction = typeof work === 'function';
    if (!isFunction && typeof (work as PromiseLike<T> | null)?.then !== 'function') {
      throw new TypeError(`waitFor: work must be a promise or a function, got ${describe(work)}`);
    }
    if (this.#core === null) throw new LoopClosedError('waitFor');
    const controller = new AbortController();
    return new Promise<Awaited<T>>((resolve, reject) => {
      let settled = false;
      /** Gives up: at the timeout, or when the loop closes first (no timeout can come then). */
      const giveUp = (reason: unknown): void => {
        if (settled) return;
        settled = true;
        this._track(closing, false);
        controller.abort(reason);
        reject(reason);
      };
      const closing = { close: () => giveUp(new LoopClosedError('waitFor')) };
      const timer = this.callLater(timeoutMs, () => giveUp(timedOut('waitFor', timeoutMs)));
      this._track(closing, true);
      const settle = (outcome: () => void): void => {
        if (settled) return;
        settled = true;
        this._track(closing, false);
        timer.cancel();
        outcome();
      };
      let result: T | PromiseLike<T>;
      try {
        result = isFunction ? (work as (signal: AbortSignal) => T | PromiseLike<T>)(controller.signal) : (work as PromiseLike<T>);
      } catch (error) {
        settle(() => reject(error));
        return;
      }
      Promise.resolve(result).then(
        (value) => settle(() => resolve(value)),
        (error: unknown) => settle(() => reject(error)),
      );
    });
  }

  #record(fn: Callback, args: readonly unknown[]): CallRecord {
    return new CallRecord(fn, args, this.#debug ? scheduledAt() : undefined);
  }

  #store(slot: number, entry: Entry): void {
    const index = slot >>> CHUNK_BITS;
    let chunk = this.#chunks[index];
    if (chunk === undefined) {
      chunk = new Array<Entry | undefined>(CHUNK_SIZE);
      this.#chunks[index] = chunk;
    }
    chunk[slot & CHUNK_MASK] = entry;
  }

  /** @internal Called by `Handle.cancel()`. */
  _cancel(slot: number, generation: number): void {
    const core = this.#core;
    if (core === null) return;
    let cancelled: boolean;
    try {
      cancelled = core.cancel(slot, generation);
    } catch (error) {
      this.#coreFailed(error);
    }
    if (cancelled) {
      // Drop the callback now; the core frees the slot itself.
      (this.#chunks[slot >>> CHUNK_BITS] as Array<Entry | undefined>)[slot & CHUNK_MASK] = undefined;
    }
  }

  // -------------------------------------------------------------- running

  /**
   * Runs the loop until `promiseOrAsyncFn` settles and returns its value (or
   * rejects with its error). A function is called as the loop's first
   * callback and its result awaited.
   */
  async runUntilComplete<T>(promiseOrAsyncFn: PromiseLike<T> | (() => T | PromiseLike<T>)): Promise<Awaited<T>> {
    const isFunction = typeof promiseOrAsyncFn === 'function';
    if (!isFunction && !isThenable(promiseOrAsyncFn)) {
      throw new TypeError(
        `runUntilComplete: promiseOrAsyncFn must be a promise, a thenable or a function, got ${describe(promiseOrAsyncFn)}`,
      );
    }
    this.#checkCanRun('runUntilComplete');
    type Outcome = { ok: true; value: Awaited<T> } | { ok: false; error: unknown };
    const state: { outcome: Outcome | null; active: boolean } = { outcome: null, active: true };
    const settle = (outcome: Outcome) => {
      // A promise that settles after this run ended must not stop a later one.
      if (!state.active) return;
      state.outcome = outcome;
      this.stop();
    };
    const follow = (thenable: PromiseLike<T> | T) => {
      Promise.resolve(thenable).then(
        (value) => settle({ ok: true, value }),
        (error: unknown) => settle({ ok: false, error }),
      );
    };
    if (isFunction) {
      this.callSoon(() => {
        let result: T | PromiseLike<T>;
        try {
          result = (promiseOrAsyncFn as () => T | PromiseLike<T>)();
        } catch (error) {
          settle({ ok: false, error });
          return;
        }
        follow(result);
      });
    } else {
      follow(promiseOrAsyncFn as PromiseLike<T>);
    }
    try {
      await this.#run();
    } finally {
      state.active = false;
    }
    const done = state.outcome;
    if (done === null) throw new LoopStoppedError();
    if (!done.ok) throw done.error;
    return done.value;
  }

  /** Runs the loop until `stop()` is called. */
  async runForever(): Promise<void> {
    this.#checkCanRun('runForever');
    await this.#run();
  }

  /**
   * Stops the loop after the current batch of callbacks (as asyncio's
   * `stop`). Called while the loop is not running, the next run does one
   * iteration and returns.
   */
  stop(): void {
    if (this.#core === null) throw new LoopClosedError('stop');
    this.#stopping = true;
    if (this.#driver === Driver.Sleeping) this.#wake();
  }

  isRunning(): boolean {
    return this.#driver !== Driver.Idle;
  }

  #checkCanRun(operation: string): void {
    if (this.#core === null) throw new LoopClosedError(operation);
    if (this.#driver !== Driver.Idle) throw new LoopRunningError(operation);
  }

  #run(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#onStopped = (error?: unknown) => (error === undefined ? resolve() : reject(error));
      this.#driver = Driver.Scheduled;
      this.#hostYield = yieldToHost(this.#iterate);
    });
  }

  /** The driver: iterations back to back while work is ready, then a host turn. */
  readonly #iterate = (): void => {
    this.#hostYield = null;
    this.#hostTimer = null;
    const core = this.#core;
    if (core === null || this.#driver === Driver.Idle) return;
    this.#driver = Driver.Iterating;
    try {
      this.#iterateSlice(core);
    } catch (error) {
      if (error instanceof ReplayDivergenceError) {
        // The run ends with the divergence; the loop itself is fine.
        this.#stopping = true;
        this.#finishRun(error);
        return;
      }
      // Only the core or the host primitives can throw here (callbacks'
      // errors are caught one by one): the loop cannot go on.
      this.#crash(error);
    }
  };

  #iterateSlice(core: CoreLoop): void {
    const instance = this.#instance as CoreInstance;
    const virtual = this.#virtual;
    let sliceEnd = -1;
    const replaying = this.#tracer?.replaying === true;
    const wallOrigin = this.#wallOrigin;
    // When the start is not known from the loop's clock, read the wall clock.
    let batchStart = wallOrigin === null ? performance.now() : -1;
    for (;;) {
      if (replaying) this.#replayClock();
      // Phases 0-3: release the last batch, read the clock, collect the
      // ready callbacks, the due timers and the I/O tokens. One crossing.
      this.#ioPending = false;
      const length = instance.runOnce();
      this.#epoch = null;
      // The slice is measured on the loop's own clock, read by runOnce (on
      // wall time for virtual time, which jumps).
      const now = virtual === null ? core.time() : performance.now();
      if (sliceEnd < 0) {
        sliceEnd = now + SLICE_MS;
        // The slice's first iteration: the loop was idle until it started.
        if (batchStart < 0) batchStart = now + (wallOrigin as number);
        if (this.#lastBatchEnd >= 0) this.#idleMs += batchStart - this.#lastBatchEnd;
      }
      // Phase 4: run them.
      if (length > 0) {
        if (microtaskDrain() === null) {
          // No synchronous drain on this host: one callback per macrotask,
          // then the driver goes on from a fresh slice.
          this.#runBatchAsync(instance.batch().slice(0, length));
          return;
        }
        this.#runBatch(instance.batch(), length);
      }
      const batchEnd = performance.now();
      this.#busyMs += batchEnd - batchStart;
      this.#lastBatchEnd = batchEnd;
      batchStart = batchEnd;
      if (this.#stopping) {
        this.#finishRun();
        return;
      }
      // Wait: 0 if ready, ms to the earliest timer, or -1 for none.
      const timeout = this.#ioPending ? 0 : core.pollTimeout();
      if (timeout === 0) {
        if (now < sliceEnd) continue;
        this.#driver = Driver.Scheduled;
        this.#hostYield = yieldToHost(this.#iterate);
        return;
      }
      if (replaying && this.#replayStalled(timeout)) return;
      if (timeout > 0 && virtual !== null) {
        // Virtual time: nothing is ready, so jump to the earliest deadline
        // (when replaying, the next iteration jumps to the recorded time).
        if (!replaying || (this.#tracer as Tracer).nextTime() === null) virtual.advanceClock(timeout);
        if (performance.now() < sliceEnd) continue;
        this.#driver = Driver.Scheduled;
        this.#hostYield = yieldToHost(this.#iterate);
        return;
      }
      this.#driver = Driver.Sleeping;
      // With nothing pending, no host timer is armed, so the loop does not
      // keep the host process alive; an outside call wakes it.
      if (timeout > 0) {
        const backend = this.#backendImpl;
        this.#hostTimer = armTimer(this.#iterate, backend.hostDelay ? backend.hostDelay(timeout) : timeout);
      }
      return;
    }
  }

  /**
   * The core trapped (a Wasm RuntimeError: out of memory, a broken
   * invariant): the instance is unusable. Closes the loop without touching
   * the core again, fails the run in progress, and returns the
   * LoopCrashedError to throw. Other loops have their own instances and are
   * unaffected.
   */
  #crash(cause: unknown): LoopCrashedError {
    const error = cause instanceof LoopCrashedError ? cause : new LoopCrashedError(cause);
    if (this.#core === null) return error;
    this.#core = null;
    this.#instance = null;
    this.#chunks = [];
    this.#epoch = null;
    for (const resource of [...this.#resources]) {
      try {
        resource.close();
      } catch {
        // Closing what is left must not hide the crash.
      }
    }
    this.#resources.clear();
    const backend = this.#backendImpl;
    if (backend.model === 'readiness') {
      for (const key of this.#fdWatches.keys()) backend.unwatch(Math.floor(key / 4), (key % 4) as Direction);
    }
    this.#fdWatches.clear();
    backend.close();
    if (this.#driver !== Driver.Idle) {
      this.#stopping = true;
      this.#finishRun(error);
    }
    return error;
  }

  /** Rethrows `error` from a core call: a trap crashes the loop. */
  #coreFailed(error: unknown): never {
    if (error instanceof WebAssembly.RuntimeError) throw this.#crash(error);
    throw error;
  }

  /**
   * The backend queued I/O tokens. From a host callback a sleeping loop runs
   * an iteration at once (no need for another host turn); otherwise it
   * schedules one, since a microtask cannot drain the microtask queue that
   * each callback's continuations need.
   */
  #ioWake(fromHostCallback: boolean): void {
    this.#ioPending = true;
    if (this.#driver !== Driver.Sleeping) return;
    if (!fromHostCallback) {
      this.#wake();
      return;
    }
    if (this.#hostTimer !== null) {
      disarmTimer(this.#hostTimer);
      this.#hostTimer = null;
    }
    this.#iterate();
  }

  /** Something was scheduled (or stop() called) while the driver slept. */
  #wake(): void {
    if (this.#hostTimer !== null) {
      disarmTimer(this.#hostTimer);
      this.#hostTimer = null;
    }
    this.#driver = Driver.Scheduled;
    this.#hostYield = yieldToHost(this.#iterate);
  }

  #finishRun(error?: unknown): void {
    this.#lastBatchEnd = -1;
    if (this.#hostTimer !== null) disarmTimer(this.#hostTimer);
    if (this.#hostYield !== null) cancelYield(this.#hostYield);
    this.#hostTimer = this.#hostYield = null;
    this.#stopping = false;
    this.#driver = Driver.Idle;
    const onStopped = this.#onStopped;
    this.#onStopped = null;
    onStopped?.(error);
  }

  /**
   * Phase 4 where the host cannot drain microtasks synchronously: each
   * callback in a host macrotask of its own (microtasks drain between
   * macrotasks on every host), then the driver goes on.
   */
  #runBatchAsync(batch: Uint32Array): void {
    let i = 0;
    const step = (): void => {
      if (this.#core === null) return;
      try {
        if (i < batch.length) {
          this.#runBatch(batch.subarray(i, i + 1), 1);
          i++;
          // Continuations of this callback run before the next macrotask,
          // still inside the iteration (its time holds).
          this.#inBatch = true;
          nextMacrotask(step);
          return;
        }
      } catch (error) {
        this.#inBatch = false;
        this.#crash(error);
        return;
      }
      this.#inBatch = false;
      this.#epoch = null;
      if (this.#stopping) {
        this.#finishRun();
        return;
      }
      this.#iterate();
    };
    this.#driver = Driver.Iterating;
    step();
  }

  /** Phase 4: runs a batch in order, skipping callbacks cancelled meanwhile. */
  #runBatch(batch: Uint32Array, length: number): void {
    const chunks = this.#chunks;
    const checkpoint = microtaskDrain();
    const debug = this.#debug;
    const tracer = this.#tracer;
    const serials: number[] | null = tracer === null ? null : [];
    let ran = 0;
    this.#inBatch = true;
    try {
      for (let i = 0; i < length; i++) {
        const slot = batch[i] as number;
        const chunk = chunks[slot >>> CHUNK_BITS] as Array<Entry | undefined>;
        const entry = chunk[slot & CHUNK_MASK];
        if (entry === undefined) continue; // cancelled during this batch
        if (typeof entry === 'function' || !entry.persistent) chunk[slot & CHUNK_MASK] = undefined;
        ran++;
        if (serials !== null) serials.push((tracer as Tracer).serial(slot));
        if (debug) {
          this.#runTimed(entry, slot);
          // Rejections the callback left unhandled are reported by Node
          // during the checkpoint below: still this callback's.
        } else {
          try {
            if (typeof entry === 'function') entry();
            else entry.fn(...entry.args);
          } catch (error) {
            this.#callbackFailed(error, entry, slot);
          }
        }
        // Promise continuations the callback created run before the next
        // callback, as between two Node.js macrotasks.
        if (checkpoint !== null) {
          try {
            checkpoint();
          } catch (error) {
            // A process.nextTick callback threw: to Node that is an uncaught
            // exception, and it stays one, without breaking this batch.
            queueMicrotask(() => {
              throw error;
            });
          }
        }
        if (debug) this.#current = null;
      }
    } finally {
      this.#inBatch = false;
      this.#epoch = null;
      this.#callbacksRun += ran;
    }
    if (serials !== null) (tracer as Tracer).iteration(this.#loopNanos(), serials);
  }

  /** The loop's time in whole nanoseconds (exact on the virtual backend). */
  #loopNanos(): number {
    const virtual = this.#virtual;
    return virtual !== null ? virtual.now() : Math.round((this.#core as CoreLoop).time() * 1e6);
  }

  /**
   * The callback order recorded so far (`createLoop({ record: true })`, or a
   * replaying loop): a JSON-serialisable object; `JSON.stringify` it to save.
   */
  trace(): Trace {
    this.#liveCore('trace');
    if (this.#tracer === null) {
      throw new NotSupportedError('trace: this loop does not record (createLoop({ record: true }))');
    }
    return this.#tracer.trace();
  }

  #runTimed(entry: Entry, slot: number): void {
    const fn = typeof entry === 'function' ? entry : entry.fn;
    const start = performance.now();
    this.#current = entry;
    try {
      if (typeof entry === 'function') entry();
      else entry.fn(...entry.args);
    } catch (error) {
      this.#callbackFailed(error, entry, slot);
    }
    const took = performance.now() - start;
    if (took > this.#slowCallbackMs) {
      const where = typeof entry === 'function' ? undefined : entry.stack;
      console.warn(
        `wasmloop: executing callback ${callbackName(fn)} took ${took.toFixed(3)} ms` +
          (where === undefined ? '' : `; it was scheduled at:\n${where}`),
      );
    }
  }

  #callbackFailed(error: unknown, entry: Entry, slot: number): void {
    const fn = typeof entry === 'function' ? entry : entry.fn;
    const context: ExceptionContext = {
      message: `Exception in callback ${callbackName(fn)}`,
      error,
      handle: makeHandle(this.#soonEpoch, slot, NO_GENERATION),
      callback: fn,
    };
    if (typeof entry !== 'function' && entry.stack !== undefined) context.scheduledAt = entry.stack;
    this.callExceptionHandler(context);
  }

  // ------------------------------------------------------------------ I/O

  /** @internal A persistent callback run whenever the backend reports its token. */
  _watch(callback: () => void): IoToken {
    const core = this.#liveCore('watch');
    let id: number;
    try {
      id = core.watch();
    } catch (error) {
      this.#coreFailed(error);
    }
    const slot = id & SLOT_MASK;
    this.#store(slot, new CallRecord(callback, NO_ARGS, this.#debug ? scheduledAt() : undefined, true));
    if (this.#tracer !== null) this.#tracer.scheduled(slot, 'watch', callback);
    return { slot, generation: (id - slot) / SLOT_SPACE };
  }

  /** @internal A one-shot callback run when the backend reports its token completed. */
  _expect(callback: () => void): IoToken {
    const core = this.#liveCore('expect');
    let id: number;
    try {
      id = core.expect();
    } catch (error) {
      this.#coreFailed(error);
    }
    const slot = id & SLOT_MASK;
    this.#store(slot, this.#debug ? this.#record(callback, NO_ARGS) : callback);
    if (this.#tracer !== null) this.#tracer.scheduled(slot, 'expect', callback);
    return { slot, generation: (id - slot) / SLOT_SPACE };
  }

  /** @internal Cancels a watcher or an expected completion. */
  _release(token: IoToken): void {
    this.#tracer?.released(token.slot);
    this._cancel(token.slot, token.generation);
  }

  /** @internal The core took a full batch of tokens: more may be queued, so iterate again soon. */
  _ioBacklog(): void {
    this.#ioPending = true;
  }

  /** @internal Reports an error no caller can receive. */
  _report(message: string, error: unknown): void {
    this.callExceptionHandler({ message, error });
  }

  /** @internal Tracks an open server or connection, so close() closes it. */
  _track(resource: { close(): void }, open: boolean): void {
    if (open) this.#resources.add(resource);
    else this.#resources.delete(resource);
  }

  #liveCore(operation: string): CoreLoop {
    const core = this.#core;
    if (core === null) throw new LoopClosedError(operation);
    return core;
  }

  #readinessBackend(operation: string) {
    this.#liveCore(operation);
    const backend = this.#backendImpl;
    if (backend.model !== 'readiness') {
      throw new NotSupportedError(
        `${operation}: the '${backend.name}' backend has no readiness I/O (use the 'selector' backend; ` +
          `on a completion backend use createServer/createConnection, as with asyncio's Proactor loop)`,
      );
    }
    return backend;
  }

  /**
   * Runs `callback(...args)` as a loop callback each time the process
   * receives `signal` (a name such as `'SIGINT'` or `'SIGTERM'`), until
   * `removeSignalHandler` or `close()` (asyncio's `add_signal_handler`). A
   * second handler for the same signal replaces the first. While a handler
   * is set, the host's default action (ending the process, for most
   * signals) does not happen. Needs a host with process signals (Node,
   * Deno, Bun); elsewhere NotSupportedError.
   */
  addSignalHandler<A extends unknown[]>(signal: string, callback: (...args: A) => unknown, ...args: A): void {
    const operation = 'addSignalHandler';
    const name = checkSignalName(operation, signal);
    if (typeof callback !== 'function') throw notAFunction(operation, callback);
    this.#liveCore(operation);
    const host = processSignals(operation);
    this.#signalHandlers.get(name)?.close();
    const listener = (): void => {
      if (this.#core !== null) this.callSoon(callback, ...args);
    };
    const registration = {
      close: (): void => {
        host.off(name, listener);
        if (this.#signalHandlers.get(name) === registration) this.#signalHandlers.delete(name);
        this._track(registration, false);
      },
    };
    host.on(name, listener);
    this.#signalHandlers.set(name, registration);
    this._track(registration, true);
  }

  /** Removes the handler of `signal`; true if there was one. */
  removeSignalHandler(signal: string): boolean {
    const name = checkSignalName('removeSignalHandler', signal);
    this.#liveCore('removeSignalHandler');
    const registration = this.#signalHandlers.get(name);
    if (registration === undefined) return false;
    registration.close();
    return true;
  }

  /**
   * Calls `callback(...args)` whenever `fd` is readable, until removeReader.
   * A second addReader for the same fd replaces the callback. Selector only.
   */
  addReader<A extends unknown[]>(fd: number, callback: (...args: A) => unknown, ...args: A): void {
    this.#addFdWatch('addReader', fd, READABLE, callback, args);
  }

  /** Stops watching `fd` for reading; true if it was watched. */
  removeReader(fd: number): boolean {
    return this.#removeFdWatch('removeReader', fd, READABLE);
  }

  /** Calls `callback(...args)` whenever `fd` is writable, until removeWriter. Selector only. */
  addWriter<A extends unknown[]>(fd: number, callback: (...args: A) => unknown, ...args: A): void {
    this.#addFdWatch('addWriter', fd, WRITABLE, callback, args);
  }

  /** Stops watching `fd` for writing; true if it was watched. */
  removeWriter(fd: number): boolean {
    return this.#removeFdWatch('removeWriter', fd, WRITABLE);
  }

  #addFdWatch(operation: string, fd: number, direction: Direction, callback: Callback, args: unknown[]): void {
    if (!Number.isInteger(fd) || fd < 0 || fd > INT32_MAX) {
      throw new TypeError(`${operation}: fd must be a non-negative integer file descriptor, got ${describe(fd)}`);
    }
    if (typeof callback !== 'function') throw notAFunction(operation, callback);
    const backend = this.#readinessBackend(operation);
    const key = fd * 4 + direction;
    const existing = this.#fdWatches.get(key);
    const record = new CallRecord(callback, args, this.#debug ? scheduledAt() : undefined, true);
    if (existing !== undefined) {
      // asyncio replaces the callback of a watched fd.
      existing.record = record;
      this.#store(existing.token.slot, record);
      return;
    }
    let id: number;
    try {
      id = (this.#core as CoreLoop).watch();
    } catch (error) {
      this.#coreFailed(error);
    }
    const slot = id & SLOT_MASK;
    const token = { slot, generation: (id - slot) / SLOT_SPACE };
    if (this.#tracer !== null) this.#tracer.scheduled(slot, 'watch', callback);
    const rc = backend.watch(fd, direction, slot);
    if (rc < 0) {
      this._cancel(slot, token.generation);
      throw ioError(operation, errnoName(rc), `fd ${fd} cannot be watched`);
    }
    this.#store(slot, record);
    this.#fdWatches.set(key, { token, record });
  }

  #removeFdWatch(operation: string, fd: number, direction: Direction): boolean {
    if (!Number.isInteger(fd) || fd < 0) {
      throw new TypeError(`${operation}: fd must be a non-negative integer file descriptor, got ${describe(fd)}`);
    }
    this.#readinessBackend(operation);
    return this.#unwatchFd(fd, direction);
  }

  #unwatchFd(fd: number, direction: Direction): boolean {
    const key = fd * 4 + direction;
    const watch = this.#fdWatches.get(key);
    if (watch === undefined) return false;
    this.#fdWatches.delete(key);
    const backend = this.#backendImpl;
    if (backend.model === 'readiness') backend.unwatch(fd, direction);
    this._release(watch.token);
    return true;
  }

  /**
   * Listens for TCP connections; `onConnection(connection)` runs for each,
   * as a loop callback. A handler that throws or rejects has its connection
   * closed and the error reported to the exception handler.
   */
  async createServer(onConnection: ConnectionHandler, options: ServerOptions): Promise<Server> {
    if (typeof onConnection !== 'function') throw notAFunction('createServer', onConnection);
    const { backend, ...at } = await this.#listenTarget('createServer', options);
    if (backend.model === 'readiness') return listenReadiness(this as IoLoop, backend, onConnection, at);
    return listenCompletion(this as IoLoop, backend, onConnection, at);
  }

  /** Opens a TCP connection. */
  async createConnection(options: ConnectOptions): Promise<Connection> {
    const { backend, ...at } = await this.#connectTarget('createConnection', options);
    if (backend.model === 'readiness') return connectReadiness(this as IoLoop, backend, at);
    return connectCompletion(this as IoLoop, backend, at);
  }

  /**
   * Listens for TCP connections with asyncio's protocol API: for each
   * connection `protocolFactory()` makes a protocol, whose methods the loop
   * calls as things happen (`connectionMade(transport)`, `dataReceived(data)`,
   * `eofReceived()`, `connectionLost(error)`, `pauseWriting()`,
   * `resumeWriting()`). No promise per read or write: the fastest way to
   * serve. A factory or method that throws is reported to the exception
   * handler and its connection aborted.
   */
  async createProtocolServer(protocolFactory: ProtocolFactory, options: ServerOptions): Promise<Server> {
    const operation = 'createProtocolServer';
    if (typeof protocolFactory !== 'function') throw notAFunction(operation, protocolFactory, 'protocolFactory');
    const { backend, ...at } = await this.#listenTarget(operation, options);
    const loop = this as IoLoop;
    if (backend.model === 'readiness') {
      return listenReadinessWith(
        loop,
        backend,
        (fd) => this.#withProtocol(operation, protocolFactory, (p) => readinessTransport(loop, backend, fd, p), () => backend.sockets.close(fd)),
        at,
      );
    }
    return listenCompletionWith(
      loop,
      backend,
      (socket) => this.#withProtocol(operation, protocolFactory, (p) => completionTransport(loop, backend, socket, p), () => socket.destroy()),
      at,
    );
  }

  /**
   * Opens a TCP connection with asyncio's protocol API; resolves once it is
   * open and `connectionMade` has run.
   */
  async createProtocolConnection<P extends Protocol>(
    protocolFactory: ProtocolFactory<P>,
    options: ConnectOptions,
  ): Promise<{ transport: Transport; protocol: P }> {
    const operation = 'createProtocolConnection';
    if (typeof protocolFactory !== 'function') throw notAFunction(operation, protocolFactory, 'protocolFactory');
    const { backend, ...at } = await this.#connectTarget(operation, options);
    const loop = this as IoLoop;
    /** The protocol for the connected socket; if the factory fails, the socket is closed and the error thrown. */
    const make = (open: (protocol: P) => Transport, closeRaw: () => void) => {
      let protocol: P;
      try {
        protocol = checkProtocol(operation, protocolFactory());
      } catch (error) {
        closeRaw();
        throw error;
      }
      return { transport: open(protocol), protocol };
    };
    if (backend.model === 'readiness') {
      return connectReadinessWith(loop, backend, at, (fd) =>
        make((p) => readinessTransport(loop, backend, fd, p), () => backend.sockets.close(fd)),
      );
    }
    return connectCompletionWith(loop, backend, at, (socket) =>
      make((p) => completionTransport(loop, backend, socket, p), () => socket.destroy()),
    );
  }

  /**
   * Opens a UDP endpoint with asyncio's datagram protocol API
   * (`create_datagram_endpoint`): `localAddress` to bind (default: any
   * address of the remote's family, a free port), `remoteAddress` to connect
   * it to (then it sends there and receives only from there). Resolves once
   * `connectionMade` has run.
   */
  async createDatagramEndpoint<P extends DatagramProtocol>(
    protocolFactory: DatagramProtocolFactory<P>,
    options: DatagramEndpointOptions,
  ): Promise<{ transport: DatagramTransport; protocol: P }> {
    const operation = 'createDatagramEndpoint';
    if (typeof protocolFactory !== 'function') throw notAFunction(operation, protocolFactory, 'protocolFactory');
    const { local, remote } = checkDatagramOptions(operation, options);
    this.#liveCore(operation);
    const backend = this.#ioBackend(operation);
    const supported =
      backend.model === 'readiness' ? typeof backend.sockets.udpBind === 'function' : typeof backend.datagram === 'function';
    if (!supported) throw new NotSupportedError(`${operation}: the '${backend.name}' backend has no datagram endpoints`);
    const remoteHost = remote === null ? null : await resolveHost(operation, remote.host);
    // Without a localAddress, any address of the remote's family (to reach it
    // from whichever interface routes there); a localAddress without a host
    // means loopback, as createServer's default.
    const wildcard = remoteHost?.includes(':') ? '::' : '0.0.0.0';
    const localHost = local === null ? wildcard : await resolveHost(operation, local.host ?? '127.0.0.1');
    this.#liveCore(operation);
    const protocol = protocolFactory();
    if (typeof protocol !== 'object' || protocol === null) {
      throw new TypeError(`${operation}: the protocol factory must return an object, got ${describe(protocol)}`);
    }
    const target = {
      local: { host: localHost, port: local?.port ?? 0 },
      remote: remote === null ? null : { host: remoteHost as string, port: remote.port },
    };
    const loop = this as IoLoop;
    const transport =
      backend.model === 'readiness'
        ? readinessDatagramEndpoint(loop, backend, target, protocol)
        : await completionDatagramEndpoint(loop, backend, target, protocol);
    return { transport, protocol };
  }

  /**
   * A listen's checked arguments, its host resolved, and the backend's I/O:
   * what `createServer` and `createProtocolServer` share.
   */
  async #listenTarget(
    operation: string,
    options: ServerOptions,
  ): Promise<{ backend: IoBackend; host: string; port: number; backlog: number; reusePort: boolean; path?: string }> {
    const { host, port, backlog, path } = checkAddress(operation, options, true);
    const reusePort = (options as ServerOptions).reusePort ?? false;
    if (typeof reusePort !== 'boolean') {
      throw new TypeError(`${operation}: reusePort must be a boolean, got ${describe(reusePort)}`);
    }
    if (path !== undefined && reusePort) throw new TypeError(`${operation}: reusePort is for TCP ports, not a path`);
    this.#liveCore(operation);
    const backend = this.#ioBackend(operation);
    if (path !== undefined) {
      this.#unixSockets(operation, backend);
      return { backend, host: '', port: UNIX_PORT, backlog, reusePort, path };
    }
    const address = await resolveHost(operation, host);
    return { backend, host: address, port, backlog, reusePort };
  }

  /** NotSupportedError unless the backend has Unix domain sockets. */
  #unixSockets(operation: string, backend: IoBackend): void {
    if (backend.model === 'readiness' && typeof backend.sockets.listenUnix !== 'function') {
      throw new NotSupportedError(`${operation}: the '${backend.name}' backend has no Unix domain sockets`);
    }
  }

  /** A connect's checked arguments and resolved host, and the backend's I/O. */
  async #connectTarget(
    operation: string,
    options: ConnectOptions,
  ): Promise<{ backend: IoBackend; host: string; port: number; signal: AbortSignal | undefined; path?: string }> {
    const { host, port, path } = checkAddress(operation, options, false);
    const signal = checkSignal(operation, (options as ConnectOptions).signal);
    this.#liveCore(operation);
    const backend = this.#ioBackend(operation);
    if (path !== undefined) {
      this.#unixSockets(operation, backend);
      return { backend, host: '', port: UNIX_PORT, signal, path };
    }
    const address = await abortable(resolveHost(operation, host), signal);
    return { backend, host: address, port, signal };
  }

  /** The backend, if it does I/O; NotSupportedError if it is a clock only. */
  #ioBackend(operation: string): IoBackend {
    const backend = this.#backendImpl;
    if (backend.model === 'none') throw new NotSupportedError(`${operation}: the '${backend.name}' backend has no I/O`);
    return backend;
  }

  /** A server's accepted connection with a fresh protocol, or, if the factory fails, reported and closed. */
  #withProtocol(
    operation: string,
    factory: ProtocolFactory,
    open: (protocol: Protocol) => Transport & { whenClosed(fn: () => void): void },
    closeRaw: () => void,
  ): { whenClosed(fn: () => void): void } {
    let protocol: Protocol;
    try {
      protocol = checkProtocol(operation, factory());
    } catch (error) {
      this._report(`${operation}: the protocol factory failed; the connection was closed`, error);
      closeRaw();
      return { whenClosed: (fn) => fn() };
    }
    return open(protocol);
  }

  // ----------------------------------------------------- timers and time

  /**
   * Node's timer functions bound to this loop (`setTimeout`, `clearTimeout`,
   * `setInterval`, `clearInterval`, `setImmediate`, `clearImmediate`), with
   * Node's argument handling. See `timers.ts` for the one difference.
   */
  get timers(): LoopTimers {
    this.#liveCore('timers');
    this.#timers ??= createTimers(this);
    return this.#timers;
  }

  /** Replay: the clock moves to the time the next recorded iteration ran at. */
  #replayClock(): void {
    const t = (this.#tracer as Tracer).nextTime();
    if (t !== null) (this.#virtual as VirtualBackend).advanceClockTo(t);
  }

  /** Replay: after an empty wait, is the program stuck short of the recording? Fails the run if so. */
  #replayStalled(timeout: number): boolean {
    const tracer = this.#tracer as Tracer;
    const next = tracer.nextTime();
    if (next === null || timeout === 0) return false;
    const now = (this.#virtual as VirtualBackend).now();
    // Nothing ready now, and nothing due by the recorded time: it diverged.
    if (timeout > 0 && now + timeout * 1e6 <= next) return false;
    if (now < next) return false;
    const error = tracer.stalled(now);
    if (error === null) return false;
    this.#stopping = true;
    this.#finishRun(error);
    return true;
  }

  /** One iteration, now, outside the driver (virtual time's manual mode). */
  #iterateNow(): number {
    const instance = this.#instance as CoreInstance;
    if (this.#tracer?.replaying === true) this.#replayClock();
    this.#ioPending = false;
    const length = instance.runOnce();
    this.#epoch = null;
    if (length > 0) this.#runBatch(instance.batch(), length);
    return length;
  }

  #manual(operation: string): VirtualBackend {
    this.#liveCore(operation);
    if (this.#virtual === null) {
      throw new NotSupportedError(
        `${operation}: only a loop on the 'virtual' backend can be driven by hand (this one is on '${this.backend}')`,
      );
    }
    if (this.#driver !== Driver.Idle) throw new LoopRunningError(operation);
    return this.#virtual;
  }

  /**
   * Runs iterations until nothing is ready now (the clock is not moved);
   * returns the callbacks run. `wait` is what pollTimeout last said, if the
   * caller just asked.
   */
  #drainNow(operation: string, limit: number, ran: number, wait = -2): number {
    const core = this.#core as CoreLoop;
    if (wait === -2) wait = core.pollTimeout();
    while (wait === 0 || this.#ioPending) {
      ran += this.#iterateNow();
      if (ran > limit) throw new LoopLimitError(operation, limit);
      wait = core.pollTimeout();
    }
    return ran;
  }

  /**
   * Virtual time: runs everything that is ready now, without moving the
   * clock; returns the callbacks run. Throws LoopLimitError past `limit`
   * callbacks (an endless callSoon chain).
   */
  runUntilIdle(options: { limit?: number } = {}): number {
    this.#manual('runUntilIdle');
    const limit = checkLimit('runUntilIdle', options);
    try {
      return this.#drainNow('runUntilIdle', limit, 0);
    } catch (error) {
      this.#coreFailed(error);
    }
  }

  /**
   * Virtual time: moves the clock forward by `ms`, running every callback
   * due on the way at its own time, in order; returns the callbacks run.
   */
  advance(ms: number, options: { limit?: number } = {}): number {
    const virtual = this.#manual('advance');
    if (typeof ms !== 'number' || ms !== ms) throw badTime('advance', 'ms', ms);
    if (ms < 0 || ms === Infinity) {
      throw new RangeError(`advance: ms must be a finite number >= 0 (time only moves forward), got ${describe(ms)}`);
    }
    const limit = checkLimit('advance', options);
    try {
      return this.#jump('advance', virtual, limit, virtual.now() + Math.ceil(ms * 1e6));
    } catch (error) {
      this.#coreFailed(error);
    }
  }

  /**
   * Virtual time: runs until no callback or timer is left, jumping the clock
   * from deadline to deadline; returns the callbacks run. Throws
   * LoopLimitError naming the limit when more than `limit` (default 100,000)
   * callbacks run, as timers that keep re-arming would.
   */
  runAll(options: { limit?: number } = {}): number {
    const virtual = this.#manual('runAll');
    const limit = checkLimit('runAll', options);
    try {
      return this.#jump('runAll', virtual, limit, Infinity);
    } catch (error) {
      this.#coreFailed(error);
    }
  }

  /** Runs what is due, jumping from deadline to deadline up to `target` (ns). */
  #jump(operation: string, virtual: VirtualBackend, limit: number, target: number): number {
    const core = this.#core as CoreLoop;
    // With no end to reach and no trace to keep, the core jumps to each
    // deadline itself: one crossing per step instead of a poll-timeout, a
    // clock move and a run-once reading the clock.
    const coreJumps = target === Infinity && this.#tracer === null;
    let ran = 0;
    let wait = core.pollTimeout();
    for (;;) {
      while (wait === 0 || this.#ioPending) {
        ran += this.#iterateNow();
        if (ran > limit) throw new LoopLimitError(operation, limit);
        wait = core.pollTimeout();
      }
      if (wait < 0 || virtual.now() + wait * 1e6 > target) break;
      if (coreJumps) {
        ran = this.#jumpInCore(operation, virtual, limit, ran);
      } else {
        virtual.advanceClock(wait);
        // The iteration reads the moved clock itself.
        this.#epoch = null;
        ran += this.#iterateNow();
        if (ran > limit) throw new LoopLimitError(operation, limit);
      }
      wait = core.pollTimeout();
    }
    if (target !== Infinity) {
      virtual.advanceClockTo(target);
      this.#syncTime();
      ran = this.#drainNow(operation, limit, ran);
    }
    return ran;
  }

  /**
   * Steps with `jumpAndRunOnce` while they find work and no I/O is in
   * flight (I/O takes the clock-reading path); the virtual clock follows the
   * core's time after each step, before any callback can read it.
   */
  #jumpInCore(operation: string, virtual: VirtualBackend, limit: number, ran: number): number {
    const instance = this.#instance as CoreInstance;
    while (!this.#ioPending) {
      const length = instance.jumpAndRunOnce();
      virtual.advanceClockTo(instance.timeNs());
      this.#epoch = null;
      if (length === 0) break;
      this.#runBatch(instance.batch(), length);
      ran += length;
      if (ran > limit) throw new LoopLimitError(operation, limit);
    }
    return ran;
  }

  /** The clock moved outside an iteration: the loop's time follows it now. */
  #syncTime(): void {
    (this.#core as CoreLoop).updateTime();
    this.#epoch = null;
  }

  /**
   * As `advance`, `runUntilIdle` and `runAll`, run from a host macrotask, so
   * that promise continuations each callback creates run before the next
   * callback even when called from async code. (A synchronous call made
   * while a microtask is running cannot drain the microtask queue: that is
   * what these are for, as sinon's tickAsync is.)
   */
  advanceAsync(ms: number, options: { limit?: number } = {}): Promise<number> {
    return inMacrotask(() => this.advance(ms, options));
  }

  runUntilIdleAsync(options: { limit?: number } = {}): Promise<number> {
    return inMacrotask(() => this.runUntilIdle(options));
  }

  runAllAsync(options: { limit?: number } = {}): Promise<number> {
    return inMacrotask(() => this.runAll(options));
  }



  // ----------------------------------------------------------- exceptions

  /**
   * Sets the function called with `(loop, context)` when a callback throws;
   * `null` restores the default, which logs with `console.error`.
   */
  setExceptionHandler(handler: ExceptionHandler | null): void {
    if (handler !== null && typeof handler !== 'function') {
      throw new TypeError(`setExceptionHandler: handler must be a function or null, got ${describe(handler)}`);
    }
    this.#exceptionHandler = handler;
  }

  getExceptionHandler(): ExceptionHandler | null {
    return this.#exceptionHandler;
  }

  /** Reports `context` to the exception handler; never throws. */
  callExceptionHandler(context: ExceptionContext): void {
    const handler = this.#exceptionHandler;
    if (handler === null) {
      defaultExceptionHandler(context);
      return;
    }
    try {
      handler(this, context);
    } catch (error) {
      console.error('wasmloop: the exception handler threw', error, 'while handling:', context);
    }
  }

  // ---------------------------------------------------------------- state

  /** Counters; see {@link LoopStats}. */
  stats(): LoopStats {
    const core = this.#core;
    if (core === null) throw new LoopClosedError('stats');
    let s: ReturnType<CoreLoop['stats']>;
    try {
      s = core.stats();
    } catch (error) {
      this.#coreFailed(error);
    }
    return {
      iterations: Number(s.iterations),
      callbacksRun: this.#callbacksRun,
      timersPending: s.timersPending,
      readyPending: s.readyPending,
      timersCancelled: s.timersCancelled,
      watchers: s.watchers,
      completionsPending: s.completionsPending,
      slotsAllocated: s.slotsAllocated,
      wasmMemoryBytes: (this.#instance as CoreInstance).memory.buffer.byteLength,
      busyMs: this.#busyMs,
      idleMs: this.#idleMs,
      lagSamples: Number(s.lagSamples),
      lagP50Ms: Number(s.lagP50) / 1e6,
      lagP99Ms: Number(s.lagP99) / 1e6,
      lagMaxMs: Number(s.lagMax) / 1e6,
    };
  }

  /**
   * Closes the loop: pending callbacks are dropped and the core's memory is
   * released. Idempotent. A running loop cannot be closed (stop it first).
   */
  async close(): Promise<void> {
    const core = this.#core;
    if (core === null) return;
    if (this.#driver !== Driver.Idle) throw new LoopRunningError('close');
    for (const resource of [...this.#resources]) resource.close();
    for (const key of [...this.#fdWatches.keys()]) this.#unwatchFd(Math.floor(key / 4), (key % 4) as Direction);
    if (this.#debug && typeof process !== 'undefined') process.off('unhandledRejection', this.#onUnhandledRejection);
    this.#core = null;
    this.#instance = null;
    this.#chunks = [];
    this.#epoch = null;
    disposeCore(core);
    this.#backendImpl.close();
  }

  isClosed(): boolean {
    return this.#core === null;
  }
}

// ------------------------------------------------------------- helpers

/** Drops the core's loop resource (jco names its destructor `Symbol.dispose`). */
function disposeCore(core: CoreLoop): void {
  const dispose = (Symbol as { dispose?: symbol }).dispose ?? Symbol.for('dispose');
  (core as unknown as Record<symbol, (() => void) | undefined>)[dispose]?.();
}

function defaultExceptionHandler(context: ExceptionContext): void {
  const where = context.scheduledAt === undefined ? '' : `\nscheduled at:\n${context.scheduledAt}`;
  console.error(`wasmloop: ${context.message}${where}`, context.error);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

function callbackName(fn: Callback): string {
  return fn.name === '' ? '<anonymous>' : fn.name;
}

function scheduledAt(): string {
  const stack = new Error().stack ?? '';
  // Drop "Error" and the loop's own frames.
  return stack.split('\n').slice(4).join('\n');
}


/** The reason a `timeoutSignal` or `waitFor` gives: what `AbortSignal.timeout` gives. */
function timedOut(operation: string, ms: number): DOMException {
  return new DOMException(`${operation}: timed out after ${ms} ms of loop time`, 'TimeoutError');
}

function inMacrotask<T>(fn: () => T): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    yieldToHost(() => {
      try {
        resolve(fn());
      } catch (error) {
        reject(error);
      }
    });
  });
}

function checkLimit(operation: string, options: unknown): number {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${operation}: options must be an object, got ${describe(options)}`);
  }
  const { limit = 100_000 } = options as { limit?: unknown };
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1) {
    throw new RangeError(`${operation}: limit must be a positive integer, got ${describe(limit)}`);
  }
  return limit;
}

/** The local and remote addresses of a datagram endpoint, checked. */
function checkDatagramOptions(
  operation: string,
  options: unknown,
): { local: { host?: string; port: number } | null; remote: { host: string; port: number } | null } {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${operation}: options must be an object with localAddress and/or remoteAddress, got ${describe(options)}`);
  }
  const { localAddress, remoteAddress } = options as { localAddress?: unknown; remoteAddress?: unknown };
  if (localAddress === undefined && remoteAddress === undefined) {
    throw new TypeError(`${operation}: give localAddress, remoteAddress or both`);
  }
  const address = (name: string, value: unknown, portRequired: boolean): { host?: string; port: number } => {
    if (typeof value !== 'object' || value === null) {
      throw new TypeError(`${operation}: ${name} must be an object { host, port }, got ${describe(value)}`);
    }
    const { host, port = portRequired ? undefined : 0 } = value as { host?: unknown; port?: unknown };
    if (host !== undefined && (typeof host !== 'string' || host === '')) {
      throw new TypeError(`${operation}: ${name}.host must be a non-empty string, got ${describe(host)}`);
    }
    const min = portRequired ? 1 : 0;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < min || port > 65535) {
      throw new RangeError(`${operation}: ${name}.port must be an integer from ${min} to 65535, got ${describe(port)}`);
    }
    return host === undefined ? { port } : { host, port };
  };
  const local = localAddress === undefined ? null : address('localAddress', localAddress, false);
  const remote = remoteAddress === undefined ? null : address('remoteAddress', remoteAddress, true);
  return { local, remote: remote === null ? null : { host: remote.host ?? '127.0.0.1', port: remote.port } };
}

/**
 * The port passed to a backend with `path`: not a port, so a backend that
 * knows nothing of Unix domain sockets fails instead of listening on TCP.
 */
const UNIX_PORT = -1;

/** Longest Unix domain socket path, in bytes (sun_path holds 108 with the NUL). */
const MAX_UNIX_PATH_BYTES = 107;

function checkAddress(
  operation: string,
  options: unknown,
  listening: boolean,
): { host: string; port: number; backlog: number; path?: string } {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${operation}: options must be an object with a port or a path, got ${describe(options)}`);
  }
  const { host = '127.0.0.1', port, backlog = 511, path } = options as {
    host?: unknown;
    port?: unknown;
    backlog?: unknown;
    path?: unknown;
  };
  if (path !== undefined) {
    if (typeof path !== 'string' || path === '') {
      throw new TypeError(`${operation}: path must be a non-empty string, got ${describe(path)}`);
    }
    if (path.includes('\0')) throw new TypeError(`${operation}: path must not contain NUL characters`);
    const bytes = new TextEncoder().encode(path).length;
    if (bytes > MAX_UNIX_PATH_BYTES) {
      throw new RangeError(`${operation}: path must be at most ${MAX_UNIX_PATH_BYTES} bytes (a Unix socket's limit), got ${bytes}`);
    }
    if (port !== undefined || (options as { host?: unknown }).host !== undefined) {
      throw new TypeError(`${operation}: give a path or a host and port, not both`);
    }
    if (typeof backlog !== 'number' || !Number.isInteger(backlog) || backlog < 1) {
      throw new RangeError(`${operation}: backlog must be a positive integer, got ${describe(backlog)}`);
    }
    return { host: '', port: UNIX_PORT, backlog, path };
  }
  if (typeof host !== 'string' || host === '') {
    throw new TypeError(`${operation}: host must be a non-empty string, got ${describe(host)}`);
  }
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535 || (!listening && port === 0)) {
    throw new RangeError(
      `${operation}: port must be an integer from ${listening ? 0 : 1} to 65535, got ${describe(port)}`,
    );
  }
  if (typeof backlog !== 'number' || !Number.isInteger(backlog) || backlog < 1) {
    throw new RangeError(`${operation}: backlog must be a positive integer, got ${describe(backlog)}`);
  }
  return { host, port, backlog };
}

/** A numeric address for `host` (IPv4 preferred for names, as most servers listen there). */
async function resolveHost(operation: string, host: string): Promise<string> {
  if (isIpLiteral(host)) return host;
  const { lookup } = await import('node:dns/promises');
  try {
    const { address } = await lookup(host, { order: 'ipv4first' } as never);
    return address;
  } catch (error) {
    throw new IoError(operation, (error as { code?: string }).code ?? 'ENOTFOUND', `cannot resolve ${host}`, {
      cause: error,
    });
  }
}

/** Signal names a process can receive, as Node names them. */
const SIGNAL_NAMES = new Set([
  'SIGABRT', 'SIGALRM', 'SIGBREAK', 'SIGBUS', 'SIGCHLD', 'SIGCONT', 'SIGFPE', 'SIGHUP', 'SIGILL', 'SIGINFO',
  'SIGINT', 'SIGIO', 'SIGIOT', 'SIGKILL', 'SIGLOST', 'SIGPIPE', 'SIGPOLL', 'SIGPROF', 'SIGPWR', 'SIGQUIT',
  'SIGSEGV', 'SIGSTKFLT', 'SIGSTOP', 'SIGSYS', 'SIGTERM', 'SIGTRAP', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU',
  'SIGUNUSED', 'SIGURG', 'SIGUSR1', 'SIGUSR2', 'SIGVTALRM', 'SIGWINCH', 'SIGXCPU', 'SIGXFSZ',
]);

/**
 * Signals a handler cannot take: SIGKILL and SIGSTOP never reach a
 * process; the faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL) are raised again
 * when their handler returns.
 */
const UNCATCHABLE_SIGNALS = new Set(['SIGKILL', 'SIGSTOP', 'SIGSEGV', 'SIGBUS', 'SIGFPE', 'SIGILL']);

function checkSignalName(operation: string, signal: unknown): string {
  if (typeof signal !== 'string') {
    throw new TypeError(`${operation}: signal must be a signal name such as 'SIGINT', got ${describe(signal)}`);
  }
  if (!SIGNAL_NAMES.has(signal)) throw new RangeError(`${operation}: signal ${JSON.stringify(signal)} is not a signal name`);
  if (UNCATCHABLE_SIGNALS.has(signal)) throw new RangeError(`${operation}: ${signal} cannot be handled`);
  return signal;
}

interface ProcessSignals {
  on(name: string, listener: () => void): unknown;
  off(name: string, listener: () => void): unknown;
}

/** The host's process signals (Node, Deno, Bun); NotSupportedError elsewhere. */
function processSignals(operation: string): ProcessSignals {
  const host = (globalThis as { process?: Partial<ProcessSignals> & { pid?: unknown } }).process;
  if (host === undefined || typeof host.on !== 'function' || typeof host.off !== 'function' || typeof host.pid !== 'number') {
    throw new NotSupportedError(`${operation}: this host has no process signals`);
  }
  return host as ProcessSignals;
}

function notAFunction(operation: string, value: unknown, argument = 'callback'): TypeError {
  return new TypeError(`${operation}: ${argument} must be a function, got ${describe(value)}`);
}

/** What a protocol factory returned, if it is an object. */
function checkProtocol<P>(operation: string, value: P): P {
  if (typeof value !== 'object' || value === null) {
    throw new TypeError(`${operation}: protocolFactory must return a protocol object, got ${describe(value)}`);
  }
  return value;
}

function badTime(operation: string, argument: string, value: unknown): TypeError {
  return new TypeError(`${operation}: ${argument} must be a number of milliseconds, got ${describe(value)}`);
}
