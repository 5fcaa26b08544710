/**
 * System error numbers and names. The host's own table where there is one
 * (Node, Deno, Bun: `node:os`), else Linux's numbers, which is what the
 * virtual backend reports everywhere, browsers and workerd included.
 */
const LINUX: Record<string, number> = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EEXIST: 17,
  EINVAL: 22,
  EMFILE: 24,
  ENOSPC: 28,
  EPIPE: 32,
  ENOTSOCK: 88,
  EPROTOTYPE: 91,
  EAFNOSUPPORT: 97,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENETUNREACH: 101,
  ECONNABORTED: 103,
  ECONNRESET: 104,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
  EHOSTUNREACH: 113,
  EALREADY: 114,
  EINPROGRESS: 115,
};

type OsModule = { constants?: { errno?: Record<string, number> } };

let os: OsModule | null = null;
try {
  os = (await import('node:os')) as OsModule;
} catch {
  // No node:os here (a browser, workerd): Linux's numbers.
}

/** Error numbers by name, for this host. */
export const ERRNO: Readonly<Record<string, number>> = os?.constants?.errno ?? LINUX;

const names = new Map<number, string>(Object.entries(ERRNO).map(([name, value]) => [value, name]));

/** The name of `-errno` (a negative errno, as the socket operations return). */
export function errnoName(negative: number): string {
  return names.get(-negative) ?? `errno ${-negative}`;
}

/** `EAGAIN` on this host: a non-blocking operation returns `-EAGAIN` when it would block. */
export const EAGAIN = ERRNO.EAGAIN as number;
