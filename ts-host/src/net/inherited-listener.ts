/**
 * Listening sockets another process handed over (`createServer(handler,
 * { fd })`: systemd's socket activation, a supervisor, the primary of
 * `wasmloop --workers`): what is wrong with a descriptor that cannot be
 * adopted, said the same way on every backend, and the checks a backend
 * without the addon's (`SocketOps.adoptListener`) can make itself.
 *
 * The addon asks the kernel (fstat, getsockname, SO_TYPE, SO_ACCEPTCONN).
 * Without it (node:net where the addon cannot load, Bun) `node:fs` says
 * whether the descriptor is open and a socket (not on Deno, whose `node:fs`
 * sees only the files Deno opened itself), and the host's own listen
 * refuses what cannot listen (EINVAL, which `listenerFault` reads as "not
 * listening"). `node:fs` is imported if the host has it: the loop runs on
 * hosts without it, where no descriptor can be adopted anyway.
 */

/** Why `fd` could not be adopted, for the system error `code` an adoption failed with; null if the code says nothing about the descriptor. */
export function listenerFault(fd: number, code: string): string | null {
  switch (code) {
    case 'EBADF':
      return `fd ${fd} is not open`;
    case 'ENOTSOCK':
      return `fd ${fd} is not a socket`;
    case 'EAFNOSUPPORT':
      return `fd ${fd} is neither a TCP nor a Unix domain socket`;
    case 'EPROTOTYPE':
      return `fd ${fd} is a datagram socket, which cannot listen`;
    case 'EINVAL':
    case 'ENOTCONN':
      return `fd ${fd} is not listening`;
    default:
      return null;
  }
}

type FsModule = typeof import('node:fs');
let fs: FsModule | null = null;
try {
  fs = (await import('node:fs')) as FsModule;
} catch {
  // No node:fs here (a browser, workerd): no descriptor to adopt either.
}

/**
 * What `node:fs` can tell of `fd`: 'EBADF' (not open), 'ENOTSOCK' (not a
 * socket), or null (a socket, or nothing known: the listen decides).
 */
export function socketFault(fd: number): 'EBADF' | 'ENOTSOCK' | null {
  // Deno's node:fs knows only what Deno opened (its resources), not what a process inherited.
  if (fs === null || 'Deno' in globalThis) return null;
  try {
    return fs.fstatSync(fd).isSocket() ? null : 'ENOTSOCK';
  } catch (error) {
    return (error as { code?: string }).code === 'EBADF' ? 'EBADF' : null;
  }
}

/**
 * The path a listening Unix socket was bound to, for a host that reports
 * none (Bun; Node's net for a socket it adopted): its inode looked up in
 * Linux's /proc/net/unix; '' where that cannot be read or it has no path.
 */
export function unixSocketPath(fd: number): string {
  if (fs === null) return '';
  try {
    const inode = String(fs.fstatSync(fd).ino);
    // Num RefCount Protocol Flags Type St Inode [Path]
    for (const line of fs.readFileSync('/proc/net/unix', 'utf8').split('\n')) {
      const fields = line.trim().split(/\s+/);
      if (fields[6] === inode) return fields.slice(7).join(' ');
    }
  } catch {
    // Not Linux, or not readable here.
  }
  return '';
}
