/**
 * The native completion backend's listener (completion-native.ts): a
 * listening descriptor watched through the backend's EndpointPoller, which
 * accepts on readability and hands each connection's descriptor over. It
 * backs off when an accept fails for lack of resources (acceptRetryDelay),
 * so a listener out of descriptors never spins. An adopted listener (one
 * another process bound and handed over) leaves its socket file to its
 * binder.
 */
import {
  type CompletionListener,
  READABLE,
  type SocketAddress,
  type SocketOps,
  acceptErrorIsTransient,
  acceptRetryDelay,
} from './backend.js';
import type { Endpoint, EndpointPoller } from './endpoint-poller.js';
import { parseAddress } from '../net/address.js';
import { EAGAIN, errnoName } from '../errno.js';

/** Connections a listener accepts per readiness, at most (the rest next time). */
const ACCEPTS_PER_READINESS = 64;

/** A host error, shaped as Node's system errors (`code`, `syscall`). */
export function systemError(syscall: string, negativeErrno: number): Error {
  const code = errnoName(negativeErrno);
  return Object.assign(new Error(`${syscall} failed: ${code}`), { code, syscall });
}

export class NativeListener implements CompletionListener, Endpoint {
  readonly #ops: SocketOps;
  readonly #watcher: EndpointPoller;
  readonly #fd: number;
  readonly #id: number;
  readonly #address: SocketAddress;
  readonly #accepted: (fd: number) => void;
  readonly #failed: (error: Error) => void;
  readonly #later: (delayMs: number, fn: () => void) => void;
  /** False for an adopted listener: its socket file is its binder's to remove. */
  readonly #ownsPath: boolean;
  #closed = false;
  /** Accepts in a row that failed for lack of resources: the back-off's count. */
  #failures = 0;

  constructor(
    ops: SocketOps,
    watcher: EndpointPoller,
    fd: number,
    accepted: (fd: number) => void,
    failed: (error: Error) => void,
    later: (delayMs: number, fn: () => void) => void,
    ownsPath: boolean,
  ) {
    this.#ops = ops;
    this.#ownsPath = ownsPath;
    this.#watcher = watcher;
    this.#fd = fd;
    this.#accepted = accepted;
    this.#failed = failed;
    this.#later = later;
    this.#id = watcher.register(this);
    this.#address = parseAddress(ops.address(fd, false));
  }

  /** Starts accepting: 0 or a negative errno. */
  start(): number {
    return this.#watcher.watch(this.#fd, READABLE, this.#id);
  }

  ready(): void {
    for (let i = 0; i < ACCEPTS_PER_READINESS && !this.#closed; i++) {
      const fd = this.#ops.accept(this.#fd);
      if (fd === -EAGAIN) return;
      if (fd < 0) {
        if (acceptErrorIsTransient(errnoName(fd))) continue;
        this.#pause(systemError('accept', fd));
        return;
      }
      this.#failures = 0;
      this.#accepted(fd);
    }
  }

  /**
   * An accept failed (out of descriptors, say): the listener stays readable,
   * so watching it on would spin. Stop, report, try again after the back-off.
   */
  #pause(error: Error): void {
    this.#watcher.unwatch(this.#fd, READABLE);
    this.#failed(error);
    this.#later(acceptRetryDelay(++this.#failures), () => {
      if (this.#closed) return;
      const rc = this.start();
      if (rc < 0) this.#pause(systemError('watch', rc));
    });
  }

  address(): SocketAddress {
    return { ...this.#address };
  }

  close(done: () => void): void {
    if (!this.#closed) {
      this.#closed = true;
      this.#watcher.unwatch(this.#fd, READABLE);
      this.#watcher.unregister(this.#id);
      this.#ops.close(this.#fd);
      const { family, path } = this.#address;
      if (family === 'unix' && path && this.#ownsPath) this.#ops.unlink?.(path);
    }
    done();
  }
}
