/**
 * The `wasmloop:core/event-loop` export (wit/event-loop.wit) as the host
 * calls it: jco's generated resource for most methods, and by hand the
 * ones the driver calls every iteration and every timer calls.
 *
 * - `run-once` returns a `batch` record (its `call-soon` count, then its
 *   slots as a `list<u32>`; `jump-and-run-once` a `jumped` record: the
 *   loop's time in ns, then the batch); jco lifts a list by slicing linear
 *   memory into a fresh ArrayBuffer, a malloc and a free per iteration.
 *   These call the same core exports and copy the slots into one buffer
 *   reused from iteration to iteration.
 * - `call-soon`, `cancel-soon`, `call-later`, `call-at`, `cancel`, and `time` and
 *   `poll-timeout` (once per iteration each), straight to the core
 *   export. The generated wrapper checks, on every call, that the
 *   resource is still in jco's handle table; the host already knows the
 *   loop is open (LiveCore), and a schedule and a cancel cost 18 ns more
 *   through the wrappers (75 against 57 ns per timer, 1M timers kept then
 *   cancelled). Their arguments are lowered as the wrappers lower them:
 *   an f64 as is, a u32 with `>>> 0`.
 *
 * Handle ids cross as an f64 holding `generation * 2^26 + slot` (see
 * handles.ts for the split), or a `call-soon`'s sequence number.
 */
import type { EventLoop as CoreLoopClass } from '../generated/interfaces/wasmloop-core-event-loop.js';

/** The core's `event-loop` resource, as the generated bindings expose it. */
export type CoreLoop = CoreLoopClass;

/** One instance of the component: its loop resource, its memory and the hand-lifted methods. */
export interface CoreInstance {
  readonly loop: CoreLoop;
  /** The instance's linear memory (for measurements). */
  readonly memory: WebAssembly.Memory;
  /**
   * `loop.runOnce()`: the batch's slots copied into `batch()`, its
   * `call-soon` count kept for `soon()`; returns how many slots.
   */
  readonly runOnce: () => number;
  /**
   * `loop.jumpAndRunOnce()`, its batch lifted the same way into the same
   * buffer; returns how many slots (the time: `jumpedNs()`).
   */
  readonly jumpAndRunOnce: () => number;
  /** The loop's time (ns) the last `jumpAndRunOnce` returned. */
  readonly jumpedNs: () => number;
  /** How many `call-soon` callbacks the last batch takes, before its slots. */
  readonly soon: () => number;
  /** The slots of the last `runOnce` or `jumpAndRunOnce` (a buffer replaced when it grows). */
  readonly batch: () => Uint32Array;
  /** `loop.callSoon()`, without the generated wrapper: the handle id, a sequence number. */
  readonly callSoon: () => number;
  /** `loop.cancelSoon(id)`, without the generated wrapper. */
  readonly cancelSoon: (id: number) => boolean;
  /** `loop.callLater(delayMs)`, without the generated wrapper: the handle id. */
  readonly callLater: (delayMs: number) => number;
  /** `loop.callAt(whenMs)`, without the generated wrapper: the handle id. */
  readonly callAt: (whenMs: number) => number;
  /** `loop.cancel(slot, generation)`, without the generated wrapper. */
  readonly cancel: (slot: number, generation: number) => boolean;
  /** `loop.time()`, without the generated wrapper. */
  readonly time: () => number;
  /** `loop.pollTimeout()`, without the generated wrapper. */
  readonly pollTimeout: () => number;
}

const PREFIX = 'wasmloop:core/event-loop@0.1.0#[method]event-loop.';
const RUN_ONCE = `${PREFIX}run-once`;
const JUMP_AND_RUN_ONCE = `${PREFIX}jump-and-run-once`;
/** Where `jumped.batch` sits in the result: after `time-ns`, a u64 (8 bytes, 8-aligned). */
const JUMPED_BATCH_OFFSET = 8;
const CALL_SOON = `${PREFIX}call-soon`;
const CANCEL_SOON = `${PREFIX}cancel-soon`;
const CALL_LATER = `${PREFIX}call-later`;
const CALL_AT = `${PREFIX}call-at`;
const CANCEL = `${PREFIX}cancel`;
const TIME = `${PREFIX}time`;
const POLL_TIMEOUT = `${PREFIX}poll-timeout`;

