/**
 * The `completion` backend: the proactor model (asyncio's Proactor loop, IOCP):
 * the host performs each read and write and reports when it finished.
 *
 * Four implementations, one behaviour: on Node.js the host does the I/O with
 * the native addon (`completion-native.ts`), on Deno and Bun with their own
 * sockets (`completion-deno.ts`, `completion-bun.ts`); elsewhere (workerd,
 * Windows, or wherever those cannot start) with the `net` module, whose I/O
 * is callback-shaped already. That one, in this file, is pure JavaScript and
 * runs wherever `node:net` does; `createNetCompletionBackend` picks it on
 * purpose.
 */
import type { ListenOptions, Server as NetServer, Socket as NetSocket } from 'node:net';
import type { BackendSink, CompletionBackend, CompletionListener, CompletionSocket, TcpOptions } from './backend.js';
import { faultError, inheritedListenerFault, inheritedUnixPath } from './inherited-fd.js';
import { TokenQueue } from './token-queue.js';
import { performanceClock } from './wall-clock.js';
import { unixAddress } from '../net/address.js';
import { netAddress, nodeDatagram } from '../net/node-dgram.js';

import { createNativeCompletionBackend } from './completion-native.js';
import { createDenoCompletionBackend, denoNamespace } from './completion-deno.js';
import { createBunCompletionBackend, bunNamespace } from './completion-bun.js';
import { NotSupportedError } from '../errors.js';

/** Cloudflare's workerd, which names itself in navigator.userAgent. */
function isWorkerd(): boolean {
  return (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent === 'Cloudflare-Workers';
}

type NetModule = typeof import('node:net');
let net: NetModule | null = null;
try {
  net = (await import('node:net')) as NetModule;
} catch {
  // No node:net here: the completion backend cannot start.
}

function loadNet(): NetModule {
  if (net === null || typeof net.createServer !== 'function') {
    throw new Error('the completion backend needs node:net (Node.js, Bun or Deno)');
  }
  return net;
}

type ClusterModule = { isPrimary: boolean; isWorker: boolean };
let cluster: ClusterModule | null = null;
try {
  cluster = ((await import('node:cluster')) as { default: ClusterModule }).default;
} catch {
  // No node:cluster here: no worker whose listens go to a primary.
}

/**
 * Runs `listen` (a `listen({ fd })`) as this process's own. In a
 * `node:cluster` worker Node sends such a listen to the primary, which would
 * read the number in its own descriptor table and share what it found
 * there; the descriptor is this process's (each `wasmloop --workers` worker
 * inherits the socket), so the listen is made here, as a primary's is: Node
 * decides by `cluster.isPrimary`, read during the call.
 */
function listenHere(listen: () => void): void {
  if (cluster === null || !cluster.isWorker) {
    listen();
    return;
  }
  const worker = cluster;
  worker.isPrimary = true;
  try {
    listen();
  } finally {
    worker.isPrimary = false;
  }
}

/** The two ends of a Unix domain socket connection (Node reports no addresses for them). */
interface UnixEnds {
  local: string;
  remote: string;
}

function wrap(socket: NetSocket, unix?: UnixEnds): CompletionSocket {
  socket.setNoDelay(true);
  socket.pause();
  // An error before the connection is started is kept and handed over then.
  let early: Error | null = null;
  let onErrorNow: ((error: Error) => void) | null = null;
  socket.on('error', (error) => {
    if (onErrorNow === null) early = error;
    else onErrorNow(error);
  });
  // Writes Node has not called back yet, oldest first: each one's `done`,
  // or null for one already reported in place. Node calls a stream's write
  // callbacks once each, in order, and never from inside write(); so every
  // write can pass the same callback (as Node's own `nop`), which costs no
  // closure per write.
  const unheard: Array<((error: Error | null) => void) | null> = [];
  const onWritten = (error?: Error | null): void => {
    const done = unheard.shift();
    if (done !== null && done !== undefined) done(error ?? null);
  };
  /** Writes `data` (a string as UTF-8); `done` once Node took all of it. */
  const writeOut = (data: Uint8Array | string, done: (error?: Error | null) => void): void => {
    unheard.push(done);
    socket.write(data, onWritten);
    // libuv tries the write at once; when the kernel took all of it, the
    // stream's buffer is empty again now, though Node calls back only on a
    // later tick. Report the completion in place then (IOCP's skip on
    // success), as the native implementation does, and ignore that call.
    const last = unheard.length - 1;
    if (unheard[last] === done && socket.writableLength === 0 && !socket.errored && !socket.destroyed) {
      unheard[last] = null;
      done(null);
    }
  };
  return {
    start(onData, onError) {
      socket.on('data', (chunk: Buffer) => onData(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)));
      socket.on('end', () => onData(null));
      onErrorNow = onError;
      if (early !== null) onError(early);
    },
    setFlowing(flowing) {
      if (flowing) socket.resume();
      else socket.pause();
    },
    // Node keeps a Uint8Array until it is written (no copiesWrites); a
    // string it encodes itself, copying only what the kernel did not take.
    write: writeOut,
    writeText: writeOut,
    end() {
      socket.end();
    },
    destroy() {
      socket.destroy();
    },
    setTcpOptions({ noDelay, keepAliveMs }: TcpOptions) {
      if (noDelay !== null) socket.setNoDelay(noDelay);
      // Node's initial delay is in ms (libuv rounds it to whole seconds); 0 keeps the system's.
      if (keepAliveMs !== null) socket.setKeepAlive(keepAliveMs >= 0, Math.max(0, keepAliveMs));
    },
    get localAddress() {
      if (unix !== undefined) return unixAddress(unix.local);
      return netAddress(socket.localAddress, socket.localPort, socket.localFamily);
    },
    get remoteAddress() {
      if (unix !== undefined) return unixAddress(unix.remote);
      return netAddress(socket.remoteAddress, socket.remotePort, socket.remoteFamily);
    },
  };
}

