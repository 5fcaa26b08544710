/**
 * Promises on the loop's clock, built on `callLater` alone: `waitFor`
 * (asyncio's `wait_for`) and the timeout reason `timeoutSignal` shares with
 * it; and `runUntilComplete`'s bookkeeping (asyncio's
 * `run_until_complete`): run the loop until a promise settles.
 *
 * Nothing here touches the core or the driver directly, only the loop's
 * public methods and its resource list, so a timer or a run that ends
 * settles every promise made here: nothing is left pending.
 */
import { LoopClosedError, LoopStoppedError, describe } from './errors.js';
import type { TimerHandle } from './handles.js';

/** What these need of the loop. */
export interface WaitingLoop {
  callLater(delayMs: number, callback: () => void): TimerHandle;
  callSoon(callback: () => void): unknown;
  stop(): void;
  _track(resource: { close(): void }, open: boolean): void;
}

/** The reason a `timeoutSignal` or `waitFor` gives: what `AbortSignal.timeout` gives. */
export function timedOut(operation: string, ms: number): DOMException {
  return new DOMException(`${operation}: timed out after ${ms} ms of loop time`, 'TimeoutError');
}

/** `loop.waitFor`, its arguments checked. */
export function waitFor<T>(
  loop: WaitingLoop,
  work: PromiseLike<T> | ((signal: AbortSignal) => T | PromiseLike<T>),
  timeoutMs: number,
): Promise<Awaited<T>> {
  const isFunction = typeof work === 'function';
  const controller = new AbortController();
  return new Promise<Awaited<T>>((resolve, reject) => {
    let settled = false;
    /** Gives up: at the timeout, or when the loop closes first (no timeout can come then). */
    const giveUp = (reason: unknown): void => {
      if (settled) return;
      settled = true;
      loop._track(closing, false);
      controller.abort(reason);
      reject(reason);
    };
    const closing = { close: () => giveUp(new LoopClosedError('waitFor')) };
    const timer = loop.callLater(timeoutMs, () => giveUp(timedOut('waitFor', timeoutMs)));
    loop._track(closing, true);
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      loop._track(closing, false);
      timer.cancel();
      outcome();
    };
    let result: T | PromiseLike<T>;
    try {
      result = isFunction
        ? (work as (signal: AbortSignal) => T | PromiseLike<T>)(controller.signal)
        : (work as PromiseLike<T>);
    } catch (error) {
      settle(() => reject(error));
      return;
    }
    Promise.resolve(result).then(
      (value) => settle(() => resolve(value)),
      (error: unknown) => settle(() => reject(error)),
    );
  });
}

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** A check of `runUntilComplete`'s argument: a promise, a thenable or a function. */
export function checkAwaitable(operation: string, value: unknown): void {
  if (typeof value !== 'function' && !isThenable(value)) {
    throw new TypeError(
      `${operation}: promiseOrAsyncFn must be a promise, a thenable or a function, got ${describe(value)}`,
    );
  }
}

/**
 * `loop.runUntilComplete`: `run()` runs the loop until `stop()`; the
 * awaited work stops it when it settles. A function is called as the loop's
 * first callback.
 */
export async function runUntilComplete<T>(
  loop: WaitingLoop,
  run: () => Promise<void>,
  promiseOrAsyncFn: PromiseLike<T> | (() => T | PromiseLike<T>),
): Promise<Awaited<T>> {
  type Outcome = { ok: true; value: Awaited<T> } | { ok: false; error: unknown };
  const state: { outcome: Outcome | null; active: boolean } = { outcome: null, active: true };
  const settle = (outcome: Outcome) => {
    // A promise that settles after this run ended must not stop a later one.
    if (!state.active) return;
    state.outcome = outcome;
    loop.stop();
  };
  const follow = (thenable: PromiseLike<T> | T) => {
    Promise.resolve(thenable).then(
      (value) => settle({ ok: true, value }),
      (error: unknown) => settle({ ok: false, error }),
    );
  };
  if (typeof promiseOrAsyncFn === 'function') {
    loop.callSoon(() => {
      let result: T | PromiseLike<T>;
      try {
        result = (promiseOrAsyncFn as () => T | PromiseLike<T>)();
      } catch (error) {
        settle({ ok: false, error });
        return;
      }
      follow(result);
    });
  } else {
    follow(promiseOrAsyncFn);
  }
  try {
    await run();
  } finally {
    state.active = false;
  }
  const done = state.outcome;
  if (done === null) throw new LoopStoppedError();
  if (!done.ok) throw done.error;
  return done.value;
}
