/**
 * Stale Unix socket files. A server that crashed (or was killed) leaves its
 * socket file behind, and the next listen on that path fails with
 * EADDRINUSE although nothing listens there. asyncio's create_unix_server
 * removes any socket file at the path; that can take the path from a live
 * server, so here a socket file is removed only when a connect to it is
 * refused: nothing accepts on it. A live socket stays (the listen then fails
 * with AddressInUseError), and so does anything that is not a socket.
 *
 * Called by every I/O model's listen on a path (io-model/model.ts), except
 * the virtual backend's, whose paths are names in memory, not files. Node
 * modules are imported when needed: the loop runs on hosts without them,
 * where the listen itself reports the path in use.
 */

/**
 * Removes the socket file at `path` if nothing accepts on it. Does nothing
 * where `node:fs` and `node:net` are missing; never throws.
 */
export async function removeStaleSocket(path: string): Promise<void> {
  if (typeof process === 'undefined' || process.versions?.node === undefined) return;
  try {
    const { lstat, unlink } = await import('node:fs/promises');
    const found = await lstat(path).catch(() => null);
    if (found === null || !found.isSocket()) return;
    if ((await probe(path)) !== 'ECONNREFUSED') return;
    // Checked again just before: the path may have been replaced meanwhile.
    const again = await lstat(path).catch(() => null);
    if (again?.isSocket() && again.ino === found.ino) await unlink(path);
  } catch {
    // Whatever stands in the way, the listen reports it.
  }
}

/** How long a probe of a live server waits for it to end the connection before closing it anyway. */
const PROBE_LINGER_MS = 1000;

/** Connects to the socket at `path`: 'connected', or the error's code. */
async function probe(path: string): Promise<string> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const socket = net.connect({ path });
    socket.once('connect', () => {
      resolve('connected');
      // Leave as a client that closes, not with a reset: read what the live
      // server says, end our side, and let go once it ends its own.
      socket.on('error', () => undefined);
      socket.resume();
      socket.end();
      setTimeout(() => socket.destroy(), PROBE_LINGER_MS).unref();
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      socket.destroy();
      resolve(error.code ?? 'ERROR');
    });
  });
}
