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
import { backendFault, clockReadingProblem } from './backend-faults.js';
import type { Backend } from './backends/backend.js';
import { BACKEND_NAMES, resolveBackend } from './backends/resolve.js';
import { type VirtualOptions, createVirtualBackend } from './backends/virtual.js';
import { compileCore, coreModulesFrom } from './core.js';
import { EventLoop } from './loop.js';
import { describe } from './errors.js';
import { checkOptions } from './options.js';
import { type Logger, checkLogger } from './reporting.js';
import { type Trace, Tracer, traceProblem } from './trace.js';

export { EventLoop } from './loop.js';
export {
  serve,
  HTTP_DEFAULTS,
  type ServeOptions,
  type HttpServer,
  type ConnectionInfo,
  type RequestLine,
} from './http/index.js';
export {
  HttpClient,
  createHttpClient,
  CLIENT_DEFAULTS,
  type HttpClientOptions,
  type Connector,
  type ConnectTarget,
} from './http/index.js';
export type {
  ConnectOptions,
  DatagramEndpointOptions,
  ExceptionContext,
  ExceptionHandler,
  Logger,
  LoopStats,
  ServerOptions,
} from './loop.js';
export type { DatagramProtocol, DatagramProtocolFactory, DatagramTransport } from './io/datagrams.js';
export type { Connection, Server } from './io/streams.js';
export type { TlsInfo } from './io/tls-info.js';
export type { StartTlsOptions, TlsClientOptions, TlsServerOptions } from './tls-options.js';
export type { Protocol, ProtocolFactory, Transport } from './io/protocols.js';
export { Handle, TimerHandle } from './handles.js';
export { Deadline } from './deadline.js';
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
export { createCompletionBackend, createNetCompletionBackend } from './backends/completion.js';
export { createDenoCompletionBackend } from './backends/completion-deno.js';
export { createBunCompletionBackend } from './backends/completion-bun.js';
export { createSelectorBackend } from './backends/selector.js';
export { createVirtualBackend } from './backends/virtual.js';
export { createClockBackend } from './backends/clock.js';
export { CORE_MODULE_FILES, loadedCore } from './core.js';
export type { LoadedCoreModule } from './core.js';
export type { VirtualBackend, VirtualOptions } from './backends/virtual.js';
export { Immediate, Timeout, TIMEOUT_MAX } from './timers.js';
export { ReplayDivergenceError, TRACE_FORMAT } from './trace.js';
export type { Trace, CallbackKind } from './trace.js';
export type { LoopTimers } from './timers.js';
export { BACKEND_NAMES } from './backends/resolve.js';
export {
  AddressInUseError,
  BackendError,
  ConnectionClosedError,
  ConnectionRefusedError,
  ConnectionResetError,
  IncompleteReadError,
  IoError,
  LimitOverrunError,
  LoopClosedError,
  LoopCrashedError,
  LoopLimitError,
  LoopRunningError,
  LoopStoppedError,
  NotSupportedError,
  TimeoutError,
  TlsError,
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
  /** Record the order of callbacks (and the I/O events that ran them): `loop.trace()`. */
  record?: boolean;
  /**
   * Replay a trace (an object, or its JSON text) on the `virtual` backend:
   * the same program runs in the same order, or the run fails with a
   * ReplayDivergenceError at the first difference.
   */
  replay?: Trace | string;
  /** Options of the `virtual` backend: `{ latencyMs }`, the in-memory network's one-way latency. */
  virtual?: VirtualOptions;
  /**
   * Caps the core's linear memory. A loop that needs more crashes: it
   * closes, the operation and the run in progress fail with
   * LoopCrashedError, and other loops go on. Default: no cap.
   */
  memoryLimitBytes?: number;
  /**
   * The core's Wasm modules, compiled by the host, for hosts that cannot
   * compile Wasm from bytes at run time (workerd binds them as modules):
   * `{ 'core.core.wasm': module, 'core.core2.wasm': ..., 'core.core3.wasm': ... }`.
   */
  coreModules?: Record<string, WebAssembly.Module>;
  /**
   * Where the loop logs: slow callbacks in debug mode (`warn`), and errors
   * when no exception handler is set or the handler itself throws
   * (`error`). Console-shaped; default `console`. Errors still go to the
   * exception handler first (`loop.setExceptionHandler`).
   */
  logger?: Logger;
}

