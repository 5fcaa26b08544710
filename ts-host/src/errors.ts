/**
 * The errors wasmloop raises. All extend {@link WasmloopError}, so
 * `err instanceof WasmloopError` tells them from errors thrown by callbacks.
 * docs/errors.md lists each with its cause.
 */

/** Base class of every error the loop itself raises. */
export class WasmloopError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** An operation on a loop that has been closed. */
export class LoopClosedError extends WasmloopError {
  constructor(operation: string) {
    super(`${operation}: the event loop is closed`);
  }
}

/** `runUntilComplete`, `runForever` or `close` on a loop that is running. */
export class LoopRunningError extends WasmloopError {
  constructor(operation: string) {
    super(`${operation}: the event loop is already running`);
  }
}

/** `runUntilComplete` ended because `stop()` was called before the promise settled. */
export class LoopStoppedError extends WasmloopError {
  constructor() {
    super('runUntilComplete: the event loop stopped before the promise settled');
  }
}

/** A backend could not be found, loaded or started. */
export class BackendError extends WasmloopError {}

/**
 * The loop core failed (a WebAssembly trap, such as running out of memory).
 * The loop is closed; the run that was in progress rejects with this error.
 * Other loops are unaffected, and new loops can be created.
 */
export class LoopCrashedError extends WasmloopError {
  constructor(cause: unknown) {
    super(`the event loop crashed and was closed: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
  }
}

/** The operation is not available on this loop's backend. */
export class NotSupportedError extends WasmloopError {}

/**
 * An I/O operation failed. `code` is the system error name (`ECONNREFUSED`,
 * `EADDRINUSE`, `ECONNRESET`, `EPIPE`, `EBADF`, ...), `syscall` the
 * operation.
 */
export class IoError extends WasmloopError {
  readonly code: string;
  readonly syscall: string;
  constructor(syscall: string, code: string, detail?: string, options?: { cause?: unknown }) {
    super(`${syscall}: ${code}${detail === undefined ? '' : ` (${detail})`}`, options);
    this.code = code;
    this.syscall = syscall;
  }
}

/** `createConnection`: nothing listens at that address (ECONNREFUSED). */
export class ConnectionRefusedError extends IoError {}

/** `createServer`: the address is already in use (EADDRINUSE). */
export class AddressInUseError extends IoError {}

/** The peer reset the connection (ECONNRESET, EPIPE). */
export class ConnectionResetError extends IoError {}

/**
 * A TLS handshake or session failed. The message names what failed
 * ("certificate has expired", "hostname mismatch: cert is for DNS:a,
 * connected to b", "handshake: peer closed the connection"); `code` is
 * OpenSSL's or Node's (`CERT_HAS_EXPIRED`, `ERR_TLS_CERT_ALTNAME_INVALID`,
 * `ERR_SSL_TLSV1_ALERT_UNKNOWN_CA`, `ECONNRESET`, `ETIMEDOUT`, ...), and
 * `cause` the host's own error when there is one.
 */
export class TlsError extends WasmloopError {
  readonly code: string;
  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** `read`, `write` or `end` on a connection that was closed. */
export class ConnectionClosedError extends WasmloopError {}

/**
 * A connection's time limit passed: `idleTimeoutMs` (the connection was
 * closed; its pending reads and writes reject with this, a protocol hears
 * it in `connectionLost`) or `readTimeoutMs` (that read rejects; the
 * connection stays open). Its `name` is `'TimeoutError'`, as for the
 * DOMException of `waitFor` and `AbortSignal.timeout`, so
 * `error.name === 'TimeoutError'` tells every timeout.
 */
export class TimeoutError extends WasmloopError {
  /** The limit that passed, in ms of loop time. */
  readonly timeoutMs: number;
  constructor(message: string, timeoutMs: number) {
    super(message);
    this.timeoutMs = timeoutMs;
  }
}

/** `write` or `end` after `end()`. */
export class WriteAfterEndError extends WasmloopError {}

/**
 * The stream ended before `readExactly` had its bytes or `readUntil` its
 * separator (asyncio's `IncompleteReadError`). `partial` holds what was read.
 */
export class IncompleteReadError extends WasmloopError {
  readonly partial: Uint8Array;
  /** The bytes `readExactly` wanted; null for `readUntil`. */
  readonly expected: number | null;
  constructor(operation: string, partial: Uint8Array, expected: number | null) {
    super(
      expected === null
        ? `${operation}: the stream ended after ${partial.length} bytes, before the separator`
        : `${operation}: the stream ended after ${partial.length} of ${expected} bytes`,
    );
    this.partial = partial;
    this.expected = expected;
  }
}

/**
 * `readUntil` or `readLine` found no separator within `limit` bytes
 * (asyncio's `LimitOverrunError`). The data stays buffered: the next read
 * returns it.
 */
export class LimitOverrunError extends WasmloopError {
  /** Bytes buffered when the limit was overrun. */
  readonly consumed: number;
  constructor(operation: string, limit: number, consumed: number) {
    super(`${operation}: no separator within the limit of ${limit} bytes (${consumed} buffered)`);
    this.consumed = consumed;
  }
}

/** `runAll`/`runUntilIdle` ran more callbacks than their `limit`: work keeps re-arming itself. */
export class LoopLimitError extends WasmloopError {
  readonly limit: number;
  constructor(operation: string, limit: number) {
    super(
      `${operation}: stopped after ${limit} callbacks (the limit): timers or callbacks keep re-arming themselves; ` +
        `pass a larger { limit } if this is expected`,
    );
    this.limit = limit;
  }
}

/** A short description of a bad argument for error messages. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string')
    return `string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') {
    return `${typeof value} ${String(value)}`;
  }
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : typeof value;
}