/** The core module's name for the resource's own imports (`[resource-new]` and friends). */
export const RESOURCE_EXPORTS = '[export]wasmloop:core/event-loop@0.1.0';

/**
 * The hand-lifted methods of the loop resource `self` (the core's pointer
 * for it) in an instance with `exports` and `memory`; `rebind` points them
 * at another resource of the same instance (a kept instance serving a new
 * loop, core.ts).
 */
export function liftEventLoop(
  exports: WebAssembly.Exports,
  memory: WebAssembly.Memory,
  first: number,
): { methods: Omit<CoreInstance, 'loop' | 'memory'>; rebind: (self: number) => void } {
  let self = first;
  const exported = <F>(name: string): F => {
    const f = exports[name];
    if (typeof f !== 'function') throw new Error(`the core component lacks ${name}`);
    return f as F;
  };
  let batch = new Uint32Array(1024);
  // A view of linear memory; memory.grow detaches its buffer (length 0).
  let words = new Uint32Array(memory.buffer);
  // A one-element array: a double in a `let` is a heap number per store.
  const jumpedNs = new Float64Array(1);
  let soon = 0;
  /**
   * A method returning a `batch` record at byte `offset` of its result (0
   * for the record itself; 8 for `jumped`, after its u64 time, whose two
   * words `onTime` gets): `soon` (u32), then the slots' list (pointer,
   * length), lifted into `batch`; returns how many slots.
   */
  const lifted = (name: string, offset: number, onTime?: (low: number, high: number) => void): (() => number) => {
    const raw = exported<(rep: number) => number>(name);
    const post = exported<(ret: number) => void>(`cabi_post_${name}`);
    return () => {
      const ret = raw(self);
      if (words.length === 0) words = new Uint32Array(memory.buffer);
      const at = (ret + offset) >>> 2;
      if (onTime !== undefined) onTime(words[ret >>> 2] as number, words[(ret >>> 2) + 1] as number);
      soon = words[at] as number;
      const ptr = (words[at + 1] as number) >>> 2;
      const len = words[at + 2] as number;
      if (len > batch.length) batch = new Uint32Array(Math.max(len, batch.length * 2));
      if (len < 64) {
        for (let i = 0; i < len; i++) batch[i] = words[ptr + i] as number;
      } else {
        batch.set(words.subarray(ptr, ptr + len));
      }
      post(ret);
      return len;
    };
  };
  const rawCallSoon = exported<(rep: number) => number>(CALL_SOON);
  const rawCancelSoon = exported<(rep: number, id: number) => number>(CANCEL_SOON);
  const rawCallLater = exported<(rep: number, delayMs: number) => number>(CALL_LATER);
  const rawCallAt = exported<(rep: number, whenMs: number) => number>(CALL_AT);
  const rawCancel = exported<(rep: number, slot: number, generation: number) => number>(CANCEL);
  const rawTime = exported<(rep: number) => number>(TIME);
  const rawPollTimeout = exported<(rep: number) => number>(POLL_TIMEOUT);
  const methods: Omit<CoreInstance, 'loop' | 'memory'> = {
    runOnce: lifted(RUN_ONCE, 0),
    // A u64 past 2^53 ns (a jump to a timer 104 days away or more) rounds
    // to the nearest f64, as the virtual clock keeps it.
    jumpAndRunOnce: lifted(JUMP_AND_RUN_ONCE, JUMPED_BATCH_OFFSET, (low, high) => {
      jumpedNs[0] = high * 2 ** 32 + low;
    }),
    jumpedNs: () => jumpedNs[0] as number,
    soon: () => soon,
    batch: () => batch,
    callSoon: () => rawCallSoon(self),
    cancelSoon: (id) => rawCancelSoon(self, +id) !== 0,
    callLater: (delayMs) => rawCallLater(self, +delayMs),
    callAt: (whenMs) => rawCallAt(self, +whenMs),
    cancel: (slot, generation) => rawCancel(self, slot >>> 0, generation >>> 0) !== 0,
    time: () => rawTime(self),
    pollTimeout: () => rawPollTimeout(self),
  };
  const rebind = (rep: number): void => {
    self = rep;
    soon = 0;
  };
  return { methods, rebind };
}
