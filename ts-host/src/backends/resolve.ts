/**
 * Resolving `createLoop({ backend })`: `'auto'` picks the best backend that
 * starts here, a name picks that backend.
 */
import { BackendError } from '../errors.js';
import type { Backend } from './backend.js';
import { createSelectorBackend } from './selector.js';

type Factory = () => Backend;

/** Built-in backends by name, in `auto`'s order of preference. */
const BUILT_IN: ReadonlyArray<readonly [string, Factory]> = [['selector', createSelectorBackend]];

/** Names `createLoop` accepts for `backend`. */
export const BACKEND_NAMES: readonly string[] = ['auto', ...BUILT_IN.map(([name]) => name)];

export interface ResolveOptions {
  /** Reports why a preferred backend was passed over (debug mode). */
  log?: (message: string) => void;
}

export async function resolveBackend(spec: string, options: ResolveOptions = {}): Promise<Backend> {
  if (spec === 'auto') {
    const failures: string[] = [];
    for (const [name, factory] of BUILT_IN) {
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
  const entry = BUILT_IN.find(([name]) => name === spec);
  if (entry === undefined) {
    throw new RangeError(`backend: unknown backend '${spec}' (known: ${BACKEND_NAMES.join(', ')})`);
  }
  try {
    return entry[1]();
  } catch (err) {
    throw new BackendError(`backend '${spec}' cannot start here: ${(err as Error).message}`, { cause: err });
  }
}
