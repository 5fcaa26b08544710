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
export type { ConnectOptions, ExceptionContext, ExceptionHandler, LoopStats, ServerOptions } from './loop.js';
export type { Connection, Server } from './io/streams.js';
export { Handle, TimerHandle } from './handles.js';
export type {
  Backend,
  BackendSink,
  ClockBackend,
  CompletionBackend,
  CompletionSocket,
  ReadinessBackend,
  SocketAddress,
  SocketOps,
} from './backends/backend.js';
export { createCompletionBackend } from './backends/completion.js';
export { createSelectorBackend } from './backends/selector.js';
export { createVirtualBackend } from './backends/virtual.js';
export type { VirtualBackend, VirtualOptions } from './backends/virtual.js';
export { Immediate, Timeout, TIMEOUT_MAX } from './timers.js';
export type { LoopTimers } from './timers.js';
export { BACKEND_NAMES } from './backends/resolve.js';
export {
  AddressInUseError,
  BackendError,
  ConnectionClosedError,
  ConnectionRefusedError,
  ConnectionResetError,
  IoError,
  LoopClosedError,
  LoopCrashedError,
  LoopLimitError,
  LoopRunningError,
  LoopStoppedError,
  NotSupportedError,
  WasmloopError,
  WriteAfterEndError,
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
    let loop: EventLoop | null = null;
    const imports = EventLoop.hostImports(chosen, clockImport(chosen).now, () => loop?._ioBacklog());
    const instance = instantiateCore(await compileCore(), imports);
    loop = new EventLoop(instance, chosen, { debug, slowCallbackMs });
    return loop;
  } catch (error) {
    chosen.close();
    throw error;
  }
}
