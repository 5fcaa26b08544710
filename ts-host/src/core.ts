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

/**
 * Uses modules the host compiled (workerd binds Wasm as modules and cannot
 * compile bytes at run time): `{ 'core.core.wasm': module, ... }`.
 */
export function coreModulesFrom(given: Record<string, unknown>): CoreModules {
  const modules = new Map<string, WebAssembly.Module>();
  for (const file of MODULE_FILES) {
    const module = given[file];
    if (!(module instanceof WebAssembly.Module)) {
      throw new TypeError(`createLoop: coreModules['${file}'] must be a WebAssembly.Module`);
    }
    modules.set(file, module);
  }
  return modules;
}

/** The names of the core's Wasm modules, as coreModules needs them. */
export const CORE_MODULE_FILES: readonly string[] = MODULE_FILES;

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
  /**
   * `loop.runOnce()` without the generated lifting: jco lifts a `list<u32>`
   * by slicing linear memory into a fresh ArrayBuffer, a malloc and a free
   * per iteration that cost more than the rest of an idle iteration. This
   * calls the same core export and copies the batch into `batch()`, a
   * buffer reused from one iteration to the next; it returns the batch's
   * length.
   */
  readonly runOnce: () => number;
  /** `loop.jumpAndRunOnce()`, lifted the same way into the same buffer. */
  readonly jumpAndRunOnce: () => number;
  /** The buffer the last `runOnce` or `jumpAndRunOnce` filled (replaced when it grows). */
  readonly batch: () => Uint32Array;
  /** `loop.time()` in ns (exact below 2^32 ms), without the generated wrapper. */
  readonly timeNs: () => number;
}

const RUN_ONCE = 'wasmloop:core/event-loop@0.1.0#[method]event-loop.run-once';
const JUMP_AND_RUN_ONCE = 'wasmloop:core/event-loop@0.1.0#[method]event-loop.jump-and-run-once';
const TIME = 'wasmloop:core/event-loop@0.1.0#[method]event-loop.time';
const RESOURCE_EXPORTS = '[export]wasmloop:core/event-loop@0.1.0';
const CLOCK_MODULE = 'wasmloop:core/clock@0.1.0';
const READINESS_MODULE = 'wasmloop:core/readiness@0.1.0';
const COMPLETION_MODULE = 'wasmloop:core/completion@0.1.0';

/** What a hand-lowered import needs of the instance, once it exists. */
interface LinearMemory {
  /** `cabi_realloc(old, oldSize, align, newSize)`: allocates in the core's heap. */
  realloc(old: number, oldSize: number, align: number, size: number): number;
  /** A Uint32Array over linear memory, current (memory.grow replaces the buffer). */
  words(): Uint32Array;
}

/**
 * A `list<u32>`-returning import (`take-ready`, `take-completed`) as the
 * core module calls it, `(max, retArea)`, lowered by hand: the generated
 * lowering goes through an adapter module and a JS trampoline that makes two
 * byte views and two DataViews per call. This allocates the list with the
 * core's `cabi_realloc`, copies the tokens in, and writes (pointer, length)
 * to the return area. An empty list owns no memory: its pointer is the
 * alignment, 4, as `cabi_realloc` itself returns for a size of 0 (Rust's
 * dangling pointer for an empty Vec).
 */
function loweredTokens(take: (max: number) => Uint32Array, memory: LinearMemory): (max: number, retArea: number) => void {
  return (max, retArea) => {
    const tokens = take(max >>> 0);
    const length = tokens.length;
    let ptr = 4;
    let words: Uint32Array;
    if (length > 0) {
      ptr = memory.realloc(0, 0, 4, length * 4);
      words = memory.words();
      const at = ptr >>> 2;
      if (length < 16) {
        for (let i = 0; i < length; i++) words[at + i] = tokens[i] as number;
      } else {
        words.set(tokens, at);
      }
    } else {
      words = memory.words();
    }
    words[retArea >>> 2] = ptr;
    words[(retArea >>> 2) + 1] = length;
  };
}

