/**
 * The `clock` backend: timers and callbacks on the host's monotonic clock,
 * and no I/O. `auto` falls back to it where neither I/O backend starts
 * (browsers, workerd); its I/O operations throw NotSupportedError.
 */
import type { ClockBackend } from './backend.js';
import { performanceClock } from './wall-clock.js';

export function createClockBackend(): ClockBackend {
  return {
    name: 'clock',
    model: 'none',
    now: performanceClock(),
    attach() {},
    close() {},
  };
}