const LOOP_OPTIONS = [
  'backend',
  'debug',
  'slowCallbackMs',
  'record',
  'replay',
  'virtual',
  'memoryLimitBytes',
  'coreModules',
  'logger',
] as const;

/** Creates an event loop on the chosen backend. */
export async function createLoop(options: LoopOptions = {}): Promise<EventLoop> {
  const {
    backend = 'auto',
    debug = false,
    slowCallbackMs = 100,
    record = false,
    replay,
    virtual,
    memoryLimitBytes = 0,
    coreModules,
    logger: loggerOption,
  } = checkOptions('createLoop', options, LOOP_OPTIONS);
  const logger = loggerOption === undefined ? console : checkLogger('createLoop', loggerOption);
  if (coreModules !== undefined && (typeof coreModules !== 'object' || coreModules === null)) {
    throw new TypeError(
      `createLoop: coreModules must be an object of WebAssembly.Module, got ${describe(coreModules)}`,
    );
  }
  const modules = coreModules === undefined ? undefined : coreModulesFrom(coreModules);
  if (typeof memoryLimitBytes !== 'number' || !Number.isSafeInteger(memoryLimitBytes) || memoryLimitBytes < 0) {
    throw new RangeError(
      `createLoop: memoryLimitBytes must be a whole number of bytes >= 0, got ${describe(memoryLimitBytes)}`,
    );
  }
  if (virtual !== undefined && backend !== 'virtual') {
    throw new TypeError(`createLoop: the virtual option needs backend 'virtual' (got backend '${String(backend)}')`);
  }
  if (typeof record !== 'boolean') throw new TypeError(`createLoop: record must be a boolean, got ${describe(record)}`);
  let expected: Trace | null = null;
  if (replay !== undefined) {
    if (backend !== 'virtual') {
      throw new TypeError(`createLoop: replay needs backend 'virtual' (got backend '${String(backend)}')`);
    }
    let parsed: unknown = replay;
    if (typeof replay === 'string') {
      try {
        parsed = JSON.parse(replay);
      } catch (error) {
        throw new TypeError(`createLoop: replay is not a wasmloop trace (invalid JSON: ${(error as Error).message})`);
      }
    }
    const problem = traceProblem(parsed);
    if (problem !== null) throw new TypeError(`createLoop: replay is not a wasmloop trace (${problem})`);
    expected = parsed as Trace;
  }
  if (typeof backend !== 'string') {
    throw new TypeError(`createLoop: backend must be a string (${BACKEND_NAMES.join(', ')}), got ${describe(backend)}`);
  }
  if (typeof debug !== 'boolean') {
    throw new TypeError(`createLoop: debug must be a boolean, got ${describe(debug)}`);
  }
  if (typeof slowCallbackMs !== 'number' || !(slowCallbackMs >= 0) || slowCallbackMs === Infinity) {
    throw new RangeError(`createLoop: slowCallbackMs must be a finite number >= 0, got ${describe(slowCallbackMs)}`);
  }
  const chosen =
    backend === 'virtual'
      ? createVirtualBackend(virtual)
      : await resolveBackend(backend, { log: debug ? (m) => logger.warn(m) : undefined });
  try {
    checkClock(chosen);
    const tracer = record || expected !== null ? new Tracer(chosen.name, expected) : null;
    return new EventLoop(modules ?? (await compileCore()), chosen, {
      debug,
      slowCallbackMs,
      tracer,
      memoryLimitBytes,
      logger,
    });
  } catch (error) {
    try {
      chosen.close();
    } catch {
      // The error that stopped the loop is the one to report.
    }
    throw error;
  }
}

/** The backend's clock, read once: a BackendError unless it gives a time in ns. */
function checkClock(backend: Backend): void {
  let reading: unknown;
  try {
    reading = backend.now();
  } catch (error) {
    throw backendFault(backend.name, 'now()', 'threw', error);
  }
  const problem = clockReadingProblem(reading);
  if (problem !== null) throw backendFault(backend.name, 'now()', problem);
}
