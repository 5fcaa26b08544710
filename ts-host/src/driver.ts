/**
 * The driver: runs iterations, and decides when the next one runs.
 *
 * One iteration is three named steps, the phases of docs/design.md and of
 * `EventLoop::run_once` in rust-core/src/event_loop.rs:
 *
 *     collect   phases 0-3, in the core, one crossing: release the last
 *               batch, read the clock once (or jump to the next deadline),
 *               take the ready callbacks, the due timers, the I/O tokens
 *     run       phase 4, on the host: the batch's callbacks in order
 *               (callbacks.ts), the microtask queue drained after each
 *     wait      how long until the next iteration: `poll-timeout` (0 when
 *               something is ready or I/O is pending)
 *
 * Every way of running goes through `#collect` and `#run`:
 *
 *     run()                  the host drives: iterations back to back for at
 *                            most SLICE_MS, then a host turn; for a positive
 *                            wait, one host timer; for none, nothing armed
 *     runUntilIdle/advance/  the program drives (virtual time): iterations
 *     runAll                 now, jumping the clock from deadline to deadline
 *
 * What differs between wall time, virtual time and replay is the time mode
 * (time-modes.ts): where phase 1's clock stands and what an idle wait does.
 * Hosts that cannot drain microtasks synchronously (browsers, workerd)
 * run a batch one callback per host macrotask; the step is the same.
 */
import {
  armTimer,
  cancelYield,
  disarmTimer,
  hostTimerDelay,
  microtaskDrain,
  nextMacrotask,
  wallNow,
  yieldToHost,
} from './host-tasks.js';
import type { BackendFaults } from './backend-faults.js';
import type { CallbackTable } from './callbacks.js';
import type { ClockImport, CoreInstance } from './core.js';
import { BackendError, LoopLimitError } from './errors.js';
import type { LiveCore } from './live-core.js';
import type { LoopTime } from './loop-time.js';
import type { TimeMode } from './time-modes.js';
import { ReplayDivergenceError } from './trace.js';

/**
 * Longest stretch (ms) the driver runs back-to-back iterations before it
 * yields to the host, so the host's own I/O and timers never starve.
 */
const SLICE_MS = 2;

/** Where the driver is. */
const enum State {
  /** Not running. */
  Idle,
  /** Inside an iteration. */
  Iterating,
  /** A host macrotask will run the next slice. */
  Scheduled,
  /** Waiting on a host timer for the earliest deadline, or for a wakeup. */
  Sleeping,
}

/** Phase 1's source of time. */
const enum Step {
  /** Read the clock (`run-once`). */
  ReadClock,
  /** Virtual time: jump to the earliest deadline when nothing is ready (`jump-and-run-once`). */
  JumpToNextTimer,
}

export interface DriverParts {
  core: LiveCore;
  callbacks: CallbackTable;
  time: LoopTime;
  mode: TimeMode;
  /** What the backend did wrong inside the last core call, raised after it. */
  faults: BackendFaults;
  /** The core's clock import: the driver hands it a wall-clock reading it took (`reuse`). */
  clock: ClockImport;
  /** The backend's host-timer delay for a wait of `loopMs` (its `hostDelay`), or the wait itself. */
  hostDelay(loopMs: number): number;
  /** Closes the loop after a failure of the core or the host; returns the error the run fails with. */
  crash(cause: unknown): unknown;
}

export class Driver {
  readonly #core: LiveCore;
  readonly #callbacks: CallbackTable;
  readonly #time: LoopTime;
  readonly #mode: TimeMode;
  readonly #faults: BackendFaults;
  readonly #parts: DriverParts;

  #state = State.Idle;
  #stopping = false;
  /**
   * The host timer for the earliest deadline, or null, and when it fires
   * (`wallNow()` ms). It stays armed across wakeups while it would fire no
   * later than the loop needs (see #sleep).
   */
  #hostTimer: unknown = null;
  #hostTimerDue = 0;
  #hostYield: unknown = null;
  #onStopped: ((error?: unknown) => void) | null = null;
  /** The backend queued I/O tokens the core has not taken yet. */
  #ioPending = false;
  /** Host work the loop waits for before its next iteration (virtual time: `hold()`). */
  #holds = 0;
  /** Wall time (ms) spent running batches, and waiting between them while running. */
  busyMs = 0;
  idleMs = 0;
  /** Wall time the last batch ended, while running; -1 when not running. */
  #lastBatchEnd = -1;

  constructor(parts: DriverParts) {
    this.#core = parts.core;
    this.#callbacks = parts.callbacks;
    this.#time = parts.time;
    this.#mode = parts.mode;
    this.#faults = parts.faults;
    this.#parts = parts;
  }

