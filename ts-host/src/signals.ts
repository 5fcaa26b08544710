/**
 * Signal handlers (asyncio's `add_signal_handler`): a process signal runs a
 * loop callback, scheduled with `callSoon`, so it runs between two
 * iterations' callbacks like any other, never inside one.
 *
 * One registration per signal name; each is also a loop resource, so
 * `close()` (or a crash) removes the process listener.
 */
import { NotSupportedError } from './errors.js';
import type { Callback } from './reporting.js';

/** What the handlers need from their loop. */
export interface SignalLoop {
  callSoon(callback: Callback, ...args: unknown[]): unknown;
  isClosed(): boolean;
  _track(resource: { close(): void }, open: boolean): void;
}

interface ProcessSignals {
  on(name: string, listener: () => void): unknown;
  off(name: string, listener: () => void): unknown;
}

export class SignalHandlers {
  readonly #loop: SignalLoop;
  /** Registrations by signal name. */
  readonly #handlers = new Map<string, { close(): void }>();

  constructor(loop: SignalLoop) {
    this.#loop = loop;
  }

  /** Runs `callback(...args)` as a loop callback on each `name` (checked); replaces a handler already set. */
  add(operation: string, name: string, callback: Callback, args: unknown[]): void {
    const host = processSignals(operation);
    this.#handlers.get(name)?.close();
    const loop = this.#loop;
    const listener = (): void => {
      if (!loop.isClosed()) loop.callSoon(callback, ...args);
    };
    const registration = {
      close: (): void => {
        host.off(name, listener);
        if (this.#handlers.get(name) === registration) this.#handlers.delete(name);
        loop._track(registration, false);
      },
    };
    host.on(name, listener);
    this.#handlers.set(name, registration);
    loop._track(registration, true);
  }

  /** Removes the handler of `name`; true if there was one. */
  remove(name: string): boolean {
    const registration = this.#handlers.get(name);
    if (registration === undefined) return false;
    registration.close();
    return true;
  }
}

/** The host's process signals (Node, Deno, Bun); NotSupportedError elsewhere. */
function processSignals(operation: string): ProcessSignals {
  const host = (globalThis as { process?: Partial<ProcessSignals> & { pid?: unknown } }).process;
  if (
    host === undefined ||
    typeof host.on !== 'function' ||
    typeof host.off !== 'function' ||
    typeof host.pid !== 'number'
  ) {
    throw new NotSupportedError(`${operation}: this host has no process signals`);
  }
  return host as ProcessSignals;
}
