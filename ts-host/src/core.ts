/**
 * Loading the loop core: the component's core Wasm modules are compiled once
 * per process; each loop has an instance of its own, with its own linear
 * memory and imports. A closed loop's instance, if its memory is small, is
 * kept for the next loop (`releaseCore`: why, and what it costs); a larger
 * one is freed with its loop.
 *
 * The boundary itself is in wit/, one file per WIT interface:
 *
 *     wit/clock-import.ts       clock       host -> core: the time
 *     wit/readiness-import.ts   readiness   host -> core: ready tokens
 *     wit/completion-import.ts  completion  host -> core: completed tokens
 *     wit/event-loop-export.ts  event-loop  core -> host: the loop resource
 *
 * This file wires them into jco's instantiation (`instantiateCore`).
 */
import { instantiate } from './generated/core.js';
import type { LinearMemory } from './wit/canonical-abi.js';
import { CLOCK_MODULE, type ClockImport, lowerClock } from './wit/clock-import.js';
import { COMPLETION_MODULE, type TakeCompleted, lowerTakeCompleted } from './wit/completion-import.js';
import { type CoreInstance, type CoreLoop, RESOURCE_EXPORTS, liftEventLoop } from './wit/event-loop-export.js';
import { READINESS_MODULE, type TakeReady, lowerTakeReady } from './wit/readiness-import.js';

export type { CoreInstance, CoreLoop } from './wit/event-loop-export.js';
export type { ClockImport } from './wit/clock-import.js';

/** The host's side of the WIT imports, one set per loop. */
export interface HostImports {
  clock: ClockImport;
  /** `readiness.take-ready`. */
  takeReady: TakeReady;
  /** `completion.take-completed`. */
  takeCompleted: TakeCompleted;
}

/** The core Wasm modules of the component, by the file names jco gave them. */
export type CoreModules = ReadonlyMap<string, WebAssembly.Module>;

const MODULE_FILES = ['core.core.wasm', 'core.core2.wasm', 'core.core3.wasm'] as const;
type ModuleFile = (typeof MODULE_FILES)[number];

/**
 * Where each module's bytes live: beside this file, in generated/. Each URL
 * is written out whole, so that bundlers which follow
 * `new URL('...', import.meta.url)` (webpack, Vite, Parcel) ship the files.
 * Where this module has no URL (workerd), building one throws.
 */
const MODULE_URLS: Record<ModuleFile, () => URL> = {
  'core.core.wasm': () => new URL('./generated/core.core.wasm', import.meta.url),
  'core.core2.wasm': () => new URL('./generated/core.core2.wasm', import.meta.url),
  'core.core3.wasm': () => new URL('./generated/core.core3.wasm', import.meta.url),
};

/** What the loader compiled for one core module (see `loadedCore`). */
export interface LoadedCoreModule {
  readonly file: string;
  /** Where the module came from: its URL, or 'module binding' (workerd). */
  readonly from: string;
  /** Bytes compiled, or null for a module the host bound already compiled. */
  readonly size: number | null;
  /** Hex sha256 of the bytes compiled, hashed as they were compiled; null without bytes or WebCrypto. */
  readonly sha256: string | null;
}

let compiled: Promise<CoreModules> | null = null;
let loaded: readonly LoadedCoreModule[] | null = null;

