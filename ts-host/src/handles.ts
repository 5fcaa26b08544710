/**
 * Handles returned by `callSoon`, `callLater` and `callAt`.
 *
 * A handle is a small class instance (see the classes below for why not an
 * object literal). The loop itself keeps no reference to a handle, only to
 * the callback, so a handle the caller drops is garbage at once.
 *
 * A handle holds the slot and generation of its callback in the core's
 * handle table; a cancelled handle stores its generation bitwise-inverted
 * (negative). `instanceof Handle` and `instanceof TimerHandle` work.
 */

/** Bits of a handle id that hold the slot (wit/event-loop.wit: `id = generation * 2^26 + slot`). */
const ID_SLOT_BITS = 26;
const ID_SLOT_MASK = (1 << ID_SLOT_BITS) - 1;
const ID_GENERATION_UNIT = 2 ** ID_SLOT_BITS;

/** The slot of handle id `id`: one `&`. @internal */
export function slotOf(id: number): number {
  return id & ID_SLOT_MASK;
}

/**
 * The generation of handle id `id` whose slot is `slot`: one division. It is
 * below 2^27 (the core's limit), and `| 0` keeps it a small integer: V8
 * returns the division as a float when its dividend is 0 (generation 0, as
 * for every slot of a fresh loop, since 0 / x might be -0) and once ids pass
 * 2^31, and a handle that stored a float would hold its generation in a
 * heap number of its own. @internal
 */
export function generationOf(id: number, slot: number): number {
  return ((id - slot) / ID_GENERATION_UNIT) | 0;
}

/**
 * The id `slotOf` and `generationOf` split, put back together. A `callSoon`
 * handle keeps its id (a sequence number) split the same way, so that both
 * fields stay small integers. @internal
 */
export function idOf(slot: number, generation: number): number {
  return generation * ID_GENERATION_UNIT + slot;
}

/**
 * A generation no handle can have (the core's limit, 2^27): a handle made
 * with it is inert. @internal
 */
export const NO_GENERATION = 2 ** 27;

/**
 * What a handle needs from its loop: a loop for `cancel`, and the loop time
 * its delay counts from. All handles created at the same loop time share one
 * `Epoch`, so a timer handle carries no float field of its own (a float
 * field costs an extra heap allocation per handle in V8).
 * @internal
 */
export interface Epoch {
  /** What cancels: the loop's callback table. */
  readonly loop: { _cancel(slot: number, generation: number): void };
  /** Loop time (ms) the delays of handles in this epoch count from. */
  readonly time: number;
}

/** A scheduled callback (`callSoon`, and the base of timer handles). */
export interface Handle {
  /**
   * Cancels the callback if it has not run yet. Cancelling twice, after the
   * callback ran, or after the loop closed does nothing.
   */
  cancel(): void;
  /** True once `cancel()` has been called (as asyncio's `Handle.cancelled`). */
  cancelled(): boolean;
}

/** A callback scheduled with `callLater` or `callAt`. */
export interface TimerHandle extends Handle {
  /** The time the timer is scheduled for, in ms on the `loop.time()` scale. */
  when(): number;
}

/*
 * Both kinds are class instances, their methods on the prototype. Not
 * object literals: V8 pretenures the objects of a literal site whose
 * objects survive (allocation-site pretenuring, decided once per site from
 * the first scavenges that see it), and a program's timer handles share
 * one site. Once a workload that keeps a million handles to cancel them
 * later had the site pretenured, every handle a later workload dropped
 * was born in old space and left there for a full collection: 1M timers
 * fired with their handles dropped went from about 105 to about 190 ns
 * per timer, in the same process, after one kept-then-cancelled run. A
 * `new` expression is never pretenured, so what a handle costs no longer
 * depends on what the process did before (docs/design.md, "Where the time
 * goes"). The fields are `declare`d: emitted class fields would define
 * each one before the constructor assigns it. The timer handle repeats
 * `cancel` and `cancelled` rather than extending the other class: with a
 * derived constructor, 1M timers scheduled with their handles dropped and
 * run on virtual time took 99-103 ns each against 84-86 (both builds in one
 * process, alternating, 11 runs each).
 */

class LoopHandle implements Handle {
  declare _epoch: Epoch;
  declare _slot: number;
  declare _gen: number;

  constructor(epoch: Epoch, slot: number, generation: number) {
    this._epoch = epoch;
    this._slot = slot;
    this._gen = generation;
  }

  cancel(): void {
    const generation = this._gen;
    if (generation < 0) return;
    this._gen = ~generation;
    this._epoch.loop._cancel(this._slot, generation);
  }

  cancelled(): boolean {
    return this._gen < 0;
  }
}

class LoopTimerHandle implements TimerHandle {
  declare _epoch: Epoch;
  declare _slot: number;
  declare _gen: number;
  declare _delay: number;

  constructor(epoch: Epoch, slot: number, generation: number, delay: number) {
    this._epoch = epoch;
    this._slot = slot;
    this._gen = generation;
    this._delay = delay;
  }

  cancel(): void {
    const generation = this._gen;
    if (generation < 0) return;
    this._gen = ~generation;
    this._epoch.loop._cancel(this._slot, generation);
  }

  cancelled(): boolean {
    return this._gen < 0;
  }

  when(): number {
    return this._epoch.time + this._delay;
  }
}

/** @internal */
export function makeHandle(epoch: Epoch, slot: number, generation: number): Handle {
  return new LoopHandle(epoch, slot, generation);
}

/** @internal */
export function makeTimerHandle(epoch: Epoch, slot: number, generation: number, delay: number): TimerHandle {
  return new LoopTimerHandle(epoch, slot, generation, delay);
}

/**
 * One inert handle of each class, alive as long as this module: V8 frees a
 * class's object layouts (its maps) once no object has them, and throws
 * away the optimized code that made such objects. Without these, a program
 * whose handles all die between two loops (a test suite, section 3b of
 * bench/RESULTS.md) rebuilt the layouts and recompiled `callLater` and its
 * callers for every loop. Their fields hold what real handles hold (an
 * epoch object, small integers), so they share the real handles' layouts.
 */
const INERT_EPOCH: Epoch = { loop: { _cancel: () => undefined }, time: 0 };
/** @internal */
export const LAYOUT_ANCHORS: readonly object[] = [
  new LoopHandle(INERT_EPOCH, 0, NO_GENERATION),
  new LoopTimerHandle(INERT_EPOCH, 0, NO_GENERATION, 0),
];

/** `value instanceof Handle`: any handle the loop returned. */
export const Handle: { readonly [Symbol.hasInstance]: (value: unknown) => value is Handle } = {
  [Symbol.hasInstance]: (value: unknown): value is Handle =>
    value instanceof LoopHandle || value instanceof LoopTimerHandle,
};

/** `value instanceof TimerHandle`: a handle returned by `callLater` or `callAt`. */
export const TimerHandle: { readonly [Symbol.hasInstance]: (value: unknown) => value is TimerHandle } = {
  [Symbol.hasInstance]: (value: unknown): value is TimerHandle => value instanceof LoopTimerHandle,
};
