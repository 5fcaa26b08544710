/**
 * What every I/O file shares: what it needs from the loop (`IoLoop`), the
 * errors of failed system calls, bytes from a program's data, and the
 * AbortSignal plumbing of reads and connects.
 */
import type { ConnectionLimits } from '../arguments.js';
import type { BackendBase, TcpOptions } from '../backends/backend.js';
import { errnoName } from '../errno.js';
import {
  AddressInUseError,
  ConnectionRefusedError,
  ConnectionResetError,
  IoError,
  NotSupportedError,
  TimeoutError,
  describe,
} from '../errors.js';

/**
 * The TCP options asked for (createServer's, createConnection's, a
 * transport's setTcpOptions) are ones `backend` can set; NotSupportedError
 * saying why not otherwise. `settable`: its I/O model can set them at all
 * (the model's own answer: io-model's setsTcpOptions).
 */
export function checkTcpSupport(operation: string, backend: BackendBase, tcp: TcpOptions, settable: boolean): void {
  const check = backend.checkTcpOptions;
  const why = check === undefined || !settable ? 'it sets no TCP options' : check.call(backend, tcp);
  if (why === null) return;
  const asked = [tcp.noDelay !== null ? `noDelay: ${tcp.noDelay}` : '', tcp.keepAliveMs !== null ? 'keepAlive' : '']
    .filter(Boolean)
    .join(', ');
  throw new NotSupportedError(`${operation}: the '${backend.name}' backend cannot take ${asked}: ${why}`);
}

/** What the streams need from the loop. */
export interface IoLoop {
  /** A persistent callback for readiness; its token is `slot`. */
  _watch(callback: () => void): IoToken;
  /** A one-shot callback for a completion; its token is `slot`. */
  _expect(callback: () => void): IoToken;
  /** Cancels a token's callback. */
  _release(token: IoToken): void;
  /** Reports an error that has no caller to reject (the exception handler). */
  _report(message: string, error: unknown): void;
  /** Tracks an open resource, closed with the loop. */
  _track(resource: { close(): void }, open: boolean): void;
  /** A timer: `callback` after `delayMs` of loop time. */
  callLater(delayMs: number, callback: () => void): { cancel(): void };
  /** `callback` in the next iteration. */
  callSoon(callback: () => void): unknown;
  /** A timer that `refresh()` pushes back without a core call (deadline.ts): the connections' timeouts. */
  deadline(ms: number, callback: () => void): IoDeadline;
  /** What the limits did, for `loop.stats()`. */
  readonly _ioCounters: IoCounters;
  isClosed(): boolean;
}

/** A deadline as io/ uses it (deadline.ts has the semantics). */
export interface IoDeadline {
  refresh(ms?: number): void;
  cancel(): void;
}

/** What the connections' limits did, counted for `loop.stats()`. */
export interface IoCounters {
  /** Connections a server accepted and closed at once: it had maxConnections open. */
  connectionsRefused: number;
  /** Connections closed because they were idle for their idleTimeoutMs. */
  connectionsTimedOut: number;
  /** Reads that rejected because no data came within readTimeoutMs. */
  readsTimedOut: number;
  /** Times a server stopped accepting because an accept failed for lack of resources (EMFILE, ENFILE, ...). */
  acceptsPaused: number;
}

/**
 * A connection's idle timeout: a deadline (refreshed by every read and
 * write) that counts the connection as timed out and hands `close` the
 * TimeoutError to close it with; null without `idleTimeoutMs`.
 */
export function idleDeadline(
  loop: IoLoop,
  limits: ConnectionLimits,
  close: (error: TimeoutError) => void,
): IoDeadline | null {
  const ms = limits.idleTimeoutMs;
  if (ms === Infinity) return null;
  return loop.deadline(ms, () => {
    loop._ioCounters.connectionsTimedOut++;
    close(new TimeoutError(`the connection was idle for idleTimeoutMs (${ms} ms) and was closed`, ms));
  });
}

export function newIoCounters(): IoCounters {
  return { connectionsRefused: 0, connectionsTimedOut: 0, readsTimedOut: 0, acceptsPaused: 0 };
}

export interface IoToken {
  readonly slot: number;
  readonly generation: number;
}

const encoder = new TextEncoder();

export { errnoName };

/** The error for a failed `syscall` with `code` (`ECONNREFUSED`, ...). */
export function ioError(syscall: string, code: string, detail?: string, cause?: unknown): IoError {
  const options = cause === undefined ? undefined : { cause };
  switch (code) {
    case 'ECONNREFUSED':
      return new ConnectionRefusedError(syscall, code, detail, options);
    case 'EADDRINUSE':
      return new AddressInUseError(syscall, code, detail, options);
    case 'ECONNRESET':
    case 'EPIPE':
      return new ConnectionResetError(syscall, code, detail, options);
    default:
      return new IoError(syscall, code, detail, options);
  }
}

export function fromHostError(syscall: string, error: unknown, detail?: string): IoError {
  const code = (error as { code?: unknown }).code;
  return ioError(syscall, typeof code === 'string' ? code : 'EIO', detail ?? (error as Error).message, error);
}

/** The length of `text` in UTF-8, as TextEncoder encodes it (a lone surrogate as U+FFFD: 3 bytes). */
export function utf8Length(text: string): number {
  let n = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    n += c < 0x800 ? 1 : 2;
    // A surrogate pair is 4 bytes for its two units: 2 counted here, its low half skipped.
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
  }
  return n;
}

export function toBytes(operation: string, data: unknown): Uint8Array {
  if (typeof data === 'string') return encoder.encode(data);
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError(
    `${operation}: data must be a Uint8Array or a string, got ${data === null ? 'null' : typeof data}`,
  );
}

export function abortReason(signal: AbortSignal, what = 'read'): unknown {
  return signal.reason ?? new DOMException(`The ${what} was aborted`, 'AbortError');
}

/** `signal` as an operation's option: undefined, or an AbortSignal (TypeError otherwise). */
export function checkSignal(operation: string, signal: unknown): AbortSignal | undefined {
  if (signal === undefined) return undefined;
  const s = signal as Partial<AbortSignal> | null;
  if (
    typeof s !== 'object' ||
    s === null ||
    typeof s.aborted !== 'boolean' ||
    typeof s.addEventListener !== 'function'
  ) {
    throw new TypeError(`${operation}: signal must be an AbortSignal, got ${describe(signal)}`);
  }
  return signal as AbortSignal;
}

/** `promise`, unless `signal` aborts first: then its reason. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(abortReason(signal, 'connect'));
  return new Promise<T>((resolve, reject) => {
    const stop = onAbortOf(signal, () => reject(abortReason(signal, 'connect')));
    promise.then(
      (value) => {
        stop();
        resolve(value);
      },
      (error: unknown) => {
        stop();
        reject(error);
      },
    );
  });
}

/**
 * Calls `onAbort` once if `signal` aborts; returns the function that stops
 * listening (call it once the operation finished either way).
 */
export function onAbortOf(signal: AbortSignal | undefined, onAbort: () => void): () => void {
  if (signal === undefined) return () => undefined;
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}
