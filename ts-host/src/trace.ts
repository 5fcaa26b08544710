/**
 * Record and replay: the order in which a loop ran its callbacks.
 *
 * A recording loop (`createLoop({ record: true })`) numbers every callback
 * it is given, in scheduling order (its *serial*), and notes for each
 * iteration that ran something the loop time and the serials it ran, in
 * order. I/O callbacks are in the same list: the readiness and completion
 * events a backend reported are the callbacks they ran.
 *
 * A replaying loop (`createLoop({ backend: 'virtual', replay: trace })`)
 * runs the same program in virtual time: before each iteration its clock is
 * set to the recorded time, and after it the serials it ran are compared
 * with the recording. The first difference stops the run with a
 * ReplayDivergenceError that says where (iteration, position) and what
 * (which callback was expected, which ran).
 */
import { WasmloopError } from './errors.js';
import { callbackName } from './reporting.js';

export const TRACE_FORMAT = 'wasmloop-trace';
export const TRACE_VERSION = 1;

/** How a callback was scheduled. */
export type CallbackKind = 'callSoon' | 'callLater' | 'callAt' | 'watch' | 'expect';

export interface Trace {
  format: typeof TRACE_FORMAT;
  version: typeof TRACE_VERSION;
  /** The backend the trace was recorded on. */
  backend: string;
  /** Loop time (ns) when the loop was created. */
  start: number;
  /** Loop time (ns) of each clock read made outside an iteration, in order. */
  reads: number[];
  /** By serial: how the callback was scheduled and its function's name. */
  callbacks: Array<[CallbackKind, string]>;
  /** Each iteration that ran callbacks: loop time (ns) and the serials, in order. */
  iterations: Array<[number, number[]]>;
}

/** A replay did not match its recording. */
export class ReplayDivergenceError extends WasmloopError {
  readonly iteration: number;
  readonly position: number;
  constructor(message: string, iteration: number, position: number) {
    super(message);
    this.iteration = iteration;
    this.position = position;
  }
}

/** Why `value` is not a trace, or null if it is one. */
export function traceProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return 'not an object';
  const t = value as Record<string, unknown>;
  if (t.format !== TRACE_FORMAT) return `format is not '${TRACE_FORMAT}'`;
  if (t.version !== TRACE_VERSION) return `version ${String(t.version)} is not ${TRACE_VERSION}`;
  if (typeof t.backend !== 'string') return 'backend is not a string';
  if (typeof t.start !== 'number' || !(t.start >= 0)) return 'start is not a time';
  if (!Array.isArray(t.reads) || !t.reads.every((r: unknown) => typeof r === 'number' && r >= 0))
    return 'reads is not a list of times';
  if (!Array.isArray(t.callbacks)) return 'callbacks is not an array';
  if (!Array.isArray(t.iterations)) return 'iterations is not an array';
  for (let i = 0; i < t.callbacks.length; i++) {
    const c = t.callbacks[i];
    if (!Array.isArray(c) || typeof c[0] !== 'string' || typeof c[1] !== 'string')
      return `callbacks[${i}] is not [kind, name]`;
  }
  let last = 0;
  const count = t.callbacks.length;
  for (let i = 0; i < t.iterations.length; i++) {
    const it = t.iterations[i];
    if (!Array.isArray(it) || typeof it[0] !== 'number' || !Array.isArray(it[1]))
      return `iterations[${i}] is not [time, serials]`;
    if (!(it[0] >= last)) return `iterations[${i}] goes back in time`;
    last = it[0];
    if (!it[1].every((s: unknown) => Number.isInteger(s) && (s as number) >= 0 && (s as number) < count)) {
      return `iterations[${i}] names a callback that is not in callbacks`;
    }
  }
  return null;
}

/** The recorder or the checker a tracing loop uses. */
export class Tracer {
  readonly #trace: Trace;
  readonly #expected: Trace | null;
  /** Serial by slot, for the callbacks currently in the loop's table. */
  #serials = new Float64Array(4096);
  /** Slot by serial, for I/O watchers (their tokens). */
  readonly #watchers = new Map<number, number>();
  /** Serial by `callSoon` handle id, for the callbacks queued and not yet run. */
  readonly #soonSerials = new Map<number, number>();
  #replayIndex = 0;

  #readIndex = 0;

