/**
 * A backend that misbehaves at run time: the loop's answer, in one place.
 * The built-in backends never do; a custom one (`'module:function'`) may.
 *
 *     fault                                   what the loop does
 *     now() throws, or returns NaN, a         the reading is ignored (loop
 *       non-number, a negative or a value     time holds); the run fails
 *       past 2^64 ns                          with a BackendError
 *     now() goes back                         clamped (loop time never
 *                                             decreases); reported once
 *     takeReady/takeCompleted throw or        no tokens this time; the run
 *       return something else than a          fails with a BackendError
 *       Uint32Array
 *     hostDelay throws or returns a bad       the loop waits the wall time
 *       delay                                 instead; reported once
 *
 * Faults are noted where they happen, inside a core call (an import must
 * not throw through the core, which would leave an iteration half done),
 * and raised by the driver after the call returns (`take`). A run that
 * fails this way ends; the loop stays open, as after a replay divergence.
 * A fault noted outside any run is thrown by the next operation that reads
 * the clock (`loop.time()`, `callLater`).
 */
import { BackendError, describe } from './errors.js';

/** The latest clock reading the core can take: u64 nanoseconds. */
const MAX_CLOCK_NS = 2 ** 64;

/** Why `reading` cannot be a clock reading, or null if it can. */
export function clockReadingProblem(reading: unknown): string | null {
  // A good reading returns before any message is built. With the checks
  // and their messages interleaved, V8's optimizing compiler merged the
  // messages' two string conversions of `reading` into one ahead of both
  // branches, and every clock read (one per iteration) converted the
  // nanoseconds to a string: about 1,000 instructions per read.
  if (typeof reading === 'number' && reading >= 0 && reading < MAX_CLOCK_NS) return null;
  return badClockReading(reading);
}

function badClockReading(reading: unknown): string {
  if (typeof reading !== 'number' || reading !== reading) return `returned ${describe(reading)}`;
  return reading < 0 ? `returned a negative time, ${reading}` : `returned ${reading}, past 2^64 ns`;
}

/** The error for a backend `member` that did `problem`. */
export function backendFault(backend: string, member: string, problem: string, cause?: unknown): BackendError {
  const detail = cause === undefined ? '' : `: ${cause instanceof Error ? cause.message : String(cause)}`;
  const expected = member === 'now()' ? '; it must return a finite number of nanoseconds >= 0, never decreasing' : '';
  return new BackendError(
    `backend '${backend}': ${member} ${problem}${detail}${expected}`,
    cause === undefined ? undefined : { cause },
  );
}

export class BackendFaults {
  readonly #backend: string;
  /** Where absorbed faults go: the loop's exception handler. */
  readonly #report: (error: BackendError) => void;
  #pending: BackendError | null = null;
  readonly #reported = new Set<string>();

  constructor(backend: string, report: (error: BackendError) => void) {
    this.#backend = backend;
    this.#report = report;
  }

  /** `member` failed: the current run fails with it (the first fault wins until taken). */
  fail(member: string, problem: string, cause?: unknown): void {
    this.#pending ??= backendFault(this.#backend, member, problem, cause);
  }

  /** `member` misbehaved in a way the loop can absorb: reported once per member. */
  absorbed(member: string, problem: string, cause?: unknown): void {
    if (this.#reported.has(member)) return;
    this.#reported.add(member);
    this.#report(backendFault(this.#backend, member, problem, cause));
  }

  /** The fault noted since the last take, if any; it is raised once. */
  take(): BackendError | null {
    const pending = this.#pending;
    this.#pending = null;
    return pending;
  }
}
