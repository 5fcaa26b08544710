/**
 * Loading the loop core: the component's core Wasm modules are compiled once
 * per process and instantiated once per loop, so each loop has its own linear
 * memory (freed with the loop) and its own imports.
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
import { type CoreInstance, RESOURCE_EXPORTS, liftEventLoop } from './wit/event-loop-export.js';
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
        clockImports.now = lowerClock(host.clock.now);
      const readinessImports = byModule?.[READINESS_MODULE];
      if (readinessImports !== undefined && 'take-ready' in readinessImports) {
        readinessImports['take-ready'] = lowerTakeReady(host.takeReady, linear);
      }
      const completionImports = byModule?.[COMPLETION_MODULE];
      if (completionImports !== undefined && 'take-completed' in completionImports) {
        completionImports['take-completed'] = lowerTakeCompleted(host.takeCompleted, linear);
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
  if (rep < 0) throw new Error('the core component made no event-loop resource');
  const mem = memory;
  const realloc = coreExports.cabi_realloc;
  if (typeof realloc !== 'function') throw new Error('the core component lacks cabi_realloc');
  let words = new Uint32Array(mem.buffer);
  linear.words = () => {
    if (words.length === 0) words = new Uint32Array(mem.buffer);
    return words;
  };
  linear.realloc = realloc as LinearMemory['realloc'];
  return { loop, memory: mem, ...liftEventLoop(coreExports, mem, rep) };
}