/**
 * The clock import as the core module calls it (an i64, so a BigInt),
 * without the generated lowering: that one wraps every reading in
 * `BigInt.asUintN(64, BigInt(ns))`, two BigInts per read. `now` already
 * gives whole, non-negative nanoseconds below 2^53; a reading equal to the
 * last one (a virtual clock between jumps, workerd's frozen clock, two reads
 * in one iteration) reuses the last BigInt.
 */
function bigintClock(now: () => number): () => bigint {
  let lastNs = -1;
  let last = 0n;
  return () => {
    const ns = now();
    if (ns !== lastNs) {
      lastNs = ns;
      last = BigInt(ns);
    }
    return last;
  };
}

export function instantiateCore(modules: CoreModules, host: HostImports): CoreInstance {
  let memory: WebAssembly.Memory | undefined;
  let coreExports: WebAssembly.Exports | undefined;
  let rep = -1;
  // Filled in once the instance exists; the lowered imports run only later.
  const linear: LinearMemory = {
    realloc: () => {
      throw new Error('the core called an import before it was instantiated');
    },
    words: () => {
      throw new Error('the core called an import before it was instantiated');
    },
  };
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
    (module, coreImports) => {
      const byModule = coreImports as Record<string, Record<string, unknown>> | undefined;
      const clockImports = byModule?.[CLOCK_MODULE];
      if (clockImports !== undefined && typeof clockImports.now === 'function') clockImports.now = bigintClock(host.clock.now);
      const readinessImports = byModule?.[READINESS_MODULE];
      if (readinessImports !== undefined && 'take-ready' in readinessImports) {
        readinessImports['take-ready'] = loweredTokens(host.takeReady, linear);
      }
      const completionImports = byModule?.[COMPLETION_MODULE];
      if (completionImports !== undefined && 'take-completed' in completionImports) {
        completionImports['take-completed'] = loweredTokens(host.takeCompleted, linear);
      }
      const resources = (coreImports as Record<string, Record<string, (r: number) => number>> | undefined)?.[
        RESOURCE_EXPORTS
      ];
      if (resources !== undefined) {
        // Learn the rep (the core's pointer) of the loop resource as it is made.
        const create = resources['[resource-new]event-loop'] as (r: number) => number;
        resources['[resource-new]event-loop'] = (r: number) => {
          rep = r;
          return create(r);
        };
      }
      const instance = new WebAssembly.Instance(module, coreImports);
      if (instance.exports.memory instanceof WebAssembly.Memory) {
        memory = instance.exports.memory;
        coreExports = instance.exports;
      }
      return instance;
    },
  );
  const loop = new root.eventLoop.EventLoop();
  if (memory === undefined || coreExports === undefined) throw new Error('the core component exports no memory');
  const exported = coreExports;
  const exportedFunction = <F>(name: string): F => {
    const f = exported[name];
    if (typeof f !== 'function') throw new Error(`the core component lacks ${name}`);
    return f as F;
  };
  if (rep < 0) throw new Error('the core component made no event-loop resource');
  const mem = memory;
  const self = rep;
  let batch = new Uint32Array(1024);
  // A view of linear memory; memory.grow detaches its buffer (length 0).
  let words = new Uint32Array(mem.buffer);
  linear.words = () => {
    if (words.length === 0) words = new Uint32Array(mem.buffer);
    return words;
  };
  linear.realloc = exportedFunction<LinearMemory['realloc']>('cabi_realloc');
  /** A `list<u32>`-returning method, lifted into `batch`; returns the length. */
  const lifted = (name: string): (() => number) => {
    const raw = exportedFunction<(rep: number) => number>(name);
    const post = exportedFunction<(ret: number) => void>(`cabi_post_${name}`);
    return () => {
      const ret = raw(self);
      if (words.length === 0) words = new Uint32Array(mem.buffer);
      const ptr = (words[ret >>> 2] as number) >>> 2;
      const len = words[(ret >>> 2) + 1] as number;
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
  const runOnce = lifted(RUN_ONCE);
  const jumpAndRunOnce = lifted(JUMP_AND_RUN_ONCE);
  const rawTime = exportedFunction<(rep: number) => number>(TIME);
  const timeNs = () => Math.round(rawTime(self) * 1e6);
  return { loop, memory, runOnce, jumpAndRunOnce, batch: () => batch, timeNs };
}
