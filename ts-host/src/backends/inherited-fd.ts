/**
 * What is wrong with a listening socket another process handed over, for
 * the backends whose host adopts it itself (`node:net`'s `listen({ fd })`,
 * `Bun.listen({ fd })`) and for the `wasmloop` command, which checks `--fd`
 * before anything starts. The addon asks the kernel where it loads (Node):
 * a socket that is bound but not listening is caught there, where a host's
 * listen would make it listen. Elsewhere `node:fs` tells whether the
 * descriptor is open and a socket, and the host's listen refuses the rest.
 */
import { loadSelectorAddon } from './selector.js';
import { socketFault, unixSocketPath } from '../net/inherited-listener.js';
import { errnoName } from '../errno.js';

/**
 * The system error code that says why `fd` cannot be adopted as a
 * listening socket ('EBADF', 'ENOTSOCK', 'EPROTOTYPE', 'EAFNOSUPPORT',
 * 'EINVAL': net/inherited-listener.ts words them), or null if nothing
 * found is wrong.
 */
export function inheritedListenerFault(fd: number): string | null {
  const addon = addonHere();
  if (addon !== null) {
    const fault = addon.listenerFault(fd);
    return fault < 0 ? errnoName(fault) : null;
  }
  return socketFault(fd);
}

/** The addon, or null where it cannot load (Deno, Bun, no prebuilt one): node:fs says what it can then. */
function addonHere(): ReturnType<typeof loadSelectorAddon> | null {
  try {
    return loadSelectorAddon();
  } catch {
    return null;
  }
}

/** The path an adopted Unix socket is bound to, for a host that does not say ('' if unknown). */
export function inheritedUnixPath(fd: number): string {
  const text = addonHere()?.address(fd, false);
  return typeof text === 'string' && text.startsWith('unix ') ? text.slice(5) : unixSocketPath(fd);
}

/** An error for `code`, shaped as the hosts' system errors, for a listen's `done`. */
export function faultError(code: string): Error {
  return Object.assign(new Error(`listen failed: ${code}`), { code, syscall: 'listen' });
}
