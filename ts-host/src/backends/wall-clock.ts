/**
 * The built-in backends' clock: `performance.now()` in nanoseconds since one
 * origin per process (see below), and a way for the loop to tell that a
 * backend uses it (then a loop time converts to wall time without another
 * read).
 */

/**
 * Where the built-in backends' clocks count from: `performance.now()` when
 * wasmloop first needed a clock in this process, in whole milliseconds. One
 * origin for all loops, so their times compare.
 *
 * The origin keeps the clock's nanoseconds below 2^53 (104 days), where an
 * f64 holds every one exactly. Without it, a host whose `performance.now()`
 * is epoch time (workerd: about 1.8e12 ms) hands the core nanoseconds rounded
 * to 256, and `callAt(loop.time() + d)` would land apart from `callLater(d)`.
 */
let clockOriginMs: number | null = null;

/** Clocks made by performanceClock(). */
const performanceClocks = new WeakSet<() => number>();

/** The host's monotonic clock in nanoseconds since the shared origin. */
export function performanceClock(): () => number {
  const perf = globalThis.performance;
  if (perf === undefined || typeof perf.now !== 'function') {
    throw new Error('no monotonic clock: globalThis.performance.now is missing');
  }
  const origin = (clockOriginMs ??= Math.floor(perf.now()));
  const now = () => (perf.now() - origin) * 1e6;
  performanceClocks.add(now);
  return now;
}

/**
 * If `now` is a performanceClock(), where it counts from on the
 * `performance.now()` scale (ms): a loop time plus this is a
 * `performance.now()` reading, so the loop need not read the wall clock
 * again for its own accounting. Null for any other clock.
 */
export function performanceOriginOf(now: () => number): number | null {
  return performanceClocks.has(now) ? (clockOriginMs as number) : null;
}
