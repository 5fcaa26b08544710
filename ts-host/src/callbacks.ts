/**
 * The callback table: the host's half of the core's handle table. The core
 * hands out a slot per scheduled callback and keeps its order; this table
 * keeps the callback itself at that slot, and runs a batch (phase 4 of an
 * iteration, docs/design.md).
 *
 *     register(kind) --> core.callLater/callAt/watch/expect --> id
 *                        id = generation * 2^26 + slot
 *                        chunks[slot >>> 12][slot & 4095] = callback
 *     registerSoon ----> core.callSoon --> id = sequence number (0, 1, ...)
 *                        soon queue: chunks of 4096 from the head's chunk
 *     runBatch(soon, slots) -> the next `soon` queued callbacks, then each
 *                        slot's callback, in order, each then its microtasks
 *
 * `callSoon` callbacks take no slot (wit/event-loop.wit): the core numbers
 * them and each batch says how many it takes from the head of the queue,
 * which holds them in the same order. Up to `SOON_SPARE_CHUNKS` chunks the
 * head has passed are kept for the tail to reuse; a burst larger than that
 * gives the rest back to the garbage collector, so its memory does not
 * stay (the table's slots are reused, but nothing reuses a burst's queue).
 *
 * An entry is the function itself when it takes no arguments (the common
 * case costs one reference), or a CallRecord: a callback with arguments, an
 * I/O watcher (persistent: it stays in the table when it runs), or any
 * callback in debug mode (which keeps where it was scheduled). The table
 * grows in chunks of 4096 slots and never copies, as the core's does.
 *
 * A callback is called as a plain function (`this` is undefined). Whatever
 * it throws goes to the exception handler; the batch goes on.
 */
import { microtaskDrain } from './host-tasks.js';
import { type Epoch, NO_GENERATION, generationOf, idOf, makeHandle, slotOf } from './handles.js';
import type { IoToken } from './io/streams.js';
import type { LiveCore } from './live-core.js';
import type { LoopTime } from './loop-time.js';
import { type Callback, type ExceptionContext, type Reporter, callbackName } from './reporting.js';
import type { CallbackKind, Tracer } from './trace.js';

/** A callback with arguments, an I/O watcher, or any callback in debug mode. */
class CallRecord {
  constructor(
    readonly fn: Callback,
    readonly args: readonly unknown[],
    /** Where it was scheduled (debug mode). */
    readonly stack: string | undefined,
    /** An I/O watcher: runs each time its token is reported, so it stays in the table. */
    readonly persistent: boolean,
  ) {}
}

type Entry = Callback | CallRecord;

const CHUNK_BITS = 12;
const CHUNK_SIZE = 1 << CHUNK_BITS;
const CHUNK_MASK = CHUNK_SIZE - 1;
/**
 * Passed chunks of the `callSoon` queue kept for reuse: 16 chunks hold
 * 65,536 callbacks queued at once (512 KiB of references on a 64-bit host).
 * Beyond that a burst's chunks are new ones, given back once passed: a
 * burst of a million costs about 1 ns more per callback than with every
 * chunk kept, and leaves under 2 MiB of heap behind rather than 7.4
 * (docs/design.md).
 */
const SOON_SPARE_CHUNKS = 16;

export interface CallbackSettings {
  debug: boolean;
  /** Debug mode: callbacks that run longer (ms) are logged. */
  slowCallbackMs: number;
  tracer: Tracer | null;
}

