/**
 * Time modes: what the driver (driver.ts) needs to know about where the
 * loop's time comes from. The iteration is the same in every mode; only
 * these answers differ.
 *
 *     mode      phase 1 reads          an idle wait            a slice is measured on
 *     wall      the backend's clock    a host timer (sleep)    the loop's clock
 *     virtual   the virtual clock      jump the clock, go on   the wall clock
 *     replay    the recorded time      jump as recorded, or    the wall clock
 *                                      fail: nothing is due
 *                                      where the recording
 *                                      ran something
 */
import { performanceOriginOf } from './backends/wall-clock.js';
import type { Backend } from './backends/backend.js';
import { type VirtualBackend, isVirtual } from './backends/virtual.js';
import type { CoreInstance } from './core.js';
import { wallNow } from './host-tasks.js';
import type { Tracer } from './trace.js';

export interface TimeMode {
  /** The virtual clock, when the loop runs on one (the program may then drive it by hand). */
  readonly virtual: VirtualBackend | null;
  /** True when a tracer records or replays (the core may not jump on its own then). */
  readonly tracing: boolean;
  /**
   * Where the clock counts from on the `performance.now()` scale, when it
   * is the built-in wall clock: then an iteration's clock reading tells
   * when its batch started. Null otherwise.
   */
  readonly wallOrigin: number | null;
  /** Phase 1 is about to read the clock. */
  beforeCollect(): void;
  /** The core jumped its time to `ns` (virtual time): the clock follows. */
  jumped(ns: number): void;
  /** The reading (ms) a slice of back-to-back iterations is measured on. */
  sliceClock(core: CoreInstance): number;
  /**
   * Nothing is ready for `wait` ms (-1: nothing pending). True if the mode
   * moved time itself, so the driver runs again instead of sleeping; throws
   * ReplayDivergenceError if a replay cannot go on.
   */
  idle(wait: number): boolean;
}

/** The backend's own clock, in real time. */
class WallTime implements TimeMode {
  readonly virtual = null;
  readonly tracing: boolean;
  readonly wallOrigin: number | null;
  constructor(backend: Backend, tracer: Tracer | null) {
    this.wallOrigin = performanceOriginOf(backend.now);
    this.tracing = tracer !== null;
  }
  beforeCollect(): void {}
  jumped(): void {}
  sliceClock(core: CoreInstance): number {
    return core.time();
  }
  idle(): boolean {
    return false;
  }
}

/** The virtual backend's clock: nothing ready means jump to the next deadline. */
class VirtualTime implements TimeMode {
  readonly virtual: VirtualBackend;
  readonly tracing: boolean;
  readonly wallOrigin = null;
  constructor(virtual: VirtualBackend, tracer: Tracer | null) {
    this.virtual = virtual;
    this.tracing = tracer !== null;
  }
  beforeCollect(): void {}
  jumped(ns: number): void {
    this.virtual.clock.advanceTo(ns);
  }
  // Virtual time jumps: a slice is measured on wall time.
  sliceClock(): number {
    return wallNow();
  }
  idle(wait: number): boolean {
    if (wait <= 0) return false;
    this.virtual.clock.advance(wait);
    return true;
  }
}

/** Virtual time following a recording: each iteration runs at the recorded time. */
class ReplayTime extends VirtualTime {
  readonly #tracer: Tracer;
  constructor(virtual: VirtualBackend, tracer: Tracer) {
    super(virtual, tracer);
    this.#tracer = tracer;
  }
  override beforeCollect(): void {
    const t = this.#tracer.nextTime();
    if (t !== null) this.virtual.clock.advanceTo(t);
  }
  override idle(wait: number): boolean {
    const next = this.#tracer.nextTime();
    if (next === null) return super.idle(wait);
    const now = this.virtual.clock.now();
    // Nothing ready now, and nothing due by the recorded time: it diverged.
    const dueBeforeNext = wait > 0 && now + wait * 1e6 <= next;
    if (!dueBeforeNext && now >= next) {
      const error = this.#tracer.stalled(now);
      if (error !== null) throw error;
    }
    // The next iteration jumps to the recorded time itself.
    return wait > 0;
  }
}

/** The time mode of a loop on `backend`. */
export function timeModeFor(backend: Backend, tracer: Tracer | null): TimeMode {
  if (!isVirtual(backend)) return new WallTime(backend, tracer);
  return tracer?.replaying ? new ReplayTime(backend, tracer) : new VirtualTime(backend, tracer);
}
