/**
 * The native completion backend's poller (completion-native.ts): one addon
 * Poller shared by every endpoint of a backend (sockets, listeners,
 * datagram endpoints, connects in progress). Each endpoint registers for an
 * id; the addon reports `id * 4 + direction`, and the poller tells that
 * endpoint which direction became ready. Not a loop watcher: the loop sees
 * only the completions the endpoints report.
 */
import type { Direction } from './backend.js';
import type { Poller, loadSelectorAddon } from './selector.js';

/** Readiness tokens handed over by the addon per libuv iteration, at most. */
const BATCH = 4096;

/** Something watched through the poller: told which direction became ready. */
export interface Endpoint {
  ready(direction: Direction): void;
}

/** The poller, shared by every endpoint of one backend. */
export class EndpointPoller {
  readonly #poller: Poller;
  readonly #endpoints = new Map<number, Endpoint>();
  #nextId = 1;
  /** True while a burst of readiness is being handed out. */
  dispatching = false;

  constructor(native: ReturnType<typeof loadSelectorAddon>, onBurstEnd: () => void) {
    const shared = new Uint32Array(BATCH);
    this.#poller = new native.Poller((count) => {
      this.dispatching = true;
      try {
        for (let i = 0; i < count; i++) {
          const token = shared[i] as number;
          // A token of an endpoint closed earlier in this burst finds nothing.
          this.#endpoints.get(token >>> 2)?.ready((token & 3) as Direction);
        }
      } finally {
        this.dispatching = false;
        onBurstEnd();
      }
    }, shared);
  }

  register(endpoint: Endpoint): number {
    const id = this.#nextId++;
    this.#endpoints.set(id, endpoint);
    return id;
  }

  unregister(id: number): void {
    this.#endpoints.delete(id);
  }

  /** `edge`: the endpoint handles edge-triggered readiness (ReadinessBackend.watch). */
  watch(fd: number, direction: Direction, id: number, edge = false): number {
    return this.#poller.watch(fd, direction, id * 4 + direction, edge);
  }

  unwatch(fd: number, direction: Direction): void {
    this.#poller.unwatch(fd, direction);
  }

  close(): void {
    this.#poller.close();
    this.#endpoints.clear();
  }
}