export class CallbackTable {
  readonly #core: LiveCore;
  #time: LoopTime | null = null;
  readonly #reporter: Reporter;
  readonly #debug: boolean;
  readonly #slowCallbackMs: number;
  readonly #tracer: Tracer | null;
  #chunks: Array<Array<Entry | undefined>> = [];
  /** The `callSoon` queue: chunk `i` holds ids from `#soonBase + i * 4096`. */
  #soonChunks: Array<Array<Entry | undefined>> = [];
  /** Chunks of the queue the head has passed, for the next ones (at most SOON_SPARE_CHUNKS). */
  readonly #soonSpare: Array<Array<Entry | undefined>> = [];
  /** The id of the first entry of `#soonChunks[0]` (a multiple of 4096). */
  #soonBase = 0;
  /** The id of the queue's head: the next `callSoon` callback to run or skip. */
  #soonHead = 0;
  /** The id the next `callSoon` gets (the core's count, mirrored). */
  #soonTail = 0;
  /** What `callSoon` handles cancel through: the queue, by id. */
  readonly soonCanceller: Epoch['loop'] = {
    _cancel: (low: number, high: number) => this.#cancelSoon(idOf(low, high)),
  };
  /** Callbacks run (cancelled ones never count). */
  callbacksRun = 0;
  /** Debug mode: the callback running now, for reports of unhandled rejections. */
  #current: Entry | null = null;
  #rejectionListener: ((reason: unknown) => void) | null = null;

