/**
 * Resolving `createLoop({ backend })`: `'auto'` picks the best backend that
 * starts here, a name picks that backend, and `'module:function'` loads the
 * user's factory (through module-loader.ts, as the CLI loads applications)
 * and checks what it returns against the contract.
 */
import { BackendError, describe } from '../errors.js';
import { INT32_MAX } from '../limits.js';
import { checkOptions } from '../options.js';
import { SpecError, loadExport } from '../module-loader.js';
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
  /** How long a `module:function` factory may take (default FACTORY_TIMEOUT_MS). */
  factoryTimeoutMs?: number;
}

const RESOLVE_OPTIONS: ReadonlyArray<keyof ResolveOptions> = ['log', 'platform', 'factories', 'factoryTimeoutMs'];

export async function resolveBackend(spec: string, options: ResolveOptions = {}): Promise<Backend> {
  checkOptions('resolveBackend', options, RESOLVE_OPTIONS);
  const timeout = options.factoryTimeoutMs;
  if (timeout !== undefined && (typeof timeout !== 'number' || !(timeout >= 0) || timeout > INT32_MAX)) {
    throw new RangeError(
      `resolveBackend: factoryTimeoutMs must be a number of ms from 0 to ${INT32_MAX}, got ${describe(timeout)}`,
    );
  }
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
  if (spec.includes(':')) return loadUserBackend(spec, options.factoryTimeoutMs ?? FACTORY_TIMEOUT_MS);
  const factory = factories.get(spec);
  if (factory === undefined) {
    throw new RangeError(
      `backend: unknown backend '${spec}' (known: ${BACKEND_NAMES.join(', ')}, or 'module:function')`,
    );
  }
  try {
    return factory();
  } catch (err) {
    throw new BackendError(`backend '${spec}' cannot start here: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * How long a `module:function` factory may take to return its backend
 * (ms of wall time): a factory whose promise never settles would otherwise
 * hang createLoop with nothing to say why.
 */
export const FACTORY_TIMEOUT_MS = 10_000;

/**
 * `'module:function'`: imports the module (module-loader.ts: a path, a
 * `file:` URL or a package name), calls the exported factory and checks the
 * result implements the backend contract.
 */
async function loadUserBackend(spec: string, timeoutMs: number): Promise<Backend> {
  const fail = (problem: string, cause?: unknown): never => {
    throw new BackendError(`backend '${spec}': ${problem}`, cause === undefined ? undefined : { cause });
  };
  let factory: () => unknown = () => undefined;
  try {
    factory = (await loadExport(spec)) as () => unknown;
  } catch (err) {
    fail(err instanceof SpecError ? err.message : String(err), err);
  }
  let backend: unknown;
  try {
    backend = await settleWithin(factory(), timeoutMs, spec);
  } catch (err) {
    if (err instanceof BackendError) throw err;
    fail(`the factory threw: ${(err as Error)?.message ?? String(err)}`, err);
  }
  const violation = contractViolation(backend);
  if (violation !== null) fail(`not a backend: ${violation} (see docs/backends.md)`);
  return backend as Backend;
}

/**
 * What the factory returned, or what its promise settled to within
 * `timeoutMs`; BackendError after that. A backend that arrives late is
 * closed: nobody will use it.
 */
function settleWithin(result: unknown, timeoutMs: number, spec: string): Promise<unknown> {
  if (!isThenable(result)) return Promise.resolve(result);
  return new Promise((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(new BackendError(`backend '${spec}': the factory's promise did not settle within ${timeoutMs} ms`));
    }, timeoutMs);
    Promise.resolve(result).then(
      (backend) => {
        clearTimeout(timer);
        if (!late) resolve(backend);
        else if (contractViolation(backend) === null) (backend as Backend).close();
      },
      (error: unknown) => {
        clearTimeout(timer);
        if (!late) reject(error);
      },
    );
  });
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
