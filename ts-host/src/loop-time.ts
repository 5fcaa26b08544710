/**
 * The loop's time as callbacks and handles see it: `loop.time()`, and the
 * time a new timer's delay counts from.
 *
 * While a batch runs (phase 4) it is the time the iteration read (libuv's
 * `uv_now`). Outside one it is read once per synchronous turn of host code:
 * the first read updates the core's time and the reading is kept until the
 * next microtask. Handles share the reading through an `Epoch` object (see
 * handles.ts), so a timer handle carries no float of its own.
 *
 * A clock read outside an iteration is an input of the program: a recording
 * loop records it, and a replaying one moves its virtual clock to the
 * recorded value first.
 */
import type { VirtualBackend } from './backends/virtual.js';
import type { BackendFaults } from './backend-faults.js';
import type { CoreLoop } from './core.js';
import type { Epoch } from './handles.js';
import type { LiveCore } from './live-core.js';
import type { Tracer } from './trace.js';

export class LoopTime {
  readonly #core: LiveCore;
  readonly #tracer: Tracer | null;
  readonly #virtual: VirtualBackend | null;
  readonly #canceller: Epoch['loop'];
  readonly #faults: BackendFaults;
  /** The reading new handles use; null when it must be read again. */
  #epoch: Epoch | null = null;
  /** True while a batch runs, microtask checkpoints included. */
  #inBatch = false;
  /** Shared by `callSoon` handles, which have no time and cancel through the `callSoon` queue. */
  readonly soon: Epoch;
  /** Shared by `callAt` handles, whose `when` is absolute. */
  readonly absolute: Epoch;
  readonly #expire = (): void => {
    this.#epoch = null;
  };

  constructor(
    core: LiveCore,
    canceller: Epoch['loop'],
    soonCanceller: Epoch['loop'],
    faults: BackendFaults,
    tracer: Tracer | null,
    virtual: VirtualBackend | null,
  ) {
    this.#core = core;
    this.#faults = faults;
    this.#canceller = canceller;
    this.#tracer = tracer;
    this.#virtual = virtual;
    this.soon = { loop: soonCanceller, time: NaN };
    this.absolute = { loop: canceller, time: 0 };
  }

  /** The current reading, for `operation` (LoopClosedError once closed). */
  epoch(operation: string): Epoch {
    let epoch = this.#epoch;
    if (epoch === null) {
      const core = this.#core.get(operation);
      try {
        epoch = this.#read(core);
      } catch (error) {
        this.#core.failed(error);
      }
      // A backend clock that failed outside a run fails the operation that read it.
      const fault = this.#faults.take();
      if (fault !== null) throw fault;
      this.#epoch = epoch;
    }
    return epoch;
  }

  #read(core: CoreLoop): Epoch {
    if (this.#inBatch) return { loop: this.#canceller, time: core.time() };
    queueMicrotask(this.#expire);
    const tracer = this.#tracer;
    if (tracer === null) return { loop: this.#canceller, time: core.updateTime() };
    const recorded = tracer.nextRead();
    if (recorded !== null && tracer.replaying) (this.#virtual as VirtualBackend).clock.advanceTo(recorded);
    const epoch = { loop: this.#canceller, time: core.updateTime() };
    tracer.read(this.nanos());
    return epoch;
  }

  /** The clock moved (an iteration read it, or a virtual jump): read again. */
  invalidate(): void {
    this.#epoch = null;
  }

  /** Phase 4 begins: the iteration's time holds until `leaveBatch`. */
  enterBatch(): void {
    this.#inBatch = true;
  }

  leaveBatch(): void {
    this.#inBatch = false;
    this.#epoch = null;
  }

  /** The loop's time in whole nanoseconds (exact on the virtual backend). */
  nanos(): number {
    const virtual = this.#virtual;
    return virtual !== null ? virtual.clock.now() : Math.round((this.#core.loop as CoreLoop).time() * 1e6);
  }
}
