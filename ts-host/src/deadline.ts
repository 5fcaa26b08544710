/**
 * `loop.deadline(ms, callback)`: a timer that activity pushes back. It owns
 * the per-connection timeouts (idle, read, the HTTP server's), where every
 * read or write moves the time the callback runs, thousands of times per
 * connection, and the callback almost never runs.
 *
 * Units: milliseconds of loop time (the `loop.time()` scale). `ms` is the
 * deadline's period: `refresh()` makes it due `ms` after the loop time of
 * the iteration that refreshed it.
 *
 * Why not `callLater` and `cancel` on every push: that is two core calls
 * and a handle object per read. Why not Node's `timeout.refresh()`: it
 * unlinks the timer from its list, appends it again and reads libuv's
 * clock, per push. Here a push is one field write: the due time, computed
 * from the clock the iteration already read (loop-time.ts; outside an
 * iteration, once per synchronous turn). One core timer stands behind the
 * deadline. When it fires and the deadline has moved meanwhile, it re-arms
 * for the time left instead of running the callback, so a deadline that is
 * refreshed all the time costs one core timer per `ms` of loop time, not
 * one per push.
 *
 * Invariants:
 * - Armed exactly while a core timer is pending for it (`#timer` >= 0),
 *   and that timer is due at `#timerAt` <= `#due`: the callback can never
 *   run late because of a timer armed too far out, nor early, because a
 *   timer that finds `#due` ahead re-arms instead of running it.
 * - `#due` moves forward on `refresh()`; a `refresh(ms)` with a shorter
 *   period can move it back, and then re-arms the core timer (the only
 *   push that costs a core call besides arming a disarmed deadline).
 * - The callback runs at most once per arming, inside the core timer's
 *   callback, so it is ordered, traced and reported like any loop callback.
 *
 * Resolution: the due time counts from the loop time of the refreshing
 * iteration, which began before the activity that refreshed it; a
 * connection can thus be idle for `ms` less the time that iteration had
 * already run (a callback batch: well under a millisecond on a healthy
 * loop). The core's timer queue is exact to the nanosecond; the callback
 * runs in the first iteration whose time is at or past the due time.
 */
import { describe } from './errors.js';

/** Less than a nanosecond of loop time: float noise, not time left. */
const NOISE_MS = 1e-7;

/** What a deadline needs from its loop: its clock and its core timers. @internal */
export interface DeadlineHost {
  /** The loop time (ms) a refresh counts from; LoopClosedError once the loop is closed. */
  now(operation: string): number;
  /** A core timer running `fire` after `delayMs` of loop time; returns its handle id. */
  arm(delayMs: number, fire: () => void): number;
  /** Cancels the core timer `id` (nothing once the loop is closed). */
  disarm(id: number): void;
}

/** `ms`, checked: a number of milliseconds >= 0 (`Infinity`: never due). */
export function checkDeadlineMs(operation: string, ms: unknown): number {
  if (typeof ms !== 'number' || ms !== ms) {
    throw new TypeError(`${operation}: ms must be a number of milliseconds, got ${describe(ms)}`);
  }
  if (ms < 0) throw new RangeError(`${operation}: ms must be >= 0, got ${describe(ms)}`);
  return ms;
}

/**
 * A deadline (see the module comment). Made armed by `loop.deadline(ms,
 * callback, ...args)`: due `ms` from now.
 */
export class Deadline {
  readonly #host: DeadlineHost;
  readonly #callback: (...args: any[]) => unknown;
  readonly #args: readonly unknown[];
  #ms: number;
  /** The loop time the callback is due at; Infinity while disarmed. */
  #due = Infinity;
  /** The pending core timer's handle id; -1 when there is none. */
  #timer = -1;
  /** The loop time the pending core timer fires at. */
  #timerAt = Infinity;

  /** @internal Use `loop.deadline()`. */
  constructor(host: DeadlineHost, ms: number, callback: (...args: any[]) => unknown, args: readonly unknown[]) {
    this.#host = host;
    this.#ms = ms;
    this.#callback = callback;
    this.#args = args;
    this.refresh();
  }

  /** The period: how long after a refresh the callback is due (ms of loop time). */
  get ms(): number {
    return this.#ms;
  }

  /** True while the callback is due to run: until it ran, or `cancel()`. */
  get armed(): boolean {
    return this.#timer >= 0;
  }

  /** The loop time the callback is due at; Infinity when disarmed (or `ms` is Infinity). */
  get due(): number {
    return this.#timer >= 0 ? this.#due : Infinity;
  }

  /**
   * Makes the deadline due `ms` from the loop time of this iteration (with
   * `ms`, that becomes the period from now on). Armed or not: a deadline
   * that ran or was cancelled is armed again, as Node's `timeout.refresh()`
   * restarts a timer that fired. While armed, and unless the period got
   * shorter, this stores one number and calls nothing.
   */
  refresh(ms?: number): void {
    if (ms !== undefined) this.#ms = checkDeadlineMs('deadline.refresh', ms);
    const now = this.#host.now('deadline.refresh');
    const due = now + this.#ms;
    this.#due = due;
    if (this.#timer >= 0) {
      if (due >= this.#timerAt && due !== Infinity) return;
      // A shorter period (the pending timer would fire too late), or none.
      this.#host.disarm(this.#timer);
      this.#timer = -1;
    }
    if (due !== Infinity) this.#arm(now, this.#ms);
  }

  /** Disarms: the callback does not run until the next `refresh()`. Idempotent. */
  cancel(): void {
    if (this.#timer < 0) return;
    this.#host.disarm(this.#timer);
    this.#timer = -1;
    this.#timerAt = Infinity;
    this.#due = Infinity;
  }

  #arm(now: number, delayMs: number): void {
    this.#timer = this.#host.arm(delayMs, this.#fire);
    this.#timerAt = now + delayMs;
  }

  /** The core timer ran: re-arm for what is left if the deadline moved, else run the callback. */
  readonly #fire = (): void => {
    this.#timer = -1;
    this.#timerAt = Infinity;
    const now = this.#host.now('deadline');
    const left = this.#due - now;
    if (left > NOISE_MS) {
      this.#arm(now, left);
      return;
    }
    this.#due = Infinity;
    const args = this.#args;
    if (args.length === 0) this.#callback();
    else this.#callback(...args);
  };
}
