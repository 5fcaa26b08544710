/**
 * How a JavaScript host drives the loop: host primitives the loop needs to
 * run iterations without blocking the host.
 *
 * - `yieldToHost(fn)`: run `fn` in a new host macrotask, after the host has
 *   had a turn for its own I/O and timers (Node: `setImmediate`).
 * - `armTimer(fn, ms)`: one host timer for the earliest deadline.
 * - `runMicrotasks()`: drain the microtask queue synchronously between two
 *   callbacks, as Node does between two of its own macrotasks (Node exposes
 *   this as `process._tickCallback`, the function its timers call).
 */

type Scheduled = unknown;

interface HostGlobals {
  setImmediate?: (fn: () => void) => Scheduled;
  clearImmediate?: (id: Scheduled) => void;
  setTimeout: (fn: () => void, ms: number) => Scheduled;
  clearTimeout: (id: Scheduled) => void;
  process?: { _tickCallback?: () => void };
}

const host = globalThis as unknown as HostGlobals;

/** The longest delay a host timer accepts (2^31 - 1 ms); longer waits re-arm. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Runs `fn` in a later host macrotask. */
export const yieldToHost: (fn: () => void) => Scheduled =
  typeof host.setImmediate === 'function'
    ? host.setImmediate.bind(globalThis)
    : (fn) => host.setTimeout(fn, 0);

export const cancelYield: (id: Scheduled) => void =
  typeof host.clearImmediate === 'function' ? host.clearImmediate.bind(globalThis) : host.clearTimeout.bind(globalThis);

/** Arms a host timer for `ms` (rounded up to whole ms, clamped to the host's maximum). */
export function armTimer(fn: () => void, ms: number): Scheduled {
  return host.setTimeout(fn, Math.min(Math.ceil(ms), MAX_TIMER_MS));
}

export const disarmTimer: (id: Scheduled) => void = host.clearTimeout.bind(globalThis);

/**
 * Drains the microtask queue now, or `null` where the host has no way to do
 * that synchronously.
 */
export const runMicrotasks: (() => void) | null =
  typeof host.process?._tickCallback === 'function' ? host.process._tickCallback : null;