/**
 * The `completion` backend: the host's own sockets on Deno and Bun
 * (`completion-deno.ts`, `completion-bun.ts`), native I/O where the addon
 * loads (Node), else `node:net`.
 */
export function createCompletionBackend(): CompletionBackend {
  const own =
    denoNamespace() !== null
      ? createDenoCompletionBackend
      : bunNamespace() !== null
        ? createBunCompletionBackend
        : createNativeCompletionBackend;
  try {
    return own();
  } catch {
    return createNetCompletionBackend();
  }
}

/** The `completion` backend on `node:net`, wherever that module exists. */
export function createNetCompletionBackend(): CompletionBackend {
  const netModule = loadNet();
  const now = performanceClock();
  const queue = new TokenQueue();
  let sink: BackendSink | null = null;
  const servers = new Set<NetServer>();
  const sockets = new Set<NetSocket>();
  const datagram = nodeDatagram();

  /** Listens with `options` (Node's); `path`: the Unix socket's, which Node does not report for connections. */
  const listenOn = (
    options: ListenOptions | { fd: number },
    path: string | undefined,
    onSocket: (socket: CompletionSocket) => void,
    done: (error: Error | null, listener?: CompletionListener) => void,
    onAcceptError: ((error: Error) => void) | undefined,
  ): void => {
    const server = netModule.createServer({ pauseOnConnect: true, allowHalfOpen: true });
    // An adopted socket's path is known once it listens (server.address()).
    let ends = path === undefined ? undefined : { local: path, remote: '' };
    server.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      onSocket(wrap(socket, ends));
    });
    const onError = (error: Error) => done(error);
    server.once('error', onError);
    const listening = () => {
      server.off('error', onError);
      // Later errors are failed accepts; unheard, one would be thrown.
      server.on('error', (error) => onAcceptError?.(error));
      servers.add(server);
      const bound = server.address();
      if (typeof bound === 'string') ends = { local: bound, remote: '' };
      // Node reports no address for a Unix socket it adopted.
      else if (bound === null && 'fd' in options) ends = { local: inheritedUnixPath(options.fd), remote: '' };
      // What address() says once the server closed (Node's then says null).
      const asked = 'fd' in options ? { host: '', port: 0 } : { host: options.host ?? '', port: options.port ?? 0 };
      const last = bound === null || typeof bound === 'string' ? asked : { host: bound.address, port: bound.port };
      done(null, {
        address() {
          if (ends !== undefined) return unixAddress(ends.local);
          const a = server.address();
          if (a === null || typeof a === 'string') return netAddress(last.host, last.port, undefined);
          return netAddress(a.address, a.port, a.family);
        },
        close(closed) {
          servers.delete(server);
          server.close(() => closed());
        },
      });
    };
    if ('fd' in options) listenHere(() => server.listen(options, listening));
    else server.listen(options, listening);
  };

  return {
    name: 'completion',
    model: 'completion',
    implementation: 'node:net',
    now,
    // net.Socket's setNoDelay and setKeepAlive take every option.
    checkTcpOptions: () => null,
    attach(s) {
      sink = s;
    },
    takeCompleted(max) {
      return queue.take(max);
    },
    complete(token) {
      queue.push(token);
      // Called from net's callbacks (macrotasks), or from a write that
      // completed in place: only the former may iterate at once.
      sink?.wake(false);
    },
    listen({ host, port, backlog, path, fd }, onSocket, done, onAcceptError) {
      // workerd's node:net "listens" on a made-up port that no connection
      // ever reaches: a worker cannot accept TCP. Say so instead.
      if (isWorkerd()) {
        throw new NotSupportedError(
          'createServer: workerd cannot accept TCP connections in a worker; the completion backend there connects out only',
        );
      }
      if (fd !== undefined) {
        // Checked first: Node's listen would make a socket that is bound but not listening listen.
        const fault = inheritedListenerFault(fd);
        if (fault !== null) done(faultError(fault));
        else listenOn({ fd }, undefined, onSocket, done, onAcceptError);
        return;
      }
      listenOn(path === undefined ? { host, port, backlog } : { path, backlog }, path, onSocket, done, onAcceptError);
    },
    connect({ host, port, path }, done) {
      const socket = netModule.connect(
        path === undefined ? { host, port, allowHalfOpen: true } : { path, allowHalfOpen: true },
      );
      const onError = (error: Error) => {
        socket.destroy();
        done(error);
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        done(null, wrap(socket, path === undefined ? undefined : { local: '', remote: path }));
      });
      return () => {
        socket.removeAllListeners('connect');
        socket.off('error', onError);
        // An error still on its way from the abandoned attempt has no one to tell.
        socket.on('error', () => undefined);
        socket.destroy();
      };
    },
    ...(datagram === null ? {} : { datagram }),
    close() {
      for (const s of servers) s.close();
      for (const s of sockets) s.destroy();
      servers.clear();
      sockets.clear();
      sink = null;
    },
  };
}
