/**
 * Loading the loop core: the component's core Wasm modules are compiled once
 * per process and instantiated once per loop, so each loop has its own linear
 * memory (freed with the loop) and its own clock import.
 */
import { instantiate } from './generated/core.js';
import type { EventLoop as CoreLoopClass } from './generated/interfaces/wasmloop-core-event-loop.js';
import type { ClockImport } from './imports/clock.js';

/** The host's side of the WIT imports, one set per loop. */
export interface HostImports {
  clock: ClockImport;
  /** `readiness.take-ready`. */
  takeReady(max: number): Uint32Array;
  /** `completion.take-completed`. */
  takeCompleted(max: number): Uint32Array;
}

/** The core's `event-loop` resource, as the generated bindings expose it. */
export type CoreLoop = CoreLoopClass;

/** The core Wasm modules of the component, by the file names jco gave them. */
export type CoreModules = ReadonlyMap<string, WebAssembly.Module>;

const MODULE_FILES = ['core.core.wasm', 'core.core2.wasm', 'core.core3.wasm'] as const;

let compiled: Promise<CoreModules> | null = null;

async function readModuleBytes(file: string): Promise<BufferSource> {
  const url = new URL(`./generated/${file}`, import.meta.url);
  if (url.protocol === 'file:') {
    const { readFile } = await import('node:fs/promises');
    return new Uint8Array(await readFile(url));
  }
  const response = await fetch(url);
  if (!response.ok) throw new Error(`fetching ${url}: HTTP ${response.status}`);
  return response.arrayBuffer();
}

/** Compiles the core modules (once per process). */
export function compileCore(): Promise<CoreModules> {
  compiled ??= Promise.all(
    MODULE_FILES.map(async (file) => [file, await WebAssembly.compile(await readModuleBytes(file))] as const),
  ).then((entries) => new Map(entries));
  // A failed compile is not cached: the next createLoop tries again.
  compiled.catch(() => {
    compiled = null;
  });
  return compiled;
}

/** One instance of the component: its loop resource and its memory. */
export interface CoreInstance {
  readonly loop: CoreLoop;
  /** The instance's linear memory (for measurements). */
  readonly memory: WebAssembly.Memory;
}

export function instantiateCore(modules: CoreModules, host: HostImports): CoreInstance {
  let memory: WebAssembly.Memory | undefined;
  const clock = { now: host.clock.now as unknown as () => bigint };
  const readiness = { takeReady: host.takeReady };
  const completion = { takeCompleted: host.takeCompleted };
  const imports = {
    'wasmloop:core/clock': clock,
    'wasmloop:core/clock@0.1.0': clock,
    'wasmloop:core/readiness': readiness,
    'wasmloop:core/readiness@0.1.0': readiness,
    'wasmloop:core/completion': completion,
    'wasmloop:core/completion@0.1.0': completion,
  };
  const root = instantiate(
    (file) => {
      const module = modules.get(file);
      if (module === undefined) throw new Error(`core module ${file} is missing`);
      return module;
    },
    imports as never,
    (module, imports) => {
      const instance = new WebAssembly.Instance(module, imports);
      if (instance.exports.memory instanceof WebAssembly.Memory) memory = instance.exports.memory;
      return instance;
    },
  );
  const loop = new root.eventLoop.EventLoop();
  if (memory === undefined) throw new Error('the core component exports no memory');
  return { loop, memory };
}
