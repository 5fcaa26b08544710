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
import type { Direction, ReadinessBackend } from './backends/backend.js';
import type { CallbackTable } from './callbacks.js';
import { errnoName } from './errno.js';
import * as checked from './io/checked.js';
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
      // Registered with the backend again: the descriptor may have been
      // closed (which drops it from epoll) and its number reused since.
      this.#register(operation, fd, direction, existing);
      return;
    }
    const token = this.#callbacks.registerIo('watch', callback, args);
    this.#register(operation, fd, direction, token);
    this.#watches.set(key, token);
  }

  /** Has the backend report `token` for `fd`; on failure the watch is gone and the error thrown. */
  #register(operation: string, fd: number, direction: Direction, token: IoToken): void {
    let rc: number;
    try {
      rc = checked.watch(this.#backend, fd, direction, token.slot);
    } catch (error) {
      this.#forget(fd, direction, token);
      throw error;
    }
    if (rc < 0) {
      this.#forget(fd, direction, token);
      throw ioError(operation, errnoName(rc), `fd ${fd} cannot be watched`);
    }
  }

  #forget(fd: number, direction: Direction, token: IoToken): void {
    if (this.#watches.get(fd * 4 + direction) === token) this.#watches.delete(fd * 4 + direction);
    this.#callbacks.release(token);
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
