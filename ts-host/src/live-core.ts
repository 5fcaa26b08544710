/**
 * The loop's instance of the core, while the loop is open: every part that
 * calls into the core (the callback table, the loop time, the driver) reads
 * it here, so closing or crashing the loop is one assignment, and a core
 * call that fails is handled one way.
 *
 * A core call can fail two ways: a Wasm trap (a RuntimeError: out of
 * memory, a broken invariant), after which the instance is unusable and the
 * loop crashes (closes, failing its run with LoopCrashedError); or a JS
 * error thrown through the core by an import, which is rethrown as is.
 */
import { type CoreInstance, type CoreLoop, releaseCore } from './core.js';
import { LoopClosedError } from './errors.js';

export class LiveCore {
  /** The instance; null once the loop is closed or crashed. */
  instance: CoreInstance | null;
  /** `instance.loop`, the core's `event-loop` resource; null with it. */
  loop: CoreLoop | null;
  readonly #crash: (cause: unknown) => Error;

  /** `crash(cause)` closes the loop after a trap and returns the error to throw. */
  constructor(instance: CoreInstance, crash: (cause: unknown) => Error) {
    this.instance = instance;
    this.loop = instance.loop;
    this.#crash = crash;
  }

  /** The core, or LoopClosedError naming `operation`. */
  get(operation: string): CoreLoop {
    return this.open(operation).loop;
  }

  /** The instance (for its hand-lifted methods), or LoopClosedError naming `operation`. */
  open(operation: string): CoreInstance {
    const instance = this.instance;
    if (instance === null) throw new LoopClosedError(operation);
    return instance;
  }

  /** Rethrows `error` from a core call: a trap crashes the loop first. */
  failed(error: unknown): never {
    if (error instanceof WebAssembly.RuntimeError) throw this.#crash(error);
    throw error;
  }

  /**
   * Forgets the instance. `dispose`: drop the core's loop resource too (a
   * close), and give the instance back for the next loop (core.ts
   * `releaseCore`); after a trap the instance is not touched again.
   */
  drop(dispose: boolean): void {
    const core = this.loop;
    const instance = this.instance;
    this.loop = null;
    this.instance = null;
    if (dispose && core !== null && instance !== null) {
      // jco names the resource's destructor `Symbol.dispose`.
      const symbol = (Symbol as { dispose?: symbol }).dispose ?? Symbol.for('dispose');
      (core as unknown as Record<symbol, (() => void) | undefined>)[symbol]?.();
      releaseCore(instance);
    }
  }
}
