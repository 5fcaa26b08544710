/**
 * The `selector` backend: the readiness model (epoll, kqueue) on the host's
 * real clock. This slice supplies the clock; readiness I/O registers here
 * when the I/O layer lands.
 */
import type { Backend } from './backend.js';

export function createSelectorBackend(): Backend {
  const perf = globalThis.performance;
  if (perf === undefined || typeof perf.now !== 'function') {
    throw new Error('no monotonic clock: globalThis.performance.now is missing');
  }
  return {
    name: 'selector',
    now: () => perf.now() * 1e6,
    close() {},
  };
}
