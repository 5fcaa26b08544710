/**
 * wasmloop: an event loop whose scheduler and timer queue are Rust compiled
 * to one WebAssembly component.
 *
 * ```ts
 * import { createLoop } from 'wasmloop';
 * const loop = await createLoop({ backend: 'auto' });
 * await loop.runUntilComplete(async () => { await loop.sleep(10); });
 * await loop.close();
 * ```
 */
import { BACKEND_NAMES, resolveBackend } from './backends/resolve.js';
import { compileCore, instantiateCore } from './core.js';
import { clockImport } from './imports/clock.js';
import { EventLoop, describe } from './loop.js';

export { EventLoop } from './loop.js';
export type { ExceptionContext, ExceptionHandler, LoopStats } from './loop.js';
export { Handle, TimerHandle } from './handles.js';
export type { Backend } from './backends/backend.js';
export { BACKEND_NAMES } from './backends/resolve.js';
export {
  BackendError,
  LoopClosedError,
  LoopCrashedError,
  LoopRunningError,
  LoopStoppedError,
  WasmloopError,
} from './errors.js';

export interface LoopOptions {
  /** `'auto'` (the default) or a backend name: see `BACKEND_NAMES`. */
  backend?: string;
  /** Debug mode: report slow callbacks with where they were scheduled. */
  debug?: boolean;
  /** In debug mode, callbacks that run longer than this (ms) are reported. Default 100. */
  slowCallbackMs?: number;
}

const OPTION_NAMES = new Set(['backend', 'debug', 'slowCallbackMs']);

/** Creates an event loop on the chosen backend. */
export async function createLoop(options: LoopOptions = {}): Promise<EventLoop> {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`createLoop: options must be an object, got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!OPTION_NAMES.has(key)) {
      throw new TypeError(`createLoop: unknown option '${key}' (known: ${[...OPTION_NAMES].join(', ')})`);
    }
  }
  const { backend = 'auto', debug = false, slowCallbackMs = 100 } = options;
  if (typeof backend !== 'string') {
    throw new TypeError(`createLoop: backend must be a string (${BACKEND_NAMES.join(', ')}), got ${describe(backend)}`);
  }
  if (typeof debug !== 'boolean') {
    throw new TypeError(`createLoop: debug must be a boolean, got ${describe(debug)}`);
  }
  if (typeof slowCallbackMs !== 'number' || !(slowCallbackMs >= 0) || slowCallbackMs === Infinity) {
    throw new RangeError(`createLoop: slowCallbackMs must be a finite number >= 0, got ${describe(slowCallbackMs)}`);
  }
  const chosen = await resolveBackend(backend, { log: debug ? (m) => console.warn(m) : undefined });
  try {
    const instance = instantiateCore(await compileCore(), clockImport(chosen));
    return new EventLoop(instance, chosen, { debug, slowCallbackMs });
  } catch (error) {
    chosen.close();
    throw error;
  }
}
