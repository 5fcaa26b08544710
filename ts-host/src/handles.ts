/**
 * Handles returned by `callSoon`, `callLater` and `callAt`.
 *
 * A handle is a small plain object made by an object literal, with its
 * methods as own properties (shared functions). That shape is deliberate:
 * V8 pretenures objects made at a literal site whose objects tend to survive
 * (callers that keep a million handles to cancel them later), which makes a
 * kept handle cost about a third of a class instance; a `new` expression
 * gets no such treatment. The loop itself keeps no reference to a handle,
 * only to the callback, so a handle the caller drops is garbage at once.
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

/** The generation of handle id `id` whose slot is `slot`: one division. @internal */
export function generationOf(id: number, slot: number): number {
  return (id - slot) / ID_GENERATION_UNIT;
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

interface HandleFields {
  _epoch: Epoch;
  _slot: number;
  _gen: number;
}

interface TimerFields extends HandleFields {
  _delay: number;
}

function cancel(this: HandleFields): void {
  const generation = this._gen;
  if (generation < 0) return;
  this._gen = ~generation;
  this._epoch.loop._cancel(this._slot, generation);
}

function cancelled(this: HandleFields): boolean {
  return this._gen < 0;
}

function when(this: TimerFields): number {
  return this._epoch.time + this._delay;
}

/** @internal */
export function makeHandle(epoch: Epoch, slot: number, generation: number): Handle {
  return { _epoch: epoch, _slot: slot, _gen: generation, cancel, cancelled } as Handle;
}

/** @internal */
export function makeTimerHandle(epoch: Epoch, slot: number, generation: number, delay: number): TimerHandle {
  return { _epoch: epoch, _slot: slot, _gen: generation, _delay: delay, cancel, cancelled, when } as TimerHandle;
}

/** `value instanceof Handle`: any handle the loop returned. */
export const Handle: { readonly [Symbol.hasInstance]: (value: unknown) => value is Handle } = {
  [Symbol.hasInstance]: (value: unknown): value is Handle =>
    typeof value === 'object' && value !== null && (value as Partial<Handle>).cancel === cancel,
};

/** `value instanceof TimerHandle`: a handle returned by `callLater` or `callAt`. */
export const TimerHandle: { readonly [Symbol.hasInstance]: (value: unknown) => value is TimerHandle } = {
  [Symbol.hasInstance]: (value: unknown): value is TimerHandle =>
    typeof value === 'object' && value !== null && (value as Partial<TimerHandle>).when === when,
};