  constructor(core: LiveCore, reporter: Reporter, settings: CallbackSettings) {
    this.#core = core;
    this.#reporter = reporter;
    this.#debug = settings.debug;
    this.#slowCallbackMs = settings.slowCallbackMs;
    this.#tracer = settings.tracer;
    const host = globalThis.process;
    if (settings.debug && typeof host?.on === 'function') {
      this.#rejectionListener = (reason) => this.#unhandledRejection(reason);
      host.on('unhandledRejection', this.#rejectionListener);
    }
  }

  /** The loop time, made after the table (its handles cancel through the table). */
  useTime(time: LoopTime): void {
    this.#time = time;
  }

  /**
   * Schedules `callback(...args)` in the core as `kind` (`time`: the delay
   * for callLater, the loop time for callAt) and stores it at the slot the
   * core hands out; returns the handle id. A watcher is `persistent`.
   */
  register(kind: CallbackKind, time: number, callback: Callback, args: readonly unknown[], persistent = false): number {
    const core = this.#core.open(kind);
    let id: number;
    try {
      id =
        kind === 'callLater'
          ? core.callLater(time)
          : kind === 'callAt'
            ? core.callAt(time)
            : kind === 'watch'
              ? core.loop.watch()
              : core.loop.expect();
    } catch (error) {
      this.#core.failed(error);
    }
    const slot = slotOf(id);
    this.#store(slot, this.#entry(callback, args, persistent));
    if (this.#tracer !== null) this.#tracer.scheduled(slot, kind, callback);
    return id;
  }

  /**
   * Queues `callback(...args)` for the next iteration (`callSoon`) at the
   * queue's tail; returns the handle id, the core's sequence number.
   */
  registerSoon(callback: Callback, args: readonly unknown[]): number {
    const core = this.#core.open('callSoon');
    let id: number;
    try {
      id = core.callSoon();
    } catch (error) {
      this.#core.failed(error);
    }
    const tail = this.#soonTail;
    if (id !== tail) {
      // The core numbers them one by one; anything else is a broken core.
      this.#core.failed(new WebAssembly.RuntimeError(`call-soon returned ${id}, expected ${tail}`));
    }
    this.#soonTail = tail + 1;
    const index = (tail - this.#soonBase) >>> CHUNK_BITS;
    let chunk = this.#soonChunks[index];
    if (chunk === undefined) {
      chunk = this.#soonSpare.pop() ?? new Array<Entry | undefined>(CHUNK_SIZE);
      this.#soonChunks[index] = chunk;
    }
    chunk[tail & CHUNK_MASK] = this.#entry(callback, args, false);
    if (this.#tracer !== null) this.#tracer.scheduledSoon(id, callback);
    return id;
  }

  /**
   * Cancels `callSoon` handle `id`: its callback is dropped now. A queued
   * one is cancelled in the core too (it no longer keeps the loop awake);
   * one in the running batch is only skipped, and the core says so.
   */
  #cancelSoon(id: number): void {
    if (!(id >= this.#soonHead && id < this.#soonTail)) return;
    const chunk = this.#soonChunks[(id - this.#soonBase) >>> CHUNK_BITS] as Array<Entry | undefined>;
    if (chunk[id & CHUNK_MASK] === undefined) return;
    chunk[id & CHUNK_MASK] = undefined;
    const core = this.#core.instance;
    if (core === null) return;
    try {
      core.cancelSoon(id);
    } catch (error) {
      this.#core.failed(error);
    }
  }

  /** Takes the callback at the queue's head (undefined: cancelled), and moves the head on. */
  #takeSoon(): Entry | undefined {
    const head = this.#soonHead;
    const chunks = this.#soonChunks;
    const chunk = chunks[0];
    if (chunk === undefined) return undefined; // dropped: the loop closed
    const entry = chunk[head & CHUNK_MASK];
    chunk[head & CHUNK_MASK] = undefined;
    this.#soonHead = head + 1;
    if (((head + 1) & CHUNK_MASK) === 0) {
      // The head left this chunk: keep it for the tail, or let it go.
      const done = chunks.shift() as Array<Entry | undefined>;
      if (this.#soonSpare.length < SOON_SPARE_CHUNKS) this.#soonSpare.push(done);
      this.#soonBase += CHUNK_SIZE;
    }
    return entry;
  }

  /** A watcher or expected completion, as io/ holds it. */
  registerIo(kind: 'watch' | 'expect', callback: Callback, args: readonly unknown[] = NO_ARGS): IoToken {
    const id = this.register(kind, 0, callback, args, kind === 'watch');
    const slot = slotOf(id);
    return { slot, generation: generationOf(id, slot) };
  }

  /** Replaces a watcher's callback (asyncio's addReader on a watched fd). */
  replace(slot: number, callback: Callback, args: readonly unknown[]): void {
    this.#store(slot, new CallRecord(callback, args, this.#debug ? scheduledAt() : undefined, true));
  }

  /** What the table keeps for `callback(...args)`: the function itself when it can (see the module doc). */
  #entry(callback: Callback, args: readonly unknown[], persistent: boolean): Entry {
    return args.length === 0 && !this.#debug && !persistent
      ? callback
      : new CallRecord(callback, args, this.#debug ? scheduledAt() : undefined, persistent);
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

  /** Cancels a handle: the core frees the slot, and the callback is dropped now. @internal */
  _cancel(slot: number, generation: number): void {
    const core = this.#core.instance;
    if (core === null) return;
    let cancelled: boolean;
    try {
      cancelled = core.cancel(slot, generation);
    } catch (error) {
      this.#core.failed(error);
    }
    if (cancelled) (this.#chunks[slot >>> CHUNK_BITS] as Array<Entry | undefined>)[slot & CHUNK_MASK] = undefined;
  }

  /** Cancels a watcher or an expected completion. */
  release(token: IoToken): void {
    this.#tracer?.released(token.slot);
    this._cancel(token.slot, token.generation);
  }

  /**
   * Phase 4: runs the next `soon` callbacks of the `callSoon` queue, then
   * `length` slots of `batch`, in order, skipping callbacks cancelled
   * meanwhile. After each callback the microtask queue is drained (where
   * the host can), as between two Node.js macrotasks.
   */
  runBatch(soon: number, batch: Uint32Array, length: number): void {
    const chunks = this.#chunks;
    const checkpoint = microtaskDrain();
    const tracer = this.#tracer;
    const serials: number[] | null = tracer === null ? null : [];
    const time = this.#time as LoopTime;
    let ran = 0;
    time.enterBatch();
    try {
      for (let i = 0; i < soon; i++) {
        const id = this.#soonHead;
        const entry = this.#takeSoon();
        if (entry === undefined) {
          // Cancelled.
          if (tracer !== null) tracer.soonSerial(id);
          continue;
        }
        ran++;
        if (serials !== null) serials.push((tracer as Tracer).soonSerial(id));
        this.#invoke(entry, id & CHUNK_MASK, checkpoint);
      }
      for (let i = 0; i < length; i++) {
        const slot = batch[i] as number;
        const chunk = chunks[slot >>> CHUNK_BITS] as Array<Entry | undefined>;
        const entry = chunk[slot & CHUNK_MASK];
        if (entry === undefined) continue; // cancelled during this batch
        if (typeof entry === 'function' || !entry.persistent) chunk[slot & CHUNK_MASK] = undefined;
        ran++;
        if (serials !== null) serials.push((tracer as Tracer).serial(slot));
        this.#invoke(entry, slot, checkpoint);
      }
    } finally {
      time.leaveBatch();
      this.callbacksRun += ran;
    }
    if (serials !== null) (tracer as Tracer).iteration(time.nanos(), serials);
  }

  /**
   * One callback of a batch, then the microtask checkpoint. Whatever it
   * throws goes to the exception handler, reported with an inert handle at
   * `slot`.
   */
  #invoke(entry: Entry, slot: number, checkpoint: (() => void) | null): void {
    if (this.#debug) {
      this.#runTimed(entry, slot);
      // Rejections the callback left unhandled are reported by Node
      // during the checkpoint below: still this callback's.
    } else {
      try {
        if (typeof entry === 'function') entry();
        else {
          // An I/O watcher has no arguments: a plain call, not a spread.
          const fn = entry.fn;
          const args = entry.args;
          if (args.length === 0) fn();
          else fn(...args);
        }
      } catch (error) {
        this.#callbackFailed(error, entry, slot);
      }
    }
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
    if (this.#debug) this.#current = null;
  }

  #runTimed(entry: Entry, slot: number): void {
    const start = performance.now();
    this.#current = entry;
    try {
      if (typeof entry === 'function') entry();
      else {
        const fn = entry.fn;
        fn(...entry.args);
      }
    } catch (error) {
      this.#callbackFailed(error, entry, slot);
    }
    const took = performance.now() - start;
    if (took > this.#slowCallbackMs) {
      const fn = typeof entry === 'function' ? entry : entry.fn;
      const where = typeof entry === 'function' ? undefined : entry.stack;
      this.#reporter.warn(
        `wasmloop: executing callback ${callbackName(fn)} took ${took.toFixed(3)} ms` +
          (where === undefined ? '' : `; it was scheduled at:\n${where}`),
      );
    }
  }

  #callbackFailed(error: unknown, entry: Entry, slot: number): void {
    this.#report(`Exception in callback`, error, entry, makeHandle((this.#time as LoopTime).soon, slot, NO_GENERATION));
  }

  #unhandledRejection(reason: unknown): void {
    const entry = this.#current;
    if (entry !== null) this.#report('Unhandled promise rejection in callback', reason, entry, undefined);
  }

  #report(what: string, error: unknown, entry: Entry, handle: ReturnType<typeof makeHandle> | undefined): void {
    const fn = typeof entry === 'function' ? entry : entry.fn;
    const context: ExceptionContext = { message: `${what} ${callbackName(fn)}`, error };
    if (handle !== undefined) context.handle = handle;
    context.callback = fn;
    if (typeof entry !== 'function' && entry.stack !== undefined) context.scheduledAt = entry.stack;
    this.#reporter.exception(context);
  }

  /** The loop closed or crashed: drop every callback and the debug listener. */
  detach(): void {
    this.#chunks = [];
    this.#soonChunks = [];
    this.#soonSpare.length = 0;
    this.#soonHead = this.#soonTail;
    this.#soonBase = this.#soonTail - (this.#soonTail % CHUNK_SIZE);
    const listener = this.#rejectionListener;
    if (listener !== null) {
      this.#rejectionListener = null;
      globalThis.process?.off?.('unhandledRejection', listener);
    }
  }
}

const NO_ARGS: readonly unknown[] = [];

/**
 * The frames of this package's own files, which `scheduledAt` leaves out;
 * null where the module has no URL to resolve against (workerd).
 */
const OWN_FILES = ((): string | null => {
  try {
    return new URL('.', import.meta.url).href;
  } catch {
    return null;
  }
})();

/** Where a callback is being scheduled: the stack from the first frame outside wasmloop. */
function scheduledAt(): string {
  const frames = (new Error().stack ?? '').split('\n').slice(1);
  let first = 0;
  if (OWN_FILES !== null) while (first < frames.length && (frames[first] as string).includes(OWN_FILES)) first++;
  return frames.slice(first).join('\n');
}
