/**
 * A readiness backend's results, checked at run time. The loop takes a
 * backend at its word otherwise: a custom backend whose `watch()` returns
 * undefined would count as watching, and one whose `sockets.read` reports
 * 70,000 bytes for a 65,536-byte read would hand the program stale bytes
 * of other connections. Each call here returns what the contract allows (a
 * count from 0 to what was asked, or a negative errno; 0 or a negative
 * errno from `watch`) or throws a BackendError naming the backend and the
 * member; an exception the backend throws becomes one too. The I/O code
 * fails that connection or endpoint with it; the loop and the other
 * connections go on. On the hot path a check is one or two comparisons.
 */
import type { Direction, ReadinessBackend } from '../backends/backend.js';
import { errnoName } from '../errno.js';
import { BackendError, describe } from '../errors.js';
import { ioError } from './io-common.js';

/** The BackendError for `member` of `backend` misbehaving as `how`. */
function misbehaved(backend: ReadinessBackend, member: string, how: string, cause?: unknown): BackendError {
  return new BackendError(`backend '${backend.name}': ${member} ${how}`, cause === undefined ? undefined : { cause });
}

/** What a backend member threw, as the BackendError that fails the connection. */
function threw(backend: ReadinessBackend, member: string, error: unknown): BackendError {
  if (error instanceof BackendError) return error;
  return misbehaved(backend, member, `threw: ${error instanceof Error ? error.message : describe(error)}`, error);
}

function shown(value: unknown): string {
  return typeof value === 'number' ? String(value) : describe(value);
}

/** `n` if it is a negative errno or a count of at most `asked` bytes. */
function count(backend: ReadinessBackend, member: string, n: unknown, asked: number, what: string): number {
  if (typeof n === 'number' && Number.isInteger(n) && n <= asked) return n;
  throw misbehaved(backend, member, `returned ${shown(n)} for a ${asked}-byte ${what}`);
}

/** `backend.watch(...)`: 0 or a negative errno. */
export function watch(
  backend: ReadinessBackend,
  fd: number,
  direction: Direction,
  token: number,
  edge?: boolean,
): number {
  let rc: unknown;
  try {
    rc = edge === undefined ? backend.watch(fd, direction, token) : backend.watch(fd, direction, token, edge);
  } catch (error) {
    throw threw(backend, 'watch', error);
  }
  if (rc === 0 || (typeof rc === 'number' && Number.isInteger(rc) && rc < 0)) return rc;
  throw misbehaved(backend, 'watch', `returned ${shown(rc)}, not 0 or a negative errno`);
}

/** `backend.watch(...)`, which must succeed: a negative errno is thrown as the IoError of `watch` (naming `detail`). */
export function mustWatch(
  backend: ReadinessBackend,
  fd: number,
  direction: Direction,
  token: number,
  edge?: boolean,
  detail?: string,
): void {
  const rc = watch(backend, fd, direction, token, edge);
  if (rc < 0) throw ioError('watch', errnoName(rc), detail);
}

/** `sockets.read(...)`: a count of at most `length` bytes, 0 at the end of the stream, or a negative errno. */
export function read(backend: ReadinessBackend, fd: number, bytes: Uint8Array, length: number): number {
  let n: unknown;
  try {
    n = backend.sockets.read(fd, bytes, 0, length);
  } catch (error) {
    throw threw(backend, 'sockets.read', error);
  }
  return count(backend, 'sockets.read', n, length, 'read');
}

/** `sockets.write(...)`: a count of at most `length` bytes, or a negative errno. */
export function write(
  backend: ReadinessBackend,
  fd: number,
  bytes: Uint8Array,
  offset: number,
  length: number,
): number {
  let n: unknown;
  try {
    n = backend.sockets.write(fd, bytes, offset, length);
  } catch (error) {
    throw threw(backend, 'sockets.write', error);
  }
  return count(backend, 'sockets.write', n, length, 'write');
}

/** `sockets.recvFrom(...)`: one datagram's length, at most `length`, or a negative errno. */
export function recvFrom(backend: ReadinessBackend, fd: number, bytes: Uint8Array, length: number): number {
  let n: unknown;
  try {
    n = (backend.sockets.recvFrom as NonNullable<typeof backend.sockets.recvFrom>)(fd, bytes, 0, length);
  } catch (error) {
    throw threw(backend, 'sockets.recvFrom', error);
  }
  return count(backend, 'sockets.recvFrom', n, length, 'receive');
}

/** `sockets.sendTo(...)`: the datagram's length (at most `length`), or a negative errno. */
export function sendTo(
  backend: ReadinessBackend,
  fd: number,
  bytes: Uint8Array,
  length: number,
  host: string | null,
  port: number,
): number {
  let n: unknown;
  try {
    n = (backend.sockets.sendTo as NonNullable<typeof backend.sockets.sendTo>)(fd, bytes, 0, length, host, port);
  } catch (error) {
    throw threw(backend, 'sockets.sendTo', error);
  }
  return count(backend, 'sockets.sendTo', n, length, 'send');
}