  constructor(backend: string, expected: Trace | null) {
    this.#trace = {
      format: TRACE_FORMAT,
      version: TRACE_VERSION,
      backend,
      start: 0,
      reads: [],
      callbacks: [],
      iterations: [],
    };
    this.#expected = expected;
  }

  /** Replay: the time the replayed loop starts at (the recording's start). */
  get startTime(): number {
    return this.#expected?.start ?? 0;
  }

  /** The loop was created at `now` (ns). */
  started(now: number): void {
    this.#trace.start = now;
  }

  /** Replay: the value the next clock read outside an iteration must return, or null past the end. */
  nextRead(): number | null {
    return this.#expected?.reads[this.#readIndex] ?? null;
  }

  /** The loop read its clock outside an iteration: `now` (ns). */
  read(now: number): void {
    this.#trace.reads.push(now);
    this.#readIndex++;
  }

  get replaying(): boolean {
    return this.#expected !== null;
  }

  /** A callback was scheduled in `slot`. */
  scheduled(slot: number, kind: CallbackKind, fn: (...args: any[]) => unknown): void {
    if (slot >= this.#serials.length) {
      const grown = new Float64Array(Math.max(slot + 1, this.#serials.length * 2));
      grown.set(this.#serials);
      this.#serials = grown;
    }
    const serial = this.#trace.callbacks.length;
    this.#serials[slot] = serial;
    if (kind === 'watch') this.#watchers.set(serial, slot);
    this.#trace.callbacks.push([kind, callbackName(fn)]);
  }

  /** A `callSoon` callback was queued with handle id `id`. */
  scheduledSoon(id: number, fn: (...args: any[]) => unknown): void {
    this.#soonSerials.set(id, this.#trace.callbacks.length);
    this.#trace.callbacks.push(['callSoon', callbackName(fn)]);
  }

  /** The serial of `callSoon` handle `id`, which runs now (forgotten after). */
  soonSerial(id: number): number {
    const serial = this.#soonSerials.get(id) as number;
    this.#soonSerials.delete(id);
    return serial;
  }

  /** A watcher was released. */
  released(slot: number): void {
    this.#watchers.delete(this.#serials[slot] as number);
  }

  /**
   * Replay: the readiness tokens the next recorded iteration ran, as the
   * current slots of those watchers, in the recorded order.
   */
  recordedReady(): Uint32Array {
    const next = this.#expected?.iterations[this.#replayIndex];
    if (next === undefined) return new Uint32Array(0);
    const tokens: number[] = [];
    for (const serial of next[1]) {
      const slot = this.#watchers.get(serial);
      if (slot !== undefined) tokens.push(slot);
    }
    return Uint32Array.from(tokens);
  }

  serial(slot: number): number {
    return this.#serials[slot] as number;
  }

  /** The time the next replayed iteration must run at, or null past the end. */
  nextTime(): number | null {
    const next = this.#expected?.iterations[this.#replayIndex];
    return next === undefined ? null : next[0];
  }

  /** An iteration at loop time `now` (ns) ran `ran` (serials). */
  iteration(now: number, ran: number[]): void {
    if (ran.length === 0) return;
    const index = this.#trace.iterations.length;
    this.#trace.iterations.push([now, ran]);
    const expected = this.#expected;
    if (expected === null) return;
    this.#replayIndex++;
    const want = expected.iterations[index];
    const describe = (t: Trace, serial: number | undefined) => {
      if (serial === undefined) return 'nothing';
      const c = t.callbacks[serial];
      return c === undefined ? `callback #${serial}` : `callback #${serial} (${c[0]} ${c[1]})`;
    };
    if (want === undefined) {
      throw new ReplayDivergenceError(
        `replay diverged at iteration ${index}: the recording ends there, but the program ran ${describe(this.#trace, ran[0])}`,
        index,
        0,
      );
    }
    if (want[0] !== now) {
      throw new ReplayDivergenceError(
        `replay diverged at iteration ${index}: recorded at loop time ${want[0] / 1e6} ms, replayed at ${now / 1e6} ms`,
        index,
        0,
      );
    }
    const n = Math.max(want[1].length, ran.length);
    for (let p = 0; p < n; p++) {
      const serial = ran[p];
      if (want[1][p] === serial && serial !== undefined) {
        const a = expected.callbacks[serial];
        const b = this.#trace.callbacks[serial];
        if (a !== undefined && b !== undefined && (a[0] !== b[0] || a[1] !== b[1])) {
          throw new ReplayDivergenceError(
            `replay diverged at iteration ${index}, position ${p}: callback #${serial} was ${a[0]} ${a[1]} ` +
              `in the recording but is ${b[0]} ${b[1]} now`,
            index,
            p,
          );
        }
        continue;
      }
      if (want[1][p] !== serial) {
        throw new ReplayDivergenceError(
          `replay diverged at iteration ${index}, position ${p} (loop time ${now / 1e6} ms): ` +
            `expected ${describe(expected, want[1][p])}, ran ${describe(this.#trace, ran[p])}`,
          index,
          p,
        );
      }
    }
  }

  /** The replay cannot go on: nothing runs at a time the recording ran something. */
  stalled(now: number): ReplayDivergenceError | null {
    const expected = this.#expected;
    const want = expected?.iterations[this.#replayIndex];
    if (expected === null || want === undefined) return null;
    const c = expected.callbacks[want[1][0] as number];
    return new ReplayDivergenceError(
      `replay diverged at iteration ${this.#replayIndex}: the recording ran callback #${want[1][0]} ` +
        `(${c?.[0]} ${c?.[1]}) at loop time ${want[0] / 1e6} ms, but at ${now / 1e6} ms nothing is due`,
      this.#replayIndex,
      0,
    );
  }

  trace(): Trace {
    return structuredClone(this.#trace);
  }
}
