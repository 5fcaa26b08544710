/**
 * File descriptor watches: `addReader`/`addWriter` (asyncio's selector
 * loop). Readiness I/O only: the readiness model (io-model/readiness.ts)
 * owns one of these.
 *
 * A watch is a persistent callback in the core (`watch`: its slot is the
 * token) plus the backend's registration of the descriptor under that
 * token. A second watch of the same descriptor and direction replaces the
 * callback, as asyncio does. Keyed by `fd * 4 + direction`.
 */
import { type Direction, type ReadinessBackend } from './backends/backend.js';
import type { CallbackTable } from './callbacks.js';
import { errnoName } from './errno.js';
import { type IoToken, ioError } from './io/streams.js';
import type { Callback } from './reporting.js';

export class FdWatches {
  readonly #backend: ReadinessBackend;
  readonly #callbacks: CallbackTable;
  readonly #watches = new Map<number, IoToken>();

  constructor(backend: ReadinessBackend, callbacks: CallbackTable) {
    this.#backend = backend;
    this.#callbacks = callbacks;
  }

  /** Calls `callback(...args)` whenever `fd` is ready in `direction`. */
  add(operation: string, fd: number, direction: Direction, callback: Callback, args: unknown[]): void {
    const key = fd * 4 + direction;
    const existing = this.#watches.get(key);
    if (existing !== undefined) {
      this.#callbacks.replace(existing.slot, callback, args);
      return;
    }
    const token = this.#callbacks.registerIo('watch', callback, args);
    const rc = this.#backend.watch(fd, direction, token.slot);
    if (rc < 0) {
      this.#callbacks.release(token);
      throw ioError(operation, errnoName(rc), `fd ${fd} cannot be watched`);
    }
    this.#watches.set(key, token);
  }

  /** Stops watching `fd` in `direction`; true if it was watched. */
  remove(fd: number, direction: Direction): boolean {
    const key = fd * 4 + direction;
    const token = this.#watches.get(key);
    if (token === undefined) return false;
    this.#watches.delete(key);
    this.#backend.unwatch(fd, direction);
    this.#callbacks.release(token);
    return true;
  }

  /** Removes every watch (the loop closes or crashed). */
  clear(): void {
    for (const key of [...this.#watches.keys()]) this.remove(Math.floor(key / 4), (key % 4) as Direction);
  }
}