/** Cloudflare's workerd, which names itself in navigator.userAgent. */
function isWorkerd(): boolean {
  return (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent === 'Cloudflare-Workers';
}

function moduleUrl(file: ModuleFile): URL {
  if (isWorkerd()) {
    throw new Error(
      "createLoop: workerd compiles no Wasm from bytes, so the core's modules must be bound as Wasm modules: " +
        "import 'wasmloop' through its `workerd` export condition (wrangler picks it; a workerd config names the " +
        "package's modules, see docs/hosts.md), or pass createLoop({ coreModules })",
    );
  }
  try {
    return MODULE_URLS[file]();
  } catch {
    throw new Error(
      `createLoop: the core's Wasm (${file}) cannot be located: this module has no URL to resolve ` +
        `'./generated/${file}' against (import.meta.url is ${String(import.meta.url)}). ` +
        'Load wasmloop as an ES module from its files, or pass createLoop({ coreModules })',
    );
  }
}

async function readModuleBytes(url: URL): Promise<Uint8Array> {
  if (url.protocol === 'file:') {
    const { readFile } = await import('node:fs/promises');
    return new Uint8Array(await readFile(url));
  }
  const response = await fetch(url);
  if (!response.ok) {
    throw new Error(
      `createLoop: fetching the core's Wasm from ${url} failed: HTTP ${response.status}. ` +
        "Serve the package's ts-host/dist/generated/*.wasm beside the script that loads wasmloop (docs/hosts.md)",
    );
  }
  return new Uint8Array(await response.arrayBuffer());
}

/** Hex sha256 of `bytes` by WebCrypto, or null where there is none (an insecure browser origin). */
async function sha256(bytes: Uint8Array): Promise<string | null> {
  const subtle = (globalThis as { crypto?: { subtle?: SubtleCrypto } }).crypto?.subtle;
  if (subtle === undefined) return null;
  const digest = new Uint8Array(await subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  let hex = '';
  for (const byte of digest) hex += byte.toString(16).padStart(2, '0');
  return hex;
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

/**
 * Makes every loop of this process use modules the host bound (the `workerd`
 * entry imports the package's .wasm files as Wasm modules and hands them here).
 */
export function useCoreModules(given: Record<string, unknown>): void {
  compiled = Promise.resolve(coreModulesFrom(given));
  loaded = MODULE_FILES.map((file) => ({ file, from: 'module binding', size: null, sha256: null }));
}

/** The names of the core's Wasm modules, as coreModules needs them. */
export const CORE_MODULE_FILES: readonly string[] = MODULE_FILES;

/**
 * What the loader compiled, once a loop has been created: each core module's
 * file, where its bytes came from, their size and sha256, hashed from the very
 * bytes handed to WebAssembly.compile. Null before the first createLoop.
 * Modules passed to createLoop({ coreModules }) are the caller's and are not
 * reported here.
 */
export function loadedCore(): readonly LoadedCoreModule[] | null {
  return loaded;
}

/** Compiles the core modules (once per process), hashing the bytes it compiles. */
export function compileCore(): Promise<CoreModules> {
  compiled ??= Promise.all(
    MODULE_FILES.map(async (file) => {
      const url = moduleUrl(file);
      const bytes = await readModuleBytes(url);
      const [module, digest] = await Promise.all([
        WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>),
        sha256(bytes),
      ]);
      return { file, module, record: { file, from: url.href, size: bytes.length, sha256: digest } };
    }),
  ).then((entries) => {
    loaded = entries.map((entry) => entry.record);
    return new Map(entries.map((entry) => [entry.file, entry.module]));
  });
  // A failed compile is not cached: the next createLoop tries again.
  compiled.catch(() => {
    compiled = null;
  });
  return compiled;
}

/**
 * What a core instance needs to serve another loop: the imports it calls,
 * rebound to each loop's host, and the instance's own parts.
 */
interface Reusable {
  readonly modules: CoreModules;
  /** The host imports the instance calls now: the lowered imports read them here. */
  readonly bound: HostImports;
  /** Makes a new `event-loop` resource in the instance; returns it with its rep. */
  readonly newLoop: () => { loop: CoreLoop; rep: number };
  /** Points the hand-lifted methods at the resource with `rep`. */
  readonly rebind: (rep: number) => void;
}

/**
 * The instance a closed loop left, kept for the next loop (at most one), and
 * the largest linear memory kept that way.
 *
 * Why keep one: a loop's hot path calls its instance's functions (the Wasm
 * exports, and the methods lifted over them), and V8's optimized code
 * embeds each call's target. When a closed loop's instance dies, that code
 * is thrown away ("weak objects" in `--trace-deopt`) and the call sites'
 * feedback with it, so a program that makes a new loop per test, or per
 * job, runs each loop's hot path cold. Measured on the virtual hour (section
 * 3b of bench/RESULTS.md, 100,000 timers per fresh loop): closed loops'
 * instances kept alive made the next loop's timers about 18% cheaper, and
 * with each served to the next loop (and the virtual clock and the handles'
 * layouts kept too: docs/design.md) the loop went from 706-825 to 308-338 ns
 * per timer. test/loop.test.mjs "warm code across loops" checks it.
 *
 * What it costs: the kept instance's linear memory stays allocated until a
 * loop takes it (Wasm memory never shrinks), so only an instance with at
 * most IDLE_CORE_MAX_BYTES is kept; a larger one is released with its loop,
 * as before. A loop with a `memoryLimitBytes` under the kept memory gets an
 * instance of its own.
 */
const IDLE_CORE_MAX_BYTES = 8 * 1024 * 1024;
let idleCore: CoreInstance | null = null;
const reusable = new WeakMap<CoreInstance, Reusable>();

/**
 * A core instance for a new loop with `host`'s imports: the one a closed
 * loop left (see `releaseCore`), or a new one. `memoryLimitBytes` (0: none)
 * is the loop's cap, which a kept instance must already be under.
 */
export function instantiateCore(modules: CoreModules, host: HostImports, memoryLimitBytes = 0): CoreInstance {
  const kept = idleCore;
  const reuse = kept === null ? undefined : reusable.get(kept);
  if (
    kept !== null &&
    reuse !== undefined &&
    reuse.modules === modules &&
    (memoryLimitBytes === 0 || kept.memory.buffer.byteLength <= memoryLimitBytes)
  ) {
    idleCore = null;
    reuse.bound.clock = host.clock;
    reuse.bound.takeReady = host.takeReady;
    reuse.bound.takeCompleted = host.takeCompleted;
    try {
      const { loop, rep } = reuse.newLoop();
      reuse.rebind(rep);
      // The last loop's cap, if it set one, is the instance's until reset.
      loop.setMemoryLimit(0n);
      (kept as { loop: CoreLoop }).loop = loop;
      return kept;
    } catch {
      // The kept instance cannot make a loop (a trap): a new one can.
    }
  }
  return newInstance(modules, host);
}

/**
 * A closed loop's instance, its `event-loop` resource dropped already: kept
 * for the next loop if its memory is small enough (see IDLE_CORE_MAX_BYTES).
 * Only a loop that closed cleanly gives its instance back; after a trap the
 * instance is never used again.
 */
export function releaseCore(instance: CoreInstance): void {
  if (instance.memory.buffer.byteLength > IDLE_CORE_MAX_BYTES) return;
  idleCore = instance;
}

function newInstance(modules: CoreModules, host: HostImports): CoreInstance {
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
  // The imports of the loop the instance serves now: rebound when it serves another.
  const bound: HostImports = { clock: host.clock, takeReady: host.takeReady, takeCompleted: host.takeCompleted };
  const clock = { now: () => bound.clock.now() as unknown as bigint };
  const readiness = { takeReady: (max: number) => bound.takeReady(max) };
  const completion = { takeCompleted: (max: number) => bound.takeCompleted(max) };
  const imports = {
    'wasmloop:core/clock': clock,
    [CLOCK_MODULE]: clock,
    'wasmloop:core/readiness': readiness,
    [READINESS_MODULE]: readiness,
    'wasmloop:core/completion': completion,
    [COMPLETION_MODULE]: completion,
  };
  const root = instantiate(
    (file) => {
      const module = modules.get(file);
      if (module === undefined) throw new Error(`core module ${file} is missing`);
      return module;
    },
    imports as never,
    (module, coreImports) => {
      // Replace jco's lowerings of the three imports with the host's own.
      const byModule = coreImports as Record<string, Record<string, unknown>> | undefined;
      const clockImports = byModule?.[CLOCK_MODULE];
      if (clockImports !== undefined && typeof clockImports.now === 'function')
        clockImports.now = lowerClock(() => bound.clock.now());
      const readinessImports = byModule?.[READINESS_MODULE];
      if (readinessImports !== undefined && 'take-ready' in readinessImports) {
        readinessImports['take-ready'] = lowerTakeReady(readiness.takeReady, linear);
      }
      const completionImports = byModule?.[COMPLETION_MODULE];
      if (completionImports !== undefined && 'take-completed' in completionImports) {
        completionImports['take-completed'] = lowerTakeCompleted(completion.takeCompleted, linear);
      }
      const resources = (coreImports as Record<string, Record<string, (r: number) => number>> | undefined)?.[
        RESOURCE_EXPORTS
      ];
      if (resources !== undefined) {
        // Learn the rep (the core's pointer) of each loop resource as it is made.
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
  const newLoop = () => {
    rep = -1;
    const loop = new root.eventLoop.EventLoop();
    if (rep < 0) throw new Error('the core component made no event-loop resource');
    return { loop, rep };
  };
  const first = newLoop();
  if (memory === undefined || coreExports === undefined) throw new Error('the core component exports no memory');
  const mem = memory;
  const realloc = coreExports.cabi_realloc;
  if (typeof realloc !== 'function') throw new Error('the core component lacks cabi_realloc');
  let words = new Uint32Array(mem.buffer);
  linear.words = () => {
    if (words.length === 0) words = new Uint32Array(mem.buffer);
    return words;
  };
  linear.realloc = realloc as LinearMemory['realloc'];
  const lifted = liftEventLoop(coreExports, mem, first.rep);
  const instance: CoreInstance = { loop: first.loop, memory: mem, ...lifted.methods };
  reusable.set(instance, { modules, bound, newLoop, rebind: lifted.rebind });
  return instance;
}
