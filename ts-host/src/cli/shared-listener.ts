/**
 * The listening socket a command serves on when it does not bind one per
 * process: `--fd N`'s, a socket the command inherited (systemd's socket
 * activation, a process manager), and with `--workers`, the one the
 * primary hands to every worker: `--fd N`'s again, or `--uds PATH`'s, which
 * the primary binds once (a path has room for one listener). Each worker
 * gets the socket as an inherited descriptor, finds its number in
 * WASMLOOP_LISTEN_FD, and listens with `{ fd }`; the kernel spreads the
 * accepts among the processes that share the socket. The primary never
 * accepts on it; it keeps it open to hand it to the workers it restarts,
 * and removes the socket file it bound when it exits.
 */
import { lstatSync } from 'node:fs';
import { inheritedListenerFault } from '../backends/inherited-fd.js';
import { loadSelectorAddon } from '../backends/selector.js';
import { errnoName } from '../errno.js';
import { listenerFault } from '../net/inherited-listener.js';
import { removeStaleSocket } from '../net/stale-socket.js';
import { UsageError } from './args.js';

/** The environment variable that gives a worker the number of the socket its primary handed over. */
const LISTEN_FD = 'WASMLOOP_LISTEN_FD';

/** The backlog of the socket a primary binds for `--uds` (createServer's default). */
const BACKLOG = 511;

/** A socket the primary shares with its workers. */
export interface SharedListener {
  /** Its descriptor in the primary. */
  fd: number;
  /** Its number in each worker. */
  at: number;
  /** Closes what the primary bound (and removes its socket file); nothing for an inherited one. */
  close(): void;
}

/** A usage error: the flags ask for `--fd` with another place to listen. */
export function checkFdAlone(values: ReadonlyMap<string, unknown>): void {
  if (!values.has('fd')) return;
  for (const other of ['host', 'port', 'uds']) {
    if (values.has(other)) throw new UsageError(`--fd and --${other}: give one place to listen, not both`);
  }
}

/** `--fd N`, checked now rather than by every worker: UsageError naming what is wrong with the descriptor. */
export function checkInheritedFd(fd: number): void {
  const code = inheritedListenerFault(fd);
  if (code !== null) throw new UsageError(`--fd ${fd}: ${listenerFault(fd, code) ?? code}`);
}

/** In a worker: the number of the socket its primary handed over, or null. */
export function handedOverFd(): number | null {
  const text = process.env[LISTEN_FD];
  return text === undefined || !/^\d+$/.test(text) ? null : Number(text);
}

/** `--fd N` in a primary: shared under the same number, so that no worker holds a second copy of it. */
export function sharedFd(fd: number): SharedListener {
  return { fd, at: fd, close: () => undefined };
}

/**
 * `--uds PATH` in a primary: the socket bound once (a stale socket file
 * removed first, as a listen on a path does: net/stale-socket.ts), shared
 * as descriptor 3 of each worker. `close()` closes it and removes the
 * file, unless something else has taken the path meanwhile. Throws an
 * Error saying why the path cannot be bound; UsageError without the addon.
 */
export async function bindUnixOnce(path: string): Promise<SharedListener> {
  let addon: ReturnType<typeof loadSelectorAddon>;
  try {
    addon = loadSelectorAddon();
  } catch (error) {
    throw new UsageError(
      `--uds with --workers: the primary binds the socket once with the native addon, which cannot load here (${(error as Error).message})`,
    );
  }
  await removeStaleSocket(path);
  const fd = addon.listenUnix(path, BACKLOG);
  if (fd < 0) throw new Error(`--uds ${path}: cannot listen (${errnoName(fd)})`);
  const inode = lstatSync(path).ino;
  let closed = false;
  return {
    fd,
    at: 3,
    close() {
      if (closed) return;
      closed = true;
      addon.close(fd);
      const now = (() => {
        try {
          return lstatSync(path);
        } catch {
          return null;
        }
      })();
      if (now?.isSocket() && now.ino === inode) addon.unlink(path);
    },
  };
}

/**
 * A worker's stdio (cluster.setupPrimary's): the standard streams, the IPC
 * channel to its primary, and `listener` as descriptor `listener.at`. The
 * primary's own number may be its stream's (`--fd 0`): inherited as it is.
 */
export function workerStdio(listener: SharedListener): Array<'inherit' | 'ipc' | 'ignore' | number> {
  const ipc = listener.at === 3 ? 4 : 3;
  const stdio: Array<'inherit' | 'ipc' | 'ignore' | number> = ['inherit', 'inherit', 'inherit'];
  const length = Math.max(stdio.length, ipc + 1, listener.at + 1);
  // Unlisted descriptors are left as they are (closed: a primary's own are close-on-exec).
  while (stdio.length < length) stdio.push('ignore');
  stdio[ipc] = 'ipc';
  if (listener.at > 2) stdio[listener.at] = listener.fd;
  return stdio;
}

/** The environment that tells a worker where its socket is. */
export function workerEnv(listener: SharedListener): Record<string, string> {
  return { [LISTEN_FD]: String(listener.at) };
}
