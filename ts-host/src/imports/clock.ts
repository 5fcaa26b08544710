/**
 * The `wasmloop:core/clock` import on a JavaScript host: the loop's clock in
 * nanoseconds, from the backend.
 */
import type { Backend } from '../backends/backend.js';

export interface ClockImport {
  /** Nanoseconds; jco converts the number to the WIT `u64`. */
  now(): number;
}

/**
 * The clock import for one loop. Values are whole nanoseconds, never
 * decreasing even if the backend's clock steps back.
 */
export function clockImport(backend: Backend): ClockImport {
  let last = 0;
  return {
    now() {
      const ns = Math.floor(backend.now());
      if (ns > last) last = ns;
      return last;
    },
  };
}
