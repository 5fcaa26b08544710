// Waiting in the I/O suites: for an event itself, under a generous limit
// that fails naming what did not happen (never a timed assertion).

/** Generous: what is still waiting after this was lost or leaked. */
export const LIMIT_MS = 20_000;

/** `promise`, or a failure naming `what` if it has not settled within LIMIT_MS of wall time. */
export function within(promise, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${LIMIT_MS} ms`)), LIMIT_MS);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

/**
 * Waits through `loop` (a sleep per check) until `condition()` holds, or
 * fails naming `what` and what `detail()` adds.
 */
export async function until(loop, condition, what, detail = () => '') {
  const deadline = Date.now() + LIMIT_MS;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${LIMIT_MS} ms ${detail()}`);
    await loop.sleep(1);
  }
}

/** Waits until `server` has no connection left. */
export function connectionsClosed(loop, server) {
  return until(
    loop,
    () => server.connections === 0,
    'every connection closed',
    () => `(${server.connections} open)`,
  );
}

/** Waits until the open descriptors, `count()`, are back at `baseline` or below. */
export function descriptorsBack(loop, count, baseline) {
  return until(
    loop,
    () => count() <= baseline,
    'descriptors back to the baseline',
    () => `(${baseline} before, ${count()} now)`,
  );
}

/** How `promise` settled: { value } or { error }, never a rejection. */
export const outcome = (promise) =>
  promise.then(
    (value) => ({ value }),
    (error) => ({ error }),
  );
