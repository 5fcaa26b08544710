/**
 * The `wasmloop:core/clock` import (wit/clock.wit): the loop's monotonic
 * clock, in nanoseconds, from the backend's `now()`. The core reads it once
 * per iteration (phase 1), in `poll-timeout` and in `update-time`.
 *
 *     backend.now() --clockImport--> whole ns, never decreasing
 *                   --lowerClock---> BigInt for the core's u64
 *
 * Both steps are the host's, not jco's: the generated lowering would wrap
 * every reading in `BigInt.asUintN(64, BigInt(ns))`, two BigInts per read;
 * `lowerClock` makes one per new value and reuses it while the clock stands
 * still (a virtual clock between jumps, workerd's frozen clock, two reads in
 * one iteration).
 *
 * The driver can hand the clock a reading it took itself on the same
 * clock (`reuse`): the core's next read, in the same synchronous turn,
 * gets it instead of a read of its own. After every batch the driver reads
 * the wall clock (the loop's busy time) and then asks `poll-timeout`,
 * which reads the clock again whenever a timer is pending: a server's
 * every wakeup read it three times, now twice.
 */
import type { Backend } from '../backends/backend.js';
import { type BackendFaults, clockReadingProblem } from '../backend-faults.js';

export interface ClockImport {
  /** Whole nanoseconds, never decreasing, below 2^64. */
  now(): number;
  /**
   * The next `now()` returns `reading` (the backend's `now()` scale) rather
   * than read the backend's clock; a negative `reading` forgets one not
   * used. For a reading just taken on the same clock, within one
   * synchronous turn.
   */
  reuse(reading: number): void;
}

/** The core module's name for this interface. */
export const CLOCK_MODULE = 'wasmloop:core/clock@0.1.0';

/**
 * The clock import for one loop. Values are whole nanoseconds, never
 * decreasing even if the backend's clock steps back. A reading that is not
 * a time (or a `now()` that throws) is never passed on: the last good one
 * is, and `faults` learns why (backend-faults.ts).
 */
export function clockImport(backend: Backend, faults: BackendFaults): ClockImport {
  let last = 0;
  let reused = -1;
  return {
    now() {
      let reading: unknown = reused;
      if (reused >= 0) reused = -1;
      else {
        try {
          reading = backend.now();
        } catch (error) {
          faults.fail('now()', 'threw', error);
          return last;
        }
      }
      const problem = clockReadingProblem(reading);
      if (problem !== null) {
        faults.fail('now()', problem);
        return last;
      }
      const ns = Math.floor(reading as number);
      if (ns > last) last = ns;
      else if (ns < last) faults.absorbed('now()', `went back from ${last} to ${ns} ns (the loop's time holds)`);
      return last;
    },
    reuse(reading) {
      reused = reading;
    },
  };
}

/** `now` as the core module calls it: an i64, so a BigInt. */
export function lowerClock(now: () => number): () => bigint {
  let lastNs = -1;
  let last = 0n;
  return () => {
    const ns = now();
    if (ns !== lastNs) {
      lastNs = ns;
      last = BigInt(ns);
    }
    return last;
  };
}
