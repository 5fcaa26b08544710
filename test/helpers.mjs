// Shared by the test suites: a fresh loop per case, and small utilities.
import { fileURLToPath } from 'node:url';
import { createLoop } from '../ts-host/dist/index.js';

/** The completion backend's portable implementation (on `node:net`), as a `module:function` backend spec. */
export const NET_COMPLETION = `${fileURLToPath(new URL('../ts-host/dist/backends/completion.js', import.meta.url))}:createNetCompletionBackend`;

/** Every backend with a network: the I/O suites run against each. */
export const IO_BACKENDS = ['selector', 'completion', NET_COMPLETION, 'virtual'];

/** A backend's name in test titles. */
export const backendLabel = (backend) => (backend === NET_COMPLETION ? 'completion on node:net' : backend);

/** Runs `fn(loop)` on a fresh loop of `backend` until it settles; closes the loop. */
export async function onLoop(backend, fn) {
  const loop = await createLoop({ backend });
  try {
    return await loop.runUntilComplete(() => fn(loop));
  } finally {
    if (!loop.isRunning()) await loop.close();
  }
}

/** A uvu `before.each`/`after.each` pair giving every case `context.loop`, a fresh loop. */
export function freshLoop(suite, options = {}) {
  suite.before.each(async (context) => {
    context.loop = await createLoop(options);
  });
  suite.after.each(async (context) => {
    if (context.loop.isRunning()) {
      context.loop.stop();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await context.loop.close();
  });
}

/** Busy-waits `ms` milliseconds of wall time. */
export function spin(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* busy */
  }
}

/** Replaces console[method] while `fn` runs; returns what was logged. */
export async function capture(method, fn) {
  const original = console[method];
  const calls = [];
  console[method] = (...args) => calls.push(args);
  try {
    await fn();
  } finally {
    console[method] = original;
  }
  return calls;
}

/**
 * Runs `fn` and counts the host timers with a positive delay armed meanwhile
 * (the loop arms one whenever it waits for real time). Zero means the work
 * ran without waiting on the wall clock: virtual time, checked without
 * timing anything.
 */
export async function countHostWaits(fn) {
  const real = globalThis.setTimeout;
  let waits = 0;
  globalThis.setTimeout = function (callback, ms, ...args) {
    if (ms > 0) waits++;
    return real.call(this, callback, ms, ...args);
  };
  try {
    const value = await fn();
    return { value, waits };
  } finally {
    globalThis.setTimeout = real;
  }
}
