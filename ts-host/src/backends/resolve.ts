/**
 * Resolving `createLoop({ backend })`: `'auto'` picks the best backend that
 * starts here, a name picks that backend.
 */
import { BackendError } from '../errors.js';
import { type Backend, contractViolation } from './backend.js';
import { createClockBackend } from './clock.js';
import { createCompletionBackend } from './completion.js';
import { createSelectorBackend } from './selector.js';
import { createVirtualBackend } from './virtual.js';

type Factory = () => Backend;

/** Built-in backends by name. `auto` never picks `virtual`. */
const BUILT_IN: ReadonlyArray<readonly [string, Factory]> = [
  ['selector', createSelectorBackend],
  ['completion', createCompletionBackend],
  ['virtual', createVirtualBackend],
  ['clock', createClockBackend],
];

/**
 * `auto`'s order of preference on a platform: readiness where the system is
 * POSIX (epoll, kqueue), completion on Windows (IOCP), as asyncio picks its
 * Selector or Proactor loop.
 */
export function autoOrder(platform: string): string[] {
  // Last: timers and callbacks without I/O, where no I/O backend starts.
  return platform === 'win32' ? ['completion', 'selector', 'clock'] : ['selector', 'completion', 'clock'];
}

/** Names `createLoop` accepts for `backend`. */
export const BACKEND_NAMES: readonly string[] = ['auto', ...BUILT_IN.map(([name]) => name)];

export interface ResolveOptions {
  /** Reports why a preferred backend was passed over (debug mode). */
  log?: (message: string) => void;
  /** The platform `auto` decides for (default: this process's). */
  platform?: string;
  /** Factories to use instead of the built-in ones (tests inject failures). */
  factories?: ReadonlyMap<string, Factory>;
}

export async function resolveBackend(spec: string, options: ResolveOptions = {}): Promise<Backend> {
  const factories = options.factories ?? new Map(BUILT_IN);
  if (spec === 'auto') {
    const failures: string[] = [];
    const platform = options.platform ?? (typeof process === 'undefined' ? 'browser' : process.platform);
    for (const name of autoOrder(platform)) {
      const factory = factories.get(name);
      if (factory === undefined) continue;
      try {
        return factory();
      } catch (err) {
        const why = `backend '${name}' cannot start here: ${(err as Error).message}`;
        failures.push(why);
        options.log?.(`wasmloop: ${why}; trying the next one`);
      }
    }
    throw new BackendError(`backend 'auto': no backend starts here (${failures.join('; ')})`);
  }
  if (spec.includes(':')) return loadUserBackend(spec);
  const factory = factories.get(spec);
  if (factory === undefined) {
    throw new RangeError(`backend: unknown backend '${spec}' (known: ${BACKEND_NAMES.join(', ')}, or 'module:function')`);
  }
  try {
    return factory();
  } catch (err) {
    throw new BackendError(`backend '${spec}' cannot start here: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * `'module:function'`: imports the module (a path relative to the working
 * directory, an absolute path or URL, or a package name), calls the exported
 * factory and checks the result implements the backend contract. Split on
 * the last ':' so Windows paths (C:\\...) keep their drive.
 */
async function loadUserBackend(spec: string): Promise<Backend> {
  const colon = spec.lastIndexOf(':');
  const modulePart = spec.slice(0, colon);
  const exportName = spec.slice(colon + 1);
  const fail = (problem: string, cause?: unknown): never => {
    throw new BackendError(`backend '${spec}': ${problem}`, cause === undefined ? undefined : { cause });
  };
  if (modulePart === '' || exportName === '' || !/^[A-Za-z_$][\w$]*$/.test(exportName)) {
    fail("malformed: expected 'module:function', a module path or package name, ':', and an exported function name");
  }
  let specifier = modulePart;
  if (modulePart.startsWith('.') || modulePart.startsWith('/') || /^[A-Za-z]:[\\/]/.test(modulePart)) {
    if (typeof process === 'undefined' || typeof process.cwd !== 'function') {
      fail('a relative or absolute path needs a working directory; use a URL or a package name on this host');
    }
    const { pathToFileURL } = await import('node:url');
    const { resolve } = await import('node:path');
    specifier = pathToFileURL(resolve(process.cwd(), modulePart)).href;
  }
  let module: Record<string, unknown> = {};
  try {
    module = (await import(specifier)) as Record<string, unknown>;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') fail(`module '${modulePart}' not found`, err);
    fail(`module '${modulePart}' failed to load: ${(err as Error).message}`, err);
  }
  const factory = (module as Record<string, unknown>)[exportName];
  if (factory === undefined) fail(`module '${modulePart}' has no export '${exportName}'`);
  if (typeof factory !== 'function') fail(`export '${exportName}' of '${modulePart}' is ${typeof factory}, not a function`);
  let backend: unknown;
  try {
    backend = await (factory as () => unknown)();
  } catch (err) {
    fail(`the factory threw: ${(err as Error)?.message ?? String(err)}`, err);
  }
  const violation = contractViolation(backend);
  if (violation !== null) fail(`not a backend: ${violation} (see docs/backends.md)`);
  return backend as Backend;
}
