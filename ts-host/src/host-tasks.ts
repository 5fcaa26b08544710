/**
 * The host's task queues, as the driver (driver.ts) uses them to run
 * iterations without blocking the host.
 *
 * - `yieldToHost(fn)`: run `fn` in a new host macrotask, after the host has
 *   had a turn for its own I/O and timers (Node: `setImmediate`).
 * - `armTimer(fn, delay)`: one host timer for the earliest deadline
 *   (`hostTimerDelay(ms)` rounds and clamps a wait to what it takes).
 * - `wallNow()`: the host's monotonic wall clock, `performance.now()` (ms).
 * - `microtaskDrain()`: a function that drains the microtask queue
 *   synchronously between two callbacks, as Node does between two of its
 *   own macrotasks (Node exposes this as `process._tickCallback`, the
 *   function its timers call; Bun as `bun:jsc`'s `drainMicrotasks`), or
 *   null where the host has none.
 */
import { INT32_MAX } from './limits.js';

type Scheduled = unknown;

interface HostGlobals {
  setImmediate?: (fn: () => void) => Scheduled;
  clearImmediate?: (id: Scheduled) => void;
  setTimeout: (fn: () => void, ms: number) => Scheduled;
  clearTimeout: (id: Scheduled) => void;
  process?: { _tickCallback?: () => void };
}

const host = globalThis as unknown as HostGlobals;

/**
 * The host's `performance`, looked up once. Node defines
 * `globalThis.performance` as a lazy getter, so a bare `performance.now()`
 * calls that getter on every read; the driver reads the wall clock once per
 * iteration. The object is kept, not its `now`: a program that replaces
 * `performance.now` (a fake-timer library) is seen as before.
 */
const hostPerformance = (globalThis as { performance?: { now(): number } }).performance;

/** The host's monotonic wall clock in ms (`performance.now()`). */
export function wallNow(): number {
  return (hostPerformance as { now(): number }).now();
}

/** The longest delay a host timer accepts (2^31 - 1 ms); longer waits re-arm. */
export const MAX_TIMER_MS = INT32_MAX;

/** Runs `fn` in a later host macrotask. */
export const yieldToHost: (fn: () => void) => Scheduled =
  typeof host.setImmediate === 'function' ? host.setImmediate.bind(globalThis) : (fn) => host.setTimeout(fn, 0);

export const cancelYield: (id: Scheduled) => void =
  typeof host.clearImmediate === 'function' ? host.clearImmediate.bind(globalThis) : host.clearTimeout.bind(globalThis);

/** The delay a host timer is armed with for a wait of `ms`: rounded up to whole ms, clamped to the host's maximum. */
export function hostTimerDelay(ms: number): number {
  return Math.min(Math.ceil(ms), MAX_TIMER_MS);
}

/** Arms a host timer for `delay`, a `hostTimerDelay`. */
export function armTimer(fn: () => void, delay: number): Scheduled {
  return host.setTimeout(fn, delay);
}

export const disarmTimer: (id: Scheduled) => void = host.clearTimeout.bind(globalThis);

/**
 * Bun's drain: `drainMicrotasks` of its `bun:jsc` module (JavaScriptCore's
 * checkpoint, a documented export). Named through a variable so that
 * bundlers and other hosts' type checks leave the specifier alone.
 */
const BUN_JSC = 'bun:jsc';
let bunDrain: (() => void) | null = null;
if (typeof (globalThis as { Bun?: unknown }).Bun === 'object') {
  try {
    const jsc = (await import(BUN_JSC)) as { drainMicrotasks?: () => void };
    if (typeof jsc.drainMicrotasks === 'function') bunDrain = jsc.drainMicrotasks;
  } catch {
    // No bun:jsc: one callback per macrotask, as on hosts without a drain.
  }
}

/** The candidates for a synchronous microtask drain, by host. */
function drainCandidates(): Array<() => void> {
  const out: Array<() => void> = [];
  // Bun first: its process._tickCallback exists but does not drain.
  if (bunDrain !== null) out.push(bunDrain);
  // Node: the function its own timers call between two timers.
  if (typeof host.process?._tickCallback === 'function') out.push(host.process._tickCallback);
  // Deno: its core's drain.
  const deno = (globalThis as { Deno?: Record<symbol | string, unknown> & { internal?: symbol } }).Deno;
  const core =
    deno?.internal === undefined ? undefined : (deno[deno.internal] as { core?: { runMicrotasks?: () => void } })?.core;
  if (typeof core?.runMicrotasks === 'function') out.push(core.runMicrotasks.bind(core));
  return out;
}

let drain: (() => void) | null | undefined;

/**
 * A function that drains the microtask queue synchronously, or `null` where
 * the host has none (browsers, workerd). Found by trying each candidate once: call it from a host macrotask
 * (the driver does), never from a microtask, where no drain can work.
 */
export function microtaskDrain(): (() => void) | null {
  if (drain !== undefined) return drain;
  drain = null;
  for (const candidate of drainCandidates()) {
    let ran = false;
    queueMicrotask(() => {
      ran = true;
    });
    try {
      candidate();
    } catch {
      continue;
    }
    if (ran) {
      drain = candidate;
      break;
    }
  }
  return drain;
}

/**
 * Runs `fn` in the next host macrotask as fast as the host allows, for hosts
 * without a synchronous drain: the loop then runs each callback in a
 * macrotask of its own, so promise continuations still run in between.
 */
export const nextMacrotask: (fn: () => void) => void = (() => {
  if (typeof host.setImmediate === 'function') return (fn: () => void) => void host.setImmediate?.(fn);
  if (typeof MessageChannel === 'function') {
    const queue: Array<() => void> = [];
    const channel = new MessageChannel();
    channel.port1.onmessage = () => (queue.shift() as () => void)();
    return (fn: () => void) => {
      queue.push(fn);
      channel.port2.postMessage(null);
    };
  }
  return (fn: () => void) => void host.setTimeout(fn, 0);
})();
