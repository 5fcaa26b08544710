/**
 * Handles returned by `callSoon`, `callLater` and `callAt`.
 *
 * A handle is small on purpose: the loop keeps no reference to it (only to
 * the callback), so a handle the caller drops is garbage at once. It holds
 * the slot and generation of its callback in the core's handle table; a
 * cancelled handle stores its generation bitwise-inverted (negative).
 */

/**
 * What a handle needs from its loop: a loop for `cancel`, and the loop time
 * its delay counts from. Loops share one `Epoch` among all handles created
 * at the same loop time, so a timer handle needs no number field of its own
 * (a float field would cost an extra heap allocation per handle).
 * @internal
 */
export interface Epoch {
  readonly loop: { _cancel(slot: number, generation: number): void };
  /** Loop time (ms) the delays of handles in this epoch count from. */
  readonly time: number;
}

/** A callback scheduled with `callSoon`. */
export class Handle {
  /** @internal */ _epoch: Epoch;
  /** @internal */ _slot: number;
  /** @internal */ _gen: number;

  /** @internal */
  constructor(epoch: Epoch, slot: number, generation: number) {
    this._epoch = epoch;
    this._slot = slot;
    this._gen = generation;
  }

  /**
   * Cancels the callback if it has not run yet. Cancelling twice, after the
   * callback ran, or after the loop closed does nothing.
   */
  cancel(): void {
    const generation = this._gen;
    if (generation < 0) return;
    this._gen = ~generation;
    this._epoch.loop._cancel(this._slot, generation);
  }

  /** True once `cancel()` has been called (as asyncio's `Handle.cancelled`). */
  cancelled(): boolean {
    return this._gen < 0;
  }
}

/** A callback scheduled with `callLater` or `callAt`. */
export class TimerHandle extends Handle {
  /** @internal */ _delay: number;

  /** @internal */
  constructor(epoch: Epoch, slot: number, generation: number, delay: number) {
    super(epoch, slot, generation);
    this._delay = delay;
  }

  /** The time the timer is scheduled for, in ms on the `loop.time()` scale. */
  when(): number {
    return this._epoch.time + this._delay;
  }
}