  // ------------------------------------------------------- the iteration

  /** collect: phases 0-3 in the core; returns how many callbacks the batch holds. */
  #collect(step: Step): number {
    this.#mode.beforeCollect();
    this.#ioPending = false;
    const instance = this.#core.instance as CoreInstance;
    let length: number;
    if (step === Step.ReadClock) {
      length = instance.runOnce();
    } else {
      length = instance.jumpAndRunOnce();
      // The virtual clock follows the core's time before any callback reads it.
      this.#mode.jumped(instance.jumpedNs());
    }
    this.#time.invalidate();
    return instance.soon() + length;
  }

  /**
   * A backend's clock or token queue failed during a core call
   * (backend-faults.ts): the run fails with that BackendError. Raised after
   * the batch ran, so that no callback the core handed out is lost.
   */
  #raiseFaults(): void {
    const fault = this.#faults.take();
    if (fault !== null) throw fault;
  }

  /** run: phase 4 on the batch `collect` left (`length` callbacks). */
  #run(length: number): void {
    if (length === 0) return;
    const instance = this.#core.instance as CoreInstance;
    const soon = instance.soon();
    this.#callbacks.runBatch(soon, instance.batch(), length - soon);
  }

  /**
   * wait: 0 if something is ready, ms to the earliest timer, or -1 for none.
   * `wallMs` is the `wallNow()` reading taken after the batch: with a timer
   * pending the core reads its clock here, and on the wall clock it gets
   * that reading instead of another.
   */
  #wait(core: CoreInstance, wallMs: number): number {
    if (this.#ioPending) return 0;
    const origin = this.#mode.wallOrigin;
    const clock = this.#parts.clock;
    if (origin !== null) clock.reuse((wallMs - origin) * 1e6);
    const wait = core.pollTimeout();
    if (origin !== null) clock.reuse(-1);
    this.#raiseFaults();
    return wait;
  }

  /** One iteration, now: collect, then run; returns the callbacks handed out. */
  #iteration(step: Step): number {
    const length = this.#collect(step);
    this.#run(length);
    this.#raiseFaults();
    return length;
  }

  // ----------------------------------------------------- host-driven runs

  get running(): boolean {
    return this.#state !== State.Idle;
  }

  /** Runs until `stop()`; rejects with what ended the run otherwise. */
  run(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#onStopped = (error?: unknown) => (error === undefined ? resolve() : reject(error));
      this.#state = State.Scheduled;
      this.#hostYield = yieldToHost(this.#slice);
    });
  }

  /** Ends the run after the current batch (or, not running, after the next run's first iteration). */
  stop(): void {
    this.#stopping = true;
    if (this.#state === State.Sleeping) this.#wake();
  }

  /** Something was scheduled while the driver slept: run soon. */
  scheduled(): void {
    if (this.#state === State.Sleeping) this.#wake();
  }

  /**
   * The backend queued I/O tokens. From a host callback a sleeping loop runs
   * an iteration at once (no need for another host turn); otherwise it
   * schedules one, since a microtask cannot drain the microtask queue that
   * each callback's continuations need.
   */
  ioReady(fromHostCallback: boolean): void {
    this.#ioPending = true;
    if (this.#state !== State.Sleeping) return;
    if (!fromHostCallback) {
      this.#wake();
      return;
    }
    this.#slice();
  }

  /**
   * Virtual time: host work is in flight that the program's next callbacks
   * depend on (a TLS layer's write finishing in a host macrotask), so no
   * iteration runs and the clock does not jump until every hold is
   * released. The loop then waits for the host after each iteration rather
   * than for as long as the wall clock allows, so the order of callbacks
   * does not depend on how fast the host was. Returns the release
   * (idempotent).
   */
  hold(): () => void {
    this.#holds++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      if (--this.#holds === 0 && this.#state === State.Sleeping) this.#wake();
    };
  }

  /** The core took a full batch of tokens: more may be queued, so iterate again soon. */
  ioBacklog(): void {
    this.#ioPending = true;
  }

  /** The loop crashed: the run in progress fails with `error`. */
  fail(error: unknown): void {
    if (this.#state === State.Idle) return;
    this.#stopping = true;
    this.#finishRun(error);
  }

  /** A slice: iterations back to back while work is ready, then a host turn. */
  readonly #slice = (): void => {
    this.#hostYield = null;
    const core = this.#core.instance;
    if (core === null || this.#state === State.Idle) return;
    this.#state = State.Iterating;
    try {
      this.#runSlice(core);
    } catch (error) {
      if (error instanceof ReplayDivergenceError || error instanceof BackendError) {
        // The run ends with the divergence or the backend's fault; the loop
        // itself is fine.
        this.#stopping = true;
        this.#finishRun(error);
        return;
      }
      // Only the core or the host primitives can throw here (callbacks'
      // errors are caught one by one): the loop cannot go on.
      this.#parts.crash(error);
    }
  };

  #runSlice(core: CoreInstance): void {
    const mode = this.#mode;
    let sliceEnd = -1;
    // When the start is not known from the loop's clock, read the wall clock.
    let batchStart = mode.wallOrigin === null ? wallNow() : -1;
    for (;;) {
      if (this.#holds > 0) {
        // Host work in flight (hold()): its release wakes the loop.
        this.#sleepUntilWoken();
        return;
      }
      const length = this.#collect(Step.ReadClock);
      const now = mode.sliceClock(core);
      if (sliceEnd < 0) {
        sliceEnd = now + SLICE_MS;
        // The slice's first iteration: the loop was idle until it started.
        if (batchStart < 0) batchStart = now + (mode.wallOrigin as number);
        if (this.#lastBatchEnd >= 0) this.idleMs += batchStart - this.#lastBatchEnd;
      }
      if (length > 0 && microtaskDrain() === null) {
        // No synchronous drain on this host: one callback per macrotask,
        // then the driver goes on from a fresh slice.
        const soon = core.soon();
        this.#runEachInMacrotask(soon, core.batch().slice(0, length - soon));
        return;
      }
      this.#run(length);
      const batchEnd = wallNow();
      this.busyMs += batchEnd - batchStart;
      this.#lastBatchEnd = batchEnd;
      batchStart = batchEnd;
      this.#raiseFaults();
      if (this.#stopping) {
        this.#finishRun();
        return;
      }
      const wait = this.#wait(core, batchEnd);
      if (wait === 0) {
        if (now < sliceEnd) continue;
        this.#yield();
        return;
      }
      if (this.#holds > 0) {
        // Host work began in this batch (hold()): the clock moves only once it is done.
        this.#sleepUntilWoken();
        return;
      }
      if (mode.idle(wait)) {
        // The mode moved the clock (virtual time): run again, within the slice.
        if (mode.sliceClock(core) < sliceEnd) continue;
        this.#yield();
        return;
      }
      this.#sleep(wait, batchEnd);
      return;
    }
  }

  /**
   * Waits `wait` ms of loop time for the next slice (-1: until woken); `now`
   * is the `wallNow()` reading taken after the last batch.
   *
   * A host timer armed earlier is kept when it fires no later than this
   * wait needs. A program's deadlines mostly move later (an idle timeout
   * pushed back on every read), and a server's every wakeup would otherwise
   * clear one host timer and set another (about 0.4 us per wakeup on Node
   * 20). A kept timer that fires early runs a slice that finds nothing due
   * and sleeps again for the rest: one spurious wakeup per timer, not a
   * host timer per wakeup.
   */
  #sleep(wait: number, now: number): void {
    if (wait < 0) {
      this.#sleepUntilWoken();
      return;
    }
    this.#state = State.Sleeping;
    const delay = hostTimerDelay(this.#parts.hostDelay(wait));
    const due = now + delay;
    if (this.#hostTimer !== null) {
      if (this.#hostTimerDue <= due) return;
      disarmTimer(this.#hostTimer);
    }
    this.#hostTimer = armTimer(this.#onHostTimer, delay);
    this.#hostTimerDue = due;
  }

  /**
   * Waits with no host timer: with nothing pending the loop does not keep
   * the host process alive; an outside call or the backend wakes it.
   */
  #sleepUntilWoken(): void {
    this.#state = State.Sleeping;
    this.#disarm();
  }

  /** The host timer fired: a sleeping loop runs (a running or scheduled one will sleep again on its own). */
  readonly #onHostTimer = (): void => {
    this.#hostTimer = null;
    if (this.#state === State.Sleeping) this.#slice();
  };

  #disarm(): void {
    if (this.#hostTimer === null) return;
    disarmTimer(this.#hostTimer);
    this.#hostTimer = null;
  }

  /**
   * run, where the host cannot drain microtasks synchronously: each
   * callback in a host macrotask of its own (microtasks drain between
   * macrotasks on every host), then the driver goes on.
   */
  #runEachInMacrotask(soon: number, slots: Uint32Array): void {
    let i = 0;
    const step = (): void => {
      if (this.#core.loop === null) return;
      try {
        if (i < soon + slots.length) {
          // The `callSoon` callbacks first, one at a time from the queue's head.
          if (i < soon) this.#callbacks.runBatch(1, slots, 0);
          else this.#callbacks.runBatch(0, slots.subarray(i - soon, i - soon + 1), 1);
          i++;
          // Continuations of this callback run before the next macrotask,
          // still inside the iteration (its time holds).
          this.#time.enterBatch();
          nextMacrotask(step);
          return;
        }
      } catch (error) {
        this.#time.leaveBatch();
        this.#parts.crash(error);
        return;
      }
      this.#time.leaveBatch();
      if (this.#stopping) {
        this.#finishRun();
        return;
      }
      this.#slice();
    };
    this.#state = State.Iterating;
    step();
  }

  #yield(): void {
    this.#state = State.Scheduled;
    this.#hostYield = yieldToHost(this.#slice);
  }

  #wake(): void {
    this.#yield();
  }

  #finishRun(error?: unknown): void {
    this.#lastBatchEnd = -1;
    this.#disarm();
    if (this.#hostYield !== null) cancelYield(this.#hostYield);
    this.#hostYield = null;
    this.#stopping = false;
    this.#state = State.Idle;
    const onStopped = this.#onStopped;
    this.#onStopped = null;
    onStopped?.(error);
  }

  // ------------------------------------------------- program-driven runs

  /** Whether the program can drive this loop by hand: virtual time, not running. */
  get manual(): boolean {
    return this.#mode.virtual !== null && this.#state === State.Idle;
  }

  /**
   * Virtual time: runs everything that is ready now, without moving the
   * clock; returns the callbacks run (LoopLimitError past `limit`).
   */
  runUntilIdle(operation: string, limit: number): number {
    return this.#guarded(() => this.#drainNow(operation, limit, 0));
  }

  /** Virtual time: moves the clock forward by `ns`, running what is due on the way, each at its time. */
  advance(operation: string, ns: number, limit: number): number {
    const virtual = this.#mode.virtual as NonNullable<TimeMode['virtual']>;
    return this.#guarded(() => this.#jump(operation, limit, virtual.clock.now() + ns));
  }

  /** Virtual time: runs until nothing is left, jumping from deadline to deadline. */
  runAll(operation: string, limit: number): number {
    return this.#guarded(() => this.#jump(operation, limit, Infinity));
  }

  /**
   * Inside a program-driven run (runUntilIdle, advance, runAll): its
   * callbacks may not close the loop, whose instance the run is using
   * (and which a closed loop hands to the next loop, core.ts).
   */
  get driving(): boolean {
    return this.#driving > 0;
  }

  #driving = 0;

  #guarded(run: () => number): number {
    this.#driving++;
    try {
      return run();
    } catch (error) {
      this.#core.failed(error);
    } finally {
      this.#driving--;
    }
  }

  /** Iterations while something is ready now (the clock stays). */
  #drainNow(operation: string, limit: number, ran: number): number {
    const core = this.#core.instance as CoreInstance;
    let wait = core.pollTimeout();
    while (wait === 0 || this.#ioPending) {
      ran += this.#iteration(Step.ReadClock);
      if (ran > limit) throw new LoopLimitError(operation, limit);
      wait = core.pollTimeout();
    }
    return ran;
  }

  /** Runs what is due, jumping from deadline to deadline up to `target` (ns). */
  #jump(operation: string, limit: number, target: number): number {
    const core = this.#core.instance as CoreInstance;
    const virtual = this.#mode.virtual as NonNullable<TimeMode['virtual']>;
    // With no end to reach and nothing to record, the core jumps to each
    // deadline itself: one crossing per step instead of a poll-timeout, a
    // clock move and a run-once reading the clock.
    const coreJumps = target === Infinity && !this.#mode.tracing;
    let ran = 0;
    let wait = core.pollTimeout();
    for (;;) {
      while (wait === 0 || this.#ioPending) {
        ran += this.#iteration(Step.ReadClock);
        if (ran > limit) throw new LoopLimitError(operation, limit);
        wait = core.pollTimeout();
      }
      if (wait < 0 || virtual.clock.now() + wait * 1e6 > target) break;
      if (coreJumps) {
        // Steps while they find work and no I/O is in flight (I/O takes the
        // clock-reading path).
        while (!this.#ioPending) {
          const length = this.#iteration(Step.JumpToNextTimer);
          if (length === 0) break;
          ran += length;
          if (ran > limit) throw new LoopLimitError(operation, limit);
        }
      } else {
        virtual.clock.advance(wait);
        // The iteration reads the moved clock itself.
        this.#time.invalidate();
        ran += this.#iteration(Step.ReadClock);
        if (ran > limit) throw new LoopLimitError(operation, limit);
      }
      wait = core.pollTimeout();
    }
    if (target !== Infinity) {
      virtual.clock.advanceTo(target);
      // The clock moved outside an iteration: the loop's time follows it now.
      core.loop.updateTime();
      this.#time.invalidate();
      ran = this.#drainNow(operation, limit, ran);
    }
    return ran;
  }
}
