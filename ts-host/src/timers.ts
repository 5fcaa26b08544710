/**
 * `loop.timers`: Node's timer functions bound to a loop, with Node's
 * argument handling, so code written for `setTimeout` and friends runs on
 * any backend, virtual time included.
 *
 * Argument handling follows Node (lib/internal/timers.js): the delay is
 * coerced with `* 1`; anything not in [1, 2^31 - 1] (NaN, negative, 0,
 * too large) becomes 1 ms, too large with a `TimeoutOverflowWarning`; extra
 * arguments are passed to the callback; a non-function callback is a
 * TypeError with code `ERR_INVALID_ARG_TYPE`; `clear*` accept a timer
 * object, its numeric id (what `+timeout` gives), `null` or `undefined`.
 *
 * One deliberate difference: on a loop, `setTimeout(f, 0)` and
 * `setImmediate(g)` scheduled in the same turn always run `g` first (an
 * immediate runs in the next iteration; a 1 ms timer when 1 ms of loop time
 * has passed). Node's order between the two depends on how long its process
 * took to start.
 */
import type { Handle, TimerHandle } from './handles.js';
import { INT32_MAX } from './limits.js';

/** The longest delay Node accepts (2^31 - 1 ms); longer ones become 1 ms. */
export const TIMEOUT_MAX = INT32_MAX;

type Callback = (...args: any[]) => unknown;

/** What the timers need from their loop. */
export interface TimersLoop {
  callLater(delayMs: number, callback: Callback, ...args: unknown[]): TimerHandle;
  callSoon(callback: Callback, ...args: unknown[]): Handle;
}

let nextId = 1;

/** A timer, as Node's `Timeout`. */
export class Timeout {
  readonly #loop: TimersLoop;
  readonly #callback: Callback;
  readonly #args: unknown[];
  readonly #delay: number;
  readonly #repeat: boolean;
  readonly #registry: Map<number, Timeout>;
  #handle: TimerHandle | null = null;
  #ref = true;
  readonly id = nextId++;

  /** @internal */
  constructor(
    loop: TimersLoop,
    registry: Map<number, Timeout>,
    callback: Callback,
    delay: number,
    args: unknown[],
    repeat: boolean,
  ) {
    this.#loop = loop;
    this.#registry = registry;
    this.#callback = callback;
    this.#delay = delay;
    this.#args = args;
    this.#repeat = repeat;
    registry.set(this.id, this);
    this.#arm();
  }

  #arm(): void {
    this.#handle = this.#loop.callLater(this.#delay, this.#fire);
  }

  readonly #fire = (): void => {
    if (this.#repeat) this.#arm();
    else {
      this.#handle = null;
      this.#registry.delete(this.id);
    }
    this.#callback(...this.#args);
  };

  /** @internal Clears the timer. */
  _clear(): void {
    this.#handle?.cancel();
    this.#handle = null;
    this.#registry.delete(this.id);
  }

  /** Restarts the timer's delay from now (Node's `timeout.refresh()`). */
  refresh(): this {
    if (this.#handle !== null) {
      this.#handle.cancel();
      this.#arm();
    }
    return this;
  }

  /**
   * Node's ref/unref are accepted and reported by `hasRef()`; a loop keeps
   * its host alive while it has any pending timer, unref'd or not.
   */
  ref(): this {
    this.#ref = true;
    return this;
  }

  unref(): this {
    this.#ref = false;
    return this;
  }

  hasRef(): boolean {
    return this.#ref;
  }

  close(): this {
    this._clear();
    return this;
  }

  [Symbol.toPrimitive](): number {
    return this.id;
  }
}

/** An immediate, as Node's `Immediate`. */
export class Immediate {
  readonly #handle: Handle;
  #ref = true;

  /** @internal */
  constructor(handle: Handle) {
    this.#handle = handle;
  }

  /** @internal */
  _clear(): void {
    this.#handle.cancel();
  }

  ref(): this {
    this.#ref = true;
    return this;
  }

  unref(): this {
    this.#ref = false;
    return this;
  }

  hasRef(): boolean {
    return this.#ref;
  }
}

export interface LoopTimers {
  setTimeout<A extends unknown[]>(callback: (...args: A) => unknown, delay?: number, ...args: A): Timeout;
  clearTimeout(timeout: Timeout | number | string | null | undefined): void;
  setInterval<A extends unknown[]>(callback: (...args: A) => unknown, delay?: number, ...args: A): Timeout;
  clearInterval(timeout: Timeout | number | string | null | undefined): void;
  setImmediate<A extends unknown[]>(callback: (...args: A) => unknown, ...args: A): Immediate;
  clearImmediate(immediate: Immediate | null | undefined): void;
}

function invalidCallback(value: unknown): TypeError {
  const shown =
    value === null
      ? 'null'
      : typeof value === 'object'
        ? 'an instance of Object'
        : `type ${typeof value} (${String(value)})`;
  const error = new TypeError(`The "callback" argument must be of type function. Received ${shown}`);
  (error as TypeError & { code: string }).code = 'ERR_INVALID_ARG_TYPE';
  return error;
}

/** Node's delay coercion. */
function coerceDelay(delay: unknown): number {
  let after = (delay as number) * 1;
  if (!(after >= 1 && after <= TIMEOUT_MAX)) {
    if (after > TIMEOUT_MAX && typeof process !== 'undefined' && typeof process.emitWarning === 'function') {
      process.emitWarning(
        `${after} does not fit into a 32-bit signed integer.\nTimeout duration was set to 1.`,
        'TimeoutOverflowWarning',
      );
    }
    after = 1;
  }
  return after;
}

export function createTimers(loop: TimersLoop): LoopTimers {
  const registry = new Map<number, Timeout>();
  const clear = (timeout: Timeout | number | string | null | undefined) => {
    if (timeout instanceof Timeout) {
      timeout._clear();
      return;
    }
    if (typeof timeout === 'number' || typeof timeout === 'string') registry.get(Number(timeout))?._clear();
  };
  return {
    setTimeout(callback, delay, ...args) {
      if (typeof callback !== 'function') throw invalidCallback(callback);
      return new Timeout(loop, registry, callback, coerceDelay(delay), args, false);
    },
    clearTimeout: clear,
    setInterval(callback, delay, ...args) {
      if (typeof callback !== 'function') throw invalidCallback(callback);
      return new Timeout(loop, registry, callback, coerceDelay(delay), args, true);
    },
    clearInterval: clear,
    setImmediate(callback, ...args) {
      if (typeof callback !== 'function') throw invalidCallback(callback);
      return new Immediate(loop.callSoon(callback, ...args));
    },
    clearImmediate(immediate) {
      if (immediate instanceof Immediate) immediate._clear();
    },
  };
}
